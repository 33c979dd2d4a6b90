/* The GRPO trainer (DeepSeekMath sec. 4.1; R1 report sec. 2.2.1): prompts -> G sampled
 * completions each (rollouts/) -> rewards (verifiers/) -> group-relative advantages ->
 * the clipped surrogate with optional KL to a frozen reference (rl/grpo_loss) -> backward
 * -> AdamW on the FP32 master weights -> MoE router-bias step; metrics every step,
 * held-out pass@1 / pass@k / maj@k, checkpoints with exact resume. */
#ifndef GRPO_GRPO_TRAIN_H
#define GRPO_GRPO_TRAIN_H

#include <stdint.h>

#include "model/lm.h"
#include "model/tokenizer.h"
#include "rl/advantage.h"
#include "rl/eval_metrics.h"
#include "rl/grpo_loss.h"
#include "rl/optim.h"
#include "rl/problems.h"
#include "rl/train_run.h"
#include "rollouts/sampler.h"
#include "verifiers/reward.h"

typedef struct {
    int max_steps;                    /* optimizer updates */
    int per_device_train_batch_size;  /* completions per micro-batch */
    int gradient_accumulation_steps;  /* micro-batches per update; a generation batch is
                                         both multiplied, / num_generations prompts */
    int num_generations;              /* G */
    int num_iterations;               /* updates per generation batch (mu) */
    int max_completion_length;
    sampler_params sampling;
    grpo_loss_options loss;
    advantage_options advantage;
    int mask_truncated_completions;
    int dynamic_sampling;
    double bias_update_gamma;
    int logging_steps, eval_steps, save_steps, save_total_limit;
    int log_rollouts_per_step;        /* completions of each generation batch kept in the run
                                         store (whole groups first; 0: none) */
    int eval_num_generations;
    sampler_params eval_sampling;
    int eval_max_problems;
    optim_config optim;
    uint64_t seed;
} grpo_config;

grpo_config grpo_config_default(void);
grpo_status grpo_config_validate(const grpo_config *cfg);

typedef struct {
    int steps;
    double reward_mean;           /* of the last logged window */
    double accuracy;              /* of the last logged window */
    eval_summary eval;            /* held-out, after training (problems = 0 without a set) */
    double seconds;
    char checkpoint[1024];
} grpo_result;

/* Trains `model` (gradients allocated) on `train`. ref: the frozen reference (required
 * when cfg->loss.beta > 0, else NULL). eval may be NULL. */
grpo_status grpo_train(const grpo_config *cfg, lm *model, lm *ref, const tokenizer *tok, const problem_set *train,
                       const problem_set *eval, const reward_set *rewards, const train_run *run, grpo_result *result);

/* Held-out evaluation: eval_num_generations samples per problem with eval_sampling; a
 * sample is correct when the reward set's verdict says so; maj@k votes over the
 * extracted answers. */
grpo_status grpo_evaluate(const grpo_config *cfg, lm *model, const tokenizer *tok, const problem_set *eval,
                          const reward_set *rewards, eval_summary *out);

#endif
