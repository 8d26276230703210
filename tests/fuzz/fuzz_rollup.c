/*  fuzz_rollup - libFuzzer target for the packed roll-up rows (vw_rollup).
    The store reads these bytes back from its own tables; a damaged file
    must be refused, never crash it. The first 8 input bytes pick the bucket
    and span; what decodes must encode again into bytes that decode to the same
    entries. */
#include "vw_rollup.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    //  The span: a minute or an hour; the bucket a multiple of it.
    int64_t span = data[0] & 1 ? 3600000 : 60000;
    int64_t bucket = (int64_t) (data[0] >> 1) * span;
    vw_rollup_t *entries = NULL;
    size_t cap = 0, n = 0;
    if (vw_rollup_decode (data + 1, size - 1, bucket, span, &entries, &cap, &n) == 0) {
        uint8_t *out = (uint8_t *) malloc (vw_rollup_bound (n));
        if (!out)
            abort ();
        size_t written = vw_rollup_encode (entries, n, bucket, out);
        //  Numbers have more than one writing (an integer as a double, say):
        //  compare what they read as, not the bytes.
        vw_rollup_t *again = NULL;
        size_t cap2 = 0, n2 = 0;
        if (vw_rollup_decode (out, written, bucket, span, &again, &cap2, &n2) || n2 != n)
            abort ();
        for (size_t i = 0; i < n; i++)
            if (memcmp (&again[i], &entries[i], sizeof *again) != 0)
                abort ();
        free (again);
        free (out);
    }
    free (entries);
    return 0;
}
