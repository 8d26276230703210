/*  vw_zap - see vw_zap.h. */
#include "vw_zap.h"
#include "vw_clock.h"
#include "vw_log.h"

#include <string.h>

#define S_ENDPOINT "inproc://zeromq.zap.01"
//  Refusals logged per second at most (a scan of the port must not flood
//  the log); the rest are counted in the next line.
#define S_LOG_PER_S 5

typedef struct {
    char domain[32];
    zcertstore_t *store;
} s_domain_t;

typedef struct {
    s_domain_t domains[VW_ZAP_MAX];
    int ndomains;
    int64_t log_second;
    int logged, unlogged;
} self_t;

static zcertstore_t *
s_store (self_t *self, const char *domain)
{
    for (int i = 0; i < self->ndomains; i++)
        if (strcmp (self->domains[i].domain, domain) == 0)
            return self->domains[i].store;
    return NULL;
}

static void
s_log_refusal (self_t *self, const char *domain, const char *address, const char *key,
               const char *why)
{
    int64_t second = vw_clock_mono_ms () / 1000;
    if (second != self->log_second) {
        if (self->unlogged)
            vw_warn ("zap", "%d more CURVE handshake(s) refused", self->unlogged);
        self->log_second = second;
        self->logged = self->unlogged = 0;
    }
    if (self->logged++ < S_LOG_PER_S)
        vw_warn ("zap", "CURVE handshake from %s refused on the %s socket (key %s): %s", address,
                 domain, key, why);
    else
        self->unlogged++;
}

//  One request: [version][request id][domain][address][identity]
//  [mechanism][credentials...]; the answer: [version][request id][status
//  code][status text][user id][metadata].
static void
s_answer (self_t *self, zsock_t *handler)
{
    zmsg_t *request = zmsg_recv (handler);
    if (!request)
        return;
    char *version = zmsg_popstr (request);
    char *request_id = zmsg_popstr (request);
    char *domain = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    char *identity = zmsg_popstr (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *credentials = zmsg_pop (request);
    const char *status = "400", *text = "refused";
    char key[41] = "-";
    if (version && streq (version, "1.0") && mechanism && streq (mechanism, "CURVE") &&
        credentials && zframe_size (credentials) == 32) {
        zmq_z85_encode (key, zframe_data (credentials), 32);
        zcertstore_t *store = domain ? s_store (self, domain) : NULL;
        if (!store)
            s_log_refusal (self, domain ? domain : "?", address ? address : "?", key,
                           "no allow-list for this socket");
        else if (!zcertstore_lookup (store, key))
            s_log_refusal (self, domain, address ? address : "?", key,
                           "the key is not in the allow-list");
        else
            status = "200", text = "OK";
    }
    else
        s_log_refusal (self, domain ? domain : "?", address ? address : "?", key,
                       "not a CURVE handshake");
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    zmsg_addstr (reply, request_id ? request_id : "");
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, streq (status, "200") ? key : "");
    zmsg_addmem (reply, NULL, 0);
    zmsg_send (&reply, handler);
    zframe_destroy (&credentials);
    free (version);
    free (request_id);
    free (domain);
    free (address);
    free (identity);
    free (mechanism);
    zmsg_destroy (&request);
}

void
vw_zap_actor (zsock_t *pipe, void *args)
{
    zsock_signal (pipe, 0);  //  for zactor_new; the next one says whether it answers
    const vw_zap_domain_t *list = (const vw_zap_domain_t *) args;
    self_t self = {0};
    for (int i = 0; list && list[i].domain && self.ndomains < VW_ZAP_MAX; i++) {
        s_domain_t *d = &self.domains[self.ndomains++];
        snprintf (d->domain, sizeof d->domain, "%s", list[i].domain);
        d->store = zcertstore_new (list[i].dir);
    }
    zsock_t *handler = zsock_new (ZMQ_REP);
    if (!handler || zsock_bind (handler, S_ENDPOINT) != 0) {
        zsock_signal (pipe, 1);
        zsock_destroy (&handler);
    }
    else {
        zsock_signal (pipe, 0);
        zpoller_t *poller = zpoller_new (pipe, handler, NULL);
        for (bool done = false; !done;) {
            void *which = zpoller_wait (poller, -1);
            if (which == handler)
                s_answer (&self, handler);
            else if (which == pipe) {
                char *command = zstr_recv (pipe);
                done = !command || streq (command, "$TERM");
                zstr_free (&command);
            }
            else
                done = true;
        }
        zpoller_destroy (&poller);
        zsock_destroy (&handler);
    }
    for (int i = 0; i < self.ndomains; i++)
        zcertstore_destroy (&self.domains[i].store);
}
