/*
 * vd_seed.c - a deterministic synthetic dataset for tests, demos and the
 * benchmark: same vd_seed_conf, same bytes. Each document draws from its
 * own PRNG stream (splitmix64 of seed and index), so planting defects or
 * changing the document count does not change the other documents.
 *
 * Planted defects go to distinct documents spread evenly over the dataset,
 * in this order: missing_embeddings, wrong_dims, nans (all on chunk c0000),
 * then index_drift (even ones: the id is left out of NS:docs; odd ones:
 * chunk c0000 is left out of its zset, its hash stays). orphan_chunks are
 * chunk hashes NS:chunk:{orphan-NNNNNN}:c0000 of documents that do not
 * exist.
 */
#define _POSIX_C_SOURCE 200809L
#include "vd_store_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED_FLUSH_CMDS 1024
#define SEED_FLUSH_BYTES (8u << 20)
#define SEED_BASE_MS INT64_C(1700000000000)

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rnd_unit(uint64_t *x) {
    return (float)((double)(splitmix64(x) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

static const char *const seed_words[] = {
    "alpha", "beta,", "\"gamma\"", "café", "naïve", "東京", "line\nbreak", "tab\there",
    "comma,separated", "O'Reilly", "emoji😀", "Ελληνικά", "back\\slash", "data", "vector",
    "retrieval", "chunk", "semi;colon", "€uro", "plain"};
#define SEED_NWORDS (sizeof seed_words / sizeof seed_words[0])

static const char *const seed_titles[] = {
    "Report %" PRId64 ": café, naïve — 東京", "\"Quoted\" title, with comma %" PRId64,
    "Two lines\nsecond line %" PRId64, "Plain title %" PRId64, "Ελληνικά & emoji 🚀 %" PRId64};

/* A pipeline that is drained every SEED_FLUSH_CMDS commands. */
typedef struct seed_pipe {
    vd_store *s;
    size_t pending;
    size_t bytes;
    redisReply **rep;
} seed_pipe;

static vd_err pipe_drain(seed_pipe *p, char *errstr, size_t errstr_size) {
    if (!p->pending)
        return VD_ERR_OK;
    size_t n = p->pending;
    p->pending = p->bytes = 0;
    vd_err e = vd__store_read(p->s, n, p->rep, errstr, errstr_size);
    if (e)
        return e;
    for (size_t i = 0; i < n && !e; i++)
        if (p->rep[i]->type == REDIS_REPLY_ERROR)
            e = vd__reply_err(p->rep[i], "seed", "", errstr, errstr_size);
    vd__replies_free(p->rep, n);
    return e;
}

static vd_err pipe_cmd(seed_pipe *p, int argc, const char **argv, const size_t *lens,
                       char *errstr, size_t errstr_size) {
    vd_err e = vd__store_append(p->s, argc, argv, lens, errstr, errstr_size);
    if (e)
        return e;
    p->pending++;
    for (int i = 0; i < argc; i++)
        p->bytes += lens[i];
    if (p->pending >= SEED_FLUSH_CMDS || p->bytes >= SEED_FLUSH_BYTES)
        return pipe_drain(p, errstr, errstr_size);
    return VD_ERR_OK;
}

static void lens_of(const char **argv, size_t *lens, int n) {
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
}

/* Which defect (0..total) document i carries; total when none. */
static int64_t defect_of(int64_t i, int64_t docs, int64_t total) {
    if (total == 0)
        return total;
    /* Defect p sits on document p * docs / total. */
    int64_t p = (i * total + docs - 1) / docs;
    if (p < total && p * docs / total == i)
        return p;
    return total;
}

enum { DEF_NONE, DEF_NO_EMB, DEF_WRONG_DIM, DEF_NAN, DEF_DRIFT_INDEX, DEF_DRIFT_ZSET };

typedef struct seed_ctx {
    const char *ns;
    const vd_seed_conf *c;
    seed_pipe pipe;
    vd_buf text, meta, title;
    float *vec;
    unsigned char *blob;
    unsigned char *file;
    vd_store_counts *w;
} seed_ctx;

static void make_text(seed_ctx *x, uint64_t *rng) {
    vd_buf_reset(&x->text);
    size_t want = x->c->text_bytes > 0 ? (size_t)x->c->text_bytes : 1;
    while (x->text.len < want) {
        const char *w = seed_words[splitmix64(rng) % SEED_NWORDS];
        if (x->text.len)
            vd_buf_putc(&x->text, ' ');
        vd_buf_append(&x->text, w, strlen(w));
    }
}

static void make_vec(seed_ctx *x, uint64_t *rng, size_t dim) {
    double norm = 0;
    for (size_t k = 0; k < dim; k++) {
        x->vec[k] = rnd_unit(rng);
        norm += (double)x->vec[k] * x->vec[k];
    }
    norm = sqrt(norm);
    if (norm > 0)
        for (size_t k = 0; k < dim; k++)
            x->vec[k] = (float)(x->vec[k] / norm);
}

/* Writes one chunk hash (possibly defective). */
static vd_err seed_chunk(seed_ctx *x, const char *doc_id, int j, int defect, uint64_t *rng,
                         char *errstr, size_t errstr_size) {
    char key[VD__KEY_MAX], cid[16], seq[16], meta[48];
    snprintf(cid, sizeof cid, "c%04d", j);
    snprintf(seq, sizeof seq, "%d", j);
    size_t kl = vd__key_chunk(key, x->ns, doc_id, cid, strlen(cid));
    size_t dim = (size_t)x->c->dim;
    make_text(x, rng);
    make_vec(x, rng, dim);
    if (j % 2)
        snprintf(meta, sizeof meta, "{\"seq\":%d,\"lang\":\"fr\"}", j);
    else
        snprintf(meta, sizeof meta, "{}");
    size_t blen = dim * 4;
    if (defect == DEF_WRONG_DIM)
        blen = (dim - 1) * 4;
    if (defect == DEF_NAN) {
        size_t at = (size_t)(splitmix64(rng) % dim);
        uint32_t nan_bits = UINT32_C(0x7fc00001); /* quiet NaN with a payload */
        memcpy(&x->vec[at], &nan_bits, 4);
    }
    vd_f32_to_le(x->blob, x->vec, dim);
    const char *argv[14] = {"HSET", key, "id", cid, "doc_id", doc_id, "seq", seq,
                            "text", x->text.data, "metadata", meta, "embedding",
                            (const char *)x->blob};
    size_t lens[14];
    lens_of(argv, lens, 12);
    lens[1] = kl;
    lens[9] = x->text.len;
    lens[12] = 9;
    lens[13] = blen;
    x->w->chunks++;
    return pipe_cmd(&x->pipe, defect == DEF_NO_EMB ? 12 : 14, argv, lens, errstr, errstr_size);
}

static vd_err seed_doc(seed_ctx *x, int64_t i, int defect, char *errstr, size_t errstr_size) {
    const vd_seed_conf *c = x->c;
    uint64_t rng = c->seed ^ ((uint64_t)i * UINT64_C(0xD1B54A32D192ED03));
    splitmix64(&rng);
    char id[32], key[VD__KEY_MAX], size_s[24], cat[24], uat[24], cc[16], src[96];
    char sha[65] = "";
    vd_err e;
    snprintf(id, sizeof id, "doc-%06" PRId64, i + 1);

    /* The original file first: size and sha256 come from it. */
    size_t flen = 0;
    if (c->with_files) {
        flen = (size_t)c->file_bytes;
        for (size_t k = 0; k < flen; k += 8) {
            uint64_t v = splitmix64(&rng);
            for (size_t b = 0; b < 8 && k + b < flen; b++)
                x->file[k + b] = (k + b) % 7 == 3 ? 0 : (unsigned char)(v >> (8 * b));
        }
        vd_sha256_hex(x->file, flen, sha);
    }
    vd_buf_reset(&x->title);
    vd_buf_printf(&x->title, seed_titles[splitmix64(&rng) % 5], i + 1);
    vd_buf_reset(&x->meta);
    if (i % 4 == 0)
        vd_buf_printf(&x->meta, "{}");
    else
        vd_buf_printf(&x->meta,
                      "{\"lang\":\"fr\",\"page\":%" PRId64 ",\"tags\":[\"a\",\"b, c\"],"
                      "\"note\":\"say \\\"hi\\\"\\nbye — 東京\",\"score\":0.25}",
                      i % 97);
    snprintf(src, sizeof src, "s3://bucket/docs/%s.%s", id, c->with_files ? "bin" : "txt");
    snprintf(size_s, sizeof size_s, "%zu", flen);
    int64_t created = SEED_BASE_MS + i * 1000;
    snprintf(cat, sizeof cat, "%" PRId64, created);
    snprintf(uat, sizeof uat, "%" PRId64, created + (int64_t)(splitmix64(&rng) % 100000));
    snprintf(cc, sizeof cc, "%d", c->chunks_per_doc);
    const char *ctype = c->with_files ? "application/octet-stream" : "text/plain";

    size_t kl = vd__key_doc(key, x->ns, id);
    const char *dargv[22] = {"HSET", key, "id", id, "title", x->title.data, "source", src,
                             "content_type", ctype, "size", size_s, "sha256", sha,
                             "created_at", cat, "updated_at", uat, "chunk_count", cc,
                             "metadata", x->meta.data};
    size_t dlens[22];
    lens_of(dargv, dlens, 22);
    dlens[1] = kl;
    if ((e = pipe_cmd(&x->pipe, 22, dargv, dlens, errstr, errstr_size)))
        return e;
    x->w->documents++;

    for (int j = 0; j < c->chunks_per_doc; j++)
        if ((e = seed_chunk(x, id, j, j == 0 ? defect : DEF_NONE, &rng, errstr, errstr_size)))
            return e;

    /* The chunk zset: ZADD seq cid for each chunk (c0000 left out on drift). */
    int from = defect == DEF_DRIFT_ZSET ? 1 : 0;
    if (c->chunks_per_doc > from) {
        size_t n = 2 + 2 * (size_t)(c->chunks_per_doc - from);
        const char **argv = malloc(n * sizeof *argv);
        size_t *lens = malloc(n * sizeof *lens);
        char (*num)[2][16] = malloc((size_t)c->chunks_per_doc * sizeof *num);
        if (!argv || !lens || !num) {
            free(argv);
            free(lens);
            free(num);
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        }
        char zkey[VD__KEY_MAX];
        argv[0] = "ZADD";
        argv[1] = zkey;
        lens[0] = 4;
        lens[1] = vd__key_zset(zkey, x->ns, id);
        size_t a = 2;
        for (int j = from; j < c->chunks_per_doc; j++) {
            snprintf(num[j][0], sizeof num[j][0], "%d", j);
            snprintf(num[j][1], sizeof num[j][1], "c%04d", j);
            argv[a] = num[j][0];
            lens[a] = strlen(num[j][0]);
            argv[a + 1] = num[j][1];
            lens[a + 1] = strlen(num[j][1]);
            a += 2;
        }
        e = pipe_cmd(&x->pipe, (int)n, argv, lens, errstr, errstr_size);
        free(argv);
        free(lens);
        free(num);
        if (e)
            return e;
    }
    if (c->with_files) {
        kl = vd__key_file(key, x->ns, id);
        const char *argv[3] = {"SET", key, (const char *)x->file};
        size_t lens[3] = {3, kl, flen};
        if ((e = pipe_cmd(&x->pipe, 3, argv, lens, errstr, errstr_size)))
            return e;
        x->w->files++;
    }
    if (defect != DEF_DRIFT_INDEX) {
        kl = vd__key_docs(key, x->ns);
        const char *argv[3] = {"SADD", key, id};
        size_t lens[3] = {4, kl, strlen(id)};
        if ((e = pipe_cmd(&x->pipe, 3, argv, lens, errstr, errstr_size)))
            return e;
    }
    return VD_ERR_OK;
}

vd_err vd_store_seed(vd_store *s, const char *ns, const vd_seed_conf *c,
                     vd_store_counts *written, char *errstr, size_t errstr_size) {
    vd_err e;
    vd_store_counts w0;
    vd_store_counts *w = written ? written : &w0;
    memset(w, 0, sizeof *w);
    if ((e = vd__ns_check(ns, errstr, errstr_size)))
        return e;
    int64_t total = (int64_t)c->missing_embeddings + c->wrong_dims + c->nans + c->index_drift;
    if (c->documents < 0 || c->chunks_per_doc < 0 || c->dim < 1 || c->dim > 65536 ||
        c->text_bytes < 0 || c->file_bytes < 0 || c->orphan_chunks < 0 ||
        c->missing_embeddings < 0 || c->wrong_dims < 0 || c->nans < 0 || c->index_drift < 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "seed: negative or bad sizes");
    if (total > c->documents)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "seed: %" PRId64 " defects need as many documents", total);
    if (c->chunks_per_doc == 0 && total > c->index_drift)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "seed: embedding defects need chunks_per_doc >= 1");
    if ((e = vd__store_ready(s, errstr, errstr_size)))
        return e;

    seed_ctx x;
    memset(&x, 0, sizeof x);
    x.ns = ns;
    x.c = c;
    x.w = w;
    x.pipe.s = s;
    vd_buf_init(&x.text, 0);
    vd_buf_init(&x.meta, 0);
    vd_buf_init(&x.title, 0);
    x.pipe.rep = calloc(SEED_FLUSH_CMDS, sizeof *x.pipe.rep);
    x.vec = malloc((size_t)c->dim * sizeof *x.vec);
    x.blob = malloc((size_t)c->dim * 4);
    x.file = malloc(c->file_bytes > 0 ? (size_t)c->file_bytes : 1);
    if (!x.pipe.rep || !x.vec || !x.blob || !x.file) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        goto done;
    }

    {
        char key[VD__KEY_MAX], dim[16], at[24];
        size_t kl = vd__key_meta(key, ns);
        snprintf(dim, sizeof dim, "%d", c->dim);
        snprintf(at, sizeof at, "%" PRId64, SEED_BASE_MS);
        const char *argv[12] = {"HSET", key, "schema_version", "1", "dim", dim,
                                "model", "vecdump-seed", "distance", "COSINE",
                                "created_at", at};
        size_t lens[12];
        lens_of(argv, lens, 12);
        lens[1] = kl;
        if ((e = pipe_cmd(&x.pipe, 12, argv, lens, errstr, errstr_size)))
            goto done;
    }

    for (int64_t i = 0; i < c->documents; i++) {
        int64_t p = defect_of(i, c->documents, total);
        int defect = DEF_NONE;
        if (p < total) {
            int64_t m = c->missing_embeddings, wd = m + c->wrong_dims, nn = wd + c->nans;
            defect = p < m    ? DEF_NO_EMB
                     : p < wd ? DEF_WRONG_DIM
                     : p < nn ? DEF_NAN
                     : ((p - nn) % 2 == 0 || c->chunks_per_doc == 0) ? DEF_DRIFT_INDEX
                                                                      : DEF_DRIFT_ZSET;
        }
        if ((e = seed_doc(&x, i, defect, errstr, errstr_size)))
            goto done;
    }
    for (int k = 0; k < c->orphan_chunks; k++) {
        char oid[32];
        uint64_t rng = c->seed ^ ((uint64_t)(k + 1) * UINT64_C(0xA0761D6478BD642F));
        snprintf(oid, sizeof oid, "orphan-%06d", k + 1);
        if ((e = seed_chunk(&x, oid, 0, DEF_NONE, &rng, errstr, errstr_size)))
            goto done;
    }
    e = pipe_drain(&x.pipe, errstr, errstr_size);
done:
    if (e && x.pipe.pending) {
        /* Replies are still queued: the connection is out of step. */
        s->broken = true;
    }
    free(x.pipe.rep);
    free(x.vec);
    free(x.blob);
    free(x.file);
    vd_buf_free(&x.text);
    vd_buf_free(&x.meta);
    vd_buf_free(&x.title);
    return e;
}
