/* The CUDA sample op beside the CPU's (core/sample.c) on fresh random rows (seed printed;
 * GRPO_TEST_SEED repeats one) of every kind in sample_cases.h (ties, all equal, one
 * dominant token), V = 50, 32000, 129280, 151936, N up to 256, ldl = V and ldl = 0:
 *  - tokens equal on every row (both backends sum in double, in other orders: a token may
 *    differ only when u lands within ~1e-12 of a CDF boundary; a mismatch where u is
 *    not that close to the CPU's boundary fails);
 *  - logprob and policy_logprob within 1e-5 relative (+ 1e-6 absolute) of the CPU's.
 * V = 50 sweeps every setting of sample_param_cases; the large vocabularies a set of
 * typical and edge settings. Without a device it checks that asking for the CUDA backend
 * fails with a message, then skips (77). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/sample.h"
#include "core/status.h"
#include "tests/harness.h"
#include "tests/sample_cases.h"

#define LOGPROB_RTOL 1e-5
#define LOGPROB_ATOL 1e-6

static backend *cpu, *gpu;
static uint64_t seed;

/* One case on both backends: N rows of V (ldl V, or one row broadcast when broadcast). */
static void run_case(int V, int N, int broadcast, const sample_params *p, uint64_t tag) {
    const int rows = broadcast ? 1 : N, ldl = broadcast ? 0 : V;
    const size_t nl = (size_t)rows * V;
    float *x = malloc(nl * sizeof(float));
    double *u = malloc(N * sizeof(double));
    int32_t *tc = malloc(N * sizeof(int32_t)), *tg = malloc(N * sizeof(int32_t));
    float *lc = malloc(N * sizeof(float)), *lg = malloc(N * sizeof(float));
    float *pc = malloc(N * sizeof(float)), *pg = malloc(N * sizeof(float));
    GRPO_ASSERT(x && u && tc && tg && lc && lg && pc && pg);
    for (int i = 0; i < rows; i++) sample_fill_row(x + (size_t)i * V, V, i % SAMPLE_ROW_KINDS, seed, tag * 1024 + i);
    for (int i = 0; i < N; i++) u[i] = rng_uniform(seed, tag, (uint64_t)i) * 0.999 + 0.0005 * (i % 3);

    float *dx = gpu->alloc(gpu, nl * sizeof(float));
    double *du = gpu->alloc(gpu, N * sizeof(double));
    int32_t *dt = gpu->alloc(gpu, N * sizeof(int32_t));
    float *dl = gpu->alloc(gpu, N * sizeof(float)), *dp = gpu->alloc(gpu, N * sizeof(float));
    GRPO_ASSERTF(dx && du && dt && dl && dp, "%s", grpo_error_message());
    gpu->to_device(gpu, dx, x, nl * sizeof(float));
    gpu->to_device(gpu, du, u, N * sizeof(double));
    cpu->sample(cpu, tc, lc, pc, x, ldl, N, V, u, p->temperature, p->top_k, p->top_p, p->min_p);
    gpu->sample(gpu, dt, dl, dp, dx, ldl, N, V, du, p->temperature, p->top_k, p->top_p, p->min_p);
    gpu->to_host(gpu, tg, dt, N * sizeof(int32_t));
    gpu->to_host(gpu, lg, dl, N * sizeof(float));
    gpu->to_host(gpu, pg, dp, N * sizeof(float));

    int bad = 0;
    double *probs = NULL;
    void *scratch = NULL;
    for (int i = 0; i < N; i++) {
        int ok = tc[i] == tg[i] && fabs((double)lg[i] - lc[i]) <= LOGPROB_ATOL + LOGPROB_RTOL * fabs(lc[i]) &&
                 fabs((double)pg[i] - pc[i]) <= LOGPROB_ATOL + LOGPROB_RTOL * fabs(pc[i]);
        if (!ok && tc[i] != tg[i] && p->temperature > 0) {
            /* excused only when u sits on a boundary of the CPU's CDF (id order) */
            if (!probs) {
                probs = malloc((size_t)V * sizeof(double));
                scratch = malloc(sample_scratch_bytes(V));
                GRPO_ASSERT(probs && scratch);
            }
            const float *row = x + (size_t)(broadcast ? 0 : i) * V;
            sample_distribution(p, row, V, scratch, probs);
            double cum = 0, nearest = 1;
            for (int j = 0; j < V; j++) {
                cum += probs[j];
                if (probs[j] > 0 && fabs(cum - u[i]) < nearest) nearest = fabs(cum - u[i]);
            }
            if (nearest < 1e-11) {
                printf("V %d row %d: u %.17g within %.3g of a CDF boundary: cpu %d, cuda %d (allowed)\n", V, i, u[i],
                       nearest, tc[i], tg[i]);
                continue;
            }
        }
        if (!ok && bad++ < 5)
            fprintf(stderr, "V %d N %d ldl %d T=%g k=%d p=%g min_p=%g row %d u %.17g: cpu %d %.9g %.9g, cuda %d %.9g "
                    "%.9g\n", V, N, ldl, p->temperature, p->top_k, p->top_p, p->min_p, i, u[i], tc[i], lc[i], pc[i],
                    tg[i], lg[i], pg[i]);
    }
    CHECK_MSG(bad == 0, "V %d T=%g k=%d p=%g min_p=%g: %d of %d rows differ", V, p->temperature, p->top_k, p->top_p,
              p->min_p, bad, N);
    gpu->free(gpu, dx);
    gpu->free(gpu, du);
    gpu->free(gpu, dt);
    gpu->free(gpu, dl);
    gpu->free(gpu, dp);
    free(x);
    free(u);
    free(tc);
    free(tg);
    free(lc);
    free(lg);
    free(pc);
    free(pg);
    free(probs);
    free(scratch);
}

int main(void) {
    char desc[2048];
    backend_cuda_describe(desc, sizeof desc);
    if (backend_cuda_device_count() == 0) {
        backend *none = backend_cuda_create(0);
        CHECK(none == NULL);
        CHECK(grpo_error_message()[0] != 0);
        backend_free(none);
        if (harness_failures) TEST_MAIN_END();
        TEST_SKIP("%s", desc);
    }
    printf("%s\n", desc);
    seed = sample_test_seed();
    cpu = backend_cpu_create();
    gpu = backend_cuda_create(0);
    CHECK_MSG(cpu && gpu, "%s", grpo_error_message());
    if (!cpu || !gpu) TEST_MAIN_END();
    CHECK_OK(BACKEND_REQUIRE(gpu, sample));

    uint64_t tag = 1;
    /* V = 50: every setting, 64 rows and a broadcast row */
    sample_params cases[256];
    int n_cases = sample_param_cases(50, cases, 256);
    for (int c = 0; c < n_cases; c++) {
        run_case(50, 64, 0, &cases[c], tag++);
        run_case(50, 32, 1, &cases[c], tag++);
    }
    /* the vocabularies of real models: typical and edge settings */
    const int Vs[] = {32000, 129280, 151936};
    for (int v = 0; v < 3; v++) {
        const int V = Vs[v];
        const sample_params big[] = {
            {0.0f, 0, 1.0f, 0.0f},      {1.0f, 0, 1.0f, 0.0f},    {0.7f, 50, 1.0f, 0.0f},
            {1.0f, 0, 0.9f, 0.0f},      {0.6f, 40, 0.95f, 0.0f},  {1.0f, 0, 1.0f, 0.05f},
            {1.0f, 0, 1e-6f, 0.0f},     {1.0f, V + 17, 1.0f, 0.0f}, {0.8f, 1000, 0.8f, 0.02f},
            {1.6f, 0, 0.5f, 0.0f},      {1.0f, V - 1, 0.99f, 0.0f},
        };
        const int n_big = (int)(sizeof big / sizeof big[0]);
        for (int c = 0; c < n_big; c++) run_case(V, c == 3 || c == 8 ? 256 : 40, 0, &big[c], tag++);
        run_case(V, 256, 1, &big[4], tag++);
    }
    backend_free(gpu);
    backend_free(cpu);
    TEST_MAIN_END();
}
