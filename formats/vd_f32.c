/*
 * vd_f32.c - float32 <-> shortest decimal text.
 *
 * Formatting follows Ulf Adams' Ryu algorithm ("Ryu: fast float-to-string
 * conversion", PLDI 2018) specialised for binary32: the interval of decimals
 * that round to the float is scaled by a 64-bit approximation of a power of
 * five, and digits are removed while both ends of the interval still differ.
 * The two tables below are floor(5^i / 2^(bitlen(5^i) - 61)) and
 * floor(2^(bitlen(5^i) - 1 + 59) / 5^i) + 1, computed with exact big
 * integers (Python) and pasted here.
 *
 * Parsing accumulates up to 19 significant digits into a uint64 and scales
 * by one double power of ten. The double result is within a few units in
 * the last place of the exact value, so rounding it to float32 is correct
 * unless it lies within that error of a float32 rounding midpoint (or in
 * the float32 subnormal range); those rare inputs go to strtof_l in the C
 * locale, which is exact.
 */
#include "vd_formats.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- Ryu tables (binary32) --------------------------------------------- */
#define POW5_INV_BITCOUNT 59
#define POW5_BITCOUNT 61

static const uint64_t pow5_inv_split[32] = {
    576460752303423489u, 461168601842738791u, 368934881474191033u, 295147905179352826u,
    472236648286964522u, 377789318629571618u, 302231454903657294u, 483570327845851670u,
    386856262276681336u, 309485009821345069u, 495176015714152110u, 396140812571321688u,
    316912650057057351u, 507060240091291761u, 405648192073033409u, 324518553658426727u,
    519229685853482763u, 415383748682786211u, 332306998946228969u, 531691198313966350u,
    425352958651173080u, 340282366920938464u, 544451787073501542u, 435561429658801234u,
    348449143727040987u, 557518629963265579u, 446014903970612463u, 356811923176489971u,
    570899077082383953u, 456719261665907162u, 365375409332725730u, 292300327466180584u,
};

static const uint64_t pow5_split[49] = {
    1152921504606846976u, 1441151880758558720u, 1801439850948198400u,
    2251799813685248000u, 1407374883553280000u, 1759218604441600000u,
    2199023255552000000u, 1374389534720000000u, 1717986918400000000u,
    2147483648000000000u, 1342177280000000000u, 1677721600000000000u,
    2097152000000000000u, 1310720000000000000u, 1638400000000000000u,
    2048000000000000000u, 1280000000000000000u, 1600000000000000000u,
    2000000000000000000u, 1250000000000000000u, 1562500000000000000u,
    1953125000000000000u, 1220703125000000000u, 1525878906250000000u,
    1907348632812500000u, 1192092895507812500u, 1490116119384765625u,
    1862645149230957031u, 1164153218269348144u, 1455191522836685180u,
    1818989403545856475u, 2273736754432320594u, 1421085471520200371u,
    1776356839400250464u, 2220446049250313080u, 1387778780781445675u,
    1734723475976807094u, 2168404344971008868u, 1355252715606880542u,
    1694065894508600678u, 2117582368135750847u, 1323488980084844279u,
    1654361225106055349u, 2067951531382569187u, 1292469707114105741u,
    1615587133892632177u, 2019483917365790221u, 1262177448353618888u,
    1577721810442023610u,
};

/* ceil(log2(5^e)) for e >= 1; 1 for e == 0 (the bit length of 5^e). */
static inline int32_t pow5bits(int32_t e) {
    return (int32_t)(((uint32_t)e * 1217359u) >> 19) + 1;
}
/* floor(log10(2^e)) and floor(log10(5^e)) for the small e used here. */
static inline uint32_t log10_pow2(int32_t e) { return ((uint32_t)e * 78913u) >> 18; }
static inline uint32_t log10_pow5(int32_t e) { return ((uint32_t)e * 732923u) >> 20; }

static inline uint32_t pow5_factor(uint32_t v) {
    uint32_t n = 0;
    while (v % 5 == 0) {
        v /= 5;
        n++;
    }
    return n;
}

static inline uint32_t mul_shift(uint32_t m, uint64_t factor, int32_t shift) {
    uint64_t lo = (uint64_t)m * (uint32_t)factor;
    uint64_t hi = (uint64_t)m * (uint32_t)(factor >> 32);
    uint64_t sum = (lo >> 32) + hi;
    return (uint32_t)(sum >> (shift - 32));
}

/* v = mantissa * 10^exponent, the shortest such decimal inside the interval. */
static void f2d(uint32_t ieee_m, uint32_t ieee_e, uint32_t *mant, int32_t *exp10) {
    int32_t e2;
    uint32_t m2;
    if (ieee_e == 0) {
        e2 = 1 - 127 - 23 - 2;
        m2 = ieee_m;
    } else {
        e2 = (int32_t)ieee_e - 127 - 23 - 2;
        m2 = (1u << 23) | ieee_m;
    }
    const bool accept_bounds = (m2 & 1) == 0;
    const uint32_t mv = 4 * m2;
    const uint32_t mp = 4 * m2 + 2;
    const uint32_t mm_shift = ieee_m != 0 || ieee_e <= 1;
    const uint32_t mm = 4 * m2 - 1 - mm_shift;

    uint32_t vr, vp, vm;
    int32_t e10;
    bool vm_tz = false, vr_tz = false;
    uint8_t last = 0;
    if (e2 >= 0) {
        const uint32_t q = log10_pow2(e2);
        e10 = (int32_t)q;
        const int32_t k = POW5_INV_BITCOUNT + pow5bits((int32_t)q) - 1;
        const int32_t i = -e2 + (int32_t)q + k;
        vr = mul_shift(mv, pow5_inv_split[q], i);
        vp = mul_shift(mp, pow5_inv_split[q], i);
        vm = mul_shift(mm, pow5_inv_split[q], i);
        if (q != 0 && (vp - 1) / 10 <= vm / 10) {
            const int32_t l = POW5_INV_BITCOUNT + pow5bits((int32_t)(q - 1)) - 1;
            last = (uint8_t)(mul_shift(mv, pow5_inv_split[q - 1], -e2 + (int32_t)q - 1 + l) % 10);
        }
        if (q <= 9) {
            if (mv % 5 == 0)
                vr_tz = pow5_factor(mv) >= q;
            else if (accept_bounds)
                vm_tz = pow5_factor(mm) >= q;
            else
                vp -= pow5_factor(mp) >= q;
        }
    } else {
        const uint32_t q = log10_pow5(-e2);
        e10 = (int32_t)q + e2;
        const int32_t i = -e2 - (int32_t)q;
        const int32_t k = pow5bits(i) - POW5_BITCOUNT;
        int32_t j = (int32_t)q - k;
        vr = mul_shift(mv, pow5_split[i], j);
        vp = mul_shift(mp, pow5_split[i], j);
        vm = mul_shift(mm, pow5_split[i], j);
        if (q != 0 && (vp - 1) / 10 <= vm / 10) {
            j = (int32_t)q - 1 - (pow5bits(i + 1) - POW5_BITCOUNT);
            last = (uint8_t)(mul_shift(mv, pow5_split[i + 1], j) % 10);
        }
        if (q <= 1) {
            vr_tz = true;
            if (accept_bounds)
                vm_tz = mm_shift == 1;
            else
                --vp;
        } else if (q < 31) {
            vr_tz = (mv & ((1u << (q - 1)) - 1)) == 0;
        }
    }

    int32_t removed = 0;
    uint32_t output;
    if (vm_tz || vr_tz) {
        while (vp / 10 > vm / 10) {
            vm_tz &= vm % 10 == 0;
            vr_tz &= last == 0;
            last = (uint8_t)(vr % 10);
            vr /= 10;
            vp /= 10;
            vm /= 10;
            ++removed;
        }
        if (vm_tz) {
            while (vm % 10 == 0) {
                vr_tz &= last == 0;
                last = (uint8_t)(vr % 10);
                vr /= 10;
                vp /= 10;
                vm /= 10;
                ++removed;
            }
        }
        if (vr_tz && last == 5 && vr % 2 == 0)
            last = 4; /* round half to even when the exact value is ...50...0 */
        output = vr + ((vr == vm && (!accept_bounds || !vm_tz)) || last >= 5);
    } else {
        while (vp / 10 > vm / 10) {
            last = (uint8_t)(vr % 10);
            vr /= 10;
            vp /= 10;
            vm /= 10;
            ++removed;
        }
        output = vr + (vr == vm || last >= 5);
    }
    *mant = output;
    *exp10 = e10 + removed;
}

static const char digit_pairs[200] = {
    '0', '0', '0', '1', '0', '2', '0', '3', '0', '4', '0', '5', '0', '6', '0', '7', '0', '8',
    '0', '9', '1', '0', '1', '1', '1', '2', '1', '3', '1', '4', '1', '5', '1', '6', '1', '7',
    '1', '8', '1', '9', '2', '0', '2', '1', '2', '2', '2', '3', '2', '4', '2', '5', '2', '6',
    '2', '7', '2', '8', '2', '9', '3', '0', '3', '1', '3', '2', '3', '3', '3', '4', '3', '5',
    '3', '6', '3', '7', '3', '8', '3', '9', '4', '0', '4', '1', '4', '2', '4', '3', '4', '4',
    '4', '5', '4', '6', '4', '7', '4', '8', '4', '9', '5', '0', '5', '1', '5', '2', '5', '3',
    '5', '4', '5', '5', '5', '6', '5', '7', '5', '8', '5', '9', '6', '0', '6', '1', '6', '2',
    '6', '3', '6', '4', '6', '5', '6', '6', '6', '7', '6', '8', '6', '9', '7', '0', '7', '1',
    '7', '2', '7', '3', '7', '4', '7', '5', '7', '6', '7', '7', '7', '8', '7', '9', '8', '0',
    '8', '1', '8', '2', '8', '3', '8', '4', '8', '5', '8', '6', '8', '7', '8', '8', '8', '9',
    '9', '0', '9', '1', '9', '2', '9', '3', '9', '4', '9', '5', '9', '6', '9', '7', '9', '8',
    '9', '9'};

static inline int decimal_len9(uint32_t v) {
    return v >= 100000000u ? 9 : v >= 10000000u ? 8 : v >= 1000000u ? 7 : v >= 100000u ? 6
         : v >= 10000u     ? 5 : v >= 1000u     ? 4 : v >= 100u     ? 3 : v >= 10u     ? 2 : 1;
}

/* Writes the n decimal digits of v to d[0..n). */
static inline void put_digits(char *d, uint32_t v, int n) {
    int i = n;
    while (v >= 100) {
        uint32_t r = v % 100;
        v /= 100;
        i -= 2;
        memcpy(d + i, digit_pairs + 2 * r, 2);
    }
    if (v >= 10) {
        i -= 2;
        memcpy(d + i, digit_pairs + 2 * v, 2);
    } else {
        d[--i] = (char)('0' + v);
    }
}

size_t vd_f32_format(float v, char *out) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    const bool neg = bits >> 31;
    const uint32_t ieee_m = bits & 0x7fffffu;
    const uint32_t ieee_e = (bits >> 23) & 0xffu;
    char *p = out;
    if (ieee_e == 0xff) {
        if (ieee_m) {
            memcpy(out, "NaN", 3);
            return 3;
        }
        if (neg) {
            memcpy(out, "-Infinity", 9);
            return 9;
        }
        memcpy(out, "Infinity", 8);
        return 8;
    }
    if (neg)
        *p++ = '-';
    if (ieee_e == 0 && ieee_m == 0) {
        *p++ = '0';
        return (size_t)(p - out);
    }
    uint32_t mant;
    int32_t e10;
    f2d(ieee_m, ieee_e, &mant, &e10);
    while (mant % 10 == 0) { /* rounding up can leave a trailing zero (9 -> 10) */
        mant /= 10;
        e10++;
    }
    const int n = decimal_len9(mant);
    const int32_t sci = e10 + n - 1; /* the value is d.ddd * 10^sci */
    if (sci >= 0 && sci < 21) {
        if (n <= sci + 1) { /* an integer: digits then zeros */
            put_digits(p, mant, n);
            p += n;
            memset(p, '0', (size_t)(sci + 1 - n));
            p += sci + 1 - n;
        } else { /* ddd.ddd: write digits shifted by one, then move the point */
            put_digits(p + 1, mant, n);
            memmove(p, p + 1, (size_t)sci + 1);
            p[sci + 1] = '.';
            p += n + 1;
        }
    } else if (sci < 0 && sci > -7) { /* 0.000ddd */
        *p++ = '0';
        *p++ = '.';
        memset(p, '0', (size_t)(-sci - 1));
        p += -sci - 1;
        put_digits(p, mant, n);
        p += n;
    } else { /* d.ddde+XX / d.ddde-XX */
        put_digits(p + 1, mant, n);
        p[0] = p[1];
        if (n > 1) {
            p[1] = '.';
            p += n + 1;
        } else {
            p += 1;
        }
        *p++ = 'e';
        int32_t x = sci;
        if (x < 0) {
            *p++ = '-';
            x = -x;
        } else {
            *p++ = '+';
        }
        if (x >= 10) {
            memcpy(p, digit_pairs + 2 * x, 2);
            p += 2;
        } else {
            *p++ = (char)('0' + x);
        }
    }
    return (size_t)(p - out);
}

/* ---- parsing ------------------------------------------------------------ */

/* 10^-66 .. 10^39 as correctly rounded doubles (the compiler rounds them). */
#define P10_MIN (-66)
static const double pow10_tab[] = {
    1e-66, 1e-65, 1e-64, 1e-63, 1e-62, 1e-61, 1e-60, 1e-59, 1e-58, 1e-57, 1e-56, 1e-55,
    1e-54, 1e-53, 1e-52, 1e-51, 1e-50, 1e-49, 1e-48, 1e-47, 1e-46, 1e-45, 1e-44, 1e-43,
    1e-42, 1e-41, 1e-40, 1e-39, 1e-38, 1e-37, 1e-36, 1e-35, 1e-34, 1e-33, 1e-32, 1e-31,
    1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19,
    1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9,  1e-8,  1e-7,
    1e-6,  1e-5,  1e-4,  1e-3,  1e-2,  1e-1,  1e0,   1e1,   1e2,   1e3,   1e4,   1e5,
    1e6,   1e7,   1e8,   1e9,   1e10,  1e11,  1e12,  1e13,  1e14,  1e15,  1e16,  1e17,
    1e18,  1e19,  1e20,  1e21,  1e22,  1e23,  1e24,  1e25,  1e26,  1e27,  1e28,  1e29,
    1e30,  1e31,  1e32,  1e33,  1e34,  1e35,  1e36,  1e37,  1e38,  1e39};
#define P10_MAX (P10_MIN + (int)(sizeof pow10_tab / sizeof pow10_tab[0]) - 1)

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

/* The exact (slow) path: strtof in the C locale over a NUL-terminated copy. */
static float slow_parse(const char *s, size_t n) {
    char small[128];
    char *tmp = n < sizeof small ? small : malloc(n + 1);
    if (!tmp)
        return NAN; /* out of memory: the caller sees a non-finite value */
    memcpy(tmp, s, n);
    tmp[n] = 0;
    pthread_once(&c_locale_once, c_locale_init);
    float f = c_locale ? strtof_l(tmp, NULL, c_locale) : strtof(tmp, NULL);
    if (tmp != small)
        free(tmp);
    return f;
}

static inline bool is_digit(char c) { return (unsigned char)(c - '0') < 10; }

size_t vd_f32_parse(const char *s, size_t n, float *out) {
    size_t i = 0;
    bool neg = false;
    if (i < n && s[i] == '-') {
        neg = true;
        i++;
    }
    /* The non-finite spellings vd_f32_format produces. */
    if (i < n && !is_digit(s[i])) {
        if (n - i >= 8 && memcmp(s + i, "Infinity", 8) == 0) {
            *out = neg ? -INFINITY : INFINITY;
            return i + 8;
        }
        if (!neg && n >= 3 && memcmp(s, "NaN", 3) == 0) {
            *out = NAN;
            return 3;
        }
        return 0;
    }
    if (i >= n)
        return 0;

    uint64_t w = 0;
    int nsig = 0;    /* significant digits held in w (at most 19) */
    int32_t e10 = 0; /* adjustment of the decimal exponent */
    while (i < n && s[i] == '0')
        i++;
    while (i < n && is_digit(s[i])) {
        if (nsig < 19) {
            w = w * 10 + (uint64_t)(s[i] - '0');
            nsig++;
        } else {
            e10++;
        }
        i++;
    }
    if (i < n && s[i] == '.') {
        if (i + 1 >= n || !is_digit(s[i + 1]))
            return 0;
        i++;
        if (nsig == 0) {
            while (i < n && s[i] == '0') {
                i++;
                e10--;
            }
        }
        while (i < n && is_digit(s[i])) {
            if (nsig < 19) {
                w = w * 10 + (uint64_t)(s[i] - '0');
                nsig++;
                e10--;
            }
            i++;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        bool eneg = false;
        if (j < n && (s[j] == '+' || s[j] == '-')) {
            eneg = s[j] == '-';
            j++;
        }
        if (j < n && is_digit(s[j])) {
            int32_t x = 0;
            while (j < n && is_digit(s[j])) {
                if (x < 100000)
                    x = x * 10 + (s[j] - '0');
                j++;
            }
            e10 += eneg ? -x : x;
            i = j;
        }
    }
    const size_t used = i;

    float f;
    if (w == 0) {
        f = 0.0f;
    } else if (e10 + nsig <= -46) { /* below 10^-46: rounds to zero */
        f = 0.0f;
    } else if (e10 + nsig - 1 >= 39) { /* at least 10^39: overflows */
        f = INFINITY;
    } else if (e10 < P10_MIN || e10 > P10_MAX) {
        f = fabsf(slow_parse(s, used));
    } else {
        const double d = (double)w * pow10_tab[e10 - P10_MIN];
        uint64_t db;
        memcpy(&db, &d, 8);
        const uint32_t low = (uint32_t)(db & 0x1fffffffu);
        const uint32_t dist = low > 0x10000000u ? low - 0x10000000u : 0x10000000u - low;
        if (d < 0x1p-126 || dist <= 64)
            f = fabsf(slow_parse(s, used)); /* subnormal or near a midpoint */
        else
            f = (float)d;
    }
    *out = neg ? -f : f;
    return used;
}
