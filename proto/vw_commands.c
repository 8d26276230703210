/*  vw_commands - see vw_commands.h.

    The built-in types are written in the schema file's own format and go
    through the same loader as operator files, so both kinds of type obey
    exactly the same rules and there is one validator to get right.
*/
#include "vw_commands.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Longest type or field name; also how much of a client-supplied name an
//  error message quotes.
#define S_NAME_MAX 64
//  A clipped name: S_NAME_MAX characters, "..." and the terminator.
#define S_CLIP_SIZE (S_NAME_MAX + 4)

typedef enum {
    S_STRING,
    S_INTEGER,
    S_NUMBER,
    S_BOOLEAN,
    S_OBJECT,
    S_ARRAY,
    S_ARRAY_STRING,
    S_KINDS
} s_kind_t;

static const char *const s_kind_names[S_KINDS] = {"string", "integer", "number",       "boolean",
                                                  "object", "array",   "array<string>"};

typedef struct {
    char *name;
    char *description;  //  NULL if none
    s_kind_t kind;
    bool required;
    bool has_min, has_max;  //  integer (imin/imax) and number (dmin/dmax)
    json_int_t imin, imax;
    double dmin, dmax;
    bool has_min_length, has_max_length;  //  string, in characters
    size_t min_length, max_length;
} s_field_t;

typedef struct {
    char *name;
    char *description;  //  NULL if none
    bool builtin;
    bool additional;    //  true: fields not listed are let through
    s_field_t *fields;  //  sorted by name
    size_t nfields;
} s_type_t;

struct vw_commands_t {
    s_type_t **types;  //  sorted by name, for bsearch and vw_commands_types
    size_t ntypes;
};

//  SPEC §5's built-in types, in the schema file format.
static const char s_builtin_schema[] =
    "{\"types\": {"
    " \"ping\": {\"description\": \"liveness check: the agent answers at once\","
    "  \"fields\": {}},"
    " \"exec\": {\"description\": \"run a program on the gateway\", \"fields\": {"
    "  \"cmd\": {\"type\": \"string\", \"required\": true, \"min_length\": 1,"
    "   \"description\": \"the program to run\"},"
    "  \"args\": {\"type\": \"array<string>\", \"description\": \"its arguments\"}}},"
    " \"restart_service\": {\"description\": \"restart a service on the gateway\","
    "  \"fields\": {"
    "  \"name\": {\"type\": \"string\", \"required\": true, \"min_length\": 1,"
    "   \"description\": \"the service's name\"}}},"
    " \"update_config\": {\"description\": \"replace the agent's configuration\","
    "  \"fields\": {"
    "  \"config\": {\"type\": \"object\", \"required\": true,"
    "   \"description\": \"the new configuration\"}}},"
    " \"collect_logs\": {\"description\": \"send back recent log lines\", \"fields\": {"
    "  \"since_ms\": {\"type\": \"integer\", \"min\": 0,"
    "   \"description\": \"only lines from this time on (ms since the epoch)\"},"
    "  \"lines\": {\"type\": \"integer\", \"min\": 1, \"max\": 1000000,"
    "   \"description\": \"at most this many lines\"}}},"
    " \"upgrade\": {\"description\": \"install another agent version\", \"fields\": {"
    "  \"version\": {\"type\": \"string\", \"required\": true, \"min_length\": 1,"
    "   \"description\": \"the version to install\"},"
    "  \"url\": {\"type\": \"string\", \"required\": true, \"min_length\": 1,"
    "   \"description\": \"where to download it\"}}}"
    "}}";

//  ---------------------------------------------------------------------
//  Small helpers

static void s_fail (vw_api_error_t *err, int status, const char *code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_fail (vw_api_error_t *err, int status, const char *code, const char *fmt, ...)
{
    err->status = status;
    err->code = code;
    va_list args;
    va_start (args, fmt);
    vsnprintf (err->message, sizeof err->message, fmt, args);
    va_end (args);
}

static void s_load_fail (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_load_fail (char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list args;
    va_start (args, fmt);
    vsnprintf (err, errlen, fmt, args);
    va_end (args);
}

//  Copies an untrusted name for quoting in a message: printable ASCII only
//  (anything else becomes '?', so a message is always valid UTF-8 and never
//  cut inside a character), at most S_NAME_MAX characters, then "...".
static void
s_clip (char dst[S_CLIP_SIZE], const char *src)
{
    size_t i = 0;
    for (; src[i] && i < S_NAME_MAX; i++)
        dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
    dst[i] = 0;
    if (src[i])
        memcpy (dst + i, "...", 4);
}

static bool
s_valid_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > S_NAME_MAX)
        return false;
    if (!(name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z') ||
          (name[0] >= 'A' && name[0] <= 'Z')))
        return false;
    return strspn (name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
           len;
}

//  Characters (Unicode code points) of a UTF-8 string: jansson only holds
//  valid UTF-8, so every byte that is not a continuation byte starts one.
static size_t
s_utf8_length (const json_t *string)
{
    const unsigned char *s = (const unsigned char *) json_string_value (string);
    size_t bytes = json_string_length (string), n = 0;
    for (size_t i = 0; i < bytes; i++)
        n += (s[i] & 0xC0) != 0x80;
    return n;
}

static const char *
s_json_kind (const json_t *value)
{
    switch (json_typeof (value)) {
        case JSON_OBJECT: return "an object";
        case JSON_ARRAY: return "an array";
        case JSON_STRING: return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL: return "a number";
        case JSON_TRUE:
        case JSON_FALSE: return "a boolean";
        case JSON_NULL: return "null";
    }
    return "a JSON value";
}

static const char *
s_type_name_at (const void *self, size_t i)
{
    return ((const vw_commands_t *) self)->types[i]->name;
}

static const char *
s_field_name_at (const void *type, size_t i)
{
    return ((const s_type_t *) type)->fields[i].name;
}

//  Appends " (label: a, b, c)" to err->message; a list that does not fit
//  ends in "...)" rather than being cut in the middle of a name.
static void
s_append_names (vw_api_error_t *err, const char *label, size_t count,
                const char *(*name_at) (const void *, size_t), const void *owner)
{
    char *buf = err->message;
    size_t size = sizeof err->message;
    size_t len = strlen (buf);
    const size_t reserve = sizeof ", ...)";
    if (count == 0 || len + strlen (label) + 4 + reserve > size)
        return;
    len += (size_t) snprintf (buf + len, size - len, " (%s: ", label);
    for (size_t i = 0; i < count; i++) {
        const char *sep = i ? ", " : "";
        const char *name = name_at (owner, i);
        if (len + strlen (sep) + strlen (name) + reserve > size) {
            snprintf (buf + len, size - len, "%s...)", sep);
            return;
        }
        len += (size_t) snprintf (buf + len, size - len, "%s%s", sep, name);
    }
    snprintf (buf + len, size - len, ")");
}

static int
s_type_compare (const void *a, const void *b)
{
    return strcmp ((*(s_type_t *const *) a)->name, (*(s_type_t *const *) b)->name);
}

static int
s_field_compare (const void *a, const void *b)
{
    return strcmp (((const s_field_t *) a)->name, ((const s_field_t *) b)->name);
}

static const s_type_t *
s_find_type (const vw_commands_t *self, const char *name)
{
    if (self->ntypes == 0)
        return NULL;
    s_type_t key = {.name = (char *) name};
    s_type_t *keyp = &key;
    s_type_t **found =
        bsearch (&keyp, self->types, self->ntypes, sizeof self->types[0], s_type_compare);
    return found ? *found : NULL;
}

static const s_field_t *
s_find_field (const s_type_t *type, const char *name)
{
    if (type->nfields == 0)
        return NULL;  //  bsearch may not take a NULL array
    s_field_t key = {.name = (char *) name};
    return bsearch (&key, type->fields, type->nfields, sizeof type->fields[0], s_field_compare);
}

static void
s_type_destroy (s_type_t **self_p)
{
    if (!*self_p)
        return;
    s_type_t *self = *self_p;
    for (size_t i = 0; i < self->nfields; i++) {
        free (self->fields[i].name);
        free (self->fields[i].description);
    }
    free (self->fields);
    free (self->description);
    free (self->name);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  Loading a schema

//  True if every key of `object` is in `allowed` (NULL-terminated);
//  otherwise *bad is the first unknown key.
static bool
s_only_keys (json_t *object, const char *const *allowed, const char **bad)
{
    const char *key;
    json_t *value;
    json_object_foreach (object, key, value)
    {
        const char *const *a = allowed;
        while (*a && strcmp (*a, key))
            a++;
        if (!*a) {
            *bad = key;
            return false;
        }
    }
    return true;
}

//  Reads an optional "description" string of `spec` into *out.
static int
s_parse_description (json_t *spec, char **out, const char *origin, const char *where, char *err,
                     size_t errlen)
{
    json_t *value = json_object_get (spec, "description");
    if (!value)
        return 0;
    if (!json_is_string (value)) {
        s_load_fail (err, errlen, "%s: %s.description: must be a string", origin, where);
        return -1;
    }
    *out = strdup (json_string_value (value));
    if (!*out) {
        s_load_fail (err, errlen, "%s: %s: out of memory", origin, where);
        return -1;
    }
    return 0;
}

//  Reads "min"/"max" (integer and number fields).
static int
s_parse_bounds (json_t *spec, s_field_t *field, const char *origin, const char *where, char *err,
                size_t errlen)
{
    json_t *min = json_object_get (spec, "min");
    json_t *max = json_object_get (spec, "max");
    if (!min && !max)
        return 0;
    const char *which = min ? "min" : "max";
    if (field->kind != S_INTEGER && field->kind != S_NUMBER) {
        s_load_fail (err, errlen, "%s: %s.%s: only integer and number fields take min and max",
                     origin, where, which);
        return -1;
    }
    json_t *bounds[2] = {min, max};
    for (int i = 0; i < 2; i++) {
        json_t *value = bounds[i];
        if (!value)
            continue;
        which = i ? "max" : "min";
        if (field->kind == S_INTEGER && !json_is_integer (value)) {
            s_load_fail (err, errlen, "%s: %s.%s: must be an integer for an integer field", origin,
                         where, which);
            return -1;
        }
        if (!json_is_number (value)) {
            s_load_fail (err, errlen, "%s: %s.%s: must be a number", origin, where, which);
            return -1;
        }
        if (i == 0) {
            field->has_min = true;
            field->imin = field->kind == S_INTEGER ? json_integer_value (value) : 0;
            field->dmin = json_number_value (value);
        }
        else {
            field->has_max = true;
            field->imax = field->kind == S_INTEGER ? json_integer_value (value) : 0;
            field->dmax = json_number_value (value);
        }
    }
    bool crossed =
        field->has_min && field->has_max &&
        (field->kind == S_INTEGER ? field->imin > field->imax : field->dmin > field->dmax);
    if (crossed && field->kind == S_INTEGER)
        s_load_fail (err, errlen,
                     "%s: %s: min (%" JSON_INTEGER_FORMAT
                     ") is greater than max (%" JSON_INTEGER_FORMAT ")",
                     origin, where, field->imin, field->imax);
    else if (crossed)
        s_load_fail (err, errlen, "%s: %s: min (%.15g) is greater than max (%.15g)", origin, where,
                     field->dmin, field->dmax);
    return crossed ? -1 : 0;
}

//  Reads "min_length"/"max_length" (string fields).
static int
s_parse_lengths (json_t *spec, s_field_t *field, const char *origin, const char *where, char *err,
                 size_t errlen)
{
    json_t *min = json_object_get (spec, "min_length");
    json_t *max = json_object_get (spec, "max_length");
    if (!min && !max)
        return 0;
    if (field->kind != S_STRING) {
        s_load_fail (err, errlen, "%s: %s.%s: only string fields take min_length and max_length",
                     origin, where, min ? "min_length" : "max_length");
        return -1;
    }
    json_t *bounds[2] = {min, max};
    for (int i = 0; i < 2; i++) {
        json_t *value = bounds[i];
        if (!value)
            continue;
        if (!json_is_integer (value) || json_integer_value (value) < 0) {
            s_load_fail (err, errlen, "%s: %s.%s: must be an integer >= 0", origin, where,
                         i ? "max_length" : "min_length");
            return -1;
        }
        if (i == 0) {
            field->has_min_length = true;
            field->min_length = (size_t) json_integer_value (value);
        }
        else {
            field->has_max_length = true;
            field->max_length = (size_t) json_integer_value (value);
        }
    }
    if (field->has_min_length && field->has_max_length && field->min_length > field->max_length) {
        s_load_fail (err, errlen, "%s: %s: min_length (%zu) is greater than max_length (%zu)",
                     origin, where, field->min_length, field->max_length);
        return -1;
    }
    return 0;
}

static int
s_parse_field (const char *origin, const char *tname, const char *fname, json_t *spec,
               s_field_t *field, char *err, size_t errlen)
{
    static const char *const allowed[] = {"type",       "required",   "min",         "max",
                                          "min_length", "max_length", "description", NULL};
    char where[2 * S_CLIP_SIZE + 16];
    char clipped[S_CLIP_SIZE];
    s_clip (clipped, fname);
    snprintf (where, sizeof where, "types.%s.fields.%s", tname, clipped);
    if (!s_valid_name (fname)) {
        s_load_fail (err, errlen,
                     "%s: %s: a field name must be 1-%d characters of A-Z a-z 0-9 _ . - "
                     "starting with a letter or '_'",
                     origin, where, S_NAME_MAX);
        return -1;
    }
    if (!json_is_object (spec)) {
        s_load_fail (err, errlen, "%s: %s: must be an object such as {\"type\": \"string\"}",
                     origin, where);
        return -1;
    }
    const char *bad = NULL;
    if (!s_only_keys (spec, allowed, &bad)) {
        s_clip (clipped, bad);
        s_load_fail (err, errlen,
                     "%s: %s: unknown key '%s' (expected type, required, min, max, "
                     "min_length, max_length, description)",
                     origin, where, clipped);
        return -1;
    }
    field->name = strdup (fname);
    if (!field->name) {
        s_load_fail (err, errlen, "%s: %s: out of memory", origin, where);
        return -1;
    }
    json_t *kind = json_object_get (spec, "type");
    if (!json_is_string (kind)) {
        s_load_fail (err, errlen,
                     "%s: %s.type: is required: one of string, integer, number, boolean, "
                     "object, array, array<string>",
                     origin, where);
        return -1;
    }
    size_t k = 0;
    while (k < S_KINDS && strcmp (s_kind_names[k], json_string_value (kind)))
        k++;
    if (k == S_KINDS) {
        s_clip (clipped, json_string_value (kind));
        s_load_fail (err, errlen,
                     "%s: %s.type: unknown type '%s' (expected string, integer, number, "
                     "boolean, object, array or array<string>)",
                     origin, where, clipped);
        return -1;
    }
    field->kind = (s_kind_t) k;
    json_t *required = json_object_get (spec, "required");
    if (required && !json_is_boolean (required)) {
        s_load_fail (err, errlen, "%s: %s.required: must be true or false", origin, where);
        return -1;
    }
    field->required = json_is_true (required);
    if (s_parse_bounds (spec, field, origin, where, err, errlen) ||
        s_parse_lengths (spec, field, origin, where, err, errlen) ||
        s_parse_description (spec, &field->description, origin, where, err, errlen))
        return -1;
    return 0;
}

//  One type of a schema; NULL with err set if its entry is invalid.
static s_type_t *
s_parse_type (const char *origin, const char *name, json_t *spec, bool builtin, char *err,
              size_t errlen)
{
    static const char *const allowed[] = {"fields", "additional", "description", NULL};
    char where[S_CLIP_SIZE + 8];
    char clipped[S_CLIP_SIZE];
    s_clip (clipped, name);
    snprintf (where, sizeof where, "types.%s", clipped);
    if (!s_valid_name (name)) {
        s_load_fail (err, errlen,
                     "%s: %s: a type name must be 1-%d characters of A-Z a-z 0-9 _ . - "
                     "starting with a letter or '_'",
                     origin, where, S_NAME_MAX);
        return NULL;
    }
    if (!json_is_object (spec)) {
        s_load_fail (err, errlen,
                     "%s: %s: must be an object such as {\"fields\": {...}, \"additional\": "
                     "false}",
                     origin, where);
        return NULL;
    }
    const char *bad = NULL;
    if (!s_only_keys (spec, allowed, &bad)) {
        s_clip (clipped, bad);
        s_load_fail (err, errlen,
                     "%s: %s: unknown key '%s' (expected fields, additional, description)", origin,
                     where, clipped);
        return NULL;
    }
    json_t *fields = json_object_get (spec, "fields");
    if (fields && !json_is_object (fields)) {
        s_load_fail (err, errlen, "%s: %s.fields: must be an object of fields", origin, where);
        return NULL;
    }
    json_t *additional = json_object_get (spec, "additional");
    if (additional && !json_is_boolean (additional)) {
        s_load_fail (err, errlen, "%s: %s.additional: must be true or false", origin, where);
        return NULL;
    }
    s_type_t *self = calloc (1, sizeof *self);
    if (!self || !(self->name = strdup (name)))
        goto oom;
    self->builtin = builtin;
    self->additional = json_is_true (additional);
    self->nfields = json_object_size (fields);
    if (self->nfields && !(self->fields = calloc (self->nfields, sizeof *self->fields)))
        goto oom;
    size_t i = 0;
    const char *fname;
    json_t *fspec;
    json_object_foreach (fields, fname, fspec)
    {
        if (s_parse_field (origin, self->name, fname, fspec, &self->fields[i++], err, errlen))
            goto fail;
    }
    if (s_parse_description (spec, &self->description, origin, where, err, errlen))
        goto fail;
    if (self->nfields)
        qsort (self->fields, self->nfields, sizeof *self->fields, s_field_compare);
    return self;
oom:
    s_load_fail (err, errlen, "%s: %s: out of memory", origin, where);
fail:
    if (self && !self->fields)
        self->nfields = 0;
    s_type_destroy (&self);
    return NULL;
}

//  Adds the types of a parsed schema document; all or nothing.
static int
s_add_schema (vw_commands_t *self, json_t *root, const char *origin, bool builtin, char *err,
              size_t errlen)
{
    static const char *const allowed[] = {"types", NULL};
    const char *bad = NULL;
    char clipped[S_CLIP_SIZE];
    if (!json_is_object (root)) {
        s_load_fail (err, errlen, "%s: the top level must be an object {\"types\": {...}}", origin);
        return -1;
    }
    if (!s_only_keys (root, allowed, &bad)) {
        s_clip (clipped, bad);
        s_load_fail (err, errlen, "%s: unknown key '%s' at the top level (expected \"types\")",
                     origin, clipped);
        return -1;
    }
    json_t *types = json_object_get (root, "types");
    if (!json_is_object (types)) {
        s_load_fail (err, errlen, "%s: types: is required and must be an object of command types",
                     origin);
        return -1;
    }
    size_t count = json_object_size (types);
    if (count == 0)
        return 0;
    s_type_t **grown = realloc (self->types, (self->ntypes + count) * sizeof *grown);
    if (!grown) {
        s_load_fail (err, errlen, "%s: out of memory", origin);
        return -1;
    }
    self->types = grown;
    //  New types go after the current ones and only count once all parse.
    size_t added = 0;
    const char *name;
    json_t *spec;
    json_object_foreach (types, name, spec)
    {
        s_type_t *type = s_parse_type (origin, name, spec, builtin, err, errlen);
        if (!type)
            goto fail;
        self->types[self->ntypes + added++] = type;
        const s_type_t *known = s_find_type (self, name);
        if (known) {
            s_load_fail (err, errlen,
                         known->builtin ? "%s: types.%s: redefines the built-in command type"
                                        : "%s: types.%s: is already defined by an earlier "
                                          "schema file",
                         origin, name);
            goto fail;
        }
    }
    self->ntypes += added;
    qsort (self->types, self->ntypes, sizeof *self->types, s_type_compare);
    return 0;
fail:
    for (size_t i = 0; i < added; i++)
        s_type_destroy (&self->types[self->ntypes + i]);
    return -1;
}

//  ---------------------------------------------------------------------
//  Public API

vw_commands_t *
vw_commands_new (void)
{
    vw_commands_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    json_error_t jerr;
    json_t *root = json_loads (s_builtin_schema, JSON_REJECT_DUPLICATES, &jerr);
    char err[256];
    //  Only running out of memory can fail here: the text is a constant.
    if (!root || s_add_schema (self, root, "built-in schema", true, err, sizeof err))
        vw_commands_destroy (&self);
    json_decref (root);
    return self;
}

int
vw_commands_load (vw_commands_t *self, const char *path, char *err, size_t errlen)
{
    assert (self);
    assert (path);
    FILE *file = fopen (path, "r");
    if (!file) {
        s_load_fail (err, errlen, "%s: cannot open the command schema file: %s", path,
                     strerror (errno));
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadf (file, JSON_REJECT_DUPLICATES, &jerr);
    int read_errno = errno;
    //  jansson takes a read error (a directory: EISDIR) for the end of the
    //  file; say what really happened rather than "'{' expected".
    bool read_failed = ferror (file);
    fclose (file);
    if (read_failed) {
        json_decref (root);
        s_load_fail (err, errlen, "%s: cannot read the command schema file: %s", path,
                     strerror (read_errno));
        return -1;
    }
    if (!root) {
        if (jerr.line > 0)
            s_load_fail (err, errlen, "%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column,
                         jerr.text);
        else
            s_load_fail (err, errlen, "%s: not valid JSON: %s", path, jerr.text);
        return -1;
    }
    int rc = s_add_schema (self, root, path, false, err, errlen);
    json_decref (root);
    return rc;
}

void
vw_commands_destroy (vw_commands_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_commands_t *self = *self_p;
    for (size_t i = 0; i < self->ntypes; i++)
        s_type_destroy (&self->types[i]);
    free (self->types);
    free (self);
    *self_p = NULL;
}

//  What a field takes, for messages: "a non-empty string", "an integer
//  from 1 to 1000000", ...
static void
s_describe (const s_field_t *field, char *buf, size_t size)
{
    switch (field->kind) {
        case S_STRING: {
            size_t lo = field->has_min_length ? field->min_length : 0;
            if (!field->has_max_length && lo <= 1)
                snprintf (buf, size, "%s", lo ? "a non-empty string" : "a string");
            else if (!field->has_max_length)
                snprintf (buf, size, "a string of at least %zu characters", lo);
            else if (lo <= 1)
                snprintf (buf, size, "a %sstring of at most %zu characters", lo ? "non-empty " : "",
                          field->max_length);
            else
                snprintf (buf, size, "a string of %zu to %zu characters", lo, field->max_length);
            break;
        }
        case S_INTEGER:
            if (field->has_min && field->has_max)
                snprintf (buf, size,
                          "an integer from %" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT,
                          field->imin, field->imax);
            else if (field->has_min)
                snprintf (buf, size, "an integer >= %" JSON_INTEGER_FORMAT, field->imin);
            else if (field->has_max)
                snprintf (buf, size, "an integer <= %" JSON_INTEGER_FORMAT, field->imax);
            else
                snprintf (buf, size, "an integer");
            break;
        case S_NUMBER:
            if (field->has_min && field->has_max)
                snprintf (buf, size, "a number from %.15g to %.15g", field->dmin, field->dmax);
            else if (field->has_min)
                snprintf (buf, size, "a number >= %.15g", field->dmin);
            else if (field->has_max)
                snprintf (buf, size, "a number <= %.15g", field->dmax);
            else
                snprintf (buf, size, "a number");
            break;
        case S_BOOLEAN: snprintf (buf, size, "true or false"); break;
        case S_OBJECT: snprintf (buf, size, "an object"); break;
        case S_ARRAY: snprintf (buf, size, "an array"); break;
        case S_ARRAY_STRING: snprintf (buf, size, "an array of strings"); break;
        case S_KINDS: snprintf (buf, size, "?"); break;
    }
}

//  Checks one present field; false with err set if it does not match.
static bool
s_check_field (const s_field_t *field, const json_t *value, vw_api_error_t *err)
{
    bool ok = false;
    switch (field->kind) {
        case S_STRING:
            if (json_is_string (value)) {
                size_t n = s_utf8_length (value);
                ok = (!field->has_min_length || n >= field->min_length) &&
                     (!field->has_max_length || n <= field->max_length);
            }
            break;
        case S_INTEGER:
            if (json_is_integer (value)) {
                json_int_t n = json_integer_value (value);
                ok = (!field->has_min || n >= field->imin) && (!field->has_max || n <= field->imax);
            }
            break;
        case S_NUMBER:
            if (json_is_number (value)) {
                double n = json_number_value (value);
                ok = (!field->has_min || n >= field->dmin) && (!field->has_max || n <= field->dmax);
            }
            break;
        case S_BOOLEAN: ok = json_is_boolean (value); break;
        case S_OBJECT: ok = json_is_object (value); break;
        case S_ARRAY: ok = json_is_array (value); break;
        case S_ARRAY_STRING:
            if (json_is_array (value)) {
                for (size_t i = 0; i < json_array_size (value); i++)
                    if (!json_is_string (json_array_get (value, i))) {
                        s_fail (err, 422, "invalid_payload", "payload.%s[%zu] must be a string",
                                field->name, i);
                        return false;
                    }
                ok = true;
            }
            break;
        case S_KINDS: break;
    }
    if (!ok) {
        char what[96];
        s_describe (field, what, sizeof what);
        s_fail (err, 422, "invalid_payload", "payload.%s %smust be %s", field->name,
                field->required ? "is required and " : "", what);
    }
    return ok;
}

int
vw_commands_validate (const vw_commands_t *self, const char *type, const json_t *payload,
                      vw_api_error_t *err)
{
    assert (self);
    assert (err);
    if (!type) {
        s_fail (err, 400, "bad_request", "field 'type' is required and must be a string");
        s_append_names (err, "known", self->ntypes, s_type_name_at, self);
        return -1;
    }
    const s_type_t *t = s_find_type (self, type);
    if (!t) {
        char clipped[S_CLIP_SIZE];
        s_clip (clipped, type);
        s_fail (err, 422, "unknown_command_type", "unknown command type '%s'", clipped);
        s_append_names (err, "known", self->ntypes, s_type_name_at, self);
        return -1;
    }
    if (payload && json_is_null (payload))
        payload = NULL;
    if (payload && !json_is_object (payload)) {
        s_fail (err, 422, "invalid_payload", "payload must be an object, not %s",
                s_json_kind (payload));
        return -1;
    }
    if (payload && !t->additional) {
        //  jansson's iterator takes a non-const pointer; it only reads.
        json_t *object = (json_t *) payload;
        const char *key;
        json_t *value;
        json_object_foreach (object, key, value)
        {
            if (!s_find_field (t, key)) {
                char clipped[S_CLIP_SIZE];
                s_clip (clipped, key);
                s_fail (err, 422, "invalid_payload",
                        "payload.%s is not a field of command type '%s'%s", clipped, t->name,
                        t->nfields ? "" : ", which takes no fields");
                s_append_names (err, "fields", t->nfields, s_field_name_at, t);
                return -1;
            }
        }
    }
    for (size_t i = 0; i < t->nfields; i++) {
        const s_field_t *field = &t->fields[i];
        json_t *value = payload ? json_object_get (payload, field->name) : NULL;
        if (!value) {
            if (field->required) {
                char what[96];
                s_describe (field, what, sizeof what);
                s_fail (err, 422, "invalid_payload", "payload.%s is required and must be %s",
                        field->name, what);
                return -1;
            }
            continue;
        }
        if (!s_check_field (field, value, err))
            return -1;
    }
    return 0;
}

bool
vw_commands_has (const vw_commands_t *self, const char *type)
{
    assert (self);
    return type && s_find_type (self, type);
}

json_t *
vw_commands_types (const vw_commands_t *self)
{
    assert (self);
    json_t *names = json_array ();
    for (size_t i = 0; names && i < self->ntypes; i++)
        if (json_array_append_new (names, json_string (self->types[i]->name))) {
            json_decref (names);
            return NULL;
        }
    return names;
}

json_t *
vw_commands_schema (const vw_commands_t *self, const char *type)
{
    assert (self);
    const s_type_t *t = type ? s_find_type (self, type) : NULL;
    if (!t)
        return NULL;
    json_t *fields = json_object ();
    json_t *schema = json_object ();
    int rc = fields && schema ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < t->nfields; i++) {
        const s_field_t *f = &t->fields[i];
        json_t *spec = json_object ();
        rc |= json_object_set_new (fields, f->name, spec);
        rc |= json_object_set_new (spec, "type", json_string (s_kind_names[f->kind]));
        rc |= json_object_set_new (spec, "required", json_boolean (f->required));
        if (f->kind == S_INTEGER) {
            if (f->has_min)
                rc |= json_object_set_new (spec, "min", json_integer (f->imin));
            if (f->has_max)
                rc |= json_object_set_new (spec, "max", json_integer (f->imax));
        }
        else if (f->kind == S_NUMBER) {
            if (f->has_min)
                rc |= json_object_set_new (spec, "min", json_real (f->dmin));
            if (f->has_max)
                rc |= json_object_set_new (spec, "max", json_real (f->dmax));
        }
        if (f->has_min_length)
            rc |=
                json_object_set_new (spec, "min_length", json_integer ((json_int_t) f->min_length));
        if (f->has_max_length)
            rc |=
                json_object_set_new (spec, "max_length", json_integer ((json_int_t) f->max_length));
        if (f->description)
            rc |= json_object_set_new (spec, "description", json_string (f->description));
    }
    if (rc == 0 && t->description)
        rc |= json_object_set_new (schema, "description", json_string (t->description));
    if (rc == 0) {
        rc |= json_object_set (schema, "fields", fields);
        rc |= json_object_set_new (schema, "additional", json_boolean (t->additional));
        rc |= json_object_set_new (schema, "builtin", json_boolean (t->builtin));
    }
    json_decref (fields);
    if (rc) {
        json_decref (schema);
        return NULL;
    }
    return schema;
}
