/*  vw_points - see vw_points.h. */
#include "vw_points.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_NAME_MAX   64
#define S_VALUES_MAX 256                 //  metrics in one point (vw_wire's limit)
#define S_INT_MAX    9007199254740992.0  //  2^53

size_t
vw_varint_put (uint8_t *out, uint64_t value)
{
    size_t n = 0;
    while (value >= 0x80) {
        out[n++] = (uint8_t) (value | 0x80);
        value >>= 7;
    }
    out[n++] = (uint8_t) value;
    return n;
}

int
vw_varint_get (const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    uint64_t v = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t byte = *(*p)++;
        if (shift == 63 && byte > 1)
            return -1;  //  over 64 bits
        v |= (uint64_t) (byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *value = v;
            return 0;
        }
    }
    return -1;
}

//  A growing output buffer; `failed` once an allocation failed.
typedef struct {
    uint8_t *data;
    size_t size, cap;
    bool failed;
} s_buf_t;

static uint8_t *
s_room (s_buf_t *buf, size_t need)
{
    if (buf->failed)
        return NULL;
    if (buf->size + need > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 256;
        while (cap < buf->size + need)
            cap *= 2;
        uint8_t *data = (uint8_t *) realloc (buf->data, cap);
        if (!data) {
            buf->failed = true;
            return NULL;
        }
        buf->data = data;
        buf->cap = cap;
    }
    return buf->data + buf->size;
}

static void
s_put_varint (s_buf_t *buf, uint64_t value)
{
    uint8_t *at = s_room (buf, 10);
    if (at)
        buf->size += vw_varint_put (at, value);
}

static const double s_pow10[9] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};

size_t
vw_number_put (uint8_t *out, double value)
{
    if (value == floor (value) && fabs (value) <= S_INT_MAX)
        return vw_varint_put (out, vw_zigzag ((int64_t) value) << 1);
    //  A short decimal (0.31, 12.5): the integer m with m / 10^k == value
    //  exactly, for the smallest k up to 8.
    if (fabs (value) < S_INT_MAX / 1e8)
        for (int k = 1; k <= 8; k++) {
            double m = round (value * s_pow10[k]);
            if (m != 0 && m / s_pow10[k] == value)
                return vw_varint_put (
                    out, (((vw_zigzag ((int64_t) m) << 3) | (uint64_t) (k - 1)) << 1) | 1);
        }
    uint64_t bits;
    memcpy (&bits, &value, sizeof bits);
    out[0] = 1;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t) (bits >> (8 * i));
    return 9;
}

int
vw_number_get (const uint8_t **p, const uint8_t *end, double *value)
{
    uint64_t v;
    if (vw_varint_get (p, end, &v))
        return -1;
    if (v == 1) {
        if (end - *p < 8)
            return -1;
        uint64_t bits = 0;
        for (int b = 0; b < 8; b++)
            bits |= (uint64_t) (*p)[b] << (8 * b);
        *p += 8;
        memcpy (value, &bits, sizeof bits);
        return isfinite (*value) ? 0 : -1;
    }
    //  A decimal m / 10^k, or an integer.
    int64_t m = vw_unzigzag (v & 1 ? v >> 4 : v >> 1);
    if (m > (int64_t) S_INT_MAX || m < -(int64_t) S_INT_MAX)
        return -1;
    *value = v & 1 ? (double) m / s_pow10[((v >> 1) & 7) + 1] : (double) m;
    return 0;
}

static void
s_put_number (s_buf_t *buf, double value)
{
    uint8_t *at = s_room (buf, 10);
    if (at)
        buf->size += vw_number_put (at, value);
}

int
vw_points_pack (json_t *points, uint8_t **out, size_t *size, vw_points_info_t *info)
{
    *out = NULL;
    *size = 0;
    memset (info, 0, sizeof *info);
    if (!json_is_array (points) || json_array_size (points) == 0)
        return -1;
    //  The names, in order of first appearance: name -> index.
    json_t *index = json_object ();
    json_t *order = json_array ();
    s_buf_t body = {NULL, 0, 0, false};
    int rc = index && order ? 0 : -1;
    int64_t prev = 0;
    size_t at;
    json_t *point;
    json_array_foreach (points, at, point)
    {
        if (rc)
            break;
        json_t *ts = json_object_get (point, "ts");
        json_t *metrics = json_object_get (point, "metrics");
        if (!json_is_integer (ts) || !json_is_object (metrics) || json_object_size (metrics) == 0 ||
            json_object_size (metrics) > S_VALUES_MAX) {
            rc = -1;
            break;
        }
        int64_t t = json_integer_value (ts);
        if (info->points == 0 || t < info->ts_min)
            info->ts_min = t;
        if (info->points == 0 || t > info->ts_max)
            info->ts_max = t;
        info->points++;
        s_put_varint (&body, vw_zigzag (t - prev));
        prev = t;
        s_put_varint (&body, json_object_size (metrics));
        const char *name;
        json_t *value;
        json_object_foreach (metrics, name, value)
        {
            if (!json_is_number (value) || !isfinite (json_number_value (value)) ||
                strlen (name) > S_NAME_MAX || !*name) {
                rc = -1;
                break;
            }
            json_t *known = json_object_get (index, name);
            size_t i = known ? (size_t) json_integer_value (known) : json_array_size (order);
            if (!known && (json_object_set_new (index, name, json_integer ((json_int_t) i)) ||
                           json_array_append_new (order, json_string (name)))) {
                rc = -1;
                break;
            }
            s_put_varint (&body, i);
            s_put_number (&body, json_number_value (value));
            info->values++;
        }
    }
    s_buf_t head = {NULL, 0, 0, false};
    if (rc == 0) {
        uint8_t *v = s_room (&head, 1);
        if (v) {
            *v = VW_POINTS_VERSION;
            head.size++;
        }
        s_put_varint (&head, json_array_size (order));
        json_t *name;
        json_array_foreach (order, at, name)
        {
            size_t len = json_string_length (name);
            s_put_varint (&head, len);
            uint8_t *to = s_room (&head, len);
            if (to) {
                memcpy (to, json_string_value (name), len);
                head.size += len;
            }
        }
        s_put_varint (&head, info->points);
        uint8_t *to = s_room (&head, body.size);
        if (to && body.size) {
            memcpy (to, body.data, body.size);
            head.size += body.size;
        }
        rc = head.failed || body.failed ? -1 : 0;
    }
    json_decref (index);
    json_decref (order);
    free (body.data);
    if (rc) {
        free (head.data);
        memset (info, 0, sizeof *info);
        return -1;
    }
    *out = head.data;
    *size = head.size;
    return 0;
}

static bool
s_name_ok (const uint8_t *name, size_t len)
{
    if (len < 1 || len > S_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

int
vw_points_walk (const uint8_t *data, size_t size, vw_points_fn *fn, void *arg,
                vw_points_info_t *info)
{
    const uint8_t *p = data, *end = data + size;
    if (size < 1 || *p++ != VW_POINTS_VERSION)
        return -1;
    uint64_t names;
    //  Each name takes at least two bytes.
    if (vw_varint_get (&p, end, &names) || names > (uint64_t) (end - p) / 2)
        return -1;
    //  Where each name starts: the names are read once, up front.
    const uint8_t **name_at = (const uint8_t **) malloc ((names ? names : 1) * sizeof *name_at);
    size_t *name_len = (size_t *) malloc ((names ? names : 1) * sizeof *name_len);
    int rc = name_at && name_len ? 0 : -1;
    for (uint64_t i = 0; rc == 0 && i < names; i++) {
        uint64_t len;
        if (vw_varint_get (&p, end, &len) || len > (uint64_t) (end - p) || !s_name_ok (p, len))
            rc = -1;
        else {
            name_at[i] = p;
            name_len[i] = (size_t) len;
            p += len;
        }
    }
    vw_points_info_t seen = {0, 0, 0, 0};
    uint64_t points = 0;
    //  A point takes at least four bytes.
    if (rc == 0 &&
        (vw_varint_get (&p, end, &points) || points == 0 || points > (uint64_t) (end - p) / 4))
        rc = -1;
    int64_t ts = 0;
    for (uint64_t n = 0; rc == 0 && n < points; n++) {
        uint64_t delta, count;
        if (vw_varint_get (&p, end, &delta) || vw_varint_get (&p, end, &count) || count == 0 ||
            count > S_VALUES_MAX) {
            rc = -1;
            break;
        }
        //  Wraps only on garbage; the result is still just a number.
        ts = (int64_t) ((uint64_t) ts + (uint64_t) vw_unzigzag (delta));
        if (ts < 0) {
            rc = -1;
            break;
        }
        if (seen.points == 0 || ts < seen.ts_min)
            seen.ts_min = ts;
        if (seen.points == 0 || ts > seen.ts_max)
            seen.ts_max = ts;
        seen.points++;
        for (uint64_t k = 0; rc == 0 && k < count; k++) {
            uint64_t i;
            vw_points_value_t value = {NULL, 0, 0, ts, 0};
            if (vw_varint_get (&p, end, &i) || i >= names ||
                vw_number_get (&p, end, &value.value)) {
                rc = -1;
                break;
            }
            value.name = (const char *) name_at[i];
            value.name_len = name_len[i];
            value.name_index = (uint32_t) i;
            seen.values++;
            if (fn)
                rc = fn (arg, &value);
        }
    }
    if (rc == 0 && p != end)
        rc = -1;  //  trailing bytes: not a frame this version wrote
    free (name_at);
    free (name_len);
    if (rc == 0 && info)
        *info = seen;
    return rc;
}
