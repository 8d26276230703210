/*  fuzz_msg - libFuzzer target for the actor message codec (vw_msg).

    Actors in other processes reach the broker over tcp://, so message
    bodies are untrusted too. The first input byte picks a message kind, the
    rest is a body: it must decode or be refused without crashing, and what
    decodes must re-encode and decode to an equal message.
*/
#include "vw_msg.h"

#include <string.h>

static int
s_same (const vw_msg_t *a, const vw_msg_t *b)
{
    msgpack_sbuffer x, y;
    msgpack_sbuffer_init (&x);
    msgpack_sbuffer_init (&y);
    int same = vw_msg_pack (a, &x) == 0 && vw_msg_pack (b, &y) == 0 && x.size == y.size &&
               memcmp (x.data, y.data, x.size) == 0;
    msgpack_sbuffer_destroy (&x);
    msgpack_sbuffer_destroy (&y);
    return same;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    vw_msg_id_t id = (vw_msg_id_t) (1 + data[0] % (VW_MSG_COUNT - 1));
    vw_msg_t *msg = vw_msg_new (id);
    if (vw_msg_unpack (msg, data + 1, size - 1) == 0) {
        //  Through the frame codec and back.
        msg->rid = 42;
        zmsg_t *zmsg = vw_msg_encode (msg, "peer");
        if (!zmsg)
            __builtin_trap ();
        vw_msg_t *copy = vw_msg_decode (&zmsg);
        if (!copy || copy->rid != 42 || strcmp (copy->peer, "peer") != 0 || !s_same (msg, copy))
            __builtin_trap ();
        vw_msg_destroy (&copy);
        //  A bundle's records: each must decode or stop the walk, and what
        //  decodes must go into a new bundle and come back equal.
        if (id == VW_MSG_ID_bundle) {
            size_t offset = 0;
            vw_msg_t *one = NULL;
            while (vw_msg_bundle_next (&msg->bundle.msgs, &offset, "peer", &one) == 1) {
                msgpack_sbuffer again;
                msgpack_sbuffer_init (&again);
                vw_bytes_t bytes = {NULL, 0};
                size_t at = 0;
                vw_msg_t *back = NULL;
                if (vw_msg_bundle_append (&again, one) != 0)
                    __builtin_trap ();
                bytes.data = (uint8_t *) again.data;
                bytes.size = again.size;
                if (vw_msg_bundle_next (&bytes, &at, "peer", &back) != 1 || at != again.size ||
                    back->rid != one->rid || !s_same (one, back))
                    __builtin_trap ();
                vw_msg_destroy (&back);
                msgpack_sbuffer_destroy (&again);
                vw_msg_destroy (&one);
            }
        }
    }
    vw_msg_destroy (&msg);
    return 0;
}
