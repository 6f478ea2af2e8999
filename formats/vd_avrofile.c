/*
 * vd_avrofile.c - the Avro object container artifact (SPEC §5).
 *
 * Every record is a dev.vecdump.v1.ArtifactRecord (formats/vd_artifact.avsc,
 * embedded below as ARTIFACT_SCHEMA): a `type` enum and one nullable field per
 * type, exactly the one named by `type` set. Flat nullable fields (rather
 * than one union of records) read well in fastavro, Spark and DuckDB, which
 * turn ["null", T] into a nullable column. Order: HEADER, then per document
 * DOCUMENT, its CHUNKs, its FILE (with include_files), and TRAILER last with
 * the counts and the SHA-256 of the binary encodings of all records before
 * it, so truncation and body bit flips are caught without the manifest.
 *
 * Chunk text: Avro strings are UTF-8, so a text that is valid UTF-8 without
 * NUL bytes goes into `text` (and `text_bytes` is null); any other text goes,
 * raw, into `text_bytes` with `text` empty. Embeddings are array<float>:
 * bit-exact float32. Document strings must be UTF-8 (else BAD_FIELD on write).
 *
 * Writing: records are encoded here (the encoding is also what the trailer
 * hashes) and the container is written here too, without avro-c: header
 * (magic, metadata map with avro.schema and avro.codec "deflate", a random
 * sync marker), then blocks of up to BLOCK_TARGET encoded bytes (a larger
 * record is a block of its own), each raw-deflated and followed by the sync
 * marker. Every write is checked, the file is hashed as it is written and
 * fsynced at close; a writer destroyed before close removes its file.
 *
 * Reading: avro-c's file reader trusts the file (block and string lengths
 * straight into malloc, unbounded inflate), so the container is read here:
 * magic, metadata map, codec (null or deflate), the writer schema (parsed by
 * avro-c and required to equal ours), the sync marker; then every block is
 * walked (count, size vs remaining bytes and limits, sync after each) before
 * the first record is decoded, and records are decoded with every length
 * checked against the bytes left and every inflate bounded.
 */
#include "formats_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <avro.h>
#include <zlib.h>

#define AVRO_FORMAT "vecdump-avro"
#define AVRO_FORMAT_VERSION 1
#define BLOCK_TARGET ((size_t)1 << 20) /* encoded record bytes per block */
#define OUT_BUF ((size_t)1 << 20)      /* file bytes staged per write(2) */
#define SEG ((size_t)256 << 10)        /* block bytes one deflate worker takes at once */
#define SEG_MAX (BLOCK_TARGET / SEG + 1) /* segments of a block (the last may be empty) */
#define NWORKERS 2
#define DICT ((size_t)32 << 10)        /* deflate window: the dictionary of a segment */
#define WRITEBACK ((int64_t)8 << 20)   /* written bytes after which writeback is started */
#define DEFLATE_LEVEL 1                /* as gzip -1: floats barely compress */
#define RATIO_FLOOR ((int64_t)1 << 20)
#define MAX_DIM 65536
#define META_MAX_ENTRIES 64
#define META_MAX_VALUE (1 << 20)

/* Keep identical to formats/vd_artifact.avsc (tests compare them). */
static const char ARTIFACT_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"ArtifactRecord\",\"namespace\":\"dev.vecdump.v1\","
    "\"fields\":["
    "{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"RecordType\","
    "\"symbols\":[\"HEADER\",\"DOCUMENT\",\"CHUNK\",\"FILE\",\"TRAILER\"]}},"
    "{\"name\":\"header\",\"default\":null,\"type\":[\"null\",{\"type\":\"record\","
    "\"name\":\"Header\",\"fields\":["
    "{\"name\":\"format\",\"type\":\"string\"},"
    "{\"name\":\"format_version\",\"type\":\"int\"},"
    "{\"name\":\"tool_version\",\"type\":\"string\"},"
    "{\"name\":\"task_id\",\"type\":\"string\"},"
    "{\"name\":\"namespace\",\"type\":\"string\"},"
    "{\"name\":\"created_at\",\"type\":\"long\"},"
    "{\"name\":\"schema_version\",\"type\":\"int\"},"
    "{\"name\":\"dim\",\"type\":\"int\"},"
    "{\"name\":\"model\",\"type\":\"string\"},"
    "{\"name\":\"distance\",\"type\":\"string\"},"
    "{\"name\":\"meta_created_at\",\"type\":\"long\"},"
    "{\"name\":\"include_files\",\"type\":\"boolean\"}]}]},"
    "{\"name\":\"document\",\"default\":null,\"type\":[\"null\",{\"type\":\"record\","
    "\"name\":\"Document\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"string\"},"
    "{\"name\":\"title\",\"type\":\"string\"},"
    "{\"name\":\"source\",\"type\":\"string\"},"
    "{\"name\":\"content_type\",\"type\":\"string\"},"
    "{\"name\":\"size\",\"type\":\"long\"},"
    "{\"name\":\"sha256\",\"type\":\"string\"},"
    "{\"name\":\"created_at\",\"type\":\"long\"},"
    "{\"name\":\"updated_at\",\"type\":\"long\"},"
    "{\"name\":\"chunk_count\",\"type\":\"long\"},"
    "{\"name\":\"metadata\",\"type\":\"string\"}]}]},"
    "{\"name\":\"chunk\",\"default\":null,\"type\":[\"null\",{\"type\":\"record\","
    "\"name\":\"Chunk\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"string\"},"
    "{\"name\":\"doc_id\",\"type\":\"string\"},"
    "{\"name\":\"seq\",\"type\":\"long\"},"
    "{\"name\":\"text\",\"type\":\"string\"},"
    "{\"name\":\"text_bytes\",\"type\":[\"null\",\"bytes\"],\"default\":null},"
    "{\"name\":\"embedding\",\"type\":{\"type\":\"array\",\"items\":\"float\"}},"
    "{\"name\":\"metadata\",\"type\":\"string\"}]}]},"
    "{\"name\":\"file\",\"default\":null,\"type\":[\"null\",{\"type\":\"record\","
    "\"name\":\"File\",\"fields\":["
    "{\"name\":\"doc_id\",\"type\":\"string\"},"
    "{\"name\":\"data\",\"type\":\"bytes\"},"
    "{\"name\":\"sha256\",\"type\":\"string\"}]}]},"
    "{\"name\":\"trailer\",\"default\":null,\"type\":[\"null\",{\"type\":\"record\","
    "\"name\":\"Trailer\",\"fields\":["
    "{\"name\":\"documents\",\"type\":\"long\"},"
    "{\"name\":\"chunks\",\"type\":\"long\"},"
    "{\"name\":\"files\",\"type\":\"long\"},"
    "{\"name\":\"sha256\",\"type\":\"string\"}]}]}"
    "]}";

enum { T_HEADER, T_DOCUMENT, T_CHUNK, T_FILE, T_TRAILER, T__COUNT };
static const char *const TYPE_NAMES[T__COUNT] = {"HEADER", "DOCUMENT", "CHUNK", "FILE", "TRAILER"};


static vd_err schema_load(avro_schema_t *out, char *errstr, size_t errstr_size) {
    if (avro_schema_from_json_length(ARTIFACT_SCHEMA, sizeof ARTIFACT_SCHEMA - 1, out) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL, "avro: artifact schema: %s",
                         avro_strerror());
    return VD_ERR_OK;
}

/* ====================================================================== */
/* encoding                                                               */
/* ====================================================================== */

/* Writes v as an Avro long (zigzag varint, at most 10 bytes) at o; returns its length. */
static size_t zz_put(unsigned char *o, int64_t v) {
    uint64_t n = v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
    size_t k = 0;
    while (n & ~(uint64_t)0x7f) {
        o[k++] = (unsigned char)((n & 0x7f) | 0x80);
        n >>= 7;
    }
    o[k++] = (unsigned char)n;
    return k;
}

static vd_err enc_long(vd_buf *b, int64_t v) {
    vd_err e = vd_buf_reserve(b, 10);
    if (e)
        return e;
    b->len += zz_put((unsigned char *)b->data + b->len, v);
    return VD_ERR_OK;
}

static vd_err enc_bytes(vd_buf *b, const void *p, size_t n) {
    vd_err e = enc_long(b, (int64_t)n);
    return e ? e : vd_buf_append(b, p, n);
}

static vd_err enc_str(vd_buf *b, const char *s) { return enc_bytes(b, s ? s : "", s ? strlen(s) : 0); }

/* The record's `type` and the five union indexes before/around the body. */
static vd_err enc_prefix(vd_buf *b, int type) {
    vd_err e = enc_long(b, type);
    for (int u = 0; !e && u < type; u++)
        e = enc_long(b, 0);
    return e ? e : enc_long(b, 1);
}

static vd_err enc_suffix(vd_buf *b, int type) {
    vd_err e = VD_ERR_OK;
    for (int u = type + 1; !e && u < T__COUNT; u++)
        e = enc_long(b, 0);
    return e;
}

/* ====================================================================== */
/* writer                                                                 */
/* ====================================================================== */

/*
 * The container is written here rather than by avro-c's file writer, which
 * leaks its codec state and buffers when a write fails part-way and cannot
 * report a failed fclose. Records go into an in-memory block of up to
 * BLOCK_TARGET encoded bytes (a record at least that large is a block of its
 * own); a full block is deflated (raw deflate, as the Avro spec says) and
 * emitted as count, size, data, sync marker through a staging buffer that is
 * written with write(2), every result checked. The file's SHA-256 is taken
 * over the bytes as they are emitted, so close never rereads the file.
 * Memory: the staging buffer, one block, its deflated copy and the deflate
 * state, plus twice the largest record when a record outgrows the block.
 *
 * The open block is deflated by NWORKERS threads while records are still
 * being added to it, as pigz does: the block is cut into SEG-byte segments
 * (blk never moves: its room is reserved at open); a worker deflates a whole
 * segment with the 32 KiB before it as dictionary and ends it with a sync
 * flush (the block's last segment, possibly empty, with Z_FINISH), so the
 * segments' outputs, concatenated, are one raw deflate stream. Flushing a
 * block finalises its last segment, waits for the workers and then emits
 * the block from the caller's thread, so every write(2), and so every write
 * error, happens in the same call as without the workers. Workers touch
 * only their own z_stream, their segments' outputs and finished bytes of
 * blk; zs and z are the caller's (records of a block of their own).
 */
typedef struct avro_wr {
    char *path;
    int fd;
    unsigned char sync[16];
    vd_buf enc;              /* the record being encoded */
    vd_buf blk;              /* encoded records of the open block */
    int64_t blk_count;       /* records in blk */
    vd_buf z;                /* a block, deflated */
    vd_buf out;              /* file bytes emitted but not yet written */
    z_stream zs;
    bool zinit;
    vd_sha256 *sha;          /* over every record body before the trailer */
    vd_sha256 *fsha;         /* over the file's bytes, in order */
    int64_t written;         /* file bytes written */
    int64_t wb_off;          /* writeback started up to here */
    vd_counts counts;
    vd_err sticky;           /* first failure after bytes were committed */
    bool thr_on;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nthr;
    pthread_t thr[NWORKERS];
    z_stream wzs[NWORKERS];  /* one deflate stream per worker */
    int nwzs;                /* of them initialised */
    vd_buf segz[SEG_MAX];    /* deflated segments of the open block */
    /* Under mu: segments [0, nready) have final bounds, [0, next) are claimed,
     * ndone finished; nseg is the block's segment count once it is flushed
     * (0 while open) and blen its final length. */
    size_t nready, next, ndone, nseg, blen;
    bool quit;
    vd_err thr_err;          /* the thread's first error (under mu) */
    char thr_errstr[256];
    bool include_files;
    bool created;
    bool closed;
} avro_wr;

static void wr_thread_stop(avro_wr *a);

static void avro_wr_destroy(vd_writer *w) {
    avro_wr *a = w->impl;
    if (!a)
        return;
    wr_thread_stop(a); /* before the deflate state and buffers it may be using */
    for (int i = 0; i < a->nwzs; i++)
        deflateEnd(&a->wzs[i]);
    for (size_t i = 0; i < SEG_MAX; i++)
        vd_buf_free(&a->segz[i]);
    if (a->fd >= 0)
        close(a->fd);
    if (a->created && !a->closed)
        unlink(a->path);
    if (a->zinit)
        deflateEnd(&a->zs);
    vd_buf_free(&a->enc);
    vd_buf_free(&a->blk);
    vd_buf_free(&a->z);
    vd_buf_free(&a->out);
    vd_sha256_destroy(a->sha);
    vd_sha256_destroy(a->fsha);
    free(a->path);
    free(a);
    w->impl = NULL;
}

/* Marks the writer failed (the file is no longer consistent); returns e. */
static vd_err wr_stick(avro_wr *a, vd_err e) {
    if (!a->sticky)
        a->sticky = e;
    return e;
}

static vd_err wr_io_err(int err) {
    return err == ENOSPC || err == EDQUOT ? VD_ERR_NOSPACE : VD_ERR_IO;
}

/* Writes n bytes at the end of the file. NOSPACE or IO (sticky) on failure. */
static vd_err wr_write(avro_wr *a, const void *p, size_t n, char *errstr, size_t errstr_size) {
    const char *c = p;
    while (n) {
        ssize_t k = write(a->fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int err = k < 0 ? errno : EIO;
            return wr_stick(a, vd_seterr(errstr, errstr_size, wr_io_err(err),
                                         "avro: write %s: %s", a->path, strerror(err)));
        }
        c += k;
        n -= (size_t)k;
        a->written += (int64_t)k;
    }
    /* Start writeback early so that the fsync at close has little left to
     * do. Only a hint (close's fsync makes the file durable): errors ignored. */
    if (a->written - a->wb_off >= WRITEBACK) {
        (void)sync_file_range(a->fd, a->wb_off, a->written - a->wb_off, SYNC_FILE_RANGE_WRITE);
        a->wb_off = a->written;
    }
    return VD_ERR_OK;
}

/* Writes out the staging buffer. */
static vd_err wr_drain(avro_wr *a, char *errstr, size_t errstr_size) {
    vd_err e = wr_write(a, a->out.data, a->out.len, errstr, errstr_size);
    if (!e)
        vd_buf_reset(&a->out);
    return e;
}

/* Appends n bytes to the file (through the staging buffer) and hashes them. */
static vd_err wr_emit(avro_wr *a, const void *p, size_t n, char *errstr, size_t errstr_size) {
    vd_err e;
    vd_sha256_update(a->fsha, p, n);
    if (a->out.len + n > OUT_BUF && (e = wr_drain(a, errstr, errstr_size)))
        return e;
    if (n >= OUT_BUF)
        return wr_write(a, p, n, errstr, errstr_size);
    /* Never grows: OUT_BUF is reserved at open. */
    if ((e = vd_buf_append(&a->out, p, n)))
        return wr_stick(a, vd_seterr(errstr, errstr_size, e, "avro: out of memory"));
    return VD_ERR_OK;
}

/*
 * Deflates n bytes at in into a->z (finish: and ends the stream). Does not
 * mark the writer failed (it may run on the deflate thread).
 */
static vd_err wr_deflate(z_stream *zs, vd_buf *z, const unsigned char *in, size_t n, int flush,
                         char *errstr, size_t errstr_size) {
    const size_t step = (size_t)1 << 30; /* z_stream counts are 32-bit */
    vd_err e;
    for (;;) {
        if (zs->avail_in == 0 && n) {
            size_t k = n < step ? n : step;
            zs->next_in = (Bytef *)(uintptr_t)in;
            zs->avail_in = (uInt)k;
            in += k;
            n -= k;
        }
        if (z->cap - z->len < 4096 &&
            (e = vd_buf_reserve(z, z->len / 2 > 65536 ? z->len / 2 : 65536)))
            return vd_seterr(errstr, errstr_size, e, "avro: out of memory");
        size_t room = z->cap - z->len;
        uInt avail = (uInt)(room < step ? room : step);
        zs->next_out = (Bytef *)z->data + z->len;
        zs->avail_out = avail;
        int rc = deflate(zs, n == 0 ? flush : Z_NO_FLUSH);
        z->len += avail - zs->avail_out;
        if (rc == Z_STREAM_END)
            return VD_ERR_OK;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL, "avro: deflate failed (%d)",
                             rc);
        /* A sync flush is complete when all input is in and output room is left. */
        if (flush != Z_FINISH && n == 0 && zs->avail_in == 0 && zs->avail_out != 0)
            return VD_ERR_OK;
    }
}

/* Empties a->z and restarts the deflate stream for the next block. */
static vd_err wr_zreset(avro_wr *a, char *errstr, size_t errstr_size) {
    vd_buf_reset(&a->z);
    if (deflateReset(&a->zs) != Z_OK)
        return wr_stick(a, vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                                     "avro: deflateReset failed"));
    return VD_ERR_OK;
}

/* Emits a block of count records whose deflated bytes are the nz buffers at z. */
static vd_err wr_emit_block(avro_wr *a, int64_t count, const vd_buf *z, size_t nz, char *errstr,
                            size_t errstr_size) {
    vd_err e;
    unsigned char hdr[20];
    size_t total = 0;
    for (size_t i = 0; i < nz; i++)
        total += z[i].len;
    size_t hl = zz_put(hdr, count);
    hl += zz_put(hdr + hl, (int64_t)total);
    if ((e = wr_emit(a, hdr, hl, errstr, errstr_size)))
        return e;
    for (size_t i = 0; i < nz; i++)
        if ((e = wr_emit(a, z[i].data, z[i].len, errstr, errstr_size)))
            return e;
    return wr_emit(a, a->sync, sizeof a->sync, errstr, errstr_size);
}

/* Deflates count records (n bytes at p) and emits them as one block. Only
 * while the deflate thread is idle. */
static vd_err wr_block(avro_wr *a, const void *p, size_t n, int64_t count, char *errstr,
                       size_t errstr_size) {
    const size_t step = (size_t)1 << 30;
    vd_err e;
    if ((e = wr_zreset(a, errstr, errstr_size)))
        return e;
    uLong bound = deflateBound(&a->zs, (uLong)n);
    if ((e = vd_buf_reserve(&a->z, bound < step ? (size_t)bound : step)))
        return wr_stick(a, vd_seterr(errstr, errstr_size, e, "avro: out of memory"));
    if ((e = wr_deflate(&a->zs, &a->z, p, n, Z_FINISH, errstr, errstr_size)))
        return wr_stick(a, e);
    if ((e = wr_emit_block(a, count, &a->z, 1, errstr, errstr_size)))
        return e;
    return wr_zreset(a, errstr, errstr_size);
}

/* ---- the deflate workers --------------------------------------------------- */

typedef struct wr_worker_arg {
    avro_wr *a;
    int id;
} wr_worker_arg;

static void *wr_worker(void *arg) {
    avro_wr *a = ((wr_worker_arg *)arg)->a;
    z_stream *zs = &a->wzs[((wr_worker_arg *)arg)->id];
    free(arg);
    char es[256];
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->quit && a->next >= a->nready)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->quit)
            break;
        size_t k = a->next++;
        const unsigned char *base = (const unsigned char *)a->blk.data;
        size_t from = k * SEG;
        bool last = a->nseg && k == a->nseg - 1;
        size_t to = last ? a->blen : from + SEG;
        bool skip = a->thr_err != VD_ERR_OK;
        pthread_mutex_unlock(&a->mu);
        vd_err e = VD_ERR_OK;
        if (!skip) {
            vd_buf_reset(&a->segz[k]);
            if (deflateReset(zs) != Z_OK ||
                (from > 0 && deflateSetDictionary(zs, base + (from > DICT ? from - DICT : 0),
                                                  (uInt)(from > DICT ? DICT : from)) != Z_OK))
                e = vd_seterr(es, sizeof es, VD_ERR_INTERNAL, "avro: deflate reset failed");
            else
                e = wr_deflate(zs, &a->segz[k], base + from, to - from,
                               last ? Z_FINISH : Z_SYNC_FLUSH, es, sizeof es);
        }
        pthread_mutex_lock(&a->mu);
        if (e && !a->thr_err) {
            a->thr_err = e;
            memcpy(a->thr_errstr, es, sizeof es);
        }
        a->ndone++;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void wr_thread_stop(avro_wr *a) {
    if (!a->thr_on)
        return;
    pthread_mutex_lock(&a->mu);
    a->quit = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    for (int i = 0; i < a->nthr; i++)
        pthread_join(a->thr[i], NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    a->thr_on = false;
}

/* Hands the segments that are now complete to the workers. */
static void wr_publish(avro_wr *a) {
    pthread_mutex_lock(&a->mu);
    a->nready = a->blk.len / SEG;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* Emits the open block, if it holds any record. */
static vd_err wr_flush_block(avro_wr *a, char *errstr, size_t errstr_size) {
    if (a->blk_count == 0)
        return VD_ERR_OK;
    vd_err e;
    if (!a->thr_on) {
        e = wr_block(a, a->blk.data, a->blk.len, a->blk_count, errstr, errstr_size);
    } else {
        pthread_mutex_lock(&a->mu);
        a->blen = a->blk.len;
        a->nseg = a->blen / SEG + 1; /* the last one is partial, maybe empty */
        a->nready = a->nseg;
        pthread_cond_broadcast(&a->cv);
        while (a->ndone < a->nseg)
            pthread_cond_wait(&a->cv, &a->mu);
        e = a->thr_err;
        if (e)
            vd_seterr(errstr, errstr_size, e, "%s", a->thr_errstr);
        size_t nseg = a->nseg;
        a->nready = a->next = a->ndone = a->nseg = a->blen = 0;
        pthread_mutex_unlock(&a->mu);
        if (e)
            wr_stick(a, e);
        else
            e = wr_emit_block(a, a->blk_count, a->segz, nseg, errstr, errstr_size);
    }
    vd_buf_reset(&a->blk);
    a->blk_count = 0;
    return e;
}

/*
 * Adds the record encoded in a->enc to the file; hash: it counts towards the
 * trailer's SHA-256 (every record but the trailer does).
 */
static vd_err wr_record(avro_wr *a, bool hash, char *errstr, size_t errstr_size) {
    const vd_buf *r = &a->enc;
    vd_err e;
    if (hash)
        vd_sha256_update(a->sha, r->data, r->len);
    if (a->blk.len + r->len > BLOCK_TARGET && (e = wr_flush_block(a, errstr, errstr_size)))
        return e;
    if (r->len >= BLOCK_TARGET) /* a block of its own, deflated straight from enc */
        return wr_block(a, r->data, r->len, 1, errstr, errstr_size);
    /* Never grows (so never moves under the deflate thread): blk.len + r->len
     * <= BLOCK_TARGET, which is reserved at open. */
    if (a->blk.len + r->len + 1 > a->blk.cap) /* vd_buf_append adds a NUL */
        return wr_stick(a, vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                                     "avro: block buffer too small"));
    if ((e = vd_buf_append(&a->blk, r->data, r->len)))
        return wr_stick(a, vd_seterr(errstr, errstr_size, e, "avro: out of memory"));
    a->blk_count++;
    if (a->thr_on && a->blk.len / SEG > a->nready)
        wr_publish(a);
    return VD_ERR_OK;
}

static bool str_ok(const char *s) { return !s || vd_utf8_valid(s, strlen(s)); }

/* Checks the group's strings, so a group that cannot be written writes nothing. */
static vd_err check_group(const vd_docgroup *g, char *errstr, size_t errstr_size) {
    const vd_doc *d = &g->doc;
    if (!str_ok(d->id) || !str_ok(d->title) || !str_ok(d->source) || !str_ok(d->content_type) ||
        !str_ok(d->sha256) || !str_ok(d->metadata))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "avro: document %s has a field that is not UTF-8", d->id ? d->id : "?");
    for (size_t i = 0; i < g->nchunks; i++) {
        const vd_chunk *c = &g->chunks[i];
        if (!str_ok(c->id) || !str_ok(c->doc_id) || !str_ok(c->metadata))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "avro: chunk %s has a field that is not UTF-8", c->id ? c->id : "?");
    }
    return VD_ERR_OK;
}

static vd_err avro_wr_put(vd_writer *w, const vd_docgroup *g, char *errstr, size_t errstr_size) {
    avro_wr *a = w->impl;
    if (!a || a->closed)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "avro: writer is closed");
    if (a->sticky)
        return vd_seterr(errstr, errstr_size, a->sticky, "avro: writer already failed");
    vd_err e = check_group(g, errstr, errstr_size);
    if (e)
        return e;

    /* From here on a failure leaves part of the group behind: it is sticky. */
    vd_buf *b = &a->enc;
    const vd_doc *d = &g->doc;
    vd_buf_reset(b);
    if ((e = enc_prefix(b, T_DOCUMENT)) || (e = enc_str(b, d->id)) || (e = enc_str(b, d->title)) ||
        (e = enc_str(b, d->source)) || (e = enc_str(b, d->content_type)) ||
        (e = enc_long(b, d->size)) || (e = enc_str(b, d->sha256)) ||
        (e = enc_long(b, d->created_at)) || (e = enc_long(b, d->updated_at)) ||
        (e = enc_long(b, d->chunk_count)) || (e = enc_str(b, d->metadata)) ||
        (e = enc_suffix(b, T_DOCUMENT)))
        goto enc_fail;
    if ((e = wr_record(a, true, errstr, errstr_size)))
        return e;
    a->counts.documents++;

    for (size_t i = 0; i < g->nchunks; i++) {
        const vd_chunk *c = &g->chunks[i];
        const char *text = c->text ? c->text : "";
        size_t tl = c->text ? c->text_len : 0;
        bool binary = memchr(text, 0, tl) || !vd_utf8_valid(text, tl);
        size_t dim = c->embedding ? c->dim : 0;
        vd_buf_reset(b);
        if ((e = enc_prefix(b, T_CHUNK)) || (e = enc_str(b, c->id)) ||
            (e = enc_str(b, c->doc_id ? c->doc_id : d->id)) || (e = enc_long(b, c->seq)) ||
            (e = enc_bytes(b, text, binary ? 0 : tl)) || (e = enc_long(b, binary ? 1 : 0)) ||
            (binary && (e = enc_bytes(b, text, tl))))
            goto enc_fail;
        if (dim) {
            if ((e = enc_long(b, (int64_t)dim)) || (e = vd_buf_reserve(b, dim * 4)))
                goto enc_fail;
            vd_f32_to_le((unsigned char *)b->data + b->len, c->embedding, dim);
            b->len += dim * 4;
        }
        if ((e = enc_long(b, 0)) || (e = enc_str(b, c->metadata)) || (e = enc_suffix(b, T_CHUNK)))
            goto enc_fail;
        if ((e = wr_record(a, true, errstr, errstr_size)))
            return e;
        a->counts.chunks++;
    }

    if (a->include_files && g->has_file) {
        char hex[65];
        vd_sha256_hex(g->file.data, g->file.len, hex);
        vd_buf_reset(b);
        if ((e = enc_prefix(b, T_FILE)) || (e = enc_str(b, d->id)) ||
            (e = enc_bytes(b, g->file.data, g->file.len)) || (e = enc_str(b, hex)) ||
            (e = enc_suffix(b, T_FILE)))
            goto enc_fail;
        if ((e = wr_record(a, true, errstr, errstr_size)))
            return e;
        a->counts.files++;
    }
    return VD_ERR_OK;
enc_fail:
    return wr_stick(a, vd_seterr(errstr, errstr_size, e, "avro: encode document %s: %s",
                                 d->id ? d->id : "?", vd_err2str(e)));
}

/* Compressed bytes so far: written or staged (the open block is not counted). */
static int64_t avro_wr_bytes(const vd_writer *w) {
    const avro_wr *a = w->impl;
    return a ? a->written + (int64_t)a->out.len : 0;
}

static vd_err avro_wr_close(vd_writer *w, vd_writer_result *res, char *errstr, size_t errstr_size) {
    avro_wr *a = w->impl;
    vd_err e;
    char hex[65];
    if (res)
        memset(res, 0, sizeof *res);
    if (!a || a->closed)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "avro: writer already closed");
    if (a->sticky)
        return vd_seterr(errstr, errstr_size, a->sticky, "avro: writer already failed");
    vd_buf *b = &a->enc;
    vd_sha256_final_hex(a->sha, hex);
    vd_buf_reset(b);
    if ((e = enc_prefix(b, T_TRAILER)) || (e = enc_long(b, a->counts.documents)) ||
        (e = enc_long(b, a->counts.chunks)) || (e = enc_long(b, a->counts.files)) ||
        (e = enc_str(b, hex)) || (e = enc_suffix(b, T_TRAILER)))
        return wr_stick(a, vd_seterr(errstr, errstr_size, e, "avro: encode trailer: %s",
                                     vd_err2str(e)));
    if ((e = wr_record(a, false, errstr, errstr_size)) ||
        (e = wr_flush_block(a, errstr, errstr_size)) || (e = wr_drain(a, errstr, errstr_size)))
        return e;
    if (fsync(a->fd) != 0) {
        int err = errno;
        return wr_stick(a, vd_seterr(errstr, errstr_size, wr_io_err(err), "avro: fsync %s: %s",
                                     a->path, strerror(err)));
    }
    int fd = a->fd;
    a->fd = -1;
    if (close(fd) != 0) {
        int err = errno;
        return wr_stick(a, vd_seterr(errstr, errstr_size, wr_io_err(err), "avro: close %s: %s",
                                     a->path, strerror(err)));
    }
    a->closed = true;
    if (res) {
        res->bytes = a->written;
        vd_sha256_final_hex(a->fsha, res->sha256);
        res->counts = a->counts;
    }
    return VD_ERR_OK;
}

static const vd__writer_ops avro_writer_ops = {
    avro_wr_put,
    avro_wr_bytes,
    avro_wr_close,
    avro_wr_destroy,
};

/* 16 random bytes; the sync marker only has to be unlikely in the data. */
static void sync_marker(unsigned char out[16], const char *path) {
    if (getrandom(out, 16, 0) == 16)
        return;
    struct {
        int64_t mono, wall;
        pid_t pid;
        const void *where;
    } seed = {vd_mono_ms(), vd_now_ms(), getpid(), (const void *)out};
    vd_sha256 *h = vd_sha256_new();
    char hex[65];
    if (h) {
        vd_sha256_update(h, &seed, sizeof seed);
        vd_sha256_update(h, path, strlen(path));
        vd_sha256_final_hex(h, hex);
        vd_sha256_destroy(h);
    } else {
        vd_sha256_hex(&seed, sizeof seed, hex);
    }
    memcpy(out, hex, 16);
}

vd_err vd__avro_writer_open(vd_writer *w, const char *path, const vd_artifact_info *info,
                            char *errstr, size_t errstr_size) {
    vd_err e;
    if (!path || !info)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "avro: no path or info");
    if (info->meta.dim < 0 || info->meta.dim > MAX_DIM)
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM, "avro: dim %d out of range",
                         info->meta.dim);
    const char *strs[] = {info->tool_version, info->task_id, info->ns, info->meta.model,
                          info->meta.distance};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!str_ok(strs[i]))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "avro: header field not UTF-8");
    avro_wr *a = calloc(1, sizeof *a);
    if (!a)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
    a->fd = -1;
    w->impl = a; /* from here on, avro_wr_destroy cleans up */
    w->ops = &avro_writer_ops;
    vd_buf_init(&a->enc, 0);
    vd_buf_init(&a->blk, 0);
    vd_buf_init(&a->z, 0);
    vd_buf_init(&a->out, 0);
    a->include_files = info->include_files;
    a->path = vd_strdup(path);
    a->sha = vd_sha256_new();
    a->fsha = vd_sha256_new();
    if (!a->path || !a->sha || !a->fsha || vd_buf_reserve(&a->blk, BLOCK_TARGET) ||
        vd_buf_reserve(&a->out, OUT_BUF)) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
        goto fail;
    }
    int rc = deflateInit2(&a->zs, DEFLATE_LEVEL, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK) {
        e = vd_seterr(errstr, errstr_size, rc == Z_MEM_ERROR ? VD_ERR_NOMEM : VD_ERR_INTERNAL,
                      "avro: deflateInit2 failed (%d)", rc);
        goto fail;
    }
    a->zinit = true;
    a->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (a->fd < 0) {
        int err = errno;
        e = vd_seterr(errstr, errstr_size, err == EEXIST ? VD_ERR_CONFLICT : wr_io_err(err),
                      "avro: create %s: %s", path,
                      err == EEXIST ? "it already exists" : strerror(err));
        goto fail;
    }
    a->created = true;
    sync_marker(a->sync, path);

    /* File header: magic, metadata map (one block of two entries), sync. */
    vd_buf *b = &a->enc;
    if ((e = vd_buf_append(b, "Obj\1", 4)) || (e = enc_long(b, 2)) ||
        (e = enc_str(b, "avro.schema")) ||
        (e = enc_bytes(b, ARTIFACT_SCHEMA, sizeof ARTIFACT_SCHEMA - 1)) ||
        (e = enc_str(b, "avro.codec")) || (e = enc_str(b, "deflate")) || (e = enc_long(b, 0)) ||
        (e = vd_buf_append(b, a->sync, sizeof a->sync))) {
        vd_seterr(errstr, errstr_size, e, "avro: encode file header: %s", vd_err2str(e));
        goto fail;
    }
    if ((e = wr_emit(a, b->data, b->len, errstr, errstr_size)))
        goto fail;

    vd_buf_reset(b);
    if ((e = enc_prefix(b, T_HEADER)) || (e = enc_str(b, AVRO_FORMAT)) ||
        (e = enc_long(b, AVRO_FORMAT_VERSION)) || (e = enc_str(b, info->tool_version)) ||
        (e = enc_str(b, info->task_id)) || (e = enc_str(b, info->ns)) ||
        (e = enc_long(b, info->created_at)) || (e = enc_long(b, info->meta.schema_version)) ||
        (e = enc_long(b, info->meta.dim)) || (e = enc_str(b, info->meta.model)) ||
        (e = enc_str(b, info->meta.distance)) || (e = enc_long(b, info->meta.created_at)) ||
        (e = vd_buf_putc(b, info->include_files ? 1 : 0)) || (e = enc_suffix(b, T_HEADER))) {
        vd_seterr(errstr, errstr_size, e, "avro: encode header: %s", vd_err2str(e));
        goto fail;
    }
    if ((e = wr_record(a, true, errstr, errstr_size)))
        goto fail;
    for (size_t i = 0; i < SEG_MAX; i++)
        vd_buf_init(&a->segz[i], 0);
    for (; a->nwzs < NWORKERS; a->nwzs++) {
        rc = deflateInit2(&a->wzs[a->nwzs], DEFLATE_LEVEL, Z_DEFLATED, -15, 8,
                          Z_DEFAULT_STRATEGY);
        if (rc != Z_OK) {
            e = vd_seterr(errstr, errstr_size, rc == Z_MEM_ERROR ? VD_ERR_NOMEM : VD_ERR_INTERNAL,
                          "avro: deflateInit2 failed (%d)", rc);
            goto fail;
        }
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->thr_on = true; /* from here on, wr_thread_stop joins what started */
    for (; a->nthr < NWORKERS; a->nthr++) {
        wr_worker_arg *wa = malloc(sizeof *wa);
        int trc = wa ? 0 : ENOMEM;
        if (wa) {
            wa->a = a;
            wa->id = a->nthr;
            trc = pthread_create(&a->thr[a->nthr], NULL, wr_worker, wa);
            if (trc != 0)
                free(wa);
        }
        if (trc != 0) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                          "avro: cannot start a deflate thread: %s", strerror(trc));
            goto fail;
        }
    }
    return VD_ERR_OK;
fail:
    avro_wr_destroy(w);
    w->ops = NULL;
    return e;
}

/* ====================================================================== */
/* container reading                                                      */
/* ====================================================================== */

/* Reads a zigzag varint from fp. TRUNCATED at EOF, AVRO_FILE when overlong. */
static vd_err fp_long(FILE *fp, int64_t *v) {
    uint64_t n = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        int c = getc(fp);
        if (c == EOF)
            return ferror(fp) ? VD_ERR_IO : VD_ERR_TRUNCATED;
        n |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = (int64_t)(n >> 1) ^ -(int64_t)(n & 1);
            return VD_ERR_OK;
        }
        if (shift == 63)
            break;
    }
    return VD_ERR_AVRO_FILE;
}

static vd_err fp_read(FILE *fp, void *p, size_t n) {
    if (n && fread(p, 1, n, fp) != n)
        return ferror(fp) ? VD_ERR_IO : VD_ERR_TRUNCATED;
    return VD_ERR_OK;
}

/* Bytes left after fp's position. */
static int64_t fp_left(FILE *fp, int64_t file_size) {
    off_t pos = ftello(fp);
    return pos < 0 ? 0 : file_size - (int64_t)pos;
}

/* Largest compressed or inflated block accepted. */
static int64_t block_limit(const vd_limits *lim) {
    int64_t r = lim->max_record_bytes > 0 ? lim->max_record_bytes : ((int64_t)256 << 20);
    if (r > (INT64_MAX - ((int64_t)64 << 20)) / 2)
        return INT64_MAX / 2;
    return 2 * r + ((int64_t)64 << 20);
}

/*
 * Reads and checks the header (magic, metadata, schema, codec, sync), then
 * walks every block to the end of the file. Leaves fp anywhere;
 * *first_block is the offset of the first block.
 */
static vd_err avro_walk(FILE *fp, int64_t file_size, const vd_limits *lim, int64_t *first_block,
                        char sync[16], bool *deflate, avro_schema_t ours, char *errstr,
                        size_t errstr_size) {
    vd_err e;
    char magic[4];
    char *schema_json = NULL;
    size_t schema_len = 0;
    if ((e = fp_read(fp, magic, 4)) || memcmp(magic, "Obj\1", 4) != 0)
        return vd_seterr(errstr, errstr_size, e == VD_ERR_IO ? e : VD_ERR_AVRO_FILE,
                         "avro: not an Avro object container (magic)");
    *deflate = false;
    int entries = 0;
    bool have_codec = false;
    for (;;) {
        int64_t count, bsize;
        if ((e = fp_long(fp, &count)))
            goto meta_err;
        if (count == 0)
            break;
        if (count < 0) {
            if (count == INT64_MIN)
                goto meta_bad;
            count = -count;
            if ((e = fp_long(fp, &bsize)))
                goto meta_err;
        }
        for (int64_t i = 0; i < count; i++) {
            if (++entries > META_MAX_ENTRIES)
                goto meta_bad;
            int64_t kl, vl;
            char key[257];
            if ((e = fp_long(fp, &kl)))
                goto meta_err;
            if (kl < 0 || kl > 256)
                goto meta_bad;
            if (kl > fp_left(fp, file_size)) {
                e = VD_ERR_TRUNCATED;
                goto meta_err;
            }
            if ((e = fp_read(fp, key, (size_t)kl)))
                goto meta_err;
            key[kl] = 0;
            if ((e = fp_long(fp, &vl)))
                goto meta_err;
            if (vl < 0 || vl > META_MAX_VALUE)
                goto meta_bad;
            if (vl > fp_left(fp, file_size)) {
                e = VD_ERR_TRUNCATED;
                goto meta_err;
            }
            char *val = malloc((size_t)vl + 1);
            if (!val) {
                free(schema_json);
                return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
            }
            if ((e = fp_read(fp, val, (size_t)vl))) {
                free(val);
                goto meta_err;
            }
            val[vl] = 0;
            if (strcmp(key, "avro.schema") == 0) {
                free(schema_json);
                schema_json = val;
                schema_len = (size_t)vl;
            } else {
                if (strcmp(key, "avro.codec") == 0) {
                    have_codec = true;
                    if ((size_t)vl == strlen(val) && strcmp(val, "deflate") == 0) {
                        *deflate = true;
                    } else if (!((size_t)vl == strlen(val) && strcmp(val, "null") == 0)) {
                        free(val);
                        free(schema_json);
                        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                                         "avro: unsupported codec");
                    }
                }
                free(val);
            }
        }
    }
    (void)have_codec; /* absent means "null" */
    if (!schema_json)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: no avro.schema in header");
    {
        avro_schema_t theirs = NULL;
        int rc = avro_schema_from_json_length(schema_json, schema_len, &theirs);
        free(schema_json);
        schema_json = NULL;
        bool same = rc == 0 && avro_schema_equal(theirs, ours);
        if (theirs)
            avro_schema_decref(theirs);
        if (!same)
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                             "avro: the file's schema is not dev.vecdump.v1.ArtifactRecord");
    }
    if ((e = fp_read(fp, sync, 16)))
        return vd_seterr(errstr, errstr_size, e, "avro: header has no sync marker");
    off_t pos = ftello(fp);
    if (pos < 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_IO, "avro: ftello: %s", strerror(errno));
    *first_block = (int64_t)pos;

    /* Walk the blocks: count, size, skip, sync. */
    int64_t limit = block_limit(lim);
    int64_t nblock = 0;
    while ((int64_t)pos < file_size) {
        int64_t count, size;
        char s2[16];
        if ((e = fp_long(fp, &count)) || (e = fp_long(fp, &size)))
            return vd_seterr(errstr, errstr_size, e, "avro: block %" PRId64 " header: %s", nblock,
                             e == VD_ERR_TRUNCATED ? "truncated" : "malformed");
        if (count <= 0 || count > INT32_MAX || size <= 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                             "avro: block %" PRId64 " has count %" PRId64 " size %" PRId64, nblock,
                             count, size);
        off_t here = ftello(fp);
        if (here < 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_IO, "avro: ftello: %s", strerror(errno));
        if (size > file_size - (int64_t)here || file_size - (int64_t)here - size < 16)
            return vd_seterr(errstr, errstr_size, VD_ERR_TRUNCATED,
                             "avro: block %" PRId64 " runs past the end of the file", nblock);
        if (size > limit)
            return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                             "avro: block %" PRId64 " of %" PRId64 " bytes is over the limit",
                             nblock, size);
        if (fseeko(fp, (off_t)size, SEEK_CUR) != 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_IO, "avro: seek: %s", strerror(errno));
        if ((e = fp_read(fp, s2, 16)))
            return vd_seterr(errstr, errstr_size, e, "avro: block %" PRId64 " sync", nblock);
        if (memcmp(s2, sync, 16) != 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                             "avro: block %" PRId64 " is not followed by the sync marker", nblock);
        pos = ftello(fp);
        if (pos < 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_IO, "avro: ftello: %s", strerror(errno));
        nblock++;
    }
    return VD_ERR_OK;

meta_err:
    free(schema_json);
    return vd_seterr(errstr, errstr_size, e, "avro: file header is %s",
                     e == VD_ERR_TRUNCATED ? "truncated" : "malformed");
meta_bad:
    free(schema_json);
    return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: malformed file header metadata");
}

/* ====================================================================== */
/* reader                                                                 */
/* ====================================================================== */

typedef struct arec {
    int type;
    vd_doc doc;
    vd_chunk chunk;
    vd_file file;
    char file_sha[65];
    vd_counts tcounts;
    char tsha[65];
} arec;

typedef struct avro_rd {
    FILE *fp;
    int64_t file_size;
    vd_limits lim;
    char sync[16];
    bool deflate;
    avro_schema_t schema;
    unsigned char *cbuf;     /* compressed block */
    size_t ccap;
    unsigned char *blk;      /* decoded block */
    size_t blen, bcap, bpos;
    int64_t left;            /* records left in the block */
    z_stream zs;
    bool zs_init;
    vd_sha256 *sha;
    int dim;
    bool include_files;
    vd_counts got;
    arec pend;
    bool have_pend;
    bool failed, done;
    int64_t consumed;
} avro_rd;

static void arec_clear(arec *r) {
    vd_doc_clear(&r->doc);
    vd_chunk_clear(&r->chunk);
    vd_file_clear(&r->file);
    memset(r, 0, sizeof *r);
}

static void avro_rd_destroy(vd_reader *r) {
    avro_rd *a = r->impl;
    if (!a)
        return;
    if (a->fp)
        fclose(a->fp);
    if (a->zs_init)
        inflateEnd(&a->zs);
    if (a->schema)
        avro_schema_decref(a->schema);
    free(a->cbuf);
    if (a->blk != a->cbuf)
        free(a->blk);
    vd_sha256_destroy(a->sha);
    arec_clear(&a->pend);
    free(a);
    r->impl = NULL;
}

/* Loads the next block into a->blk. *eof at the end of the file. */
static vd_err rd_block(avro_rd *a, bool *eof, char *errstr, size_t errstr_size) {
    vd_err e;
    int64_t count, size;
    *eof = false;
    off_t pos = ftello(a->fp);
    if (pos >= 0 && (int64_t)pos >= a->file_size) {
        *eof = true;
        return VD_ERR_OK;
    }
    if ((e = fp_long(a->fp, &count)) || (e = fp_long(a->fp, &size)))
        return vd_seterr(errstr, errstr_size, e, "avro: block header");
    int64_t limit = block_limit(&a->lim);
    if (count <= 0 || size <= 0 || size > limit)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: bad block header");
    if ((size_t)size > a->ccap) {
        unsigned char *n = realloc(a->cbuf, (size_t)size);
        if (!n)
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
        if (a->blk == a->cbuf)
            a->blk = n;
        a->cbuf = n;
        a->ccap = (size_t)size;
    }
    char s2[16];
    if ((e = fp_read(a->fp, a->cbuf, (size_t)size)) || (e = fp_read(a->fp, s2, 16)))
        return vd_seterr(errstr, errstr_size, e, "avro: read block");
    if (memcmp(s2, a->sync, 16) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: sync marker mismatch");
    a->consumed = (int64_t)ftello(a->fp);
    if (!a->deflate) {
        if (a->blk != a->cbuf)
            free(a->blk);
        a->blk = a->cbuf;
        a->bcap = a->ccap;
        a->blen = (size_t)size;
    } else {
        if (a->blk == a->cbuf) {
            a->blk = NULL;
            a->bcap = 0;
        }
        if (!a->zs_init) {
            memset(&a->zs, 0, sizeof a->zs);
            if (inflateInit2(&a->zs, -15) != Z_OK)
                return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: inflateInit2");
            a->zs_init = true;
        } else {
            inflateReset(&a->zs);
        }
        a->zs.next_in = a->cbuf;
        a->zs.avail_in = (uInt)size;
        a->blen = 0;
        for (;;) {
            if (a->blen == a->bcap) {
                size_t ncap = a->bcap ? a->bcap * 2 : (size_t)size * 4 + 4096;
                if ((int64_t)ncap > limit)
                    ncap = (size_t)limit;
                if (ncap <= a->blen)
                    return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                                     "avro: block inflates over the limit");
                unsigned char *n = realloc(a->blk, ncap);
                if (!n)
                    return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
                a->blk = n;
                a->bcap = ncap;
            }
            a->zs.next_out = a->blk + a->blen;
            a->zs.avail_out = (uInt)(a->bcap - a->blen > UINT_MAX ? UINT_MAX : a->bcap - a->blen);
            uInt before = a->zs.avail_out;
            int rc = inflate(&a->zs, Z_NO_FLUSH);
            a->blen += before - a->zs.avail_out;
            if (a->lim.max_ratio > 0 && (int64_t)a->blen > RATIO_FLOOR &&
                (int64_t)a->blen / size > a->lim.max_ratio)
                return vd_seterr(errstr, errstr_size, VD_ERR_ZIP_BOMB,
                                 "avro: block inflates over the ratio limit %" PRId64,
                                 a->lim.max_ratio);
            if (rc == Z_STREAM_END)
                break;
            if (rc == Z_BUF_ERROR && a->zs.avail_in == 0)
                return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                                 "avro: deflate block ends early");
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                                 "avro: corrupt deflate block (%s)", a->zs.msg ? a->zs.msg : "?");
        }
        /* Bytes after the end of the deflate stream are ignored, as Java's
         * Inflater does: fastavro leaves part of a zlib trailer there. */
    }
    a->bpos = 0;
    a->left = count;
    return VD_ERR_OK;
}

/* ---- bounded decoding of one record ------------------------------------ */

typedef struct cur {
    const unsigned char *p, *end;
} cur;

static bool c_long(cur *c, int64_t *v) {
    uint64_t n = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p == c->end)
            return false;
        unsigned char b = *c->p++;
        n |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = (int64_t)(n >> 1) ^ -(int64_t)(n & 1);
            return true;
        }
    }
    return false;
}

static bool c_bytes(cur *c, const unsigned char **p, size_t *n) {
    int64_t l;
    if (!c_long(c, &l) || l < 0 || l > c->end - c->p)
        return false;
    *p = c->p;
    *n = (size_t)l;
    c->p += l;
    return true;
}

static bool c_int(cur *c, int *v) {
    int64_t l;
    if (!c_long(c, &l) || l < INT32_MIN || l > INT32_MAX)
        return false;
    *v = (int)l;
    return true;
}

#define DEC_FAIL(code, ...)                                                                   \
    do {                                                                                      \
        e = vd_seterr(errstr, errstr_size, code, __VA_ARGS__);                                \
        goto fail;                                                                            \
    } while (0)

/* A string field as a malloc'd C string (NUL bytes refused). */
static vd_err c_str(cur *c, const char *what, char **out, char *errstr, size_t errstr_size) {
    const unsigned char *p;
    size_t n;
    if (!c_bytes(c, &p, &n))
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: %s: bad string", what);
    if (memchr(p, 0, n))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD, "avro: %s holds a NUL byte", what);
    *out = vd_strndup((const char *)p, n);
    return *out ? VD_ERR_OK : vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
}

static vd_err c_id(cur *c, const char *what, char **out, char *errstr, size_t errstr_size) {
    const unsigned char *p;
    size_t n;
    if (!c_bytes(c, &p, &n))
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: %s: bad string", what);
    if (!vd_id_valid((const char *)p, n))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID, "avro: invalid %s '%.*s'", what,
                         (int)(n > 140 ? 140 : n), (const char *)p);
    *out = vd_strndup((const char *)p, n);
    return *out ? VD_ERR_OK : vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
}

static vd_err c_i64(cur *c, const char *what, int64_t *v, char *errstr, size_t errstr_size) {
    if (!c_long(c, v))
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: %s: bad long", what);
    return VD_ERR_OK;
}

static vd_err dec_chunk(avro_rd *a, cur *c, vd_chunk *ch, char *errstr, size_t errstr_size) {
    vd_err e;
    const unsigned char *p;
    size_t n;
    int64_t branch;
    if ((e = c_id(c, "chunk id", &ch->id, errstr, errstr_size)) ||
        (e = c_id(c, "chunk doc_id", &ch->doc_id, errstr, errstr_size)) ||
        (e = c_i64(c, "seq", &ch->seq, errstr, errstr_size)))
        return e;
    if (!c_bytes(c, &p, &n))
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: chunk %s: bad text", ch->id);
    const unsigned char *tp = p;
    size_t tn = n;
    if (!c_long(c, &branch) || (branch != 0 && branch != 1))
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: chunk %s: bad text_bytes",
                         ch->id);
    if (branch == 1) {
        if (tn || !c_bytes(c, &tp, &tn))
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                             "avro: chunk %s: text and text_bytes both set", ch->id);
    }
    ch->text = vd_strndup((const char *)tp, tn);
    ch->text_len = tn;
    if (!ch->text)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");

    /* array<float>: blocks of count (negative: followed by a byte size). */
    size_t dim = (size_t)a->dim, cnt = 0;
    ch->embedding = malloc((dim ? dim : 1) * sizeof(float));
    if (!ch->embedding)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
    for (;;) {
        int64_t bc, bs;
        if (!c_long(c, &bc))
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: chunk %s: bad embedding",
                             ch->id);
        if (bc == 0)
            break;
        if (bc < 0) {
            if (bc == INT64_MIN || !c_long(c, &bs))
                return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                                 "avro: chunk %s: bad embedding", ch->id);
            bc = -bc;
        }
        if (bc > (c->end - c->p) / 4)
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                             "avro: chunk %s: embedding runs past the record", ch->id);
        if ((uint64_t)bc > dim - cnt)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM,
                             "avro: chunk %s: embedding has more than %zu values", ch->id, dim);
        vd_f32_from_le(ch->embedding + cnt, c->p, (size_t)bc);
        c->p += bc * 4;
        cnt += (size_t)bc;
    }
    if (cnt != dim)
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM,
                         "avro: chunk %s: embedding has %zu values, dim is %zu", ch->id, cnt, dim);
    ch->dim = cnt;
    if (vd_embedding_check(ch->embedding, cnt))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FLOAT,
                         "avro: chunk %s: embedding holds NaN or Inf", ch->id);
    return c_str(c, "chunk metadata", &ch->metadata, errstr, errstr_size);
}

/* Decodes the next record into *rec. *eof when the file holds no more. */
static vd_err rd_record(avro_rd *a, vd_artifact_info *info, arec *rec, bool *eof, char *errstr,
                        size_t errstr_size) {
    vd_err e = VD_ERR_OK;
    *eof = false;
    memset(rec, 0, sizeof *rec);
    while (a->left == 0) {
        if (a->bpos != a->blen)
            return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                             "avro: block holds more bytes than its records");
        if ((e = rd_block(a, eof, errstr, errstr_size)) || *eof)
            return e;
    }
    cur c = {a->blk + a->bpos, a->blk + a->blen};
    const unsigned char *start = c.p;
    int64_t type, br;
    if (!c_long(&c, &type) || type < 0 || type >= T__COUNT)
        DEC_FAIL(VD_ERR_AVRO_FILE, "avro: bad record type");
    rec->type = (int)type;
    for (int u = 0; u < T__COUNT; u++) {
        if (!c_long(&c, &br) || br != (u == type ? 1 : 0))
            DEC_FAIL(VD_ERR_AVRO_FILE, "avro: %s record with a bad %s field", TYPE_NAMES[type],
                     TYPE_NAMES[u]);
        if (br == 0)
            continue;
        switch (u) {
        case T_HEADER: {
            const unsigned char *p;
            size_t n;
            int fv, sv, dim;
            if (!info)
                DEC_FAIL(VD_ERR_AVRO_FILE, "avro: HEADER record after the first");
            if (!c_bytes(&c, &p, &n) || n != strlen(AVRO_FORMAT) || memcmp(p, AVRO_FORMAT, n) ||
                !c_int(&c, &fv))
                DEC_FAIL(VD_ERR_FORMAT, "avro: header is not a vecdump-avro header");
            if (fv != AVRO_FORMAT_VERSION)
                DEC_FAIL(VD_ERR_FORMAT, "avro: unsupported format_version %d", fv);
            /* Strings go into info as soon as they exist: vd_formats.c frees them. */
            char *s = NULL;
            if ((e = c_str(&c, "tool_version", &s, errstr, errstr_size)))
                goto fail;
            info->tool_version = s;
            if ((e = c_str(&c, "task_id", &s, errstr, errstr_size)))
                goto fail;
            info->task_id = s;
            if ((e = c_str(&c, "namespace", &s, errstr, errstr_size)))
                goto fail;
            info->ns = s;
            if ((e = c_i64(&c, "created_at", &info->created_at, errstr, errstr_size)))
                goto fail;
            if (!c_int(&c, &sv) || !c_int(&c, &dim))
                DEC_FAIL(VD_ERR_AVRO_FILE, "avro: header: bad int");
            if (dim < 0 || dim > MAX_DIM)
                DEC_FAIL(VD_ERR_BAD_DIM, "avro: header dim %d out of range", dim);
            info->meta.schema_version = sv;
            info->meta.dim = dim;
            if ((e = c_str(&c, "model", &info->meta.model, errstr, errstr_size)) ||
                (e = c_str(&c, "distance", &info->meta.distance, errstr, errstr_size)) ||
                (e = c_i64(&c, "meta_created_at", &info->meta.created_at, errstr, errstr_size)))
                goto fail;
            if (c.p == c.end || *c.p > 1)
                DEC_FAIL(VD_ERR_AVRO_FILE, "avro: header: bad boolean");
            info->include_files = *c.p++ == 1;
            info->compress = true;
            a->dim = dim;
            a->include_files = info->include_files;
            break;
        }
        case T_DOCUMENT: {
            vd_doc *d = &rec->doc;
            if ((e = c_id(&c, "document id", &d->id, errstr, errstr_size)) ||
                (e = c_str(&c, "title", &d->title, errstr, errstr_size)) ||
                (e = c_str(&c, "source", &d->source, errstr, errstr_size)) ||
                (e = c_str(&c, "content_type", &d->content_type, errstr, errstr_size)) ||
                (e = c_i64(&c, "size", &d->size, errstr, errstr_size)) ||
                (e = c_str(&c, "sha256", &d->sha256, errstr, errstr_size)) ||
                (e = c_i64(&c, "created_at", &d->created_at, errstr, errstr_size)) ||
                (e = c_i64(&c, "updated_at", &d->updated_at, errstr, errstr_size)) ||
                (e = c_i64(&c, "chunk_count", &d->chunk_count, errstr, errstr_size)) ||
                (e = c_str(&c, "metadata", &d->metadata, errstr, errstr_size)))
                goto fail;
            break;
        }
        case T_CHUNK:
            if ((e = dec_chunk(a, &c, &rec->chunk, errstr, errstr_size)))
                goto fail;
            break;
        case T_FILE: {
            const unsigned char *p;
            size_t n;
            char *sha = NULL;
            if ((e = c_id(&c, "file doc_id", &rec->file.doc_id, errstr, errstr_size)))
                goto fail;
            if (!c_bytes(&c, &p, &n))
                DEC_FAIL(VD_ERR_AVRO_FILE, "avro: file %s: bad data", rec->file.doc_id);
            if ((int64_t)n > a->lim.max_record_bytes)
                DEC_FAIL(VD_ERR_TOO_LARGE, "avro: file %s is over the record size limit",
                         rec->file.doc_id);
            rec->file.data = malloc(n ? n : 1);
            if (!rec->file.data)
                DEC_FAIL(VD_ERR_NOMEM, "avro: out of memory");
            if (n)
                memcpy(rec->file.data, p, n);
            rec->file.len = n;
            if ((e = c_str(&c, "file sha256", &sha, errstr, errstr_size)))
                goto fail;
            snprintf(rec->file_sha, sizeof rec->file_sha, "%s", sha);
            free(sha);
            break;
        }
        case T_TRAILER: {
            char *sha = NULL;
            if ((e = c_i64(&c, "documents", &rec->tcounts.documents, errstr, errstr_size)) ||
                (e = c_i64(&c, "chunks", &rec->tcounts.chunks, errstr, errstr_size)) ||
                (e = c_i64(&c, "files", &rec->tcounts.files, errstr, errstr_size)) ||
                (e = c_str(&c, "trailer sha256", &sha, errstr, errstr_size)))
                goto fail;
            snprintf(rec->tsha, sizeof rec->tsha, "%s", sha);
            free(sha);
            break;
        }
        }
    }
    if (c.p - start > a->lim.max_record_bytes && type != T_FILE)
        DEC_FAIL(VD_ERR_TOO_LARGE, "avro: %s record is over the record size limit",
                 TYPE_NAMES[type]);
    if (type != T_TRAILER)
        vd_sha256_update(a->sha, start, (size_t)(c.p - start));
    a->bpos += (size_t)(c.p - start);
    a->left--;
    return VD_ERR_OK;
fail:
    arec_clear(rec);
    return e;
}

static vd_err next_rec(avro_rd *a, arec *rec, bool *eof, char *errstr, size_t errstr_size) {
    if (a->have_pend) {
        *rec = a->pend;
        memset(&a->pend, 0, sizeof a->pend);
        a->have_pend = false;
        *eof = false;
        return VD_ERR_OK;
    }
    return rd_record(a, NULL, rec, eof, errstr, errstr_size);
}

static vd_err avro_finish(avro_rd *a, const arec *t, char *errstr, size_t errstr_size) {
    if (a->left != 0 || a->bpos != a->blen || (int64_t)ftello(a->fp) != a->file_size)
        return vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: records after the trailer");
    char hex[65];
    vd_sha256_final_hex(a->sha, hex);
    if (strcmp(hex, t->tsha) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                         "avro: SHA-256 of the records differs from the trailer");
    if (t->tcounts.documents != a->got.documents || t->tcounts.chunks != a->got.chunks ||
        t->tcounts.files != a->got.files)
        return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                         "avro: counts %" PRId64 "/%" PRId64 "/%" PRId64
                         " differ from the trailer's %" PRId64 "/%" PRId64 "/%" PRId64,
                         a->got.documents, a->got.chunks, a->got.files, t->tcounts.documents,
                         t->tcounts.chunks, t->tcounts.files);
    return VD_ERR_OK;
}

static vd_err avro_rd_next(vd_reader *r, vd_docgroup *g, bool *done, char *errstr,
                           size_t errstr_size) {
    avro_rd *a = r->impl;
    vd_err e;
    arec rec;
    bool eof = false;
    *done = false;
    if (a->failed)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "avro: reader failed before and is unusable");
    if (a->done) {
        *done = true;
        return VD_ERR_OK;
    }
    memset(g, 0, sizeof *g);
    if ((e = next_rec(a, &rec, &eof, errstr, errstr_size)))
        goto fail;
    if (eof) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_TRUNCATED, "avro: no trailer: file is truncated");
        goto fail;
    }
    if (rec.type == T_TRAILER) {
        e = avro_finish(a, &rec, errstr, errstr_size);
        arec_clear(&rec);
        if (e)
            goto fail;
        a->done = true;
        *done = true;
        return VD_ERR_OK;
    }
    if (rec.type != T_DOCUMENT) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_REFERENCE,
                      "avro: %s record %s refers to document %s, which does not precede it",
                      TYPE_NAMES[rec.type], rec.type == T_CHUNK ? rec.chunk.id : "",
                      rec.type == T_CHUNK  ? rec.chunk.doc_id
                      : rec.type == T_FILE ? rec.file.doc_id
                                           : "?");
        arec_clear(&rec);
        goto fail;
    }
    g->doc = rec.doc;
    memset(&rec.doc, 0, sizeof rec.doc);
    for (;;) {
        if ((e = next_rec(a, &rec, &eof, errstr, errstr_size)))
            goto fail;
        if (eof) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_TRUNCATED,
                          "avro: no trailer: file is truncated");
            goto fail;
        }
        if (rec.type == T_CHUNK && !g->has_file) {
            if (strcmp(rec.chunk.doc_id, g->doc.id) != 0) {
                e = vd_seterr(errstr, errstr_size, VD_ERR_REFERENCE,
                              "avro: chunk %s refers to document %s but follows document %s",
                              rec.chunk.id, rec.chunk.doc_id, g->doc.id);
                arec_clear(&rec);
                goto fail;
            }
            if ((int64_t)g->nchunks >= a->lim.max_chunks_per_doc) {
                arec_clear(&rec);
                e = vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                              "avro: document %s has too many chunks", g->doc.id);
                goto fail;
            }
            vd_chunk *c = vd_docgroup_add_chunk(g);
            if (!c) {
                arec_clear(&rec);
                e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
                goto fail;
            }
            *c = rec.chunk;
            memset(&rec.chunk, 0, sizeof rec.chunk);
            a->got.chunks++;
        } else if (rec.type == T_FILE && !g->has_file) {
            char hex[65];
            vd_sha256_hex(rec.file.data, rec.file.len, hex);
            if (strcmp(rec.file.doc_id, g->doc.id) != 0)
                e = vd_seterr(errstr, errstr_size, VD_ERR_REFERENCE,
                              "avro: file of document %s follows document %s", rec.file.doc_id,
                              g->doc.id);
            else if (strcasecmp(hex, rec.file_sha) != 0)
                e = vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                              "avro: file of document %s: SHA-256 mismatch", g->doc.id);
            else if (g->doc.sha256 && g->doc.sha256[0] &&
                     (strcasecmp(hex, g->doc.sha256) != 0 || (size_t)g->doc.size != rec.file.len))
                e = vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                              "avro: file of document %s: size or SHA-256 differs from the "
                              "document",
                              g->doc.id);
            if (e) {
                arec_clear(&rec);
                goto fail;
            }
            g->has_file = true;
            g->file = rec.file;
            memset(&rec.file, 0, sizeof rec.file);
            a->got.files++;
        } else if (rec.type == T_DOCUMENT || rec.type == T_TRAILER) {
            a->pend = rec;
            a->have_pend = true;
            break;
        } else {
            e = vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE,
                          "avro: unexpected %s record after document %s", TYPE_NAMES[rec.type],
                          g->doc.id);
            arec_clear(&rec);
            goto fail;
        }
        arec_clear(&rec);
    }
    a->got.documents++;
    return VD_ERR_OK;
fail:
    a->failed = true;
    vd_docgroup_clear(g);
    return e;
}

static int64_t avro_rd_bytes(const vd_reader *r) {
    const avro_rd *a = r->impl;
    return a ? a->consumed : 0;
}

static const vd__reader_ops avro_reader_ops = {
    avro_rd_next,
    avro_rd_bytes,
    avro_rd_destroy,
};

vd_err vd__avro_reader_open(vd_reader *r, const char *path, const void *data, size_t len,
                            const vd_limits *lim, char *errstr, size_t errstr_size) {
    vd_err e;
    avro_rd *a = calloc(1, sizeof *a);
    if (!a)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
    r->impl = a;
    r->ops = &avro_reader_ops;
    if (lim)
        a->lim = *lim;
    else
        vd_limits_default(&a->lim);
    if (a->lim.max_record_bytes <= 0)
        a->lim.max_record_bytes = INT64_MAX / 4;
    a->sha = vd_sha256_new();
    if (!a->sha) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: out of memory");
        goto fail;
    }
    if ((e = schema_load(&a->schema, errstr, errstr_size)))
        goto fail;
    if (path) {
        a->fp = fopen(path, "rb");
        if (!a->fp) {
            e = vd_seterr(errstr, errstr_size, errno == ENOENT ? VD_ERR_NOT_FOUND : VD_ERR_IO,
                          "avro: open %s: %s", path, strerror(errno));
            goto fail;
        }
        struct stat st;
        if (fstat(fileno(a->fp), &st) != 0) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_IO, "avro: stat %s: %s", path,
                          strerror(errno));
            goto fail;
        }
        a->file_size = (int64_t)st.st_size;
    } else {
        if (len < 4) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: input too short");
            goto fail;
        }
        a->fp = fmemopen((void *)(uintptr_t)data, len, "rb");
        if (!a->fp) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "avro: fmemopen: %s", strerror(errno));
            goto fail;
        }
        a->file_size = (int64_t)len;
    }
    if (a->lim.max_artifact_bytes > 0 && a->file_size > a->lim.max_artifact_bytes) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                      "avro: artifact is over the size limit");
        goto fail;
    }
    int64_t first = 0;
    if ((e = avro_walk(a->fp, a->file_size, &a->lim, &first, a->sync, &a->deflate, a->schema,
                       errstr, errstr_size)))
        goto fail;
    if (fseeko(a->fp, (off_t)first, SEEK_SET) != 0) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_IO, "avro: seek: %s", strerror(errno));
        goto fail;
    }
    a->consumed = first;

    /* The first record must be the HEADER. */
    arec rec;
    bool eof = false;
    if ((e = rd_record(a, &r->info, &rec, &eof, errstr, errstr_size)))
        goto fail;
    if (eof) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_TRUNCATED, "avro: no records: file is truncated");
        goto fail;
    }
    if (rec.type != T_HEADER) {
        arec_clear(&rec);
        e = vd_seterr(errstr, errstr_size, VD_ERR_AVRO_FILE, "avro: first record is not HEADER");
        goto fail;
    }
    return VD_ERR_OK;
fail:
    avro_rd_destroy(r);
    r->ops = NULL;
    return e;
}
