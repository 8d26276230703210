/*  vw_msg - see vw_msg.h. The codec is table-driven: vw_catalogue.h is
    expanded into one field table per message, and pack/unpack walk it. */
#include "vw_msg.h"
#include "vw_mpack.h"

#include <stddef.h>
#include <string.h>

typedef enum { S_INT, S_DBL, S_BOOL, S_STR, S_BIN } s_ftype_t;

typedef struct {
    const char *name;
    s_ftype_t type;
    size_t offset;  //  from the start of vw_msg_t
} s_field_t;

typedef struct {
    const char *name;
    const s_field_t *fields;
    size_t nfields;
} s_desc_t;

#define S_TYPE_INT  S_INT
#define S_TYPE_DBL  S_DBL
#define S_TYPE_BOOL S_BOOL
#define S_TYPE_STR  S_STR
#define S_TYPE_BIN  S_BIN

//  One field table per message: s_fields_ping[], ...
#define VW_X_MSG(name, doc) static const s_field_t s_fields_##name[] = {
#define VW_X_F(msg, type, field, doc)                                                              \
    {#field, S_TYPE_##type, offsetof (vw_msg_t, msg) + offsetof (vw_##msg##_msg_t, field)},
#define VW_X_END(name)                                                                             \
    }                                                                                              \
    ;
VW_CATALOGUE (VW_X_MSG, VW_X_F, VW_X_END)
#undef VW_X_MSG
#undef VW_X_F
#undef VW_X_END

//  The catalogue, indexed by vw_msg_id_t.
static const s_desc_t s_catalogue[VW_MSG_COUNT] = {[VW_MSG_INVALID] = {NULL, NULL, 0},
#define VW_X_MSG(name, doc)                                                                        \
    [VW_MSG_ID_##                                                                                  \
        name] = {#name, s_fields_##name, sizeof s_fields_##name / sizeof s_fields_##name[0]},
#define VW_X_F(msg, type, field, doc)
#define VW_X_END(name)
                                                   VW_CATALOGUE (VW_X_MSG, VW_X_F, VW_X_END)
#undef VW_X_MSG
#undef VW_X_F
#undef VW_X_END
};

static const s_desc_t *
s_desc (vw_msg_id_t id)
{
    return id > VW_MSG_INVALID && id < VW_MSG_COUNT ? &s_catalogue[id] : NULL;
}

vw_msg_t *
vw_msg_new (vw_msg_id_t id)
{
    assert (s_desc (id));
    vw_msg_t *self = (vw_msg_t *) calloc (1, sizeof (vw_msg_t));
    if (self)
        self->id = id;
    return self;
}

void
vw_msg_destroy (vw_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_msg_t *self = *self_p;
    const s_desc_t *desc = s_desc (self->id);
    for (size_t i = 0; desc && i < desc->nfields; i++) {
        char *base = (char *) self + desc->fields[i].offset;
        if (desc->fields[i].type == S_STR)
            free (*(char **) base);
        else if (desc->fields[i].type == S_BIN)
            free (((vw_bytes_t *) base)->data);
    }
    free (self);
    *self_p = NULL;
}

const char *
vw_msg_name (vw_msg_id_t id)
{
    const s_desc_t *desc = s_desc (id);
    return desc ? desc->name : NULL;
}

bool
vw_msg_is_reply (vw_msg_id_t id)
{
    switch (id) {
#define VW_X_REPLY(name) case VW_MSG_ID_##name:
        VW_CATALOGUE_REPLIES (VW_X_REPLY)
#undef VW_X_REPLY
        return true;
        default: return false;
    }
}

vw_msg_id_t
vw_msg_id_from_name (const char *name, size_t len)
{
    //  A linear scan: the catalogue is small and the cost is far below one
    //  thread wake-up.
    for (int id = 1; id < VW_MSG_COUNT; id++)
        if (strlen (s_catalogue[id].name) == len && memcmp (s_catalogue[id].name, name, len) == 0)
            return (vw_msg_id_t) id;
    return VW_MSG_INVALID;
}

void
vw_msg_set_str (char **field, const char *value)
{
    free (*field);
    *field = value ? strdup (value) : NULL;
}

void
vw_msg_set_bin (vw_bytes_t *field, const void *data, size_t size)
{
    free (field->data);
    field->data = NULL;
    field->size = 0;
    if (data && size) {
        field->data = (uint8_t *) malloc (size);
        if (field->data) {
            memcpy (field->data, data, size);
            field->size = size;
        }
    }
}

int
vw_msg_pack (const vw_msg_t *self, msgpack_sbuffer *sbuf)
{
    const s_desc_t *desc = s_desc (self->id);
    if (!desc)
        return -1;
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);

    //  Count present fields first: absent strings and empty bytes are omitted.
    size_t present = 0;
    for (size_t i = 0; i < desc->nfields; i++) {
        const char *base = (const char *) self + desc->fields[i].offset;
        if (desc->fields[i].type == S_STR && !*(char *const *) base)
            continue;
        if (desc->fields[i].type == S_BIN && !((const vw_bytes_t *) base)->size)
            continue;
        present++;
    }
    int rc = msgpack_pack_map (&pk, present);
    for (size_t i = 0; rc == 0 && i < desc->nfields; i++) {
        const s_field_t *f = &desc->fields[i];
        const char *base = (const char *) self + f->offset;
        if (f->type == S_STR && !*(char *const *) base)
            continue;
        if (f->type == S_BIN && !((const vw_bytes_t *) base)->size)
            continue;
        size_t nlen = strlen (f->name);
        rc = msgpack_pack_str (&pk, nlen);
        if (rc == 0)
            rc = msgpack_pack_str_body (&pk, f->name, nlen);
        if (rc)
            break;
        switch (f->type) {
            case S_INT: rc = msgpack_pack_int64 (&pk, *(const int64_t *) base); break;
            case S_DBL: rc = msgpack_pack_double (&pk, *(const double *) base); break;
            case S_BOOL:
                rc = *(const bool *) base ? msgpack_pack_true (&pk) : msgpack_pack_false (&pk);
                break;
            case S_STR: {
                const char *s = *(char *const *) base;
                size_t len = strlen (s);
                rc = msgpack_pack_str (&pk, len);
                if (rc == 0)
                    rc = msgpack_pack_str_body (&pk, s, len);
                break;
            }
            case S_BIN: {
                const vw_bytes_t *b = (const vw_bytes_t *) base;
                rc = msgpack_pack_bin (&pk, b->size);
                if (rc == 0)
                    rc = msgpack_pack_bin_body (&pk, b->data, b->size);
                break;
            }
        }
    }
    return rc == 0 ? 0 : -1;
}

//  Stores one decoded value into its field; -1 if the msgpack type does not
//  fit the field's type.
static int
s_store (vw_msg_t *self, const s_field_t *f, const msgpack_object *v)
{
    char *base = (char *) self + f->offset;
    switch (f->type) {
        case S_INT:
            if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                if (v->via.u64 > INT64_MAX)
                    return -1;
                *(int64_t *) base = (int64_t) v->via.u64;
            }
            else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                *(int64_t *) base = v->via.i64;
            else
                return -1;
            return 0;
        case S_DBL:
            if (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32)
                *(double *) base = v->via.f64;
            else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                *(double *) base = (double) v->via.u64;
            else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                *(double *) base = (double) v->via.i64;
            else
                return -1;
            return 0;
        case S_BOOL:
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                return -1;
            *(bool *) base = v->via.boolean;
            return 0;
        case S_STR: {
            if (v->type == MSGPACK_OBJECT_NIL) {
                vw_msg_set_str ((char **) base, NULL);
                return 0;
            }
            if (v->type != MSGPACK_OBJECT_STR)
                return -1;
            //  Strings are C strings here: an embedded NUL would truncate
            //  silently, so refuse it.
            if (memchr (v->via.str.ptr, 0, v->via.str.size))
                return -1;
            char *s = (char *) malloc (v->via.str.size + 1);
            if (!s)
                return -1;
            memcpy (s, v->via.str.ptr, v->via.str.size);
            s[v->via.str.size] = 0;
            free (*(char **) base);
            *(char **) base = s;
            return 0;
        }
        case S_BIN:
            if (v->type != MSGPACK_OBJECT_BIN)
                return -1;
            vw_msg_set_bin ((vw_bytes_t *) base, v->via.bin.ptr, v->via.bin.size);
            return v->via.bin.size && !((vw_bytes_t *) base)->data ? -1 : 0;
    }
    return -1;
}

int
vw_msg_unpack (vw_msg_t *self, const uint8_t *data, size_t size)
{
    const s_desc_t *desc = s_desc (self->id);
    size_t used = 0;
    if (!desc || size > VW_MSG_MAX_BODY || vw_mpack_check (data, size, 4, &used) || used != size)
        return -1;

    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    int rc = -1;
    if (msgpack_unpack_next (&result, (const char *) data, size, NULL) != MSGPACK_UNPACK_SUCCESS)
        goto done;
    const msgpack_object *root = &result.data;
    if (root->type != MSGPACK_OBJECT_MAP)
        goto done;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *key = &root->via.map.ptr[i].key;
        if (key->type != MSGPACK_OBJECT_STR)
            goto done;
        for (size_t j = 0; j < desc->nfields; j++) {
            const s_field_t *f = &desc->fields[j];
            if (strlen (f->name) == key->via.str.size &&
                memcmp (f->name, key->via.str.ptr, key->via.str.size) == 0) {
                if (s_store (self, f, &root->via.map.ptr[i].val))
                    goto done;
                break;
            }
        }
    }
    rc = 0;
done:
    msgpack_unpacked_destroy (&result);
    return rc;
}

zmsg_t *
vw_msg_encode (const vw_msg_t *self, const char *address)
{
    const char *name = vw_msg_name (self->id);
    if (!name || !address)
        return NULL;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    zmsg_t *zmsg = NULL;
    if (vw_msg_pack (self, &sbuf) == 0) {
        uint8_t rid[8];
        for (int i = 0; i < 8; i++)
            rid[i] = (uint8_t) (self->rid >> (56 - 8 * i));
        zmsg = zmsg_new ();
        zmsg_addstr (zmsg, address);
        zmsg_addstr (zmsg, name);
        zmsg_addmem (zmsg, rid, sizeof rid);
        zmsg_addmem (zmsg, sbuf.data, sbuf.size);
    }
    msgpack_sbuffer_destroy (&sbuf);
    return zmsg;
}

vw_msg_t *
vw_msg_decode (zmsg_t **zmsg_p)
{
    zmsg_t *zmsg = *zmsg_p;
    vw_msg_t *self = NULL;
    if (!zmsg || zmsg_size (zmsg) != 4)
        goto done;
    zframe_t *addr = zmsg_first (zmsg);
    zframe_t *name = zmsg_next (zmsg);
    zframe_t *rid = zmsg_next (zmsg);
    zframe_t *body = zmsg_next (zmsg);
    if (zframe_size (addr) == 0 || zframe_size (addr) >= VW_ADDR_MAX || zframe_size (rid) != 8)
        goto done;
    vw_msg_id_t id = vw_msg_id_from_name ((const char *) zframe_data (name), zframe_size (name));
    if (id == VW_MSG_INVALID)
        goto done;
    self = vw_msg_new (id);
    if (!self)
        goto done;
    memcpy (self->peer, zframe_data (addr), zframe_size (addr));
    self->peer[zframe_size (addr)] = 0;
    const uint8_t *r = zframe_data (rid);
    for (int i = 0; i < 8; i++)
        self->rid = (self->rid << 8) | r[i];
    if (vw_msg_unpack (self, zframe_data (body), zframe_size (body)))
        vw_msg_destroy (&self);
done:
    zmsg_destroy (zmsg_p);
    return self;
}

int
vw_msg_send (vw_msg_t **self_p, zsock_t *sock, const char *address)
{
    assert (self_p && *self_p);
    zmsg_t *zmsg = vw_msg_encode (*self_p, address);
    if (!zmsg)
        return -1;
    //  zmsg_send consumes the frames only when it succeeds.
    if (zmsg_send (&zmsg, sock)) {
        zmsg_destroy (&zmsg);
        return -1;
    }
    vw_msg_destroy (self_p);
    return 0;
}

vw_msg_t *
vw_msg_recv (zsock_t *sock)
{
    zmsg_t *zmsg = zmsg_recv (sock);
    return zmsg ? vw_msg_decode (&zmsg) : NULL;
}

int
vw_msg_bundle_append (msgpack_sbuffer *buf, const vw_msg_t *msg)
{
    const char *name = vw_msg_name (msg->id);
    size_t start = buf->size;
    size_t namelen = name ? strlen (name) : 0;
    if (!namelen || namelen > 255)
        return -1;
    uint8_t head[1 + 255 + 8 + 4];
    size_t n = 0;
    head[n++] = (uint8_t) namelen;
    memcpy (head + n, name, namelen);
    n += namelen;
    for (int i = 0; i < 8; i++)
        head[n++] = (uint8_t) (msg->rid >> (56 - 8 * i));
    n += 4;  //  body length, filled in below
    if (msgpack_sbuffer_write (buf, (const char *) head, n) || vw_msg_pack (msg, buf)) {
        buf->size = start;
        return -1;
    }
    size_t body = buf->size - start - n;
    if (body > VW_MSG_MAX_BODY) {
        buf->size = start;
        return -1;
    }
    uint8_t *len = (uint8_t *) buf->data + start + n - 4;
    for (int i = 0; i < 4; i++)
        len[i] = (uint8_t) (body >> (24 - 8 * i));
    return 0;
}

int
vw_msg_bundle_next (const vw_bytes_t *msgs, size_t *offset, const char *peer, vw_msg_t **msg_p)
{
    *msg_p = NULL;
    const uint8_t *p = msgs->data;
    size_t size = msgs->size, at = *offset;
    if (at >= size)
        return 0;
    size_t namelen = p[at++];
    if (!namelen || size - at < namelen + 8 + 4)
        return -1;
    vw_msg_id_t id = vw_msg_id_from_name ((const char *) p + at, namelen);
    at += namelen;
    uint64_t rid = 0;
    for (int i = 0; i < 8; i++)
        rid = (rid << 8) | p[at++];
    size_t body = 0;
    for (int i = 0; i < 4; i++)
        body = (body << 8) | p[at++];
    //  A bundle inside a bundle is not something we send: refuse it.
    if (id == VW_MSG_INVALID || id == VW_MSG_ID_bundle || body > size - at)
        return -1;
    vw_msg_t *msg = vw_msg_new (id);
    if (!msg)
        return -1;
    msg->rid = rid;
    snprintf (msg->peer, sizeof msg->peer, "%s", peer);
    if (vw_msg_unpack (msg, p + at, body)) {
        vw_msg_destroy (&msg);
        return -1;
    }
    *offset = at + body;
    *msg_p = msg;
    return 1;
}

vw_msg_t *
vw_msg_recv_one (zsock_t *sock, zlist_t **backlog)
{
    if (*backlog && zlist_size (*backlog))
        return (vw_msg_t *) zlist_pop (*backlog);
    vw_msg_t *msg = vw_msg_recv (sock);
    if (!msg || msg->id != VW_MSG_ID_bundle)
        return msg;
    if (!*backlog)
        *backlog = zlist_new ();
    size_t offset = 0;
    vw_msg_t *one = NULL;
    while (vw_msg_bundle_next (&msg->bundle.msgs, &offset, msg->peer, &one) == 1)
        zlist_append (*backlog, one);
    vw_msg_destroy (&msg);
    return (vw_msg_t *) zlist_pop (*backlog);
}

void
vw_msg_backlog_destroy (zlist_t **backlog)
{
    if (!backlog || !*backlog)
        return;
    vw_msg_t *msg;
    while ((msg = (vw_msg_t *) zlist_pop (*backlog)))
        vw_msg_destroy (&msg);
    zlist_destroy (backlog);
}
