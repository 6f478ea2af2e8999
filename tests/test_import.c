/*
 * test_import.c - the import task against a real Redis: byte-exact round
 * trips in every format, conflicts (FAIL / SKIP / OVERWRITE / validate_only),
 * corrupt and truncated artifacts, checksums, limits, cancel and resume.
 *
 * Redis contents are compared with a full dump of the namespace: every key
 * (NS:task:* excluded) with its type and exact contents, sorted.
 */
#include "vd_test.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "vd_tasks.h"

static void seed(vd_store *s, const char *ns, int64_t docs, int chunks, int dim, bool files) {
    vd_seed_conf sc;
    memset(&sc, 0, sizeof sc);
    sc.documents = docs;
    sc.chunks_per_doc = chunks;
    sc.dim = dim;
    sc.text_bytes = 100;
    sc.with_files = files;
    sc.file_bytes = 200;
    sc.seed = 7;
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

static void import_params(vd_import_params *p, const char *src, vd_on_conflict oc) {
    memset(p, 0, sizeof *p);
    p->source_path = src;
    p->on_conflict = oc;
    vd_limits_default(&p->limits);
}

/* ---- a full dump of a namespace ---------------------------------------- */
typedef struct entry {
    char *data;
    size_t len;
} entry;

typedef struct dump {
    entry *e;
    size_t n, cap;
} dump;

static void put_bytes(vd_buf *b, const char *p, size_t n) {
    char hdr[32];
    int k = snprintf(hdr, sizeof hdr, "%zu:", n);
    assert_int_equal(vd_buf_append(b, hdr, (size_t)k), VD_ERR_OK);
    assert_int_equal(vd_buf_append(b, p, n), VD_ERR_OK);
}

static int cmp_entry(const void *a, const void *b) {
    const entry *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->data, y->data, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Field/value pairs of an HGETALL, sorted by field. */
static int cmp_pair(const void *a, const void *b) {
    redisReply *const *x = a, *const *y = b;
    size_t n = x[0]->len < y[0]->len ? x[0]->len : y[0]->len;
    int c = memcmp(x[0]->str, y[0]->str, n);
    if (c)
        return c;
    return x[0]->len < y[0]->len ? -1 : x[0]->len > y[0]->len;
}

static int cmp_str(const void *a, const void *b) {
    redisReply *const *x = a, *const *y = b;
    size_t n = (*x)->len < (*y)->len ? (*x)->len : (*y)->len;
    int c = memcmp((*x)->str, (*y)->str, n);
    if (c)
        return c;
    return (*x)->len < (*y)->len ? -1 : (*x)->len > (*y)->len;
}

/* One entry: the key without its namespace, its type and its contents. */
static void dump_key(redisContext *c, size_t nslen, const char *key, size_t klen, dump *d) {
    vd_buf b;
    vd_buf_init(&b, 0);
    put_bytes(&b, key + nslen, klen - nslen);
    redisReply *t = redisCommand(c, "TYPE %b", key, klen);
    assert_non_null(t);
    put_bytes(&b, t->str, t->len);
    redisReply *r = NULL;
    if (!strcmp(t->str, "hash")) {
        r = redisCommand(c, "HGETALL %b", key, klen);
        qsort(r->element, r->elements / 2, 2 * sizeof(redisReply *), cmp_pair);
    } else if (!strcmp(t->str, "zset")) {
        r = redisCommand(c, "ZRANGE %b 0 -1 WITHSCORES", key, klen);
    } else if (!strcmp(t->str, "set")) {
        r = redisCommand(c, "SMEMBERS %b", key, klen);
        qsort(r->element, r->elements, sizeof(redisReply *), cmp_str);
    } else if (!strcmp(t->str, "string")) {
        r = redisCommand(c, "GET %b", key, klen);
    } else if (!strcmp(t->str, "list")) {
        r = redisCommand(c, "LRANGE %b 0 -1", key, klen);
    }
    freeReplyObject(t);
    if (r) {
        if (r->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i < r->elements; i++)
                put_bytes(&b, r->element[i]->str, r->element[i]->len);
        } else if (r->type == REDIS_REPLY_STRING) {
            put_bytes(&b, r->str, r->len);
        }
        freeReplyObject(r);
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->e = realloc(d->e, d->cap * sizeof *d->e);
        assert_non_null(d->e);
    }
    d->e[d->n].data = b.data;
    d->e[d->n].len = b.len;
    d->n++;
}

static void dump_ns(const char *ns, dump *d) {
    memset(d, 0, sizeof *d);
    redisContext *c = redisConnect("127.0.0.1", vd_test_redis_port());
    assert_true(c && !c->err);
    char pattern[256], task_prefix[256];
    snprintf(pattern, sizeof pattern, "%s:*", ns);
    int tpl = snprintf(task_prefix, sizeof task_prefix, "%s:task:", ns);
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *k = keys->element[i];
            if (k->len >= (size_t)tpl && memcmp(k->str, task_prefix, (size_t)tpl) == 0)
                continue;
            dump_key(c, strlen(ns), k->str, k->len, d);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
    if (d->n)
        qsort(d->e, d->n, sizeof *d->e, cmp_entry);
}

static void dump_free(dump *d) {
    for (size_t i = 0; i < d->n; i++)
        free(d->e[i].data);
    free(d->e);
    memset(d, 0, sizeof *d);
}

/* Entries hold key names without the namespace, so two namespaces compare. */
static bool dump_equal(const dump *a, const char *ns_a, const dump *b, const char *ns_b) {
    if (a->n != b->n) {
        print_message("dump of %s: %zu keys, of %s: %zu keys\n", ns_a, a->n, ns_b, b->n);
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (a->e[i].len != b->e[i].len || memcmp(a->e[i].data, b->e[i].data, a->e[i].len)) {
            print_message("dump differs at entry %zu: %.80s vs %.80s\n", i, a->e[i].data,
                          b->e[i].data);
            return false;
        }
    }
    return true;
}

static size_t ns_key_count(const char *ns) {
    dump d;
    dump_ns(ns, &d);
    size_t n = d.n;
    dump_free(&d);
    return n;
}

/* ---- helpers ----------------------------------------------------------- */
static void export_to(const char *dir, const char *ns, vd_format fmt, bool compress,
                      bool files, const char *dest) {
    vd_task_ctx ctx = make_ctx(dir, ns, "export-for-import");
    vd_export_params p;
    memset(&p, 0, sizeof p);
    p.format = fmt;
    p.compress = compress;
    p.include_files = files;
    p.destination = dest;
    vd_export_result res;
    char err[512] = "";
    vd_err e = vd_task_export(&ctx, &p, &res, err, sizeof err);
    if (e)
        print_message("export: %s\n", err);
    assert_int_equal(e, VD_ERR_OK);
    vd_export_result_free(&res);
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* ---- round trips ------------------------------------------------------- */
static void test_round_trip_every_format(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("rt"));
    seed(s, ns, 30, 4, 24, true);
    dump before;
    dump_ns(ns, &before);
    assert_true(before.n > 30 * 6);
    char *dir = vd_test_tmpdir();
    static const struct {
        vd_format fmt;
        bool compress;
        const char *name;
    } kinds[] = {{VD_FMT_JSONL, false, "a.jsonl"},
                 {VD_FMT_JSONL, true, "a.jsonl.gz"},
                 {VD_FMT_AVRO, false, "a.avro"},
                 {VD_FMT_CSV, false, "a.csv.zip"}};
    for (size_t k = 0; k < 4; k++) {
        export_to(dir, ns, kinds[k].fmt, kinds[k].compress, true, kinds[k].name);
        char target[96];
        snprintf(target, sizeof target, "%s", vd_test_ns("rt_target"));
        vd_task_ctx ctx = make_ctx(dir, target, "import-rt");
        vd_import_params p;
        import_params(&p, kinds[k].name, VD_CONFLICT_FAIL);
        vd_import_result res;
        char err[512] = "";
        vd_err e = vd_task_import(&ctx, &p, &res, err, sizeof err);
        if (e)
            print_message("import %s: %s\n", kinds[k].name, err);
        assert_int_equal(e, VD_ERR_OK);
        assert_int_equal(res.imported, 30);
        assert_int_equal(res.skipped, 0);
        assert_int_equal(res.overwritten, 0);
        assert_int_equal(res.conflicts, 0);
        assert_int_equal(res.counts.documents, 30);
        assert_int_equal(res.counts.chunks, 120);
        assert_int_equal(res.counts.files, 30);
        dump after;
        dump_ns(target, &after);
        assert_true(dump_equal(&before, ns, &after, target));
        print_message("round trip %s: %zu keys identical (%lld ms)\n", kinds[k].name, after.n,
                      (long long)res.duration_ms);
        dump_free(&after);
        vd_import_result_free(&res);
        vd_test_drop(s, target);
    }

    /* The same namespace: export, drop, import, compare. */
    vd_test_drop(s, ns);
    assert_int_equal(ns_key_count(ns), 0);
    vd_task_ctx ctx = make_ctx(dir, ns, "import-same");
    vd_import_params p;
    import_params(&p, "a.avro", VD_CONFLICT_FAIL);
    vd_import_result res;
    char err[512] = "";
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    dump after;
    dump_ns(ns, &after);
    assert_true(dump_equal(&before, ns, &after, ns));
    dump_free(&after);
    vd_import_result_free(&res);

    /* Inline bytes (a gzip JSONL), with the right expected_sha256. */
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/a.jsonl.gz", dir);
    size_t len = 0;
    unsigned char *bytes = read_file(path, &len);
    char target[96];
    snprintf(target, sizeof target, "%s", vd_test_ns("rt_inline"));
    ctx = make_ctx(dir, target, "import-inline");
    import_params(&p, NULL, VD_CONFLICT_FAIL);
    p.inline_data = bytes;
    p.inline_len = len;
    char sha[65];
    vd_sha256_hex(bytes, len, sha);
    p.expected_sha256 = sha;
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    dump_ns(target, &after);
    assert_true(dump_equal(&before, ns, &after, target));
    dump_free(&after);
    vd_import_result_free(&res);
    vd_test_drop(s, target);

    /* Inline over the limit. */
    p.max_inline_bytes = (int64_t)len - 1;
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_TOO_LARGE);
    vd_import_result_free(&res);
    free(bytes);

    dump_free(&before);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

/* ---- conflicts --------------------------------------------------------- */
static void test_conflicts(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("conf"));
    seed(s, ns, 10, 3, 8, true);
    dump orig;
    dump_ns(ns, &orig);
    char *dir = vd_test_tmpdir();
    export_to(dir, ns, VD_FMT_JSONL, false, true, "c.jsonl");
    char err[512] = "";

    /* Take three documents away and change one that stays: more chunks, new ids. */
    vd_store_iter *it = NULL;
    assert_int_equal(vd_store_iter_new(s, ns, true, 64, &it, err, sizeof err), VD_ERR_OK);
    char *ids[10];
    size_t nids = 0;
    for (;;) {
        vd_docgroup g;
        bool done = false;
        memset(&g, 0, sizeof g);
        assert_int_equal(vd_store_iter_next(it, &g, &done, err, sizeof err), VD_ERR_OK);
        if (done)
            break;
        ids[nids++] = strdup(g.doc.id);
        vd_docgroup_clear(&g);
    }
    vd_store_iter_destroy(it);
    assert_int_equal(nids, 10);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(vd_store_doc_delete(s, ns, ids[i], err, sizeof err), VD_ERR_OK);
    vd_docgroup mod;
    memset(&mod, 0, sizeof mod);
    assert_int_equal(vd_store_doc_get(s, ns, ids[5], true, &mod, err, sizeof err), VD_ERR_OK);
    free(mod.doc.title);
    mod.doc.title = strdup("changed title");
    size_t old_n = mod.nchunks;
    for (size_t i = 0; i < 3; i++) {
        vd_chunk *c = vd_docgroup_add_chunk(&mod);
        assert_non_null(c);
        const vd_chunk *src = &mod.chunks[i % old_n]; /* after add: the array may move */
        char cid[64];
        snprintf(cid, sizeof cid, "extra-%zu", i);
        c->id = strdup(cid);
        c->doc_id = strdup(mod.doc.id);
        c->seq = 100 + (int64_t)i;
        c->text = strdup("stale text");
        c->text_len = strlen(c->text);
        c->dim = src->dim;
        c->embedding = malloc(src->dim * sizeof(float));
        memcpy(c->embedding, src->embedding, src->dim * sizeof(float));
        c->metadata = strdup("{}");
    }
    mod.doc.chunk_count = (int64_t)mod.nchunks;
    assert_int_equal(vd_store_doc_put(s, ns, &mod, 8, true, err, sizeof err), VD_ERR_OK);
    vd_docgroup_clear(&mod);
    dump changed;
    dump_ns(ns, &changed);

    vd_task_ctx ctx = make_ctx(dir, ns, "conflict-task");
    vd_import_params p;
    vd_import_result res;

    /* FAIL: nothing written, every conflict counted, the first ids named. */
    import_params(&p, "c.jsonl", VD_CONFLICT_FAIL);
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_CONFLICT);
    print_message("FAIL: %s\n", err);
    assert_int_equal(res.conflicts, 7);
    assert_int_equal(res.nconflict_ids, 7);
    assert_int_equal(res.imported, 0);
    vd_import_result_free(&res);
    dump now;
    dump_ns(ns, &now);
    assert_true(dump_equal(&changed, ns, &now, ns));
    dump_free(&now);

    /* validate_only: reports, writes nothing. */
    import_params(&p, "c.jsonl", VD_CONFLICT_SKIP);
    p.validate_only = true;
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    assert_true(res.validate_only);
    assert_int_equal(res.conflicts, 7);
    assert_int_equal(res.imported, 3);
    assert_int_equal(res.skipped, 7);
    assert_int_equal(res.counts.documents, 10);
    vd_import_result_free(&res);
    dump_ns(ns, &now);
    assert_true(dump_equal(&changed, ns, &now, ns));
    dump_free(&now);

    /* SKIP: the three come back, the changed one stays changed. */
    import_params(&p, "c.jsonl", VD_CONFLICT_SKIP);
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    assert_int_equal(res.imported, 3);
    assert_int_equal(res.skipped, 7);
    assert_int_equal(res.overwritten, 0);
    vd_import_result_free(&res);
    vd_docgroup g;
    memset(&g, 0, sizeof g);
    assert_int_equal(vd_store_doc_get(s, ns, ids[5], false, &g, err, sizeof err), VD_ERR_OK);
    assert_string_equal(g.doc.title, "changed title");
    assert_int_equal(g.nchunks, 6);
    vd_docgroup_clear(&g);
    for (size_t i = 0; i < 3; i++) {
        bool ex = false;
        assert_int_equal(vd_store_doc_exists(s, ns, ids[i], &ex, err, sizeof err), VD_ERR_OK);
        assert_true(ex);
    }

    /* OVERWRITE: back to exactly the original, no stale chunk left. */
    import_params(&p, "c.jsonl", VD_CONFLICT_OVERWRITE);
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    assert_int_equal(res.overwritten, 10);
    assert_int_equal(res.imported, 0);
    assert_int_equal(res.conflicts, 10);
    vd_import_result_free(&res);
    dump_ns(ns, &now);
    assert_true(dump_equal(&orig, ns, &now, ns));
    dump_free(&now);

    for (size_t i = 0; i < nids; i++)
        free(ids[i]);
    dump_free(&orig);
    dump_free(&changed);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

/* ---- bad input --------------------------------------------------------- */
static void expect_refused(const char *dir, const char *name, const char *what) {
    char target[96];
    snprintf(target, sizeof target, "%s", vd_test_ns("bad"));
    vd_task_ctx ctx = make_ctx(dir, target, "bad-task");
    vd_import_params p;
    import_params(&p, name, VD_CONFLICT_FAIL);
    vd_import_result res;
    char err[512] = "";
    vd_err e = vd_task_import(&ctx, &p, &res, err, sizeof err);
    print_message("%s: %s: %s\n", what, vd_err_name(e), err);
    assert_int_not_equal(e, VD_ERR_OK);
    assert_int_equal(res.imported, 0);
    assert_int_equal(ns_key_count(target), 0);
    vd_import_result_free(&res);
}

static void test_corrupt_and_truncated(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("corrupt"));
    seed(s, ns, 40, 3, 8, true);
    char *dir = vd_test_tmpdir();
    static const struct {
        vd_format fmt;
        bool compress;
        const char *name;
    } kinds[] = {{VD_FMT_JSONL, false, "x.jsonl"},
                 {VD_FMT_JSONL, true, "x.jsonl.gz"},
                 {VD_FMT_CSV, false, "x.csv.zip"},
                 {VD_FMT_AVRO, false, "x.avro"}};
    char path[PATH_MAX * 2], bad[PATH_MAX * 2], what[128];
    for (size_t k = 0; k < 4; k++) {
        export_to(dir, ns, kinds[k].fmt, kinds[k].compress, true, kinds[k].name);
        snprintf(path, sizeof path, "%s/%s", dir, kinds[k].name);
        size_t len = 0;
        unsigned char *bytes = read_file(path, &len);

        /* Truncated: half the file, and all but the last byte. */
        snprintf(bad, sizeof bad, "%s/half-%s", dir, kinds[k].name);
        write_file(bad, bytes, len / 2);
        snprintf(what, sizeof what, "%s truncated to half", kinds[k].name);
        expect_refused(dir, strrchr(bad, '/') + 1, what);
        snprintf(bad, sizeof bad, "%s/short-%s", dir, kinds[k].name);
        write_file(bad, bytes, len - 1);
        snprintf(what, sizeof what, "%s minus one byte", kinds[k].name);
        expect_refused(dir, strrchr(bad, '/') + 1, what);

        if (kinds[k].fmt == VD_FMT_JSONL && !kinds[k].compress) {
            /* One flipped byte in the middle: within a line, and an ASCII digit changed. */
            snprintf(bad, sizeof bad, "%s/flip-%s", dir, kinds[k].name);
            bytes[len / 2] ^= 0x01;
            write_file(bad, bytes, len);
            bytes[len / 2] ^= 0x01;
            snprintf(what, sizeof what, "%s one byte flipped", kinds[k].name);
            expect_refused(dir, strrchr(bad, '/') + 1, what);
            /* One digit of a value changed: still valid JSON, the trailer's SHA-256 catches it. */
            size_t pos = len / 3;
            while (pos < len && (bytes[pos] < '1' || bytes[pos] > '8'))
                pos++;
            bytes[pos]++;
            snprintf(bad, sizeof bad, "%s/digit-%s", dir, kinds[k].name);
            write_file(bad, bytes, len);
            bytes[pos]--;
            snprintf(what, sizeof what, "%s one digit changed", kinds[k].name);
            expect_refused(dir, strrchr(bad, '/') + 1, what);
        }
        /* In place, with the sidecar manifest present. */
        bytes[len / 2] ^= 0x20;
        write_file(path, bytes, len);
        snprintf(what, sizeof what, "%s changed in place (manifest present)", kinds[k].name);
        expect_refused(dir, kinds[k].name, what);
        free(bytes);
    }

    /* Garbage, empty, missing, outside the volume. */
    snprintf(bad, sizeof bad, "%s/garbage.bin", dir);
    write_file(bad, "\x01\x02\x03 not an artifact\n", 20);
    expect_refused(dir, "garbage.bin", "garbage");
    snprintf(bad, sizeof bad, "%s/empty.jsonl", dir);
    write_file(bad, "", 0);
    expect_refused(dir, "empty.jsonl", "empty file");
    expect_refused(dir, "no-such-file.jsonl", "missing file");
    expect_refused(dir, "../etc/passwd", "path escape");
    expect_refused(dir, "/etc/passwd", "absolute path");

    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

static void test_checksum_dim_and_duplicates(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("sum"));
    seed(s, ns, 8, 2, 8, false);
    char *dir = vd_test_tmpdir();
    export_to(dir, ns, VD_FMT_JSONL, true, false, "s.jsonl.gz");
    char err[512] = "";
    vd_import_result res;
    vd_import_params p;

    /* expected_sha256 wrong: refused before anything is read or written. */
    char target[96];
    snprintf(target, sizeof target, "%s", vd_test_ns("sum_target"));
    vd_task_ctx ctx = make_ctx(dir, target, "sum-task");
    import_params(&p, "s.jsonl.gz", VD_CONFLICT_FAIL);
    p.expected_sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_CHECKSUM);
    print_message("checksum: %s\n", err);
    vd_import_result_free(&res);
    p.expected_sha256 = "nothex";
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_INVALID_ARG);
    vd_import_result_free(&res);
    assert_int_equal(ns_key_count(target), 0);

    /* A target whose meta says another dimension. */
    vd_meta m;
    memset(&m, 0, sizeof m);
    m.schema_version = 1;
    m.dim = 4;
    m.model = "other";
    m.distance = "cosine";
    m.created_at = 1;
    assert_int_equal(vd_store_meta_put(s, target, &m, err, sizeof err), VD_ERR_OK);
    import_params(&p, "s.jsonl.gz", VD_CONFLICT_FAIL);
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_BAD_DIM);
    print_message("dim: %s\n", err);
    vd_import_result_free(&res);
    assert_int_equal(ns_key_count(target), 1);
    vd_test_drop(s, target);

    /* Neither or both sources. */
    import_params(&p, NULL, VD_CONFLICT_FAIL);
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_INVALID_ARG);
    vd_import_result_free(&res);

    /* An artifact holding one document twice. */
    vd_docgroup g;
    memset(&g, 0, sizeof g);
    vd_store_iter *it = NULL;
    bool done = false;
    assert_int_equal(vd_store_iter_new(s, ns, false, 16, &it, err, sizeof err), VD_ERR_OK);
    assert_int_equal(vd_store_iter_next(it, &g, &done, err, sizeof err), VD_ERR_OK);
    vd_store_iter_destroy(it);
    vd_meta sm;
    memset(&sm, 0, sizeof sm);
    assert_int_equal(vd_store_meta_get(s, ns, &sm, err, sizeof err), VD_ERR_OK);
    vd_artifact_info info;
    memset(&info, 0, sizeof info);
    info.tool_version = "test";
    info.task_id = "dup";
    info.ns = ns;
    info.created_at = vd_now_ms();
    info.meta = sm;
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/dup.jsonl", dir);
    vd_writer *w = NULL;
    vd_writer_result wr;
    assert_int_equal(vd_writer_open(VD_FMT_JSONL, path, &info, &w, err, sizeof err), VD_ERR_OK);
    assert_int_equal(vd_writer_put(w, &g, err, sizeof err), VD_ERR_OK);
    assert_int_equal(vd_writer_put(w, &g, err, sizeof err), VD_ERR_OK);
    assert_int_equal(vd_writer_close(w, &wr, err, sizeof err), VD_ERR_OK);
    vd_writer_destroy(w);
    vd_docgroup_clear(&g);
    vd_meta_clear(&sm);
    import_params(&p, "dup.jsonl", VD_CONFLICT_OVERWRITE);
    vd_err e = vd_task_import(&ctx, &p, &res, err, sizeof err);
    print_message("duplicate: %s: %s\n", vd_err_name(e), err);
    assert_int_not_equal(e, VD_ERR_OK);
    assert_int_equal(ns_key_count(target), 0);
    vd_import_result_free(&res);

    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

/* ---- cancel and resume -------------------------------------------------- */
typedef struct ckpt {
    int64_t saved;           /* last checkpoint_save value */
    int64_t load;            /* what checkpoint_load returns */
    int saves;
    atomic_bool cancel;
    bool cancel_on_first_save;
} ckpt;

static vd_err ck_load(void *opaque, int64_t *docs_done) {
    *docs_done = ((ckpt *)opaque)->load;
    return VD_ERR_OK;
}

static vd_err ck_save(void *opaque, int64_t docs_done) {
    ckpt *c = opaque;
    c->saved = docs_done;
    c->saves++;
    if (c->cancel_on_first_save)
        atomic_store(&c->cancel, true);
    return VD_ERR_OK;
}

static int64_t scard_docs(vd_store *s, const char *ns) {
    redisContext *c = vd_store_redis(s);
    redisReply *r = redisCommand(c, "SCARD %s:docs", ns);
    assert_non_null(r);
    int64_t n = r->integer;
    freeReplyObject(r);
    return n;
}

static void test_cancel_and_resume(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("resume"));
    seed(s, ns, 700, 2, 8, false);
    dump before;
    dump_ns(ns, &before);
    char *dir = vd_test_tmpdir();
    export_to(dir, ns, VD_FMT_JSONL, true, false, "r.jsonl.gz");
    char err[512] = "";
    vd_import_result res;
    vd_import_params p;
    import_params(&p, "r.jsonl.gz", VD_CONFLICT_FAIL);

    /* Cancelled before start: nothing. */
    char target[96];
    snprintf(target, sizeof target, "%s", vd_test_ns("resume_target"));
    ckpt ck;
    memset(&ck, 0, sizeof ck);
    atomic_init(&ck.cancel, true);
    vd_task_ctx ctx = make_ctx(dir, target, "resume-task");
    ctx.cancel = &ck.cancel;
    ctx.opaque = &ck;
    ctx.checkpoint_load = ck_load;
    ctx.checkpoint_save = ck_save;
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_CANCELLED);
    assert_int_equal(ns_key_count(target), 0);
    vd_import_result_free(&res);

    /* Cancelled at the first checkpoint: reports what it wrote. */
    atomic_store(&ck.cancel, false);
    ck.cancel_on_first_save = true;
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_CANCELLED);
    print_message("cancelled import: %s\n", err);
    assert_true(res.imported > 0 && res.imported < 700);
    assert_int_equal(ck.saved, res.imported);
    assert_int_equal(scard_docs(s, target), res.imported);
    vd_import_result_free(&res);

    /* Resume from the checkpoint: ends with exactly the artifact, no conflicts. */
    atomic_store(&ck.cancel, false);
    ck.cancel_on_first_save = false;
    ck.load = ck.saved;
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    assert_int_equal(res.conflicts, 0);
    assert_int_equal(res.imported, 700);
    assert_int_equal(ck.saved, 700);
    dump after;
    dump_ns(target, &after);
    assert_true(dump_equal(&before, ns, &after, target));
    dump_free(&after);
    vd_import_result_free(&res);
    vd_test_drop(s, target);

    /* Crash after the checkpoint: Redis holds k+5 documents, the checkpoint says k. */
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/r.jsonl.gz", dir);
    vd_limits lim;
    vd_limits_default(&lim);
    vd_reader *r = NULL;
    assert_int_equal(vd_reader_open(path, &lim, &r, err, sizeof err), VD_ERR_OK);
    vd_meta m = vd_reader_info(r)->meta;
    assert_int_equal(vd_store_meta_put(s, target, &m, err, sizeof err), VD_ERR_OK);
    const int64_t k = 300;
    for (int64_t i = 0; i < k + 5; i++) {
        vd_docgroup g;
        bool done = false;
        memset(&g, 0, sizeof g);
        assert_int_equal(vd_reader_next(r, &g, &done, err, sizeof err), VD_ERR_OK);
        assert_false(done);
        assert_int_equal(vd_store_doc_put(s, target, &g, 8, false, err, sizeof err), VD_ERR_OK);
        vd_docgroup_clear(&g);
    }
    vd_reader_destroy(r);
    memset(&ck, 0, sizeof ck);
    atomic_init(&ck.cancel, false);
    ck.load = k;
    assert_int_equal(vd_task_import(&ctx, &p, &res, err, sizeof err), VD_ERR_OK);
    assert_int_equal(res.conflicts, 0);
    assert_int_equal(res.imported, 700);
    dump_ns(target, &after);
    assert_true(dump_equal(&before, ns, &after, target));
    dump_free(&after);
    vd_import_result_free(&res);
    vd_test_drop(s, target);

    dump_free(&before);
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

static void test_import_20k_chunks(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = vd_test_connect();
    char ns[96];
    snprintf(ns, sizeof ns, "%s", vd_test_ns("iperf"));
    seed(s, ns, 2000, 10, 384, false);
    char *dir = vd_test_tmpdir();
    static const struct {
        vd_format fmt;
        bool compress;
        const char *name;
    } kinds[] = {{VD_FMT_JSONL, false, "p.jsonl"},
                 {VD_FMT_JSONL, true, "p.jsonl.gz"},
                 {VD_FMT_AVRO, false, "p.avro"},
                 {VD_FMT_CSV, false, "p.csv.zip"}};
    for (size_t i = 0; i < 4; i++) {
        export_to(dir, ns, kinds[i].fmt, kinds[i].compress, false, kinds[i].name);
        char target[96];
        snprintf(target, sizeof target, "%s", vd_test_ns("iperf_target"));
        vd_task_ctx ctx = make_ctx(dir, target, "iperf");
        vd_import_params p;
        import_params(&p, kinds[i].name, VD_CONFLICT_FAIL);
        vd_import_result res;
        char err[512] = "";
        vd_err e = vd_task_import(&ctx, &p, &res, err, sizeof err);
        if (e)
            print_message("import: %s\n", err);
        assert_int_equal(e, VD_ERR_OK);
        assert_int_equal(res.counts.chunks, 20000);
        print_message("import 20k chunks from %s: %lld ms, peak RSS %ld KiB\n", kinds[i].name,
                      (long long)res.duration_ms, vd_test_peak_rss_kb());
        assert_int_equal(res.imported, 2000);
        vd_import_result_free(&res);
        vd_test_drop(s, target);
    }
    vd_test_drop(s, ns);
    vd_store_destroy(s);
    vd_test_rm_rf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_format),
        cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_corrupt_and_truncated),
        cmocka_unit_test(test_checksum_dim_and_duplicates),
        cmocka_unit_test(test_cancel_and_resume),
        cmocka_unit_test(test_import_20k_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
