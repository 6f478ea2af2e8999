/*
 * vd_common.c - error table, logging, time, buffers, ids, hashing, records.
 */
#define _POSIX_C_SOURCE 200809L
#include "vd_common.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

/* ---- errors ----------------------------------------------------------- */
static const struct {
    const char *name;
    int retriable;
    const char *text;
} err_tab[] = {
#define VD__ERR_ROW(name, retr, text) {#name, retr, text},
    VD_ERR_MAP(VD__ERR_ROW)
#undef VD__ERR_ROW
};

const char *vd_err2str(vd_err e) {
    if ((int)e < 0 || e >= VD_ERR__COUNT)
        return "unknown error";
    return err_tab[e].text;
}

const char *vd_err_name(vd_err e) {
    if ((int)e < 0 || e >= VD_ERR__COUNT)
        return "UNKNOWN";
    return err_tab[e].name;
}

bool vd_err_is_retriable(vd_err e) {
    if ((int)e < 0 || e >= VD_ERR__COUNT)
        return false;
    return err_tab[e].retriable != 0;
}

vd_err vd_seterr(char *errstr, size_t errstr_size, vd_err e, const char *fmt, ...) {
    if (errstr && errstr_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return e;
}

/* ---- logging ---------------------------------------------------------- */
static vd_log_level log_level = VD_LOG_INFO;
static char log_comp[32] = "vecdump";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void vd_log_set_level(vd_log_level lvl) { log_level = lvl; }

void vd_log_set_component(const char *component) {
    snprintf(log_comp, sizeof log_comp, "%s", component ? component : "vecdump");
}

void vd_log(vd_log_level lvl, const char *msg, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < log_level)
        return;
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);

    char extra[2048] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(extra, sizeof extra, fmt, ap);
        va_end(ap);
    }
    /* msg is quoted; embedded quotes and newlines are escaped. */
    char q[1024];
    size_t j = 0;
    for (const char *p = msg ? msg : ""; *p && j + 3 < sizeof q; p++) {
        if (*p == '"' || *p == '\\') {
            q[j++] = '\\';
            q[j++] = *p;
        } else if (*p == '\n') {
            q[j++] = '\\';
            q[j++] = 'n';
        } else {
            q[j++] = *p;
        }
    }
    q[j] = 0;
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "ts=%s.%03ldZ level=%s comp=%s msg=\"%s\"%s%s\n", ts,
            now.tv_nsec / 1000000, names[lvl], log_comp, q, extra[0] ? " " : "", extra);
    pthread_mutex_unlock(&log_lock);
}

/* ---- time ------------------------------------------------------------- */
int64_t vd_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t vd_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- buffers ---------------------------------------------------------- */
void vd_buf_init(vd_buf *b, size_t max) {
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max ? max : SIZE_MAX;
}

void vd_buf_free(vd_buf *b) {
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void vd_buf_reset(vd_buf *b) { b->len = 0; }

vd_err vd_buf_reserve(vd_buf *b, size_t extra) {
    if (extra > b->max || b->len > b->max - extra)
        return VD_ERR_TOO_LARGE;
    size_t need = b->len + extra + 1; /* room for a NUL */
    if (need <= b->cap)
        return VD_ERR_OK;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    char *n = realloc(b->data, ncap);
    if (!n)
        return VD_ERR_NOMEM;
    b->data = n;
    b->cap = ncap;
    return VD_ERR_OK;
}

vd_err vd_buf_append(vd_buf *b, const void *p, size_t n) {
    vd_err e = vd_buf_reserve(b, n);
    if (e)
        return e;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return VD_ERR_OK;
}

vd_err vd_buf_putc(vd_buf *b, char c) { return vd_buf_append(b, &c, 1); }

vd_err vd_buf_printf(vd_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return VD_ERR_INVALID_ARG;
    }
    vd_err e = vd_buf_reserve(b, (size_t)n);
    if (e) {
        va_end(ap2);
        return e;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return VD_ERR_OK;
}

/* ---- ids -------------------------------------------------------------- */
bool vd_id_valid(const char *id, size_t len) {
    if (!id || len == 0 || len > VD_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- hashing ---------------------------------------------------------- */
void vd_hex(const unsigned char *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

struct vd_sha256 {
    EVP_MD_CTX *ctx;
};

vd_sha256 *vd_sha256_new(void) {
    vd_sha256 *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void vd_sha256_update(vd_sha256 *h, const void *p, size_t n) {
    if (n)
        EVP_DigestUpdate(h->ctx, p, n);
}

void vd_sha256_final_hex(vd_sha256 *h, char out[65]) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(h->ctx, md, &mdlen);
    vd_hex(md, 32, out);
    EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void vd_sha256_destroy(vd_sha256 *h) {
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void vd_sha256_hex(const void *p, size_t n, char out[65]) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
    vd_hex(md, 32, out);
}

/* ---- records ---------------------------------------------------------- */
void vd_meta_clear(vd_meta *m) {
    if (!m)
        return;
    free(m->model);
    free(m->distance);
    memset(m, 0, sizeof *m);
}

void vd_doc_clear(vd_doc *d) {
    if (!d)
        return;
    free(d->id);
    free(d->title);
    free(d->source);
    free(d->content_type);
    free(d->sha256);
    free(d->metadata);
    memset(d, 0, sizeof *d);
}

void vd_chunk_clear(vd_chunk *c) {
    if (!c)
        return;
    free(c->id);
    free(c->doc_id);
    free(c->text);
    free(c->embedding);
    free(c->metadata);
    memset(c, 0, sizeof *c);
}

void vd_file_clear(vd_file *f) {
    if (!f)
        return;
    free(f->doc_id);
    free(f->data);
    memset(f, 0, sizeof *f);
}

vd_err vd_embedding_check(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return VD_ERR_BAD_FLOAT;
    return VD_ERR_OK;
}

void vd_f32_from_le(float *dst, const unsigned char *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                     (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
        memcpy(&dst[i], &u, 4);
    }
}

void vd_f32_to_le(unsigned char *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        dst[4 * i] = (unsigned char)u;
        dst[4 * i + 1] = (unsigned char)(u >> 8);
        dst[4 * i + 2] = (unsigned char)(u >> 16);
        dst[4 * i + 3] = (unsigned char)(u >> 24);
    }
}

char *vd_strdup(const char *s) { return s ? strdup(s) : NULL; }

char *vd_strndup(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

vd_chunk *vd_docgroup_add_chunk(vd_docgroup *g) {
    if (g->nchunks == g->chunks_cap) {
        size_t ncap = g->chunks_cap ? g->chunks_cap * 2 : 8;
        vd_chunk *n = realloc(g->chunks, ncap * sizeof *n);
        if (!n)
            return NULL;
        g->chunks = n;
        g->chunks_cap = ncap;
    }
    vd_chunk *c = &g->chunks[g->nchunks++];
    memset(c, 0, sizeof *c);
    return c;
}

void vd_docgroup_clear(vd_docgroup *g) {
    if (!g)
        return;
    vd_doc_clear(&g->doc);
    for (size_t i = 0; i < g->nchunks; i++)
        vd_chunk_clear(&g->chunks[i]);
    free(g->chunks);
    vd_file_clear(&g->file);
    memset(g, 0, sizeof *g);
}

/* ---- text and binary encodings ---------------------------------------- */
bool vd_utf8_valid(const void *p, size_t n) {
    const unsigned char *s = p;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *vd_base64_encode(char *d, const void *in, size_t n) {
    const unsigned char *s = in;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        d[0] = b64_chars[v >> 18];
        d[1] = b64_chars[(v >> 12) & 63];
        d[2] = b64_chars[(v >> 6) & 63];
        d[3] = b64_chars[v & 63];
        d += 4;
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        d[0] = b64_chars[v >> 18];
        d[1] = b64_chars[(v >> 12) & 63];
        d[2] = d[3] = '=';
        d += 4;
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        d[0] = b64_chars[v >> 18];
        d[1] = b64_chars[(v >> 12) & 63];
        d[2] = b64_chars[(v >> 6) & 63];
        d[3] = '=';
        d += 4;
    }
    return d;
}

static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long vd_base64_decode(unsigned char *d, const char *s, size_t n) {
    if (n % 4)
        return -1;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int a = b64_val((unsigned char)s[i]), b = b64_val((unsigned char)s[i + 1]);
        if (a < 0 || b < 0)
            return -1;
        bool last = i + 4 == n;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12;
        if (last && s[i + 2] == '=') {
            if (s[i + 3] != '=' || (b & 15))
                return -1;
            d[o++] = (unsigned char)(v >> 16);
            break;
        }
        int c = b64_val((unsigned char)s[i + 2]);
        if (c < 0)
            return -1;
        v |= (uint32_t)c << 6;
        if (last && s[i + 3] == '=') {
            if (c & 3)
                return -1;
            d[o++] = (unsigned char)(v >> 16);
            d[o++] = (unsigned char)(v >> 8);
            break;
        }
        int e = b64_val((unsigned char)s[i + 3]);
        if (e < 0)
            return -1;
        v |= (uint32_t)e;
        d[o++] = (unsigned char)(v >> 16);
        d[o++] = (unsigned char)(v >> 8);
        d[o++] = (unsigned char)v;
    }
    return o;
}
