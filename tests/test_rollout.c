/* The rollout engine (rollouts/rollout.h) on a random dense model (Qwen2 with GQA and
 * biases) and the built-in tokenizer:
 *  - greedy decoding through the paged cache gives, token for token, the argmax of the
 *    full forward (dense_forward over prompt + completion), and the returned policy
 *    log-probs equal its log-softmax (tolerance 2e-4 absolute); sampled runs: policy
 *    log-probs = log-softmax(logits / T), sampled log-probs = log of the truncated
 *    distribution (sampler_distribution on the full forward's row);
 *  - sharing the prompt blocks gives the same samples as one prefill per sample, with
 *    fewer prompt tokens and fewer peak blocks;
 *  - fixed seeds reproduce with another batch composition (other prompts around, another
 *    order, fewer slots, another G) and another thread count;
 *  - a cache too small for all sequences preempts and recomputes, with the same output;
 *  - the pool is empty after every run; cache bytes per token match the formula;
 *  - stop strings spanning tokens, stop token ids, max_tokens; text prompts get BOS;
 *  - bad prompts and settings fail with messages naming them. */
#include <math.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/backend.h"
#include "model/dense.h"
#include "model/lm.h"
#include "model/tokenizer.h"
#include "rollouts/rollout.h"
#include "rollouts/sampler.h"
#include "tests/harness.h"

static backend *be;
static lm *model;
static tokenizer *tok;

static const char *config_json =
    "{\"model_type\": \"qwen2\", \"vocab_size\": 400, \"hidden_size\": 64, \"intermediate_size\": 96,"
    " \"num_hidden_layers\": 3, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"max_position_embeddings\": 160, \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000.0,"
    " \"tie_word_embeddings\": true, \"initializer_range\": 0.15}";

#define N_PROMPTS 5
static int32_t prompt_ids[N_PROMPTS][40];
static int prompt_lens[N_PROMPTS] = {5, 16, 23, 1, 33};   /* below, at and across block boundaries (8) */
static rollout_prompt prompts[N_PROMPTS];

static rollout_config base_config(void) {
    rollout_config c;
    rollout_config_defaults(&c);
    c.block_size = 8;
    c.cache_mib = 8;
    c.max_num_seqs = 16;
    c.max_prefill_tokens = 40;   /* the 33-token prompt with others goes in chunks */
    c.sampling.max_tokens = 20;
    c.sampling.ignore_eos = 1;
    return c;
}

static rollout_engine *make_engine(const rollout_config *c) {
    rollout_engine *e = NULL;
    CHECK_OK(rollout_engine_create(model, tok, c, &e));
    return e;
}

/* ---- against the full forward ---- */

/* Full forward over prompt + completion; checks every completion token against it. */
static void check_against_forward(const rollout_output *o, const sampler_params *sp, double *max_policy_err,
                                  double *max_sampled_err, int *argmax_mismatch, double *min_margin) {
    const int V = model->vocab_size;
    void *scratch = malloc(sampler_scratch_bytes(V));
    double *probs = malloc((size_t)V * sizeof(double));
    float *scaled = malloc((size_t)V * sizeof(float));
    for (int i = 0; i < o->n_prompts * o->G; i++) {
        const rollout_sample *s = &o->samples[i];
        int P = o->prompt_lens[s->prompt_index], T = P + s->n_tokens;
        int32_t *ids = malloc((size_t)T * sizeof(int32_t));
        memcpy(ids, o->prompt_tokens[s->prompt_index], (size_t)P * sizeof(int32_t));
        memcpy(ids + P, s->tokens, (size_t)s->n_tokens * sizeof(int32_t));
        int32_t *dev = be->alloc(be, (size_t)T * sizeof(int32_t));
        be->to_device(be, dev, ids, (size_t)T * sizeof(int32_t));
        float *logits, *host = malloc((size_t)T * V * sizeof(float));
        CHECK_OK(lm_reserve(model, 1, T));
        CHECK_OK(lm_forward(model, dev, NULL, 1, T, &logits));
        be->to_host(be, host, logits, (size_t)T * V * sizeof(float));
        for (int t = 0; t < s->n_tokens; t++) {
            const float *row = host + (size_t)(P - 1 + t) * V;
            float T_eff = sp->temperature > 0 ? sp->temperature : 1.0f;
            double mx = -INFINITY, sum = 0;
            for (int v = 0; v < V; v++) {
                scaled[v] = row[v] / T_eff;
                if (scaled[v] > mx) mx = scaled[v];
            }
            for (int v = 0; v < V; v++) sum += exp(scaled[v] - mx);
            double ref = scaled[s->tokens[t]] - mx - log(sum);
            double err = fabs(ref - s->policy_logprobs[t]);
            if (err > *max_policy_err) *max_policy_err = err;
            if (sp->temperature == 0) {
                int best = 0;
                for (int v = 1; v < V; v++)
                    if (row[v] > row[best]) best = v;
                float second = -INFINITY;
                for (int v = 0; v < V; v++)
                    if (v != best && row[v] > second) second = row[v];
                if (row[best] - second < *min_margin) *min_margin = row[best] - second;
                if (best != s->tokens[t]) (*argmax_mismatch)++;
            } else {
                sampler_distribution(sp, row, V, scratch, probs);
                double e2 = probs[s->tokens[t]] > 0 ? fabs(log(probs[s->tokens[t]]) - s->logprobs[t]) : INFINITY;
                if (e2 > *max_sampled_err) *max_sampled_err = e2;
            }
        }
        free(ids);
        free(host);
        be->free(be, dev);
    }
    free(scratch);
    free(probs);
    free(scaled);
}

static void check_greedy_and_logprobs(void) {
    rollout_config c = base_config();
    c.sampling.sampler.temperature = 0;
    rollout_engine *e = make_engine(&c);
    if (!e) return;
    rollout_output o;
    CHECK_OK(rollout_generate(e, prompts, N_PROMPTS, 2, &o));
    CHECK_INT(0, rollout_engine_blocks_in_use(e));
    double perr = 0, serr = 0, margin = INFINITY;
    int mismatch = 0, tokens = 0;
    check_against_forward(&o, &c.sampling.sampler, &perr, &serr, &mismatch, &margin);
    for (int i = 0; i < N_PROMPTS * 2; i++) {
        tokens += o.samples[i].n_tokens;
        CHECK_INT(20, o.samples[i].n_tokens);
        CHECK_INT(ROLLOUT_FINISH_LENGTH, o.samples[i].finish_reason);
        for (int t = 0; t < o.samples[i].n_tokens; t++) CHECK(o.samples[i].logprobs[t] == 0.0f);
    }
    /* both greedy samples of a prompt are the same */
    for (int p = 0; p < N_PROMPTS; p++)
        CHECK(!memcmp(o.samples[2 * p].tokens, o.samples[2 * p + 1].tokens, 20 * sizeof(int32_t)));
    CHECK_INT(0, mismatch);
    CHECK_MSG(perr < 2e-4, "greedy policy log-probs vs the full forward: max error %.3g", perr);
    printf("greedy: %d tokens equal the full forward's argmax (smallest top-2 margin %.3g), policy log-prob "
           "error %.3g\n", tokens, margin, perr);
    rollout_output_deinit(&o);

    /* sampled: T = 0.8, top-p 0.9, top-k 50, min-p 0.02 */
    rollout_sampling s = c.sampling;
    s.sampler = (sampler_params){0.8f, 50, 0.9f, 0.02f};
    CHECK_OK(rollout_engine_set_sampling(e, &s));
    CHECK_OK(rollout_generate(e, prompts, N_PROMPTS, 3, &o));
    perr = serr = 0;
    check_against_forward(&o, &s.sampler, &perr, &serr, &mismatch, &margin);
    CHECK_MSG(perr < 2e-4, "sampled policy log-probs vs log-softmax(forward / T): max error %.3g", perr);
    CHECK_MSG(serr < 2e-4, "sampled log-probs vs the truncated distribution of the forward: max error %.3g", serr);
    printf("sampled (T 0.8, top-k 50, top-p 0.9, min-p 0.02): policy log-prob error %.3g, sampled log-prob error "
           "%.3g\n", perr, serr);
    rollout_output_deinit(&o);
    rollout_engine_free(e);
}

/* ---- sharing, reproducibility, preemption ---- */

/* Dense K/V cache: 2 (K and V) * layers * kv heads * head_dim floats per token. */
static size_t formula_bytes_per_token(void) { return (size_t)2 * 3 * 2 * (64 / 4) * sizeof(float); }

static int same_sample(const rollout_sample *a, const rollout_sample *b) {
    if (a->n_tokens != b->n_tokens || memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int32_t))) return 0;
    for (int t = 0; t < a->n_tokens; t++)
        if (fabsf(a->logprobs[t] - b->logprobs[t]) > 1e-4f ||
            fabsf(a->policy_logprobs[t] - b->policy_logprobs[t]) > 1e-4f)
            return 0;
    return a->finish_reason == b->finish_reason && a->seed == b->seed;
}

static rollout_output run(const rollout_config *c, const rollout_prompt *ps, int n, int G) {
    rollout_output o;
    memset(&o, 0, sizeof o);
    rollout_engine *e = make_engine(c);
    if (!e) return o;
    CHECK_OK(rollout_generate(e, ps, n, G, &o));
    CHECK_INT(0, rollout_engine_blocks_in_use(e));
    rollout_engine_free(e);
    return o;
}

static void check_sharing_and_reproducibility(void) {
    rollout_config c = base_config();
    const int G = 4;
    rollout_output shared = run(&c, prompts, N_PROMPTS, G);
    rollout_config cu = c;
    cu.share_prompt = 0;
    rollout_output unshared = run(&cu, prompts, N_PROMPTS, G);
    int same = 1, distinct = 0;
    for (int i = 0; i < N_PROMPTS * G; i++) {
        same &= same_sample(&shared.samples[i], &unshared.samples[i]);
        if (i % G && memcmp(shared.samples[i].tokens, shared.samples[i - 1].tokens, 4 * sizeof(int32_t))) distinct++;
    }
    CHECK_MSG(same, "shared prompt blocks gave other samples than one prefill per sample");
    CHECK_MSG(distinct > N_PROMPTS, "samples of a group are not different from each other (%d)", distinct);
    int64_t sum_p = 0;
    for (int p = 0; p < N_PROMPTS; p++) sum_p += shared.prompt_lens[p];
    CHECK_INT(sum_p, shared.stats.prompt_tokens);
    CHECK_INT(sum_p * G, unshared.stats.prompt_tokens);
    CHECK(shared.stats.cow_copies > 0);   /* prompts of 5, 23, 1, 33 tokens end inside a block */
    CHECK_INT(0, unshared.stats.cow_copies);
    CHECK_MSG(shared.stats.peak_blocks < unshared.stats.peak_blocks, "peak blocks shared %d, unshared %d",
              shared.stats.peak_blocks, unshared.stats.peak_blocks);
    printf("sharing: same samples; prompt tokens %lld vs %lld, peak blocks %d vs %d, %lld copy-on-write blocks\n",
           (long long)shared.stats.prompt_tokens, (long long)unshared.stats.prompt_tokens, shared.stats.peak_blocks,
           unshared.stats.peak_blocks, (long long)shared.stats.cow_copies);

    /* another batch: prompts 4 and 1 only, reversed, 3 slots, G = 2, one thread */
    rollout_prompt sub[2] = {prompts[4], prompts[1]};
    rollout_config c3 = c;
    c3.max_num_seqs = 3;
    c3.max_prefill_tokens = 7;
#ifdef _OPENMP
    int threads = omp_get_max_threads();
    omp_set_num_threads(threads > 1 ? 1 : 2);
#endif
    rollout_output small = run(&c3, sub, 2, 2);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    int repro = 1;
    for (int g = 0; g < 2; g++) {
        repro &= same_sample(&small.samples[g], &shared.samples[4 * G + g]);
        repro &= same_sample(&small.samples[2 + g], &shared.samples[1 * G + g]);
    }
    CHECK_MSG(repro, "the same seeds gave other samples with another batch composition and thread count");
    CHECK(small.stats.peak_running <= 3);

    /* a cache too small for all: preemption and recomputation, same output */
    rollout_config ct = c;
    ct.max_num_seqs = 20;
    ct.max_model_len = 60;
    ct.cache_mib = 24.0 * 8 * formula_bytes_per_token() / 1048576.0;   /* 24 blocks of 8 tokens */
    rollout_output tight = run(&ct, prompts, N_PROMPTS, G);
    int same_tight = tight.samples != NULL;
    for (int i = 0; same_tight && i < N_PROMPTS * G; i++) same_tight &= same_sample(&tight.samples[i], &shared.samples[i]);
    CHECK_MSG(same_tight, "a preempting run gave other samples");
    CHECK_MSG(tight.stats.preemptions > 0, "expected preemptions with %d blocks", tight.stats.num_blocks);
    CHECK(tight.stats.peak_blocks <= tight.stats.num_blocks);
    printf("preemption: %d blocks, %lld preemptions, %lld tokens recomputed, same samples\n", tight.stats.num_blocks,
           (long long)tight.stats.preemptions, (long long)(tight.stats.prefill_tokens - tight.stats.prompt_tokens));
    rollout_output_deinit(&tight);
    rollout_output_deinit(&small);
    rollout_output_deinit(&shared);
    rollout_output_deinit(&unshared);
}

/* ---- stops, text, memory ---- */

static void check_stops(void) {
    rollout_config c = base_config();
    c.sampling.sampler.temperature = 0;
    c.sampling.max_tokens = 40;
    rollout_output plain = run(&c, prompts, 1, 1);
    if (!plain.samples) return;
    const rollout_sample *ps = &plain.samples[0];
    CHECK(ps->text != NULL);
    /* text = the tokens' bytes */
    size_t bytes = 0;
    for (int t = 0; t < ps->n_tokens; t++) {
        size_t len = 0;
        if (tokenizer_token_bytes(tok, ps->tokens[t], &len)) bytes += len;
    }
    CHECK_INT(bytes, ps->text_len);

    /* a stop string across a token boundary: 2 bytes of one token, 2 of the next */
    size_t at = 0;
    int k = -1;
    for (int t = 0; t + 1 < ps->n_tokens && k < 0; t++) {
        size_t l0 = 0, l1 = 0;
        tokenizer_token_bytes(tok, ps->tokens[t], &l0);
        tokenizer_token_bytes(tok, ps->tokens[t + 1], &l1);
        if (t >= 3 && l0 >= 2 && l1 >= 2) k = t;
        else at += l0;
    }
    if (k < 0) {
        printf("no token pair of 2+ bytes in the greedy text; stop-string check skipped\n");
    } else {
        char stop[5];
        size_t l0 = 0;
        tokenizer_token_bytes(tok, ps->tokens[k], &l0);
        memcpy(stop, ps->text + at + l0 - 2, 4);
        stop[4] = 0;
        const char *first = NULL;
        for (size_t i = 0; i + 4 <= ps->text_len && !first; i++)
            if (!memcmp(ps->text + i, stop, 4)) first = ps->text + i;
        size_t cut = (size_t)(first - ps->text);
        for (int include = 0; include < 2; include++) {
            rollout_config cs = c;
            cs.sampling.stop[0] = "never-seen-stop";
            cs.sampling.stop[1] = stop;
            cs.sampling.n_stop = 2;
            cs.sampling.include_stop_str_in_output = include;
            rollout_output o = run(&cs, prompts, 1, 1);
            if (!o.samples) continue;
            const rollout_sample *s = &o.samples[0];
            CHECK_INT(ROLLOUT_FINISH_STOP, s->finish_reason);
            CHECK_INT(1, s->stop_string);
            CHECK_INT(-1, s->stop_token);
            CHECK_INT(cut + (include ? 4 : 0), s->text_len);
            CHECK(!strncmp(s->text, ps->text, s->text_len));
            /* generation ended with the token that completed the stop string */
            size_t end = 0;
            int n = 0;
            while (end < cut + 4) {
                size_t len = 0;
                tokenizer_token_bytes(tok, ps->tokens[n++], &len);
                end += len;
            }
            CHECK_INT(n, s->n_tokens);
            CHECK(!memcmp(s->tokens, ps->tokens, (size_t)n * sizeof(int32_t)));
            rollout_output_deinit(&o);
        }
        printf("stop string \"%s\" across tokens %d/%d: text cut at byte %zu\n", stop, k, k + 1, cut);
    }

    /* a stop token id: the completion ends with it, the text without it */
    int32_t stop_id = ps->tokens[6];
    int first_at = 0;
    while (ps->tokens[first_at] != stop_id) first_at++;
    rollout_config ci = c;
    ci.sampling.stop_token_ids[0] = stop_id;
    ci.sampling.n_stop_token_ids = 1;
    rollout_output o = run(&ci, prompts, 1, 1);
    if (o.samples) {
        const rollout_sample *s = &o.samples[0];
        CHECK_INT(ROLLOUT_FINISH_STOP, s->finish_reason);
        CHECK_INT(stop_id, s->stop_token);
        CHECK_INT(first_at + 1, s->n_tokens);
        size_t want = 0;
        for (int t = 0; t < first_at; t++) {
            size_t len = 0;
            if (tokenizer_token_bytes(tok, ps->tokens[t], &len)) want += len;
        }
        CHECK_INT(want, s->text_len);
    }
    rollout_output_deinit(&o);

    /* max_tokens */
    rollout_config cm = c;
    cm.sampling.max_tokens = 3;
    o = run(&cm, prompts, 2, 2);
    for (int i = 0; o.samples && i < 4; i++) {
        CHECK_INT(3, o.samples[i].n_tokens);
        CHECK_INT(ROLLOUT_FINISH_LENGTH, o.samples[i].finish_reason);
    }
    rollout_output_deinit(&o);
    /* max_model_len: prompt 33 + completion stops at 40 tokens in all */
    rollout_config cl = c;
    cl.max_model_len = 40;
    rollout_prompt long_prompt = prompts[4];
    o = run(&cl, &long_prompt, 1, 1);
    if (o.samples) {
        CHECK_INT(40 - 33, o.samples[0].n_tokens);
        CHECK_INT(ROLLOUT_FINISH_LENGTH, o.samples[0].finish_reason);
    }
    rollout_output_deinit(&o);
    rollout_output_deinit(&plain);
}

static void check_text_prompt_and_errors(void) {
    rollout_config c = base_config();
    c.sampling.max_tokens = 4;
    rollout_engine *e = make_engine(&c);
    if (!e) return;
    CHECK_INT(formula_bytes_per_token(), rollout_engine_bytes_per_token(e));
    rollout_prompt tp = {.text = "What is 2 + 3?", .seed = 1};
    rollout_output o;
    CHECK_OK(rollout_generate(e, &tp, 1, 2, &o));
    if (o.prompt_tokens) {
        CHECK_INT(tokenizer_bos_id(tok), o.prompt_tokens[0][0]);
        int32_t *enc;
        int n;
        CHECK_OK(tokenizer_encode(tok, tp.text, strlen(tp.text), &enc, &n));
        CHECK_INT(n + 1, o.prompt_lens[0]);
        CHECK(!memcmp(o.prompt_tokens[0] + 1, enc, (size_t)n * sizeof(int32_t)));
        free(enc);
        CHECK_INT((int64_t)o.stats.num_blocks * 8 * formula_bytes_per_token(), o.stats.pool_bytes);
    }
    rollout_output_deinit(&o);

    int32_t long_ids[200] = {0}, bad_id = 400;
    rollout_prompt bad[3] = {{.ids = long_ids, .n_ids = 160}, {.ids = &bad_id, .n_ids = 1}, {.ids = long_ids, .n_ids = 0}};
    CHECK_FAILS(rollout_generate(e, &bad[0], 1, 1, &o), "prompt 0 has 160 tokens");
    CHECK(o.samples == NULL);
    CHECK_FAILS(rollout_generate(e, bad, 2, 1, &o), "no room");
    rollout_prompt two[2] = {prompts[0], bad[1]};
    CHECK_FAILS(rollout_generate(e, two, 2, 1, &o), "prompt 1: token 0 is 400");
    two[1] = bad[2];
    CHECK_FAILS(rollout_generate(e, two, 2, 1, &o), "prompt 1 is empty");
    CHECK_FAILS(rollout_generate(e, prompts, 1, 0, &o), "G >= 1");
    CHECK_INT(0, rollout_engine_blocks_in_use(e));
    CHECK_OK(rollout_generate(e, prompts, 0, 3, &o));
    CHECK_INT(0, o.n_prompts);
    rollout_output_deinit(&o);

    rollout_sampling s = c.sampling;
    s.sampler.top_p = 0;
    CHECK_FAILS(rollout_engine_set_sampling(e, &s), "top_p");
    s = c.sampling;
    s.stop_token_ids[0] = 999;
    s.n_stop_token_ids = 1;
    CHECK_FAILS(rollout_engine_set_sampling(e, &s), "stop token id 999");
    rollout_engine_free(e);

    rollout_config bc = c;
    bc.cache_mib = 0.001;
    rollout_engine *none = NULL;
    CHECK_FAILS(rollout_engine_create(model, tok, &bc, &none), "raise cache_mib");
    CHECK(none == NULL);
    bc = c;
    bc.max_model_len = 1000;
    CHECK_FAILS(rollout_engine_create(model, tok, &bc, &none), "max_model_len");
    bc = c;
    bc.sampling.stop[0] = "";
    bc.sampling.n_stop = 1;
    CHECK_FAILS(rollout_engine_create(model, tok, &bc, &none), "empty");
    rollout_engine_free(NULL);
    rollout_output_deinit(NULL);
}

int main(void) {
    be = backend_cpu_create();
    CHECK_OK(lm_create_random(be, config_json, strlen(config_json), "test config", 11, &model));
    CHECK_OK(tokenizer_builtin_create(&tok));
    if (!model || !tok) TEST_MAIN_END();
    uint64_t x = 5;
    for (int p = 0; p < N_PROMPTS; p++) {
        for (int t = 0; t < prompt_lens[p]; t++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            prompt_ids[p][t] = (int32_t)((x >> 33) % 256);   /* byte tokens */
        }
        prompts[p] = (rollout_prompt){.ids = prompt_ids[p], .n_ids = prompt_lens[p], .seed = 1000 + 17 * p};
    }
    check_greedy_and_logprobs();
    check_sharing_and_reproducibility();
    check_stops();
    check_text_prompt_and_errors();
    tokenizer_free(tok);
    lm_free(model);
    backend_free(be);
    TEST_MAIN_END();
}
