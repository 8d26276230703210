/*  vw_text - see vw_text.h. */
#include "vw_text.h"

#include <stddef.h>

//  Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one.
static size_t
s_utf8_len (const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned int cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;  //  also stops at the terminating NUL
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    //  Overlong forms, surrogates and values past U+10FFFF.
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void
vw_text_sanitize (char *text)
{
    unsigned char *s = (unsigned char *) text;
    while (s && *s) {
        size_t n = s_utf8_len (s);
        if (n == 0 || (n == 1 && (*s < 0x20 || *s == 0x7f))) {
            *s++ = '?';
            continue;
        }
        s += n;
    }
}

void
vw_text_sanitize_output (char *text, size_t size)
{
    unsigned char *s = (unsigned char *) text;
    unsigned char *end = s + size;
    while (s < end) {
        size_t n = *s ? s_utf8_len (s) : 0;
        if (n == 0 || (size_t) (end - s) < n) {
            *s++ = '?';
            continue;
        }
        s += n;
    }
}

int
vw_text_hex_digit (int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
