/*  vw_mpack - see vw_mpack.h. Format reference: msgpack spec, "formats". */
#include "vw_mpack.h"

static uint64_t
s_be (const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int
vw_mpack_check (const uint8_t *data, size_t size, int max_depth, size_t *used)
{
    if (!data || max_depth < 0 || max_depth > VW_MPACK_MAX_DEPTH)
        return -1;
    //  remaining[d] = objects still to read at nesting depth d.
    uint64_t remaining[VW_MPACK_MAX_DEPTH + 2];
    int depth = 0;
    remaining[0] = 1;
    size_t pos = 0;

    while (depth >= 0) {
        if (remaining[depth] == 0) {
            depth--;
            continue;
        }
        remaining[depth]--;
        if (pos >= size)
            return -1;
        uint8_t b = data[pos++];
        uint64_t skip = 0;      //  payload bytes after the header
        uint64_t children = 0;  //  objects inside a container
        int container = 0;
        int lenbytes = 0;  //  size of a length field that follows

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            ;  //  fixint, nil, bool
        else if (b >= 0xa0 && b <= 0xbf)
            skip = b & 0x1f;  //  fixstr
        else if (b >= 0x90 && b <= 0x9f) {
            children = b & 0x0f;  //  fixarray
            container = 1;
        }
        else if (b >= 0x80 && b <= 0x8f) {
            children = 2 * (uint64_t) (b & 0x0f);  //  fixmap
            container = 1;
        }
        else
            switch (b) {
                case 0xc4:
                case 0xd9: lenbytes = 1; break;  //  bin8 str8
                case 0xc5:
                case 0xda: lenbytes = 2; break;  //  bin16 str16
                case 0xc6:
                case 0xdb: lenbytes = 4; break;  //  bin32 str32
                case 0xc7:
                    lenbytes = 1;
                    skip = 1;
                    break;  //  ext8 (+type)
                case 0xc8:
                    lenbytes = 2;
                    skip = 1;
                    break;  //  ext16
                case 0xc9:
                    lenbytes = 4;
                    skip = 1;
                    break;  //  ext32
                case 0xcc:
                case 0xd0: skip = 1; break;
                case 0xcd:
                case 0xd1: skip = 2; break;
                case 0xca:
                case 0xce:
                case 0xd2: skip = 4; break;
                case 0xcb:
                case 0xcf:
                case 0xd3: skip = 8; break;
                case 0xd4: skip = 2; break;  //  fixext1
                case 0xd5: skip = 3; break;
                case 0xd6: skip = 5; break;
                case 0xd7: skip = 9; break;
                case 0xd8: skip = 17; break;
                case 0xdc:
                    lenbytes = 2;
                    container = 1;
                    break;  //  array16
                case 0xdd:
                    lenbytes = 4;
                    container = 1;
                    break;  //  array32
                case 0xde:
                    lenbytes = 2;
                    container = 2;
                    break;  //  map16
                case 0xdf:
                    lenbytes = 4;
                    container = 2;
                    break;           //  map32
                default: return -1;  //  0xc1
            }
        if (lenbytes) {
            if (size - pos < (size_t) lenbytes)
                return -1;
            uint64_t n = s_be (data + pos, lenbytes);
            pos += lenbytes;
            if (container)
                children = container == 2 ? 2 * n : n;
            else
                skip += n;
        }
        if (skip > size - pos)
            return -1;
        pos += skip;
        if (container) {
            //  Every child takes at least one byte.
            if (children > size - pos)
                return -1;
            if (children > 0) {
                if (depth + 1 > max_depth)
                    return -1;
                remaining[++depth] = children;
            }
        }
    }
    if (used)
        *used = pos;
    return 0;
}
