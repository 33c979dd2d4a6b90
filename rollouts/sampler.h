/* Drawing one token from a row of logits: temperature, top-k, top-p (nucleus) and min-p
 * truncation in the order and with the tie rules of transformers' logits warpers
 * (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper, each
 * keeping at least one token), then an inverse-CDF draw from a counter-based random number
 * (core/rng.h Philox), so a draw depends only on (sample seed, position) and never on the
 * batch it was computed in or the thread count. The per-row maths is core/sample.h's (shared
 * with the backends' `sample` op); this module adds the random numbers and stop strings.
 *
 * With z = logits / T (T = temperature; T = 1 when greedy), the log-probabilities:
 *   logprob        = log q(token), q the distribution actually sampled from: softmax(z)
 *                    restricted to the tokens that survive top-k, top-p and min-p,
 *                    renormalised (0 when greedy: a point mass);
 *   policy_logprob = log softmax(z)[token] over the whole vocabulary, untruncated: the
 *                    "old policy" log-prob that TRL's GRPOTrainer (_get_per_token_logps,
 *                    logits / temperature) and verl (logits.div_(temperature)) compute. */
#ifndef GRPO_SAMPLER_H
#define GRPO_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "core/sample.h"
#include "core/status.h"

/* The truncation settings (core/sample.h: temperature, top_k, top_p, min_p). */
typedef sample_params sampler_params;

typedef struct {
    int32_t token;
    float logprob;          /* of the truncated, tempered distribution (see above) */
    float policy_logprob;   /* log softmax(logits / T)[token], untruncated */
} sampler_result;

/* Fills the defaults: temperature 1, top_k 0, top_p 1, min_p 0. */
void sampler_params_defaults(sampler_params *p);
/* Checks ranges: temperature >= 0 and finite, top_k >= 0, top_p in (0, 1], min_p in [0, 1]. */
grpo_status sampler_params_validate(const sampler_params *p);

/* Bytes of scratch one sampler call needs for a vocabulary of V (one buffer per thread). */
size_t sampler_scratch_bytes(int V);

/* The uniform number in [0, 1) (53 bits) that the draw at `position` of the sample with
 * seed `sample_seed` uses: Philox4x32-10 with a fixed key, stream = sample_seed,
 * counter = position (core/rng.h). */
double sampler_uniform(uint64_t sample_seed, uint64_t position);

/* Samples from logits[V] (finite floats): sample_row with sampler_uniform(sample_seed,
 * position). scratch: sampler_scratch_bytes(V) bytes. */
void sampler_sample(const sampler_params *p, const float *logits, int V, uint64_t sample_seed, uint64_t position,
                    void *scratch, sampler_result *out);

/* The distribution sampler_sample draws from: probs[V] (double, summing to 1, 0 for the
 * truncated tokens); for temperature 0 a point mass on the argmax. Returns the number of
 * tokens kept. */
int sampler_distribution(const sampler_params *p, const float *logits, int V, void *scratch, double *probs);

/* ---- stop strings ----
 * Text arrives a token's bytes at a time; a stop string may span several tokens. Each
 * sequence keeps a window of the last bytes (enough for the longest stop string plus one
 * piece), so matching costs O(window) per token whatever the text length. */
typedef struct sampler_stop sampler_stop;

/* Copies n non-empty strings. On failure *out is NULL. */
grpo_status sampler_stop_create(const char *const *strings, int n, sampler_stop **out);
void sampler_stop_free(sampler_stop *s);   /* NULL is a no-op */
int sampler_stop_count(const sampler_stop *s);
size_t sampler_stop_max_len(const sampler_stop *s);

/* One sequence's matching state over a caller buffer (no allocation per token). */
typedef struct {
    char *window;
    size_t cap;       /* bytes of window */
    size_t len;       /* bytes held */
    size_t offset;    /* bytes of the text before window[0] */
} sampler_stop_state;

/* Bytes of window a state needs for pieces of up to max_piece bytes (longer pieces are
 * fed in parts). */
size_t sampler_stop_window_bytes(const sampler_stop *s, size_t max_piece);
void sampler_stop_state_init(sampler_stop_state *st, char *buffer, size_t cap);
/* Appends n bytes of text. When a stop string ends inside them returns its index (the
 * earliest starting one, then the first listed) with its byte offsets [*start, *end) in
 * the whole text fed so far; else -1. */
int sampler_stop_feed(const sampler_stop *s, sampler_stop_state *st, const char *piece, size_t n, size_t *start,
                      size_t *end);

#endif
