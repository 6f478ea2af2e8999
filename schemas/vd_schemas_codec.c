/*
 * vd_schemas_codec.c - single-object encoding and decoding of the three
 * messages with avro-c generic values, driven by the field descriptors.
 *
 * Decoding: header -> writer schema by fingerprint -> pre-validating walk
 * (vd__walk_body) -> avro_value_read with the writer schema -> C struct,
 * field by field by name, so that a field the writer did not have keeps
 * its default (null, false, 0, "", first symbol) and a field the reader
 * does not know is ignored. Enum symbols and union branches are matched by
 * name, not index, so older and newer writers map correctly.
 */
#include "vd_schemas_int.h"

#include <errno.h>
#include <string.h>

#define AT(base, off, type) ((type *)(void *)((char *)(base) + (off)))

vd_codec_limits vd_codec_limits_default(void) {
    vd_codec_limits l = {1u << 20, 64u << 20, 100000, 64};
    return l;
}

static avro_schema_t resolve(avro_schema_t s) {
    while (s && is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

static const char *short_name(const char *n) {
    const char *dot = n ? strrchr(n, '.') : NULL;
    return dot ? dot + 1 : (n ? n : "");
}

/* ---- encode ------------------------------------------------------------------ */

/*
 * Selects the branch of a union value whose type is @p want (and whose
 * record name is @p name, when given). A value that is not a union is
 * returned as is.
 */
static vd_err pick_branch(avro_value_t *v, avro_type_t want, const char *name,
                          avro_value_t *branch, char *errstr, size_t errstr_size) {
    if (avro_value_get_type(v) != AVRO_UNION) {
        *branch = *v;
        return VD_ERR_OK;
    }
    avro_schema_t u = resolve(avro_value_get_schema(v));
    size_t nb = avro_schema_union_size(u);
    for (size_t i = 0; i < nb; i++) {
        avro_schema_t b = resolve(avro_schema_union_branch(u, (int)i));
        if (!b || avro_typeof(b) != want)
            continue;
        if (name && strcmp(short_name(avro_schema_name(b)), name) != 0)
            continue;
        if (avro_value_set_branch(v, (int)i, branch))
            break;
        return VD_ERR_OK;
    }
    return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_ENCODE,
                     "no union branch of type %d%s%s", (int)want,
                     name ? " named " : "", name ? name : "");
}

static vd_err enc_fields(const vd__rdesc *d, avro_value_t *rec, const void *base,
                         char *errstr, size_t errstr_size);

#define ACHK(call, what)                                                       \
    do {                                                                       \
        if ((call) != 0)                                                       \
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_ENCODE,          \
                             "field %s: %s: %s", f->name, what, avro_strerror()); \
    } while (0)

static vd_err enc_null(const vd__fdesc *f, avro_value_t *v, char *errstr,
                       size_t errstr_size) {
    avro_value_t b;
    vd_err e = pick_branch(v, AVRO_NULL, NULL, &b, errstr, errstr_size);
    if (e)
        return e;
    ACHK(avro_value_set_null(&b), "set null");
    return VD_ERR_OK;
}

static vd_err enc_field(const vd__fdesc *f, avro_value_t *v, const void *base,
                        char *errstr, size_t errstr_size) {
    avro_value_t b, el;
    vd_err e;

    switch (f->t) {
    case VD__F_STR:
    case VD__F_OPTSTR: {
        const char *s = *AT(base, f->off, char *const);
        if (!s && f->t == VD__F_OPTSTR)
            return enc_null(f, v, errstr, errstr_size);
        if ((e = pick_branch(v, AVRO_STRING, NULL, &b, errstr, errstr_size)))
            return e;
        ACHK(avro_value_set_string(&b, s ? s : ""), "set string");
        return VD_ERR_OK;
    }
    case VD__F_OPTBYTES: {
        if (!*AT(base, f->off3, const bool))
            return enc_null(f, v, errstr, errstr_size);
        unsigned char *p = *AT(base, f->off, unsigned char *const);
        size_t n = *AT(base, f->off2, const size_t);
        if ((e = pick_branch(v, AVRO_BYTES, NULL, &b, errstr, errstr_size)))
            return e;
        ACHK(avro_value_set_bytes(&b, p ? (void *)p : (void *)"", p ? n : 0),
             "set bytes");
        return VD_ERR_OK;
    }
    case VD__F_LONG:
        ACHK(avro_value_set_long(v, *AT(base, f->off, const int64_t)), "set long");
        return VD_ERR_OK;
    case VD__F_INT:
        ACHK(avro_value_set_int(v, *AT(base, f->off, const int32_t)), "set int");
        return VD_ERR_OK;
    case VD__F_DOUBLE:
        ACHK(avro_value_set_double(v, *AT(base, f->off, const double)), "set double");
        return VD_ERR_OK;
    case VD__F_BOOL:
        ACHK(avro_value_set_boolean(v, *AT(base, f->off, const bool) ? 1 : 0),
             "set boolean");
        return VD_ERR_OK;
    case VD__F_ENUM: {
        int val = *AT(base, f->off, const int);
        if (val < 0 || val >= f->nsym)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "field %s: enum value %d out of range", f->name, val);
        avro_schema_t es = resolve(avro_value_get_schema(v));
        int idx = avro_schema_enum_get_by_name(es, f->sym[val]);
        if (idx < 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_ENCODE,
                             "field %s: schema has no symbol %s", f->name,
                             f->sym[val]);
        ACHK(avro_value_set_enum(v, idx), "set enum");
        return VD_ERR_OK;
    }
    case VD__F_STRARR:
    case VD__F_OPTSTRARR: {
        if (f->t == VD__F_OPTSTRARR && !*AT(base, f->off3, const bool))
            return enc_null(f, v, errstr, errstr_size);
        char **a = *AT(base, f->off, char **const);
        size_t n = *AT(base, f->off2, const size_t);
        if ((e = pick_branch(v, AVRO_ARRAY, NULL, &b, errstr, errstr_size)))
            return e;
        for (size_t i = 0; a && i < n; i++) {
            ACHK(avro_value_append(&b, &el, NULL), "append");
            ACHK(avro_value_set_string(&el, a[i] ? a[i] : ""), "set string");
        }
        return VD_ERR_OK;
    }
    case VD__F_COUNTMAP: {
        const vd_count *a = *AT(base, f->off, vd_count *const);
        size_t n = *AT(base, f->off2, const size_t);
        for (size_t i = 0; a && i < n; i++) {
            ACHK(avro_value_add(v, a[i].name ? a[i].name : "", &el, NULL, NULL),
                 "add");
            ACHK(avro_value_set_long(&el, a[i].count), "set long");
        }
        return VD_ERR_OK;
    }
    case VD__F_REC:
        return enc_fields(f->sub, v, AT(base, f->off, const char), errstr,
                          errstr_size);
    case VD__F_OPTREC:
        if (!*AT(base, f->off3, const bool))
            return enc_null(f, v, errstr, errstr_size);
        if ((e = pick_branch(v, AVRO_RECORD, f->sub->name, &b, errstr, errstr_size)))
            return e;
        return enc_fields(f->sub, &b, AT(base, f->off, const char), errstr,
                          errstr_size);
    case VD__F_RECARR: {
        const char *a = *AT(base, f->off, const char *const);
        size_t n = *AT(base, f->off2, const size_t);
        for (size_t i = 0; a && i < n; i++) {
            ACHK(avro_value_append(v, &el, NULL), "append");
            if ((e = enc_fields(f->sub, &el, a + i * f->sub->size, errstr,
                                errstr_size)))
                return e;
        }
        return VD_ERR_OK;
    }
    case VD__F_UNION: {
        int tag = *AT(base, f->off, const int);
        if (tag == f->u->null_tag)
            return enc_null(f, v, errstr, errstr_size);
        for (size_t i = 0; i < f->u->nbr; i++) {
            const vd__branch *br = &f->u->br[i];
            if (br->tag != tag)
                continue;
            if ((e = pick_branch(v, AVRO_RECORD, br->name, &b, errstr, errstr_size)))
                return e;
            return enc_fields(br->rec, &b, AT(base, br->off, const char), errstr,
                              errstr_size);
        }
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "field %s: kind %d out of range", f->name, tag);
    }
    }
    return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL, "bad descriptor");
}

static vd_err enc_fields(const vd__rdesc *d, avro_value_t *rec, const void *base,
                         char *errstr, size_t errstr_size) {
    for (size_t i = 0; i < d->nf; i++) {
        avro_value_t child;
        if (avro_value_get_by_name(rec, d->f[i].name, &child, NULL) != 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                             "schema %s has no field %s", d->name, d->f[i].name);
        vd_err e = enc_field(&d->f[i], &child, base, errstr, errstr_size);
        if (e)
            return e;
    }
    return VD_ERR_OK;
}

static vd_err encode_msg(vd_msg_type t, const vd__rdesc *d, const void *base,
                         vd_buf *out, char *errstr, size_t errstr_size) {
    avro_value_t v;
    avro_writer_t wr;
    size_t sz = 0;
    vd_err e = vd_schemas_init(errstr, errstr_size);
    if (e)
        return e;
    if (!base || !out)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "NULL argument");
    const vd__schema_entry *en = vd__schema_current(t);
    if (avro_generic_value_new(en->iface, &v) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro value: %s",
                         avro_strerror());
    if ((e = enc_fields(d, &v, base, errstr, errstr_size)))
        goto done;
    if (avro_value_sizeof(&v, &sz) != 0) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_AVRO_ENCODE, "sizeof: %s",
                      avro_strerror());
        goto done;
    }
    if ((e = vd_buf_reserve(out, VD_SO_HEADER_LEN + sz))) {
        vd_seterr(errstr, errstr_size, e, "%s message of %zu bytes: %s", d->name,
                  VD_SO_HEADER_LEN + sz, vd_err2str(e));
        goto done;
    }
    unsigned char *h = (unsigned char *)out->data + out->len;
    h[0] = VD_SO_MAGIC0;
    h[1] = VD_SO_MAGIC1;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)(en->fp >> (8 * i));
    wr = avro_writer_memory((const char *)h + VD_SO_HEADER_LEN, (int64_t)sz);
    if (!wr) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro writer");
        goto done;
    }
    if (avro_value_write(wr, &v) != 0 || avro_writer_tell(wr) != (int64_t)sz) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_AVRO_ENCODE, "write: %s",
                      avro_strerror());
    } else {
        out->len += VD_SO_HEADER_LEN + sz;
    }
    avro_writer_free(wr);
done:
    avro_value_decref(&v);
    return e;
}

/* ---- decode ------------------------------------------------------------------- */

static vd_err dec_fields(const vd__rdesc *d, avro_value_t *rec, void *base,
                         char *errstr, size_t errstr_size);

static vd_err unwrap(avro_value_t *v, avro_value_t *out) {
    *out = *v;
    for (int i = 0; i < 8 && avro_value_get_type(out) == AVRO_UNION; i++) {
        avro_value_t b;
        if (avro_value_get_current_branch(out, &b) != 0)
            return VD_ERR_AVRO_DECODE;
        *out = b;
    }
    return VD_ERR_OK;
}

static char *dup_string(avro_value_t *v) {
    const char *p = NULL;
    size_t n = 0;
    if (avro_value_get_string(v, &p, &n) != 0)
        return NULL;
    /* The size counts the NUL; the walk guaranteed no NUL inside. */
    return vd_strndup(p ? p : "", n ? n - 1 : 0);
}

static bool get_long(avro_value_t *v, int64_t *out) {
    int32_t i;
    switch (avro_value_get_type(v)) {
    case AVRO_INT64: return avro_value_get_long(v, out) == 0;
    case AVRO_INT32:
        if (avro_value_get_int(v, &i))
            return false;
        *out = i;
        return true;
    default: return false;
    }
}

#define MISMATCH()                                                             \
    vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,                           \
              "field %s: writer type %d does not match", f->name, (int)t)
#define NOMEM() vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "field %s", f->name)

static vd_err dec_field(const vd__fdesc *f, avro_value_t *raw, void *base,
                        char *errstr, size_t errstr_size) {
    avro_value_t v, el;
    if (unwrap(raw, &v))
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE,
                         "field %s: union without branch", f->name);
    avro_type_t t = avro_value_get_type(&v);
    size_t n = 0;

    switch (f->t) {
    case VD__F_STR:
    case VD__F_OPTSTR:
        if (t == AVRO_NULL)
            return VD_ERR_OK;
        if (t != AVRO_STRING)
            return MISMATCH();
        if (!(*AT(base, f->off, char *) = dup_string(&v)))
            return NOMEM();
        return VD_ERR_OK;
    case VD__F_OPTBYTES: {
        if (t == AVRO_NULL)
            return VD_ERR_OK;
        const void *p = NULL;
        if (t != AVRO_BYTES)
            return MISMATCH();
        if (avro_value_get_bytes(&v, &p, &n))
            return MISMATCH();
        unsigned char *c = malloc(n + 1);
        if (!c)
            return NOMEM();
        if (n)
            memcpy(c, p, n);
        c[n] = 0;
        *AT(base, f->off, unsigned char *) = c;
        *AT(base, f->off2, size_t) = n;
        *AT(base, f->off3, bool) = true;
        return VD_ERR_OK;
    }
    case VD__F_LONG:
        if (!get_long(&v, AT(base, f->off, int64_t)))
            return MISMATCH();
        return VD_ERR_OK;
    case VD__F_INT:
        if (t != AVRO_INT32 || avro_value_get_int(&v, AT(base, f->off, int32_t)))
            return MISMATCH();
        return VD_ERR_OK;
    case VD__F_DOUBLE: {
        double *d = AT(base, f->off, double);
        float fl;
        int64_t l;
        if (t == AVRO_DOUBLE)
            return avro_value_get_double(&v, d) ? MISMATCH() : VD_ERR_OK;
        if (t == AVRO_FLOAT) {
            if (avro_value_get_float(&v, &fl))
                return MISMATCH();
            *d = fl;
            return VD_ERR_OK;
        }
        if (!get_long(&v, &l))
            return MISMATCH();
        *d = (double)l;
        return VD_ERR_OK;
    }
    case VD__F_BOOL: {
        int b;
        if (t != AVRO_BOOLEAN || avro_value_get_boolean(&v, &b))
            return MISMATCH();
        *AT(base, f->off, bool) = b != 0;
        return VD_ERR_OK;
    }
    case VD__F_ENUM: {
        int idx;
        if (t != AVRO_ENUM || avro_value_get_enum(&v, &idx))
            return MISMATCH();
        const char *sym = avro_schema_enum_get(resolve(avro_value_get_schema(&v)), idx);
        for (int i = 0; sym && i < f->nsym; i++) {
            if (strcmp(sym, f->sym[i]) == 0) {
                *AT(base, f->off, int) = i;
                return VD_ERR_OK;
            }
        }
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "field %s: unknown symbol %s", f->name, sym ? sym : "?");
    }
    case VD__F_STRARR:
    case VD__F_OPTSTRARR: {
        if (t == AVRO_NULL && f->t == VD__F_OPTSTRARR)
            return VD_ERR_OK;
        if (t != AVRO_ARRAY || avro_value_get_size(&v, &n))
            return MISMATCH();
        char **a = calloc(n ? n : 1, sizeof *a);
        if (!a)
            return NOMEM();
        *AT(base, f->off, char **) = a;
        if (f->t == VD__F_OPTSTRARR)
            *AT(base, f->off3, bool) = true;
        for (size_t i = 0; i < n; i++) {
            avro_value_t s;
            if (avro_value_get_by_index(&v, i, &el, NULL) || unwrap(&el, &s) ||
                avro_value_get_type(&s) != AVRO_STRING)
                return MISMATCH();
            if (!(a[i] = dup_string(&s)))
                return NOMEM();
            *AT(base, f->off2, size_t) = i + 1;
        }
        return VD_ERR_OK;
    }
    case VD__F_COUNTMAP: {
        if (t != AVRO_MAP || avro_value_get_size(&v, &n))
            return MISMATCH();
        vd_count *a = calloc(n ? n : 1, sizeof *a);
        if (!a)
            return NOMEM();
        *AT(base, f->off, vd_count *) = a;
        for (size_t i = 0; i < n; i++) {
            const char *key = NULL;
            avro_value_t s;
            if (avro_value_get_by_index(&v, i, &el, &key) || unwrap(&el, &s) ||
                !get_long(&s, &a[i].count))
                return MISMATCH();
            if (!(a[i].name = vd_strdup(key ? key : "")))
                return NOMEM();
            *AT(base, f->off2, size_t) = i + 1;
        }
        return VD_ERR_OK;
    }
    case VD__F_REC:
    case VD__F_OPTREC:
        if (t == AVRO_NULL && f->t == VD__F_OPTREC)
            return VD_ERR_OK;
        if (t != AVRO_RECORD)
            return MISMATCH();
        if (f->t == VD__F_OPTREC)
            *AT(base, f->off3, bool) = true;
        return dec_fields(f->sub, &v, AT(base, f->off, char), errstr, errstr_size);
    case VD__F_RECARR: {
        if (t != AVRO_ARRAY || avro_value_get_size(&v, &n))
            return MISMATCH();
        char *a = calloc(n ? n : 1, f->sub->size);
        if (!a)
            return NOMEM();
        *AT(base, f->off, char *) = a;
        for (size_t i = 0; i < n; i++) {
            avro_value_t r;
            /* Count the element first so a partial one is freed too. */
            *AT(base, f->off2, size_t) = i + 1;
            if (avro_value_get_by_index(&v, i, &el, NULL) || unwrap(&el, &r) ||
                avro_value_get_type(&r) != AVRO_RECORD)
                return MISMATCH();
            vd_err e = dec_fields(f->sub, &r, a + i * f->sub->size, errstr,
                                  errstr_size);
            if (e)
                return e;
        }
        return VD_ERR_OK;
    }
    case VD__F_UNION: {
        if (t == AVRO_NULL) {
            if (f->u->null_tag < 0)
                return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                                 "field %s is null", f->name);
            *AT(base, f->off, int) = f->u->null_tag;
            return VD_ERR_OK;
        }
        if (t != AVRO_RECORD)
            return MISMATCH();
        const char *rn = short_name(avro_schema_name(resolve(avro_value_get_schema(&v))));
        for (size_t i = 0; i < f->u->nbr; i++) {
            const vd__branch *br = &f->u->br[i];
            if (strcmp(br->name, rn) != 0)
                continue;
            *AT(base, f->off, int) = br->tag;
            return dec_fields(br->rec, &v, AT(base, br->off, char), errstr,
                              errstr_size);
        }
        return vd_seterr(errstr, errstr_size, f->u->unknown_err,
                         "field %s: unknown record %s", f->name, rn);
    }
    }
    return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL, "bad descriptor");
}

/*
 * Fields the writer did not have keep their zero default; required strings
 * become "" so that users of the struct never see NULL there.
 */
static vd_err fill_defaults(const vd__rdesc *d, void *base) {
    for (size_t i = 0; i < d->nf; i++) {
        const vd__fdesc *f = &d->f[i];
        vd_err e = VD_ERR_OK;
        if (f->t == VD__F_STR && !*AT(base, f->off, char *)) {
            if (!(*AT(base, f->off, char *) = vd_strdup("")))
                return VD_ERR_NOMEM;
        } else if (f->t == VD__F_REC ||
                   (f->t == VD__F_OPTREC && *AT(base, f->off3, bool))) {
            e = fill_defaults(f->sub, AT(base, f->off, char));
        } else if (f->t == VD__F_RECARR) {
            char *a = *AT(base, f->off, char *);
            size_t n = *AT(base, f->off2, size_t);
            for (size_t k = 0; a && k < n && !e; k++)
                e = fill_defaults(f->sub, a + k * f->sub->size);
        } else if (f->t == VD__F_UNION) {
            int tag = *AT(base, f->off, int);
            for (size_t k = 0; k < f->u->nbr && !e; k++)
                if (f->u->br[k].tag == tag)
                    e = fill_defaults(f->u->br[k].rec, AT(base, f->u->br[k].off, char));
        }
        if (e)
            return e;
    }
    return VD_ERR_OK;
}

static vd_err dec_fields(const vd__rdesc *d, avro_value_t *rec, void *base,
                         char *errstr, size_t errstr_size) {
    for (size_t i = 0; i < d->nf; i++) {
        avro_value_t child;
        if (avro_value_get_by_name(rec, d->f[i].name, &child, NULL) != 0) {
            if (d->f[i].t == VD__F_UNION && d->f[i].u->null_tag < 0)
                return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                                 "writer schema of %s has no field %s", d->name,
                                 d->f[i].name);
            if (d->f[i].t == VD__F_UNION)
                *AT(base, d->f[i].off, int) = d->f[i].u->null_tag;
            continue; /* default */
        }
        vd_err e = dec_field(&d->f[i], &child, base, errstr, errstr_size);
        if (e)
            return e;
    }
    return VD_ERR_OK;
}

/*
 * Decodes a message of type @p t into @p out (zeroed first). @p w is the
 * walk state (its task_id capture is used by the command decoder).
 */
static vd_err decode_msg(const void *buf, size_t len, vd_msg_type t,
                         const vd__rdesc *d, void *out,
                         const vd_codec_limits *lim, vd__walk *w, char *errstr,
                         size_t errstr_size) {
    static const char *const tnames[] = {"Command", "TaskEvent", "HealthReport",
                                         "another record"};
    vd_msg_type mt = VD_MSG_OTHER;
    uint64_t fp = 0;
    avro_value_t v;
    avro_reader_t rd;
    vd_err e;

    memset(w, 0, sizeof *w);
    if (!out)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "NULL argument");
    memset(out, 0, d->size);
    if ((e = vd_schemas_init(errstr, errstr_size)))
        return e;
    if ((e = vd_message_peek(buf, len, &mt, &fp, errstr, errstr_size)))
        return e;
    if (mt != t)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FINGERPRINT,
                         "schema %016llx is a %s schema, not %s",
                         (unsigned long long)fp, tnames[mt], tnames[t]);
    const vd__schema_entry *en = vd__schema_lookup(fp);
    w->p = (const unsigned char *)buf + VD_SO_HEADER_LEN;
    w->len = len - VD_SO_HEADER_LEN;
    w->lim = lim;
    if ((e = vd__walk_body(w, en->schema, errstr, errstr_size)))
        return e;

    if (avro_generic_value_new(en->iface, &v) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro value: %s",
                         avro_strerror());
    rd = avro_reader_memory((const char *)w->p, (int64_t)w->len);
    if (!rd) {
        avro_value_decref(&v);
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro reader");
    }
    if (avro_value_read(rd, &v) != 0)
        e = vd_seterr(errstr, errstr_size, VD_ERR_AVRO_DECODE, "avro-c: %s",
                      avro_strerror());
    if (!e)
        e = dec_fields(d, &v, out, errstr, errstr_size);
    if (!e && fill_defaults(d, out))
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "defaults");
    avro_reader_free(rd);
    avro_value_decref(&v);
    return e;
}

/* ---- Command ------------------------------------------------------------------- */

static bool hex64(const char *s) {
    if (strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
              (*p >= 'A' && *p <= 'F')))
            return false;
    return true;
}

/* The content rules of a Command (shared by decode and encode). */
static vd_err command_check(const vd_command *c, char *errstr, size_t errstr_size) {
    const char *tid = c->task_id ? c->task_id : "";
    const char *ns = c->ns ? c->ns : "";
    if (!vd_id_valid(tid, strlen(tid)))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID,
                         "task_id: %s", vd_err2str(VD_ERR_BAD_ID));
    if (!vd_id_valid(ns, strlen(ns)))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID,
                         "namespace: %s", vd_err2str(VD_ERR_BAD_ID));
    switch (c->kind) {
    case VD_CMD_IMPORT:
        if ((c->import.source_path != NULL) == c->import.has_inline)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "import needs exactly one of source_path and inline_data");
        if (c->import.source_path && !*c->import.source_path)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "import source_path is empty");
        if (c->import.expected_sha256 && !hex64(c->import.expected_sha256))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "expected_sha256 is not 64 hex digits");
        break;
    case VD_CMD_CANCEL: {
        const char *t = c->cancel.target_task_id ? c->cancel.target_task_id : "";
        if (!vd_id_valid(t, strlen(t)))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID,
                             "target_task_id: %s", vd_err2str(VD_ERR_BAD_ID));
        break;
    }
    case VD_CMD_EXPORT:
        if (c->export.destination && !*c->export.destination)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "export destination is empty");
        break;
    default:
        break;
    }
    return VD_ERR_OK;
}

vd_err vd_command_decode_lim(const void *buf, size_t len,
                             const vd_codec_limits *lim, vd_command *out,
                             char *errstr, size_t errstr_size) {
    vd__walk w;
    vd_codec_limits l = vd_codec_limits_default();
    if (lim) { /* zero fields keep their default */
        l.max_string = lim->max_string ? lim->max_string : l.max_string;
        l.max_bytes = lim->max_bytes ? lim->max_bytes : l.max_bytes;
        l.max_items = lim->max_items ? lim->max_items : l.max_items;
        l.max_depth = lim->max_depth ? lim->max_depth : l.max_depth;
    }
    vd_err e = decode_msg(buf, len, VD_MSG_COMMAND, &vd__desc_command, out, &l, &w,
                          errstr, errstr_size);
    if (e) {
        /* Keep only the task_id, when it could be read, for REJECTED. */
        char *tid = NULL;
        if (w.have_task_id)
            tid = vd_strndup((const char *)w.p + w.task_id_off, w.task_id_len);
        if (out) {
            vd_command_free(out);
            out->task_id = tid;
        } else {
            free(tid);
        }
        return e;
    }
    return command_check(out, errstr, errstr_size);
}

vd_err vd_command_decode(const void *buf, size_t len, vd_command *out,
                         char *errstr, size_t errstr_size) {
    return vd_command_decode_lim(buf, len, NULL, out, errstr, errstr_size);
}

vd_err vd_command_encode(const vd_command *c, vd_buf *out, char *errstr,
                         size_t errstr_size) {
    if (!c)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "NULL command");
    vd_err e = command_check(c, errstr, errstr_size);
    if (e)
        return e;
    return encode_msg(VD_MSG_COMMAND, &vd__desc_command, c, out, errstr,
                      errstr_size);
}

/* ---- TaskEvent, HealthReport ------------------------------------------------------ */

vd_err vd_event_decode(const void *buf, size_t len, vd_task_event *out,
                       char *errstr, size_t errstr_size) {
    vd__walk w;
    vd_codec_limits dl = vd_codec_limits_default();
    return decode_msg(buf, len, VD_MSG_TASK_EVENT, &vd__desc_task_event, out, &dl,
                      &w, errstr, errstr_size);
}

vd_err vd_event_encode(const vd_task_event *e, vd_buf *out, char *errstr,
                       size_t errstr_size) {
    return encode_msg(VD_MSG_TASK_EVENT, &vd__desc_task_event, e, out, errstr,
                      errstr_size);
}

vd_err vd_health_decode(const void *buf, size_t len, vd_health_report *out,
                        char *errstr, size_t errstr_size) {
    vd__walk w;
    vd_codec_limits dl = vd_codec_limits_default();
    return decode_msg(buf, len, VD_MSG_HEALTH_REPORT, &vd__desc_health_report, out,
                      &dl, &w, errstr, errstr_size);
}

vd_err vd_health_encode(const vd_health_report *h, vd_buf *out, char *errstr,
                        size_t errstr_size) {
    return encode_msg(VD_MSG_HEALTH_REPORT, &vd__desc_health_report, h, out,
                      errstr, errstr_size);
}
