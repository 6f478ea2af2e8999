/* test_path.c - vd_path_resolve: artifact paths stay inside the backup volume. */
#include "vd_test.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vd_tasks.h"

static char *dir;          /* the backup volume */
static char real_dir[PATH_MAX];
static char outside[PATH_MAX];

static int setup(void **state) {
    (void)state;
    dir = vd_test_tmpdir();
    if (!dir || !realpath(dir, real_dir))
        return -1;
    char *o = vd_test_tmpdir();
    if (!o)
        return -1;
    snprintf(outside, sizeof outside, "%s", o);
    free(o);
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/sub", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/deeper", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/secret", outside);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs("secret\n", f);
        fclose(f);
    }
    return 0;
}

static void rm_rf(const char *d) {
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        print_message("cleanup of %s failed\n", d);
}

static int teardown(void **state) {
    (void)state;
    rm_rf(dir);
    rm_rf(outside);
    free(dir);
    return 0;
}

static vd_err resolve(const char *rel, char *out, size_t n) {
    char err[256] = "";
    vd_err e = vd_path_resolve(dir, rel, out, n, err, sizeof err);
    if (e)
        assert_true(err[0] != '\0'); /* every refusal explains itself */
    return e;
}

static void test_plain_names(void **state) {
    (void)state;
    char out[PATH_MAX], want[PATH_MAX * 2];
    assert_int_equal(resolve("vec-20240101T000000Z-abcd1234.jsonl", out, sizeof out),
                     VD_ERR_OK);
    snprintf(want, sizeof want, "%s/vec-20240101T000000Z-abcd1234.jsonl", real_dir);
    assert_string_equal(out, want);
    assert_int_equal(resolve("sub/deeper/x.avro", out, sizeof out), VD_ERR_OK);
    snprintf(want, sizeof want, "%s/sub/deeper/x.avro", real_dir);
    assert_string_equal(out, want);
    /* Dots inside a name are fine. */
    assert_int_equal(resolve("..hidden", out, sizeof out), VD_ERR_OK);
    assert_int_equal(resolve("a..b", out, sizeof out), VD_ERR_OK);
}

static void test_refused(void **state) {
    (void)state;
    char out[PATH_MAX];
    static const char *bad[] = {
        "",          "/etc/passwd", "..",          "../x",      "sub/../../x",
        "sub/../x",  "./x",         "sub/./x",     "a//b",      "sub/",
        "/",         "x/..",        "sub/deeper/..", "a\nb",    "tab\there",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out[0] = 'z';
        vd_err e = resolve(bad[i], out, sizeof out);
        if (e != VD_ERR_PATH)
            print_message("accepted or wrong error for '%s': %s\n", bad[i], vd_err_name(e));
        assert_int_equal(e, VD_ERR_PATH);
        assert_string_equal(out, "");
    }
    char err[128];
    assert_int_equal(vd_path_resolve(dir, NULL, out, sizeof out, err, sizeof err), VD_ERR_PATH);
}

static void test_missing_parent(void **state) {
    (void)state;
    char out[PATH_MAX];
    assert_int_equal(resolve("nosuchdir/x.jsonl", out, sizeof out), VD_ERR_NOT_FOUND);
}

static void test_symlink_escape(void **state) {
    (void)state;
    char link[PATH_MAX * 2], target[PATH_MAX * 2], out[PATH_MAX];
    /* A directory symlink leading outside the volume. */
    snprintf(link, sizeof link, "%s/escape", dir);
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(resolve("escape/secret", out, sizeof out), VD_ERR_PATH);
    assert_int_equal(resolve("escape/new.jsonl", out, sizeof out), VD_ERR_PATH);
    /* A file symlink leading outside. */
    snprintf(link, sizeof link, "%s/leak.jsonl", dir);
    snprintf(target, sizeof target, "%s/secret", outside);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(resolve("leak.jsonl", out, sizeof out), VD_ERR_PATH);
    /* A relative symlink climbing out. */
    snprintf(link, sizeof link, "%s/sub/up", dir);
    assert_int_equal(symlink("../..", link), 0);
    assert_int_equal(resolve("sub/up/x", out, sizeof out), VD_ERR_PATH);
    /* A dangling symlink is refused too (its target is unknown). */
    snprintf(link, sizeof link, "%s/dangling.jsonl", dir);
    assert_int_equal(symlink("/nonexistent/zzz", link), 0);
    assert_int_equal(resolve("dangling.jsonl", out, sizeof out), VD_ERR_PATH);
    /* Symlinks that stay inside are fine. */
    snprintf(link, sizeof link, "%s/inside", dir);
    assert_int_equal(symlink("sub/deeper", link), 0);
    assert_int_equal(resolve("inside/y.csv.zip", out, sizeof out), VD_ERR_OK);
    char want[PATH_MAX * 2];
    snprintf(want, sizeof want, "%s/sub/deeper/y.csv.zip", real_dir);
    assert_string_equal(out, want);
}

static void test_volume_through_symlink(void **state) {
    (void)state;
    /* The backup dir itself may be reached through a symlink. */
    char link[PATH_MAX * 2], out[PATH_MAX], err[256];
    snprintf(link, sizeof link, "%s/vol", outside);
    assert_int_equal(symlink(real_dir, link), 0);
    assert_int_equal(vd_path_resolve(link, "sub/a.avro", out, sizeof out, err, sizeof err),
                     VD_ERR_OK);
    char want[PATH_MAX * 2];
    snprintf(want, sizeof want, "%s/sub/a.avro", real_dir);
    assert_string_equal(out, want);
    unlink(link);
}

static void test_small_buffer_and_bad_dir(void **state) {
    (void)state;
    char out[8], err[256];
    assert_int_equal(vd_path_resolve(dir, "a-long-name.jsonl", out, sizeof out, err, sizeof err),
                     VD_ERR_PATH);
    assert_string_equal(out, "");
    char out2[PATH_MAX];
    assert_int_not_equal(vd_path_resolve("/nonexistent/backup", "x", out2, sizeof out2, err,
                                         sizeof err),
                         VD_ERR_OK);
    assert_int_equal(vd_path_resolve(NULL, "x", out2, sizeof out2, err, sizeof err),
                     VD_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_names),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_missing_parent),
        cmocka_unit_test(test_symlink_escape),
        cmocka_unit_test(test_volume_through_symlink),
        cmocka_unit_test(test_small_buffer_and_bad_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
