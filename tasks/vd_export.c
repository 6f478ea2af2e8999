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

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXPORT_ITER_BATCH 128

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
    vd__progress pr;

    memset(&meta, 0, sizeof meta);
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

    vd__progress_phase(&pr, "export", totals.documents);
    if ((e = vd_store_iter_new(s, ctx->ns, p->include_files, EXPORT_ITER_BATCH, &it, errstr,
                               errstr_size)))
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
        if ((e = vd_store_iter_next(it, &g, &done, errstr, errstr_size)))
            goto out;
        if (done)
            break;
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
           "bytes=%lld duration_ms=%lld",
           ctx->task_id ? ctx->task_id : "-", ctx->ns, name, (long long)wres.counts.documents,
           (long long)wres.counts.chunks, (long long)wres.bytes, (long long)res->duration_ms);

out:
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
