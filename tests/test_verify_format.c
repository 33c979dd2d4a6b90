/* Tests of the format rewards: template match, tag counts, language consistency,
 * repetition penalty (against a brute-force count) and the DAPO overlong penalty. */
#include <string.h>

#include "core/rng.h"
#include "tests/harness.h"
#include "verifiers/format.h"

static float match(const verify_format *f, const char *s) {
    float score = -1;
    CHECK_OK(verify_format_match(f, s, strlen(s), &score));
    return score;
}

static void test_template(void) {
    verify_format *f = NULL;
    CHECK_OK(verify_format_create(NULL, &f));
    if (!f) return;
    CHECK_NEAR(1, match(f, "<think>a\nb</think>\n<answer>5</answer>"), 0, 0);
    CHECK_NEAR(1, match(f, "<think></think><answer></answer>"), 0, 0);
    CHECK_NEAR(1, match(f, "<think>x</think>  \n\t<answer>\n5\n</answer>\n"), 0, 0);   /* $ before a final newline */
    CHECK_NEAR(0, match(f, "Sure! <think>x</think><answer>5</answer>"), 0, 0);
    CHECK_NEAR(0, match(f, "<think>x</think><answer>5</answer> trailing"), 0, 0);
    CHECK_NEAR(0, match(f, "<think>x</think>"), 0, 0);
    CHECK_NEAR(0, match(f, "<think>x</think> text <answer>5</answer>"), 0, 0);
    CHECK_NEAR(0, match(f, ""), 0, 0);
    /* embedded NUL bytes are part of the text, not its end */
    const char nul[] = "<think>a\0b</think><answer>1</answer>";
    float score = -1;
    CHECK_OK(verify_format_match(f, nul, sizeof nul - 1, &score));
    CHECK_NEAR(1, score, 0, 0);
    verify_format_free(f);
    /* a configured pattern */
    CHECK_OK(verify_format_create("^\\s*<answer>\\d+</answer>\\s*$", &f));
    if (f) {
        CHECK_NEAR(1, match(f, " <answer>42</answer>\n"), 0, 0);
        CHECK_NEAR(0, match(f, "<answer>4x</answer>"), 0, 0);
        verify_format_free(f);
    }
    f = (verify_format *)1;
    CHECK_FAILS(verify_format_create("<think>(", &f), "offset");
    CHECK(f == NULL);
    verify_format_free(NULL);
}

static void test_tag_count(void) {
    const char *good = "<think>\nreason\n</think>\n<answer>\n5\n</answer>";
    CHECK_NEAR(1.0, verify_format_tag_count(good, strlen(good), 1), 0, 0);
    CHECK_NEAR(1.0, verify_format_tag_count(good, strlen(good), 0), 0, 0);
    const char *compact = "<think>reason</think><answer>5</answer>";
    CHECK_NEAR(0.0, verify_format_tag_count(compact, strlen(compact), 1), 0, 0);
    CHECK_NEAR(1.0, verify_format_tag_count(compact, strlen(compact), 0), 0, 0);
    const char *twice = "<think>a</think><think>b</think><answer>5</answer>";
    CHECK_NEAR(0.5, verify_format_tag_count(twice, strlen(twice), 0), 0, 0);
    const char *only_answer = "<answer>5</answer>";
    CHECK_NEAR(0.5, verify_format_tag_count(only_answer, strlen(only_answer), 0), 0, 0);
    CHECK_NEAR(0.0, verify_format_tag_count("", 0, 0), 0, 0);
}

static void test_language(void) {
    const char *mixed = "hello \xe4\xb8\x96\xe7\x95\x8c";   /* hello 世界 */
    CHECK_NEAR(5.0 / 7, verify_format_language_consistency(mixed, strlen(mixed), VERIFY_FORMAT_SCRIPT_LATIN), 1e-6, 0);
    CHECK_NEAR(2.0 / 7, verify_format_language_consistency(mixed, strlen(mixed), VERIFY_FORMAT_SCRIPT_CJK), 1e-6, 0);
    const char *cyr = "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 hello";   /* Привет hello */
    CHECK_NEAR(5.0 / 11, verify_format_language_consistency(cyr, strlen(cyr), VERIFY_FORMAT_SCRIPT_LATIN), 1e-6, 0);
    CHECK_NEAR(1.0, verify_format_language_consistency("12 + 3 = 15 !", 13, VERIFY_FORMAT_SCRIPT_CJK), 0, 0);
    const char *accents = "caf\xc3\xa9 na\xc3\xafve";   /* café naïve: all Latin */
    CHECK_NEAR(1.0, verify_format_language_consistency(accents, strlen(accents), VERIFY_FORMAT_SCRIPT_LATIN), 0, 0);
    /* invalid UTF-8 is skipped, not a crash */
    const char bad[] = "ab\xff\xc3";
    CHECK_NEAR(1.0, verify_format_language_consistency(bad, sizeof bad - 1, VERIFY_FORMAT_SCRIPT_LATIN), 0, 0);
}

/* Brute force: distinct n-grams by pairwise comparison of lowercased word lists. */
static double repetition_reference(char words[][8], int nwords, int n, double max_penalty) {
    if (nwords < n || nwords == 0) return 0;
    int total = nwords - n + 1, unique = 0;
    for (int i = 0; i < total; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) {
            int same = 1;
            for (int k = 0; k < n && same; k++) same = strcasecmp(words[i + k], words[j + k]) == 0;
            seen = same;
        }
        unique += !seen;
    }
    return (1.0 - (double)unique / total) * max_penalty;
}

static void test_repetition(void) {
    const char *abab = "a b a b a b";
    /* bigrams ab ba ab ba ab: 5 total, 2 distinct */
    CHECK_NEAR(-0.6, verify_format_repetition_penalty(abab, strlen(abab), 2, -1.0f), 1e-6, 0);
    CHECK_NEAR(0.0, verify_format_repetition_penalty("one two three", 13, 3, -1.0f), 0, 0);
    CHECK_NEAR(0.0, verify_format_repetition_penalty("one two", 7, 3, -1.0f), 0, 0);
    CHECK_NEAR(0.0, verify_format_repetition_penalty("", 0, 3, -1.0f), 0, 0);
    const char *cased = "The cat THE CAT the cat";   /* lowercased: 3 copies of "the cat" */
    CHECK_NEAR(-0.5 * (1 - 2.0 / 5), verify_format_repetition_penalty(cased, strlen(cased), 2, -0.5f), 1e-6, 0);
    const char *spaces = "x\xc2\xa0y x\xe3\x80\x80y";   /* NBSP and ideographic space split words: x y x y */
    CHECK_NEAR(-1.0 * (1 - 2.0 / 4), verify_format_repetition_penalty(spaces, strlen(spaces), 1, -1.0f), 1e-6, 0);
    CHECK_OK(verify_format_repetition_check(3, -1.0f));
    CHECK_FAILS(verify_format_repetition_check(0, -1.0f), "ngram_size");
    CHECK_FAILS(verify_format_repetition_check(3, 0.5f), "max_penalty");
    /* random texts over a tiny vocabulary against the brute force */
    static const char *vocab[] = { "a", "B", "b", "cc", "Cc", "d" };
    for (int trial = 0; trial < 200; trial++) {
        char words[64][8];
        char text[64 * 9];
        int nwords = (int)(rng_u32(7, 1, (uint64_t)trial) % 40), len = 0;
        for (int w = 0; w < nwords; w++) {
            const char *v = vocab[rng_u32(7, 2, (uint64_t)(trial * 64 + w)) % 6];
            strcpy(words[w], v);
            len += sprintf(text + len, "%s%s", w ? ((w % 3) ? " " : "\n\t") : "", v);
        }
        int n = 1 + (int)(rng_u32(7, 3, (uint64_t)trial) % 4);
        double want = repetition_reference(words, nwords, n, -0.7);
        CHECK_NEAR(want, verify_format_repetition_penalty(text, (size_t)len, n, -0.7f), 1e-6, 1e-6);
    }
}

static void test_overlong(void) {
    /* max 100, cache 20: flat to 80, linear to -1 at 100, -1 beyond */
    CHECK_NEAR(0.0, verify_format_overlong_penalty(10, 100, 20), 0, 0);
    CHECK_NEAR(0.0, verify_format_overlong_penalty(80, 100, 20), 0, 0);
    CHECK_NEAR(-0.05, verify_format_overlong_penalty(81, 100, 20), 1e-7, 0);
    CHECK_NEAR(-0.5, verify_format_overlong_penalty(90, 100, 20), 1e-7, 0);
    CHECK_NEAR(-1.0, verify_format_overlong_penalty(100, 100, 20), 1e-7, 0);
    CHECK_NEAR(-1.0, verify_format_overlong_penalty(101, 100, 20), 0, 0);
    CHECK_NEAR(0.0, verify_format_overlong_penalty(100, 100, 0), 0, 0);   /* step */
    CHECK_NEAR(-1.0, verify_format_overlong_penalty(101, 100, 0), 0, 0);
    CHECK_OK(verify_format_overlong_check(100, 20));
    CHECK_FAILS(verify_format_overlong_check(100, 200), "cache_len");
    CHECK_FAILS(verify_format_overlong_check(0, 0), "max_len");
}

int main(void) {
    test_template();
    test_tag_count();
    test_language();
    test_repetition();
    test_overlong();
    TEST_MAIN_END();
}
