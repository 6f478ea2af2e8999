/*
 * vd_store.c - connection, meta, and single-document reads and writes of
 * the Redis data model (SPEC §2). The streaming reader is in
 * vd_store_iter.c, the synthetic dataset in vd_seed.c.
 *
 * Every pipeline reads back exactly as many replies as it sent, so a
 * failure never leaves the connection out of step; an I/O error marks the
 * connection broken and the next call reconnects.
 */
#define _POSIX_C_SOURCE 200809L
#include "vd_store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How often doc_put / doc_delete retry when a WATCHed key changed. */
#define STORE_WATCH_RETRIES 8

/* ---- connection ------------------------------------------------------- */
static vd_err store_conn_err(vd_store *s, const char *what, char *errstr,
                             size_t errstr_size) {
    const char *why = s->c && s->c->errstr[0] ? s->c->errstr : "connection lost";
    s->broken = true;
    return vd_seterr(errstr, errstr_size, VD_ERR_REDIS_CONN, "redis %s:%d: %s: %s", s->host,
                     s->port, what, why);
}

vd_err vd__store_append_failed(vd_store *s, char *errstr, size_t errstr_size) {
    return store_conn_err(s, "cannot queue command", errstr, errstr_size);
}

vd_err vd__store_append(vd_store *s, int argc, const char **argv, const size_t *lens,
                        char *errstr, size_t errstr_size) {
    if (redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK)
        return vd__store_append_failed(s, errstr, errstr_size);
    return VD_ERR_OK;
}

void vd__replies_free(redisReply **r, size_t n) {
    if (!r)
        return;
    for (size_t i = 0; i < n; i++) {
        if (r[i])
            freeReplyObject(r[i]);
        r[i] = NULL;
    }
}

vd_err vd__store_read(vd_store *s, size_t n, redisReply **out, char *errstr,
                      size_t errstr_size) {
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(s->c, &r) != REDIS_OK || !r) {
            if (r)
                freeReplyObject(r);
            vd__replies_free(out, i);
            return store_conn_err(s, "reading reply", errstr, errstr_size);
        }
        out[i] = r;
    }
    return VD_ERR_OK;
}

vd_err vd__reply_err(const redisReply *r, const char *what, const char *key, char *errstr,
                     size_t errstr_size) {
    if (r && r->type == REDIS_REPLY_ERROR)
        return vd_seterr(errstr, errstr_size, VD_ERR_REDIS, "%s %s: %.*s", what,
                         key ? key : "", (int)(r->len > 300 ? 300 : r->len), r->str);
    return vd_seterr(errstr, errstr_size, VD_ERR_REDIS, "%s %s: unexpected reply type %d",
                     what, key ? key : "", r ? r->type : -1);
}

/* Sends one command and reads its reply (caller frees *out). */
static vd_err store_cmd(vd_store *s, int argc, const char **argv, const size_t *lens,
                        redisReply **out, char *errstr, size_t errstr_size) {
    vd_err e = vd__store_append(s, argc, argv, lens, errstr, errstr_size);
    if (e)
        return e;
    return vd__store_read(s, 1, out, errstr, errstr_size);
}

static vd_err store_open(vd_store *s, char *errstr, size_t errstr_size) {
    struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
    redisReply *r = NULL;
    vd_err e;

    if (s->c)
        redisFree(s->c);
    s->broken = false;
    s->inflight = 0;
    s->c = redisConnectWithTimeout(s->host, s->port, tv);
    if (!s->c) {
        s->broken = true;
        return vd_seterr(errstr, errstr_size, VD_ERR_REDIS_CONN,
                         "redis %s:%d: cannot allocate a connection", s->host, s->port);
    }
    if (s->c->err)
        return store_conn_err(s, "connect", errstr, errstr_size);
    if (redisSetTimeout(s->c, tv) != REDIS_OK)
        return store_conn_err(s, "set timeout", errstr, errstr_size);

    if (s->password) {
        const char *argv[3] = {"AUTH", s->user ? s->user : s->password, s->password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(s->password)};
        e = store_cmd(s, s->user ? 3 : 2, argv, lens, &r, errstr, errstr_size);
        if (e)
            return e;
        if (r->type == REDIS_REPLY_ERROR) {
            /* Redis never echoes the password in its AUTH errors. */
            e = vd_seterr(errstr, errstr_size, VD_ERR_REDIS, "redis %s:%d: AUTH failed: %.*s",
                          s->host, s->port, (int)(r->len > 200 ? 200 : r->len), r->str);
            freeReplyObject(r);
            s->broken = true;
            return e;
        }
        freeReplyObject(r);
    }
    if (s->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", s->db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        e = store_cmd(s, 2, argv, lens, &r, errstr, errstr_size);
        if (e)
            return e;
        if (r->type == REDIS_REPLY_ERROR) {
            e = vd__reply_err(r, "SELECT", db, errstr, errstr_size);
            freeReplyObject(r);
            s->broken = true;
            return e;
        }
        freeReplyObject(r);
    }
    return VD_ERR_OK;
}

vd_err vd__store_ready(vd_store *s, char *errstr, size_t errstr_size) {
    if (s->c && !s->c->err && !s->broken)
        return VD_ERR_OK;
    return store_open(s, errstr, errstr_size);
}

vd_err vd_store_connect(const vd_store_conf *conf, vd_store **out, char *errstr,
                        size_t errstr_size) {
    *out = NULL;
    vd_store *s = calloc(1, sizeof *s);
    if (!s)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
    s->host = vd_strdup(conf && conf->host && *conf->host ? conf->host : "127.0.0.1");
    s->port = conf && conf->port > 0 ? conf->port : 6379;
    s->db = conf ? conf->db : 0;
    s->user = conf && conf->user && *conf->user ? vd_strdup(conf->user) : NULL;
    s->password = conf && conf->password && *conf->password ? vd_strdup(conf->password)
                                                            : NULL;
    s->timeout_ms = conf && conf->timeout_ms > 0 ? conf->timeout_ms : 5000;
    if (!s->host || (conf && conf->user && *conf->user && !s->user) ||
        (conf && conf->password && *conf->password && !s->password)) {
        vd_store_destroy(s);
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
    }
    if (s->db < 0) {
        vd_store_destroy(s);
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "negative redis db");
    }
    vd_err e = store_open(s, errstr, errstr_size);
    if (e) {
        vd_store_destroy(s);
        return e;
    }
    *out = s;
    return VD_ERR_OK;
}

void vd_store_destroy(vd_store *s) {
    if (!s)
        return;
    if (s->c)
        redisFree(s->c);
    free(s->host);
    free(s->user);
    if (s->password) {
        /* Do not leave the password lying in freed memory. */
        volatile char *p = s->password;
        while (*p)
            *p++ = 0;
        free(s->password);
    }
    free(s);
}

void *vd_store_redis(vd_store *s) { return s ? s->c : NULL; }

static int64_t mono_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

vd_err vd_store_ping(vd_store *s, int64_t *usec, char *errstr, size_t errstr_size) {
    vd_err e = vd__store_ready(s, errstr, errstr_size);
    if (e)
        return e;
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    redisReply *r = NULL;
    int64_t t0 = mono_usec();
    e = store_cmd(s, 1, argv, lens, &r, errstr, errstr_size);
    if (e)
        return e;
    int64_t t1 = mono_usec();
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
        e = vd__reply_err(r, "PING", NULL, errstr, errstr_size);
    freeReplyObject(r);
    if (!e && usec)
        *usec = t1 - t0;
    return e;
}

/* ---- keys ------------------------------------------------------------- */
vd_err vd__ns_check(const char *ns, char *errstr, size_t errstr_size) {
    if (!ns || !*ns)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "empty namespace");
    if (strlen(ns) > VD__NS_MAX)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "namespace longer than %d bytes", VD__NS_MAX);
    return VD_ERR_OK;
}

static size_t key_fmt(char *k, const char *fmt, const char *ns, const char *id) {
    int n = snprintf(k, VD__KEY_MAX, fmt, ns, id ? id : "");
    return n < 0 ? 0 : (size_t)n >= VD__KEY_MAX ? VD__KEY_MAX - 1 : (size_t)n;
}

size_t vd__key_docs(char *k, const char *ns) { return key_fmt(k, "%s:docs%s", ns, NULL); }
size_t vd__key_meta(char *k, const char *ns) { return key_fmt(k, "%s:meta%s", ns, NULL); }
size_t vd__key_doc(char *k, const char *ns, const char *id) {
    return key_fmt(k, "%s:doc:{%s}", ns, id);
}
size_t vd__key_zset(char *k, const char *ns, const char *id) {
    return key_fmt(k, "%s:doc:{%s}:chunks", ns, id);
}
size_t vd__key_file(char *k, const char *ns, const char *id) {
    return key_fmt(k, "%s:file:{%s}", ns, id);
}

size_t vd__key_chunk(char *k, const char *ns, const char *doc, const char *chunk,
                     size_t chunk_len) {
    size_t n = key_fmt(k, "%s:chunk:{%s}:", ns, doc);
    if (chunk_len > VD_ID_MAX || n + chunk_len >= VD__KEY_MAX)
        return 0; /* not a key this model can hold */
    memcpy(k + n, chunk, chunk_len);
    k[n + chunk_len] = 0;
    return n + chunk_len;
}

/* ---- reply parsing ---------------------------------------------------- */
static const redisReply *hash_field(const redisReply *h, const char *name) {
    size_t nl = strlen(name);
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i];
        if (f->type == REDIS_REPLY_STRING && f->len == nl && memcmp(f->str, name, nl) == 0)
            return h->element[i + 1]->type == REDIS_REPLY_STRING ? h->element[i + 1] : NULL;
    }
    return NULL;
}

static bool parse_i64(const char *p, size_t len, int64_t *out) {
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, p, len);
    buf[len] = 0;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static vd_err field_i64(const redisReply *h, const char *name, const char *key, int64_t *out,
                        char *errstr, size_t errstr_size) {
    const redisReply *v = hash_field(h, name);
    *out = 0;
    if (!v)
        return VD_ERR_OK;
    if (!parse_i64(v->str, v->len, out))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "%s: field '%s' is not an integer", key, name);
    return VD_ERR_OK;
}

/* Copies a field (NUL-terminated, binary safe) or dflt when absent. */
static char *field_str(const redisReply *h, const char *name, const char *dflt, size_t *len) {
    const redisReply *v = hash_field(h, name);
    if (!v) {
        if (len)
            *len = strlen(dflt);
        return vd_strdup(dflt);
    }
    if (len)
        *len = v->len;
    return vd_strndup(v->str, v->len);
}

static vd_err hash_check(const redisReply *r, const char *what, const char *key,
                         char *errstr, size_t errstr_size) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return vd__reply_err(r, what, key, errstr, errstr_size);
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return vd__reply_err(r->element[i], what, key, errstr, errstr_size);
    return VD_ERR_OK;
}

static vd_err chunk_build(const char *ns, const char *doc_id, const redisReply *member,
                          const redisReply *score, const redisReply *h, vd_chunk *c,
                          char *errstr, size_t errstr_size) {
    char key[VD__KEY_MAX];
    vd__key_chunk(key, ns, doc_id, member->str, member->len);
    vd_err e = hash_check(h, "HGETALL", key, errstr, errstr_size);
    if (e)
        return e;
    const redisReply *id = hash_field(h, "id");
    c->id = id ? vd_strndup(id->str, id->len) : vd_strndup(member->str, member->len);
    c->doc_id = field_str(h, "doc_id", doc_id, NULL);
    c->text = field_str(h, "text", "", &c->text_len);
    c->metadata = field_str(h, "metadata", "{}", NULL);
    if (!c->id || !c->doc_id || !c->text || !c->metadata)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
    if (hash_field(h, "seq")) {
        e = field_i64(h, "seq", key, &c->seq, errstr, errstr_size);
        if (e)
            return e;
    } else {
        c->seq = (int64_t)strtod(score->str, NULL);
    }
    const redisReply *emb = hash_field(h, "embedding");
    if (emb) {
        if (emb->len % 4)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM,
                             "%s: embedding is %zu bytes, not a multiple of 4", key, emb->len);
        c->dim = emb->len / 4;
        if (c->dim) {
            c->embedding = malloc(c->dim * sizeof(float));
            if (!c->embedding)
                return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            vd_f32_from_le(c->embedding, (const unsigned char *)emb->str, c->dim);
        }
    }
    return VD_ERR_OK;
}

vd_err vd__group_build(const char *ns, const char *doc_id, const redisReply *doc,
                       const redisReply *zset, redisReply *const *chunks,
                       size_t nchunk_replies, const redisReply *file, vd_docgroup *g,
                       char *errstr, size_t errstr_size) {
    char key[VD__KEY_MAX];
    vd_err e;
    vd__key_doc(key, ns, doc_id);
    if ((e = hash_check(doc, "HGETALL", key, errstr, errstr_size)))
        return e;
    if (doc->elements == 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOT_FOUND, "%s: no such document", key);
    vd__key_zset(key, ns, doc_id);
    if (zset->type != REDIS_REPLY_ARRAY || zset->elements % 2)
        return vd__reply_err(zset, "ZRANGE", key, errstr, errstr_size);
    if (zset->elements / 2 != nchunk_replies)
        return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL, "%s: reply count mismatch",
                         key);

    vd__key_doc(key, ns, doc_id);
    vd_doc *d = &g->doc;
    const redisReply *id = hash_field(doc, "id");
    d->id = id ? vd_strndup(id->str, id->len) : vd_strdup(doc_id);
    d->title = field_str(doc, "title", "", NULL);
    d->source = field_str(doc, "source", "", NULL);
    d->content_type = field_str(doc, "content_type", "", NULL);
    d->sha256 = field_str(doc, "sha256", "", NULL);
    d->metadata = field_str(doc, "metadata", "{}", NULL);
    if (!d->id || !d->title || !d->source || !d->content_type || !d->sha256 || !d->metadata)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
    if ((e = field_i64(doc, "size", key, &d->size, errstr, errstr_size)) ||
        (e = field_i64(doc, "created_at", key, &d->created_at, errstr, errstr_size)) ||
        (e = field_i64(doc, "updated_at", key, &d->updated_at, errstr, errstr_size)) ||
        (e = field_i64(doc, "chunk_count", key, &d->chunk_count, errstr, errstr_size)))
        return e;

    for (size_t i = 0; i < nchunk_replies; i++) {
        const redisReply *member = zset->element[2 * i];
        const redisReply *score = zset->element[2 * i + 1];
        if (member->type != REDIS_REPLY_STRING || score->type != REDIS_REPLY_STRING)
            return vd__reply_err(member, "ZRANGE", key, errstr, errstr_size);
        if (!chunks[i]) /* member that cannot name a key: validate reports it */
            continue;
        if (chunks[i]->type == REDIS_REPLY_ARRAY && chunks[i]->elements == 0)
            continue; /* listed in the zset but gone: validate reports it */
        vd_chunk *c = vd_docgroup_add_chunk(g);
        if (!c)
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        if ((e = chunk_build(ns, doc_id, member, score, chunks[i], c, errstr, errstr_size)))
            return e;
    }

    if (file && file->type != REDIS_REPLY_NIL) {
        vd__key_file(key, ns, doc_id);
        if (file->type != REDIS_REPLY_STRING)
            return vd__reply_err(file, "GET", key, errstr, errstr_size);
        g->has_file = true;
        g->file.doc_id = vd_strdup(doc_id);
        g->file.len = file->len;
        g->file.data = malloc(file->len ? file->len : 1);
        if (!g->file.doc_id || !g->file.data)
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        memcpy(g->file.data, file->str, file->len);
    }
    return VD_ERR_OK;
}

/* ---- meta ------------------------------------------------------------- */
vd_err vd_store_meta_get(vd_store *s, const char *ns, vd_meta *out, char *errstr,
                         size_t errstr_size) {
    vd_err e;
    char key[VD__KEY_MAX];
    redisReply *r = NULL;
    memset(out, 0, sizeof *out);
    if ((e = vd__ns_check(ns, errstr, errstr_size)) || (e = vd__store_ready(s, errstr, errstr_size)))
        return e;
    size_t kl = vd__key_meta(key, ns);
    const char *argv[2] = {"HGETALL", key};
    size_t lens[2] = {7, kl};
    if ((e = store_cmd(s, 2, argv, lens, &r, errstr, errstr_size)))
        return e;
    if ((e = hash_check(r, "HGETALL", key, errstr, errstr_size)))
        goto done;
    if (r->elements == 0) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOT_FOUND, "%s: no meta", key);
        goto done;
    }
    int64_t ver = 0, dim = 0;
    if ((e = field_i64(r, "schema_version", key, &ver, errstr, errstr_size)) ||
        (e = field_i64(r, "dim", key, &dim, errstr, errstr_size)) ||
        (e = field_i64(r, "created_at", key, &out->created_at, errstr, errstr_size)))
        goto done;
    if (ver < 0 || ver > INT32_MAX || dim < 0 || dim > INT32_MAX) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD, "%s: schema_version or dim out of range", key);
        goto done;
    }
    out->schema_version = (int)ver;
    out->dim = (int)dim;
    out->model = field_str(r, "model", "", NULL);
    out->distance = field_str(r, "distance", "", NULL);
    if (!out->model || !out->distance)
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
done:
    freeReplyObject(r);
    if (e)
        vd_meta_clear(out);
    return e;
}

vd_err vd_store_meta_put(vd_store *s, const char *ns, const vd_meta *m, char *errstr,
                         size_t errstr_size) {
    vd_err e;
    char key[VD__KEY_MAX], ver[24], dim[24], at[24];
    redisReply *r = NULL;
    if ((e = vd__ns_check(ns, errstr, errstr_size)) || (e = vd__store_ready(s, errstr, errstr_size)))
        return e;
    size_t kl = vd__key_meta(key, ns);
    snprintf(ver, sizeof ver, "%d", m->schema_version);
    snprintf(dim, sizeof dim, "%d", m->dim);
    snprintf(at, sizeof at, "%" PRId64, m->created_at);
    const char *model = m->model ? m->model : "";
    const char *dist = m->distance ? m->distance : "";
    const char *argv[12] = {"HSET", key, "schema_version", ver, "dim", dim, "model", model,
                            "distance", dist, "created_at", at};
    size_t lens[12];
    for (int i = 0; i < 12; i++)
        lens[i] = i == 1 ? kl : strlen(argv[i]);
    if ((e = store_cmd(s, 12, argv, lens, &r, errstr, errstr_size)))
        return e;
    if (r->type != REDIS_REPLY_INTEGER)
        e = vd__reply_err(r, "HSET", key, errstr, errstr_size);
    freeReplyObject(r);
    return e;
}

/* ---- a growable argv for one command ---------------------------------- */
typedef struct argv_t {
    const char **v;
    size_t *l;
    size_t n, cap;
} argv_t;

static bool argv_push(argv_t *a, const void *p, size_t len) {
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 32;
        const char **nv = realloc(a->v, ncap * sizeof *nv);
        if (!nv)
            return false;
        a->v = nv;
        size_t *nl = realloc(a->l, ncap * sizeof *nl);
        if (!nl)
            return false;
        a->l = nl;
        a->cap = ncap;
    }
    a->v[a->n] = p;
    a->l[a->n] = len;
    a->n++;
    return true;
}

static bool argv_pushs(argv_t *a, const char *s) { return argv_push(a, s, strlen(s)); }

static void argv_free(argv_t *a) {
    free(a->v);
    free(a->l);
    memset(a, 0, sizeof *a);
}

/* Appends the argv as one command and resets it for the next. */
static vd_err argv_send(vd_store *s, argv_t *a, char *errstr, size_t errstr_size) {
    if (a->n > INT32_MAX) {
        s->broken = true; /* part of a pipeline may already be queued */
        a->n = 0;
        return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE, "command too long");
    }
    vd_err e = vd__store_append(s, (int)a->n, a->v, a->l, errstr, errstr_size);
    a->n = 0;
    return e;
}

/* ---- documents -------------------------------------------------------- */
static int cmp_chunk_id(const void *a, const void *b) {
    const vd_chunk *const *x = a, *const *y = b;
    return strcmp((*x)->id, (*y)->id);
}

/* Everything that can be checked without Redis, before anything is sent. */
static vd_err doc_validate(const vd_docgroup *g, size_t dim, char *errstr, size_t errstr_size) {
    const vd_doc *d = &g->doc;
    if (!d->id || !vd_id_valid(d->id, strlen(d->id)))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID, "bad document id '%.64s'",
                         d->id ? d->id : "(null)");
    size_t want = dim;
    for (size_t i = 0; i < g->nchunks; i++) {
        const vd_chunk *c = &g->chunks[i];
        if (!c->id || !vd_id_valid(c->id, strlen(c->id)))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID,
                             "document %s: bad chunk id '%.64s'", d->id,
                             c->id ? c->id : "(null)");
        if (c->doc_id && strcmp(c->doc_id, d->id) != 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "chunk %s names document '%.64s', not %s", c->id, c->doc_id,
                             d->id);
        if (c->dim == 0 || (want && c->dim != want))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM,
                             "document %s chunk %s: embedding has %zu floats, expected %zu",
                             d->id, c->id, c->dim, want);
        want = c->dim;
        if (!c->embedding)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "document %s chunk %s: no embedding", d->id, c->id);
        for (size_t k = 0; k < c->dim; k++)
            if (vd_embedding_check(&c->embedding[k], 1))
                return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FLOAT,
                                 "document %s chunk %s: embedding[%zu] is NaN or Inf", d->id,
                                 c->id, k);
        if (!c->text && c->text_len)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "document %s chunk %s: text_len without text", d->id, c->id);
    }
    if (g->has_file && !g->file.data && g->file.len)
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "document %s: file length without data", d->id);
    if (g->nchunks > 1) {
        const vd_chunk **p = malloc(g->nchunks * sizeof *p);
        if (!p)
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < g->nchunks; i++)
            p[i] = &g->chunks[i];
        qsort(p, g->nchunks, sizeof *p, cmp_chunk_id);
        for (size_t i = 1; i < g->nchunks; i++)
            if (strcmp(p[i - 1]->id, p[i]->id) == 0) {
                vd_err e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                                     "document %s: chunk id %s appears twice", d->id, p[i]->id);
                free(p);
                return e;
            }
        free(p);
    }
    return VD_ERR_OK;
}

static bool type_is(const redisReply *r, const char *a) {
    return r->type == REDIS_REPLY_STATUS &&
           (strcmp(r->str, "none") == 0 || strcmp(r->str, a) == 0);
}

/* Sends UNWATCH and reads its reply. */
static vd_err store_unwatch(vd_store *s, char *errstr, size_t errstr_size) {
    const char *argv[1] = {"UNWATCH"};
    size_t lens[1] = {7};
    redisReply *r = NULL;
    vd_err e = store_cmd(s, 1, argv, lens, &r, errstr, errstr_size);
    if (!e)
        freeReplyObject(r);
    return e;
}

/* The keys of one document, built once per call. */
typedef struct doc_keys {
    char docs[VD__KEY_MAX], doc[VD__KEY_MAX], zset[VD__KEY_MAX], file[VD__KEY_MAX];
    size_t docs_len, doc_len, zset_len, file_len;
    char (*chunk)[VD__KEY_MAX]; /* one per chunk of the group */
    size_t *chunk_len;
    size_t nchunk;
} doc_keys;

static void doc_keys_init(doc_keys *k, const char *ns, const char *id) {
    memset(k, 0, sizeof *k);
    k->docs_len = vd__key_docs(k->docs, ns);
    k->doc_len = vd__key_doc(k->doc, ns, id);
    k->zset_len = vd__key_zset(k->zset, ns, id);
    k->file_len = vd__key_file(k->file, ns, id);
}

static void doc_keys_free(doc_keys *k) {
    free(k->chunk);
    free(k->chunk_len);
    k->chunk = NULL;
    k->chunk_len = NULL;
}

/* Builds the keys of every member of an old chunk zset (ZRANGE reply). */
static vd_err old_chunk_keys(const char *ns, const char *id, const redisReply *z, doc_keys *k,
                             char *errstr, size_t errstr_size) {
    k->nchunk = 0;
    if (z->type != REDIS_REPLY_ARRAY || z->elements == 0)
        return VD_ERR_OK;
    k->chunk = malloc(z->elements * sizeof *k->chunk);
    k->chunk_len = malloc(z->elements * sizeof *k->chunk_len);
    if (!k->chunk || !k->chunk_len)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < z->elements; i++) {
        const redisReply *m = z->element[i];
        if (m->type != REDIS_REPLY_STRING)
            continue;
        size_t n = vd__key_chunk(k->chunk[k->nchunk], ns, id, m->str, m->len);
        if (n)
            k->chunk_len[k->nchunk++] = n;
    }
    return VD_ERR_OK;
}

/* Undoes a transaction that Redis applied only in part (see doc_put). */
static void doc_undo(vd_store *s, const doc_keys *nk) {
    argv_t a = {0};
    redisReply *r = NULL;
    char tmp[8];
    bool ok = argv_pushs(&a, "DEL") && argv_push(&a, nk->doc, nk->doc_len) &&
              argv_push(&a, nk->zset, nk->zset_len) && argv_push(&a, nk->file, nk->file_len);
    for (size_t i = 0; ok && i < nk->nchunk; i++)
        ok = argv_push(&a, nk->chunk[i], nk->chunk_len[i]);
    if (ok && !argv_send(s, &a, tmp, sizeof tmp) && !vd__store_read(s, 1, &r, tmp, sizeof tmp))
        freeReplyObject(r);
    argv_free(&a);
}

/*
 * The WATCH/MULTI/EXEC write of one validated document, two round trips:
 * the fallback of doc_put_batch when the server refuses scripts.
 */
static vd_err doc_put_watch(vd_store *s, const char *ns, const vd_docgroup *g,
                            vd_store_put_mode mode, char *errstr, size_t errstr_size) {
    vd_err e;
    const bool replace = mode == VD_STORE_PUT_REPLACE;
    if ((e = vd__store_ready(s, errstr, errstr_size)))
        return e;

    const vd_doc *d = &g->doc;
    const char *id = d->id;
    doc_keys nk, ok_keys;
    doc_keys_init(&nk, ns, id);
    doc_keys_init(&ok_keys, ns, id);
    argv_t a = {0};
    redisReply **rep = NULL;
    size_t nrep = 0;
    unsigned char *blob = NULL;
    char (*nums)[24] = NULL; /* seq of each chunk */
    char size_s[24], cat_s[24], uat_s[24], cc_s[24];

    nk.nchunk = g->nchunks;
    nk.chunk = malloc((g->nchunks ? g->nchunks : 1) * sizeof *nk.chunk);
    nk.chunk_len = malloc((g->nchunks ? g->nchunks : 1) * sizeof *nk.chunk_len);
    nums = malloc((g->nchunks ? g->nchunks : 1) * sizeof *nums);
    size_t maxdim = 0;
    for (size_t i = 0; i < g->nchunks; i++)
        if (g->chunks[i].dim > maxdim)
            maxdim = g->chunks[i].dim;
    blob = malloc(maxdim * 4 + 1);
    if (!nk.chunk || !nk.chunk_len || !nums || !blob) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < g->nchunks; i++) {
        nk.chunk_len[i] = vd__key_chunk(nk.chunk[i], ns, id, g->chunks[i].id,
                                        strlen(g->chunks[i].id));
        snprintf(nums[i], sizeof nums[i], "%" PRId64, g->chunks[i].seq);
    }
    snprintf(size_s, sizeof size_s, "%" PRId64, d->size);
    snprintf(cat_s, sizeof cat_s, "%" PRId64, d->created_at);
    snprintf(uat_s, sizeof uat_s, "%" PRId64, d->updated_at);
    snprintf(cc_s, sizeof cc_s, "%zu", g->nchunks);

    for (int attempt = 0;; attempt++) {
        if (attempt == STORE_WATCH_RETRIES) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_REDIS,
                          "%s: document changed concurrently %d times; nothing written",
                          nk.doc, attempt);
            goto done;
        }
        /*
         * 1. WATCH the document's own keys, check every key it will write
         * holds the right type (a runtime error inside MULTI would not stop
         * the other commands), and read the old chunk list.
         */
        bool ok = argv_pushs(&a, "WATCH") && argv_push(&a, nk.doc, nk.doc_len) &&
                  argv_push(&a, nk.zset, nk.zset_len) && argv_push(&a, nk.file, nk.file_len);
        for (size_t i = 0; ok && i < nk.nchunk; i++)
            ok = argv_push(&a, nk.chunk[i], nk.chunk_len[i]);
        if (!ok) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((e = argv_send(s, &a, errstr, errstr_size)))
            goto done;
        const char *tkeys[4] = {nk.docs, nk.doc, nk.zset, nk.file};
        const size_t tlens[4] = {nk.docs_len, nk.doc_len, nk.zset_len, nk.file_len};
        for (int i = 0; i < 4 && !e; i++) {
            const char *argv[2] = {"TYPE", tkeys[i]};
            size_t lens[2] = {4, tlens[i]};
            e = vd__store_append(s, 2, argv, lens, errstr, errstr_size);
        }
        for (size_t i = 0; i < nk.nchunk && !e; i++) {
            const char *argv[2] = {"TYPE", nk.chunk[i]};
            size_t lens[2] = {4, nk.chunk_len[i]};
            e = vd__store_append(s, 2, argv, lens, errstr, errstr_size);
        }
        if (!e && replace) {
            const char *argv[4] = {"ZRANGE", nk.zset, "0", "-1"};
            size_t lens[4] = {6, nk.zset_len, 1, 2};
            e = vd__store_append(s, 4, argv, lens, errstr, errstr_size);
        }
        if (e)
            goto done;
        nrep = 5 + nk.nchunk + (replace ? 1 : 0);
        rep = calloc(nrep, sizeof *rep);
        if (!rep) {
            s->broken = true; /* replies are left unread */
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((e = vd__store_read(s, nrep, rep, errstr, errstr_size)))
            goto done;
        if (rep[0]->type == REDIS_REPLY_ERROR) {
            e = vd__reply_err(rep[0], "WATCH", nk.doc, errstr, errstr_size);
            goto done;
        }
        static const char *const want[4] = {"set", "hash", "zset", "string"};
        for (size_t i = 1; i < nrep - (replace ? 1 : 0); i++) {
            const char *w = i < 5 ? want[i - 1] : "hash";
            const char *k = i < 5 ? tkeys[i - 1] : nk.chunk[i - 5];
            if (!type_is(rep[i], w)) {
                if (rep[i]->type == REDIS_REPLY_STATUS)
                    e = vd_seterr(errstr, errstr_size, VD_ERR_REDIS,
                                  "WRONGTYPE %s holds a %s, expected a %s; nothing written", k,
                                  rep[i]->str, w);
                else
                    e = vd__reply_err(rep[i], "TYPE", k, errstr, errstr_size);
                store_unwatch(s, NULL, 0);
                goto done;
            }
        }
        if (mode == VD_STORE_PUT_IF_ABSENT && !type_is(rep[2], "none")) {
            /* The doc hash is WATCHed: one created after this check aborts
             * EXEC and the retry sees it. */
            e = vd_seterr(errstr, errstr_size, VD_ERR_CONFLICT,
                          "%s already exists; nothing written", nk.doc);
            store_unwatch(s, NULL, 0);
            goto done;
        }
        doc_keys_free(&ok_keys);
        if (replace && (e = old_chunk_keys(ns, id, rep[nrep - 1], &ok_keys, errstr, errstr_size))) {
            store_unwatch(s, NULL, 0);
            goto done;
        }
        vd__replies_free(rep, nrep);
        free(rep);
        rep = NULL;

        /* 2. MULTI: clear what the document owned, write it anew, EXEC. */
        size_t queued = 0;
        const char *multi[1] = {"MULTI"};
        size_t mlen[1] = {5};
        if ((e = vd__store_append(s, 1, multi, mlen, errstr, errstr_size)))
            goto done;
        ok = argv_pushs(&a, "DEL") && argv_push(&a, nk.doc, nk.doc_len) &&
             argv_push(&a, nk.zset, nk.zset_len);
        if (ok && (replace || g->has_file))
            ok = argv_push(&a, nk.file, nk.file_len);
        for (size_t i = 0; ok && i < ok_keys.nchunk; i++)
            ok = argv_push(&a, ok_keys.chunk[i], ok_keys.chunk_len[i]);
        for (size_t i = 0; ok && i < nk.nchunk; i++)
            ok = argv_push(&a, nk.chunk[i], nk.chunk_len[i]);
        if (!ok) {
            s->broken = true;
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((e = argv_send(s, &a, errstr, errstr_size)))
            goto done;
        queued++;

        const char *meta = d->metadata ? d->metadata : "{}";
        ok = argv_pushs(&a, "HSET") && argv_push(&a, nk.doc, nk.doc_len) &&
             argv_pushs(&a, "id") && argv_pushs(&a, id) && argv_pushs(&a, "title") &&
             argv_pushs(&a, d->title ? d->title : "") && argv_pushs(&a, "source") &&
             argv_pushs(&a, d->source ? d->source : "") && argv_pushs(&a, "content_type") &&
             argv_pushs(&a, d->content_type ? d->content_type : "") &&
             argv_pushs(&a, "size") && argv_pushs(&a, size_s) && argv_pushs(&a, "sha256") &&
             argv_pushs(&a, d->sha256 ? d->sha256 : "") && argv_pushs(&a, "created_at") &&
             argv_pushs(&a, cat_s) && argv_pushs(&a, "updated_at") &&
             argv_pushs(&a, uat_s) && argv_pushs(&a, "chunk_count") &&
             argv_pushs(&a, cc_s) && argv_pushs(&a, "metadata") && argv_pushs(&a, meta);
        if (!ok) {
            s->broken = true;
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((e = argv_send(s, &a, errstr, errstr_size)))
            goto done;
        queued++;

        if (g->nchunks) {
            ok = argv_pushs(&a, "ZADD") && argv_push(&a, nk.zset, nk.zset_len);
            for (size_t i = 0; ok && i < g->nchunks; i++)
                ok = argv_pushs(&a, nums[i]) && argv_pushs(&a, g->chunks[i].id);
            if (!ok) {
                s->broken = true;
                e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
                goto done;
            }
            if ((e = argv_send(s, &a, errstr, errstr_size)))
                goto done;
            queued++;
        }
        for (size_t i = 0; i < g->nchunks; i++) {
            const vd_chunk *c = &g->chunks[i];
            vd_f32_to_le(blob, c->embedding, c->dim);
            const char *argv[14] = {"HSET", nk.chunk[i], "id", c->id, "doc_id", id,
                                    "seq", nums[i], "text", c->text ? c->text : "",
                                    "embedding", (const char *)blob, "metadata",
                                    c->metadata ? c->metadata : "{}"};
            /* Binary arguments (key, text, embedding) carry their own length:
             * strlen() only on the plain-text ones. */
            size_t lens[14];
            for (int j = 0; j < 14; j++)
                if (j != 1 && j != 9 && j != 11)
                    lens[j] = strlen(argv[j]);
            lens[1] = nk.chunk_len[i];
            lens[9] = c->text ? c->text_len : 0;
            lens[11] = c->dim * 4;
            if ((e = vd__store_append(s, 14, argv, lens, errstr, errstr_size)))
                goto done;
            queued++;
        }
        if (g->has_file) {
            const char *argv[3] = {"SET", nk.file,
                                   g->file.data ? (const char *)g->file.data : ""};
            size_t lens[3] = {3, nk.file_len, g->file.len};
            if ((e = vd__store_append(s, 3, argv, lens, errstr, errstr_size)))
                goto done;
            queued++;
        }
        {
            const char *argv[3] = {"SADD", nk.docs, id};
            size_t lens[3] = {4, nk.docs_len, strlen(id)};
            if ((e = vd__store_append(s, 3, argv, lens, errstr, errstr_size)))
                goto done;
            queued++;
        }
        {
            const char *argv[1] = {"EXEC"};
            size_t lens[1] = {4};
            if ((e = vd__store_append(s, 1, argv, lens, errstr, errstr_size)))
                goto done;
        }
        nrep = queued + 2;
        rep = calloc(nrep, sizeof *rep);
        if (!rep) {
            s->broken = true;
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((e = vd__store_read(s, nrep, rep, errstr, errstr_size)))
            goto done;
        redisReply *ex = rep[nrep - 1];
        if (ex->type == REDIS_REPLY_NIL) { /* a WATCHed key changed: try again */
            vd__replies_free(rep, nrep);
            free(rep);
            rep = NULL;
            continue;
        }
        if (ex->type != REDIS_REPLY_ARRAY) {
            /* EXECABORT: a command was refused while queued, nothing ran. */
            for (size_t i = 0; i + 1 < nrep; i++)
                if (rep[i]->type == REDIS_REPLY_ERROR) {
                    ex = rep[i];
                    break;
                }
            e = vd__reply_err(ex, "MULTI/EXEC", nk.doc, errstr, errstr_size);
            goto done;
        }
        for (size_t i = 0; i < ex->elements; i++) {
            if (ex->element[i]->type == REDIS_REPLY_ERROR) {
                /*
                 * Only possible when a key's type changed between the TYPE
                 * checks and EXEC on an unwatched key (NS:docs): undo.
                 */
                e = vd__reply_err(ex->element[i], "EXEC", nk.doc, errstr, errstr_size);
                doc_undo(s, &nk);
                goto done;
            }
        }
        e = VD_ERR_OK;
        break;
    }
done:
    if (rep) {
        vd__replies_free(rep, nrep);
        free(rep);
    }
    argv_free(&a);
    doc_keys_free(&nk);
    doc_keys_free(&ok_keys);
    free(nums);
    free(blob);
    return e;
}

/*
 * The doc-put script: KEYS = NS:docs, doc hash, chunk zset, file, then one
 * chunk key per chunk; ARGV = mode ("0" merge, "1" replace, "2" if absent),
 * has_file, the chunk key prefix "NS:chunk:{DOC}:", the file bytes, the 10
 * doc fields (id title source content_type size sha256 created_at
 * updated_at chunk_count metadata), then per chunk id seq text embedding
 * metadata. It checks every type first and only then writes, so a refusal
 * writes nothing; once a script has written, Redis does not stop it for
 * maxmemory, so it never stops half way. Returns 1 written, 0 exists.
 * The usual case of an import, none of the document's keys there yet, costs
 * one EXISTS instead of a TYPE per key and needs no DEL. DEL, EXISTS and
 * ZADD go in slices: unpack() has a stack limit.
 */
static const char doc_put_lua[] =
    "local want = {'set', 'hash', 'zset', 'string'}\n"
    "local function bad(i)\n"
    "  local t = redis.call('TYPE', KEYS[i]).ok\n"
    "  local w = want[i] or 'hash'\n"
    "  if t ~= 'none' and t ~= w then\n"
    "    return 'WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t .. ', expected a ' .. w ..\n"
    "      '; nothing written'\n"
    "  end\n"
    "end\n"
    "local e = bad(1)\n"
    "if e then return redis.error_reply(e) end\n"
    "local mode, has_file = ARGV[1], ARGV[2]\n"
    "local present = 0\n"
    "for j = 2, #KEYS, 1000 do\n"
    "  present = present + redis.call('EXISTS', unpack(KEYS, j, math.min(j + 999, #KEYS)))\n"
    "end\n"
    "if present > 0 then\n"
    "  for i = 2, #KEYS do\n"
    "    e = bad(i)\n"
    "    if e then return redis.error_reply(e) end\n"
    "  end\n"
    "  if mode == '2' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end\n"
    "  local dels = {KEYS[2], KEYS[3]}\n"
    "  if mode == '1' or has_file == '1' then dels[#dels + 1] = KEYS[4] end\n"
    "  if mode == '1' then\n"
    "    local old = redis.call('ZRANGE', KEYS[3], 0, -1)\n"
    "    for j = 1, #old do dels[#dels + 1] = ARGV[3] .. old[j] end\n"
    "  end\n"
    "  for i = 5, #KEYS do dels[#dels + 1] = KEYS[i] end\n"
    "  for j = 1, #dels, 1000 do\n"
    "    redis.call('DEL', unpack(dels, j, math.min(j + 999, #dels)))\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'id', ARGV[5], 'title', ARGV[6], 'source', ARGV[7],\n"
    "  'content_type', ARGV[8], 'size', ARGV[9], 'sha256', ARGV[10], 'created_at', ARGV[11],\n"
    "  'updated_at', ARGV[12], 'chunk_count', ARGV[13], 'metadata', ARGV[14])\n"
    "local nch = #KEYS - 4\n"
    "for j = 1, nch, 500 do\n"
    "  local z = {}\n"
    "  for k = j, math.min(j + 499, nch) do\n"
    "    local b = 14 + (k - 1) * 5\n"
    "    z[#z + 1] = ARGV[b + 2]\n"
    "    z[#z + 1] = ARGV[b + 1]\n"
    "  end\n"
    "  redis.call('ZADD', KEYS[3], unpack(z))\n"
    "end\n"
    "for k = 1, nch do\n"
    "  local b = 14 + (k - 1) * 5\n"
    "  redis.call('HSET', KEYS[4 + k], 'id', ARGV[b + 1], 'doc_id', ARGV[5], 'seq', ARGV[b + 2],\n"
    "    'text', ARGV[b + 3], 'embedding', ARGV[b + 4], 'metadata', ARGV[b + 5])\n"
    "end\n"
    "if has_file == '1' then redis.call('SET', KEYS[4], ARGV[4]) end\n"
    "redis.call('SADD', KEYS[1], ARGV[5])\n"
    "return 1\n";

static bool reply_starts(const redisReply *r, const char *prefix) {
    size_t n = strlen(prefix);
    return r->type == REDIS_REPLY_ERROR && r->len >= n && memcmp(r->str, prefix, n) == 0;
}

/*
 * SCRIPT LOAD of doc_put_lua into s->script_sha. A server that refuses
 * scripts (ACL NOPERM, command renamed away) sets s->scripts_refused and
 * returns OK: the callers then take the WATCH path.
 */
static vd_err store_script_load(vd_store *s, char *errstr, size_t errstr_size) {
    const char *argv[3] = {"SCRIPT", "LOAD", doc_put_lua};
    size_t lens[3] = {6, 4, sizeof doc_put_lua - 1};
    redisReply *r = NULL;
    vd_err e = store_cmd(s, 3, argv, lens, &r, errstr, errstr_size);
    if (e)
        return e;
    if (r->type == REDIS_REPLY_STRING && r->len == 40) {
        memcpy(s->script_sha, r->str, 40);
        s->script_sha[40] = 0;
    } else if (reply_starts(r, "NOPERM") || reply_starts(r, "ERR unknown command") ||
               reply_starts(r, "ERR unknown subcommand")) {
        s->scripts_refused = true;
        vd_log(VD_LOG_WARN, "redis refuses scripts: writing documents with WATCH/MULTI/EXEC",
               "host=%s port=%d", s->host, s->port);
    } else {
        e = vd__reply_err(r, "SCRIPT LOAD", NULL, errstr, errstr_size);
    }
    freeReplyObject(r);
    return e;
}

/* Buffers reused across the documents of one batch. */
typedef struct put_bufs {
    argv_t a;
    char (*keys)[VD__KEY_MAX]; /* chunk keys */
    char (*nums)[24];          /* chunk seqs */
    size_t cap;                /* slots in keys and nums */
    unsigned char *blob;       /* every embedding of a document, LE */
    size_t blob_cap;
} put_bufs;

static void put_bufs_free(put_bufs *b) {
    argv_free(&b->a);
    free(b->keys);
    free(b->nums);
    free(b->blob);
    memset(b, 0, sizeof *b);
}

static bool put_bufs_reserve(put_bufs *b, size_t nchunks, size_t blob_bytes) {
    if (nchunks > b->cap) {
        void *k = realloc(b->keys, nchunks * sizeof *b->keys);
        if (!k)
            return false;
        b->keys = k;
        void *n = realloc(b->nums, nchunks * sizeof *b->nums);
        if (!n)
            return false;
        b->nums = n;
        b->cap = nchunks;
    }
    if (blob_bytes > b->blob_cap) {
        void *p = realloc(b->blob, blob_bytes);
        if (!p)
            return false;
        b->blob = p;
        b->blob_cap = blob_bytes;
    }
    return true;
}

/* Appends EVALSHA for one validated document. */
static vd_err put_append(vd_store *s, const char *ns, const vd_docgroup *g,
                         vd_store_put_mode mode, put_bufs *b, char *errstr,
                         size_t errstr_size) {
    const vd_doc *d = &g->doc;
    const char *id = d->id;
    size_t blob_bytes = 0;
    for (size_t i = 0; i < g->nchunks; i++)
        blob_bytes += g->chunks[i].dim * 4;
    if (!put_bufs_reserve(b, g->nchunks, blob_bytes + 1))
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
    char docs[VD__KEY_MAX], doc[VD__KEY_MAX], zset[VD__KEY_MAX], file[VD__KEY_MAX],
        prefix[VD__KEY_MAX], numkeys[24], size_s[24], cat_s[24], uat_s[24], cc_s[24];
    size_t docs_len = vd__key_docs(docs, ns), doc_len = vd__key_doc(doc, ns, id),
           zset_len = vd__key_zset(zset, ns, id), file_len = vd__key_file(file, ns, id),
           prefix_len = vd__key_chunk(prefix, ns, id, "", 0);
    snprintf(numkeys, sizeof numkeys, "%zu", 4 + g->nchunks);
    snprintf(size_s, sizeof size_s, "%" PRId64, d->size);
    snprintf(cat_s, sizeof cat_s, "%" PRId64, d->created_at);
    snprintf(uat_s, sizeof uat_s, "%" PRId64, d->updated_at);
    snprintf(cc_s, sizeof cc_s, "%zu", g->nchunks);
    static const char *const mode_s[3] = {"0", "1", "2"};

    argv_t *a = &b->a;
    a->n = 0;
    bool ok = argv_push(a, "EVALSHA", 7) && argv_push(a, s->script_sha, 40) &&
              argv_pushs(a, numkeys) && argv_push(a, docs, docs_len) &&
              argv_push(a, doc, doc_len) && argv_push(a, zset, zset_len) &&
              argv_push(a, file, file_len);
    for (size_t i = 0; ok && i < g->nchunks; i++) {
        const vd_chunk *c = &g->chunks[i];
        size_t kl = vd__key_chunk(b->keys[i], ns, id, c->id, strlen(c->id));
        ok = argv_push(a, b->keys[i], kl);
    }
    ok = ok && argv_pushs(a, mode_s[mode]) && argv_pushs(a, g->has_file ? "1" : "0") &&
         argv_push(a, prefix, prefix_len) &&
         argv_push(a, g->has_file && g->file.data ? (const char *)g->file.data : "",
                   g->has_file ? g->file.len : 0) &&
         argv_pushs(a, id) && argv_pushs(a, d->title ? d->title : "") &&
         argv_pushs(a, d->source ? d->source : "") &&
         argv_pushs(a, d->content_type ? d->content_type : "") && argv_pushs(a, size_s) &&
         argv_pushs(a, d->sha256 ? d->sha256 : "") && argv_pushs(a, cat_s) &&
         argv_pushs(a, uat_s) && argv_pushs(a, cc_s) &&
         argv_pushs(a, d->metadata ? d->metadata : "{}");
    size_t off = 0;
    for (size_t i = 0; ok && i < g->nchunks; i++) {
        const vd_chunk *c = &g->chunks[i];
        snprintf(b->nums[i], sizeof b->nums[i], "%" PRId64, c->seq);
        vd_f32_to_le(b->blob + off, c->embedding, c->dim);
        /* Binary arguments (text, embedding) carry their own length. */
        ok = argv_pushs(a, c->id) && argv_pushs(a, b->nums[i]) &&
             argv_push(a, c->text ? c->text : "", c->text ? c->text_len : 0) &&
             argv_push(a, b->blob + off, c->dim * 4) &&
             argv_pushs(a, c->metadata ? c->metadata : "{}");
        off += c->dim * 4;
    }
    if (!ok) {
        a->n = 0;
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
    }
    return argv_send(s, a, errstr, errstr_size);
}

/* Records a document's failure; errstr keeps the lowest-index one's text. */
static void put_fail(vd_err *results, size_t i, vd_err e, const char *msg, size_t *first,
                     char *errstr, size_t errstr_size) {
    results[i] = e;
    if (i < *first) {
        *first = i;
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "%s", msg);
    }
}

/* Result of a document whose reply is still to be read (never returned). */
#define PUT_PENDING VD_ERR__COUNT

static size_t put_first_failed(const vd_err *results, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (results[i] != VD_ERR_OK && results[i] != PUT_PENDING)
            return i;
    return n;
}

/* Pushes hiredis's output buffer onto the socket. */
static vd_err store_flush(vd_store *s, char *errstr, size_t errstr_size) {
    int done = 0;
    do {
        if (redisBufferWrite(s->c, &done) != REDIS_OK)
            return store_conn_err(s, "sending", errstr, errstr_size);
    } while (!done);
    return VD_ERR_OK;
}

vd_err vd_store_doc_put_batch_send(vd_store *s, const char *ns, const vd_docgroup *groups,
                                   const vd_store_put_mode *modes, size_t n, size_t dim,
                                   vd_err *results, char *errstr, size_t errstr_size) {
    char msg[512];
    size_t first = n, pending = 0;
    vd_err e;
    if (errstr && errstr_size)
        errstr[0] = '\0';
    if ((e = vd__ns_check(ns, msg, sizeof msg))) {
        for (size_t i = 0; i < n; i++)
            put_fail(results, i, e, msg, &first, errstr, errstr_size);
        return e;
    }
    for (size_t i = 0; i < n; i++) {
        vd_store_put_mode m = modes ? modes[i] : VD_STORE_PUT_MERGE;
        if (m != VD_STORE_PUT_MERGE && m != VD_STORE_PUT_REPLACE && m != VD_STORE_PUT_IF_ABSENT)
            e = vd_seterr(msg, sizeof msg, VD_ERR_INVALID_ARG, "unknown put mode %d", (int)m);
        else
            e = doc_validate(&groups[i], dim, msg, sizeof msg);
        if (e) {
            put_fail(results, i, e, msg, &first, errstr, errstr_size);
        } else {
            results[i] = PUT_PENDING;
            pending++;
        }
    }
    if (!pending)
        return VD_ERR_OK;
    if (s->inflight > 0 && (s->broken || !s->c || s->c->err)) {
        /* Reconnecting now would make the batch in flight read our replies. */
        e = store_conn_err(s, "connection lost with a batch in flight", msg, sizeof msg);
        goto failed;
    }
    if ((e = vd__store_ready(s, msg, sizeof msg)) ||
        (!s->script_sha[0] && !s->scripts_refused &&
         (e = store_script_load(s, msg, sizeof msg))))
        goto failed;
    if (s->scripts_refused) {
        /* No scripts: WATCH/MULTI/EXEC, document by document, now. */
        for (size_t i = 0; i < n; i++) {
            if (results[i] != PUT_PENDING)
                continue;
            vd_store_put_mode m = modes ? modes[i] : VD_STORE_PUT_MERGE;
            results[i] = doc_put_watch(s, ns, &groups[i], m, msg, sizeof msg);
            if (results[i])
                put_fail(results, i, results[i], msg, &first, errstr, errstr_size);
        }
        return VD_ERR_OK;
    }
    /*
     * SCRIPT LOAD heads every batch (2 KiB, microseconds): a server that
     * restarted or flushed its script cache since the last batch has the
     * script again before the first EVALSHA of this one.
     */
    put_bufs b;
    memset(&b, 0, sizeof b);
    const char *load[3] = {"SCRIPT", "LOAD", doc_put_lua};
    size_t load_len[3] = {6, 4, sizeof doc_put_lua - 1};
    if ((e = vd__store_append(s, 3, load, load_len, msg, sizeof msg)))
        goto failed;
    for (size_t i = 0; i < n; i++) {
        if (results[i] != PUT_PENDING)
            continue;
        vd_store_put_mode m = modes ? modes[i] : VD_STORE_PUT_MERGE;
        if ((e = put_append(s, ns, &groups[i], m, &b, msg, sizeof msg))) {
            s->broken = true; /* part of the pipeline is queued: drop it */
            put_bufs_free(&b);
            goto failed;
        }
    }
    put_bufs_free(&b);
    if ((e = store_flush(s, msg, sizeof msg)))
        goto failed; /* the connection is broken: nothing is in flight */
    s->inflight++;
    return VD_ERR_OK;

failed:
    /* Nothing of this batch reached Redis, or the connection is gone and
     * nobody knows: either way, never in part. */
    for (size_t i = 0; i < n; i++)
        if (results[i] == PUT_PENDING)
            put_fail(results, i, e, msg, &first, errstr, errstr_size);
    return e;
}

vd_err vd_store_doc_put_batch_recv(vd_store *s, const char *ns, const vd_docgroup *groups,
                                   size_t n, vd_err *results, char *errstr,
                                   size_t errstr_size) {
    char msg[512], key[VD__KEY_MAX];
    size_t first = put_first_failed(results, n), pending = 0;
    vd_err e = VD_ERR_OK;
    redisReply *r = NULL;
    for (size_t i = 0; i < n; i++)
        pending += results[i] == PUT_PENDING;
    if (!pending)
        return first < n ? results[first] : VD_ERR_OK;
    if (s->inflight > 0)
        s->inflight--;
    if (s->broken) { /* replies out of step or gone: do not read */
        e = store_conn_err(s, "connection lost with a batch in flight", msg, sizeof msg);
        goto lost;
    }
    if ((e = vd__store_read(s, 1, &r, msg, sizeof msg)))
        goto lost;
    /* A failed SCRIPT LOAD shows again in each EVALSHA's NOSCRIPT. */
    freeReplyObject(r);
    for (size_t i = 0; i < n; i++) {
        if (results[i] != PUT_PENDING)
            continue;
        if ((e = vd__store_read(s, 1, &r, msg, sizeof msg)))
            goto lost;
        vd__key_doc(key, ns, groups[i].doc.id);
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
            results[i] = VD_ERR_OK;
        } else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            vd_seterr(msg, sizeof msg, VD_ERR_CONFLICT, "%s already exists; nothing written",
                      key);
            put_fail(results, i, VD_ERR_CONFLICT, msg, &first, errstr, errstr_size);
        } else {
            e = vd__reply_err(r, "EVALSHA", key, msg, sizeof msg);
            put_fail(results, i, e, msg, &first, errstr, errstr_size);
        }
        freeReplyObject(r);
    }
    return first < n ? results[first] : VD_ERR_OK;

lost:
    /* Replies never read: written or not, nobody knows (never in part:
     * each document is one script). */
    for (size_t i = 0; i < n; i++)
        if (results[i] == PUT_PENDING)
            put_fail(results, i, e, msg, &first, errstr, errstr_size);
    return results[first];
}

vd_err vd_store_doc_put_batch(vd_store *s, const char *ns, const vd_docgroup *groups,
                              const vd_store_put_mode *modes, size_t n, size_t dim,
                              vd_err *results, char *errstr, size_t errstr_size) {
    vd_store_doc_put_batch_send(s, ns, groups, modes, n, dim, results, errstr, errstr_size);
    return vd_store_doc_put_batch_recv(s, ns, groups, n, results, errstr, errstr_size);
}

vd_err vd_store_doc_put(vd_store *s, const char *ns, const vd_docgroup *g, size_t dim,
                        bool replace, char *errstr, size_t errstr_size) {
    vd_store_put_mode m = replace ? VD_STORE_PUT_REPLACE : VD_STORE_PUT_MERGE;
    vd_err res = VD_ERR_OK;
    return vd_store_doc_put_batch(s, ns, g, &m, 1, dim, &res, errstr, errstr_size);
}

vd_err vd_store_doc_get(vd_store *s, const char *ns, const char *doc_id, bool with_file,
                        vd_docgroup *out, char *errstr, size_t errstr_size) {
    vd_err e;
    vd_docgroup_clear(out);
    if ((e = vd__ns_check(ns, errstr, errstr_size)))
        return e;
    if (!doc_id || !vd_id_valid(doc_id, strlen(doc_id)))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID, "bad document id '%.64s'",
                         doc_id ? doc_id : "(null)");
    if ((e = vd__store_ready(s, errstr, errstr_size)))
        return e;
    doc_keys k;
    doc_keys_init(&k, ns, doc_id);
    redisReply *head[3] = {NULL, NULL, NULL};
    redisReply **ch = NULL;
    size_t nhead = with_file ? 3 : 2, nch = 0;
    {
        const char *a1[2] = {"HGETALL", k.doc};
        size_t l1[2] = {7, k.doc_len};
        const char *a2[5] = {"ZRANGE", k.zset, "0", "-1", "WITHSCORES"};
        size_t l2[5] = {6, k.zset_len, 1, 2, 10};
        const char *a3[2] = {"GET", k.file};
        size_t l3[2] = {3, k.file_len};
        if ((e = vd__store_append(s, 2, a1, l1, errstr, errstr_size)) ||
            (e = vd__store_append(s, 5, a2, l2, errstr, errstr_size)) ||
            (with_file && (e = vd__store_append(s, 2, a3, l3, errstr, errstr_size))) ||
            (e = vd__store_read(s, nhead, head, errstr, errstr_size)))
            return e;
    }
    if ((e = hash_check(head[0], "HGETALL", k.doc, errstr, errstr_size)))
        goto done;
    if (head[0]->elements == 0) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOT_FOUND, "%s: no such document", k.doc);
        goto done;
    }
    if (head[1]->type != REDIS_REPLY_ARRAY || head[1]->elements % 2) {
        e = vd__reply_err(head[1], "ZRANGE", k.zset, errstr, errstr_size);
        goto done;
    }
    nch = head[1]->elements / 2;
    ch = calloc(nch ? nch : 1, sizeof *ch);
    if (!ch) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        goto done;
    }
    {
        /* Pipeline HGETALL of every chunk that can name a key. */
        size_t sent = 0;
        char key[VD__KEY_MAX];
        bool *has = calloc(nch ? nch : 1, sizeof *has);
        redisReply **tmp = calloc(nch ? nch : 1, sizeof *tmp);
        if (!has || !tmp) {
            free(has);
            free(tmp);
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < nch && !e; i++) {
            const redisReply *m = head[1]->element[2 * i];
            size_t kl = m->type == REDIS_REPLY_STRING
                            ? vd__key_chunk(key, ns, doc_id, m->str, m->len)
                            : 0;
            if (!kl)
                continue;
            const char *argv[2] = {"HGETALL", key};
            size_t lens[2] = {7, kl};
            e = vd__store_append(s, 2, argv, lens, errstr, errstr_size);
            has[i] = true;
            sent++;
        }
        if (!e)
            e = vd__store_read(s, sent, tmp, errstr, errstr_size);
        for (size_t i = 0, j = 0; !e && i < nch; i++)
            if (has[i])
                ch[i] = tmp[j++];
        free(has);
        free(tmp);
        if (e)
            goto done;
    }
    e = vd__group_build(ns, doc_id, head[0], head[1], ch, nch, with_file ? head[2] : NULL, out,
                        errstr, errstr_size);
done:
    vd__replies_free(head, nhead);
    vd__replies_free(ch, nch);
    free(ch);
    if (e)
        vd_docgroup_clear(out);
    return e;
}

vd_err vd_store_doc_delete(vd_store *s, const char *ns, const char *doc_id, char *errstr,
                           size_t errstr_size) {
    vd_err e;
    if ((e = vd__ns_check(ns, errstr, errstr_size)))
        return e;
    if (!doc_id || !vd_id_valid(doc_id, strlen(doc_id)))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID, "bad document id '%.64s'",
                         doc_id ? doc_id : "(null)");
    if ((e = vd__store_ready(s, errstr, errstr_size)))
        return e;
    doc_keys k;
    doc_keys_init(&k, ns, doc_id);
    argv_t a = {0};
    redisReply *rep[5] = {NULL};
    redisReply *ex_rep[4] = {NULL};
    for (int attempt = 0;; attempt++) {
        if (attempt == STORE_WATCH_RETRIES) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_REDIS,
                          "%s: document changed concurrently; nothing deleted", k.doc);
            break;
        }
        const char *w[2] = {"WATCH", k.zset};
        size_t wl[2] = {5, k.zset_len};
        const char *z[4] = {"ZRANGE", k.zset, "0", "-1"};
        size_t zl[4] = {6, k.zset_len, 1, 2};
        if ((e = vd__store_append(s, 2, w, wl, errstr, errstr_size)) ||
            (e = vd__store_append(s, 4, z, zl, errstr, errstr_size)) ||
            (e = vd__store_read(s, 2, rep, errstr, errstr_size)))
            break;
        if (rep[1]->type != REDIS_REPLY_ARRAY) {
            e = vd__reply_err(rep[1], "ZRANGE", k.zset, errstr, errstr_size);
            store_unwatch(s, NULL, 0);
            break;
        }
        if ((e = old_chunk_keys(ns, doc_id, rep[1], &k, errstr, errstr_size))) {
            store_unwatch(s, NULL, 0);
            break;
        }
        vd__replies_free(rep, 2);

        bool ok = argv_pushs(&a, "DEL") && argv_push(&a, k.doc, k.doc_len) &&
                  argv_push(&a, k.zset, k.zset_len) && argv_push(&a, k.file, k.file_len);
        for (size_t i = 0; ok && i < k.nchunk; i++)
            ok = argv_push(&a, k.chunk[i], k.chunk_len[i]);
        if (!ok) {
            store_unwatch(s, NULL, 0);
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            break;
        }
        const char *m[1] = {"MULTI"};
        size_t ml[1] = {5};
        const char *sr[3] = {"SREM", k.docs, doc_id};
        size_t srl[3] = {4, k.docs_len, strlen(doc_id)};
        const char *x[1] = {"EXEC"};
        size_t xl[1] = {4};
        if ((e = vd__store_append(s, 1, m, ml, errstr, errstr_size)) ||
            (e = argv_send(s, &a, errstr, errstr_size)) ||
            (e = vd__store_append(s, 3, sr, srl, errstr, errstr_size)) ||
            (e = vd__store_append(s, 1, x, xl, errstr, errstr_size)) ||
            (e = vd__store_read(s, 4, ex_rep, errstr, errstr_size)))
            break;
        redisReply *ex = ex_rep[3];
        if (ex->type == REDIS_REPLY_NIL) {
            vd__replies_free(ex_rep, 4);
            doc_keys_free(&k);
            continue;
        }
        if (ex->type != REDIS_REPLY_ARRAY || ex->elements != 2 ||
            ex->element[0]->type != REDIS_REPLY_INTEGER ||
            ex->element[1]->type != REDIS_REPLY_INTEGER) {
            const redisReply *bad = ex;
            for (size_t i = 0; i < 3; i++)
                if (ex_rep[i]->type == REDIS_REPLY_ERROR)
                    bad = ex_rep[i];
            if (ex->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i < ex->elements; i++)
                    if (ex->element[i]->type == REDIS_REPLY_ERROR)
                        bad = ex->element[i];
            e = vd__reply_err(bad, "MULTI/EXEC", k.doc, errstr, errstr_size);
            break;
        }
        if (ex->element[0]->integer == 0 && ex->element[1]->integer == 0)
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOT_FOUND, "%s: no such document", k.doc);
        break;
    }
    vd__replies_free(rep, 2);
    vd__replies_free(ex_rep, 4);
    argv_free(&a);
    doc_keys_free(&k);
    return e;
}

vd_err vd_store_doc_exists(vd_store *s, const char *ns, const char *doc_id, bool *exists,
                           char *errstr, size_t errstr_size) {
    vd_err e;
    *exists = false;
    if ((e = vd__ns_check(ns, errstr, errstr_size)))
        return e;
    if (!doc_id || !vd_id_valid(doc_id, strlen(doc_id)))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID, "bad document id '%.64s'",
                         doc_id ? doc_id : "(null)");
    if ((e = vd__store_ready(s, errstr, errstr_size)))
        return e;
    char key[VD__KEY_MAX];
    size_t kl = vd__key_doc(key, ns, doc_id);
    const char *argv[2] = {"EXISTS", key};
    size_t lens[2] = {6, kl};
    redisReply *r = NULL;
    if ((e = store_cmd(s, 2, argv, lens, &r, errstr, errstr_size)))
        return e;
    if (r->type == REDIS_REPLY_INTEGER)
        *exists = r->integer > 0;
    else
        e = vd__reply_err(r, "EXISTS", key, errstr, errstr_size);
    freeReplyObject(r);
    return e;
}

/* ---- counts ----------------------------------------------------------- */
vd_err vd_store_count(vd_store *s, const char *ns, vd_store_counts *out, char *errstr,
                      size_t errstr_size) {
    vd_err e;
    memset(out, 0, sizeof *out);
    if ((e = vd__ns_check(ns, errstr, errstr_size)) || (e = vd__store_ready(s, errstr, errstr_size)))
        return e;
    char kdocs[VD__KEY_MAX];
    size_t kdl = vd__key_docs(kdocs, ns);
    redisReply *r = NULL;
    {
        const char *argv[2] = {"SCARD", kdocs};
        size_t lens[2] = {5, kdl};
        if ((e = store_cmd(s, 2, argv, lens, &r, errstr, errstr_size)))
            return e;
        if (r->type != REDIS_REPLY_INTEGER) {
            e = vd__reply_err(r, "SCARD", kdocs, errstr, errstr_size);
            freeReplyObject(r);
            return e;
        }
        out->documents = r->integer;
        freeReplyObject(r);
        r = NULL;
    }
    char cursor[32] = "0";
    redisReply **rep = NULL;
    size_t nrep = 0;
    do {
        const char *argv[6] = {"SSCAN", kdocs, cursor, "COUNT", "1000"};
        size_t lens[6] = {5, kdl, strlen(cursor), 5, 4};
        if ((e = store_cmd(s, 5, argv, lens, &r, errstr, errstr_size)))
            break;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY ||
            r->element[0]->len >= sizeof cursor) {
            e = vd__reply_err(r, "SSCAN", kdocs, errstr, errstr_size);
            break;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = 0;
        const redisReply *ids = r->element[1];
        nrep = 0;
        rep = calloc(2 * ids->elements + 1, sizeof *rep);
        if (!rep) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            break;
        }
        char key[VD__KEY_MAX];
        for (size_t i = 0; i < ids->elements && !e; i++) {
            const redisReply *id = ids->element[i];
            if (id->type != REDIS_REPLY_STRING || !vd_id_valid(id->str, id->len))
                continue;
            size_t kl = vd__key_zset(key, ns, id->str);
            const char *za[2] = {"ZCARD", key};
            size_t zl[2] = {5, kl};
            if ((e = vd__store_append(s, 2, za, zl, errstr, errstr_size)))
                break;
            kl = vd__key_file(key, ns, id->str);
            const char *fa[2] = {"EXISTS", key};
            size_t fl[2] = {6, kl};
            e = vd__store_append(s, 2, fa, fl, errstr, errstr_size);
            nrep += 2;
        }
        if (e || (e = vd__store_read(s, nrep, rep, errstr, errstr_size)))
            break;
        for (size_t i = 0; i < nrep; i += 2) {
            /* A chunk "zset" of the wrong type counts as no chunks here. */
            if (rep[i]->type == REDIS_REPLY_INTEGER)
                out->chunks += rep[i]->integer;
            if (rep[i + 1]->type == REDIS_REPLY_INTEGER)
                out->files += rep[i + 1]->integer;
        }
        vd__replies_free(rep, nrep);
        free(rep);
        rep = NULL;
        freeReplyObject(r);
        r = NULL;
    } while (strcmp(cursor, "0") != 0);
    if (rep) {
        vd__replies_free(rep, nrep);
        free(rep);
    }
    if (r)
        freeReplyObject(r);
    return e;
}

/* ---- drop ------------------------------------------------------------- */
vd_err vd_store_drop_namespace(vd_store *s, const char *ns, int64_t *deleted, char *errstr,
                               size_t errstr_size) {
    vd_err e;
    if (deleted)
        *deleted = 0;
    if ((e = vd__ns_check(ns, errstr, errstr_size)) || (e = vd__store_ready(s, errstr, errstr_size)))
        return e;
    /* NS, glob-escaped, then ":*": "vec" must not match "vec2:..." nor "v*c". */
    char pat[2 * VD__NS_MAX + 4];
    size_t pl = 0;
    for (const char *p = ns; *p; p++) {
        if (strchr("*?[]\\^-", *p))
            pat[pl++] = '\\';
        pat[pl++] = *p;
    }
    pat[pl++] = ':';
    pat[pl++] = '*';
    pat[pl] = 0;

    char cursor[32] = "0";
    redisReply *r = NULL, *u = NULL;
    argv_t a = {0};
    int64_t total = 0;
    do {
        const char *argv[6] = {"SCAN", cursor, "MATCH", pat, "COUNT", "1000"};
        size_t lens[6] = {4, strlen(cursor), 5, pl, 5, 4};
        if ((e = store_cmd(s, 6, argv, lens, &r, errstr, errstr_size)))
            break;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY ||
            r->element[0]->len >= sizeof cursor) {
            e = vd__reply_err(r, "SCAN", pat, errstr, errstr_size);
            break;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = 0;
        const redisReply *keys = r->element[1];
        if (keys->elements) {
            bool ok = argv_pushs(&a, "UNLINK");
            for (size_t i = 0; ok && i < keys->elements; i++)
                if (keys->element[i]->type == REDIS_REPLY_STRING)
                    ok = argv_push(&a, keys->element[i]->str, keys->element[i]->len);
            if (!ok) {
                e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
                break;
            }
            if ((e = argv_send(s, &a, errstr, errstr_size)) ||
                (e = vd__store_read(s, 1, &u, errstr, errstr_size)))
                break;
            if (u->type != REDIS_REPLY_INTEGER) {
                e = vd__reply_err(u, "UNLINK", pat, errstr, errstr_size);
                break;
            }
            total += u->integer;
            freeReplyObject(u);
            u = NULL;
        }
        freeReplyObject(r);
        r = NULL;
    } while (strcmp(cursor, "0") != 0);
    if (r)
        freeReplyObject(r);
    if (u)
        freeReplyObject(u);
    argv_free(&a);
    if (deleted)
        *deleted = total;
    return e;
}
