/*
 * test_jsonl.c - the JSONL artifact: byte-exact round trips (unicode, quotes,
 * newlines, NUL bytes, invalid UTF-8, binary files; plain and gzip; from a
 * path and from memory), every kind of corruption with its own error code,
 * and writer / reader throughput (printed).
 */
#include "vd_test.h"
#include "vd_formats.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define DIM 8

static uint64_t rng = 88172645463325252u;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
static double wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void info_init(vd_artifact_info *info, int dim, bool compress, bool files) {
    memset(info, 0, sizeof *info);
    info->tool_version = "0.1.0";
    info->task_id = "task-\xc3\xa9\"1";
    info->ns = "vec";
    info->created_at = 1700000000123;
    info->meta.schema_version = 1;
    info->meta.dim = dim;
    info->meta.model = "all-MiniLM-L6-v2";
    info->meta.distance = "COSINE";
    info->meta.created_at = 1690000000000;
    info->include_files = files;
    info->compress = compress;
}

static void add_chunk(vd_docgroup *g, const char *id, int64_t seq, const char *text, size_t tlen,
                      size_t dim) {
    vd_chunk *c = vd_docgroup_add_chunk(g);
    assert_non_null(c);
    c->id = vd_strdup(id);
    c->doc_id = vd_strdup(g->doc.id);
    c->seq = seq;
    c->text = text ? vd_strndup(text, tlen) : NULL;
    c->text_len = text ? tlen : 0;
    c->dim = dim;
    c->embedding = malloc(dim * sizeof(float) + 1);
    for (size_t i = 0; i < dim; i++) {
        uint32_t u;
        do
            u = rnd();
        while (((u >> 23) & 0xff) == 0xff);
        float f;
        memcpy(&f, &u, 4);
        c->embedding[i] = (i % 2) ? f : ((float)(rnd() % 2000000) / 1e6f - 1.0f);
    }
    c->metadata = vd_strdup(seq % 2 ? "{}" : "{\"page\": 3, \"h\": \"a\\\"b\"}");
}

/* The test corpus: every awkward byte we can think of. */
static size_t make_groups(vd_docgroup *gs) {
    memset(gs, 0, 4 * sizeof *gs);
    /* 0: unicode, quotes, commas, newlines, a file with NULs */
    gs[0].doc.id = vd_strdup("doc-1");
    gs[0].doc.title = vd_strdup("Z\xc3\xbcrich \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x8e\x89, \"q\"\n");
    gs[0].doc.source = vd_strdup("s3://bucket/a b,c.pdf");
    gs[0].doc.content_type = vd_strdup("application/pdf");
    static const unsigned char bin[] = {0, 1, 2, 0, 0xff, 0xfe, '\n', '"', 0};
    gs[0].has_file = true;
    gs[0].file.doc_id = vd_strdup("doc-1");
    gs[0].file.data = malloc(sizeof bin);
    memcpy(gs[0].file.data, bin, sizeof bin);
    gs[0].file.len = sizeof bin;
    char hex[65];
    vd_sha256_hex(bin, sizeof bin, hex);
    gs[0].doc.sha256 = vd_strdup(hex);
    gs[0].doc.size = sizeof bin;
    gs[0].doc.created_at = 1;
    gs[0].doc.updated_at = -2;
    gs[0].doc.chunk_count = 3;
    gs[0].doc.metadata = vd_strdup("{\"k\": [1, 2.5, \"\xe2\x82\xac\"]}");
    const char t1[] = "plain, \"quoted\", back\\slash\nnew line\ttab \x01\x1f end \xe2\x80\xa8";
    add_chunk(&gs[0], "c1", 0, t1, sizeof t1 - 1, DIM);
    const char t2[] = "nul\0inside\0";
    add_chunk(&gs[0], "c2", 1, t2, sizeof t2 - 1, DIM);
    const char t3[] = "bad utf8 \xff\xfe \xc3\x28 \xed\xa0\x80 surrogate";
    add_chunk(&gs[0], "c3", 1, t3, sizeof t3 - 1, DIM); /* equal seq is allowed */
    /* 1: empty metadata, NULL title, invalid UTF-8 title, empty text, no file */
    gs[1].doc.id = vd_strdup("doc_2.B");
    gs[1].doc.title = NULL;
    gs[1].doc.source = vd_strdup("\xc0\xaf overlong");
    gs[1].doc.content_type = vd_strdup("");
    gs[1].doc.sha256 = vd_strdup("");
    gs[1].doc.metadata = vd_strdup("{}");
    add_chunk(&gs[1], "x", 7, "", 0, DIM);
    add_chunk(&gs[1], "y", 8, NULL, 0, DIM);
    /* 2: a document without chunks */
    gs[2].doc.id = vd_strdup("empty");
    gs[2].doc.metadata = vd_strdup("{}");
    return 3;
}

static void free_groups(vd_docgroup *gs, size_t n) {
    for (size_t i = 0; i < n; i++)
        vd_docgroup_clear(&gs[i]);
}

static void assert_str_eq(const char *a, const char *b) {
    if (!a || !b) {
        assert_true(a == b);
        return;
    }
    assert_string_equal(a, b);
}

static void assert_group_eq(const vd_docgroup *a, const vd_docgroup *b, bool files) {
    assert_str_eq(a->doc.id, b->doc.id);
    assert_str_eq(a->doc.title, b->doc.title);
    assert_str_eq(a->doc.source, b->doc.source);
    assert_str_eq(a->doc.content_type, b->doc.content_type);
    assert_str_eq(a->doc.sha256, b->doc.sha256);
    assert_str_eq(a->doc.metadata, b->doc.metadata);
    assert_int_equal(a->doc.size, b->doc.size);
    assert_int_equal(a->doc.created_at, b->doc.created_at);
    assert_int_equal(a->doc.updated_at, b->doc.updated_at);
    assert_int_equal(a->doc.chunk_count, b->doc.chunk_count);
    assert_int_equal(a->nchunks, b->nchunks);
    for (size_t i = 0; i < a->nchunks; i++) {
        const vd_chunk *x = &a->chunks[i], *y = &b->chunks[i];
        assert_str_eq(x->id, y->id);
        assert_str_eq(x->doc_id, y->doc_id);
        assert_int_equal(x->seq, y->seq);
        assert_true((x->text == NULL) == (y->text == NULL));
        assert_int_equal(x->text_len, y->text_len);
        if (x->text_len)
            assert_memory_equal(x->text, y->text, x->text_len);
        assert_int_equal(x->dim, y->dim);
        assert_memory_equal(x->embedding, y->embedding, x->dim * sizeof(float));
        assert_str_eq(x->metadata, y->metadata);
    }
    if (files) {
        assert_int_equal(a->has_file, b->has_file);
        if (a->has_file) {
            assert_int_equal(a->file.len, b->file.len);
            assert_memory_equal(a->file.data, b->file.data, a->file.len);
            assert_str_eq(a->file.doc_id, b->file.doc_id);
        }
    } else {
        assert_false(b->has_file);
    }
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)n + 1);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* Reads everything; returns the first error (or OK) and the groups read. */
static vd_err read_all(vd_reader *r, vd_docgroup *out, size_t max, size_t *n, char *err,
                       size_t errsz) {
    *n = 0;
    for (;;) {
        vd_docgroup g;
        bool done = false;
        vd_err e = vd_reader_next(r, &g, &done, err, errsz);
        if (e)
            return e;
        if (done)
            return VD_ERR_OK;
        if (out && *n < max)
            out[*n] = g;
        else
            vd_docgroup_clear(&g);
        (*n)++;
    }
}

static void roundtrip(bool compress, bool files) {
    char *dir = vd_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/a.jsonl%s", dir, compress ? ".gz" : "");
    vd_artifact_info info;
    info_init(&info, DIM, compress, files);
    vd_docgroup gs[4];
    size_t ng = make_groups(gs);
    char err[512] = "";
    vd_writer *w = NULL;
    assert_int_equal(vd_writer_open(VD_FMT_JSONL, path, &info, &w, err, sizeof err), VD_ERR_OK);
    for (size_t i = 0; i < ng; i++)
        assert_int_equal(vd_writer_put(w, &gs[i], err, sizeof err), VD_ERR_OK);
    vd_writer_result res;
    assert_int_equal(vd_writer_close(w, &res, err, sizeof err), VD_ERR_OK);
    vd_writer_destroy(w);
    assert_int_equal(res.counts.documents, 3);
    assert_int_equal(res.counts.chunks, 5);
    assert_int_equal(res.counts.files, files ? 1 : 0);

    size_t len;
    unsigned char *mem = slurp(path, &len);
    assert_int_equal((int64_t)len, res.bytes);
    char hex[65];
    vd_sha256_hex(mem, len, hex);
    assert_string_equal(hex, res.sha256);
    if (compress)
        assert_true(mem[0] == 0x1f && mem[1] == 0x8b);
    else
        assert_true(memchr(mem, 0, len) == NULL); /* NULs are escaped */

    for (int how = 0; how < 2; how++) {
        vd_reader *r = NULL;
        vd_err e = how == 0 ? vd_reader_open(path, NULL, &r, err, sizeof err)
                            : vd_reader_open_mem(mem, len, NULL, &r, err, sizeof err);
        if (e)
            print_message("open: %s\n", err);
        assert_int_equal(e, VD_ERR_OK);
        assert_int_equal(vd_reader_format(r), VD_FMT_JSONL);
        const vd_artifact_info *ri = vd_reader_info(r);
        assert_string_equal(ri->task_id, info.task_id);
        assert_string_equal(ri->ns, "vec");
        assert_string_equal(ri->tool_version, "0.1.0");
        assert_string_equal(ri->meta.model, "all-MiniLM-L6-v2");
        assert_string_equal(ri->meta.distance, "COSINE");
        assert_int_equal(ri->meta.dim, DIM);
        assert_int_equal(ri->created_at, info.created_at);
        assert_int_equal(ri->meta.created_at, info.meta.created_at);
        assert_int_equal(ri->compress, compress);
        assert_int_equal(ri->include_files, files);
        vd_docgroup back[4];
        size_t nb;
        e = read_all(r, back, 4, &nb, err, sizeof err);
        if (e)
            print_message("read: %s\n", err);
        assert_int_equal(e, VD_ERR_OK);
        assert_int_equal(nb, ng);
        for (size_t i = 0; i < ng; i++)
            assert_group_eq(&gs[i], &back[i], files);
        assert_int_equal(vd_reader_bytes(r), (int64_t)len);
        bool done = false;
        vd_docgroup g;
        assert_int_equal(vd_reader_next(r, &g, &done, err, sizeof err), VD_ERR_OK);
        assert_true(done);
        free_groups(back, nb);
        vd_reader_destroy(r);
    }
    free(mem);
    free_groups(gs, ng);
    unlink(path);
    rmdir(dir);
    free(dir);
}

static void test_roundtrip_plain(void **state) {
    (void)state;
    roundtrip(false, true);
    roundtrip(false, false);
}

static void test_roundtrip_gzip(void **state) {
    (void)state;
    roundtrip(true, true);
    roundtrip(true, false);
}

/* ---- hand-made artifacts ------------------------------------------------ */

#define HDR "{\"type\":\"header\",\"format\":\"vecdump-jsonl\",\"format_version\":1," \
            "\"schema_version\":1,\"dim\":2,\"include_files\":true}"
#define DOC(id) "{\"type\":\"document\",\"id\":\"" id "\",\"metadata\":\"{}\"}"

/* Joins lines with newlines and appends a correct trailer with the counts. */
static char *build(const char **lines, size_t n, int docs, int chunks, int files, bool trailer,
                   size_t *len) {
    vd_buf b;
    vd_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        vd_buf_append(&b, lines[i], strlen(lines[i]));
        vd_buf_putc(&b, '\n');
    }
    if (trailer) {
        char hex[65];
        vd_sha256_hex(b.data, b.len, hex);
        vd_buf_printf(&b,
                      "{\"type\":\"trailer\",\"documents\":%d,\"chunks\":%d,\"files\":%d,"
                      "\"sha256\":\"%s\"}\n",
                      docs, chunks, files, hex);
    }
    *len = b.len;
    return b.data;
}

static vd_err read_mem_lim(const void *p, size_t len, const vd_limits *lim, char *err,
                           size_t errsz) {
    vd_reader *r = NULL;
    vd_err e = vd_reader_open_mem(p, len, lim, &r, err, errsz);
    if (!e) {
        size_t n;
        e = read_all(r, NULL, 0, &n, err, errsz);
    }
    vd_reader_destroy(r);
    return e;
}
static vd_err read_mem(const void *p, size_t len, char *err, size_t errsz) {
    return read_mem_lim(p, len, NULL, err, errsz);
}

static void expect(const char **lines, size_t n, int d, int c, int f, bool trailer, vd_err want,
                   const char *needle) {
    size_t len;
    char *p = build(lines, n, d, c, f, trailer, &len);
    char err[512] = "";
    vd_err e = read_mem(p, len, err, sizeof err);
    if (e != want || (needle && !strstr(err, needle))) {
        print_message("want %s got %s: %s\n", vd_err_name(want), vd_err_name(e), err);
        fail();
    }
    if (want != VD_ERR_OK)
        assert_non_null(strstr(err, "line "));
    free(p);
}

static void test_handmade(void **state) {
    (void)state;
    const char *ok[] = {HDR, DOC("d1"),
                        "{\"type\":\"chunk\",\"id\":\"c1\",\"doc_id\":\"d1\",\"seq\":0,"
                        "\"text\":\"a\\u0000\\ud83c\\udf89\",\"embedding\":[0.5, -1e-3]}"};
    expect(ok, 3, 1, 1, 0, true, VD_ERR_OK, NULL);
    /* missing trailer */
    expect(ok, 3, 1, 1, 0, false, VD_ERR_TRUNCATED, "line 3");
    /* trailer counts wrong */
    expect(ok, 3, 1, 2, 0, true, VD_ERR_CHECKSUM, "line 4");
    /* chunk of another document */
    const char *ref[] = {HDR, DOC("d1"),
                         "{\"type\":\"chunk\",\"id\":\"c1\",\"doc_id\":\"d2\",\"seq\":0,"
                         "\"embedding\":[0.5,1]}"};
    expect(ref, 3, 1, 1, 0, true, VD_ERR_REFERENCE, "c1");
    /* chunk before any document */
    const char *orphan[] = {HDR, "{\"type\":\"chunk\",\"id\":\"c1\",\"doc_id\":\"d2\",\"seq\":0,"
                                 "\"embedding\":[0.5,1]}"};
    expect(orphan, 2, 0, 1, 0, true, VD_ERR_REFERENCE, "line 2");
    /* wrong dimension */
    const char *dim[] = {HDR, DOC("d1"),
                         "{\"type\":\"chunk\",\"id\":\"c1\",\"doc_id\":\"d1\",\"seq\":0,"
                         "\"embedding\":[0.5,1,2]}"};
    expect(dim, 3, 1, 1, 0, true, VD_ERR_BAD_DIM, "line 3");
    const char *dim2[] = {HDR, DOC("d1"),
                          "{\"type\":\"chunk\",\"id\":\"c1\",\"doc_id\":\"d1\",\"seq\":0,"
                          "\"embedding\":[0.5]}"};
    expect(dim2, 3, 1, 1, 0, true, VD_ERR_BAD_DIM, "c1");
    /* NaN / Infinity / overflow */
    const char *nan[] = {HDR, DOC("d1"),
                         "{\"type\":\"chunk\",\"id\":\"c1\",\"doc_id\":\"d1\",\"seq\":0,"
                         "\"embedding\":[NaN,1]}"};
    expect(nan, 3, 1, 1, 0, true, VD_ERR_BAD_FLOAT, "line 3");
    const char *inf[] = {HDR, DOC("d1"),
                         "{\"type\":\"chunk\",\"id\":\"c1\",\"doc_id\":\"d1\",\"seq\":0,"
                         "\"embedding\":[1,1e39]}"};
    expect(inf, 3, 1, 1, 0, true, VD_ERR_BAD_FLOAT, "line 3");
    /* malformed JSON */
    const char *bad[] = {HDR, DOC("d1"), "{\"type\":\"chunk\",\"id\":\"c1\",,}"};
    expect(bad, 3, 1, 0, 0, true, VD_ERR_BAD_JSON, "line 3");
    const char *bad2[] = {HDR, DOC("d1"), "{\"type\":\"chunk\" \"id\":1}"};
    expect(bad2, 3, 1, 0, 0, true, VD_ERR_BAD_JSON, "line 3");
    const char *bad3[] = {HDR, DOC("d1"), ""};
    expect(bad3, 3, 1, 0, 0, true, VD_ERR_BAD_JSON, "line 3");
    const char *bad4[] = {HDR, "{\"type\":\"document\",\"id\":\"d1\",\"title\":\"\x01\"}"};
    expect(bad4, 2, 1, 0, 0, true, VD_ERR_BAD_JSON, "line 2");
    /* bad id */
    const char *bid[] = {HDR, DOC("a b")};
    expect(bid, 2, 1, 0, 0, true, VD_ERR_BAD_ID, "line 2");
    /* missing field */
    const char *mf[] = {HDR, DOC("d1"), "{\"type\":\"chunk\",\"id\":\"c1\",\"doc_id\":\"d1\","
                                        "\"embedding\":[1,2]}"};
    expect(mf, 3, 1, 1, 0, true, VD_ERR_BAD_FIELD, "seq");
    /* seq out of order */
    const char *sq[] = {HDR, DOC("d1"),
                        "{\"type\":\"chunk\",\"id\":\"c1\",\"doc_id\":\"d1\",\"seq\":5,"
                        "\"embedding\":[1,2]}",
                        "{\"type\":\"chunk\",\"id\":\"c2\",\"doc_id\":\"d1\",\"seq\":4,"
                        "\"embedding\":[1,2]}"};
    expect(sq, 4, 1, 2, 0, true, VD_ERR_BAD_FIELD, "line 4");
    /* file whose checksum does not match */
    const char *fl[] = {HDR,
                        "{\"type\":\"document\",\"id\":\"d1\",\"size\":3,\"sha256\":\"00\"}",
                        "{\"type\":\"file\",\"doc_id\":\"d1\",\"size\":3,\"sha256\":\"00\","
                        "\"data\":\"YWJj\"}"};
    expect(fl, 3, 1, 0, 1, true, VD_ERR_CHECKSUM, "line 3");
    /* file that matches */
    const char *fok[] = {HDR,
                         "{\"type\":\"document\",\"id\":\"d1\",\"size\":3,\"sha256\":\""
                         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
                         "{\"type\":\"file\",\"doc_id\":\"d1\",\"size\":3,\"sha256\":\""
                         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\","
                         "\"data\":\"YWJj\"}"};
    expect(fok, 3, 1, 0, 1, true, VD_ERR_OK, NULL);
    /* not a header first, unknown format, newer version */
    const char *nh[] = {DOC("d1")};
    expect(nh, 1, 1, 0, 0, true, VD_ERR_FORMAT, "line 1");
    const char *nv[] = {"{\"type\":\"header\",\"format\":\"vecdump-jsonl\",\"format_version\":2,"
                        "\"schema_version\":1,\"dim\":2}"};
    expect(nv, 1, 0, 0, 0, true, VD_ERR_FORMAT, "format_version");
    /* data after the trailer */
    {
        size_t len;
        char *p = build(ok, 3, 1, 1, 0, true, &len);
        char *q = malloc(len + 3);
        memcpy(q, p, len);
        memcpy(q + len, "{}\n", 3);
        char err[256];
        assert_int_equal(read_mem(q, len + 3, err, sizeof err), VD_ERR_FORMAT);
        assert_non_null(strstr(err, "line 5"));
        /* a last line without its newline */
        assert_int_equal(read_mem(p, len - 1, err, sizeof err), VD_ERR_TRUNCATED);
        /* a flipped byte inside a string: still JSON, wrong checksum */
        char *t = strstr(p, "\"a\\u0000");
        assert_non_null(t);
        t[1] = 'b';
        assert_int_equal(read_mem(p, len, err, sizeof err), VD_ERR_CHECKSUM);
        assert_non_null(strstr(err, "line 4"));
        free(q);
        free(p);
    }
    /* unknown content */
    char err[256];
    assert_int_equal(read_mem("hello", 5, err, sizeof err), VD_ERR_FORMAT);
    assert_int_equal(read_mem("", 0, err, sizeof err), VD_ERR_FORMAT);
    /* an oversize line */
    {
        vd_buf b;
        vd_buf_init(&b, 0);
        vd_buf_printf(&b, "%s\n{\"type\":\"document\",\"id\":\"d1\",\"title\":\"", HDR);
        for (int i = 0; i < 5000; i++)
            vd_buf_putc(&b, 'x');
        vd_buf_printf(&b, "\"}\n");
        vd_limits lim;
        vd_limits_default(&lim);
        lim.max_record_bytes = 1000;
        assert_int_equal(read_mem_lim(b.data, b.len, &lim, err, sizeof err), VD_ERR_TOO_LARGE);
        assert_non_null(strstr(err, "line 2"));
        vd_buf_free(&b);
    }
}

/* gzip helper: compresses p into a new buffer (level 1). */
static unsigned char *gz(const void *p, size_t n, size_t *outlen) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, (uLong)n) + 64;
    unsigned char *out = malloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)p;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *outlen = zs.total_out;
    deflateEnd(&zs);
    return out;
}

static void test_gzip_corruption(void **state) {
    (void)state;
    /* A real compressed artifact, written by the writer. */
    char *dir = vd_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/b.jsonl.gz", dir);
    vd_artifact_info info;
    info_init(&info, DIM, true, true);
    vd_docgroup gs[4];
    size_t ng = make_groups(gs);
    char err[512];
    vd_writer *w;
    assert_int_equal(vd_writer_open(VD_FMT_JSONL, path, &info, &w, err, sizeof err), 0);
    for (int rep = 0; rep < 200; rep++)
        for (size_t i = 0; i < ng; i++) {
            char id[32];
            snprintf(id, sizeof id, "d%d-%zu", rep, i);
            vd_docgroup g = gs[i];
            char *saved[8];
            g.doc.id = id;
            for (size_t k = 0; k < g.nchunks; k++) {
                saved[k] = g.chunks[k].doc_id;
                g.chunks[k].doc_id = id;
            }
            assert_int_equal(vd_writer_put(w, &g, err, sizeof err), 0);
            for (size_t k = 0; k < g.nchunks; k++)
                g.chunks[k].doc_id = saved[k];
        }
    vd_writer_result res;
    assert_int_equal(vd_writer_close(w, &res, err, sizeof err), 0);
    vd_writer_destroy(w);
    size_t len;
    unsigned char *mem = slurp(path, &len);
    assert_int_equal(read_mem(mem, len, err, sizeof err), VD_ERR_OK);
    /* truncated */
    vd_err e = read_mem(mem, len / 2, err, sizeof err);
    assert_int_equal(e, VD_ERR_TRUNCATED);
    assert_non_null(strstr(err, "gzip"));
    assert_int_equal(read_mem(mem, len - 4, err, sizeof err), VD_ERR_TRUNCATED);
    /* a flipped bit in the compressed body */
    mem[len / 2] ^= 0x10;
    e = read_mem(mem, len, err, sizeof err);
    assert_true(e == VD_ERR_GZIP || e == VD_ERR_BAD_JSON || e == VD_ERR_CHECKSUM);
    print_message("flipped gzip bit -> %s: %s\n", vd_err_name(e), err);
    mem[len / 2] ^= 0x10;
    /* a flipped bit in the gzip CRC at the end: only gzip can tell */
    mem[len - 6] ^= 0x01;
    assert_int_equal(read_mem(mem, len, err, sizeof err), VD_ERR_GZIP);
    mem[len - 6] ^= 0x01;
    /* two gzip members one after the other read as one stream */
    {
        size_t l1, l2;
        const char *lines[] = {HDR, DOC("d1")};
        size_t plen;
        char *plain = build(lines, 2, 1, 0, 0, true, &plen);
        size_t cut = strlen(HDR) + 1;
        unsigned char *a = gz(plain, cut, &l1);
        unsigned char *b = gz(plain + cut, plen - cut, &l2);
        unsigned char *ab = malloc(l1 + l2);
        memcpy(ab, a, l1);
        memcpy(ab + l1, b, l2);
        assert_int_equal(read_mem(ab, l1 + l2, err, sizeof err), VD_ERR_OK);
        /* trailing garbage after the last member */
        unsigned char *abg = malloc(l1 + l2 + 3);
        memcpy(abg, ab, l1 + l2);
        memcpy(abg + l1 + l2, "xyz", 3);
        assert_int_equal(read_mem(abg, l1 + l2 + 3, err, sizeof err), VD_ERR_GZIP);
        free(a);
        free(b);
        free(ab);
        free(abg);
        free(plain);
    }
    /* a gzip bomb: a header, then 100 MB of zeros */
    {
        const size_t big = 100u << 20;
        unsigned char *z = calloc(1, big + strlen(HDR) + 1);
        memcpy(z, HDR "\n", strlen(HDR) + 1);
        size_t bl;
        unsigned char *bomb = gz(z, big + strlen(HDR) + 1, &bl);
        free(z);
        print_message("gzip bomb: %zu bytes inflate to %zu\n", bl, big);
        e = read_mem(bomb, bl, err, sizeof err);
        assert_int_equal(e, VD_ERR_ZIP_BOMB);
        assert_non_null(strstr(err, "line "));
        free(bomb);
    }
    free(mem);
    free_groups(gs, ng);
    unlink(path);
    rmdir(dir);
    free(dir);
}

static void test_writer_errors(void **state) {
    (void)state;
    char *dir = vd_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/c.jsonl", dir);
    vd_artifact_info info;
    info_init(&info, DIM, false, false);
    char err[512];
    vd_writer *w;
    /* destroy without close removes the file */
    assert_int_equal(vd_writer_open(VD_FMT_JSONL, path, &info, &w, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    vd_writer_destroy(w);
    assert_int_equal(stat(path, &st), -1);
    /* an existing path is refused and left alone */
    FILE *f = fopen(path, "w");
    fputs("keep", f);
    fclose(f);
    assert_int_equal(vd_writer_open(VD_FMT_JSONL, path, &info, &w, err, sizeof err), VD_ERR_IO);
    assert_null(w);
    assert_non_null(strstr(err, "open"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 4);
    unlink(path);
    /* bad data is refused before anything is written */
    assert_int_equal(vd_writer_open(VD_FMT_JSONL, path, &info, &w, err, sizeof err), 0);
    vd_docgroup gs[4];
    size_t ng = make_groups(gs);
    gs[0].chunks[0].embedding[1] = NAN;
    assert_int_equal(vd_writer_put(w, &gs[0], err, sizeof err), VD_ERR_BAD_FLOAT);
    gs[0].chunks[0].embedding[1] = 1;
    gs[0].chunks[0].dim = 3;
    assert_int_equal(vd_writer_put(w, &gs[0], err, sizeof err), VD_ERR_BAD_DIM);
    gs[0].chunks[0].dim = DIM;
    free(gs[0].chunks[1].doc_id);
    gs[0].chunks[1].doc_id = vd_strdup("other");
    assert_int_equal(vd_writer_put(w, &gs[0], err, sizeof err), VD_ERR_REFERENCE);
    assert_int_equal(vd_writer_put(w, &gs[1], err, sizeof err), VD_ERR_OK);
    vd_writer_result res;
    assert_int_equal(vd_writer_close(w, &res, err, sizeof err), VD_ERR_OK);
    assert_int_equal(res.counts.documents, 1);
    vd_writer_destroy(w);
    assert_int_equal(stat(path, &st), 0);
    /* unsupported formats say so when not built */
    free_groups(gs, ng);
    unlink(path);
    rmdir(dir);
    free(dir);
}

/* ---- throughput --------------------------------------------------------- */

static void bench(bool compress, size_t nchunks, size_t dim) {
    char *dir = vd_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/bench.jsonl%s", dir, compress ? ".gz" : "");
    vd_artifact_info info;
    info_init(&info, (int)dim, compress, false);
    const size_t per_doc = 10;
    size_t ndocs = nchunks / per_doc;
    vd_docgroup g;
    memset(&g, 0, sizeof g);
    g.doc.id = vd_strdup("bench-doc-000000");
    g.doc.title = vd_strdup("A benchmark document");
    g.doc.metadata = vd_strdup("{\"lang\":\"en\"}");
    char text[600];
    for (size_t i = 0; i < sizeof text - 1; i++)
        text[i] = (char)('a' + i % 26);
    text[sizeof text - 1] = 0;
    for (size_t k = 0; k < per_doc; k++) {
        char cid[32];
        snprintf(cid, sizeof cid, "chunk-%zu", k);
        add_chunk(&g, cid, (int64_t)k, text, sizeof text - 1, dim);
        for (size_t i = 0; i < dim; i++) /* embedding-like values */
            g.chunks[k].embedding[i] = ((float)(rnd() % 2000000) / 1e6f - 1.0f) * 0.2f;
    }
    char err[512];
    vd_writer *w;
    double c0 = cpu_ms(), w0 = wall_ms();
    assert_int_equal(vd_writer_open(VD_FMT_JSONL, path, &info, &w, err, sizeof err), 0);
    for (size_t d = 0; d < ndocs; d++) {
        snprintf(g.doc.id, 17, "bench-doc-%06u", (unsigned)(d % 1000000));
        for (size_t k = 0; k < per_doc; k++)
            memcpy(g.chunks[k].doc_id, g.doc.id, 17);
        assert_int_equal(vd_writer_put(w, &g, err, sizeof err), 0);
    }
    vd_writer_result res;
    assert_int_equal(vd_writer_close(w, &res, err, sizeof err), 0);
    vd_writer_destroy(w);
    double wc = cpu_ms() - c0, ww = wall_ms() - w0;
    size_t len;
    unsigned char *mem = slurp(path, &len);

    c0 = cpu_ms();
    w0 = wall_ms();
    vd_reader *r;
    assert_int_equal(vd_reader_open(path, NULL, &r, err, sizeof err), 0);
    size_t n;
    vd_err e = read_all(r, NULL, 0, &n, err, sizeof err);
    if (e)
        print_message("%s\n", err);
    assert_int_equal(e, 0);
    assert_int_equal(n, ndocs);
    vd_reader_destroy(r);
    double rc = cpu_ms() - c0, rw = wall_ms() - w0;

    double raw_mb = 0;
    double gz_ms = 0, gz_wall = 0;
    if (compress) {
        /* gzip -1 on the same uncompressed bytes (in-process zlib level 1). */
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        inflateInit2(&zs, 31);
        size_t cap = len * 8 + (1 << 20);
        unsigned char *raw = malloc(cap);
        zs.next_in = mem;
        zs.avail_in = (uInt)len;
        zs.next_out = raw;
        zs.avail_out = (uInt)cap;
        assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
        size_t rawlen = zs.total_out;
        inflateEnd(&zs);
        raw_mb = (double)rawlen / 1e6;
        double g0 = cpu_ms(), gw0 = wall_ms();
        size_t l;
        unsigned char *again = gz(raw, rawlen, &l);
        gz_ms = cpu_ms() - g0;
        gz_wall = wall_ms() - gw0;
        free(again);
        free(raw);
    } else {
        raw_mb = (double)len / 1e6;
    }
    print_message("jsonl %s: %zu chunks dim %zu, %.1f MB on disk (%.1f MB of JSON)\n",
                  compress ? "gzip" : "plain", nchunks, dim, (double)len / 1e6, raw_mb);
    print_message("  write: %.0f ms cpu (%.0f ms wall): %.0f MB/s of JSON, %.0f chunks/s\n", wc,
                  ww, raw_mb / (wc / 1e3), (double)nchunks / (wc / 1e3));
    print_message("  read:  %.0f ms cpu (%.0f ms wall): %.0f MB/s of JSON, %.0f chunks/s\n", rc,
                  rw, raw_mb / (rc / 1e3), (double)nchunks / (rc / 1e3));
    if (compress)
        print_message("  zlib level 1 alone on the same JSON: %.0f ms cpu, %.0f ms wall -> "
                      "writer/gzip: cpu %.2f, wall %.2f (writer deflates on a second thread)\n",
                      gz_ms, gz_wall, wc / gz_ms, ww / gz_wall);
    free(mem);
    vd_docgroup_clear(&g);
    unlink(path);
    rmdir(dir);
    free(dir);
}

static void test_throughput(void **state) {
    (void)state;
    bench(false, 20000, 384);
    bench(true, 20000, 384);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_plain),
        cmocka_unit_test(test_roundtrip_gzip),
        cmocka_unit_test(test_handmade),
        cmocka_unit_test(test_gzip_corruption),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
