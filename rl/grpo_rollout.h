/* The GRPO trainer's view of a generation batch: G completions for each of a list of
 * problems, laid out flat with fixed-stride per-token arrays, and their rewards. Wraps
 * the rollout engine (rollouts/rollout.h) and the reward set (verifiers/reward.h). */
#ifndef GRPO_GRPO_ROLLOUT_H
#define GRPO_GRPO_ROLLOUT_H

#include <stdint.h>

#include "rl/problems.h"
#include "rollouts/rollout.h"
#include "verifiers/reward.h"

typedef struct {
    int n;                   /* samples: n_prompts * G, sample g of prompt k at k * G + g */
    int group_size;          /* G */
    int Tc;                  /* stride of the per-token arrays (max completion length) */
    int *problem;            /* [n] index into the problem set */
    int32_t *tokens;         /* [n * Tc] completion ids (a final stop token included) */
    float *policy_logprobs;  /* [n * Tc] the sampler's log softmax(logits / temperature)[token] */
    int *lengths;            /* [n] completion tokens */
    int *truncated;          /* [n] 1 when cut at max_completion_length */
    char **texts;            /* [n] completion text (no final stop token) */
    int capacity;            /* samples the arrays hold */
    rollout_stats stats;     /* of the last generation */
} rollout_samples;

/* Generates G completions for each problems[k] (prompts as tokenized in ps) with the
 * engine's current sampling settings; prompt k gets seed f(seed, k). Reuses out's arrays
 * when large enough. */
grpo_status grpo_rollout_generate(rollout_engine *e, const problem_set *ps, const int *problems, int n_prompts, int G,
                                  uint64_t seed, int Tc, rollout_samples *out);
/* The same for prompts that sit at slots first_prompt.. of a larger generation batch (a
 * rank's share under data parallelism): prompt k gets seed f(seed, first_prompt + k), so
 * a sample does not depend on how the batch is split over ranks. */
grpo_status grpo_rollout_generate_from(rollout_engine *e, const problem_set *ps, const int *problems, int n_prompts,
                                       int first_prompt, int G, uint64_t seed, int Tc, rollout_samples *out);
/* Scores every sample against its problem line. */
grpo_status grpo_rollout_score(const reward_set *rewards, const problem_set *ps, const rollout_samples *gen,
                               reward_result *out);
void grpo_rollout_samples_free(rollout_samples *s);

#endif
