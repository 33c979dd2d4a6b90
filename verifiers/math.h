/* Rule-based verifier for math answers: pull the final answer out of a model response,
 * normalise LaTeX/text, parse both answers into expression trees and decide equivalence
 * (exact rationals first, then long double, random points for expressions with variables).
 *
 * Include as "verifiers/math.h" (inside verifiers/ write <math.h> for the C library).
 *
 * Policy, decided once and tested by tests/fixtures/math_cases.jsonl:
 * - Extraction (verify_math_extract): inside the last complete <answer>...</answer> the last
 *   \boxed/\fbox, else a "final answer"/"the answer is" phrase, else the whole tag content;
 *   without the tag the last \boxed{...}/\fbox{...} (nested braces; "\boxed 5" too); else
 *   the last "final answer ..."/"the answer is ..." phrase; else the whole response when it
 *   is short (opt->bare_max_len); else the last number when opt->last_number_fallback.
 * - Numbers written exactly (integers, fractions, finite decimals) are exact rationals:
 *   0.5 == 1/2, 0.333 != 1/3. A decimal literal with at least opt->min_sig_digits (6)
 *   significant digits also matches any value it is the correct rounding of
 *   (|v - d| <= 0.5 * 10^-places): 0.333333 == 1/3, 6.283185307 == 2\pi, 6.2832 != 2\pi.
 *   Juxtaposition multiplies, so a mixed number 2\frac{1}{3} reads as 2/3, as in LaTeX
 *   math; 1e3 is scientific notation (1000), 2e is 2 times Euler's number; a '^' followed
 *   by digits takes them all (2^10 = 1024, the plain-text reading, not LaTeX's 2^1 0).
 * - Irrational values (sqrt of non-squares, \pi, e, logs, trig) are compared in long double
 *   with |a - b| <= rel_tol * max(|a|, |b|) + 1e-15, rel_tol = 1e-9 by default; so are
 *   exact values whose 128-bit numerator or denominator overflowed.
 * - Percent: X\% equals X/100 and also X (as Math-Verify: 50\% == 0.5 and 50\% == 50).
 *   Degrees (^\circ, °, "degrees") are dropped: 30^\circ == 30. Unit words after a number
 *   ("5 cm", "5\text{ cm}^2", "\$5") are dropped. \log without base is base 10; \ln is e.
 * - Letters are variables (single letters, with subscripts x_1; Greek commands), except
 *   e = Euler's number. i is a plain variable, not the imaginary unit: 3+4i == 4i+3 holds
 *   but (1+i)^2 == 2i does not. Both sides are evaluated at opt->num_points seeded random
 *   rational points in (0, 50] for the union of their variables, so names matter
 *   (2n+1 != 2k+1) and identities hold (\sin^2 x + \cos^2 x == 1). Points are positive:
 *   \sqrt{x^2} == x and |x| == x pass. \binom and ! need integer arguments.
 * - Structures: (a, b) is ambiguous (pair or open interval) and equals both a 2-tuple
 *   and the open interval with the same endpoints; other tuples are ordered; \{..\} sets
 *   and unbracketed lists "2, 3" are order-free; [a, b), (a, b] etc. are intervals
 *   (openness must match, \infty endpoints allowed); A \cup B unions are order-free;
 *   a \pm b is the set {a + b, a - b}; pmatrix/bmatrix are tuples of rows.
 * - Equations: gold "x = 5" vs a bare "5" compares the right-hand side; a predicted
 *   "x = 5" (or a chain "x = 2 + 3 = 5") vs a bare gold compares its last side. Two
 *   relations are equal when lhs - rhs of one is a nonzero constant multiple of the other
 *   (positive for inequalities with the same direction, negative for flipped ones; so
 *   "2y = 4x + 2" == "y = 2x + 1"), or side by side when they have no variables. A
 *   one-variable inequality ("x > 3", "1 < x \le 2") equals the matching interval, on
 *   either side.
 * - Text answers (only letters and spaces, with a word of 3+ letters, or "no", or any
 *   word written in \text{..}; e.g. "Monday", "yes") compare case-insensitively; "xy"
 *   stays a product. A gold that is one capital letter (optionally "(B)") is a
 *   multiple-choice letter: the prediction's leading "(B)", "B)", "B." or "B" is compared
 *   (case-sensitive). A trailing '!' is a factorial, not punctuation.
 * - A gold answer that does not parse is an error (VERIFY_MATH_GOLD_UNPARSEABLE), never
 *   a reward. A prediction that does not parse is simply wrong. */
#ifndef GRPO_VERIFY_MATH_H
#define GRPO_VERIFY_MATH_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum {
    VERIFY_MATH_OK = 0,             /* verdict in `correct` */
    VERIFY_MATH_NO_ANSWER,          /* no extraction rule matched the response: wrong */
    VERIFY_MATH_GOLD_UNPARSEABLE    /* the gold answer itself is broken: not a reward */
} verify_math_status;

/* Which extraction rule produced the answer. */
typedef enum {
    VERIFY_MATH_RULE_NONE = 0,
    VERIFY_MATH_RULE_BOXED,         /* last \boxed{...} / \fbox{...} */
    VERIFY_MATH_RULE_ANSWER_TAG,    /* content of the last <answer>...</answer> */
    VERIFY_MATH_RULE_ANSWER_PHRASE, /* "the answer is ..." */
    VERIFY_MATH_RULE_FINAL_ANSWER,  /* "final answer: ..." / "final answer is ..." */
    VERIFY_MATH_RULE_WHOLE,         /* a short response taken whole */
    VERIFY_MATH_RULE_LAST_NUMBER    /* last number in the response (opt-in) */
} verify_math_rule;

typedef struct {
    int last_number_fallback;   /* 0 (default): off */
    size_t bare_max_len;        /* a response up to this many bytes (trimmed) with no other
                                   match is taken whole; 0 disables; default 64 */
    double rel_tol;             /* relative tolerance for inexact values; default 1e-9 */
    int min_sig_digits;         /* decimal-rounding rule threshold; default 6; 0 disables */
    int num_points;             /* random evaluation points for variables; default 6 */
    uint64_t seed;              /* seed of those points; default 0x6d617468 */
    int max_depth;              /* parser nesting limit; default 100 */
    size_t max_answer_len;      /* longer extracted answers are not parsed; default 4096 */
} verify_math_options;

#define VERIFY_MATH_EXTRACTED_CAP 512

typedef struct {
    int correct;                            /* 1 only when status == VERIFY_MATH_OK and equal */
    verify_math_status status;
    verify_math_rule rule;
    char extracted[VERIFY_MATH_EXTRACTED_CAP];  /* the extracted answer text, NUL-terminated */
    int extracted_truncated;                /* 1 when `extracted` was cut to fit */
} verify_math_result;

/* Fills the defaults listed above. */
void verify_math_options_default(verify_math_options *opt);

/* Scores one response against one gold answer. gold may be a bare answer ("\frac12"), a
 * solution with a \boxed answer (the last box is used) or GSM8K style "... #### 42".
 * opt NULL means defaults. Returns GRPO_OK for every verdict about the response (correct,
 * wrong, no answer); returns GRPO_ERR_PARSE with out->status = VERIFY_MATH_GOLD_UNPARSEABLE
 * and a message naming the gold and the parse error when the gold is broken;
 * GRPO_ERR_INVALID for NULL arguments. Thread-safe; allocates only scratch it frees. */
grpo_status verify_math(const char *gold, const char *response, const verify_math_options *opt,
                        verify_math_result *out);

/* Compares two already-extracted answers (no extraction step) with default options.
 * Returns 1 equal, 0 not equal (or pred unparseable), -1 when gold does not parse (the
 * message is in grpo_error_message()). */
int verify_math_equal(const char *gold, const char *pred);
/* Same with options. */
int verify_math_equal_opts(const char *gold, const char *pred, const verify_math_options *opt);

/* Finds the final answer in a response of `len` bytes. On a match sets *start and *span_len
 * to a span of `response` and returns the rule; VERIFY_MATH_RULE_NONE otherwise. */
verify_math_rule verify_math_extract(const char *response, size_t len, const verify_math_options *opt,
                                     size_t *start, size_t *span_len);

/* Normalises an answer's LaTeX/text into the form the parser reads (delimiters, \left,
 * \text, units, degrees, thousands separators, unicode, trailing punctuation). Writes at
 * most cap bytes including the NUL; returns the full length (>= cap means truncated). */
size_t verify_math_normalize(const char *answer, size_t len, char *out, size_t cap);

/* Normalises and parses one (gold) answer: GRPO_OK when it parses, else GRPO_ERR_PARSE with
 * a message naming the answer, the parse error and its offset in the normalised text. */
grpo_status verify_math_check_parse(const char *answer, const verify_math_options *opt);

const char *verify_math_status_name(verify_math_status s);   /* "ok", "no_answer", "gold_unparseable" */
const char *verify_math_rule_name(verify_math_rule r);       /* "boxed", "answer_tag", ... "none" */

#endif
