/* The SFT trainer (rl/sft.h). */
#include "rl/sft.h"

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
#include "rl/checkpoint.h"
#include "rl/data_parallel.h"

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
    c.teacher = NULL;
    c.kd_alpha = 0.5;
    c.kd = kd_options_default();
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
    if (c->teacher && !(c->kd_alpha >= 0 && c->kd_alpha <= 1))
        return grpo_fail(GRPO_ERR_INVALID, "kd_alpha: expected a value in [0, 1], found %g", c->kd_alpha);
    if (c->teacher) GRPO_TRY(kd_options_validate(&c->kd));
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
    if (!b->host_ids || !b->host_targets || !b->host_values) {
        buffers_free(b);
        return grpo_fail(GRPO_ERR_NOMEM, "cannot allocate host batch buffers for %d x %d tokens", B, T_max);
    }
    /* backend_alloc's message names the buffer that did not fit */
    if (!(b->ids = backend_alloc(be, n * sizeof(int32_t), "SFT batch token ids")) ||
        !(b->targets = backend_alloc(be, n * sizeof(int32_t), "SFT batch targets")) ||
        !(b->logprobs = backend_alloc(be, n * sizeof(float), "SFT batch log-probs")) ||
        !(b->lse = backend_alloc(be, n * sizeof(float), "SFT batch log-sum-exps")) ||
        !(b->dlogprobs = backend_alloc(be, n * sizeof(float), "SFT batch log-prob gradients"))) {
        buffers_free(b);
        return GRPO_ERR_NOMEM;
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

/* Logit KD beside the cross-entropy (sft_config.teacher): host scratch for a chunk of rows
 * of the student's logits, the teacher's and the combined gradient, sized once. */
typedef struct {
    int rows;                        /* rows per chunk */
    float *student, *teacher, *dkd, *dlogits;
    uint8_t *mask;
} kd_buffers;

static void kd_buffers_free(kd_buffers *k) {
    free(k->student);
    free(k->teacher);
    free(k->dkd);
    free(k->dlogits);
    free(k->mask);
    memset(k, 0, sizeof *k);
}

static grpo_status kd_buffers_init(kd_buffers *k, int V_student, int V_teacher, int max_rows) {
    memset(k, 0, sizeof *k);
    int V = V_student > V_teacher ? V_student : V_teacher;
    k->rows = (1 << 22) / V > 0 ? (1 << 22) / V : 1;   /* ~16 MiB a buffer */
    if (k->rows > max_rows) k->rows = max_rows;
    size_t n = (size_t)k->rows;
    k->student = malloc(n * V_student * sizeof(float));
    k->teacher = malloc(n * V_teacher * sizeof(float));
    k->dkd = malloc(n * V_student * sizeof(float));
    k->dlogits = malloc(n * V_student * sizeof(float));
    k->mask = malloc(n);
    if (!k->student || !k->teacher || !k->dkd || !k->dlogits || !k->mask) {
        kd_buffers_free(k);
        return grpo_fail(GRPO_ERR_NOMEM, "sft: cannot allocate logit-distillation buffers (%d rows)", (int)n);
    }
    return GRPO_OK;
}

/* One micro-batch's backward with KD: b->dlogprobs already holds -(1 - kd_alpha) /
 * step_targets on the response rows, so the in-place CE backward leaves (1 - kd_alpha) *
 * dCE in logits; chunk by chunk (student rows read before they are overwritten) this adds
 * kd_alpha * dKD (rl/kd_loss.h, normalised by the step's response tokens as CE is).
 * logits, teacher_logits: backend [n, V] / [n, V_teacher]. Returns the chunk sum of the
 * KD loss in *kd_sum (per-token KD summed over response rows, divided by step_targets). */
static grpo_status kd_backward(const sft_config *cfg, backend *be, batch_buffers *b, kd_buffers *k, float *logits,
                               const float *teacher_logits, int n, int V, int V_teacher, int step_targets,
                               double *kd_sum) {
    *kd_sum = 0;
    for (int r0 = 0; r0 < n; r0 += k->rows) {
        int rows = n - r0 < k->rows ? n - r0 : k->rows;
        size_t off = (size_t)r0 * V;
        be->to_host(be, k->student, logits + off, (size_t)rows * V * sizeof(float));
        be->to_host(be, k->teacher, teacher_logits + (size_t)r0 * V_teacher, (size_t)rows * V_teacher * sizeof(float));
        for (int i = 0; i < rows; i++) k->mask[i] = b->host_targets[r0 + i] >= 0;
        double part;
        GRPO_TRY(kd_loss(&cfg->kd, rows, k->student, V, k->teacher, V_teacher, k->mask, step_targets, &part, k->dkd));
        *kd_sum += part;
        be->token_logprobs_backward(be, logits + off, logits + off, b->lse + r0, b->targets + r0, b->dlogprobs + r0,
                                    rows, V);
        be->to_host(be, k->dlogits, logits + off, (size_t)rows * V * sizeof(float));
        for (size_t i = 0; i < (size_t)rows * V; i++) k->dlogits[i] += (float)cfg->kd_alpha * k->dkd[i];
        be->to_device(be, logits + off, k->dlogits, (size_t)rows * V * sizeof(float));
    }
    return GRPO_OK;
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
    result->train_kd_loss = NAN;
    GRPO_TRY(sft_config_validate(cfg));
    GRPO_TRY(BACKEND_REQUIRE(model->be, token_logprobs_forward));
    GRPO_TRY(BACKEND_REQUIRE(model->be, token_logprobs_backward));
    backend *be = model->be;
    int B = cfg->per_device_train_batch_size, accum = cfg->gradient_accumulation_steps, V = model->vocab_size;
    int T_max = cfg->max_length;
    int batch_max = B > cfg->eval_batch_size ? B : cfg->eval_batch_size;
    GRPO_TRY(lm_reserve(model, batch_max, T_max));
    lm *teacher = cfg->teacher;
    double ce_weight = teacher ? 1.0 - cfg->kd_alpha : 1.0;
    if (teacher && teacher->be != be)
        return grpo_fail(GRPO_ERR_INVALID, "sft: the teacher must run on the student's backend");
    if (teacher) GRPO_TRY(lm_reserve(teacher, B, T_max));
    kd_buffers kdb = {0};

    optim *opt = NULL;
    batch_buffers b = {0};
    data_order order = {.n = train->count, .epoch = -1, .seed = cfg->seed};
    int *indices = malloc((size_t)B * (size_t)accum * sizeof(int));
    order.perm = malloc((size_t)train->count * sizeof(int));
    progress *bar = NULL;
    grpo_status s = indices && order.perm ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "sft: out of memory");
    if (!s) s = buffers_init(&b, be, B, T_max);
    if (!s && teacher) s = kd_buffers_init(&kdb, V, teacher->vocab_size, B * T_max);
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

    double t0 = progress_now(), window_loss = 0, window_tokens = 0, window_kd = 0, window_ce = 0;
    int window_steps = 0;
    long long trained_tokens = 0;
    for (int step = start; step < cfg->max_steps && !s; step++) {
        double lr = optim_lr_at(&cfg->optim, step, cfg->max_steps);
        param_set_zero_grad(model->params);
        /* Every micro-batch's loss is normalised by the response tokens of the whole
         * optimizer step, so accumulation gives the same gradient as one big batch. */
        int64_t cursor = dp_first_slot(step, B * accum);   /* this rank's share of the step */
        int step_targets = 0;
        for (int k = 0; k < B * accum; k++) indices[k] = order_example(&order, cursor + k);
        for (int m = 0; m < accum; m++) {
            int n_targets;
            sft_batch_fill(train, indices + m * B, B, T_max, run->pad_id, b.host_ids, b.host_targets, &n_targets);
            step_targets += n_targets;
        }
        s = dp_sum_int(&step_targets);   /* the normaliser is the whole step's, over the ranks */
        double step_loss = 0, step_kd = 0;
        for (int m = 0; m < accum && !s; m++) {
            int n_targets, T = sft_batch_fill(train, indices + m * B, B, T_max, run->pad_id, b.host_ids,
                                              b.host_targets, &n_targets);
            size_t n = (size_t)B * (size_t)T;
            float *logits;
            s = batch_forward(model, &b, B, T, &logits);
            if (s) break;
            float *teacher_logits = NULL;
            for (size_t i = 0; teacher && i < n && !s; i++)
                if (b.host_ids[i] >= teacher->vocab_size)
                    s = grpo_fail(GRPO_ERR_INVALID, "sft: token id %d is outside the teacher's vocabulary of %d: "
                                  "logit distillation needs the student's tokenizer", (int)b.host_ids[i],
                                  teacher->vocab_size);
            if (!s && teacher) s = lm_forward(teacher, b.ids, NULL, B, T, &teacher_logits);
            if (s) break;
            be->to_host(be, b.host_values, b.logprobs, n * sizeof(float));
            for (size_t i = 0; i < n; i++) {
                if (b.host_targets[i] >= 0) step_loss -= b.host_values[i];
                /* d(loss)/d(logprob) for loss = -ce_weight * sum(logprobs) / step_targets */
                b.host_values[i] =
                    b.host_targets[i] >= 0 && step_targets ? (float)(-ce_weight / (double)step_targets) : 0.0f;
            }
            be->to_device(be, b.dlogprobs, b.host_values, n * sizeof(float));
            if (teacher) {
                double kd_part;
                s = kd_backward(cfg, be, &b, &kdb, logits, teacher_logits, (int)n, V, teacher->vocab_size,
                                step_targets, &kd_part);
                if (s) break;
                step_kd += kd_part;
            } else {
                /* dlogits overwrite the logits in place: each element needs only its own logit. */
                be->token_logprobs_backward(be, logits, logits, b.lse, b.targets, b.dlogprobs, (int)n, V);
            }
            s = lm_backward(model, logits);
            trained_tokens += (long long)n;
        }
        if (!s) s = dp_sum_double(&step_loss, 1);
        if (!s && teacher) s = dp_sum_double(&step_kd, 1);   /* each rank's share is already / step_targets */
        if (s) break;
        step_loss = step_targets ? step_loss / step_targets : 0;
        double step_ce = step_loss;
        if (teacher) step_loss = ce_weight * step_ce + cfg->kd_alpha * step_kd;
        double grad_norm;
        s = optim_step(opt, lr, &grad_norm);
        if (s) break;
        window_loss += step_loss;
        window_kd += step_kd;
        window_ce += step_ce;
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
            if (teacher) {
                result->train_kd_loss = window_kd / window_steps;
                const char *kd_names[] = {"train/kd_loss", "train/ce_loss"};
                double kd_values[] = {result->train_kd_loss, window_ce / window_steps};
                emit(run, done_steps, 2, kd_names, kd_values);
            }
            char moe_store[16][48];
            const char *moe_names[16];
            double moe_values[16];
            int k = lm_moe_metrics(model, 16, moe_store, moe_names, moe_values);
            if (k) emit(run, done_steps, k, moe_names, moe_values);
            window_loss = window_tokens = window_kd = window_ce = 0;
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
    kd_buffers_free(&kdb);
    free(indices);
    free(order.perm);
    return s;
}
