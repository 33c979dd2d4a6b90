/* Format and shaping rewards for R1-style completions: the template match (PCRE2), tag
 * counts, language consistency, n-gram repetition penalty and DAPO's soft overlong
 * penalty. Each returns one float score; none allocates beyond a call's scratch, and all
 * are thread-safe (a compiled verify_format may be shared by threads). */
#ifndef GRPO_VERIFY_FORMAT_H
#define GRPO_VERIFY_FORMAT_H

#include <stddef.h>

#include "core/status.h"

/* The R1 template: reasoning in <think>, then the answer in <answer> (DeepSeek-R1 report,
 * sec. 2.2.2; the same pattern as open-r1's format reward, with \s* between the blocks).
 * Compiled with PCRE2_DOTALL so '.' spans newlines. */
#define VERIFY_FORMAT_R1_PATTERN "^<think>.*?</think>\\s*<answer>.*?</answer>$"

typedef struct verify_format verify_format;

/* Compiles `pattern` (NULL: VERIFY_FORMAT_R1_PATTERN) with PCRE2_DOTALL (and JIT when
 * available). On a bad pattern returns GRPO_ERR_PARSE with PCRE2's message and offset,
 * and *out stays NULL. The caller frees with verify_format_free. */
grpo_status verify_format_create(const char *pattern, verify_format **out);
void verify_format_free(verify_format *f);

/* *score = 1 when text[0..len) matches the pattern, else 0. A PCRE2 failure (match limit
 * on a pathological pattern) returns GRPO_ERR_BACKEND with the library's message. */
grpo_status verify_format_match(const verify_format *f, const char *text, size_t len, float *score);

/* 0.25 for each of the four tags present exactly once (open-r1's tag_count_reward).
 * newlines != 0 counts open-r1's exact strings "<think>\n", "\n</think>\n", "\n<answer>\n",
 * "\n</answer>"; newlines == 0 counts the bare tags. Non-overlapping counts. */
float verify_format_tag_count(const char *text, size_t len, int newlines);

typedef enum {
    VERIFY_FORMAT_SCRIPT_LATIN = 0,   /* ASCII letters, Latin-1 and Latin Extended A/B/Additional */
    VERIFY_FORMAT_SCRIPT_CJK          /* CJK ideographs (incl. ext. A-F, compatibility), kana, Hangul */
} verify_format_script;

/* Language consistency (R1 report sec. 2.3.2, there per word; here per letter): the share
 * of letters of text (UTF-8) that belong to `script`, in [0, 1]. Letters are those of
 * Latin, CJK, Greek, Cyrillic, Armenian, Hebrew, Arabic, Devanagari, Thai and Hangul;
 * digits, punctuation and symbols do not count. No letters at all gives 1. Invalid UTF-8
 * bytes are skipped. */
float verify_format_language_consistency(const char *text, size_t len, verify_format_script script);

/* N-gram repetition penalty (Yeo et al. 2025, "Demystifying Long Chain-of-Thought
 * Reasoning", appendix C.2; open-r1's repetition_penalty_reward): words are the
 * whitespace-separated tokens, ASCII-lowercased; with T n-grams of which U are distinct
 * the score is (1 - U / T) * max_penalty, in [max_penalty, 0]. Fewer than ngram_size words
 * (or empty text) give 0. Requires ngram_size >= 1 and max_penalty <= 0 (check config
 * values with verify_format_repetition_check). Returns 0 if scratch memory runs out. */
float verify_format_repetition_penalty(const char *text, size_t len, int ngram_size, float max_penalty);
grpo_status verify_format_repetition_check(int ngram_size, float max_penalty);

/* DAPO soft overlong punishment (Yu et al. 2025, eq. 13): with L = length, 0 when
 * L <= max_len - cache_len, ((max_len - cache_len) - L) / cache_len when
 * max_len - cache_len < L <= max_len (linear from 0 down to -1), -1 when L > max_len.
 * cache_len == 0 makes it a step at max_len. Requires 0 <= cache_len <= max_len (check
 * config values with verify_format_overlong_check). */
float verify_format_overlong_penalty(long length, long max_len, long cache_len);
grpo_status verify_format_overlong_check(long max_len, long cache_len);

#endif
