/*
 * vd_export.c - the export task (SPEC §4, §5): stream every document of a
 * namespace out of Redis into an artifact on the backup volume.
 *
 * The artifact and its sidecar manifest are written under hidden temporary
 * names in the destination directory, fsynced, renamed into place and the
 * directory fsynced, so that no reader ever sees a partial artifact. On any
 * failure or cancel the temporary files are removed and nothing is visible.
 */
#include "tasks_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXPORT_ITER_BATCH 128
/* Read-ahead between the Redis reader thread and the writer (see prefetch). */
#define PREFETCH_MAX_GROUPS 256
#define PREFETCH_MAX_CHUNKS 2048

void vd_export_result_free(vd_export_result *r) {
    if (!r)
        return;
    vd_issues_free(&r->warnings);
}

/* Copies s into out keeping only [A-Za-z0-9._-] (others become '_'). */
static void sanitize_name(const char *s, size_t maxlen, char *out, size_t out_size) {
    size_t n = 0;
    for (; s && *s && n < maxlen && n + 1 < out_size; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        out[n++] = ok ? c : '_';
    }
    out[n] = '\0';
}

/* NS-YYYYMMDDTHHMMSSZ-TASK8.EXT */
static vd_err default_name(const vd_task_ctx *ctx, const vd_export_params *p, int64_t now_ms,
                           char *out, size_t out_size, char *errstr, size_t errstr_size) {
    char ns[129], task8[9], ts[32];
    sanitize_name(ctx->ns, 128, ns, sizeof ns);
    sanitize_name(ctx->task_id, 8, task8, sizeof task8);
    if (!task8[0])
        snprintf(task8, sizeof task8, "local");
    time_t secs = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    int n = snprintf(out, out_size, "%s-%s-%s%s", ns, ts, task8,
                     vd_format_ext(p->format, p->compress));
    if (n < 0 || (size_t)n >= out_size)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "artifact name too long");
    return VD_ERR_OK;
}

/* Runs the integrity check first; its findings become warnings. */
static vd_err verify_first(const vd_task_ctx *ctx, const vd_export_params *p,
                           vd_export_result *res, char *errstr, size_t errstr_size) {
    vd_validate_params vp;
    vd_validate_result vr;
    memset(&vp, 0, sizeof vp);
    memset(&vr, 0, sizeof vr);
    vp.fix = false;
    vd_err e = vd_task_validate(ctx, &vp, &vr, errstr, errstr_size);
    if (e) {
        vd_validate_result_free(&vr);
        return e;
    }
    for (size_t i = 0; i < vr.issues.n; i++) {
        const vd_issue *it = &vr.issues.items[i];
        vd_issues_add(&res->warnings, it->code, it->severity, it->key, "%s", it->message);
    }
    if (vr.issues.total > res->warnings.total)
        res->warnings.total = vr.issues.total;
    int64_t serious = vr.by_severity[VD_SEV_ERROR] + vr.by_severity[VD_SEV_CRITICAL];
    if (serious > 0 && p->fail_on_verify_errors) {
        const vd_issue *first = NULL;
        for (size_t i = 0; i < vr.issues.n && !first; i++)
            if (vr.issues.items[i].severity >= VD_SEV_ERROR)
                first = &vr.issues.items[i];
        e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                      "verify_first found %lld error(s) in namespace %s%s%s%s%s%s; "
                      "run validate with fix or export without fail_on_verify_errors",
                      (long long)serious, ctx->ns, first ? " (first: " : "",
                      first ? first->code : "", first && first->key[0] ? " " : "",
                      first ? first->key : "", first ? ")" : "");
    }
    vd_validate_result_free(&vr);
    return e;
}

/* ---- records that cannot go into a valid artifact ---------------------- */

/*
 * Why chunk c of document doc_id cannot be exported, written into why; false
 * when it can. dim is NS:meta's; prev_seq is the seq of the last chunk kept
 * (have_prev false for the first).
 */
static bool chunk_defect(const vd_chunk *c, const char *doc_id, size_t dim, bool have_prev,
                         int64_t prev_seq, char *why, size_t why_size) {
    if (!c->id || !vd_id_valid(c->id, strlen(c->id)))
        snprintf(why, why_size, "chunk id '%.60s' is not a valid id", c->id ? c->id : "");
    else if (c->doc_id && strcmp(c->doc_id, doc_id) != 0)
        snprintf(why, why_size, "doc_id '%.60s' is not its document %s", c->doc_id, doc_id);
    else if (!c->embedding || c->dim == 0)
        snprintf(why, why_size, "chunk has no embedding");
    else if (c->dim != dim)
        snprintf(why, why_size, "embedding has %zu floats, the namespace's dim is %zu", c->dim,
                 dim);
    else if (vd_embedding_check(c->embedding, c->dim))
        snprintf(why, why_size, "embedding holds NaN or Inf");
    else if (have_prev && c->seq < prev_seq)
        snprintf(why, why_size, "seq %lld is out of order (after %lld)", (long long)c->seq,
                 (long long)prev_seq);
    else
        return false;
    return true;
}

/*
 * Leaves out of g what no valid artifact can hold, recording each as a
 * WARNING issue: chunks (see chunk_defect; the document's chunk_count then
 * becomes the number kept) and, when files are exported, a file whose size
 * or SHA-256 differs from its document's (the document stays, without it).
 */
static void drop_unexportable(const vd_task_ctx *ctx, bool include_files, size_t dim,
                              vd_docgroup *g, vd_export_result *res) {
    const char *doc_id = g->doc.id ? g->doc.id : "";
    char why[200];
    size_t kept = 0;
    int64_t prev_seq = 0;
    for (size_t i = 0; i < g->nchunks; i++) {
        vd_chunk *c = &g->chunks[i];
        if (chunk_defect(c, doc_id, dim, kept > 0, prev_seq, why, sizeof why)) {
            char key[300];
            snprintf(key, sizeof key, "%s:chunk:{%s}:%.128s", ctx->ns, doc_id,
                     c->id ? c->id : "");
            vd_issues_add(&res->warnings, "EXPORT_SKIPPED_CHUNK", VD_SEV_WARNING, key,
                          "not exported: %s", why);
            res->skipped_chunks++;
            vd_chunk_clear(c);
            continue;
        }
        prev_seq = c->seq;
        if (kept != i) {
            g->chunks[kept] = *c;
            memset(c, 0, sizeof *c);
        }
        kept++;
    }
    if (kept != g->nchunks) {
        g->nchunks = kept;
        g->doc.chunk_count = (int64_t)kept;
    }

    if (include_files && g->has_file) {
        char hex[65];
        vd_sha256_hex(g->file.data, g->file.len, hex);
        const char *want = g->doc.sha256 ? g->doc.sha256 : "";
        bool sha_bad = want[0] && strcmp(want, hex) != 0;
        if (sha_bad || (int64_t)g->file.len != g->doc.size) {
            char key[300];
            snprintf(key, sizeof key, "%s:file:{%s}", ctx->ns, doc_id);
            if (sha_bad)
                vd_issues_add(&res->warnings, "EXPORT_SKIPPED_FILE", VD_SEV_WARNING, key,
                              "not exported: file SHA-256 %s is not the document's %.64s "
                              "(the document is exported without its file)",
                              hex, want);
            else
                vd_issues_add(&res->warnings, "EXPORT_SKIPPED_FILE", VD_SEV_WARNING, key,
                              "not exported: file has %zu bytes, the document says %lld "
                              "(the document is exported without its file)",
                              g->file.len, (long long)g->doc.size);
            res->skipped_files++;
            vd_file_clear(&g->file);
            g->has_file = false;
        }
    }
}

/* ---- temp files left by a killed export -------------------------------- */

/* n characters of [A-Za-z0-9] at s (mkstemp / mkdtemp suffixes). */
static bool alnum_run(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return s[n] == '\0';
}

/*
 * The PID in a name of our temp naming, or 0 when the name is not ours:
 * ".BASE.tmp-PID-HEX8" (vd__temp_path: artifact and manifest),
 * ".BASE.tmp-PID-HEX8.tmpXXXXXX" (the CSV writer's spill directory) and
 * ".BASE.tmp-PID-HEX8.XXXXXX" (libzip's output while it closes).
 */
static long temp_name_pid(const char *name) {
    if (name[0] != '.')
        return 0;
    for (const char *t = strstr(name + 1, ".tmp-"); t; t = strstr(t + 1, ".tmp-")) {
        const char *q = t + 5;
        long pid = 0;
        size_t nd = 0;
        while (*q >= '0' && *q <= '9' && nd < 10) {
            pid = pid * 10 + (*q - '0');
            q++;
            nd++;
        }
        if (nd == 0 || *q != '-' || pid <= 1)
            continue;
        q++;
        size_t nh = 0;
        while (nh < 8 && ((q[nh] >= '0' && q[nh] <= '9') || (q[nh] >= 'a' && q[nh] <= 'f')))
            nh++;
        if (nh != 8)
            continue;
        q += 8;
        if (*q == '\0' || (strncmp(q, ".tmp", 4) == 0 && alnum_run(q + 4, 6)) ||
            (q[0] == '.' && alnum_run(q + 1, 6)))
            return pid;
    }
    return 0;
}

/* Whether a live export (maybe in another PID namespace) holds name's lock. */
static bool temp_locked(int dfd, const char *name) {
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool locked = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); /* releases the lock we may have taken */
    return locked;
}

/* Removes a CSV spill directory holding only regular files. */
static bool remove_spill_dir(int dfd, const char *name) {
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return false;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            unlinkat(fd, de->d_name, 0);
    }
    closedir(d);
    return unlinkat(dfd, name, AT_REMOVEDIR) == 0;
}

/*
 * Removes from dir the temp files (and CSV spill directories) of exports
 * whose process is gone: kill(pid, 0) fails with ESRCH and no live process
 * holds the file's lock (an export in another PID namespace sharing the
 * volume keeps one on its artifact temp file). Best effort, never fails.
 */
static void remove_stale_temps(const char *dir, const char *task_id) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    int dfd = dirfd(d);
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long pid = temp_name_pid(de->d_name);
        if (pid <= 0 || (pid_t)pid == getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* alive, or not ours to judge */
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        bool gone = false;
        if (S_ISREG(st.st_mode))
            gone = !temp_locked(dfd, de->d_name) && unlinkat(dfd, de->d_name, 0) == 0;
        else if (S_ISDIR(st.st_mode))
            gone = remove_spill_dir(dfd, de->d_name);
        if (gone) {
            removed++;
            vd_log(VD_LOG_INFO, "removed a stale temp file", "task=%s dir=%s name=%s pid=%ld",
                   task_id, dir, de->d_name, pid);
        }
    }
    closedir(d);
    if (removed)
        vd__fsync_dir(dir, NULL, 0);
}

/* ---- read-ahead: Redis reads overlap the formatting ------------------- */

/*
 * A reader thread runs the store iterator and hands finished document groups
 * to the export loop through a bounded queue (at most PREFETCH_MAX_GROUPS
 * groups and, beyond the first, PREFETCH_MAX_CHUNKS chunks), so that the next
 * window is read from Redis while this one is encoded, compressed and
 * written. Groups come out in the iterator's order. The reader thread alone
 * touches the iterator (and its store connection) until it has been joined.
 */
typedef struct prefetch {
    vd_store_iter *it;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    vd_docgroup q[PREFETCH_MAX_GROUPS]; /* ring: q[head .. head + n) */
    size_t head, n, nchunks;
    bool done, stop;
    vd_err err;
    char errmsg[512];
} prefetch;

static void *prefetch_main(void *arg) {
    prefetch *pf = arg;
    vd_docgroup g;
    memset(&g, 0, sizeof g);
    for (;;) {
        pthread_mutex_lock(&pf->mu);
        while (!pf->stop &&
               (pf->n == PREFETCH_MAX_GROUPS || (pf->n > 0 && pf->nchunks >= PREFETCH_MAX_CHUNKS)))
            pthread_cond_wait(&pf->cv, &pf->mu);
        bool stop = pf->stop;
        pthread_mutex_unlock(&pf->mu);
        if (stop)
            break;
        bool done = false;
        char msg[512];
        msg[0] = '\0';
        vd_err e = vd_store_iter_next(pf->it, &g, &done, msg, sizeof msg);
        pthread_mutex_lock(&pf->mu);
        if (e || done) {
            pf->err = e;
            memcpy(pf->errmsg, msg, sizeof msg);
            pf->done = true;
            pthread_cond_broadcast(&pf->cv);
            pthread_mutex_unlock(&pf->mu);
            break;
        }
        pf->q[(pf->head + pf->n) % PREFETCH_MAX_GROUPS] = g;
        pf->n++;
        pf->nchunks += g.nchunks;
        memset(&g, 0, sizeof g); /* now owned by the queue */
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
    }
    vd_docgroup_clear(&g);
    return NULL;
}

static vd_err prefetch_start(prefetch *pf, vd_store_iter *it, char *errstr, size_t errstr_size) {
    memset(pf, 0, sizeof *pf);
    pf->it = it;
    if (pthread_mutex_init(&pf->mu, NULL) != 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "export: mutex init failed");
    if (pthread_cond_init(&pf->cv, NULL) != 0) {
        pthread_mutex_destroy(&pf->mu);
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "export: condvar init failed");
    }
    int rc = pthread_create(&pf->th, NULL, prefetch_main, pf);
    if (rc != 0) {
        pthread_cond_destroy(&pf->cv);
        pthread_mutex_destroy(&pf->mu);
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "export: start reader thread: %s",
                         strerror(rc));
    }
    pf->started = true;
    return VD_ERR_OK;
}

/* The next group into g, as vd_store_iter_next does (done at the end). */
static vd_err prefetch_next(prefetch *pf, vd_docgroup *g, bool *done, char *errstr,
                            size_t errstr_size) {
    vd_err e = VD_ERR_OK;
    *done = false;
    vd_docgroup_clear(g);
    pthread_mutex_lock(&pf->mu);
    while (pf->n == 0 && !pf->done)
        pthread_cond_wait(&pf->cv, &pf->mu);
    if (pf->n > 0) {
        vd_docgroup *slot = &pf->q[pf->head];
        *g = *slot;
        memset(slot, 0, sizeof *slot);
        pf->head = (pf->head + 1) % PREFETCH_MAX_GROUPS;
        pf->n--;
        pf->nchunks -= g->nchunks;
        pthread_cond_broadcast(&pf->cv);
    } else if (pf->err) {
        e = vd_seterr(errstr, errstr_size, pf->err, "%s", pf->errmsg);
    } else {
        *done = true;
    }
    pthread_mutex_unlock(&pf->mu);
    return e;
}

/* Stops and joins the reader thread and frees what it queued. NULL-safe. */
static void prefetch_stop(prefetch *pf) {
    if (!pf || !pf->started)
        return;
    pthread_mutex_lock(&pf->mu);
    pf->stop = true;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    pthread_join(pf->th, NULL);
    for (; pf->n > 0; pf->n--) {
        vd_docgroup_clear(&pf->q[pf->head]);
        pf->head = (pf->head + 1) % PREFETCH_MAX_GROUPS;
    }
    pthread_cond_destroy(&pf->cv);
    pthread_mutex_destroy(&pf->mu);
    pf->started = false;
}

static bool path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

vd_err vd_task_export(const vd_task_ctx *ctx, const vd_export_params *p,
                      vd_export_result *res, char *errstr, size_t errstr_size) {
    if (errstr && errstr_size)
        errstr[0] = '\0';
    if (!res)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "no result");
    memset(res, 0, sizeof *res);
    vd_issues_init(&res->warnings, 100);
    if (!ctx || !p || !ctx->redis || !ctx->backup_dir || !ctx->ns || !*ctx->ns)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                         "export needs redis, backup_dir and namespace");
    if (p->format != VD_FMT_JSONL && p->format != VD_FMT_CSV && p->format != VD_FMT_AVRO)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "unknown export format %d",
                         (int)p->format);

    const int64_t t0 = vd_mono_ms();
    const int64_t now_ms = vd_now_ms();
    vd_err e = VD_ERR_OK;
    vd_store *s = NULL;
    vd_store_iter *it = NULL;
    vd_writer *w = NULL;
    vd_meta meta;
    vd_docgroup g;
    vd_buf mbuf;
    vd_writer_result wres;
    char name[512], final_path[PATH_MAX], tmp_path[PATH_MAX + 64];
    char man_final[PATH_MAX + 32], man_tmp[PATH_MAX + 96], dir[PATH_MAX];
    bool artifact_placed = false;
    int lock_fd = -1; /* holds a shared lock on the artifact temp file */
    vd__progress pr;
    prefetch pf;

    memset(&meta, 0, sizeof meta);
    memset(&pf, 0, sizeof pf);
    memset(&g, 0, sizeof g);
    memset(&wres, 0, sizeof wres);
    vd_buf_init(&mbuf, 16 * 1024 * 1024);
    tmp_path[0] = man_tmp[0] = '\0';
    vd__progress_init(&pr, ctx);

    if (vd__cancelled(ctx)) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_CANCELLED, "export cancelled before start");
        goto out;
    }

    /* Where the artifact goes: resolved and not yet taken. */
    if (p->destination && *p->destination) {
        snprintf(name, sizeof name, "%s", p->destination);
        if (strlen(p->destination) >= sizeof name) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_PATH, "destination too long");
            goto out;
        }
    } else if ((e = default_name(ctx, p, now_ms, name, sizeof name, errstr, errstr_size))) {
        goto out;
    }
    if ((e = vd_path_resolve(ctx->backup_dir, name, final_path, sizeof final_path, errstr,
                             errstr_size)))
        goto out;
    snprintf(man_final, sizeof man_final, "%s.manifest.json", final_path);
    if (path_exists(final_path) || path_exists(man_final)) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_CONFLICT,
                      "artifact %s already exists in the backup volume", name);
        goto out;
    }
    vd__dirname(final_path, dir, sizeof dir);
    remove_stale_temps(dir, ctx->task_id ? ctx->task_id : "-");

    /* Redis: meta and totals. */
    vd__progress_phase(&pr, "count", -1);
    if ((e = vd_store_connect(ctx->redis, &s, errstr, errstr_size)))
        goto out;
    e = vd_store_meta_get(s, ctx->ns, &meta, errstr, errstr_size);
    if (e == VD_ERR_NOT_FOUND) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOT_FOUND,
                      "namespace %s has no %s:meta: nothing to export (seed or import it first)",
                      ctx->ns, ctx->ns);
        goto out;
    }
    if (e)
        goto out;
    if (meta.dim <= 0) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_BAD_FIELD,
                      "%s:meta says dim %d: an artifact needs the embeddings' dimension",
                      ctx->ns, meta.dim);
        goto out;
    }
    vd_store_counts totals;
    memset(&totals, 0, sizeof totals);
    if ((e = vd_store_count(s, ctx->ns, &totals, errstr, errstr_size)))
        goto out;

    if (p->verify_first) {
        vd__progress_phase(&pr, "verify", totals.documents);
        if ((e = verify_first(ctx, p, res, errstr, errstr_size)))
            goto out;
        if (vd__cancelled(ctx)) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_CANCELLED, "export cancelled");
            goto out;
        }
    }

    /* The artifact, under a hidden temporary name. */
    vd_artifact_info info;
    memset(&info, 0, sizeof info);
    info.tool_version = VD_VERSION;
    info.task_id = ctx->task_id ? ctx->task_id : "";
    info.ns = ctx->ns;
    info.created_at = now_ms;
    info.meta = meta;
    info.include_files = p->include_files;
    info.compress = p->compress;
    if ((e = vd__temp_path(final_path, tmp_path, sizeof tmp_path, errstr, errstr_size)))
        goto out;
    if ((e = vd_writer_open(p->format, tmp_path, &info, &w, errstr, errstr_size)))
        goto out;
    /* Tells remove_stale_temps of other exports that this file is alive (the
     * CSV writer only creates it at close: its spill directory has the PID). */
    lock_fd = open(tmp_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (lock_fd >= 0 && flock(lock_fd, LOCK_SH | LOCK_NB) != 0) {
        close(lock_fd);
        lock_fd = -1;
    }

    vd__progress_phase(&pr, "export", totals.documents);
    if ((e = vd_store_iter_new(s, ctx->ns, p->include_files, EXPORT_ITER_BATCH, &it, errstr,
                               errstr_size)) ||
        (e = prefetch_start(&pf, it, errstr, errstr_size)))
        goto out;
    int64_t ndocs = 0;
    for (;;) {
        if (vd__cancelled(ctx)) {
            e = vd_seterr(errstr, errstr_size, VD_ERR_CANCELLED,
                          "export cancelled after %lld document(s); no artifact written",
                          (long long)ndocs);
            goto out;
        }
        bool done = false;
        if ((e = prefetch_next(&pf, &g, &done, errstr, errstr_size))) {
            if (e == VD_ERR_BAD_DIM && errstr && errstr_size) {
                /* An embedding whose length is not a multiple of 4 bytes. */
                char why[512];
                snprintf(why, sizeof why, "%s", errstr);
                vd_seterr(errstr, errstr_size, e,
                          "%s; the store cannot read that chunk, so it cannot be skipped: "
                          "run validate (EMBEDDING_DIM) and re-embed or delete it",
                          why);
            }
            goto out;
        }
        if (done)
            break;
        drop_unexportable(ctx, p->include_files, (size_t)meta.dim, &g, res);
        e = vd_writer_put(w, &g, errstr, errstr_size);
        vd_docgroup_clear(&g);
        if (e)
            goto out;
        ndocs++;
        vd__progress_update(&pr, ndocs, vd_writer_bytes(w));
    }
    if (ndocs > pr.p.total)
        vd__progress_set_total(&pr, ndocs);
    vd__progress_update(&pr, ndocs, vd_writer_bytes(w));
    vd__progress_flush(&pr);
    prefetch_stop(&pf);
    vd_store_iter_destroy(it);
    it = NULL;

    if ((e = vd_writer_close(w, &wres, errstr, errstr_size)))
        goto out;
    if (vd__cancelled(ctx)) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_CANCELLED, "export cancelled");
        goto out;
    }

    /* The manifest, also under a temporary name, before anything is renamed. */
    const char *leaf = strrchr(final_path, '/');
    leaf = leaf ? leaf + 1 : final_path;
    int64_t duration = vd_mono_ms() - t0;
    vd_manifest man;
    memset(&man, 0, sizeof man);
    man.info = &info;
    man.format = p->format;
    man.artifact_name = leaf;
    man.res = &wres;
    man.source_host = ctx->redis->host ? ctx->redis->host : "127.0.0.1";
    man.source_port = ctx->redis->port ? ctx->redis->port : 6379;
    man.source_db = ctx->redis->db;
    man.duration_ms = duration;
    if ((e = vd_manifest_render(&man, &mbuf))) {
        vd_seterr(errstr, errstr_size, e, "render manifest: %s", vd_err2str(e));
        goto out;
    }
    if ((e = vd__write_temp(man_final, mbuf.data, mbuf.len, man_tmp, sizeof man_tmp, errstr,
                            errstr_size))) {
        man_tmp[0] = '\0';
        goto out;
    }

    /* Place both: artifact first, then its manifest, then the directory. */
    if (rename(tmp_path, final_path) != 0) {
        int err = errno;
        e = vd_seterr(errstr, errstr_size, vd__errno_err(err), "rename %s -> %s: %s", tmp_path,
                      name, strerror(err));
        goto out;
    }
    artifact_placed = true;
    tmp_path[0] = '\0';
    if (rename(man_tmp, man_final) != 0) {
        int err = errno;
        e = vd_seterr(errstr, errstr_size, vd__errno_err(err), "rename manifest of %s: %s",
                      name, strerror(err));
        goto out;
    }
    man_tmp[0] = '\0';
    if ((e = vd__fsync_dir(dir, errstr, errstr_size))) {
        unlink(man_final);
        goto out;
    }
    artifact_placed = false; /* committed: keep it */

    snprintf(res->path, sizeof res->path, "%s", name);
    res->size = wres.bytes;
    memcpy(res->sha256, wres.sha256, sizeof res->sha256);
    res->counts = wres.counts;
    res->duration_ms = vd_mono_ms() - t0;
    vd_log(VD_LOG_INFO, "export done", "task=%s ns=%s artifact=%s documents=%lld chunks=%lld "
           "bytes=%lld duration_ms=%lld skipped_chunks=%lld skipped_files=%lld",
           ctx->task_id ? ctx->task_id : "-", ctx->ns, name, (long long)wres.counts.documents,
           (long long)wres.counts.chunks, (long long)wres.bytes, (long long)res->duration_ms,
           (long long)res->skipped_chunks, (long long)res->skipped_files);
    if (res->skipped_chunks || res->skipped_files)
        vd_log(VD_LOG_WARN, "export left records out",
               "task=%s ns=%s artifact=%s skipped_chunks=%lld skipped_files=%lld "
               "(see the task's warnings; validate reports them)",
               ctx->task_id ? ctx->task_id : "-", ctx->ns, name,
               (long long)res->skipped_chunks, (long long)res->skipped_files);

out:
    if (lock_fd >= 0)
        close(lock_fd);
    prefetch_stop(&pf); /* before the iterator it reads */
    vd_docgroup_clear(&g);
    vd_store_iter_destroy(it);
    vd_writer_destroy(w); /* removes the temp file when not closed */
    if (tmp_path[0])
        unlink(tmp_path);
    if (man_tmp[0])
        unlink(man_tmp);
    if (artifact_placed) {
        unlink(final_path);
        vd__fsync_dir(dir, NULL, 0);
    }
    vd_buf_free(&mbuf);
    vd_meta_clear(&meta);
    vd_store_destroy(s);
    if (e) {
        res->path[0] = '\0';
        res->duration_ms = vd_mono_ms() - t0;
    }
    return e;
}
