/* Training throughput of a model preset on the CPU: forward + backward + AdamW steps on
 * random token batches, in tokens/s, beside the machine's GEMM limit (OpenBLAS sgemm
 * GFLOP/s on a square 1024 problem) measured in the same run.
 * usage: bench_train [--preset dense-10m] [--batch 8] [--seq 256] [--steps 10] [--warmup 2] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "model/deepseek_v3.h"
#include "model/lm.h"
#include "model/presets.h"
#include "rl/optim.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double blas_gflops(int n) {
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = 0.001f * (float)(i % 97);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double g = 2.0 * n * n * (double)n / (now() - t) / 1e9;
        if (g > best) best = g;
    }
    free(a); free(b); free(c);
    return best;
}

int main(int argc, char **argv) {
    const char *preset = "dense-10m";
    int B = 8, T = 256, steps = 10, warmup = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--preset")) preset = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seq")) T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    size_t len;
    const char *json = preset_find(preset, &len);
    if (!json) { fprintf(stderr, "no preset %s\n", preset); return 2; }
    backend *be = backend_cpu_create();
    lm *m;
    optim *opt;
    optim_config oc = optim_config_default();
    if (lm_create_random(be, json, len, preset, 1, &m) || param_set_alloc_grad(m->params) ||
        lm_reserve(m, B, T) || optim_create(&oc, m->params, &opt)) {
        fprintf(stderr, "setup: %s\n", grpo_error_message());
        return 1;
    }
    int V = m->vocab_size;
    size_t n = (size_t)B * T;
    int32_t *ids = malloc(n * sizeof(int32_t)), *targets = malloc(n * sizeof(int32_t));
    float *dlogprobs = malloc(n * sizeof(float)), *logprobs = malloc(n * sizeof(float)), *lse = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(rng_u32(7, 0, i) % (uint32_t)V);
    for (size_t i = 0; i < n; i++) {
        targets[i] = (i + 1) % T ? ids[i + 1] : -1;
        dlogprobs[i] = -1.0f / (float)n;
    }
    double t0 = 0, loss = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = now();
        float *logits;
        param_set_zero_grad(m->params);
        if (lm_forward(m, ids, NULL, B, T, &logits)) { fprintf(stderr, "%s\n", grpo_error_message()); return 1; }
        be->token_logprobs_forward(be, logprobs, lse, logits, targets, (int)n, V);
        be->token_logprobs_backward(be, logits, logits, lse, targets, dlogprobs, (int)n, V);
        if (lm_backward(m, logits) || optim_step(opt, 1e-4, NULL)) { fprintf(stderr, "%s\n", grpo_error_message()); return 1; }
        loss = 0;
        for (size_t i = 0; i < n; i++) loss -= logprobs[i];
        loss /= (double)n;
    }
    double dt = now() - t0;
    double tok_s = (double)n * steps / dt;
    /* 6 N flops per token for the matmuls of forward + backward (Kaplan et al. 2020); for
     * an MoE model N is the parameters activated per token (shared + top-k routed experts,
     * without the MTP modules, which this loop does not run). */
    double flop_params = (double)m->num_parameters;
    deepseek_v3_config v3;
    if (!strncmp(m->model_type, "deepseek", 8) && hf_config_v3_parse(json, len, preset, &v3) == GRPO_OK) {
        deepseek_v3_sizes sz;
        deepseek_v3_count(&v3, &sz);
        flop_params = (double)sz.activated_params;
        printf("MoE: %.2fM activated of %.2fM parameters per token (6N rule uses the activated count)\n",
               flop_params / 1e6, (double)sz.total_params / 1e6);
    }
    double model_gflops = 6.0 * flop_params * tok_s / 1e9;
    double peak = blas_gflops(1024);
    printf("preset %s params %.2fM batch %d seq %d steps %d\n", preset, (double)m->num_parameters / 1e6, B, T, steps);
    printf("grpo.c: %.1f ms/step, %.0f tokens/s, ~%.1f GFLOP/s (6N rule), BLAS sgemm 1024^3 %.1f GFLOP/s, last loss %.4f\n",
           1e3 * dt / steps, tok_s, model_gflops, peak, loss);
    printf("RESULT tokens_per_second=%.1f blas_gflops=%.1f\n", tok_s, peak);
    optim_free(opt);
    lm_free(m);
    backend_free(be);
    free(ids); free(targets); free(dlogprobs); free(logprobs); free(lse);
    return 0;
}
