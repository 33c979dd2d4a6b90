/* Countdown verifier (see countdown.h): extraction, symbol normalisation, a small
 * recursive-descent parser that evaluates with exact rationals while it records the
 * number literals, then the multiset check of the numbers used. */
#include <string.h>

#include "verifiers/countdown.h"
#include "verifiers/rational.h"

#define COUNTDOWN_BUF 4096
#define COUNTDOWN_MAX_LITERALS 256
#define COUNTDOWN_MAX_DEPTH 200

void verify_countdown_options_default(verify_countdown_options *opt) {
    opt->use_all_numbers = 0;
    opt->max_len = 1024;
}

const char *verify_countdown_verdict_name(verify_countdown_verdict v) {
    switch (v) {
    case VERIFY_COUNTDOWN_CORRECT: return "correct";
    case VERIFY_COUNTDOWN_WRONG_VALUE: return "wrong_value";
    case VERIFY_COUNTDOWN_BAD_NUMBERS: return "bad_numbers";
    case VERIFY_COUNTDOWN_UNPARSEABLE: return "unparseable";
    }
    return "unknown";
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* ---- normalisation -------------------------------------------------------------------- */
static const struct { const char *from, *to; } symbols[] = {
    { "\\times", "*" }, { "\\cdot", "*" }, { "\\div", "/" }, { "\\left", "" }, { "\\right", "" },
    { "\\(", "" }, { "\\)", "" }, { "\\[", "" }, { "\\]", "" }, { "$", "" },
    { "\xc3\x97", "*" }, { "\xc2\xb7", "*" }, { "\xe2\x8b\x85", "*" }, { "\xe2\x88\x97", "*" },
    { "\xc3\xb7", "/" }, { "\xe2\x88\x92", "-" }, { "\xe2\x80\x93", "-" }, { "\xc2\xa0", " " },
    { NULL, NULL }
};

/* Writes the normalised expr into buf; returns its length, or cap when it does not fit. */
static size_t normalize(const char *s, size_t n, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int hit = 0;
        for (int k = 0; symbols[k].from; k++) {
            size_t fl = strlen(symbols[k].from);
            if (i + fl <= n && memcmp(s + i, symbols[k].from, fl) == 0) {
                size_t tl = strlen(symbols[k].to);
                if (o + tl >= cap) return cap;
                memcpy(buf + o, symbols[k].to, tl);
                o += tl;
                i += fl;
                hit = 1;
                break;
            }
        }
        if (hit) continue;
        if (s[i] == '=') break;   /* "expr = value": keep expr */
        if (o + 1 >= cap) return cap;
        buf[o++] = s[i++];
    }
    buf[o] = 0;
    return o;
}

/* ---- parser / evaluator ---------------------------------------------------------------- */
typedef struct {
    const char *s;
    size_t n, pos;
    int depth;
    int syntax_error;
    int div_zero, overflow;
    long long literals[COUNTDOWN_MAX_LITERALS];
    int nliterals, too_many_literals;
} cd_parser;

static char cd_peek(cd_parser *p) {
    while (p->pos < p->n && is_space(p->s[p->pos])) p->pos++;
    return p->pos < p->n ? p->s[p->pos] : 0;
}

/* Arithmetic that records failures instead of stopping: the parse must finish to tell
 * a syntax error from a bad value. */
static rational cd_apply(cd_parser *p, char op, rational a, rational b) {
    rational r = rational_from_int(0);
    rational_status s;
    switch (op) {
    case '+': s = rational_add(a, b, &r); break;
    case '-': s = rational_sub(a, b, &r); break;
    case '*': s = rational_mul(a, b, &r); break;
    default: s = rational_div(a, b, &r); break;
    }
    if (s == RATIONAL_DIV_ZERO) p->div_zero = 1;
    else if (s != RATIONAL_OK) p->overflow = 1;
    return r;
}

static rational cd_expr(cd_parser *p);

static rational cd_factor(cd_parser *p) {
    rational zero = rational_from_int(0);
    if (++p->depth > COUNTDOWN_MAX_DEPTH) { p->syntax_error = 1; return zero; }
    rational r = zero;
    char c = cd_peek(p);
    if (c == '-' || c == '+') {
        p->pos++;
        r = cd_factor(p);
        if (c == '-') rational_neg(r, &r);
    } else if (c == '(') {
        p->pos++;
        r = cd_expr(p);
        if (cd_peek(p) != ')') p->syntax_error = 1;
        else p->pos++;
    } else if (c >= '0' && c <= '9') {
        long long v = 0;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
            if (v > 100000000000000LL) p->overflow = 1;
            else v = v * 10 + (p->s[p->pos] - '0');
            p->pos++;
        }
        if (p->pos < p->n && p->s[p->pos] == '.') p->syntax_error = 1;   /* integers only */
        if (p->nliterals < COUNTDOWN_MAX_LITERALS) p->literals[p->nliterals++] = v;
        else p->too_many_literals = 1;
        r = rational_from_int(v);
    } else {
        p->syntax_error = 1;
    }
    p->depth--;
    return r;
}

static rational cd_term(cd_parser *p) {
    rational left = cd_factor(p);
    for (;;) {
        char c = cd_peek(p);
        if ((c != '*' && c != '/') || p->syntax_error) return left;
        p->pos++;
        left = cd_apply(p, c, left, cd_factor(p));
    }
}

static rational cd_expr(cd_parser *p) {
    rational left = cd_term(p);
    for (;;) {
        char c = cd_peek(p);
        if ((c != '+' && c != '-') || p->syntax_error) return left;
        p->pos++;
        left = cd_apply(p, c, left, cd_term(p));
    }
}

static int numbers_ok(const cd_parser *p, const long long *numbers, size_t count, int use_all) {
    if (p->too_many_literals || (size_t)p->nliterals > count) return 0;
    for (int i = 0; i < p->nliterals; i++) {
        long long v = p->literals[i];
        size_t uses = 0, avail = 0;
        for (int j = 0; j < p->nliterals; j++) uses += p->literals[j] == v;
        for (size_t j = 0; j < count; j++) avail += numbers[j] == v;
        if (uses > avail) return 0;
    }
    return !use_all || (size_t)p->nliterals == count;
}

verify_countdown_verdict verify_countdown_expression(const long long *numbers, size_t count, long long target,
                                                     const char *expr, size_t len, const verify_countdown_options *opt,
                                                     verify_countdown_result *out) {
    verify_countdown_options defaults;
    if (!opt) { verify_countdown_options_default(&defaults); opt = &defaults; }
    verify_countdown_result local;
    if (!out) out = &local;
    memset(out, 0, sizeof *out);
    size_t k = len < VERIFY_COUNTDOWN_EXPR_CAP - 1 ? len : VERIFY_COUNTDOWN_EXPR_CAP - 1;
    if (expr) memcpy(out->expression, expr, k);
    out->expression[k] = 0;
    out->verdict = VERIFY_COUNTDOWN_UNPARSEABLE;
    size_t limit = opt->max_len < COUNTDOWN_BUF - 1 ? opt->max_len : COUNTDOWN_BUF - 1;
    if (!expr || len > limit) return out->verdict;
    char buf[COUNTDOWN_BUF];
    size_t n = normalize(expr, len, buf, limit + 1);
    if (n > limit) return out->verdict;
    cd_parser p;
    memset(&p, 0, sizeof p);
    p.s = buf;
    p.n = n;
    if (cd_peek(&p) == 0) return out->verdict;
    rational value = cd_expr(&p);
    if (p.syntax_error || cd_peek(&p) != 0 || p.nliterals == 0) return out->verdict;
    if (!numbers_ok(&p, numbers, count, opt->use_all_numbers)) return out->verdict = VERIFY_COUNTDOWN_BAD_NUMBERS;
    out->division_by_zero = p.div_zero;
    if (!p.div_zero && !p.overflow) {
        if (value.num >= -(rational_int)9223372036854775807LL && value.num <= (rational_int)9223372036854775807LL &&
            value.den <= (rational_int)9223372036854775807LL) {
            out->value_known = 1;
            out->value_num = (long long)value.num;
            out->value_den = (long long)value.den;
        }
        if (rational_cmp(value, rational_from_int(target)) == 0) return out->verdict = VERIFY_COUNTDOWN_CORRECT;
    }
    return out->verdict = VERIFY_COUNTDOWN_WRONG_VALUE;
}

/* The last complete <answer>...</answer>, else the last non-empty line. */
static void extract(const char *s, size_t n, size_t *a, size_t *b) {
    const char *close = NULL;
    for (const char *q = s; (q = memmem(q, n - (size_t)(q - s), "</answer>", 9)); q += 9) close = q;
    if (close) {
        const char *open = NULL;
        for (const char *q = s; q < close && (q = memmem(q, (size_t)(close - q), "<answer>", 8)); q += 8) open = q;
        if (open) {
            *a = (size_t)(open - s) + 8;
            *b = (size_t)(close - s);
            while (*a < *b && is_space(s[*a])) (*a)++;
            while (*b > *a && is_space(s[*b - 1])) (*b)--;
            return;
        }
    }
    size_t e = n;
    while (e > 0 && is_space(s[e - 1])) e--;
    size_t st = e;
    while (st > 0 && s[st - 1] != '\n') st--;
    while (st < e && is_space(s[st])) st++;
    *a = st;
    *b = e;
}

grpo_status verify_countdown(const long long *numbers, size_t count, long long target, const char *response,
                             const verify_countdown_options *opt, verify_countdown_result *out) {
    if (!out) return grpo_fail(GRPO_ERR_INVALID, "verify_countdown: out is NULL");
    memset(out, 0, sizeof *out);
    out->verdict = VERIFY_COUNTDOWN_UNPARSEABLE;
    if (!response || (!numbers && count)) return grpo_fail(GRPO_ERR_INVALID, "verify_countdown: response or numbers is NULL");
    size_t a, b;
    extract(response, strlen(response), &a, &b);
    verify_countdown_expression(numbers, count, target, response + a, b - a, opt, out);
    return GRPO_OK;
}
