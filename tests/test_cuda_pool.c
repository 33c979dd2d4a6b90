/* The device memory pool and activation recomputation on a CUDA device (only ever run on
 * a GPU machine; written without one). Checks: cudaMemGetInfo through backend_memory_info;
 * a pool reserved by backend_pool_setup serves alloc/free (first fit, a freed block comes
 * back at the same address, zero-filled after random data was written to it); running out
 * names the tensor and the pool's state; a tiny-dense and a tiny-moe (MoE + MTP) training
 * step from pool memory with recompute on gives the CPU's logits and gradients, and the
 * same as recompute off on the GPU; every block goes back to the pool when the models are
 * freed. Tolerances (relative to the largest magnitude of the reference): GPU vs CPU
 * 2e-4 (fp32 kernels sum in another order over a whole model: ~1e-5 per op, a few dozen
 * ops deep); GPU recompute on vs off 1e-5 (the same kernels, but embedding_backward and
 * other scatter-adds may use atomics, so not bit for bit). Inputs random and fresh each
 * run (seed printed, GRPO_TEST_SEED repeats). Without a device it checks that asking for
 * one fails cleanly, then skips (77). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/backend_pool.h"
#include "core/status.h"
#include "model/deepseek_v3.h"
#include "model/lm.h"
#include "model/presets.h"
#include "tests/harness.h"

#define GPU_VS_CPU_RTOL 2e-4
#define GPU_RECOMPUTE_RTOL 1e-5

static backend *cpu, *gpu;
static uint64_t rng_state;

static double uniform(void) {   /* [0, 1), splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

/* max |a - b| / max |b| over n (b the reference; floor 1e-12). */
static double rel_err(const float *a, const float *b, size_t n) {
    double diff = 0, ref = 1e-12;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= diff)) diff = d;   /* NaN counts as the largest */
        if (fabs((double)b[i]) > ref) ref = fabs((double)b[i]);
    }
    return diff / ref;
}

static void test_pool_basics(void) {
    size_t fr = 0, tot = 0;
    CHECK_OK(backend_memory_info(gpu, &fr, &tot));
    printf("device memory: %zu of %zu bytes free\n", fr, tot);
    CHECK(tot > 0 && fr > 0 && fr <= tot);
    CHECK_OK(backend_pool_setup(gpu, "1GiB"));
    backend_pool_info info;
    CHECK_INT(1, backend_pool_stats(gpu, &info));
    CHECK_INT((size_t)1 << 30, info.capacity);

    size_t n = 1000003;   /* floats: an odd size, rounded to 256 bytes inside */
    float *a = backend_alloc(gpu, n * sizeof(float), "block a");
    float *b = backend_alloc(gpu, 17, "block b");
    CHECK(a && b);
    if (!a || !b) return;
    CHECK((uintptr_t)a % BACKEND_POOL_ALIGN == 0 && (uintptr_t)b % BACKEND_POOL_ALIGN == 0);
    float *h = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = (float)(uniform() * 2 - 1) + 1.5f;   /* never zero */
    gpu->to_device(gpu, a, h, n * sizeof(float));
    gpu->free(gpu, a);
    float *a2 = backend_alloc(gpu, n * sizeof(float), "block a again");
    CHECK(a2 == a);   /* first fit: the same hole */
    gpu->to_host(gpu, h, a2, n * sizeof(float));
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) nonzero += h[i] != 0.0f;
    CHECK_INT(0, nonzero);
    CHECK(backend_alloc(gpu, (size_t)2 << 30, "a 2 GiB tensor") == NULL);
    CHECK(strstr(grpo_error_message(), "out of device memory allocating a 2 GiB tensor (2.0 GiB) on cuda: pool") !=
          NULL);
    gpu->free(gpu, a2);
    gpu->free(gpu, b);
    backend_pool_stats(gpu, &info);
    CHECK_INT(0, info.used);
    CHECK_INT(1, info.free_blocks);
    free(h);
}

typedef struct {
    float *logits, *grads;
} step_out;

static lm *make(backend *be, const char *preset, uint64_t seed) {
    size_t len = 0;
    const char *text = preset_find(preset, &len);
    lm *m = NULL;
    CHECK_OK(lm_create_random(be, text, len, preset, seed, &m));
    if (m) CHECK_OK(param_set_alloc_grad(m->params));
    return m;
}

/* One forward (+ MTP loss) + backward of dlogits on zeroed gradients, copied to the host. */
static void step(lm *m, const int32_t *ids, const float *dlogits, int B, int T, float mtp, step_out *out) {
    backend *be = m->be;
    size_t N = (size_t)B * T, V = (size_t)m->vocab_size, P = m->params->total;
    param_set_zero_grad(m->params);
    int32_t *ids_d = backend_alloc(be, N * sizeof(int32_t), "test ids");
    float *dl_d = backend_alloc(be, N * V * sizeof(float), "test dlogits");
    be->to_device(be, ids_d, ids, N * sizeof(int32_t));
    be->to_device(be, dl_d, dlogits, N * V * sizeof(float));
    float *logits = NULL;
    double loss = 0;
    CHECK_OK(lm_forward(m, ids_d, NULL, B, T, &logits));
    if (mtp > 0) CHECK_OK(deepseek_v3_mtp_loss(m->impl, mtp, &loss));
    out->logits = malloc(N * V * sizeof(float));
    out->grads = malloc(P * sizeof(float));
    be->to_host(be, out->logits, logits, N * V * sizeof(float));
    CHECK_OK(lm_backward(m, dl_d));
    be->to_host(be, out->grads, m->params->grad, P * sizeof(float));
    be->free(be, ids_d);
    be->free(be, dl_d);
}

static void test_model(const char *preset, float mtp, uint64_t seed) {
    lm *mc = make(cpu, preset, seed), *mg = make(gpu, preset, seed);
    if (!mc || !mg) {
        lm_free(mc);
        lm_free(mg);
        return;
    }
    int B = 2, T = 24;
    size_t N = (size_t)B * T, V = (size_t)mc->vocab_size, P = mc->params->total;
    int32_t *ids = malloc(N * sizeof(int32_t));
    float *dl = malloc(N * V * sizeof(float));
    for (size_t i = 0; i < N; i++) ids[i] = (int32_t)(uniform() * (double)V);
    for (size_t i = 0; i < N * V; i++) dl[i] = (float)(uniform() * 2 - 1) / (float)N;
    step_out c_on, g_on, g_off;
    CHECK_OK(lm_set_recompute(mc, 1));
    CHECK_OK(lm_reserve(mc, B, T));
    step(mc, ids, dl, B, T, mtp, &c_on);
    CHECK_OK(lm_reserve(mg, B, T));
    step(mg, ids, dl, B, T, mtp, &g_off);
    CHECK_OK(lm_set_recompute(mg, 1));
    step(mg, ids, dl, B, T, mtp, &g_on);
    double e_logits = rel_err(g_on.logits, c_on.logits, N * V), e_grads = rel_err(g_on.grads, c_on.grads, P);
    double e_rec = rel_err(g_on.grads, g_off.grads, P);
    printf("%s: gpu vs cpu (recompute): logits %.2e, gradients %.2e; gpu recompute on vs off %.2e\n", preset,
           e_logits, e_grads, e_rec);
    CHECK(e_logits <= GPU_VS_CPU_RTOL);
    CHECK(e_grads <= GPU_VS_CPU_RTOL);
    CHECK(e_rec <= GPU_RECOMPUTE_RTOL);
    free(c_on.logits);
    free(c_on.grads);
    free(g_on.logits);
    free(g_on.grads);
    free(g_off.logits);
    free(g_off.grads);
    free(ids);
    free(dl);
    lm_free(mc);
    lm_free(mg);
}

int main(void) {
    char desc[2048];
    backend_cuda_describe(desc, sizeof desc);
    if (backend_cuda_device_count() == 0) {
        backend *none = backend_cuda_create(0);   /* must fail with a message, not crash */
        CHECK(none == NULL);
        CHECK(grpo_error_message()[0] != 0);
        backend_free(none);
        if (harness_failures) TEST_MAIN_END();
        TEST_SKIP("%s", desc);
    }
    const char *env = getenv("GRPO_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("%s\nseed %llu (GRPO_TEST_SEED to repeat)\n", desc, (unsigned long long)seed);
    rng_state = seed;
    cpu = backend_cpu_create();
    gpu = backend_cuda_create(0);
    CHECK_MSG(cpu && gpu, "%s", grpo_error_message());
    if (!cpu || !gpu) TEST_MAIN_END();
    test_pool_basics();
    test_model("tiny-dense", 0, seed);
    test_model("tiny-moe", 0.3f, seed + 1);
    backend_pool_info info;
    CHECK_INT(1, backend_pool_stats(gpu, &info));
    CHECK_INT(0, info.live_blocks);   /* the models gave every block back */
    char line[256];
    backend_pool_describe(gpu, line, sizeof line);
    printf("%s\n", line);
    backend_free(gpu);
    backend_free(cpu);
    TEST_MAIN_END();
}
