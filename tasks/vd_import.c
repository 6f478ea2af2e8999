/*
 * vd_import.c - the import task (SPEC §4, §5): load an artifact (a file on
 * the backup volume or inline bytes) into a namespace.
 *
 * Pass 1 (verify) streams the whole artifact through the reader, which
 * checks every record, the trailer/manifest checksums and the limits; here we
 * add the target's dimension, duplicate document ids within the artifact and
 * conflicts with documents already in Redis. Nothing is written before pass 1
 * has read the artifact to its end. Pass 2 (write) re-reads the artifact and
 * writes each document atomically (one Lua script per document, pipelined
 * in batches: vd_store_doc_put_batch_send/_recv), saving a checkpoint
 * (documents done) after whole batches, every CHECKPOINT_DOCS documents or
 * second.
 *
 * Memory: bounded by two write batches (WRITE_BATCH_BYTES each, one being
 * read while the other is in flight; a single larger document makes a batch
 * of its own) plus, per document of the artifact, one 16-byte digest of its
 * id (duplicate detection; a hash table kept at most half full, so ~40
 * bytes per document: ~40 MB for 1M documents) and one state byte.
 */
#include "tasks_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/sha.h>

#define CHECKPOINT_DOCS 256
#define CHECKPOINT_MS 1000
#define EXISTS_BATCH 256
#define DEFAULT_MAX_INLINE (16 * 1024 * 1024)

void vd_import_result_free(vd_import_result *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->nconflict_ids; i++)
        free(r->conflict_ids[i]);
    r->nconflict_ids = 0;
}

/* ---- a set of document-id digests (duplicate detection) --------------- */
typedef struct idset {
    unsigned char (*slot)[16];
    unsigned char *used;
    size_t cap, n;           /* cap is a power of two */
} idset;

static void idset_free(idset *s) {
    free(s->slot);
    free(s->used);
    memset(s, 0, sizeof *s);
}

static size_t idset_pos(const unsigned char d[16], size_t cap) {
    uint64_t h;
    memcpy(&h, d, sizeof h);
    return (size_t)h & (cap - 1);
}

static bool idset_grow(idset *s) {
    size_t ncap = s->cap ? s->cap * 2 : 1024;
    unsigned char(*nslot)[16] = calloc(ncap, sizeof *nslot);
    unsigned char *nused = calloc(ncap, 1);
    if (!nslot || !nused) {
        free(nslot);
        free(nused);
        return false;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->used[i])
            continue;
        size_t j = idset_pos(s->slot[i], ncap);
        while (nused[j])
            j = (j + 1) & (ncap - 1);
        memcpy(nslot[j], s->slot[i], 16);
        nused[j] = 1;
    }
    free(s->slot);
    free(s->used);
    s->slot = nslot;
    s->used = nused;
    s->cap = ncap;
    return true;
}

/* @returns 1 when added, 0 when already present, -1 on out of memory. */
static int idset_add(idset *s, const char *id) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)id, strlen(id), md);
    if ((s->n + 1) * 2 > s->cap && !idset_grow(s))
        return -1;
    size_t j = idset_pos(md, s->cap);
    while (s->used[j]) {
        if (memcmp(s->slot[j], md, 16) == 0)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    memcpy(s->slot[j], md, 16);
    s->used[j] = 1;
    s->n++;
    return 1;
}

/* ---- per-document state found in pass 1 -------------------------------- */
enum { DOC_NEW = 0, DOC_CONFLICT = 1, DOC_PRESENT_SAME = 2 };

typedef struct docstates {
    unsigned char *v;
    size_t n, cap;
} docstates;

static bool docstates_push(docstates *d, unsigned char st) {
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 4096;
        unsigned char *p = realloc(d->v, ncap);
        if (!p)
            return false;
        d->v = p;
        d->cap = ncap;
    }
    d->v[d->n++] = st;
    return true;
}

/* ---- the import's working state ----------------------------------------- */
typedef struct imp {
    const vd_task_ctx *ctx;
    const vd_import_params *p;
    vd_import_result *res;
    vd_limits lim;
    vd_store *s;
    char path[PATH_MAX];     /* resolved source file, "" for inline data */
    int64_t resume_done;     /* documents written by an earlier attempt */
    char side_sha[65];       /* from the sidecar manifest, "" when none */
    int64_t side_size;       /* -1 when unknown */
    int64_t side_docs;       /* -1 when unknown */
    docstates st;
    idset ids;
    /* pending EXISTS checks */
    char *batch_ids[EXISTS_BATCH];
    size_t batch_idx[EXISTS_BATCH];
    size_t nbatch;
    vd__progress pr;
} imp;

static void note_conflict(imp *m, const char *id) {
    vd_import_result *r = m->res;
    r->conflicts++;
    if (r->nconflict_ids < VD_CONFLICT_IDS_MAX) {
        char *c = vd_strdup(id);
        if (c)
            r->conflict_ids[r->nconflict_ids++] = c;
    }
}

static void batch_clear(imp *m) {
    for (size_t i = 0; i < m->nbatch; i++)
        free(m->batch_ids[i]);
    m->nbatch = 0;
}

/* Pipelines EXISTS NS:doc:{ID} for every pending id. */
static vd_err batch_flush(imp *m, char *errstr, size_t errstr_size) {
    if (m->nbatch == 0)
        return VD_ERR_OK;
    redisContext *c = vd_store_redis(m->s);
    const char *ns = m->ctx->ns;
    char key[512];
    vd_err e = VD_ERR_OK;
    for (size_t i = 0; i < m->nbatch; i++) {
        int n = snprintf(key, sizeof key, "%s:doc:{%s}", ns, m->batch_ids[i]);
        if (n < 0 || (size_t)n >= sizeof key) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "namespace too long");
            goto out;
        }
        if (redisAppendCommand(c, "EXISTS %b", key, (size_t)n) != REDIS_OK) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_REDIS_CONN, "EXISTS: %s", c->errstr);
            goto out;
        }
    }
    for (size_t i = 0; i < m->nbatch; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_REDIS_CONN,
                          "checking conflicts: lost Redis: %s", c->errstr);
            goto out; /* the connection is unusable now */
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            if (!e)
                e = vd_seterr(errstr, errstr_size, VD_ERR_REDIS, "EXISTS: %s", rep->str);
        } else if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0) {
            m->st.v[m->batch_idx[i]] = DOC_CONFLICT;
            note_conflict(m, m->batch_ids[i]);
        }
        freeReplyObject(rep);
    }
out:
    batch_clear(m);
    return e;
}

static bool str_eq(const char *a, const char *b) {
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Whether Redis already holds exactly this document (a resumed import's own write). */
static bool docgroup_same(const vd_docgroup *a, const vd_docgroup *b) {
    const vd_doc *x = &a->doc, *y = &b->doc;
    if (!str_eq(x->id, y->id) || !str_eq(x->title, y->title) || !str_eq(x->source, y->source) ||
        !str_eq(x->content_type, y->content_type) || x->size != y->size ||
        !str_eq(x->sha256, y->sha256) || x->created_at != y->created_at ||
        x->updated_at != y->updated_at || x->chunk_count != y->chunk_count ||
        !str_eq(x->metadata, y->metadata))
        return false;
    if (a->nchunks != b->nchunks || a->has_file != b->has_file)
        return false;
    for (size_t i = 0; i < a->nchunks; i++) {
        const vd_chunk *c = &a->chunks[i], *d = &b->chunks[i];
        if (!str_eq(c->id, d->id) || !str_eq(c->doc_id, d->doc_id) || c->seq != d->seq ||
            c->text_len != d->text_len || c->dim != d->dim ||
            !str_eq(c->metadata, d->metadata))
            return false;
        if (c->text_len && memcmp(c->text, d->text, c->text_len) != 0)
            return false;
        if (c->dim && memcmp(c->embedding, d->embedding, c->dim * sizeof(float)) != 0)
            return false;
    }
    if (a->has_file && (a->file.len != b->file.len ||
                        (a->file.len && memcmp(a->file.data, b->file.data, a->file.len) != 0)))
        return false;
    return true;
}

/* Resumed import: an existing document identical to the artifact's is ours. */
static vd_err check_one_resumed(imp *m, const vd_docgroup *g, size_t idx, char *errstr,
                                size_t errstr_size) {
    bool exists = false;
    vd_err e = vd_store_doc_exists(m->s, m->ctx->ns, g->doc.id, &exists, errstr, errstr_size);
    if (e || !exists)
        return e;
    vd_docgroup cur;
    memset(&cur, 0, sizeof cur);
    e = vd_store_doc_get(m->s, m->ctx->ns, g->doc.id, g->has_file, &cur, errstr, errstr_size);
    if (e == VD_ERR_NOT_FOUND)
        return VD_ERR_OK;
    if (e)
        return e;
    if (docgroup_same(g, &cur)) {
        m->st.v[idx] = DOC_PRESENT_SAME;
    } else {
        m->st.v[idx] = DOC_CONFLICT;
        note_conflict(m, g->doc.id);
    }
    vd_docgroup_clear(&cur);
    return VD_ERR_OK;
}

static vd_err open_reader(imp *m, vd_reader **r, char *errstr, size_t errstr_size) {
    if (m->path[0])
        return vd_reader_open(m->path, &m->lim, r, errstr, errstr_size);
    return vd_reader_open_mem(m->p->inline_data, m->p->inline_len, &m->lim, r, errstr,
                              errstr_size);
}

/*
 * Reads SOURCE.manifest.json when it sits next to a file source: its size,
 * SHA-256 and document count are then checked / used as the progress total.
 */
static vd_err load_sidecar(imp *m, char *errstr, size_t errstr_size) {
    m->side_size = m->side_docs = -1;
    m->side_sha[0] = '\0';
    if (!m->path[0])
        return VD_ERR_OK;
    char mpath[PATH_MAX + 32];
    snprintf(mpath, sizeof mpath, "%s.manifest.json", m->path);
    struct stat st;
    if (stat(mpath, &st) != 0 || !S_ISREG(st.st_mode))
        return VD_ERR_OK;
    if (st.st_size > 16 * 1024 * 1024)
        return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                         "manifest of %s is over 16 MiB", m->p->source_path);
    json_error_t jerr;
    json_t *root = json_load_file(mpath, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_JSON,
                         "manifest of %s is not a JSON object: %s", m->p->source_path,
                         jerr.text);
    }
    const char *sha = json_string_value(json_object_get(root, "sha256"));
    if (sha && strlen(sha) == 64 && strspn(sha, "0123456789abcdefABCDEF") == 64)
        snprintf(m->side_sha, sizeof m->side_sha, "%s", sha);
    json_t *size = json_object_get(root, "size");
    if (json_is_integer(size))
        m->side_size = (int64_t)json_integer_value(size);
    json_t *docs = json_object_get(json_object_get(root, "counts"), "documents");
    if (json_is_integer(docs))
        m->side_docs = (int64_t)json_integer_value(docs);
    json_decref(root);
    return VD_ERR_OK;
}

static bool hex64(const char *s) {
    return s && strlen(s) == 64 && strspn(s, "0123456789abcdefABCDEF") == 64;
}

/*
 * SHA-256 over the whole input, compared with expected_sha256 and with the
 * sidecar manifest's (whichever are given), before anything else is read.
 */
static vd_err check_sha256(imp *m, char *errstr, size_t errstr_size) {
    const char *want = m->p->expected_sha256;
    if (want && *want && !hex64(want))
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "expected_sha256 must be 64 hex characters");
    if (!(want && *want) && !m->side_sha[0])
        return VD_ERR_OK;
    vd__progress_phase(&m->pr, "checksum", m->path[0] ? -1 : (int64_t)m->p->inline_len);
    char got[65];
    int64_t total = 0;
    if (!m->path[0]) {
        vd_sha256_hex(m->p->inline_data, m->p->inline_len, got);
        total = (int64_t)m->p->inline_len;
    } else {
        FILE *f = fopen(m->path, "rb");
        if (!f)
            return vd_seterr(errstr, errstr_size, VD_ERR_IO, "open %s: %s", m->p->source_path,
                             strerror(errno));
        size_t bufsz = 1 << 20;
        unsigned char *buf = malloc(bufsz);
        vd_sha256 *h = vd_sha256_new();
        if (!buf || !h) {
            free(buf);
            vd_sha256_destroy(h);
            fclose(f);
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        }
        size_t n;
        while ((n = fread(buf, 1, bufsz, f)) > 0) {
            vd_sha256_update(h, buf, n);
            total += (int64_t)n;
            vd__progress_update(&m->pr, total, total);
        }
        int rerr = ferror(f);
        fclose(f);
        free(buf);
        vd_sha256_final_hex(h, got);
        vd_sha256_destroy(h);
        if (rerr)
            return vd_seterr(errstr, errstr_size, VD_ERR_IO, "read %s failed",
                             m->p->source_path);
    }
    if (want && *want && strncasecmp(got, want, 64) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                         "artifact SHA-256 is %s, expected_sha256 says %s", got, want);
    if (m->side_sha[0] && strncasecmp(got, m->side_sha, 64) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                         "artifact SHA-256 is %s, its manifest says %s", got, m->side_sha);
    if (m->side_sha[0] && m->side_size >= 0 && m->side_size != total)
        return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                         "artifact is %lld bytes, its manifest says %lld", (long long)total,
                         (long long)m->side_size);
    return VD_ERR_OK;
}

static void fill_limits(vd_limits *l, const vd_limits *given) {
    vd_limits d;
    vd_limits_default(&d);
    *l = *given;
    if (l->max_artifact_bytes <= 0)
        l->max_artifact_bytes = d.max_artifact_bytes;
    if (l->max_record_bytes <= 0)
        l->max_record_bytes = d.max_record_bytes;
    if (l->max_ratio <= 0)
        l->max_ratio = d.max_ratio;
    if (l->max_members <= 0)
        l->max_members = d.max_members;
    if (l->max_chunks_per_doc <= 0)
        l->max_chunks_per_doc = d.max_chunks_per_doc;
}

/* Where the bytes come from; sets m->path for a file. */
static vd_err prepare_source(imp *m, char *errstr, size_t errstr_size) {
    const vd_import_params *p = m->p;
    bool has_path = p->source_path && *p->source_path;
    bool has_inline = p->inline_data != NULL;
    if (has_path == has_inline)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "import needs exactly one of source_path and inline_data");
    if (has_inline) {
        int64_t max = p->max_inline_bytes > 0 ? p->max_inline_bytes : DEFAULT_MAX_INLINE;
        if ((int64_t)p->inline_len > max)
            return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                             "inline_data is %zu bytes, over the %lld-byte limit; "
                             "put the artifact on the backup volume and use source_path",
                             p->inline_len, (long long)max);
        if ((int64_t)p->inline_len > m->lim.max_artifact_bytes)
            return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                             "artifact over max_artifact_bytes");
        return VD_ERR_OK;
    }
    if (!m->ctx->backup_dir)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "no backup directory");
    vd_err e = vd_path_resolve(m->ctx->backup_dir, p->source_path, m->path, sizeof m->path,
                               errstr, errstr_size);
    if (e)
        return e;
    struct stat st;
    if (stat(m->path, &st) != 0) {
        int err = errno;
        m->path[0] = '\0';
        if (err == ENOENT)
            return vd_seterr(errstr, errstr_size, VD_ERR_NOT_FOUND,
                             "artifact %s not found in the backup volume", p->source_path);
        return vd_seterr(errstr, errstr_size, VD_ERR_IO, "stat %s: %s", p->source_path,
                         strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        m->path[0] = '\0';
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "%s is not a regular file",
                         p->source_path);
    }
    if ((int64_t)st.st_size > m->lim.max_artifact_bytes) {
        m->path[0] = '\0';
        return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                         "artifact %s is %lld bytes, over max_artifact_bytes %lld",
                         p->source_path, (long long)st.st_size,
                         (long long)m->lim.max_artifact_bytes);
    }
    return VD_ERR_OK;
}

/* Pass 1: read everything, find duplicates and conflicts. Writes nothing. */
static vd_err pass_verify(imp *m, const vd_meta *target, bool have_target_meta,
                          char *errstr, size_t errstr_size) {
    vd_reader *r = NULL;
    vd_docgroup g;
    memset(&g, 0, sizeof g);
    vd_err e = open_reader(m, &r, errstr, errstr_size);
    if (e)
        return e;
    const vd_artifact_info *info = vd_reader_info(r);
    if (info->meta.dim <= 0) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM, "artifact header has no dim");
        goto out;
    }
    if (have_target_meta && target->dim != info->meta.dim) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM,
                      "artifact embeddings have dim %d but namespace %s has dim %d",
                      info->meta.dim, m->ctx->ns, target->dim);
        goto out;
    }
    vd__progress_phase(&m->pr, "verify", m->side_docs);
    vd_counts *cnt = &m->res->counts;
    size_t idx = 0;
    for (;; idx++) {
        if (vd__cancelled(m->ctx)) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_CANCELLED,
                          "import cancelled while verifying; nothing written");
            goto out;
        }
        bool done = false;
        if ((e = vd_reader_next(r, &g, &done, errstr, errstr_size)))
            goto out;
        if (done)
            break;
        cnt->documents++;
        cnt->chunks += (int64_t)g.nchunks;
        cnt->files += g.has_file ? 1 : 0;
        int added = idset_add(&m->ids, g.doc.id);
        if (added < 0 || !docstates_push(&m->st, DOC_NEW)) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (added == 0) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                          "document id %s appears more than once in the artifact "
                          "(document #%zu)",
                          g.doc.id, idx + 1);
            goto out;
        }
        if ((int64_t)idx >= m->resume_done) {
            if (m->resume_done > 0) {
                if ((e = check_one_resumed(m, &g, idx, errstr, errstr_size)))
                    goto out;
            } else {
                m->batch_ids[m->nbatch] = g.doc.id; /* moved: the batch owns it now */
                m->batch_idx[m->nbatch] = idx;
                m->nbatch++;
                g.doc.id = NULL;
                if (m->nbatch == EXISTS_BATCH && (e = batch_flush(m, errstr, errstr_size)))
                    goto out;
            }
        }
        vd_docgroup_clear(&g);
        vd__progress_update(&m->pr, cnt->documents, vd_reader_bytes(r));
    }
    if ((e = batch_flush(m, errstr, errstr_size)))
        goto out;
    if ((int64_t)idx < m->resume_done) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                      "checkpoint says %lld documents done but the artifact holds %zu",
                      (long long)m->resume_done, idx);
        goto out;
    }
    vd__progress_update(&m->pr, cnt->documents, vd_reader_bytes(r));
    vd__progress_flush(&m->pr);
out:
    batch_clear(m);
    vd_docgroup_clear(&g);
    vd_reader_destroy(r);
    return e;
}

static vd_err save_checkpoint(imp *m, int64_t docs_done, char *errstr, size_t errstr_size) {
    if (!m->ctx->checkpoint_save)
        return VD_ERR_OK;
    vd_err e = m->ctx->checkpoint_save(m->ctx->opaque, docs_done);
    if (e)
        return vd_seterr(errstr, errstr_size, e, "saving the import checkpoint: %s",
                         vd_err2str(e));
    return VD_ERR_OK;
}

/*
 * Pass 2 writes in batches: up to WRITE_BATCH_DOCS documents or about
 * WRITE_BATCH_BYTES of payload go to Redis in one pipelined round trip
 * (vd_store_doc_put_batch_send/_recv: every document still atomic on its
 * own, by one Lua script). One batch is in flight while the next is read
 * from the artifact, so decoding and Redis's work overlap. A batch is a run
 * of consecutive artifact documents; the ones that need no write (already
 * present, skipped) ride along so that the checkpoint only moves past a
 * batch once all of it is settled: "k" always means the first k documents
 * of the artifact are written.
 */
#define WRITE_BATCH_DOCS 256
#define WRITE_BATCH_BYTES (4u << 20)

enum { W_SAME, W_SKIP, W_NEW, W_OVERWRITE };

typedef struct wbatch {
    size_t start;                              /* artifact index of kind[0] */
    unsigned char kind[WRITE_BATCH_DOCS];      /* one per document, W_* */
    size_t nkind;
    vd_docgroup g[WRITE_BATCH_DOCS];           /* the W_NEW / W_OVERWRITE ones, owned */
    vd_store_put_mode mode[WRITE_BATCH_DOCS];
    vd_err res[WRITE_BATCH_DOCS];
    size_t ng;
    size_t bytes;                              /* payload of g[] (approximate) */
    char err[512];                             /* the store's text of its first failure */
} wbatch;

static void wbatch_clear(wbatch *b) {
    for (size_t i = 0; i < b->ng; i++)
        vd_docgroup_clear(&b->g[i]);
    b->ng = b->nkind = b->bytes = 0;
}

static size_t docgroup_bytes(const vd_docgroup *g) {
    size_t n = 256 + (g->has_file ? g->file.len : 0);
    for (size_t i = 0; i < g->nchunks; i++)
        n += 64 + g->chunks[i].text_len + g->chunks[i].dim * 4;
    return n;
}

static void wbatch_send(imp *m, wbatch *b, size_t dim) {
    b->err[0] = '\0';
    if (b->ng)
        vd_store_doc_put_batch_send(m->s, m->ctx->ns, b->g, b->mode, b->ng, dim, b->res,
                                    b->err, sizeof b->err);
}

/*
 * Reads a sent batch's replies and settles its counts. *done_docs becomes
 * the artifact index of its first document that is not settled (all of
 * them on success). Documents written after a failed one are counted (they
 * are in Redis; a resumed import finds them identical and leaves them).
 * A batch settled after an earlier failure (after_failure) only counts
 * what it wrote.
 */
static vd_err wbatch_settle(imp *m, wbatch *b, bool after_failure, int64_t *done_docs,
                            char *errstr, size_t errstr_size) {
    vd_import_result *res = m->res;
    const bool skip = m->p->on_conflict == VD_CONFLICT_SKIP;
    vd_err e = VD_ERR_OK;
    size_t api_first = b->ng, fail = after_failure ? 0 : b->nkind, wi = 0;
    if (b->ng)
        vd_store_doc_put_batch_recv(m->s, m->ctx->ns, b->g, b->ng, b->res, b->err,
                                    sizeof b->err);
    for (size_t i = 0; i < b->ng; i++)
        if (b->res[i] != VD_ERR_OK) {
            api_first = i; /* the document b->err describes */
            break;
        }
    for (size_t i = 0; i < b->nkind; i++) {
        if (b->kind[i] == W_SAME || b->kind[i] == W_SKIP) {
            if (fail < b->nkind)
                continue; /* settled on the retry */
            if (b->kind[i] == W_SAME)
                res->imported++;
            else
                res->skipped++;
            continue;
        }
        size_t w = wi++;
        vd_err r = b->res[w];
        if (r == VD_ERR_OK) {
            if (b->kind[i] == W_NEW)
                res->imported++;
            else
                res->overwritten++;
        } else if (r == VD_ERR_CONFLICT && skip && b->mode[w] == VD_STORE_PUT_IF_ABSENT) {
            /* Created by someone else since pass 1: SKIP leaves it alone. */
            if (fail == b->nkind) {
                res->skipped++;
                note_conflict(m, b->g[w].doc.id);
            }
        } else if (fail == b->nkind) {
            fail = i;
            if (r == VD_ERR_CONFLICT)
                e = vd_seterr(errstr, errstr_size, r,
                              "document %s was created in namespace %s after the conflict "
                              "check; it is left as it is and the import stops there",
                              b->g[w].doc.id, m->ctx->ns);
            else if (w != api_first)
                e = vd_seterr(errstr, errstr_size, r, "writing document %s: %s",
                              b->g[w].doc.id, vd_err2str(r));
            else
                e = vd_seterr(errstr, errstr_size, r, "%s", b->err);
        }
    }
    if (!after_failure)
        *done_docs = (int64_t)(b->start + fail);
    wbatch_clear(b);
    return e;
}

/*
 * Sends bb[*fill] and then settles the batch in flight before it (when
 * *flying); bb[*fill] is in flight afterwards and *fill the other, empty
 * buffer. On a failure the sent batch is settled too (nothing stays in
 * flight) and the error of the first is returned.
 */
static vd_err wbatch_rotate(imp *m, wbatch *bb, int *fill, bool *flying, size_t dim,
                            int64_t *done_docs, char *errstr, size_t errstr_size) {
    wbatch *sent = &bb[*fill], *prev = &bb[1 - *fill];
    wbatch_send(m, sent, dim);
    vd_err e = *flying ? wbatch_settle(m, prev, false, done_docs, errstr, errstr_size)
                       : VD_ERR_OK;
    *fill = 1 - *fill;
    *flying = true;
    if (e) {
        char ignored[512];
        wbatch_settle(m, sent, true, done_docs, ignored, sizeof ignored);
        *flying = false;
    }
    return e;
}

/* Pass 2: write. */
static vd_err pass_write(imp *m, bool have_target_meta, char *errstr, size_t errstr_size) {
    vd_reader *r = NULL;
    vd_docgroup g;
    memset(&g, 0, sizeof g);
    vd_import_result *res = m->res;
    int64_t done_docs = m->resume_done;
    int64_t saved = m->resume_done, last_save_ms = vd_mono_ms();
    wbatch *bb = calloc(2, sizeof *bb); /* one filling, one in flight */
    int fill = 0;
    bool flying = false;
    if (!bb)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
    vd_err e = open_reader(m, &r, errstr, errstr_size);
    if (e) {
        free(bb);
        return e;
    }
    const vd_artifact_info *info = vd_reader_info(r);
    size_t dim = (size_t)info->meta.dim;

    if (!have_target_meta) {
        vd_meta meta = info->meta; /* borrowed strings */
        if (meta.schema_version <= 0)
            meta.schema_version = 1;
        if (meta.created_at <= 0)
            meta.created_at = vd_now_ms();
        if ((e = vd_store_meta_put(m->s, m->ctx->ns, &meta, errstr, errstr_size)))
            goto out;
    }

    vd__progress_phase(&m->pr, "write", (int64_t)m->st.n);
    res->imported = m->resume_done; /* written by the earlier attempt */
    for (size_t idx = 0;; idx++) {
        bool done = false;
        wbatch *b = &bb[fill];
        if ((int64_t)idx >= m->resume_done && vd__cancelled(m->ctx)) {
            /* Settle what was read, then stop. */
            if (b->nkind &&
                (e = wbatch_rotate(m, bb, &fill, &flying, dim, &done_docs, errstr, errstr_size)))
                goto out;
            if (flying) {
                flying = false;
                if ((e = wbatch_settle(m, &bb[1 - fill], false, &done_docs, errstr,
                                       errstr_size)))
                    goto out;
            }
            e = vd_seterr(errstr, errstr_size, VD_ERR_CANCELLED,
                          "import cancelled after %lld of %zu document(s): %lld imported, "
                          "%lld overwritten, %lld skipped",
                          (long long)done_docs, m->st.n, (long long)res->imported,
                          (long long)res->overwritten, (long long)res->skipped);
            goto out;
        }
        if ((e = vd_reader_next(r, &g, &done, errstr, errstr_size)))
            goto out;
        if (done)
            break;
        if (idx >= m->st.n) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                          "the artifact changed between verify and write");
            goto out;
        }
        if ((int64_t)idx < m->resume_done) {
            vd_docgroup_clear(&g);
            continue;
        }
        if (b->nkind == 0)
            b->start = idx;
        unsigned char kind;
        vd_store_put_mode mode = VD_STORE_PUT_IF_ABSENT;
        switch (m->st.v[idx]) {
        case DOC_PRESENT_SAME:
            kind = W_SAME;
            break;
        case DOC_CONFLICT:
            kind = m->p->on_conflict == VD_CONFLICT_SKIP ? W_SKIP : W_OVERWRITE;
            mode = VD_STORE_PUT_REPLACE;
            break;
        default:
            /* New in pass 1. If it has appeared since, OVERWRITE replaces
             * it, SKIP and FAIL leave it alone (IF_ABSENT). */
            kind = W_NEW;
            if (m->p->on_conflict == VD_CONFLICT_OVERWRITE)
                mode = VD_STORE_PUT_REPLACE;
            break;
        }
        b->kind[b->nkind++] = kind;
        if (kind == W_NEW || kind == W_OVERWRITE) {
            b->bytes += docgroup_bytes(&g);
            b->mode[b->ng] = mode;
            b->g[b->ng++] = g; /* moved: the batch owns it now */
            memset(&g, 0, sizeof g);
        } else {
            vd_docgroup_clear(&g);
        }
        if (b->nkind == WRITE_BATCH_DOCS || b->bytes >= WRITE_BATCH_BYTES) {
            if ((e = wbatch_rotate(m, bb, &fill, &flying, dim, &done_docs, errstr, errstr_size)))
                goto out;
            int64_t now = vd_mono_ms();
            if (done_docs - saved >= CHECKPOINT_DOCS || now - last_save_ms >= CHECKPOINT_MS) {
                if ((e = save_checkpoint(m, done_docs, errstr, errstr_size)))
                    goto out;
                saved = done_docs;
                last_save_ms = now;
            }
            vd__progress_update(&m->pr, done_docs, vd_reader_bytes(r));
        }
    }
    if (bb[fill].nkind &&
        (e = wbatch_rotate(m, bb, &fill, &flying, dim, &done_docs, errstr, errstr_size)))
        goto out;
    if (flying) {
        flying = false;
        if ((e = wbatch_settle(m, &bb[1 - fill], false, &done_docs, errstr, errstr_size)))
            goto out;
    }
    if ((size_t)done_docs != m->st.n) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                      "the artifact changed between verify and write");
        goto out;
    }
    vd__progress_update(&m->pr, done_docs, vd_reader_bytes(r));
    vd__progress_flush(&m->pr);
out:
    if (flying) {
        /* Stopped with a batch in flight (reader error, checkpoint save
         * failed): it is the earliest unsettled one, settle it. */
        char tmp[512];
        vd_err se = wbatch_settle(m, &bb[1 - fill], false, &done_docs, tmp, sizeof tmp);
        if (se && !e)
            e = vd_seterr(errstr, errstr_size, se, "%s", tmp);
    }
    /* Whatever happened, record how far we got so a retry resumes there. */
    if (done_docs > saved) {
        vd_err ce = m->ctx->checkpoint_save ? m->ctx->checkpoint_save(m->ctx->opaque, done_docs)
                                            : VD_ERR_OK;
        if (ce && !e)
            e = vd_seterr(errstr, errstr_size, ce, "saving the import checkpoint: %s",
                          vd_err2str(ce));
    }
    wbatch_clear(&bb[0]);
    wbatch_clear(&bb[1]);
    free(bb);
    vd_docgroup_clear(&g);
    vd_reader_destroy(r);
    return e;
}

vd_err vd_task_import(const vd_task_ctx *ctx, const vd_import_params *p,
                      vd_import_result *res, char *errstr, size_t errstr_size) {
    if (errstr && errstr_size)
        errstr[0] = '\0';
    if (!res)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "no result");
    memset(res, 0, sizeof *res);
    if (!ctx || !p || !ctx->redis || !ctx->ns || !*ctx->ns)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "import needs redis and a namespace");
    res->validate_only = p->validate_only;
    if (p->on_conflict != VD_CONFLICT_FAIL && p->on_conflict != VD_CONFLICT_SKIP &&
        p->on_conflict != VD_CONFLICT_OVERWRITE)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "unknown on_conflict %d",
                         (int)p->on_conflict);

    const int64_t t0 = vd_mono_ms();
    imp m;
    memset(&m, 0, sizeof m);
    m.ctx = ctx;
    m.p = p;
    m.res = res;
    fill_limits(&m.lim, &p->limits);
    vd__progress_init(&m.pr, ctx);
    vd_meta target;
    memset(&target, 0, sizeof target);
    bool have_target_meta = false;
    vd_err e;

    if (vd__cancelled(ctx)) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_CANCELLED, "import cancelled before start");
        goto out;
    }
    if ((e = prepare_source(&m, errstr, errstr_size)))
        goto out;
    if ((e = load_sidecar(&m, errstr, errstr_size)))
        goto out;
    if ((e = check_sha256(&m, errstr, errstr_size)))
        goto out;
    if (!p->validate_only && ctx->checkpoint_load) {
        int64_t d = 0;
        if ((e = ctx->checkpoint_load(ctx->opaque, &d))) {
            vd_seterr(errstr, errstr_size, e, "loading the import checkpoint: %s",
                      vd_err2str(e));
            goto out;
        }
        m.resume_done = d > 0 ? d : 0;
    }

    if ((e = vd_store_connect(ctx->redis, &m.s, errstr, errstr_size)))
        goto out;
    e = vd_store_meta_get(m.s, ctx->ns, &target, errstr, errstr_size);
    if (e == VD_ERR_OK)
        have_target_meta = true;
    else if (e != VD_ERR_NOT_FOUND)
        goto out;
    e = VD_ERR_OK;

    const int64_t t_verify = vd_mono_ms();
    if ((e = pass_verify(&m, &target, have_target_meta, errstr, errstr_size)))
        goto out;
    const int64_t t_write = vd_mono_ms();

    bool fail_conflicts = res->conflicts > 0 && p->on_conflict == VD_CONFLICT_FAIL;
    if (p->validate_only) {
        /* What the real import would do. */
        int64_t fresh = res->counts.documents - res->conflicts;
        res->imported = fail_conflicts ? 0 : fresh;
        res->skipped = p->on_conflict == VD_CONFLICT_SKIP ? res->conflicts : 0;
        res->overwritten = p->on_conflict == VD_CONFLICT_OVERWRITE ? res->conflicts : 0;
    }
    if (fail_conflicts) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_CONFLICT,
                      "%lld document(s) of the artifact already exist in namespace %s "
                      "(first: %s); nothing written; use on_conflict SKIP or OVERWRITE",
                      (long long)res->conflicts, ctx->ns,
                      res->nconflict_ids ? res->conflict_ids[0] : "?");
        goto out;
    }
    if (p->validate_only)
        goto out;

    e = pass_write(&m, have_target_meta, errstr, errstr_size);
    if (!e)
        vd_log(VD_LOG_INFO, "import done",
               "task=%s ns=%s documents=%lld imported=%lld overwritten=%lld skipped=%lld "
               "resumed_from=%lld checksum_ms=%lld verify_ms=%lld write_ms=%lld",
               ctx->task_id ? ctx->task_id : "-", ctx->ns, (long long)res->counts.documents,
               (long long)res->imported, (long long)res->overwritten,
               (long long)res->skipped, (long long)m.resume_done,
               (long long)(t_verify - t0), (long long)(t_write - t_verify),
               (long long)(vd_mono_ms() - t_write));

out:
    batch_clear(&m);
    idset_free(&m.ids);
    free(m.st.v);
    vd_meta_clear(&target);
    vd_store_destroy(m.s);
    res->duration_ms = vd_mono_ms() - t0;
    return e;
}
