/*
 * vd_schemas_json.c - JSON views of the three messages (jansson), driven by
 * the same field descriptors as the Avro codec. Used by the CLI to show
 * events and build commands, and by vd-schemas-tool for the interop tests.
 */
#include "vd_schemas_int.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#define AT(base, off, type) ((type *)(void *)((char *)(base) + (off)))

/* ---- to JSON ---------------------------------------------------------------- */

static json_t *jstr(const char *s) {
    json_t *j = json_string(s ? s : "");
    return j ? j : json_string("");
}

static json_t *obj_of(const vd__rdesc *d, const void *base);

static json_t *val_of(const vd__fdesc *f, const void *base) {
    switch (f->t) {
    case VD__F_STR:
        return jstr(*AT(base, f->off, char *const));
    case VD__F_OPTSTR: {
        const char *s = *AT(base, f->off, char *const);
        return s ? jstr(s) : json_null();
    }
    case VD__F_OPTBYTES: {
        if (!*AT(base, f->off3, const bool))
            return json_null();
        char *b = vd__b64_encode(*AT(base, f->off, unsigned char *const),
                                 *AT(base, f->off2, const size_t));
        json_t *j = b ? json_string(b) : NULL;
        free(b);
        return j;
    }
    case VD__F_LONG:
        return json_integer(*AT(base, f->off, const int64_t));
    case VD__F_INT:
        return json_integer(*AT(base, f->off, const int32_t));
    case VD__F_DOUBLE: {
        double d = *AT(base, f->off, const double);
        return isfinite(d) ? json_real(d) : json_null();
    }
    case VD__F_BOOL:
        return json_boolean(*AT(base, f->off, const bool));
    case VD__F_ENUM: {
        int v = *AT(base, f->off, const int);
        return json_string(v >= 0 && v < f->nsym ? f->sym[v] : "?");
    }
    case VD__F_STRARR:
    case VD__F_OPTSTRARR: {
        if (f->t == VD__F_OPTSTRARR && !*AT(base, f->off3, const bool))
            return json_null();
        char **a = *AT(base, f->off, char **const);
        size_t n = *AT(base, f->off2, const size_t);
        json_t *arr = json_array();
        for (size_t i = 0; arr && a && i < n; i++)
            json_array_append_new(arr, jstr(a[i]));
        return arr;
    }
    case VD__F_COUNTMAP: {
        const vd_count *a = *AT(base, f->off, vd_count *const);
        size_t n = *AT(base, f->off2, const size_t);
        json_t *o = json_object();
        for (size_t i = 0; o && a && i < n; i++)
            json_object_set_new(o, a[i].name ? a[i].name : "", json_integer(a[i].count));
        return o;
    }
    case VD__F_REC:
        return obj_of(f->sub, AT(base, f->off, const char));
    case VD__F_OPTREC:
        if (!*AT(base, f->off3, const bool))
            return json_null();
        return obj_of(f->sub, AT(base, f->off, const char));
    case VD__F_RECARR: {
        const char *a = *AT(base, f->off, const char *const);
        size_t n = *AT(base, f->off2, const size_t);
        json_t *arr = json_array();
        for (size_t i = 0; arr && a && i < n; i++)
            json_array_append_new(arr, obj_of(f->sub, a + i * f->sub->size));
        return arr;
    }
    case VD__F_UNION: {
        int tag = *AT(base, f->off, const int);
        for (size_t i = 0; i < f->u->nbr; i++) {
            const vd__branch *br = &f->u->br[i];
            if (br->tag != tag)
                continue;
            json_t *o = json_object();
            if (o)
                json_object_set_new(o, "type", json_string(br->name));
            json_t *body = obj_of(br->rec, AT(base, br->off, const char));
            if (o && body)
                json_object_update(o, body);
            json_decref(body);
            return o;
        }
        return json_null();
    }
    }
    return json_null();
}

static json_t *obj_of(const vd__rdesc *d, const void *base) {
    json_t *o = json_object();
    for (size_t i = 0; o && i < d->nf; i++) {
        json_t *v = val_of(&d->f[i], base);
        if (!v || json_object_set_new(o, d->f[i].name, v)) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static char *dump(const vd__rdesc *d, const void *base) {
    if (!base)
        return NULL;
    json_t *o = obj_of(d, base);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *vd_command_to_json(const vd_command *c) { return dump(&vd__desc_command, c); }
char *vd_event_to_json(const vd_task_event *e) { return dump(&vd__desc_task_event, e); }
char *vd_health_to_json(const vd_health_report *h) {
    return dump(&vd__desc_health_report, h);
}

/* ---- from JSON ----------------------------------------------------------------- */

static vd_err from_obj(const vd__rdesc *d, json_t *o, void *base, char *errstr,
                       size_t errstr_size);

#define BAD(what)                                                              \
    vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD, "field %s: %s", f->name, what)

static bool branch_matches(const char *want, const char *name) {
    size_t n = strlen(want);
    if (strcasecmp(want, name) == 0)
        return true;
    /* "export" matches ExportCommand, "import" ImportResult. */
    return n && strncasecmp(want, name, n) == 0 &&
           (strcmp(name + n, "Command") == 0 || strcmp(name + n, "Result") == 0);
}

static vd_err from_val(const vd__fdesc *f, json_t *j, void *base, char *errstr,
                       size_t errstr_size) {
    if (!j || json_is_null(j)) {
        if (f->t == VD__F_UNION) {
            if (f->u->null_tag < 0)
                return BAD("required");
            *AT(base, f->off, int) = f->u->null_tag;
        }
        return VD_ERR_OK; /* default */
    }
    switch (f->t) {
    case VD__F_STR:
    case VD__F_OPTSTR:
        if (!json_is_string(j))
            return BAD("not a string");
        if (!(*AT(base, f->off, char *) = vd_strdup(json_string_value(j))))
            return VD_ERR_NOMEM;
        return VD_ERR_OK;
    case VD__F_OPTBYTES: {
        size_t n;
        if (!json_is_string(j))
            return BAD("not a base64 string");
        unsigned char *p = vd__b64_decode(json_string_value(j), json_string_length(j), &n);
        if (!p)
            return BAD("invalid base64");
        *AT(base, f->off, unsigned char *) = p;
        *AT(base, f->off2, size_t) = n;
        *AT(base, f->off3, bool) = true;
        return VD_ERR_OK;
    }
    case VD__F_LONG:
        if (!json_is_integer(j))
            return BAD("not an integer");
        *AT(base, f->off, int64_t) = json_integer_value(j);
        return VD_ERR_OK;
    case VD__F_INT:
        if (!json_is_integer(j) || json_integer_value(j) < INT32_MIN ||
            json_integer_value(j) > INT32_MAX)
            return BAD("not a 32-bit integer");
        *AT(base, f->off, int32_t) = (int32_t)json_integer_value(j);
        return VD_ERR_OK;
    case VD__F_DOUBLE:
        if (!json_is_number(j))
            return BAD("not a number");
        *AT(base, f->off, double) = json_number_value(j);
        return VD_ERR_OK;
    case VD__F_BOOL:
        if (!json_is_boolean(j))
            return BAD("not a boolean");
        *AT(base, f->off, bool) = json_is_true(j);
        return VD_ERR_OK;
    case VD__F_ENUM:
        if (json_is_string(j)) {
            for (int i = 0; i < f->nsym; i++) {
                if (strcasecmp(json_string_value(j), f->sym[i]) == 0) {
                    *AT(base, f->off, int) = i;
                    return VD_ERR_OK;
                }
            }
        }
        return BAD("unknown symbol");
    case VD__F_STRARR:
    case VD__F_OPTSTRARR: {
        if (!json_is_array(j))
            return BAD("not an array");
        size_t n = json_array_size(j);
        char **a = calloc(n ? n : 1, sizeof *a);
        if (!a)
            return VD_ERR_NOMEM;
        *AT(base, f->off, char **) = a;
        if (f->t == VD__F_OPTSTRARR)
            *AT(base, f->off3, bool) = true;
        for (size_t i = 0; i < n; i++) {
            json_t *s = json_array_get(j, i);
            if (!json_is_string(s))
                return BAD("array item not a string");
            if (!(a[i] = vd_strdup(json_string_value(s))))
                return VD_ERR_NOMEM;
            *AT(base, f->off2, size_t) = i + 1;
        }
        return VD_ERR_OK;
    }
    case VD__F_COUNTMAP: {
        if (!json_is_object(j))
            return BAD("not an object");
        size_t n = json_object_size(j), i = 0;
        vd_count *a = calloc(n ? n : 1, sizeof *a);
        if (!a)
            return VD_ERR_NOMEM;
        *AT(base, f->off, vd_count *) = a;
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            if (!json_is_integer(v))
                return BAD("map value not an integer");
            if (!(a[i].name = vd_strdup(k)))
                return VD_ERR_NOMEM;
            a[i].count = json_integer_value(v);
            *AT(base, f->off2, size_t) = ++i;
        }
        return VD_ERR_OK;
    }
    case VD__F_REC:
    case VD__F_OPTREC:
        if (!json_is_object(j))
            return BAD("not an object");
        if (f->t == VD__F_OPTREC)
            *AT(base, f->off3, bool) = true;
        return from_obj(f->sub, j, AT(base, f->off, char), errstr, errstr_size);
    case VD__F_RECARR: {
        if (!json_is_array(j))
            return BAD("not an array");
        size_t n = json_array_size(j);
        char *a = calloc(n ? n : 1, f->sub->size);
        if (!a)
            return VD_ERR_NOMEM;
        *AT(base, f->off, char *) = a;
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_array_get(j, i);
            *AT(base, f->off2, size_t) = i + 1;
            if (!json_is_object(o))
                return BAD("array item not an object");
            vd_err e = from_obj(f->sub, o, a + i * f->sub->size, errstr, errstr_size);
            if (e)
                return e;
        }
        return VD_ERR_OK;
    }
    case VD__F_UNION: {
        const char *type = json_string_value(json_object_get(j, "type"));
        if (!json_is_object(j) || !type)
            return BAD("not an object with a \"type\"");
        for (size_t i = 0; i < f->u->nbr; i++) {
            const vd__branch *br = &f->u->br[i];
            if (!branch_matches(type, br->name))
                continue;
            *AT(base, f->off, int) = br->tag;
            return from_obj(br->rec, j, AT(base, br->off, char), errstr, errstr_size);
        }
        return vd_seterr(errstr, errstr_size,
                         f->u->unknown_err == VD_ERR_UNKNOWN_COMMAND
                             ? VD_ERR_UNKNOWN_COMMAND
                             : VD_ERR_BAD_FIELD,
                         "field %s: unknown type %s", f->name, type);
    }
    }
    return VD_ERR_INTERNAL;
}

static vd_err from_obj(const vd__rdesc *d, json_t *o, void *base, char *errstr,
                       size_t errstr_size) {
    for (size_t i = 0; i < d->nf; i++) {
        vd_err e = from_val(&d->f[i], json_object_get(o, d->f[i].name), base,
                            errstr, errstr_size);
        if (e) {
            if (e == VD_ERR_NOMEM)
                vd_seterr(errstr, errstr_size, e, "out of memory");
            return e;
        }
    }
    return VD_ERR_OK;
}

static vd_err load(const vd__rdesc *d, const char *json, void *out, char *errstr,
                   size_t errstr_size) {
    json_error_t jerr;
    if (!out || !json)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "NULL argument");
    memset(out, 0, d->size);
    json_t *root = json_loads(json, 0, &jerr);
    if (!root)
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_JSON, "%s (line %d)",
                         jerr.text, jerr.line);
    vd_err e = json_is_object(root)
                   ? from_obj(d, root, out, errstr, errstr_size)
                   : vd_seterr(errstr, errstr_size, VD_ERR_BAD_JSON,
                               "%s: expected a JSON object", d->name);
    json_decref(root);
    return e;
}

vd_err vd_command_from_json(const char *json, vd_command *out, char *errstr,
                            size_t errstr_size) {
    return load(&vd__desc_command, json, out, errstr, errstr_size);
}

vd_err vd_event_from_json(const char *json, vd_task_event *out, char *errstr,
                          size_t errstr_size) {
    return load(&vd__desc_task_event, json, out, errstr, errstr_size);
}

vd_err vd_health_from_json(const char *json, vd_health_report *out,
                           char *errstr, size_t errstr_size) {
    return load(&vd__desc_health_report, json, out, errstr, errstr_size);
}
