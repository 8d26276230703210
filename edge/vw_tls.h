/*  vw_tls - checks the --tls-cert / --tls-key pair before lws gets it.

    lws 4.1 quietly serves a TLS vhost without a certificate when the files
    do not exist, prompts on the terminal for an encrypted key, and logs a
    mismatch as a bare OpenSSL error. So the edge loads the pair itself
    first, with the same OpenSSL calls lws makes, and refuses to start with
    a message naming the file and the flag.
*/
#ifndef VW_TLS_H
#define VW_TLS_H

#include <stddef.h>

//  0 when cert is a readable PEM certificate (chain) and key a readable,
//  unencrypted PEM private key that matches it; -1 with the reason in err.
//  A certificate that has expired or is not yet valid is not refused: it
//  gets a warning in *warning (empty otherwise).
int vw_tls_check_files (const char *cert, const char *key, char *err, size_t errlen, char *warning,
                        size_t warnlen);

#endif
