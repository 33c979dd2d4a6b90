/* Generation batches for the GRPO trainer (rl/grpo_rollout.h). */
#include "rl/grpo_rollout.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

void grpo_rollout_samples_free(rollout_samples *s) {
    if (!s) return;
    for (int i = 0; i < s->capacity; i++) free(s->texts ? s->texts[i] : NULL);
    free(s->problem);
    free(s->tokens);
    free(s->policy_logprobs);
    free(s->lengths);
    free(s->truncated);
    free(s->texts);
    memset(s, 0, sizeof *s);
}

static grpo_status ensure_capacity(rollout_samples *s, int n, int Tc) {
    if (s->capacity >= n && s->Tc == Tc) return GRPO_OK;
    grpo_rollout_samples_free(s);
    s->problem = calloc((size_t)n, sizeof(int));
    s->tokens = calloc((size_t)n * Tc, sizeof(int32_t));
    s->policy_logprobs = calloc((size_t)n * Tc, sizeof(float));
    s->lengths = calloc((size_t)n, sizeof(int));
    s->truncated = calloc((size_t)n, sizeof(int));
    s->texts = calloc((size_t)n, sizeof(char *));
    s->capacity = n;
    s->Tc = Tc;
    if (!s->problem || !s->tokens || !s->policy_logprobs || !s->lengths || !s->truncated || !s->texts) {
        grpo_rollout_samples_free(s);
        return grpo_fail(GRPO_ERR_NOMEM, "cannot allocate a generation batch of %d samples", n);
    }
    return GRPO_OK;
}

grpo_status grpo_rollout_generate(rollout_engine *e, const problem_set *ps, const int *problems, int n_prompts, int G,
                                  uint64_t seed, int Tc, rollout_samples *out) {
    return grpo_rollout_generate_from(e, ps, problems, n_prompts, 0, G, seed, Tc, out);
}

grpo_status grpo_rollout_generate_from(rollout_engine *e, const problem_set *ps, const int *problems, int n_prompts,
                                       int first_prompt, int G, uint64_t seed, int Tc, rollout_samples *out) {
    int n = n_prompts * G;
    GRPO_TRY(ensure_capacity(out, n, Tc));
    rollout_prompt *prompts = calloc((size_t)n_prompts, sizeof *prompts);
    if (!prompts) return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n_prompts; k++) {
        prompts[k].ids = ps->prompt_ids[problems[k]];
        prompts[k].n_ids = ps->prompt_lengths[problems[k]];
        uint64_t slot = (uint64_t)(first_prompt + k);
        prompts[k].seed = ((uint64_t)rng_u32(seed, 1, slot) << 32) | rng_u32(seed, 2, slot);
    }
    rollout_output ro = {0};
    grpo_status s = rollout_generate(e, prompts, n_prompts, G, &ro);
    free(prompts);
    if (s) return s;
    out->n = n;
    out->group_size = G;
    out->stats = ro.stats;
    for (int i = 0; i < n; i++) {
        const rollout_sample *rs = &ro.samples[i];
        int len = rs->n_tokens < Tc ? rs->n_tokens : Tc;
        out->problem[i] = problems[i / G];
        out->lengths[i] = len;
        out->truncated[i] = rs->finish_reason == ROLLOUT_FINISH_LENGTH;
        memset(out->tokens + (size_t)i * Tc, 0, (size_t)Tc * sizeof(int32_t));
        memset(out->policy_logprobs + (size_t)i * Tc, 0, (size_t)Tc * sizeof(float));
        memcpy(out->tokens + (size_t)i * Tc, rs->tokens, (size_t)len * sizeof(int32_t));
        memcpy(out->policy_logprobs + (size_t)i * Tc, rs->policy_logprobs, (size_t)len * sizeof(float));
        free(out->texts[i]);
        out->texts[i] = strdup(rs->text ? rs->text : "");
        if (!out->texts[i]) s = grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    }
    rollout_output_deinit(&ro);
    return s;
}

grpo_status grpo_rollout_score(const reward_set *rewards, const problem_set *ps, const rollout_samples *gen,
                               reward_result *out) {
    const json_t **lines = malloc((size_t)gen->n * sizeof *lines);
    if (!lines) return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    for (int i = 0; i < gen->n; i++) lines[i] = ps->lines[gen->problem[i]];
    grpo_status s = reward_set_score_batch(rewards, NULL, (const json_t *const *)lines, (const char *const *)gen->texts,
                                           gen->lengths, gen->n, gen->group_size, out);
    free(lines);
    return s;
}
