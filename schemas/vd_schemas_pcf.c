/*
 * vd_schemas_pcf.c - Parsing Canonical Form of Avro schemas and the
 * CRC-64-AVRO (Rabin) fingerprint, as the Avro specification defines them
 * ("Schema Resolution" / "Parsing Canonical Form for Schemas" /
 * "Schema Fingerprints"). avro-c 1.11.1 has neither.
 *
 * Canonical form, per the specification's transformations:
 *   [PRIMITIVES] {"type":"int"} -> "int"
 *   [FULLNAMES]  names of named types and references become fullnames
 *   [STRIP]      keep only type, name, fields, symbols, items, values, size
 *   [ORDER]      in that order: name, type, fields, symbols, items, values, size
 *   [STRINGS]    escapes replaced by the UTF-8 they stand for
 *   [INTEGERS]   no leading zeros or signs
 *   [WHITESPACE] none outside strings
 */
#include "vd_schemas_int.h"

#include <pthread.h>
#include <string.h>

/* ---- CRC-64-AVRO --------------------------------------------------------- */

static uint64_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (unsigned i = 0; i < 256; i++) {
        uint64_t fp = i;
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (VD_CRC64_AVRO_EMPTY & (0 - (fp & 1)));
        crc_table[i] = fp;
    }
}

uint64_t vd_crc64_avro(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t fp = VD_CRC64_AVRO_EMPTY;
    pthread_once(&crc_once, crc_init);
    for (size_t i = 0; i < n; i++)
        fp = (fp >> 8) ^ crc_table[(fp ^ b[i]) & 0xff];
    return fp;
}

/* ---- canonical form -------------------------------------------------------- */

static const char *const primitives[] = {"null", "boolean", "int", "long",
                                         "float", "double", "bytes", "string"};

static bool is_primitive(const char *s) {
    for (size_t i = 0; i < sizeof primitives / sizeof primitives[0]; i++)
        if (strcmp(s, primitives[i]) == 0)
            return true;
    return false;
}

/* Appends s as a JSON string: escapes only what JSON requires. */
static vd_err put_str(vd_buf *out, const char *s, size_t n) {
    vd_err e = vd_buf_putc(out, '"');
    for (size_t i = 0; i < n && !e; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            e = vd_buf_putc(out, '\\');
            if (!e)
                e = vd_buf_putc(out, (char)c);
        } else if (c < 0x20) {
            e = vd_buf_printf(out, "\\u%04x", c);
        } else {
            e = vd_buf_putc(out, (char)c);
        }
    }
    return e ? e : vd_buf_putc(out, '"');
}

static vd_err put_lit(vd_buf *out, const char *s) {
    return vd_buf_append(out, s, strlen(s));
}

/*
 * Fullname of a named type: a name with a dot is already full; otherwise
 * the "namespace" attribute, else the enclosing namespace, qualifies it.
 * Returns malloc'd text or NULL.
 */
static char *make_fullname(const char *name, const char *ns) {
    if (strchr(name, '.') || !ns || !*ns)
        return vd_strdup(name);
    size_t a = strlen(ns), b = strlen(name);
    char *r = malloc(a + b + 2);
    if (!r)
        return NULL;
    memcpy(r, ns, a);
    r[a] = '.';
    memcpy(r + a + 1, name, b + 1);
    return r;
}

static char *named_fullname(json_t *obj, const char *enclosing_ns) {
    const char *name = json_string_value(json_object_get(obj, "name"));
    if (!name)
        return NULL;
    const char *ns = json_string_value(json_object_get(obj, "namespace"));
    return make_fullname(name, ns ? ns : enclosing_ns);
}

char *vd__schema_fullname(json_t *schema) {
    if (!json_is_object(schema))
        return NULL;
    return named_fullname(schema, NULL);
}

static vd_err canon(json_t *s, const char *ns, vd_buf *out, int depth,
                    char *errstr, size_t errstr_size);

static vd_err canon_named(json_t *s, const char *type, const char *ns,
                          vd_buf *out, int depth, char *errstr,
                          size_t errstr_size) {
    vd_err e;
    char *full = named_fullname(s, ns);
    if (!full)
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "%s schema without a name", type);
    /* The namespace of the children is the one of this fullname. */
    char *child_ns = NULL;
    const char *dot = strrchr(full, '.');
    if (dot && !(child_ns = vd_strndup(full, (size_t)(dot - full)))) {
        free(full);
        return VD_ERR_NOMEM;
    }
    e = put_lit(out, "{\"name\":");
    if (!e)
        e = put_str(out, full, strlen(full));
    if (!e)
        e = put_lit(out, ",\"type\":");
    if (!e)
        e = put_str(out, type, strlen(type));
    if (e)
        goto done;

    if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0) {
        json_t *fields = json_object_get(s, "fields");
        if (!json_is_array(fields)) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                          "record %s without fields", full);
            goto done;
        }
        e = put_lit(out, ",\"fields\":[");
        for (size_t i = 0; i < json_array_size(fields) && !e; i++) {
            json_t *f = json_array_get(fields, i);
            const char *fname = json_string_value(json_object_get(f, "name"));
            json_t *ftype = json_object_get(f, "type");
            if (!fname || !ftype) {
                e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                              "field %zu of %s needs a name and a type", i, full);
                break;
            }
            if (i)
                e = vd_buf_putc(out, ',');
            if (!e)
                e = put_lit(out, "{\"name\":");
            if (!e)
                e = put_str(out, fname, strlen(fname));
            if (!e)
                e = put_lit(out, ",\"type\":");
            if (!e)
                e = canon(ftype, child_ns, out, depth + 1, errstr, errstr_size);
            if (!e)
                e = vd_buf_putc(out, '}');
        }
        if (!e)
            e = vd_buf_putc(out, ']');
    } else if (strcmp(type, "enum") == 0) {
        json_t *syms = json_object_get(s, "symbols");
        if (!json_is_array(syms)) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                          "enum %s without symbols", full);
            goto done;
        }
        e = put_lit(out, ",\"symbols\":[");
        for (size_t i = 0; i < json_array_size(syms) && !e; i++) {
            json_t *sym = json_array_get(syms, i);
            if (!json_is_string(sym)) {
                e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                              "enum %s: symbol %zu is not a string", full, i);
                break;
            }
            if (i)
                e = vd_buf_putc(out, ',');
            if (!e)
                e = put_str(out, json_string_value(sym), json_string_length(sym));
        }
        if (!e)
            e = vd_buf_putc(out, ']');
    } else { /* fixed */
        json_t *size = json_object_get(s, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                          "fixed %s without a valid size", full);
            goto done;
        }
        e = vd_buf_printf(out, ",\"size\":%lld", (long long)json_integer_value(size));
    }
    if (!e)
        e = vd_buf_putc(out, '}');
done:
    free(child_ns);
    free(full);
    return e;
}

static vd_err canon(json_t *s, const char *ns, vd_buf *out, int depth,
                    char *errstr, size_t errstr_size) {
    if (depth > 256)
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "schema nested too deeply");
    if (json_is_string(s)) {
        const char *name = json_string_value(s);
        if (is_primitive(name))
            return put_str(out, name, strlen(name));
        char *full = make_fullname(name, ns);
        if (!full)
            return VD_ERR_NOMEM;
        vd_err e = put_str(out, full, strlen(full));
        free(full);
        return e;
    }
    if (json_is_array(s)) { /* union */
        vd_err e = vd_buf_putc(out, '[');
        for (size_t i = 0; i < json_array_size(s) && !e; i++) {
            if (i)
                e = vd_buf_putc(out, ',');
            if (!e)
                e = canon(json_array_get(s, i), ns, out, depth + 1, errstr,
                          errstr_size);
        }
        return e ? e : vd_buf_putc(out, ']');
    }
    if (!json_is_object(s))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "a schema is a string, an array or an object");
    json_t *type = json_object_get(s, "type");
    if (!json_is_string(type)) {
        if (type && (json_is_object(type) || json_is_array(type)))
            return canon(type, ns, out, depth + 1, errstr, errstr_size);
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "schema object without a type");
    }
    const char *t = json_string_value(type);
    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0 ||
        strcmp(t, "enum") == 0 || strcmp(t, "fixed") == 0)
        return canon_named(s, t, ns, out, depth, errstr, errstr_size);
    if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
        bool arr = t[0] == 'a';
        json_t *sub = json_object_get(s, arr ? "items" : "values");
        if (!sub)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "%s schema without %s", t, arr ? "items" : "values");
        vd_err e = put_lit(out, arr ? "{\"type\":\"array\",\"items\":"
                                    : "{\"type\":\"map\",\"values\":");
        if (!e)
            e = canon(sub, ns, out, depth + 1, errstr, errstr_size);
        return e ? e : vd_buf_putc(out, '}');
    }
    /* A primitive (or a reference) written as {"type": ...}. */
    return canon(type, ns, out, depth + 1, errstr, errstr_size);
}

vd_err vd__canonical_json(json_t *schema, vd_buf *out, char *errstr,
                          size_t errstr_size) {
    size_t start = out->len;
    vd_err e = canon(schema, NULL, out, 0, errstr, errstr_size);
    if (e) {
        out->len = start;
        if (e == VD_ERR_NOMEM || e == VD_ERR_TOO_LARGE)
            vd_seterr(errstr, errstr_size, e, "canonical form: %s", vd_err2str(e));
    }
    return e;
}

vd_err vd_schema_canonical(const char *json, size_t len, vd_buf *out,
                           char *errstr, size_t errstr_size) {
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_JSON,
                         "schema is not JSON: %s (line %d)", jerr.text, jerr.line);
    vd_err e = vd__canonical_json(root, out, errstr, errstr_size);
    json_decref(root);
    return e;
}

vd_err vd_schema_fingerprint(const char *json, size_t len, uint64_t *fp,
                             char *errstr, size_t errstr_size) {
    vd_buf b;
    vd_buf_init(&b, 16u << 20);
    vd_err e = vd_schema_canonical(json, len, &b, errstr, errstr_size);
    if (!e)
        *fp = vd_crc64_avro(b.data, b.len);
    vd_buf_free(&b);
    return e;
}
