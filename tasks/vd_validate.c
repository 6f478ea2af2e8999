/*
 * vd_validate.c - the integrity check of SPEC §6 and its repairs.
 *
 * The check streams over the raw keys of the namespace (SCAN MATCH "NS:*"
 * COUNT 1000), classifies each key by its shape (doc hash, chunk ZSET, chunk
 * hash, file string) and reads a whole batch with one pipeline. Cross checks
 * (does the chunk's document exist, is it in the ZSET, is the document in
 * NS:docs) are per-key lookups pipelined with the batch, never global sets:
 * memory is bounded by one batch whatever the namespace holds.
 *
 * Checks, codes and severities (codes are stable: users match on them):
 *
 *   check        code                severity  fix
 *   meta         META_MISSING        CRITICAL  no
 *   meta         META_VERSION        CRITICAL  no   (schema_version != 1)
 *   meta         META_DIM            ERROR     no   (dim missing or invalid)
 *   fields       DOC_FIELD_MISSING   ERROR     no   (id, created_at, updated_at, metadata)
 *   fields       DOC_FIELD_INVALID   ERROR     no   (id != key id, bad timestamp,
 *                                                    metadata not a JSON object)
 *   fields       CHUNK_FIELD_MISSING ERROR     no   (id, doc_id, seq, text)
 *   fields       CHUNK_FIELD_INVALID ERROR     no   (id/doc_id != key, seq not an integer)
 *   orphans      ORPHAN_CHUNK        ERROR     quarantine (chunk hash, document missing)
 *   orphans      ORPHAN_INDEX        WARNING   quarantine (chunk ZSET, document missing)
 *   orphans      FILE_ORPHAN         ERROR     quarantine (file, document missing)
 *   embeddings   EMBEDDING_MISSING   ERROR     no   (needs re-embedding)
 *   embeddings   EMBEDDING_DIM       ERROR     no   (length != 4 * dim)
 *   embeddings   EMBEDDING_NAN       ERROR     no   (NaN or Inf)
 *   index        INDEX_MISSING_DOC   WARNING   SADD NS:docs
 *   index        INDEX_STALE_DOC     WARNING   SREM NS:docs
 *   index        CHUNK_NOT_INDEXED   WARNING   ZADD the chunk with its seq
 *   index        CHUNK_INDEX_STALE   WARNING   ZREM the member
 *   chunk_count  CHUNK_COUNT         WARNING   set chunk_count to ZCARD
 *   file_sha     FILE_SHA256         ERROR     no
 *   types        RECORD_WRONG_TYPE   ERROR     quarantine (key of a known shape, wrong Redis type)
 *   (any)        QUARANTINE_FAILED   ERROR     - (a RENAME refused, e.g. CROSSSLOT)
 *
 * A "document exists" means NS:doc:{DOC} exists and is a HASH. chunk_count
 * is derived data: missing or wrong, it is a CHUNK_COUNT finding (fixable),
 * not a field finding. A document without sha256 is not checked against its
 * file. Keys under NS:quarantine: and NS:task: and keys of no known shape are
 * ignored.
 *
 * Fix (never deletes a record): the detection pass is read-only and gives
 * the report; the fix passes then re-read the current state and repair:
 *   1. quarantine: RENAMENX of orphans and wrong-typed keys to
 *      NS:quarantine:<key without "NS:"> (":1", ":2"… when taken), with the
 *      reason in the hash NS:quarantine:log (field = new key). The moved
 *      key keeps its hash tag {DOC}, so the RENAME stays in one cluster slot;
 *      NS:meta and NS:docs have no tag (fine on a standalone Redis; in a
 *      cluster the RENAME is refused and reported as QUARANTINE_FAILED).
 *   2. index: SADD missing documents, ZADD unindexed chunks (score = seq),
 *      ZREM members without a chunk hash, SREM NS:docs ids without a doc.
 *   3. recount: chunk_count := ZCARD of the document's chunk ZSET.
 * The passes are ordered so that their results do not depend on SCAN order.
 * Removing the last stale member of a ZSET/SET makes Redis drop that index
 * key; it held no data. res->fixed counts every repair (quarantine moves
 * included), res->quarantined the moves, res->unfixable the findings no
 * repair can address (reported whether or not fix was asked).
 */
#include "vd_tasks.h"

#include <hiredis/hiredis.h>
#include <jansson.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define VAL_SCAN_COUNT 1000
#define VAL_PIECE (1 << 20)             /* GETRANGE piece when hashing files */
#define VAL_INFLIGHT (4 << 20)          /* file bytes requested but not yet read */
#define VAL_ISSUES_KEPT 100
#define VAL_NS_MAX 128
#define VAL_KEY_MAX 512

enum {
    CK_META,
    CK_FIELDS,
    CK_ORPHANS,
    CK_EMBEDDINGS,
    CK_INDEX,
    CK_CHUNK_COUNT,
    CK_FILE_SHA,
    CK_TYPES,
    CK__COUNT
};
static const char *const check_names[CK__COUNT] = {
    "meta", "fields", "orphans", "embeddings", "index", "chunk_count", "file_sha", "types",
};

typedef enum { SH_NONE = 0, SH_DOC, SH_ZSET, SH_CHUNK, SH_FILE } shape;

/* One key of a SCAN batch. key points into the SCAN reply. */
typedef struct kent {
    shape sh;
    const char *key;
    size_t klen;
    char doc[VD_ID_MAX + 1];
    char chunk[VD_ID_MAX + 1];
    long r[5];               /* reply indexes in the stage-1 pipeline, -1 = none */
    long q0;                 /* first stage-2 reply, -1 = none */
    int64_t flen;            /* file length (STRLEN) */
} kent;

/* Replies of one pipelined stage. */
typedef struct pipe {
    redisReply **rep;
    size_t n, cap;
    size_t pending;
} pipe;

/* Fix-pass categories found by the detection pass (which passes to run). */
enum { FX_QUARANTINE, FX_INDEX, FX_STALE_DOCS, FX_RECOUNT, FX__COUNT };

typedef struct val {
    redisContext *c;
    const vd_task_ctx *ctx;
    const char *ns;
    bool on[CK__COUNT];
    bool fix;
    int dim;                 /* 0 = unknown: no length check */
    int docs_state;          /* 0 absent, 1 SET, 2 wrong type */
    vd_validate_result *res;
    int ck_slot[CK__COUNT];  /* index in res->by_check, -1 when off */
    int64_t found[FX__COUNT];
    bool perr;               /* an append failed */
    pipe p1, p2;
    kent *ents;
    size_t ents_cap;
    /* progress */
    const char *phase;
    int64_t done, total, last_ms;
    char *errstr;
    size_t errsz;
} val;

/* ---- small helpers ---------------------------------------------------- */

static bool rep_status(const redisReply *r, const char *s) {
    return r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, s) == 0;
}

static bool rep_wrongtype(const redisReply *r) {
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0;
}

static bool rep_str(const redisReply *r) {
    return r && r->type == REDIS_REPLY_STRING;
}

static long long rep_int(const redisReply *r, long long dflt) {
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : dflt;
}

/* Strict decimal integer (optional '-'), whole string. */
static bool parse_i64(const char *s, size_t len, int64_t *out) {
    char tmp[32];
    char *end;
    if (!s || len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (!(tmp[0] == '-' || (tmp[0] >= '0' && tmp[0] <= '9')))
        return false;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (errno || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

static bool rep_i64(const redisReply *r, int64_t *out) {
    return rep_str(r) && parse_i64(r->str, r->len, out);
}

/* An embedding blob: true when any float32 (LE) has an all-ones exponent. */
static bool blob_has_nonfinite(const unsigned char *b, size_t n) {
    unsigned bad = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        uint32_t x = (uint32_t)b[i + 2] << 16 | (uint32_t)b[i + 3] << 24;
        bad |= (x & UINT32_C(0x7f800000)) == UINT32_C(0x7f800000);
    }
    return bad != 0;
}

static vd_err val_redis_err(val *v, const char *what) {
    if (v->c->err)
        return vd_seterr(v->errstr, v->errsz, VD_ERR_REDIS_CONN, "%s: %s", what, v->c->errstr);
    return vd_seterr(v->errstr, v->errsz, VD_ERR_REDIS, "%s: unexpected reply", what);
}

static void val_progress(val *v, bool phase_changed) {
    if (!v->ctx->on_progress)
        return;
    int64_t now = vd_mono_ms();
    if (!phase_changed && now - v->last_ms < 1000)
        return;
    v->last_ms = now;
    if (v->total >= 0 && v->done > v->total)
        v->total = v->done;
    vd_progress pr = {.phase = v->phase, .done = v->done, .total = v->total, .bytes = 0};
    v->ctx->on_progress(v->ctx->opaque, &pr, phase_changed);
}

static bool val_cancelled(const val *v) {
    return v->ctx->cancel && atomic_load(v->ctx->cancel);
}

/* Records one finding against check @p ck. */
static void val_vissue(val *v, int ck, const char *code, vd_severity sev, int fx,
                       const char *key, const char *fmt, va_list ap) {
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    vd_issues_add(&v->res->issues, code, sev, key, "%s", msg);
    if (v->ck_slot[ck] >= 0)
        v->res->by_check[v->ck_slot[ck]].count++;
    v->res->by_severity[sev]++;
    if (fx < 0)
        v->res->unfixable++;
    else
        v->found[fx]++;
}

static void val_issue(val *v, int ck, const char *code, vd_severity sev, int fx,
                      const char *key, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static void val_issue(val *v, int ck, const char *code, vd_severity sev, int fx,
                      const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    val_vissue(v, ck, code, sev, fx, key, fmt, ap);
    va_end(ap);
}

/* The same, about the batch key @p e (its text is built only when needed). */
static void val_eissue(val *v, const kent *e, int ck, const char *code, vd_severity sev,
                       int fx, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void val_eissue(val *v, const kent *e, int ck, const char *code, vd_severity sev,
                       int fx, const char *fmt, ...) {
    char k[VAL_KEY_MAX];
    va_list ap;
    snprintf(k, sizeof k, "%.*s", (int)e->klen, e->key);
    va_start(ap, fmt);
    val_vissue(v, ck, code, sev, fx, k, fmt, ap);
    va_end(ap);
}

/* ---- pipelining ------------------------------------------------------- */

/* Appends one command; @returns its reply index in @p p. */
static long pc(val *v, pipe *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(v->c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        v->perr = true;
        return -1;
    }
    return (long)(p->n + p->pending++);
}

static void pipe_release(pipe *p) {
    for (size_t i = 0; i < p->n; i++)
        freeReplyObject(p->rep[i]);
    p->n = 0;
    p->pending = 0;
}

static void pipe_free(pipe *p) {
    pipe_release(p);
    free(p->rep);
    p->rep = NULL;
    p->cap = 0;
}

/* Reads every pending reply. An error reply other than WRONGTYPE fails. */
static vd_err pipe_flush(val *v, pipe *p) {
    if (v->perr)
        return vd_seterr(v->errstr, v->errsz, VD_ERR_NOMEM, "cannot queue a Redis command");
    if (p->n + p->pending > p->cap) {
        size_t ncap = p->cap ? p->cap : 64;
        while (ncap < p->n + p->pending)
            ncap *= 2;
        redisReply **nr = realloc(p->rep, ncap * sizeof *nr);
        if (!nr)
            return vd_seterr(v->errstr, v->errsz, VD_ERR_NOMEM, "out of memory");
        p->rep = nr;
        p->cap = ncap;
    }
    while (p->pending) {
        void *r = NULL;
        if (redisGetReply(v->c, &r) != REDIS_OK || !r)
            return val_redis_err(v, "pipeline");
        p->rep[p->n++] = r;
        p->pending--;
        redisReply *rr = r;
        if (rr->type == REDIS_REPLY_ERROR && !rep_wrongtype(rr))
            return vd_seterr(v->errstr, v->errsz, VD_ERR_REDIS, "Redis: %s", rr->str);
    }
    return VD_ERR_OK;
}

static redisReply *P(const val *v, long i) {
    return i >= 0 && (size_t)i < v->p1.n ? v->p1.rep[i] : NULL;
}

static redisReply *Q(const val *v, long i) {
    return i >= 0 && (size_t)i < v->p2.n ? v->p2.rep[i] : NULL;
}

/* One synchronous command; NULL (and errstr set) on a connection error. */
static redisReply *val_cmd(val *v, vd_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(v->c, fmt, ap);
    va_end(ap);
    if (!r) {
        *err = val_redis_err(v, "command");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR && !rep_wrongtype(r)) {
        *err = vd_seterr(v->errstr, v->errsz, VD_ERR_REDIS, "Redis: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* ---- key shapes ------------------------------------------------------- */

/* Copies the id in [s, s+n) into out when it is a valid id. */
static bool take_id(const char *s, size_t n, char out[VD_ID_MAX + 1]) {
    if (!vd_id_valid(s, n))
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static void classify(const val *v, const char *key, size_t klen, kent *e) {
    size_t nl = strlen(v->ns);
    memset(e, 0, sizeof *e);
    e->sh = SH_NONE;
    e->key = key;
    e->klen = klen;
    for (size_t i = 0; i < 5; i++)
        e->r[i] = -1;
    e->q0 = -1;
    if (klen <= nl + 1 || memcmp(key, v->ns, nl) != 0 || key[nl] != ':')
        return;
    const char *s = key + nl + 1;
    size_t n = klen - nl - 1;
    const char *close;
    if (n > 5 && memcmp(s, "doc:{", 5) == 0) {
        close = memchr(s + 5, '}', n - 5);
        if (!close || !take_id(s + 5, (size_t)(close - s - 5), e->doc))
            return;
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest == 0)
            e->sh = SH_DOC;
        else if (rest == 7 && memcmp(close + 1, ":chunks", 7) == 0)
            e->sh = SH_ZSET;
    } else if (n > 7 && memcmp(s, "chunk:{", 7) == 0) {
        close = memchr(s + 7, '}', n - 7);
        if (!close || !take_id(s + 7, (size_t)(close - s - 7), e->doc))
            return;
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest >= 2 && close[1] == ':' && take_id(close + 2, rest - 1, e->chunk))
            e->sh = SH_CHUNK;
    } else if (n > 6 && memcmp(s, "file:{", 6) == 0) {
        close = memchr(s + 6, '}', n - 6);
        if (close && close == s + n - 1 && take_id(s + 6, (size_t)(close - s - 6), e->doc))
            e->sh = SH_FILE;
    }
}

static const char *shape_type(shape sh) {
    switch (sh) {
    case SH_DOC:
    case SH_CHUNK: return "hash";
    case SH_ZSET: return "zset";
    case SH_FILE: return "string";
    default: return "none";
    }
}

static const char *key_text(const kent *e, char *out, size_t n) {
    snprintf(out, n, "%.*s", (int)e->klen, e->key);
    return out;
}

/* ---- the SCAN loop ---------------------------------------------------- */

typedef vd_err (*batch_fn)(val *v, kent *e, size_t n);

static vd_err val_scan(val *v, batch_fn fn) {
    char pat[2 * VAL_NS_MAX + 4];
    size_t pl = 0;
    for (const char *s = v->ns; *s; s++) {    /* escape glob characters */
        if (strchr("*?[]\\", *s))
            pat[pl++] = '\\';
        pat[pl++] = *s;
    }
    pat[pl++] = ':';
    pat[pl++] = '*';
    pat[pl] = '\0';

    char cursor[32] = "0";
    vd_err err = VD_ERR_OK;
    do {
        redisReply *r = val_cmd(v, &err, "SCAN %s MATCH %s COUNT %d", cursor, pat,
                                VAL_SCAN_COUNT);
        if (!r)
            return err;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !rep_str(r->element[0]) ||
            r->element[1]->type != REDIS_REPLY_ARRAY || r->element[0]->len >= sizeof cursor) {
            freeReplyObject(r);
            return vd_seterr(v->errstr, v->errsz, VD_ERR_REDIS, "SCAN: unexpected reply");
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        if (keys->elements > v->ents_cap) {
            kent *ne = realloc(v->ents, keys->elements * sizeof *ne);
            if (!ne) {
                freeReplyObject(r);
                return vd_seterr(v->errstr, v->errsz, VD_ERR_NOMEM, "out of memory");
            }
            v->ents = ne;
            v->ents_cap = keys->elements;
        }
        size_t n = 0;
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *k = keys->element[i];
            if (!rep_str(k))
                continue;
            classify(v, k->str, k->len, &v->ents[n]);
            if (v->ents[n].sh != SH_NONE)
                n++;
        }
        if (n)
            err = fn(v, v->ents, n);
        pipe_release(&v->p1);
        pipe_release(&v->p2);
        v->done += (int64_t)keys->elements;
        freeReplyObject(r);
        if (err)
            return err;
        val_progress(v, false);
        if (val_cancelled(v))
            return vd_seterr(v->errstr, v->errsz, VD_ERR_CANCELLED, "cancelled");
    } while (strcmp(cursor, "0") != 0);
    return VD_ERR_OK;
}

/* ---- detection -------------------------------------------------------- */

static void wrong_type(val *v, const kent *e, const char *actual) {
    if (!v->on[CK_TYPES])
        return;
    val_eissue(v, e, CK_TYPES, "RECORD_WRONG_TYPE", VD_SEV_ERROR, FX_QUARANTINE,
               "key is a %s, expected a %s", actual, shape_type(e->sh));
}

static void detect_doc(val *v, const kent *e) {
    redisReply *h = P(v, e->r[0]);
    if (rep_wrongtype(h)) {
        wrong_type(v, e, "non-hash");
        return;
    }
    if (!h || h->type != REDIS_REPLY_ARRAY || h->elements == 0)
        return;                                      /* gone since SCAN */
    v->res->documents++;

    static const char *const req[] = {"id", "created_at", "updated_at", "metadata"};
    const redisReply *f[4] = {NULL, NULL, NULL, NULL};
    const redisReply *cc = NULL;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *name = h->element[i];
        if (!rep_str(name))
            continue;
        for (size_t j = 0; j < 4; j++)
            if (strcmp(name->str, req[j]) == 0)
                f[j] = h->element[i + 1];
        if (strcmp(name->str, "chunk_count") == 0)
            cc = h->element[i + 1];
    }

    if (v->on[CK_FIELDS]) {
        char miss[96] = "", bad[200] = "";
        size_t ml = 0, bl = 0;
        int64_t t;
        for (size_t j = 0; j < 4; j++)
            if (!rep_str(f[j]))
                ml += (size_t)snprintf(miss + ml, sizeof miss - ml, "%s%s", ml ? "," : "", req[j]);
        if (rep_str(f[0]) && strcmp(f[0]->str, e->doc) != 0)
            bl += (size_t)snprintf(bad + bl, sizeof bad - bl, "id '%.40s' differs from the key",
                                   f[0]->str);
        for (size_t j = 1; j <= 2 && bl < sizeof bad; j++)
            if (rep_str(f[j]) && (!parse_i64(f[j]->str, f[j]->len, &t) || t < 0))
                bl += (size_t)snprintf(bad + bl, sizeof bad - bl, "%s%s is not a timestamp",
                                       bl ? "; " : "", req[j]);
        if (rep_str(f[3]) && bl < sizeof bad) {
            json_error_t je;
            json_t *j = json_loadb(f[3]->str, f[3]->len, 0, &je);
            if (!json_is_object(j))
                bl += (size_t)snprintf(bad + bl, sizeof bad - bl,
                                       "%smetadata is not a JSON object", bl ? "; " : "");
            json_decref(j);
        }
        if (ml)
            val_eissue(v, e, CK_FIELDS, "DOC_FIELD_MISSING", VD_SEV_ERROR, -1,
                      "document lacks required field(s): %s", miss);
        if (bl)
            val_eissue(v, e, CK_FIELDS, "DOC_FIELD_INVALID", VD_SEV_ERROR, -1, "%s", bad);
    }

    if (v->on[CK_INDEX]) {
        if (v->docs_state == 2 || rep_int(P(v, e->r[1]), 1) == 0)
            val_eissue(v, e, CK_INDEX, "INDEX_MISSING_DOC", VD_SEV_WARNING, FX_INDEX,
                      "document '%s' is not in %s:docs", e->doc, v->ns);
    }

    if (v->on[CK_CHUNK_COUNT]) {
        redisReply *z = P(v, e->r[2]);
        int64_t want;
        if (z && z->type == REDIS_REPLY_INTEGER) {
            if (!rep_i64(cc, &want))
                val_eissue(v, e, CK_CHUNK_COUNT, "CHUNK_COUNT", VD_SEV_WARNING, FX_RECOUNT,
                          "chunk_count is missing or not an integer; the index holds %lld",
                          (long long)z->integer);
            else if (want != z->integer)
                val_eissue(v, e, CK_CHUNK_COUNT, "CHUNK_COUNT", VD_SEV_WARNING, FX_RECOUNT,
                          "chunk_count=%lld but the index holds %lld", (long long)want,
                          (long long)z->integer);
        }
    }
}

static void detect_zset(val *v, const kent *e) {
    redisReply *z = P(v, e->r[0]);
    if (rep_wrongtype(z)) {
        wrong_type(v, e, "non-zset");
        return;
    }
    if (!z || z->type != REDIS_REPLY_ARRAY || z->elements == 0)
        return;
    if (!rep_status(P(v, e->r[1]), "hash")) {
        if (v->on[CK_ORPHANS])
            val_eissue(v, e, CK_ORPHANS, "ORPHAN_INDEX", VD_SEV_WARNING, FX_QUARANTINE,
                      "chunk index of missing document '%s' (%zu members)", e->doc,
                      z->elements);
        return;
    }
    if (!v->on[CK_INDEX] || e->q0 < 0)
        return;
    for (size_t j = 0; j < z->elements; j++) {
        const redisReply *m = z->element[j];
        if (!rep_str(m))
            continue;
        if (!rep_status(Q(v, e->q0 + (long)j), "hash"))
            val_eissue(v, e, CK_INDEX, "CHUNK_INDEX_STALE", VD_SEV_WARNING, FX_INDEX,
                      "member '%.128s' has no chunk hash", m->str);
    }
}

static void detect_chunk(val *v, const kent *e) {
    redisReply *h = P(v, e->r[0]);
    if (rep_wrongtype(h)) {
        wrong_type(v, e, "non-hash");
        return;
    }
    if (!h || h->type != REDIS_REPLY_ARRAY || h->elements != 4)
        return;
    const redisReply *id = h->element[0], *did = h->element[1], *seq = h->element[2],
                     *emb = h->element[3];
    bool has_text = rep_int(P(v, e->r[1]), 0) == 1;
    if (!rep_str(id) && !rep_str(did) && !rep_str(seq) && !rep_str(emb) && !has_text &&
        rep_int(Q(v, e->q0), 0) == 0)
        return;                                      /* gone since SCAN */
    v->res->chunks++;
    bool doc = rep_status(P(v, e->r[2]), "hash");
    int64_t sq = 0;
    bool seq_ok = rep_i64(seq, &sq);

    if (!doc && v->on[CK_ORPHANS])
        val_eissue(v, e, CK_ORPHANS, "ORPHAN_CHUNK", VD_SEV_ERROR, FX_QUARANTINE,
                  "chunk of missing document '%s'", e->doc);

    if (v->on[CK_FIELDS]) {
        char miss[64] = "", bad[200] = "";
        size_t ml = 0, bl = 0;
        const char *names[4] = {"id", "doc_id", "seq", "text"};
        bool have[4] = {rep_str(id), rep_str(did), rep_str(seq), has_text};
        for (size_t j = 0; j < 4; j++)
            if (!have[j])
                ml += (size_t)snprintf(miss + ml, sizeof miss - ml, "%s%s", ml ? "," : "",
                                       names[j]);
        if (have[0] && strcmp(id->str, e->chunk) != 0)
            bl += (size_t)snprintf(bad + bl, sizeof bad - bl, "id '%.40s' differs from the key",
                                   id->str);
        if (have[1] && strcmp(did->str, e->doc) != 0 && bl < sizeof bad)
            bl += (size_t)snprintf(bad + bl, sizeof bad - bl,
                                   "%sdoc_id '%.40s' differs from the key", bl ? "; " : "",
                                   did->str);
        if (have[2] && !seq_ok && bl < sizeof bad)
            bl += (size_t)snprintf(bad + bl, sizeof bad - bl, "%sseq is not an integer",
                                   bl ? "; " : "");
        if (ml)
            val_eissue(v, e, CK_FIELDS, "CHUNK_FIELD_MISSING", VD_SEV_ERROR, -1,
                      "chunk lacks required field(s): %s", miss);
        if (bl)
            val_eissue(v, e, CK_FIELDS, "CHUNK_FIELD_INVALID", VD_SEV_ERROR, -1, "%s", bad);
    }

    if (v->on[CK_EMBEDDINGS]) {
        if (!rep_str(emb))
            val_eissue(v, e, CK_EMBEDDINGS, "EMBEDDING_MISSING", VD_SEV_ERROR, -1,
                      "chunk has no embedding (needs re-embedding)");
        else if ((v->dim > 0 && emb->len != 4 * (size_t)v->dim) || emb->len % 4 != 0)
            val_eissue(v, e, CK_EMBEDDINGS, "EMBEDDING_DIM", VD_SEV_ERROR, -1,
                      "embedding has %zu bytes, expected %zu (dim %d; needs re-embedding)",
                      emb->len, 4 * (size_t)v->dim, v->dim);
        else if (blob_has_nonfinite((const unsigned char *)emb->str, emb->len))
            val_eissue(v, e, CK_EMBEDDINGS, "EMBEDDING_NAN", VD_SEV_ERROR, -1,
                      "embedding holds NaN or Inf (needs re-embedding)");
    }

    if (doc && v->on[CK_INDEX]) {
        redisReply *zs = P(v, e->r[3]);
        if (!rep_str(zs))
            val_eissue(v, e, CK_INDEX, "CHUNK_NOT_INDEXED", VD_SEV_WARNING,
                       seq_ok ? FX_INDEX : -1, "chunk '%s' is not in %s:doc:{%s}:chunks%s",
                       e->chunk, v->ns, e->doc,
                       seq_ok ? "" : " (no valid seq: cannot be indexed)");
    }
}

/* Hashes the files of the batch listed in idx (all of length > 0) with
 * pipelined GETRANGE pieces, never more than VAL_INFLIGHT bytes in flight,
 * and compares with the documents' sha256 field. */
static vd_err hash_files(val *v, const kent *e, const size_t *idx, size_t nidx) {
    vd_sha256 *h = vd_sha256_new();
    if (!h)
        return vd_seterr(v->errstr, v->errsz, VD_ERR_NOMEM, "out of memory");
    size_t ai = 0, ri = 0;
    int64_t aoff = 0, roff = 0, inflight = 0;
    bool ok = true;                                  /* current file readable */
    vd_err err = VD_ERR_OK;
    while (ri < nidx) {
        while (ai < nidx && inflight < VAL_INFLIGHT) {
            const kent *f = &e[idx[ai]];
            int64_t piece = f->flen - aoff < VAL_PIECE ? f->flen - aoff : VAL_PIECE;
            if (redisAppendCommand(v->c, "GETRANGE %b %lld %lld", f->key, f->klen,
                                   (long long)aoff, (long long)(aoff + piece - 1)) != REDIS_OK) {
                err = vd_seterr(v->errstr, v->errsz, VD_ERR_NOMEM, "cannot queue GETRANGE");
                goto done;
            }
            inflight += piece;
            aoff += piece;
            if (aoff >= f->flen) {
                ai++;
                aoff = 0;
            }
        }
        const kent *f = &e[idx[ri]];
        void *rv = NULL;
        if (redisGetReply(v->c, &rv) != REDIS_OK || !rv) {
            err = val_redis_err(v, "GETRANGE");
            goto done;
        }
        redisReply *r = rv;
        int64_t piece = f->flen - roff < VAL_PIECE ? f->flen - roff : VAL_PIECE;
        if (rep_str(r))
            vd_sha256_update(h, r->str, r->len);
        if (!rep_str(r) || (int64_t)r->len != piece)
            ok = false;                              /* changed since STRLEN */
        freeReplyObject(r);
        inflight -= piece;
        roff += piece;
        if (roff >= f->flen) {
            char got[65], k[VAL_KEY_MAX];
            vd_sha256_final_hex(h, got);
            const redisReply *want = P(v, f->r[3]);
            if (ok && rep_str(want) && strcasecmp(want->str, got) != 0) {
                key_text(f, k, sizeof k);
                val_issue(v, CK_FILE_SHA, "FILE_SHA256", VD_SEV_ERROR, -1, k,
                          "file SHA-256 %.16s... differs from the document's sha256 %.16s...", got,
                          want->str);
            }
            ok = true;
            ri++;
            roff = 0;
        }
    }
done:
    vd_sha256_destroy(h);
    return err;
}

static vd_err detect_batch(val *v, kent *e, size_t n) {
    pipe *p = &v->p1, *q = &v->p2;
    const char *ns = v->ns;
    vd_err err;
    for (size_t i = 0; i < n; i++) {
        kent *x = &e[i];
        switch (x->sh) {
        case SH_DOC:
            x->r[0] = pc(v, p, "HGETALL %b", x->key, x->klen);
            if (v->on[CK_INDEX] && v->docs_state != 2)
                x->r[1] = pc(v, p, "SISMEMBER %s:docs %s", ns, x->doc);
            if (v->on[CK_CHUNK_COUNT])
                x->r[2] = pc(v, p, "ZCARD %s:doc:{%s}:chunks", ns, x->doc);
            break;
        case SH_ZSET:
            if (v->on[CK_INDEX] || v->on[CK_ORPHANS] || v->on[CK_TYPES]) {
                x->r[0] = pc(v, p, "ZRANGE %b 0 -1", x->key, x->klen);
                x->r[1] = pc(v, p, "TYPE %s:doc:{%s}", ns, x->doc);
            }
            break;
        case SH_CHUNK:
            x->r[0] = pc(v, p, "HMGET %b id doc_id seq embedding", x->key, x->klen);
            x->r[1] = pc(v, p, "HEXISTS %b text", x->key, x->klen);
            x->r[2] = pc(v, p, "TYPE %s:doc:{%s}", ns, x->doc);
            if (v->on[CK_INDEX])
                x->r[3] = pc(v, p, "ZSCORE %s:doc:{%s}:chunks %s", ns, x->doc, x->chunk);
            break;
        case SH_FILE:
            x->r[0] = pc(v, p, "STRLEN %b", x->key, x->klen);
            x->r[2] = pc(v, p, "TYPE %s:doc:{%s}", ns, x->doc);
            if (v->on[CK_FILE_SHA])
                x->r[3] = pc(v, p, "HGET %s:doc:{%s} sha256", ns, x->doc);
            break;
        default: break;
        }
    }
    if ((err = pipe_flush(v, p)))
        return err;

    /* Stage 2: lookups that depend on stage-1 replies. */
    for (size_t i = 0; i < n; i++) {
        kent *x = &e[i];
        if (x->sh == SH_ZSET && v->on[CK_INDEX] && rep_status(P(v, x->r[1]), "hash")) {
            redisReply *z = P(v, x->r[0]);
            if (!z || z->type != REDIS_REPLY_ARRAY || z->elements == 0)
                continue;
            for (size_t j = 0; j < z->elements; j++) {
                const redisReply *m = z->element[j];
                long ri;
                if (rep_str(m) && vd_id_valid(m->str, m->len))
                    ri = pc(v, q, "TYPE %s:chunk:{%s}:%b", ns, x->doc, m->str, m->len);
                else
                    ri = pc(v, q, "TYPE %s:chunk:{%s}:", ns, x->doc);  /* never a chunk */
                if (j == 0)
                    x->q0 = ri;
            }
        } else if (x->sh == SH_CHUNK) {
            redisReply *h = P(v, x->r[0]);
            if (h && h->type == REDIS_REPLY_ARRAY && h->elements == 4 &&
                !rep_str(h->element[0]) && !rep_str(h->element[1]) && !rep_str(h->element[2]) &&
                !rep_str(h->element[3]))
                x->q0 = pc(v, q, "EXISTS %b", x->key, x->klen);
        }
    }
    if ((err = pipe_flush(v, q)))
        return err;

    size_t *idx = NULL, nidx = 0;
    for (size_t i = 0; i < n; i++) {
        kent *x = &e[i];
        switch (x->sh) {
        case SH_DOC: detect_doc(v, x); break;
        case SH_ZSET:
            if (x->r[0] >= 0)
                detect_zset(v, x);
            break;
        case SH_CHUNK: detect_chunk(v, x); break;
        case SH_FILE: {
            redisReply *sl = P(v, x->r[0]);
            char k[VAL_KEY_MAX];
            if (rep_wrongtype(sl)) {
                wrong_type(v, x, "non-string");
                break;
            }
            v->res->files++;
            x->flen = rep_int(sl, 0);
            if (!rep_status(P(v, x->r[2]), "hash")) {
                if (v->on[CK_ORPHANS]) {
                    key_text(x, k, sizeof k);
                    val_issue(v, CK_ORPHANS, "FILE_ORPHAN", VD_SEV_ERROR, FX_QUARANTINE, k,
                              "file of missing document '%s'", x->doc);
                }
                break;
            }
            const redisReply *want = P(v, x->r[3]);
            if (!v->on[CK_FILE_SHA] || !rep_str(want) || want->len == 0)
                break;
            if (x->flen == 0) {
                char got[65];
                vd_sha256_hex("", 0, got);
                if (strcasecmp(want->str, got) != 0) {
                    key_text(x, k, sizeof k);
                    val_issue(v, CK_FILE_SHA, "FILE_SHA256", VD_SEV_ERROR, -1, k,
                              "empty file differs from the document's sha256 %.16s...",
                              want->str);
                }
                break;
            }
            if (!idx && !(idx = malloc(n * sizeof *idx)))
                return vd_seterr(v->errstr, v->errsz, VD_ERR_NOMEM, "out of memory");
            idx[nidx++] = i;
            break;
        }
        default: break;
        }
    }
    err = nidx ? hash_files(v, e, idx, nidx) : VD_ERR_OK;
    free(idx);
    return err;
}

/* Meta, NS:docs type, and NS:docs members without a document. */
static vd_err detect_meta(val *v) {
    vd_err err = VD_ERR_OK;
    char k[VAL_KEY_MAX];
    snprintf(k, sizeof k, "%s:meta", v->ns);
    redisReply *r = val_cmd(v, &err, "HGETALL %s:meta", v->ns);
    if (!r)
        return err;
    if (rep_wrongtype(r) || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        if (rep_wrongtype(r) && v->on[CK_TYPES])
            val_issue(v, CK_TYPES, "RECORD_WRONG_TYPE", VD_SEV_ERROR, FX_QUARANTINE, k,
                      "key is a non-hash, expected a hash");
        if (v->on[CK_META])
            val_issue(v, CK_META, "META_MISSING", VD_SEV_CRITICAL, -1, k,
                      "namespace has no readable %s", k);
        freeReplyObject(r);
        return VD_ERR_OK;
    }
    const redisReply *ver = NULL, *dim = NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (!rep_str(r->element[i]))
            continue;
        if (strcmp(r->element[i]->str, "schema_version") == 0)
            ver = r->element[i + 1];
        else if (strcmp(r->element[i]->str, "dim") == 0)
            dim = r->element[i + 1];
    }
    int64_t x;
    if (v->on[CK_META] && (!rep_i64(ver, &x) || x != 1))
        val_issue(v, CK_META, "META_VERSION", VD_SEV_CRITICAL, -1, k,
                  "schema_version is %.20s, this tool reads version 1",
                  rep_str(ver) ? ver->str : "missing");
    if (rep_i64(dim, &x) && x > 0 && x <= 65536)
        v->dim = (int)x;
    else if (v->on[CK_META])
        val_issue(v, CK_META, "META_DIM", VD_SEV_ERROR, -1, k,
                  "dim is %.20s: embedding lengths cannot be checked",
                  rep_str(dim) ? dim->str : "missing");
    freeReplyObject(r);
    return VD_ERR_OK;
}

static vd_err detect_docs_type(val *v) {
    vd_err err = VD_ERR_OK;
    redisReply *r = val_cmd(v, &err, "TYPE %s:docs", v->ns);
    if (!r)
        return err;
    v->docs_state = rep_status(r, "none") ? 0 : rep_status(r, "set") ? 1 : 2;
    freeReplyObject(r);
    if (v->docs_state == 2 && v->on[CK_TYPES]) {
        char k[VAL_KEY_MAX];
        snprintf(k, sizeof k, "%s:docs", v->ns);
        val_issue(v, CK_TYPES, "RECORD_WRONG_TYPE", VD_SEV_ERROR, FX_QUARANTINE, k,
                  "key is a non-set, expected a set");
    }
    return VD_ERR_OK;
}

/* Walks NS:docs with SSCAN; for each member whose doc hash is missing
 * reports INDEX_STALE_DOC, or with @p fix removes it. */
static vd_err docs_stale(val *v, bool fix) {
    char cursor[32] = "0";
    char k[VAL_KEY_MAX];
    vd_err err = VD_ERR_OK;
    snprintf(k, sizeof k, "%s:docs", v->ns);
    do {
        redisReply *r = val_cmd(v, &err, "SSCAN %s:docs %s COUNT %d", v->ns, cursor,
                                VAL_SCAN_COUNT);
        if (!r)
            return err;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !rep_str(r->element[0]) ||
            r->element[1]->type != REDIS_REPLY_ARRAY || r->element[0]->len >= sizeof cursor) {
            freeReplyObject(r);     /* wrong type or vanished: nothing to walk */
            return VD_ERR_OK;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *m = r->element[1];
        for (size_t i = 0; i < m->elements; i++) {
            const redisReply *id = m->element[i];
            if (rep_str(id) && vd_id_valid(id->str, id->len))
                pc(v, &v->p1, "TYPE %s:doc:{%b}", v->ns, id->str, id->len);
            else
                pc(v, &v->p1, "TYPE %s:doc:", v->ns);   /* never a document */
        }
        if ((err = pipe_flush(v, &v->p1))) {
            freeReplyObject(r);
            return err;
        }
        for (size_t i = 0; i < m->elements; i++) {
            const redisReply *id = m->element[i];
            if (!rep_str(id) || rep_status(P(v, (long)i), "hash"))
                continue;
            if (fix)
                pc(v, &v->p2, "SREM %s:docs %b", v->ns, id->str, id->len);
            else
                val_issue(v, CK_INDEX, "INDEX_STALE_DOC", VD_SEV_WARNING, FX_STALE_DOCS, k,
                          "'%.128s' is in the index but has no document hash", id->str);
        }
        if (fix && (err = pipe_flush(v, &v->p2)) == VD_ERR_OK)
            for (size_t i = 0; i < v->p2.n; i++)
                v->res->fixed += rep_int(v->p2.rep[i], 0);
        pipe_release(&v->p1);
        pipe_release(&v->p2);
        v->done += (int64_t)m->elements;
        freeReplyObject(r);
        if (err)
            return err;
        val_progress(v, false);
        if (val_cancelled(v))
            return vd_seterr(v->errstr, v->errsz, VD_ERR_CANCELLED, "cancelled");
    } while (strcmp(cursor, "0") != 0);
    return VD_ERR_OK;
}

/* ---- fix -------------------------------------------------------------- */

/* Moves @p key (klen bytes, starting with "NS:") to NS:quarantine:<rest>,
 * with a ":<n>" suffix when that name is taken, and logs the reason. */
static vd_err quarantine(val *v, const char *key, size_t klen, const char *reason) {
    size_t nl = strlen(v->ns);
    const char *rest = key + nl + 1;
    size_t rl = klen - nl - 1;
    char dst[VAL_KEY_MAX + 32];
    vd_err err = VD_ERR_OK;
    for (int i = 0; i < 1000; i++) {
        if (i == 0)
            snprintf(dst, sizeof dst, "%s:quarantine:%.*s", v->ns, (int)rl, rest);
        else
            snprintf(dst, sizeof dst, "%s:quarantine:%.*s:%d", v->ns, (int)rl, rest, i);
        redisReply *r = redisCommand(v->c, "RENAMENX %b %s", key, klen, dst);
        if (!r)
            return val_redis_err(v, "RENAMENX");
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            freeReplyObject(r);
            continue;                                /* name taken: next suffix */
        }
        if (r->type == REDIS_REPLY_ERROR) {
            char k[VAL_KEY_MAX];
            snprintf(k, sizeof k, "%.*s", (int)klen, key);
            if (strstr(r->str, "no such key") == NULL)  /* gone meanwhile: nothing to do */
                val_issue(v, CK_TYPES, "QUARANTINE_FAILED", VD_SEV_ERROR, -1, k,
                          "cannot move to %s: %.120s", dst, r->str);
            freeReplyObject(r);
            return VD_ERR_OK;
        }
        freeReplyObject(r);
        v->res->quarantined++;
        v->res->fixed++;
        char note[400];
        snprintf(note, sizeof note, "from=%.*s reason=%s at_ms=%lld task=%s", (int)klen, key,
                 reason, (long long)vd_now_ms(), v->ctx->task_id ? v->ctx->task_id : "-");
        r = val_cmd(v, &err, "HSET %s:quarantine:log %s %s", v->ns, dst, note);
        if (!r)
            return err;
        freeReplyObject(r);
        vd_log(VD_LOG_INFO, "quarantined", "key=%.*s to=%s reason=\"%s\"", (int)klen, key, dst,
               reason);
        return VD_ERR_OK;
    }
    return vd_seterr(v->errstr, v->errsz, VD_ERR_CONFLICT, "no free quarantine name for %.*s",
                     (int)klen, key);
}

static vd_err fix_quarantine_batch(val *v, kent *e, size_t n) {
    pipe *p = &v->p1;
    vd_err err;
    for (size_t i = 0; i < n; i++) {
        e[i].r[0] = pc(v, p, "TYPE %b", e[i].key, e[i].klen);
        if (e[i].sh != SH_DOC)
            e[i].r[1] = pc(v, p, "TYPE %s:doc:{%s}", v->ns, e[i].doc);
    }
    if ((err = pipe_flush(v, p)))
        return err;
    for (size_t i = 0; i < n; i++) {
        const redisReply *t = P(v, e[i].r[0]);
        const char *want = shape_type(e[i].sh);
        char reason[96];
        if (!t || t->type != REDIS_REPLY_STATUS || strcmp(t->str, "none") == 0)
            continue;
        if (strcmp(t->str, want) != 0) {
            if (!v->on[CK_TYPES])
                continue;
            snprintf(reason, sizeof reason, "RECORD_WRONG_TYPE (%.20s, expected %s)", t->str,
                     want);
        } else if (e[i].sh != SH_DOC && !rep_status(P(v, e[i].r[1]), "hash")) {
            if (!v->on[CK_ORPHANS])
                continue;
            snprintf(reason, sizeof reason, "%s",
                     e[i].sh == SH_CHUNK  ? "ORPHAN_CHUNK"
                     : e[i].sh == SH_ZSET ? "ORPHAN_INDEX"
                                          : "FILE_ORPHAN");
        } else {
            continue;
        }
        if ((err = quarantine(v, e[i].key, e[i].klen, reason)))
            return err;
    }
    return VD_ERR_OK;
}

static vd_err fix_index_batch(val *v, kent *e, size_t n) {
    pipe *p = &v->p1, *q = &v->p2;
    const char *ns = v->ns;
    vd_err err;
    for (size_t i = 0; i < n; i++) {
        kent *x = &e[i];
        switch (x->sh) {
        case SH_DOC: x->r[0] = pc(v, p, "TYPE %b", x->key, x->klen); break;
        case SH_CHUNK:
            x->r[0] = pc(v, p, "TYPE %b", x->key, x->klen);
            x->r[1] = pc(v, p, "TYPE %s:doc:{%s}", ns, x->doc);
            x->r[2] = pc(v, p, "HGET %b seq", x->key, x->klen);
            x->r[3] = pc(v, p, "ZSCORE %s:doc:{%s}:chunks %s", ns, x->doc, x->chunk);
            break;
        case SH_ZSET:
            x->r[0] = pc(v, p, "ZRANGE %b 0 -1", x->key, x->klen);
            x->r[1] = pc(v, p, "TYPE %s:doc:{%s}", ns, x->doc);
            break;
        default: break;
        }
    }
    if ((err = pipe_flush(v, p)))
        return err;
    for (size_t i = 0; i < n; i++) {
        kent *x = &e[i];
        if (x->sh == SH_ZSET && rep_status(P(v, x->r[1]), "hash")) {
            const redisReply *z = P(v, x->r[0]);
            if (!z || z->type != REDIS_REPLY_ARRAY || z->elements == 0)
                continue;
            for (size_t j = 0; j < z->elements; j++) {
                const redisReply *m = z->element[j];
                long ri;
                if (rep_str(m) && vd_id_valid(m->str, m->len))
                    ri = pc(v, q, "TYPE %s:chunk:{%s}:%b", ns, x->doc, m->str, m->len);
                else
                    ri = pc(v, q, "TYPE %s:chunk:{%s}:", ns, x->doc);
                if (j == 0)
                    x->q0 = ri;
            }
        }
    }
    if ((err = pipe_flush(v, q)))
        return err;

    /* Stage 3: the repairs themselves, in a pipeline of their own. */
    pipe fx = {0};
    for (size_t i = 0; i < n; i++) {
        kent *x = &e[i];
        if (x->sh == SH_DOC && rep_status(P(v, x->r[0]), "hash") && v->docs_state != 2) {
            pc(v, &fx, "SADD %s:docs %s", ns, x->doc);
        } else if (x->sh == SH_CHUNK && rep_status(P(v, x->r[0]), "hash") &&
                   rep_status(P(v, x->r[1]), "hash") && !rep_str(P(v, x->r[3]))) {
            int64_t sq;
            if (rep_i64(P(v, x->r[2]), &sq))
                pc(v, &fx, "ZADD %s:doc:{%s}:chunks NX %lld %s", ns, x->doc, (long long)sq,
                   x->chunk);
        } else if (x->sh == SH_ZSET && x->q0 >= 0) {
            const redisReply *z = P(v, x->r[0]);
            for (size_t j = 0; j < z->elements; j++)
                if (rep_str(z->element[j]) && !rep_status(Q(v, x->q0 + (long)j), "hash"))
                    pc(v, &fx, "ZREM %b %b", x->key, x->klen, z->element[j]->str,
                       z->element[j]->len);
        }
    }
    err = pipe_flush(v, &fx);
    for (size_t i = 0; i < fx.n; i++)
        v->res->fixed += rep_int(fx.rep[i], 0);     /* WRONGTYPE errors count 0 */
    pipe_free(&fx);
    return err;
}

static vd_err fix_recount_batch(val *v, kent *e, size_t n) {
    pipe *p = &v->p1;
    vd_err err;
    for (size_t i = 0; i < n; i++) {
        kent *x = &e[i];
        if (x->sh != SH_DOC)
            continue;
        x->r[0] = pc(v, p, "TYPE %b", x->key, x->klen);
        x->r[1] = pc(v, p, "ZCARD %s:doc:{%s}:chunks", v->ns, x->doc);
        x->r[2] = pc(v, p, "HGET %b chunk_count", x->key, x->klen);
    }
    if ((err = pipe_flush(v, p)))
        return err;
    pipe fx = {0};
    for (size_t i = 0; i < n; i++) {
        kent *x = &e[i];
        if (x->sh != SH_DOC || !rep_status(P(v, x->r[0]), "hash"))
            continue;
        const redisReply *z = P(v, x->r[1]);
        int64_t have;
        if (!z || z->type != REDIS_REPLY_INTEGER)
            continue;                                /* index of the wrong type */
        if (rep_i64(P(v, x->r[2]), &have) && have == z->integer)
            continue;
        pc(v, &fx, "HSET %b chunk_count %lld", x->key, x->klen, (long long)z->integer);
    }
    err = pipe_flush(v, &fx);
    if (!err)
        v->res->fixed += (int64_t)fx.n;
    pipe_free(&fx);
    return err;
}

static vd_err fix_meta_docs(val *v) {
    char k[VAL_KEY_MAX];
    vd_err err = VD_ERR_OK;
    static const char *const names[2] = {"meta", "docs"};
    static const char *const want[2] = {"hash", "set"};
    if (!v->on[CK_TYPES])
        return VD_ERR_OK;
    for (int i = 0; i < 2; i++) {
        redisReply *r = val_cmd(v, &err, "TYPE %s:%s", v->ns, names[i]);
        if (!r)
            return err;
        bool wrong = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "none") != 0 &&
                     strcmp(r->str, want[i]) != 0;
        freeReplyObject(r);
        if (!wrong)
            continue;
        int kl = snprintf(k, sizeof k, "%s:%s", v->ns, names[i]);
        if ((err = quarantine(v, k, (size_t)kl, "RECORD_WRONG_TYPE")))
            return err;
        if (i == 1)
            v->docs_state = 0;
    }
    return VD_ERR_OK;
}

/* ---- progress total --------------------------------------------------- */

/* Estimates the keys of the namespace: SCARD NS:docs times the keys per
 * document of a sample (doc hash + ZSET + chunks + file), capped by DBSIZE. */
static int64_t estimate_keys(val *v, int64_t *ndocs) {
    vd_err err = VD_ERR_OK;
    int64_t dbsize = -1, scard = 0, est;
    redisReply *r = val_cmd(v, &err, "DBSIZE");
    if (r) {
        dbsize = rep_int(r, -1);
        freeReplyObject(r);
    }
    r = val_cmd(v, &err, "SCARD %s:docs", v->ns);
    if (r) {
        scard = rep_int(r, 0);
        freeReplyObject(r);
    }
    *ndocs = scard;
    r = val_cmd(v, &err, "SRANDMEMBER %s:docs 50", v->ns);
    double per_doc = 1.0;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        size_t m = r->elements;
        for (size_t i = 0; i < m; i++) {
            const redisReply *id = r->element[i];
            pc(v, &v->p1, "ZCARD %s:doc:{%b}:chunks", v->ns, id->str, id->len);
            pc(v, &v->p1, "EXISTS %s:file:{%b}", v->ns, id->str, id->len);
        }
        if (pipe_flush(v, &v->p1) == VD_ERR_OK) {
            double sum = 0;
            for (size_t i = 0; i < m; i++) {
                long long zc = rep_int(v->p1.rep[2 * i], 0);
                sum += 1.0 + (double)zc + (zc > 0 ? 1.0 : 0.0) +
                       (double)rep_int(v->p1.rep[2 * i + 1], 0);
            }
            per_doc = sum / (double)m;
        }
        pipe_release(&v->p1);
    }
    if (r)
        freeReplyObject(r);
    est = (int64_t)((double)scard * per_doc) + 2;
    if (dbsize >= 0 && (est > dbsize || scard == 0))
        est = dbsize;
    return est;
}

/* ---- entry point ------------------------------------------------------ */

vd_err vd_task_validate(const vd_task_ctx *ctx, const vd_validate_params *p,
                        vd_validate_result *res, char *errstr, size_t errstr_size) {
    vd_err err = VD_ERR_OK;
    vd_store *st = NULL;
    val v;
    int64_t t0 = vd_mono_ms();

    if (!res)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "no result");
    memset(res, 0, sizeof *res);
    vd_issues_init(&res->issues, VAL_ISSUES_KEPT);
    if (!ctx || !ctx->redis || !ctx->ns || !*ctx->ns || strlen(ctx->ns) > VAL_NS_MAX)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "validate needs a Redis configuration and a namespace of 1-%d bytes",
                         VAL_NS_MAX);

    memset(&v, 0, sizeof v);
    v.ctx = ctx;
    v.ns = ctx->ns;
    v.res = res;
    v.fix = p && p->fix;
    v.errstr = errstr;
    v.errsz = errstr_size;
    v.total = -1;
    for (int i = 0; i < CK__COUNT; i++)
        v.on[i] = !p || !p->checks || p->nchecks == 0;
    if (p && p->checks) {
        for (size_t i = 0; i < p->nchecks; i++) {
            int j;
            for (j = 0; j < CK__COUNT; j++)
                if (p->checks[i] && strcmp(p->checks[i], check_names[j]) == 0)
                    break;
            if (j == CK__COUNT)
                return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                                 "unknown check '%.40s' (meta, fields, orphans, embeddings, "
                                 "index, chunk_count, file_sha, types)",
                                 p->checks[i] ? p->checks[i] : "(null)");
            v.on[j] = true;
        }
    }
    for (int i = 0; i < CK__COUNT; i++) {
        v.ck_slot[i] = -1;
        if (v.on[i]) {
            vd_check_count *c = &res->by_check[res->nchecks];
            snprintf(c->check, sizeof c->check, "%s", check_names[i]);
            v.ck_slot[i] = (int)res->nchecks++;
        }
    }

    if ((err = vd_store_connect(ctx->redis, &st, errstr, errstr_size)))
        goto out;
    v.c = vd_store_redis(st);

    /* Detection: read-only, gives the report. */
    int64_t ndocs = 0;
    int64_t est = estimate_keys(&v, &ndocs);
    v.phase = "scan";
    v.total = est + ndocs;
    val_progress(&v, true);
    if ((err = detect_meta(&v)) || (err = detect_docs_type(&v)))
        goto out;
    if (v.on[CK_INDEX] && v.docs_state == 1 && (err = docs_stale(&v, false)))
        goto out;
    if ((err = val_scan(&v, detect_batch)))
        goto out;

    if (v.fix) {
        bool q = v.found[FX_QUARANTINE] > 0;
        bool ix = q || v.found[FX_INDEX] > 0;
        bool sd = q || v.found[FX_STALE_DOCS] > 0;
        bool rc = v.on[CK_CHUNK_COUNT] && (ix || v.found[FX_RECOUNT] > 0);
        ix = ix && v.on[CK_INDEX];
        sd = sd && v.on[CK_INDEX];
        int passes = (q ? 1 : 0) + (ix ? 1 : 0) + (rc ? 1 : 0);
        v.phase = "fix";
        v.done = 0;
        v.total = est * passes + (sd ? ndocs : 0);
        val_progress(&v, true);
        if (q && ((err = fix_meta_docs(&v)) || (err = val_scan(&v, fix_quarantine_batch))))
            goto out;
        if (ix && (err = val_scan(&v, fix_index_batch)))
            goto out;
        if (sd && v.docs_state == 1 && (err = docs_stale(&v, true)))
            goto out;
        if (rc && (err = val_scan(&v, fix_recount_batch)))
            goto out;
    }
    v.total = v.done;
    val_progress(&v, true);

out:
    pipe_free(&v.p1);
    pipe_free(&v.p2);
    free(v.ents);
    vd_store_destroy(st);
    res->duration_ms = vd_mono_ms() - t0;
    if (!err)
        vd_log(VD_LOG_INFO, "validate done",
               "ns=%s documents=%lld chunks=%lld files=%lld issues=%lld fixed=%lld "
               "quarantined=%lld unfixable=%lld duration_ms=%lld",
               ctx->ns, (long long)res->documents, (long long)res->chunks,
               (long long)res->files, (long long)res->issues.total, (long long)res->fixed,
               (long long)res->quarantined, (long long)res->unfixable,
               (long long)res->duration_ms);
    return err;
}

void vd_validate_result_free(vd_validate_result *r) {
    if (!r)
        return;
    vd_issues_free(&r->issues);
}
