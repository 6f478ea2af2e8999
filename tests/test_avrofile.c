/*
 * test_avrofile.c - the Avro object container artifact: round trips (awkward
 * text, NUL bytes, invalid UTF-8, binary files, a record larger than the
 * default block), avro-c reading our files with its own reader, the .avsc
 * matching the embedded schema, and a corruption matrix with one expected
 * error code per case: truncated, flipped bit, foreign schema, hostile block
 * sizes, deflate bomb, wrong dim, NaN/Inf, chunk of a missing document, bad
 * id, file checksum. Also peak RSS on 20k chunks of dim 384, and a write
 * failing part-way (file-size limit) leaking nothing and leaving no file.
 */
#include "vd_test.h"
#include "vd_test_data.h"
#include "vd_formats.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <avro.h>
#include <zlib.h>

#define DIM 8

/* ---- a deterministic dataset ------------------------------------------ */

static char *tmpdir;

static char *tpath(const char *name) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return vd_test_xstrdup(buf);
}

static void write_groups(const char *path, vd_docgroup *gs, int n, int dim, bool files,
                         vd_writer_result *res_out) {
    vd_artifact_info info;
    vd_test_info_init(&info, dim, files);
    char err[512] = "";
    vd_writer *w = NULL;
    assert_int_equal(vd_writer_open(VD_FMT_AVRO, path, &info, &w, err, sizeof err), VD_ERR_OK);
    for (int i = 0; i < n; i++) {
        vd_err e = vd_writer_put(w, &gs[i], err, sizeof err);
        if (e)
            print_message("put: %s\n", err);
        assert_int_equal(e, VD_ERR_OK);
    }
    vd_writer_result res;
    vd_err e = vd_writer_close(w, &res, err, sizeof err);
    if (e)
        print_message("close: %s\n", err);
    assert_int_equal(e, VD_ERR_OK);
    if (res_out) {
        *res_out = res;
        res_out->members = NULL; /* owned by the writer */
        assert_null(res.members);
    }
    vd_writer_destroy(w);
}

static void make_set(vd_docgroup *gs, int n, int dim, bool files) {
    for (int i = 0; i < n; i++)
        vd_test_mk_group(&gs[i], i, i == 3 ? 0 : 7 + i, dim, files && i != 1);
}

static void free_set(vd_docgroup *gs, int n) {
    for (int i = 0; i < n; i++)
        vd_docgroup_clear(&gs[i]);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void spit(const char *path, const void *p, size_t n) {
    unlink(path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* Reads an artifact fully. @returns the first error (or OK) and its text. */
static vd_err read_all(const char *path, const void *mem, size_t len, const vd_limits *lim,
                       vd_docgroup *expect, int n, bool files, char *err, size_t errsz) {
    vd_reader *r = NULL;
    err[0] = 0;
    vd_err e = path ? vd_reader_open(path, lim, &r, err, errsz)
                    : vd_reader_open_mem(mem, len, lim, &r, err, errsz);
    if (e)
        return e;
    assert_int_equal(vd_reader_format(r), VD_FMT_AVRO);
    int i = 0;
    for (;;) {
        vd_docgroup g;
        bool done = false;
        e = vd_reader_next(r, &g, &done, err, errsz);
        if (e || done)
            break;
        if (expect) {
            assert_true(i < n);
            vd_test_assert_group_eq(&expect[i], &g, files);
        }
        i++;
        vd_docgroup_clear(&g);
    }
    if (!e && expect)
        assert_int_equal(i, n);
    vd_reader_destroy(r);
    return e;
}

static vd_err read_path(const char *path, const vd_limits *lim, char *err, size_t errsz) {
    vd_err e = read_all(path, NULL, 0, lim, NULL, 0, false, err, errsz);
    print_message("    -> %s: %s\n", vd_err_name(e), err);
    return e;
}

static vd_err read_mem(const void *mem, size_t len, const vd_limits *lim, char *err, size_t errsz) {
    vd_err e = read_all(NULL, mem, len, lim, NULL, 0, false, err, errsz);
    print_message("    -> %s: %s\n", vd_err_name(e), err);
    return e;
}

/* ---- round trips ------------------------------------------------------- */

static void roundtrip(bool files) {
    enum { N = 6 };
    vd_docgroup gs[N];
    make_set(gs, N, DIM, files);
    char *path = tpath(files ? "rt-files.avro" : "rt.avro");
    vd_writer_result res;
    write_groups(path, gs, N, DIM, files, &res);
    assert_int_equal(res.counts.documents, N);
    assert_int_equal(res.counts.files, files ? 5 : 0);

    size_t len;
    char *mem = slurp(path, &len);
    char hex[65];
    vd_sha256_hex(mem, len, hex);
    assert_string_equal(hex, res.sha256);
    assert_int_equal((int64_t)len, res.bytes);

    char err[512] = "";
    vd_err e = read_all(path, NULL, 0, NULL, gs, N, files, err, sizeof err);
    if (e)
        print_message("read: %s\n", err);
    assert_int_equal(e, VD_ERR_OK);
    assert_int_equal(read_all(NULL, mem, len, NULL, gs, N, files, err, sizeof err), VD_ERR_OK);

    vd_reader *r = NULL;
    assert_int_equal(vd_reader_open(path, NULL, &r, err, sizeof err), VD_ERR_OK);
    const vd_artifact_info *info = vd_reader_info(r);
    assert_string_equal(info->task_id, "task-123");
    assert_string_equal(info->tool_version, "0.1.0-test");
    assert_string_equal(info->ns, "vec");
    assert_string_equal(info->meta.model, "text-embedding-3-small");
    assert_string_equal(info->meta.distance, "COSINE");
    assert_int_equal(info->meta.dim, DIM);
    assert_true(info->created_at == 1700000000123LL);
    assert_true(info->include_files == files);
    vd_reader_destroy(r);
    free(mem);
    free(path);
    free_set(gs, N);
}

static void test_roundtrip_plain(void **state) {
    (void)state;
    roundtrip(false);
}

static void test_roundtrip_files(void **state) {
    (void)state;
    roundtrip(true);
}

/* A 10 MiB file: larger than the 4 MiB default block, so the writer grows it. */
static void test_big_record(void **state) {
    (void)state;
    vd_docgroup gs[3];
    make_set(gs, 3, DIM, true);
    size_t n = (size_t)10 << 20;
    free(gs[1].file.data);
    gs[1].has_file = true;
    if (!gs[1].file.doc_id)
        gs[1].file.doc_id = vd_test_xstrdup(gs[1].doc.id);
    gs[1].file.data = malloc(n);
    for (size_t k = 0; k < n; k++)
        gs[1].file.data[k] = (unsigned char)(k * 2654435761u >> 24);
    gs[1].file.len = n;
    char hex[65];
    vd_sha256_hex(gs[1].file.data, n, hex);
    free(gs[1].doc.sha256);
    gs[1].doc.sha256 = vd_test_xstrdup(hex);
    gs[1].doc.size = (int64_t)n;
    char *path = tpath("big.avro");
    write_groups(path, gs, 3, DIM, true, NULL);
    char err[512];
    vd_err e = read_all(path, NULL, 0, NULL, gs, 3, true, err, sizeof err);
    if (e)
        print_message("read: %s\n", err);
    assert_int_equal(e, VD_ERR_OK);
    /* Under a record limit below the file's size: TOO_LARGE. */
    vd_limits lim;
    vd_limits_default(&lim);
    lim.max_record_bytes = 1 << 20;
    assert_int_equal(read_path(path, &lim, err, sizeof err), VD_ERR_TOO_LARGE);
    free_set(gs, 3);
    unlink(path);
    free(path);
}

static void test_empty_artifact(void **state) {
    (void)state;
    char *path = tpath("empty.avro");
    write_groups(path, NULL, 0, DIM, false, NULL);
    char err[512];
    assert_int_equal(read_all(path, NULL, 0, NULL, NULL, 0, false, err, sizeof err), VD_ERR_OK);
    free(path);
}

/* avro-c's own reader reads what we wrote; the .avsc is the file's schema. */
static void test_avro_c_reads_it(void **state) {
    (void)state;
    enum { N = 4 };
    vd_docgroup gs[N];
    make_set(gs, N, DIM, true);
    char *path = tpath("avroc.avro");
    vd_writer_result res;
    write_groups(path, gs, N, DIM, true, &res);

    avro_file_reader_t fr;
    assert_int_equal(avro_file_reader(path, &fr), 0);
    avro_schema_t ws = avro_file_reader_get_writer_schema(fr);
    avro_value_iface_t *iface = avro_generic_class_from_schema(ws);
    avro_value_t v;
    assert_int_equal(avro_generic_value_new(iface, &v), 0);
    int64_t nrec = 0, nchunk = 0;
    int rc;
    while ((rc = avro_file_reader_read_value(fr, &v)) == 0) {
        avro_value_t type, branch, u, field;
        int t;
        assert_int_equal(avro_value_get_by_name(&v, "type", &type, NULL), 0);
        assert_int_equal(avro_value_get_enum(&type, &t), 0);
        if (nrec == 0)
            assert_int_equal(t, 0); /* HEADER */
        if (t == 2) {            /* CHUNK: check the embedding, bit for bit */
            assert_int_equal(avro_value_get_by_name(&v, "chunk", &u, NULL), 0);
            assert_int_equal(avro_value_get_current_branch(&u, &branch), 0);
            assert_int_equal(avro_value_get_by_name(&branch, "embedding", &field, NULL), 0);
            size_t cnt;
            avro_value_get_size(&field, &cnt);
            assert_int_equal(cnt, DIM);
            int64_t seq;
            avro_value_t sv, e0;
            avro_value_get_by_name(&branch, "seq", &sv, NULL);
            avro_value_get_long(&sv, &seq);
            float f;
            avro_value_get_by_index(&field, 3, &e0, NULL);
            avro_value_get_float(&e0, &f);
            /* chunk 0 of doc-0 is the first chunk record */
            if (nchunk == 0)
                assert_memory_equal(&f, &gs[0].chunks[0].embedding[3], 4);
            nchunk++;
        }
        nrec++;
        avro_value_reset(&v);
    }
    assert_int_equal(nchunk, res.counts.chunks);
    assert_int_equal(nrec, 2 + res.counts.documents + res.counts.chunks + res.counts.files);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);

    /* formats/vd_artifact.avsc is exactly the schema in the file. */
    char avsc[1024];
    snprintf(avsc, sizeof avsc, "%s", __FILE__);
    char *slash = strrchr(avsc, '/');
    assert_non_null(slash);
    snprintf(slash, sizeof avsc - (size_t)(slash - avsc), "/../formats/vd_artifact.avsc");
    size_t alen;
    char *json = slurp(avsc, &alen);
    avro_schema_t fs;
    assert_int_equal(avro_schema_from_json_length(json, alen, &fs), 0);
    assert_true(avro_schema_equal(fs, ws));
    avro_schema_decref(fs);
    avro_schema_decref(ws);
    free(json);
    avro_file_reader_close(fr);
    free_set(gs, N);
    free(path);
}

static void test_writer_refuses_existing(void **state) {
    (void)state;
    char *path = tpath("exists.avro");
    spit(path, "x", 1);
    vd_artifact_info info;
    vd_test_info_init(&info, DIM, false);
    char err[512];
    vd_writer *w = NULL;
    assert_int_equal(vd_writer_open(VD_FMT_AVRO, path, &info, &w, err, sizeof err),
                     VD_ERR_CONFLICT);
    size_t len;
    char *p = slurp(path, &len);
    assert_int_equal(len, 1); /* untouched */
    free(p);
    unlink(path);

    /* Destroy without close: the file is gone. */
    assert_int_equal(vd_writer_open(VD_FMT_AVRO, path, &info, &w, err, sizeof err), VD_ERR_OK);
    vd_writer_destroy(w);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    free(path);
}

/* ---- corruption matrix ------------------------------------------------- */

static char *good_artifact(const char *name, int n) {
    vd_docgroup gs[8];
    make_set(gs, n, DIM, true);
    char *path = tpath(name);
    write_groups(path, gs, n, DIM, true, NULL);
    free_set(gs, n);
    return path;
}

/* Offset just past the header (magic, metadata, sync): the first block. */
static size_t first_block(const char *mem, size_t len) {
    const char *sync = mem + len - 16; /* a container ends with the sync marker */
    for (size_t i = 4; i + 16 <= len; i++)
        if (memcmp(mem + i, sync, 16) == 0)
            return i + 16;
    fail_msg("no sync marker");
    return 0;
}

static void test_truncated(void **state) {
    (void)state;
    char *path = good_artifact("trunc-src.avro", 6);
    size_t len;
    char *mem = slurp(path, &len);
    char err[512];
    size_t cuts[] = {len / 2, len - 1, len - 16, len - 17, 40};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        assert_int_equal(read_mem(mem, cuts[i], NULL, err, sizeof err), VD_ERR_TRUNCATED);
    /* Cut at a block boundary: a valid container, but no trailer. */
    size_t fb = first_block(mem, len);
    assert_int_equal(read_mem(mem, fb, NULL, err, sizeof err), VD_ERR_TRUNCATED);
    free(mem);
    free(path);
}

static void test_bitflip(void **state) {
    (void)state;
    char *path = good_artifact("flip-src.avro", 6);
    size_t len;
    char *mem = slurp(path, &len);
    char err[512];
    size_t fb = first_block(mem, len);
    /* Inside the deflate data of the first block. */
    size_t off = fb + 2 + (len - 16 - fb) / 2;
    mem[off] ^= 0x08;
    vd_err e = read_mem(mem, len, NULL, err, sizeof err);
    assert_int_equal(e, VD_ERR_AVRO_FILE);
    mem[off] ^= 0x08;
    /* In the sync marker after the block. */
    mem[len - 3] ^= 0x01;
    assert_int_equal(read_mem(mem, len, NULL, err, sizeof err), VD_ERR_AVRO_FILE);
    mem[len - 3] ^= 0x01;
    /* In the schema text of the header. */
    char *s = memmem(mem, fb, "\"ArtifactRecord\"", 16);
    assert_non_null(s);
    s[3] ^= 0x20;
    assert_int_equal(read_mem(mem, len, NULL, err, sizeof err), VD_ERR_AVRO_FILE);
    s[3] ^= 0x20;
    /* Every 5th byte flipped in turn: always a clean error (or, for a bit
     * deflate ignores, the same content), never a crash. */
    int fails = 0, tries = 0;
    for (size_t i = 0; i < len; i += 5) {
        mem[i] ^= 0x40;
        e = read_all(NULL, mem, len, NULL, NULL, 0, false, err, sizeof err);
        mem[i] ^= 0x40;
        assert_true(e != VD_ERR_INTERNAL && e != VD_ERR_INVALID_ARG && e != VD_ERR_NOMEM);
        fails += e != VD_ERR_OK;
        tries++;
    }
    print_message("    %d of %d single-byte flips detected\n", fails, tries);
    assert_true(fails >= tries * 9 / 10);
    free(mem);
    free(path);
}

/* A record whose body was changed after the fact still decodes: the
 * trailer's SHA-256 catches it. Built by re-encoding a null-codec copy. */
static void test_trailer_checksum(void **state) {
    (void)state;
    char *path = good_artifact("sum-src.avro", 3);
    size_t len;
    char *mem = slurp(path, &len);
    size_t fb = first_block(mem, len);
    /* Inflate the single block, change one title byte, re-deflate. */
    const unsigned char *p = (const unsigned char *)mem + fb;
    int64_t v[2];
    for (int k = 0; k < 2; k++) {
        uint64_t n = 0;
        int sh = 0;
        while (*p & 0x80) {
            n |= (uint64_t)(*p++ & 0x7f) << sh;
            sh += 7;
        }
        n |= (uint64_t)*p++ << sh;
        v[k] = (int64_t)(n >> 1) ^ -(int64_t)(n & 1);
    }
    assert_true(fb + (size_t)(p - (const unsigned char *)mem - fb) + (size_t)v[1] + 16 == len);
    size_t cap = 1 << 20;
    unsigned char *raw = malloc(cap);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(inflateInit2(&zs, -15), Z_OK);
    zs.next_in = (unsigned char *)p;
    zs.avail_in = (uInt)v[1];
    zs.next_out = raw;
    zs.avail_out = (uInt)cap;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t rawlen = zs.total_out;
    inflateEnd(&zs);
    unsigned char *t = memmem(raw, rawlen, "Title 1", 7);
    assert_non_null(t);
    t[6] = '7';
    unsigned char *def = malloc(cap);
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = raw;
    zs.avail_in = (uInt)rawlen;
    zs.next_out = def;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t deflen = zs.total_out;
    deflateEnd(&zs);
    /* header | count | size | data | sync */
    char *out = malloc(len + cap);
    size_t o = 0;
    memcpy(out, mem, fb);
    o = fb;
    uint64_t zz[2] = {(uint64_t)v[0] << 1, (uint64_t)deflen << 1};
    for (int k = 0; k < 2; k++) {
        while (zz[k] >= 0x80) {
            out[o++] = (char)((zz[k] & 0x7f) | 0x80);
            zz[k] >>= 7;
        }
        out[o++] = (char)zz[k];
    }
    memcpy(out + o, def, deflen);
    o += deflen;
    memcpy(out + o, mem + len - 16, 16);
    o += 16;
    char err[512];
    assert_int_equal(read_mem(out, o, NULL, err, sizeof err), VD_ERR_CHECKSUM);
    free(out);
    free(def);
    free(raw);
    free(mem);
    free(path);
}

static void test_foreign_schema(void **state) {
    (void)state;
    char *path = tpath("foreign.avro");
    unlink(path);
    avro_schema_t s;
    const char *json = "{\"type\":\"record\",\"name\":\"X\",\"fields\":[{\"name\":\"a\",\"type\":\"string\"}]}";
    assert_int_equal(avro_schema_from_json_length(json, strlen(json), &s), 0);
    avro_file_writer_t fw;
    assert_int_equal(avro_file_writer_create_with_codec(path, s, &fw, "deflate", 0), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t v, f;
    avro_generic_value_new(iface, &v);
    avro_value_get_by_index(&v, 0, &f, NULL);
    avro_value_set_string(&f, "hello");
    assert_int_equal(avro_file_writer_append_value(fw, &v), 0);
    avro_file_writer_close(fw);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    char err[512];
    assert_int_equal(read_path(path, NULL, err, sizeof err), VD_ERR_AVRO_FILE);
    assert_non_null(strstr(err, "schema"));
    free(path);
}

static size_t put_long(char *o, int64_t v) {
    uint64_t n = v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
    size_t k = 0;
    while (n >= 0x80) {
        o[k++] = (char)((n & 0x7f) | 0x80);
        n >>= 7;
    }
    o[k++] = (char)n;
    return k;
}

static void test_hostile_blocks(void **state) {
    (void)state;
    char *path = good_artifact("host-src.avro", 2);
    size_t len;
    char *mem = slurp(path, &len);
    size_t fb = first_block(mem, len);
    char *buf = malloc(fb + (1 << 20));
    char err[512];
    memcpy(buf, mem, fb);

    /* A block claiming 1 TiB. */
    size_t o = fb;
    o += put_long(buf + o, 1);
    o += put_long(buf + o, (int64_t)1 << 40);
    memset(buf + o, 0, 64);
    o += 64;
    assert_int_equal(read_mem(buf, o, NULL, err, sizeof err), VD_ERR_TRUNCATED);

    /* Negative count and size. */
    o = fb;
    o += put_long(buf + o, -5);
    o += put_long(buf + o, -100);
    memset(buf + o, 0, 64);
    o += 64;
    assert_int_equal(read_mem(buf, o, NULL, err, sizeof err), VD_ERR_AVRO_FILE);

    /* An overlong varint. */
    o = fb;
    memset(buf + o, 0xff, 20);
    o += 20;
    assert_int_equal(read_mem(buf, o, NULL, err, sizeof err), VD_ERR_AVRO_FILE);

    /* A deflate bomb: 256 MiB of zeros in one block. */
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    unsigned char *zeros = calloc(1, 1 << 20);
    unsigned char *def = malloc(1 << 20);
    zs.next_out = def;
    zs.avail_out = 1 << 20;
    for (int i = 0; i < 256; i++) {
        zs.next_in = zeros;
        zs.avail_in = 1 << 20;
        assert_int_equal(deflate(&zs, i == 255 ? Z_FINISH : Z_NO_FLUSH), i == 255 ? Z_STREAM_END : Z_OK);
    }
    size_t deflen = zs.total_out;
    deflateEnd(&zs);
    o = fb;
    o += put_long(buf + o, 1);
    o += put_long(buf + o, (int64_t)deflen);
    memcpy(buf + o, def, deflen);
    o += deflen;
    memcpy(buf + o, mem + len - 16, 16);
    o += 16;
    print_message("    bomb: 256 MiB of zeros in %zu bytes\n", deflen);
    assert_int_equal(read_mem(buf, o, NULL, err, sizeof err), VD_ERR_ZIP_BOMB);
    free(zeros);
    free(def);
    free(buf);
    free(mem);
    free(path);
}

static vd_err read_tampered(const char *name, void (*tamper)(vd_docgroup *g), char *err,
                            size_t errsz) {
    enum { N = 3 };
    vd_docgroup gs[N];
    make_set(gs, N, DIM, true);
    tamper(&gs[2]);
    char *path = tpath(name);
    write_groups(path, gs, N, DIM, true, NULL);
    vd_err e = read_path(path, NULL, err, errsz);
    free_set(gs, N);
    free(path);
    return e;
}

static void t_dim(vd_docgroup *g) { g->chunks[2].dim = DIM - 1; }
static void t_nan(vd_docgroup *g) { g->chunks[1].embedding[3] = NAN; }
static void t_inf(vd_docgroup *g) { g->chunks[1].embedding[0] = INFINITY; }
static void t_ref(vd_docgroup *g) {
    free(g->chunks[2].doc_id);
    g->chunks[2].doc_id = vd_test_xstrdup("ghost");
}
static void t_badid(vd_docgroup *g) {
    free(g->doc.id);
    g->doc.id = vd_test_xstrdup("no spaces allowed");
}
static void t_filesum(vd_docgroup *g) {
    /* The document's sha256 no longer matches its file. */
    g->doc.sha256[0] = g->doc.sha256[0] == '0' ? '1' : '0';
}

static void test_bad_records(void **state) {
    (void)state;
    char err[512];
    assert_int_equal(read_tampered("dim.avro", t_dim, err, sizeof err), VD_ERR_BAD_DIM);
    assert_int_equal(read_tampered("nan.avro", t_nan, err, sizeof err), VD_ERR_BAD_FLOAT);
    assert_int_equal(read_tampered("inf.avro", t_inf, err, sizeof err), VD_ERR_BAD_FLOAT);
    assert_int_equal(read_tampered("ref.avro", t_ref, err, sizeof err), VD_ERR_REFERENCE);
    assert_non_null(strstr(err, "ghost"));
    assert_int_equal(read_tampered("id.avro", t_badid, err, sizeof err), VD_ERR_BAD_ID);
    assert_int_equal(read_tampered("sum.avro", t_filesum, err, sizeof err), VD_ERR_CHECKSUM);
}

/* ---- memory ------------------------------------------------------------ */

static void test_writer_rss(void **state) {
    (void)state;
    enum { DOCS = 2000, PER = 10, BIG = 384 };
    long before = vd_test_peak_rss_kb();
    char *path = tpath("rss.avro");
    vd_artifact_info info;
    vd_test_info_init(&info, BIG, false);
    char err[512];
    vd_writer *w = NULL;
    assert_int_equal(vd_writer_open(VD_FMT_AVRO, path, &info, &w, err, sizeof err), VD_ERR_OK);
    int64_t t0 = vd_mono_ms();
    for (int i = 0; i < DOCS; i++) {
        vd_docgroup g;
        vd_test_mk_group(&g, i, PER, BIG, false);
        assert_int_equal(vd_writer_put(w, &g, err, sizeof err), VD_ERR_OK);
        vd_docgroup_clear(&g);
    }
    vd_writer_result res;
    assert_int_equal(vd_writer_close(w, &res, err, sizeof err), VD_ERR_OK);
    int64_t t1 = vd_mono_ms();
    vd_writer_destroy(w);
    long after = vd_test_peak_rss_kb();
    print_message("    avro writer: %d chunks dim %d -> %lld bytes in %lld ms, peak RSS %ld KiB "
                  "(before %ld KiB)\n",
                  DOCS * PER, BIG, (long long)res.bytes, (long long)(t1 - t0), after, before);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed memory */
    assert_true(after - before < 48 * 1024);
#endif

    vd_reader *r = NULL;
    assert_int_equal(vd_reader_open(path, NULL, &r, err, sizeof err), VD_ERR_OK);
    int64_t chunks = 0;
    for (;;) {
        vd_docgroup g;
        bool done;
        vd_err e = vd_reader_next(r, &g, &done, err, sizeof err);
        if (e)
            print_message("read: %s\n", err);
        assert_int_equal(e, VD_ERR_OK);
        if (done)
            break;
        chunks += (int64_t)g.nchunks;
        vd_docgroup_clear(&g);
    }
    vd_reader_destroy(r);
    int64_t t2 = vd_mono_ms();
    print_message("    avro reader: %lld chunks in %lld ms, peak RSS %ld KiB\n",
                  (long long)chunks, (long long)(t2 - t1), vd_test_peak_rss_kb());
    assert_int_equal(chunks, DOCS * PER);
    unlink(path);
    free(path);
}

/* ---- a write failing part-way ------------------------------------------ */

static void fill_random(unsigned char *p, size_t n, uint32_t seed) {
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)(x >> 11);
    }
}

/* One document with one file of n incompressible bytes. */
static void mk_file_group(vd_docgroup *g, int i, size_t n) {
    vd_test_mk_group(g, i, 3, DIM, true);
    free(g->file.data);
    g->has_file = true;
    if (!g->file.doc_id)
        g->file.doc_id = vd_test_xstrdup(g->doc.id);
    g->file.data = malloc(n);
    assert_non_null(g->file.data);
    fill_random(g->file.data, n, (uint32_t)i * 7919u + 17u);
    g->file.len = n;
    char hex[65];
    vd_sha256_hex(g->file.data, n, hex);
    free(g->doc.sha256);
    g->doc.sha256 = vd_test_xstrdup(hex);
    g->doc.size = (int64_t)n;
}

/*
 * Writes ndocs documents with files of file_len random bytes under a 64 KiB
 * file-size limit. Returns the first error and where it came from (put or
 * close); later calls must repeat it. The writer is destroyed, not closed.
 */
static vd_err write_limited(const char *path, int ndocs, size_t file_len, const char **where,
                            char *err, size_t errsz) {
    vd_artifact_info info;
    vd_test_info_init(&info, DIM, true);
    vd_writer *w = NULL;
    assert_int_equal(vd_writer_open(VD_FMT_AVRO, path, &info, &w, err, errsz), VD_ERR_OK);
    vd_docgroup gs[8];
    assert_true(ndocs <= 8);
    for (int i = 0; i < ndocs; i++)
        mk_file_group(&gs[i], i, file_len);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    vd_err e = VD_ERR_OK, again = VD_ERR_OK;
    char err2[512];
    *where = "nowhere";
    for (int i = 0; i < ndocs && !e; i++)
        if ((e = vd_writer_put(w, &gs[i], err, errsz)))
            *where = "put";
    if (e) {
        again = vd_writer_put(w, &gs[0], err2, sizeof err2);
    } else {
        vd_writer_result res;
        if ((e = vd_writer_close(w, &res, err, errsz)))
            *where = "close";
        again = vd_writer_close(w, &res, err2, sizeof err2);
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);

    assert_int_equal(again, e); /* the failure is sticky */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size <= 64 * 1024);
    vd_writer_destroy(w);
    assert_int_not_equal(stat(path, &st), 0); /* destroy removed it */
    free_set(gs, ndocs);
    return e;
}

/* avro-c's file writer leaked ~4 MB when a write failed part-way. */
static void test_write_fails_part_way(void **state) {
    (void)state;
    static const struct {
        const char *what;
        int ndocs;
        size_t file_len;
        const char *where;
    } cases[] = {
        {"blocks of 300 KiB files", 8, 300 * 1024, "put"},
        {"one 2 MiB file (a block of its own)", 1, 2u << 20, "put"},
        {"one 100 KiB file, written at close", 1, 100 * 1024, "close"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = tpath("limited.avro");
        char err[512] = "";
        const char *where = NULL;
        vd_err e = write_limited(path, cases[i].ndocs, cases[i].file_len, &where, err, sizeof err);
        print_message("    %s: %s in %s: %s\n", cases[i].what, vd_err_name(e), where, err);
        assert_int_equal(e, VD_ERR_IO); /* EFBIG, like the other formats */
        assert_string_equal(where, cases[i].where);
        assert_non_null(strstr(err, "File too large"));
        free(path);
    }
}

static int setup(void **state) {
    (void)state;
    tmpdir = vd_test_tmpdir();
    return tmpdir ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", tmpdir, de->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
    free(tmpdir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_rss),
        cmocka_unit_test(test_roundtrip_plain),
        cmocka_unit_test(test_roundtrip_files),
        cmocka_unit_test(test_big_record),
        cmocka_unit_test(test_empty_artifact),
        cmocka_unit_test(test_avro_c_reads_it),
        cmocka_unit_test(test_writer_refuses_existing),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bitflip),
        cmocka_unit_test(test_trailer_checksum),
        cmocka_unit_test(test_foreign_schema),
        cmocka_unit_test(test_hostile_blocks),
        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_write_fails_part_way),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
