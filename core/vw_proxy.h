/*  vw_proxy - whose address a request is, behind trusted proxies
    (http.trusted_proxies, --trusted-proxy).

    A request that comes from a trusted proxy (nginx in front of the
    backend) carries the client's address in X-Forwarded-For; from anyone
    else that header is ignored, so a client cannot choose the address its
    rate limits and audit rows are counted under. Of the header's list the
    source is the right-most address that is not itself a trusted proxy
    (each proxy appends the address it got the request from). */
#ifndef VW_PROXY_H
#define VW_PROXY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct vw_proxies_t vw_proxies_t;

//  Parses "CIDR[,CIDR...]" (IPv4 a.b.c.d/n or IPv6 x::y/n; a bare address
//  is /32 or /128). NULL (and the reason in err) when a part is not one;
//  NULL without an error for an empty or NULL text.
vw_proxies_t *vw_proxies_parse (const char *text, char *err, size_t errlen);
void vw_proxies_destroy (vw_proxies_t **self_p);

//  Whether addr (text, as lws gives a peer) is in one of the ranges.
bool vw_proxies_match (const vw_proxies_t *self, const char *addr);

//  The request's source: peer itself unless peer is trusted and the
//  X-Forwarded-For value (NULL: none) names someone beyond the trusted
//  proxies. Written into out (at most outlen bytes).
void vw_proxies_source (const vw_proxies_t *self, const char *peer, const char *forwarded_for,
                        char *out, size_t outlen);

#endif
