/*  vw_tls - see vw_tls.h. */
#include "vw_tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

//  A passphrase callback that has none: an encrypted key fails to load
//  instead of OpenSSL asking on the terminal.
static int
s_no_passphrase (char *buf, int size, int rwflag, void *userdata)
{
    return 0;
}

//  The reason of the first OpenSSL error (the root cause: "no start line"
//  rather than the "PEM lib" it led to), or a fallback.
static const char *
s_ssl_reason (void)
{
    unsigned long code = ERR_peek_error ();
    const char *reason = code ? ERR_reason_error_string (code) : NULL;
    return reason ? reason : "unrecognised content";
}

static int
s_check_readable (const char *flag, const char *path, char *err, size_t errlen)
{
    struct stat st;
    FILE *file = NULL;
    if (stat (path, &st) != 0 || !(file = fopen (path, "r"))) {
        snprintf (err, errlen, "cannot read %s %s: %s", flag, path, strerror (errno));
        return -1;
    }
    fclose (file);
    if (!S_ISREG (st.st_mode)) {
        snprintf (err, errlen, "cannot read %s %s: not a regular file", flag, path);
        return -1;
    }
    return 0;
}

int
vw_tls_check_files (const char *cert, const char *key, char *err, size_t errlen, char *warning,
                    size_t warnlen)
{
    if (warning && warnlen)
        *warning = 0;
    if (s_check_readable ("--tls-cert", cert, err, errlen) ||
        s_check_readable ("--tls-key", key, err, errlen))
        return -1;
    ERR_clear_error ();
    SSL_CTX *ctx = SSL_CTX_new (TLS_server_method ());
    if (!ctx) {
        snprintf (err, errlen, "cannot set up TLS: %s", s_ssl_reason ());
        return -1;
    }
    SSL_CTX_set_default_passwd_cb (ctx, s_no_passphrase);
    int rc = -1;
    if (SSL_CTX_use_certificate_chain_file (ctx, cert) != 1)
        snprintf (err, errlen, "--tls-cert %s is not a usable PEM certificate: %s", cert,
                  s_ssl_reason ());
    else if (SSL_CTX_use_PrivateKey_file (ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long code = ERR_peek_last_error ();
        if (ERR_GET_REASON (code) == X509_R_KEY_VALUES_MISMATCH)
            snprintf (err, errlen, "--tls-key %s does not match the certificate in --tls-cert %s",
                      key, cert);
        else
            snprintf (err, errlen,
                      "--tls-key %s is not a usable PEM private key (an encrypted key is not "
                      "supported): %s",
                      key, s_ssl_reason ());
    }
    else if (SSL_CTX_check_private_key (ctx) != 1)
        snprintf (err, errlen, "--tls-key %s does not match the certificate in --tls-cert %s", key,
                  cert);
    else
        rc = 0;
    if (rc == 0 && warning && warnlen) {
        X509 *x509 = SSL_CTX_get0_certificate (ctx);
        if (x509 && X509_cmp_current_time (X509_get0_notAfter (x509)) < 0)
            snprintf (warning, warnlen, "the certificate in --tls-cert %s has expired", cert);
        else if (x509 && X509_cmp_current_time (X509_get0_notBefore (x509)) > 0)
            snprintf (warning, warnlen, "the certificate in --tls-cert %s is not valid yet", cert);
    }
    SSL_CTX_free (ctx);
    ERR_clear_error ();
    return rc;
}
