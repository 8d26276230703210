/*  vw_curve - see vw_curve.h. */
#include "vw_curve.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool
s_readable (const char *path, char *err, size_t errlen)
{
    if (access (path, R_OK) == 0)
        return true;
    snprintf (err, errlen, "cannot read CURVE certificate %s: %s", path, strerror (errno));
    return false;
}

zcert_t *
vw_curve_load_secret (const char *path, char *err, size_t errlen)
{
    char secret[4096];
    snprintf (secret, sizeof secret, "%s_secret", path);
    if (!s_readable (path, err, errlen) || !s_readable (secret, err, errlen))
        return NULL;
    zcert_t *cert = zcert_load (path);
    static const byte zero[32] = {0};
    if (!cert || memcmp (zcert_secret_key (cert), zero, sizeof zero) == 0 ||
        memcmp (zcert_public_key (cert), zero, sizeof zero) == 0) {
        snprintf (err, errlen,
                  "%s is not a CURVE certificate with its secret key (make one with "
                  "viworksctl keygen)",
                  path);
        zcert_destroy (&cert);
        return NULL;
    }
    return cert;
}

int
vw_curve_load_public (const char *path, char key[41], char *err, size_t errlen)
{
    if (!s_readable (path, err, errlen))
        return -1;
    zcert_t *cert = zcert_load (path);
    static const byte zero[32] = {0};
    if (!cert || memcmp (zcert_public_key (cert), zero, sizeof zero) == 0) {
        snprintf (err, errlen, "%s is not a CURVE certificate", path);
        zcert_destroy (&cert);
        return -1;
    }
    snprintf (key, 41, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return 0;
}

void
vw_curve_serve (zsock_t *sock, zcert_t *cert, const char *domain)
{
    zcert_apply (cert, sock);
    zsock_set_zap_domain (sock, domain);
    zsock_set_curve_server (sock, 1);
}

void
vw_curve_connect (zsock_t *sock, zcert_t *cert, const char *server_public)
{
    zcert_apply (cert, sock);
    zsock_set_curve_serverkey (sock, server_public);
}

int
vw_curve_keygen (const char *path, const char *name, char *err, size_t errlen)
{
    struct stat st;
    if (stat (path, &st) == 0) {
        snprintf (err, errlen, "%s exists; not overwriting a key", path);
        return -1;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        snprintf (err, errlen, "cannot make a key pair");
        return -1;
    }
    if (name && *name)
        zcert_set_meta (cert, "name", "%s", name);
    //  The secret file is written with the process umask: make it private.
    mode_t old = umask (077);
    int rc = zcert_save (cert, path);
    umask (old);
    char secret[4096];
    snprintf (secret, sizeof secret, "%s_secret", path);
    if (rc == 0)
        rc = chmod (secret, 0600) || chmod (path, 0644);
    zcert_destroy (&cert);
    if (rc) {
        snprintf (err, errlen, "cannot write %s: %s", path, strerror (errno));
        return -1;
    }
    return 0;
}
