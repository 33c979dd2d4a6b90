/* Tests of the math verifier: the hand-written case table tests/fixtures/math_cases.jsonl
 * (every mismatch is printed), exact rational arithmetic, extraction spans, the
 * options, and hostile inputs. */
#include <jansson.h>
#include <limits.h>
#include <string.h>

#include "tests/harness.h"
#include "verifiers/math.h"
#include "verifiers/rational.h"

static void test_rational(void) {
    rational a, b, r;
    CHECK_INT(RATIONAL_OK, rational_make(6, -4, &a));
    CHECK(a.num == -3 && a.den == 2);
    CHECK_INT(RATIONAL_OK, rational_make(1, 3, &b));
    CHECK_INT(RATIONAL_OK, rational_add(a, b, &r));
    CHECK(r.num == -7 && r.den == 6);   /* -3/2 + 1/3 = -7/6 */
    CHECK_INT(RATIONAL_OK, rational_mul(a, b, &r));
    CHECK(r.num == -1 && r.den == 2);
    CHECK_INT(RATIONAL_DIV_ZERO, rational_div(a, rational_from_int(0), &r));
    CHECK_INT(RATIONAL_DIV_ZERO, rational_make(1, 0, &r));
    /* 2^126 fits, 2^127 does not (num is signed 128-bit) */
    CHECK_INT(RATIONAL_OK, rational_pow_int(rational_from_int(2), 126, &r));
    CHECK_INT(RATIONAL_OVERFLOW, rational_pow_int(rational_from_int(2), 127, &r));
    CHECK_INT(RATIONAL_OK, rational_pow_int(rational_from_int(-1), 1000001, &r));
    CHECK(r.num == -1 && r.den == 1);
    CHECK_INT(RATIONAL_OK, rational_pow_int(rational_from_int(2), -3, &r));
    CHECK(r.num == 1 && r.den == 8);
    CHECK_INT(RATIONAL_DIV_ZERO, rational_pow_int(rational_from_int(0), -1, &r));
    /* roots */
    rational_make(8, 27, &a);
    CHECK_INT(RATIONAL_OK, rational_root(a, 3, &r));
    CHECK(r.num == 2 && r.den == 3);
    CHECK_INT(RATIONAL_INEXACT, rational_root(rational_from_int(2), 2, &r));
    CHECK_INT(RATIONAL_UNDEFINED, rational_root(rational_from_int(-4), 2, &r));
    CHECK_INT(RATIONAL_OK, rational_root(rational_from_int(-32), 5, &r));
    CHECK(r.num == -2 && r.den == 1);
    /* a large perfect square: (10^18 + 9)^2 */
    rational big = { (rational_int)1000000000000000009LL * (rational_int)1000000000000000009LL, 1 };
    CHECK_INT(RATIONAL_OK, rational_root(big, 2, &r));
    CHECK(r.num == (rational_int)1000000000000000009LL);
    big.num += 1;
    CHECK_INT(RATIONAL_INEXACT, rational_root(big, 2, &r));
    /* comparison without overflow: products would need 256 bits */
    rational x = { ((rational_int)1 << 120) + 1, ((rational_int)1 << 120) };
    rational y = { ((rational_int)1 << 120) + 3, ((rational_int)1 << 120) + 2 };
    CHECK_INT(1, rational_cmp(x, y));     /* 1 + 2^-120 > 1 + 1/(2^120 + 2) */
    CHECK_INT(-1, rational_cmp(y, x));
    CHECK_INT(0, rational_cmp(x, x));
    rational nx;
    rational_neg(x, &nx);
    CHECK_INT(-1, rational_cmp(nx, y));
    /* decimals */
    size_t used;
    CHECK_INT(RATIONAL_OK, rational_parse_decimal("12.50e-1xyz", 11, &r, &used));
    CHECK_INT(8, used);
    CHECK(r.num == 5 && r.den == 4);
    CHECK_INT(RATIONAL_OK, rational_parse_decimal("2e", 2, &r, &used));
    CHECK_INT(1, used);
    CHECK_INT(RATIONAL_OVERFLOW, rational_parse_decimal("1e400", 5, &r, &used));
    char buf[64];
    rational_make(-7, 6, &r);
    rational_format(r, buf, sizeof buf);
    CHECK_STR("-7/6", buf);
}

static int parse_rule(const char *name) {
    for (int r = VERIFY_MATH_RULE_NONE; r <= VERIFY_MATH_RULE_LAST_NUMBER; r++)
        if (strcmp(verify_math_rule_name((verify_math_rule)r), name) == 0) return r;
    return -1;
}

static int parse_status(const char *name) {
    for (int s = VERIFY_MATH_OK; s <= VERIFY_MATH_GOLD_UNPARSEABLE; s++)
        if (strcmp(verify_math_status_name((verify_math_status)s), name) == 0) return s;
    return -1;
}

/* Every line of the case table; prints each mismatch with its line number. */
static void test_case_table(void) {
    const char *path = harness_source_path("tests/fixtures/math_cases.jsonl");
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return;
    char line[16384];
    int lineno = 0, cases = 0, mismatches = 0, positives = 0, negatives = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        json_error_t jerr;
        json_t *obj = json_loads(line, 0, &jerr);
        CHECK_MSG(obj != NULL, "%s:%d: bad JSON: %s", path, lineno, jerr.text);
        if (!obj) continue;
        const char *gold = json_string_value(json_object_get(obj, "gold"));
        const char *response = json_string_value(json_object_get(obj, "response"));
        json_t *expected = json_object_get(obj, "expected");
        CHECK_MSG(gold && response && json_is_boolean(expected), "%s:%d: needs gold, response, expected", path, lineno);
        if (!gold || !response || !json_is_boolean(expected)) { json_decref(obj); continue; }
        verify_math_options opt;
        verify_math_options_default(&opt);
        json_t *o = json_object_get(obj, "options");
        if (json_is_true(json_object_get(o, "last_number_fallback"))) opt.last_number_fallback = 1;
        const char *want_status = json_string_value(json_object_get(obj, "status"));
        const char *want_rule = json_string_value(json_object_get(obj, "rule"));
        verify_math_result r;
        grpo_status st = verify_math(gold, response, &opt, &r);
        int want = json_is_true(expected);
        int status_want = want_status ? parse_status(want_status) : VERIFY_MATH_OK;
        int rule_want = want_rule ? parse_rule(want_rule) : -1;
        int ok = r.correct == want && (int)r.status == status_want && (rule_want < 0 || (int)r.rule == rule_want) &&
                 (st == GRPO_OK) == (r.status != VERIFY_MATH_GOLD_UNPARSEABLE);
        cases++;
        positives += want;
        negatives += !want;
        harness_checks++;
        if (!ok) {
            mismatches++;
            harness_failures++;
            fprintf(stderr, "%s:%d: gold \"%s\" response \"%s\": expected %s/%s%s%s, got %s/%s rule %s (extracted \"%s\")%s%s\n",
                    path, lineno, gold, response, want ? "correct" : "wrong", want_status ? want_status : "ok",
                    want_rule ? " rule " : "", want_rule ? want_rule : "", r.correct ? "correct" : "wrong",
                    verify_math_status_name(r.status), verify_math_rule_name(r.rule), r.extracted,
                    st ? ": " : "", st ? grpo_error_message() : "");
        }
        json_decref(obj);
    }
    fclose(f);
    printf("math case table: %d cases (%d correct, %d wrong expected), %d mismatches\n", cases, positives, negatives,
           mismatches);
    CHECK_MSG(cases >= 200, "the case table has only %d cases", cases);
}

static void test_extract_spans(void) {
    const char *r = "We find x. <answer> \\boxed{\\frac{1}{2}} </answer>";
    size_t a, n;
    CHECK_INT(VERIFY_MATH_RULE_BOXED, verify_math_extract(r, strlen(r), NULL, &a, &n));
    CHECK(n == 11 && strncmp(r + a, "\\frac{1}{2}", n) == 0);
    const char *nested = "\\boxed{\\frac{\\sqrt{3}}{2}} trailing";
    CHECK_INT(VERIFY_MATH_RULE_BOXED, verify_math_extract(nested, strlen(nested), NULL, &a, &n));
    CHECK(n == strlen("\\frac{\\sqrt{3}}{2}") && strncmp(nested + a, "\\frac{\\sqrt{3}}{2}", n) == 0);
    /* an unclosed last box falls back to the previous complete one */
    const char *unclosed = "\\boxed{7} and then \\boxed{8";
    CHECK_INT(VERIFY_MATH_RULE_BOXED, verify_math_extract(unclosed, strlen(unclosed), NULL, &a, &n));
    CHECK(n == 1 && unclosed[a] == '7');
    /* bare responses: only when short, and only when enabled */
    verify_math_options opt;
    verify_math_options_default(&opt);
    CHECK_INT(VERIFY_MATH_RULE_WHOLE, verify_math_extract(" 12 ", 4, &opt, &a, &n));
    CHECK(a == 1 && n == 2);
    opt.bare_max_len = 0;
    CHECK_INT(VERIFY_MATH_RULE_NONE, verify_math_extract(" 12 ", 4, &opt, &a, &n));
    opt.last_number_fallback = 1;
    CHECK_INT(VERIFY_MATH_RULE_LAST_NUMBER, verify_math_extract("so -3.5 apples", 14, &opt, &a, &n));
    CHECK(n == 4 && strncmp("so -3.5 apples" + a, "-3.5", 4) == 0);
    /* the verdict carries what was extracted */
    verify_math_result res;
    CHECK_OK(verify_math("17", "thus \\boxed{17}", NULL, &res));
    CHECK_STR("17", res.extracted);
    CHECK_INT(1, res.correct);
    CHECK_INT(0, res.extracted_truncated);
}

static void test_api_errors(void) {
    verify_math_result r;
    CHECK_FAILS(verify_math(NULL, "1", NULL, &r), "NULL");
    CHECK_FAILS(verify_math("1", NULL, NULL, &r), "NULL");
    CHECK_FAILS(verify_math("1", "1", NULL, NULL), "NULL");
    /* a broken gold is an error with a message, never a reward */
    CHECK_FAILS(verify_math("\\frac{1}{", "\\boxed{1}", NULL, &r), "gold answer");
    CHECK_INT(VERIFY_MATH_GOLD_UNPARSEABLE, r.status);
    CHECK_INT(0, r.correct);
    /* even when the response has no answer at all */
    CHECK_FAILS(verify_math("(((", "no idea, sorry, I cannot solve this particular problem at all today", NULL, &r),
                "gold answer");
    CHECK_INT(VERIFY_MATH_GOLD_UNPARSEABLE, r.status);
    CHECK_INT(-1, verify_math_equal("\\frac{1}{", "1"));
    CHECK_INT(1, verify_math_equal("\\frac{1}{2}", "0.5"));
    CHECK_INT(0, verify_math_equal("\\frac{1}{2}", "\\frac{1}{"));
    CHECK_OK(verify_math_check_parse("\\sqrt[3]{x} + \\frac{1}{2}", NULL));
    CHECK_FAILS(verify_math_check_parse("\\sqrt[3]{x} + ", NULL), "offset");
    /* long extractions are truncated in the report, not in the comparison */
    static char longans[2000];
    memset(longans, 0, sizeof longans);
    strcpy(longans, "\\boxed{");
    size_t k = strlen(longans);
    for (int i = 0; i < 300; i++) { memcpy(longans + k, "1+", 2); k += 2; }
    strcpy(longans + k, "1}");
    CHECK_OK(verify_math("301", longans, NULL, &r));
    CHECK_INT(1, r.correct);
    CHECK_INT(1, r.extracted_truncated);
    CHECK_INT(VERIFY_MATH_EXTRACTED_CAP - 1, strlen(r.extracted));
}

static void test_options(void) {
    verify_math_options opt;
    verify_math_options_default(&opt);
    CHECK_INT(1, verify_math_equal_opts("\\frac{1}{3}", "0.333333", &opt));
    opt.min_sig_digits = 0;   /* decimals only ever equal exactly */
    CHECK_INT(0, verify_math_equal_opts("\\frac{1}{3}", "0.333333", &opt));
    verify_math_options_default(&opt);
    CHECK_INT(1, verify_math_equal_opts("\\pi", "3.1415927", &opt));   /* pi correctly rounded */
    CHECK_INT(0, verify_math_equal_opts("\\pi", "3.1415926", &opt));   /* truncated */
    opt.rel_tol = 1e-2;
    CHECK_INT(1, verify_math_equal_opts("\\sqrt{2}", "\\frac{99}{70}", &opt));   /* 1.41428 vs 1.41421 */
    verify_math_options_default(&opt);
    CHECK_INT(0, verify_math_equal_opts("\\sqrt{2}", "\\frac{99}{70}", &opt));
    /* depth limit: deep nesting is an error, not a crash */
    static char deep[5000];
    size_t n = 0;
    for (int i = 0; i < 2000; i++) deep[n++] = '(';
    deep[n++] = '1';
    for (int i = 0; i < 2000; i++) deep[n++] = ')';
    deep[n] = 0;
    CHECK_INT(-1, verify_math_equal(deep, "1"));
    opt.max_depth = 5000;
    opt.max_answer_len = 100000;
    CHECK(verify_math_equal_opts(deep, "1", &opt) >= -1);   /* either way, no stack overflow */
    /* a different seed gives the same verdicts on identities */
    verify_math_options_default(&opt);
    opt.seed = 12345;
    CHECK_INT(1, verify_math_equal_opts("(x+1)^2", "x^2+2x+1", &opt));
    CHECK_INT(0, verify_math_equal_opts("(x+1)^2", "x^2+2x+2", &opt));
}

static void test_normalize(void) {
    char out[256];
    verify_math_normalize("$\\left( 1{,}000 , 2 \\right)$.", 29, out, sizeof out);
    CHECK_STR("( 1000 , 2 )", out);
    verify_math_normalize("5\\text{ cm}^2", 13, out, sizeof out);
    CHECK_STR("5", out);
    verify_math_normalize("30^{\\circ}", 10, out, sizeof out);
    CHECK_STR("30", out);
    /* truncation reports the full length */
    size_t full = verify_math_normalize("123456789", 9, out, 4);
    CHECK_INT(9, full);
    CHECK_STR("123", out);
}

int main(void) {
    test_rational();
    test_case_table();
    test_extract_spans();
    test_api_errors();
    test_options();
    test_normalize();
    TEST_MAIN_END();
}
