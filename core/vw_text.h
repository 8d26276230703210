/*  vw_text - make a human sentence safe to put in a JSON string.

    Error messages quote what clients sent (ids, field names) and are cut to
    fixed buffers, which can leave half a UTF-8 character or a control
    character behind; jansson refuses invalid UTF-8. vw_text_sanitize
    replaces, in place, every byte that is not part of a valid UTF-8
    sequence, and every control character, with '?'. */
#ifndef VW_TEXT_H
#define VW_TEXT_H

void vw_text_sanitize (char *text);

#endif
