/*
 * cli_local.c - `vecdump run …` (a task on this machine, no Kafka) and
 * `vecdump seed`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "vd_tasks.h"

static void local_progress(void *opaque, const vd_progress *p, bool phase_changed) {
    (void)opaque;
    (void)phase_changed;
    fprintf(stderr, "progress phase=%s done=%lld total=%lld bytes=%lld\n", p->phase,
            (long long)p->done, (long long)p->total, (long long)p->bytes);
}

static int64_t i64_opt(const cli_args *a, const char *name, int64_t def) {
    const char *v = cli_get(a, name);
    if (!v)
        return def;
    char *end;
    long long x = strtoll(v, &end, 10);
    return (*end || x < 0) ? def : (int64_t)x;
}

static void print_issues_json(const vd_issues *l) {
    printf("[");
    for (size_t i = 0; i < l->n; i++) {
        const vd_issue *is = &l->items[i];
        /* codes, messages and keys are plain text of ours: escape quotes and backslashes */
        printf("%s{\"code\":\"%s\",\"severity\":\"%s\",\"message\":\"", i ? "," : "", is->code,
               vd_severity_name(is->severity));
        for (const char *p = is->message; *p; p++)
            printf((*p == '"' || *p == '\\') ? "\\%c" : ((unsigned char)*p < 0x20 ? " " : "%c"), *p);
        printf("\",\"key\":\"");
        for (const char *p = is->key; *p; p++)
            printf((*p == '"' || *p == '\\') ? "\\%c" : ((unsigned char)*p < 0x20 ? " " : "%c"), *p);
        printf("\"}");
    }
    printf("]");
}

int cli_run_local(vd_config *conf, const char *kind, const cli_args *a) {
    vd_store_conf sc;
    vd_config_store_conf(conf, &sc);
    char tid[64];
    const char *t = cli_get(a, "task-id");
    snprintf(tid, sizeof tid, "%s", t ? t : "");
    if (!t)
        snprintf(tid, sizeof tid, "local-%lld-%ld", (long long)vd_now_ms(), (long)getpid());
    vd_task_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.redis = &sc;
    ctx.backup_dir = conf->backup_dir;
    ctx.task_id = tid;
    ctx.ns = conf->ns;
    if (!cli_flag(a, "json"))
        ctx.on_progress = local_progress;
    char err[1024] = "";
    vd_err e;
    if (!strcmp(kind, "export")) {
        vd_export_params p;
        memset(&p, 0, sizeof p);
        const char *f = cli_get(a, "format");
        int fmt = VD_CMD_FMT_JSONL;
        if (f && !vd_cmd_format_parse(f, &fmt)) {
            fprintf(stderr, "vecdump: --format must be JSONL, CSV or AVRO\n");
            return VD_EXIT_USAGE;
        }
        p.format = (vd_format)fmt;
        p.compress = cli_flag(a, "compress");
        p.include_files = cli_flag(a, "include-files");
        p.verify_first = cli_flag(a, "verify-first");
        p.fail_on_verify_errors = cli_flag(a, "fail-on-verify-errors");
        p.destination = cli_get(a, "destination");
        vd_export_result r;
        memset(&r, 0, sizeof r);
        e = vd_task_export(&ctx, &p, &r, err, sizeof err);
        if (!e) {
            printf("{\"state\":\"SUCCEEDED\",\"artifact_path\":\"%s\",\"size\":%lld,\"sha256\":\"%s\","
                   "\"documents\":%lld,\"chunks\":%lld,\"files\":%lld,\"duration_ms\":%lld,"
                   "\"warnings\":",
                   r.path, (long long)r.size, r.sha256, (long long)r.counts.documents,
                   (long long)r.counts.chunks, (long long)r.counts.files,
                   (long long)r.duration_ms);
            print_issues_json(&r.warnings);
            printf("}\n");
        }
        vd_export_result_free(&r);
    } else if (!strcmp(kind, "import")) {
        vd_import_params p;
        memset(&p, 0, sizeof p);
        p.source_path = cli_get(a, "source");
        if (!p.source_path) {
            fprintf(stderr, "vecdump: run import needs --source PATH (relative to --backup-dir)\n");
            return VD_EXIT_USAGE;
        }
        p.validate_only = cli_flag(a, "validate-only");
        const char *oc = cli_get(a, "on-conflict");
        int m = VD_CMD_CONFLICT_FAIL;
        if (oc && !vd_cmd_conflict_parse(oc, &m)) {
            fprintf(stderr, "vecdump: --on-conflict must be FAIL, SKIP or OVERWRITE\n");
            return VD_EXIT_USAGE;
        }
        p.on_conflict = (vd_on_conflict)m;
        p.expected_sha256 = cli_get(a, "expected-sha256");
        vd_limits_default(&p.limits);
        p.max_inline_bytes = conf->max_inline_bytes;
        vd_import_result r;
        memset(&r, 0, sizeof r);
        e = vd_task_import(&ctx, &p, &r, err, sizeof err);
        printf("{\"state\":\"%s\",\"imported\":%lld,\"skipped\":%lld,\"overwritten\":%lld,"
               "\"conflicts\":%lld,\"documents\":%lld,\"chunks\":%lld,\"files\":%lld,"
               "\"duration_ms\":%lld,\"validate_only\":%s,\"conflict_ids\":[",
               e ? (e == VD_ERR_CANCELLED ? "CANCELLED" : "FAILED") : "SUCCEEDED",
               (long long)r.imported, (long long)r.skipped, (long long)r.overwritten,
               (long long)r.conflicts, (long long)r.counts.documents, (long long)r.counts.chunks,
               (long long)r.counts.files, (long long)r.duration_ms,
               p.validate_only ? "true" : "false");
        for (size_t i = 0; i < r.nconflict_ids; i++)
            printf("%s\"%s\"", i ? "," : "", r.conflict_ids[i]);
        printf("]}\n");
        vd_import_result_free(&r);
    } else if (!strcmp(kind, "validate")) {
        vd_validate_params p;
        memset(&p, 0, sizeof p);
        p.fix = cli_flag(a, "fix");
        vd_validate_result r;
        memset(&r, 0, sizeof r);
        e = vd_task_validate(&ctx, &p, &r, err, sizeof err);
        if (!e) {
            printf("{\"state\":\"SUCCEEDED\",\"issues_total\":%lld,\"fixed\":%lld,"
                   "\"quarantined\":%lld,\"unfixable\":%lld,\"documents\":%lld,\"chunks\":%lld,"
                   "\"files\":%lld,\"duration_ms\":%lld,\"by_check\":{",
                   (long long)r.issues.total, (long long)r.fixed, (long long)r.quarantined,
                   (long long)r.unfixable, (long long)r.documents, (long long)r.chunks,
                   (long long)r.files, (long long)r.duration_ms);
            for (size_t i = 0; i < r.nchecks; i++)
                printf("%s\"%s\":%lld", i ? "," : "", r.by_check[i].check,
                       (long long)r.by_check[i].count);
            printf("},\"issues\":");
            print_issues_json(&r.issues);
            printf("}\n");
        }
        vd_validate_result_free(&r);
    } else {
        fprintf(stderr, "vecdump: run takes export, import or validate\n");
        return VD_EXIT_USAGE;
    }
    if (e) {
        fprintf(stderr, "vecdump: %s failed: %s: %s\n", kind, vd_err_name(e), err);
        return e == VD_ERR_CANCELLED ? VD_EXIT_CANCELLED : VD_EXIT_FAILED;
    }
    return VD_EXIT_OK;
}

int cli_seed(vd_config *conf, const cli_args *a) {
    vd_store_conf sc;
    vd_config_store_conf(conf, &sc);
    vd_store *s = NULL;
    char err[512];
    if (vd_store_connect(&sc, &s, err, sizeof err)) {
        fprintf(stderr, "vecdump: %s\n", err);
        return VD_EXIT_FAILED;
    }
    if (cli_flag(a, "drop")) {
        int64_t deleted = 0;
        if (vd_store_drop_namespace(s, conf->ns, &deleted, err, sizeof err)) {
            fprintf(stderr, "vecdump: %s\n", err);
            vd_store_destroy(s);
            return VD_EXIT_FAILED;
        }
        fprintf(stderr, "vecdump: dropped %lld keys of namespace %s\n", (long long)deleted, conf->ns);
    }
    vd_seed_conf c;
    memset(&c, 0, sizeof c);
    c.documents = i64_opt(a, "docs", 100);
    c.chunks_per_doc = (int)i64_opt(a, "chunks", 4);
    c.dim = (int)i64_opt(a, "dim", 384);
    c.text_bytes = (int)i64_opt(a, "text-bytes", 400);
    c.with_files = cli_flag(a, "files");
    c.file_bytes = (int)i64_opt(a, "file-bytes", 4096);
    c.seed = (uint64_t)i64_opt(a, "seed", 42);
    c.orphan_chunks = (int)i64_opt(a, "orphans", 0);
    c.missing_embeddings = (int)i64_opt(a, "missing-embeddings", 0);
    c.wrong_dims = (int)i64_opt(a, "wrong-dims", 0);
    c.nans = (int)i64_opt(a, "nans", 0);
    c.index_drift = (int)i64_opt(a, "index-drift", 0);
    vd_store_counts w;
    memset(&w, 0, sizeof w);
    int64_t t0 = vd_mono_ms();
    vd_err e = vd_store_seed(s, conf->ns, &c, &w, err, sizeof err);
    vd_store_destroy(s);
    if (e) {
        fprintf(stderr, "vecdump: seed failed: %s\n", err);
        return VD_EXIT_FAILED;
    }
    printf("{\"namespace\":\"%s\",\"documents\":%lld,\"chunks\":%lld,\"files\":%lld,"
           "\"dim\":%d,\"duration_ms\":%lld}\n",
           conf->ns, (long long)w.documents, (long long)w.chunks, (long long)w.files, c.dim,
           (long long)(vd_mono_ms() - t0));
    return VD_EXIT_OK;
}
