/* The SFT trainer (rl/sft.h). */
#include "rl/sft.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "rl/checkpoint.h"

/* The data-order stream: epoch e's permutation comes from stream SFT_ORDER_STREAM + e. */
#define SFT_ORDER_STREAM 0x5f7000ull

sft_config sft_config_default(void) {
    sft_config c = {0};
    c.max_steps = 100;
    c.per_device_train_batch_size = 8;
    c.gradient_accumulation_steps = 1;
    c.max_length = 1024;
    c.eval_steps = 0;
    c.save_steps = 0;
    c.logging_steps = 10;
    c.save_total_limit = 2;
    c.eval_batch_size = 16;
    c.optim = optim_config_default();
    c.optim.learning_rate = 2e-5;
    c.seed = 42;
    return c;
}

grpo_status sft_config_validate(const sft_config *c) {
    if (c->max_steps < 1) return grpo_fail(GRPO_ERR_INVALID, "max_steps must be at least 1, found %d", c->max_steps);
    if (c->per_device_train_batch_size < 1)
        return grpo_fail(GRPO_ERR_INVALID, "per_device_train_batch_size must be at least 1, found %d",
                         c->per_device_train_batch_size);
    if (c->gradient_accumulation_steps < 1)
        return grpo_fail(GRPO_ERR_INVALID, "gradient_accumulation_steps must be at least 1, found %d",
                         c->gradient_accumulation_steps);
    if (c->max_length < 2) return grpo_fail(GRPO_ERR_INVALID, "max_length must be at least 2, found %d", c->max_length);
    if (c->eval_batch_size < 1) return grpo_fail(GRPO_ERR_INVALID, "eval_batch_size must be at least 1");
    if (!(c->optim.learning_rate > 0)) return grpo_fail(GRPO_ERR_INVALID, "learning_rate must be positive");
    return GRPO_OK;
}

/* Batch buffers, host and backend, sized once for [B, T_max]. */
typedef struct {
    backend *be;
    int B, T_max;
    int32_t *host_ids, *host_targets;
    float *host_values;
    int32_t *ids, *targets;
    float *logprobs, *lse, *dlogprobs;
} batch_buffers;

static void buffers_free(batch_buffers *b) {
    free(b->host_ids);
    free(b->host_targets);
    free(b->host_values);
    if (b->be) {
        b->be->free(b->be, b->ids);
        b->be->free(b->be, b->targets);
        b->be->free(b->be, b->logprobs);
        b->be->free(b->be, b->lse);
        b->be->free(b->be, b->dlogprobs);
    }
    memset(b, 0, sizeof *b);
}

static grpo_status buffers_init(batch_buffers *b, backend *be, int B, int T_max) {
    memset(b, 0, sizeof *b);
    size_t n = (size_t)B * (size_t)T_max;
    b->be = be;
    b->B = B;
    b->T_max = T_max;
    b->host_ids = malloc(n * sizeof(int32_t));
    b->host_targets = malloc(n * sizeof(int32_t));
    b->host_values = malloc(n * sizeof(float));
    b->ids = be->alloc(be, n * sizeof(int32_t));
    b->targets = be->alloc(be, n * sizeof(int32_t));
    b->logprobs = be->alloc(be, n * sizeof(float));
    b->lse = be->alloc(be, n * sizeof(float));
    b->dlogprobs = be->alloc(be, n * sizeof(float));
    if (!b->host_ids || !b->host_targets || !b->host_values || !b->ids || !b->targets || !b->logprobs || !b->lse ||
        !b->dlogprobs) {
        buffers_free(b);
        return grpo_fail(GRPO_ERR_NOMEM, "cannot allocate batch buffers for %d x %d tokens", B, T_max);
    }
    return GRPO_OK;
}

/* Forward of one padded batch already in b->host_ids/host_targets ([B, T]); leaves the
 * per-token log-probs in b->logprobs and returns the logits pointer. */
static grpo_status batch_forward(lm *model, batch_buffers *b, int B, int T, float **logits) {
    backend *be = model->be;
    size_t n = (size_t)B * (size_t)T;
    be->to_device(be, b->ids, b->host_ids, n * sizeof(int32_t));
    be->to_device(be, b->targets, b->host_targets, n * sizeof(int32_t));
    GRPO_TRY(lm_forward(model, b->ids, NULL, B, T, logits));
    be->token_logprobs_forward(be, b->logprobs, b->lse, *logits, b->targets, (int)n, model->vocab_size);
    return GRPO_OK;
}

grpo_status sft_evaluate(lm *model, const sft_dataset *ds, int batch_size, int max_length, int32_t pad_id,
                         double *loss, double *exact_match) {
    backend *be = model->be;
    int V = model->vocab_size;
    batch_buffers b;
    GRPO_TRY(buffers_init(&b, be, batch_size, max_length));
    float *host_logits = malloc((size_t)batch_size * (size_t)max_length * (size_t)V * sizeof(float));
    int *indices = malloc((size_t)batch_size * sizeof(int));
    grpo_status s = host_logits && indices ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "sft_evaluate: out of memory");
    double nll = 0;
    long tokens = 0, exact = 0;
    for (int start = 0; start < ds->count && !s; start += batch_size) {
        int B = ds->count - start < batch_size ? ds->count - start : batch_size, n_targets;
        for (int i = 0; i < B; i++) indices[i] = start + i;
        int T = sft_batch_fill(ds, indices, B, max_length, pad_id, b.host_ids, b.host_targets, &n_targets);
        float *logits;
        s = batch_forward(model, &b, B, T, &logits);
        if (s) break;
        size_t n = (size_t)B * (size_t)T;
        be->to_host(be, b.host_values, b.logprobs, n * sizeof(float));
        be->to_host(be, host_logits, logits, n * (size_t)V * sizeof(float));
        for (int i = 0; i < B; i++) {
            int all_argmax = 1, any = 0;
            for (int t = 0; t < T; t++) {
                size_t row = (size_t)i * T + t;
                int32_t target = b.host_targets[row];
                if (target < 0) continue;
                any = 1;
                nll -= b.host_values[row];
                tokens++;
                const float *z = host_logits + row * (size_t)V;
                /* argmax with the lowest index winning ties, as greedy sampling does */
                int best = 0;
                for (int v = 1; v < V; v++)
                    if (z[v] > z[best]) best = v;
                if (best != target) all_argmax = 0;
            }
            exact += any && all_argmax;
        }
    }
    free(host_logits);
    free(indices);
    buffers_free(&b);
    if (s) return s;
    *loss = tokens ? nll / (double)tokens : NAN;
    *exact_match = ds->count ? (double)exact / ds->count : NAN;
    return GRPO_OK;
}

/* The example at global cursor position c: epoch c / N walks permutation e of 0..N-1
 * (Fisher-Yates from its own RNG stream), so the order depends only on (seed, c). */
typedef struct {
    int n;
    int epoch;
    int *perm;
    uint64_t seed;
} data_order;

static int order_example(data_order *o, int64_t cursor) {
    int epoch = (int)(cursor / o->n);
    if (epoch != o->epoch) {
        rng_stream r = rng_stream_make(o->seed, SFT_ORDER_STREAM + (uint64_t)epoch);
        for (int i = 0; i < o->n; i++) o->perm[i] = i;
        for (int i = o->n - 1; i > 0; i--) {
            int j = (int)rng_next_below(&r, (uint32_t)(i + 1)), t = o->perm[i];
            o->perm[i] = o->perm[j];
            o->perm[j] = t;
        }
        o->epoch = epoch;
    }
    return o->perm[cursor % o->n];
}

static void emit(const sft_run *run, int step, int n, const char *const *names, const double *values) {
    if (run->on_metrics) run->on_metrics(run->ctx, step, n, names, values);
}

grpo_status sft_train(const sft_config *cfg, lm *model, const sft_dataset *train, const sft_dataset *eval,
                      const sft_run *run, sft_result *result) {
    memset(result, 0, sizeof *result);
    result->resumed_from = -1;
    result->eval_loss = NAN;
    result->eval_exact_match = NAN;
    GRPO_TRY(sft_config_validate(cfg));
    GRPO_TRY(BACKEND_REQUIRE(model->be, token_logprobs_forward));
    GRPO_TRY(BACKEND_REQUIRE(model->be, token_logprobs_backward));
    backend *be = model->be;
    int B = cfg->per_device_train_batch_size, accum = cfg->gradient_accumulation_steps, V = model->vocab_size;
    int T_max = cfg->max_length;
    int batch_max = B > cfg->eval_batch_size ? B : cfg->eval_batch_size;
    GRPO_TRY(lm_reserve(model, batch_max, T_max));

    optim *opt = NULL;
    batch_buffers b = {0};
    data_order order = {.n = train->count, .epoch = -1, .seed = cfg->seed};
    int *indices = malloc((size_t)B * (size_t)accum * sizeof(int));
    order.perm = malloc((size_t)train->count * sizeof(int));
    progress *bar = NULL;
    grpo_status s = indices && order.perm ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "sft: out of memory");
    if (!s) s = buffers_init(&b, be, B, T_max);
    if (!s) s = optim_create(&cfg->optim, model->params, &opt);
    int start = 0, resumed = 0;
    trainer_state ts;
    if (!s) s = checkpoint_resume_stage(run, model, opt, &ts, &resumed);
    if (!s && resumed) {
        start = ts.step;
        log_info("resumed stage %s from its checkpoint at step %d", ts.stage, ts.step);
    }
    if (s) goto done;
    result->resumed_from = run->resume && start > 0 ? start : -1;
    if (!run->quiet) {
        bar = progress_create(run->stage_name ? run->stage_name : "sft", cfg->max_steps);
        if (bar) progress_set_start(bar, start);
    }

    double t0 = progress_now(), window_loss = 0, window_tokens = 0;
    int window_steps = 0;
    long long trained_tokens = 0;
    for (int step = start; step < cfg->max_steps && !s; step++) {
        double lr = optim_lr_at(&cfg->optim, step, cfg->max_steps);
        param_set_zero_grad(model->params);
        /* Every micro-batch's loss is normalised by the response tokens of the whole
         * optimizer step, so accumulation gives the same gradient as one big batch. */
        int64_t cursor = (int64_t)step * B * accum;
        int step_targets = 0;
        for (int k = 0; k < B * accum; k++) indices[k] = order_example(&order, cursor + k);
        for (int m = 0; m < accum; m++) {
            int n_targets;
            sft_batch_fill(train, indices + m * B, B, T_max, run->pad_id, b.host_ids, b.host_targets, &n_targets);
            step_targets += n_targets;
        }
        double step_loss = 0;
        for (int m = 0; m < accum && !s; m++) {
            int n_targets, T = sft_batch_fill(train, indices + m * B, B, T_max, run->pad_id, b.host_ids,
                                              b.host_targets, &n_targets);
            size_t n = (size_t)B * (size_t)T;
            float *logits;
            s = batch_forward(model, &b, B, T, &logits);
            if (s) break;
            be->to_host(be, b.host_values, b.logprobs, n * sizeof(float));
            for (size_t i = 0; i < n; i++) {
                if (b.host_targets[i] >= 0) step_loss -= b.host_values[i];
                /* d(loss)/d(logprob) for loss = -sum(logprobs) / step_targets */
                b.host_values[i] = b.host_targets[i] >= 0 && step_targets ? -1.0f / (float)step_targets : 0.0f;
            }
            be->to_device(be, b.dlogprobs, b.host_values, n * sizeof(float));
            /* dlogits overwrite the logits in place: each element needs only its own logit. */
            be->token_logprobs_backward(be, logits, logits, b.lse, b.targets, b.dlogprobs, (int)n, V);
            s = lm_backward(model, logits);
            trained_tokens += (long long)n;
        }
        if (s) break;
        step_loss = step_targets ? step_loss / step_targets : 0;
        double grad_norm;
        s = optim_step(opt, lr, &grad_norm);
        if (s) break;
        window_loss += step_loss;
        window_tokens += step_targets;
        window_steps++;
        int done_steps = step + 1;
        double elapsed = progress_now() - t0;
        double tok_s = elapsed > 0 ? (double)trained_tokens / elapsed : 0;
        if (bar) progress_update(bar, done_steps, "loss %.4f lr %.2e tok/s %.0f", step_loss, lr, tok_s);
        if (cfg->logging_steps > 0 && (done_steps % cfg->logging_steps == 0 || done_steps == cfg->max_steps)) {
            result->train_loss = window_loss / window_steps;
            const char *names[] = {"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_second",
                                   "train/response_tokens"};
            double values[] = {result->train_loss, lr, grad_norm, tok_s, window_tokens};
            emit(run, done_steps, 5, names, values);
            char moe_store[16][48];
            const char *moe_names[16];
            double moe_values[16];
            int k = lm_moe_metrics(model, 16, moe_store, moe_names, moe_values);
            if (k) emit(run, done_steps, k, moe_names, moe_values);
            window_loss = window_tokens = 0;
            window_steps = 0;
        }
        int last = done_steps == cfg->max_steps;
        if (eval && ((cfg->eval_steps > 0 && done_steps % cfg->eval_steps == 0) || last)) {
            s = sft_evaluate(model, eval, cfg->eval_batch_size, T_max, run->pad_id, &result->eval_loss,
                             &result->eval_exact_match);
            if (s) break;
            const char *names[] = {"eval/loss", "eval/exact_match"};
            double values[] = {result->eval_loss, result->eval_exact_match};
            emit(run, done_steps, 2, names, values);
            if (!run->quiet)
                log_info("step %d: eval loss %.4f, exact match %.3f", done_steps, result->eval_loss,
                         result->eval_exact_match);
        }
        if ((cfg->save_steps > 0 && done_steps % cfg->save_steps == 0) || last)
            s = checkpoint_save_step(run, done_steps, cfg->seed, NULL, model, opt, cfg->save_total_limit,
                                     result->checkpoint, sizeof result->checkpoint);
        result->steps = done_steps;
        result->seconds = progress_now() - t0;
        result->tokens_per_second = tok_s;
        if (run->stop_after_steps > 0 && done_steps >= run->stop_after_steps) break;
    }
    if (bar) progress_finish(bar);   /* prints the final line and frees */
    bar = NULL;
    if (!s && start >= cfg->max_steps) {
        /* Resumed from the final checkpoint: nothing to train, report where it stands. */
        result->steps = start;
        if (eval)
            s = sft_evaluate(model, eval, cfg->eval_batch_size, T_max, run->pad_id, &result->eval_loss,
                             &result->eval_exact_match);
    }
done:
    progress_free(bar);
    optim_free(opt);
    buffers_free(&b);
    free(indices);
    free(order.perm);
    return s;
}
