/* test_store.c - the Redis data model against a real redis-server. */
#include "vd_test.h"
#include "vd_store.h"

#include <float.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */
static vd_store *store_open(void) {
    vd_store_conf conf = {0};
    conf.port = vd_test_redis_port();
    vd_store *s = NULL;
    char err[512] = "";
    vd_err e = vd_store_connect(&conf, &s, err, sizeof err);
    if (e)
        print_message("connect: %s\n", err);
    assert_int_equal(e, VD_ERR_OK);
    return s;
}

static redisReply *rcmd(vd_store *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand((redisContext *)vd_store_redis(s), fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static long long rint_cmd(vd_store *s, const char *fmt, const char *key) {
    redisReply *r = rcmd(s, fmt, key);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static long long exists(vd_store *s, const char *key) { return rint_cmd(s, "EXISTS %s", key); }

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Number of distinct keys matching a glob pattern. SCAN may return a key
 * twice while the keyspace is being rehashed, so keys are deduplicated. */
static long long scan_count(vd_store *s, const char *pattern) {
    char **keys = NULL;
    size_t n = 0, cap = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = rcmd(s, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                keys = realloc(keys, cap * sizeof *keys);
                assert_non_null(keys);
            }
            keys[n++] = strdup(r->element[1]->element[i]->str);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    long long distinct = 0;
    if (n)
        qsort(keys, n, sizeof *keys, cmp_str);
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || strcmp(keys[i - 1], keys[i]) != 0;
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    return distinct;
}

static float f_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_f(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* A small valid document: n chunks of dim floats, ids c0..c(n-1). */
static void make_doc(vd_docgroup *g, const char *id, size_t n, size_t dim) {
    memset(g, 0, sizeof *g);
    g->doc.id = strdup(id);
    g->doc.title = strdup("t");
    g->doc.source = strdup("s");
    g->doc.content_type = strdup("text/plain");
    g->doc.sha256 = strdup("");
    g->doc.metadata = strdup("{}");
    for (size_t i = 0; i < n; i++) {
        vd_chunk *c = vd_docgroup_add_chunk(g);
        char cid[32];
        snprintf(cid, sizeof cid, "c%zu", i);
        c->id = strdup(cid);
        c->doc_id = strdup(id);
        c->seq = (int64_t)i;
        c->text = strdup("hello");
        c->text_len = 5;
        c->dim = dim;
        c->embedding = calloc(dim ? dim : 1, sizeof(float));
        for (size_t k = 0; k < dim; k++)
            c->embedding[k] = (float)(i + 1) / (float)(k + 2);
        c->metadata = strdup("{}");
    }
}

/* ---- round trip ------------------------------------------------------- */
#define FILE_5MB (5u * 1024 * 1024)

static void test_roundtrip(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    const char *ns = vd_test_ns("rt");
    char err[512] = "", key[512];
    const char *id = "doc-rt.1_A";

    /* Floats by bit pattern: -0, smallest denormal, FLT_MIN, FLT_MAX, -FLT_MAX,
     * 1, 0.1, largest negative denormal. */
    static const uint32_t bits[8] = {0x80000000u, 0x00000001u, 0x00800000u, 0x7f7fffffu,
                                     0xff7fffffu, 0x3f800000u, 0x3dcccccdu, 0x807fffffu};
    static const unsigned char want_le[32] = {
        0x00, 0x00, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00,
        0xff, 0xff, 0x7f, 0x7f, 0xff, 0xff, 0x7f, 0xff, 0x00, 0x00, 0x80, 0x3f,
        0xcd, 0xcc, 0xcc, 0x3d, 0xff, 0xff, 0x7f, 0x80};
    static const char text0[] = "h\xc3\xa9llo\0w\xc3\xb6rld"; /* 13 bytes with a NUL */
    const char *text1 = "東京 text, with \"quotes\"\nand a newline — naïve";

    vd_docgroup g = {0};
    g.doc.id = strdup(id);
    g.doc.title = strdup("Café naïve — 東京, \"quoted\"\nsecond line");
    g.doc.source = strdup("https://example.com/a,b?x=\"y\"");
    g.doc.content_type = strdup("application/pdf");
    g.doc.created_at = INT64_C(1700000000123);
    g.doc.updated_at = INT64_C(1700000000456);
    g.doc.chunk_count = 3;
    g.doc.metadata = strdup("{\"k\":\"v\",\"n\":[1,2],\"u\":\"東京\"}");
    g.has_file = true;
    g.file.doc_id = strdup(id);
    g.file.len = FILE_5MB;
    g.file.data = malloc(FILE_5MB);
    for (size_t i = 0; i < FILE_5MB; i++)
        g.file.data[i] = i % 5 == 0 ? 0 : (unsigned char)(i * 131u + (i >> 13));
    g.doc.size = (int64_t)FILE_5MB;
    char sha[65];
    vd_sha256_hex(g.file.data, FILE_5MB, sha);
    g.doc.sha256 = strdup(sha);

    /* Ids whose byte order differs from their seq order. */
    const char *cids[3] = {"z-first", "a-second", "m-third"};
    for (int i = 0; i < 3; i++) {
        vd_chunk *c = vd_docgroup_add_chunk(&g);
        c->id = strdup(cids[i]);
        c->doc_id = strdup(id);
        c->seq = i * 5;
        c->dim = 8;
        c->embedding = malloc(8 * sizeof(float));
        for (int k = 0; k < 8; k++)
            c->embedding[k] = i == 0 ? f_bits(bits[k]) : (float)(i * 10 + k) * 0.125f;
    }
    g.chunks[0].text = malloc(sizeof text0);
    memcpy(g.chunks[0].text, text0, sizeof text0);
    g.chunks[0].text_len = sizeof text0 - 1;
    g.chunks[0].metadata = strdup("{}");
    g.chunks[1].text = strdup(text1);
    g.chunks[1].text_len = strlen(text1);
    g.chunks[1].metadata = strdup("{\"page\":2}");
    g.chunks[2].text = strdup("");
    g.chunks[2].text_len = 0;
    g.chunks[2].metadata = NULL; /* stored as "{}" */

    vd_err e = vd_store_doc_put(s, ns, &g, 8, false, err, sizeof err);
    if (e)
        print_message("put: %s\n", err);
    assert_int_equal(e, VD_ERR_OK);

    /* Raw bytes, read with plain hiredis. */
    snprintf(key, sizeof key, "%s:chunk:{%s}:z-first", ns, id);
    redisReply *r = rcmd(s, "HGET %s embedding", key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 32);
    assert_memory_equal(r->str, want_le, 32);
    freeReplyObject(r);
    r = rcmd(s, "HGET %s text", key);
    assert_int_equal(r->len, 13);
    assert_memory_equal(r->str, text0, 13);
    freeReplyObject(r);
    snprintf(key, sizeof key, "%s:chunk:{%s}:a-second", ns, id);
    r = rcmd(s, "HMGET %s seq doc_id id", key);
    assert_string_equal(r->element[0]->str, "5");
    assert_string_equal(r->element[1]->str, id);
    assert_string_equal(r->element[2]->str, "a-second");
    freeReplyObject(r);
    snprintf(key, sizeof key, "%s:chunk:{%s}:m-third", ns, id);
    r = rcmd(s, "HGET %s metadata", key);
    assert_string_equal(r->str, "{}");
    freeReplyObject(r);
    snprintf(key, sizeof key, "%s:doc:{%s}", ns, id);
    r = rcmd(s, "HMGET %s size chunk_count created_at updated_at sha256 title", key);
    assert_string_equal(r->element[0]->str, "5242880");
    assert_string_equal(r->element[1]->str, "3");
    assert_string_equal(r->element[2]->str, "1700000000123");
    assert_string_equal(r->element[3]->str, "1700000000456");
    assert_string_equal(r->element[4]->str, sha);
    assert_string_equal(r->element[5]->str, g.doc.title);
    freeReplyObject(r);
    snprintf(key, sizeof key, "%s:doc:{%s}:chunks", ns, id);
    r = rcmd(s, "ZRANGE %s 0 -1 WITHSCORES", key);
    assert_int_equal(r->elements, 6);
    assert_string_equal(r->element[0]->str, "z-first");
    assert_string_equal(r->element[1]->str, "0");
    assert_string_equal(r->element[2]->str, "a-second");
    assert_string_equal(r->element[3]->str, "5");
    assert_string_equal(r->element[4]->str, "m-third");
    assert_string_equal(r->element[5]->str, "10");
    freeReplyObject(r);
    snprintf(key, sizeof key, "%s:file:{%s}", ns, id);
    r = rcmd(s, "GET %s", key);
    assert_int_equal(r->len, FILE_5MB);
    assert_memory_equal(r->str, g.file.data, FILE_5MB);
    freeReplyObject(r);
    snprintf(key, sizeof key, "%s:docs", ns);
    assert_int_equal(rint_cmd(s, "SCARD %s", key), 1);

    /* Read back through the store: byte for byte, bit for bit. */
    vd_docgroup b = {0};
    e = vd_store_doc_get(s, ns, id, true, &b, err, sizeof err);
    assert_int_equal(e, VD_ERR_OK);
    assert_string_equal(b.doc.id, id);
    assert_string_equal(b.doc.title, g.doc.title);
    assert_string_equal(b.doc.source, g.doc.source);
    assert_string_equal(b.doc.content_type, g.doc.content_type);
    assert_string_equal(b.doc.sha256, sha);
    assert_string_equal(b.doc.metadata, g.doc.metadata);
    assert_int_equal(b.doc.size, FILE_5MB);
    assert_int_equal(b.doc.created_at, g.doc.created_at);
    assert_int_equal(b.doc.updated_at, g.doc.updated_at);
    assert_int_equal(b.doc.chunk_count, 3);
    assert_int_equal(b.nchunks, 3);
    for (int i = 0; i < 3; i++) {
        const vd_chunk *x = &g.chunks[i], *y = &b.chunks[i];
        assert_string_equal(y->id, x->id);
        assert_string_equal(y->doc_id, id);
        assert_int_equal(y->seq, x->seq);
        assert_int_equal(y->text_len, x->text_len);
        assert_memory_equal(y->text, x->text, x->text_len + 0 * 1);
        assert_int_equal(y->dim, 8);
        for (int k = 0; k < 8; k++)
            assert_int_equal(bits_f(y->embedding[k]), bits_f(x->embedding[k]));
        assert_string_equal(y->metadata, x->metadata ? x->metadata : "{}");
    }
    assert_int_equal(bits_f(b.chunks[0].embedding[0]), 0x80000000u); /* -0.0 kept */
    assert_true(b.has_file);
    assert_int_equal(b.file.len, FILE_5MB);
    assert_memory_equal(b.file.data, g.file.data, FILE_5MB);
    vd_docgroup_clear(&b);

    /* Without the file. */
    assert_int_equal(vd_store_doc_get(s, ns, id, false, &b, err, sizeof err), VD_ERR_OK);
    assert_false(b.has_file);
    assert_int_equal(b.nchunks, 3);
    vd_docgroup_clear(&b);

    bool ex = false;
    assert_int_equal(vd_store_doc_exists(s, ns, id, &ex, err, sizeof err), VD_ERR_OK);
    assert_true(ex);
    vd_store_counts cnt;
    assert_int_equal(vd_store_count(s, ns, &cnt, err, sizeof err), VD_ERR_OK);
    assert_int_equal(cnt.documents, 1);
    assert_int_equal(cnt.chunks, 3);
    assert_int_equal(cnt.files, 1);

    /* A wrong-length embedding in Redis is reported, naming the key. */
    snprintf(key, sizeof key, "%s:chunk:{%s}:m-third", ns, id);
    r = rcmd(s, "HSET %s embedding %b", key, "abcdef", (size_t)6);
    freeReplyObject(r);
    assert_int_equal(vd_store_doc_get(s, ns, id, false, &b, err, sizeof err), VD_ERR_BAD_DIM);
    assert_non_null(strstr(err, "m-third"));
    /* A chunk listed in the zset but gone is skipped. */
    r = rcmd(s, "DEL %s", key);
    freeReplyObject(r);
    assert_int_equal(vd_store_doc_get(s, ns, id, false, &b, err, sizeof err), VD_ERR_OK);
    assert_int_equal(b.nchunks, 2);
    vd_docgroup_clear(&b);

    /* Delete: atomic, everything goes; a second delete finds nothing. */
    assert_int_equal(vd_store_doc_delete(s, ns, id, err, sizeof err), VD_ERR_OK);
    snprintf(key, sizeof key, "%s:*", ns);
    assert_int_equal(scan_count(s, key), 0);
    assert_int_equal(vd_store_doc_delete(s, ns, id, err, sizeof err), VD_ERR_NOT_FOUND);
    assert_int_equal(vd_store_doc_get(s, ns, id, true, &b, err, sizeof err), VD_ERR_NOT_FOUND);
    assert_int_equal(vd_store_doc_exists(s, ns, id, &ex, err, sizeof err), VD_ERR_OK);
    assert_false(ex);

    vd_docgroup_clear(&g);
    vd_store_destroy(s);
}

/* ---- meta ------------------------------------------------------------- */
static void test_meta(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    const char *ns = vd_test_ns("meta");
    char err[512] = "", key[256];
    vd_meta m = {0};
    assert_int_equal(vd_store_meta_get(s, ns, &m, err, sizeof err), VD_ERR_NOT_FOUND);
    vd_meta w = {1, 384, (char *)"all-MiniLM-L6-v2", (char *)"COSINE", INT64_C(1700000000999)};
    assert_int_equal(vd_store_meta_put(s, ns, &w, err, sizeof err), VD_ERR_OK);
    snprintf(key, sizeof key, "%s:meta", ns);
    redisReply *r = rcmd(s, "HMGET %s schema_version dim model distance created_at", key);
    assert_string_equal(r->element[0]->str, "1");
    assert_string_equal(r->element[1]->str, "384");
    assert_string_equal(r->element[2]->str, "all-MiniLM-L6-v2");
    assert_string_equal(r->element[3]->str, "COSINE");
    assert_string_equal(r->element[4]->str, "1700000000999");
    freeReplyObject(r);
    assert_int_equal(vd_store_meta_get(s, ns, &m, err, sizeof err), VD_ERR_OK);
    assert_int_equal(m.schema_version, 1);
    assert_int_equal(m.dim, 384);
    assert_string_equal(m.model, "all-MiniLM-L6-v2");
    assert_string_equal(m.distance, "COSINE");
    assert_int_equal(m.created_at, INT64_C(1700000000999));
    vd_meta_clear(&m);
    r = rcmd(s, "HSET %s dim abc", key);
    freeReplyObject(r);
    assert_int_equal(vd_store_meta_get(s, ns, &m, err, sizeof err), VD_ERR_BAD_FIELD);
    r = rcmd(s, "DEL %s", key);
    freeReplyObject(r);
    vd_store_destroy(s);
}

/* ---- atomic writes ---------------------------------------------------- */
static long long doc_keys_left(vd_store *s, const char *ns, const char *id) {
    char pat[512], key[512];
    snprintf(pat, sizeof pat, "%s:*{%s}*", ns, id);
    snprintf(key, sizeof key, "%s:docs", ns);
    redisReply *r = rcmd(s, "TYPE %s", key);
    long long member = 0;
    if (strcmp(r->str, "set") == 0) {
        redisReply *m = rcmd(s, "SISMEMBER %s %s", key, id);
        member = m->integer;
        freeReplyObject(m);
    }
    freeReplyObject(r);
    return scan_count(s, pat) + member;
}

static void test_atomic_write(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    const char *ns = vd_test_ns("atomic");
    char err[512] = "", key[512];
    vd_docgroup g;
    redisReply *r;

    /* The chunk zset exists as a string: refused, nothing written, the
     * foreign key left as it was (with and without replace). */
    make_doc(&g, "doc-x", 3, 4);
    g.has_file = true;
    g.file.data = (unsigned char *)strdup("file");
    g.file.len = 4;
    snprintf(key, sizeof key, "%s:doc:{doc-x}:chunks", ns);
    r = rcmd(s, "SET %s junk", key);
    freeReplyObject(r);
    for (int replace = 0; replace < 2; replace++) {
        vd_err e = vd_store_doc_put(s, ns, &g, 4, replace, err, sizeof err);
        assert_int_equal(e, VD_ERR_REDIS);
        assert_non_null(strstr(err, "WRONGTYPE"));
        assert_int_equal(doc_keys_left(s, ns, "doc-x"), 1); /* only the junk string */
        r = rcmd(s, "GET %s", key);
        assert_string_equal(r->str, "junk");
        freeReplyObject(r);
    }
    r = rcmd(s, "DEL %s", key);
    freeReplyObject(r);

    /* A chunk key of the wrong type. */
    snprintf(key, sizeof key, "%s:chunk:{doc-x}:c1", ns);
    r = rcmd(s, "RPUSH %s a", key);
    freeReplyObject(r);
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_REDIS);
    assert_int_equal(doc_keys_left(s, ns, "doc-x"), 1);
    assert_int_equal(exists(s, key), 1);
    r = rcmd(s, "DEL %s", key);
    freeReplyObject(r);

    /* The index is not a set: refused before MULTI, nothing written. */
    snprintf(key, sizeof key, "%s:docs", ns);
    r = rcmd(s, "SET %s oops", key);
    freeReplyObject(r);
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_REDIS);
    assert_int_equal(doc_keys_left(s, ns, "doc-x"), 0);
    r = rcmd(s, "DEL %s", key);
    freeReplyObject(r);

    /* A bad dimension in the 3rd chunk: refused, nothing written. */
    g.chunks[2].dim = 3;
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_BAD_DIM);
    assert_non_null(strstr(err, "c2"));
    assert_int_equal(vd_store_doc_put(s, ns, &g, 0, false, err, sizeof err), VD_ERR_BAD_DIM);
    snprintf(key, sizeof key, "%s:*", ns);
    assert_int_equal(scan_count(s, key), 0);
    g.chunks[2].dim = 4;

    /* Now it goes through, every key at once. */
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_OK);
    assert_int_equal(doc_keys_left(s, ns, "doc-x"), 1 + 1 + 3 + 1 + 1);
    vd_docgroup_clear(&g);
    int64_t n = 0;
    assert_int_equal(vd_store_drop_namespace(s, ns, &n, err, sizeof err), VD_ERR_OK);
    assert_int_equal(n, 7);
    vd_store_destroy(s);
}

static void test_replace(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    const char *ns = vd_test_ns("replace");
    char err[512] = "", key[512];
    vd_docgroup g;
    make_doc(&g, "doc-r", 5, 4);
    g.has_file = true;
    g.file.data = (unsigned char *)strdup("old file");
    g.file.len = 8;
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_OK);
    vd_docgroup_clear(&g);
    snprintf(key, sizeof key, "%s:chunk:{doc-r}:*", ns);
    assert_int_equal(scan_count(s, key), 5);

    /* The new version: two chunks with other ids, no file. */
    make_doc(&g, "doc-r", 2, 4);
    free(g.chunks[0].id);
    g.chunks[0].id = strdup("n0");
    free(g.chunks[1].id);
    g.chunks[1].id = strdup("n1");
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, true, err, sizeof err), VD_ERR_OK);
    vd_docgroup_clear(&g);

    assert_int_equal(scan_count(s, key), 2);
    snprintf(key, sizeof key, "%s:chunk:{doc-r}:n0", ns);
    assert_int_equal(exists(s, key), 1);
    snprintf(key, sizeof key, "%s:chunk:{doc-r}:n1", ns);
    assert_int_equal(exists(s, key), 1);
    snprintf(key, sizeof key, "%s:file:{doc-r}", ns);
    assert_int_equal(exists(s, key), 0);
    snprintf(key, sizeof key, "%s:doc:{doc-r}:chunks", ns);
    assert_int_equal(rint_cmd(s, "ZCARD %s", key), 2);
    snprintf(key, sizeof key, "%s:doc:{doc-r}", ns);
    redisReply *r = rcmd(s, "HGET %s chunk_count", key);
    assert_string_equal(r->str, "2");
    freeReplyObject(r);
    assert_int_equal(vd_store_doc_get(s, ns, "doc-r", true, &g, err, sizeof err), VD_ERR_OK);
    assert_int_equal(g.nchunks, 2);
    assert_string_equal(g.chunks[0].id, "n0");
    assert_false(g.has_file);
    vd_docgroup_clear(&g);
    int64_t n = 0;
    assert_int_equal(vd_store_drop_namespace(s, ns, &n, err, sizeof err), VD_ERR_OK);
    assert_int_equal(n, 1 + 1 + 2 + 1); /* doc, zset, 2 chunks, docs */
    vd_store_destroy(s);
}

/* ---- batched writes --------------------------------------------------- */
static void test_put_batch(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    const char *ns = vd_test_ns("batch");
    char err[512] = "", key[512];
    redisReply *r;
    enum { N = 4 };
    vd_docgroup g[N];
    vd_err res[N];
    make_doc(&g[0], "doc-b0", 3, 4);
    make_doc(&g[1], "doc-b1", 3, 4);
    make_doc(&g[2], "doc-b2", 2, 4);
    make_doc(&g[3], "doc-b3", 2, 4);
    g[2].has_file = true;
    g[2].file.data = (unsigned char *)strdup("f2");
    g[2].file.len = 2;
    g[3].chunks[1].dim = 3; /* refused before anything is sent */

    /* doc-b1's second chunk key is a list: that document fails, whole. */
    snprintf(key, sizeof key, "%s:chunk:{doc-b1}:c1", ns);
    r = rcmd(s, "RPUSH %s a", key);
    freeReplyObject(r);
    vd_err e = vd_store_doc_put_batch(s, ns, g, NULL, N, 4, res, err, sizeof err);
    assert_int_equal(e, VD_ERR_REDIS);
    assert_non_null(strstr(err, "WRONGTYPE"));
    assert_non_null(strstr(err, "doc-b1"));
    assert_int_equal(res[0], VD_ERR_OK);
    assert_int_equal(res[1], VD_ERR_REDIS);
    assert_int_equal(res[2], VD_ERR_OK);
    assert_int_equal(res[3], VD_ERR_BAD_DIM);
    assert_int_equal(doc_keys_left(s, ns, "doc-b0"), 1 + 1 + 3 + 1);
    assert_int_equal(doc_keys_left(s, ns, "doc-b1"), 1); /* only the list */
    r = rcmd(s, "LRANGE %s 0 -1", key);
    assert_int_equal(r->elements, 1);
    freeReplyObject(r);
    assert_int_equal(doc_keys_left(s, ns, "doc-b2"), 1 + 1 + 2 + 1 + 1);
    assert_int_equal(doc_keys_left(s, ns, "doc-b3"), 0);
    vd_docgroup back = {0};
    assert_int_equal(vd_store_doc_get(s, ns, "doc-b2", true, &back, err, sizeof err), VD_ERR_OK);
    assert_int_equal(back.nchunks, 2);
    assert_true(back.has_file);
    assert_int_equal(back.file.len, 2);
    assert_int_equal(back.doc.chunk_count, 2);
    vd_docgroup_clear(&back);

    /* A validation failure before a Redis one is the one reported. */
    g[3].chunks[1].dim = 4;
    g[0].chunks[0].embedding[0] = NAN;
    e = vd_store_doc_put_batch(s, ns, g, NULL, N, 4, res, err, sizeof err);
    assert_int_equal(e, VD_ERR_BAD_FLOAT);
    assert_int_equal(res[0], VD_ERR_BAD_FLOAT);
    assert_int_equal(res[1], VD_ERR_REDIS);
    assert_int_equal(res[2], VD_ERR_OK);
    assert_int_equal(res[3], VD_ERR_OK);
    g[0].chunks[0].embedding[0] = 1.0f;

    /* The list gone, all of them go through; n = 0 is a no-op. */
    r = rcmd(s, "DEL %s", key);
    freeReplyObject(r);
    assert_int_equal(vd_store_doc_put_batch(s, ns, g, NULL, N, 4, res, err, sizeof err),
                     VD_ERR_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(res[i], VD_ERR_OK);
    assert_int_equal(doc_keys_left(s, ns, "doc-b1"), 1 + 1 + 3 + 1);
    assert_int_equal(vd_store_doc_put_batch(s, ns, g, NULL, 0, 4, res, err, sizeof err),
                     VD_ERR_OK);
    snprintf(key, sizeof key, "%s:docs", ns);
    assert_int_equal(rint_cmd(s, "SCARD %s", key), 4);

    /* The script cache flushed under us: the next batch loads it again. */
    r = rcmd(s, "SCRIPT FLUSH");
    freeReplyObject(r);
    assert_int_equal(vd_store_doc_put_batch(s, ns, g, NULL, 1, 4, res, err, sizeof err),
                     VD_ERR_OK);

    for (int i = 0; i < N; i++)
        vd_docgroup_clear(&g[i]);
    assert_int_equal(vd_store_drop_namespace(s, ns, NULL, err, sizeof err), VD_ERR_OK);
    vd_store_destroy(s);
}

/* Writes doc-m with chunks c0..c4 and a file, then puts a new version with
 * chunks n0, n1 and no file in the given mode. */
static void put_two_versions(vd_store *s, const char *ns, vd_store_put_mode mode,
                             vd_err *res) {
    char err[512] = "";
    vd_docgroup g;
    make_doc(&g, "doc-m", 5, 4);
    g.has_file = true;
    g.file.data = (unsigned char *)strdup("old file");
    g.file.len = 8;
    assert_int_equal(vd_store_doc_put_batch(s, ns, &g, NULL, 1, 4, res, err, sizeof err),
                     VD_ERR_OK);
    vd_docgroup_clear(&g);
    make_doc(&g, "doc-m", 2, 4);
    free(g.chunks[0].id);
    g.chunks[0].id = strdup("n0");
    free(g.chunks[1].id);
    g.chunks[1].id = strdup("n1");
    vd_store_doc_put_batch(s, ns, &g, &mode, 1, 4, res, err, sizeof err);
    vd_docgroup_clear(&g);
}

static void test_put_batch_modes(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    const char *ns = vd_test_ns("modes");
    char err[512] = "", key[512], pat[512];
    vd_err res[2];
    snprintf(pat, sizeof pat, "%s:chunk:{doc-m}:*", ns);

    /* REPLACE: the stale chunks and the old file go in the same step. */
    put_two_versions(s, ns, VD_STORE_PUT_REPLACE, res);
    assert_int_equal(res[0], VD_ERR_OK);
    assert_int_equal(scan_count(s, pat), 2);
    snprintf(key, sizeof key, "%s:file:{doc-m}", ns);
    assert_int_equal(exists(s, key), 0);
    snprintf(key, sizeof key, "%s:doc:{doc-m}:chunks", ns);
    assert_int_equal(rint_cmd(s, "ZCARD %s", key), 2);
    assert_int_equal(vd_store_drop_namespace(s, ns, NULL, err, sizeof err), VD_ERR_OK);

    /* MERGE (vd_store_doc_put replace=false): old chunks and file stay. */
    put_two_versions(s, ns, VD_STORE_PUT_MERGE, res);
    assert_int_equal(res[0], VD_ERR_OK);
    assert_int_equal(scan_count(s, pat), 7);
    snprintf(key, sizeof key, "%s:file:{doc-m}", ns);
    assert_int_equal(exists(s, key), 1);
    snprintf(key, sizeof key, "%s:doc:{doc-m}:chunks", ns);
    assert_int_equal(rint_cmd(s, "ZCARD %s", key), 2);
    assert_int_equal(vd_store_drop_namespace(s, ns, NULL, err, sizeof err), VD_ERR_OK);

    /* IF_ABSENT: an existing document is not touched at all. */
    put_two_versions(s, ns, VD_STORE_PUT_IF_ABSENT, res);
    assert_int_equal(res[0], VD_ERR_CONFLICT);
    assert_int_equal(scan_count(s, pat), 5);
    snprintf(key, sizeof key, "%s:doc:{doc-m}:chunks", ns);
    assert_int_equal(rint_cmd(s, "ZCARD %s", key), 5);
    snprintf(key, sizeof key, "%s:doc:{doc-m}", ns);
    redisReply *r = rcmd(s, "HGET %s chunk_count", key);
    assert_string_equal(r->str, "5");
    freeReplyObject(r);

    /* A mixed batch: IF_ABSENT on an existing and on a new document. */
    vd_docgroup g[2];
    make_doc(&g[0], "doc-m", 1, 4);
    make_doc(&g[1], "doc-new", 1, 4);
    vd_store_put_mode modes[2] = {VD_STORE_PUT_IF_ABSENT, VD_STORE_PUT_IF_ABSENT};
    assert_int_equal(vd_store_doc_put_batch(s, ns, g, modes, 2, 4, res, err, sizeof err),
                     VD_ERR_CONFLICT);
    assert_non_null(strstr(err, "doc-m"));
    assert_int_equal(res[0], VD_ERR_CONFLICT);
    assert_int_equal(res[1], VD_ERR_OK);
    assert_int_equal(doc_keys_left(s, ns, "doc-new"), 4);

    /* Two batches in flight: send, send, receive, receive. */
    vd_err res2[2];
    char err2[512] = "";
    modes[0] = modes[1] = VD_STORE_PUT_REPLACE;
    assert_int_equal(vd_store_doc_put_batch_send(s, ns, g, modes, 1, 4, res, err, sizeof err),
                     VD_ERR_OK);
    assert_int_equal(
        vd_store_doc_put_batch_send(s, ns, g + 1, modes, 1, 4, res2, err2, sizeof err2),
        VD_ERR_OK);
    assert_int_equal(vd_store_doc_put_batch_recv(s, ns, g, 1, res, err, sizeof err),
                     VD_ERR_OK);
    assert_int_equal(vd_store_doc_put_batch_recv(s, ns, g + 1, 1, res2, err2, sizeof err2),
                     VD_ERR_OK);
    assert_int_equal(scan_count(s, pat), 1); /* doc-m replaced by its 1-chunk version */
    vd_docgroup_clear(&g[0]);
    vd_docgroup_clear(&g[1]);
    assert_int_equal(vd_store_drop_namespace(s, ns, NULL, err, sizeof err), VD_ERR_OK);
    vd_store_destroy(s);
}

/* A user the server refuses scripts to: the WATCH/MULTI/EXEC path, same
 * guarantees. */
static void test_put_batch_no_scripts(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *admin = store_open();
    const char *ns = vd_test_ns("noscript");
    char err[512] = "", key[512], pat[512], user[64];
    snprintf(user, sizeof user, "vd-noscript-%d", (int)getpid());
    redisReply *r = rcmd(admin, "ACL SETUSER %s on >pw-noscript ~* +@all -@scripting", user);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    vd_store_conf conf = {0};
    conf.port = vd_test_redis_port();
    conf.user = user;
    conf.password = "pw-noscript";
    vd_store *s = NULL;
    assert_int_equal(vd_store_connect(&conf, &s, err, sizeof err), VD_ERR_OK);

    vd_err res[3];
    put_two_versions(s, ns, VD_STORE_PUT_REPLACE, res);
    assert_int_equal(res[0], VD_ERR_OK);
    snprintf(pat, sizeof pat, "%s:chunk:{doc-m}:*", ns);
    assert_int_equal(scan_count(admin, pat), 2);
    snprintf(key, sizeof key, "%s:file:{doc-m}", ns);
    assert_int_equal(exists(admin, key), 0);

    vd_docgroup g[3];
    make_doc(&g[0], "doc-m", 1, 4);
    make_doc(&g[1], "doc-w", 2, 4);
    make_doc(&g[2], "doc-n", 1, 4);
    snprintf(key, sizeof key, "%s:doc:{doc-w}:chunks", ns);
    r = rcmd(admin, "SET %s junk", key);
    freeReplyObject(r);
    vd_store_put_mode modes[3] = {VD_STORE_PUT_IF_ABSENT, VD_STORE_PUT_MERGE,
                                  VD_STORE_PUT_IF_ABSENT};
    assert_int_equal(vd_store_doc_put_batch(s, ns, g, modes, 3, 4, res, err, sizeof err),
                     VD_ERR_CONFLICT);
    assert_int_equal(res[0], VD_ERR_CONFLICT);
    assert_int_equal(res[1], VD_ERR_REDIS);
    assert_int_equal(res[2], VD_ERR_OK);
    assert_int_equal(scan_count(admin, pat), 2);
    assert_int_equal(doc_keys_left(admin, ns, "doc-w"), 1);
    assert_int_equal(doc_keys_left(admin, ns, "doc-n"), 4);
    for (int i = 0; i < 3; i++)
        vd_docgroup_clear(&g[i]);

    vd_store_destroy(s);
    r = rcmd(admin, "ACL DELUSER %s", user);
    freeReplyObject(r);
    assert_int_equal(vd_store_drop_namespace(admin, ns, NULL, err, sizeof err), VD_ERR_OK);
    vd_store_destroy(admin);
}

/* ---- bad input -------------------------------------------------------- */
static void test_bad_input(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    const char *ns = vd_test_ns("bad");
    char err[512] = "", pat[256], long_id[130];
    memset(long_id, 'a', 129);
    long_id[129] = 0;
    const char *bad_ids[] = {"a b", "", long_id, "x:y", "{x}", "caf\xc3\xa9"};
    vd_docgroup g;
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        make_doc(&g, bad_ids[i], 2, 4);
        free(g.chunks[0].doc_id);
        g.chunks[0].doc_id = NULL; /* the doc's own id */
        free(g.chunks[1].doc_id);
        g.chunks[1].doc_id = NULL;
        assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_BAD_ID);
        vd_docgroup_clear(&g);
        make_doc(&g, "doc-ok", 2, 4);
        free(g.chunks[1].id);
        g.chunks[1].id = strdup(bad_ids[i]);
        assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_BAD_ID);
        vd_docgroup_clear(&g);
        assert_int_equal(vd_store_doc_get(s, ns, bad_ids[i], false, &g, err, sizeof err),
                         VD_ERR_BAD_ID);
    }
    /* 128 bytes is still an id. */
    long_id[128] = 0;
    make_doc(&g, long_id, 1, 4);
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_OK);
    assert_int_equal(vd_store_doc_delete(s, ns, long_id, err, sizeof err), VD_ERR_OK);
    vd_docgroup_clear(&g);

    make_doc(&g, "doc-d", 3, 4);
    g.chunks[1].dim = 3; /* wrong length */
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_BAD_DIM);
    g.chunks[1].dim = 4;
    g.chunks[2].embedding[3] = NAN;
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_BAD_FLOAT);
    assert_non_null(strstr(err, "embedding[3]"));
    g.chunks[2].embedding[3] = -INFINITY;
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_BAD_FLOAT);
    g.chunks[2].embedding[3] = 0.5f;
    free(g.chunks[2].doc_id);
    g.chunks[2].doc_id = strdup("doc-other");
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_BAD_FIELD);
    free(g.chunks[2].doc_id);
    g.chunks[2].doc_id = strdup("doc-d");
    free(g.chunks[2].id);
    g.chunks[2].id = strdup("c0"); /* duplicate */
    assert_int_equal(vd_store_doc_put(s, ns, &g, 4, false, err, sizeof err), VD_ERR_BAD_FIELD);
    vd_docgroup_clear(&g);

    snprintf(pat, sizeof pat, "%s:*", ns);
    assert_int_equal(scan_count(s, pat), 0);
    vd_store_destroy(s);
}

/* ---- seed + stream ---------------------------------------------------- */
static void test_stream_20k(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    const char *ns = vd_test_ns("stream");
    char err[512] = "";
    enum { N = 20000 };
    vd_seed_conf c = {0};
    c.documents = N;
    c.chunks_per_doc = 1;
    c.dim = 64;
    c.text_bytes = 100;
    c.seed = 7;
    vd_store_counts w;
    int64_t t0 = vd_mono_ms();
    vd_err e = vd_store_seed(s, ns, &c, &w, err, sizeof err);
    int64_t t_seed = vd_mono_ms() - t0;
    if (e)
        print_message("seed: %s\n", err);
    assert_int_equal(e, VD_ERR_OK);
    assert_int_equal(w.documents, N);
    assert_int_equal(w.chunks, N);
    assert_int_equal(w.files, 0);

    t0 = vd_mono_ms();
    vd_store_counts cnt;
    assert_int_equal(vd_store_count(s, ns, &cnt, err, sizeof err), VD_ERR_OK);
    int64_t t_count = vd_mono_ms() - t0;
    assert_int_equal(cnt.documents, N);
    assert_int_equal(cnt.chunks, N);
    assert_int_equal(cnt.files, 0);

    unsigned char *seen = calloc(N, 1);
    vd_store_iter *it = NULL;
    t0 = vd_mono_ms();
    assert_int_equal(vd_store_iter_new(s, ns, false, 0, &it, err, sizeof err), VD_ERR_OK);
    vd_docgroup g = {0};
    bool done = false;
    long visited = 0;
    for (;;) {
        e = vd_store_iter_next(it, &g, &done, err, sizeof err);
        if (e)
            print_message("iter: %s\n", err);
        assert_int_equal(e, VD_ERR_OK);
        if (done)
            break;
        assert_int_equal(strncmp(g.doc.id, "doc-", 4), 0);
        long k = strtol(g.doc.id + 4, NULL, 10);
        assert_true(k >= 1 && k <= N);
        seen[k - 1]++;
        visited++;
        assert_int_equal(g.nchunks, 1);
        assert_int_equal(g.chunks[0].dim, 64);
        assert_string_equal(g.chunks[0].doc_id, g.doc.id);
        assert_int_equal(vd_embedding_check(g.chunks[0].embedding, 64), VD_ERR_OK);
        assert_int_equal(g.doc.chunk_count, 1);
        vd_docgroup_clear(&g);
    }
    int64_t t_iter = vd_mono_ms() - t0;
    vd_store_iter_destroy(it);
    assert_int_equal(visited, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    free(seen);

    long rss = vd_test_peak_rss_kb();
    t0 = vd_mono_ms();
    int64_t n = 0;
    assert_int_equal(vd_store_drop_namespace(s, ns, &n, err, sizeof err), VD_ERR_OK);
    int64_t t_drop = vd_mono_ms() - t0;
    assert_int_equal(n, 3 * N + 2);
    print_message("seed %d docs: %lld ms; count: %lld ms; iterate: %lld ms (%.0f docs/s); "
                  "drop: %lld ms; peak RSS %ld KiB\n",
                  N, (long long)t_seed, (long long)t_count, (long long)t_iter,
                  t_iter > 0 ? N * 1000.0 / (double)t_iter : 0.0, (long long)t_drop, rss);
#if defined(__SANITIZE_ADDRESS__)
    assert_true(rss > 0 && rss < 512 * 1024); /* ASan's shadow memory counts */
#else
    assert_true(rss > 0 && rss < 64 * 1024);
#endif
    vd_store_destroy(s);
}

/* The iterator with files: the seeded size and sha256 match the file. */
static void test_stream_files(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    const char *ns = vd_test_ns("files");
    char err[512] = "";
    vd_seed_conf c = {0};
    c.documents = 40;
    c.chunks_per_doc = 3;
    c.dim = 8;
    c.text_bytes = 50;
    c.with_files = true;
    c.file_bytes = 700 * 1024; /* several iterator windows */
    c.seed = 99;
    vd_store_counts w;
    assert_int_equal(vd_store_seed(s, ns, &c, &w, err, sizeof err), VD_ERR_OK);
    assert_int_equal(w.files, 40);
    vd_store_iter *it = NULL;
    assert_int_equal(vd_store_iter_new(s, ns, true, 7, &it, err, sizeof err), VD_ERR_OK);
    vd_docgroup g = {0};
    bool done = false;
    int docs = 0, nuls = 0;
    while (vd_store_iter_next(it, &g, &done, err, sizeof err) == VD_ERR_OK && !done) {
        char sha[65];
        assert_true(g.has_file);
        assert_int_equal(g.file.len, 700 * 1024);
        assert_int_equal(g.doc.size, 700 * 1024);
        vd_sha256_hex(g.file.data, g.file.len, sha);
        assert_string_equal(sha, g.doc.sha256);
        nuls += memchr(g.file.data, 0, g.file.len) != NULL;
        assert_int_equal(g.nchunks, 3);
        for (size_t i = 0; i < 3; i++)
            assert_int_equal(g.chunks[i].seq, (int64_t)i);
        docs++;
        vd_docgroup_clear(&g);
    }
    assert_true(done);
    assert_int_equal(docs, 40);
    assert_int_equal(nuls, 40);
    vd_store_iter_destroy(it);
    assert_int_equal(vd_store_drop_namespace(s, ns, NULL, err, sizeof err), VD_ERR_OK);
    vd_store_destroy(s);
}

static void compare_key(vd_store *s, const char *cmd, const char *ka, const char *kb,
                        bool want_equal) {
    redisReply *a = rcmd(s, cmd, ka), *b = rcmd(s, cmd, kb);
    bool eq = a->type == b->type;
    if (eq && a->type == REDIS_REPLY_STRING)
        eq = a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    if (eq && a->type == REDIS_REPLY_ARRAY) {
        eq = a->elements == b->elements;
        for (size_t i = 0; eq && i < a->elements; i++)
            eq = a->element[i]->len == b->element[i]->len &&
                 memcmp(a->element[i]->str, b->element[i]->str, a->element[i]->len) == 0;
    }
    assert_true(a->type == REDIS_REPLY_STRING || a->type == REDIS_REPLY_ARRAY);
    assert_true(a->type != REDIS_REPLY_ARRAY || a->elements > 0);
    assert_int_equal(eq, want_equal);
    freeReplyObject(a);
    freeReplyObject(b);
}

static void test_seed_deterministic(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    const char *ns[3];
    char nsbuf[3][96], err[512] = "", ka[512], kb[512];
    for (int i = 0; i < 3; i++) {
        snprintf(nsbuf[i], sizeof nsbuf[i], "%s", vd_test_ns("seed"));
        ns[i] = nsbuf[i];
    }
    vd_seed_conf c = {0};
    c.documents = 60;
    c.chunks_per_doc = 3;
    c.dim = 16;
    c.text_bytes = 80;
    c.with_files = true;
    c.file_bytes = 1000;
    c.seed = 42;
    c.orphan_chunks = 2;
    c.missing_embeddings = 2;
    c.wrong_dims = 2;
    c.nans = 2;
    c.index_drift = 2;
    vd_store_counts w;
    for (int i = 0; i < 3; i++) {
        c.seed = i == 2 ? 43 : 42;
        assert_int_equal(vd_store_seed(s, ns[i], &c, &w, err, sizeof err), VD_ERR_OK);
    }
    assert_int_equal(w.documents, 60);
    assert_int_equal(w.chunks, 60 * 3 + 2);
    assert_int_equal(w.files, 60);

    const char *docs[3] = {"doc-000001", "doc-000030", "doc-000060"};
    for (int i = 0; i < 3; i++) {
        for (int other = 1; other < 3; other++) {
            bool same = other == 1;
            snprintf(ka, sizeof ka, "%s:doc:{%s}", ns[0], docs[i]);
            snprintf(kb, sizeof kb, "%s:doc:{%s}", ns[other], docs[i]);
            compare_key(s, "HGETALL %s", ka, kb, same);
            snprintf(ka, sizeof ka, "%s:chunk:{%s}:c0001", ns[0], docs[i]);
            snprintf(kb, sizeof kb, "%s:chunk:{%s}:c0001", ns[other], docs[i]);
            compare_key(s, "HGETALL %s", ka, kb, same);
            snprintf(ka, sizeof ka, "%s:file:{%s}", ns[0], docs[i]);
            snprintf(kb, sizeof kb, "%s:file:{%s}", ns[other], docs[i]);
            compare_key(s, "GET %s", ka, kb, same);
        }
    }
    snprintf(ka, sizeof ka, "%s:meta", ns[0]);
    snprintf(kb, sizeof kb, "%s:meta", ns[1]);
    compare_key(s, "HGETALL %s", ka, kb, true);
    vd_meta m = {0};
    assert_int_equal(vd_store_meta_get(s, ns[0], &m, err, sizeof err), VD_ERR_OK);
    assert_int_equal(m.dim, 16);
    assert_string_equal(m.model, "vecdump-seed");
    vd_meta_clear(&m);

    /* Planted defects. */
    snprintf(ka, sizeof ka, "%s:chunk:{orphan-000002}:c0000", ns[0]);
    assert_int_equal(exists(s, ka), 1);
    snprintf(ka, sizeof ka, "%s:doc:{orphan-000002}", ns[0]);
    assert_int_equal(exists(s, ka), 0);
    snprintf(ka, sizeof ka, "%s:docs", ns[0]);
    assert_int_equal(rint_cmd(s, "SCARD %s", ka), 59);
    vd_store_counts cnt;
    assert_int_equal(vd_store_count(s, ns[0], &cnt, err, sizeof err), VD_ERR_OK);
    assert_int_equal(cnt.documents, 59);
    assert_int_equal(cnt.chunks, 58 * 3 + 2);
    assert_int_equal(cnt.files, 59);

    vd_store_iter *it = NULL;
    assert_int_equal(vd_store_iter_new(s, ns[0], false, 10, &it, err, sizeof err), VD_ERR_OK);
    vd_docgroup g = {0};
    bool done = false;
    int ndocs = 0, nchunks = 0, no_emb = 0, short_emb = 0, nan = 0, nan_payload = 0;
    while (vd_store_iter_next(it, &g, &done, err, sizeof err) == VD_ERR_OK && !done) {
        ndocs++;
        for (size_t i = 0; i < g.nchunks; i++) {
            const vd_chunk *ch = &g.chunks[i];
            nchunks++;
            no_emb += ch->dim == 0;
            short_emb += ch->dim == 15;
            if (ch->dim && vd_embedding_check(ch->embedding, ch->dim)) {
                nan++;
                for (size_t k = 0; k < ch->dim; k++)
                    nan_payload += bits_f(ch->embedding[k]) == 0x7fc00001u;
            }
        }
        vd_docgroup_clear(&g);
    }
    assert_true(done);
    vd_store_iter_destroy(it);
    assert_int_equal(ndocs, 59);
    assert_int_equal(nchunks, 59 * 3 - 1);
    assert_int_equal(no_emb, 2);
    assert_int_equal(short_emb, 2);
    assert_int_equal(nan, 2);
    assert_int_equal(nan_payload, 2);

    for (int i = 0; i < 3; i++)
        assert_int_equal(vd_store_drop_namespace(s, ns[i], NULL, err, sizeof err), VD_ERR_OK);
    vd_store_destroy(s);
}

/* ---- drop ------------------------------------------------------------- */
static void test_drop_namespace(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store *s = store_open();
    char base[96], a[128], a2[128], q[128], r_[128], err[512] = "", pat[256];
    snprintf(base, sizeof base, "%s", vd_test_ns("drop"));
    snprintf(a, sizeof a, "%s", base);
    snprintf(a2, sizeof a2, "%s2", base);         /* shares the prefix */
    snprintf(q, sizeof q, "%s_d?p[x]*", base);     /* glob characters */
    snprintf(r_, sizeof r_, "%s_dxpx:zz", base);   /* what an unescaped glob would match */
    const char *all[4] = {a, a2, q, r_};
    vd_docgroup g;
    for (int i = 0; i < 4; i++) {
        make_doc(&g, "doc-1", 2, 4);
        assert_int_equal(vd_store_doc_put(s, all[i], &g, 4, false, err, sizeof err), VD_ERR_OK);
        vd_docgroup_clear(&g);
    }
    int64_t n = -1;
    assert_int_equal(vd_store_drop_namespace(s, a, &n, err, sizeof err), VD_ERR_OK);
    assert_int_equal(n, 5);
    assert_int_equal(vd_store_drop_namespace(s, q, &n, err, sizeof err), VD_ERR_OK);
    assert_int_equal(n, 5);
    snprintf(pat, sizeof pat, "%s:*", a);
    assert_int_equal(scan_count(s, pat), 0);
    snprintf(pat, sizeof pat, "%s:*", a2);
    assert_int_equal(scan_count(s, pat), 5);
    snprintf(pat, sizeof pat, "%s:*", r_);
    assert_int_equal(scan_count(s, pat), 5);
    assert_int_equal(vd_store_drop_namespace(s, a2, &n, err, sizeof err), VD_ERR_OK);
    assert_int_equal(n, 5);
    assert_int_equal(vd_store_drop_namespace(s, r_, &n, err, sizeof err), VD_ERR_OK);
    assert_int_equal(n, 5);
    assert_int_equal(vd_store_drop_namespace(s, r_, &n, err, sizeof err), VD_ERR_OK);
    assert_int_equal(n, 0);
    vd_store_destroy(s);
}

/* ---- connections ------------------------------------------------------ */
static void test_connection_errors(void **state) {
    (void)state;
    VD_NEED_REDIS();
    char err[512] = "";
    vd_store *s = NULL;
    vd_store_conf conf = {0};
    conf.port = 1; /* nothing listens there */
    conf.timeout_ms = 1000;
    assert_int_equal(vd_store_connect(&conf, &s, err, sizeof err), VD_ERR_REDIS_CONN);
    assert_null(s);
    print_message("refused: %s\n", err);

    conf.port = vd_test_redis_port();
    conf.password = "s3cr3t-PASSWORD";
    assert_int_equal(vd_store_connect(&conf, &s, err, sizeof err), VD_ERR_REDIS);
    assert_null(s);
    assert_null(strstr(err, "s3cr3t"));
    print_message("auth: %s\n", err);

    /* A dropped connection fails the call, the next one reconnects. */
    s = store_open();
    vd_store *killer = store_open();
    redisReply *r = rcmd(s, "CLIENT ID");
    long long cid = r->integer;
    freeReplyObject(r);
    r = rcmd(killer, "CLIENT KILL ID %lld", cid);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    int64_t us = 0;
    assert_int_equal(vd_store_ping(s, &us, err, sizeof err), VD_ERR_REDIS_CONN);
    assert_true(vd_err_is_retriable(VD_ERR_REDIS_CONN));
    assert_int_equal(vd_store_ping(s, &us, err, sizeof err), VD_ERR_OK);
    assert_true(us > 0);
    vd_store_destroy(killer);
    vd_store_destroy(s);
    vd_store_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_20k), /* first: peak RSS is per process */
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_put_batch),
        cmocka_unit_test(test_put_batch_modes),
        cmocka_unit_test(test_put_batch_no_scripts),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_stream_files),
        cmocka_unit_test(test_seed_deterministic),
        cmocka_unit_test(test_drop_namespace),
        cmocka_unit_test(test_connection_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
