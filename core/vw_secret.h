/*  vw_secret - the JWT signing secret kept in the data directory.

    SPEC §8: when JWT_SECRET is unset, a random secret is generated once and
    kept in the data directory with mode 0600, so tokens survive restarts.
    The file holds 64 hex characters (256 random bits); the secret is that
    text, exactly as if it had been given in JWT_SECRET.
*/
#ifndef VW_SECRET_H
#define VW_SECRET_H

#include <stddef.h>
#include <stdint.h>

//  Reads dir/jwt.secret, creating dir (0700) and the file (0600) if needed.
//  Returns a new string (caller frees), or NULL with a sentence in err.
char *vw_secret_load (const char *dir, char *err, size_t errlen);

//  Rotation: jwt.secret becomes jwt.secret.previous (stamped with the time
//  of the rotation) and a new jwt.secret is made. 0, or -1 with err.
int vw_secret_rotate (const char *dir, char *err, size_t errlen);
//  The previous secret and when it was rotated out (ms), NULL if none.
char *vw_secret_load_previous (const char *dir, int64_t *rotated_ms);

#endif
