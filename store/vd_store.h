/*
 * vd_store.h - the Redis data model of SPEC §2 (schema version 1).
 *
 *   NS:meta                HASH  schema_version dim model distance created_at
 *   NS:docs                SET   document ids
 *   NS:doc:{DOC}           HASH  id title source content_type size sha256
 *                                created_at updated_at chunk_count metadata
 *   NS:doc:{DOC}:chunks    ZSET  chunk ids scored by seq
 *   NS:chunk:{DOC}:CHUNK   HASH  id doc_id seq text embedding(f32 LE) metadata
 *   NS:file:{DOC}          STRING original file bytes
 *
 * A vd_store is one hiredis connection (not thread-safe: one per thread).
 * Every call returns a vd_err and fills the caller's errstr on failure.
 */
#ifndef VD_STORE_H
#define VD_STORE_H

#include "vd_common.h"

typedef struct vd_store vd_store;

typedef struct vd_store_conf {
    const char *host;        /* default 127.0.0.1 */
    int port;                /* default 6379 */
    int db;                  /* SELECT db, default 0 */
    const char *user;        /* ACL user or NULL */
    const char *password;    /* never logged; NULL for none */
    int timeout_ms;          /* connect and command timeout, default 5000 */
} vd_store_conf;

/**
 * @brief Connects (AUTH, SELECT) to Redis.
 * @returns VD_ERR_OK and *out, or VD_ERR_REDIS_CONN / VD_ERR_REDIS.
 */
vd_err vd_store_connect(const vd_store_conf *conf, vd_store **out, char *errstr,
                        size_t errstr_size);
void vd_store_destroy(vd_store *s);
/** The raw hiredis context (redisContext *), for callers that need it. */
void *vd_store_redis(vd_store *s);
/** PING round trip in microseconds, or an error. */
vd_err vd_store_ping(vd_store *s, int64_t *usec, char *errstr, size_t errstr_size);

/* ---- meta ------------------------------------------------------------- */
/** @returns VD_ERR_NOT_FOUND when NS:meta is missing. */
vd_err vd_store_meta_get(vd_store *s, const char *ns, vd_meta *out, char *errstr,
                         size_t errstr_size);
vd_err vd_store_meta_put(vd_store *s, const char *ns, const vd_meta *m, char *errstr,
                         size_t errstr_size);

/* ---- documents -------------------------------------------------------- */
/**
 * @brief Validates and writes one document with its chunks (and file when
 *        g->has_file) in one MULTI/EXEC; adds the id to NS:docs.
 * @param dim expected embedding dimension (0 = do not check).
 * @param replace when true, first deletes whatever the document owned
 *        (old chunks, old file) inside the same transaction.
 * @returns VD_ERR_BAD_ID, BAD_DIM, BAD_FLOAT, BAD_FIELD before anything is
 *          sent; VD_ERR_REDIS when EXEC fails (then nothing was written).
 * @remark Before MULTI the document's keys are WATCHed and their types
 *         checked: a key of the wrong type (e.g. the chunk zset holding a
 *         string, NS:docs not a set) fails with VD_ERR_REDIS ("WRONGTYPE
 *         ...") and nothing is written or deleted, replace or not. Inside the
 *         transaction the doc hash, the zset and every new chunk key are
 *         DELeted before being written, so no stale field survives. With
 *         replace=false old chunks not in the new version (and an old file
 *         when !g->has_file) are left alone. chunk_count is written as
 *         g->nchunks; a chunk's doc_id may be NULL (the document's id) or
 *         must equal it; NULL metadata is written as "{}". A WATCHed key
 *         changed by another client makes it retry (8 times). Implemented as
 *         vd_store_doc_put_batch with n=1 (a Lua script, atomic, no retry)
 *         when the server allows scripts.
 */
vd_err vd_store_doc_put(vd_store *s, const char *ns, const vd_docgroup *g, size_t dim,
                        bool replace, char *errstr, size_t errstr_size);
/** How vd_store_doc_put_batch treats a document that may already exist. */
typedef enum vd_store_put_mode {
    /* As vd_store_doc_put with replace=false: the doc hash, the zset, the
     * new chunk keys (and the file when the group has one) are overwritten;
     * old chunks not in the new version, and an old file, are left alone. */
    VD_STORE_PUT_MERGE = 0,
    /* As replace=true: old chunks and old file are deleted in the same
     * atomic step. */
    VD_STORE_PUT_REPLACE = 1,
    /* Written only when NS:doc:{ID} does not exist; otherwise nothing is
     * touched and the document's result is VD_ERR_CONFLICT. The check and
     * the write are one atomic step (no window for a concurrent writer). */
    VD_STORE_PUT_IF_ABSENT = 2
} vd_store_put_mode;

/**
 * @brief Writes n documents, each atomically, in one pipelined round trip.
 * @param modes one mode per document, or NULL for VD_STORE_PUT_MERGE.
 * @param results n slots, filled for every document: VD_ERR_OK (written),
 *        a validation error (BAD_ID, BAD_DIM, BAD_FLOAT, BAD_FIELD: nothing
 *        sent), VD_ERR_REDIS (refused, e.g. "WRONGTYPE": nothing written),
 *        VD_ERR_CONFLICT (IF_ABSENT and the document exists: nothing
 *        touched), or VD_ERR_REDIS_CONN / NOMEM (outcome unknown: the
 *        document may or may not have been written, never in part).
 * @returns VD_ERR_OK when every document was written, else the result of
 *          the first (lowest-index) document that was not, whose message is
 *          in errstr.
 * @remark Each document is written by one server-side Lua script (SCRIPT
 *         LOAD heads each batch, then one EVALSHA per document) that
 *         checks the types of all the document's keys and of NS:docs, and
 *         only then deletes and writes: a Lua script runs atomically and
 *         its checks cannot be raced, and a script that fails a check has
 *         written nothing. Documents are independent: one that fails does
 *         not stop the others of the batch. The writes are exactly those of
 *         vd_store_doc_put. Keep batches to a few MiB (the whole batch is
 *         buffered before it is sent). When the server refuses scripts
 *         (NOPERM, scripting disabled) every document falls back to
 *         vd_store_doc_put's WATCH/MULTI/EXEC path, one round trip or two
 *         per document.
 */
vd_err vd_store_doc_put_batch(vd_store *s, const char *ns, const vd_docgroup *groups,
                              const vd_store_put_mode *modes, size_t n, size_t dim,
                              vd_err *results, char *errstr, size_t errstr_size);
/**
 * @brief vd_store_doc_put_batch in two halves, so that a caller can prepare
 *        its next batch while Redis writes this one (at most one batch in
 *        flight is the intended use: send(k+1), recv(k), send(k+2), ...).
 *        send validates, queues and sends; recv reads the replies. Between
 *        them groups, modes and results must stay as they are, no other
 *        call may use the connection except the send of the next batch,
 *        and each sent batch is received, in order.
 * @returns send: VD_ERR_OK when the batch is on its way (results holds the
 *          validation failures), or the error that stopped it (results of
 *          the unsent documents set to it). recv: as vd_store_doc_put_batch.
 *          errstr describes the lowest-index failure; pass recv the errstr
 *          send filled.
 */
vd_err vd_store_doc_put_batch_send(vd_store *s, const char *ns, const vd_docgroup *groups,
                                   const vd_store_put_mode *modes, size_t n, size_t dim,
                                   vd_err *results, char *errstr, size_t errstr_size);
vd_err vd_store_doc_put_batch_recv(vd_store *s, const char *ns, const vd_docgroup *groups,
                                   size_t n, vd_err *results, char *errstr,
                                   size_t errstr_size);
/**
 * Reads one document with its chunks (in zset order, i.e. by seq) and file
 * when with_file. NOT_FOUND if the doc hash is absent. *out must be zeroed
 * or a group filled before: it is cleared first. A chunk listed in the zset
 * whose hash is gone is skipped; an embedding whose length is not a
 * multiple of 4 gives VD_ERR_BAD_DIM naming the key; a chunk hash without
 * an embedding comes back with dim 0 and embedding NULL.
 */
vd_err vd_store_doc_get(vd_store *s, const char *ns, const char *doc_id, bool with_file,
                        vd_docgroup *out, char *errstr, size_t errstr_size);
/**
 * Deletes a document and everything it owns (doc hash, zset, the chunks the
 * zset lists, file, index entry) in one MULTI/EXEC. NOT_FOUND when none of
 * those existed.
 */
vd_err vd_store_doc_delete(vd_store *s, const char *ns, const char *doc_id, char *errstr,
                           size_t errstr_size);
/** Sets *exists to whether NS:doc:{id} exists. */
vd_err vd_store_doc_exists(vd_store *s, const char *ns, const char *doc_id, bool *exists,
                           char *errstr, size_t errstr_size);

/* ---- counts, cheap (for progress totals) ------------------------------ */
typedef struct vd_store_counts {
    int64_t documents;       /* SCARD NS:docs */
    int64_t chunks;          /* sum of ZCARD of every chunk ZSET (pipelined) */
    int64_t files;           /* NS:file:* keys seen */
} vd_store_counts;
vd_err vd_store_count(vd_store *s, const char *ns, vd_store_counts *out, char *errstr,
                      size_t errstr_size);

/* ---- streaming reader ------------------------------------------------- */
/*
 * Walks every document of NS:docs (SSCAN, batches of `batch` ids) and reads
 * each with its chunks (and file) using pipelining. Memory is bounded by one
 * batch of documents whatever the namespace holds.
 */
typedef struct vd_store_iter vd_store_iter;
vd_err vd_store_iter_new(vd_store *s, const char *ns, bool with_files, size_t batch,
                         vd_store_iter **out, char *errstr, size_t errstr_size);
/**
 * @brief Moves the next document into *g (the caller clears it with
 *        vd_docgroup_clear). A document listed in NS:docs whose hash is gone
 *        is skipped (validate reports it).
 * @returns VD_ERR_OK with *done=false and a document, VD_ERR_OK with
 *          *done=true at the end, or an error.
 */
vd_err vd_store_iter_next(vd_store_iter *it, vd_docgroup *g, bool *done, char *errstr,
                          size_t errstr_size);
/* After an error the iterator keeps returning it: destroy it. Ids in the
 * index that are not valid ids are skipped with a warning. Document order
 * is SSCAN order. */
void vd_store_iter_destroy(vd_store_iter *it);

/* ---- seed: a deterministic synthetic dataset -------------------------- */
typedef struct vd_seed_conf {
    int64_t documents;
    int chunks_per_doc;
    int dim;
    int text_bytes;          /* approximate chunk text size */
    bool with_files;
    int file_bytes;          /* size of each original file */
    uint64_t seed;           /* PRNG seed: same seed, same bytes */
    /* planted defects, each a count */
    int orphan_chunks;       /* chunk hashes whose document does not exist */
    int missing_embeddings;  /* chunk hashes without the embedding field */
    int wrong_dims;          /* embeddings of dim-1 floats */
    int nans;                /* embeddings holding a NaN */
    int index_drift;         /* ids removed from NS:docs / ZSET members removed */
} vd_seed_conf;
/**
 * Writes meta and the dataset to NS (pipelined). Reports what it wrote:
 * documents = doc hashes, chunks = chunk hashes (orphans included), files.
 * Ids are doc-000001..., chunk ids c0000...; each document comes from its
 * own PRNG stream, so the same conf gives the same bytes.
 * Defects go to distinct documents spread evenly, in this order:
 * missing_embeddings, wrong_dims, nans (on chunk c0000; the NaN is the
 * quiet NaN 0x7fc00001), index_drift (even ones: the id is missing from
 * NS:docs; odd ones: c0000 is missing from the zset, its hash stays).
 * Orphans are NS:chunk:{orphan-NNNNNN}:c0000. INVALID_ARG when the defects
 * outnumber the documents.
 */
vd_err vd_store_seed(vd_store *s, const char *ns, const vd_seed_conf *c,
                     vd_store_counts *written, char *errstr, size_t errstr_size);
/** Deletes every key of the namespace (SCAN NS:* with NS glob-escaped, + UNLINK). */
vd_err vd_store_drop_namespace(vd_store *s, const char *ns, int64_t *deleted, char *errstr,
                               size_t errstr_size);

#endif /* VD_STORE_H */
