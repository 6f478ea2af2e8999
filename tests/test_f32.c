/*
 * test_f32.c - the float32 text codec: shortest round-trip formatting and
 * correctly rounded parsing, checked against glibc (snprintf %.Ng / strtof),
 * plus a speed comparison (printed, not asserted).
 */
#include "vd_test.h"
#include "vd_formats.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rnd32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Thread CPU time: the machine is shared, wall time is noisy. */
static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Formats f, parses it back with vd_f32_parse and strtof; both must give f. */
static void check_roundtrip(float f, bool with_strtof) {
    char buf[VD_F32_MAXLEN + 1];
    size_t n = vd_f32_format(f, buf);
    assert_true(n > 0 && n <= VD_F32_MAXLEN);
    buf[n] = 0;
    float g = 0;
    size_t used = vd_f32_parse(buf, n, &g);
    if (used != n || to_bits(g) != to_bits(f)) {
        print_message("roundtrip failed: bits %08x -> \"%s\" -> %08x (used %zu)\n", to_bits(f),
                      buf, to_bits(g), used);
        fail();
    }
    if (with_strtof) {
        float h = strtof(buf, NULL);
        if (to_bits(h) != to_bits(f)) {
            print_message("strtof disagrees: bits %08x -> \"%s\" -> %08x\n", to_bits(f), buf,
                          to_bits(h));
            fail();
        }
    }
}

static const char *fmt(float f) {
    static char buf[VD_F32_MAXLEN + 1];
    size_t n = vd_f32_format(f, buf);
    buf[n] = 0;
    return buf;
}

static void test_known_values(void **state) {
    (void)state;
    assert_string_equal(fmt(0.0f), "0");
    assert_string_equal(fmt(-0.0f), "-0");
    assert_string_equal(fmt(0.1f), "0.1");
    assert_string_equal(fmt(-0.1f), "-0.1");
    assert_string_equal(fmt(1.0f), "1");
    assert_string_equal(fmt(100.0f), "100");
    assert_string_equal(fmt(1.5f), "1.5");
    assert_string_equal(fmt(123.456f), "123.456");
    assert_string_equal(fmt(1e-45f), "1e-45");
    assert_string_equal(fmt(FLT_MAX), "3.4028235e+38");
    assert_string_equal(fmt(FLT_MIN), "1.1754944e-38");
    assert_string_equal(fmt(1e-7f), "1e-7");
    assert_string_equal(fmt(1e-6f), "0.000001");
    assert_string_equal(fmt(1.25e-6f), "0.00000125");
    assert_string_equal(fmt(1e20f), "100000000000000000000");
    assert_string_equal(fmt(1e21f), "1e+21");
    assert_string_equal(fmt(16777216.0f), "16777216");
    assert_string_equal(fmt(0.3f), "0.3");
    assert_string_equal(fmt(NAN), "NaN");
    assert_string_equal(fmt(INFINITY), "Infinity");
    assert_string_equal(fmt(-INFINITY), "-Infinity");

    float f;
    assert_int_equal(vd_f32_parse("0.1,", 4, &f), 3);
    assert_true(f == 0.1f);
    assert_int_equal(vd_f32_parse("-0", 2, &f), 2);
    assert_true(f == 0.0f && signbit(f));
    assert_int_equal(vd_f32_parse("1e-46", 5, &f), 5);
    assert_true(f == 0.0f);
    assert_int_equal(vd_f32_parse("1e39", 4, &f), 4);
    assert_true(isinf(f));
    assert_int_equal(vd_f32_parse("3.4028235e+38", 13, &f), 13);
    assert_true(f == FLT_MAX);
    assert_int_equal(vd_f32_parse("1E2]", 4, &f), 3);
    assert_true(f == 100.0f);
    assert_int_equal(vd_f32_parse("2e", 2, &f), 1); /* the 'e' is not part of it */
    assert_int_equal(vd_f32_parse("NaN", 3, &f), 3);
    assert_true(isnan(f));
    assert_int_equal(vd_f32_parse("-Infinity", 9, &f), 9);
    assert_true(isinf(f) && f < 0);
    assert_int_equal(vd_f32_parse("x", 1, &f), 0);
    assert_int_equal(vd_f32_parse("-", 1, &f), 0);
    assert_int_equal(vd_f32_parse("", 0, &f), 0);
    assert_int_equal(vd_f32_parse(".5", 2, &f), 0);
    assert_int_equal(vd_f32_parse("1.", 2, &f), 0);
    /* Many digits, far beyond 19 significant ones. */
    const char *longnum = "0.100000001490116119384765625000000000000000000000001";
    assert_int_equal(vd_f32_parse(longnum, strlen(longnum), &f), strlen(longnum));
    assert_true(f == 0.1f);
}

static void test_special_classes(void **state) {
    (void)state;
    /* Every power of two, every subnormal boundary, max, min, both zeros. */
    for (int e = -149; e <= 127; e++) {
        check_roundtrip(ldexpf(1.0f, e), true);
        check_roundtrip(-ldexpf(1.0f, e), true);
    }
    for (uint32_t u = 0; u < 100000; u++) { /* the smallest subnormals */
        check_roundtrip(from_bits(u), u < 2000);
        check_roundtrip(from_bits(0x007fffffu - u), u < 2000); /* the largest ones */
    }
    for (uint32_t u = 0; u < 100000; u++) { /* around FLT_MAX, 1.0 and FLT_MIN */
        check_roundtrip(from_bits(0x7f7fffffu - u), false);
        check_roundtrip(from_bits(0x3f800000u + u - 50000), false);
        check_roundtrip(from_bits(0x00800000u + u), false);
    }
    check_roundtrip(0.0f, true);
    check_roundtrip(-0.0f, true);
    check_roundtrip(FLT_MAX, true);
    check_roundtrip(FLT_MIN, true);
    check_roundtrip(FLT_TRUE_MIN, true);
    /* Every integer a float holds exactly up to 2^24, sampled. */
    for (uint32_t i = 0; i < (1u << 24); i += 97)
        check_roundtrip((float)i, false);
}

static void test_random_roundtrip(void **state) {
    (void)state;
    const long n = 12000000;
    long checked = 0;
    for (long i = 0; i < n; i++) {
        uint32_t u = rnd32();
        if (((u >> 23) & 0xff) == 0xff)
            continue; /* NaN / Inf */
        check_roundtrip(from_bits(u), i < 1000000);
        checked++;
    }
    print_message("random bit patterns: %ld format->parse round trips identical "
                  "(first 1M also via strtof)\n",
                  checked);
}

/* Significant digits of a decimal text (leading and trailing zeros dropped). */
static int sig_digits(const char *s) {
    char d[64];
    int n = 0;
    for (; *s && *s != 'e' && *s != 'E'; s++)
        if (*s >= '0' && *s <= '9' && n < 63)
            d[n++] = *s;
    int a = 0;
    while (a < n && d[a] == '0')
        a++;
    while (n > a && d[n - 1] == '0')
        n--;
    return n - a;
}

static void test_shortest(void **state) {
    (void)state;
    long equal = 0, shorter = 0;
    const long n = 200000;
    for (long i = 0; i < n; i++) {
        uint32_t u = rnd32();
        if (((u >> 23) & 0xff) == 0xff || (u & 0x7fffffff) == 0)
            continue;
        float f = from_bits(u);
        char g[64];
        int p;
        for (p = 1; p <= 9; p++) {
            snprintf(g, sizeof g, "%.*g", p, (double)f);
            if (to_bits(strtof(g, NULL)) == u)
                break;
        }
        assert_true(p <= 9);
        const char *mine = fmt(f);
        int nd = sig_digits(mine);
        char nine[64];
        int len9 = snprintf(nine, sizeof nine, "%.9g", (double)f);
        assert_true((int)strlen(mine) <= len9 + 12); /* plain notation may pad zeros */
        if (nd > p) {
            print_message("not shortest: %08x mine \"%s\" (%d digits) vs \"%s\" (%d)\n", u, mine,
                          nd, g, p);
            fail();
        }
        if (nd == p)
            equal++;
        else
            shorter++;
        /* In scientific notation the text is never longer than %.9g's. */
        if (strchr(mine, 'e'))
            assert_true(strlen(mine) <= (size_t)len9 + 1);
    }
    print_message("shortest: %ld samples with exactly the digits of the shortest %%.Ng that "
                  "round-trips, %ld shorter (asymmetric interval at powers of two)\n",
                  equal, shorter);
    assert_true(shorter * 1000 < equal);
}

/* Decimal strings of every shape, compared with strtof bit for bit. */
static void test_parse_vs_strtof(void **state) {
    (void)state;
    char s[160];
    long mism = 0;
    for (long i = 0; i < 2000000; i++) {
        int nd = 1 + (int)(rnd32() % 25);
        int point = (int)(rnd32() % (unsigned)(nd + 1));
        int len = 0;
        if (rnd32() & 1)
            s[len++] = '-';
        for (int k = 0; k < nd; k++) {
            if (k == point && k > 0)
                s[len++] = '.';
            s[len++] = (char)('0' + (k == 0 ? 1 + rnd32() % 9 : rnd32() % 10));
        }
        int ex = (int)(rnd32() % 100) - 60;
        len += snprintf(s + len, sizeof s - (size_t)len, "e%d", ex);
        float a, b = strtof(s, NULL);
        size_t used = vd_f32_parse(s, (size_t)len, &a);
        assert_int_equal(used, (size_t)len);
        if (to_bits(a) != to_bits(b)) {
            if (mism++ < 5)
                print_message("parse mismatch \"%s\": %08x vs strtof %08x\n", s, to_bits(a),
                              to_bits(b));
        }
    }
    /* Exact float32 rounding midpoints and their neighbours: the hard cases. */
    for (long i = 0; i < 200000; i++) {
        uint32_t u = rnd32() & 0x7fffffff;
        if ((u >> 23) >= 0xfe)
            continue;
        double lo = from_bits(u), hi = from_bits(u + 1);
        double mid = (lo + hi) / 2;
        int len = snprintf(s, sizeof s, "%.110e", mid); /* exact decimal expansion */
        float a, b = strtof(s, NULL);
        vd_f32_parse(s, (size_t)len, &a);
        if (to_bits(a) != to_bits(b) && mism++ < 10)
            print_message("midpoint mismatch \"%s\"\n", s);
        /* nudge the last digit up and down */
        char *ep = strchr(s, 'e');
        for (int d = -1; d <= 1; d += 2) {
            char t[160];
            memcpy(t, s, sizeof t);
            char *q = t + (ep - s) - 1;
            *q = (char)(d > 0 ? (*q < '9' ? *q + 1 : *q) : (*q > '0' ? *q - 1 : *q));
            b = strtof(t, NULL);
            vd_f32_parse(t, strlen(t), &a);
            if (to_bits(a) != to_bits(b) && mism++ < 10)
                print_message("near-midpoint mismatch \"%s\"\n", t);
        }
    }
    assert_int_equal(mism, 0);
}

static void bench_once(void) {
    const size_t n = 1000000;
    float *v = malloc(n * sizeof *v);
    char *text = malloc(n * (VD_F32_MAXLEN + 1));
    size_t *off = malloc((n + 1) * sizeof *off);
    assert_non_null(v);
    assert_non_null(text);
    assert_non_null(off);
    /* Embedding-like values: uniform in (-0.25, 0.25). */
    for (size_t i = 0; i < n; i++)
        v[i] = ((float)(rnd32() & 0xffffff) / 16777216.0f - 0.5f) * 0.5f;
    char buf[64];
    volatile size_t sink = 0;

    double t0 = now_ns();
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        off[i] = pos;
        pos += vd_f32_format(v[i], text + pos);
    }
    off[n] = pos;
    double t_fmt = now_ns() - t0;

    t0 = now_ns();
    for (size_t i = 0; i < n; i++)
        sink += (size_t)snprintf(buf, sizeof buf, "%.9g", (double)v[i]);
    double t_printf = now_ns() - t0;

    t0 = now_ns();
    float acc = 0;
    for (size_t i = 0; i < n; i++) {
        float f;
        vd_f32_parse(text + off[i], off[i + 1] - off[i], &f);
        acc += f;
    }
    double t_parse = now_ns() - t0;

    /* strtof needs NUL-terminated input: give it the %.9g text, as a printf user would. */
    char *text9 = malloc(n * 20);
    assert_non_null(text9);
    for (size_t i = 0; i < n; i++)
        snprintf(text9 + 20 * i, 20, "%.9g", (double)v[i]);
    t0 = now_ns();
    float acc2 = 0;
    for (size_t i = 0; i < n; i++)
        acc2 += strtof(text9 + 20 * i, NULL);
    double t_strtof = now_ns() - t0;
    sink += (size_t)(acc + acc2 != 0);

    print_message("bench (1M embedding-like floats): vd_f32_format %.1f ns/float, "
                  "snprintf %%.9g %.1f ns/float (x%.1f faster); avg text %.2f bytes\n",
                  t_fmt / (double)n, t_printf / (double)n, t_printf / t_fmt,
                  (double)pos / (double)n);
    print_message("bench (1M embedding-like floats): vd_f32_parse %.1f ns/float, "
                  "strtof %.1f ns/float (x%.1f faster)\n",
                  t_parse / (double)n, t_strtof / (double)n, t_strtof / t_parse);
    /* Random bit patterns: the full exponent range. */
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        do
            u = rnd32();
        while (((u >> 23) & 0xff) == 0xff);
        v[i] = from_bits(u);
    }
    t0 = now_ns();
    pos = 0;
    for (size_t i = 0; i < n; i++) {
        off[i] = pos;
        pos += vd_f32_format(v[i], text + pos);
    }
    off[n] = pos;
    t_fmt = now_ns() - t0;
    t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        float f;
        vd_f32_parse(text + off[i], off[i + 1] - off[i], &f);
        sink += to_bits(f) & 1;
    }
    t_parse = now_ns() - t0;
    print_message("bench (1M random bit patterns): format %.1f ns/float, parse %.1f ns/float\n",
                  t_fmt / (double)n, t_parse / (double)n);
    (void)sink;
    free(v);
    free(text);
    free(text9);
    free(off);
}

static void test_benchmark(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++)
        bench_once();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_special_classes),
        cmocka_unit_test(test_random_roundtrip),
        cmocka_unit_test(test_shortest),
        cmocka_unit_test(test_parse_vs_strtof),
        cmocka_unit_test(test_benchmark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
