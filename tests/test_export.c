/*
 * test_export.c - the export task against a real Redis: every format,
 * naming, atomic placement (no temp file ever visible), manifest, failures
 * (no meta, unwritable volume, file-size limit, Redis unreachable, cancel),
 * the policy for defective data (skipped with warnings, the artifact still
 * imports), stale temp files of killed exports, and a 20k-chunk timing with
 * peak RSS.
 */
#include "vd_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "vd_tasks.h"

static void seed(vd_store *s, const char *ns, int64_t docs, int chunks, int dim, bool files) {
    vd_seed_conf sc;
    memset(&sc, 0, sizeof sc);
    sc.documents = docs;
    sc.chunks_per_doc = chunks;
    sc.dim = dim;
    sc.text_bytes = 120;
    sc.with_files = files;
    sc.file_bytes = 300;
    sc.seed = 42;
    vd_store_counts w;
    char err[256];
    vd_err e = vd_store_seed(s, ns, &sc, &w, err, sizeof err);
    if (e)
        print_message("seed: %s\n", err);
    assert_int_equal(e, VD_ERR_OK);
}

static vd_task_ctx make_ctx(const char *dir, const char *ns, const char *task_id) {
    vd_task_ctx c;
    memset(&c, 0, sizeof c);
    c.redis = vd_test_store_conf();
    c.backup_dir = dir;
    c.ns = ns;
    c.task_id = task_id;
    return c;
}

/* Names in dir (not "." / ".."); counts hidden ones in *hidden. */
static int count_entries(const char *dir, int *hidden) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    *hidden = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        n++;
        if (de->d_name[0] == '.') {
            print_message("hidden entry left: %s\n", de->d_name);
            (*hidden)++;
        }
    }
    closedir(d);
    return n;
}

static void file_sha256(const char *path, char out[65], int64_t *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    vd_sha256 *h = vd_sha256_new();
    unsigned char buf[65536];
    size_t n;
    *size = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        vd_sha256_update(h, buf, n);
        *size += (int64_t)n;
    }
    fclose(f);
    vd_sha256_final_hex(h, out);
    vd_sha256_destroy(h);
}

/* Reads an artifact back and counts what it holds. */
static void read_back(const char *path, vd_counts *c) {
    vd_limits lim;
    vd_limits_default(&lim);
    vd_reader *r = NULL;
    char err[512];
    vd_err e = vd_reader_open(path, &lim, &r, err, sizeof err);
    if (e)
        print_message("reader_open %s: %s\n", path, err);
    assert_int_equal(e, VD_ERR_OK);
    memset(c, 0, sizeof *c);
    for (;;) {
        vd_docgroup g;
        bool done = false;
        memset(&g, 0, sizeof g);
        e = vd_reader_next(r, &g, &done, err, sizeof err);
        if (e)
            print_message("reader_next: %s\n", err);
        assert_int_equal(e, VD_ERR_OK);
        if (done)
            break;
        c->documents++;
        c->chunks += (int64_t)g.nchunks;
        c->files += g.has_file;
        vd_docgroup_clear(&g);
    }
    vd_reader_destroy(r);
}

static void check_manifest(const char *art_path, const vd_export_result *res,
                           const char *ns, const char *task_id) {
    char mpath[PATH_MAX * 2 + 32];
    snprintf(mpath, sizeof mpath, "%s.manifest.json", art_path);
    json_error_t jerr;
    json_t *m = json_load_file(mpath, 0, &jerr);
    if (!m)
        print_message("manifest %s: %s\n", mpath, jerr.text);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "sha256")), res->sha256);
    assert_int_equal(json_integer_value(json_object_get(m, "size")), res->size);
    json_t *counts = json_object_get(m, "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, "documents")),
                     res->counts.documents);
    assert_int_equal(json_integer_value(json_object_get(counts, "chunks")), res->counts.chunks);
    assert_int_equal(json_integer_value(json_object_get(counts, "files")), res->counts.files);
    assert_string_equal(json_string_value(json_object_get(m, "task_id")), task_id);
    json_t *src = json_object_get(m, "source");
    assert_string_equal(json_string_value(json_object_get(src, "namespace")), ns);
    assert_int_equal(json_integer_value(json_object_get(src, "port")), vd_test_store_conf()->port);
    const char *leaf = strrchr(art_path, '/');
    assert_string_equal(json_string_value(json_object_get(m, "artifact")), leaf + 1);
    json_decref(m);
    /* No password field anywhere. */
    FILE *f = fopen(mpath, "r");
    char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_null(strstr(text, "password"));
}

static void test_export_every_format(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("exp"));
    seed(s, ns, 25, 3, 16, true);
    char *dir = vd_test_tmpdir();
    static const struct {
        vd_format fmt;
        bool compress;
        const char *ext;
    } kinds[] = {
        {VD_FMT_JSONL, false, ".jsonl"},
        {VD_FMT_JSONL, true, ".jsonl.gz"},
        {VD_FMT_CSV, false, ".csv.zip"},
        {VD_FMT_AVRO, false, ".avro"},
    };
    int made = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (int files = 0; files <= 1; files++) {
            char task_id[64];
            snprintf(task_id, sizeof task_id, "%02zu%d45678-aaaa-bbbb-cccc-0123456789ab", k,
                     files);
            vd_task_ctx ctx = make_ctx(dir, ns, task_id);
            vd_export_params p;
            memset(&p, 0, sizeof p);
            p.format = kinds[k].fmt;
            p.compress = kinds[k].compress;
            p.include_files = files;
            vd_export_result res;
            char err[512] = "";
            int64_t t0 = vd_mono_ms();
            vd_err e = vd_task_export(&ctx, &p, &res, err, sizeof err);
            if (e)
                print_message("export %s%s files=%d: %s: %s\n", vd_format_name(kinds[k].fmt),
                              kinds[k].compress ? "+gz" : "", files, vd_err_name(e), err);
            assert_int_equal(e, VD_ERR_OK);
            print_message("export %-5s%-3s files=%d: %lld bytes in %lld ms -> %s\n",
                          vd_format_name(kinds[k].fmt), kinds[k].compress ? "+gz" : "", files,
                          (long long)res.size, (long long)(vd_mono_ms() - t0), res.path);
            made += 2;

            /* NS-YYYYMMDDTHHMMSSZ-TASK8.EXT */
            size_t nl = strlen(ns);
            assert_memory_equal(res.path, ns, nl);
            assert_int_equal(res.path[nl], '-');
            const char *ts = res.path + nl + 1;
            assert_int_equal(ts[8], 'T');
            assert_int_equal(ts[15], 'Z');
            assert_int_equal(ts[16], '-');
            assert_memory_equal(ts + 17, task_id, 8);
            assert_string_equal(ts + 25, kinds[k].ext);

            char full[PATH_MAX * 2];
            snprintf(full, sizeof full, "%s/%s", dir, res.path);
            char sha[65];
            int64_t size = 0;
            file_sha256(full, sha, &size);
            assert_string_equal(sha, res.sha256);
            assert_int_equal(size, res.size);
            assert_int_equal(res.counts.documents, 25);
            assert_int_equal(res.counts.chunks, 75);
            assert_int_equal(res.counts.files, files ? 25 : 0);
            assert_true(res.duration_ms >= 0);
            check_manifest(full, &res, ns, task_id);

            vd_counts back;
            read_back(full, &back);
            assert_int_equal(back.documents, 25);
            assert_int_equal(back.chunks, 75);
            assert_int_equal(back.files, files ? 25 : 0);

            int hidden = 0;
            assert_int_equal(count_entries(dir, &hidden), made);
            assert_int_equal(hidden, 0);
            vd_export_result_free(&res);
        }
    }
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

static void test_export_destination(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("dest"));
    seed(s, ns, 5, 2, 8, false);
    char *dir = vd_test_tmpdir();
    char sub[PATH_MAX * 2];
    snprintf(sub, sizeof sub, "%s/nightly", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    vd_task_ctx ctx = make_ctx(dir, ns, "dest-task");
    vd_export_params p;
    memset(&p, 0, sizeof p);
    p.format = VD_FMT_JSONL;
    p.destination = "nightly/mine.jsonl";
    vd_export_result res;
    char err[512] = "";
    assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    assert_string_equal(res.path, "nightly/mine.jsonl");
    vd_export_result_free(&res);

    /* Taken: refused, the existing artifact untouched. */
    assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_CONFLICT);
    print_message("second export: %s\n", err);
    vd_export_result_free(&res);

    static const char *bad[] = {"../escape.jsonl", "/tmp/abs.jsonl", "nightly/../../x.jsonl"};
    for (size_t i = 0; i < 3; i++) {
        p.destination = bad[i];
        assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_PATH);
        vd_export_result_free(&res);
    }
    p.destination = "missing/x.jsonl";
    assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_NOT_FOUND);
    vd_export_result_free(&res);
    int hidden = 0;
    assert_int_equal(count_entries(dir, &hidden), 1);
    assert_int_equal(count_entries(sub, &hidden), 2);
    assert_int_equal(hidden, 0);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

static void test_export_no_meta(void **state) {
    (void)state;
    VD_NEED_REDIS();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("nometa"));
    char *dir = vd_test_tmpdir();
    vd_task_ctx ctx = make_ctx(dir, ns, "nometa-task");
    vd_export_params p;
    memset(&p, 0, sizeof p);
    vd_export_result res;
    char err[512] = "";
    assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "meta"));
    print_message("no meta: %s\n", err);
    int hidden = 0;
    assert_int_equal(count_entries(dir, &hidden), 0);
    vd_export_result_free(&res);
    vd_test_rm_rf(dir);
    free(dir);
}

static void test_export_redis_unreachable(void **state) {
    (void)state;
    char *dir = vd_test_tmpdir();
    vd_store_conf bad;
    memset(&bad, 0, sizeof bad);
    bad.host = "127.0.0.1";
    bad.port = 1; /* nothing listens there */
    bad.timeout_ms = 500;
    vd_task_ctx ctx = make_ctx(dir, "vec", "unreach");
    ctx.redis = &bad;
    vd_export_params p;
    memset(&p, 0, sizeof p);
    vd_export_result res;
    char err[512] = "";
    vd_err e = vd_task_export(&ctx, &p, &res, err, sizeof err);
    assert_int_equal(e, VD_ERR_REDIS_CONN);
    assert_true(vd_err_is_retriable(e));
    int hidden = 0;
    assert_int_equal(count_entries(dir, &hidden), 0);
    vd_export_result_free(&res);
    vd_test_rm_rf(dir);
    free(dir);
}

static void test_export_unwritable(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("ro"));
    seed(s, ns, 5, 2, 8, false);
    vd_export_params p;
    memset(&p, 0, sizeof p);
    vd_export_result res;
    char err[512] = "";
    if (geteuid() != 0) {
        char *dir = vd_test_tmpdir();
        assert_int_equal(chmod(dir, 0555), 0);
        vd_task_ctx ctx = make_ctx(dir, ns, "ro-task");
        assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_IO);
        print_message("read-only dir: %s\n", err);
        int hidden = 0;
        assert_int_equal(count_entries(dir, &hidden), 0);
        vd_export_result_free(&res);
        vd_test_rm_rf(dir);
        free(dir);
    } else {
        /* root ignores modes: /proc/self is a directory nobody can create files in. */
        vd_task_ctx ctx = make_ctx("/proc/self", ns, "ro-task");
        vd_err e = vd_task_export(&ctx, &p, &res, err, sizeof err);
        print_message("unwritable dir (root, /proc/self): %s: %s\n", vd_err_name(e), err);
        assert_int_equal(e, VD_ERR_IO);
        vd_export_result_free(&res);
    }
    vd_test_drop(s, ns);
    vd_store_destroy(s);
}

/* A write failing in the middle (file-size limit, like a full disk) leaves nothing. */
static void test_export_write_fails_midway(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("full"));
    seed(s, ns, 300, 4, 64, true);
    char *dir = vd_test_tmpdir();
    static const vd_format fmts[] = {VD_FMT_JSONL, VD_FMT_CSV, VD_FMT_AVRO};
    for (size_t i = 0; i < 3; i++) {
        struct rlimit old, lim;
        getrlimit(RLIMIT_FSIZE, &old);
        lim = old;
        lim.rlim_cur = 64 * 1024;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        vd_task_ctx ctx = make_ctx(dir, ns, "full-task");
        vd_export_params p;
        memset(&p, 0, sizeof p);
        p.format = fmts[i];
        p.include_files = true;
        vd_export_result res;
        char err[512] = "";
        vd_err e = vd_task_export(&ctx, &p, &res, err, sizeof err);
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, SIG_DFL);
        print_message("%s over the size limit: %s: %s\n", vd_format_name(fmts[i]),
                      vd_err_name(e), err);
        assert_true(e == VD_ERR_IO || e == VD_ERR_NOSPACE);
        int hidden = 0;
        assert_int_equal(count_entries(dir, &hidden), 0);
        vd_export_result_free(&res);
    }
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

static void cancel_on_export(void *opaque, const vd_progress *pg, bool phase_changed) {
    (void)phase_changed;
    atomic_bool *flag = opaque;
    if (strcmp(pg->phase, "export") == 0)
        atomic_store(flag, true);
}

static void test_export_cancel(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("cancel"));
    seed(s, ns, 50, 2, 8, false);
    char *dir = vd_test_tmpdir();
    atomic_bool flag;
    atomic_init(&flag, true);
    vd_task_ctx ctx = make_ctx(dir, ns, "cancel-task");
    ctx.cancel = &flag;
    vd_export_params p;
    memset(&p, 0, sizeof p);
    vd_export_result res;
    char err[512] = "";
    assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_CANCELLED);
    vd_export_result_free(&res);
    /* Cancelled once the export phase has begun: the temp file goes too. */
    atomic_store(&flag, false);
    ctx.on_progress = cancel_on_export;
    ctx.opaque = &flag;
    assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_CANCELLED);
    print_message("cancelled: %s\n", err);
    assert_string_equal(res.path, "");
    int hidden = 0;
    assert_int_equal(count_entries(dir, &hidden), 0);
    vd_export_result_free(&res);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

static void test_export_verify_first(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("verify"));
    seed(s, ns, 10, 2, 8, false);
    char *dir = vd_test_tmpdir();
    vd_task_ctx ctx = make_ctx(dir, ns, "verify01");
    vd_export_params p;
    memset(&p, 0, sizeof p);
    p.verify_first = true;
    p.fail_on_verify_errors = true;
    vd_export_result res;
    char err[512] = "";
    /* Clean data: exported, nothing to report. */
    vd_err e = vd_task_export(&ctx, &p, &res, err, sizeof err);
    if (e)
        print_message("verify_first on clean data: %s\n", err);
    assert_int_equal(e, VD_ERR_OK);
    assert_int_equal(res.warnings.total, 0);
    vd_export_result_free(&res);

    /* Two orphan chunks (ERROR): refused when asked to, warnings otherwise. */
    redisContext *c = vd_store_redis(s);
    for (int i = 0; i < 2; i++) {
        redisReply *r = redisCommand(c, "HSET %s:chunk:{ghost%d}:c0 id c0 doc_id ghost%d seq 0",
                                     ns, i, i);
        assert_non_null(r);
        freeReplyObject(r);
    }
    ctx.task_id = "verify02";
    e = vd_task_export(&ctx, &p, &res, err, sizeof err);
    print_message("verify_first with orphans: %s: %s\n", vd_err_name(e), err);
    assert_int_not_equal(e, VD_ERR_OK);
    assert_true(res.warnings.total >= 2);
    assert_string_equal(res.path, "");
    vd_export_result_free(&res);
    int hidden = 0;
    assert_int_equal(count_entries(dir, &hidden), 2);

    ctx.task_id = "verify03";
    p.fail_on_verify_errors = false;
    assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    assert_true(res.warnings.total >= 2);
    assert_true(res.warnings.n >= 2);
    assert_string_equal(res.warnings.items[0].code, "ORPHAN_CHUNK");
    assert_int_equal(res.counts.documents, 10);
    vd_export_result_free(&res);
    assert_int_equal(count_entries(dir, &hidden), 4);
    assert_int_equal(hidden, 0);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

/* ---- defective data: skipped, said loudly, the artifact still imports ---- */

/* The document id inside "NS:chunk:{DOC}:..." / "NS:file:{DOC}". */
static void key_doc(const char *key, char *out, size_t n) {
    const char *a = strchr(key, '{'), *b = a ? strchr(a, '}') : NULL;
    assert_non_null(b);
    snprintf(out, n, "%.*s", (int)(b - a - 1), a + 1);
}

static void test_export_skips_defects(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96], ns2[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("defects"));
    vd_seed_conf sc;
    memset(&sc, 0, sizeof sc);
    sc.documents = 20;
    sc.chunks_per_doc = 3;
    sc.dim = 8;
    sc.text_bytes = 80;
    sc.with_files = true;
    sc.file_bytes = 200;
    sc.seed = 7;
    sc.missing_embeddings = 2;
    sc.wrong_dims = 2;
    sc.nans = 1;
    vd_store_counts wr;
    char err[512] = "";
    assert_int_equal(vd_store_seed(s, ns, &sc, &wr, err, sizeof err), VD_ERR_OK);
    /* Two files that do not match their documents: one byte changed (SHA-256),
     * one byte more with no sha256 on the document (size). */
    vd_test_cmd(s, "SETRANGE %s:file:{doc-000010} 5 Z", ns);
    vd_test_cmd(s, "HSET %s:doc:{doc-000011} sha256 %s", ns, "");
    vd_test_cmd(s, "APPEND %s:file:{doc-000011} x", ns);
    char *dir = vd_test_tmpdir();
    static const struct {
        vd_format fmt;
        bool compress;
    } kinds[] = {{VD_FMT_JSONL, false}, {VD_FMT_JSONL, true}, {VD_FMT_CSV, false},
                 {VD_FMT_AVRO, false}};
    for (size_t k = 0; k < 4; k++) {
        char tid[32];
        snprintf(tid, sizeof tid, "defect%02zu", k);
        vd_task_ctx ctx = make_ctx(dir, ns, tid);
        vd_export_params p;
        memset(&p, 0, sizeof p);
        p.format = kinds[k].fmt;
        p.compress = kinds[k].compress;
        p.include_files = true;
        vd_export_result res;
        vd_err e = vd_task_export(&ctx, &p, &res, err, sizeof err);
        if (e)
            print_message("export %s: %s: %s\n", vd_format_name(p.format), vd_err_name(e), err);
        assert_int_equal(e, VD_ERR_OK);
        assert_int_equal(res.skipped_chunks, 5);
        assert_int_equal(res.skipped_files, 2);
        assert_int_equal(res.warnings.total, 7);
        assert_int_equal(res.warnings.n, 7);
        assert_int_equal(res.counts.documents, 20);
        assert_int_equal(res.counts.chunks, 60 - 5);
        assert_int_equal(res.counts.files, 20 - 2);
        int nchunk = 0, nfile = 0, why_none = 0, why_dim = 0, why_nan = 0;
        for (size_t i = 0; i < res.warnings.n; i++) {
            const vd_issue *is = &res.warnings.items[i];
            assert_int_equal(is->severity, VD_SEV_WARNING);
            if (!strcmp(is->code, "EXPORT_SKIPPED_CHUNK")) {
                nchunk++;
                char want[160];
                snprintf(want, sizeof want, "%s:chunk:{", ns);
                assert_memory_equal(is->key, want, strlen(want));
                assert_non_null(strstr(is->key, "}:c0000"));
                why_none += strstr(is->message, "no embedding") != NULL;
                why_dim += strstr(is->message, "7 floats") != NULL;
                why_nan += strstr(is->message, "NaN") != NULL;
            } else {
                assert_string_equal(is->code, "EXPORT_SKIPPED_FILE");
                char k10[160], k11[160];
                snprintf(k10, sizeof k10, "%s:file:{doc-000010}", ns);
                snprintf(k11, sizeof k11, "%s:file:{doc-000011}", ns);
                assert_true(!strcmp(is->key, k10) || !strcmp(is->key, k11));
                assert_non_null(strstr(is->message, !strcmp(is->key, k10) ? "SHA-256" : "201 bytes"));
                nfile++;
            }
        }
        assert_int_equal(nchunk, 5);
        assert_int_equal(nfile, 2);
        assert_int_equal(why_none, 2);
        assert_int_equal(why_dim, 2);
        assert_int_equal(why_nan, 1);
        print_message("%s%s: %lld chunks and %lld files skipped, e.g. %s %s: %s\n",
                      vd_format_name(p.format), p.compress ? "+gz" : "",
                      (long long)res.skipped_chunks, (long long)res.skipped_files,
                      res.warnings.items[0].code, res.warnings.items[0].key,
                      res.warnings.items[0].message);

        /* The artifact imports cleanly into another namespace. */
        snprintf(ns2, sizeof ns2, "%s", vd_test_ns("defects_in"));
        vd_task_ctx ictx = make_ctx(dir, ns2, tid);
        vd_import_params ip;
        memset(&ip, 0, sizeof ip);
        ip.source_path = res.path;
        vd_limits_default(&ip.limits);
        vd_import_result ir;
        e = vd_task_import(&ictx, &ip, &ir, err, sizeof err);
        if (e)
            print_message("import %s: %s: %s\n", res.path, vd_err_name(e), err);
        assert_int_equal(e, VD_ERR_OK);
        assert_int_equal(ir.imported, 20);
        assert_int_equal(ir.counts.chunks, 55);
        assert_int_equal(ir.counts.files, 18);
        vd_import_result_free(&ir);
        /* Each document that lost a chunk says so in its chunk_count; the
         * skipped chunk and files are not there. */
        for (size_t i = 0; i < res.warnings.n; i++) {
            const vd_issue *is = &res.warnings.items[i];
            char doc[64];
            key_doc(is->key, doc, sizeof doc);
            vd_docgroup g;
            memset(&g, 0, sizeof g);
            assert_int_equal(vd_store_doc_get(s, ns2, doc, true, &g, err, sizeof err), VD_ERR_OK);
            if (!strcmp(is->code, "EXPORT_SKIPPED_CHUNK")) {
                assert_int_equal(g.nchunks, 2);
                assert_int_equal(g.doc.chunk_count, 2);
                assert_int_equal(vd_test_cmd_int(s, "EXISTS %s:chunk:{%s}:c0000", ns2, doc), 0);
                assert_true(g.has_file);
            } else {
                assert_int_equal(g.nchunks, 3);
                assert_false(g.has_file);
                assert_int_equal(vd_test_cmd_int(s, "EXISTS %s:file:{%s}", ns2, doc), 0);
            }
            vd_docgroup_clear(&g);
        }
        vd_test_drop(s, ns2);
        vd_export_result_free(&res);
    }
    int hidden = 0;
    assert_int_equal(count_entries(dir, &hidden), 8);
    assert_int_equal(hidden, 0);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

/*
 * An embedding whose length is not a multiple of 4 bytes: the store's reader
 * refuses the whole window (VD_ERR_BAD_DIM), so the export cannot skip just
 * that chunk yet. It fails naming the key and leaves nothing behind.
 */
static void test_export_odd_length_embedding(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("oddemb"));
    seed(s, ns, 5, 2, 8, false);
    vd_test_cmd(s, "HSET %s:chunk:{doc-000002}:c0001 embedding abcdefg", ns);
    char *dir = vd_test_tmpdir();
    vd_task_ctx ctx = make_ctx(dir, ns, "oddemb01");
    vd_export_params p;
    memset(&p, 0, sizeof p);
    vd_export_result res;
    char err[1024] = "";
    vd_err e = vd_task_export(&ctx, &p, &res, err, sizeof err);
    print_message("odd-length embedding: %s: %s\n", vd_err_name(e), err);
    assert_int_equal(e, VD_ERR_BAD_DIM);
    assert_non_null(strstr(err, "{doc-000002}:c0001"));
    assert_non_null(strstr(err, "validate"));
    int hidden = 0;
    assert_int_equal(count_entries(dir, &hidden), 0);
    vd_export_result_free(&res);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

/* ---- stale temp files of killed exports ----------------------------------- */

static void touch(const char *dir, const char *name) {
    char path[PATH_MAX * 2];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("partial", f);
    fclose(f);
}

static bool exists_in(const char *dir, const char *name) {
    char path[PATH_MAX * 2];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof path);
    return lstat(path, &st) == 0;
}

/* A PID that certainly belonged to a process that has exited. */
static pid_t dead_pid(void) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(kill(pid, 0), -1);
    return pid;
}

static void test_export_removes_stale_temps(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("stale"));
    seed(s, ns, 5, 2, 8, false);
    char *dir = vd_test_tmpdir();
    char sub[PATH_MAX * 2];
    snprintf(sub, sizeof sub, "%s/nightly", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    long dead = (long)dead_pid(), live = (long)getppid();

    char stale[6][160], keep[7][160];
    /* ours, of a dead process: removed */
    snprintf(stale[0], 160, ".vec-20260101T000000Z-abcd1234.jsonl.tmp-%ld-0123abcd", dead);
    snprintf(stale[1], 160, ".vec-20260101T000000Z-abcd1234.jsonl.manifest.json.tmp-%ld-deadbeef", dead);
    snprintf(stale[2], 160, ".x.csv.zip.tmp-%ld-00ff00ff.Ab12Cd", dead);      /* libzip's */
    snprintf(stale[3], 160, "..x.csv.zip.tmp-%ld-00ff00ff.tmpQz09aB", dead);  /* CSV spill dir */
    snprintf(stale[4], 160, ".in-sub.avro.tmp-%ld-00000001", dead);           /* in nightly/ */
    snprintf(stale[5], 160, ".x.avro.tmp-%ld-0000000f", dead);
    /* not ours, alive, or locked: kept */
    snprintf(keep[0], 160, ".y.jsonl.tmp-%ld-0123abcd", live);
    snprintf(keep[1], 160, "notes.tmp-%ld-0123abcd", dead);        /* not hidden */
    snprintf(keep[2], 160, ".z.jsonl.tmp-%ld-0123abcX", dead);      /* not 8 hex */
    snprintf(keep[3], 160, ".z.jsonl.tmp-%ld-0123abcd.bak", dead);  /* other suffix */
    snprintf(keep[4], 160, ".locked.jsonl.tmp-%ld-11111111", dead); /* a live lock */
    snprintf(keep[5], 160, ".hidden-user-file");
    snprintf(keep[6], 160, ".w.jsonl.tmp--0123abcd");
    touch(dir, stale[0]);
    touch(dir, stale[1]);
    touch(dir, stale[2]);
    char spill[PATH_MAX * 2];
    snprintf(spill, sizeof spill, "%s/%s", dir, stale[3]);
    assert_int_equal(mkdir(spill, 0700), 0);
    touch(spill, "documents.csv");
    touch(spill, "chunks.csv");
    touch(sub, stale[4]);
    touch(dir, stale[5]);
    for (int i = 0; i < 7; i++)
        touch(dir, keep[i]);
    char lpath[PATH_MAX * 2];
    snprintf(lpath, sizeof lpath, "%s/%s", dir, keep[4]);
    int lfd = open(lpath, O_RDONLY);
    assert_true(lfd >= 0);
    assert_int_equal(flock(lfd, LOCK_SH), 0);

    vd_task_ctx ctx = make_ctx(dir, ns, "stale001");
    vd_export_params p;
    memset(&p, 0, sizeof p);
    vd_export_result res;
    char err[512] = "";
    assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    vd_export_result_free(&res);
    for (int i = 0; i < 6; i++) {
        bool there = i == 4 ? exists_in(sub, stale[i]) : exists_in(dir, stale[i]);
        if (i == 4)
            assert_true(there); /* another directory: not touched by this export */
        else {
            if (there)
                print_message("stale temp left: %s\n", stale[i]);
            assert_false(there);
        }
    }
    for (int i = 0; i < 7; i++) {
        if (!exists_in(dir, keep[i]))
            print_message("removed but should stay: %s\n", keep[i]);
        assert_true(exists_in(dir, keep[i]));
    }
    /* An export into nightly/ cleans nightly/. */
    p.destination = "nightly/n.jsonl";
    ctx.task_id = "stale002";
    assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    vd_export_result_free(&res);
    assert_false(exists_in(sub, stale[4]));
    assert_true(exists_in(sub, "n.jsonl"));
    /* Once its holder is gone, the locked one goes too. */
    close(lfd);
    p.destination = NULL;
    ctx.task_id = "stale003";
    assert_int_equal(vd_task_export(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    vd_export_result_free(&res);
    assert_false(exists_in(dir, keep[4]));
    int hidden = 0;
    /* 2 artifacts + 2 manifests + nightly/ + 6 kept */
    assert_int_equal(count_entries(dir, &hidden), 2 * 2 + 1 + 6);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

typedef struct prog_log {
    int events, phase_changes;
    int64_t last_done, last_total;
} prog_log;

static void log_progress(void *opaque, const vd_progress *pg, bool phase_changed) {
    prog_log *l = opaque;
    l->events++;
    l->phase_changes += phase_changed;
    if (strcmp(pg->phase, "export") == 0) {
        l->last_done = pg->done;
        l->last_total = pg->total;
    }
}

static void test_export_20k_chunks(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("perf"));
    int64_t t0 = vd_mono_ms();
    seed(s, ns, 2000, 10, 384, false);
    print_message("seed 2000 docs x 10 chunks, dim 384: %lld ms\n",
                  (long long)(vd_mono_ms() - t0));
    char *dir = vd_test_tmpdir();
    static const struct {
        vd_format fmt;
        bool compress;
    } kinds[] = {{VD_FMT_JSONL, false}, {VD_FMT_JSONL, true}, {VD_FMT_CSV, false},
                 {VD_FMT_AVRO, false}};
    for (size_t k = 0; k < 4; k++) {
        char task_id[32];
        snprintf(task_id, sizeof task_id, "perf%04zu", k);
        vd_task_ctx ctx = make_ctx(dir, ns, task_id);
        prog_log pl;
        memset(&pl, 0, sizeof pl);
        ctx.on_progress = log_progress;
        ctx.opaque = &pl;
        vd_export_params p;
        memset(&p, 0, sizeof p);
        p.format = kinds[k].fmt;
        p.compress = kinds[k].compress;
        vd_export_result res;
        char err[512] = "";
        vd_err e = vd_task_export(&ctx, &p, &res, err, sizeof err);
        if (e)
            print_message("export: %s\n", err);
        assert_int_equal(e, VD_ERR_OK);
        assert_int_equal(res.counts.chunks, 20000);
        assert_int_equal(pl.last_done, 2000);
        assert_int_equal(pl.last_total, 2000);
        assert_true(pl.phase_changes >= 2);
        print_message("20k chunks %s%s: %lld ms, %lld bytes, %d progress events, "
                      "peak RSS %ld KiB\n",
                      vd_format_name(kinds[k].fmt), kinds[k].compress ? "+gz" : "",
                      (long long)res.duration_ms, (long long)res.size, pl.events,
                      vd_test_peak_rss_kb());
        vd_export_result_free(&res);
    }
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_every_format),
        cmocka_unit_test(test_export_destination),
        cmocka_unit_test(test_export_no_meta),
        cmocka_unit_test(test_export_redis_unreachable),
        cmocka_unit_test(test_export_unwritable),
        cmocka_unit_test(test_export_write_fails_midway),
        cmocka_unit_test(test_export_cancel),
        cmocka_unit_test(test_export_verify_first),
        cmocka_unit_test(test_export_skips_defects),
        cmocka_unit_test(test_export_odd_length_embedding),
        cmocka_unit_test(test_export_removes_stale_temps),
        cmocka_unit_test(test_export_20k_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
