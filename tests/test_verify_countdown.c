/* Tests of the Countdown verifier: verdicts, number accounting (at most / exactly
 * once, repeated numbers), exact rational evaluation, extraction and hostile input. */
#include <string.h>

#include "tests/harness.h"
#include "verifiers/countdown.h"

static verify_countdown_verdict run(const long long *nums, size_t n, long long target, const char *response, int use_all) {
    verify_countdown_options opt;
    verify_countdown_options_default(&opt);
    opt.use_all_numbers = use_all;
    verify_countdown_result r;
    CHECK_OK(verify_countdown(nums, n, target, response, &opt, &r));
    return r.verdict;
}

int main(void) {
    const long long nums[] = { 3, 5, 2, 7 };
    /* (3 + 5) * 2 = 16 */
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(nums, 4, 16, "<answer>(3 + 5) * 2</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_BAD_NUMBERS, run(nums, 4, 16, "<answer>(3 + 5) * 2</answer>", 1));
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(nums, 4, 23, "<answer>(3 + 5) * 2 + 7</answer>", 1));
    CHECK_INT(VERIFY_COUNTDOWN_WRONG_VALUE, run(nums, 4, 17, "<answer>(3 + 5) * 2</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_BAD_NUMBERS, run(nums, 4, 16, "<answer>8 * 2</answer>", 0));      /* 8 not given */
    CHECK_INT(VERIFY_COUNTDOWN_BAD_NUMBERS, run(nums, 4, 10, "<answer>5 + 5</answer>", 0));      /* 5 twice */
    const long long twice[] = { 5, 5, 1 };
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(twice, 3, 10, "<answer>5 + 5</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(twice, 3, 10, "<answer>5 * 1 + 5</answer>", 1));
    /* exact rationals: 7 / 2 * 2 is 7, and (5 / 3) * 3 is exactly 5 */
    const long long halves[] = { 7, 2, 2 };
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(halves, 3, 7, "<answer>7 / 2 * 2</answer>", 1));
    const long long thirds[] = { 5, 3, 3 };
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(thirds, 3, 5, "<answer>5 / 3 * 3</answer>", 1));
    CHECK_INT(VERIFY_COUNTDOWN_WRONG_VALUE, run(thirds, 3, 1, "<answer>5 / 3</answer>", 0));
    /* division by zero is invalid */
    const long long z[] = { 4, 2, 2 };
    verify_countdown_result r;
    verify_countdown_options opt;
    verify_countdown_options_default(&opt);
    CHECK_OK(verify_countdown(z, 3, 4, "<answer>4 / (2 - 2)</answer>", &opt, &r));
    CHECK_INT(VERIFY_COUNTDOWN_WRONG_VALUE, r.verdict);
    CHECK_INT(1, r.division_by_zero);
    /* the value is reported */
    CHECK_OK(verify_countdown(nums, 4, 1, "<answer>7 / 2</answer>", &opt, &r));
    CHECK(r.value_known && r.value_num == 7 && r.value_den == 2);
    CHECK_STR("7 / 2", r.expression);
    /* symbols, "= target", last line, unary minus */
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(nums, 4, 16, "<answer>$(3 + 5) \\times 2$</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(nums, 4, 16, "<answer>(3+5)\xc3\x97" "2 = 16</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(nums, 4, 4, "<answer>7 \xe2\x88\x92 3</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(nums, 4, 4, "thinking...\nso:\n  7 - 3  \n\n", 0));
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(nums, 4, 2, "<answer>-3 + 5</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, run(nums, 4, 8, "<answer>1</answer> <answer>3 + 5</answer>", 0));
    /* unparseable */
    CHECK_INT(VERIFY_COUNTDOWN_UNPARSEABLE, run(nums, 4, 16, "<answer></answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_UNPARSEABLE, run(nums, 4, 16, "<answer>(3 + 5 * 2</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_UNPARSEABLE, run(nums, 4, 16, "<answer>3 ^ 2</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_UNPARSEABLE, run(nums, 4, 16, "<answer>2.5 * 2</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_UNPARSEABLE, run(nums, 4, 16, "<answer>sixteen</answer>", 0));
    CHECK_INT(VERIFY_COUNTDOWN_UNPARSEABLE, run(nums, 4, 16, "", 0));
    CHECK_INT(VERIFY_COUNTDOWN_UNPARSEABLE, run(nums, 4, 16, "<answer>= 16</answer>", 0));
    /* hostile: deep nesting and huge literals end in a verdict */
    static char deep[3000];
    memset(deep, '(', 1000);
    deep[1000] = '3';
    memset(deep + 1001, ')', 1000);
    CHECK_INT(VERIFY_COUNTDOWN_UNPARSEABLE, verify_countdown_expression(nums, 4, 3, deep, 2001, NULL, NULL));
    opt.max_len = 3000;
    CHECK_INT(VERIFY_COUNTDOWN_UNPARSEABLE, verify_countdown_expression(nums, 4, 3, deep, 2001, &opt, NULL));
    CHECK_INT(VERIFY_COUNTDOWN_CORRECT, verify_countdown_expression(nums, 4, 3, deep + 850, 301, &opt, NULL));
    CHECK_INT(VERIFY_COUNTDOWN_BAD_NUMBERS,
              verify_countdown_expression(nums, 4, 3, "99999999999999999999999 - 3", 27, NULL, NULL));
    CHECK_FAILS(verify_countdown(nums, 4, 3, NULL, NULL, &r), "NULL");
    CHECK_STR("bad_numbers", verify_countdown_verdict_name(VERIFY_COUNTDOWN_BAD_NUMBERS));
    TEST_MAIN_END();
}
