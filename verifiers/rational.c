/* Exact rational arithmetic on 128-bit integers with overflow detection (see rational.h).
 * Invariant: den > 0, gcd(|num|, den) == 1, and num is never INT128_MIN (so negation
 * is always safe). */
#include "verifiers/rational.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define RATIONAL_INT_MIN ((rational_int)((unsigned __int128)1 << 127))

static rational_int abs_i(rational_int x) { return x < 0 ? -x : x; }

static rational_int gcd_i(rational_int a, rational_int b) {
    a = abs_i(a);
    b = abs_i(b);
    while (b) { rational_int t = a % b; a = b; b = t; }
    return a;
}

rational rational_from_int(long long n) {
    rational r = { (rational_int)n, 1 };
    return r;
}

rational_status rational_make(rational_int num, rational_int den, rational *out) {
    if (den == 0) return RATIONAL_DIV_ZERO;
    if (num == RATIONAL_INT_MIN || den == RATIONAL_INT_MIN) return RATIONAL_OVERFLOW;
    if (den < 0) { num = -num; den = -den; }
    rational_int g = gcd_i(num, den);
    if (g > 1) { num /= g; den /= g; }
    out->num = num;
    out->den = den;
    return RATIONAL_OK;
}

rational_status rational_add(rational a, rational b, rational *out) {
    rational_int g = gcd_i(a.den, b.den);
    rational_int bd = b.den / g, ad = a.den / g, x, y, num, den;
    if (__builtin_mul_overflow(a.num, bd, &x) || __builtin_mul_overflow(b.num, ad, &y) ||
        __builtin_add_overflow(x, y, &num) || __builtin_mul_overflow(a.den, bd, &den))
        return RATIONAL_OVERFLOW;
    return rational_make(num, den, out);
}

rational_status rational_neg(rational a, rational *out) {
    out->num = -a.num;   /* safe: num is never INT128_MIN */
    out->den = a.den;
    return RATIONAL_OK;
}

rational_status rational_sub(rational a, rational b, rational *out) {
    rational nb;
    rational_neg(b, &nb);
    return rational_add(a, nb, out);
}

rational_status rational_mul(rational a, rational b, rational *out) {
    /* Cross-reduce first so that products of reduced fractions overflow only when the
     * result itself does not fit. */
    rational_int g1 = gcd_i(a.num, b.den), g2 = gcd_i(b.num, a.den);
    if (g1 == 0) g1 = 1;
    if (g2 == 0) g2 = 1;
    rational_int num, den;
    if (__builtin_mul_overflow(a.num / g1, b.num / g2, &num) ||
        __builtin_mul_overflow(a.den / g2, b.den / g1, &den))
        return RATIONAL_OVERFLOW;
    return rational_make(num, den, out);
}

rational_status rational_div(rational a, rational b, rational *out) {
    if (b.num == 0) return RATIONAL_DIV_ZERO;
    rational inv;
    rational_status s = rational_make(b.den, b.num, &inv);
    if (s != RATIONAL_OK) return s;
    return rational_mul(a, inv, out);
}

rational_status rational_pow_int(rational a, long long e, rational *out) {
    if (e == 0) { *out = rational_from_int(1); return RATIONAL_OK; }
    if (a.num == 0) {
        if (e < 0) return RATIONAL_DIV_ZERO;
        *out = rational_from_int(0);
        return RATIONAL_OK;
    }
    /* |num| or den >= 2 doubles the bit length at least every squaring: more than 128
     * factors of something other than +-1 cannot fit. */
    unsigned long long m = e < 0 ? (unsigned long long)(-(e + 1)) + 1 : (unsigned long long)e;
    if ((abs_i(a.num) > 1 || a.den > 1) && m > 128) return RATIONAL_OVERFLOW;
    rational result = rational_from_int(1), base = a;
    while (m) {
        if (m & 1) { rational_status s = rational_mul(result, base, &result); if (s) return s; }
        m >>= 1;
        if (m) { rational_status s = rational_mul(base, base, &base); if (s) return s; }
    }
    if (e < 0) return rational_div(rational_from_int(1), result, out);
    *out = result;
    return RATIONAL_OK;
}

/* x^n for x >= 0 with overflow detection. */
static int pow_fits(rational_int x, long long n, rational_int *out) {
    rational_int r = 1;
    for (long long i = 0; i < n; i++)
        if (__builtin_mul_overflow(r, x, &r)) return 0;
    *out = r;
    return 1;
}

/* Exact integer n-th root of x >= 0, or -1 when x is not a perfect n-th power. */
static rational_int int_root(rational_int x, long long n) {
    if (x < 2) return x;
    if (n >= 127) return -1;   /* 2^127 > any x: only 0 and 1 are perfect powers */
    long double est = powl((long double)x, 1.0L / (long double)n);
    rational_int r = (rational_int)(est + 0.5L), p;
    if (r < 1) r = 1;
    while (r > 1 && (!pow_fits(r, n, &p) || p > x)) r--;
    for (;;) {
        rational_int q;
        if (!pow_fits(r + 1, n, &q) || q > x) break;
        r++;
    }
    if (!pow_fits(r, n, &p) || p != x) return -1;
    return r;
}

rational_status rational_root(rational a, long long n, rational *out) {
    if (n < 1) return RATIONAL_UNDEFINED;
    if (n == 1) { *out = a; return RATIONAL_OK; }
    int negative = a.num < 0;
    if (negative && n % 2 == 0) return RATIONAL_UNDEFINED;
    rational_int rn = int_root(abs_i(a.num), n), rd = int_root(a.den, n);
    if (rn < 0 || rd < 0) return RATIONAL_INEXACT;
    return rational_make(negative ? -rn : rn, rd, out);
}

int rational_cmp(rational a, rational b) {
    /* Signs first, then the continued-fraction expansions of |a| and |b| term by term:
     * exact without forming the (possibly 256-bit) cross products. */
    int sa = (a.num > 0) - (a.num < 0), sb = (b.num > 0) - (b.num < 0);
    if (sa != sb) return sa < sb ? -1 : 1;
    if (sa == 0) return 0;
    /* Both same sign: compare |a| and |b|, flip for negatives. */
    rational_int an = abs_i(a.num), ad = a.den, bn = abs_i(b.num), bd = b.den;
    int flip = sa < 0;
    for (;;) {
        rational_int qa = an / ad, qb = bn / bd;
        if (qa != qb) { int c = qa < qb ? -1 : 1; return flip ? -c : c; }
        rational_int ra = an % ad, rb = bn % bd;
        if (ra == 0 || rb == 0) {
            int c = (ra == 0 && rb == 0) ? 0 : (ra == 0 ? -1 : 1);
            return flip ? -c : c;
        }
        /* ra/ad vs rb/bd compares like bd/rb vs ad/ra (reciprocals reverse order). */
        rational_int na = bd, nad = rb, nb = ad, nbd = ra;
        an = na; ad = nad; bn = nb; bd = nbd;
    }
}

int rational_is_zero(rational a) { return a.num == 0; }
int rational_is_integer(rational a) { return a.den == 1; }

long double rational_to_long_double(rational a) {
    return (long double)a.num / (long double)a.den;
}

rational_status rational_parse_decimal(const char *s, size_t len, rational *out, size_t *used) {
    size_t i = 0;
    rational_int mant = 0;
    long long scale = 0;   /* value = mant * 10^scale */
    int digits = 0, overflow = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (!overflow && (__builtin_mul_overflow(mant, 10, &mant) ||
                          __builtin_add_overflow(mant, s[i] - '0', &mant))) overflow = 1;
        i++; digits++;
    }
    if (i < len && s[i] == '.' && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (!overflow && (__builtin_mul_overflow(mant, 10, &mant) ||
                              __builtin_add_overflow(mant, s[i] - '0', &mant))) overflow = 1;
            scale--;
            i++; digits++;
        }
    }
    if (digits == 0) { *used = 0; return RATIONAL_OK; }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        int sign = 1;
        if (j < len && (s[j] == '+' || s[j] == '-')) { sign = s[j] == '-' ? -1 : 1; j++; }
        if (j < len && s[j] >= '0' && s[j] <= '9') {
            long long ex = 0;
            while (j < len && s[j] >= '0' && s[j] <= '9') {
                if (ex < 1000000) ex = ex * 10 + (s[j] - '0');
                j++;
            }
            scale += sign * ex;
            i = j;
        }
    }
    *used = i;
    if (overflow) return RATIONAL_OVERFLOW;
    rational p;
    rational_status st = rational_pow_int(rational_from_int(10), scale, &p);
    if (st != RATIONAL_OK) return st;
    rational m = { mant, 1 };
    return rational_mul(m, p, out);
}

static size_t format_int(rational_int v, char *buf, size_t cap) {
    char tmp[48];
    size_t n = 0;
    int neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    do { tmp[n++] = (char)('0' + (int)(u % 10)); u /= 10; } while (u);
    if (neg) tmp[n++] = '-';
    for (size_t i = 0; i < n && i + 1 < cap; i++) buf[i] = tmp[n - 1 - i];
    if (cap) buf[n < cap ? n : cap - 1] = 0;
    return n;
}

size_t rational_format(rational a, char *buf, size_t cap) {
    char tmp[100];
    size_t n = format_int(a.num, tmp, sizeof tmp);
    if (a.den != 1) {
        tmp[n++] = '/';
        n += format_int(a.den, tmp + n, sizeof tmp - n);
    }
    if (cap) {
        size_t k = n < cap ? n : cap - 1;
        memcpy(buf, tmp, k);
        buf[k] = 0;
    }
    return n;
}
