/* Internals of the reward set shared by reward.c (building) and reward_score.c (scoring). */
#ifndef GRPO_VERIFY_REWARD_IMPL_H
#define GRPO_VERIFY_REWARD_IMPL_H

#include <stdint.h>

#include "verifiers/code.h"
#include "verifiers/countdown.h"
#include "verifiers/format.h"
#include "verifiers/math.h"
#include "verifiers/reward.h"

#define REWARD_FIELD_CAP 64

/* One entry of the set, its params checked and copied (nothing points into a config doc). */
typedef struct {
    reward_kind kind;
    double weight;
    char field_a[REWARD_FIELD_CAP];    /* accuracy: answer; countdown: numbers; code: tests */
    char field_b[REWARD_FIELD_CAP];    /* countdown: target; code: language */
    verify_math_options math;          /* accuracy */
    verify_format *format;             /* format: the compiled pattern (owned) */
    int newlines;                      /* tag_count */
    verify_countdown_options countdown;
    double format_score;               /* countdown */
    double time_limit_s;               /* code */
    long memory_mb;
    verify_compare compare;
    int partial_credit;
    verify_format_script script;       /* language_consistency */
    int ngram_size;                    /* repetition_penalty */
    double max_penalty;
    int64_t max_len, cache_len;        /* overlong_penalty */
} reward_term;

struct reward_set {
    int n;
    reward_term terms[REWARD_MAX_ENTRIES];
    int has_code, has_verdict;
};

#endif
