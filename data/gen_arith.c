/* Synthetic arithmetic problems with worked digit-by-digit solutions (data/generate.h). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "data/generate.h"

/* Appends printf output to buf[*len .. size). */
static void append(char *buf, size_t *len, size_t size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t *len, size_t size, const char *fmt, ...) {
    if (*len >= size) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0) *len += (size_t)n < size - *len ? (size_t)n : size - *len - 1;
}

static int64_t random_with_digits(rng_stream *r, int digits) {
    int64_t lo = 1, hi;
    for (int i = 1; i < digits; i++) lo *= 10;
    hi = lo * 10 - 1;
    if (digits == 1) lo = 0;
    return lo + (int64_t)rng_next_below(r, (uint32_t)(hi - lo + 1));
}

static int digit_at(int64_t x, int i) {
    for (int k = 0; k < i; k++) x /= 10;
    return (int)(x % 10);
}

static int num_digits(int64_t x) {
    int n = 1;
    while (x >= 10) { x /= 10; n++; }
    return n;
}

/* Column addition, least significant digit first, naming each carry. */
static void steps_add(int64_t a, int64_t b, char *buf, size_t *len, size_t size) {
    int n = num_digits(a > b ? a : b), carry = 0;
    for (int i = 0; i < n; i++) {
        int da = digit_at(a, i), db = digit_at(b, i), s = da + db + carry;
        if (carry) append(buf, len, size, "%d+%d+%d=%d", da, db, carry, s);
        else append(buf, len, size, "%d+%d=%d", da, db, s);
        carry = s / 10;
        append(buf, len, size, carry ? ", write %d carry 1. " : ", write %d. ", s % 10);
    }
    if (carry) append(buf, len, size, "write the carry 1. ");
}

/* Column subtraction of b from a (a >= b), naming each borrow. */
static void steps_sub(int64_t a, int64_t b, char *buf, size_t *len, size_t size) {
    int n = num_digits(a), borrow = 0;
    for (int i = 0; i < n; i++) {
        int da = digit_at(a, i) - borrow, db = digit_at(b, i);
        if (da < db) {
            append(buf, len, size, "%d-%d needs a borrow: %d-%d=%d. ", da, db, da + 10, db, da + 10 - db);
            borrow = 1;
        } else {
            append(buf, len, size, "%d-%d=%d. ", da, db, da - db);
            borrow = 0;
        }
    }
}

/* a times a single digit d, with carries. */
static void steps_mul_digit(int64_t a, int d, char *buf, size_t *len, size_t size) {
    int n = num_digits(a), carry = 0;
    for (int i = 0; i < n; i++) {
        int da = digit_at(a, i), p = da * d + carry;
        if (carry) append(buf, len, size, "%d*%d+%d=%d", da, d, carry, p);
        else append(buf, len, size, "%d*%d=%d", da, d, p);
        carry = p / 10;
        if (i == n - 1) append(buf, len, size, ", write %d. ", p);
        else append(buf, len, size, carry ? ", write %d carry %d. " : ", write %d. ", p % 10, carry);
    }
}

/* The split a problem belongs to, by its content (operands and operator), so a held-out
 * set never shares a problem with the training sets, whatever their seeds and indices:
 * one problem in DATA_SPLIT_HELD_OUT_SHARE is held out (a SplitMix64 hash of the content). */
static int content_split(int64_t a, char op, int64_t b) {
    uint64_t h = (uint64_t)a * 0x9E3779B97F4A7C15ull ^ (uint64_t)b * 0xBF58476D1CE4E5B9ull ^ (uint64_t)(unsigned char)op;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    return h % DATA_SPLIT_HELD_OUT_SHARE == 0 ? DATA_SPLIT_HELD_OUT : DATA_SPLIT_TRAIN;
}

/* Draws op, a, b from r; redraws (on the same stream) until the content is in opt->split. */
static void draw_problem(rng_stream *r, const data_arith_options *opt, char *op, int64_t *a, int64_t *b) {
    const char *ops = opt->ops && opt->ops[0] ? opt->ops : "+-*";
    int d = opt->difficulty < 1 ? 1 : opt->difficulty > 5 ? 5 : opt->difficulty;
    for (;;) {
        *op = ops[rng_next_below(r, (uint32_t)strlen(ops))];
        *a = random_with_digits(r, d);
        *b = random_with_digits(r, *op == '*' ? (d >= 4 ? 2 : 1) : d);
        if (opt->split == DATA_SPLIT_ALL || content_split(*a, *op, *b) == opt->split) return;
    }
}

void data_arith_problem(uint64_t seed, uint64_t index, const data_arith_options *opt, char *prompt,
                        char *answer, char *response, size_t size) {
    rng_stream r = rng_stream_make(seed, index);
    char op;
    int64_t a, b, result;
    draw_problem(&r, opt, &op, &a, &b);
    size_t len = 0;
    append(response, &len, size, "<think>");
    if (op == '*') {
        result = a * b;
        if (b < 10) {
            steps_mul_digit(a, (int)b, response, &len, size);
        } else {
            int64_t lo = a * (b % 10), hi = a * (b / 10) * 10;
            append(response, &len, size, "%" PRId64 "*%d: ", a, (int)(b % 10));
            steps_mul_digit(a, (int)(b % 10), response, &len, size);
            append(response, &len, size, "%" PRId64 "*%d: ", a, (int)(b / 10));
            steps_mul_digit(a, (int)(b / 10), response, &len, size);
            append(response, &len, size, "shift: %" PRId64 ". Add %" PRId64 "+%" PRId64 ": ", hi, lo, hi);
            steps_add(lo, hi, response, &len, size);
        }
    } else if (op == '+') {
        result = a + b;
        steps_add(a, b, response, &len, size);
    } else {
        result = a - b;
        if (a >= b) steps_sub(a, b, response, &len, size);
        else {
            append(response, &len, size, "%" PRId64 "<%" PRId64 ", so compute %" PRId64 "-%" PRId64
                   " and negate. ", a, b, b, a);
            steps_sub(b, a, response, &len, size);
        }
    }
    int64_t shown = result;
    if (opt->answer_noise > 0 && rng_next_uniform(&r) < opt->answer_noise) {
        int64_t delta = 1 + (int64_t)rng_next_below(&r, 10);
        shown = result + (rng_next_below(&r, 2) ? delta : -delta);
    }
    append(response, &len, size, "</think> <answer>%" PRId64 "</answer>", shown);
    snprintf(prompt, size, "What is %" PRId64 " %c %" PRId64 "?", a, op, b);
    snprintf(answer, size, "%" PRId64, result);
}

grpo_status data_write_arith(FILE *out, uint64_t seed, int64_t index_offset, int n, const data_arith_options *opt) {
    char prompt[2048], answer[2048], response[2048], id[64];
    for (int i = 0; i < n; i++) {
        uint64_t index = (uint64_t)(index_offset + i);
        data_arith_problem(seed, index, opt, prompt, answer, response, sizeof response);
        snprintf(id, sizeof id, "arith-%" PRIu64 "-%" PRIu64, seed, index);
        json_t *line = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "prompt", prompt, "answer", answer,
                                 "response", response);
        if (!line || json_dumpf(line, out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || fputc('\n', out) == EOF) {
            json_decref(line);
            return grpo_fail(GRPO_ERR_IO, "data arith: cannot write line %d", i + 1);
        }
        json_decref(line);
    }
    return GRPO_OK;
}
