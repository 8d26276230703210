/*  vw_curve - ZeroMQ CURVE for the sockets that leave the host: the admin
    socket and the event stream (SPEC §7), the broker's link to actors of
    other processes, and the keys of their clients.

    Certificates are CZMQ's zcert files: FILE holds the public key, and
    FILE_secret the secret one too (viworksctl keygen writes both; only the
    public file goes to the other side). The server side loads its own
    certificate; which clients may connect is the ZAP handler's business
    (vw_zap: a directory of their public certificates per domain, started by
    viworks-backend). */
#ifndef VW_CURVE_H
#define VW_CURVE_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

//  A certificate with its secret key (FILE and FILE_secret): NULL with a
//  reason in err when a file is missing, unreadable or has no secret key.
zcert_t *vw_curve_load_secret (const char *path, char *err, size_t errlen);

//  A certificate's public key (FILE; FILE_secret not needed): the 40-char
//  Z85 text into key[41]. 0, or -1 with a reason in err.
int vw_curve_load_public (const char *path, char key[41], char *err, size_t errlen);

//  Makes sock a CURVE server with cert (before it binds), its clients
//  checked against the allow-list of ZAP domain `domain` (vw_zap.h).
void vw_curve_serve (zsock_t *sock, zcert_t *cert, const char *domain);

//  Makes sock a CURVE client of the server whose public key is given,
//  with cert as its own (before it connects).
void vw_curve_connect (zsock_t *sock, zcert_t *cert, const char *server_public);

//  Writes a new key pair: FILE (public) and FILE_secret (mode 0600), with
//  `name` in the metadata. 0, or -1 with a reason in err (an existing
//  FILE is not overwritten).
int vw_curve_keygen (const char *path, const char *name, char *err, size_t errlen);

#endif
