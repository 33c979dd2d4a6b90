/* Exact rational numbers for the verifiers: numerator and denominator are 128-bit
 * integers kept in lowest terms with a positive denominator. Every operation checks for
 * overflow and says so instead of wrapping, so a caller can fall back to long double.
 * Values are plain structs (no allocation); all functions are thread-safe. */
#ifndef GRPO_RATIONAL_H
#define GRPO_RATIONAL_H

#include <stddef.h>

typedef __int128 rational_int;

typedef struct {
    rational_int num;   /* sign lives here */
    rational_int den;   /* > 0; gcd(|num|, den) == 1 */
} rational;

typedef enum {
    RATIONAL_OK = 0,
    RATIONAL_OVERFLOW,    /* the exact result does not fit in 128-bit num/den */
    RATIONAL_DIV_ZERO,    /* division by zero, 0 to a negative power */
    RATIONAL_INEXACT,     /* a root that is not rational (e.g. sqrt(2)) */
    RATIONAL_UNDEFINED    /* an even root of a negative number */
} rational_status;

/* n/1. */
rational rational_from_int(long long n);
/* num/den reduced; den == 0 gives RATIONAL_DIV_ZERO. */
rational_status rational_make(rational_int num, rational_int den, rational *out);

rational_status rational_add(rational a, rational b, rational *out);
rational_status rational_sub(rational a, rational b, rational *out);
rational_status rational_mul(rational a, rational b, rational *out);
rational_status rational_div(rational a, rational b, rational *out);
rational_status rational_neg(rational a, rational *out);
/* a^e for any integer e (negative: 1/a^|e|; 0^0 = 1). */
rational_status rational_pow_int(rational a, long long e, rational *out);
/* The real n-th root (n >= 1) when it is rational: exact for perfect powers, RATIONAL_INEXACT
 * otherwise; odd roots of negatives are negative, even roots of negatives RATIONAL_UNDEFINED. */
rational_status rational_root(rational a, long long n, rational *out);

/* -1, 0, +1 (exact, never overflows). */
int rational_cmp(rational a, rational b);
int rational_is_zero(rational a);
int rational_is_integer(rational a);
long double rational_to_long_double(rational a);

/* Parses a plain decimal: [digits][.digits][(e|E)[+-]digits], no sign, at least one digit
 * before the exponent. *used gets the number of bytes consumed (0: no number there).
 * Returns RATIONAL_OVERFLOW when the exact value does not fit (the caller can read the
 * same bytes with strtold). */
rational_status rational_parse_decimal(const char *s, size_t len, rational *out, size_t *used);

/* Writes "num" or "num/den" (NUL-terminated, truncated to cap); returns the full length. */
size_t rational_format(rational a, char *buf, size_t cap);

#endif
