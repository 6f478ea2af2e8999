/*
 * vd_task_common.c - what every task shares: severities, issue lists,
 * progress throttling, cancel checks and durable file placement.
 */
#include "tasks_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* ---- severities and issues ------------------------------------------- */
const char *vd_severity_name(vd_severity s) {
    switch (s) {
    case VD_SEV_INFO: return "INFO";
    case VD_SEV_WARNING: return "WARNING";
    case VD_SEV_ERROR: return "ERROR";
    case VD_SEV_CRITICAL: return "CRITICAL";
    }
    return "UNKNOWN";
}

void vd_issues_init(vd_issues *l, size_t max) {
    memset(l, 0, sizeof *l);
    l->max = max ? max : 100;
}

void vd_issues_add(vd_issues *l, const char *code, vd_severity sev, const char *key,
                   const char *fmt, ...) {
    l->total++;
    if (l->max == 0)
        l->max = 100;
    if (l->n >= l->max)
        return;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        if (ncap > l->max)
            ncap = l->max;
        vd_issue *p = realloc(l->items, ncap * sizeof *p);
        if (!p)
            return; /* counted in total; the detail is lost */
        l->items = p;
        l->cap = ncap;
    }
    vd_issue *it = &l->items[l->n++];
    memset(it, 0, sizeof *it);
    snprintf(it->code, sizeof it->code, "%s", code ? code : "");
    it->severity = sev;
    snprintf(it->key, sizeof it->key, "%s", key ? key : "");
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(it->message, sizeof it->message, fmt, ap);
        va_end(ap);
    }
}

void vd_issues_free(vd_issues *l) {
    if (!l)
        return;
    free(l->items);
    size_t max = l->max;
    memset(l, 0, sizeof *l);
    l->max = max;
}

/* ---- progress ---------------------------------------------------------- */
static void progress_emit(vd__progress *pr, bool phase_changed) {
    pr->last_ms = vd_mono_ms();
    if (pr->ctx && pr->ctx->on_progress)
        pr->ctx->on_progress(pr->ctx->opaque, &pr->p, phase_changed);
}

void vd__progress_init(vd__progress *pr, const vd_task_ctx *ctx) {
    memset(pr, 0, sizeof *pr);
    pr->ctx = ctx;
    pr->p.phase = "";
    pr->p.total = -1;
}

void vd__progress_phase(vd__progress *pr, const char *phase, int64_t total) {
    pr->p.phase = phase;
    pr->p.done = 0;
    pr->p.bytes = 0;
    pr->p.total = total;
    progress_emit(pr, true);
}

void vd__progress_update(vd__progress *pr, int64_t done, int64_t bytes) {
    pr->p.done = done;
    pr->p.bytes = bytes;
    if (vd_mono_ms() - pr->last_ms >= VD__PROGRESS_INTERVAL_MS)
        progress_emit(pr, false);
}

void vd__progress_set_total(vd__progress *pr, int64_t total) { pr->p.total = total; }

void vd__progress_flush(vd__progress *pr) { progress_emit(pr, false); }

/* ---- cancel ------------------------------------------------------------ */
bool vd__cancelled(const vd_task_ctx *ctx) {
    return ctx && ctx->cancel && atomic_load(ctx->cancel);
}

/* ---- files ------------------------------------------------------------- */
vd_err vd__errno_err(int errnum) {
    return (errnum == ENOSPC || errnum == EDQUOT) ? VD_ERR_NOSPACE : VD_ERR_IO;
}

void vd__dirname(const char *path, char *dir, size_t dir_size) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, dir_size, ".");
    } else if (slash == path) {
        snprintf(dir, dir_size, "/");
    } else {
        snprintf(dir, dir_size, "%.*s", (int)(slash - path), path);
    }
}

vd_err vd__fsync_dir(const char *dir, char *errstr, size_t errstr_size) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_IO, "open directory %s: %s", dir,
                         strerror(errno));
    if (fsync(fd) != 0 && errno != EINVAL) {
        int e = errno;
        close(fd);
        return vd_seterr(errstr, errstr_size, vd__errno_err(e), "fsync directory %s: %s",
                         dir, strerror(e));
    }
    close(fd);
    return VD_ERR_OK;
}

vd_err vd__temp_path(const char *final_path, char *out, size_t out_size, char *errstr,
                     size_t errstr_size) {
    char dir[4096];
    const char *slash = strrchr(final_path, '/');
    const char *base = slash ? slash + 1 : final_path;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)vd_mono_ms() ^ (uint32_t)(uintptr_t)&rnd;
    vd__dirname(final_path, dir, sizeof dir);
    int n;
    if (slash)
        n = snprintf(out, out_size, "%s/.%s.tmp-%ld-%08x", dir, base, (long)getpid(),
                     (unsigned)rnd);
    else
        n = snprintf(out, out_size, ".%s.tmp-%ld-%08x", base, (long)getpid(), (unsigned)rnd);
    if (n < 0 || (size_t)n >= out_size)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "path too long: %s",
                         final_path);
    return VD_ERR_OK;
}

vd_err vd__write_temp(const char *final_path, const void *data, size_t len, char *tmp_out,
                      size_t tmp_size, char *errstr, size_t errstr_size) {
    vd_err e = vd__temp_path(final_path, tmp_out, tmp_size, errstr, errstr_size);
    if (e)
        return e;
    int fd = open(tmp_out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return vd_seterr(errstr, errstr_size, vd__errno_err(errno), "create %s: %s", tmp_out,
                         strerror(errno));
    const char *p = data;
    size_t left = len;
    const char *step = NULL;
    int err = 0;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            step = "write";
            err = errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!step && fsync(fd) != 0) {
        step = "fsync";
        err = errno;
    }
    if (close(fd) != 0 && !step) {
        step = "close";
        err = errno;
    }
    if (step) {
        unlink(tmp_out);
        return vd_seterr(errstr, errstr_size, vd__errno_err(err), "%s %s: %s", step, tmp_out,
                         strerror(err));
    }
    return VD_ERR_OK;
}
