/* The GRPO objective on per-token values: clipped importance-ratio surrogate, k3 KL to a
 * reference policy, the four token aggregations (grpo, bnpo, dr_grpo, dapo), truncated /
 * masked importance sampling against the sampler, and an entropy bonus. Returns the
 * scalar loss, d loss / d logprobs per token (and d loss / d entropy), and TRL's metrics.
 * Reference: TRL 1.16 GRPOTrainer._compute_loss (token-level importance sampling); tests
 * compare against fixtures made by running that function (tests/fixtures/make_grpo_fixtures.py).
 * Pure C on host arrays, double accumulation, no allocation. */
#ifndef GRPO_GRPO_LOSS_H
#define GRPO_GRPO_LOSS_H

#include <stdint.h>

#include "core/status.h"

/* How per-token losses L[b, t] (mask m) become one number:
 *  GRPO:    mean_b( sum_t m L / max(sum_t m, 1) )       DeepSeekMath eq. 3 (per-sequence mean)
 *  BNPO:    sum m L / max(sum m, 1)                     token mean over this batch
 *  DR_GRPO: sum m L / (B * max_completion_length)       Dr. GRPO (Liu et al. 2025) eq. 3
 *  DAPO:    sum m L / (max(num_items_in_batch, 1) / num_processes
 *                      * gradient_accumulation_steps / steps_per_generation)
 *           token mean over the global (generation) batch, DAPO (Yu et al. 2025) eq. 8
 * GRPO, BNPO and DR_GRPO are then divided by gradient_accumulation_steps, as TRL does. */
typedef enum { GRPO_LOSS_GRPO = 0, GRPO_LOSS_BNPO = 1, GRPO_LOSS_DR_GRPO = 2, GRPO_LOSS_DAPO = 3 } grpo_loss_type;
extern const char *const grpo_loss_type_names[];   /* "grpo", "bnpo", "dr_grpo", "dapo", NULL */
grpo_status grpo_loss_parse_type(const char *name, grpo_loss_type *out);

/* Importance sampling between the sampling engine and the trainer (TRL's
 * vllm_importance_sampling_mode). rho = exp(logprobs_old - sampling_logprobs) per token
 * (TOKEN_*) or exp(sum over the sequence's tokens) per sequence (SEQUENCE_*), a constant
 * (no gradient) multiplying the clipped surrogate (not the KL term).
 *  *_TRUNCATE: rho clamped to [is_clip_min, is_clip_max] (truncated IS, Yao et al. 2025);
 *  *_MASK:     rho set to 0 outside [is_clip_min, is_clip_max].
 * A NaN sampling logprob counts as "no correction" for that token (difference 0). */
typedef enum {
    GRPO_IS_NONE = 0, GRPO_IS_TOKEN_TRUNCATE = 1, GRPO_IS_TOKEN_MASK = 2,
    GRPO_IS_SEQUENCE_TRUNCATE = 3, GRPO_IS_SEQUENCE_MASK = 4
} grpo_is_mode;
/* "none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask", NULL */
extern const char *const grpo_is_mode_names[];
grpo_status grpo_loss_parse_is_mode(const char *name, grpo_is_mode *out);

typedef struct {
    grpo_loss_type loss_type;
    double epsilon;                  /* lower clip: ratio >= 1 - epsilon; >= 0 */
    double epsilon_high;             /* upper clip: ratio <= 1 + epsilon_high (DAPO clip-higher);
                                        NAN: same as epsilon (TRL's None); else >= 0 */
    double beta;                     /* KL coefficient, >= 0; 0: no reference needed */
    int use_bias_correction_kl;      /* 1: the KL term is multiplied by the ratio (TRL's default
                                        since 1.x, DeepSeek-V3.2 report): its gradient becomes
                                        the unbiased reverse-KL gradient */
    int max_completion_length;       /* DR_GRPO's constant; T must not exceed it */
    double num_items_in_batch;       /* DAPO: active tokens in the whole generation batch over
                                        all ranks; <= 0: this call's active tokens */
    int num_processes;               /* DAPO: ranks sharing num_items_in_batch (1) */
    int gradient_accumulation_steps; /* micro-batches per optimizer step (1; 1 in evaluation) */
    int steps_per_generation;        /* DAPO: micro-batches per generation batch (1; TRL's
                                        default is gradient_accumulation_steps) */
    grpo_is_mode importance_sampling_mode;
    double is_clip_min;              /* NAN: no lower bound */
    double is_clip_max;              /* NAN: no upper bound (TRL's default 3.0) */
    double entropy_coef;             /* loss -= entropy_coef * masked mean entropy / accumulation */
} grpo_loss_options;

/* TRL GRPOConfig's defaults: dapo, epsilon 0.2, epsilon_high = epsilon, beta 0, bias-corrected
 * KL, max_completion_length 256, one process / accumulation step / step per generation, no
 * importance sampling (is_clip_max 3.0 ready for when it is switched on), no entropy bonus. */
grpo_loss_options grpo_loss_options_default(void);
/* Checks every field; GRPO_ERR_INVALID naming the field, what was expected and found. */
grpo_status grpo_loss_check_options(const grpo_loss_options *opt);

/* Inputs; per-token arrays are [B, T] row-major (sequence b's completion token t). */
typedef struct {
    int B, T;
    const float *logprobs;          /* current policy, the ones the gradient is taken for */
    const float *logprobs_old;      /* the policy that sampled (num_iterations > 1, or whenever
                                       the trainer computed it); NULL: logprobs themselves with
                                       no gradient (TRL's per_token_logps.detach()) */
    const float *ref_logprobs;      /* reference policy; required when beta > 0 */
    const float *sampling_logprobs; /* the sampling engine's logprobs; required for importance
                                       sampling, else optional (only the gap metrics) */
    const float *entropies;         /* per-token entropy of the current policy; required when
                                       entropy_coef != 0, else optional (entropy metric) */
    const uint8_t *completion_mask; /* 1: the token is in the loss; 0: padding / masked */
    const double *advantages;       /* [B], one per sequence */
} grpo_loss_inputs;

/* Results; the metric names are TRL's logged names. Metrics that do not apply are NAN. */
typedef struct {
    double loss;                    /* the scalar to back-propagate (grad_* are its derivatives) */
    double policy_loss;             /* TRL's policy_loss: the aggregated surrogate (+ KL) before
                                       the accumulation division and without the entropy bonus */
    long num_tokens;                /* active tokens (sum of the mask) */
    double kl;                      /* masked mean of the KL term (times the ratio when
                                       bias-corrected) [kl]; NAN when beta == 0 */
    double entropy;                 /* masked mean entropy [entropy]; NAN without entropies */
    double ratio_mean;              /* masked mean of exp(logprobs - logprobs_old) */
    double clip_ratio_low_mean;     /* share of tokens with ratio < 1-eps and A < 0 [clip_ratio/low_mean] */
    double clip_ratio_high_mean;    /* ratio > 1+eps_high and A > 0 [clip_ratio/high_mean] */
    double clip_ratio_region_mean;  /* either [clip_ratio/region_mean] */
    double clip_ratio_low_min;      /* min over non-empty sequences of their low share [clip_ratio/low_min] */
    double clip_ratio_high_max;     /* max over non-empty sequences of their high share [clip_ratio/high_max] */
    double sampling_logp_difference_mean;   /* |logprobs_old - sampling_logprobs| over active tokens
                                               with a sampling logprob [sampling/sampling_logp_difference/mean] */
    double sampling_logp_difference_max;    /* [.../max]; both 0 when no token qualifies, as TRL */
    double importance_sampling_ratio_min;   /* rho over active tokens (token modes) or over all */
    double importance_sampling_ratio_mean;  /* sequences (sequence modes) [sampling/importance_ */
    double importance_sampling_ratio_max;   /* sampling_ratio/min|mean|max]; NAN when mode NONE */
} grpo_loss_result;

/* Computes the loss for one micro-batch.
 * Per active token (m = 1), with r = exp(logprobs - logprobs_old), A = advantages[b]:
 *   L = -rho * min(r A, clamp(r, 1 - epsilon, 1 + epsilon_high) A) + beta * KL
 *   KL = exp(ref - logprobs) - (ref - logprobs) - 1   (k3 estimator, Schulman 2020;
 *        DeepSeekMath eq. 4), times r when use_bias_correction_kl
 * aggregated per loss_type (grpo_loss_type), minus the entropy bonus.
 * grad_logprobs (out, [B, T], required): d loss / d logprobs; 0 on masked tokens. Where
 * torch's min/clamp are not differentiable it takes torch's choice (a tie splits the
 * gradient evenly; clamp passes it at the bounds), so it equals TRL's autograd gradient.
 * grad_entropies (out, [B, T], may be NULL): d loss / d entropies (the trainer chains it
 * through its entropy computation); required when entropy_coef != 0.
 * Errors (GRPO_ERR_INVALID): bad options, B or T < 1, a required input missing, T above
 * max_completion_length for DR_GRPO. Nothing is allocated. */
grpo_status grpo_loss_compute(const grpo_loss_options *opt, const grpo_loss_inputs *in, float *grad_logprobs,
                              float *grad_entropies, grpo_loss_result *out);

#endif
