/*  vw_keys - CZMQ zhashx tables keyed by 64-bit integers (request ids,
    connection ids) instead of strings. The key pointer must point into the
    stored item (e.g. &item->id), so nothing is copied or freed for keys. */
#ifndef VW_KEYS_H
#define VW_KEYS_H

#include <czmq.h>

//  Makes `hash` use int64_t * keys (hashing and comparing the values).
void vw_keys_int64 (zhashx_t *hash);

#endif
