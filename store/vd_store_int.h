/*
 * vd_store_int.h - internals shared by the files of store/ (not public).
 */
#ifndef VD_STORE_INT_H
#define VD_STORE_INT_H

#include "vd_store.h"

#include <hiredis/hiredis.h>

/* Longest namespace accepted; keys are built in buffers of VD__KEY_MAX. */
#define VD__NS_MAX 256
#define VD__KEY_MAX (VD__NS_MAX + 2 * VD_ID_MAX + 32)

struct vd_store {
    redisContext *c;      /* NULL or broken (c->err) until vd__store_ready */
    bool broken;          /* replies may be out of step: reconnect first */
    char *host;
    int port;
    int db;
    char *user;
    char *password;       /* never logged, never put in an errstr */
    int timeout_ms;
    char script_sha[41];  /* SHA1 of the doc-put script once loaded, else "" */
    bool scripts_refused; /* the server refuses scripts (ACL, disabled): WATCH path */
    int inflight;         /* batches sent by doc_put_batch_send, not yet received */
};

/* Reconnects when the connection is missing or broken. */
vd_err vd__store_ready(vd_store *s, char *errstr, size_t errstr_size);

/*
 * Reads exactly n pipelined replies into out[0..n). On an I/O error every
 * reply read so far is freed, the connection is marked broken and
 * VD_ERR_REDIS_CONN is returned.
 */
vd_err vd__store_read(vd_store *s, size_t n, redisReply **out, char *errstr,
                      size_t errstr_size);
void vd__replies_free(redisReply **r, size_t n);

/* Marks the connection broken after a failed append (out of memory). */
vd_err vd__store_append_failed(vd_store *s, char *errstr, size_t errstr_size);

/* Appends one command given as argv (binary safe). */
vd_err vd__store_append(vd_store *s, int argc, const char **argv, const size_t *lens,
                        char *errstr, size_t errstr_size);

/* Checks the namespace: non-empty, at most VD__NS_MAX bytes. */
vd_err vd__ns_check(const char *ns, char *errstr, size_t errstr_size);

/* Key builders; they return the key length. */
size_t vd__key_docs(char *k, const char *ns);
size_t vd__key_meta(char *k, const char *ns);
size_t vd__key_doc(char *k, const char *ns, const char *id);
size_t vd__key_zset(char *k, const char *ns, const char *id);
size_t vd__key_file(char *k, const char *ns, const char *id);
size_t vd__key_chunk(char *k, const char *ns, const char *doc, const char *chunk,
                     size_t chunk_len);

/* Describes an error reply ("WRONGTYPE ...") or an unexpected reply type. */
vd_err vd__reply_err(const redisReply *r, const char *what, const char *key, char *errstr,
                     size_t errstr_size);

/*
 * Builds a document from its replies: HGETALL of the doc hash, ZRANGE
 * WITHSCORES of the chunk zset, the HGETALL of each chunk in zset order
 * (nchunk_replies of them) and the file (GET reply or NULL).
 * @returns VD_ERR_NOT_FOUND when the doc hash is empty.
 */
vd_err vd__group_build(const char *ns, const char *doc_id, const redisReply *doc,
                       const redisReply *zset, redisReply *const *chunks,
                       size_t nchunk_replies, const redisReply *file, vd_docgroup *g,
                       char *errstr, size_t errstr_size);

#endif /* VD_STORE_INT_H */
