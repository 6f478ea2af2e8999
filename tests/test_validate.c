/* test_validate.c - vd_task_validate: every check finds its planted defect
 * with its stable code and exact count; fix repairs what it can, moves
 * orphans and wrong-typed keys to quarantine, deletes nothing. */
#include "vd_test.h"
#include "vd_tasks.h"

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vd_store_conf redis_conf(void) {
    vd_store_conf c = {.host = "127.0.0.1", .port = vd_test_redis_port(), .timeout_ms = 5000};
    return c;
}

/* Keys of the namespace (SCAN), quarantine included: robust against other
 * tests sharing the server, unlike DBSIZE. */
static long long ns_keys(vd_store *s, const char *ns) {
    char cursor[32] = "0";
    long long n = 0;
    do {
        redisReply *r = redisCommand(vd_store_redis(s), "SCAN %s MATCH %s:* COUNT 1000", cursor, ns);
        assert_non_null(r);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        n += (long long)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

static void seed(vd_store *s, const char *ns, const vd_seed_conf *c) {
    char err[256];
    vd_store_counts w;
    vd_err e = vd_store_seed(s, ns, c, &w, err, sizeof err);
    if (e)
        print_message("seed: %s\n", err);
    assert_int_equal(e, VD_ERR_OK);
}

typedef struct prog {
    int calls, scan, fix;
    int64_t last_done, last_total;
} prog;

static void on_progress(void *opaque, const vd_progress *p, bool phase_changed) {
    prog *g = opaque;
    (void)phase_changed;
    g->calls++;
    if (strcmp(p->phase, "scan") == 0)
        g->scan++;
    if (strcmp(p->phase, "fix") == 0)
        g->fix++;
    g->last_done = p->done;
    g->last_total = p->total;
}

static vd_err run(const char *ns, bool fix, const char **checks, size_t nchecks,
                  vd_validate_result *res, prog *g) {
    vd_store_conf c = redis_conf();
    vd_task_ctx ctx = {.redis = &c, .ns = ns, .task_id = "t-validate",
                       .on_progress = g ? on_progress : NULL, .opaque = g};
    vd_validate_params p = {.fix = fix, .checks = checks, .nchecks = nchecks};
    char err[256] = "";
    vd_err e = vd_task_validate(&ctx, &p, res, err, sizeof err);
    if (e)
        print_message("validate: %s (%s)\n", vd_err_name(e), err);
    return e;
}

static int64_t code_count(const vd_validate_result *r, const char *code) {
    int64_t n = 0;
    for (size_t i = 0; i < r->issues.n; i++)
        if (strcmp(r->issues.items[i].code, code) == 0)
            n++;
    return n;
}

static int64_t check_count(const vd_validate_result *r, const char *check) {
    for (size_t i = 0; i < r->nchecks; i++)
        if (strcmp(r->by_check[i].check, check) == 0)
            return r->by_check[i].count;
    return -1;
}

static const vd_issue *find_issue(const vd_validate_result *r, const char *code) {
    for (size_t i = 0; i < r->issues.n; i++)
        if (strcmp(r->issues.items[i].code, code) == 0)
            return &r->issues.items[i];
    return NULL;
}

static void dump(const vd_validate_result *r) {
    for (size_t i = 0; i < r->issues.n; i++)
        print_message("  %-20s %-8s %-40s %s\n", r->issues.items[i].code,
                      vd_severity_name(r->issues.items[i].severity), r->issues.items[i].key,
                      r->issues.items[i].message);
}

/* 200 documents of 3 chunks, files of 300 bytes; planted: 3 orphan chunks,
 * 2 missing embeddings, 2 wrong dims, 2 NaNs, 4 index drifts (on documents
 * 1, 21, 41 … 181). Hand-made, on other documents: see below. */
static void make_defects(vd_store *s, const char *ns) {
    vd_seed_conf sc = {.documents = 200, .chunks_per_doc = 3, .dim = 16, .text_bytes = 64,
                       .with_files = true, .file_bytes = 300, .seed = 42,
                       .orphan_chunks = 3, .missing_embeddings = 2, .wrong_dims = 2,
                       .nans = 2, .index_drift = 4};
    seed(s, ns, &sc);
    /* CHUNK_COUNT */
    vd_test_cmd(s, "HSET %s:doc:{doc-000005} chunk_count 99", ns);
    /* FILE_SHA256 */
    vd_test_cmd(s, "SETRANGE %s:file:{doc-000007} 0 XYZ", ns);
    /* RECORD_WRONG_TYPE x2: a chunk key holding a string, a file key holding a hash */
    vd_test_cmd(s, "SET %s:chunk:{doc-000009}:bogus not-a-hash", ns);
    vd_test_cmd(s, "DEL %s:file:{doc-000011}", ns);
    vd_test_cmd(s, "HSET %s:file:{doc-000011} a b", ns);
    /* FILE_ORPHAN, with its quarantine name already taken */
    vd_test_cmd(s, "SET %s:file:{ghost-1} orphan-bytes", ns);
    vd_test_cmd(s, "SET %s:quarantine:file:{ghost-1} earlier", ns);
    /* INDEX_STALE_DOC */
    vd_test_cmd(s, "SADD %s:docs ghost-2", ns);
    /* CHUNK_INDEX_STALE (and CHUNK_COUNT: 3 != 4) */
    vd_test_cmd(s, "ZADD %s:doc:{doc-000013}:chunks 99 c0099", ns);
    /* DOC_FIELD_MISSING */
    vd_test_cmd(s, "HDEL %s:doc:{doc-000015} created_at", ns);
}

static void test_defects_found_and_fixed(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    const char *ns = vd_test_ns("val");
    make_defects(s, ns);

    vd_validate_result r;
    prog g = {0};
    assert_int_equal(run(ns, false, NULL, 0, &r, &g), VD_ERR_OK);
    dump(&r);
    assert_int_equal(code_count(&r, "ORPHAN_CHUNK"), 3);
    assert_int_equal(code_count(&r, "EMBEDDING_MISSING"), 2);
    assert_int_equal(code_count(&r, "EMBEDDING_DIM"), 2);
    assert_int_equal(code_count(&r, "EMBEDDING_NAN"), 2);
    assert_int_equal(code_count(&r, "INDEX_MISSING_DOC"), 2);
    assert_int_equal(code_count(&r, "CHUNK_NOT_INDEXED"), 2);
    assert_int_equal(code_count(&r, "CHUNK_COUNT"), 4);
    assert_int_equal(code_count(&r, "FILE_SHA256"), 1);
    assert_int_equal(code_count(&r, "RECORD_WRONG_TYPE"), 2);
    assert_int_equal(code_count(&r, "FILE_ORPHAN"), 1);
    assert_int_equal(code_count(&r, "INDEX_STALE_DOC"), 1);
    assert_int_equal(code_count(&r, "CHUNK_INDEX_STALE"), 1);
    assert_int_equal(code_count(&r, "DOC_FIELD_MISSING"), 1);
    assert_int_equal(code_count(&r, "META_MISSING"), 0);
    assert_int_equal(r.issues.total, 24);
    assert_int_equal((int64_t)r.issues.n, 24);
    /* per check */
    assert_int_equal(r.nchecks, 8);
    assert_int_equal(check_count(&r, "orphans"), 4);
    assert_int_equal(check_count(&r, "embeddings"), 6);
    assert_int_equal(check_count(&r, "index"), 6);
    assert_int_equal(check_count(&r, "chunk_count"), 4);
    assert_int_equal(check_count(&r, "file_sha"), 1);
    assert_int_equal(check_count(&r, "types"), 2);
    assert_int_equal(check_count(&r, "fields"), 1);
    assert_int_equal(check_count(&r, "meta"), 0);
    /* severities and keys */
    assert_int_equal(r.by_severity[VD_SEV_ERROR], 3 + 6 + 1 + 2 + 1 + 1);
    assert_int_equal(r.by_severity[VD_SEV_WARNING], 2 + 2 + 4 + 1 + 1);
    char want[200];
    snprintf(want, sizeof want, "%s:chunk:{orphan-000002}:c0000", ns);
    const vd_issue *is = NULL;
    for (size_t i = 0; i < r.issues.n; i++)
        if (strcmp(r.issues.items[i].key, want) == 0)
            is = &r.issues.items[i];
    assert_non_null(is);
    assert_string_equal(is->code, "ORPHAN_CHUNK");
    assert_int_equal(is->severity, VD_SEV_ERROR);
    assert_non_null(strstr(find_issue(&r, "EMBEDDING_MISSING")->message, "needs re-embedding"));
    assert_int_equal(find_issue(&r, "INDEX_MISSING_DOC")->severity, VD_SEV_WARNING);
    for (size_t i = 0; i < r.issues.n; i++) {   /* every finding names its key */
        assert_int_equal(strncmp(r.issues.items[i].key, ns, strlen(ns)), 0);
        assert_int_equal(r.issues.items[i].key[strlen(ns)], ':');
    }
    snprintf(want, sizeof want, "%s:chunk:{doc-000141}:c0000", ns);
    for (size_t i = 0; i < r.issues.n; i++)
        if (strcmp(r.issues.items[i].code, "CHUNK_NOT_INDEXED") == 0 &&
            strcmp(r.issues.items[i].key, want) == 0)
            is = &r.issues.items[i];
    assert_string_equal(is->key, want);
    /* stats and accounting */
    assert_int_equal(r.documents, 200);
    assert_int_equal(r.chunks, 603);
    assert_int_equal(r.files, 200);
    assert_int_equal(r.unfixable, 8);
    assert_int_equal(r.fixed, 0);
    assert_int_equal(r.quarantined, 0);
    assert_true(g.scan >= 2);
    assert_int_equal(g.fix, 0);
    assert_int_equal(g.last_done, g.last_total);
    vd_validate_result_free(&r);

    /* fix: nothing is deleted; the only new key is the quarantine log */
    long long before = ns_keys(s, ns);
    long long db_before = vd_test_cmd_int(s, "DBSIZE");
    memset(&g, 0, sizeof g);
    assert_int_equal(run(ns, true, NULL, 0, &r, &g), VD_ERR_OK);
    long long after = ns_keys(s, ns);
    print_message("fix: fixed=%lld quarantined=%lld unfixable=%lld keys %lld -> %lld "
                  "(DBSIZE %lld -> %lld)\n",
                  (long long)r.fixed, (long long)r.quarantined, (long long)r.unfixable, before,
                  after, db_before, vd_test_cmd_int(s, "DBSIZE"));
    assert_int_equal(r.issues.total, 24);              /* the report is the detection */
    assert_int_equal(r.quarantined, 6);
    assert_int_equal(r.fixed, 6 + 2 + 2 + 1 + 1 + 1);  /* moves, SADD, ZADD, ZREM, SREM, HSET */
    assert_int_equal(r.unfixable, 8);
    assert_int_equal(after, before + 1);
    assert_true(g.fix >= 2);
    vd_validate_result_free(&r);

    /* quarantine: where things went, and why */
    assert_int_equal(vd_test_cmd_int(s, "EXISTS %s:quarantine:chunk:{orphan-000001}:c0000", ns), 1);
    assert_int_equal(vd_test_cmd_int(s, "EXISTS %s:quarantine:chunk:{doc-000009}:bogus", ns), 1);
    assert_int_equal(vd_test_cmd_int(s, "EXISTS %s:quarantine:file:{doc-000011}", ns), 1);
    assert_int_equal(vd_test_cmd_int(s, "EXISTS %s:quarantine:file:{ghost-1}:1", ns), 1);
    assert_int_equal(vd_test_cmd_int(s, "EXISTS %s:chunk:{orphan-000002}:c0000", ns), 0);
    assert_int_equal(vd_test_cmd_int(s, "HLEN %s:quarantine:log", ns), 6);
    /* repairs */
    assert_int_equal(vd_test_cmd_int(s, "SISMEMBER %s:docs ghost-2", ns), 0);
    assert_int_equal(vd_test_cmd_int(s, "SCARD %s:docs", ns), 200);
    assert_int_equal(vd_test_cmd_int(s, "ZCARD %s:doc:{doc-000013}:chunks", ns), 3);
    /* unfixable records stay in place */
    assert_int_equal(vd_test_cmd_int(s, "EXISTS %s:chunk:{doc-000001}:c0000", ns), 1);

    /* second run: only unfixable findings remain, nothing more to fix */
    assert_int_equal(run(ns, true, NULL, 0, &r, NULL), VD_ERR_OK);
    dump(&r);
    assert_int_equal(r.issues.total, 8);
    assert_int_equal(r.unfixable, 8);
    assert_int_equal(r.fixed, 0);
    assert_int_equal(r.quarantined, 0);
    assert_int_equal(code_count(&r, "EMBEDDING_MISSING") + code_count(&r, "EMBEDDING_DIM") +
                         code_count(&r, "EMBEDDING_NAN"),
                     6);
    assert_int_equal(code_count(&r, "FILE_SHA256"), 1);
    assert_int_equal(code_count(&r, "DOC_FIELD_MISSING"), 1);
    assert_int_equal(r.documents, 200);
    assert_int_equal(r.chunks, 600);
    assert_int_equal(r.files, 199);
    assert_int_equal(ns_keys(s, ns), after);
    vd_validate_result_free(&r);

    vd_test_drop(s, ns);
    vd_store_destroy(s);
}

static void test_meta_checks(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    const char *a = vd_test_ns("nometa");
    const char *b = vd_test_ns("badmeta");
    vd_seed_conf sc = {.documents = 5, .chunks_per_doc = 2, .dim = 8, .text_bytes = 16,
                       .seed = 7};
    seed(s, a, &sc);
    seed(s, b, &sc);
    vd_test_cmd(s, "DEL %s:meta", a);
    vd_test_cmd(s, "HSET %s:meta schema_version 2 dim many", b);

    vd_validate_result r;
    assert_int_equal(run(a, true, NULL, 0, &r, NULL), VD_ERR_OK);
    dump(&r);
    assert_int_equal(r.issues.total, 1);
    assert_int_equal(code_count(&r, "META_MISSING"), 1);
    assert_int_equal(r.by_severity[VD_SEV_CRITICAL], 1);
    assert_int_equal(r.unfixable, 1);
    assert_int_equal(r.fixed, 0);
    vd_validate_result_free(&r);

    assert_int_equal(run(b, false, NULL, 0, &r, NULL), VD_ERR_OK);
    dump(&r);
    assert_int_equal(r.issues.total, 2);
    assert_int_equal(code_count(&r, "META_VERSION"), 1);
    assert_int_equal(code_count(&r, "META_DIM"), 1);
    assert_int_equal(find_issue(&r, "META_VERSION")->severity, VD_SEV_CRITICAL);
    assert_int_equal(find_issue(&r, "META_DIM")->severity, VD_SEV_ERROR);
    vd_validate_result_free(&r);

    /* meta of the wrong type: reported, and quarantined by fix */
    vd_test_cmd(s, "DEL %s:meta", b);
    vd_test_cmd(s, "SET %s:meta 1", b);
    assert_int_equal(run(b, true, NULL, 0, &r, NULL), VD_ERR_OK);
    assert_int_equal(code_count(&r, "RECORD_WRONG_TYPE"), 1);
    assert_int_equal(code_count(&r, "META_MISSING"), 1);
    assert_int_equal(r.quarantined, 1);
    vd_validate_result_free(&r);
    assert_int_equal(vd_test_cmd_int(s, "EXISTS %s:quarantine:meta", b), 1);

    vd_test_drop(s, a);
    vd_test_drop(s, b);
    vd_store_destroy(s);
}

static void test_clean_and_subset(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    const char *ns = vd_test_ns("clean");
    vd_seed_conf sc = {.documents = 6, .chunks_per_doc = 4, .dim = 32, .text_bytes = 100,
                       .with_files = true, .file_bytes = 3 << 20 /* several GETRANGE pieces */,
                       .seed = 3};
    seed(s, ns, &sc);
    vd_seed_conf sc2 = {.documents = 300, .chunks_per_doc = 4, .dim = 32, .text_bytes = 100,
                        .with_files = true, .file_bytes = 100, .seed = 3};
    const char *ns2 = vd_test_ns("clean2");
    seed(s, ns2, &sc2);

    vd_validate_result r;
    assert_int_equal(run(ns, true, NULL, 0, &r, NULL), VD_ERR_OK);
    dump(&r);
    assert_int_equal(r.issues.total, 0);
    assert_int_equal(r.fixed, 0);
    assert_int_equal(r.files, 6);
    vd_validate_result_free(&r);
    assert_int_equal(run(ns2, false, NULL, 0, &r, NULL), VD_ERR_OK);
    assert_int_equal(r.issues.total, 0);
    assert_int_equal(r.documents, 300);
    assert_int_equal(r.chunks, 1200);
    assert_int_equal(r.files, 300);
    for (int i = 0; i < 4; i++)
        assert_int_equal(r.by_severity[i], 0);
    vd_validate_result_free(&r);

    /* a large file whose last piece changed is caught */
    vd_test_cmd(s, "SETRANGE %s:file:{doc-000002} %d Z", ns, (3 << 20) - 1);
    assert_int_equal(run(ns, false, NULL, 0, &r, NULL), VD_ERR_OK);
    assert_int_equal(code_count(&r, "FILE_SHA256"), 1);
    vd_validate_result_free(&r);

    /* subset: only the embeddings check runs */
    vd_test_drop(s, ns2);
    make_defects(s, ns2);
    const char *only[] = {"embeddings"};
    assert_int_equal(run(ns2, false, only, 1, &r, NULL), VD_ERR_OK);
    assert_int_equal(r.nchecks, 1);
    assert_string_equal(r.by_check[0].check, "embeddings");
    assert_int_equal(r.issues.total, 6);
    vd_validate_result_free(&r);

    const char *bad[] = {"embeddings", "nope"};
    assert_int_equal(run(ns2, false, bad, 2, &r, NULL), VD_ERR_INVALID_ARG);
    vd_validate_result_free(&r);

    vd_test_drop(s, ns);
    vd_test_drop(s, ns2);
    vd_store_destroy(s);
}

static void test_cancel(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    const char *ns = vd_test_ns("cancel");
    vd_seed_conf sc = {.documents = 50, .chunks_per_doc = 2, .dim = 8, .text_bytes = 16,
                       .seed = 1};
    seed(s, ns, &sc);
    vd_store_conf c = redis_conf();
    atomic_bool cancel = true;
    vd_task_ctx ctx = {.redis = &c, .ns = ns, .cancel = &cancel};
    vd_validate_params p = {.fix = false};
    vd_validate_result r;
    char err[256];
    assert_int_equal(vd_task_validate(&ctx, &p, &r, err, sizeof err), VD_ERR_CANCELLED);
    vd_validate_result_free(&r);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
}

static void test_perf_20k(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    const char *ns = vd_test_ns("perf");
    vd_seed_conf sc = {.documents = 20000, .chunks_per_doc = 4, .dim = 384, .text_bytes = 200,
                       .with_files = true, .file_bytes = 1024, .seed = 11};
    int64_t t0 = vd_mono_ms();
    seed(s, ns, &sc);
    int64_t t1 = vd_mono_ms();
    vd_validate_result r;
    prog g = {0};
    assert_int_equal(run(ns, false, NULL, 0, &r, &g), VD_ERR_OK);
    int64_t t2 = vd_mono_ms();
    assert_int_equal(r.issues.total, 0);
    assert_int_equal(r.documents, 20000);
    assert_int_equal(r.chunks, 80000);
    assert_int_equal(r.files, 20000);
    print_message("perf: 20k docs x 4 chunks (dim 384) + 20k files: seed %lld ms, validate %lld "
                  "ms (%.0f keys/s), progress total %lld done %lld, peak RSS %ld KiB\n",
                  (long long)(t1 - t0), (long long)(t2 - t1),
                  (20000.0 * 7 + 2) / ((double)(t2 - t1 > 0 ? t2 - t1 : 1) / 1000.0),
                  (long long)g.last_total, (long long)g.last_done, vd_test_peak_rss_kb());
    vd_validate_result_free(&r);
    t1 = vd_mono_ms();
    assert_int_equal(run(ns, true, NULL, 0, &r, NULL), VD_ERR_OK);
    print_message("perf: validate with fix (nothing to fix) %lld ms\n",
                  (long long)(vd_mono_ms() - t1));
    assert_int_equal(r.fixed, 0);
    vd_validate_result_free(&r);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defects_found_and_fixed),
        cmocka_unit_test(test_meta_checks),
        cmocka_unit_test(test_clean_and_subset),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_perf_20k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
