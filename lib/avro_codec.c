/*
 * avro_codec.c - Avro binary encoding of inferq requests and results.
 *
 * Converts between framed Avro bytes and the json_t a JSON message would have
 * produced, for the two fixed records io.inferq.v1.Request and
 * io.inferq.v1.Result (schemas/request.avsc and schemas/result.avsc, embedded
 * at build time as ifq_schemas.h). Each record is described once, by a field
 * table below (name, type, optional or not); ifq_avro_new() checks that table
 * against the schema as avro-c parsed it, so an edited .avsc that the code
 * does not follow fails at start-up instead of producing wrong bytes.
 *
 * Decoding: our own reader, not avro-c's. avro-c 1.11.1 is unsafe on hostile
 * bytes: its string reader mallocs length+1 from the length prefix before
 * looking at the input (a prefix of 2^60 is a 2^60-byte allocation, a prefix
 * of -1 writes one byte before a zero-byte buffer), and Debian builds it
 * without THREADSAFE, so every avro_set_error() writes one global buffer. A
 * guard in front of avro_value_read() would have had to parse every datum
 * twice and agree with avro-c byte for byte. Instead the datum is read in a
 * single pass over the field tables with a bounds-checked zigzag varint
 * reader: a varint is at most 10 bytes and must fit 64 bits (32 for int);
 * every string length is checked against the bytes left before it is used,
 * so nothing is ever allocated from a length prefix; strings must be UTF-8
 * without NUL bytes; union branches must be 0 or 1; map block counts and
 * sizes are checked and the entries capped at IFQ_AVRO_MAX_ENTRIES; the datum
 * must end exactly at the end of the message. Nesting is fixed by the tables,
 * so nothing recurses on input. JSON texts inside the datum are parsed with
 * jansson (depth-limited) and must be objects.
 *
 * Encoding: avro-c. The JSON is checked against the same tables first (type,
 * required fields, no unknown fields, no NUL bytes), then copied into an
 * avro-c generic value, sized with avro_value_sizeof() and written into a
 * buffer of exactly that size, so avro-c's error paths are not reached.
 *
 * Fingerprints: avro-c does not expose the Parsing Canonical Form, so this
 * file implements the transformation (Avro spec, "Parsing Canonical Form for
 * Schemas": full names, only name/type/fields/symbols/items/values/size, in
 * that order, no whitespace) over the schema JSON, and the CRC-64-AVRO
 * (Rabin) fingerprint of it. Reference values computed with Python fastavro
 * 1.13.1 and avro 1.12.2: Request 0x9432a042886fac5a, Result
 * 0x4f48cf24febc43d3 (written little-endian after 0xC3 0x01).
 *
 * Thread safety: after ifq_avro_new() the codec is read-only apart from the
 * Confluent ids, which are C11 atomics. Decode touches no shared state; encode
 * makes its own avro-c value from the shared generic class, whose reference
 * count avro-c updates atomically; avro_strerror() is only read in
 * ifq_avro_new().
 */
#include "avro_codec.h"

#include "common.h"
#include "ifq_schemas.h"

#include <avro.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IFQ_AVRO_SOE_MAGIC0 0xC3
#define IFQ_AVRO_SOE_MAGIC1 0x01
#define IFQ_AVRO_SOE_HEADER 10      /* magic + 8-byte fingerprint */
#define IFQ_AVRO_CONFLUENT_HEADER 5 /* 0x00 + 4-byte schema id */
#define IFQ_AVRO_MAX_ENTRIES 65536  /* map entries per datum */
#define IFQ_AVRO_PCF_MAX 65536      /* canonical form buffer cap */
#define IFQ_AVRO_NO_ID (-1)

/* ------------------------------------------------------------------------ */
/* The two records, as field tables.                                         */

typedef enum {
    FT_STRING, /* Avro string <-> JSON string */
    FT_INT,    /* Avro int <-> JSON integer */
    FT_LONG,   /* Avro long <-> JSON integer */
    FT_JSON,   /* Avro string holding JSON text <-> JSON object */
    FT_STRMAP, /* Avro map of string <-> JSON object of strings */
    FT_RECORD, /* nested Avro record <-> JSON object */
} field_type_t;

/* The field is ["null", T]. */
#define F_OPTIONAL 0x1
/* A null branch decodes as a JSON null instead of an absent field: a result
 * line always carries both "response" and "error", like OpenAI's. */
#define F_NULL_KEPT 0x2

typedef struct field_spec {
    const char *name;
    field_type_t type;
    unsigned flags;
    const char *dflt; /* encode: written when the JSON field is absent */
    const struct field_spec *sub;
    size_t nsub;
} field_spec_t;

static const field_spec_t request_fields[] = {
    {"custom_id", FT_STRING, 0, NULL, NULL, 0},
    {"method", FT_STRING, 0, "POST", NULL, 0},
    {"url", FT_STRING, 0, NULL, NULL, 0},
    {"body", FT_JSON, 0, NULL, NULL, 0},
    {"reply_to", FT_STRING, F_OPTIONAL, NULL, NULL, 0},
    {"priority", FT_STRING, F_OPTIONAL, NULL, NULL, 0},
    {"deadline_ms", FT_LONG, F_OPTIONAL, NULL, NULL, 0},
    {"metadata", FT_STRMAP, F_OPTIONAL, NULL, NULL, 0},
    {"prompt", FT_JSON, F_OPTIONAL, NULL, NULL, 0},
};

static const field_spec_t response_fields[] = {
    {"status_code", FT_INT, 0, NULL, NULL, 0},
    {"request_id", FT_STRING, 0, NULL, NULL, 0},
    {"body", FT_JSON, 0, NULL, NULL, 0},
};

static const field_spec_t error_fields[] = {
    {"code", FT_STRING, 0, NULL, NULL, 0},
    {"message", FT_STRING, 0, NULL, NULL, 0},
};

static const field_spec_t result_fields[] = {
    {"id", FT_STRING, 0, NULL, NULL, 0},
    {"custom_id", FT_STRING, 0, NULL, NULL, 0},
    {"response", FT_RECORD, F_OPTIONAL | F_NULL_KEPT, NULL, response_fields,
     IFQ_ARRAY_LEN(response_fields)},
    {"error", FT_RECORD, F_OPTIONAL | F_NULL_KEPT, NULL, error_fields, IFQ_ARRAY_LEN(error_fields)},
    {"inferq", FT_JSON, 0, NULL, NULL, 0},
};

typedef struct {
    const char *label;    /* "request" */
    const char *fullname; /* "io.inferq.v1.Request" */
    const char *avsc;
    size_t avsc_len;
    const field_spec_t *fields;
    size_t nfields;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    uint64_t fingerprint;
    uint8_t header[IFQ_AVRO_SOE_HEADER];
    atomic_int_least64_t confluent_id; /* IFQ_AVRO_NO_ID when unset */
} kind_state_t;

struct ifq_avro {
    kind_state_t kinds[2];
};

static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    if (!errstr || !errstr_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Parsing Canonical Form and CRC-64-AVRO.                                   */

typedef struct {
    char *buf;
    size_t len, cap;
    int failed; /* out of memory or over IFQ_AVRO_PCF_MAX */
} sbuf_t;

static void sb_put(sbuf_t *sb, const char *s, size_t n)
{
    if (sb->failed)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *nb = cap <= IFQ_AVRO_PCF_MAX ? realloc(sb->buf, cap) : NULL;
        if (!nb) {
            sb->failed = 1;
            return;
        }
        sb->buf = nb;
        sb->cap = cap;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void sb_lit(sbuf_t *sb, const char *s)
{
    sb_put(sb, s, strlen(s));
}

/* A JSON string literal: [STRINGS] asks for UTF-8 rather than \u escapes,
 * so only what JSON requires is escaped. */
static void sb_quoted(sbuf_t *sb, const char *s)
{
    sb_put(sb, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(sb, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            sb_put(sb, esc, 6);
        } else {
            sb_put(sb, (const char *)&c, 1);
        }
    }
    sb_put(sb, "\"", 1);
}

static int is_primitive(const char *t)
{
    static const char *const prims[] = {"null",  "boolean", "int",   "long",
                                        "float", "double",  "bytes", "string"};
    for (size_t i = 0; i < IFQ_ARRAY_LEN(prims); i++)
        if (strcmp(t, prims[i]) == 0)
            return 1;
    return 0;
}

/* Full name of `name` in namespace `ns` ([FULLNAMES]). For a reference,
 * `seen` decides between the enclosing namespace and the null namespace. */
static void full_name(char *out, size_t out_size, const char *name, const char *ns,
                      const json_t *seen)
{
    if (strchr(name, '.') || !ns || !*ns) {
        snprintf(out, out_size, "%s", name);
        return;
    }
    snprintf(out, out_size, "%s.%s", ns, name);
    if (seen && !json_object_get(seen, out) && json_object_get(seen, name))
        snprintf(out, out_size, "%s", name);
}

static int pcf_node(sbuf_t *sb, const json_t *s, const char *ns, json_t *seen, int depth,
                    char *errstr, size_t errstr_size)
{
    char fullname[512];
    if (depth > 64) {
        set_err(errstr, errstr_size, "schema nested more than 64 levels");
        return -1;
    }
    if (json_is_string(s)) {
        const char *t = json_string_value(s);
        if (is_primitive(t)) {
            sb_quoted(sb, t);
        } else {
            full_name(fullname, sizeof(fullname), t, ns, seen);
            sb_quoted(sb, fullname);
        }
        return 0;
    }
    if (json_is_array(s)) { /* a union */
        size_t i;
        json_t *branch;
        sb_lit(sb, "[");
        json_array_foreach(s, i, branch)
        {
            if (i)
                sb_lit(sb, ",");
            if (pcf_node(sb, branch, ns, seen, depth + 1, errstr, errstr_size))
                return -1;
        }
        sb_lit(sb, "]");
        return 0;
    }
    if (!json_is_object(s)) {
        set_err(errstr, errstr_size, "schema node is neither a name, union nor object");
        return -1;
    }
    const json_t *type = json_object_get(s, "type");
    if (!type) {
        set_err(errstr, errstr_size, "schema object without \"type\"");
        return -1;
    }
    if (!json_is_string(type)) /* {"type": {...}} or {"type": [...]} */
        return pcf_node(sb, type, ns, seen, depth + 1, errstr, errstr_size);

    const char *t = json_string_value(type);
    if (is_primitive(t)) { /* [PRIMITIVES]: {"type":"int"} is "int" */
        sb_quoted(sb, t);
        return 0;
    }
    if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
        const char *key = t[0] == 'a' ? "items" : "values";
        const json_t *inner = json_object_get(s, key);
        if (!inner) {
            set_err(errstr, errstr_size, "%s schema without \"%s\"", t, key);
            return -1;
        }
        sb_lit(sb, "{\"type\":");
        sb_quoted(sb, t);
        sb_lit(sb, ",");
        sb_quoted(sb, key);
        sb_lit(sb, ":");
        if (pcf_node(sb, inner, ns, seen, depth + 1, errstr, errstr_size))
            return -1;
        sb_lit(sb, "}");
        return 0;
    }
    if (strcmp(t, "record") != 0 && strcmp(t, "enum") != 0 && strcmp(t, "fixed") != 0) {
        /* {"type": "Name"}: a reference to a named type. */
        full_name(fullname, sizeof(fullname), t, ns, seen);
        sb_quoted(sb, fullname);
        return 0;
    }

    const char *name = json_string_value(json_object_get(s, "name"));
    if (!name) {
        set_err(errstr, errstr_size, "%s schema without a string \"name\"", t);
        return -1;
    }
    const char *own_ns = json_string_value(json_object_get(s, "namespace"));
    /* An explicit "namespace": "" is the null namespace, not "inherit". */
    full_name(fullname, sizeof(fullname), name, own_ns ? own_ns : ns, NULL);
    if (json_object_get(seen, fullname)) { /* already defined: a reference */
        sb_quoted(sb, fullname);
        return 0;
    }
    json_object_set_new(seen, fullname, json_true());

    /* Names inside take the namespace of this type's full name. */
    char inner_ns[512];
    snprintf(inner_ns, sizeof(inner_ns), "%s", fullname);
    char *dot = strrchr(inner_ns, '.');
    if (dot)
        *dot = '\0';
    else
        inner_ns[0] = '\0';

    /* [ORDER]: name, type, fields, symbols, items, values, size. */
    sb_lit(sb, "{\"name\":");
    sb_quoted(sb, fullname);
    sb_lit(sb, ",\"type\":");
    sb_quoted(sb, t);
    if (t[0] == 'r') {
        const json_t *fields = json_object_get(s, "fields");
        size_t i;
        json_t *f;
        if (!json_is_array(fields)) {
            set_err(errstr, errstr_size, "record %s without a \"fields\" array", fullname);
            return -1;
        }
        sb_lit(sb, ",\"fields\":[");
        json_array_foreach(fields, i, f)
        {
            const char *fname = json_string_value(json_object_get(f, "name"));
            const json_t *ftype = json_object_get(f, "type");
            if (!fname || !ftype) {
                set_err(errstr, errstr_size, "field %zu of %s lacks a name or type", i, fullname);
                return -1;
            }
            sb_lit(sb, i ? ",{\"name\":" : "{\"name\":");
            sb_quoted(sb, fname);
            sb_lit(sb, ",\"type\":");
            if (pcf_node(sb, ftype, inner_ns, seen, depth + 1, errstr, errstr_size))
                return -1;
            sb_lit(sb, "}");
        }
        sb_lit(sb, "]");
    } else if (t[0] == 'e') {
        const json_t *symbols = json_object_get(s, "symbols");
        size_t i;
        json_t *sym;
        if (!json_is_array(symbols)) {
            set_err(errstr, errstr_size, "enum %s without a \"symbols\" array", fullname);
            return -1;
        }
        sb_lit(sb, ",\"symbols\":[");
        json_array_foreach(symbols, i, sym)
        {
            if (!json_is_string(sym)) {
                set_err(errstr, errstr_size, "enum %s has a non-string symbol", fullname);
                return -1;
            }
            if (i)
                sb_lit(sb, ",");
            sb_quoted(sb, json_string_value(sym));
        }
        sb_lit(sb, "]");
    } else {
        const json_t *size = json_object_get(s, "size");
        char num[32];
        if (!json_is_integer(size)) { /* [INTEGERS]: a plain integer */
            set_err(errstr, errstr_size, "fixed %s without an integer \"size\"", fullname);
            return -1;
        }
        snprintf(num, sizeof(num), ",\"size\":%" JSON_INTEGER_FORMAT, json_integer_value(size));
        sb_lit(sb, num);
    }
    sb_lit(sb, "}");
    return 0;
}

/* Writes the Parsing Canonical Form of the schema JSON text into a new
 * malloc'd string (caller frees). NULL and errstr on failure. */
static char *schema_canonical_form(const char *avsc, size_t len, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root = json_loadb(avsc, len, JSON_DECODE_ANY, &jerr);
    if (!root) {
        set_err(errstr, errstr_size, "schema is not JSON: %s", jerr.text);
        return NULL;
    }
    json_t *seen = json_object();
    sbuf_t sb = {0};
    int rc = seen ? pcf_node(&sb, root, "", seen, 0, errstr, errstr_size) : -1;
    json_decref(seen);
    json_decref(root);
    if (rc == 0 && sb.failed)
        set_err(errstr, errstr_size, "canonical form too large or out of memory");
    if (rc || sb.failed) {
        free(sb.buf);
        return NULL;
    }
    return sb.buf;
}

/* CRC-64-AVRO, the Rabin fingerprint of the Avro spec. */
static uint64_t crc64_avro(const void *data, size_t len)
{
    const uint64_t empty = UINT64_C(0xc15d213aa4d7a795);
    uint64_t table[256];
    for (unsigned i = 0; i < 256; i++) {
        uint64_t fp = i;
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (empty & (0 - (fp & 1)));
        table[i] = fp;
    }
    const uint8_t *p = data;
    uint64_t fp = empty;
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ table[(fp ^ p[i]) & 0xff];
    return fp;
}

/* ------------------------------------------------------------------------ */
/* Start-up: the field tables must describe the parsed schemas.              */

static int check_fields(avro_schema_t rec, const char *recname, const field_spec_t *fields,
                        size_t n, char *errstr, size_t errstr_size)
{
    if (!is_avro_record(rec) || avro_schema_record_size(rec) != n) {
        set_err(errstr, errstr_size, "%s: expected a record of %zu fields", recname, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const field_spec_t *f = &fields[i];
        const char *name = avro_schema_record_field_name(rec, (int)i);
        avro_schema_t t = avro_schema_record_field_get_by_index(rec, (int)i);
        if (!name || strcmp(name, f->name) != 0 || !t) {
            set_err(errstr, errstr_size, "%s: field %zu is %s, expected %s", recname, i,
                    name ? name : "?", f->name);
            return -1;
        }
        if (f->flags & F_OPTIONAL) {
            if (!is_avro_union(t) || avro_schema_union_size(t) != 2 ||
                !is_avro_null(avro_schema_union_branch(t, 0))) {
                set_err(errstr, errstr_size, "%s.%s: expected [\"null\", T]", recname, f->name);
                return -1;
            }
            t = avro_schema_union_branch(t, 1);
        }
        int ok = 0;
        switch (f->type) {
        case FT_STRING:
        case FT_JSON:
            ok = is_avro_string(t);
            break;
        case FT_INT:
            ok = is_avro_int32(t);
            break;
        case FT_LONG:
            ok = is_avro_int64(t);
            break;
        case FT_STRMAP:
            ok = is_avro_map(t) && is_avro_string(avro_schema_map_values(t));
            break;
        case FT_RECORD:
            if (check_fields(t, f->name, f->sub, f->nsub, errstr, errstr_size))
                return -1;
            ok = 1;
            break;
        }
        if (!ok) {
            set_err(errstr, errstr_size, "%s.%s: type does not match the codec", recname, f->name);
            return -1;
        }
    }
    return 0;
}

static int kind_init(kind_state_t *k, const char *label, const char *fullname, const char *avsc,
                     size_t avsc_len, const field_spec_t *fields, size_t nfields, char *errstr,
                     size_t errstr_size)
{
    char why[256];
    k->label = label;
    k->fullname = fullname;
    k->avsc = avsc;
    k->avsc_len = avsc_len;
    k->fields = fields;
    k->nfields = nfields;
    atomic_init(&k->confluent_id, IFQ_AVRO_NO_ID);

    if (avro_schema_from_json_length(avsc, avsc_len, &k->schema)) {
        set_err(errstr, errstr_size, "built-in %s schema: %s", label, avro_strerror());
        return -1;
    }
    const char *name = avro_schema_name(k->schema);
    const char *space = avro_schema_namespace(k->schema);
    char got[256];
    snprintf(got, sizeof(got), "%s%s%s", space ? space : "", space ? "." : "", name ? name : "");
    if (strcmp(got, fullname) != 0) {
        set_err(errstr, errstr_size, "built-in %s schema is named %s, expected %s", label, got,
                fullname);
        return -1;
    }
    if (check_fields(k->schema, fullname, fields, nfields, why, sizeof(why))) {
        set_err(errstr, errstr_size, "built-in %s schema does not match the codec: %s", label, why);
        return -1;
    }
    k->iface = avro_generic_class_from_schema(k->schema);
    if (!k->iface) {
        set_err(errstr, errstr_size, "built-in %s schema: %s", label, avro_strerror());
        return -1;
    }
    char *pcf = schema_canonical_form(avsc, avsc_len, why, sizeof(why));
    if (!pcf) {
        set_err(errstr, errstr_size, "built-in %s schema: %s", label, why);
        return -1;
    }
    k->fingerprint = crc64_avro(pcf, strlen(pcf));
    free(pcf);
    k->header[0] = IFQ_AVRO_SOE_MAGIC0;
    k->header[1] = IFQ_AVRO_SOE_MAGIC1;
    for (int i = 0; i < 8; i++)
        k->header[2 + i] = (uint8_t)(k->fingerprint >> (8 * i));
    return 0;
}

ifq_avro_t *ifq_avro_new(char *errstr, size_t errstr_size)
{
    ifq_avro_t *c = calloc(1, sizeof(*c));
    if (!c) {
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (kind_init(&c->kinds[IFQ_AVRO_REQUEST], "request", "io.inferq.v1.Request", IFQ_REQUEST_AVSC,
                  sizeof(IFQ_REQUEST_AVSC) - 1, request_fields, IFQ_ARRAY_LEN(request_fields),
                  errstr, errstr_size) ||
        kind_init(&c->kinds[IFQ_AVRO_RESULT], "result", "io.inferq.v1.Result", IFQ_RESULT_AVSC,
                  sizeof(IFQ_RESULT_AVSC) - 1, result_fields, IFQ_ARRAY_LEN(result_fields), errstr,
                  errstr_size)) {
        ifq_avro_destroy(c);
        return NULL;
    }
    return c;
}

void ifq_avro_destroy(ifq_avro_t *codec)
{
    if (!codec)
        return;
    for (size_t i = 0; i < IFQ_ARRAY_LEN(codec->kinds); i++) {
        kind_state_t *k = &codec->kinds[i];
        if (k->iface)
            avro_value_iface_decref(k->iface);
        if (k->schema)
            avro_schema_decref(k->schema);
    }
    free(codec);
}

void ifq_avro_set_confluent_id(ifq_avro_t *codec, ifq_avro_kind_t kind, int32_t id)
{
    if (!codec || (kind != IFQ_AVRO_REQUEST && kind != IFQ_AVRO_RESULT))
        return;
    atomic_store(&codec->kinds[kind].confluent_id, (int_least64_t)id);
}

int ifq_avro_is_framed(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (!p || len == 0)
        return 0;
    if (p[0] == 0x00)
        return 1;
    return len >= 2 && p[0] == IFQ_AVRO_SOE_MAGIC0 && p[1] == IFQ_AVRO_SOE_MAGIC1;
}

/* ------------------------------------------------------------------------ */
/* Decoding: a single bounds-checked pass over the datum.                    */

typedef struct {
    const uint8_t *p, *end;
    const uint8_t *start; /* first byte of the message, for offsets */
    const char *parent;   /* enclosing record field, or NULL */
    const char *field;    /* field being read, or NULL */
    size_t entries;       /* map entries read so far */
    char *errstr;
    size_t errstr_size;
} reader_t;

/* Sets "<message> (field 'a.b', byte N)" and returns -1. */
static int rd_fail(reader_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int rd_fail(reader_t *r, const char *fmt, ...)
{
    if (!r->errstr || !r->errstr_size)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->errstr, r->errstr_size, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < r->errstr_size && r->field) {
        snprintf(r->errstr + n, r->errstr_size - (size_t)n, " (field '%s%s%s', byte %zu)",
                 r->parent ? r->parent : "", r->parent ? "." : "", r->field,
                 (size_t)(r->p - r->start));
    }
    return -1;
}

/* Field name for messages that start with it ("body is not valid JSON"). */
static void rd_field_name(const reader_t *r, char *out, size_t out_size)
{
    snprintf(out, out_size, "%s%s%s", r->parent ? r->parent : "", r->parent ? "." : "",
             r->field ? r->field : "datum");
}

/* Avro long: zigzag varint of at most 10 bytes that fits 64 bits. */
static int rd_long(reader_t *r, int64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (r->p >= r->end)
            return rd_fail(r, "truncated datum");
        uint8_t b = *r->p++;
        if (i == 9 && b > 1)
            return rd_fail(r, "varint does not fit 64 bits");
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return rd_fail(r, "varint longer than 10 bytes"); /* not reached */
}

/* Strict UTF-8, the same rules jansson applies: no overlong forms, no
 * surrogates, nothing above U+10FFFF. */
static int utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i < n)
            return 0;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n;
    }
    return 1;
}

/* Avro string: the length is checked against the bytes left before use;
 * the result points into the message (nothing is allocated). */
static int rd_string(reader_t *r, const char **s, size_t *len, int want_utf8)
{
    int64_t n;
    if (rd_long(r, &n))
        return -1;
    if (n < 0)
        return rd_fail(r, "negative string length %" PRId64, n);
    size_t left = (size_t)(r->end - r->p);
    if ((uint64_t)n > left)
        return rd_fail(r, "truncated datum: string of %" PRId64 " bytes, %zu left", n, left);
    *s = (const char *)r->p;
    *len = (size_t)n;
    if (memchr(*s, '\0', *len))
        return rd_fail(r, "string contains a NUL byte");
    if (want_utf8 && !utf8_valid(r->p, *len))
        return rd_fail(r, "string is not valid UTF-8");
    r->p += n;
    return 0;
}

static json_t *rd_record(reader_t *r, const field_spec_t *fields, size_t n);

static json_t *rd_json_text(reader_t *r)
{
    const char *s;
    size_t len;
    char name[96];
    if (rd_string(r, &s, &len, 1))
        return NULL;
    rd_field_name(r, name, sizeof(name));
    json_error_t jerr;
    /* Without JSON_DECODE_ANY jansson accepts only an object or an array. */
    json_t *v = json_loadb(s, len, 0, &jerr);
    if (!v) {
        set_err(r->errstr, r->errstr_size, "%s is not valid JSON: %s (line %d, column %d)", name,
                jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        set_err(r->errstr, r->errstr_size, "%s is not a JSON object", name);
        json_decref(v);
        return NULL;
    }
    return v;
}

static json_t *rd_map(reader_t *r)
{
    json_t *map = json_object();
    if (!map) {
        rd_fail(r, "out of memory");
        return NULL;
    }
    for (;;) {
        int64_t count, size;
        const uint8_t *block_end = NULL;
        if (rd_long(r, &count))
            goto fail;
        if (count == 0)
            return map;
        if (count < 0) { /* a block with its byte size, for skipping */
            if (count == INT64_MIN) {
                rd_fail(r, "invalid map block count");
                goto fail;
            }
            count = -count;
            if (rd_long(r, &size))
                goto fail;
            if (size < 0 || (uint64_t)size > (size_t)(r->end - r->p)) {
                rd_fail(r, "invalid map block size %" PRId64, size);
                goto fail;
            }
            block_end = r->p + size;
        }
        if ((uint64_t)count > IFQ_AVRO_MAX_ENTRIES - r->entries) {
            rd_fail(r, "map has more than %d entries", IFQ_AVRO_MAX_ENTRIES);
            goto fail;
        }
        r->entries += (size_t)count;
        for (int64_t i = 0; i < count; i++) {
            const char *k, *v;
            size_t klen, vlen;
            if (rd_string(r, &k, &klen, 1) || rd_string(r, &v, &vlen, 1))
                goto fail;
            /* A repeated key replaces the earlier one, as in a JSON object. */
            if (json_object_setn_new(map, k, klen, json_stringn(v, vlen))) {
                rd_fail(r, "out of memory");
                goto fail;
            }
        }
        if (block_end && r->p != block_end) {
            rd_fail(r, "map block size does not match its contents");
            goto fail;
        }
    }
fail:
    json_decref(map);
    return NULL;
}

static json_t *rd_value(reader_t *r, const field_spec_t *f)
{
    int64_t v;
    const char *s;
    size_t len;
    json_t *out = NULL;
    switch (f->type) {
    case FT_STRING:
        if (rd_string(r, &s, &len, 1))
            return NULL;
        out = json_stringn(s, len);
        break;
    case FT_INT:
        if (rd_long(r, &v))
            return NULL;
        if (v < INT32_MIN || v > INT32_MAX) {
            rd_fail(r, "value %" PRId64 " out of range for an Avro int", v);
            return NULL;
        }
        out = json_integer(v);
        break;
    case FT_LONG:
        if (rd_long(r, &v))
            return NULL;
        out = json_integer(v);
        break;
    case FT_JSON:
        return rd_json_text(r);
    case FT_STRMAP:
        return rd_map(r);
    case FT_RECORD: {
        const char *saved = r->parent;
        r->parent = f->name;
        out = rd_record(r, f->sub, f->nsub);
        r->parent = saved;
        return out;
    }
    }
    if (!out)
        rd_fail(r, "out of memory");
    return out;
}

static json_t *rd_record(reader_t *r, const field_spec_t *fields, size_t n)
{
    json_t *obj = json_object();
    if (!obj) {
        rd_fail(r, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const field_spec_t *f = &fields[i];
        r->field = f->name;
        if (f->flags & F_OPTIONAL) {
            int64_t branch;
            if (rd_long(r, &branch))
                goto fail;
            if (branch != 0 && branch != 1) {
                rd_fail(r, "invalid union branch %" PRId64 " (expected 0 or 1)", branch);
                goto fail;
            }
            if (branch == 0) {
                if ((f->flags & F_NULL_KEPT) && json_object_set_new(obj, f->name, json_null())) {
                    rd_fail(r, "out of memory");
                    goto fail;
                }
                continue;
            }
        }
        json_t *v = rd_value(r, f);
        r->field = f->name; /* a nested record moved it */
        if (!v)
            goto fail;
        if (json_object_set_new(obj, f->name, v)) {
            rd_fail(r, "out of memory");
            goto fail;
        }
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

json_t *ifq_avro_decode(ifq_avro_t *codec, ifq_avro_kind_t kind, const void *buf, size_t len,
                        char *errstr, size_t errstr_size)
{
    const uint8_t *p = buf;
    if (!codec || (kind != IFQ_AVRO_REQUEST && kind != IFQ_AVRO_RESULT)) {
        set_err(errstr, errstr_size, "invalid codec or kind");
        return NULL;
    }
    const kind_state_t *k = &codec->kinds[kind];
    if (!p || len == 0) {
        set_err(errstr, errstr_size, "empty message");
        return NULL;
    }

    size_t header;
    if (p[0] == IFQ_AVRO_SOE_MAGIC0) {
        if (len < IFQ_AVRO_SOE_HEADER) {
            set_err(errstr, errstr_size,
                    "truncated header: single-object encoding needs %d bytes, got %zu",
                    IFQ_AVRO_SOE_HEADER, len);
            return NULL;
        }
        if (p[1] != IFQ_AVRO_SOE_MAGIC1) {
            set_err(errstr, errstr_size, "unsupported single-object encoding version 0x%02x", p[1]);
            return NULL;
        }
        uint64_t fp = 0;
        for (int i = 0; i < 8; i++)
            fp |= (uint64_t)p[2 + i] << (8 * i);
        if (fp != k->fingerprint) {
            set_err(errstr, errstr_size,
                    "unknown schema fingerprint 0x%016" PRIx64 " (%s is 0x%016" PRIx64 ")", fp,
                    k->fullname, k->fingerprint);
            return NULL;
        }
        header = IFQ_AVRO_SOE_HEADER;
    } else if (p[0] == 0x00) {
        if (len < IFQ_AVRO_CONFLUENT_HEADER) {
            set_err(errstr, errstr_size,
                    "truncated header: Confluent framing needs %d bytes, got %zu",
                    IFQ_AVRO_CONFLUENT_HEADER, len);
            return NULL;
        }
        int32_t id = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
                               ((uint32_t)p[3] << 8) | (uint32_t)p[4]);
        int_least64_t want = atomic_load(&k->confluent_id);
        if (want == IFQ_AVRO_NO_ID) {
            set_err(errstr, errstr_size,
                    "unknown Confluent schema id %" PRId32 " (no id registered for %s)", id,
                    k->fullname);
            return NULL;
        }
        if (id != want) {
            set_err(errstr, errstr_size,
                    "unknown Confluent schema id %" PRId32 " (%s is registered as %" PRId64 ")", id,
                    k->fullname, (int64_t)want);
            return NULL;
        }
        header = IFQ_AVRO_CONFLUENT_HEADER;
    } else {
        set_err(errstr, errstr_size, "not an Avro message (first byte 0x%02x)", p[0]);
        return NULL;
    }

    reader_t r = {
        .p = p + header,
        .end = p + len,
        .start = p,
        .errstr = errstr,
        .errstr_size = errstr_size,
    };
    json_t *obj = rd_record(&r, k->fields, k->nfields);
    if (!obj)
        return NULL;
    if (r.p != r.end) {
        set_err(errstr, errstr_size, "trailing garbage: %zu bytes after the datum",
                (size_t)(r.end - r.p));
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* ------------------------------------------------------------------------ */
/* Encoding: JSON checked against the tables, then written by avro-c.        */

typedef struct {
    char *errstr;
    size_t errstr_size;
    const char *parent; /* enclosing record field, or NULL */
} writer_ctx_t;

/* avro-c calls below only fail on allocation; avro_strerror() is a shared
 * global in Debian's build, so it is not read here. */
#define AV_CHECK(w, call)                                                                          \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            set_err((w)->errstr, (w)->errstr_size, "avro-c failed to build the value");            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int wr_fail_field(writer_ctx_t *w, const char *field, const char *what)
{
    set_err(w->errstr, w->errstr_size, "%s%s%s %s", w->parent ? w->parent : "",
            w->parent ? "." : "", field, what);
    return -1;
}

static int wr_string(writer_ctx_t *w, avro_value_t *dst, const char *field, const json_t *v)
{
    if (!json_is_string(v))
        return wr_fail_field(w, field, "must be a string");
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (memchr(s, '\0', len))
        return wr_fail_field(w, field, "contains a NUL byte");
    /* avro-c string sizes count the terminating NUL. */
    AV_CHECK(w, avro_value_set_string_len(dst, s, len + 1));
    return 0;
}

static int wr_record(writer_ctx_t *w, avro_value_t *rec, const field_spec_t *fields, size_t n,
                     const json_t *obj);

static int wr_value(writer_ctx_t *w, avro_value_t *dst, const field_spec_t *f, const json_t *v)
{
    switch (f->type) {
    case FT_STRING:
        return wr_string(w, dst, f->name, v);
    case FT_INT:
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX)
            return wr_fail_field(w, f->name, "must be an integer that fits 32 bits");
        AV_CHECK(w, avro_value_set_int(dst, (int32_t)json_integer_value(v)));
        return 0;
    case FT_LONG:
        if (!json_is_integer(v))
            return wr_fail_field(w, f->name, "must be an integer");
        AV_CHECK(w, avro_value_set_long(dst, (int64_t)json_integer_value(v)));
        return 0;
    case FT_JSON: {
        if (!json_is_object(v))
            return wr_fail_field(w, f->name, "must be a JSON object");
        char *text = json_dumps(v, JSON_COMPACT);
        if (!text) {
            set_err(w->errstr, w->errstr_size, "out of memory");
            return -1;
        }
        int rc = avro_value_set_string_len(dst, text, strlen(text) + 1);
        free(text);
        AV_CHECK(w, rc);
        return 0;
    }
    case FT_STRMAP: {
        const char *key;
        size_t key_len;
        json_t *val;
        if (!json_is_object(v))
            return wr_fail_field(w, f->name, "must be an object of strings");
        json_object_keylen_foreach((json_t *)v, key, key_len, val)
        {
            avro_value_t elem;
            if (strlen(key) != key_len)
                return wr_fail_field(w, f->name, "has a key with a NUL byte");
            if (!json_is_string(val)) {
                set_err(w->errstr, w->errstr_size, "%s value for key '%.64s' must be a string",
                        f->name, key);
                return -1;
            }
            AV_CHECK(w, avro_value_add(dst, key, &elem, NULL, NULL));
            if (wr_string(w, &elem, f->name, val))
                return -1;
        }
        return 0;
    }
    case FT_RECORD: {
        const char *saved = w->parent;
        w->parent = f->name;
        int rc = wr_record(w, dst, f->sub, f->nsub, v);
        w->parent = saved;
        return rc;
    }
    }
    return -1;
}

static int wr_record(writer_ctx_t *w, avro_value_t *rec, const field_spec_t *fields, size_t n,
                     const json_t *obj)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj)) {
        set_err(w->errstr, w->errstr_size, "%s must be a JSON object",
                w->parent ? w->parent : "message");
        return -1;
    }
    /* A field Avro cannot carry is an error rather than silently dropped. */
    json_object_foreach((json_t *)obj, key, v)
    {
        size_t i;
        for (i = 0; i < n && strcmp(fields[i].name, key) != 0; i++)
            ;
        if (i == n) {
            set_err(w->errstr, w->errstr_size, "unknown field '%s%s%.64s'",
                    w->parent ? w->parent : "", w->parent ? "." : "", key);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const field_spec_t *f = &fields[i];
        avro_value_t field, branch;
        v = json_object_get(obj, f->name);
        AV_CHECK(w, avro_value_get_by_index(rec, i, &field, NULL));
        if (f->flags & F_OPTIONAL) {
            if (!v || json_is_null(v)) {
                AV_CHECK(w, avro_value_set_branch(&field, 0, &branch));
                AV_CHECK(w, avro_value_set_null(&branch));
                continue;
            }
            AV_CHECK(w, avro_value_set_branch(&field, 1, &branch));
            field = branch;
        } else if (!v) {
            if (f->dflt) {
                AV_CHECK(w, avro_value_set_string_len(&field, f->dflt, strlen(f->dflt) + 1));
                continue;
            }
            return wr_fail_field(w, f->name, "is required");
        }
        if (wr_value(w, &field, f, v))
            return -1;
    }
    return 0;
}

int ifq_avro_encode(ifq_avro_t *codec, ifq_avro_kind_t kind, const json_t *obj, void **out,
                    size_t *out_len, char *errstr, size_t errstr_size)
{
    if (!codec || (kind != IFQ_AVRO_REQUEST && kind != IFQ_AVRO_RESULT) || !out || !out_len) {
        set_err(errstr, errstr_size, "invalid arguments");
        return -1;
    }
    *out = NULL;
    *out_len = 0;
    const kind_state_t *k = &codec->kinds[kind];
    writer_ctx_t w = {.errstr = errstr, .errstr_size = errstr_size};
    avro_value_t value;
    if (avro_generic_value_new(k->iface, &value)) {
        set_err(errstr, errstr_size, "out of memory");
        return -1;
    }
    int rc = -1;
    size_t size = 0;
    uint8_t *buf = NULL;
    if (wr_record(&w, &value, k->fields, k->nfields, obj))
        goto done;
    if (avro_value_sizeof(&value, &size) || size > SIZE_MAX - IFQ_AVRO_SOE_HEADER) {
        set_err(errstr, errstr_size, "avro-c could not size the value");
        goto done;
    }
    buf = malloc(IFQ_AVRO_SOE_HEADER + size);
    if (!buf) {
        set_err(errstr, errstr_size, "out of memory");
        goto done;
    }
    memcpy(buf, k->header, IFQ_AVRO_SOE_HEADER);
    avro_writer_t wr = avro_writer_memory((const char *)buf + IFQ_AVRO_SOE_HEADER, (int64_t)size);
    if (!wr) {
        set_err(errstr, errstr_size, "out of memory");
        goto done;
    }
    int wrc = avro_value_write(wr, &value);
    int64_t written = avro_writer_tell(wr);
    avro_writer_free(wr);
    if (wrc || written != (int64_t)size) {
        set_err(errstr, errstr_size, "avro-c wrote %" PRId64 " of %zu bytes", written, size);
        goto done;
    }
    *out = buf;
    *out_len = IFQ_AVRO_SOE_HEADER + size;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    avro_value_decref(&value);
    return rc;
}
