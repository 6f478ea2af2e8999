/*
 * test_csvzip.c - the CSV-in-ZIP artifact: round trips (awkward text, NUL
 * bytes, invalid UTF-8, binary files, with and without files, path and
 * memory input) and a corruption matrix where every case has its own error
 * code: truncated, flipped bit, unbalanced quote, "../x" member, zip bomb,
 * wrong dim, NaN, chunk of a missing document, bad id, checksum mismatch.
 * Also the writer's peak RSS on 20k chunks of dim 384.
 */
#include "vd_test.h"
#include "vd_test_data.h"
#include "vd_formats.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zip.h>

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
    assert_int_equal(vd_writer_open(VD_FMT_CSV, path, &info, &w, err, sizeof err), VD_ERR_OK);
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
        if (files) {
            bool seen_file = false, seen_manifest = false;
            for (size_t i = 0; i < res.nmembers; i++) {
                seen_file |= strncmp(res.members[i].name, "files/", 6) == 0;
                seen_manifest |= strcmp(res.members[i].name, "manifest.json") == 0;
                assert_int_equal(strlen(res.members[i].sha256), 64);
            }
            assert_true(seen_file && seen_manifest);
        }
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
    vd_err e = path ? vd_reader_open(path, lim, &r, err, errsz)
                    : vd_reader_open_mem(mem, len, lim, &r, err, errsz);
    if (e)
        return e;
    assert_int_equal(vd_reader_format(r), VD_FMT_CSV);
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

/* ---- round trips ------------------------------------------------------- */

static void roundtrip(bool files) {
    enum { N = 6 };
    vd_docgroup gs[N];
    make_set(gs, N, DIM, files);
    char *path = tpath(files ? "rt-files.csv.zip" : "rt.csv.zip");
    vd_writer_result res;
    write_groups(path, gs, N, DIM, files, &res);
    assert_int_equal(res.counts.documents, N);
    assert_int_equal(res.counts.files, files ? 5 : 0);
    assert_true(res.bytes > 0);

    /* Only the artifact is left in the directory: no temp files. */
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    while ((de = readdir(d)))
        assert_true(de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
                    strcmp(de->d_name, "..") == 0);
    closedir(d);

    /* The artifact's SHA-256 is what the writer said. */
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
    e = read_all(NULL, mem, len, NULL, gs, N, files, err, sizeof err);
    assert_int_equal(e, VD_ERR_OK);

    /* The header information comes back. */
    vd_reader *r = NULL;
    assert_int_equal(vd_reader_open(path, NULL, &r, err, sizeof err), VD_ERR_OK);
    const vd_artifact_info *info = vd_reader_info(r);
    assert_string_equal(info->task_id, "task-123");
    assert_string_equal(info->ns, "vec");
    assert_string_equal(info->meta.model, "text-embedding-3-small");
    assert_int_equal(info->meta.dim, DIM);
    assert_true(info->include_files == files);
    vd_reader_destroy(r);

    /* The CSV itself: pgvector text embeddings, CRLF, RFC 4180 quoting. */
    int zerr;
    zip_t *za = zip_open(path, ZIP_RDONLY, &zerr);
    assert_non_null(za);
    zip_stat_t st;
    assert_int_equal(zip_stat(za, "chunks.csv", 0, &st), 0);
    assert_int_equal(st.comp_method, ZIP_CM_DEFLATE);
    char *csv = malloc(st.size + 1);
    zip_file_t *zf = zip_fopen(za, "chunks.csv", 0);
    assert_int_equal(zip_fread(zf, csv, st.size), (zip_int64_t)st.size);
    csv[st.size] = 0;
    zip_fclose(zf);
    assert_true(strncmp(csv, "id,doc_id,seq,text,embedding,metadata,text_b64\r\n", 48) == 0);
    assert_non_null(strstr(csv, "\"[-0,1e-45,3.4028235e+38,0.1,"));
    assert_non_null(strstr(csv, "\"a,b\"\"c\"\"\r\nnext\nline\rcr,\"\"\""));
    assert_non_null(strstr(csv, ",YWIAY2QA\r\n")); /* "ab\0cd\0" in base64 */
    free(csv);
    zip_close(za);

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

static void test_empty_artifact(void **state) {
    (void)state;
    char *path = tpath("empty.csv.zip");
    write_groups(path, NULL, 0, DIM, false, NULL);
    char err[512];
    assert_int_equal(read_all(path, NULL, 0, NULL, NULL, 0, false, err, sizeof err), VD_ERR_OK);
    free(path);
}

static void test_writer_refuses_existing(void **state) {
    (void)state;
    char *path = tpath("exists.csv.zip");
    spit(path, "x", 1);
    vd_artifact_info info;
    vd_test_info_init(&info, DIM, false);
    char err[512];
    vd_writer *w = NULL;
    assert_int_not_equal(vd_writer_open(VD_FMT_CSV, path, &info, &w, err, sizeof err), VD_ERR_OK);
    assert_null(w);
    unlink(path);
    free(path);
}

static void test_destroy_without_close(void **state) {
    (void)state;
    char *path = tpath("abandoned.csv.zip");
    vd_docgroup g;
    vd_test_mk_group(&g, 0, 3, DIM, true);
    vd_artifact_info info;
    vd_test_info_init(&info, DIM, true);
    char err[512];
    vd_writer *w = NULL;
    assert_int_equal(vd_writer_open(VD_FMT_CSV, path, &info, &w, err, sizeof err), VD_ERR_OK);
    assert_int_equal(vd_writer_put(w, &g, err, sizeof err), VD_ERR_OK);
    assert_true(vd_writer_bytes(w) > 0);
    vd_writer_destroy(w);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    while ((de = readdir(d)))
        assert_null(strstr(de->d_name, "abandoned"));
    closedir(d);
    vd_docgroup_clear(&g);
    free(path);
}

/* ---- corruption matrix ------------------------------------------------- */

/* A valid 6-document artifact with files; returns its path. */
static char *good_artifact(const char *name) {
    enum { N = 6 };
    vd_docgroup gs[N];
    make_set(gs, N, DIM, true);
    char *path = tpath(name);
    write_groups(path, gs, N, DIM, true, NULL);
    free_set(gs, N);
    return path;
}

static vd_err read_path(const char *path, const vd_limits *lim, char *err, size_t errsz) {
    err[0] = 0;
    vd_err e = read_all(path, NULL, 0, lim, NULL, 0, false, err, errsz);
    print_message("    -> %s: %s\n", vd_err_name(e), err);
    return e;
}

static void test_truncated(void **state) {
    (void)state;
    char *path = good_artifact("trunc-src.csv.zip");
    size_t len;
    char *mem = slurp(path, &len);
    char *cut = tpath("trunc.csv.zip");
    char err[512];
    size_t cuts[] = {len / 2, len - 1, len - 30, 100};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(cut, mem, cuts[i]);
        assert_int_equal(read_path(cut, NULL, err, sizeof err), VD_ERR_TRUNCATED);
        vd_reader *r = NULL;
        assert_int_equal(vd_reader_open_mem(mem, cuts[i], NULL, &r, err, sizeof err),
                         VD_ERR_TRUNCATED);
    }
    free(mem);
    free(cut);
    free(path);
}

/* Offset of member `name`'s compressed data inside the archive bytes. */
static size_t member_data_offset(const char *mem, size_t len, const char *name) {
    size_t nl = strlen(name);
    for (size_t i = 0; i + 30 + nl <= len; i++) {
        if (memcmp(mem + i, "PK\3\4", 4) != 0)
            continue;
        const unsigned char *h = (const unsigned char *)mem + i;
        size_t fnl = (size_t)h[26] | (size_t)h[27] << 8, exl = (size_t)h[28] | (size_t)h[29] << 8;
        if (fnl == nl && memcmp(mem + i + 30, name, nl) == 0)
            return i + 30 + fnl + exl;
    }
    fail_msg("member %s not found", name);
    return 0;
}

static void test_bitflip(void **state) {
    (void)state;
    char *path = good_artifact("flip-src.csv.zip");
    size_t len;
    char *mem = slurp(path, &len);
    char err[512];
    /* A bit in the middle of chunks.csv's deflate data: inflate fails or the
     * CRC does not match. */
    size_t off = member_data_offset(mem, len, "chunks.csv") + 40;
    mem[off] ^= 0x10;
    vd_err e = read_all(NULL, mem, len, NULL, NULL, 0, false, err, sizeof err);
    print_message("    flip in chunks.csv -> %s: %s\n", vd_err_name(e), err);
    assert_int_equal(e, VD_ERR_ZIP); /* zlib: invalid deflate data */
    mem[off] ^= 0x10;
    /* A bit in a file member's deflate data that still inflates: the CRC. */
    off = member_data_offset(mem, len, "files/doc-0") + 20;
    mem[off] ^= 0x01;
    e = read_all(NULL, mem, len, NULL, NULL, 0, false, err, sizeof err);
    print_message("    flip in files/doc-0 -> %s: %s\n", vd_err_name(e), err);
    assert_int_equal(e, VD_ERR_CHECKSUM); /* the member's CRC-32 */
    mem[off] ^= 0x01;
    /* Every single-byte flip across the archive fails cleanly, never crashes. */
    for (size_t i = 0; i < len; i += 7) {
        mem[i] ^= 0x04;
        e = read_all(NULL, mem, len, NULL, NULL, 0, false, err, sizeof err);
        mem[i] ^= 0x04;
        if (e == VD_ERR_OK) {
            /* A flip in a field libzip ignores (timestamps, attributes) is harmless. */
            continue;
        }
        assert_true(e != VD_ERR_INTERNAL && e != VD_ERR_INVALID_ARG);
    }
    free(mem);
    free(path);
}

/* Copies src to dst replacing member `name` by (data, len), or dropping it
 * when data is NULL, and adding member xname = xdata when xname is set. */
static void zip_rewrite(const char *src, const char *dst, const char *name, const void *data,
                        size_t len, const char *xname, const void *xdata, size_t xlen) {
    int zerr;
    unlink(dst);
    zip_t *in = zip_open(src, ZIP_RDONLY, &zerr);
    zip_t *out = zip_open(dst, ZIP_CREATE | ZIP_EXCL, &zerr);
    assert_non_null(in);
    assert_non_null(out);
    zip_int64_t n = zip_get_num_entries(in, 0);
    for (zip_int64_t i = 0; i < n; i++) {
        zip_stat_t st;
        assert_int_equal(zip_stat_index(in, (zip_uint64_t)i, 0, &st), 0);
        void *buf;
        size_t bl;
        if (name && strcmp(st.name, name) == 0) {
            if (!data)
                continue;
            buf = malloc(len ? len : 1);
            memcpy(buf, data, len);
            bl = len;
        } else {
            buf = malloc(st.size ? st.size : 1);
            zip_file_t *zf = zip_fopen_index(in, (zip_uint64_t)i, 0);
            assert_int_equal(zip_fread(zf, buf, st.size), (zip_int64_t)st.size);
            zip_fclose(zf);
            bl = st.size;
        }
        if (!bl) { /* libzip ignores (and never frees) an empty buffer */
            free(buf);
            buf = NULL;
        }
        zip_source_t *s = zip_source_buffer(out, buf, bl, 1);
        assert_true(zip_file_add(out, st.name, s, 0) >= 0);
    }
    if (xname) {
        void *buf = malloc(xlen ? xlen : 1);
        memcpy(buf, xdata, xlen);
        zip_source_t *s = zip_source_buffer(out, buf, xlen, 1);
        assert_true(zip_file_add(out, xname, s, 0) >= 0);
    }
    assert_int_equal(zip_close(out), 0);
    zip_discard(in);
}

static void test_unbalanced_quote(void **state) {
    (void)state;
    char *path = good_artifact("quote-src.csv.zip");
    char *bad = tpath("quote.csv.zip");
    static const char docs[] =
        "id,title,source,content_type,size,sha256,created_at,updated_at,chunk_count,metadata\r\n"
        "doc-0,\"unterminated title,s,t,0,,1,2,0,{}\r\n";
    zip_rewrite(path, bad, "documents.csv", docs, sizeof docs - 1, NULL, NULL, 0);
    char err[512];
    assert_int_equal(read_path(bad, NULL, err, sizeof err), VD_ERR_CSV);
    assert_non_null(strstr(err, "record 2"));

    static const char cols[] =
        "id,title,source,content_type,size,sha256,created_at,updated_at,chunk_count,metadata\r\n"
        "doc-0,t,s,c,0,,1,2,0\r\n";
    zip_rewrite(path, bad, "documents.csv", cols, sizeof cols - 1, NULL, NULL, 0);
    assert_int_equal(read_path(bad, NULL, err, sizeof err), VD_ERR_CSV);
    assert_non_null(strstr(err, "columns"));

    /* A record over max_record_bytes. */
    vd_limits lim;
    vd_limits_default(&lim);
    lim.max_record_bytes = 200;
    assert_int_equal(read_path(path, &lim, err, sizeof err), VD_ERR_TOO_LARGE);
    free(bad);
    free(path);
}

static void test_member_traversal(void **state) {
    (void)state;
    char *path = good_artifact("trav-src.csv.zip");
    char *bad = tpath("trav.csv.zip");
    char err[512];
    const char *names[] = {"../x", "/etc/passwd", "files/..", "files\\doc-0", "extra.txt",
                           "files/a/b"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        zip_rewrite(path, bad, NULL, NULL, 0, names[i], "x", 1);
        assert_int_equal(read_path(bad, NULL, err, sizeof err), VD_ERR_ZIP);
        assert_non_null(strstr(err, names[i]));
    }
    /* A missing manifest is a ZIP error too. */
    zip_rewrite(path, bad, "manifest.json", NULL, 0, NULL, NULL, 0);
    assert_int_equal(read_path(bad, NULL, err, sizeof err), VD_ERR_ZIP);
    /* Too many members for the limit. */
    vd_limits lim;
    vd_limits_default(&lim);
    lim.max_members = 4;
    assert_int_equal(read_path(path, &lim, err, sizeof err), VD_ERR_TOO_LARGE);
    free(bad);
    free(path);
}

/* A streaming source of `total` zero bytes (no big buffer). */
typedef struct zeros {
    uint64_t total, pos;
} zeros;

static zip_int64_t zeros_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd) {
    zeros *z = ud;
    switch (cmd) {
    case ZIP_SOURCE_OPEN:
        z->pos = 0;
        return 0;
    case ZIP_SOURCE_READ: {
        uint64_t n = z->total - z->pos < len ? z->total - z->pos : len;
        memset(data, 0, n);
        z->pos += n;
        return (zip_int64_t)n;
    }
    case ZIP_SOURCE_CLOSE:
        return 0;
    case ZIP_SOURCE_STAT: {
        zip_stat_t *st = data;
        zip_stat_init(st);
        st->size = z->total;
        st->mtime = 0;
        st->valid |= ZIP_STAT_SIZE | ZIP_STAT_MTIME;
        return sizeof *st;
    }
    case ZIP_SOURCE_ERROR: {
        int *e = data;
        e[0] = e[1] = 0;
        return 2 * sizeof(int);
    }
    case ZIP_SOURCE_FREE:
        return 0;
    case ZIP_SOURCE_SUPPORTS:
        return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE,
                                              ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE,
                                              -1);
    default:
        return -1;
    }
}

static void test_zip_bomb(void **state) {
    (void)state;
    char *path = good_artifact("bomb-src.csv.zip");
    char *bomb = tpath("bomb.csv.zip");
    /* chunks.csv replaced by 1 GiB of zeros, deflated while streaming. */
    int zerr;
    zip_t *in = zip_open(path, ZIP_RDONLY, &zerr);
    zip_t *out = zip_open(bomb, ZIP_CREATE | ZIP_EXCL, &zerr);
    assert_non_null(in);
    assert_non_null(out);
    zip_int64_t n = zip_get_num_entries(in, 0);
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(in, (zip_uint64_t)i, 0);
        zip_source_t *s;
        if (strcmp(name, "chunks.csv") == 0) {
            static zeros z = {(uint64_t)1 << 30, 0};
            s = zip_source_function(out, zeros_cb, &z);
        } else {
            s = zip_source_zip(out, in, (zip_uint64_t)i, 0, 0, -1);
        }
        assert_non_null(s);
        zip_int64_t idx = zip_file_add(out, name, s, 0);
        assert_true(idx >= 0);
        zip_set_file_compression(out, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 9);
    }
    assert_int_equal(zip_close(out), 0);
    zip_close(in);
    struct stat st;
    assert_int_equal(stat(bomb, &st), 0);
    print_message("    bomb: 1 GiB of zeros in %lld bytes\n", (long long)st.st_size);
    char err[512];
    assert_int_equal(read_path(bomb, NULL, err, sizeof err), VD_ERR_ZIP_BOMB);
    unlink(bomb);
    free(bomb);
    free(path);
}

/* Writes one document whose chunk was tampered with by `tamper`. */
static vd_err read_tampered(const char *name, void (*tamper)(vd_docgroup *g), char *err,
                            size_t errsz) {
    enum { N = 3 };
    vd_docgroup gs[N];
    make_set(gs, N, DIM, false);
    tamper(&gs[1]);
    char *path = tpath(name);
    write_groups(path, gs, N, DIM, false, NULL);
    vd_err e = read_path(path, NULL, err, errsz);
    free_set(gs, N);
    free(path);
    return e;
}

static void t_dim(vd_docgroup *g) { g->chunks[2].dim = DIM - 1; }
static void t_nan(vd_docgroup *g) { g->chunks[1].embedding[3] = NAN; }
static void t_inf(vd_docgroup *g) { g->chunks[1].embedding[0] = -INFINITY; }
static void t_ref(vd_docgroup *g) {
    free(g->chunks[2].doc_id);
    g->chunks[2].doc_id = vd_test_xstrdup("ghost");
}
static void t_badid(vd_docgroup *g) {
    free(g->chunks[0].id);
    g->chunks[0].id = vd_test_xstrdup("bad id:{x}");
}

static void test_bad_records(void **state) {
    (void)state;
    char err[512];
    assert_int_equal(read_tampered("dim.csv.zip", t_dim, err, sizeof err), VD_ERR_BAD_DIM);
    assert_int_equal(read_tampered("nan.csv.zip", t_nan, err, sizeof err), VD_ERR_BAD_FLOAT);
    assert_int_equal(read_tampered("inf.csv.zip", t_inf, err, sizeof err), VD_ERR_BAD_FLOAT);
    assert_int_equal(read_tampered("ref.csv.zip", t_ref, err, sizeof err), VD_ERR_REFERENCE);
    assert_non_null(strstr(err, "ghost"));
    assert_int_equal(read_tampered("id.csv.zip", t_badid, err, sizeof err), VD_ERR_BAD_ID);
}

static void test_checksum(void **state) {
    (void)state;
    char *path = good_artifact("sum-src.csv.zip");
    char *bad = tpath("sum.csv.zip");
    /* Valid CSV, different bytes than the manifest says. */
    int zerr;
    zip_t *za = zip_open(path, ZIP_RDONLY, &zerr);
    zip_stat_t st;
    zip_stat(za, "documents.csv", 0, &st);
    char *docs = malloc(st.size + 1);
    zip_file_t *zf = zip_fopen(za, "documents.csv", 0);
    assert_int_equal(zip_fread(zf, docs, st.size), (zip_int64_t)st.size);
    zip_fclose(zf);
    zip_discard(za);
    char *p = strstr(docs, "Title 2");
    assert_non_null(p);
    p[6] = '9';
    zip_rewrite(path, bad, "documents.csv", docs, st.size, NULL, NULL, 0);
    char err[512];
    assert_int_equal(read_path(bad, NULL, err, sizeof err), VD_ERR_CHECKSUM);
    /* A file member whose bytes differ from the manifest and the document. */
    zip_rewrite(path, bad, "files/doc-0", "not the file", 12, NULL, NULL, 0);
    assert_int_equal(read_path(bad, NULL, err, sizeof err), VD_ERR_CHECKSUM);
    free(docs);
    free(bad);
    free(path);
}

/* ---- memory ------------------------------------------------------------ */

static void test_writer_rss(void **state) {
    (void)state;
    enum { DOCS = 2000, PER = 10, BIG = 384 };
    long before = vd_test_peak_rss_kb();
    char *path = tpath("rss.csv.zip");
    vd_artifact_info info;
    vd_test_info_init(&info, BIG, false);
    char err[512];
    vd_writer *w = NULL;
    assert_int_equal(vd_writer_open(VD_FMT_CSV, path, &info, &w, err, sizeof err), VD_ERR_OK);
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
    print_message("    csv writer: %d chunks dim %d -> %lld bytes in %lld ms, peak RSS %ld KiB "
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
    print_message("    csv reader: %lld chunks in %lld ms, peak RSS %ld KiB\n", (long long)chunks,
                  (long long)(t2 - t1), vd_test_peak_rss_kb());
    assert_int_equal(chunks, DOCS * PER);
    unlink(path);
    free(path);
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
        cmocka_unit_test(test_empty_artifact),
        cmocka_unit_test(test_writer_refuses_existing),
        cmocka_unit_test(test_destroy_without_close),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bitflip),
        cmocka_unit_test(test_unbalanced_quote),
        cmocka_unit_test(test_member_traversal),
        cmocka_unit_test(test_zip_bomb),
        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_checksum),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
