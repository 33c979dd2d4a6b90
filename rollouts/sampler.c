/* Token sampling (rollouts/sampler.h): the Philox uniform of each (sample, position) and
 * the per-row maths of core/sample.c (temperature, top-k, top-p, min-p as transformers'
 * warpers apply them, then an inverse-CDF draw over the kept tokens in id order). */
#include "rollouts/sampler.h"

#include "core/rng.h"

/* The Philox key of every sampling draw ("sampling" in ASCII, little end first); the
 * sample's seed is the stream, so samples never share numbers. */
#define SAMPLER_RNG_KEY 0x676e696c706d6173ull

void sampler_params_defaults(sampler_params *p) { sample_params_defaults(p); }

grpo_status sampler_params_validate(const sampler_params *p) { return sample_params_validate(p); }

size_t sampler_scratch_bytes(int V) { return sample_scratch_bytes(V); }

double sampler_uniform(uint64_t sample_seed, uint64_t position) {
    rng_u32x4 w = rng_philox(SAMPLER_RNG_KEY, sample_seed, position);
    uint64_t bits = ((uint64_t)(w.v[0] >> 5) << 26) | (uint64_t)(w.v[1] >> 6);   /* 27 + 26 bits */
    return (double)bits * (1.0 / 9007199254740992.0);
}

void sampler_sample(const sampler_params *p, const float *logits, int V, uint64_t sample_seed, uint64_t position,
                    void *scratch, sampler_result *out) {
    /* greedy draws use no random number; computing it anyway costs one Philox block */
    double u = p->temperature == 0.0f ? 0.0 : sampler_uniform(sample_seed, position);
    sample_row(p, logits, V, u, scratch, &out->token, &out->logprob, &out->policy_logprob);
}

int sampler_distribution(const sampler_params *p, const float *logits, int V, void *scratch, double *probs) {
    return sample_distribution(p, logits, V, scratch, probs);
}
