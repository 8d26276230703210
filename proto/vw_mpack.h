/*  vw_mpack - structural check of untrusted msgpack before it is unpacked.

    msgpack-c trusts the element counts in array and map headers and
    allocates for them up front: five hostile bytes claiming 2^32 elements
    become a 100 GB allocation. Every decoder in this project first runs
    vw_mpack_check, which walks the bytes without allocating and refuses
    truncated input, counts that cannot fit in the remaining bytes, nesting
    deeper than max_depth and the reserved byte 0xc1.
*/
#ifndef VW_MPACK_H
#define VW_MPACK_H

#include <stddef.h>
#include <stdint.h>

#define VW_MPACK_MAX_DEPTH 32

//  Checks that data[0..size) starts with one well-formed msgpack object nested
//  at most max_depth containers deep (max_depth <= VW_MPACK_MAX_DEPTH).
//  Returns 0 and stores the object's length in *used (may be NULL), or -1.
int vw_mpack_check (const uint8_t *data, size_t size, int max_depth, size_t *used);

#endif
