/* Activation recomputation (lm_set_recompute, run.recompute) on the CPU backend: the same
 * forward + backward with and without it gives the same logits and the same gradients BIT
 * FOR BIT (the same ops run in the same order), for the dense family (fp32 and fp8
 * projections) and DeepSeek-V3 (dense + MoE layers, the sequence-wise balance loss and
 * the MTP module); MoE loads are counted once per forward either way; and the activation
 * block shrinks by exactly (L - 1) layers' activations less their inputs, checked against
 * sizes worked out here from the layer's view list. Inputs (ids, dlogits, weights) are
 * random and fresh each run: seed from time ^ pid, printed, GRPO_TEST_SEED repeats it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "model/deepseek_v3.h"
#include "model/dense.h"
#include "model/hf_config.h"
#include "model/lm.h"
#include "model/presets.h"
#include "tests/harness.h"

static backend *be;
static uint64_t rng_state;

static double uniform(void) {   /* [0, 1), splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

/* One training step's results: logits, all parameter gradients, the MTP loss. */
typedef struct {
    float *logits;   /* [N, V] */
    float *grads;    /* [total] */
    double mtp_loss;
} step_result;

static void step_result_free(step_result *r) {
    free(r->logits);
    free(r->grads);
}

/* Forward (+ the MTP loss when mtp_lambda > 0) and backward of dlogits on fresh zero
 * gradients; copies the results to the host. */
static grpo_status run_step(lm *m, const int32_t *ids, const float *dlogits_host, int B, int T, float mtp_lambda,
                            step_result *out) {
    size_t N = (size_t)B * T, V = (size_t)m->vocab_size, P = m->params->total;
    param_set_zero_grad(m->params);
    int32_t *ids_dev = be->alloc(be, N * sizeof(int32_t));
    float *dlogits = be->alloc(be, N * V * sizeof(float));
    be->to_device(be, ids_dev, ids, N * sizeof(int32_t));
    be->to_device(be, dlogits, dlogits_host, N * V * sizeof(float));
    float *logits = NULL;
    grpo_status s = lm_forward(m, ids_dev, NULL, B, T, &logits);
    out->mtp_loss = 0;
    if (!s && mtp_lambda > 0) s = deepseek_v3_mtp_loss(m->impl, mtp_lambda, &out->mtp_loss);
    out->logits = malloc(N * V * sizeof(float));
    out->grads = malloc(P * sizeof(float));
    if (!s) be->to_host(be, out->logits, logits, N * V * sizeof(float));
    if (!s) s = lm_backward(m, dlogits);
    if (!s) be->to_host(be, out->grads, m->params->grad, P * sizeof(float));
    be->free(be, ids_dev);
    be->free(be, dlogits);
    return s;
}

/* Index of the first differing float (bitwise), or -1. */
static long first_difference(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) return (long)i;
    return -1;
}

/* Runs the step with recompute off, then on, on the same model; compares bit for bit. */
static void check_same_bits(lm *m, int B, int T, float mtp_lambda, const char *what) {
    size_t N = (size_t)B * T, V = (size_t)m->vocab_size, P = m->params->total;
    int32_t *ids = malloc(N * sizeof(int32_t));
    float *dlogits = malloc(N * V * sizeof(float));
    for (size_t i = 0; i < N; i++) ids[i] = (int32_t)(uniform() * (double)V);
    for (size_t i = 0; i < N * V; i++) dlogits[i] = (float)(uniform() * 2.0 - 1.0) / (float)N;

    CHECK_OK(lm_set_recompute(m, 0));
    CHECK_OK(lm_reserve(m, B, T));
    size_t bytes_off = lm_activation_bytes(m);
    step_result off = {0}, on = {0};
    CHECK_OK(run_step(m, ids, dlogits, B, T, mtp_lambda, &off));
    CHECK_OK(lm_set_recompute(m, 1));   /* re-reserves at the same size */
    size_t bytes_on = lm_activation_bytes(m);
    CHECK_OK(run_step(m, ids, dlogits, B, T, mtp_lambda, &on));
    printf("%s: activation block %zu bytes, %zu with recompute (%.2fx)\n", what, bytes_off, bytes_on,
           (double)bytes_on / (double)bytes_off);
    CHECK(bytes_on < bytes_off);
    long d = first_difference(off.logits, on.logits, N * V);
    CHECK_MSG(d < 0, "%s: logits differ at %ld", what, d);
    d = first_difference(off.grads, on.grads, P);
    if (d >= 0) {   /* name the parameter */
        const char *name = "?";
        for (int v = 0; v < m->params->count; v++)
            if ((size_t)d >= m->params->views[v].offset &&
                (size_t)d < m->params->views[v].offset + m->params->views[v].numel)
                name = m->params->views[v].name;
        printf("%s: gradient of %s differs at %ld: %.9g vs %.9g\n", what, name, d, off.grads[d], on.grads[d]);
    }
    CHECK_MSG(d < 0, "%s: gradients differ", what);
    CHECK_MSG(memcmp(&off.mtp_loss, &on.mtp_loss, sizeof(double)) == 0, "%s: MTP loss %.17g vs %.17g", what,
              off.mtp_loss, on.mtp_loss);
    /* the gradients are not trivially equal: most are non-zero */
    size_t nonzero = 0;
    for (size_t i = 0; i < P; i++) nonzero += off.grads[i] != 0.0f;
    CHECK_MSG(nonzero > P / 2, "%s: only %zu of %zu gradients are non-zero", what, nonzero, P);
    /* and back off: the block grows again */
    CHECK_OK(lm_set_recompute(m, 0));
    CHECK_INT(bytes_off, lm_activation_bytes(m));
    step_result_free(&off);
    step_result_free(&on);
    free(ids);
    free(dlogits);
}

static lm *preset_model(const char *name, uint64_t seed) {
    size_t len = 0;
    const char *text = preset_find(name, &len);
    CHECK(text != NULL);
    if (!text) return NULL;
    lm *m = NULL;
    CHECK_OK(lm_create_random(be, text, len, name, seed, &m));
    if (m) CHECK_OK(param_set_alloc_grad(m->params));
    return m;
}

/* Norm weights 1 + noise (random init leaves them at 1), so their gradients matter too. */
static void perturb_norms(lm *m) {
    param_set *ps = m->params;
    for (int v = 0; v < ps->count; v++) {
        const param_view *pv = &ps->views[v];
        if (!strstr(pv->name, "norm")) continue;
        float *h = malloc(pv->numel * sizeof(float));
        for (size_t i = 0; i < pv->numel; i++) h[i] = 1.0f + 0.3f * (float)(uniform() - 0.5);
        be->to_device(be, param_ptr(ps, v), h, pv->numel * sizeof(float));
        free(h);
    }
    param_set_touch(ps);
}

static void test_dense(uint64_t seed) {
    lm *m = preset_model("tiny-dense", seed);
    if (!m) return;
    perturb_norms(m);
    check_same_bits(m, 2, 12, 0, "dense fp32");
    CHECK_OK(lm_set_precision(m, QUANT_FP8));
    check_same_bits(m, 3, 7, 0, "dense fp8");
    lm_free(m);
}

static void test_deepseek_v3(uint64_t seed) {
    lm *m = preset_model("tiny-moe", seed);
    if (!m) return;
    perturb_norms(m);
    deepseek_v3_set_seq_aux_alpha(m->impl, 0.01f);   /* the balance loss's gradient too */
    /* random routing bias, so selection and weights differ (init leaves it at 0) */
    param_set *ps = m->params;
    for (int v = 0; v < ps->count; v++)
        if (strstr(ps->views[v].name, "e_score_correction_bias")) {
            float h[256];
            size_t n = ps->views[v].numel < 256 ? ps->views[v].numel : 256;
            for (size_t i = 0; i < n; i++) h[i] = 0.05f * (float)(uniform() - 0.5);
            be->to_device(be, param_ptr(ps, v), h, n * sizeof(float));
        }
    check_same_bits(m, 2, 10, 0, "deepseek_v3");
    check_same_bits(m, 2, 9, 0.3f, "deepseek_v3 + MTP");

    /* MoE loads: one forward + backward adds the same loads with recompute on or off
     * (the MoE layers are not run again in backward) */
    int n_moe = m->ops->num_moe_layers(m), E = 0;
    CHECK(n_moe >= 2);
    int64_t before[64], after_off[64], after_on[64];
    int B = 2, T = 6;
    int32_t ids[12];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(uniform() * m->vocab_size);
    float *dl = calloc((size_t)B * T * m->vocab_size, sizeof(float));
    for (int pass = 0; pass < 2; pass++) {
        CHECK_OK(lm_set_recompute(m, pass));
        CHECK_OK(lm_reserve(m, B, T));
        int64_t *loads = m->ops->moe_layer_loads(m, 0, &E);
        CHECK(E > 0 && E <= 64);
        if (E <= 0 || E > 64) break;
        memcpy(before, loads, (size_t)E * sizeof(int64_t));
        step_result r = {0};
        CHECK_OK(run_step(m, ids, dl, B, T, 0.2f, &r));
        loads = m->ops->moe_layer_loads(m, 0, &E);
        int64_t *after = pass ? after_on : after_off;
        int64_t total = 0;
        for (int e = 0; e < E; e++) total += after[e] = loads[e] - before[e];
        CHECK_INT((int64_t)B * T * 2, total);   /* num_experts_per_tok = 2 in tiny-moe */
        step_result_free(&r);
    }
    CHECK(memcmp(after_off, after_on, (size_t)E * sizeof(int64_t)) == 0);
    free(dl);
    lm_free(m);
}

static size_t align64(size_t floats) { return (floats + 63) / 64 * 64; }

/* The block for a 12-layer dense config: recompute keeps L inputs and one layer. */
static void test_dense_bytes(void) {
    dense_config c;
    hf_config_dense_defaults(&c, "qwen2");
    c.vocab_size = 50;
    c.hidden_size = 48;
    c.intermediate_size = 112;
    c.num_hidden_layers = 12;
    c.num_attention_heads = 6;
    c.num_key_value_heads = 2;
    c.head_dim = 8;
    c.max_position_embeddings = 64;
    int B = 3, T = 17;
    size_t N = (size_t)B * T, D = c.hidden_size, I = c.intermediate_size, QD = 48, KD = 16, H = 6, L = 12;
    /* one layer's views (model/dense_impl.h: dense_layer_acts), each 64-float aligned */
    size_t layer = 4 * align64(N * D) + 2 * align64(N) + 2 * align64(N * QD) + 2 * align64(N * KD) + align64(N * H) +
                   3 * align64(N * I);
    size_t full = dense_activation_bytes(&c, B, T, DENSE_ACTS_TRAINING);
    size_t rec = dense_activation_bytes(&c, B, T, DENSE_ACTS_RECOMPUTE);
    size_t inf = dense_activation_bytes(&c, B, T, DENSE_ACTS_INFERENCE);
    CHECK_INT((L - 1) * (layer - align64(N * D)) * sizeof(float), full - rec);
    printf("dense 12 layers, %zu tokens: %zu bytes, %zu with recompute, %zu for inference\n", N, full, rec, inf);
    CHECK(rec * 2 < full);

    deepseek_v3_config v;
    size_t len = 0;
    const char *text = preset_find("tiny-moe", &len);
    CHECK_OK(hf_config_v3_parse(text, len, "tiny-moe", &v));
    v.num_hidden_layers = 12;
    size_t v_full = deepseek_v3_activation_bytes(&v, B, T, 0), v_rec = deepseek_v3_activation_bytes(&v, B, T, 1);
    printf("deepseek_v3 12 layers + MTP, %zu tokens: %zu bytes, %zu with recompute\n", N, v_full, v_rec);
    CHECK(v_rec * 2 < v_full);
}

int main(void) {
    const char *env = getenv("GRPO_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("seed %llu (GRPO_TEST_SEED to repeat)\n", (unsigned long long)seed);
    rng_state = seed;
    be = backend_cpu_create();
    test_dense_bytes();
    test_dense(seed);
    test_deepseek_v3(seed + 1);
    backend_free(be);
    TEST_MAIN_END();
}
