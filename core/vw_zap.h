/*  vw_zap - the process's ZAP handler (RFC 27): who may complete a CURVE
    handshake with one of our server sockets.

    Each CURVE server socket names a ZAP domain (vw_curve_serve); each
    domain has its own allow-list, a directory of the public certificates
    (zcert files) of the clients it admits: "admin" (operators:
    admin.curve_clients) for the admin socket and the event stream,
    "broker" (actor processes: broker.curve_clients) for the broker's tcp
    endpoint. A directory is read again whenever a file in it is added or
    removed (zcertstore's disk loader). A client whose key is not in its
    domain's list, or a domain nobody configured, is refused in the
    handshake (the socket never sees it) and logged with its address (at
    most a few lines a second). CZMQ's zauth serves one directory for all
    domains; this is the same protocol with one per domain.

    Run it as a CZMQ actor before any CURVE socket binds:
        vw_zap_domain_t domains[] = {{"admin", dir}, {"broker", dir2}, {NULL, NULL}};
        zactor_t *zap = zactor_new (vw_zap_actor, domains);
    Then zsock_wait (zap) is 0 once it answers (1: the ZAP endpoint is taken). */
#ifndef VW_ZAP_H
#define VW_ZAP_H

#include <czmq.h>

#define VW_ZAP_ADMIN  "admin"
#define VW_ZAP_BROKER "broker"
#define VW_ZAP_MAX    4

typedef struct {
    const char *domain;  //  NULL ends the list
    const char *dir;     //  allow-list directory
} vw_zap_domain_t;

//  args: a vw_zap_domain_t array ended by {NULL}; read during start-up only.
void vw_zap_actor (zsock_t *pipe, void *args);

#endif
