/* The compute precision (`precision: fp32|bf16|fp8`, model/linear.h): a dense and a
 * DeepSeek-V3 model's forward in bf16 and fp8 stay within stated bounds of fp32 and are not
 * equal to it (the rounding really happens); their backward stays close to fp32's; the fp32
 * gradient still matches finite differences after switching precisions; rounded weight
 * copies are made once per weight change, not per call; SFT and GRPO steps under fp8 still
 * learn; and fp16 is refused with a clear message. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/rng.h"
#include "data/generate.h"
#include "harness.h"
#include "model/lm.h"
#include "model/linear.h"
#include "model/tokenizer.h"
#include "rl/grpo_train.h"
#include "rl/run_config.h"
#include "rl/sft.h"

/* Sizes that cut the contraction dimensions into full and partial 128-wide tiles. */
static const char *dense_json =
    "{\"model_type\": \"qwen2\", \"vocab_size\": 300, \"hidden_size\": 160, \"intermediate_size\": 288,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"max_position_embeddings\": 128, \"tie_word_embeddings\": false}";
static const char *v3_json =
    "{\"model_type\": \"deepseek_v3\", \"vocab_size\": 300, \"hidden_size\": 160, \"intermediate_size\": 288,"
    " \"moe_intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 4, \"q_lora_rank\": 96, \"kv_lora_rank\": 64, \"qk_nope_head_dim\": 32,"
    " \"qk_rope_head_dim\": 16, \"v_head_dim\": 32, \"n_routed_experts\": 8, \"n_shared_experts\": 1,"
    " \"num_experts_per_tok\": 2, \"n_group\": 2, \"topk_group\": 1, \"routed_scaling_factor\": 2.5,"
    " \"norm_topk_prob\": true, \"scoring_func\": \"sigmoid\", \"topk_method\": \"noaux_tc\","
    " \"first_k_dense_replace\": 1, \"num_nextn_predict_layers\": 0, \"max_position_embeddings\": 128,"
    " \"rope_theta\": 10000.0, \"tie_word_embeddings\": false}";

enum { B = 2, T = 24, N = B * T };

typedef struct {
    backend *be;
    lm *m;
    int V;
    int32_t ids[N], targets[N];
    int32_t *ids_dev;
    float *logits, *dlogits;   /* host [N, V] */
    float *dlogits_dev;
    float *grad;               /* host [total] */
} fixture;

static void fixture_init(fixture *f, backend *be, const char *json, uint64_t seed) {
    memset(f, 0, sizeof *f);
    f->be = be;
    CHECK_OK(lm_create_random(be, json, strlen(json), "test model", seed, &f->m));
    if (!f->m) return;
    CHECK_OK(param_set_alloc_grad(f->m->params));
    CHECK_OK(lm_reserve(f->m, B, T));
    f->V = f->m->vocab_size;
    for (int i = 0; i < N; i++) f->ids[i] = (int32_t)((i * 37 + 11) % f->V);
    for (int i = 0; i < N; i++) f->targets[i] = (int32_t)((i * 53 + 5) % f->V);
    f->ids_dev = be->alloc(be, sizeof f->ids);
    be->to_device(be, f->ids_dev, f->ids, sizeof f->ids);
    f->logits = malloc((size_t)N * f->V * sizeof(float));
    f->dlogits = malloc((size_t)N * f->V * sizeof(float));
    f->dlogits_dev = be->alloc(be, (size_t)N * f->V * sizeof(float));
    f->grad = malloc(f->m->params->total * sizeof(float));
}

static void fixture_free(fixture *f) {
    if (!f->m) return;
    f->be->free(f->be, f->ids_dev);
    f->be->free(f->be, f->dlogits_dev);
    free(f->logits), free(f->dlogits), free(f->grad);
    lm_free(f->m);
}

/* Mean cross-entropy of the targets (double, on the host) from a forward; fills f->logits. */
static double forward_loss(fixture *f) {
    float *logits = NULL;
    CHECK_OK(lm_forward(f->m, f->ids_dev, NULL, B, T, &logits));
    if (!logits) return NAN;
    f->be->to_host(f->be, f->logits, logits, (size_t)N * f->V * sizeof(float));
    double loss = 0;
    for (int i = 0; i < N; i++) {
        const float *z = f->logits + (size_t)i * f->V;
        double mx = z[0], sum = 0;
        for (int v = 1; v < f->V; v++) mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < f->V; v++) sum += exp(z[v] - mx);
        double lse = mx + log(sum);
        loss += (lse - z[f->targets[i]]) / N;
        for (int v = 0; v < f->V; v++)
            f->dlogits[(size_t)i * f->V + v] = (float)((exp(z[v] - lse) - (v == f->targets[i])) / N);
    }
    return loss;
}

/* Loss and its gradient (into f->grad, host). */
static double loss_and_grad(fixture *f) {
    double loss = forward_loss(f);
    param_set_zero_grad(f->m->params);
    f->be->to_device(f->be, f->dlogits_dev, f->dlogits, (size_t)N * f->V * sizeof(float));
    CHECK_OK(lm_backward(f->m, f->dlogits_dev));
    f->be->to_host(f->be, f->grad, f->m->params->grad, f->m->params->total * sizeof(float));
    return loss;
}

static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / (r > 0 ? r : 1));
}

/* Forward and backward at bf16 and fp8 against fp32, with stated bounds (relative L2 over
 * all logits / all gradients): bf16 keeps 8 significant bits (2^-9 relative rounding),
 * E4M3 4 bits (2^-4) per operand. */
static void test_against_fp32(const char *json, const char *what) {
    fixture f;
    fixture_init(&f, backend_cpu_create(), json, 3);
    if (!f.m) return;
    size_t P = f.m->params->total, L = (size_t)N * f.V;
    float *logits32 = malloc(L * sizeof(float)), *grad32 = malloc(P * sizeof(float));
    CHECK_INT(QUANT_FP32, lm_get_precision(f.m));
    double loss32 = loss_and_grad(&f);
    memcpy(logits32, f.logits, L * sizeof(float));
    memcpy(grad32, f.grad, P * sizeof(float));
    const quant_precision ps[2] = {QUANT_BF16, QUANT_FP8};
    const double logit_bound[2] = {0.02, 0.2}, grad_bound[2] = {0.05, 0.3};
    double err_logits[2], err_grad[2];
    for (int k = 0; k < 2; k++) {
        CHECK_OK(lm_set_precision(f.m, ps[k]));
        CHECK_INT(ps[k], lm_get_precision(f.m));
        double loss = loss_and_grad(&f);
        err_logits[k] = rel_l2(f.logits, logits32, L);
        err_grad[k] = rel_l2(f.grad, grad32, P);
        printf("%s %s: loss %.6f (fp32 %.6f), logits rel err %.2e, gradient rel err %.2e\n", what,
               quant_precision_name(ps[k]), loss, loss32, err_logits[k], err_grad[k]);
        CHECK_MSG(err_logits[k] > 1e-6, "%s %s: logits equal fp32's: no rounding happened", what,
                  quant_precision_name(ps[k]));
        CHECK_MSG(err_logits[k] < logit_bound[k], "%s %s: logits rel err %.3g >= %.3g", what,
                  quant_precision_name(ps[k]), err_logits[k], logit_bound[k]);
        CHECK_MSG(err_grad[k] > 1e-6 && err_grad[k] < grad_bound[k], "%s %s: gradient rel err %.3g not in (1e-6, %.3g)",
                  what, quant_precision_name(ps[k]), err_grad[k], grad_bound[k]);
        CHECK_NEAR(loss32, loss, 0.05 * (k + 1), 0);
    }
    CHECK_MSG(err_logits[1] > err_logits[0], "%s: fp8 (%.3g) should be coarser than bf16 (%.3g)", what, err_logits[1],
              err_logits[0]);
    /* Back to fp32: bit-identical to the first fp32 pass. */
    CHECK_OK(lm_set_precision(f.m, QUANT_FP32));
    loss_and_grad(&f);
    CHECK_MSG(memcmp(f.logits, logits32, L * sizeof(float)) == 0 && memcmp(f.grad, grad32, P * sizeof(float)) == 0,
              "%s: fp32 after bf16/fp8 differs from the first fp32 pass", what);
    free(logits32), free(grad32);
    backend *be = f.be;
    fixture_free(&f);
    backend_free(be);
}

/* Finite differences of the fp32 path along the gradient direction (after an fp8 pass):
 * (L(w + h u) - L(w - h u)) / 2h = |g| for u = g / |g|; float32 logits, h = 1e-2 in the
 * whole parameter vector. Tolerance 2%. */
static void test_fd_fp32(void) {
    fixture f;
    fixture_init(&f, backend_cpu_create(), dense_json, 5);
    if (!f.m) return;
    param_set *ps = f.m->params;
    CHECK_OK(lm_set_precision(f.m, QUANT_FP8));
    loss_and_grad(&f);
    CHECK_OK(lm_set_precision(f.m, QUANT_FP32));
    loss_and_grad(&f);
    size_t P = ps->total;
    float *w = malloc(P * sizeof(float)), *wp = malloc(P * sizeof(float));
    f.be->to_host(f.be, w, ps->data, P * sizeof(float));
    double gn = 0;
    for (size_t i = 0; i < P; i++) gn += (double)f.grad[i] * f.grad[i];
    gn = sqrt(gn);
    const double h = 1e-2;
    double l[2];
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < P; i++) wp[i] = w[i] + (float)((s ? -h : h) * f.grad[i] / gn);
        f.be->to_device(f.be, ps->data, wp, P * sizeof(float));
        param_set_touch(ps);
        l[s] = forward_loss(&f);
    }
    double fd = (l[0] - l[1]) / (2 * h);
    printf("finite differences (fp32): directional derivative %.6f, |g| %.6f\n", fd, gn);
    CHECK_NEAR(gn, fd, 0, 0.02);
    free(w), free(wp);
    backend *be = f.be;
    fixture_free(&f);
    backend_free(be);
}

/* The fp8 copy of a weight is made once per change: writing a weight without
 * param_set_touch leaves the product on the old copy; after the touch it follows. */
static void test_copy_refresh(void) {
    fixture f;
    fixture_init(&f, backend_cpu_create(), dense_json, 7);
    if (!f.m) return;
    param_set *ps = f.m->params;
    CHECK_OK(lm_set_precision(f.m, QUANT_FP8));
    size_t L = (size_t)N * f.V;
    float *first = malloc(L * sizeof(float));
    forward_loss(&f);
    memcpy(first, f.logits, L * sizeof(float));
    int v = param_find(ps, "model.layers.0.mlp.down_proj.weight");
    CHECK(v >= 0);
    if (v >= 0) {
        size_t n = ps->views[v].numel;
        float *host = malloc(n * sizeof(float));
        f.be->to_host(f.be, host, param_ptr(ps, v), n * sizeof(float));
        for (size_t i = 0; i < n; i++) host[i] *= 3.0f;
        f.be->to_device(f.be, param_ptr(ps, v), host, n * sizeof(float));
        forward_loss(&f);
        CHECK_MSG(memcmp(first, f.logits, L * sizeof(float)) == 0, "the fp8 weight copy was remade without a touch");
        param_set_touch(ps);
        forward_loss(&f);
        CHECK_MSG(memcmp(first, f.logits, L * sizeof(float)) != 0, "the fp8 weight copy was not remade after a touch");
        free(host);
    }
    free(first);
    backend *be = f.be;
    fixture_free(&f);
    backend_free(be);
}

/* Rollouts see the same precision: cached decoding of sequence 0 (a prefill of 8 tokens,
 * then one token per call) at fp8 gives the fp8 forward's logits up to summation order
 * (activation tiles are per token, so a token's rounding does not depend on the batch),
 * and is far from the fp32 forward's. */
static void test_decode_fp8(const char *json, const char *what) {
    fixture f;
    fixture_init(&f, backend_cpu_create(), json, 11);
    if (!f.m) return;
    backend *be = f.be;
    size_t L = (size_t)T * f.V;   /* sequence 0's rows */
    float *fwd32 = malloc(L * sizeof(float)), *fwd8 = malloc(L * sizeof(float)), *dec = malloc(L * sizeof(float));
    forward_loss(&f);
    memcpy(fwd32, f.logits, L * sizeof(float));
    CHECK_OK(lm_set_precision(f.m, QUANT_FP8));
    forward_loss(&f);
    memcpy(fwd8, f.logits, L * sizeof(float));
    int layers = 0;
    size_t per_token = 0;
    f.m->ops->decode->cache_layout(f.m, &layers, &per_token);
    lm_cache cache = {NULL, layers, 2, 16, per_token};
    cache.base = be->alloc(be, (size_t)layers * 2 * 16 * per_token * sizeof(float));
    lm_decode_limits lim = {.max_tokens = T, .max_seqs = 1, .max_logits = T, .max_blocks_per_seq = 2};
    lm_decoder *d = NULL;
    CHECK_OK(lm_decoder_create(f.m, &lim, &d));
    const int32_t blocks[2] = {0, 1};
    for (int t = 0; d && t < T;) {
        int n = t == 0 ? 8 : 1;
        lm_decode_seq s = {f.ids + t, n, t, n, blocks};
        float *logits = NULL;
        CHECK_OK(lm_decode(d, &cache, &s, 1, &logits));
        if (!logits) break;
        be->to_host(be, dec + (size_t)t * f.V, logits, (size_t)n * f.V * sizeof(float));
        t += n;
    }
    double to8 = rel_l2(dec, fwd8, L), to32 = rel_l2(dec, fwd32, L);
    printf("%s fp8 decode: rel err %.2e to the fp8 forward, %.2e to the fp32 forward\n", what, to8, to32);
    CHECK_MSG(to8 < 0.1 * to32 && to8 < 1e-2, "%s: fp8 decoding is %.3g from the fp8 forward, %.3g from fp32's", what,
              to8, to32);
    lm_decoder_free(d);
    be->free(be, cache.base);
    free(fwd32), free(fwd8), free(dec);
    fixture_free(&f);
    backend_free(be);
}

/* ---- learning under fp8: SFT lowers the loss, then GRPO raises a format reward ---- */
#define MAX_LOG 64
typedef struct {
    int n;
    double reward[MAX_LOG], loss[MAX_LOG];
} metric_log;

static void record(void *ctx, int step, int n, const char *const *names, const double *values) {
    metric_log *log = ctx;
    if (step < 1 || step > MAX_LOG) return;
    for (int i = 0; i < n; i++) {
        if (!strcmp(names[i], "reward/mean")) log->reward[step - 1] = values[i];
        if (!strcmp(names[i], "loss") || !strcmp(names[i], "train/loss")) {
            log->loss[step - 1] = values[i];
            if (step > log->n) log->n = step;
        }
    }
}

static const char *learn_json =
    "{\"model_type\": \"qwen2\", \"vocab_size\": 400, \"hidden_size\": 64, \"intermediate_size\": 128,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"max_position_embeddings\": 256, \"tie_word_embeddings\": true}";

static double mean(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i] / n;
    return s;
}

static void test_learning_fp8(void) {
    char root[PATH_MAX], data[PATH_MAX];
    snprintf(root, sizeof root, "/tmp/grpo_test_precision_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(root));
    snprintf(data, sizeof data, "%s/train.jsonl", root);
    FILE *fp = fopen(data, "w");
    data_arith_options o = {.difficulty = 1, .ops = "+"};
    CHECK_OK(data_write_arith(fp, 3, 0, 1000, &o));
    fclose(fp);
    backend *be = backend_cpu_create();
    tokenizer *tok = NULL;
    CHECK_OK(tokenizer_builtin_create(&tok));
    lm *m = NULL;
    CHECK_OK(lm_create_random(be, learn_json, strlen(learn_json), "test model", 5, &m));
    sft_dataset *ds = NULL;
    problem_set *train = NULL;
    reward_set *rewards = NULL;
    if (!m || !tok) goto done;
    CHECK_OK(param_set_alloc_grad(m->params));
    CHECK_OK(lm_set_precision(m, QUANT_FP8));
    CHECK_OK(sft_dataset_load(data, tok, "Q: {prompt}\nA: ", 96, &ds));
    if (!ds) goto done;
    sft_config c = sft_config_default();
    c.max_steps = 30;
    c.per_device_train_batch_size = 16;
    c.max_length = 96;
    c.optim.learning_rate = 3e-3;
    c.logging_steps = 1;
    metric_log sft_log = {0};
    train_run run = {.pad_id = tokenizer_pad_id(tok), .quiet = 1, .on_metrics = record, .ctx = &sft_log};
    sft_result r;
    CHECK_OK(sft_train(&c, m, ds, NULL, &run, &r));
    CHECK_INT(30, sft_log.n);
    double first = mean(sft_log.loss, 3), last = mean(sft_log.loss + 27, 3);
    printf("fp8 SFT loss: first 3 steps %.3f, last 3 steps %.3f\n", first, last);
    CHECK_MSG(last < 0.7 * first, "fp8 SFT: the loss went from %.3f to %.3f: expected a drop of 30%%", first, last);
    CHECK_INT(QUANT_FP8, lm_get_precision(m));

    /* GRPO with the R1 tag-count reward, rollouts and training both at fp8 */
    CHECK_OK(problem_set_load(data, tok, "Q: {prompt}\nA: ", 32, &train));
    reward_entry entries[1] = {{.kind = 2, .weight = 1.0}};
    CHECK_STR("tag_count", reward_names[2]);
    CHECK_OK(reward_set_create(entries, 1, &rewards));
    if (!train || !rewards) goto done;
    grpo_config g = grpo_config_default();
    g.max_steps = 12;
    g.per_device_train_batch_size = 32;
    g.num_generations = 8;
    g.max_completion_length = 48;
    g.optim.learning_rate = 2e-3;
    g.optim.max_grad_norm = 1.0;
    g.save_total_limit = 0;
    g.seed = 9;
    metric_log rl_log = {0};
    train_run rr = {.pad_id = tokenizer_pad_id(tok), .on_metrics = record, .ctx = &rl_log, .quiet = 1};
    grpo_result gr;
    CHECK_OK(grpo_train(&g, m, NULL, tok, train, NULL, rewards, &rr, &gr));
    first = mean(rl_log.reward, 3);
    last = mean(rl_log.reward + g.max_steps - 3, 3);
    printf("fp8 GRPO tag_count reward: first 3 steps %.3f, last 3 steps %.3f\n", first, last);
    CHECK_MSG(last > first + 0.05, "fp8 GRPO: the reward went from %.3f to %.3f: expected a rise", first, last);
done:
    reward_set_free(rewards);
    problem_set_free(train);
    sft_dataset_free(ds);
    lm_free(m);
    tokenizer_free(tok);
    backend_free(be);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

/* The run config's key: fp8 accepted, fp16 refused naming the key and the choices. */
static void test_config(void) {
    const char *path = harness_source_path("configs/sft-demo.yaml");
    run_config *c = NULL;
    const char *fp8[] = {"run.precision=fp8"}, *fp16[] = {"run.precision=fp16"};
    CHECK_OK(run_config_load(path, NULL, 0, &c));
    if (c) CHECK_INT(QUANT_FP32, c->run.precision);
    run_config_free(c);
    c = NULL;
    CHECK_OK(run_config_load(path, fp8, 1, &c));
    if (c) CHECK_INT(QUANT_FP8, c->run.precision);
    run_config_free(c);
    c = NULL;
    CHECK_FAILS(run_config_load(path, fp16, 1, &c),
                "run.precision: expected one of 'fp32', 'bf16', 'fp8', found 'fp16'");
    CHECK(c == NULL);
    quant_precision p;
    CHECK_FAILS(quant_precision_parse("fp16", "--precision", &p), "fp16 is not supported");
}

int main(void) {
    test_config();
    test_against_fp32(dense_json, "qwen2");
    test_against_fp32(v3_json, "deepseek_v3");
    test_fd_fp32();
    test_copy_refresh();
    test_decode_fp8(dense_json, "qwen2");
    test_decode_fp8(v3_json, "deepseek_v3");
    test_learning_fp8();
    TEST_MAIN_END();
}
