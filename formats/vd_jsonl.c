/*
 * vd_jsonl.c - the JSONL artifact (SPEC §5): one JSON object a line,
 * optionally gzip-compressed.
 *
 *   {"type":"header",...}
 *   {"type":"document",...}  {"type":"chunk",...}*  {"type":"file",...}?   (per document)
 *   {"type":"trailer","documents":N,"chunks":N,"files":N,"sha256":HEX}
 *
 * The trailer's sha256 covers every byte of every line before it, newlines
 * included, uncompressed. Text fields that are not valid UTF-8 are written
 * as "<field>_b64" (base64 of the raw bytes) instead of "<field>", so every
 * byte round-trips; valid UTF-8 is written as a JSON string with control
 * characters escaped (NUL as \u0000). Document and chunk metadata are JSON
 * text kept as strings, so their bytes round-trip exactly. Absent (NULL)
 * strings are written as null.
 *
 * Writer: records are formatted by hand into a staging buffer (no jansson),
 * floats with vd_f32_format; the buffer is hashed and written (or deflated,
 * zlib level 1, gzip wrapper) in blocks of >= 1 MiB.
 *
 * Reader: streams the file (or memory) through an optional inflate, frames
 * lines with memchr and parses each line with a small strict JSON scanner of
 * its own; embeddings go straight through vd_f32_parse into float arrays.
 */
#include "formats_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define JW_FLUSH_AT (1u << 20)   /* staging bytes that trigger a write */
#define JW_ZOUT_SIZE (1u << 20)  /* deflate output block */
#define JR_READ_SIZE (1u << 20)  /* read(2) / inflate input block */
#define JW_WRITEBACK (8u << 20)  /* written bytes after which writeback is started */
#define JR_WIN_INIT (1u << 20)   /* initial line window */
#define JR_MAX_FIELDS 48
#define JR_MAX_DEPTH 64
#define GZ_LEVEL 1

/* ======================================================================= */
/* Shared helpers                                                           */
/* ======================================================================= */

/* Length of the valid UTF-8 sequence at s (< n bytes left), 0 if invalid. */
static inline size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        if (n < 2 || (s[1] & 0xc0) != 0x80)
            return 0;
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[2] & 0xc0) != 0x80)
            return 0;
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        if (s[1] < lo || s[1] > hi)
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        if (s[1] < lo || s[1] > hi)
            return 0;
        return 4;
    }
    return 0;
}

/* ======================================================================= */
/* Writer                                                                   */
/* ======================================================================= */

typedef struct jw {
    int fd;
    char *path;
    bool compress;
    bool include_files;
    bool closed;
    bool created;            /* we created path: remove it unless closed */
    vd_err sticky;           /* first error; later calls return it */
    size_t dim;
    vd_buf pend;             /* formatted lines not yet hashed / written */
    vd_sha256 *lines_sha;    /* lines before the trailer, uncompressed */
    vd_sha256 *file_sha;     /* bytes as written to the file */
    int64_t file_bytes;      /* atomic: the compression thread adds to it */
    int64_t wb_off;          /* writeback started up to here (writer side only) */
    z_stream zs;
    bool zinit;
    unsigned char *zout;
    vd_counts counts;
    /*
     * A second thread hashes, deflates (with compression) and writes while
     * the caller formats the next block: pend is swapped with full (double
     * buffering), so formatting overlaps hashing, deflate and write(2).
     */
    bool thr_on;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    vd_buf full;             /* block handed to the thread */
    bool full_ready, full_hash, full_final, quit;
    vd_err thr_err;          /* first error of the thread (under mu) */
    char thr_errstr[256];
} jw;

static vd_err jw_fail(jw *j, char *errstr, size_t errstr_size, vd_err e, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static vd_err jw_fail(jw *j, char *errstr, size_t errstr_size, vd_err e, const char *fmt, ...) {
    if (errstr && errstr_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    if (!j->sticky)
        j->sticky = e;
    return e;
}

static inline vd_err io_err(int err) {
    return err == ENOSPC || err == EDQUOT ? VD_ERR_NOSPACE : VD_ERR_IO;
}

/* The I/O path below runs on the compression thread when there is one: it
 * reports errors through errstr only and never touches j->sticky. */
static vd_err jw_write_file(jw *j, const void *p, size_t n, char *errstr, size_t errstr_size) {
    const char *c = p;
    vd_sha256_update(j->file_sha, p, n);
    while (n) {
        ssize_t k = write(j->fd, c, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            return vd_seterr(errstr, errstr_size, io_err(err), "write %s: %s", j->path,
                             strerror(err));
        }
        c += k;
        n -= (size_t)k;
        __atomic_fetch_add(&j->file_bytes, (int64_t)k, __ATOMIC_RELAXED);
    }
    /* Start writeback of what is written so far, so that the fsync at close
     * has little left to do. Only a hint: close's fsync is what makes the
     * file durable, so a failure here is ignored. */
    int64_t end = __atomic_load_n(&j->file_bytes, __ATOMIC_RELAXED);
    if (end - j->wb_off >= (int64_t)JW_WRITEBACK) {
        (void)sync_file_range(j->fd, j->wb_off, end - j->wb_off, SYNC_FILE_RANGE_WRITE);
        j->wb_off = end;
    }
    return VD_ERR_OK;
}

/* Deflates p (flush = Z_NO_FLUSH or Z_FINISH) and writes full output blocks. */
static vd_err jw_deflate(jw *j, const void *p, size_t n, int flush, char *errstr,
                         size_t errstr_size) {
    const unsigned char *in = p;
    for (;;) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        j->zs.next_in = (Bytef *)(uintptr_t)in;
        j->zs.avail_in = chunk;
        int last = n == chunk ? flush : Z_NO_FLUSH;
        int rc;
        do {
            j->zs.next_out = j->zout;
            j->zs.avail_out = JW_ZOUT_SIZE;
            rc = deflate(&j->zs, last);
            if (rc == Z_STREAM_ERROR)
                return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL, "deflate: stream error");
            size_t have = JW_ZOUT_SIZE - j->zs.avail_out;
            if (have) {
                vd_err e = jw_write_file(j, j->zout, have, errstr, errstr_size);
                if (e)
                    return e;
            }
        } while (j->zs.avail_out == 0 || (last == Z_FINISH && rc != Z_STREAM_END));
        in += chunk;
        n -= chunk;
        if (!n)
            return VD_ERR_OK;
    }
}

/* Hashes (when hash), then deflates or writes one block; final ends the gzip stream. */
static vd_err jw_process(jw *j, const char *p, size_t n, bool hash, bool final, char *errstr,
                         size_t errstr_size) {
    if (hash && n)
        vd_sha256_update(j->lines_sha, p, n);
    if (j->compress)
        return jw_deflate(j, p, n, final ? Z_FINISH : Z_NO_FLUSH, errstr, errstr_size);
    return n ? jw_write_file(j, p, n, errstr, errstr_size) : VD_ERR_OK;
}

static void *jw_thread(void *arg) {
    jw *j = arg;
    char es[256];
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->full_ready && !j->quit)
            pthread_cond_wait(&j->cv, &j->mu);
        if (!j->full_ready)
            break; /* quit */
        bool skip = j->thr_err != VD_ERR_OK;
        pthread_mutex_unlock(&j->mu);
        vd_err e = skip ? VD_ERR_OK
                        : jw_process(j, j->full.data, j->full.len, j->full_hash, j->full_final,
                                     es, sizeof es);
        pthread_mutex_lock(&j->mu);
        if (e && !j->thr_err) {
            j->thr_err = e;
            memcpy(j->thr_errstr, es, sizeof es);
        }
        vd_buf_reset(&j->full);
        j->full_ready = false;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Waits until the thread is idle; @returns its first error. Caller holds mu. */
static vd_err jw_wait_idle_locked(jw *j, char *errstr, size_t errstr_size) {
    while (j->full_ready)
        pthread_cond_wait(&j->cv, &j->mu);
    if (j->thr_err) {
        if (!j->sticky)
            j->sticky = j->thr_err;
        return vd_seterr(errstr, errstr_size, j->thr_err, "%s", j->thr_errstr);
    }
    return VD_ERR_OK;
}

static vd_err jw_drain(jw *j, char *errstr, size_t errstr_size) {
    if (!j->thr_on)
        return VD_ERR_OK;
    pthread_mutex_lock(&j->mu);
    vd_err e = jw_wait_idle_locked(j, errstr, errstr_size);
    pthread_mutex_unlock(&j->mu);
    return e;
}

/* Hands the staged lines on (to the thread, or processes them here). */
static vd_err jw_flush(jw *j, bool hash, bool final, char *errstr, size_t errstr_size) {
    if (!j->pend.len && !final)
        return VD_ERR_OK;
    vd_err e;
    if (j->thr_on) {
        pthread_mutex_lock(&j->mu);
        e = jw_wait_idle_locked(j, errstr, errstr_size);
        if (!e) {
            vd_buf t = j->full;
            j->full = j->pend;
            j->pend = t;
            j->full_hash = hash;
            j->full_final = final;
            j->full_ready = true;
            pthread_cond_broadcast(&j->cv);
        }
        pthread_mutex_unlock(&j->mu);
        return e;
    }
    e = jw_process(j, j->pend.data, j->pend.len, hash, final, errstr, errstr_size);
    vd_buf_reset(&j->pend);
    if (e && !j->sticky)
        j->sticky = e;
    return e;
}

static void jw_stop_thread(jw *j) {
    if (!j->thr_on)
        return;
    pthread_mutex_lock(&j->mu);
    j->quit = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thr, NULL);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    j->thr_on = false;
}

/* ---- unchecked writers into reserved space ----------------------------- */

static inline char *put_lit(char *d, const char *s) {
    size_t n = strlen(s);
    memcpy(d, s, n);
    return d + n;
}

static inline char *put_i64(char *d, int64_t v) {
    char tmp[24];
    int i = 24;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    memcpy(d, tmp + i, (size_t)(24 - i));
    return d + (24 - i);
}

/* Escapes s into a JSON string body (no quotes). NULL when s is not UTF-8. */
static char *put_escaped(char *d, const unsigned char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *d++ = (char)c;
            i++;
        } else if (c < 0x80) {
            *d++ = '\\';
            switch (c) {
            case '"': *d++ = '"'; break;
            case '\\': *d++ = '\\'; break;
            case '\n': *d++ = 'n'; break;
            case '\r': *d++ = 'r'; break;
            case '\t': *d++ = 't'; break;
            case '\b': *d++ = 'b'; break;
            case '\f': *d++ = 'f'; break;
            default:
                *d++ = 'u';
                *d++ = '0';
                *d++ = '0';
                *d++ = hex[c >> 4];
                *d++ = hex[c & 15];
                break;
            }
            i++;
        } else {
            size_t k = utf8_seq(s + i, n - i);
            if (!k)
                return NULL;
            memcpy(d, s + i, k);
            d += k;
            i += k;
        }
    }
    return d;
}

/* Worst-case output size of put_str for n input bytes. */
static inline size_t str_room(size_t n) { return 6 * n + 32; }

/* ,"key":"..." or ,"key_b64":"..." or ,"key":null */
static char *put_str(char *d, const char *key, const char *s, size_t n) {
    *d++ = ',';
    *d++ = '"';
    d = put_lit(d, key);
    if (!s) {
        return put_lit(d, "\":null");
    }
    char *mark = d;
    d = put_lit(d, "\":\"");
    char *e = put_escaped(d, (const unsigned char *)s, n);
    if (!e) {
        d = put_lit(mark, "_b64\":\"");
        e = vd_base64_encode(d, (const unsigned char *)s, n);
    }
    *e++ = '"';
    return e;
}

static char *put_int(char *d, const char *key, int64_t v) {
    *d++ = ',';
    *d++ = '"';
    d = put_lit(d, key);
    *d++ = '"';
    *d++ = ':';
    return put_i64(d, v);
}

static inline size_t slen(const char *s) { return s ? strlen(s) : 0; }

static vd_err jw_put_header(jw *j, const vd_artifact_info *info, char *errstr,
                            size_t errstr_size) {
    const vd_meta *m = &info->meta;
    size_t need = 512 + str_room(slen(info->tool_version)) + str_room(slen(info->task_id)) +
                  str_room(slen(info->ns)) + str_room(slen(m->model)) +
                  str_room(slen(m->distance));
    vd_err e = vd_buf_reserve(&j->pend, need);
    if (e)
        return jw_fail(j, errstr, errstr_size, e, "header: out of memory");
    char *d = j->pend.data + j->pend.len;
    d = put_lit(d, "{\"type\":\"header\",\"format\":\"vecdump-jsonl\",\"format_version\":1,"
                   "\"tool\":\"vecdump\"");
    d = put_str(d, "tool_version", info->tool_version, slen(info->tool_version));
    d = put_str(d, "task_id", info->task_id, slen(info->task_id));
    d = put_str(d, "namespace", info->ns, slen(info->ns));
    d = put_int(d, "created_at", info->created_at);
    d = put_int(d, "schema_version", m->schema_version);
    d = put_int(d, "dim", m->dim);
    d = put_str(d, "model", m->model, slen(m->model));
    d = put_str(d, "distance", m->distance, slen(m->distance));
    d = put_int(d, "meta_created_at", m->created_at);
    d = put_lit(d, info->include_files ? ",\"include_files\":true}\n"
                                       : ",\"include_files\":false}\n");
    j->pend.len = (size_t)(d - j->pend.data);
    return VD_ERR_OK;
}

static vd_err jw_put(vd_writer *w, const vd_docgroup *g, char *errstr, size_t errstr_size) {
    jw *j = w->impl;
    if (j->sticky)
        return vd_seterr(errstr, errstr_size, j->sticky, "writer already failed");
    if (j->closed)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "writer already closed");
    const vd_doc *doc = &g->doc;
    if (!doc->id || !vd_id_valid(doc->id, strlen(doc->id)))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID, "document id '%.140s' is invalid",
                         doc->id ? doc->id : "(null)");
    /* Check the whole group first, so a bad group writes nothing. */
    for (size_t i = 0; i < g->nchunks; i++) {
        const vd_chunk *c = &g->chunks[i];
        if (!c->id || !vd_id_valid(c->id, strlen(c->id)))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID,
                             "document %s: chunk id '%.140s' is invalid", doc->id,
                             c->id ? c->id : "(null)");
        if (!c->doc_id || strcmp(c->doc_id, doc->id) != 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_REFERENCE,
                             "chunk %s: doc_id '%.140s' is not its document %s", c->id,
                             c->doc_id ? c->doc_id : "(null)", doc->id);
        if (c->dim != j->dim || (c->dim && !c->embedding))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM,
                             "chunk %s: embedding has %zu floats, expected %zu", c->id, c->dim,
                             j->dim);
        if (vd_embedding_check(c->embedding, c->dim))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FLOAT,
                             "chunk %s: embedding holds NaN or Inf", c->id);
        if (i && c->seq < g->chunks[i - 1].seq)
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "chunk %s: seq %lld is out of order", c->id, (long long)c->seq);
    }
    bool put_file = j->include_files && g->has_file;
    char file_hex[65] = "";
    if (put_file) {
        vd_sha256_hex(g->file.data, g->file.len, file_hex);
        if (doc->sha256 && doc->sha256[0] && strcmp(doc->sha256, file_hex) != 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                             "document %s: file SHA-256 %s does not match the document's %.64s",
                             doc->id, file_hex, doc->sha256);
        if ((int64_t)g->file.len != doc->size)
            return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                             "document %s: file has %zu bytes, the document says %lld", doc->id,
                             g->file.len, (long long)doc->size);
    }

    /* document */
    size_t need = 512 + str_room(strlen(doc->id)) + str_room(slen(doc->title)) +
                  str_room(slen(doc->source)) + str_room(slen(doc->content_type)) +
                  str_room(slen(doc->sha256)) + str_room(slen(doc->metadata));
    vd_err e = vd_buf_reserve(&j->pend, need);
    if (e)
        return jw_fail(j, errstr, errstr_size, e, "document %s: out of memory", doc->id);
    char *d = j->pend.data + j->pend.len;
    d = put_lit(d, "{\"type\":\"document\"");
    d = put_str(d, "id", doc->id, strlen(doc->id));
    d = put_str(d, "title", doc->title, slen(doc->title));
    d = put_str(d, "source", doc->source, slen(doc->source));
    d = put_str(d, "content_type", doc->content_type, slen(doc->content_type));
    d = put_int(d, "size", doc->size);
    d = put_str(d, "sha256", doc->sha256, slen(doc->sha256));
    d = put_int(d, "created_at", doc->created_at);
    d = put_int(d, "updated_at", doc->updated_at);
    d = put_int(d, "chunk_count", doc->chunk_count);
    d = put_str(d, "metadata", doc->metadata, slen(doc->metadata));
    *d++ = '}';
    *d++ = '\n';
    j->pend.len = (size_t)(d - j->pend.data);

    /* chunks */
    for (size_t i = 0; i < g->nchunks; i++) {
        const vd_chunk *c = &g->chunks[i];
        need = 256 + str_room(strlen(c->id)) + str_room(strlen(c->doc_id)) +
               str_room(c->text_len) + str_room(slen(c->metadata)) +
               c->dim * (VD_F32_MAXLEN + 1);
        e = vd_buf_reserve(&j->pend, need);
        if (e)
            return jw_fail(j, errstr, errstr_size, e, "chunk %s: out of memory", c->id);
        d = j->pend.data + j->pend.len;
        d = put_lit(d, "{\"type\":\"chunk\"");
        d = put_str(d, "id", c->id, strlen(c->id));
        d = put_str(d, "doc_id", c->doc_id, strlen(c->doc_id));
        d = put_int(d, "seq", c->seq);
        d = put_str(d, "text", c->text, c->text ? c->text_len : 0);
        d = put_lit(d, ",\"embedding\":[");
        for (size_t k = 0; k < c->dim; k++) {
            d += vd_f32_format(c->embedding[k], d);
            *d++ = ',';
        }
        if (c->dim)
            d--;
        *d++ = ']';
        d = put_str(d, "metadata", c->metadata, slen(c->metadata));
        *d++ = '}';
        *d++ = '\n';
        j->pend.len = (size_t)(d - j->pend.data);
        if (j->pend.len >= JW_FLUSH_AT && (e = jw_flush(j, true, false, errstr, errstr_size)))
            return e;
    }

    /* file */
    if (put_file) {
        need = 256 + str_room(strlen(doc->id)) + (g->file.len + 2) / 3 * 4;
        e = vd_buf_reserve(&j->pend, need);
        if (e)
            return jw_fail(j, errstr, errstr_size, e, "file %s: out of memory", doc->id);
        d = j->pend.data + j->pend.len;
        d = put_lit(d, "{\"type\":\"file\"");
        d = put_str(d, "doc_id", doc->id, strlen(doc->id));
        d = put_int(d, "size", (int64_t)g->file.len);
        d = put_str(d, "sha256", file_hex, 64);
        d = put_lit(d, ",\"data\":\"");
        d = vd_base64_encode(d, g->file.data, g->file.len);
        d = put_lit(d, "\"}\n");
        j->pend.len = (size_t)(d - j->pend.data);
        j->counts.files++;
    }
    j->counts.documents++;
    j->counts.chunks += (int64_t)g->nchunks;
    if (j->pend.len >= JW_FLUSH_AT)
        return jw_flush(j, true, false, errstr, errstr_size);
    return VD_ERR_OK;
}

static int64_t jw_bytes(const vd_writer *w) {
    jw *j = w->impl;
    return __atomic_load_n(&j->file_bytes, __ATOMIC_RELAXED) +
           (j->compress ? 0 : (int64_t)j->pend.len);
}

static vd_err jw_close(vd_writer *w, vd_writer_result *res, char *errstr, size_t errstr_size) {
    jw *j = w->impl;
    memset(res, 0, sizeof *res);
    if (j->sticky)
        return vd_seterr(errstr, errstr_size, j->sticky, "writer already failed");
    if (j->closed)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "writer already closed");
    vd_err e = jw_flush(j, true, false, errstr, errstr_size);
    if (!e)
        e = jw_drain(j, errstr, errstr_size); /* lines_sha is complete once idle */
    if (e)
        return e;
    char hex[65];
    vd_sha256_final_hex(j->lines_sha, hex);
    e = vd_buf_printf(&j->pend,
                      "{\"type\":\"trailer\",\"documents\":%lld,\"chunks\":%lld,\"files\":%lld,"
                      "\"sha256\":\"%s\"}\n",
                      (long long)j->counts.documents, (long long)j->counts.chunks,
                      (long long)j->counts.files, hex);
    if (e)
        return jw_fail(j, errstr, errstr_size, e, "trailer: out of memory");
    e = jw_flush(j, false, true, errstr, errstr_size);
    if (!e)
        e = jw_drain(j, errstr, errstr_size);
    jw_stop_thread(j);
    if (e)
        return e;
    if (fsync(j->fd) != 0) {
        int err = errno;
        return jw_fail(j, errstr, errstr_size,
                       err == ENOSPC || err == EDQUOT ? VD_ERR_NOSPACE : VD_ERR_IO,
                       "fsync %s: %s", j->path, strerror(err));
    }
    int fd = j->fd;
    j->fd = -1;
    if (close(fd) != 0) {
        int err = errno;
        return jw_fail(j, errstr, errstr_size,
                       err == ENOSPC || err == EDQUOT ? VD_ERR_NOSPACE : VD_ERR_IO,
                       "close %s: %s", j->path, strerror(err));
    }
    j->closed = true;
    res->bytes = j->file_bytes;
    vd_sha256_final_hex(j->file_sha, res->sha256);
    res->counts = j->counts;
    res->members = NULL;
    res->nmembers = 0;
    return VD_ERR_OK;
}

static void jw_destroy(vd_writer *w) {
    jw *j = w->impl;
    if (!j)
        return;
    jw_stop_thread(j);
    if (j->fd >= 0)
        close(j->fd);
    if (!j->closed && j->created)
        unlink(j->path);
    if (j->zinit)
        deflateEnd(&j->zs);
    free(j->zout);
    vd_buf_free(&j->pend);
    vd_buf_free(&j->full);
    vd_sha256_destroy(j->lines_sha);
    vd_sha256_destroy(j->file_sha);
    free(j->path);
    free(j);
    w->impl = NULL;
}

static const vd__writer_ops jw_ops = {jw_put, jw_bytes, jw_close, jw_destroy};

vd_err vd__jsonl_writer_open(vd_writer *w, const char *path, const vd_artifact_info *info,
                             char *errstr, size_t errstr_size) {
    jw *j = calloc(1, sizeof *j);
    if (!j)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "jsonl writer: out of memory");
    j->fd = -1;
    w->ops = &jw_ops;
    w->impl = j; /* from here on, jw_destroy cleans up */
    j->compress = info->compress;
    j->include_files = info->include_files;
    j->dim = info->meta.dim > 0 ? (size_t)info->meta.dim : 0;
    vd_buf_init(&j->pend, 0);
    vd_buf_init(&j->full, 0);
    j->path = vd_strdup(path);
    j->lines_sha = vd_sha256_new();
    j->file_sha = vd_sha256_new();
    if (!j->path || !j->lines_sha || !j->file_sha ||
        vd_buf_reserve(&j->pend, JW_FLUSH_AT + (64u << 10)) != VD_ERR_OK)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "jsonl writer: out of memory");
    if (j->compress) {
        j->zout = malloc(JW_ZOUT_SIZE);
        if (!j->zout)
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "jsonl writer: out of memory");
        if (deflateInit2(&j->zs, GZ_LEVEL, Z_DEFLATED, 16 + MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "deflateInit2 failed");
        j->zinit = true;
    }
    j->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (j->fd < 0) {
        int err = errno;
        return vd_seterr(errstr, errstr_size,
                         err == ENOSPC || err == EDQUOT ? VD_ERR_NOSPACE : VD_ERR_IO,
                         "open %s: %s", path, strerror(err));
    }
    j->created = true;
    /* Also without compression: hashing and write(2) then overlap the
     * formatting of the next block. */
    if (vd_buf_reserve(&j->full, JW_FLUSH_AT + (64u << 10)) != VD_ERR_OK)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "jsonl writer: out of memory");
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    int rc = pthread_create(&j->thr, NULL, jw_thread, j);
    if (rc != 0) {
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->cv);
        return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                         "jsonl writer: cannot start the writer thread: %s",
                         strerror(rc));
    }
    j->thr_on = true;
    return jw_put_header(j, info, errstr, errstr_size);
}

/* ======================================================================= */
/* Reader                                                                   */
/* ======================================================================= */

typedef enum { JV_STR, JV_NUM, JV_TRUE, JV_FALSE, JV_NULL, JV_ARR, JV_OBJ } jv_type;

typedef struct jfield {
    const char *k;
    size_t klen;
    jv_type t;
    const char *vs, *ve;  /* the value's text; for strings, inside the quotes */
    bool esc;             /* string holds backslash escapes */
} jfield;

typedef struct jr {
    /* source */
    int fd;
    const unsigned char *mem;
    size_t mem_len, mem_pos;
    bool gz;
    z_stream zs;
    bool zinit;
    bool member_done;     /* the last inflate returned Z_STREAM_END */
    unsigned char *in;    /* input block when reading a gzip file */
    int64_t in_bytes;     /* artifact bytes consumed */
    int64_t out_bytes;    /* decompressed bytes produced */
    bool eof;
    /* line window */
    unsigned char *win;
    size_t wcap, wstart, wend, wscan;
    bool win_borrowed;    /* win points into mem */
    int64_t lineno;
    vd_limits lim;
    vd_sha256 *sha;
    /* record state */
    jfield f[JR_MAX_FIELDS];
    int nf;
    float *emb;           /* scratch embedding (dim floats) */
    size_t emb_n;
    size_t dim;
    vd_doc pending;
    bool have_pending;
    vd_counts seen;
    bool finished;        /* trailer verified, nothing followed */
    vd_err sticky;
} jr;

static vd_err jr_err(jr *j, char *errstr, size_t errstr_size, vd_err e, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static vd_err jr_err(jr *j, char *errstr, size_t errstr_size, vd_err e, const char *fmt, ...) {
    if (errstr && errstr_size) {
        int n = snprintf(errstr, errstr_size, "line %lld: ", (long long)j->lineno);
        if (n >= 0 && (size_t)n < errstr_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(errstr + n, errstr_size - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    if (!j->sticky)
        j->sticky = e;
    return e;
}

/* ---- byte source -------------------------------------------------------- */

/* Reads up to n raw artifact bytes into p (file or memory). 0 at EOF. */
static vd_err jr_raw_read(jr *j, unsigned char *p, size_t n, size_t *got, char *errstr,
                          size_t errstr_size) {
    *got = 0;
    if (j->mem) {
        size_t k = j->mem_len - j->mem_pos;
        if (k > n)
            k = n;
        memcpy(p, j->mem + j->mem_pos, k);
        j->mem_pos += k;
        *got = k;
    } else {
        ssize_t k;
        do
            k = read(j->fd, p, n);
        while (k < 0 && errno == EINTR);
        if (k < 0)
            return jr_err(j, errstr, errstr_size, VD_ERR_IO, "read: %s", strerror(errno));
        *got = (size_t)k;
    }
    j->in_bytes += (int64_t)*got;
    return VD_ERR_OK;
}

/* Appends decompressed (or raw) bytes at win[wend..wcap). Sets eof at the end. */
static vd_err jr_fill(jr *j, char *errstr, size_t errstr_size) {
    if (!j->gz) {
        size_t got;
        vd_err e = jr_raw_read(j, j->win + j->wend, j->wcap - j->wend, &got, errstr, errstr_size);
        if (e)
            return e;
        if (!got)
            j->eof = true;
        j->wend += got;
        return VD_ERR_OK;
    }
    size_t before = j->wend;
    while (j->wend == before) {
        if (j->zs.avail_in == 0) {
            size_t got;
            if (j->mem) {
                size_t k = j->mem_len - j->mem_pos;
                if (k > JR_READ_SIZE)
                    k = JR_READ_SIZE;
                j->zs.next_in = (Bytef *)(uintptr_t)(j->mem + j->mem_pos);
                j->mem_pos += k;
                j->in_bytes += (int64_t)k;
                got = k;
            } else {
                vd_err e = jr_raw_read(j, j->in, JR_READ_SIZE, &got, errstr, errstr_size);
                if (e)
                    return e;
                j->zs.next_in = j->in;
            }
            j->zs.avail_in = (uInt)got;
            if (!got) {
                if (!j->member_done)
                    return jr_err(j, errstr, errstr_size, VD_ERR_TRUNCATED,
                                  "gzip stream ends early (truncated artifact)");
                j->eof = true;
                return VD_ERR_OK;
            }
        }
        if (j->member_done) { /* another gzip member follows */
            if (inflateReset(&j->zs) != Z_OK)
                return jr_err(j, errstr, errstr_size, VD_ERR_GZIP, "inflateReset failed");
            j->member_done = false;
        }
        j->zs.next_out = j->win + j->wend;
        j->zs.avail_out = (uInt)(j->wcap - j->wend);
        int rc = inflate(&j->zs, Z_NO_FLUSH);
        size_t produced = (j->wcap - j->wend) - j->zs.avail_out;
        j->wend += produced;
        j->out_bytes += (int64_t)produced;
        if (rc == Z_STREAM_END) {
            j->member_done = true;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return jr_err(j, errstr, errstr_size, VD_ERR_GZIP, "corrupt gzip stream: %s",
                          j->zs.msg ? j->zs.msg : "inflate error");
        }
        int64_t consumed = j->in_bytes - (int64_t)j->zs.avail_in;
        if (j->out_bytes > j->lim.max_ratio * (consumed > 0 ? consumed : 1) + (1 << 20))
            return jr_err(j, errstr, errstr_size, VD_ERR_ZIP_BOMB,
                          "decompressed %lld bytes from %lld: ratio over the limit %lld",
                          (long long)j->out_bytes, (long long)consumed,
                          (long long)j->lim.max_ratio);
        if (j->out_bytes > j->lim.max_artifact_bytes)
            return jr_err(j, errstr, errstr_size, VD_ERR_TOO_LARGE,
                          "decompressed artifact exceeds %lld bytes",
                          (long long)j->lim.max_artifact_bytes);
    }
    return VD_ERR_OK;
}

/*
 * Next line (without its newline) into *line / *n. *have = false at a clean
 * end of data. A last line without a newline is a truncated artifact.
 */
static vd_err jr_line(jr *j, const char **line, size_t *n, bool *have, char *errstr,
                      size_t errstr_size) {
    *have = false;
    for (;;) {
        unsigned char *start = j->win + j->wstart;
        unsigned char *nl = memchr(j->win + j->wscan, '\n', j->wend - j->wscan);
        if (nl) {
            *line = (const char *)start;
            *n = (size_t)(nl - start);
            j->wstart = j->wscan = (size_t)(nl - j->win) + 1;
            j->lineno++;
            if ((int64_t)*n > j->lim.max_record_bytes) {
                return jr_err(j, errstr, errstr_size, VD_ERR_TOO_LARGE,
                              "record of %zu bytes exceeds the limit of %lld", *n,
                              (long long)j->lim.max_record_bytes);
            }
            *have = true;
            return VD_ERR_OK;
        }
        j->wscan = j->wend;
        size_t pending = j->wend - j->wstart;
        if ((int64_t)pending > j->lim.max_record_bytes) {
            j->lineno++;
            return jr_err(j, errstr, errstr_size, VD_ERR_TOO_LARGE,
                          "record exceeds the limit of %lld bytes",
                          (long long)j->lim.max_record_bytes);
        }
        if (j->eof || j->win_borrowed) {
            if (pending) {
                j->lineno++;
                return jr_err(j, errstr, errstr_size, VD_ERR_TRUNCATED,
                              "last line has no newline (truncated artifact)");
            }
            return VD_ERR_OK;
        }
        /* Make room: drop consumed bytes, grow when a line fills the window. */
        if (j->wstart) {
            memmove(j->win, j->win + j->wstart, pending);
            j->wend = pending;
            j->wscan = pending;
            j->wstart = 0;
        }
        if (j->wcap - j->wend < (JR_READ_SIZE >> 2)) {
            size_t ncap = j->wcap * 2;
            unsigned char *nw = realloc(j->win, ncap);
            if (!nw)
                return jr_err(j, errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            j->win = nw;
            j->wcap = ncap;
        }
        j->lineno++; /* errors while filling name the line being read */
        vd_err e = jr_fill(j, errstr, errstr_size);
        j->lineno--;
        if (e)
            return e;
    }
}

/* ---- JSON scanning ------------------------------------------------------ */

typedef struct jp {
    const char *p, *end;
} jp;

static inline void jp_ws(jp *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n'))
        s->p++;
}

static inline int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* At an opening quote: finds the closing quote. Checks escapes' syntax. */
static bool jp_string(jp *s, const char **vs, const char **ve, bool *esc) {
    const char *p = s->p + 1;
    *esc = false;
    *vs = p;
    while (p < s->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            *ve = p;
            s->p = p + 1;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            *esc = true;
            if (p + 1 >= s->end)
                return false;
            char e = p[1];
            if (e == 'u') {
                if (s->end - p < 6 || hexval(p[2]) < 0 || hexval(p[3]) < 0 || hexval(p[4]) < 0 ||
                    hexval(p[5]) < 0)
                    return false;
                p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0)
                return false;
            p += 2;
            continue;
        }
        p++;
    }
    return false;
}

static bool jp_number(jp *s) {
    const char *p = s->p;
    if (p < s->end && *p == '-')
        p++;
    if (p >= s->end || (unsigned char)(*p - '0') > 9)
        return false;
    if (*p == '0')
        p++;
    else
        while (p < s->end && (unsigned char)(*p - '0') <= 9)
            p++;
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || (unsigned char)(*p - '0') > 9)
            return false;
        while (p < s->end && (unsigned char)(*p - '0') <= 9)
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || (unsigned char)(*p - '0') > 9)
            return false;
        while (p < s->end && (unsigned char)(*p - '0') <= 9)
            p++;
    }
    s->p = p;
    return true;
}

static bool jp_lit(jp *s, const char *lit, size_t n) {
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* Skips (and checks) any JSON value. */
static bool jp_skip(jp *s, int depth) {
    if (depth > JR_MAX_DEPTH)
        return false;
    jp_ws(s);
    if (s->p >= s->end)
        return false;
    const char *vs, *ve;
    bool esc;
    switch (*s->p) {
    case '"':
        return jp_string(s, &vs, &ve, &esc);
    case 't':
        return jp_lit(s, "true", 4);
    case 'f':
        return jp_lit(s, "false", 5);
    case 'n':
        return jp_lit(s, "null", 4);
    case '[':
    case '{': {
        char close = *s->p == '[' ? ']' : '}';
        bool obj = close == '}';
        s->p++;
        jp_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return true;
        }
        for (;;) {
            if (obj) {
                jp_ws(s);
                if (s->p >= s->end || *s->p != '"' || !jp_string(s, &vs, &ve, &esc))
                    return false;
                jp_ws(s);
                if (s->p >= s->end || *s->p != ':')
                    return false;
                s->p++;
            }
            if (!jp_skip(s, depth + 1))
                return false;
            jp_ws(s);
            if (s->p >= s->end)
                return false;
            if (*s->p == ',') {
                s->p++;
                continue;
            }
            if (*s->p == close) {
                s->p++;
                return true;
            }
            return false;
        }
    }
    default:
        return jp_number(s);
    }
}

/* Decodes a JSON string body into a new NUL-terminated buffer. NULL if the
 * string is not valid UTF-8 / has a lone surrogate (*bad) or on OOM. */
static char *jstr_decode(const char *vs, const char *ve, bool esc, size_t *outlen, bool *bad) {
    size_t n = (size_t)(ve - vs);
    char *out = malloc(n + 1);
    *bad = false;
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)vs, *end = (const unsigned char *)ve;
    unsigned char *d = (unsigned char *)out;
    if (!esc) {
        const unsigned char *q = p;
        while (q < end) {
            if (*q < 0x80) {
                q++;
                continue;
            }
            size_t k = utf8_seq(q, (size_t)(end - q));
            if (!k)
                goto bad;
            q += k;
        }
        memcpy(d, p, n);
        d += n;
    } else {
        while (p < end) {
            unsigned char c = *p;
            if (c == '\\') {
                char e = (char)p[1];
                p += 2;
                switch (e) {
                case 'n': *d++ = '\n'; break;
                case 'r': *d++ = '\r'; break;
                case 't': *d++ = '\t'; break;
                case 'b': *d++ = '\b'; break;
                case 'f': *d++ = '\f'; break;
                case '/': *d++ = '/'; break;
                case '\\': *d++ = '\\'; break;
                case '"': *d++ = '"'; break;
                case 'u': {
                    uint32_t cp = (uint32_t)(hexval((char)p[0]) << 12 | hexval((char)p[1]) << 8 |
                                             hexval((char)p[2]) << 4 | hexval((char)p[3]));
                    p += 4;
                    if (cp >= 0xdc00 && cp <= 0xdfff)
                        goto bad;
                    if (cp >= 0xd800 && cp <= 0xdbff) {
                        if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                            goto bad;
                        uint32_t lo = (uint32_t)(hexval((char)p[2]) << 12 |
                                                 hexval((char)p[3]) << 8 |
                                                 hexval((char)p[4]) << 4 | hexval((char)p[5]));
                        if (lo < 0xdc00 || lo > 0xdfff)
                            goto bad;
                        p += 6;
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    }
                    if (cp < 0x80) {
                        *d++ = (unsigned char)cp;
                    } else if (cp < 0x800) {
                        *d++ = (unsigned char)(0xc0 | cp >> 6);
                        *d++ = (unsigned char)(0x80 | (cp & 63));
                    } else if (cp < 0x10000) {
                        *d++ = (unsigned char)(0xe0 | cp >> 12);
                        *d++ = (unsigned char)(0x80 | ((cp >> 6) & 63));
                        *d++ = (unsigned char)(0x80 | (cp & 63));
                    } else {
                        *d++ = (unsigned char)(0xf0 | cp >> 18);
                        *d++ = (unsigned char)(0x80 | ((cp >> 12) & 63));
                        *d++ = (unsigned char)(0x80 | ((cp >> 6) & 63));
                        *d++ = (unsigned char)(0x80 | (cp & 63));
                    }
                    break;
                }
                default:
                    goto bad;
                }
            } else if (c < 0x80) {
                *d++ = c;
                p++;
            } else {
                size_t k = utf8_seq(p, (size_t)(end - p));
                if (!k)
                    goto bad;
                memcpy(d, p, k);
                d += k;
                p += k;
            }
        }
    }
    *d = 0;
    *outlen = (size_t)(d - (unsigned char *)out);
    return out;
bad:
    free(out);
    *bad = true;
    return NULL;
}

/* Parses "[f,f,...]" into j->emb. */
static vd_err jr_embedding(jr *j, jp *s, char *errstr, size_t errstr_size) {
    j->emb_n = 0;
    s->p++; /* '[' */
    jp_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return VD_ERR_OK;
    }
    for (;;) {
        jp_ws(s);
        float v;
        size_t k = vd_f32_parse(s->p, (size_t)(s->end - s->p), &v);
        if (!k)
            return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                          "embedding element %zu is not a number", j->emb_n);
        if (!isfinite(v))
            return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FLOAT,
                          "embedding element %zu is NaN or Inf (%.*s)", j->emb_n,
                          (int)(k > 40 ? 40 : k), s->p);
        if (j->emb_n >= j->dim)
            return jr_err(j, errstr, errstr_size, VD_ERR_BAD_DIM,
                          "embedding has more than %zu floats", j->dim);
        j->emb[j->emb_n++] = v;
        s->p += k;
        jp_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return VD_ERR_OK;
        }
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                      "malformed embedding array after element %zu", j->emb_n);
    }
}

/* Splits one line (a JSON object) into j->f. */
static vd_err jr_parse(jr *j, const char *line, size_t n, char *errstr, size_t errstr_size) {
    jp s = {line, line + n};
    j->nf = 0;
    j->emb_n = (size_t)-1; /* no embedding seen */
    jp_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                      n ? "malformed JSON: not an object" : "malformed JSON: empty line");
    s.p++;
    jp_ws(&s);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
    } else {
        for (;;) {
            jp_ws(&s);
            const char *ks, *ke;
            bool kesc;
            if (s.p >= s.end || *s.p != '"' || !jp_string(&s, &ks, &ke, &kesc))
                return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                              "malformed JSON: bad key at byte %zu", (size_t)(s.p - line));
            jp_ws(&s);
            if (s.p >= s.end || *s.p != ':')
                return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                              "malformed JSON: ':' expected at byte %zu", (size_t)(s.p - line));
            s.p++;
            jp_ws(&s);
            if (s.p >= s.end)
                return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                              "malformed JSON: value expected");
            size_t klen = (size_t)(ke - ks);
            for (int i = 0; i < j->nf; i++)
                if (j->f[i].klen == klen && memcmp(j->f[i].k, ks, klen) == 0)
                    return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                                  "duplicate key \"%.*s\"", (int)(klen > 40 ? 40 : klen), ks);
            if (j->nf >= JR_MAX_FIELDS)
                return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "too many fields");
            jfield *f = &j->f[j->nf++];
            /* Keys with escapes never match a known field name. */
            f->k = kesc ? "" : ks;
            f->klen = kesc ? 0 : klen;
            f->esc = false;
            f->vs = s.p;
            char c = *s.p;
            if (c == '"') {
                f->t = JV_STR;
                if (!jp_string(&s, &f->vs, &f->ve, &f->esc))
                    return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                                  "malformed JSON string at byte %zu", (size_t)(f->vs - line));
            } else if (c == '[' && klen == 9 && !kesc && memcmp(ks, "embedding", 9) == 0) {
                f->t = JV_ARR;
                vd_err e = jr_embedding(j, &s, errstr, errstr_size);
                if (e)
                    return e;
                f->ve = s.p;
            } else {
                f->t = c == '[' ? JV_ARR : c == '{' ? JV_OBJ : c == 't' ? JV_TRUE
                     : c == 'f' ? JV_FALSE : c == 'n' ? JV_NULL : JV_NUM;
                if (c == 'N' || c == 'I')
                    return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                                  "malformed JSON: NaN/Infinity are not JSON numbers");
                if (!jp_skip(&s, 0))
                    return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                                  "malformed JSON value at byte %zu", (size_t)(f->vs - line));
                f->ve = s.p;
            }
            jp_ws(&s);
            if (s.p < s.end && *s.p == ',') {
                s.p++;
                continue;
            }
            if (s.p < s.end && *s.p == '}') {
                s.p++;
                break;
            }
            return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                          "malformed JSON: ',' or '}' expected at byte %zu",
                          (size_t)(s.p - line));
        }
    }
    jp_ws(&s);
    if (s.p != s.end)
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_JSON,
                      "malformed JSON: data after the object");
    return VD_ERR_OK;
}

static const jfield *jr_get(const jr *j, const char *key) {
    size_t n = strlen(key);
    for (int i = 0; i < j->nf; i++)
        if (j->f[i].klen == n && memcmp(j->f[i].k, key, n) == 0)
            return &j->f[i];
    return NULL;
}

/* Integer field. required: missing is an error; else *v stays. */
static vd_err jr_int(jr *j, const char *key, bool required, int64_t *v, char *errstr,
                     size_t errstr_size) {
    const jfield *f = jr_get(j, key);
    if (!f) {
        if (required)
            return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "missing field \"%s\"", key);
        return VD_ERR_OK;
    }
    const char *p = f->vs;
    bool neg = false;
    if (f->t != JV_NUM)
        goto bad;
    if (*p == '-') {
        neg = true;
        p++;
    }
    uint64_t u = 0;
    if (p >= f->ve)
        goto bad;
    for (; p < f->ve; p++) {
        if ((unsigned char)(*p - '0') > 9)
            goto bad;
        if (u > (UINT64_C(9223372036854775808) - (uint64_t)(*p - '0')) / 10)
            goto bad;
        u = u * 10 + (uint64_t)(*p - '0');
    }
    if (!neg && u > INT64_MAX)
        goto bad;
    *v = neg ? (int64_t)(0 - u) : (int64_t)u;
    return VD_ERR_OK;
bad:
    return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "field \"%s\" must be an integer",
                  key);
}

/*
 * String field "key" (or "key_b64" when b64_ok): *out is a new string or
 * NULL for JSON null / missing. Text fields may hold NUL only when len is
 * wanted (binary-safe fields).
 */
static vd_err jr_str(jr *j, const char *key, bool required, bool b64_ok, char **out,
                     size_t *len, char *errstr, size_t errstr_size) {
    *out = NULL;
    if (len)
        *len = 0;
    const jfield *f = jr_get(j, key);
    const jfield *fb = NULL;
    if (b64_ok) {
        char k2[48];
        snprintf(k2, sizeof k2, "%s_b64", key);
        fb = jr_get(j, k2);
    }
    if (f && fb)
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD,
                      "both \"%s\" and \"%s_b64\" are present", key, key);
    if (!f && !fb) {
        if (required)
            return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "missing field \"%s\"", key);
        return VD_ERR_OK;
    }
    if (f && f->t == JV_NULL)
        return VD_ERR_OK;
    const jfield *g = f ? f : fb;
    if (g->t != JV_STR)
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "field \"%s%s\" must be a string",
                      key, f ? "" : "_b64");
    size_t n;
    char *s;
    if (fb) {
        if (g->esc)
            return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "invalid base64 in \"%s_b64\"",
                          key);
        size_t rawn = (size_t)(g->ve - g->vs);
        s = malloc(rawn / 4 * 3 + 1);
        if (!s)
            return jr_err(j, errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        long k = vd_base64_decode((unsigned char *)s, g->vs, rawn);
        if (k < 0) {
            free(s);
            return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "invalid base64 in \"%s_b64\"",
                          key);
        }
        n = (size_t)k;
        s[n] = 0;
    } else {
        bool bad;
        s = jstr_decode(g->vs, g->ve, g->esc, &n, &bad);
        if (!s)
            return jr_err(j, errstr, errstr_size, bad ? VD_ERR_BAD_JSON : VD_ERR_NOMEM,
                          bad ? "field \"%s\" is not valid UTF-8 / has a lone surrogate"
                              : "out of memory (field \"%s\")",
                          key);
    }
    if (!len && memchr(s, 0, n)) {
        free(s);
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "field \"%s\" holds a NUL byte",
                      key);
    }
    *out = s;
    if (len)
        *len = n;
    return VD_ERR_OK;
}

static vd_err jr_id(jr *j, const char *key, char **out, char *errstr, size_t errstr_size) {
    vd_err e = jr_str(j, key, true, false, out, NULL, errstr, errstr_size);
    if (e)
        return e;
    if (!*out || !vd_id_valid(*out, strlen(*out))) {
        const jfield *f = jr_get(j, key);
        int n = f ? (int)(f->ve - f->vs) : 0;
        free(*out);
        *out = NULL;
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_ID, "%s '%.*s' is not a valid id", key,
                      n > 140 ? 140 : n, f ? f->vs : "");
    }
    return VD_ERR_OK;
}

/* Record type of the parsed line. */
typedef enum { R_HEADER, R_DOCUMENT, R_CHUNK, R_FILE, R_TRAILER, R_UNKNOWN } rtype;

static vd_err jr_type(jr *j, rtype *t, char *errstr, size_t errstr_size) {
    const jfield *f = jr_get(j, "type");
    if (!f || f->t != JV_STR || f->esc)
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "missing or invalid \"type\"");
    size_t n = (size_t)(f->ve - f->vs);
#define IS(lit) (n == sizeof lit - 1 && memcmp(f->vs, lit, n) == 0)
    *t = IS("header")     ? R_HEADER
       : IS("document") ? R_DOCUMENT
       : IS("chunk")    ? R_CHUNK
       : IS("file")     ? R_FILE
       : IS("trailer")  ? R_TRAILER
                        : R_UNKNOWN;
#undef IS
    if (*t == R_UNKNOWN)
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "unknown record type \"%.*s\"",
                      (int)(n > 40 ? 40 : n), f->vs);
    return VD_ERR_OK;
}

/* Reads and parses the next line. *have=false at EOF. */
static vd_err jr_next_record(jr *j, rtype *t, bool *have, const char **line, size_t *n,
                             char *errstr, size_t errstr_size) {
    vd_err e = jr_line(j, line, n, have, errstr, errstr_size);
    if (e || !*have)
        return e;
    if ((e = jr_parse(j, *line, *n, errstr, errstr_size)))
        return e;
    return jr_type(j, t, errstr, errstr_size);
}

static vd_err jr_doc(jr *j, vd_doc *d, char *errstr, size_t errstr_size) {
    vd_err e;
    memset(d, 0, sizeof *d);
    if ((e = jr_id(j, "id", &d->id, errstr, errstr_size)) ||
        (e = jr_str(j, "title", false, true, &d->title, NULL, errstr, errstr_size)) ||
        (e = jr_str(j, "source", false, true, &d->source, NULL, errstr, errstr_size)) ||
        (e = jr_str(j, "content_type", false, true, &d->content_type, NULL, errstr,
                    errstr_size)) ||
        (e = jr_str(j, "sha256", false, true, &d->sha256, NULL, errstr, errstr_size)) ||
        (e = jr_str(j, "metadata", false, true, &d->metadata, NULL, errstr, errstr_size)) ||
        (e = jr_int(j, "size", false, &d->size, errstr, errstr_size)) ||
        (e = jr_int(j, "created_at", false, &d->created_at, errstr, errstr_size)) ||
        (e = jr_int(j, "updated_at", false, &d->updated_at, errstr, errstr_size)) ||
        (e = jr_int(j, "chunk_count", false, &d->chunk_count, errstr, errstr_size))) {
        vd_doc_clear(d);
        return e;
    }
    j->seen.documents++;
    return VD_ERR_OK;
}

static vd_err jr_chunk(jr *j, vd_docgroup *g, char *errstr, size_t errstr_size) {
    vd_chunk tmp;
    memset(&tmp, 0, sizeof tmp);
    vd_err e;
    if ((e = jr_id(j, "id", &tmp.id, errstr, errstr_size)))
        return e;
    if ((e = jr_id(j, "doc_id", &tmp.doc_id, errstr, errstr_size)))
        goto fail;
    if (strcmp(tmp.doc_id, g->doc.id) != 0) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_REFERENCE,
                   "chunk %s refers to document %s, but it follows document %s", tmp.id,
                   tmp.doc_id, g->doc.id);
        goto fail;
    }
    if ((e = jr_int(j, "seq", true, &tmp.seq, errstr, errstr_size)))
        goto fail;
    if (g->nchunks && tmp.seq < g->chunks[g->nchunks - 1].seq) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD,
                   "chunk %s: seq %lld is out of order (after %lld)", tmp.id,
                   (long long)tmp.seq, (long long)g->chunks[g->nchunks - 1].seq);
        goto fail;
    }
    if ((e = jr_str(j, "text", false, true, &tmp.text, &tmp.text_len, errstr, errstr_size)) ||
        (e = jr_str(j, "metadata", false, true, &tmp.metadata, NULL, errstr, errstr_size)))
        goto fail;
    if (j->emb_n == (size_t)-1) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "chunk %s: missing \"embedding\"",
                   tmp.id);
        goto fail;
    }
    if (j->emb_n != j->dim) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_BAD_DIM,
                   "chunk %s: embedding has %zu floats, the header says dim %zu", tmp.id,
                   j->emb_n, j->dim);
        goto fail;
    }
    if ((int64_t)g->nchunks >= j->lim.max_chunks_per_doc) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_TOO_LARGE,
                   "document %s has more than %lld chunks", g->doc.id,
                   (long long)j->lim.max_chunks_per_doc);
        goto fail;
    }
    tmp.dim = j->dim;
    tmp.embedding = malloc(j->dim ? j->dim * sizeof(float) : 1);
    if (!tmp.embedding) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (j->dim)
        memcpy(tmp.embedding, j->emb, j->dim * sizeof(float));
    vd_chunk *c = vd_docgroup_add_chunk(g);
    if (!c) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *c = tmp;
    j->seen.chunks++;
    return VD_ERR_OK;
fail:
    vd_chunk_clear(&tmp);
    return e;
}

static vd_err jr_file(jr *j, vd_docgroup *g, char *errstr, size_t errstr_size) {
    char *doc_id = NULL, *sha = NULL, *data = NULL;
    size_t len = 0;
    int64_t size = -1;
    vd_err e;
    if ((e = jr_id(j, "doc_id", &doc_id, errstr, errstr_size)))
        return e;
    if (strcmp(doc_id, g->doc.id) != 0) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_REFERENCE,
                   "file of document %s follows document %s", doc_id, g->doc.id);
        goto out;
    }
    if (g->has_file) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "second file for document %s",
                   doc_id);
        goto out;
    }
    if ((e = jr_int(j, "size", true, &size, errstr, errstr_size)) ||
        (e = jr_str(j, "sha256", true, false, &sha, NULL, errstr, errstr_size)))
        goto out;
    {
        const jfield *f = jr_get(j, "data");
        if (!f || f->t != JV_STR || f->esc) {
            e = jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD,
                       "file of %s: missing or invalid \"data\"", doc_id);
            goto out;
        }
        size_t rawn = (size_t)(f->ve - f->vs);
        data = malloc(rawn / 4 * 3 + 1);
        if (!data) {
            e = jr_err(j, errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
            goto out;
        }
        long k = vd_base64_decode((unsigned char *)data, f->vs, rawn);
        if (k < 0) {
            e = jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "file of %s: invalid base64",
                       doc_id);
            goto out;
        }
        len = (size_t)k;
    }
    char hex[65];
    vd_sha256_hex(data, len, hex);
    if (!sha || strcmp(hex, sha) != 0 || (int64_t)len != size) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_CHECKSUM,
                   "file of %s: data (%zu bytes, SHA-256 %s) does not match the record "
                   "(%lld bytes, %.64s)",
                   doc_id, len, hex, (long long)size, sha ? sha : "null");
        goto out;
    }
    if ((g->doc.sha256 && g->doc.sha256[0] && strcmp(g->doc.sha256, hex) != 0) ||
        g->doc.size != size) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_CHECKSUM,
                   "file of %s (%zu bytes, SHA-256 %s) does not match its document "
                   "(%lld bytes, %.64s)",
                   doc_id, len, hex, (long long)g->doc.size,
                   g->doc.sha256 ? g->doc.sha256 : "null");
        goto out;
    }
    g->has_file = true;
    g->file.doc_id = doc_id;
    g->file.data = (unsigned char *)data;
    g->file.len = len;
    doc_id = NULL;
    data = NULL;
    j->seen.files++;
out:
    free(doc_id);
    free(sha);
    free(data);
    return e;
}

/* Checks the trailer line (already parsed) and that nothing follows. */
static vd_err jr_trailer(jr *j, char *errstr, size_t errstr_size) {
    int64_t docs = 0, chunks = 0, files = 0;
    char *sha = NULL;
    vd_err e;
    if ((e = jr_int(j, "documents", true, &docs, errstr, errstr_size)) ||
        (e = jr_int(j, "chunks", true, &chunks, errstr, errstr_size)) ||
        (e = jr_int(j, "files", true, &files, errstr, errstr_size)) ||
        (e = jr_str(j, "sha256", true, false, &sha, NULL, errstr, errstr_size)))
        return e;
    char hex[65];
    vd_sha256_final_hex(j->sha, hex);
    if (docs != j->seen.documents || chunks != j->seen.chunks || files != j->seen.files) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_CHECKSUM,
                   "trailer counts (%lld documents, %lld chunks, %lld files) do not match the "
                   "records (%lld, %lld, %lld)",
                   (long long)docs, (long long)chunks, (long long)files,
                   (long long)j->seen.documents, (long long)j->seen.chunks,
                   (long long)j->seen.files);
    } else if (!sha || strcmp(sha, hex) != 0) {
        e = jr_err(j, errstr, errstr_size, VD_ERR_CHECKSUM,
                   "trailer SHA-256 %.64s does not match the content's %s", sha ? sha : "null",
                   hex);
    }
    free(sha);
    if (e)
        return e;
    const char *line;
    size_t n;
    bool have;
    if ((e = jr_line(j, &line, &n, &have, errstr, errstr_size)))
        return e;
    if (have)
        return jr_err(j, errstr, errstr_size, VD_ERR_FORMAT, "data after the trailer");
    j->finished = true;
    return VD_ERR_OK;
}

static vd_err jr_next(vd_reader *r, vd_docgroup *g, bool *done, char *errstr,
                      size_t errstr_size) {
    jr *j = r->impl;
    *done = false;
    if (j->sticky)
        return vd_seterr(errstr, errstr_size, j->sticky, "reader already failed");
    if (j->finished) {
        *done = true;
        return VD_ERR_OK;
    }
    memset(g, 0, sizeof *g);
    rtype t;
    bool have;
    const char *line;
    size_t n;
    vd_err e;
    if (!j->have_pending) {
        if ((e = jr_next_record(j, &t, &have, &line, &n, errstr, errstr_size)))
            return e;
        if (!have)
            return jr_err(j, errstr, errstr_size, VD_ERR_TRUNCATED,
                          "no trailer at the end (truncated artifact)");
        if (t == R_TRAILER) {
            if ((e = jr_trailer(j, errstr, errstr_size)))
                return e;
            *done = true;
            return VD_ERR_OK;
        }
        if (t != R_DOCUMENT)
            return jr_err(j, errstr, errstr_size, t == R_HEADER ? VD_ERR_BAD_FIELD
                                                                : VD_ERR_REFERENCE,
                          t == R_HEADER ? "a second header" : "record before any document");
        vd_sha256_update(j->sha, line, n + 1);
        if ((e = jr_doc(j, &j->pending, errstr, errstr_size)))
            return e;
    }
    g->doc = j->pending;
    memset(&j->pending, 0, sizeof j->pending);
    j->have_pending = false;
    for (;;) {
        if ((e = jr_next_record(j, &t, &have, &line, &n, errstr, errstr_size)))
            goto fail;
        if (!have) {
            e = jr_err(j, errstr, errstr_size, VD_ERR_TRUNCATED,
                       "no trailer at the end (truncated artifact)");
            goto fail;
        }
        if (t == R_TRAILER) {
            if ((e = jr_trailer(j, errstr, errstr_size)))
                goto fail;
            return VD_ERR_OK; /* the next call reports done */
        }
        vd_sha256_update(j->sha, line, n + 1);
        switch (t) {
        case R_DOCUMENT:
            if ((e = jr_doc(j, &j->pending, errstr, errstr_size)))
                goto fail;
            j->have_pending = true;
            return VD_ERR_OK;
        case R_CHUNK:
            if (g->has_file) {
                e = jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD,
                           "chunk after the file record of document %s", g->doc.id);
                goto fail;
            }
            if ((e = jr_chunk(j, g, errstr, errstr_size)))
                goto fail;
            break;
        case R_FILE:
            if ((e = jr_file(j, g, errstr, errstr_size)))
                goto fail;
            break;
        default:
            e = jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "unexpected header record");
            goto fail;
        }
    }
fail:
    vd_docgroup_clear(g);
    return e;
}

static int64_t jr_bytes(const vd_reader *r) {
    const jr *j = r->impl;
    if (j->win_borrowed)
        return (int64_t)j->wstart;
    if (j->gz)
        return j->in_bytes - (int64_t)j->zs.avail_in;
    return j->in_bytes - (int64_t)(j->wend - j->wstart);
}

static void jr_destroy(vd_reader *r) {
    jr *j = r->impl;
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    if (j->zinit)
        inflateEnd(&j->zs);
    free(j->in);
    if (!j->win_borrowed)
        free(j->win);
    free(j->emb);
    vd_doc_clear(&j->pending);
    vd_sha256_destroy(j->sha);
    free(j);
    r->impl = NULL;
}

static const vd__reader_ops jr_ops = {jr_next, jr_bytes, jr_destroy};

static vd_err jr_header(vd_reader *r, jr *j, char *errstr, size_t errstr_size) {
    rtype t;
    bool have;
    const char *line;
    size_t n;
    vd_err e = jr_line(j, &line, &n, &have, errstr, errstr_size);
    if (e)
        return e;
    if (!have)
        return jr_err(j, errstr, errstr_size, VD_ERR_TRUNCATED, "empty artifact (no header)");
    if ((e = jr_parse(j, line, n, errstr, errstr_size)))
        return e == VD_ERR_BAD_JSON ? jr_err(j, errstr, errstr_size, VD_ERR_FORMAT,
                                             "not a vecdump JSONL artifact (malformed header)")
                                    : e;
    if ((e = jr_type(j, &t, errstr, errstr_size)) || t != R_HEADER)
        return jr_err(j, errstr, errstr_size, VD_ERR_FORMAT,
                      "not a vecdump JSONL artifact (first record is not a header)");
    vd_sha256_update(j->sha, line, n + 1);
    const jfield *f = jr_get(j, "format");
    if (!f || f->t != JV_STR || f->ve - f->vs != 13 || memcmp(f->vs, "vecdump-jsonl", 13) != 0)
        return jr_err(j, errstr, errstr_size, VD_ERR_FORMAT,
                      "header \"format\" is not \"vecdump-jsonl\"");
    int64_t fv = 0, sv = 0, dim = -1, created = 0, meta_created = 0;
    if ((e = jr_int(j, "format_version", true, &fv, errstr, errstr_size)))
        return e;
    if (fv != 1)
        return jr_err(j, errstr, errstr_size, VD_ERR_FORMAT, "unsupported format_version %lld",
                      (long long)fv);
    if ((e = jr_int(j, "schema_version", true, &sv, errstr, errstr_size)) ||
        (e = jr_int(j, "dim", true, &dim, errstr, errstr_size)) ||
        (e = jr_int(j, "created_at", false, &created, errstr, errstr_size)) ||
        (e = jr_int(j, "meta_created_at", false, &meta_created, errstr, errstr_size)))
        return e;
    if (sv != 1)
        return jr_err(j, errstr, errstr_size, VD_ERR_FORMAT, "unsupported schema_version %lld",
                      (long long)sv);
    if (dim < 0 || dim > 65536)
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD, "header dim %lld is invalid",
                      (long long)dim);
    char *tv = NULL, *task = NULL, *ns = NULL;
    if ((e = jr_str(j, "tool_version", false, false, &tv, NULL, errstr, errstr_size)))
        return e;
    r->info.tool_version = tv;
    if ((e = jr_str(j, "task_id", false, false, &task, NULL, errstr, errstr_size)))
        return e;
    r->info.task_id = task;
    if ((e = jr_str(j, "namespace", false, false, &ns, NULL, errstr, errstr_size)))
        return e;
    r->info.ns = ns;
    if ((e = jr_str(j, "model", false, true, &r->info.meta.model, NULL, errstr, errstr_size)) ||
        (e = jr_str(j, "distance", false, true, &r->info.meta.distance, NULL, errstr,
                    errstr_size)))
        return e;
    const jfield *inc = jr_get(j, "include_files");
    if (inc && inc->t != JV_TRUE && inc->t != JV_FALSE)
        return jr_err(j, errstr, errstr_size, VD_ERR_BAD_FIELD,
                      "header \"include_files\" must be a boolean");
    r->info.include_files = inc && inc->t == JV_TRUE;
    r->info.compress = j->gz;
    r->info.created_at = created;
    r->info.meta.schema_version = (int)sv;
    r->info.meta.dim = (int)dim;
    r->info.meta.created_at = meta_created;
    j->dim = (size_t)dim;
    j->emb = malloc((j->dim ? j->dim : 1) * sizeof(float));
    if (!j->emb)
        return jr_err(j, errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
    return VD_ERR_OK;
}

vd_err vd__jsonl_reader_open(vd_reader *r, const char *path, const void *data, size_t len,
                             const vd_limits *lim, char *errstr, size_t errstr_size) {
    jr *j = calloc(1, sizeof *j);
    if (!j)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "jsonl reader: out of memory");
    j->fd = -1;
    r->ops = &jr_ops;
    r->impl = j;
    r->fmt = VD_FMT_JSONL;
    j->lim = *lim;
    j->sha = vd_sha256_new();
    if (!j->sha)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "jsonl reader: out of memory");
    unsigned char head[2] = {0, 0};
    if (path) {
        j->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (j->fd < 0)
            return vd_seterr(errstr, errstr_size, errno == ENOENT ? VD_ERR_NOT_FOUND : VD_ERR_IO,
                             "open %s: %s", path, strerror(errno));
        struct stat st;
        if (fstat(j->fd, &st) != 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_IO, "stat %s: %s", path,
                             strerror(errno));
        if (st.st_size > lim->max_artifact_bytes)
            return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                             "%s: %lld bytes exceeds the artifact limit %lld", path,
                             (long long)st.st_size, (long long)lim->max_artifact_bytes);
        ssize_t k;
        do
            k = pread(j->fd, head, 2, 0);
        while (k < 0 && errno == EINTR);
        if (k < 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_IO, "read %s: %s", path,
                             strerror(errno));
    } else {
        if ((int64_t)len > lim->max_artifact_bytes)
            return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                             "%zu bytes exceeds the artifact limit %lld", len,
                             (long long)lim->max_artifact_bytes);
        j->mem = data;
        j->mem_len = len;
        memcpy(head, data, len < 2 ? len : 2);
    }
    j->gz = head[0] == 0x1f && head[1] == 0x8b;
    if (j->gz) {
        if (inflateInit2(&j->zs, 16 + MAX_WBITS) != Z_OK)
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "inflateInit2 failed");
        j->zinit = true;
        if (!j->mem && !(j->in = malloc(JR_READ_SIZE)))
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "jsonl reader: out of memory");
    }
    if (j->mem && !j->gz) {
        /* Lines are parsed in place in the caller's buffer. */
        j->win = (unsigned char *)(uintptr_t)j->mem;
        j->wcap = j->wend = j->mem_len;
        j->in_bytes = (int64_t)j->mem_len;
        j->win_borrowed = true;
        j->eof = true;
    } else {
        j->wcap = JR_WIN_INIT;
        j->win = malloc(j->wcap);
        if (!j->win)
            return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "jsonl reader: out of memory");
    }
    return jr_header(r, j, errstr, errstr_size);
}
