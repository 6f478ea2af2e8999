/* test_manifest.c - the sidecar manifest: fields, members, no password. */
#include "vd_test.h"
#include "vd_formats.h"

#include <jansson.h>
#include <string.h>

static void test_render(void **state) {
    (void)state;
    vd_artifact_info info;
    memset(&info, 0, sizeof info);
    info.tool_version = "0.1.0";
    info.task_id = "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab";
    info.ns = "vec";
    info.created_at = 1714566896789; /* 2024-05-01T12:34:56.789Z */
    info.meta.schema_version = 1;
    info.meta.dim = 384;
    info.meta.model = "all-MiniLM-L6-v2";
    info.meta.distance = "COSINE";
    info.include_files = true;
    info.compress = false;
    vd_member_sum members[2];
    memset(members, 0, sizeof members);
    snprintf(members[0].name, sizeof members[0].name, "documents.csv");
    snprintf(members[0].sha256, sizeof members[0].sha256, "%064d", 1);
    members[0].size = 100;
    snprintf(members[1].name, sizeof members[1].name, "chunks.csv");
    snprintf(members[1].sha256, sizeof members[1].sha256, "%064d", 2);
    members[1].size = 200;
    vd_writer_result res;
    memset(&res, 0, sizeof res);
    res.bytes = 12345;
    snprintf(res.sha256, sizeof res.sha256, "%064d", 7);
    res.counts.documents = 3;
    res.counts.chunks = 30;
    res.counts.files = 2;
    res.members = members;
    res.nmembers = 2;
    vd_manifest m = {&info, VD_FMT_CSV, "vec-20240501T123456Z-6f1c2d3e.csv.zip", &res,
                     "redis.internal", 6380, 2, 4321};
    vd_buf out;
    vd_buf_init(&out, 0);
    assert_int_equal(vd_manifest_render(&m, &out), VD_ERR_OK);
    assert_null(strstr(out.data, "password"));
    assert_non_null(strstr(out.data, "\n  \"")); /* pretty */
    json_error_t jerr;
    json_t *j = json_loads(out.data, 0, &jerr);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "manifest_version")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "tool")), "vecdump");
    assert_string_equal(json_string_value(json_object_get(j, "tool_version")), "0.1.0");
    assert_string_equal(json_string_value(json_object_get(j, "format")), "CSV");
    assert_int_equal(json_integer_value(json_object_get(j, "format_version")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "artifact")),
                        "vec-20240501T123456Z-6f1c2d3e.csv.zip");
    assert_int_equal(json_integer_value(json_object_get(j, "size")), 12345);
    assert_string_equal(json_string_value(json_object_get(j, "sha256")), res.sha256);
    assert_string_equal(json_string_value(json_object_get(j, "task_id")), info.task_id);
    assert_string_equal(json_string_value(json_object_get(j, "created_at")),
                        "2024-05-01T12:34:56.789Z");
    assert_int_equal(json_integer_value(json_object_get(j, "created_at_ms")), info.created_at);
    json_t *src = json_object_get(j, "source");
    assert_string_equal(json_string_value(json_object_get(src, "host")), "redis.internal");
    assert_int_equal(json_integer_value(json_object_get(src, "port")), 6380);
    assert_int_equal(json_integer_value(json_object_get(src, "db")), 2);
    assert_string_equal(json_string_value(json_object_get(src, "namespace")), "vec");
    assert_int_equal(json_object_size(src), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "schema_version")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "dim")), 384);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "all-MiniLM-L6-v2");
    assert_string_equal(json_string_value(json_object_get(j, "distance")), "COSINE");
    json_t *c = json_object_get(j, "counts");
    assert_int_equal(json_integer_value(json_object_get(c, "documents")), 3);
    assert_int_equal(json_integer_value(json_object_get(c, "chunks")), 30);
    assert_int_equal(json_integer_value(json_object_get(c, "files")), 2);
    assert_true(json_is_false(json_object_get(j, "compressed")));
    assert_true(json_is_true(json_object_get(j, "include_files")));
    assert_int_equal(json_integer_value(json_object_get(j, "duration_ms")), 4321);
    json_t *mem = json_object_get(j, "members");
    assert_int_equal(json_array_size(mem), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(mem, 1), "name")),
                        "chunks.csv");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(mem, 1), "size")), 200);
    json_decref(j);

    /* JSONL: no members key at all. */
    res.members = NULL;
    res.nmembers = 0;
    m.format = VD_FMT_JSONL;
    vd_buf_reset(&out);
    assert_int_equal(vd_manifest_render(&m, &out), VD_ERR_OK);
    j = json_loads(out.data, 0, &jerr);
    assert_non_null(j);
    assert_null(json_object_get(j, "members"));
    assert_string_equal(json_string_value(json_object_get(j, "format")), "JSONL");
    json_decref(j);
    vd_buf_free(&out);
}

static void test_names(void **state) {
    (void)state;
    assert_string_equal(vd_format_name(VD_FMT_JSONL), "JSONL");
    assert_string_equal(vd_format_name(VD_FMT_AVRO), "AVRO");
    assert_string_equal(vd_format_ext(VD_FMT_JSONL, true), ".jsonl.gz");
    assert_string_equal(vd_format_ext(VD_FMT_JSONL, false), ".jsonl");
    assert_string_equal(vd_format_ext(VD_FMT_CSV, true), ".csv.zip");
    assert_string_equal(vd_format_ext(VD_FMT_AVRO, false), ".avro");
    vd_limits l;
    vd_limits_default(&l);
    assert_int_equal(l.max_ratio, 200);
    assert_int_equal(l.max_record_bytes, 256 << 20);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
