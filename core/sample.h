/* Drawing one token from a row of logits, the maths of one row: temperature, top-k, top-p
 * (nucleus) and min-p truncation in the order and with the tie rules of transformers'
 * logits warpers (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
 * MinPLogitsWarper, each keeping at least one token), then an inverse-CDF draw over the
 * kept tokens in id order from a given uniform number. The reference every backend's
 * `sample` op (core/backend.h) reproduces: the CPU op runs these functions per row, the
 * CUDA op (core/cuda/cuda_sample.cu) the same rules without a sort. Where the uniform
 * numbers come from (Philox per sample and position) is the rollout engine's business
 * (rollouts/sampler.h).
 *
 * With z = logits / T (float division; T = temperature, 1 when greedy), sums in double:
 *   logprob        = log q(token), q = softmax(z) restricted to the tokens top-k, top-p
 *                    and min-p keep, renormalised (0 when greedy: a point mass);
 *   policy_logprob = log softmax(z)[token] over the whole vocabulary, untruncated (the
 *                    "old policy" log-prob of TRL's GRPOTrainer and verl). */
#ifndef GRPO_SAMPLE_H
#define GRPO_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
    float temperature;   /* > 0 samples; 0 = greedy (argmax, lowest id on ties) */
    int top_k;           /* keep tokens with z >= the k-th largest z (ties kept); 0 = off */
    float top_p;         /* keep the smallest top set whose mass reaches top_p; 1 = off */
    float min_p;         /* keep p >= min_p * max p; 0 = off */
} sample_params;

/* Fills the defaults: temperature 1, top_k 0, top_p 1, min_p 0. */
void sample_params_defaults(sample_params *p);
/* Checks ranges: temperature >= 0 and finite, top_k >= 0, top_p in (0, 1], min_p in [0, 1]. */
grpo_status sample_params_validate(const sample_params *p);

/* Bytes of scratch one sample_row / sample_distribution call needs for a vocabulary of V
 * (one buffer per thread; any alignment of 8 bytes or more). */
size_t sample_scratch_bytes(int V);

/* Samples from logits[V] (finite floats) with the uniform number u in [0, 1): the token
 * is the first kept id (ascending) whose cumulative kept mass exceeds u * (kept mass),
 * the last kept id when rounding leaves none. scratch: sample_scratch_bytes(V) bytes. */
void sample_row(const sample_params *p, const float *logits, int V, double u, void *scratch, int32_t *token,
                float *logprob, float *policy_logprob);

/* The distribution sample_row draws from: probs[V] (double, summing to 1, 0 for the
 * truncated tokens); for temperature 0 a point mass on the argmax. Returns the number of
 * tokens kept. */
int sample_distribution(const sample_params *p, const float *logits, int V, void *scratch, double *probs);

#endif
