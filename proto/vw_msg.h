/*  vw_msg - a message between actors, and its msgpack codec.

    The messages and their fields are declared once in vw_catalogue.h.
    Between an actor and the broker a message travels as four frames:

        [address] [message name] [rid: 8 bytes, big-endian] [body: msgpack map]

    where address is the destination when sending to the broker and the
    sender when receiving from it. rid correlates a reply with its request
    (0 = no reply expected).

    A vw_msg_t owns its strings and byte strings; vw_msg_destroy frees them.
    Handlers may take a string by setting the field to NULL.
*/
#ifndef VW_MSG_H
#define VW_MSG_H

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "vw_catalogue.h"

//  Actor names and routing ids are at most this long (bytes, with NUL).
#define VW_ADDR_MAX 32
//  Largest body a receiver decodes (a telemetry batch is the largest message).
#define VW_MSG_MAX_BODY (64 * 1024 * 1024)
//  Rows one answer carries at most (pages, lists), so that it fits in one
//  message with room to spare: a row's payload and result are up to 1 MiB.
#define VW_MSG_ROWS_BYTES (16 * 1024 * 1024)

typedef struct {
    uint8_t *data;
    size_t size;
} vw_bytes_t;

#define VW_CTYPE_INT  int64_t
#define VW_CTYPE_DBL  double
#define VW_CTYPE_BOOL bool
#define VW_CTYPE_STR  char *
#define VW_CTYPE_BIN  vw_bytes_t

//  One struct per message: vw_ping_msg_t, vw_pong_msg_t, ...
#define VW_X_MSG(name, doc)           typedef struct {
#define VW_X_F(msg, type, field, doc) VW_CTYPE_##type field;
#define VW_X_END(name)                                                                             \
    }                                                                                              \
    vw_##name##_msg_t;
VW_CATALOGUE (VW_X_MSG, VW_X_F, VW_X_END)
#undef VW_X_MSG
#undef VW_X_F
#undef VW_X_END

//  Message ids: VW_MSG_PING, ... (VW_MSG_COUNT is the number of messages).
typedef enum {
    VW_MSG_INVALID = 0,
#define VW_X_MSG(name, doc) VW_MSG_ID_##name,
#define VW_X_F(msg, type, field, doc)
#define VW_X_END(name)
    VW_CATALOGUE (VW_X_MSG, VW_X_F, VW_X_END)
#undef VW_X_MSG
#undef VW_X_F
#undef VW_X_END
        VW_MSG_COUNT
} vw_msg_id_t;

typedef struct {
    vw_msg_id_t id;
    uint64_t rid;            //  request id; 0 when no reply is expected
    char peer[VW_ADDR_MAX];  //  on receive: the sender's address
    union {
#define VW_X_MSG(name, doc) vw_##name##_msg_t name;
#define VW_X_F(msg, type, field, doc)
#define VW_X_END(name)
        VW_CATALOGUE (VW_X_MSG, VW_X_F, VW_X_END)
#undef VW_X_MSG
#undef VW_X_F
#undef VW_X_END
    };
} vw_msg_t;

//  New empty message of the given kind; NULL only on allocation failure.
vw_msg_t *vw_msg_new (vw_msg_id_t id);
void vw_msg_destroy (vw_msg_t **self_p);

//  Name of a message ("ping"), NULL for an invalid id; and the reverse.
const char *vw_msg_name (vw_msg_id_t id);
vw_msg_id_t vw_msg_id_from_name (const char *name, size_t len);
//  True for the kinds that answer a request (VW_CATALOGUE_REPLIES).
bool vw_msg_is_reply (vw_msg_id_t id);

//  Replaces an owned string field with a copy of value (NULL clears it).
void vw_msg_set_str (char **field, const char *value);
//  Replaces an owned byte-string field with a copy of data.
void vw_msg_set_bin (vw_bytes_t *field, const void *data, size_t size);

//  Body codec. pack appends the body to sbuf; unpack fills self (whose id
//  must be set) from untrusted bytes: 0 ok, -1 malformed (self is left
//  holding whatever fields decoded so far; destroy it).
int vw_msg_pack (const vw_msg_t *self, msgpack_sbuffer *sbuf);
int vw_msg_unpack (vw_msg_t *self, const uint8_t *data, size_t size);

//  Frames. encode returns [address][name][rid][body] (caller owns);
//  decode takes such a zmsg (consumed) and returns a message with peer set
//  from the address frame, or NULL if malformed.
zmsg_t *vw_msg_encode (const vw_msg_t *self, const char *address);
vw_msg_t *vw_msg_decode (zmsg_t **zmsg_p);

//  Sends to `address` through sock; on success the message is destroyed and
//  *self_p NULLed; on failure (-1) the caller still owns it.
int vw_msg_send (vw_msg_t **self_p, zsock_t *sock, const char *address);
//  Receives one message. Returns NULL when interrupted or when the frames are
//  malformed (the frames are consumed and dropped either way).
vw_msg_t *vw_msg_recv (zsock_t *sock);

//  Bundles (the `bundle` message): appends msg's name, rid and packed body
//  to buf, a bundle's `msgs` under construction. 0, or -1 (buf unchanged
//  but for its capacity).
int vw_msg_bundle_append (msgpack_sbuffer *buf, const vw_msg_t *msg);

//  Reads the message at *offset of a bundle's msgs, advancing *offset:
//  1 with *msg_p set (a new message whose peer is `peer`), 0 at the end,
//  -1 when the record is malformed (the rest of the bundle is unusable).
int vw_msg_bundle_next (const vw_bytes_t *msgs, size_t *offset, const char *peer, vw_msg_t **msg_p);

//  For sockets read outside vw_actor (tests, tools): like vw_msg_recv, but
//  a bundle's messages come out one per call. *backlog holds the rest (a
//  zlist_t created on first use); free it with vw_msg_backlog_destroy.
vw_msg_t *vw_msg_recv_one (zsock_t *sock, zlist_t **backlog);
void vw_msg_backlog_destroy (zlist_t **backlog);

#endif
