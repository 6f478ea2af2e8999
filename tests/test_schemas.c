/*
 * test_schemas.c - the message contract and its codec: canonical form and
 * fingerprints (the Avro project's vectors), round trips of every message,
 * every decode error code, truncation at every length, schema evolution,
 * and a deterministic mutation fuzz loop (run it under VD_SANITIZE=ON).
 */
#include "vd_test.h"
#include "vd_schemas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------ */

static void put_varint(vd_buf *b, int64_t v) {
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (u >= 0x80) {
        assert_int_equal(vd_buf_putc(b, (char)(u | 0x80)), VD_ERR_OK);
        u >>= 7;
    }
    assert_int_equal(vd_buf_putc(b, (char)u), VD_ERR_OK);
}

static void put_str(vd_buf *b, const char *s) {
    put_varint(b, (int64_t)strlen(s));
    assert_int_equal(vd_buf_append(b, s, strlen(s)), VD_ERR_OK);
}

static void put_header(vd_buf *b, uint64_t fp) {
    vd_buf_putc(b, (char)VD_SO_MAGIC0);
    vd_buf_putc(b, (char)VD_SO_MAGIC1);
    for (int i = 0; i < 8; i++)
        vd_buf_putc(b, (char)(fp >> (8 * i)));
}

/* Command header fields with the current schema, up to the body index. */
static void put_command_prefix(vd_buf *b, const char *task_id, const char *ns) {
    put_header(b, vd_schema_current_fingerprint(VD_MSG_COMMAND));
    put_str(b, task_id);
    put_varint(b, 1700000000000);
    put_str(b, ns);
    put_varint(b, 0); /* requested_by: null */
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static char *fixture_import(vd_command *c) {
    static const unsigned char data[] = {'a', 0, 'b', 0, 0, 0xff, '\n'};
    memset(c, 0, sizeof *c);
    c->task_id = vd_strdup("2f1c6b0e-1d7a-4c1e-9f0b-6a1e2c3d4e5f");
    c->issued_at = 1733312345678;
    c->ns = vd_strdup("vec");
    c->requested_by = vd_strdup("Zoë \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80");
    c->kind = VD_CMD_IMPORT;
    c->import.has_inline = true;
    c->import.inline_data = malloc(sizeof data);
    memcpy(c->import.inline_data, data, sizeof data);
    c->import.inline_len = sizeof data;
    c->import.validate_only = true;
    c->import.on_conflict = VD_CMD_CONFLICT_OVERWRITE;
    c->import.expected_sha256 = vd_strdup(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    return c->task_id;
}

static void encode_cmd(const vd_command *c, vd_buf *out) {
    char err[256];
    vd_buf_init(out, 0);
    vd_err e = vd_command_encode(c, out, err, sizeof err);
    if (e)
        print_message("encode: %s %s\n", vd_err_name(e), err);
    assert_int_equal(e, VD_ERR_OK);
}

static vd_err decode_cmd(const vd_buf *b, vd_command *c) {
    char err[256] = "";
    return vd_command_decode(b->data, b->len, c, err, sizeof err);
}

/* ---- canonical form and fingerprints -------------------------------------------- */

/* From apache/avro share/test/data/schema-tests.txt (all 34 vectors). */
static const struct {
    const char *input, *canonical;
    bool has_fp;
    int64_t fp;
} vectors[] = {
    {"\"null\"", "\"null\"", true, 7195948357588979594},
    {"{\"type\":\"null\"}", "\"null\"", false, 0},
    {"\"boolean\"", "\"boolean\"", true, -6970731678124411036},
    {"{\"type\":\"boolean\"}", "\"boolean\"", false, 0},
    {"\"int\"", "\"int\"", true, 8247732601305521295},
    {"{\"type\":\"int\"}", "\"int\"", false, 0},
    {"\"long\"", "\"long\"", true, -3434872931120570953},
    {"{\"type\":\"long\"}", "\"long\"", false, 0},
    {"\"float\"", "\"float\"", true, 5583340709985441680},
    {"{\"type\":\"float\"}", "\"float\"", false, 0},
    {"\"double\"", "\"double\"", true, -8181574048448539266},
    {"{\"type\":\"double\"}", "\"double\"", false, 0},
    {"\"bytes\"", "\"bytes\"", true, 5746618253357095269},
    {"{\"type\":\"bytes\"}", "\"bytes\"", false, 0},
    {"\"string\"", "\"string\"", true, -8142146995180207161},
    {"{\"type\":\"string\"}", "\"string\"", false, 0},
    {"[  ]", "[]", true, -1241056759729112623},
    {"[ \"int\"  ]", "[\"int\"]", true, -5232228896498058493},
    {"[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]", true,
     5392556393470105090},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", true,
     -4824392279771201922},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", true,
     5916914534497305771},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", true,
     -4616218487480524110},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"Useful info\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", true,
     -4824392279771201922},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", true,
     -4824392279771201922},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\", "
     "\"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", true,
     -4824392279771201922},
    {"{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], "
     "\"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":"
     "\"boolean\"}]}",
     true, 7843277075252814651},
    {"{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", "
     "\"default\":\"true\"},\n {\"order\":\"descending\",\"name\":\"f2\",\"doc\":"
     "\"Hello\",\"type\":\"int\"}],\n  \"type\":\"record\", \"name\":\"foo\"\n}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":"
     "\"boolean\"},{\"name\":\"f2\",\"type\":\"int\"}]}",
     true, -4860222112080293046},
    {"{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}",
     "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}", true,
     -6342190197741309591},
    {"{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", "
     "\"symbols\":[\"A1\", \"A2\"]}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}", true,
     -4448647247586288245},
    {"{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
     "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}", true, 1756455273707447556},
    {"{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", "
     "\"size\":32}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", true,
     -3064184465700546786},
    {"{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}",
     "{\"type\":\"array\",\"items\":\"null\"}", true, -589620603366471059},
    {"{ \"values\":\"string\", \"type\":\"map\"}",
     "{\"type\":\"map\",\"values\":\"string\"}", true, -8732877298790414990},
    {"  {\"name\":\"PigValue\",\"type\":\"record\",\n   \"fields\":[{\"name\":\"value\", "
     "\"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
     "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\","
     "\"type\":[\"null\",\"int\",\"long\",\"PigValue\"]}]}",
     true, -1759257747318642341},
};

/* Extra cases: namespace inheritance, references, string escapes. */
static const struct {
    const char *input, *canonical;
} extra[] = {
    {"{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"a.b\",\"fields\":["
     "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\"]}},"
     "{\"name\":\"o\",\"type\":{\"type\":\"record\",\"name\":\"O\",\"namespace\":\"c\","
     "\"fields\":[{\"name\":\"i\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}}]}},"
     "{\"name\":\"r\",\"type\":[\"null\",\"E\",\"c.F\",\"R\"]},"
     "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"E\"}}}]}",
     "{\"name\":\"a.b.R\",\"type\":\"record\",\"fields\":["
     "{\"name\":\"e\",\"type\":{\"name\":\"a.b.E\",\"type\":\"enum\",\"symbols\":[\"X\"]}},"
     "{\"name\":\"o\",\"type\":{\"name\":\"c.O\",\"type\":\"record\",\"fields\":["
     "{\"name\":\"i\",\"type\":{\"name\":\"c.F\",\"type\":\"fixed\",\"size\":2}}]}},"
     "{\"name\":\"r\",\"type\":[\"null\",\"a.b.E\",\"c.F\",\"a.b.R\"]},"
     "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"a.b.E\"}}}]}"},
    {"{\"type\":\"enum\",\"name\":\"\\u0046oo\",\"symbols\":[\"\\u0041\"]}",
     "{\"name\":\"Foo\",\"type\":\"enum\",\"symbols\":[\"A\"]}"},
    {"{\"type\":\"string\",\"logicalType\":\"uuid\"}", "\"string\""},
    {"{\"type\":\"fixed\",\"name\":\"f\",\"size\":16,\"logicalType\":\"decimal\",\"precision\":4}",
     "{\"name\":\"f\",\"type\":\"fixed\",\"size\":16}"},
};

static void test_crc64_and_canonical(void **state) {
    (void)state;
    char err[256];
    assert_true(vd_crc64_avro("", 0) == VD_CRC64_AVRO_EMPTY);
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        vd_buf b;
        uint64_t fp = 0;
        vd_buf_init(&b, 0);
        vd_err e = vd_schema_canonical(vectors[i].input, strlen(vectors[i].input), &b,
                                       err, sizeof err);
        if (e)
            print_message("vector %zu: %s\n", i, err);
        assert_int_equal(e, VD_ERR_OK);
        assert_int_equal(b.len, strlen(vectors[i].canonical));
        assert_memory_equal(b.data, vectors[i].canonical, b.len);
        assert_int_equal(vd_schema_fingerprint(vectors[i].input,
                                               strlen(vectors[i].input), &fp, err,
                                               sizeof err),
                         VD_ERR_OK);
        assert_true(fp == vd_crc64_avro(b.data, b.len));
        if (vectors[i].has_fp)
            assert_true(fp == (uint64_t)vectors[i].fp);
        vd_buf_free(&b);
    }
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        vd_buf b;
        vd_buf_init(&b, 0);
        assert_int_equal(vd_schema_canonical(extra[i].input, strlen(extra[i].input),
                                             &b, err, sizeof err),
                         VD_ERR_OK);
        assert_int_equal(vd_buf_putc(&b, 0), VD_ERR_OK);
        assert_string_equal(b.data, extra[i].canonical);
        vd_buf_free(&b);
    }
    vd_buf b;
    vd_buf_init(&b, 0);
    assert_int_equal(vd_schema_canonical("{nope", 5, &b, err, sizeof err),
                     VD_ERR_BAD_JSON);
    assert_int_equal(vd_schema_canonical("{\"type\":\"record\"}", 17, &b, err, sizeof err),
                     VD_ERR_BAD_FIELD);
    assert_int_equal(vd_schema_canonical("42", 2, &b, err, sizeof err), VD_ERR_BAD_FIELD);
    assert_int_equal(b.len, 0);
    vd_buf_free(&b);
}

/*
 * The wire contract, pinned: changing an .avsc changes a fingerprint, and
 * then this test fails on purpose. Values cross-checked with fastavro in
 * tests/py/test_schemas_fastavro.py.
 */
static void test_contract_fingerprints(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(vd_schemas_init(err, sizeof err), VD_ERR_OK);
    assert_true(vd_schema_current_fingerprint(VD_MSG_COMMAND) == 0xfec77755c42328e3ULL);
    assert_true(vd_schema_current_fingerprint(VD_MSG_TASK_EVENT) == 0x900d340c6dcf1df6ULL);
    assert_true(vd_schema_current_fingerprint(VD_MSG_HEALTH_REPORT) ==
                0xb3f720c69853b016ULL);
    for (int t = 0; t < 3; t++) {
        const char *j = vd_schema_json((vd_msg_type)t);
        uint64_t fp;
        assert_non_null(j);
        assert_int_equal(vd_schema_fingerprint(j, strlen(j), &fp, err, sizeof err),
                         VD_ERR_OK);
        assert_true(fp == vd_schema_current_fingerprint((vd_msg_type)t));
    }
    assert_null(vd_schema_json(VD_MSG_OTHER));
}

/* ---- round trips ------------------------------------------------------------------ */

static void test_command_roundtrip_import(void **state) {
    (void)state;
    vd_command c, d;
    vd_buf b;
    fixture_import(&c);
    encode_cmd(&c, &b);
    assert_int_equal(decode_cmd(&b, &d), VD_ERR_OK);
    assert_string_equal(d.task_id, c.task_id);
    assert_true(d.issued_at == c.issued_at);
    assert_string_equal(d.ns, "vec");
    assert_string_equal(d.requested_by, c.requested_by);
    assert_int_equal(d.kind, VD_CMD_IMPORT);
    assert_true(d.import.has_inline);
    assert_int_equal(d.import.inline_len, c.import.inline_len);
    assert_memory_equal(d.import.inline_data, c.import.inline_data, c.import.inline_len);
    assert_int_equal(d.import.inline_data[d.import.inline_len], 0);
    assert_null(d.import.source_path);
    assert_true(d.import.validate_only);
    assert_int_equal(d.import.on_conflict, VD_CMD_CONFLICT_OVERWRITE);
    assert_string_equal(d.import.expected_sha256, c.import.expected_sha256);

    /* The JSON view round-trips to the same bytes. */
    char *js = vd_command_to_json(&d);
    vd_command j;
    vd_buf b2;
    char err[256];
    assert_non_null(js);
    assert_int_equal(vd_command_from_json(js, &j, err, sizeof err), VD_ERR_OK);
    encode_cmd(&j, &b2);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    free(js);
    vd_command_free(&j);
    vd_buf_free(&b2);

    vd_command_free(&c);
    vd_command_free(&d);
    assert_null(d.task_id);
    vd_command_free(&d); /* twice is fine: zeroed */
    vd_command_free(NULL);
    vd_buf_free(&b);
}

static void test_command_roundtrip_kinds(void **state) {
    (void)state;
    for (int k = VD_CMD_EXPORT; k <= VD_CMD_CANCEL; k++) {
        vd_command c, d;
        vd_buf b;
        memset(&c, 0, sizeof c);
        c.task_id = "task.1";
        c.ns = "my_ns-2";
        c.issued_at = -1;
        c.kind = (vd_cmd_kind)k;
        char *checks[] = {"orphans", "dims", "\xc3\xa9t\xc3\xa9"};
        switch (c.kind) {
        case VD_CMD_EXPORT:
            c.export.format = VD_CMD_FMT_AVRO;
            c.export.compress = true;
            c.export.include_files = true;
            c.export.verify_first = true;
            c.export.destination = "nightly/vec.avro";
            break;
        case VD_CMD_IMPORT:
            c.import.source_path = "vec-20240101T000000Z-abcdefgh.jsonl.gz";
            c.import.on_conflict = VD_CMD_CONFLICT_SKIP;
            break;
        case VD_CMD_VALIDATE:
            c.validate.fix = true;
            c.validate.has_checks = true;
            c.validate.checks = checks;
            c.validate.nchecks = 3;
            break;
        case VD_CMD_HEALTH:
            c.health.reason = "";
            break;
        case VD_CMD_CANCEL:
            c.cancel.target_task_id = "other-task";
            break;
        }
        encode_cmd(&c, &b);
        assert_int_equal(decode_cmd(&b, &d), VD_ERR_OK);
        assert_int_equal(d.kind, k);
        assert_string_equal(d.task_id, "task.1");
        assert_string_equal(d.ns, "my_ns-2");
        assert_true(d.issued_at == -1);
        assert_null(d.requested_by);
        switch (d.kind) {
        case VD_CMD_EXPORT:
            assert_int_equal(d.export.format, VD_CMD_FMT_AVRO);
            assert_true(d.export.compress && d.export.include_files &&
                        d.export.verify_first);
            assert_string_equal(d.export.destination, "nightly/vec.avro");
            break;
        case VD_CMD_IMPORT:
            assert_string_equal(d.import.source_path, c.import.source_path);
            assert_false(d.import.has_inline);
            assert_null(d.import.inline_data);
            assert_null(d.import.expected_sha256);
            assert_int_equal(d.import.on_conflict, VD_CMD_CONFLICT_SKIP);
            break;
        case VD_CMD_VALIDATE:
            assert_true(d.validate.fix && d.validate.has_checks);
            assert_int_equal(d.validate.nchecks, 3);
            for (int i = 0; i < 3; i++)
                assert_string_equal(d.validate.checks[i], checks[i]);
            break;
        case VD_CMD_HEALTH:
            assert_string_equal(d.health.reason, "");
            break;
        case VD_CMD_CANCEL:
            assert_string_equal(d.cancel.target_task_id, "other-task");
            break;
        }
        vd_command_free(&d);
        vd_buf_free(&b);
    }
    /* Validate with checks = null (all) and with an empty list differ. */
    vd_command c, d;
    vd_buf b;
    memset(&c, 0, sizeof c);
    c.task_id = "t";
    c.ns = "n";
    c.kind = VD_CMD_VALIDATE;
    encode_cmd(&c, &b);
    assert_int_equal(decode_cmd(&b, &d), VD_ERR_OK);
    assert_false(d.validate.has_checks);
    vd_command_free(&d);
    vd_buf_free(&b);
    c.validate.has_checks = true;
    encode_cmd(&c, &b);
    assert_int_equal(decode_cmd(&b, &d), VD_ERR_OK);
    assert_true(d.validate.has_checks);
    assert_int_equal(d.validate.nchecks, 0);
    vd_command_free(&d);
    vd_buf_free(&b);
}

static void fixture_event(vd_task_event *e, vd_result_kind rk) {
    memset(e, 0, sizeof *e);
    e->task_id = vd_strdup("t-42");
    e->worker_id = vd_strdup("worker-\xce\xb1");
    e->kind = VD_KIND_VALIDATE;
    e->state = VD_STATE_SUCCEEDED;
    e->seq = 7;
    e->attempt = 2;
    e->at = 1733312345678;
    e->phase = vd_strdup("verify");
    e->progress.done = 10;
    e->progress.total = 20;
    e->progress.bytes = 1LL << 40;
    e->progress.rate_per_s = 123.456;
    e->progress.eta_ms = -1;
    e->message = vd_strdup("done \xe2\x9c\x93");
    assert_int_equal(vd_issue_add(&e->errors, &e->nerrors, "ORPHAN_CHUNK",
                                  VD_EV_SEV_ERROR, "chunk without document",
                                  "vec:chunk:{d1}:c1"),
                     VD_ERR_OK);
    assert_int_equal(vd_issue_add(&e->errors, &e->nerrors, "BAD_DIM", VD_EV_SEV_CRITICAL,
                                  "dim 3 != 4", NULL),
                     VD_ERR_OK);
    e->result_kind = rk;
    switch (rk) {
    case VD_RESULT_EXPORT:
        e->export_result.artifact_path = vd_strdup("vec-x.avro");
        e->export_result.size = 1234;
        e->export_result.sha256 = vd_strdup("ab");
        e->export_result.documents = 1;
        e->export_result.chunks = 2;
        e->export_result.files = 3;
        e->export_result.duration_ms = 4;
        break;
    case VD_RESULT_IMPORT:
        e->import_result.imported = 5;
        e->import_result.conflicts = 2;
        e->import_result.conflict_ids = calloc(2, sizeof(char *));
        e->import_result.conflict_ids[0] = vd_strdup("d1");
        e->import_result.conflict_ids[1] = vd_strdup("d2");
        e->import_result.nconflict_ids = 2;
        e->import_result.validate_only = true;
        e->import_result.duration_ms = 9;
        break;
    case VD_RESULT_VALIDATE:
        e->validate_result.issues_by_check = calloc(2, sizeof(vd_count));
        e->validate_result.issues_by_check[0].name = vd_strdup("ORPHAN_CHUNK");
        e->validate_result.issues_by_check[0].count = 1;
        e->validate_result.issues_by_check[1].name = vd_strdup("BAD_DIM");
        e->validate_result.issues_by_check[1].count = 1;
        e->validate_result.nissues_by_check = 2;
        e->validate_result.fixed = 1;
        e->validate_result.unfixable = 1;
        e->validate_result.chunks = 99;
        break;
    default:
        break;
    }
}

static void test_event_roundtrip(void **state) {
    (void)state;
    char err[256];
    for (int rk = VD_RESULT_NONE; rk <= VD_RESULT_VALIDATE; rk++) {
        vd_task_event e, d;
        vd_buf b;
        fixture_event(&e, (vd_result_kind)rk);
        vd_buf_init(&b, 0);
        assert_int_equal(vd_event_encode(&e, &b, err, sizeof err), VD_ERR_OK);
        assert_int_equal(vd_event_decode(b.data, b.len, &d, err, sizeof err), VD_ERR_OK);
        assert_string_equal(d.task_id, "t-42");
        assert_string_equal(d.worker_id, e.worker_id);
        assert_int_equal(d.kind, VD_KIND_VALIDATE);
        assert_int_equal(d.state, VD_STATE_SUCCEEDED);
        assert_true(d.seq == 7 && d.attempt == 2 && d.at == e.at);
        assert_string_equal(d.phase, "verify");
        assert_true(d.progress.bytes == 1LL << 40);
        assert_true(d.progress.rate_per_s == 123.456);
        assert_true(d.progress.eta_ms == -1);
        assert_string_equal(d.message, e.message);
        assert_int_equal(d.nerrors, 2);
        assert_string_equal(d.errors[0].code, "ORPHAN_CHUNK");
        assert_int_equal(d.errors[0].severity, VD_EV_SEV_ERROR);
        assert_string_equal(d.errors[0].key, "vec:chunk:{d1}:c1");
        assert_null(d.errors[1].key);
        assert_int_equal(d.errors[1].severity, VD_EV_SEV_CRITICAL);
        assert_int_equal(d.nwarnings, 0);
        assert_int_equal(d.result_kind, rk);
        if (rk == VD_RESULT_EXPORT) {
            assert_string_equal(d.export_result.artifact_path, "vec-x.avro");
            assert_true(d.export_result.size == 1234 && d.export_result.files == 3);
        } else if (rk == VD_RESULT_IMPORT) {
            assert_int_equal(d.import_result.nconflict_ids, 2);
            assert_string_equal(d.import_result.conflict_ids[1], "d2");
            assert_true(d.import_result.validate_only);
            assert_true(d.import_result.imported == 5);
        } else if (rk == VD_RESULT_VALIDATE) {
            assert_int_equal(d.validate_result.nissues_by_check, 2);
            assert_int_equal(d.validate_result.nissues_by_severity, 0);
            int64_t sum = 0;
            for (size_t i = 0; i < 2; i++)
                sum += d.validate_result.issues_by_check[i].count;
            assert_true(sum == 2 && d.validate_result.chunks == 99);
        }
        /* JSON round trip gives the same bytes. */
        char *js = vd_event_to_json(&d);
        vd_task_event j;
        vd_buf b2;
        vd_buf_init(&b2, 0);
        assert_int_equal(vd_event_from_json(js, &j, err, sizeof err), VD_ERR_OK);
        assert_int_equal(vd_event_encode(&j, &b2, err, sizeof err), VD_ERR_OK);
        assert_int_equal(b2.len, b.len);
        free(js);
        vd_event_free(&j);
        vd_buf_free(&b2);
        /* An event is not a command. */
        vd_command c;
        assert_int_equal(vd_command_decode(b.data, b.len, &c, err, sizeof err),
                         VD_ERR_AVRO_FINGERPRINT);
        assert_null(c.task_id);
        vd_command_free(&c);
        vd_event_free(&e);
        vd_event_free(&d);
        vd_buf_free(&b);
    }
}

static void test_health_roundtrip(void **state) {
    (void)state;
    char err[256];
    for (int with_backup = 0; with_backup < 2; with_backup++) {
        vd_health_report h, d;
        vd_buf b;
        memset(&h, 0, sizeof h);
        vd_component comps[2] = {
            {"redis", VD_HR_HEALTHY, 0.25, "7.0.15"},
            {"kafka", VD_HR_UNHEALTHY, -1, "all brokers down"},
        };
        vd_active_op ops[1] = {{"t1", "EXPORT", "RUNNING", 42.5}};
        h.worker_id = "w1";
        h.at = 1;
        h.status = VD_HR_DEGRADED;
        h.components = comps;
        h.ncomponents = 2;
        h.metrics.documents = 10;
        h.metrics.chunks = 100;
        h.metrics.used_memory = 1 << 20;
        h.metrics.documents_per_mb = 10.0;
        h.metrics.chunks_per_document = 10.0;
        h.metrics.dim = 384;
        h.active = ops;
        h.nactive = 1;
        if (with_backup) {
            h.has_last_backup = true;
            h.last_backup.task_id = "t0";
            h.last_backup.at = 5;
            h.last_backup.age_s = 60;
            h.last_backup.artifact_path = "a.avro";
        }
        vd_buf_init(&b, 0);
        assert_int_equal(vd_health_encode(&h, &b, err, sizeof err), VD_ERR_OK);
        assert_int_equal(vd_health_decode(b.data, b.len, &d, err, sizeof err),
                         VD_ERR_OK);
        assert_string_equal(d.worker_id, "w1");
        assert_int_equal(d.status, VD_HR_DEGRADED);
        assert_int_equal(d.ncomponents, 2);
        assert_string_equal(d.components[1].name, "kafka");
        assert_int_equal(d.components[1].status, VD_HR_UNHEALTHY);
        assert_true(d.components[0].latency_ms == 0.25);
        assert_int_equal(d.metrics.dim, 384);
        assert_int_equal(d.nactive, 1);
        assert_true(d.active[0].percent == 42.5);
        assert_int_equal(d.nissues, 0);
        assert_int_equal(d.has_last_backup, with_backup);
        if (with_backup)
            assert_string_equal(d.last_backup.artifact_path, "a.avro");
        else
            assert_null(d.last_backup.task_id);
        vd_health_free(&d);
        vd_buf_free(&b);
    }
}

/* ---- errors ------------------------------------------------------------------------ */

static void expect_cmd_err(const vd_buf *b, vd_err want, const char *want_tid) {
    vd_command c;
    char err[256] = "";
    vd_err e = vd_command_decode(b->data, b->len, &c, err, sizeof err);
    if (e != want)
        print_message("got %s (%s), want %s\n", vd_err_name(e), err, vd_err_name(want));
    assert_int_equal(e, want);
    assert_true(err[0] != 0);
    if (want_tid)
        assert_string_equal(c.task_id, want_tid);
    else
        assert_null(c.task_id);
    vd_command_free(&c);
}

static void test_decode_errors(void **state) {
    (void)state;
    vd_buf b;
    vd_command c;
    char err[256];

    /* Magic. */
    vd_buf_init(&b, 0);
    expect_cmd_err(&b, VD_ERR_AVRO_MAGIC, NULL);
    vd_buf_append(&b, "{\"task_id\":\"x\"}", 15);
    expect_cmd_err(&b, VD_ERR_AVRO_MAGIC, NULL);
    vd_buf_free(&b);
    assert_int_equal(vd_command_decode(NULL, 0, &c, err, sizeof err), VD_ERR_AVRO_MAGIC);
    vd_command_free(&c);

    /* Unknown fingerprint. */
    vd_buf_init(&b, 0);
    put_header(&b, 0x0123456789abcdefULL);
    put_str(&b, "t");
    expect_cmd_err(&b, VD_ERR_AVRO_FINGERPRINT, NULL);
    vd_buf_free(&b);

    /* Union branch out of range: body index 9, and requested_by index -1. */
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "t1", "vec");
    put_varint(&b, 9);
    expect_cmd_err(&b, VD_ERR_AVRO_BRANCH, "t1");
    vd_buf_free(&b);
    vd_buf_init(&b, 0);
    put_header(&b, vd_schema_current_fingerprint(VD_MSG_COMMAND));
    put_str(&b, "t1");
    put_varint(&b, 0);
    put_str(&b, "vec");
    put_varint(&b, -1);
    expect_cmd_err(&b, VD_ERR_AVRO_BRANCH, "t1");
    vd_buf_free(&b);

    /* Enum index out of range (ExportFormat 7). */
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "t2", "vec");
    put_varint(&b, 0);
    put_varint(&b, 7);
    vd_buf_append(&b, "\0\0\0\0", 4);
    expect_cmd_err(&b, VD_ERR_AVRO_DECODE, "t2");
    vd_buf_free(&b);

    /* A boolean byte that is not 0 or 1. */
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "t3", "vec");
    put_varint(&b, 0);
    put_varint(&b, 0);
    vd_buf_append(&b, "\x02\0\0\0", 4);
    expect_cmd_err(&b, VD_ERR_AVRO_DECODE, "t3");
    vd_buf_free(&b);

    /* Trailing garbage after a valid body. */
    vd_command v;
    fixture_import(&v);
    encode_cmd(&v, &b);
    assert_int_equal(vd_buf_putc(&b, 0), VD_ERR_OK);
    expect_cmd_err(&b, VD_ERR_AVRO_DECODE, v.task_id);
    vd_buf_free(&b);

    /* Oversized length prefixes: task_id of 2^40 bytes, inline_data of 2^62. */
    vd_buf_init(&b, 0);
    put_header(&b, vd_schema_current_fingerprint(VD_MSG_COMMAND));
    put_varint(&b, 1LL << 40);
    vd_buf_append(&b, "abc", 3);
    expect_cmd_err(&b, VD_ERR_TOO_LARGE, NULL);
    vd_buf_free(&b);
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "t4", "vec");
    put_varint(&b, 1);          /* ImportCommand */
    put_varint(&b, 0);          /* source_path null */
    put_varint(&b, 1);          /* inline_data bytes */
    put_varint(&b, 1LL << 62);  /* length */
    expect_cmd_err(&b, VD_ERR_TOO_LARGE, "t4");
    vd_buf_free(&b);
    /* Under the limit but past the end: truncated. */
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "t5", "vec");
    put_varint(&b, 1);
    put_varint(&b, 0);
    put_varint(&b, 1);
    put_varint(&b, 1000);
    vd_buf_append(&b, "xyz", 3);
    expect_cmd_err(&b, VD_ERR_AVRO_TRUNCATED, "t5");
    vd_buf_free(&b);
    /* Negative length. */
    vd_buf_init(&b, 0);
    put_header(&b, vd_schema_current_fingerprint(VD_MSG_COMMAND));
    put_varint(&b, -5);
    expect_cmd_err(&b, VD_ERR_AVRO_DECODE, NULL);
    vd_buf_free(&b);
    /* A varint of 11 bytes. */
    vd_buf_init(&b, 0);
    put_header(&b, vd_schema_current_fingerprint(VD_MSG_COMMAND));
    put_str(&b, "t6");
    vd_buf_append(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
    expect_cmd_err(&b, VD_ERR_AVRO_DECODE, "t6");
    vd_buf_free(&b);
    /* A real string over the 1 MiB limit. */
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "t7", "vec");
    put_varint(&b, 4);  /* CancelCommand */
    put_varint(&b, (1 << 20) + 1);
    assert_int_equal(vd_buf_reserve(&b, (1 << 20) + 1), VD_ERR_OK);
    memset(b.data + b.len, 'a', (1 << 20) + 1);
    b.len += (1 << 20) + 1;
    expect_cmd_err(&b, VD_ERR_TOO_LARGE, "t7");
    vd_buf_free(&b);
    /* Too many array elements (checks), even when each is tiny. */
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "t8", "vec");
    put_varint(&b, 2);  /* ValidateCommand */
    put_varint(&b, 0);  /* fix */
    put_varint(&b, 1);  /* checks: array */
    put_varint(&b, 200000);
    expect_cmd_err(&b, VD_ERR_TOO_LARGE, "t8");
    vd_buf_free(&b);
    /* Invalid UTF-8 and an embedded NUL in strings. */
    vd_buf_init(&b, 0);
    put_header(&b, vd_schema_current_fingerprint(VD_MSG_COMMAND));
    put_str(&b, "t9");
    put_varint(&b, 0);
    put_str(&b, "vec");
    put_varint(&b, 1);
    put_str(&b, "\xc3\x28");
    expect_cmd_err(&b, VD_ERR_AVRO_DECODE, "t9");
    vd_buf_free(&b);
    vd_buf_init(&b, 0);
    put_header(&b, vd_schema_current_fingerprint(VD_MSG_COMMAND));
    put_varint(&b, 3);
    vd_buf_append(&b, "a\0b", 3);
    expect_cmd_err(&b, VD_ERR_AVRO_DECODE, NULL);
    vd_buf_free(&b);

    /* Bad ids: the task_id is still handed back for REJECTED. */
    free(v.task_id);
    v.task_id = vd_strdup("not valid!");
    free(v.ns);
    v.ns = vd_strdup("vec");
    vd_buf_init(&b, 0);
    /* Encode refuses it ... */
    assert_int_equal(vd_command_encode(&v, &b, err, sizeof err), VD_ERR_BAD_ID);
    assert_int_equal(b.len, 0);
    vd_buf_free(&b);
    /* ... so build the bytes by hand. */
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "not valid!", "vec");
    put_varint(&b, 3);
    put_varint(&b, 0);
    vd_command r;
    assert_int_equal(vd_command_decode(b.data, b.len, &r, err, sizeof err), VD_ERR_BAD_ID);
    assert_string_equal(r.task_id, "not valid!");
    assert_int_equal(r.kind, VD_CMD_HEALTH);
    vd_command_free(&r);
    vd_buf_free(&b);
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "ok", "bad:ns");
    put_varint(&b, 3);
    put_varint(&b, 0);
    expect_cmd_err(&b, VD_ERR_BAD_ID, "ok");
    vd_buf_free(&b);
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "ok", "vec");
    put_varint(&b, 4);
    put_str(&b, "");
    expect_cmd_err(&b, VD_ERR_BAD_ID, "ok");
    vd_buf_free(&b);
    /* Import with both and with neither source. */
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "ok", "vec");
    put_varint(&b, 1);
    put_varint(&b, 1);
    put_str(&b, "a.jsonl");
    put_varint(&b, 1);
    put_str(&b, "{}");
    put_varint(&b, 0);
    put_varint(&b, 0);
    put_varint(&b, 0);
    expect_cmd_err(&b, VD_ERR_BAD_FIELD, "ok");
    vd_buf_free(&b);
    vd_buf_init(&b, 0);
    put_command_prefix(&b, "ok", "vec");
    put_varint(&b, 1);
    put_varint(&b, 0);
    put_varint(&b, 0);
    put_varint(&b, 0);
    put_varint(&b, 0);
    put_varint(&b, 0);
    expect_cmd_err(&b, VD_ERR_BAD_FIELD, "ok");
    vd_buf_free(&b);
    vd_command_free(&v);

    /* The inline_data limit is configurable. */
    fixture_import(&v);
    encode_cmd(&v, &b);
    vd_codec_limits lim = vd_codec_limits_default();
    lim.max_bytes = 4;
    assert_int_equal(vd_command_decode_lim(b.data, b.len, &lim, &c, err, sizeof err),
                     VD_ERR_TOO_LARGE);
    assert_string_equal(c.task_id, v.task_id);
    vd_command_free(&c);
    vd_command_free(&v);
    vd_buf_free(&b);

    /* Encoding into a capped buffer fails cleanly. */
    fixture_import(&v);
    vd_buf_init(&b, 16);
    assert_int_equal(vd_command_encode(&v, &b, err, sizeof err), VD_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    vd_buf_free(&b);
    v.import.on_conflict = 9;
    vd_buf_init(&b, 0);
    assert_int_equal(vd_command_encode(&v, &b, err, sizeof err), VD_ERR_BAD_FIELD);
    vd_buf_free(&b);
    vd_command_free(&v);
}

static void test_truncation_every_length(void **state) {
    (void)state;
    char err[256];
    vd_command v;
    vd_buf b;
    fixture_import(&v);
    encode_cmd(&v, &b);
    /* 2 header + 8 fingerprint + 1 length + the task_id itself. */
    size_t tid_end = VD_SO_HEADER_LEN + 1 + strlen(v.task_id);
    for (size_t n = 0; n < b.len; n++) {
        vd_command c;
        vd_err e = vd_command_decode(b.data, n, &c, err, sizeof err);
        assert_int_equal(e, n < 2 ? VD_ERR_AVRO_MAGIC : VD_ERR_AVRO_TRUNCATED);
        if (n >= tid_end)
            assert_string_equal(c.task_id, v.task_id);
        else
            assert_null(c.task_id);
        vd_command_free(&c);
    }
    vd_buf_free(&b);
    vd_command_free(&v);

    for (int rk = VD_RESULT_NONE; rk <= VD_RESULT_VALIDATE; rk++) {
        vd_task_event e;
        fixture_event(&e, (vd_result_kind)rk);
        vd_buf_init(&b, 0);
        assert_int_equal(vd_event_encode(&e, &b, err, sizeof err), VD_ERR_OK);
        for (size_t n = 0; n < b.len; n++) {
            vd_task_event d;
            vd_err r = vd_event_decode(b.data, n, &d, err, sizeof err);
            assert_int_equal(r, n < 2 ? VD_ERR_AVRO_MAGIC : VD_ERR_AVRO_TRUNCATED);
            vd_event_free(&d);
        }
        vd_buf_free(&b);
        vd_event_free(&e);
    }
}

/* ---- evolution -------------------------------------------------------------------------- */

/* An older Command: no requested_by, no verify_first, no CancelCommand,
 * ExportFormat without AVRO, branches in another order. */
static const char *command_v0 =
    "{\"type\":\"record\",\"name\":\"Command\",\"namespace\":\"dev.vecdump.v1\","
    "\"fields\":[{\"name\":\"task_id\",\"type\":\"string\"},"
    "{\"name\":\"issued_at\",\"type\":\"int\"},"
    "{\"name\":\"namespace\",\"type\":\"string\"},"
    "{\"name\":\"body\",\"type\":["
    "{\"type\":\"record\",\"name\":\"ValidateCommand\",\"fields\":[{\"name\":\"fix\",\"type\":\"boolean\"}]},"
    "{\"type\":\"record\",\"name\":\"ExportCommand\",\"fields\":["
    "{\"name\":\"format\",\"type\":{\"type\":\"enum\",\"name\":\"ExportFormat\",\"symbols\":[\"CSV\",\"JSONL\"]}},"
    "{\"name\":\"compress\",\"type\":\"boolean\"},"
    "{\"name\":\"include_files\",\"type\":\"boolean\"},"
    "{\"name\":\"destination\",\"type\":[\"null\",\"string\"]}]}]}]}";

/* A newer Command: an extra field and an extra command. */
static const char *command_v2 =
    "{\"type\":\"record\",\"name\":\"Command\",\"namespace\":\"dev.vecdump.v1\","
    "\"fields\":[{\"name\":\"task_id\",\"type\":\"string\"},"
    "{\"name\":\"issued_at\",\"type\":\"long\"},"
    "{\"name\":\"namespace\",\"type\":\"string\"},"
    "{\"name\":\"priority\",\"type\":\"int\",\"default\":0},"
    "{\"name\":\"body\",\"type\":["
    "{\"type\":\"record\",\"name\":\"HealthCommand\",\"fields\":[]},"
    "{\"type\":\"record\",\"name\":\"SnapshotCommand\",\"fields\":[{\"name\":\"x\",\"type\":\"long\"}]}]}]}";

static void test_evolution(void **state) {
    (void)state;
    char err[256];
    uint64_t fp0, fp2, again;
    vd_command c;
    vd_buf b;

    assert_int_equal(vd_schema_register(command_v0, strlen(command_v0), &fp0, err,
                                        sizeof err),
                     VD_ERR_OK);
    assert_int_equal(vd_schema_register(command_v0, strlen(command_v0), &again, err,
                                        sizeof err),
                     VD_ERR_OK);
    assert_true(fp0 == again);
    assert_true(fp0 != vd_schema_current_fingerprint(VD_MSG_COMMAND));
    assert_int_equal(vd_schema_register(command_v2, strlen(command_v2), &fp2, err,
                                        sizeof err),
                     VD_ERR_OK);
    assert_int_equal(vd_schema_register("{\"type\":", 8, NULL, err, sizeof err),
                     VD_ERR_BAD_JSON);
    const char *en = "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}";
    assert_int_equal(vd_schema_register(en, strlen(en), NULL, err, sizeof err),
                     VD_ERR_BAD_FIELD);
    const char *bad = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"x\",\"type\":\"Nope\"}]}";
    assert_int_equal(vd_schema_register(bad, strlen(bad), NULL, err, sizeof err),
                     VD_ERR_BAD_FIELD);

    vd_msg_type t;
    uint64_t fp;
    vd_buf_init(&b, 0);
    put_header(&b, fp0);
    assert_int_equal(vd_message_peek(b.data, b.len, &t, &fp, err, sizeof err), VD_ERR_OK);
    assert_int_equal(t, VD_MSG_COMMAND);
    assert_true(fp == fp0);

    /* v0 export: CSV is symbol 0 there, issued_at an int. */
    put_str(&b, "old-1");
    put_varint(&b, 12345);
    put_str(&b, "vec");
    put_varint(&b, 1);       /* ExportCommand is branch 1 in v0 */
    put_varint(&b, 0);       /* CSV */
    vd_buf_append(&b, "\x01\x00", 2);
    put_varint(&b, 1);
    put_str(&b, "out.csv.zip");
    assert_int_equal(vd_command_decode(b.data, b.len, &c, err, sizeof err), VD_ERR_OK);
    assert_string_equal(c.task_id, "old-1");
    assert_true(c.issued_at == 12345);
    assert_null(c.requested_by);
    assert_int_equal(c.kind, VD_CMD_EXPORT);
    assert_int_equal(c.export.format, VD_CMD_FMT_CSV);
    assert_true(c.export.compress);
    assert_false(c.export.include_files);
    assert_false(c.export.verify_first); /* default */
    assert_string_equal(c.export.destination, "out.csv.zip");
    vd_command_free(&c);
    vd_buf_free(&b);

    /* v0 validate: checks defaults to null (all). */
    vd_buf_init(&b, 0);
    put_header(&b, fp0);
    put_str(&b, "old-2");
    put_varint(&b, 1);
    put_str(&b, "vec");
    put_varint(&b, 0);              /* ValidateCommand is branch 0 in v0 */
    vd_buf_append(&b, "\x01", 1);   /* fix = true */
    assert_int_equal(vd_command_decode(b.data, b.len, &c, err, sizeof err), VD_ERR_OK);
    assert_int_equal(c.kind, VD_CMD_VALIDATE);
    assert_true(c.validate.fix);
    assert_false(c.validate.has_checks);
    vd_command_free(&c);
    vd_buf_free(&b);

    /* v2: the extra field is skipped; a command this code does not know. */
    vd_buf_init(&b, 0);
    put_header(&b, fp2);
    put_str(&b, "new-1");
    put_varint(&b, 1);
    put_str(&b, "vec");
    put_varint(&b, 5);
    put_varint(&b, 0);       /* HealthCommand, no fields */
    assert_int_equal(vd_command_decode(b.data, b.len, &c, err, sizeof err), VD_ERR_OK);
    assert_int_equal(c.kind, VD_CMD_HEALTH);
    assert_null(c.health.reason);
    vd_command_free(&c);
    vd_buf_free(&b);
    vd_buf_init(&b, 0);
    put_header(&b, fp2);
    put_str(&b, "new-2");
    put_varint(&b, 1);
    put_str(&b, "vec");
    put_varint(&b, 5);
    put_varint(&b, 1);
    put_varint(&b, 77);
    expect_cmd_err(&b, VD_ERR_UNKNOWN_COMMAND, "new-2");
    vd_buf_free(&b);
}

/* ---- fuzz -------------------------------------------------------------------------------- */

static void fuzz_one(const unsigned char *p, size_t n) {
    char err[256];
    vd_command c;
    vd_task_event e;
    vd_health_report h;
    vd_err r = vd_command_decode(p, n, &c, err, sizeof err);
    assert_true(r >= 0 && r < VD_ERR__COUNT);
    if (r == VD_ERR_OK) {
        char *j = vd_command_to_json(&c);
        assert_non_null(j);
        free(j);
    }
    vd_command_free(&c);
    r = vd_event_decode(p, n, &e, err, sizeof err);
    if (r == VD_ERR_OK)
        free(vd_event_to_json(&e));
    vd_event_free(&e);
    r = vd_health_decode(p, n, &h, err, sizeof err);
    if (r == VD_ERR_OK)
        free(vd_health_to_json(&h));
    vd_health_free(&h);
}

static void test_fuzz_mutations(void **state) {
    (void)state;
    char err[256];
    vd_buf seeds[6];
    vd_command c;
    vd_task_event e;
    vd_health_report h;
    size_t ok = 0, total = 0;

    fixture_import(&c);
    encode_cmd(&c, &seeds[0]);
    vd_command_free(&c);
    memset(&c, 0, sizeof c);
    c.task_id = "t";
    c.ns = "n";
    c.kind = VD_CMD_VALIDATE;
    c.validate.has_checks = true;
    char *checks[] = {"a", "b"};
    c.validate.checks = checks;
    c.validate.nchecks = 2;
    encode_cmd(&c, &seeds[1]);
    for (int i = 0; i < 3; i++) {
        fixture_event(&e, (vd_result_kind)(i + 1));
        vd_buf_init(&seeds[2 + i], 0);
        assert_int_equal(vd_event_encode(&e, &seeds[2 + i], err, sizeof err), VD_ERR_OK);
        vd_event_free(&e);
    }
    memset(&h, 0, sizeof h);
    vd_component comp = {"redis", VD_HR_HEALTHY, 1.5, "ok"};
    h.worker_id = "w";
    h.components = &comp;
    h.ncomponents = 1;
    h.has_last_backup = true;
    h.last_backup.task_id = "x";
    h.last_backup.artifact_path = "y";
    vd_buf_init(&seeds[5], 0);
    assert_int_equal(vd_health_encode(&h, &seeds[5], err, sizeof err), VD_ERR_OK);

    unsigned char *m = malloc(1 << 16);
    assert_non_null(m);
    for (int iter = 0; iter < 30000; iter++) {
        const vd_buf *s = &seeds[rnd() % 6];
        size_t n = s->len;
        memcpy(m, s->data, n);
        int nmut = 1 + (int)(rnd() % 4);
        for (int k = 0; k < nmut; k++) {
            /* Mostly leave the header alone so the body walk is exercised. */
            size_t lo = rnd() % 8 ? VD_SO_HEADER_LEN : 0;
            if (n <= lo)
                break;
            size_t at = lo + rnd() % (n - lo);
            switch (rnd() % 6) {
            case 0: m[at] ^= (unsigned char)(1u << (rnd() % 8)); break;
            case 1: m[at] = (unsigned char)rnd(); break;
            case 2: n = at; break;                           /* truncate */
            case 3: m[at] = 0xff; break;                     /* big varint byte */
            case 4:                                          /* insert a huge length */
                if (n + 10 < (1 << 16)) {
                    memmove(m + at + 10, m + at, n - at);
                    memcpy(m + at, "\xfe\xff\xff\xff\xff\xff\xff\xff\x7f\x00", 10);
                    n += 10;
                }
                break;
            case 5:                                          /* duplicate a slice */
                if (n * 2 < (1 << 16)) {
                    size_t len = rnd() % (n - at + 1);
                    memmove(m + at + len, m + at, n - at);
                    n += len;
                }
                break;
            }
        }
        vd_command d;
        if (vd_command_decode(m, n, &d, err, sizeof err) == VD_ERR_OK)
            ok++;
        vd_command_free(&d);
        fuzz_one(m, n);
        total++;
    }
    /* Pure random inputs, with and without a valid header. */
    for (int iter = 0; iter < 5000; iter++) {
        size_t n = rnd() % 200;
        for (size_t i = 0; i < n; i++)
            m[i] = (unsigned char)rnd();
        if (n >= VD_SO_HEADER_LEN && iter % 2)
            memcpy(m, seeds[rnd() % 6].data, VD_SO_HEADER_LEN);
        fuzz_one(m, n);
        total++;
    }
    print_message("fuzz: %zu inputs, %zu mutated commands still decoded\n", total, ok);
    free(m);
    for (int i = 0; i < 6; i++)
        vd_buf_free(&seeds[i]);
}

/* ---- names ----------------------------------------------------------------------------- */

static void test_names(void **state) {
    (void)state;
    vd_task_state s;
    int f;
    vd_cmd_kind k;
    assert_string_equal(vd_state_name(VD_STATE_REJECTED), "REJECTED");
    assert_string_equal(vd_state_name((vd_task_state)42), "?");
    assert_true(vd_state_parse("cancelled", &s) && s == VD_STATE_CANCELLED);
    assert_false(vd_state_parse("nope", &s));
    assert_false(vd_state_parse(NULL, &s));
    assert_true(vd_cmd_format_parse("csv", &f) && f == VD_CMD_FMT_CSV);
    assert_string_equal(vd_cmd_format_name(VD_CMD_FMT_JSONL), "JSONL");
    assert_true(vd_cmd_kind_parse("CANCEL", &k) && k == VD_CMD_CANCEL);
    assert_string_equal(vd_cmd_kind_name(VD_CMD_EXPORT), "export");
    assert_string_equal(vd_ev_severity_name(VD_EV_SEV_CRITICAL), "CRITICAL");
    assert_string_equal(vd_hr_status_name(VD_HR_UNHEALTHY), "UNHEALTHY");
    assert_string_equal(vd_cmd_conflict_name(VD_CMD_CONFLICT_SKIP), "SKIP");
    assert_string_equal(vd_task_kind_name(VD_KIND_UNKNOWN), "UNKNOWN");
    assert_int_equal(vd_task_kind_of(VD_CMD_VALIDATE), VD_KIND_VALIDATE);
    assert_true(vd_state_is_final(VD_STATE_FAILED));
    assert_false(vd_state_is_final(VD_STATE_RUNNING));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc64_and_canonical),
        cmocka_unit_test(test_contract_fingerprints),
        cmocka_unit_test(test_command_roundtrip_import),
        cmocka_unit_test(test_command_roundtrip_kinds),
        cmocka_unit_test(test_event_roundtrip),
        cmocka_unit_test(test_health_roundtrip),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_truncation_every_length),
        cmocka_unit_test(test_evolution),
        cmocka_unit_test(test_fuzz_mutations),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
