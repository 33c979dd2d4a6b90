/* The GRPO trainer (rl/grpo_train.h). */
#include "rl/grpo_train.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backend_pool.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "model/deepseek_v3.h"
#include "rl/checkpoint.h"
#include "rl/data_parallel.h"
#include "rl/grpo_rollout.h"

/* RNG streams of the trainer (core/rng.h): prompt order per epoch, sampling seeds. */
#define GRPO_ORDER_STREAM 0x67727000ull
#define GRPO_SAMPLE_STREAM 0x67727100ull
#define GRPO_EVAL_STREAM 0x67727200ull

grpo_config grpo_config_default(void) {
    grpo_config c = {0};
    c.max_steps = 100;
    c.per_device_train_batch_size = 8;
    c.gradient_accumulation_steps = 1;
    c.num_generations = 8;
    c.num_iterations = 1;
    c.max_completion_length = 256;
    sampler_params_defaults(&c.sampling);
    c.loss = grpo_loss_options_default();
    c.advantage = advantage_options_default();
    c.bias_update_gamma = 0.001;
    c.logging_steps = 1;
    c.log_rollouts_per_step = 16;
    c.save_total_limit = 2;
    c.eval_num_generations = 4;
    sampler_params_defaults(&c.eval_sampling);
    c.optim = optim_config_default();
    c.optim.learning_rate = 1e-6;
    c.seed = 42;
    return c;
}

grpo_status grpo_config_validate(const grpo_config *c) {
    int completions = c->per_device_train_batch_size * c->gradient_accumulation_steps;
    if (c->num_generations < 2)
        return grpo_fail(GRPO_ERR_INVALID, "num_generations must be at least 2, found %d", c->num_generations);
    if (c->per_device_train_batch_size < 1 || c->gradient_accumulation_steps < 1 || completions % c->num_generations)
        return grpo_fail(GRPO_ERR_INVALID, "per_device_train_batch_size * gradient_accumulation_steps (%d) must be a "
                         "positive multiple of num_generations (%d)", completions, c->num_generations);
    if (c->max_steps < 1) return grpo_fail(GRPO_ERR_INVALID, "max_steps must be at least 1");
    if (c->num_iterations < 1) return grpo_fail(GRPO_ERR_INVALID, "num_iterations must be at least 1");
    if (c->max_completion_length < 1) return grpo_fail(GRPO_ERR_INVALID, "max_completion_length must be at least 1");
    if (c->eval_num_generations < 1) return grpo_fail(GRPO_ERR_INVALID, "eval_num_generations must be at least 1");
    GRPO_TRY(sampler_params_validate(&c->sampling));
    GRPO_TRY(sampler_params_validate(&c->eval_sampling));
    grpo_loss_options lo = c->loss;
    lo.max_completion_length = c->max_completion_length;
    return grpo_loss_check_options(&lo);
}

/* ---- the policy's per-token log-probs over prompt + completion ---------------------- */

/* Per-micro-batch buffers, sized once for `rows` sequences of up to T_max tokens. */
typedef struct {
    backend *be;
    int rows, T_max, Tc, V;
    int32_t *host_ids, *host_targets;
    float *host_values;          /* [rows * T_max] */
    float *host_logits;          /* [rows * T_max * V] when entropies are wanted, else NULL */
    float *host_dlogits;         /* [rows * T_max * V] the entropy gradient's staging, with host_logits */
    int32_t *ids, *targets;
    float *logprobs, *lse, *dlogprobs;
    float *token_logprobs;       /* [rows * Tc] gathered */
    float *token_entropies;      /* [rows * Tc] */
    float *grad;                 /* [rows * Tc] d loss / d logprobs */
    float *grad_entropy;         /* [rows * Tc] */
} policy_buffers;

static void policy_buffers_free(policy_buffers *b) {
    free(b->host_ids);
    free(b->host_targets);
    free(b->host_values);
    free(b->host_logits);
    free(b->host_dlogits);
    free(b->token_logprobs);
    free(b->token_entropies);
    free(b->grad);
    free(b->grad_entropy);
    if (b->be) {
        b->be->free(b->be, b->ids);
        b->be->free(b->be, b->targets);
        b->be->free(b->be, b->logprobs);
        b->be->free(b->be, b->lse);
        b->be->free(b->be, b->dlogprobs);
    }
    memset(b, 0, sizeof *b);
}

static grpo_status policy_buffers_init(policy_buffers *b, backend *be, int rows, int T_max, int Tc, int V,
                                       int want_logits) {
    memset(b, 0, sizeof *b);
    size_t n = (size_t)rows * (size_t)T_max, nc = (size_t)rows * (size_t)Tc;
    b->be = be;
    b->rows = rows;
    b->T_max = T_max;
    b->Tc = Tc;
    b->V = V;
    b->host_ids = malloc(n * sizeof(int32_t));
    b->host_targets = malloc(n * sizeof(int32_t));
    b->host_values = malloc(n * sizeof(float));
    b->host_logits = want_logits ? malloc(n * (size_t)V * sizeof(float)) : NULL;
    b->host_dlogits = want_logits ? malloc(n * (size_t)V * sizeof(float)) : NULL;
    b->token_logprobs = calloc(nc, sizeof(float));
    b->token_entropies = calloc(nc, sizeof(float));
    b->grad = calloc(nc, sizeof(float));
    b->grad_entropy = calloc(nc, sizeof(float));
    if (!b->host_ids || !b->host_targets || !b->host_values || (want_logits && (!b->host_logits || !b->host_dlogits)) ||
        !b->token_logprobs || !b->token_entropies || !b->grad || !b->grad_entropy) {
        policy_buffers_free(b);
        return grpo_fail(GRPO_ERR_NOMEM, "cannot allocate GRPO host buffers for %d x %d tokens", rows, T_max);
    }
    /* backend_alloc's message names the buffer that did not fit */
    if (!(b->ids = backend_alloc(be, n * sizeof(int32_t), "GRPO micro-batch token ids")) ||
        !(b->targets = backend_alloc(be, n * sizeof(int32_t), "GRPO micro-batch targets")) ||
        !(b->logprobs = backend_alloc(be, n * sizeof(float), "GRPO micro-batch log-probs")) ||
        !(b->lse = backend_alloc(be, n * sizeof(float), "GRPO micro-batch log-sum-exps")) ||
        !(b->dlogprobs = backend_alloc(be, n * sizeof(float), "GRPO micro-batch log-prob gradients"))) {
        policy_buffers_free(b);
        return GRPO_ERR_NOMEM;
    }
    return GRPO_OK;
}

/* Lays out rows [first, first + rows) of the batch as prompt + completion, right padded;
 * returns T. targets mark the completion tokens (predicted from the position before). */
static int layout_rows(const rollout_samples *gen, const problem_set *ps, int first, int rows, policy_buffers *b,
                       int32_t pad) {
    int T = 1;
    for (int r = 0; r < rows; r++) {
        int i = first + r, len = ps->prompt_lengths[gen->problem[i]] + gen->lengths[i];
        if (len > T) T = len;
    }
    for (int r = 0; r < rows; r++) {
        int i = first + r, pl = ps->prompt_lengths[gen->problem[i]], cl = gen->lengths[i];
        const int32_t *prompt = ps->prompt_ids[gen->problem[i]], *completion = gen->tokens + (size_t)i * gen->Tc;
        for (int t = 0; t < T; t++) {
            int32_t id = t < pl ? prompt[t] : t < pl + cl ? completion[t - pl] : pad;
            b->host_ids[r * T + t] = id;
            int j = t + 1 - pl;   /* the completion token position t predicts */
            b->host_targets[r * T + t] = j >= 0 && j < cl ? completion[j] : -1;
        }
    }
    return T;
}

/* Entropy of softmax(z / temperature) and, when grad_out, the factor that gives
 * dH/dz_v = -p_v (log p_v + H) / temperature. */
static double row_entropy(const float *z, int V, double inv_temp) {
    double mx = -INFINITY, sum = 0, ez = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, z[v] * inv_temp);
    for (int v = 0; v < V; v++) {
        double e = exp(z[v] * inv_temp - mx);
        sum += e;
        ez += e * (z[v] * inv_temp - mx);
    }
    return log(sum) - ez / sum;
}

/* Forward of rows [first, first+rows): per-token log-probs of the completion tokens under
 * softmax(logits / temperature) into b->token_logprobs [rows, Tc] (and entropies when
 * b->host_logits). Leaves the logits pointer for backward. */
static grpo_status policy_forward(lm *model, const rollout_samples *gen, const problem_set *ps, int first, int rows,
                                  double temperature, int32_t pad, policy_buffers *b, int *T_out, float **logits_out) {
    backend *be = model->be;
    int T = layout_rows(gen, ps, first, rows, b, pad), V = model->vocab_size;
    size_t n = (size_t)rows * (size_t)T;
    be->to_device(be, b->ids, b->host_ids, n * sizeof(int32_t));
    be->to_device(be, b->targets, b->host_targets, n * sizeof(int32_t));
    float *logits;
    GRPO_TRY(lm_forward(model, b->ids, NULL, rows, T, &logits));
    if (temperature > 0 && temperature != 1.0) be->scale(be, logits, (float)(1.0 / temperature), n * (size_t)V);
    be->token_logprobs_forward(be, b->logprobs, b->lse, logits, b->targets, (int)n, V);
    be->to_host(be, b->host_values, b->logprobs, n * sizeof(float));
    if (b->host_logits) be->to_host(be, b->host_logits, logits, n * (size_t)V * sizeof(float));
    memset(b->token_logprobs, 0, (size_t)rows * b->Tc * sizeof(float));
    memset(b->token_entropies, 0, (size_t)rows * b->Tc * sizeof(float));
    for (int r = 0; r < rows; r++) {
        int i = first + r, pl = ps->prompt_lengths[gen->problem[i]];
        for (int j = 0; j < gen->lengths[i]; j++) {
            size_t pos = (size_t)r * T + pl + j - 1;
            b->token_logprobs[r * b->Tc + j] = b->host_values[pos];
            if (b->host_logits) b->token_entropies[r * b->Tc + j] = (float)row_entropy(b->host_logits + pos * V, V, 1.0);
        }
    }
    *T_out = T;
    *logits_out = logits;
    return GRPO_OK;
}

/* Backward of policy_forward given b->grad (d loss / d token log-probs) and, when
 * with_entropy, b->grad_entropy. */
static grpo_status policy_backward(lm *model, const rollout_samples *gen, const problem_set *ps, int first, int rows,
                                   int T, double temperature, int with_entropy, policy_buffers *b, float *logits) {
    backend *be = model->be;
    int V = model->vocab_size;
    size_t n = (size_t)rows * (size_t)T;
    memset(b->host_values, 0, n * sizeof(float));
    for (int r = 0; r < rows; r++) {
        int i = first + r, pl = ps->prompt_lengths[gen->problem[i]];
        for (int j = 0; j < gen->lengths[i]; j++) b->host_values[(size_t)r * T + pl + j - 1] = b->grad[r * b->Tc + j];
    }
    be->to_device(be, b->dlogprobs, b->host_values, n * sizeof(float));
    /* d logprob / d (logits / temperature), in place over the (scaled) logits */
    be->token_logprobs_backward(be, logits, logits, b->lse, b->targets, b->dlogprobs, (int)n, V);
    if (with_entropy && b->host_logits) {
        /* dH/dz_v = -p_v (log p_v + H), on the tempered logits kept on the host */
        float *host = b->host_dlogits;   /* sized with host_logits: no allocation per step */
        be->to_host(be, host, logits, n * (size_t)V * sizeof(float));
        for (int r = 0; r < rows; r++) {
            int i = first + r, pl = ps->prompt_lengths[gen->problem[i]];
            for (int j = 0; j < gen->lengths[i]; j++) {
                double g = b->grad_entropy[r * b->Tc + j];
                if (g == 0) continue;
                size_t pos = (size_t)r * T + pl + j - 1;
                const float *z = b->host_logits + pos * V;
                double mx = -INFINITY, sum = 0;
                for (int v = 0; v < V; v++) mx = fmax(mx, z[v]);
                for (int v = 0; v < V; v++) sum += exp(z[v] - mx);
                double H = b->token_entropies[r * b->Tc + j];
                for (int v = 0; v < V; v++) {
                    double logp = z[v] - mx - log(sum), p = exp(logp);
                    host[pos * V + v] += (float)(g * -p * (logp + H));
                }
            }
        }
        be->to_device(be, logits, host, n * (size_t)V * sizeof(float));
    }
    if (temperature > 0 && temperature != 1.0) be->scale(be, logits, (float)(1.0 / temperature), n * (size_t)V);
    return lm_backward(model, logits);
}

/* Log-probs of every sample's completion under `model` (no backward), into
 * out[n * Tc]: the old policy (num_iterations > 1) or the reference. */
static grpo_status all_logprobs(lm *model, const rollout_samples *gen, const problem_set *ps, int micro, double temperature,
                                int32_t pad, policy_buffers *b, float *out) {
    for (int first = 0; first < gen->n; first += micro) {
        int rows = gen->n - first < micro ? gen->n - first : micro, T;
        float *logits;
        GRPO_TRY(policy_forward(model, gen, ps, first, rows, temperature, pad, b, &T, &logits));
        memcpy(out + (size_t)first * b->Tc, b->token_logprobs, (size_t)rows * b->Tc * sizeof(float));
    }
    return GRPO_OK;
}

/* ---- metrics ------------------------------------------------------------------------ */

/* Words whose appearance R1-Zero's "aha moment" is read from (R1 report sec. 2.2.4). */
static int has_reflection(const char *text) {
    static const char *words[] = {"wait", "verify", "check", "recheck", "re-check", "however", "mistake", NULL};
    char low[4096];
    size_t n = strlen(text);
    if (n >= sizeof low) n = sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)text[i]);
    low[n] = 0;
    for (int w = 0; words[w]; w++)
        if (strstr(low, words[w])) return 1;
    return 0;
}

#define MAX_METRICS 64
typedef struct {
    int n;
    const char *names[MAX_METRICS];
    double values[MAX_METRICS];
    char name_store[MAX_METRICS][64];
} metric_list;

static void metric_add(metric_list *m, const char *name, double value) {
    if (m->n >= MAX_METRICS) return;
    snprintf(m->name_store[m->n], sizeof m->name_store[m->n], "%s", name);
    m->names[m->n] = m->name_store[m->n];
    m->values[m->n++] = value;
}

/* Per-expert routing load of each MoE layer's last forward as metrics
 * "moe/load/L<layer>/E<expert>" = load_e / mean load (1 = balanced; the report's
 * heatmap). Only DeepSeek-V3-family models have routed experts. */
static void put_expert_loads(const lm *model, const train_run *run, int step) {
    if (!run->on_metrics || !model->ops->num_moe_layers || strncmp(model->model_type, "deepseek", 8)) return;
    const deepseek_v3_model *dm = model->impl;
    int E = deepseek_v3_get_config(dm)->n_routed_experts, layers = deepseek_v3_num_moe_layers(dm);
    char(*name_store)[48] = malloc((size_t)E * sizeof *name_store);
    const char **names = malloc((size_t)E * sizeof *names);
    double *values = malloc((size_t)E * sizeof *values);
    for (int i = 0; i < layers && name_store && names && values; i++) {
        const moe_stats *st = deepseek_v3_moe_stats(dm, i);
        if (!st || !st->load) continue;
        double sum = 0;
        for (int e = 0; e < E; e++) sum += (double)st->load[e];
        for (int e = 0; e < E; e++) {
            snprintf(name_store[e], sizeof name_store[e], "moe/load/L%d/E%d", deepseek_v3_moe_layer_index(dm, i), e);
            names[e] = name_store[e];
            values[e] = sum > 0 ? (double)st->load[e] * E / sum : NAN;
        }
        run->on_metrics(run->ctx, step, E, names, values);
    }
    free(name_store);
    free(names);
    free(values);
}

/* The first `cap` completions of the generation batch (whole groups first: they are
 * stored group by group) with their reward components, verdict and advantage. A
 * completion cut at max_completion_length and not judged correct gets the verdict
 * "truncated" (docs/store.md). */
static void put_rollouts(const train_run *run, int step, int cap, const problem_set *ps, const rollout_samples *gen,
                         const reward_result *scores, const double *totals, const double *adv) {
    int n = cap < gen->n ? cap : gen->n;
    if (!run->on_rollouts || n <= 0) return;
    store_rollout *rows = calloc((size_t)n, sizeof *rows);
    char **jsons = calloc((size_t)n, sizeof *jsons), (*ids)[32] = calloc((size_t)n, sizeof *ids);
    for (int i = 0; i < n && rows && jsons && ids; i++) {
        int p = gen->problem[i];
        json_t *comp = json_object();
        for (int c = 0; c < scores[i].n_components && comp; c++)
            json_object_set_new(comp, scores[i].components[c].name, json_real(scores[i].components[c].score));
        jsons[i] = comp ? json_dumps(comp, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(comp);
        const char *id = json_string_value(json_object_get(ps->lines[p], "id"));
        if (!id) snprintf(ids[i], sizeof ids[i], "%d", p);
        rows[i] = (store_rollout){.step = step, .prompt_id = id ? id : ids[i], .sample_idx = i % gen->group_size,
                                  .prompt = ps->prompts[p], .completion = gen->texts[i], .reward = totals[i],
                                  .rewards_json = jsons[i],
                                  .verdict = scores[i].status != GRPO_OK ? "error"
                                             : gen->truncated[i] && strcmp(scores[i].verdict, "correct") ? "truncated"
                                             : scores[i].verdict[0] ? scores[i].verdict : NULL,
                                  .advantage = adv[i], .length = gen->lengths[i]};
    }
    if (rows && jsons && ids) run->on_rollouts(run->ctx, step, n, rows);
    for (int i = 0; jsons && i < n; i++) free(jsons[i]);
    free(rows);
    free(jsons);
    free(ids);
}

/* ---- training ----------------------------------------------------------------------- */

/* The prompt of slot k of generation batch g: epochs walk permutations of the problems. */
static int prompt_at(const problem_set *ps, uint64_t seed, int64_t cursor, int *perm, int *perm_epoch) {
    int n = ps->count, epoch = (int)(cursor / n);
    if (epoch != *perm_epoch) {
        rng_stream r = rng_stream_make(seed, GRPO_ORDER_STREAM + (uint64_t)epoch);
        for (int i = 0; i < n; i++) perm[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)rng_next_below(&r, (uint32_t)(i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        *perm_epoch = epoch;
    }
    return perm[cursor % n];
}

/* The engine's sampling settings for training or for evaluation. */
static grpo_status engine_sampling(rollout_engine *e, const sampler_params *p, int max_tokens) {
    rollout_sampling rs = {0};
    rs.sampler = *p;
    rs.max_tokens = max_tokens;
    return rollout_engine_set_sampling(e, &rs);
}

static grpo_status create_engine(lm *model, const tokenizer *tok, const grpo_config *cfg, int max_num_seqs,
                                 rollout_engine **out) {
    rollout_config rc;
    rollout_config_defaults(&rc);
    rc.sampling.sampler = cfg->sampling;
    rc.sampling.max_tokens = cfg->max_completion_length;
    rc.add_bos = 0;   /* problem prompts carry their BOS already */
    rc.max_num_seqs = max_num_seqs;
    return rollout_engine_create(model, tok, &rc, out);
}

static grpo_status evaluate_with(rollout_engine *e, const grpo_config *cfg, const problem_set *eval,
                                 const reward_set *rewards, eval_summary *out) {
    memset(out, 0, sizeof *out);
    int n_problems = cfg->eval_max_problems > 0 && cfg->eval_max_problems < eval->count ? cfg->eval_max_problems
                                                                                         : eval->count;
    int G = cfg->eval_num_generations, chunk = 32;
    int *problems = malloc((size_t)chunk * sizeof(int));
    reward_result *results = malloc((size_t)chunk * G * sizeof(reward_result));
    int *correct = malloc((size_t)G * sizeof(int));
    const char **answers = malloc((size_t)G * sizeof(char *));
    rollout_samples gen = {0};
    grpo_status s = problems && results && correct && answers ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    if (!s) s = engine_sampling(e, &cfg->eval_sampling, cfg->max_completion_length);
    for (int start = 0; start < n_problems && !s; start += chunk) {
        int np = n_problems - start < chunk ? n_problems - start : chunk;
        for (int k = 0; k < np; k++) problems[k] = start + k;
        s = grpo_rollout_generate(e, eval, problems, np, G, rng_u32(cfg->seed, GRPO_EVAL_STREAM, (uint64_t)start),
                                  cfg->max_completion_length, &gen);
        if (!s) s = grpo_rollout_score(rewards, eval, &gen, results);
        for (int k = 0; k < np && !s; k++) {
            for (int g = 0; g < G; g++) {
                const reward_result *r = &results[k * G + g];
                correct[g] = r->status == GRPO_OK && r->has_verdict && r->correct;
                answers[g] = r->status == GRPO_OK ? r->extracted : NULL;
            }
            int m = eval_majority(answers, G, NULL, NULL);
            eval_summary_add(out, G, correct, gen.lengths + k * G, G, m >= 0 && correct[m]);
        }
    }
    eval_summary_finish(out);
    grpo_status restore = engine_sampling(e, &cfg->sampling, cfg->max_completion_length);
    if (!s) s = restore;
    grpo_rollout_samples_free(&gen);
    free(problems);
    free(results);
    free(correct);
    free(answers);
    return s;
}

grpo_status grpo_evaluate(const grpo_config *cfg, lm *model, const tokenizer *tok, const problem_set *eval,
                          const reward_set *rewards, eval_summary *out) {
    rollout_engine *e;
    GRPO_TRY(create_engine(model, tok, cfg, 64, &e));
    grpo_status s = evaluate_with(e, cfg, eval, rewards, out);
    rollout_engine_free(e);
    return s;
}

grpo_status grpo_train(const grpo_config *cfg, lm *model, lm *ref, const tokenizer *tok, const problem_set *train,
                       const problem_set *eval, const reward_set *rewards, const train_run *run, grpo_result *result) {
    memset(result, 0, sizeof *result);
    GRPO_TRY(grpo_config_validate(cfg));
    if (cfg->loss.beta > 0 && !ref)
        return grpo_fail(GRPO_ERR_INVALID, "beta = %g needs a reference model", cfg->loss.beta);
    backend *be = model->be;
    int micro = cfg->per_device_train_batch_size, accum = cfg->gradient_accumulation_steps;
    int n_samples = micro * accum, G = cfg->num_generations, n_prompts = n_samples / G;
    int Tc = cfg->max_completion_length, T_max = train->max_prompt_length + Tc;
    int V = model->vocab_size, R = reward_set_size(rewards);
    int32_t pad = run->pad_id;
    double temperature = cfg->sampling.temperature > 0 ? cfg->sampling.temperature : 1.0;
    int want_entropy = (size_t)micro * T_max * V <= ((size_t)1 << 26) || cfg->loss.entropy_coef != 0;
    GRPO_TRY(lm_reserve(model, micro, T_max));
    if (ref) GRPO_TRY(lm_reserve(ref, micro, T_max));

    optim *opt = NULL;
    rollout_engine *engine = NULL;
    policy_buffers b = {0};
    rollout_samples gen = {0};
    progress *bar = NULL;
    int *perm = malloc((size_t)train->count * sizeof(int)), perm_epoch = -1;
    int *problems = malloc((size_t)n_prompts * sizeof(int));
    reward_result *scores = malloc((size_t)n_samples * sizeof(reward_result));
    double *totals = malloc((size_t)n_samples * sizeof(double)), *adv = malloc((size_t)n_samples * sizeof(double));
    uint8_t *keep = malloc((size_t)n_prompts), *mask = malloc((size_t)n_samples * Tc);
    float *old_lp = cfg->num_iterations > 1 ? malloc((size_t)n_samples * Tc * sizeof(float)) : NULL;
    float *ref_lp = ref ? malloc((size_t)n_samples * Tc * sizeof(float)) : NULL;
    float *samp_lp = malloc((size_t)n_samples * Tc * sizeof(float));
    grpo_status s = perm && problems && scores && totals && adv && keep && mask && samp_lp &&
                    (cfg->num_iterations == 1 || old_lp) && (!ref || ref_lp)
                        ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "grpo: out of memory");
    if (!s) s = policy_buffers_init(&b, be, micro, T_max, Tc, V, want_entropy);
    if (!s) s = create_engine(model, tok, cfg, n_samples, &engine);
    if (!s) s = optim_create(&cfg->optim, model->params, &opt);
    trainer_state ts;
    int resumed = 0, start = 0;
    if (!s) s = checkpoint_resume_stage(run, model, opt, &ts, &resumed);
    if (!s && resumed) {
        start = ts.step;
        log_info("resumed stage %s from its checkpoint at step %d", ts.stage, ts.step);
    }
    if (s) goto done;
    if (!run->quiet) {
        char label[96];
        snprintf(label, sizeof label, "%s step", run->stage_name ? run->stage_name : "grpo");
        bar = progress_create(label, cfg->max_steps);
        if (bar) progress_set_start(bar, start);
        if (!progress_is_tty(bar)) progress_set_interval(bar, 0);   /* one line per logged step */
    }
    double live_reward = NAN, live_acc = NAN, live_tps = NAN;   /* of the last generation batch */

    double t_start = progress_now();
    double window_reward = 0, window_acc = 0;
    int window_n = 0;
    for (int step = start; step < cfg->max_steps && !s; step++) {
        int iteration = step % cfg->num_iterations;
        int64_t generation = step / cfg->num_iterations;
        metric_list mt = {0};
        double t_gen = 0, t_score = 0, t0;
        int gen_tokens = 0;
        if (iteration == 0 || step == start) {
            /* a new generation batch (after a resume inside a batch, the same batch again:
             * checkpoints are only written at batch boundaries, so this is the first) */
            for (int k = 0; k < n_prompts; k++)
                problems[k] = prompt_at(train, cfg->seed, dp_first_slot(generation, n_prompts) + k, perm, &perm_epoch);
            progress_set_phase(bar, "generate");
            t0 = progress_now();
            s = grpo_rollout_generate_from(engine, train, problems, n_prompts, dp_rank() * n_prompts, G,
                                           rng_u32(cfg->seed, GRPO_SAMPLE_STREAM, (uint64_t)generation), Tc, &gen);
            if (s) break;
            t_gen = progress_now() - t0;
            for (int i = 0; i < n_samples; i++) gen_tokens += gen.lengths[i];
            progress_set_phase(bar, "score");
            t0 = progress_now();
            s = grpo_rollout_score(rewards, train, &gen, scores);
            if (s) break;
            for (int i = 0; i < n_samples; i++)
                totals[i] = scores[i].status == GRPO_OK ? scores[i].total : NAN;
            int kept = n_prompts;
            if (cfg->dynamic_sampling) s = advantage_dynamic_sampling_keep(totals, n_prompts, G, keep, &kept);
            else memset(keep, 1, (size_t)n_prompts);
            advantage_stats astats;
            if (!s) s = advantage_compute(&cfg->advantage, totals, n_prompts, G, adv, &astats);
            if (s) break;
            t_score = progress_now() - t0;
            /* the loss mask: completion tokens, minus dropped groups and (optionally) truncations */
            memset(mask, 0, (size_t)n_samples * Tc);
            for (int i = 0; i < n_samples; i++) {
                int on = keep[i / G] && !(cfg->mask_truncated_completions && gen.truncated[i]);
                for (int j = 0; j < gen.lengths[i]; j++) mask[(size_t)i * Tc + j] = (uint8_t)on;
                memcpy(samp_lp + (size_t)i * Tc, gen.policy_logprobs + (size_t)i * gen.Tc, (size_t)Tc * sizeof(float));
            }
            if (old_lp) s = all_logprobs(model, &gen, train, micro, temperature, pad, &b, old_lp);
            if (!s && ref_lp) s = all_logprobs(ref, &gen, train, micro, temperature, pad, &b, ref_lp);
            if (s) break;

            /* generation-batch metrics */
            double rsum = 0, rsq = 0, acc = 0, len_sum = 0, len_max = 0, trunc = 0, refl = 0;
            int rn = 0, acc_n = 0;
            for (int i = 0; i < n_samples; i++) {
                if (isfinite(totals[i])) { rsum += totals[i]; rsq += totals[i] * totals[i]; rn++; }
                if (scores[i].status == GRPO_OK && scores[i].has_verdict) { acc += scores[i].correct; acc_n++; }
                len_sum += gen.lengths[i];
                if (gen.lengths[i] > len_max) len_max = gen.lengths[i];
                trunc += gen.truncated[i];
                refl += has_reflection(gen.texts[i]);
            }
            double rmean = rn ? rsum / rn : NAN;
            metric_add(&mt, "reward/mean", rmean);
            metric_add(&mt, "reward/std", rn > 1 ? sqrt(fmax(0, (rsq - rn * rmean * rmean) / (rn - 1))) : NAN);
            for (int c = 0; c < R; c++) {
                double cs = 0;
                int cn = 0;
                for (int i = 0; i < n_samples; i++)
                    if (scores[i].status == GRPO_OK) { cs += scores[i].components[c].score; cn++; }
                char name[64];
                snprintf(name, sizeof name, "reward/%s/mean", reward_set_name(rewards, c));
                metric_add(&mt, name, cn ? cs / cn : NAN);
            }
            metric_add(&mt, "accuracy", acc_n ? acc / acc_n : NAN);
            metric_add(&mt, "frac_reward_zero_std", astats.frac_zero_std_groups);
            metric_add(&mt, "completions/mean_length", len_sum / n_samples);
            metric_add(&mt, "completions/max_length", len_max);
            metric_add(&mt, "completions/clipped_ratio", trunc / n_samples);
            metric_add(&mt, "completions/reflection_rate", refl / n_samples);
            metric_add(&mt, "time/generation", t_gen);
            metric_add(&mt, "time/scoring", t_score);
            metric_add(&mt, "tokens_per_second/generation", t_gen > 0 ? gen_tokens / t_gen : NAN);
            put_rollouts(run, step + 1, cfg->log_rollouts_per_step, train, &gen, scores, totals, adv);
            live_reward = rmean;
            live_acc = acc_n ? acc / acc_n : NAN;
            live_tps = t_gen > 0 ? gen_tokens / t_gen : NAN;
            window_reward += isfinite(rmean) ? rmean : 0;
            window_acc += acc_n ? acc / acc_n : 0;
            window_n++;
        }

        /* one optimizer update over the generation batch */
        progress_set_phase(bar, "train");
        t0 = progress_now();
        double lr = optim_lr_at(&cfg->optim, step, cfg->max_steps);
        param_set_zero_grad(model->params);
        long active = 0;
        for (size_t i = 0; i < (size_t)n_samples * Tc; i++) active += mask[i];
        grpo_loss_options lo = cfg->loss;
        lo.max_completion_length = Tc;
        lo.gradient_accumulation_steps = accum;
        lo.steps_per_generation = accum;
        lo.num_items_in_batch = (double)active;
        lo.num_processes = 1;
        s = dp_grpo_loss_options(&lo, cfg->advantage.scale_rewards == ADVANTAGE_SCALE_BATCH);
        double loss = 0, kl = 0, ent = 0, clip_low = 0, clip_high = 0, clip_region = 0, gap = 0, gap_max = 0;
        double is_min = INFINITY, is_max = -INFINITY, is_mean = 0;
        long trained_tokens = 0;
        for (int m = 0; m < accum && !s; m++) {
            int first = m * micro, T;
            float *logits;
            s = policy_forward(model, &gen, train, first, micro, temperature, pad, &b, &T, &logits);
            if (s) break;
            grpo_loss_inputs in = {0};
            in.B = micro;
            in.T = Tc;
            in.logprobs = b.token_logprobs;
            in.logprobs_old = old_lp ? old_lp + (size_t)first * Tc : NULL;
            in.ref_logprobs = ref_lp ? ref_lp + (size_t)first * Tc : NULL;
            in.sampling_logprobs = samp_lp + (size_t)first * Tc;
            in.entropies = want_entropy ? b.token_entropies : NULL;
            in.completion_mask = mask + (size_t)first * Tc;
            in.advantages = adv + first;
            grpo_loss_result lr_out;
            s = grpo_loss_compute(&lo, &in, b.grad, want_entropy ? b.grad_entropy : NULL, &lr_out);
            if (s) break;
            s = policy_backward(model, &gen, train, first, micro, T, temperature, cfg->loss.entropy_coef != 0, &b,
                                logits);
            loss += lr_out.loss;
            kl += isfinite(lr_out.kl) ? lr_out.kl / accum : 0;
            ent += isfinite(lr_out.entropy) ? lr_out.entropy / accum : 0;
            clip_low += lr_out.clip_ratio_low_mean / accum;
            clip_high += lr_out.clip_ratio_high_mean / accum;
            clip_region += lr_out.clip_ratio_region_mean / accum;
            gap += lr_out.sampling_logp_difference_mean / accum;
            if (lr_out.sampling_logp_difference_max > gap_max) gap_max = lr_out.sampling_logp_difference_max;
            is_min = fmin(is_min, lr_out.importance_sampling_ratio_min);
            is_max = fmax(is_max, lr_out.importance_sampling_ratio_max);
            is_mean += lr_out.importance_sampling_ratio_mean / accum;
            trained_tokens += (long)micro * T;
        }
        if (s) break;
        double grad_norm;
        s = optim_step(opt, lr, &grad_norm);
        if (s) break;
        s = dp_update_router_bias(model, (float)cfg->bias_update_gamma);
        if (s) break;
        double t_train = progress_now() - t0;
        metric_add(&mt, "loss", loss);
        metric_add(&mt, "kl", cfg->loss.beta > 0 ? kl : NAN);
        metric_add(&mt, "entropy", want_entropy ? ent : NAN);
        metric_add(&mt, "clip_ratio/low_mean", clip_low);
        metric_add(&mt, "clip_ratio/high_mean", clip_high);
        metric_add(&mt, "clip_ratio/region_mean", clip_region);
        metric_add(&mt, "sampling/logp_gap_mean", gap);
        metric_add(&mt, "sampling/logp_gap_max", gap_max);
        if (cfg->loss.importance_sampling_mode != GRPO_IS_NONE) {
            metric_add(&mt, "sampling/importance_sampling_ratio/min", is_min);
            metric_add(&mt, "sampling/importance_sampling_ratio/mean", is_mean);
            metric_add(&mt, "sampling/importance_sampling_ratio/max", is_max);
        }
        {
            char moe_store[16][48];
            const char *names[16];
            double values[16];
            int k = lm_moe_metrics(model, 16, moe_store, names, values);
            for (int i = 0; i < k; i++) metric_add(&mt, names[i], values[i]);
        }
        metric_add(&mt, "grad_norm", grad_norm);
        metric_add(&mt, "learning_rate", lr);
        metric_add(&mt, "time/training", t_train);
        metric_add(&mt, "tokens_per_second/training", t_train > 0 ? trained_tokens / t_train : NAN);
        int done_steps = step + 1;
        s = dp_reduce_metrics(mt.n, mt.names, mt.values);
        if (s) break;
        if (run->on_metrics) run->on_metrics(run->ctx, done_steps, mt.n, mt.names, mt.values);
        int logged = cfg->logging_steps > 0 && done_steps % cfg->logging_steps == 0;
        if (logged || done_steps == cfg->max_steps) put_expert_loads(model, run, done_steps);
        if (bar && (progress_is_tty(bar) || logged || done_steps == cfg->max_steps)) {
            progress_set_phase(bar, NULL);
            progress_update(bar, done_steps, "reward %.3f acc %.3f kl %.4f tok/s %.0f", live_reward, live_acc,
                            cfg->loss.beta > 0 ? kl : NAN, live_tps);
        }
        if (cfg->logging_steps > 0 && done_steps % cfg->logging_steps == 0 && window_n) {
            result->reward_mean = window_reward / window_n;
            result->accuracy = window_acc / window_n;
            window_reward = window_acc = 0;
            window_n = 0;
        }
        int last = done_steps == cfg->max_steps;
        int batch_end = done_steps % cfg->num_iterations == 0;
        if (eval && cfg->eval_steps > 0 && done_steps % cfg->eval_steps == 0 && !last) {
            eval_summary es;
            progress_set_phase(bar, "eval");
            s = evaluate_with(engine, cfg, eval, rewards, &es);
            if (s) break;
            metric_list em = {0};
            metric_add(&em, "eval/pass@1", es.pass_at_1);
            metric_add(&em, "eval/pass@k", es.pass_at_k);
            metric_add(&em, "eval/maj@k", es.maj_at_k);
            metric_add(&em, "eval/mean_length", es.mean_length);
            if (run->on_metrics) run->on_metrics(run->ctx, done_steps, em.n, em.names, em.values);
            if (!run->quiet) log_info("step %d: held-out pass@1 %.3f, pass@%d %.3f, maj@%d %.3f", done_steps,
                                      es.pass_at_1, es.k, es.pass_at_k, es.k, es.maj_at_k);
        }
        if (((cfg->save_steps > 0 && done_steps % cfg->save_steps == 0) || last) && (batch_end || last)) {
            rng_stream none = rng_stream_make(cfg->seed, 0);
            progress_set_phase(bar, "save");
            s = checkpoint_save_step(run, done_steps, cfg->seed, &none, model, opt, cfg->save_total_limit,
                                     result->checkpoint, sizeof result->checkpoint);
        }
        result->steps = done_steps;
        if (run->stop_after_steps > 0 && done_steps >= run->stop_after_steps) break;
    }
    if (bar) progress_finish(bar);
    bar = NULL;
    if (!s && eval) s = evaluate_with(engine, cfg, eval, rewards, &result->eval);
    if (!s && result->steps == 0) result->steps = start;
    result->seconds = progress_now() - t_start;
done:
    progress_free(bar);
    rollout_engine_free(engine);
    optim_free(opt);
    policy_buffers_free(&b);
    grpo_rollout_samples_free(&gen);
    free(perm);
    free(problems);
    free(scores);
    free(totals);
    free(adv);
    free(keep);
    free(mask);
    free(old_lp);
    free(ref_lp);
    free(samp_lp);
    return s;
}
