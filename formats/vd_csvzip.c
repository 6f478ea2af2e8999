/*
 * vd_csvzip.c - the CSV-in-ZIP artifact (SPEC §5), on libzip and jansson.
 *
 * Members:
 *   documents.csv  id,title,source,content_type,size,sha256,created_at,
 *                  updated_at,chunk_count,metadata
 *   chunks.csv     id,doc_id,seq,text,embedding,metadata,text_b64
 *   files/DOC      the original file of document DOC (with include_files)
 *   manifest.json  format "vecdump-csv", format_version 1, the artifact info,
 *                  counts and the SHA-256 and size of every other member;
 *                  added last (it needs the counts). Readers find members by
 *                  name, never by position.
 *
 * CSV is RFC 4180: CRLF line ends, a field is quoted when it holds a comma,
 * a quote, CR or LF, and quotes inside are doubled. The embedding column is
 * pgvector's text form "[0.1,0.2,...]" (shortest round-trip decimals), so
 * `COPY t FROM ... CSV HEADER` loads chunks.csv into a pgvector table.
 *
 * Binary-safe chunk text: a text that is valid UTF-8 and holds no NUL byte
 * goes into the `text` column and `text_b64` is empty. Any other text (NUL
 * bytes, invalid UTF-8) leaves `text` empty and is written, base64 encoded
 * (RFC 4648, with padding), into `text_b64`. Such a text is never empty, so
 * the rule is reversible: text_b64 non-empty <=> the text is binary.
 *
 * Chunks are written grouped by document, in the order of the documents, and
 * the reader relies on it: it streams documents.csv and chunks.csv side by
 * side (two open members) and yields one vd_docgroup at a time.
 *
 * Bounded memory: libzip buffers sources until zip_close, so the writer
 * streams the CSV members to temp files in a private temp directory next to
 * the artifact (and every files/DOC payload into one spill file), hashing as
 * it goes; then the temp directory is removed. The two CSV members are
 * hashed, CRC-32'd and raw-deflated (level 1) while they are written, on a
 * second thread (the rows of the next block are formatted meanwhile), so
 * their temp files hold the deflated bytes: at close a source that says so
 * (method, CRC and sizes in its stat) lets libzip copy them into the archive
 * without compressing again. The files/DOC payloads are deflated by libzip
 * at close.
 */
#include "formats_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zip.h>
#include <zlib.h>

#define CSVZIP_FORMAT "vecdump-csv"
#define CSVZIP_FORMAT_VERSION 1
#define M_MANIFEST "manifest.json"
#define M_DOCS "documents.csv"
#define M_CHUNKS "chunks.csv"
#define M_FILES "files/"

static const char DOCS_HEADER[] =
    "id,title,source,content_type,size,sha256,created_at,updated_at,chunk_count,metadata";
static const char CHUNKS_HEADER[] = "id,doc_id,seq,text,embedding,metadata,text_b64";
#define DOC_NCOLS 10
#define CHUNK_NCOLS 7
#define MAX_NCOLS 10

/* The ratio limit applies once a member has inflated more than this. */
#define RATIO_FLOOR ((int64_t)1 << 20)
#define READ_CHUNK (64 * 1024)
#define OUT_BLOCK ((size_t)1 << 20) /* CSV bytes handed to the deflate thread at once */
#define OUT_ZBUF ((size_t)256 * 1024)
#define OUT_LEVEL 1
#define MAX_DIM 65536

/* ---- shared helpers ---------------------------------------------------- */

static vd_err b64_append(vd_buf *b, const unsigned char *p, size_t n) {
    vd_err e = vd_buf_reserve(b, VD_BASE64_LEN(n));
    if (e)
        return e;
    b->len = (size_t)(vd_base64_encode(b->data + b->len, p, n) - b->data);
    b->data[b->len] = 0;
    return VD_ERR_OK;
}

/* Strict padded base64 -> malloc'd bytes (NUL-terminated). false if invalid. */
static bool b64_decode(const char *s, size_t n, char **out, size_t *outlen) {
    unsigned char *o = malloc(n / 4 * 3 + 1);
    if (!o)
        return false;
    long len = vd_base64_decode(o, s, n);
    if (len < 0) {
        free(o);
        return false;
    }
    o[len] = 0;
    *out = (char *)o;
    *outlen = (size_t)len;
    return true;
}

/* A ZIP member name for a document's file; ids "." and ".." cannot be one. */
static bool file_member_id_ok(const char *id, size_t n) {
    return vd_id_valid(id, n) && !(n == 1 && id[0] == '.') &&
           !(n == 2 && id[0] == '.' && id[1] == '.');
}

static vd_err zip_code_err(int zep, int sys, bool disk) {
    switch (zep) {
    case ZIP_ER_MEMORY:
        return VD_ERR_NOMEM;
    case ZIP_ER_CRC:
        return VD_ERR_CHECKSUM;
    case ZIP_ER_EXISTS:
        return VD_ERR_CONFLICT;
    case ZIP_ER_WRITE:
    case ZIP_ER_TMPOPEN:
    case ZIP_ER_RENAME:
    case ZIP_ER_CLOSE:
    case ZIP_ER_REMOVE:
        return sys == ENOSPC ? VD_ERR_NOSPACE : VD_ERR_IO;
    case ZIP_ER_OPEN:
    case ZIP_ER_READ:
    case ZIP_ER_SEEK:
        return disk ? VD_ERR_IO : VD_ERR_ZIP;
    default:
        return VD_ERR_ZIP;
    }
}

/* ====================================================================== */
/* writer                                                                 */
/* ====================================================================== */

/*
 * One CSV member being written. The caller's thread appends rows to pend and
 * counts size; the deflate thread alone touches sha, crc, zs, zbuf, fp and
 * csize once a block has been handed over (until the thread is idle again).
 */
typedef struct csv_out {
    FILE *fp;                /* the member's raw deflate stream */
    char *path;
    vd_sha256 *sha;          /* over the member's (uncompressed) bytes */
    int64_t size;            /* uncompressed bytes, pend included */
    vd_buf pend;             /* bytes not yet handed to the deflate thread */
    uLong crc;
    z_stream zs;
    bool zinit;
    unsigned char *zbuf;
    int64_t csize;           /* deflated bytes written to fp */
} csv_out;

typedef struct csvzip_writer {
    char *path;
    char *tmpdir;
    zip_t *za;
    bool include_files;
    json_t *info;            /* artifact info, copied into the manifest */
    csv_out docs, chunks;
    /* The deflate thread: one block (full) of one member (job) at a time. */
    bool thr_on;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    vd_buf full;
    csv_out *job;
    bool job_final, quit;
    vd_err thr_err;          /* the thread's first error (under mu) */
    char thr_errstr[256];
    FILE *spill;             /* concatenated files/DOC payloads */
    char *spill_path;
    int64_t spill_size;
    vd_sha256 *fsha;
    vd_member_sum *members;  /* [0] documents.csv, [1] chunks.csv, files..., manifest */
    int64_t *file_off;       /* spill offset of members[i] (files only) */
    size_t nmembers, members_cap;
    vd_counts counts;
    vd_buf row;
    char *manifest_text;
    bool zip_written;        /* the artifact exists at path */
    bool closed;             /* close succeeded: keep the artifact */
} csvzip_writer;

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static void csv_out_discard(csv_out *o) {
    if (o->fp)
        fclose(o->fp);
    o->fp = NULL;
    if (o->zinit)
        deflateEnd(&o->zs);
    o->zinit = false;
    free(o->zbuf);
    o->zbuf = NULL;
    vd_buf_free(&o->pend);
    if (o->path) {
        unlink(o->path);
        free(o->path);
        o->path = NULL;
    }
    vd_sha256_destroy(o->sha);
    o->sha = NULL;
}

/* ---- the deflate thread ------------------------------------------------ */

/* Hashes, CRCs and deflates n bytes of o (finishing its stream when final)
 * into its temp file. Runs on the deflate thread. */
static vd_err out_deflate(csv_out *o, const void *p, size_t n, bool final, char *errstr,
                          size_t errstr_size) {
    vd_sha256_update(o->sha, p, n);
    o->crc = crc32_z(o->crc, p, n);
    const unsigned char *in = p;
    for (;;) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        int flush = final && k == n ? Z_FINISH : Z_NO_FLUSH;
        o->zs.next_in = (Bytef *)(uintptr_t)in;
        o->zs.avail_in = k;
        int rc;
        do {
            o->zs.next_out = o->zbuf;
            o->zs.avail_out = (uInt)OUT_ZBUF;
            rc = deflate(&o->zs, flush);
            if (rc == Z_STREAM_ERROR)
                return vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                                 "csv: deflate %s: stream error", o->path);
            size_t have = OUT_ZBUF - o->zs.avail_out;
            if (have && fwrite(o->zbuf, 1, have, o->fp) != have)
                return vd_seterr(errstr, errstr_size,
                                 errno == ENOSPC ? VD_ERR_NOSPACE : VD_ERR_IO,
                                 "csv: write %s: %s", o->path, strerror(errno));
            o->csize += (int64_t)have;
        } while (o->zs.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
        in += k;
        n -= k;
        if (!n)
            return VD_ERR_OK;
    }
}

static void *deflate_thread(void *arg) {
    csvzip_writer *z = arg;
    char es[256];
    pthread_mutex_lock(&z->mu);
    for (;;) {
        while (!z->job && !z->quit)
            pthread_cond_wait(&z->cv, &z->mu);
        if (!z->job)
            break; /* quit */
        bool skip = z->thr_err != VD_ERR_OK;
        pthread_mutex_unlock(&z->mu);
        vd_err e = skip ? VD_ERR_OK
                        : out_deflate(z->job, z->full.data, z->full.len, z->job_final, es,
                                      sizeof es);
        pthread_mutex_lock(&z->mu);
        if (e && !z->thr_err) {
            z->thr_err = e;
            memcpy(z->thr_errstr, es, sizeof es);
        }
        vd_buf_reset(&z->full);
        z->job = NULL;
        pthread_cond_broadcast(&z->cv);
    }
    pthread_mutex_unlock(&z->mu);
    return NULL;
}

/* Waits until the thread is idle; @returns its first error. Caller holds mu. */
static vd_err deflate_wait_locked(csvzip_writer *z, char *errstr, size_t errstr_size) {
    while (z->job)
        pthread_cond_wait(&z->cv, &z->mu);
    if (z->thr_err)
        return vd_seterr(errstr, errstr_size, z->thr_err, "%s", z->thr_errstr);
    return VD_ERR_OK;
}

/* Hands o's pending bytes to the thread (final: and ends its stream). */
static vd_err out_hand(csvzip_writer *z, csv_out *o, bool final, char *errstr,
                       size_t errstr_size) {
    pthread_mutex_lock(&z->mu);
    vd_err e = deflate_wait_locked(z, errstr, errstr_size);
    if (!e) {
        vd_buf t = z->full;
        z->full = o->pend;
        o->pend = t;
        z->job = o;
        z->job_final = final;
        pthread_cond_broadcast(&z->cv);
    }
    pthread_mutex_unlock(&z->mu);
    return e;
}

static void deflate_thread_stop(csvzip_writer *z) {
    if (!z->thr_on)
        return;
    pthread_mutex_lock(&z->mu);
    z->quit = true;
    pthread_cond_broadcast(&z->cv);
    pthread_mutex_unlock(&z->mu);
    pthread_join(z->thr, NULL);
    pthread_mutex_destroy(&z->mu);
    pthread_cond_destroy(&z->cv);
    z->thr_on = false;
}

static void csvzip_remove_temps(csvzip_writer *z) {
    csv_out_discard(&z->docs);
    csv_out_discard(&z->chunks);
    if (z->spill)
        fclose(z->spill);
    z->spill = NULL;
    if (z->spill_path) {
        unlink(z->spill_path);
        free(z->spill_path);
        z->spill_path = NULL;
    }
    if (z->tmpdir) {
        rmdir(z->tmpdir);
        free(z->tmpdir);
        z->tmpdir = NULL;
    }
}

static void csvzip_writer_destroy(vd_writer *w) {
    csvzip_writer *z = w->impl;
    if (!z)
        return;
    if (z->za)
        zip_discard(z->za);
    deflate_thread_stop(z); /* before the members it may be deflating */
    csvzip_remove_temps(z);
    vd_buf_free(&z->full);
    if (z->zip_written && !z->closed)
        unlink(z->path);
    json_decref(z->info);
    vd_sha256_destroy(z->fsha);
    free(z->members);
    free(z->file_off);
    vd_buf_free(&z->row);
    free(z->manifest_text);
    free(z->path);
    free(z);
    w->impl = NULL;
}

static vd_err out_open(csvzip_writer *z, csv_out *o, const char *name, const char *header,
                       char *errstr, size_t errstr_size) {
    vd_buf_init(&o->pend, 0);
    o->path = path_join(z->tmpdir, name);
    o->sha = vd_sha256_new();
    o->zbuf = malloc(OUT_ZBUF);
    if (!o->path || !o->sha || !o->zbuf || vd_buf_reserve(&o->pend, OUT_BLOCK + 4096))
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    o->crc = crc32_z(0, NULL, 0);
    int rc = deflateInit2(&o->zs, OUT_LEVEL, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK)
        return vd_seterr(errstr, errstr_size, rc == Z_MEM_ERROR ? VD_ERR_NOMEM : VD_ERR_INTERNAL,
                         "csv: deflateInit2 failed (%d)", rc);
    o->zinit = true;
    o->fp = fopen(o->path, "wbx");
    if (!o->fp)
        return vd_seterr(errstr, errstr_size, VD_ERR_IO, "csv: create temp %s: %s", o->path,
                         strerror(errno));
    setvbuf(o->fp, NULL, _IOFBF, 256 * 1024);
    size_t n = strlen(header);
    vd_err e;
    if ((e = vd_buf_append(&o->pend, header, n)) || (e = vd_buf_append(&o->pend, "\r\n", 2)))
        return vd_seterr(errstr, errstr_size, e, "csv: out of memory");
    o->size = (int64_t)n + 2;
    return VD_ERR_OK;
}

static vd_err out_write(csvzip_writer *z, csv_out *o, const void *p, size_t n, char *errstr,
                        size_t errstr_size) {
    vd_err e = vd_buf_append(&o->pend, p, n);
    if (e)
        return vd_seterr(errstr, errstr_size, e, "csv: out of memory");
    o->size += (int64_t)n;
    if (o->pend.len >= OUT_BLOCK)
        return out_hand(z, o, false, errstr, errstr_size);
    return VD_ERR_OK;
}

static vd_err member_add(csvzip_writer *z, const char *name, int64_t off) {
    if (z->nmembers == z->members_cap) {
        size_t ncap = z->members_cap ? z->members_cap * 2 : 16;
        vd_member_sum *m = realloc(z->members, ncap * sizeof *m);
        if (!m)
            return VD_ERR_NOMEM;
        z->members = m;
        int64_t *o = realloc(z->file_off, ncap * sizeof *o);
        if (!o)
            return VD_ERR_NOMEM;
        z->file_off = o;
        z->members_cap = ncap;
    }
    vd_member_sum *m = &z->members[z->nmembers];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    z->file_off[z->nmembers] = off;
    z->nmembers++;
    return VD_ERR_OK;
}

static json_t *info_json(const vd_artifact_info *info) {
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "format", json_string(CSVZIP_FORMAT));
    json_object_set_new(o, "format_version", json_integer(CSVZIP_FORMAT_VERSION));
    json_object_set_new(o, "tool_version", json_string(info->tool_version ? info->tool_version : ""));
    json_object_set_new(o, "task_id", json_string(info->task_id ? info->task_id : ""));
    json_object_set_new(o, "namespace", json_string(info->ns ? info->ns : ""));
    json_object_set_new(o, "created_at", json_integer(info->created_at));
    json_object_set_new(o, "schema_version", json_integer(info->meta.schema_version));
    json_object_set_new(o, "dim", json_integer(info->meta.dim));
    json_object_set_new(o, "model", json_string(info->meta.model ? info->meta.model : ""));
    json_object_set_new(o, "distance", json_string(info->meta.distance ? info->meta.distance : ""));
    json_object_set_new(o, "meta_created_at", json_integer(info->meta.created_at));
    json_object_set_new(o, "include_files", json_boolean(info->include_files));
    json_object_set_new(o, "text_encoding",
                        json_string("text when UTF-8 without NUL, else base64 in text_b64"));
    return o;
}

static vd_err csvzip_put(vd_writer *w, const vd_docgroup *g, char *errstr, size_t errstr_size);
static int64_t csvzip_bytes(const vd_writer *w);
static vd_err csvzip_close(vd_writer *w, vd_writer_result *res, char *errstr, size_t errstr_size);

static const vd__writer_ops csvzip_writer_ops = {
    csvzip_put,
    csvzip_bytes,
    csvzip_close,
    csvzip_writer_destroy,
};

vd_err vd__csvzip_writer_open(vd_writer *w, const char *path, const vd_artifact_info *info,
                              char *errstr, size_t errstr_size) {
    vd_err e = VD_ERR_OK;
    if (!path || !info)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "csv: no path or info");
    if (info->meta.dim < 0 || info->meta.dim > MAX_DIM)
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM, "csv: dim %d out of range",
                         info->meta.dim);
    csvzip_writer *z = calloc(1, sizeof *z);
    if (!z)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    w->impl = z;
    w->ops = &csvzip_writer_ops;
    vd_buf_init(&z->row, 0);
    z->include_files = info->include_files;
    z->path = vd_strdup(path);
    z->info = info_json(info);
    z->fsha = vd_sha256_new();
    if (!z->path || !z->info || !z->fsha) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
        goto fail;
    }

    struct stat st;
    if (lstat(path, &st) == 0) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_CONFLICT, "csv: %s already exists", path);
        goto fail;
    }
    int zerr = 0;
    z->za = zip_open(path, ZIP_CREATE | ZIP_EXCL, &zerr);
    if (!z->za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        e = vd_seterr(errstr, errstr_size, zip_code_err(zerr, errno, true), "csv: zip_open %s: %s",
                      path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        goto fail;
    }

    /* A private temp directory next to the artifact (same volume). */
    {
        const char *slash = strrchr(path, '/');
        const char *dir = slash ? path : ".";
        int dl = slash ? (int)(slash - path) : 1;
        const char *base = slash ? slash + 1 : path;
        size_t need = (size_t)dl + strlen(base) + 32;
        z->tmpdir = malloc(need);
        if (!z->tmpdir) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
            goto fail;
        }
        snprintf(z->tmpdir, need, "%.*s/.%s.tmpXXXXXX", dl, dir, base);
        if (!mkdtemp(z->tmpdir)) {
            e = vd_seterr(errstr, errstr_size, errno == ENOSPC ? VD_ERR_NOSPACE : VD_ERR_IO,
                          "csv: mkdtemp %s: %s", z->tmpdir, strerror(errno));
            free(z->tmpdir);
            z->tmpdir = NULL;
            goto fail;
        }
    }
    vd_buf_init(&z->full, 0);
    if (vd_buf_reserve(&z->full, OUT_BLOCK + 4096)) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
        goto fail;
    }
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->cv, NULL);
    int trc = pthread_create(&z->thr, NULL, deflate_thread, z);
    if (trc != 0) {
        pthread_mutex_destroy(&z->mu);
        pthread_cond_destroy(&z->cv);
        e = vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL,
                      "csv: cannot start the deflate thread: %s", strerror(trc));
        goto fail;
    }
    z->thr_on = true;
    if ((e = out_open(z, &z->docs, M_DOCS, DOCS_HEADER, errstr, errstr_size)) ||
        (e = out_open(z, &z->chunks, M_CHUNKS, CHUNKS_HEADER, errstr, errstr_size)))
        goto fail;
    if ((e = member_add(z, M_DOCS, 0)) || (e = member_add(z, M_CHUNKS, 0))) {
        vd_seterr(errstr, errstr_size, e, "csv: out of memory");
        goto fail;
    }
    if (z->include_files) {
        z->spill_path = path_join(z->tmpdir, "files.bin");
        if (!z->spill_path) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
            goto fail;
        }
        z->spill = fopen(z->spill_path, "wbx");
        if (!z->spill) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_IO, "csv: create %s: %s", z->spill_path,
                          strerror(errno));
            goto fail;
        }
    }
    return VD_ERR_OK;

fail:
    csvzip_writer_destroy(w);
    w->ops = NULL;
    return e;
}

/* Appends one CSV field (quoted when needed) preceded by a comma unless first. */
static vd_err put_field(vd_buf *b, const char *s, size_t n, bool first) {
    vd_err e;
    if (!first && (e = vd_buf_putc(b, ',')))
        return e;
    bool quote = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ',' || c == '"' || c == '\r' || c == '\n') {
            quote = true;
            break;
        }
    }
    if (!quote)
        return vd_buf_append(b, s, n);
    if ((e = vd_buf_putc(b, '"')))
        return e;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            if ((e = vd_buf_append(b, s + start, i + 1 - start)))
                return e;
            start = i; /* the quote is written again: doubled */
        }
    }
    if ((e = vd_buf_append(b, s + start, n - start)))
        return e;
    return vd_buf_putc(b, '"');
}

static vd_err put_str(vd_buf *b, const char *s, bool first) {
    return put_field(b, s ? s : "", s ? strlen(s) : 0, first);
}

static vd_err put_i64(vd_buf *b, int64_t v) { return vd_buf_printf(b, ",%" PRId64, v); }

static vd_err put_embedding(vd_buf *b, const float *v, size_t n) {
    /* Always quoted: it holds commas when dim > 1. */
    vd_err e = vd_buf_reserve(b, n * (VD_F32_MAXLEN + 1) + 8);
    if (e)
        return e;
    char *o = b->data + b->len;
    *o++ = ',';
    *o++ = '"';
    *o++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *o++ = ',';
        o += vd_f32_format(v[i], o);
    }
    *o++ = ']';
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = 0;
    return VD_ERR_OK;
}

static vd_err csvzip_put(vd_writer *w, const vd_docgroup *g, char *errstr, size_t errstr_size) {
    csvzip_writer *z = w->impl;
    vd_buf *b = &z->row;
    vd_err e;
    const vd_doc *d = &g->doc;
    if (!z || z->closed || !z->docs.fp)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "csv: writer is closed");

    vd_buf_reset(b);
    if ((e = put_str(b, d->id, true)) || (e = put_str(b, d->title, false)) ||
        (e = put_str(b, d->source, false)) || (e = put_str(b, d->content_type, false)) ||
        (e = put_i64(b, d->size)) || (e = put_str(b, d->sha256, false)) ||
        (e = put_i64(b, d->created_at)) || (e = put_i64(b, d->updated_at)) ||
        (e = put_i64(b, d->chunk_count)) || (e = put_str(b, d->metadata, false)) ||
        (e = vd_buf_append(b, "\r\n", 2)))
        return vd_seterr(errstr, errstr_size, e, "csv: document %s: %s", d->id ? d->id : "?",
                         vd_err2str(e));
    if ((e = out_write(z, &z->docs, b->data, b->len, errstr, errstr_size)))
        return e;
    z->counts.documents++;

    for (size_t i = 0; i < g->nchunks; i++) {
        const vd_chunk *c = &g->chunks[i];
        const char *text = c->text ? c->text : "";
        size_t tl = c->text ? c->text_len : 0;
        bool binary = memchr(text, 0, tl) || !vd_utf8_valid(text, tl);
        vd_buf_reset(b);
        if ((e = put_str(b, c->id, true)) ||
            (e = put_str(b, c->doc_id ? c->doc_id : d->id, false)) || (e = put_i64(b, c->seq)) ||
            (e = put_field(b, text, binary ? 0 : tl, false)) ||
            (e = put_embedding(b, c->embedding, c->embedding ? c->dim : 0)) ||
            (e = put_str(b, c->metadata, false)) || (e = vd_buf_putc(b, ',')) ||
            (binary && (e = b64_append(b, (const unsigned char *)text, tl))) ||
            (e = vd_buf_append(b, "\r\n", 2)))
            return vd_seterr(errstr, errstr_size, e, "csv: chunk %s: %s", c->id ? c->id : "?",
                             vd_err2str(e));
        if ((e = out_write(z, &z->chunks, b->data, b->len, errstr, errstr_size)))
            return e;
        z->counts.chunks++;
    }

    if (z->include_files && g->has_file) {
        size_t il = d->id ? strlen(d->id) : 0;
        if (!file_member_id_ok(d->id, il))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID,
                             "csv: document id '%s' cannot name a ZIP member", d->id ? d->id : "");
        char name[sizeof z->members[0].name];
        snprintf(name, sizeof name, M_FILES "%s", d->id);
        if ((e = member_add(z, name, z->spill_size)))
            return vd_seterr(errstr, errstr_size, e, "csv: out of memory");
        vd_member_sum *m = &z->members[z->nmembers - 1];
        if (g->file.len && fwrite(g->file.data, 1, g->file.len, z->spill) != g->file.len)
            return vd_seterr(errstr, errstr_size, errno == ENOSPC ? VD_ERR_NOSPACE : VD_ERR_IO,
                             "csv: write %s: %s", z->spill_path, strerror(errno));
        vd_sha256_update(z->fsha, g->file.data, g->file.len);
        vd_sha256_final_hex(z->fsha, m->sha256);
        m->size = (int64_t)g->file.len;
        z->spill_size += (int64_t)g->file.len;
        z->counts.files++;
    }
    return VD_ERR_OK;
}

static int64_t csvzip_bytes(const vd_writer *w) {
    const csvzip_writer *z = w->impl;
    if (!z)
        return 0;
    /* Uncompressed bytes so far: the archive is only built at close. */
    return z->docs.size + z->chunks.size + z->spill_size;
}

static vd_err out_finish(csvzip_writer *z, csv_out *o, vd_member_sum *m, char *errstr,
                         size_t errstr_size) {
    vd_err e = out_hand(z, o, true, errstr, errstr_size);
    if (!e) {
        pthread_mutex_lock(&z->mu);
        e = deflate_wait_locked(z, errstr, errstr_size);
        pthread_mutex_unlock(&z->mu);
    }
    if (e)
        return e;
    int rc = fclose(o->fp);
    o->fp = NULL;
    if (rc != 0)
        return vd_seterr(errstr, errstr_size, errno == ENOSPC ? VD_ERR_NOSPACE : VD_ERR_IO,
                         "csv: close %s: %s", o->path, strerror(errno));
    vd_sha256_final_hex(o->sha, m->sha256);
    m->size = o->size;
    return VD_ERR_OK;
}

/*
 * A libzip source of a member this writer has already deflated: its stat
 * gives the method, CRC-32 and both sizes, so zip_close copies the raw
 * deflate stream as it is instead of compressing it again.
 */
typedef struct predeflated {
    const char *path; /* borrowed from the csv_out, which outlives zip_close */
    FILE *fp;
    zip_uint64_t size, csize;
    zip_uint32_t crc;
    time_t mtime;
    zip_error_t err;
} predeflated;

static zip_int64_t predeflated_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd) {
    predeflated *p = ud;
    switch (cmd) {
    case ZIP_SOURCE_OPEN:
        p->fp = fopen(p->path, "rb");
        if (!p->fp) {
            zip_error_set(&p->err, ZIP_ER_OPEN, errno);
            return -1;
        }
        return 0;
    case ZIP_SOURCE_READ: {
        size_t n = fread(data, 1, (size_t)len, p->fp);
        if (n < len && ferror(p->fp)) {
            zip_error_set(&p->err, ZIP_ER_READ, errno);
            return -1;
        }
        return (zip_int64_t)n;
    }
    case ZIP_SOURCE_CLOSE:
        if (p->fp)
            fclose(p->fp);
        p->fp = NULL;
        return 0;
    case ZIP_SOURCE_STAT: {
        if (len < sizeof(zip_stat_t)) {
            zip_error_set(&p->err, ZIP_ER_INVAL, 0);
            return -1;
        }
        zip_stat_t *st = data;
        zip_stat_init(st);
        st->valid = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD | ZIP_STAT_CRC |
                    ZIP_STAT_ENCRYPTION_METHOD | ZIP_STAT_MTIME;
        st->size = p->size;
        st->comp_size = p->csize;
        st->comp_method = ZIP_CM_DEFLATE;
        st->encryption_method = ZIP_EM_NONE;
        st->crc = p->crc;
        st->mtime = p->mtime;
        return (zip_int64_t)sizeof(zip_stat_t);
    }
    case ZIP_SOURCE_ERROR:
        return zip_error_to_data(&p->err, data, len);
    case ZIP_SOURCE_FREE:
        if (p->fp)
            fclose(p->fp);
        zip_error_fini(&p->err);
        free(p);
        return 0;
    case ZIP_SOURCE_SUPPORTS:
        return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE,
                                              ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE,
                                              -1);
    default:
        zip_error_set(&p->err, ZIP_ER_OPNOTSUPP, 0);
        return -1;
    }
}

/* A source for the finished member o; NULL (the archive's error set) on failure. */
static zip_source_t *predeflated_source(csvzip_writer *z, const csv_out *o) {
    predeflated *p = calloc(1, sizeof *p);
    if (!p) {
        zip_error_set(zip_get_error(z->za), ZIP_ER_MEMORY, 0);
        return NULL;
    }
    p->path = o->path;
    p->size = (zip_uint64_t)o->size;
    p->csize = (zip_uint64_t)o->csize;
    p->crc = (zip_uint32_t)o->crc;
    p->mtime = time(NULL);
    zip_error_init(&p->err);
    zip_source_t *src = zip_source_function(z->za, predeflated_cb, p);
    if (!src) {
        zip_error_fini(&p->err);
        free(p);
    }
    return src;
}

static vd_err zadd(csvzip_writer *z, const char *name, zip_source_t *src, char *errstr,
                   size_t errstr_size) {
    if (!src)
        return vd_seterr(errstr, errstr_size, zip_code_err(zip_error_code_zip(zip_get_error(z->za)), 0, true),
                         "csv: source for %s: %s", name, zip_strerror(z->za));
    zip_int64_t idx = zip_file_add(z->za, name, src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
        zip_source_free(src);
        return vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: add %s: %s", name, zip_strerror(z->za));
    }
    if (zip_set_file_compression(z->za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 1) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: compression for %s: %s", name,
                         zip_strerror(z->za));
    return VD_ERR_OK;
}

static vd_err csvzip_close(vd_writer *w, vd_writer_result *res, char *errstr, size_t errstr_size) {
    csvzip_writer *z = w->impl;
    vd_err e;
    if (!z || z->closed || !z->za)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "csv: writer already closed");
    if ((e = out_finish(z, &z->docs, &z->members[0], errstr, errstr_size)) ||
        (e = out_finish(z, &z->chunks, &z->members[1], errstr, errstr_size)))
        return e;
    if (z->spill) {
        int rc = fclose(z->spill);
        z->spill = NULL;
        if (rc != 0)
            return vd_seterr(errstr, errstr_size, errno == ENOSPC ? VD_ERR_NOSPACE : VD_ERR_IO,
                             "csv: close %s: %s", z->spill_path, strerror(errno));
    }

    /* The manifest: info, counts and every member's checksum. */
    json_t *man = json_deep_copy(z->info);
    json_t *members = json_object();
    json_t *counts = json_pack("{sI sI sI}", "documents", (json_int_t)z->counts.documents,
                               "chunks", (json_int_t)z->counts.chunks, "files",
                               (json_int_t)z->counts.files);
    if (!man || !members || !counts) {
        json_decref(man);
        json_decref(members);
        json_decref(counts);
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    }
    json_object_set_new(man, "counts", counts);
    for (size_t i = 0; i < z->nmembers; i++)
        json_object_set_new(members, z->members[i].name,
                            json_pack("{ss sI}", "sha256", z->members[i].sha256, "size",
                                      (json_int_t)z->members[i].size));
    json_object_set_new(man, "members", members);
    z->manifest_text = json_dumps(man, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(man);
    if (!z->manifest_text)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");

    /* Members, in order: documents.csv, chunks.csv, files/..., manifest.json. */
    if ((e = zadd(z, M_DOCS, predeflated_source(z, &z->docs), errstr, errstr_size)) ||
        (e = zadd(z, M_CHUNKS, predeflated_source(z, &z->chunks), errstr, errstr_size)))
        return e;
    for (size_t i = 2; i < z->nmembers; i++) {
        /* Length 0 means "to end of file" to zip_source_file: empty files
         * come from an empty buffer instead. */
        zip_source_t *src =
            z->members[i].size
                ? zip_source_file(z->za, z->spill_path, (zip_uint64_t)z->file_off[i],
                                  z->members[i].size)
                : zip_source_buffer(z->za, NULL, 0, 0);
        if ((e = zadd(z, z->members[i].name, src, errstr, errstr_size)))
            return e;
    }
    size_t mlen = strlen(z->manifest_text);
    if ((e = zadd(z, M_MANIFEST, zip_source_buffer(z->za, z->manifest_text, mlen, 0), errstr,
                  errstr_size)))
        return e;

    if (zip_close(z->za) != 0) {
        zip_error_t *ze = zip_get_error(z->za);
        e = vd_seterr(errstr, errstr_size,
                      zip_code_err(zip_error_code_zip(ze), zip_error_code_system(ze), true),
                      "csv: write %s: %s", z->path, zip_error_strerror(ze));
        return e;
    }
    z->za = NULL;
    z->zip_written = true;
    csvzip_remove_temps(z);

    /* The manifest itself is a member too (for the sidecar). */
    if ((e = member_add(z, M_MANIFEST, 0)))
        return vd_seterr(errstr, errstr_size, e, "csv: out of memory");
    vd_sha256_hex(z->manifest_text, mlen, z->members[z->nmembers - 1].sha256);
    z->members[z->nmembers - 1].size = (int64_t)mlen;

    /* Hash the artifact and make it durable. */
    int fd = open(z->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_IO, "csv: open %s: %s", z->path,
                         strerror(errno));
    /* Writeback starts now and overlaps the hashing; only a hint (the fsync
     * below makes the file durable), so its result is ignored. */
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    char *buf = malloc(READ_CHUNK);
    int64_t total = 0;
    if (!buf) {
        close(fd);
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    }
    for (;;) {
        ssize_t n = read(fd, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_IO, "csv: read %s: %s", z->path,
                          strerror(errno));
            break;
        }
        if (n == 0)
            break;
        vd_sha256_update(z->fsha, buf, (size_t)n);
        total += n;
    }
    free(buf);
    if (!e && fsync(fd) != 0)
        e = vd_seterr(errstr, errstr_size, errno == ENOSPC ? VD_ERR_NOSPACE : VD_ERR_IO,
                      "csv: fsync %s: %s", z->path, strerror(errno));
    close(fd);
    if (e)
        return e;

    z->closed = true;
    if (res) {
        memset(res, 0, sizeof *res);
        res->bytes = total;
        vd_sha256_final_hex(z->fsha, res->sha256);
        res->counts = z->counts;
        res->members = z->members;
        res->nmembers = z->nmembers;
    }
    return VD_ERR_OK;
}

/* ====================================================================== */
/* reader                                                                 */
/* ====================================================================== */

typedef struct csv_in {
    zip_file_t *zf;
    const char *name;
    char *buf;
    size_t pos, len;
    bool eof;
    int64_t row;             /* records started so far (the header is 1) */
    int64_t inflated;        /* bytes read out of the member */
    int64_t size, comp_size; /* from the central directory */
    int64_t max_ratio;
    vd_sha256 *sha;
    vd_buf rec;              /* field bytes, each followed by a NUL */
    size_t off[MAX_NCOLS], flen[MAX_NCOLS];
    size_t nf;
} csv_in;

typedef struct csvzip_reader {
    zip_t *za;
    zip_source_t *src;       /* memory input (owned by za once opened) */
    vd_limits lim;
    json_t *manifest;
    json_t *members;         /* manifest "members" object (borrowed) */
    vd_counts want, got;
    int64_t nfile_members;
    int dim;
    bool include_files;
    csv_in docs, chunks;
    bool have_pchunk;
    vd_chunk pchunk;         /* lookahead: the next chunk row */
    int64_t file_bytes;      /* compressed bytes of files read */
    bool failed, done;
} csvzip_reader;

static void csv_in_close(csv_in *in) {
    if (in->zf)
        zip_fclose(in->zf);
    in->zf = NULL;
    free(in->buf);
    in->buf = NULL;
    vd_sha256_destroy(in->sha);
    in->sha = NULL;
    vd_buf_free(&in->rec);
}

static void csvzip_reader_destroy(vd_reader *r) {
    csvzip_reader *z = r->impl;
    if (!z)
        return;
    csv_in_close(&z->docs);
    csv_in_close(&z->chunks);
    vd_chunk_clear(&z->pchunk);
    if (z->za)
        zip_discard(z->za);
    else if (z->src)
        zip_source_free(z->src);
    json_decref(z->manifest);
    free(z);
    r->impl = NULL;
}

/* Bomb checks on bytes actually inflated (headers can lie). */
static vd_err inflate_check(const char *name, int64_t inflated, int64_t size, int64_t comp,
                            int64_t max_ratio, char *errstr, size_t errstr_size) {
    if (inflated > size)
        return vd_seterr(errstr, errstr_size, VD_ERR_ZIP_BOMB,
                         "csv: member %s inflates beyond its declared size %" PRId64, name, size);
    if (inflated > RATIO_FLOOR && max_ratio > 0 && inflated / (comp > 0 ? comp : 1) > max_ratio)
        return vd_seterr(errstr, errstr_size, VD_ERR_ZIP_BOMB,
                         "csv: member %s inflates over the ratio limit %" PRId64, name, max_ratio);
    return VD_ERR_OK;
}

static vd_err zfile_err(zip_file_t *zf, const char *name, char *errstr, size_t errstr_size) {
    zip_error_t *ze = zip_file_get_error(zf);
    int code = zip_error_code_zip(ze);
    return vd_seterr(errstr, errstr_size, zip_code_err(code, zip_error_code_system(ze), false),
                     "csv: read %s: %s", name, zip_error_strerror(ze));
}

static vd_err csv_fill(csv_in *in, char *errstr, size_t errstr_size) {
    zip_int64_t n = zip_fread(in->zf, in->buf, READ_CHUNK);
    if (n < 0)
        return zfile_err(in->zf, in->name, errstr, errstr_size);
    in->pos = 0;
    in->len = (size_t)n;
    if (n == 0) {
        in->eof = true;
        return VD_ERR_OK;
    }
    in->inflated += n;
    vd_sha256_update(in->sha, in->buf, (size_t)n);
    return inflate_check(in->name, in->inflated, in->size, in->comp_size, in->max_ratio, errstr,
                         errstr_size);
}

static vd_err csv_end_field(csv_in *in, size_t *start, size_t ncols, char *errstr,
                            size_t errstr_size) {
    if (in->nf == ncols)
        return vd_seterr(errstr, errstr_size, VD_ERR_CSV,
                         "csv: %s record %" PRId64 " has more than %zu columns", in->name, in->row,
                         ncols);
    in->off[in->nf] = *start;
    in->flen[in->nf] = in->rec.len - *start;
    in->nf++;
    vd_err e = vd_buf_putc(&in->rec, 0);
    if (e)
        return e;
    *start = in->rec.len;
    return VD_ERR_OK;
}

enum { ST_START, ST_UNQUOTED, ST_QUOTED, ST_QUOTE, ST_CR };

/*
 * Reads one RFC 4180 record of exactly ncols fields into in->rec/off/flen.
 * Accepts CRLF or LF line ends. @returns OK (with *eof at a clean end of
 * the member), CSV, TOO_LARGE or a ZIP error.
 */
static vd_err csv_read_record(csv_in *in, size_t ncols, bool *eof, char *errstr,
                              size_t errstr_size) {
    vd_err e = VD_ERR_OK;
    int st = ST_START;
    bool any = false;
    size_t start = 0;
    vd_buf_reset(&in->rec);
    in->nf = 0;
    *eof = false;
    for (;;) {
        if (in->pos == in->len) {
            if (in->eof || (e = csv_fill(in, errstr, errstr_size)) || in->eof) {
                if (e)
                    return e;
                if (!any) {
                    *eof = true;
                    return VD_ERR_OK;
                }
                if (st == ST_QUOTED)
                    return vd_seterr(errstr, errstr_size, VD_ERR_CSV,
                                     "csv: unbalanced quote in %s record %" PRId64, in->name,
                                     in->row);
                if ((e = csv_end_field(in, &start, ncols, errstr, errstr_size)))
                    goto rec_err;
                break;
            }
        }
        if (!any) {
            any = true;
            in->row++;
        }
        const char *p = in->buf + in->pos;
        const char *end = in->buf + in->len;
        if (st == ST_UNQUOTED || st == ST_QUOTED) {
            /* Copy the run of ordinary bytes in one go. */
            const char *q = p;
            if (st == ST_QUOTED) {
                q = memchr(p, '"', (size_t)(end - p));
                if (!q)
                    q = end;
            } else {
                while (q < end && *q != ',' && *q != '\r' && *q != '\n' && *q != '"')
                    q++;
            }
            if (q > p && (e = vd_buf_append(&in->rec, p, (size_t)(q - p))))
                goto rec_err;
            in->pos += (size_t)(q - p);
            if (q == end)
                continue;
            p = q;
        }
        char c = *p;
        in->pos++;
        switch (st) {
        case ST_START:
            if (c == '"') {
                st = ST_QUOTED;
            } else if (c == ',') {
                if ((e = csv_end_field(in, &start, ncols, errstr, errstr_size)))
                    goto rec_err;
            } else if (c == '\r' || c == '\n') {
                if ((e = csv_end_field(in, &start, ncols, errstr, errstr_size)))
                    goto rec_err;
                if (c == '\n')
                    goto done;
                st = ST_CR;
            } else {
                if ((e = vd_buf_putc(&in->rec, c)))
                    goto rec_err;
                st = ST_UNQUOTED;
            }
            break;
        case ST_UNQUOTED:
            if (c == ',') {
                if ((e = csv_end_field(in, &start, ncols, errstr, errstr_size)))
                    goto rec_err;
                st = ST_START;
            } else if (c == '\r' || c == '\n') {
                if ((e = csv_end_field(in, &start, ncols, errstr, errstr_size)))
                    goto rec_err;
                if (c == '\n')
                    goto done;
                st = ST_CR;
            } else {
                return vd_seterr(errstr, errstr_size, VD_ERR_CSV,
                                 "csv: quote inside an unquoted field in %s record %" PRId64,
                                 in->name, in->row);
            }
            break;
        case ST_QUOTED: /* c is the quote */
            st = ST_QUOTE;
            break;
        case ST_QUOTE:
            if (c == '"') {
                if ((e = vd_buf_putc(&in->rec, '"')))
                    goto rec_err;
                st = ST_QUOTED;
            } else if (c == ',') {
                if ((e = csv_end_field(in, &start, ncols, errstr, errstr_size)))
                    goto rec_err;
                st = ST_START;
            } else if (c == '\r' || c == '\n') {
                if ((e = csv_end_field(in, &start, ncols, errstr, errstr_size)))
                    goto rec_err;
                if (c == '\n')
                    goto done;
                st = ST_CR;
            } else {
                return vd_seterr(errstr, errstr_size, VD_ERR_CSV,
                                 "csv: unbalanced quote in %s record %" PRId64, in->name, in->row);
            }
            break;
        case ST_CR:
            if (c != '\n')
                return vd_seterr(errstr, errstr_size, VD_ERR_CSV,
                                 "csv: CR without LF in %s record %" PRId64, in->name, in->row);
            goto done;
        }
    }
done:
    if (in->nf != ncols)
        return vd_seterr(errstr, errstr_size, VD_ERR_CSV,
                         "csv: %s record %" PRId64 " has %zu columns, want %zu", in->name, in->row,
                         in->nf, ncols);
    return VD_ERR_OK;
rec_err:
    /* csv_end_field has said why for CSV; buffer errors are said here. */
    if (e == VD_ERR_TOO_LARGE)
        return vd_seterr(errstr, errstr_size, e,
                         "csv: %s record %" PRId64 " is over the record size limit", in->name,
                         in->row);
    if (e == VD_ERR_NOMEM)
        return vd_seterr(errstr, errstr_size, e, "csv: out of memory");
    return e;
}

static const char *fld(const csv_in *in, size_t i) { return in->rec.data + in->off[i]; }

/* A text field as a C string: NUL bytes inside are refused. */
static vd_err fld_str(const csv_in *in, size_t i, const char *what, char **out, char *errstr,
                      size_t errstr_size) {
    if (memchr(fld(in, i), 0, in->flen[i]))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "csv: %s record %" PRId64 ": NUL byte in %s", in->name, in->row, what);
    *out = vd_strndup(fld(in, i), in->flen[i]);
    return *out ? VD_ERR_OK : vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
}

static bool parse_i64(const char *s, size_t n, int64_t *out) {
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;
    if (n && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n || n - i > 19)
        return false;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static vd_err fld_i64(const csv_in *in, size_t i, const char *what, int64_t *out, char *errstr,
                      size_t errstr_size) {
    if (!parse_i64(fld(in, i), in->flen[i], out))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "csv: %s record %" PRId64 ": %s is not an integer", in->name, in->row,
                         what);
    return VD_ERR_OK;
}

static vd_err fld_id(const csv_in *in, size_t i, const char *what, char **out, char *errstr,
                     size_t errstr_size) {
    if (!vd_id_valid(fld(in, i), in->flen[i]))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_ID,
                         "csv: %s record %" PRId64 ": invalid %s '%.*s'", in->name, in->row, what,
                         (int)(in->flen[i] > 140 ? 140 : in->flen[i]), fld(in, i));
    *out = vd_strndup(fld(in, i), in->flen[i]);
    return *out ? VD_ERR_OK : vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
}

/* "nan", "inf", "infinity" with an optional sign, any case. */
static bool is_nonfinite_token(const char *p, size_t n) {
    if (n && (*p == '-' || *p == '+')) {
        p++;
        n--;
    }
    return (n == 3 && (strncasecmp(p, "nan", 3) == 0 || strncasecmp(p, "inf", 3) == 0)) ||
           (n == 8 && strncasecmp(p, "infinity", 8) == 0);
}

static vd_err parse_embedding(const csv_in *in, const char *s, size_t n, int dim, vd_chunk *c,
                              char *errstr, size_t errstr_size) {
    if (n < 2 || s[0] != '[' || s[n - 1] != ']')
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "csv: %s record %" PRId64 ": embedding is not [..]", in->name, in->row);
    float *v = malloc((size_t)(dim > 0 ? dim : 1) * sizeof *v);
    if (!v)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    const char *p = s + 1, *end = s + n - 1;
    size_t cnt = 0;
    while (p < end && *p == ' ')
        p++;
    while (p < end) {
        if (cnt == (size_t)dim) {
            free(v);
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM,
                             "csv: %s record %" PRId64 ": embedding has more than %d values",
                             in->name, in->row, dim);
        }
        float f = 0;
        size_t used = vd_f32_parse(p, (size_t)(end - p), &f);
        if (used == 0) {
            const char *q = p;
            while (q < end && *q != ',' && *q != ' ')
                q++;
            vd_err e = is_nonfinite_token(p, (size_t)(q - p)) ? VD_ERR_BAD_FLOAT : VD_ERR_BAD_FIELD;
            free(v);
            return vd_seterr(errstr, errstr_size, e,
                             "csv: %s record %" PRId64 ": embedding value %zu is '%.*s'", in->name,
                             in->row, cnt, (int)(q - p > 40 ? 40 : q - p), p);
        }
        if (!isfinite(f)) {
            free(v);
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FLOAT,
                             "csv: %s record %" PRId64 ": embedding value %zu is not finite",
                             in->name, in->row, cnt);
        }
        v[cnt++] = f;
        p += used;
        while (p < end && *p == ' ')
            p++;
        if (p == end)
            break;
        if (*p != ',') {
            free(v);
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "csv: %s record %" PRId64 ": bad separator in embedding", in->name,
                             in->row);
        }
        p++;
        while (p < end && *p == ' ')
            p++;
        if (p == end) {
            free(v);
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "csv: %s record %" PRId64 ": trailing comma in embedding", in->name,
                             in->row);
        }
    }
    if (cnt != (size_t)dim) {
        free(v);
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM,
                         "csv: %s record %" PRId64 ": embedding has %zu values, dim is %d",
                         in->name, in->row, cnt, dim);
    }
    c->embedding = v;
    c->dim = cnt;
    return VD_ERR_OK;
}

static vd_err read_doc(csvzip_reader *z, vd_doc *d, bool *eof, char *errstr, size_t errstr_size) {
    csv_in *in = &z->docs;
    vd_err e = csv_read_record(in, DOC_NCOLS, eof, errstr, errstr_size);
    if (e || *eof)
        return e;
    if ((e = fld_id(in, 0, "document id", &d->id, errstr, errstr_size)) ||
        (e = fld_str(in, 1, "title", &d->title, errstr, errstr_size)) ||
        (e = fld_str(in, 2, "source", &d->source, errstr, errstr_size)) ||
        (e = fld_str(in, 3, "content_type", &d->content_type, errstr, errstr_size)) ||
        (e = fld_i64(in, 4, "size", &d->size, errstr, errstr_size)) ||
        (e = fld_str(in, 5, "sha256", &d->sha256, errstr, errstr_size)) ||
        (e = fld_i64(in, 6, "created_at", &d->created_at, errstr, errstr_size)) ||
        (e = fld_i64(in, 7, "updated_at", &d->updated_at, errstr, errstr_size)) ||
        (e = fld_i64(in, 8, "chunk_count", &d->chunk_count, errstr, errstr_size)) ||
        (e = fld_str(in, 9, "metadata", &d->metadata, errstr, errstr_size))) {
        vd_doc_clear(d);
        return e;
    }
    return VD_ERR_OK;
}

static vd_err read_chunk(csvzip_reader *z, vd_chunk *c, bool *eof, char *errstr,
                         size_t errstr_size) {
    csv_in *in = &z->chunks;
    vd_err e = csv_read_record(in, CHUNK_NCOLS, eof, errstr, errstr_size);
    if (e || *eof)
        return e;
    if ((e = fld_id(in, 0, "chunk id", &c->id, errstr, errstr_size)) ||
        (e = fld_id(in, 1, "doc_id", &c->doc_id, errstr, errstr_size)) ||
        (e = fld_i64(in, 2, "seq", &c->seq, errstr, errstr_size)) ||
        (e = parse_embedding(in, fld(in, 4), in->flen[4], z->dim, c, errstr, errstr_size)) ||
        (e = fld_str(in, 5, "metadata", &c->metadata, errstr, errstr_size)))
        goto fail;
    if (in->flen[6]) {
        if (in->flen[3]) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                          "csv: %s record %" PRId64 ": both text and text_b64 are set", in->name,
                          in->row);
            goto fail;
        }
        if (!b64_decode(fld(in, 6), in->flen[6], &c->text, &c->text_len)) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                          "csv: %s record %" PRId64 ": text_b64 is not base64", in->name, in->row);
            goto fail;
        }
    } else {
        if ((e = fld_str(in, 3, "text", &c->text, errstr, errstr_size)))
            goto fail;
        c->text_len = in->flen[3];
    }
    return VD_ERR_OK;
fail:
    vd_chunk_clear(c);
    return e;
}

/* The manifest's entry for a member: sha256 and size. */
static vd_err member_want(csvzip_reader *z, const char *name, const char **sha, int64_t *size,
                          char *errstr, size_t errstr_size) {
    json_t *m = json_object_get(z->members, name);
    json_t *s = json_object_get(m, "sha256");
    json_t *n = json_object_get(m, "size");
    if (!json_is_string(s) || !json_is_integer(n))
        return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                         "csv: member %s is not listed in manifest.json", name);
    *sha = json_string_value(s);
    *size = json_integer_value(n);
    return VD_ERR_OK;
}

static vd_err read_file_member(csvzip_reader *z, vd_docgroup *g, char *errstr, size_t errstr_size) {
    char name[160];
    snprintf(name, sizeof name, M_FILES "%s", g->doc.id);
    zip_int64_t idx = zip_name_locate(z->za, name, 0);
    if (idx < 0)
        return VD_ERR_OK;
    zip_stat_t st;
    if (zip_stat_index(z->za, (zip_uint64_t)idx, 0, &st) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: stat %s: %s", name,
                         zip_strerror(z->za));
    const char *want_sha = NULL;
    int64_t want_size = 0;
    vd_err e = member_want(z, name, &want_sha, &want_size, errstr, errstr_size);
    if (e)
        return e;
    if ((int64_t)st.size != want_size)
        return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                         "csv: %s is %" PRIu64 " bytes, the manifest says %" PRId64, name,
                         (uint64_t)st.size, want_size);
    if ((int64_t)st.size > z->lim.max_record_bytes)
        return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                         "csv: %s is over the record size limit", name);
    unsigned char *data = malloc(st.size ? st.size : 1);
    if (!data)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    zip_file_t *zf = zip_fopen_index(z->za, (zip_uint64_t)idx, 0);
    if (!zf) {
        free(data);
        return vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: open %s: %s", name,
                         zip_strerror(z->za));
    }
    int64_t got = 0;
    for (;;) {
        char spare[1];
        /* Read into the buffer; one byte beyond the size proves a lie. */
        void *dst = (uint64_t)got < st.size ? (void *)(data + got) : (void *)spare;
        zip_uint64_t want = (uint64_t)got < st.size ? st.size - (uint64_t)got : 1;
        if (want > READ_CHUNK * 16)
            want = READ_CHUNK * 16;
        zip_int64_t n = zip_fread(zf, dst, want);
        if (n < 0) {
            e = zfile_err(zf, name, errstr, errstr_size);
            break;
        }
        if (n == 0)
            break;
        got += n;
        if ((e = inflate_check(name, got, (int64_t)st.size, (int64_t)st.comp_size,
                               z->lim.max_ratio, errstr, errstr_size)))
            break;
    }
    zip_fclose(zf);
    if (!e && got != (int64_t)st.size)
        e = vd_seterr(errstr, errstr_size, VD_ERR_TRUNCATED, "csv: %s is short", name);
    char hex[65];
    if (!e) {
        vd_sha256_hex(data, (size_t)got, hex);
        if (strcmp(hex, want_sha) != 0)
            e = vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                          "csv: %s: SHA-256 differs from the manifest", name);
    }
    if (!e && g->doc.sha256 && g->doc.sha256[0] &&
        (strcasecmp(hex, g->doc.sha256) != 0 || g->doc.size != got))
        e = vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                      "csv: %s: size or SHA-256 differs from document %s", name, g->doc.id);
    if (e) {
        free(data);
        return e;
    }
    g->has_file = true;
    g->file.doc_id = vd_strdup(g->doc.id);
    g->file.data = data;
    g->file.len = (size_t)got;
    if (!g->file.doc_id)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    z->got.files++;
    z->file_bytes += (int64_t)st.comp_size;
    return VD_ERR_OK;
}

static vd_err csv_in_verify(csvzip_reader *z, csv_in *in, char *errstr, size_t errstr_size) {
    const char *want_sha = NULL;
    int64_t want_size = 0;
    vd_err e = member_want(z, in->name, &want_sha, &want_size, errstr, errstr_size);
    if (e)
        return e;
    char hex[65];
    vd_sha256_final_hex(in->sha, hex);
    if (in->inflated != want_size || strcmp(hex, want_sha) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                         "csv: %s: size or SHA-256 differs from the manifest", in->name);
    return VD_ERR_OK;
}

static vd_err csvzip_finish(csvzip_reader *z, char *errstr, size_t errstr_size) {
    vd_err e;
    bool eof = false;
    if (!z->have_pchunk) {
        if ((e = read_chunk(z, &z->pchunk, &eof, errstr, errstr_size)))
            return e;
        z->have_pchunk = !eof;
    }
    if (z->have_pchunk)
        return vd_seterr(errstr, errstr_size, VD_ERR_REFERENCE,
                         "csv: chunk %s refers to document %s, missing from documents.csv or "
                         "out of order",
                         z->pchunk.id, z->pchunk.doc_id);
    if ((e = csv_in_verify(z, &z->docs, errstr, errstr_size)) ||
        (e = csv_in_verify(z, &z->chunks, errstr, errstr_size)))
        return e;
    if (z->got.documents != z->want.documents || z->got.chunks != z->want.chunks ||
        z->got.files != z->want.files)
        return vd_seterr(errstr, errstr_size, VD_ERR_CHECKSUM,
                         "csv: counts %" PRId64 "/%" PRId64 "/%" PRId64
                         " differ from the manifest's %" PRId64 "/%" PRId64 "/%" PRId64,
                         z->got.documents, z->got.chunks, z->got.files, z->want.documents,
                         z->want.chunks, z->want.files);
    if (z->got.files != z->nfile_members)
        return vd_seterr(errstr, errstr_size, VD_ERR_REFERENCE,
                         "csv: %" PRId64 " files/ members belong to no document",
                         z->nfile_members - z->got.files);
    return VD_ERR_OK;
}

static vd_err csvzip_next(vd_reader *r, vd_docgroup *g, bool *done, char *errstr,
                          size_t errstr_size) {
    csvzip_reader *z = r->impl;
    vd_err e = VD_ERR_OK;
    bool eof = false;
    *done = false;
    if (z->failed)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "csv: reader failed before and is unusable");
    if (z->done) {
        *done = true;
        return VD_ERR_OK;
    }
    memset(g, 0, sizeof *g);
    if ((e = read_doc(z, &g->doc, &eof, errstr, errstr_size)))
        goto fail;
    if (eof) {
        if ((e = csvzip_finish(z, errstr, errstr_size)))
            goto fail;
        z->done = true;
        *done = true;
        return VD_ERR_OK;
    }

    /* This document's chunks: the run of chunk rows naming it. */
    for (;;) {
        if (!z->have_pchunk) {
            if ((e = read_chunk(z, &z->pchunk, &eof, errstr, errstr_size)))
                goto fail;
            if (eof)
                break;
            z->have_pchunk = true;
        }
        if (strcmp(z->pchunk.doc_id, g->doc.id) != 0)
            break;
        if ((int64_t)g->nchunks >= z->lim.max_chunks_per_doc) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                          "csv: document %s has more than %" PRId64 " chunks", g->doc.id,
                          z->lim.max_chunks_per_doc);
            goto fail;
        }
        vd_chunk *c = vd_docgroup_add_chunk(g);
        if (!c) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
            goto fail;
        }
        *c = z->pchunk;
        memset(&z->pchunk, 0, sizeof z->pchunk);
        z->have_pchunk = false;
        z->got.chunks++;
    }

    /* A pending chunk of another document waits for it; one still pending
     * after the last document names a missing (or out of order) document. */
    if (z->include_files && (e = read_file_member(z, g, errstr, errstr_size)))
        goto fail;
    z->got.documents++;
    return VD_ERR_OK;
fail:
    z->failed = true;
    vd_docgroup_clear(g);
    return e;
}

static int64_t csvzip_rbytes(const vd_reader *r) {
    const csvzip_reader *z = r->impl;
    if (!z)
        return 0;
    int64_t t = z->file_bytes;
    const csv_in *ins[2] = {&z->docs, &z->chunks};
    for (int i = 0; i < 2; i++)
        if (ins[i]->size > 0)
            t += (int64_t)((double)ins[i]->inflated * (double)ins[i]->comp_size /
                           (double)ins[i]->size);
    return t;
}

static const vd__reader_ops csvzip_reader_ops = {
    csvzip_next,
    csvzip_rbytes,
    csvzip_reader_destroy,
};

static bool member_name_ok(const char *name) {
    if (strcmp(name, M_MANIFEST) == 0 || strcmp(name, M_DOCS) == 0 || strcmp(name, M_CHUNKS) == 0)
        return true;
    if (strncmp(name, M_FILES, sizeof M_FILES - 1) == 0) {
        const char *id = name + sizeof M_FILES - 1;
        return file_member_id_ok(id, strlen(id));
    }
    return false;
}

static vd_err read_manifest(csvzip_reader *z, zip_int64_t idx, const zip_stat_t *st,
                            vd_artifact_info *info, char *errstr, size_t errstr_size) {
    int64_t cap = z->lim.max_record_bytes;
    if ((int64_t)st->size > cap)
        return vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                         "csv: manifest.json is over the record size limit");
    char *text = malloc(st->size + 1);
    if (!text)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    zip_file_t *zf = zip_fopen_index(z->za, (zip_uint64_t)idx, 0);
    if (!zf) {
        free(text);
        return vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: open manifest.json: %s",
                         zip_strerror(z->za));
    }
    vd_err e = VD_ERR_OK;
    int64_t got = 0;
    for (;;) {
        char spare[1];
        void *dst = (uint64_t)got < st->size ? (void *)(text + got) : (void *)spare;
        zip_uint64_t want = (uint64_t)got < st->size ? st->size - (uint64_t)got : 1;
        zip_int64_t n = zip_fread(zf, dst, want);
        if (n < 0) {
            e = zfile_err(zf, M_MANIFEST, errstr, errstr_size);
            break;
        }
        if (n == 0)
            break;
        got += n;
        if ((e = inflate_check(M_MANIFEST, got, (int64_t)st->size, (int64_t)st->comp_size,
                               z->lim.max_ratio, errstr, errstr_size)))
            break;
    }
    zip_fclose(zf);
    if (e) {
        free(text);
        return e;
    }
    json_error_t je;
    z->manifest = json_loadb(text, (size_t)got, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!json_is_object(z->manifest))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_JSON, "csv: manifest.json: %s",
                         z->manifest ? "not an object" : je.text);
    json_t *m = z->manifest;
    const char *fmt = json_string_value(json_object_get(m, "format"));
    json_t *ver = json_object_get(m, "format_version");
    if (!fmt || strcmp(fmt, CSVZIP_FORMAT) != 0 || !json_is_integer(ver))
        return vd_seterr(errstr, errstr_size, VD_ERR_FORMAT,
                         "csv: manifest.json is not a vecdump-csv manifest");
    if (json_integer_value(ver) != CSVZIP_FORMAT_VERSION)
        return vd_seterr(errstr, errstr_size, VD_ERR_FORMAT,
                         "csv: unsupported format_version %" JSON_INTEGER_FORMAT,
                         json_integer_value(ver));
    static const char *const strs[] = {"tool_version", "task_id", "namespace", "model", "distance"};
    static const char *const ints[] = {"created_at", "schema_version", "dim", "meta_created_at"};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!json_is_string(json_object_get(m, strs[i])))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "csv: manifest.json: %s is missing or not a string", strs[i]);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!json_is_integer(json_object_get(m, ints[i])))
            return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                             "csv: manifest.json: %s is missing or not an integer", ints[i]);
    json_int_t dim = json_integer_value(json_object_get(m, "dim"));
    json_int_t sv = json_integer_value(json_object_get(m, "schema_version"));
    if (dim < 0 || dim > MAX_DIM)
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_DIM, "csv: manifest.json: dim %" JSON_INTEGER_FORMAT " out of range", dim);
    if (sv < 0 || sv > INT_MAX)
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "csv: manifest.json: bad schema_version");
    json_t *inc = json_object_get(m, "include_files");
    json_t *counts = json_object_get(m, "counts");
    z->members = json_object_get(m, "members");
    if (!json_is_boolean(inc) || !json_is_object(counts) || !json_is_object(z->members))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "csv: manifest.json: include_files, counts or members missing");
    json_t *cd = json_object_get(counts, "documents"), *cc = json_object_get(counts, "chunks"),
           *cf = json_object_get(counts, "files");
    if (!json_is_integer(cd) || !json_is_integer(cc) || !json_is_integer(cf))
        return vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                         "csv: manifest.json: counts are not integers");
    z->want.documents = json_integer_value(cd);
    z->want.chunks = json_integer_value(cc);
    z->want.files = json_integer_value(cf);
    z->dim = (int)dim;
    z->include_files = json_is_true(inc);

    info->tool_version = vd_strdup(json_string_value(json_object_get(m, "tool_version")));
    info->task_id = vd_strdup(json_string_value(json_object_get(m, "task_id")));
    info->ns = vd_strdup(json_string_value(json_object_get(m, "namespace")));
    info->meta.model = vd_strdup(json_string_value(json_object_get(m, "model")));
    info->meta.distance = vd_strdup(json_string_value(json_object_get(m, "distance")));
    info->created_at = json_integer_value(json_object_get(m, "created_at"));
    info->meta.created_at = json_integer_value(json_object_get(m, "meta_created_at"));
    info->meta.schema_version = (int)sv;
    info->meta.dim = (int)dim;
    info->include_files = z->include_files;
    info->compress = true;
    if (!info->tool_version || !info->task_id || !info->ns || !info->meta.model ||
        !info->meta.distance)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    return VD_ERR_OK;
}

static vd_err csv_in_open(csvzip_reader *z, csv_in *in, const char *name, zip_int64_t idx,
                          const zip_stat_t *st, const char *header, size_t ncols, char *errstr,
                          size_t errstr_size) {
    in->name = name;
    in->size = (int64_t)st->size;
    in->comp_size = (int64_t)st->comp_size;
    in->max_ratio = z->lim.max_ratio;
    vd_buf_init(&in->rec, (size_t)z->lim.max_record_bytes);
    in->buf = malloc(READ_CHUNK);
    in->sha = vd_sha256_new();
    if (!in->buf || !in->sha)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    in->zf = zip_fopen_index(z->za, (zip_uint64_t)idx, 0);
    if (!in->zf)
        return vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: open %s: %s", name,
                         zip_strerror(z->za));
    bool eof = false;
    vd_err e = csv_read_record(in, ncols, &eof, errstr, errstr_size);
    if (e)
        return e;
    /* The header must be exactly ours (re-joined with commas). */
    size_t hl = strlen(header), pos = 0;
    bool ok = !eof;
    for (size_t i = 0; ok && i < in->nf; i++) {
        if (i && (pos >= hl || header[pos++] != ','))
            ok = false;
        else if (hl - pos < in->flen[i] || memcmp(header + pos, fld(in, i), in->flen[i]) != 0)
            ok = false;
        else
            pos += in->flen[i];
    }
    if (!ok || pos != hl)
        return vd_seterr(errstr, errstr_size, VD_ERR_CSV, "csv: %s: unexpected header", name);
    return VD_ERR_OK;
}

vd_err vd__csvzip_reader_open(vd_reader *r, const char *path, const void *data, size_t len,
                              const vd_limits *lim, char *errstr, size_t errstr_size) {
    vd_err e = VD_ERR_OK;
    csvzip_reader *z = calloc(1, sizeof *z);
    if (!z)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: out of memory");
    r->impl = z;
    r->ops = &csvzip_reader_ops;
    if (lim)
        z->lim = *lim;
    else
        vd_limits_default(&z->lim);
    if (z->lim.max_record_bytes <= 0 || z->lim.max_record_bytes > INT64_MAX / 4)
        z->lim.max_record_bytes = INT64_MAX / 4;

    int zerr = 0;
    bool starts_pk = false;
    if (path) {
        struct stat st;
        if (stat(path, &st) != 0) {
            e = vd_seterr(errstr, errstr_size, errno == ENOENT ? VD_ERR_NOT_FOUND : VD_ERR_IO,
                          "csv: stat %s: %s", path, strerror(errno));
            goto fail;
        }
        if (z->lim.max_artifact_bytes > 0 && st.st_size > z->lim.max_artifact_bytes) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                          "csv: %s is over the artifact size limit", path);
            goto fail;
        }
        FILE *f = fopen(path, "rb");
        if (f) {
            char magic[4];
            starts_pk = fread(magic, 1, 4, f) == 4 && memcmp(magic, "PK\3\4", 4) == 0;
            fclose(f);
        }
        z->za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    } else {
        if (z->lim.max_artifact_bytes > 0 && (int64_t)len > z->lim.max_artifact_bytes) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                          "csv: input is over the artifact size limit");
            goto fail;
        }
        starts_pk = len >= 4 && memcmp(data, "PK\3\4", 4) == 0;
        zip_error_t ze;
        zip_error_init(&ze);
        z->src = zip_source_buffer_create(len ? data : "", len, 0, &ze);
        if (!z->src) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "csv: %s", zip_error_strerror(&ze));
            zip_error_fini(&ze);
            goto fail;
        }
        z->za = zip_open_from_source(z->src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
        zerr = zip_error_code_zip(&ze);
        zip_error_fini(&ze);
    }
    if (!z->za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        if (zerr == ZIP_ER_NOZIP && starts_pk)
            e = VD_ERR_TRUNCATED; /* local headers but no central directory */
        else
            e = zip_code_err(zerr, 0, path != NULL);
        vd_seterr(errstr, errstr_size, e, "csv: open ZIP: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        goto fail;
    }
    z->src = NULL; /* owned by za now */

    /* Central directory checks: count, names, sizes, ratios. */
    zip_int64_t n = zip_get_num_entries(z->za, 0);
    if (n < 0 || (z->lim.max_members > 0 && n > z->lim.max_members)) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                      "csv: %" PRId64 " members, over the limit of %" PRId64, (int64_t)n,
                      z->lim.max_members);
        goto fail;
    }
    zip_int64_t idx_man = -1, idx_docs = -1, idx_chunks = -1;
    zip_stat_t st_man, st_docs, st_chunks;
    for (zip_int64_t i = 0; i < n; i++) {
        zip_stat_t st;
        if (zip_stat_index(z->za, (zip_uint64_t)i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) ||
            !(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE)) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: cannot stat member %" PRId64,
                          (int64_t)i);
            goto fail;
        }
        if (!member_name_ok(st.name)) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: unsafe or unexpected member '%.200s'",
                          st.name);
            goto fail;
        }
        if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: member %s is encrypted", st.name);
            goto fail;
        }
        if ((st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method != ZIP_CM_STORE &&
            st.comp_method != ZIP_CM_DEFLATE) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_ZIP,
                          "csv: member %s uses an unsupported compression method", st.name);
            goto fail;
        }
        uint64_t comp = st.comp_size ? st.comp_size : 1;
        if (z->lim.max_ratio > 0 && (int64_t)st.size > RATIO_FLOOR &&
            st.size / comp > (uint64_t)z->lim.max_ratio) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_ZIP_BOMB,
                          "csv: member %s: %" PRIu64 " bytes from %" PRIu64 " is over ratio %" PRId64,
                          st.name, (uint64_t)st.size, (uint64_t)st.comp_size, z->lim.max_ratio);
            goto fail;
        }
        zip_int64_t *slot = NULL;
        zip_stat_t *sslot = NULL;
        if (strcmp(st.name, M_MANIFEST) == 0) {
            slot = &idx_man;
            sslot = &st_man;
        } else if (strcmp(st.name, M_DOCS) == 0) {
            slot = &idx_docs;
            sslot = &st_docs;
        } else if (strcmp(st.name, M_CHUNKS) == 0) {
            slot = &idx_chunks;
            sslot = &st_chunks;
        } else {
            if ((int64_t)st.size > z->lim.max_record_bytes) {
                e = vd_seterr(errstr, errstr_size, VD_ERR_TOO_LARGE,
                              "csv: member %s is over the record size limit", st.name);
                goto fail;
            }
            z->nfile_members++;
        }
        if (slot) {
            if (*slot >= 0) {
                e = vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: duplicate member %s", st.name);
                goto fail;
            }
            *slot = i;
            *sslot = st;
        }
    }
    if (idx_man < 0 || idx_docs < 0 || idx_chunks < 0) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_ZIP, "csv: member %s is missing",
                      idx_man < 0 ? M_MANIFEST : idx_docs < 0 ? M_DOCS : M_CHUNKS);
        goto fail;
    }
    if ((e = read_manifest(z, idx_man, &st_man, &r->info, errstr, errstr_size)))
        goto fail;
    if (!z->include_files && z->nfile_members) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_ZIP,
                      "csv: files/ members in an artifact without include_files");
        goto fail;
    }
    if ((e = csv_in_open(z, &z->docs, M_DOCS, idx_docs, &st_docs, DOCS_HEADER, DOC_NCOLS, errstr,
                         errstr_size)) ||
        (e = csv_in_open(z, &z->chunks, M_CHUNKS, idx_chunks, &st_chunks, CHUNKS_HEADER,
                         CHUNK_NCOLS, errstr, errstr_size)))
        goto fail;
    return VD_ERR_OK;

fail:
    csvzip_reader_destroy(r);
    r->ops = NULL;
    return e;
}
