/* Cached decoding of the DeepSeek-V3 family (model/deepseek_v3_decode.c) over the paged
 * latent cache, on random tiny models (q_lora + YaRN, and plain q_proj; dense first layer
 * then DeepSeekMoE layers):
 *  - decode in chunks of varying size (prefill, single tokens, mixed in one call, shuffled
 *    blocks) equals the full forward (deepseek_v3_forward) row by row;
 *  - the rollout engine's greedy completions are, token for token, the argmax of the full
 *    forward over prompt + completion, with policy log-probs equal to its log-softmax
 *    (2e-4); sampled runs with shared prompts equal unshared ones; the pool ends empty;
 *  - the cache holds kv_lora_rank + qk_rope_head_dim floats per token per layer, below
 *    what MHA with the same heads would take;
 *  - MTP: drafts through the cache reproduce deepseek_v3_mtp_loss; speculative decoding
 *    (MTP drafts, main-model verification) gives plain decoding's output greedy, sampled and
 *    under preemption, and reports its acceptance; models without MTP refuse the option. */
#include <math.h>
#include <stdlib.h>

#include "core/backend.h"
#include "model/deepseek_v3.h"
#include "model/lm.h"
#include "rollouts/kv_pool.h"
#include "rollouts/rollout.h"
#include "tests/harness.h"

static backend *be;

static const char *yarn_config =
    "{\"model_type\": \"deepseek_v3\", \"vocab_size\": 96, \"hidden_size\": 32, \"intermediate_size\": 48,"
    " \"moe_intermediate_size\": 16, \"num_hidden_layers\": 3, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 4, \"q_lora_rank\": 12, \"kv_lora_rank\": 16, \"qk_nope_head_dim\": 8,"
    " \"qk_rope_head_dim\": 4, \"v_head_dim\": 6, \"n_routed_experts\": 6, \"n_shared_experts\": 1,"
    " \"num_experts_per_tok\": 2, \"n_group\": 2, \"topk_group\": 1, \"routed_scaling_factor\": 2.5,"
    " \"norm_topk_prob\": true, \"scoring_func\": \"sigmoid\", \"topk_method\": \"noaux_tc\","
    " \"first_k_dense_replace\": 1, \"num_nextn_predict_layers\": 1, \"max_position_embeddings\": 128,"
    " \"rms_norm_eps\": 1e-6, \"rope_theta\": 100.0, \"tie_word_embeddings\": false, \"initializer_range\": 0.25,"
    " \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 32,"
    " \"beta_fast\": 32, \"beta_slow\": 1, \"mscale\": 1.0, \"mscale_all_dim\": 1.0}}";

static const char *plain_config =
    "{\"model_type\": \"deepseek_v3\", \"vocab_size\": 96, \"hidden_size\": 32, \"intermediate_size\": 48,"
    " \"moe_intermediate_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"
    " \"num_key_value_heads\": 2, \"q_lora_rank\": 0, \"kv_lora_rank\": 12, \"qk_nope_head_dim\": 8,"
    " \"qk_rope_head_dim\": 8, \"v_head_dim\": 8, \"n_routed_experts\": 4, \"n_shared_experts\": 0,"
    " \"num_experts_per_tok\": 2, \"n_group\": 1, \"topk_group\": 1, \"routed_scaling_factor\": 1.0,"
    " \"norm_topk_prob\": true, \"scoring_func\": \"sigmoid\", \"topk_method\": \"noaux_tc\","
    " \"first_k_dense_replace\": 1, \"num_nextn_predict_layers\": 0, \"max_position_embeddings\": 128,"
    " \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000.0, \"tie_word_embeddings\": false,"
    " \"initializer_range\": 0.25}";

static uint64_t lcg_state = 4242;
static double lcg_uniform(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}

/* Cache bytes per token of the main layers plus MTP's (the formula). */
static size_t rollout_cache_bytes_for_test(lm *m) {
    int layers = 0;
    size_t floats = 0;
    m->ops->decode->cache_layout(m, &layers, &floats);
    return (size_t)(layers + m->ops->decode->mtp_layers(m)) * floats * sizeof(float);
}

/* The full forward's logits [T, V] of one sequence (host, malloc'd). */
static float *full_forward(lm *m, const int32_t *ids, int T) {
    int32_t *dev = be->alloc(be, (size_t)T * sizeof(int32_t));
    be->to_device(be, dev, ids, (size_t)T * sizeof(int32_t));
    float *logits, *host = malloc((size_t)T * m->vocab_size * sizeof(float));
    CHECK_OK(lm_reserve(m, 1, T));
    CHECK_OK(lm_forward(m, dev, NULL, 1, T, &logits));
    be->to_host(be, host, logits, (size_t)T * m->vocab_size * sizeof(float));
    be->free(be, dev);
    return host;
}

#define N_SEQS 3
#define MAX_LEN 40

static void check_decode_matches_forward(lm *m, const char *name) {
    const int V = m->vocab_size, lens[N_SEQS] = {29, 6, 37}, bs = 4, max_blocks = MAX_LEN / 4 + 1;
    int32_t ids[N_SEQS][MAX_LEN];
    float *ref[N_SEQS];
    for (int s = 0; s < N_SEQS; s++) {
        for (int t = 0; t < lens[s]; t++) ids[s][t] = (int32_t)(lcg_uniform() * V);
        ref[s] = full_forward(m, ids[s], lens[s]);
    }
    int layers = 0;
    size_t floats = 0;
    m->ops->decode->cache_layout(m, &layers, &floats);
    kv_pool *pool;
    CHECK_OK(kv_pool_create(be, layers, floats, bs, 40, &pool));
    int32_t tables[N_SEQS][MAX_LEN / 4 + 1], perm[40];
    for (int i = 0; i < 40; i++) perm[i] = i;
    for (int i = 39; i > 0; i--) {
        int j = (int)(lcg_uniform() * (i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int s = 0; s < N_SEQS; s++)
        for (int b = 0; b < max_blocks; b++) tables[s][b] = perm[s * max_blocks + b];
    lm_decode_limits lim = {64, N_SEQS, 64, max_blocks};
    lm_decoder *d;
    CHECK_OK(lm_decoder_create(m, &lim, &d));
    if (!d) return;
    int done[N_SEQS] = {0}, compared = 0;
    double max_err = 0;
    float *host = malloc((size_t)64 * V * sizeof(float));
    for (int step = 0; step < 60; step++) {
        lm_decode_seq seqs[N_SEQS];
        int n = 0, which[N_SEQS];
        for (int s = 0; s < N_SEQS; s++) {
            if (done[s] == lens[s]) continue;
            int left = lens[s] - done[s], chunk = done[s] == 0 ? 1 + (int)(lcg_uniform() * 9)
                                                                : (lcg_uniform() < 0.7 ? 1 : 1 + (int)(lcg_uniform() * 4));
            if (chunk > left) chunk = left;
            seqs[n] = (lm_decode_seq){ids[s] + done[s], chunk, done[s], 1 + (int)(lcg_uniform() * chunk), tables[s]};
            which[n++] = s;
        }
        if (n == 0) break;
        float *logits;
        CHECK_OK(lm_decode(d, kv_pool_cache(pool), seqs, n, &logits));
        int rows = 0;
        for (int i = 0; i < n; i++) rows += seqs[i].n_logits;
        be->to_host(be, host, logits, (size_t)rows * V * sizeof(float));
        int r = 0;
        for (int i = 0; i < n; i++) {
            int s = which[i];
            for (int j = seqs[i].n_new - seqs[i].n_logits; j < seqs[i].n_new; j++, r++) {
                double err = harness_max_rel_err(host + (size_t)r * V, ref[s] + (size_t)(done[s] + j) * V, V, 1.0);
                if (err > max_err) max_err = err;
                compared++;
            }
            done[s] += seqs[i].n_new;
        }
    }
    for (int s = 0; s < N_SEQS; s++) CHECK_INT(lens[s], done[s]);
    CHECK_MSG(max_err < 5e-5, "%s: decode logits vs deepseek_v3_forward: max relative error %.3g over %d rows", name,
              max_err, compared);
    printf("%s: %d decoded rows equal the full forward's (max relative error %.3g)\n", name, compared, max_err);
    free(host);
    lm_decoder_free(d);
    kv_pool_free(pool);
    for (int s = 0; s < N_SEQS; s++) free(ref[s]);
}

static void check_engine(lm *m, const char *name, const deepseek_v3_config *cfg) {
    rollout_config c;
    rollout_config_defaults(&c);
    c.block_size = 8;
    c.cache_mib = 4;
    c.max_num_seqs = 6;
    c.sampling.max_tokens = 16;
    c.sampling.sampler.temperature = 0;
    rollout_engine *e;
    CHECK_OK(rollout_engine_create(m, NULL, &c, &e));
    if (!e) return;
    /* latent cache: (kv_lora_rank + qk_rope) floats per token and layer */
    size_t want = (size_t)cfg->num_hidden_layers * (cfg->kv_lora_rank + cfg->qk_rope_head_dim) * sizeof(float);
    size_t mha = (size_t)cfg->num_hidden_layers * cfg->num_attention_heads *
                 (cfg->qk_nope_head_dim + cfg->qk_rope_head_dim + cfg->v_head_dim) * sizeof(float);
    CHECK_INT(want, rollout_engine_bytes_per_token(e));
    CHECK(want < mha);
    int32_t pids[3][20];
    rollout_prompt prompts[3];
    const int plen[3] = {3, 8, 13};
    for (int p = 0; p < 3; p++) {
        for (int t = 0; t < plen[p]; t++) pids[p][t] = (int32_t)(lcg_uniform() * m->vocab_size);
        prompts[p] = (rollout_prompt){.ids = pids[p], .n_ids = plen[p], .seed = 50 + (uint64_t)p};
    }
    rollout_output o;
    CHECK_OK(rollout_generate(e, prompts, 3, 2, &o));
    CHECK_INT(0, rollout_engine_blocks_in_use(e));
    int mismatch = 0, tokens = 0;
    double perr = 0, margin = INFINITY;
    for (int i = 0; o.samples && i < 6; i++) {
        const rollout_sample *s = &o.samples[i];
        int P = o.prompt_lens[s->prompt_index], T = P + s->n_tokens, V = m->vocab_size;
        int32_t *ids = malloc((size_t)T * sizeof(int32_t));
        memcpy(ids, o.prompt_tokens[s->prompt_index], (size_t)P * sizeof(int32_t));
        memcpy(ids + P, s->tokens, (size_t)s->n_tokens * sizeof(int32_t));
        float *ref = full_forward(m, ids, T);
        for (int t = 0; t < s->n_tokens; t++, tokens++) {
            const float *row = ref + (size_t)(P - 1 + t) * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            double mx = row[best], sum = 0, second = -INFINITY;
            for (int v = 0; v < V; v++) {
                sum += exp(row[v] - mx);
                if (v != best && row[v] > second) second = row[v];
            }
            if (mx - second < margin) margin = mx - second;
            mismatch += best != s->tokens[t];
            double err = fabs(row[s->tokens[t]] - mx - log(sum) - s->policy_logprobs[t]);
            if (err > perr) perr = err;
        }
        free(ids);
        free(ref);
    }
    CHECK_INT(0, mismatch);
    CHECK_MSG(perr < 2e-4, "%s: greedy policy log-probs vs the full forward: max error %.3g", name, perr);
    printf("%s: greedy engine, %d tokens = full forward argmax (smallest top-2 margin %.3g), log-prob error %.3g\n",
           name, tokens, margin, perr);
    rollout_output_deinit(&o);

    /* sampled, shared prompt vs one prefill per sample */
    rollout_sampling sp = c.sampling;
    sp.sampler.temperature = 1.0f;
    CHECK_OK(rollout_engine_set_sampling(e, &sp));
    rollout_output shared, unshared;
    CHECK_OK(rollout_generate(e, prompts, 3, 3, &shared));
    rollout_engine_free(e);
    c.sampling = sp;
    c.share_prompt = 0;
    CHECK_OK(rollout_engine_create(m, NULL, &c, &e));
    CHECK_OK(rollout_generate(e, prompts, 3, 3, &unshared));
    int same = shared.samples && unshared.samples;
    for (int i = 0; same && i < 9; i++)
        same = shared.samples[i].n_tokens == unshared.samples[i].n_tokens &&
               !memcmp(shared.samples[i].tokens, unshared.samples[i].tokens,
                       (size_t)shared.samples[i].n_tokens * sizeof(int32_t));
    CHECK_MSG(same, "%s: shared prompt blocks gave other samples", name);
    CHECK_INT(0, rollout_engine_blocks_in_use(e));
    rollout_output_deinit(&shared);
    rollout_output_deinit(&unshared);
    rollout_engine_free(e);
}

/* ---- multi-token prediction ---- */

/* The MTP module through decode + draft on the paged cache, against the training path:
 * the mean cross-entropy of its guesses (t_{i+2} from h^0_i and t_{i+1}) equals
 * deepseek_v3_mtp_loss with lambda = 1 on the same sequence. */
static void check_draft_matches_mtp_loss(lm *m, const char *name) {
    const int V = m->vocab_size, T = 27, bs = 4, max_blocks = 8;
    int32_t ids[27];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)(lcg_uniform() * V);
    int32_t *dev = be->alloc(be, T * sizeof(int32_t));
    be->to_device(be, dev, ids, T * sizeof(int32_t));
    float *unused;
    double ref_loss = 0;
    CHECK_OK(lm_reserve(m, 1, T));
    CHECK_OK(lm_forward(m, dev, NULL, 1, T, &unused));
    CHECK_OK(deepseek_v3_mtp_loss(m->impl, 1.0f, &ref_loss));
    be->free(be, dev);

    int layers = 0;
    size_t floats = 0;
    m->ops->decode->cache_layout(m, &layers, &floats);
    kv_pool *pool;
    CHECK_OK(kv_pool_create(be, layers + m->ops->decode->mtp_layers(m), floats, bs, 16, &pool));
    int32_t table[8] = {9, 2, 14, 5, 0, 11, 7, 3};
    lm_decode_limits lim = {16, 1, 16, max_blocks};
    lm_decoder *d;
    CHECK_OK(lm_decoder_create(m, &lim, &d));
    float *mtp_logits = malloc((size_t)T * V * sizeof(float));
    int done = 0;
    while (done < T) {
        int chunk = done == 0 ? 7 : 1 + (int)(lcg_uniform() * 4);
        if (chunk > T - done) chunk = T - done;
        lm_decode_seq q = {ids + done, chunk, done, 1, table};
        float *logits;
        CHECK_OK(lm_decode(d, kv_pool_cache(pool), &q, 1, &logits));
        int n = done + chunk < T ? chunk : chunk - 1;   /* the last position has no next token */
        if (n > 0) {
            lm_draft_seq ds = {0, n, done, n, ids + done + 1, table};
            CHECK_OK(m->ops->decode->draft(d, kv_pool_cache(pool), &ds, 1, &logits));
            be->to_host(be, mtp_logits + (size_t)done * V, logits, (size_t)n * V * sizeof(float));
        }
        done += chunk;
    }
    double sum = 0;
    for (int i = 0; i + 2 < T; i++) {
        const float *row = mtp_logits + (size_t)i * V;
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++)
            if (row[v] > mx) mx = row[v];
        for (int v = 0; v < V; v++) z += exp(row[v] - mx);
        sum -= row[ids[i + 2]] - mx - log(z);
    }
    double loss = sum / (T - 2);
    CHECK_NEAR(ref_loss, loss, 1e-6, 2e-5);
    printf("%s: MTP drafts through the cache, cross-entropy %.6f; deepseek_v3_mtp_loss %.6f\n", name, loss, ref_loss);
    /* a draft without MTP cache layers, or rows the last decode did not keep */
    lm_draft_seq bad = {0, 2, 0, 1, ids + 1, table};
    float *logits;
    CHECK_FAILS(m->ops->decode->draft(d, kv_pool_cache(pool), &bad, 1, &logits), "hidden rows");
    free(mtp_logits);
    lm_decoder_free(d);
    kv_pool_free(pool);
}

/* Speculative decoding gives plain decoding's output (greedy and sampled, with preemption). */
static void check_speculative(lm *m, const char *name) {
    int32_t pids[4][24];
    rollout_prompt prompts[4];
    const int plen[4] = {1, 7, 16, 21};
    for (int p = 0; p < 4; p++) {
        for (int t = 0; t < plen[p]; t++) pids[p][t] = (int32_t)(lcg_uniform() * m->vocab_size);
        prompts[p] = (rollout_prompt){.ids = pids[p], .n_ids = plen[p], .seed = 70 + (uint64_t)p};
    }
    for (int mode = 0; mode < 3; mode++) {   /* greedy; sampled; sampled with a tight cache */
        rollout_config c;
        rollout_config_defaults(&c);
        c.block_size = 4;
        c.cache_mib = mode == 2 ? 40.0 * 4 * rollout_cache_bytes_for_test(m) / 1048576.0 : 4;
        c.max_model_len = 64;
        c.max_num_seqs = 8;
        c.sampling.max_tokens = 24;
        c.sampling.sampler.temperature = mode == 0 ? 0.0f : 1.0f;
        rollout_output plain, spec;
        rollout_engine *e;
        CHECK_OK(rollout_engine_create(m, NULL, &c, &e));
        CHECK_OK(rollout_generate(e, prompts, 4, 3, &plain));
        rollout_engine_free(e);
        c.speculative_mtp = 1;
        CHECK_OK(rollout_engine_create(m, NULL, &c, &e));
        if (!e) return;
        CHECK_OK(rollout_generate(e, prompts, 4, 3, &spec));
        CHECK_INT(0, rollout_engine_blocks_in_use(e));
        rollout_engine_free(e);
        int same = plain.samples && spec.samples;
        double lp_err = 0;
        for (int i = 0; same && i < 12; i++) {
            const rollout_sample *a = &plain.samples[i], *b = &spec.samples[i];
            same = a->n_tokens == b->n_tokens && !memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int32_t));
            for (int t = 0; same && t < a->n_tokens; t++) {
                double err = fabs(a->policy_logprobs[t] - b->policy_logprobs[t]);
                if (err > lp_err) lp_err = err;
            }
        }
        CHECK_MSG(same, "%s mode %d: speculative decoding changed the output", name, mode);
        CHECK(lp_err < 1e-4);
        if (spec.samples) {
            CHECK(spec.stats.draft_tokens > 0);
            CHECK(spec.stats.accepted_tokens <= spec.stats.draft_tokens);
            if (mode == 2) CHECK(spec.stats.preemptions > 0);
            printf("%s, %s: speculative = plain (%lld tokens); %lld of %lld MTP drafts accepted (%.0f%%), %lld vs %lld "
                   "decode steps, %lld preemptions\n", name, mode == 0 ? "greedy" : mode == 1 ? "T 1" : "T 1, tight cache",
                   (long long)spec.stats.generated_tokens, (long long)spec.stats.accepted_tokens,
                   (long long)spec.stats.draft_tokens,
                   100.0 * spec.stats.accepted_tokens / (spec.stats.draft_tokens ? spec.stats.draft_tokens : 1),
                   (long long)spec.stats.decode_steps, (long long)plain.stats.decode_steps,
                   (long long)spec.stats.preemptions);
        }
        rollout_output_deinit(&plain);
        rollout_output_deinit(&spec);
    }
}

static void run_config(const char *json, const char *name) {
    lm *m = NULL;
    CHECK_OK(lm_create_random(be, json, strlen(json), name, 3, &m));
    if (!m) return;
    deepseek_v3_config cfg;
    CHECK_OK(hf_config_v3_parse(json, strlen(json), name, &cfg));
    check_decode_matches_forward(m, name);
    check_engine(m, name, &cfg);
    if (cfg.num_nextn_predict_layers > 0) {
        check_draft_matches_mtp_loss(m, name);
        check_speculative(m, name);
    } else {
        rollout_config c;
        rollout_config_defaults(&c);
        c.speculative_mtp = 1;
        c.cache_mib = 4;
        rollout_engine *e = NULL;
        CHECK_FAILS(rollout_engine_create(m, NULL, &c, &e), "MTP module");
        CHECK(e == NULL);
    }
    lm_free(m);
}

int main(void) {
    be = backend_cpu_create();
    run_config(yarn_config, "q_lora + yarn");
    run_config(plain_config, "q_proj");
    backend_free(be);
    TEST_MAIN_END();
}
