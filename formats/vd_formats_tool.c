/*
 * vd_formats_tool.c - test helper: writes a deterministic dataset as an
 * artifact, for readers written in other languages to check.
 *
 *   vd-formats-tool write FORMAT COMPRESS INCLUDE_FILES OUTPATH
 *   vd-formats-tool read PATH
 *
 * FORMAT is jsonl, csv or avro; COMPRESS and INCLUDE_FILES are 0 or 1.
 * Writes OUTPATH with vd_writer_* and OUTPATH.expected.json: one JSON object
 * a line ("info", then per document "document", its "chunk"s and its
 * "file"), texts and file data in base64, embeddings as lists of the
 * float32 bit patterns (uint32), so a reader can compare bit for bit.
 * `read` reads any artifact with vd_reader_* (every check) and prints
 * "OK documents N chunks N files N", or the error code and text.
 * Exit status 0 on success, 1 on failure (with a message on stderr).
 */
#include "vd_formats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define NDOCS 12
#define DIM 16

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Finite floats with every kind of bit pattern: normal, denormal, ±0, huge. */
static float next_float(int k) {
    uint32_t u;
    switch (k % 11) {
    case 0:
        u = 0x80000000u; /* -0 */
        break;
    case 1:
        u = next_u32() & 0x807fffffu; /* denormal */
        break;
    case 2:
        u = 0x7f7fffffu; /* FLT_MAX */
        break;
    default:
        do
            u = next_u32();
        while ((u & 0x7f800000u) == 0x7f800000u);
        if (k % 3 == 0) /* a typical embedding value */
            u = (u & 0x807fffffu) | (uint32_t)(0x3c000000u + (next_u32() % 8) * 0x00800000u);
        break;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *b64(const void *data, size_t n) {
    const unsigned char *p = data;
    char *o = malloc((n + 2) / 3 * 4 + 1);
    size_t j = 0;
    if (!o)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        o[j++] = B64[v >> 18];
        o[j++] = B64[(v >> 12) & 63];
        o[j++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        o[j++] = i + 2 < n ? B64[v & 63] : '=';
    }
    o[j] = 0;
    json_t *s = json_string(o);
    free(o);
    return s;
}

static char *fmt_dup(const char *fmt, int a, int b) {
    char buf[256];
    snprintf(buf, sizeof buf, fmt, a, b);
    return vd_strdup(buf);
}

static const char *const TEXTS[] = {
    "plain text",
    "h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89",
    "a,b\"c\"\r\nnext\nline\rcr,\"",
    "",
    "tab\there; semicolon; 'single' \\ backslash",
};

static void mk_group(vd_docgroup *g, int i, bool files) {
    memset(g, 0, sizeof *g);
    int nchunks = i % 4 == 3 ? 0 : 1 + i % 5;
    g->doc.id = fmt_dup("doc-%d", i, 0);
    g->doc.title = fmt_dup("T\xc3\xadtulo %d, \"quoted\"\r\nline two", i, 0);
    g->doc.source = fmt_dup("https://example.com/a,b?%d", i, 0);
    g->doc.content_type = vd_strdup(i % 2 ? "text/plain" : "application/pdf");
    g->doc.created_at = 1700000000000LL + i * 1000;
    g->doc.updated_at = 1700000500000LL + i * 1000;
    g->doc.chunk_count = nchunks;
    g->doc.metadata = vd_strdup(i % 2 ? "{}" : "{\"lang\":\"fr\",\"tags\":[\"a,b\",\"c\\\"d\"]}");
    for (int j = 0; j < nchunks; j++) {
        vd_chunk *c = vd_docgroup_add_chunk(g);
        c->id = fmt_dup("doc-%d.c%d", i, j);
        c->doc_id = vd_strdup(g->doc.id);
        c->seq = j * 10;
        int kind = (i + j) % 7;
        if (kind < 5) {
            c->text_len = strlen(TEXTS[kind]);
            c->text = vd_strndup(TEXTS[kind], c->text_len);
        } else if (kind == 5) {
            c->text_len = 7;
            c->text = vd_strndup("nul\0byte", 7);
        } else {
            c->text_len = 6;
            c->text = vd_strndup("\xff\xfe\xc3(ok", 6);
        }
        c->dim = DIM;
        c->embedding = malloc(DIM * sizeof(float));
        for (int k = 0; k < DIM; k++)
            c->embedding[k] = next_float(i * 7 + j * 3 + k);
        c->metadata = vd_strdup(j % 2 ? "{}" : "{\"page\":1}");
    }
    if (files && i % 3 != 1) {
        size_t n = i % 3 == 2 ? 0 : (size_t)(300 + i * 37);
        g->has_file = true;
        g->file.doc_id = vd_strdup(g->doc.id);
        g->file.data = malloc(n ? n : 1);
        for (size_t k = 0; k < n; k++)
            g->file.data[k] = (unsigned char)(k % 5 == 0 ? 0 : next_u32());
        g->file.len = n;
        char hex[65];
        vd_sha256_hex(g->file.data, n, hex);
        g->doc.sha256 = vd_strdup(hex);
        g->doc.size = (int64_t)n;
    } else {
        g->doc.sha256 = vd_strdup("");
    }
}

static void dump(FILE *f, json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fprintf(f, "%s\n", s);
    free(s);
    json_decref(o);
}

static void dump_group(FILE *f, const vd_docgroup *g, bool files) {
    const vd_doc *d = &g->doc;
    dump(f, json_pack("{ss ss ss ss ss sI ss sI sI sI ss}", "type", "document", "id", d->id,
                      "title", d->title, "source", d->source, "content_type", d->content_type,
                      "size", (json_int_t)d->size, "sha256", d->sha256, "created_at",
                      (json_int_t)d->created_at, "updated_at", (json_int_t)d->updated_at,
                      "chunk_count", (json_int_t)d->chunk_count, "metadata", d->metadata));
    for (size_t j = 0; j < g->nchunks; j++) {
        const vd_chunk *c = &g->chunks[j];
        json_t *bits = json_array();
        for (size_t k = 0; k < c->dim; k++) {
            uint32_t u;
            memcpy(&u, &c->embedding[k], 4);
            json_array_append_new(bits, json_integer(u));
        }
        dump(f, json_pack("{ss ss ss sI so so ss}", "type", "chunk", "id", c->id, "doc_id",
                          c->doc_id, "seq", (json_int_t)c->seq, "text_b64",
                          b64(c->text, c->text_len), "embedding_bits", bits, "metadata",
                          c->metadata));
    }
    if (files && g->has_file)
        dump(f, json_pack("{ss ss so}", "type", "file", "doc_id", g->file.doc_id, "data_b64",
                          b64(g->file.data, g->file.len)));
}

static int cmd_read(const char *path) {
    char err[512] = "";
    vd_reader *r = NULL;
    vd_counts n = {0, 0, 0};
    vd_err e = vd_reader_open(path, NULL, &r, err, sizeof err);
    while (!e) {
        vd_docgroup g;
        bool done = false;
        e = vd_reader_next(r, &g, &done, err, sizeof err);
        if (e || done)
            break;
        n.documents++;
        n.chunks += (int64_t)g.nchunks;
        n.files += g.has_file;
        vd_docgroup_clear(&g);
    }
    vd_reader_destroy(r);
    if (e) {
        printf("%s %s\n", vd_err_name(e), err);
        return 1;
    }
    printf("OK documents %" PRId64 " chunks %" PRId64 " files %" PRId64 "\n", n.documents,
           n.chunks, n.files);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "read") == 0)
        return cmd_read(argv[2]);
    if (argc != 6 || strcmp(argv[1], "write") != 0) {
        fprintf(stderr,
                "usage: %s write jsonl|csv|avro COMPRESS(0|1) INCLUDE_FILES(0|1) OUTPATH\n"
                "       %s read PATH\n",
                argv[0], argv[0]);
        return 1;
    }
    vd_format fmt;
    if (strcmp(argv[2], "jsonl") == 0)
        fmt = VD_FMT_JSONL;
    else if (strcmp(argv[2], "csv") == 0)
        fmt = VD_FMT_CSV;
    else if (strcmp(argv[2], "avro") == 0)
        fmt = VD_FMT_AVRO;
    else {
        fprintf(stderr, "unknown format %s\n", argv[2]);
        return 1;
    }
    bool compress = strcmp(argv[3], "1") == 0;
    bool files = strcmp(argv[4], "1") == 0;
    const char *out = argv[5];

    vd_artifact_info info;
    memset(&info, 0, sizeof info);
    info.tool_version = "vd-formats-tool";
    info.task_id = "7f1c2a9e-0000-4000-8000-000000000001";
    info.ns = "vec";
    info.created_at = 1700000000123LL;
    info.meta.schema_version = 1;
    info.meta.dim = DIM;
    info.meta.model = (char *)"test-model";
    info.meta.distance = (char *)"COSINE";
    info.meta.created_at = 1690000000000LL;
    info.include_files = files;
    info.compress = compress;

    char exp_path[4096];
    snprintf(exp_path, sizeof exp_path, "%s.expected.json", out);
    FILE *ef = fopen(exp_path, "w");
    if (!ef) {
        perror(exp_path);
        return 1;
    }
    dump(ef, json_pack("{ss ss ss ss sI si si ss ss sI sb}", "type", "info", "tool_version",
                       info.tool_version, "task_id", info.task_id, "namespace", info.ns,
                       "created_at", (json_int_t)info.created_at, "schema_version", 1, "dim", DIM,
                       "model", info.meta.model, "distance", info.meta.distance,
                       "meta_created_at", (json_int_t)info.meta.created_at, "include_files",
                       files));

    char err[512] = "";
    vd_writer *w = NULL;
    vd_err e = vd_writer_open(fmt, out, &info, &w, err, sizeof err);
    for (int i = 0; !e && i < NDOCS; i++) {
        vd_docgroup g;
        mk_group(&g, i, files);
        e = vd_writer_put(w, &g, err, sizeof err);
        dump_group(ef, &g, files);
        vd_docgroup_clear(&g);
    }
    vd_writer_result res;
    if (!e)
        e = vd_writer_close(w, &res, err, sizeof err);
    vd_writer_destroy(w);
    fclose(ef);
    if (e) {
        fprintf(stderr, "vd-formats-tool: %s: %s\n", vd_err_name(e), err);
        return 1;
    }
    printf("%s %" PRId64 " bytes sha256 %s documents %" PRId64 " chunks %" PRId64
           " files %" PRId64 "\n",
           out, res.bytes, res.sha256, res.counts.documents, res.counts.chunks,
           res.counts.files);
    return 0;
}
