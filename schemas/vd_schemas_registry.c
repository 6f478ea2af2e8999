/*
 * vd_schemas_registry.c - the registry of writer schemas by fingerprint,
 * the single-object header, and the pre-validating walk of Avro binary
 * bodies (avro-c trusts every length it reads; this walk does not).
 */
#include "vd_schemas_int.h"

#include <pthread.h>
#include <string.h>

/* ---- registry ---------------------------------------------------------- */

static vd__schema_entry registry[VD__REGISTRY_MAX];
static size_t registry_n;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static vd_err registry_init_err;
static char registry_init_errstr[256];
static const vd__schema_entry *current[3];

static const char *const fullnames[3] = {"dev.vecdump.v1.Command",
                                         "dev.vecdump.v1.TaskEvent",
                                         "dev.vecdump.v1.HealthReport"};

static vd_msg_type type_of_fullname(const char *full) {
    for (int i = 0; i < 3; i++)
        if (strcmp(full, fullnames[i]) == 0)
            return (vd_msg_type)i;
    return VD_MSG_OTHER;
}

/* Registers under registry_lock. */
static vd_err register_locked(const char *json, size_t len, uint64_t *fpout,
                              const vd__schema_entry **entry, char *errstr,
                              size_t errstr_size) {
    json_error_t jerr;
    vd_err e;
    vd_buf canon;
    char *full = NULL;
    avro_schema_t schema = NULL;
    avro_value_iface_t *iface = NULL;
    uint64_t fp;

    vd_buf_init(&canon, 16u << 20);
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_JSON,
                      "schema is not a JSON object: %s (line %d)", jerr.text,
                      jerr.line);
        goto out;
    }
    if ((e = vd__canonical_json(root, &canon, errstr, errstr_size)))
        goto out;
    fp = vd_crc64_avro(canon.data, canon.len);
    if (fpout)
        *fpout = fp;
    for (size_t i = 0; i < registry_n; i++) {
        if (registry[i].fp == fp) {
            if (entry)
                *entry = &registry[i];
            goto out;
        }
    }
    full = vd__schema_fullname(root);
    const char *rtype = json_string_value(json_object_get(root, "type"));
    if (!full || !rtype || strcmp(rtype, "record") != 0) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                      "a message schema is a named record");
        goto out;
    }
    if (registry_n == VD__REGISTRY_MAX) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                      "schema registry full (%d schemas)", VD__REGISTRY_MAX);
        goto out;
    }
    if (avro_schema_from_json_length(json, len, &schema) != 0) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                      "avro-c rejects schema %s: %s", full, avro_strerror());
        schema = NULL;
        goto out;
    }
    iface = avro_generic_class_from_schema(schema);
    if (!iface) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                      "avro-c cannot build a class for %s: %s", full,
                      avro_strerror());
        goto out;
    }
    vd__schema_entry *en = &registry[registry_n];
    en->fp = fp;
    en->type = type_of_fullname(full);
    en->fullname = full;
    en->schema = schema;
    en->iface = iface;
    full = NULL;
    schema = NULL;
    iface = NULL;
    registry_n++;
    if (entry)
        *entry = en;
out:
    if (iface)
        avro_value_iface_decref(iface);
    if (schema)
        avro_schema_decref(schema);
    free(full);
    json_decref(root);
    vd_buf_free(&canon);
    return e;
}

static void registry_init(void) {
    const char *texts[3] = {vd__avsc_Command, vd__avsc_TaskEvent,
                            vd__avsc_HealthReport};
    pthread_mutex_lock(&registry_lock);
    for (int i = 0; i < 3 && !registry_init_err; i++) {
        const vd__schema_entry *en = NULL;
        registry_init_err = register_locked(texts[i], strlen(texts[i]), NULL, &en,
                                            registry_init_errstr,
                                            sizeof registry_init_errstr);
        if (!registry_init_err && en->type != (vd_msg_type)i) {
            registry_init_err = vd_seterr(registry_init_errstr,
                                          sizeof registry_init_errstr,
                                          VD_ERR_INTERNAL,
                                          "embedded schema %d is %s", i,
                                          en->fullname);
        }
        if (!registry_init_err)
            current[i] = en;
    }
    if (registry_init_err)
        registry_init_err = VD_ERR_INTERNAL;
    pthread_mutex_unlock(&registry_lock);
}

vd_err vd_schemas_init(char *errstr, size_t errstr_size) {
    pthread_once(&registry_once, registry_init);
    if (registry_init_err)
        return vd_seterr(errstr, errstr_size, registry_init_err,
                         "schema registry: %s", registry_init_errstr);
    return VD_ERR_OK;
}

const vd__schema_entry *vd__schema_lookup(uint64_t fp) {
    const vd__schema_entry *r = NULL;
    if (vd_schemas_init(NULL, 0))
        return NULL;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_n; i++) {
        if (registry[i].fp == fp) {
            r = &registry[i];
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return r;
}

const vd__schema_entry *vd__schema_current(vd_msg_type t) {
    if (vd_schemas_init(NULL, 0) || (int)t < 0 || t >= VD_MSG_OTHER)
        return NULL;
    return current[t];
}

const char *vd_schema_json(vd_msg_type t) {
    switch (t) {
    case VD_MSG_COMMAND: return vd__avsc_Command;
    case VD_MSG_TASK_EVENT: return vd__avsc_TaskEvent;
    case VD_MSG_HEALTH_REPORT: return vd__avsc_HealthReport;
    default: return NULL;
    }
}

uint64_t vd_schema_current_fingerprint(vd_msg_type t) {
    const vd__schema_entry *en = vd__schema_current(t);
    return en ? en->fp : 0;
}

vd_err vd_schema_register(const char *json, size_t len, uint64_t *fp,
                          char *errstr, size_t errstr_size) {
    vd_err e = vd_schemas_init(errstr, errstr_size);
    if (e)
        return e;
    pthread_mutex_lock(&registry_lock);
    e = register_locked(json, len, fp, NULL, errstr, errstr_size);
    pthread_mutex_unlock(&registry_lock);
    return e;
}

vd_err vd_message_peek(const void *buf, size_t len, vd_msg_type *type,
                       uint64_t *fp, char *errstr, size_t errstr_size) {
    const unsigned char *p = buf;
    if (len < 2 || !p || p[0] != VD_SO_MAGIC0 || p[1] != VD_SO_MAGIC1)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_MAGIC,
                         "not Avro single-object encoding: expected C3 01");
    if (len < VD_SO_HEADER_LEN)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_TRUNCATED,
                         "single-object header truncated (%zu of %d bytes)", len,
                         VD_SO_HEADER_LEN);
    uint64_t f = 0;
    for (int i = 7; i >= 0; i--)
        f = (f << 8) | p[2 + i];
    if (fp)
        *fp = f;
    const vd__schema_entry *en = vd__schema_lookup(f);
    if (!en)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FINGERPRINT,
                         "unknown schema fingerprint %016llx",
                         (unsigned long long)f);
    if (type)
        *type = en->type;
    return VD_ERR_OK;
}

/* ---- UTF-8 --------------------------------------------------------------- */

bool vd__utf8_valid(const unsigned char *s, size_t n) {
    /* Strings of the contract are UTF-8 without NUL bytes. */
    return !memchr(s, 0, n) && vd_utf8_valid(s, n);
}

/* ---- the walk ------------------------------------------------------------- */

static vd_err truncated(vd__walk *w, char *errstr, size_t errstr_size,
                        const char *what) {
    return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_TRUNCATED,
                     "body ends inside %s at byte %zu of %zu", what, w->pos,
                     w->len);
}

/* Reads a zigzag varint of at most maxb bytes (5 for int, 10 for long). */
static vd_err read_varint(vd__walk *w, int maxb, int64_t *out, char *errstr,
                          size_t errstr_size, const char *what) {
    uint64_t u = 0;
    for (int i = 0;; i++) {
        if (w->pos >= w->len)
            return truncated(w, errstr, errstr_size, what);
        unsigned char b = w->p[w->pos++];
        if (i == maxb - 1 && (b & 0x80))
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                             "varint of %s longer than %d bytes at byte %zu",
                             what, maxb, w->pos - 1);
        if (maxb == 10 && i == 9 && b > 1)
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                             "varint of %s overflows 64 bits", what);
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    if (maxb == 5 && u > 0xFFFFFFFFu)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                         "int %s overflows 32 bits", what);
    *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return VD_ERR_OK;
}

static avro_schema_t resolve(avro_schema_t s) {
    while (s && is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

static vd_err walk(vd__walk *w, avro_schema_t s, size_t depth, char *errstr,
                   size_t errstr_size);

static vd_err walk_len(vd__walk *w, size_t max, const char *what, size_t *n,
                       char *errstr, size_t errstr_size) {
    int64_t l;
    vd_err e = read_varint(w, 10, &l, errstr, errstr_size, what);
    if (e)
        return e;
    if (l < 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                         "negative %s length %lld at byte %zu", what,
                         (long long)l, w->pos);
    if ((uint64_t)l > max)
        return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                         "%s of %lld bytes over the limit of %zu", what,
                         (long long)l, max);
    if ((uint64_t)l > w->len - w->pos)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_TRUNCATED,
                         "%s of %lld bytes but only %zu left", what,
                         (long long)l, w->len - w->pos);
    *n = (size_t)l;
    return VD_ERR_OK;
}

static vd_err walk_string(vd__walk *w, const char *what, char *errstr,
                          size_t errstr_size) {
    size_t n;
    vd_err e = walk_len(w, w->lim->max_string, what, &n, errstr, errstr_size);
    if (e)
        return e;
    if (!vd__utf8_valid(w->p + w->pos, n))
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                         "%s at byte %zu is not UTF-8 text without NUL", what,
                         w->pos);
    w->pos += n;
    return VD_ERR_OK;
}

static vd_err walk_blocks(vd__walk *w, avro_schema_t item, bool map,
                          size_t depth, char *errstr, size_t errstr_size) {
    const char *what = map ? "map block count" : "array block count";
    for (;;) {
        int64_t count;
        vd_err e = read_varint(w, 10, &count, errstr, errstr_size, what);
        if (e)
            return e;
        if (count == 0)
            return VD_ERR_OK;
        if (count < 0) {
            if (count == INT64_MIN)
                return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                                 "invalid %s", what);
            count = -count;
            size_t bsize;
            if ((e = walk_len(w, SIZE_MAX, "block size", &bsize, errstr,
                              errstr_size)))
                return e;
        }
        if ((uint64_t)count > w->lim->max_items - w->items)
            return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                             "%lld more elements over the limit of %zu per message",
                             (long long)count, w->lim->max_items);
        w->items += (size_t)count;
        for (int64_t i = 0; i < count; i++) {
            if (map && (e = walk_string(w, "map key", errstr, errstr_size)))
                return e;
            if ((e = walk(w, item, depth + 1, errstr, errstr_size)))
                return e;
        }
    }
}

static vd_err walk(vd__walk *w, avro_schema_t s, size_t depth, char *errstr,
                   size_t errstr_size) {
    vd_err e;
    int64_t v;
    size_t n = 0;

    s = resolve(s);
    if (!s)
        return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL, "unresolved schema");
    if (depth > w->lim->max_depth)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                         "value nested deeper than %zu", w->lim->max_depth);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return VD_ERR_OK;
    case AVRO_BOOLEAN:
        if (w->pos >= w->len)
            return truncated(w, errstr, errstr_size, "a boolean");
        if (w->p[w->pos] > 1)
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                             "boolean byte %u at byte %zu", w->p[w->pos], w->pos);
        w->pos++;
        return VD_ERR_OK;
    case AVRO_INT32:
        return read_varint(w, 5, &v, errstr, errstr_size, "an int");
    case AVRO_INT64:
        return read_varint(w, 10, &v, errstr, errstr_size, "a long");
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        n = avro_typeof(s) == AVRO_FLOAT ? 4 : 8;
        if (w->len - w->pos < n)
            return truncated(w, errstr, errstr_size, "a float");
        w->pos += n;
        return VD_ERR_OK;
    case AVRO_STRING:
        return walk_string(w, "string", errstr, errstr_size);
    case AVRO_BYTES:
        if ((e = walk_len(w, w->lim->max_bytes, "bytes value", &n, errstr,
                          errstr_size)))
            return e;
        w->pos += n;
        return VD_ERR_OK;
    case AVRO_FIXED: {
        int64_t sz = avro_schema_fixed_size(s);
        if (sz < 0 || (uint64_t)sz > w->lim->max_bytes)
            return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                             "fixed of %lld bytes", (long long)sz);
        if (w->len - w->pos < (size_t)sz)
            return truncated(w, errstr, errstr_size, "a fixed");
        w->pos += (size_t)sz;
        return VD_ERR_OK;
    }
    case AVRO_ENUM: {
        if ((e = read_varint(w, 10, &v, errstr, errstr_size, "an enum")))
            return e;
        int nsym = avro_schema_enum_number_of_symbols(s);
        if (v < 0 || v >= nsym)
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                             "enum %s index %lld out of range 0..%d",
                             avro_schema_name(s), (long long)v, nsym - 1);
        return VD_ERR_OK;
    }
    case AVRO_UNION: {
        if ((e = read_varint(w, 10, &v, errstr, errstr_size, "a union index")))
            return e;
        size_t nb = avro_schema_union_size(s);
        if (v < 0 || (uint64_t)v >= nb)
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_BRANCH,
                             "union index %lld out of range 0..%zu at byte %zu",
                             (long long)v, nb - 1, w->pos);
        return walk(w, avro_schema_union_branch(s, (int)v), depth + 1, errstr,
                    errstr_size);
    }
    case AVRO_RECORD: {
        size_t nf = avro_schema_record_size(s);
        for (size_t i = 0; i < nf; i++) {
            avro_schema_t fs = avro_schema_record_field_get_by_index(s, (int)i);
            size_t start = w->pos;
            if ((e = walk(w, fs, depth + 1, errstr, errstr_size)))
                return e;
            if (depth == 0 && !w->have_task_id && is_avro_string(resolve(fs)) &&
                strcmp(avro_schema_record_field_name(s, (int)i), "task_id") == 0) {
                /* Re-read the length prefix to find the text. */
                vd__walk t = *w;
                int64_t l;
                t.pos = start;
                if (!read_varint(&t, 10, &l, NULL, 0, "task_id")) {
                    w->have_task_id = true;
                    w->task_id_off = t.pos;
                    w->task_id_len = (size_t)l;
                }
            }
        }
        return VD_ERR_OK;
    }
    case AVRO_ARRAY:
        return walk_blocks(w, avro_schema_array_items(s), false, depth, errstr,
                           errstr_size);
    case AVRO_MAP:
        return walk_blocks(w, avro_schema_map_values(s), true, depth, errstr,
                           errstr_size);
    default:
        return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                         "schema type %d not supported", (int)avro_typeof(s));
    }
}

vd_err vd__walk_body(vd__walk *w, avro_schema_t schema, char *errstr,
                     size_t errstr_size) {
    vd_err e = walk(w, schema, 0, errstr, errstr_size);
    if (e)
        return e;
    if (w->pos != w->len)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                         "%zu trailing bytes after the body", w->len - w->pos);
    return VD_ERR_OK;
}
