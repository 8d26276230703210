/*  vw_wire - the agent wire codec. See vw_wire.h and SPEC §3.

    Both formats become one jansson tree, so validation is written once. The
    depth rule is the same for both: every object or array on the path from
    the top level down counts (the top-level object is depth 1, empty
    containers count too), at most VW_WIRE_MAX_DEPTH.
*/
#include "vw_wire.h"
#include "vw_mpack.h"

#include <assert.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Lengths in bytes (SPEC §3 and vw_wire.h).
#define S_TOKEN_MAX       512
#define S_VERSION_MAX     128
#define S_HOSTNAME_MAX    255
#define S_LIST_MAX        64   //  capabilities items, labels keys
#define S_ID_MAX          128  //  command_id, session_id, command_type
#define S_METRIC_NAME_MAX 64
#define S_BASE64_MAX      1024  //  signature, nonce: far above what Ed25519 needs
#define S_CODE_MAX        64    //  error code
//  Serialising a caller's tree: deep enough for anything sane, shallow
//  enough to stop a cyclic tree before the stack does.
#define S_SERIALIZE_MAX_DEPTH 2048

static const char *s_type_names[] = {
    [VW_WIRE_UNKNOWN] = "unknown",
    [VW_WIRE_HELLO] = "hello",
    [VW_WIRE_AUTH] = "auth",
    [VW_WIRE_HEARTBEAT] = "heartbeat",
    [VW_WIRE_TELEMETRY] = "telemetry",
    [VW_WIRE_COMMAND_ACK] = "command_ack",
    [VW_WIRE_COMMAND_PROGRESS] = "command_progress",
    [VW_WIRE_COMMAND_RESULT] = "command_result",
    [VW_WIRE_WELCOME] = "welcome",
    [VW_WIRE_CHALLENGE] = "challenge",
    [VW_WIRE_ERROR] = "error",
    [VW_WIRE_COMMAND] = "command",
    [VW_WIRE_CANCEL] = "cancel",
    [VW_WIRE_TELEMETRY_ACK] = "telemetry_ack",
};
#define S_TYPE_COUNT (sizeof (s_type_names) / sizeof (s_type_names[0]))

//  --------------------------------------------------------------------------
//  Errors

//  The message may end up in an error frame (a JSON string), so it must be
//  valid UTF-8 even when it quotes hostile input or is cut by snprintf:
//  keep printable ASCII only.
static void
s_sanitize (char *text)
{
    for (unsigned char *p = (unsigned char *) text; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
}

static void s_fail (vw_wire_error_t *err, const char *code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_fail (vw_wire_error_t *err, const char *code, const char *fmt, ...)
{
    snprintf (err->code, sizeof (err->code), "%s", code);
    va_list args;
    va_start (args, fmt);
    vsnprintf (err->message, sizeof (err->message), fmt, args);
    va_end (args);
    s_sanitize (err->message);
}

//  Copies at most 40 bytes of untrusted text for quoting in an error message.
static const char *
s_quote (char *dst, size_t dstsize, const char *src, size_t srclen)
{
    assert (dstsize > 4);
    size_t max = dstsize - 4;
    if (max > 40)
        max = 40;
    size_t n = srclen < max ? srclen : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) src[i];
        dst[i] = (c < 0x20 || c > 0x7e || c == '\'') ? '?' : (char) c;
    }
    if (n < srclen) {
        memcpy (dst + n, "...", 3);
        n += 3;
    }
    dst[n] = 0;
    return dst;
}

//  --------------------------------------------------------------------------
//  Parsing

//  True if value has containers nested deeper than max, counting from
//  `depth` (the number of containers already around it).
static bool
s_too_deep (const json_t *value, int depth, int max)
{
    if (!json_is_object (value) && !json_is_array (value))
        return false;
    if (++depth > max)
        return true;
    if (json_is_array (value)) {
        for (size_t index = 0; index < json_array_size (value); index++)
            if (s_too_deep (json_array_get (value, index), depth, max))
                return true;
    }
    else {
        json_t *object = (json_t *) value;
        for (void *it = json_object_iter (object); it; it = json_object_iter_next (object, it))
            if (s_too_deep (json_object_iter_value (it), depth, max))
                return true;
    }
    return false;
}

static json_t *
s_parse_json (const void *data, size_t size, vw_wire_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb (data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        s_fail (err, "malformed", "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                jerr.column);
        return NULL;
    }
    if (!json_is_object (root)) {
        s_fail (err, "malformed", "a frame must be a JSON object");
        json_decref (root);
        return NULL;
    }
    if (s_too_deep (root, 0, VW_WIRE_MAX_DEPTH)) {
        s_fail (err, "malformed", "nesting deeper than %d", VW_WIRE_MAX_DEPTH);
        json_decref (root);
        return NULL;
    }
    return root;
}

//  A msgpack str as a JSON string: UTF-8 (json_stringn checks) and no NUL
//  (JSON text cannot carry one either, so both formats agree).
static json_t *
s_mp_string (const char *ptr, uint32_t size, vw_wire_error_t *err)
{
    if (size && memchr (ptr, 0, size)) {
        s_fail (err, "malformed", "string contains a NUL byte");
        return NULL;
    }
    //  json_stringn wants a non-NULL pointer even for "".
    json_t *string = json_stringn (size ? ptr : "", size);
    if (!string)
        s_fail (err, "malformed", "string is not valid UTF-8");
    return string;
}

static json_t *
s_from_mpack (const msgpack_object *obj, int depth, vw_wire_error_t *err)
{
    switch (obj->type) {
        case MSGPACK_OBJECT_NIL: return json_null ();
        case MSGPACK_OBJECT_BOOLEAN: return json_boolean (obj->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (obj->via.u64 > INT64_MAX) {
                s_fail (err, "malformed", "integer %llu is out of range",
                        (unsigned long long) obj->via.u64);
                return NULL;
            }
            return json_integer ((json_int_t) obj->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer (obj->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            //  JSON has no NaN or infinity (and jansson refuses them).
            if (!isfinite (obj->via.f64)) {
                s_fail (err, "malformed", "float is not finite");
                return NULL;
            }
            return json_real (obj->via.f64);
        case MSGPACK_OBJECT_STR: return s_mp_string (obj->via.str.ptr, obj->via.str.size, err);
        case MSGPACK_OBJECT_ARRAY: {
            if (depth + 1 > VW_WIRE_MAX_DEPTH) {
                s_fail (err, "malformed", "nesting deeper than %d", VW_WIRE_MAX_DEPTH);
                return NULL;
            }
            json_t *array = json_array ();
            if (!array)
                break;
            for (uint32_t i = 0; i < obj->via.array.size; i++) {
                json_t *item = s_from_mpack (&obj->via.array.ptr[i], depth + 1, err);
                if (!item || json_array_append_new (array, item)) {
                    if (item)
                        s_fail (err, "malformed", "out of memory");
                    json_decref (array);
                    return NULL;
                }
            }
            return array;
        }
        case MSGPACK_OBJECT_MAP: {
            if (depth + 1 > VW_WIRE_MAX_DEPTH) {
                s_fail (err, "malformed", "nesting deeper than %d", VW_WIRE_MAX_DEPTH);
                return NULL;
            }
            json_t *object = json_object ();
            if (!object)
                break;
            for (uint32_t i = 0; i < obj->via.map.size; i++) {
                const msgpack_object_kv *kv = &obj->via.map.ptr[i];
                if (kv->key.type != MSGPACK_OBJECT_STR) {
                    s_fail (err, "malformed", "map key is not a string");
                    json_decref (object);
                    return NULL;
                }
                json_t *key = s_mp_string (kv->key.via.str.ptr, kv->key.via.str.size, err);
                if (!key) {
                    json_decref (object);
                    return NULL;
                }
                const char *name = json_string_value (key);
                size_t namelen = json_string_length (key);
                if (json_object_getn (object, name, namelen)) {
                    char quoted[48];
                    s_fail (err, "malformed", "duplicate key '%s'",
                            s_quote (quoted, sizeof quoted, name, namelen));
                    json_decref (key);
                    json_decref (object);
                    return NULL;
                }
                json_t *value = s_from_mpack (&kv->val, depth + 1, err);
                //  The key was checked above: no need for jansson to check it again.
                int rc = value ? json_object_setn_new_nocheck (object, name, namelen, value) : -1;
                json_decref (key);
                if (rc) {
                    if (value)
                        s_fail (err, "malformed", "out of memory");
                    json_decref (object);
                    return NULL;
                }
            }
            return object;
        }
        case MSGPACK_OBJECT_BIN:
            s_fail (err, "malformed", "msgpack bin values are not allowed");
            return NULL;
        case MSGPACK_OBJECT_EXT:
            s_fail (err, "malformed", "msgpack ext values are not allowed");
            return NULL;
        default:
            s_fail (err, "malformed", "unsupported msgpack type %d", (int) obj->type);
            return NULL;
    }
    s_fail (err, "malformed", "out of memory");
    return NULL;
}

static json_t *
s_parse_msgpack (const void *data, size_t size, vw_wire_error_t *err)
{
    //  Refuse lying headers before msgpack-c allocates for them.
    size_t used = 0;
    if (vw_mpack_check (data, size, VW_WIRE_MAX_DEPTH, &used)) {
        s_fail (err, "malformed", "invalid msgpack (truncated, reserved byte or too deep)");
        return NULL;
    }
    if (used != size) {
        s_fail (err, "malformed", "%zu trailing bytes after the msgpack object", size - used);
        return NULL;
    }
    //  Only a map (fixmap, map16, map32) is worth unpacking.
    uint8_t first = *(const uint8_t *) data;
    if ((first & 0xf0) != 0x80 && first != 0xde && first != 0xdf) {
        s_fail (err, "malformed", "a frame must be a msgpack map");
        return NULL;
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    size_t offset = 0;
    msgpack_unpack_return rc = msgpack_unpack_next (&unpacked, data, size, &offset);
    json_t *root = NULL;
    if (rc != MSGPACK_UNPACK_SUCCESS || offset != size)
        s_fail (err, "malformed", "invalid msgpack");
    else if (unpacked.data.type != MSGPACK_OBJECT_MAP)
        s_fail (err, "malformed", "a frame must be a msgpack map");
    else
        root = s_from_mpack (&unpacked.data, 0, err);
    msgpack_unpacked_destroy (&unpacked);
    return root;
}

json_t *
vw_wire_parse (vw_wire_format_t format, const void *data, size_t size, vw_wire_error_t *err)
{
    vw_wire_error_t scratch;
    if (!err)
        err = &scratch;
    err->code[0] = 0;
    err->message[0] = 0;
    if (!data || size == 0) {
        s_fail (err, "malformed", "empty frame");
        return NULL;
    }
    if (format == VW_WIRE_JSON)
        return s_parse_json (data, size, err);
    if (format == VW_WIRE_MSGPACK)
        return s_parse_msgpack (data, size, err);
    s_fail (err, "malformed", "unknown wire format %d", (int) format);
    return NULL;
}

//  --------------------------------------------------------------------------
//  Field access. Optional fields treat an explicit null as absent; required
//  ones do not accept null.

static int
s_string (json_t *root, const char *field, bool required, size_t maxlen, const char **out,
          vw_wire_error_t *err)
{
    json_t *value = json_object_get (root, field);
    *out = NULL;
    if (!required && (!value || json_is_null (value)))
        return 0;
    if (!json_is_string (value)) {
        if (required)
            s_fail (err, "invalid_message", "field '%s' is required and must be a string", field);
        else
            s_fail (err, "invalid_message", "field '%s' must be a string", field);
        return -1;
    }
    size_t len = json_string_length (value);
    if ((required && len == 0) || len > maxlen) {
        s_fail (err, "invalid_message", "field '%s' must be %d..%zu bytes long", field,
                required ? 1 : 0, maxlen);
        return -1;
    }
    *out = json_string_value (value);
    return 0;
}

static int
s_name (json_t *root, const char *field, size_t maxlen, const char **out, vw_wire_error_t *err)
{
    if (s_string (root, field, true, maxlen, out, err))
        return -1;
    if (!vw_wire_valid_name (*out, maxlen)) {
        s_fail (err, "invalid_message", "field '%s' must be 1..%zu characters of [A-Za-z0-9_.:-]",
                field, maxlen);
        *out = NULL;
        return -1;
    }
    return 0;
}

//  A required agent id or username (vw_wire_valid_id).
static int
s_id (json_t *root, const char *field, const char **out, vw_wire_error_t *err)
{
    if (s_string (root, field, true, VW_ID_MAX, out, err))
        return -1;
    if (!vw_wire_valid_id (*out)) {
        s_fail (err, "invalid_message", "field '%s' must match " VW_ID_GRAMMAR, field);
        *out = NULL;
        return -1;
    }
    return 0;
}

static int
s_int (json_t *root, const char *field, bool required, int64_t min, int64_t max, int64_t *out,
       vw_wire_error_t *err)
{
    json_t *value = json_object_get (root, field);
    if (!required && (!value || json_is_null (value)))
        return 0;
    if (!json_is_integer (value)) {
        if (required)
            s_fail (err, "invalid_message", "field '%s' is required and must be an integer", field);
        else
            s_fail (err, "invalid_message", "field '%s' must be an integer", field);
        return -1;
    }
    json_int_t number = json_integer_value (value);
    if (number < min || number > max) {
        if (max == INT64_MAX)
            s_fail (err, "invalid_message", "field '%s' must be an integer >= %lld", field,
                    (long long) min);
        else
            s_fail (err, "invalid_message", "field '%s' must be an integer in %lld..%lld", field,
                    (long long) min, (long long) max);
        return -1;
    }
    *out = number;
    return 0;
}

static bool
s_is_base64 (const char *s, size_t len)
{
    size_t pad = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '=')
            pad++;
        else if (pad)
            return false;  //  data after padding
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '+' || c == '/'))
            return false;
    }
    //  Padded or unpadded; a lone trailing sextet encodes nothing.
    if (pad > 2 || (pad && len % 4) || len % 4 == 1)
        return false;
    return len > pad;
}

static int
s_base64 (json_t *root, const char *field, const char **out, vw_wire_error_t *err)
{
    if (s_string (root, field, true, S_BASE64_MAX, out, err))
        return -1;
    if (!s_is_base64 (*out, strlen (*out))) {
        s_fail (err, "invalid_message", "field '%s' must be base64", field);
        *out = NULL;
        return -1;
    }
    return 0;
}

//  Looks the field up in a NULL-terminated list of allowed values.
static int
s_enum (json_t *root, const char *field, bool required, const char *const *allowed,
        const char **out, vw_wire_error_t *err)
{
    json_t *value = json_object_get (root, field);
    *out = NULL;
    if (!required && (!value || json_is_null (value)))
        return 0;
    if (json_is_string (value))
        for (const char *const *a = allowed; *a; a++)
            if (json_string_length (value) == strlen (*a) &&
                strcmp (json_string_value (value), *a) == 0) {
                *out = json_string_value (value);
                return 0;
            }
    char list[128] = "";
    for (const char *const *a = allowed; *a; a++) {
        strncat (list, *a, sizeof (list) - strlen (list) - 1);
        if (a[1])
            strncat (list, "|", sizeof (list) - strlen (list) - 1);
    }
    s_fail (err, "invalid_message", "field '%s' %smust be one of %s", field,
            required ? "is required and " : "", list);
    return -1;
}

//  --------------------------------------------------------------------------
//  Validation, one function per message type. Each fills msg from msg->root.

static int
s_check_hello (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    json_t *root = msg->root;
    if (s_id (root, "agent_id", &msg->agent_id, err) ||
        s_string (root, "token", true, S_TOKEN_MAX, &msg->token, err) ||
        s_string (root, "version", false, S_VERSION_MAX, &msg->version, err) ||
        s_string (root, "hostname", false, S_HOSTNAME_MAX, &msg->hostname, err))
        return -1;

    json_t *caps = json_object_get (root, "capabilities");
    if (caps && !json_is_null (caps)) {
        if (!json_is_array (caps) || json_array_size (caps) > S_LIST_MAX) {
            s_fail (err, "invalid_message",
                    "field 'capabilities' must be an array of at most %d strings", S_LIST_MAX);
            return -1;
        }
        for (size_t index = 0; index < json_array_size (caps); index++)
            if (!json_is_string (json_array_get (caps, index))) {
                s_fail (err, "invalid_message", "capabilities[%zu] must be a string", index);
                return -1;
            }
        msg->capabilities = caps;
    }
    json_t *labels = json_object_get (root, "labels");
    if (labels && !json_is_null (labels)) {
        if (!json_is_object (labels) || json_object_size (labels) > S_LIST_MAX) {
            s_fail (err, "invalid_message",
                    "field 'labels' must be an object of at most %d strings", S_LIST_MAX);
            return -1;
        }
        for (void *it = json_object_iter (labels); it; it = json_object_iter_next (labels, it))
            if (!json_is_string (json_object_iter_value (it))) {
                char quoted[48];
                s_fail (err, "invalid_message", "labels: value of '%s' must be a string",
                        s_quote (quoted, sizeof quoted, json_object_iter_key (it),
                                 json_object_iter_key_len (it)));
                return -1;
            }
        msg->labels = labels;
    }
    return 0;
}

static int
s_check_auth (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    return s_base64 (msg->root, "signature", &msg->signature, err);
}

static int
s_check_heartbeat (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    static const char *const statuses[] = {"online", "degraded", "maintenance", NULL};
    return s_enum (msg->root, "status", false, statuses, &msg->status, err);
}

static int
s_check_point (json_t *point, size_t index, vw_wire_error_t *err)
{
    if (!json_is_object (point)) {
        s_fail (err, "invalid_message", "points[%zu] must be an object", index);
        return -1;
    }
    json_t *ts = json_object_get (point, "ts");
    if (!json_is_integer (ts) || json_integer_value (ts) < 0) {
        s_fail (err, "invalid_message", "points[%zu].ts is required and must be an integer >= 0",
                index);
        return -1;
    }
    json_t *metrics = json_object_get (point, "metrics");
    if (!json_is_object (metrics)) {
        s_fail (err, "invalid_message", "points[%zu].metrics is required and must be an object",
                index);
        return -1;
    }
    size_t count = json_object_size (metrics);
    if (count < 1 || count > VW_WIRE_MAX_METRICS) {
        s_fail (err, "invalid_message", "points[%zu].metrics must hold 1..%d metrics, not %zu",
                index, VW_WIRE_MAX_METRICS, count);
        return -1;
    }
    char quoted[48];
    for (void *it = json_object_iter (metrics); it; it = json_object_iter_next (metrics, it)) {
        const char *name = json_object_iter_key (it);
        size_t namelen = json_object_iter_key_len (it);
        json_t *value = json_object_iter_value (it);
        //  A key with a NUL cannot reach here, so strlen-based checks are exact.
        if (namelen != strlen (name) || !vw_wire_valid_name (name, S_METRIC_NAME_MAX)) {
            s_fail (err, "invalid_message", "points[%zu].metrics: metric name '%s' is invalid",
                    index, s_quote (quoted, sizeof quoted, name, namelen));
            return -1;
        }
        if (!json_is_integer (value) &&
            !(json_is_real (value) && isfinite (json_real_value (value)))) {
            s_fail (err, "invalid_message",
                    "points[%zu].metrics: value of '%s' must be a finite number", index,
                    s_quote (quoted, sizeof quoted, name, namelen));
            return -1;
        }
    }
    return 0;
}

static int
s_check_telemetry (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    if (s_int (msg->root, "seq", true, 0, INT64_MAX, &msg->seq, err))
        return -1;
    err->seq = msg->seq;
    json_t *points = json_object_get (msg->root, "points");
    if (!json_is_array (points)) {
        s_fail (err, "invalid_message", "field 'points' is required and must be an array");
        return -1;
    }
    size_t count = json_array_size (points);
    if (count < 1 || count > VW_WIRE_MAX_POINTS) {
        s_fail (err, "invalid_message", "field 'points' must hold 1..%d points, not %zu",
                VW_WIRE_MAX_POINTS, count);
        return -1;
    }
    for (size_t index = 0; index < count; index++)
        if (s_check_point (json_array_get (points, index), index, err))
            return -1;
    msg->points = points;
    return 0;
}

static int
s_check_command_ack (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    return s_string (msg->root, "command_id", true, S_ID_MAX, &msg->command_id, err);
}

static int
s_check_command_progress (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    int64_t progress = -1;
    if (s_string (msg->root, "command_id", true, S_ID_MAX, &msg->command_id, err) ||
        s_int (msg->root, "progress", false, 0, 100, &progress, err) ||
        s_string (msg->root, "message", false, SIZE_MAX, &msg->message, err))
        return -1;
    msg->progress = (int) progress;
    return 0;
}

static int
s_check_command_result (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    static const char *const statuses[] = {"completed", "failed", NULL};
    if (s_string (msg->root, "command_id", true, S_ID_MAX, &msg->command_id, err) ||
        s_enum (msg->root, "status", true, statuses, &msg->status, err) ||
        s_string (msg->root, "error", false, SIZE_MAX, &msg->error, err) ||
        s_int (msg->root, "attempt", false, 1, INT64_MAX, &msg->attempt, err))
        return -1;
    //  Any JSON value, null included, is a result.
    msg->result = json_object_get (msg->root, "result");
    return 0;
}

static int
s_check_welcome (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    if (s_string (msg->root, "session_id", true, S_ID_MAX, &msg->session_id, err) ||
        s_int (msg->root, "heartbeat_interval_ms", true, 1, INT64_MAX, &msg->heartbeat_interval_ms,
               err) ||
        s_int (msg->root, "server_time", true, 0, INT64_MAX, &msg->server_time, err))
        return -1;
    return 0;
}

static int
s_check_challenge (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    return s_base64 (msg->root, "nonce", &msg->nonce, err);
}

static int
s_check_error (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    msg->seq = -1;
    if (s_int (msg->root, "seq", false, 0, INT64_MAX, &msg->seq, err) ||
        s_name (msg->root, "code", S_CODE_MAX, &msg->code, err) ||
        s_string (msg->root, "message", false, SIZE_MAX, &msg->message, err) ||
        s_int (msg->root, "retry_after_ms", false, 0, VW_WIRE_RETRY_AFTER_MAX_MS,
               &msg->retry_after_ms, err))
        return -1;
    return 0;
}

static int
s_check_command (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    json_t *root = msg->root;
    if (s_string (root, "command_id", true, S_ID_MAX, &msg->command_id, err) ||
        s_name (root, "command_type", S_ID_MAX, &msg->command_type, err))
        return -1;
    json_t *payload = json_object_get (root, "payload");
    if (!json_is_object (payload)) {
        s_fail (err, "invalid_message", "field 'payload' is required and must be an object");
        return -1;
    }
    msg->payload = payload;
    if (s_int (root, "timeout_ms", true, 1, INT64_MAX, &msg->timeout_ms, err) ||
        s_int (root, "attempt", true, 1, INT64_MAX, &msg->attempt, err))
        return -1;
    return 0;
}

static int
s_check_cancel (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    return s_check_command_ack (msg, err);
}

static int
s_check_telemetry_ack (vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    return s_int (msg->root, "seq", true, 0, INT64_MAX, &msg->seq, err);
}

typedef int check_fn_t (vw_wire_msg_t *msg, vw_wire_error_t *err);

static check_fn_t *s_checks[] = {
    [VW_WIRE_HELLO] = s_check_hello,
    [VW_WIRE_AUTH] = s_check_auth,
    [VW_WIRE_HEARTBEAT] = s_check_heartbeat,
    [VW_WIRE_TELEMETRY] = s_check_telemetry,
    [VW_WIRE_COMMAND_ACK] = s_check_command_ack,
    [VW_WIRE_COMMAND_PROGRESS] = s_check_command_progress,
    [VW_WIRE_COMMAND_RESULT] = s_check_command_result,
    [VW_WIRE_WELCOME] = s_check_welcome,
    [VW_WIRE_CHALLENGE] = s_check_challenge,
    [VW_WIRE_ERROR] = s_check_error,
    [VW_WIRE_COMMAND] = s_check_command,
    [VW_WIRE_CANCEL] = s_check_cancel,
    [VW_WIRE_TELEMETRY_ACK] = s_check_telemetry_ack,
};

int
vw_wire_decode (vw_wire_format_t format, const void *data, size_t size, vw_wire_msg_t *msg,
                vw_wire_error_t *err)
{
    assert (msg);
    vw_wire_error_t scratch;
    if (!err)
        err = &scratch;
    err->seq = -1;
    memset (msg, 0, sizeof (*msg));
    msg->root = vw_wire_parse (format, data, size, err);
    if (!msg->root)
        return -1;

    json_t *type = json_object_get (msg->root, "type");
    if (!json_is_string (type)) {
        s_fail (err, "invalid_message", "field 'type' is required and must be a string");
        vw_wire_msg_reset (msg);
        return -1;
    }
    msg->type = vw_wire_type_from_name (json_string_value (type));
    //  A type name with a NUL in it would match by prefix; JSON and our
    //  msgpack reader refuse NUL, but stay exact regardless.
    if (msg->type == VW_WIRE_UNKNOWN ||
        json_string_length (type) != strlen (json_string_value (type))) {
        char quoted[48];
        s_fail (
            err, "unknown_type", "unknown message type '%s'",
            s_quote (quoted, sizeof quoted, json_string_value (type), json_string_length (type)));
        vw_wire_msg_reset (msg);
        return -1;
    }
    msg->progress = -1;
    if (s_checks[msg->type](msg, err)) {
        vw_wire_msg_reset (msg);
        return -1;
    }
    err->code[0] = 0;
    err->message[0] = 0;
    err->seq = -1;
    return 0;
}

void
vw_wire_msg_reset (vw_wire_msg_t *msg)
{
    if (!msg)
        return;
    json_decref (msg->root);
    memset (msg, 0, sizeof (*msg));
}

//  --------------------------------------------------------------------------
//  Serialising

static int
s_serialize_json (const json_t *value, uint8_t **data, size_t *size)
{
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    //  First pass measures, second writes.
    size_t need = json_dumpb (value, NULL, 0, flags);
    if (need == 0)
        return -1;
    uint8_t *buffer = malloc (need);
    if (!buffer)
        return -1;
    if (json_dumpb (value, (char *) buffer, need, flags) != need) {
        free (buffer);
        return -1;
    }
    *data = buffer;
    *size = need;
    return 0;
}

static int
s_pack (msgpack_packer *pk, const json_t *value, int depth)
{
    if (depth > S_SERIALIZE_MAX_DEPTH)
        return -1;
    switch (json_typeof (value)) {
        case JSON_NULL: return msgpack_pack_nil (pk);
        case JSON_TRUE: return msgpack_pack_true (pk);
        case JSON_FALSE: return msgpack_pack_false (pk);
        case JSON_INTEGER: return msgpack_pack_int64 (pk, json_integer_value (value));
        case JSON_REAL: return msgpack_pack_double (pk, json_real_value (value));
        case JSON_STRING: {
            size_t len = json_string_length (value);
            if (len > UINT32_MAX)
                return -1;
            return msgpack_pack_str_with_body (pk, json_string_value (value), len);
        }
        case JSON_ARRAY: {
            size_t count = json_array_size (value);
            if (count > UINT32_MAX || msgpack_pack_array (pk, count))
                return -1;
            for (size_t index = 0; index < count; index++)
                if (s_pack (pk, json_array_get (value, index), depth + 1))
                    return -1;
            return 0;
        }
        case JSON_OBJECT: {
            size_t count = json_object_size (value);
            if (count > UINT32_MAX || msgpack_pack_map (pk, count))
                return -1;
            json_t *object = (json_t *) value;
            for (void *it = json_object_iter (object); it;
                 it = json_object_iter_next (object, it)) {
                size_t keylen = json_object_iter_key_len (it);
                if (keylen > UINT32_MAX ||
                    msgpack_pack_str_with_body (pk, json_object_iter_key (it), keylen) ||
                    s_pack (pk, json_object_iter_value (it), depth + 1))
                    return -1;
            }
            return 0;
        }
    }
    return -1;
}

static int
s_serialize_msgpack (const json_t *value, uint8_t **data, size_t *size)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    if (s_pack (&pk, value, 0) || sbuf.size == 0) {
        msgpack_sbuffer_destroy (&sbuf);
        return -1;
    }
    *size = sbuf.size;
    *data = (uint8_t *) msgpack_sbuffer_release (&sbuf);
    return 0;
}

int
vw_wire_serialize (vw_wire_format_t format, const json_t *value, uint8_t **data, size_t *size)
{
    assert (data);
    assert (size);
    *data = NULL;
    *size = 0;
    if (!value)
        return -1;
    if (format == VW_WIRE_JSON)
        return s_serialize_json (value, data, size);
    if (format == VW_WIRE_MSGPACK)
        return s_serialize_msgpack (value, data, size);
    return -1;
}

//  --------------------------------------------------------------------------
//  Names

const char *
vw_wire_type_name (vw_wire_type_t type)
{
    if ((size_t) type >= S_TYPE_COUNT)
        return s_type_names[VW_WIRE_UNKNOWN];
    return s_type_names[type];
}

vw_wire_type_t
vw_wire_type_from_name (const char *name)
{
    if (!name)
        return VW_WIRE_UNKNOWN;
    for (size_t i = 1; i < S_TYPE_COUNT; i++)
        if (strcmp (name, s_type_names[i]) == 0)
            return (vw_wire_type_t) i;
    return VW_WIRE_UNKNOWN;
}

bool
vw_wire_valid_name (const char *s, size_t maxlen)
{
    if (!s)
        return false;
    size_t len = 0;
    for (; s[len]; len++) {
        char c = s[len];
        if (len >= maxlen)
            return false;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return len > 0;
}

bool
vw_wire_valid_id (const char *s)
{
    if (!s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
        return false;
    return vw_wire_valid_name (s, VW_ID_MAX);
}

//  --------------------------------------------------------------------------
//  Builders. Each validates its arguments by the rules the decoder applies,
//  so whatever we build our own agent can decode; NULL on a bad argument.

//  Builds {"type": type} ready for more fields.
static json_t *
s_new (vw_wire_type_t type)
{
    json_t *object = json_object ();
    if (object && json_object_set_new (object, "type", json_string (vw_wire_type_name (type)))) {
        json_decref (object);
        return NULL;
    }
    return object;
}

//  Adds a field (steals value). On failure destroys the object: chains stay flat.
static json_t *
s_add (json_t *object, const char *key, json_t *value)
{
    if (!object || !value || json_object_set_new (object, key, value)) {
        json_decref (object);
        json_decref (value);
        return NULL;
    }
    return object;
}

static bool
s_bounded (const char *s, size_t maxlen)
{
    return s && *s && strlen (s) <= maxlen;
}

json_t *
vw_wire_welcome (const char *session_id, int64_t heartbeat_interval_ms, int64_t server_time)
{
    if (!s_bounded (session_id, S_ID_MAX) || heartbeat_interval_ms < 1 || server_time < 0)
        return NULL;
    json_t *object = s_new (VW_WIRE_WELCOME);
    object = s_add (object, "session_id", json_string (session_id));
    object = s_add (object, "heartbeat_interval_ms", json_integer (heartbeat_interval_ms));
    return s_add (object, "server_time", json_integer (server_time));
}

json_t *
vw_wire_error (const char *code, const char *message)
{
    if (!vw_wire_valid_name (code, S_CODE_MAX))
        return NULL;
    json_t *object = s_new (VW_WIRE_ERROR);
    object = s_add (object, "code", json_string (code));
    //  The message is optional on the wire; without one the frame has none.
    if (message)
        object = s_add (object, "message", json_string (message));
    return object;
}

json_t *
vw_wire_error_retry (const char *code, const char *message, int64_t retry_after_ms)
{
    if (retry_after_ms < 0 || retry_after_ms > VW_WIRE_RETRY_AFTER_MAX_MS)
        return NULL;
    json_t *object = vw_wire_error (code, message);
    return object ? s_add (object, "retry_after_ms", json_integer (retry_after_ms)) : NULL;
}

json_t *
vw_wire_challenge (const char *nonce_b64)
{
    if (!nonce_b64 || strlen (nonce_b64) > S_BASE64_MAX ||
        !s_is_base64 (nonce_b64, strlen (nonce_b64)))
        return NULL;
    return s_add (s_new (VW_WIRE_CHALLENGE), "nonce", json_string (nonce_b64));
}

json_t *
vw_wire_command (const char *command_id, const char *command_type, json_t *payload,
                 int64_t timeout_ms, int64_t attempt)
{
    if (!s_bounded (command_id, S_ID_MAX) || !vw_wire_valid_name (command_type, S_ID_MAX) ||
        timeout_ms < 1 || attempt < 1)
        return NULL;
    //  The payload sits one level below the frame, inside the depth limit.
    if (payload && (!json_is_object (payload) || s_too_deep (payload, 1, VW_WIRE_MAX_DEPTH)))
        return NULL;
    json_t *object = s_new (VW_WIRE_COMMAND);
    object = s_add (object, "command_id", json_string (command_id));
    object = s_add (object, "command_type", json_string (command_type));
    object = s_add (object, "payload", payload ? json_deep_copy (payload) : json_object ());
    object = s_add (object, "timeout_ms", json_integer (timeout_ms));
    return s_add (object, "attempt", json_integer (attempt));
}

json_t *
vw_wire_cancel (const char *command_id)
{
    if (!s_bounded (command_id, S_ID_MAX))
        return NULL;
    return s_add (s_new (VW_WIRE_CANCEL), "command_id", json_string (command_id));
}

json_t *
vw_wire_telemetry_ack (int64_t seq)
{
    if (seq < 0)
        return NULL;
    return s_add (s_new (VW_WIRE_TELEMETRY_ACK), "seq", json_integer (seq));
}
