/*  vw_text - make a human sentence safe to put in a JSON string.

    Error messages quote what clients sent (ids, field names) and are cut to
    fixed buffers, which can leave half a UTF-8 character or a control
    character behind; jansson refuses invalid UTF-8. vw_text_sanitize
    replaces, in place, every byte that is not part of a valid UTF-8
    sequence, and every control character, with '?'. */
#ifndef VW_TEXT_H
#define VW_TEXT_H

#include <stddef.h>

void vw_text_sanitize (char *text);

//  The same for program output of `size` bytes (text[size] must be 0):
//  keeps control characters (newlines, tabs), replaces NULs and bytes
//  that are not valid UTF-8 with '?'.
void vw_text_sanitize_output (char *text, size_t size);

//  The value of a hexadecimal digit (0-9, a-f, A-F), or -1.
int vw_text_hex_digit (int c);

#endif
