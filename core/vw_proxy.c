/*  vw_proxy - see vw_proxy.h. */
#include "vw_proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_RANGES 64

typedef struct {
    unsigned char net[16];
    int bits;  //  prefix length over the 16 bytes (IPv4 mapped: 96 + n)
} s_range_t;

struct vw_proxies_t {
    s_range_t ranges[S_MAX_RANGES];
    int count;
};

//  An address as 16 bytes (IPv4 as ::ffff:a.b.c.d); false if it is none.
static bool
s_addr (const char *text, unsigned char out[16], bool *v4)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton (AF_INET, text, &a4) == 1) {
        memset (out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy (out + 12, &a4, 4);
        *v4 = true;
        return true;
    }
    if (inet_pton (AF_INET6, text, &a6) == 1) {
        memcpy (out, &a6, 16);
        *v4 = false;
        return true;
    }
    return false;
}

static bool
s_in (const s_range_t *r, const unsigned char a[16])
{
    int full = r->bits / 8, rest = r->bits % 8;
    if (memcmp (r->net, a, (size_t) full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char) (0xff << (8 - rest));
    return (r->net[full] & mask) == (a[full] & mask);
}

vw_proxies_t *
vw_proxies_parse (const char *text, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!text || !*text)
        return NULL;
    vw_proxies_t *self = (vw_proxies_t *) calloc (1, sizeof *self);
    char *copy = strdup (text);
    char *save = NULL;
    bool ok = self && copy;
    for (char *part = copy ? strtok_r (copy, ", ", &save) : NULL; ok && part;
         part = strtok_r (NULL, ", ", &save)) {
        char *slash = strchr (part, '/');
        int bits = -1;
        if (slash) {
            *slash = 0;
            char *end = NULL;
            long n = strtol (slash + 1, &end, 10);
            bits = slash[1] && !*end && n >= 0 && n <= 128 ? (int) n : -2;
        }
        s_range_t r = {{0}, 0};
        bool v4 = false;
        if (self->count == S_MAX_RANGES || bits == -2 || !s_addr (part, r.net, &v4) ||
            (v4 && bits > 32)) {
            if (err)
                snprintf (err, errlen, "'%.64s%s%.8s' is not an address range (CIDR)", part,
                          slash ? "/" : "", slash ? slash + 1 : "");
            ok = false;
            break;
        }
        r.bits = bits < 0 ? 128 : v4 ? 96 + bits : bits;
        self->ranges[self->count++] = r;
    }
    free (copy);
    if (!ok || !self->count) {
        if (ok && err)
            snprintf (err, errlen, "no address range in '%.64s'", text);
        free (self);
        return NULL;
    }
    return self;
}

void
vw_proxies_destroy (vw_proxies_t **self_p)
{
    free (*self_p);
    *self_p = NULL;
}

bool
vw_proxies_match (const vw_proxies_t *self, const char *addr)
{
    unsigned char a[16];
    bool v4;
    if (!self || !addr || !s_addr (addr, a, &v4))
        return false;
    for (int i = 0; i < self->count; i++)
        if (s_in (&self->ranges[i], a))
            return true;
    return false;
}

void
vw_proxies_source (const vw_proxies_t *self, const char *peer, const char *forwarded_for, char *out,
                   size_t outlen)
{
    snprintf (out, outlen, "%s", peer ? peer : "");
    if (!forwarded_for || !vw_proxies_match (self, peer))
        return;
    //  From the right: skip trusted proxies, take the first other address.
    char list[1024];
    snprintf (list, sizeof list, "%s", forwarded_for);
    char *end = list + strlen (list);
    for (;;) {
        char *seg = end;
        while (seg > list && seg[-1] != ',')
            seg--;
        char *a0 = seg, *a1 = end;
        while (a0 < a1 && (*a0 == ' ' || *a0 == '\t'))
            a0++;
        while (a1 > a0 && (a1[-1] == ' ' || a1[-1] == '\t'))
            a1--;
        char item[64];
        unsigned char a[16];
        bool v4;
        if (a1 == a0 || (size_t) (a1 - a0) >= sizeof item)
            return;  //  garbage: the last good address stands
        memcpy (item, a0, (size_t) (a1 - a0));
        item[a1 - a0] = 0;
        if (!s_addr (item, a, &v4))
            return;
        snprintf (out, outlen, "%s", item);
        if (!vw_proxies_match (self, item) || seg == list)
            return;
        end = seg - 1;  //  the comma before this item
    }
}
