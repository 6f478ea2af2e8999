/*
 * vd_formats.c - format names, default limits, and the dispatch of the
 * public writer / reader API to each format's vtable. Readers recognise the
 * format by content, never by file name.
 */
#include "formats_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *vd_format_name(vd_format f) {
    switch (f) {
    case VD_FMT_JSONL:
        return "JSONL";
    case VD_FMT_CSV:
        return "CSV";
    case VD_FMT_AVRO:
        return "AVRO";
    }
    return "UNKNOWN";
}

const char *vd_format_ext(vd_format f, bool compress) {
    switch (f) {
    case VD_FMT_JSONL:
        return compress ? ".jsonl.gz" : ".jsonl";
    case VD_FMT_CSV:
        return ".csv.zip";
    case VD_FMT_AVRO:
        return ".avro";
    }
    return "";
}

void vd_limits_default(vd_limits *l) {
    l->max_artifact_bytes = (int64_t)64 << 30;
    l->max_record_bytes = (int64_t)256 << 20;
    l->max_ratio = 200;
    l->max_members = 1000000;
    l->max_chunks_per_doc = 1000000;
}

/* ---- writer ------------------------------------------------------------- */

vd_err vd_writer_open(vd_format fmt, const char *path, const vd_artifact_info *info,
                      vd_writer **out, char *errstr, size_t errstr_size) {
    *out = NULL;
    if (!path || !info)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "writer: no path or info");
    vd_writer *w = calloc(1, sizeof *w);
    if (!w)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "writer: out of memory");
    w->fmt = fmt;
    vd_err e;
    switch (fmt) {
    case VD_FMT_JSONL:
        e = vd__jsonl_writer_open(w, path, info, errstr, errstr_size);
        break;
    case VD_FMT_CSV:
#ifdef VD_HAVE_CSVZIP
        e = vd__csvzip_writer_open(w, path, info, errstr, errstr_size);
#else
        e = vd_seterr(errstr, errstr_size, VD_ERR_FORMAT, "CSV format not built in");
#endif
        break;
    case VD_FMT_AVRO:
#ifdef VD_HAVE_AVROFILE
        e = vd__avro_writer_open(w, path, info, errstr, errstr_size);
#else
        e = vd_seterr(errstr, errstr_size, VD_ERR_FORMAT, "Avro format not built in");
#endif
        break;
    default:
        e = vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "unknown format %d", (int)fmt);
        break;
    }
    if (e == VD_ERR_OK && (!w->ops || !w->impl))
        e = vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL, "writer: format set no state");
    if (e) {
        vd_writer_destroy(w);
        return e;
    }
    *out = w;
    return VD_ERR_OK;
}

vd_err vd_writer_put(vd_writer *w, const vd_docgroup *g, char *errstr, size_t errstr_size) {
    if (!w || !g)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "writer_put: NULL argument");
    return w->ops->put(w, g, errstr, errstr_size);
}

int64_t vd_writer_bytes(const vd_writer *w) { return w ? w->ops->bytes(w) : 0; }

vd_err vd_writer_close(vd_writer *w, vd_writer_result *res, char *errstr, size_t errstr_size) {
    if (!w || !res)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "writer_close: NULL argument");
    return w->ops->close(w, res, errstr, errstr_size);
}

void vd_writer_destroy(vd_writer *w) {
    if (!w)
        return;
    if (w->ops && w->impl)
        w->ops->destroy(w);
    free(w);
}

/* ---- reader ------------------------------------------------------------- */

/* What the first bytes say; JSONL when they start with '{' (after a BOM-less
 * start), else VD_ERR_FORMAT. */
static vd_err sniff(const unsigned char *p, size_t n, vd_format *fmt, char *errstr,
                    size_t errstr_size) {
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
        *fmt = VD_FMT_JSONL;
        return VD_ERR_OK;
    }
    if (n >= 4 && memcmp(p, "PK\x03\x04", 4) == 0) {
        *fmt = VD_FMT_CSV;
        return VD_ERR_OK;
    }
    if (n >= 4 && memcmp(p, "Obj\x01", 4) == 0) {
        *fmt = VD_FMT_AVRO;
        return VD_ERR_OK;
    }
    if (n >= 1 && p[0] == '{') {
        *fmt = VD_FMT_JSONL;
        return VD_ERR_OK;
    }
    if (n == 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_FORMAT, "artifact is empty");
    return vd_seterr(errstr, errstr_size, VD_ERR_FORMAT,
                     "unrecognised artifact format (first byte 0x%02x)", p[0]);
}

static vd_err reader_open(const char *path, const void *data, size_t len, const vd_limits *lim,
                          vd_reader **out, char *errstr, size_t errstr_size) {
    *out = NULL;
    vd_limits deflim;
    if (!lim) {
        vd_limits_default(&deflim);
        lim = &deflim;
    }
    unsigned char head[4];
    size_t nhead = 0;
    if (path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return vd_seterr(errstr, errstr_size, errno == ENOENT ? VD_ERR_NOT_FOUND : VD_ERR_IO,
                             "open %s: %s", path, strerror(errno));
        ssize_t k;
        do
            k = pread(fd, head, sizeof head, 0);
        while (k < 0 && errno == EINTR);
        int saved = errno;
        close(fd);
        if (k < 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_IO, "read %s: %s", path,
                             strerror(saved));
        nhead = (size_t)k;
    } else {
        nhead = len < sizeof head ? len : sizeof head;
        if (nhead)
            memcpy(head, data, nhead);
    }
    vd_format fmt = VD_FMT_JSONL;
    vd_err e = sniff(head, nhead, &fmt, errstr, errstr_size);
    if (e)
        return e;

    vd_reader *r = calloc(1, sizeof *r);
    if (!r)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "reader: out of memory");
    r->fmt = fmt;
    switch (fmt) {
    case VD_FMT_JSONL:
        e = vd__jsonl_reader_open(r, path, data, len, lim, errstr, errstr_size);
        break;
    case VD_FMT_CSV:
#ifdef VD_HAVE_CSVZIP
        e = vd__csvzip_reader_open(r, path, data, len, lim, errstr, errstr_size);
#else
        e = vd_seterr(errstr, errstr_size, VD_ERR_FORMAT, "CSV format not built in");
#endif
        break;
    case VD_FMT_AVRO:
#ifdef VD_HAVE_AVROFILE
        e = vd__avro_reader_open(r, path, data, len, lim, errstr, errstr_size);
#else
        e = vd_seterr(errstr, errstr_size, VD_ERR_FORMAT, "Avro format not built in");
#endif
        break;
    }
    if (e == VD_ERR_OK && (!r->ops || !r->impl))
        e = vd_seterr(errstr, errstr_size, VD_ERR_INTERNAL, "reader: format set no state");
    if (e) {
        vd_reader_destroy(r);
        return e;
    }
    *out = r;
    return VD_ERR_OK;
}

vd_err vd_reader_open(const char *path, const vd_limits *lim, vd_reader **out, char *errstr,
                      size_t errstr_size) {
    if (!path || !out)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "reader_open: NULL argument");
    return reader_open(path, NULL, 0, lim, out, errstr, errstr_size);
}

vd_err vd_reader_open_mem(const void *data, size_t len, const vd_limits *lim, vd_reader **out,
                          char *errstr, size_t errstr_size) {
    if ((!data && len) || !out)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "reader_open_mem: NULL argument");
    return reader_open(NULL, data ? data : "", len, lim, out, errstr, errstr_size);
}

vd_format vd_reader_format(const vd_reader *r) { return r->fmt; }

const vd_artifact_info *vd_reader_info(const vd_reader *r) { return &r->info; }

vd_err vd_reader_next(vd_reader *r, vd_docgroup *g, bool *done, char *errstr,
                      size_t errstr_size) {
    if (!r || !g || !done)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "reader_next: NULL argument");
    return r->ops->next(r, g, done, errstr, errstr_size);
}

int64_t vd_reader_bytes(const vd_reader *r) { return r ? r->ops->bytes(r) : 0; }

void vd_reader_destroy(vd_reader *r) {
    if (!r)
        return;
    if (r->ops && r->impl)
        r->ops->destroy(r);
    free((char *)r->info.tool_version);
    free((char *)r->info.task_id);
    free((char *)r->info.ns);
    vd_meta_clear(&r->info.meta);
    free(r);
}
