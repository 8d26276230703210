/*  vw_secret - the JWT signing secret kept in the data directory.

    SPEC §8: when JWT_SECRET is unset, a random secret is generated once and
    kept in the data directory with mode 0600, so tokens survive restarts.
    The file holds 64 hex characters (256 random bits); the secret is that
    text, exactly as if it had been given in JWT_SECRET.
*/
#ifndef VW_SECRET_H
#define VW_SECRET_H

#include <stddef.h>

//  Reads dir/jwt.secret, creating dir (0700) and the file (0600) if needed.
//  Returns a new string (caller frees), or NULL with a sentence in err.
char *vw_secret_load (const char *dir, char *err, size_t errlen);

#endif
