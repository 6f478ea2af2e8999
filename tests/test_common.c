/* test_common.c - the error table, ids, buffers, SHA-256, float32 LE. */
#include "vd_test.h"
#include "vd_common.h"

#include <math.h>
#include <string.h>

static void test_err_table(void **state) {
    (void)state;
    assert_int_equal(VD_ERR_OK, 0);
    assert_string_equal(vd_err_name(VD_ERR_BAD_ID), "BAD_ID");
    assert_true(vd_err_is_retriable(VD_ERR_REDIS_CONN));
    assert_false(vd_err_is_retriable(VD_ERR_BAD_DIM));
    assert_string_equal(vd_err2str((vd_err)9999), "unknown error");
}

static void test_ids(void **state) {
    (void)state;
    char big[130];
    memset(big, 'a', sizeof big);
    assert_true(vd_id_valid("doc-1.A_b", 9));
    assert_true(vd_id_valid(big, 128));
    assert_false(vd_id_valid(big, 129));
    assert_false(vd_id_valid("", 0));
    assert_false(vd_id_valid("a b", 3));
    assert_false(vd_id_valid("a{b}", 4));
    assert_false(vd_id_valid("a:b", 3));
    assert_false(vd_id_valid("\xc3\xa9", 2));
}

static void test_buf_cap(void **state) {
    (void)state;
    vd_buf b;
    vd_buf_init(&b, 8);
    assert_int_equal(vd_buf_append(&b, "12345678", 8), VD_ERR_OK);
    assert_int_equal(vd_buf_putc(&b, 'x'), VD_ERR_TOO_LARGE);
    assert_int_equal(b.len, 8);
    vd_buf_reset(&b);
    assert_int_equal(vd_buf_printf(&b, "%d-%s", 42, "ab"), VD_ERR_OK);
    assert_string_equal(b.data, "42-ab");
    vd_buf_free(&b);
}

static void test_sha256(void **state) {
    (void)state;
    char hex[65];
    vd_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    vd_sha256 *h = vd_sha256_new();
    vd_sha256_update(h, "a", 1);
    vd_sha256_update(h, "bc", 2);
    vd_sha256_final_hex(h, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    vd_sha256_destroy(h);
}

static void test_f32_le(void **state) {
    (void)state;
    const unsigned char le[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0xc0, 0x7f};
    float f[2];
    unsigned char back[8];
    vd_f32_from_le(f, le, 2);
    assert_true(f[0] == 1.0f);
    assert_true(isnan(f[1]));
    vd_f32_to_le(back, f, 2);
    assert_memory_equal(le, back, 8);
    assert_int_equal(vd_embedding_check(f, 1), VD_ERR_OK);
    assert_int_equal(vd_embedding_check(f, 2), VD_ERR_BAD_FLOAT);
}

static void test_utf8_base64(void **state) {
    (void)state;
    assert_true(vd_utf8_valid("caf\xc3\xa9 \xe6\x9d\xb1", 9));
    assert_false(vd_utf8_valid("\xc3", 1));          /* truncated */
    assert_false(vd_utf8_valid("\xc0\xaf", 2));      /* overlong */
    assert_false(vd_utf8_valid("\xed\xa0\x80", 3));  /* surrogate */
    assert_false(vd_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    const char *cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char enc[16];
        unsigned char dec[16];
        size_t n = strlen(cases[i]);
        char *end = vd_base64_encode(enc, cases[i], n);
        assert_int_equal((size_t)(end - enc), VD_BASE64_LEN(n));
        assert_memory_equal(enc, want[i], VD_BASE64_LEN(n));
        assert_int_equal(vd_base64_decode(dec, want[i], strlen(want[i])), (long)n);
        assert_memory_equal(dec, cases[i], n);
    }
    unsigned char dec[8];
    assert_int_equal(vd_base64_decode(dec, "Zm9", 3), -1);   /* not padded */
    assert_int_equal(vd_base64_decode(dec, "Zm=v", 4), -1);  /* pad inside */
    assert_int_equal(vd_base64_decode(dec, "Zh==", 4), -1);  /* non-zero pad bits */
    assert_int_equal(vd_base64_decode(dec, "Zm9v\n", 5), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_table), cmocka_unit_test(test_ids),
        cmocka_unit_test(test_buf_cap),   cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_f32_le),    cmocka_unit_test(test_utf8_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
