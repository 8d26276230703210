/*  vw_keys - see vw_keys.h. */
#include "vw_keys.h"

static size_t
s_hash (const void *key)
{
    //  Fibonacci hashing spreads sequential ids over the table.
    return (size_t) ((uint64_t) * (const int64_t *) key * 0x9e3779b97f4a7c15ULL >> 16);
}

static int
s_compare (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

void
vw_keys_int64 (zhashx_t *hash)
{
    zhashx_set_key_hasher (hash, s_hash);
    zhashx_set_key_comparator (hash, s_compare);
    zhashx_set_key_duplicator (hash, NULL);
    zhashx_set_key_destructor (hash, NULL);
}
