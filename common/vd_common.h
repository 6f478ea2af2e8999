/*
 * vd_common.h - what every part of vecdump shares: the error table, logging,
 * time, a capped growable buffer and the record types of the data model.
 *
 * Pure: nothing here talks to Redis or Kafka.
 */
#ifndef VD_COMMON_H
#define VD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>

/*
 * One error table. Every error a part can return is a vd_err; 0 is OK.
 * Columns: name, retriable, text. The codes' names (without VD_ERR_) are
 * stable: they are what users see in TaskEvent issues and DLQ headers.
 */
#define VD_ERR_MAP(X)                                                          \
    X(OK,               0, "success")                                          \
    X(INVALID_ARG,      0, "invalid argument")                                 \
    X(NOMEM,            0, "out of memory")                                    \
    X(BAD_ID,           0, "id must be 1-128 bytes of [A-Za-z0-9._-]")         \
    X(BAD_DIM,          0, "embedding has the wrong dimension")                \
    X(BAD_FLOAT,        0, "embedding holds NaN or Inf")                       \
    X(BAD_JSON,         0, "malformed JSON")                                   \
    X(BAD_FIELD,        0, "missing or invalid field")                         \
    X(TOO_LARGE,        0, "value exceeds a configured limit")                 \
    X(NOT_FOUND,        0, "not found")                                        \
    X(CONFLICT,         0, "already exists")                                   \
    X(REDIS,            1, "Redis error")                                      \
    X(REDIS_CONN,       1, "cannot reach Redis")                               \
    X(KAFKA,            1, "Kafka error")                                      \
    X(IO,               1, "I/O error")                                        \
    X(NOSPACE,          1, "no space left on the backup volume")              \
    X(PATH,             0, "path escapes the backup volume")                   \
    X(AVRO_MAGIC,       0, "not Avro single-object encoding (bad magic)")     \
    X(AVRO_FINGERPRINT, 0, "unknown schema fingerprint")                       \
    X(AVRO_TRUNCATED,   0, "truncated Avro body")                              \
    X(AVRO_BRANCH,      0, "invalid Avro union branch")                        \
    X(AVRO_DECODE,      0, "undecodable Avro body")                            \
    X(AVRO_ENCODE,      0, "cannot encode Avro value")                         \
    X(UNKNOWN_COMMAND,  0, "unknown command type")                             \
    X(FORMAT,           0, "unrecognised artifact format")                     \
    X(TRUNCATED,        0, "artifact is truncated")                            \
    X(CHECKSUM,         0, "checksum mismatch")                                \
    X(GZIP,             0, "corrupt gzip stream")                              \
    X(ZIP,              0, "corrupt or unsafe ZIP archive")                    \
    X(ZIP_BOMB,         0, "decompression ratio over the limit")               \
    X(CSV,              0, "malformed CSV")                                    \
    X(AVRO_FILE,        0, "corrupt Avro container file")                      \
    X(REFERENCE,        0, "record refers to a missing document")              \
    X(CANCELLED,        0, "cancelled")                                        \
    X(SHUTDOWN,         1, "worker shutting down")                             \
    X(INTERNAL,         0, "internal error")

typedef enum vd_err {
#define VD__ERR_ENUM(name, retr, text) VD_ERR_##name,
    VD_ERR_MAP(VD__ERR_ENUM)
#undef VD__ERR_ENUM
    VD_ERR__COUNT
} vd_err;

/** @returns the human text of @p e ("unknown error" when out of range). */
const char *vd_err2str(vd_err e);
/** @returns the stable code name of @p e, e.g. "BAD_ID". */
const char *vd_err_name(vd_err e);
/** @returns true when retrying the same operation later may succeed. */
bool vd_err_is_retriable(vd_err e);

/** Fills errstr with printf-style text (always NUL-terminated) and returns e. */
vd_err vd_seterr(char *errstr, size_t errstr_size, vd_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- logging: logfmt lines on stderr --------------------------------- */
typedef enum { VD_LOG_DEBUG, VD_LOG_INFO, VD_LOG_WARN, VD_LOG_ERROR } vd_log_level;
void vd_log_set_level(vd_log_level lvl);
void vd_log_set_component(const char *component); /* e.g. "worker" */
/**
 * Logs one logfmt line: ts=… level=… comp=… msg="…" then the caller's
 * key=value pairs, given already formatted in @p fmt (may be NULL).
 * Values are the caller's job to quote; use vd_log_quote for free text.
 */
void vd_log(vd_log_level lvl, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- time ------------------------------------------------------------- */
int64_t vd_now_ms(void);      /* wall clock, ms since the epoch */
int64_t vd_mono_ms(void);     /* monotonic, ms */

/* ---- a capped growable buffer ----------------------------------------- */
typedef struct vd_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;   /* hard limit; 0 = SIZE_MAX */
} vd_buf;
void vd_buf_init(vd_buf *b, size_t max);
void vd_buf_free(vd_buf *b);
void vd_buf_reset(vd_buf *b);                       /* len = 0, keeps memory */
vd_err vd_buf_reserve(vd_buf *b, size_t extra);     /* NOMEM or TOO_LARGE */
vd_err vd_buf_append(vd_buf *b, const void *p, size_t n);
vd_err vd_buf_putc(vd_buf *b, char c);
vd_err vd_buf_printf(vd_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- ids -------------------------------------------------------------- */
#define VD_ID_MAX 128
/** @returns true when id (len bytes) matches [A-Za-z0-9._-]{1,128}. */
bool vd_id_valid(const char *id, size_t len);

/* ---- hex / SHA-256 helpers (OpenSSL EVP underneath) ------------------- */
void vd_hex(const unsigned char *in, size_t n, char *out /* 2n+1 */);
typedef struct vd_sha256 vd_sha256;                 /* opaque streaming hash */
vd_sha256 *vd_sha256_new(void);
void vd_sha256_update(vd_sha256 *h, const void *p, size_t n);
/** Writes 64 hex chars + NUL into out and resets the hash for reuse. */
void vd_sha256_final_hex(vd_sha256 *h, char out[65]);
void vd_sha256_destroy(vd_sha256 *h);
void vd_sha256_hex(const void *p, size_t n, char out[65]);

/* ---- text and binary encodings ---------------------------------------- */
/** @returns true when s[0..n) is strict UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool vd_utf8_valid(const void *s, size_t n);
/** Length of the padded base64 text of n bytes. */
#define VD_BASE64_LEN(n) ((((n) + 2) / 3) * 4)
/** Writes padded base64 (no NUL) of n bytes at out; @returns the end of the text. */
char *vd_base64_encode(char *out, const void *in, size_t n);
/**
 * Decodes strict padded base64 text (no whitespace) into out, which has room
 * for n / 4 * 3 bytes. @returns the decoded length, or -1 when s is not base64.
 */
long vd_base64_decode(unsigned char *out, const char *s, size_t n);

/* ---- the data model's records (SPEC §2) ------------------------------- */
/*
 * Strings are NUL-terminated and owned by the record unless said otherwise;
 * binary fields carry their length. Free with the matching _clear.
 */
typedef struct vd_meta {
    int schema_version;      /* 1 */
    int dim;
    char *model;
    char *distance;
    int64_t created_at;      /* ms */
} vd_meta;

typedef struct vd_doc {
    char *id;
    char *title;
    char *source;
    char *content_type;
    int64_t size;            /* size of the original file in bytes */
    char *sha256;            /* hex SHA-256 of the original file, may be "" */
    int64_t created_at;
    int64_t updated_at;
    int64_t chunk_count;
    char *metadata;          /* JSON object text, "{}" when empty */
} vd_doc;

typedef struct vd_chunk {
    char *id;
    char *doc_id;
    int64_t seq;
    char *text;
    size_t text_len;
    float *embedding;        /* dim floats (host order) */
    size_t dim;
    char *metadata;          /* JSON object text */
} vd_chunk;

typedef struct vd_file {
    char *doc_id;
    unsigned char *data;
    size_t len;
} vd_file;

/*
 * One document with everything it owns: the unit that is written to Redis
 * atomically, streamed out of Redis, and written to or read from artifacts.
 */
typedef struct vd_docgroup {
    vd_doc doc;
    vd_chunk *chunks;        /* nchunks, in seq order */
    size_t nchunks;
    size_t chunks_cap;
    bool has_file;
    vd_file file;
} vd_docgroup;

/** Appends a zeroed chunk slot and returns it (NULL on out of memory). */
vd_chunk *vd_docgroup_add_chunk(vd_docgroup *g);
/** Frees everything the group owns and zeroes it (keeps nothing). */
void vd_docgroup_clear(vd_docgroup *g);

void vd_meta_clear(vd_meta *m);
void vd_doc_clear(vd_doc *d);
void vd_chunk_clear(vd_chunk *c);
void vd_file_clear(vd_file *f);

/** Checks every float is finite. @returns VD_ERR_OK or VD_ERR_BAD_FLOAT. */
vd_err vd_embedding_check(const float *v, size_t n);

/* Little-endian float32 <-> host floats (dim floats, 4*dim bytes). */
void vd_f32_from_le(float *dst, const unsigned char *src, size_t n);
void vd_f32_to_le(unsigned char *dst, const float *src, size_t n);

char *vd_strdup(const char *s);                   /* NULL-safe strdup */
char *vd_strndup(const char *s, size_t n);

#endif /* VD_COMMON_H */
