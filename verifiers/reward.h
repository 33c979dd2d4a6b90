/* Reward composition: a stage's `rewards:` list (each entry {name, weight, params}) becomes a
 * reward_set that scores a response against its problem line (JSONL, DESIGN.md "Datasets")
 * and keeps every component, so the trainer can log reward/<name> beside the total.
 *
 *   rewards:
 *     - name: accuracy                  # math equivalence with the line's "answer"
 *     - name: format                    # the R1 template, 1 or 0
 *       weight: 0.5
 *     - name: overlong_penalty          # DAPO soft overlong punishment
 *       params: {max_len: 1024, cache_len: 256}
 *
 * Rewards (name: raw score; params with defaults; problem-line fields read):
 *   accuracy             1 if the response's final answer equals the gold (verifiers/math.h),
 *                        else 0. params: answer_field ("answer"; a string or an integer),
 *                        last_number_fallback (false), rel_tol (1e-9). A gold that does not
 *                        parse is an error, never a reward.
 *   format               1 if the whole response matches `pattern` (PCRE2, DOTALL; default
 *                        VERIFY_FORMAT_R1_PATTERN), else 0.
 *   tag_count            0.25 per R1 tag present exactly once (open-r1's tag_count_reward).
 *                        params: newlines (false: bare tags; true: open-r1's "<think>\n"...).
 *   countdown            1 if the answer reaches the target with the given numbers; format_score
 *                        (0) if it is a well-formed expression that does not (TinyZero uses
 *                        0.1); 0 if no expression. params: numbers_field ("numbers"),
 *                        target_field ("target"), use_all_numbers (false), format_score.
 *   code                 1 if the program (the last ``` fenced block, inside the last
 *                        <answer>..</answer> when there is one) passes every test of the line,
 *                        else 0; passed/total with partial_credit. params: tests_field
 *                        ("tests"), language_field ("language"), time_limit_s (2),
 *                        memory_mb (256), compare (whitespace|exact|float), partial_credit
 *                        (false). A line's own "time_limit_s"/"memory_mb" override the params.
 *   language_consistency share of letters in `script` (latin|cjk; default latin) in the reasoning,
 *                        R1 sec. 2.3.2 (the CoT): inside <think>..</think>, or up to </think>
 *                        when the prompt opened the block, or the whole response without tags.
 *   repetition_penalty   n-gram repetition penalty in [max_penalty, 0] (verifiers/format.h).
 *                        params: ngram_size (3), max_penalty (-1).
 *   overlong_penalty     DAPO eq. 13 on the response's token count, in [-1, 0]. params:
 *                        max_len and cache_len, both required, 0 <= cache_len <= max_len.
 *   length               Kimi k1.5 length reward (Kimi report sec. 2.3.3), group-relative: with
 *                        the group's shortest and longest response lengths lo and hi (tokens),
 *                        lambda = 0.5 - (len - lo) / (hi - lo); a correct response gets lambda,
 *                        a wrong one min(0, lambda); 0 for all when hi == lo. Needs a verdict
 *                        reward (accuracy, countdown or code) in the same set. Scored alone
 *                        (reward_set_score) a response is a group of one: 0.
 * total = sum over entries of weight * score, in the config's order. The verdict
 * (correct/wrong) comes from the verdict rewards, accuracy, countdown and code: correct
 * when every one of them is 1 (countdown: correct; code: all tests passed). */
#ifndef GRPO_VERIFY_REWARD_H
#define GRPO_VERIFY_REWARD_H

#include <jansson.h>
#include <stddef.h>

#include "core/config.h"
#include "core/status.h"
#include "verifiers/math.h"
#include "verifiers/pool.h"

typedef enum {
    REWARD_ACCURACY = 0,
    REWARD_FORMAT,
    REWARD_TAG_COUNT,
    REWARD_COUNTDOWN,
    REWARD_CODE,
    REWARD_LANGUAGE_CONSISTENCY,
    REWARD_REPETITION_PENALTY,
    REWARD_OVERLONG_PENALTY,
    REWARD_LENGTH,
    REWARD_KIND_COUNT
} reward_kind;

/* "accuracy", "format", ... indexed by reward_kind, NULL-terminated (the enum's choices). */
extern const char *const reward_names[];

#define REWARD_MAX_ENTRIES 16

/* One entry of a `rewards:` list as bound from YAML by reward_entry_schema. */
typedef struct {
    int kind;                  /* reward_kind; YAML key "name" */
    double weight;             /* default 1 */
    const cfg_node *params;    /* a mapping checked per reward by reward_set_create; NULL: defaults */
} reward_entry;

/* Schema of one entry: name (required, one of reward_names), weight, params (free-form
 * here, checked by reward_set_create). Bind a list with
 *   CFG_FIELD_LIST(T, rewards, n_rewards, "rewards", reward_entry, reward_entry_schema,
 *                  &reward_entry_defaults, REWARD_MAX_ENTRIES, "...") */
extern const cfg_field reward_entry_schema[];
extern const reward_entry reward_entry_defaults;   /* weight 1, no params */

typedef struct reward_set reward_set;

/* Checks each entry's params against its reward's schema (unknown keys, wrong types, values
 * out of range and bad patterns fail with file:line:col and the key path, e.g.
 * "c.yaml:9:24: stages[0].rewards[2].params.ngram_size: expected a value in [1, 64], found 0")
 * and builds the set. A missing required param, a repeated reward name or `length` without
 * a verdict reward fails naming "rewards[i]". The set copies what it needs: the params'
 * doc may be freed afterwards. 1 <= n <= REWARD_MAX_ENTRIES. On failure *out is NULL. */
grpo_status reward_set_create(const reward_entry *entries, int n, reward_set **out);
/* Binds a `rewards:` sequence node with reward_entry_schema and creates the set; errors
 * that reward_set_create reports by index name the entry's place in the file instead. */
grpo_status reward_set_from_config(const cfg_node *rewards, reward_set **out);
void reward_set_free(reward_set *set);

int reward_set_size(const reward_set *set);
/* The i-th entry's reward name ("accuracy") and weight, in config order. */
const char *reward_set_name(const reward_set *set, int i);
double reward_set_weight(const reward_set *set, int i);
/* 1 when the set has a code reward (whose batch scoring wants a pool). */
int reward_set_has_code(const reward_set *set);

typedef struct {
    const char *name;    /* the reward's name (static storage) */
    double score;        /* raw value before the weight */
    double weight;
    double weighted;     /* weight * score */
} reward_component;

#define REWARD_VERDICT_CAP 32
#define REWARD_ERROR_CAP 512

typedef struct {
    double total;                                    /* sum of components[].weighted */
    int n_components;                                /* == reward_set_size */
    reward_component components[REWARD_MAX_ENTRIES]; /* config order */
    int has_verdict;                                 /* a verdict reward is in the set */
    int correct;                                     /* every verdict reward judged it correct */
    char verdict[REWARD_VERDICT_CAP];                /* the first verdict reward's word: "correct",
                                                        "wrong", "no_answer" (accuracy), a countdown
                                                        verdict, a code status or "no_code"; "" if none */
    char extracted[VERIFY_MATH_EXTRACTED_CAP];       /* accuracy: the extracted answer; countdown:
                                                        the expression; "" otherwise */
    grpo_status status;                              /* GRPO_OK, or why this sample was not scored */
    char error[REWARD_ERROR_CAP];                    /* the message when status != GRPO_OK */
} reward_result;

/* Scores one response (NUL-terminated) against its problem line. response_tokens is its
 * length in tokens (needed by overlong_penalty and length; pass -1 when unknown and those
 * rewards are not in the set). Code runs here, in the calling thread, in the sandbox (each
 * run bounded by its wall clock). Returns GRPO_OK with *out filled, or an error (also
 * recorded in out->status/out->error) when the line lacks a field a reward needs ("problem
 * line: reward 'accuracy' needs field 'answer' (a string), found nothing"), the gold does not
 * parse, or the sandbox failed. A model's response never causes an error. Thread-safe: any
 * number of threads may score with one set at once. */
grpo_status reward_set_score(const reward_set *set, const json_t *problem, const char *response, int response_tokens,
                             reward_result *out);

/* Scores n samples: problems[i] (a line may repeat), responses[i], response_tokens[i]
 * (NULL: all unknown). Consecutive runs of group_size samples form the groups of the
 * length reward (group_size >= 1 divides n; 1 when the set has no length reward is fine).
 * With a pool, every sample's non-code rewards run as pool jobs and each program as a
 * sandboxed pool job, so a program that hangs is killed by its wall clock and never
 * hangs the caller; without one (NULL) everything runs in the calling thread. The pool
 * must not be used by anyone else during the call; the call clears it before returning.
 * Per-sample failures go to out[i].status/error and leave the others scored; the call
 * itself fails only for bad arguments (or a pool that refuses jobs). */
grpo_status reward_set_score_batch(const reward_set *set, verify_pool *pool, const json_t *const *problems,
                                   const char *const *responses, const int *response_tokens, int n, int group_size,
                                   reward_result *out);

/* Finds the program in a response: the last complete ``` fenced block (its info string,
 * e.g. "python", skipped) inside the last complete <answer>...</answer>, or in the whole
 * response when there is no answer tag. Returns 1 and the span of the block's body, or 0. */
int reward_extract_code(const char *response, size_t len, size_t *start, size_t *span_len);

#endif
