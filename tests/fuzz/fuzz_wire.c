/*  fuzz_wire - libFuzzer target for the agent wire codec (proto/vw_wire).

    Each input is decoded as a JSON frame and as a msgpack frame. A decoder
    must either fail with one of the documented error codes or succeed; a
    success must survive re-serialisation in both formats and decode again
    to an equal tree of the same type. Anything else aborts, which libFuzzer
    reports as a crash.
*/
#include "vw_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_require (int condition, const char *what)
{
    if (!condition) {
        fprintf (stderr, "fuzz_wire: property violated: %s\n", what);
        abort ();
    }
}

static void
s_check_error (const vw_wire_error_t *err)
{
    s_require (strcmp (err->code, "malformed") == 0 || strcmp (err->code, "invalid_message") == 0 ||
                   strcmp (err->code, "unknown_type") == 0,
               "error code is one of the documented ones");
    s_require (err->message[0] != 0, "error message is not empty");
    //  The message goes into an error frame: it must make a valid one.
    json_t *frame = vw_wire_error (err->code, err->message);
    s_require (frame != NULL, "error message fits in an error frame");
    json_decref (frame);
}

//  Serialises tree in both formats and parses it back: equal trees.
static void
s_reparse (const json_t *tree)
{
    for (int format = VW_WIRE_JSON; format <= VW_WIRE_MSGPACK; format++) {
        uint8_t *data = NULL;
        size_t size = 0;
        s_require (vw_wire_serialize (format, tree, &data, &size) == 0, "parsed tree serialises");
        vw_wire_error_t err;
        json_t *again = vw_wire_parse (format, data, size, &err);
        s_require (again != NULL, "serialised tree parses again");
        s_require (json_equal (tree, again), "reparsed tree is equal");
        json_decref (again);
        free (data);
    }
}

//  Serialises a decoded message in both formats and decodes it back.
static void
s_redecode (const vw_wire_msg_t *msg)
{
    for (int format = VW_WIRE_JSON; format <= VW_WIRE_MSGPACK; format++) {
        uint8_t *data = NULL;
        size_t size = 0;
        s_require (vw_wire_serialize (format, msg->root, &data, &size) == 0,
                   "decoded message serialises");
        vw_wire_msg_t again;
        vw_wire_error_t err;
        int rc = vw_wire_decode (format, data, size, &again, &err);
        if (rc != 0)
            fprintf (stderr, "fuzz_wire: re-decode failed: %s: %s\n", err.code, err.message);
        s_require (rc == 0, "serialised message decodes again");
        s_require (again.type == msg->type, "same message type");
        s_require (json_equal (msg->root, again.root), "re-decoded tree is equal");
        s_require (again.seq == msg->seq && again.progress == msg->progress &&
                       again.timeout_ms == msg->timeout_ms,
                   "same decoded integers");
        vw_wire_msg_reset (&again);
        free (data);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    for (int format = VW_WIRE_JSON; format <= VW_WIRE_MSGPACK; format++) {
        vw_wire_error_t err;
        json_t *tree = vw_wire_parse (format, data, size, &err);
        if (tree) {
            s_require (json_is_object (tree), "a parsed frame is an object");
            s_reparse (tree);
            json_decref (tree);
        }
        else
            s_check_error (&err);

        vw_wire_msg_t msg;
        int rc = vw_wire_decode (format, data, size, &msg, &err);
        s_require (rc == 0 || rc == -1, "decode returns 0 or -1");
        if (rc == 0) {
            s_require (msg.root != NULL && msg.type != VW_WIRE_UNKNOWN, "a decoded message");
            s_redecode (&msg);
            vw_wire_msg_reset (&msg);
        }
        else {
            s_require (msg.root == NULL, "a failed decode leaves no tree");
            s_check_error (&err);
        }
    }
    return 0;
}
