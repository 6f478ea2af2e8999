/* vd_test_data.c - see vd_test_data.h. */
#include "vd_test_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *vd_test_xstrdup(const char *s) {
    char *p = vd_strdup(s);
    assert_non_null(p);
    return p;
}

char *vd_test_xfmt(const char *fmt, int a, int b) {
    char buf[256];
    snprintf(buf, sizeof buf, fmt, a, b);
    return vd_test_xstrdup(buf);
}

void vd_test_set_text(vd_chunk *c, const char *t, size_t n) {
    c->text = malloc(n + 1);
    assert_non_null(c->text);
    memcpy(c->text, t, n);
    c->text[n] = 0;
    c->text_len = n;
}

float vd_test_val(int i, int j, int k) {
    switch ((i + j + k) % 9) {
    case 0:
        return -0.0f;
    case 1:
        return 1e-45f; /* smallest denormal */
    case 2:
        return 3.4028235e38f;
    case 3:
        return 0.1f;
    default:
        return sinf((float)(i * 31 + j * 7 + k)) * 0.37f;
    }
}

/* Document i with nchunks chunks; a binary file when with_file. */
void vd_test_mk_group(vd_docgroup *g, int i, int nchunks, int dim, bool with_file) {
    memset(g, 0, sizeof *g);
    g->doc.id = vd_test_xfmt("doc-%d", i, 0);
    g->doc.title = vd_test_xfmt("Title %d, with \"quotes\" and\r\nnew lines", i, 0);
    g->doc.source = vd_test_xfmt("s3://bucket/x,%d.pdf", i, 0);
    g->doc.content_type = vd_test_xstrdup("application/pdf");
    g->doc.created_at = 1700000000000LL + i;
    g->doc.updated_at = 1700000001000LL + i;
    g->doc.chunk_count = nchunks;
    g->doc.metadata = vd_test_xstrdup(i % 2 ? "{}" : "{\"k\":\"v,\\\"q\\\"\",\"n\":[1,2]}");
    for (int j = 0; j < nchunks; j++) {
        vd_chunk *c = vd_docgroup_add_chunk(g);
        assert_non_null(c);
        c->id = vd_test_xfmt("doc-%d.c%d", i, j);
        c->doc_id = vd_test_xstrdup(g->doc.id);
        c->seq = j;
        switch (j % 6) {
        case 0:
            vd_test_set_text(c, "plain text", 10);
            break;
        case 1:
            vd_test_set_text(c, "h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89", 27);
            break;
        case 2:
            vd_test_set_text(c, "a,b\"c\"\r\nnext\nline\rcr,\"", 22);
            break;
        case 3:
            vd_test_set_text(c, "ab\0cd\0", 6);
            break;
        case 4:
            vd_test_set_text(c, "\xff\xfe ok \xc3", 7);
            break;
        default:
            vd_test_set_text(c, "", 0);
            break;
        }
        c->dim = (size_t)dim;
        c->embedding = malloc((size_t)(dim ? dim : 1) * sizeof(float));
        assert_non_null(c->embedding);
        for (int k = 0; k < dim; k++)
            c->embedding[k] = vd_test_val(i, j, k);
        c->metadata = vd_test_xstrdup(j % 2 ? "{}" : "{\"page\":3,\"s\":\"x,y\"}");
    }
    if (with_file) {
        size_t n = i % 3 == 2 ? 0 : (size_t)(1000 + i);
        g->has_file = true;
        g->file.doc_id = vd_test_xstrdup(g->doc.id);
        g->file.data = malloc(n ? n : 1);
        assert_non_null(g->file.data);
        for (size_t k = 0; k < n; k++)
            g->file.data[k] = (unsigned char)((k * 7 + (size_t)i) & 0xff);
        g->file.len = n;
        char hex[65];
        vd_sha256_hex(g->file.data, n, hex);
        g->doc.sha256 = vd_test_xstrdup(hex);
        g->doc.size = (int64_t)n;
    } else {
        g->doc.sha256 = vd_test_xstrdup("");
    }
}

void vd_test_info_init(vd_artifact_info *info, int dim, bool files) {
    memset(info, 0, sizeof *info);
    info->tool_version = "0.1.0-test";
    info->task_id = "task-123";
    info->ns = "vec";
    info->created_at = 1700000000123LL;
    info->meta.schema_version = 1;
    info->meta.dim = dim;
    info->meta.model = (char *)"text-embedding-3-small";
    info->meta.distance = (char *)"COSINE";
    info->meta.created_at = 1690000000000LL;
    info->include_files = files;
    info->compress = true;
}

void vd_test_assert_str_eq(const char *a, const char *b) {
    assert_string_equal(a ? a : "", b ? b : "");
}

void vd_test_assert_group_eq(const vd_docgroup *a, const vd_docgroup *b, bool files) {
    vd_test_assert_str_eq(a->doc.id, b->doc.id);
    vd_test_assert_str_eq(a->doc.title, b->doc.title);
    vd_test_assert_str_eq(a->doc.source, b->doc.source);
    vd_test_assert_str_eq(a->doc.content_type, b->doc.content_type);
    vd_test_assert_str_eq(a->doc.sha256, b->doc.sha256);
    vd_test_assert_str_eq(a->doc.metadata, b->doc.metadata);
    assert_true(a->doc.size == b->doc.size);
    assert_true(a->doc.created_at == b->doc.created_at);
    assert_true(a->doc.updated_at == b->doc.updated_at);
    assert_true(a->doc.chunk_count == b->doc.chunk_count);
    assert_int_equal(a->nchunks, b->nchunks);
    for (size_t j = 0; j < a->nchunks; j++) {
        const vd_chunk *x = &a->chunks[j], *y = &b->chunks[j];
        vd_test_assert_str_eq(x->id, y->id);
        vd_test_assert_str_eq(x->doc_id, y->doc_id);
        assert_true(x->seq == y->seq);
        assert_int_equal(x->text_len, y->text_len);
        assert_memory_equal(x->text, y->text, x->text_len);
        assert_int_equal(x->dim, y->dim);
        assert_memory_equal(x->embedding, y->embedding, x->dim * sizeof(float)); /* bit-exact */
        vd_test_assert_str_eq(x->metadata, y->metadata);
    }
    if (files && a->has_file) {
        assert_true(b->has_file);
        assert_int_equal(a->file.len, b->file.len);
        assert_memory_equal(a->file.data, b->file.data, a->file.len);
        vd_test_assert_str_eq(a->file.doc_id, b->file.doc_id);
    } else {
        assert_false(b->has_file);
    }
}
