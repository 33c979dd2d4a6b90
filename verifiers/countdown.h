/* Verifier for the Countdown task (TinyZero's arithmetic game): the answer is an
 * expression over + - * / and parentheses that uses each given number at most once
 * (exactly once when configured) and equals the target. Evaluated with exact rationals,
 * so 6 / 4 * 2 == 3 holds and no rounding can make a wrong answer right. */
#ifndef GRPO_VERIFY_COUNTDOWN_H
#define GRPO_VERIFY_COUNTDOWN_H

#include <stddef.h>

#include "core/status.h"

typedef enum {
    VERIFY_COUNTDOWN_CORRECT = 0,
    VERIFY_COUNTDOWN_WRONG_VALUE,   /* well formed, numbers fine, value != target (or a division by zero) */
    VERIFY_COUNTDOWN_BAD_NUMBERS,   /* a number not available, used too often, or (use_all) one left unused */
    VERIFY_COUNTDOWN_UNPARSEABLE    /* no answer, or not an expression of integers, + - * / ( ) */
} verify_countdown_verdict;

typedef struct {
    int use_all_numbers;   /* 1: every given number exactly once; 0 (default): at most once */
    size_t max_len;        /* longer expressions are unparseable; default 1024 */
} verify_countdown_options;

#define VERIFY_COUNTDOWN_EXPR_CAP 256

typedef struct {
    verify_countdown_verdict verdict;
    char expression[VERIFY_COUNTDOWN_EXPR_CAP];   /* the extracted expression, NUL-terminated, maybe cut */
    int division_by_zero;                         /* the expression divides by zero (WRONG_VALUE) */
    int value_known;                              /* 1 when value_num/value_den hold its value */
    long long value_num, value_den;               /* the value in lowest terms, when it fits */
} verify_countdown_result;

void verify_countdown_options_default(verify_countdown_options *opt);

/* Scores a whole response: the expression is the content of the last <answer>...</answer>,
 * else the last non-empty line; "$", "\(", "\)" are dropped, and of "expr = value" only
 * expr is used. Operators: + - * / and also \times \cdot \div, ×, ÷,
 * ·, − (unary minus allowed). opt NULL means defaults. Returns GRPO_ERR_INVALID for NULL
 * arguments; every verdict about the response is GRPO_OK. Thread-safe, no allocation. */
grpo_status verify_countdown(const long long *numbers, size_t count, long long target, const char *response,
                             const verify_countdown_options *opt, verify_countdown_result *out);

/* Scores an already-extracted expression expr[0..len) (same rules, no extraction). */
verify_countdown_verdict verify_countdown_expression(const long long *numbers, size_t count, long long target,
                                                     const char *expr, size_t len, const verify_countdown_options *opt,
                                                     verify_countdown_result *out);

const char *verify_countdown_verdict_name(verify_countdown_verdict v);   /* "correct", "wrong_value", ... */

#endif
