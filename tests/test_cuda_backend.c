/* Every CUDA op beside the CPU reference (backend_cpu_create) on random inputs of odd
 * sizes, compared by relative error max|cuda - cpu| / max|cpu|. Tolerances: fp32 ops
 * 1e-5 (matmul sums K products in another order; expf differs by an ulp or two);
 * sum_squares is summed in double on both sides, 1e-9. Without a CUDA device (or a
 * build without CUDA) it checks that asking for one fails cleanly, then skips (77). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/rng.h"
#include "core/status.h"
#include "tests/harness.h"

#define FP32_RTOL 1e-5
#define SUM_RTOL 1e-9
#define REL_FLOOR 1e-6

static backend *cpu, *gpu;
static uint64_t next_stream = 1;

/* n uniform numbers in [lo, hi), a fresh Philox stream per call. Caller frees. */
static float *random_floats(size_t n, float lo, float hi) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    GRPO_ASSERT(h);
    uint64_t stream = next_stream++;
    for (size_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * rng_uniform(20240611, stream, i);
    return h;
}

/* The same host data on both backends. */
typedef struct { float *c, *g; size_t n; } twin;

static twin twin_upload(const float *h, size_t n) {
    twin t = {cpu->alloc(cpu, n * sizeof(float)), gpu->alloc(gpu, n * sizeof(float)), n};
    GRPO_ASSERTF(t.c && t.g, "%s", grpo_error_message());
    cpu->to_device(cpu, t.c, h, n * sizeof(float));
    gpu->to_device(gpu, t.g, h, n * sizeof(float));
    return t;
}

static twin twin_random(size_t n, float lo, float hi) {
    float *h = random_floats(n, lo, hi);
    twin t = twin_upload(h, n);
    free(h);
    return t;
}

static void twin_free(twin t) {
    cpu->free(cpu, t.c);
    gpu->free(gpu, t.g);
}

/* Relative error between the two copies (downloaded to the host). */
static double twin_rel_err(twin t) {
    float *a = malloc((t.n ? t.n : 1) * sizeof *a), *b = malloc((t.n ? t.n : 1) * sizeof *b);
    GRPO_ASSERT(a && b);
    gpu->to_host(gpu, a, t.g, t.n * sizeof(float));
    cpu->to_host(cpu, b, t.c, t.n * sizeof(float));
    double err = harness_max_rel_err(a, b, (long)t.n, REL_FLOOR);
    free(a);
    free(b);
    return err;
}

#define CHECK_TWIN(t, rtol, ...) do { double e_ = twin_rel_err(t); \
    CHECK_MSG(e_ <= (rtol), "rel err %.3g > %.1g: ", e_, (double)(rtol)); \
    if (e_ > (rtol)) fprintf(stderr, __VA_ARGS__), fputc('\n', stderr); } while (0)

static void test_memory(void) {
    const size_t n = 1001;
    float *h = random_floats(n, -1, 1), *back = malloc(n * sizeof *back);
    float *d = gpu->alloc(gpu, n * sizeof(float)), *d2 = gpu->alloc(gpu, n * sizeof(float));
    CHECK(d && d2 && back);
    if (!d || !d2 || !back) return;
    gpu->to_host(gpu, back, d, n * sizeof(float));
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= back[i] == 0.0f;
    CHECK_MSG(zero, "alloc is not zero-filled");
    gpu->to_device(gpu, d, h, n * sizeof(float));
    gpu->copy(gpu, d2, d, n * sizeof(float));
    gpu->zero(gpu, d, 10 * sizeof(float));
    gpu->synchronize(gpu);
    gpu->to_host(gpu, back, d2, n * sizeof(float));
    CHECK(memcmp(back, h, n * sizeof(float)) == 0);
    gpu->to_host(gpu, back, d, n * sizeof(float));
    CHECK(back[0] == 0.0f && back[9] == 0.0f && back[10] == h[10] && back[n - 1] == h[n - 1]);
    void *empty = gpu->alloc(gpu, 0);
    CHECK(empty != NULL);
    gpu->free(gpu, empty);
    gpu->free(gpu, NULL);
    gpu->free(gpu, d);
    gpu->free(gpu, d2);
    free(h);
    free(back);
}

/* One matmul on both backends, C padded to ldc with a sentinel that must survive. */
static void check_matmul(int ta, int tb, int M, int N, int K, int pad, float alpha, float beta) {
    int a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
    int lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
    twin A = twin_random((size_t)a_rows * lda, -1, 1);
    twin B = twin_random((size_t)b_rows * ldb, -1, 1);
    float *hc = random_floats((size_t)M * ldc, -1, 1);
    for (int i = 0; i < M; i++) {
        for (int j = N; j < ldc; j++) hc[(size_t)i * ldc + j] = 1234.5f;   /* padding sentinel */
        if (beta == 0.0f)
            for (int j = 0; j < N; j++) hc[(size_t)i * ldc + j] = NAN;   /* must be ignored */
    }
    twin C = twin_upload(hc, (size_t)M * ldc);
    cpu->matmul(cpu, ta, tb, M, N, K, alpha, A.c, lda, B.c, ldb, beta, C.c, ldc);
    gpu->matmul(gpu, ta, tb, M, N, K, alpha, A.g, lda, B.g, ldb, beta, C.g, ldc);
    CHECK_TWIN(C, FP32_RTOL, "matmul ta=%d tb=%d M=%d N=%d K=%d pad=%d alpha=%g beta=%g", ta, tb, M, N, K, pad,
               alpha, beta);
    size_t c_len = (size_t)M * ldc;
    float *back = malloc((c_len > 0 ? c_len : 1) * sizeof *back);
    gpu->to_host(gpu, back, C.g, (size_t)M * ldc * sizeof(float));
    int pad_ok = 1;
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) pad_ok &= back[(size_t)i * ldc + j] == 1234.5f;
    CHECK_MSG(pad_ok, "matmul wrote past N in a padded row (ta=%d tb=%d M=%d N=%d K=%d)", ta, tb, M, N, K);
    free(back);
    free(hc);
    twin_free(A);
    twin_free(B);
    twin_free(C);
}

static void test_matmul(void) {
    static const int sizes[][3] = {{1, 1, 1}, {37, 29, 53}, {64, 65, 1}, {3, 200, 17}, {129, 67, 255},
                                   {1, 513, 77}, {250, 1, 31}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                check_matmul(ta, tb, M, N, K, 0, 1.0f, 0.0f);
                check_matmul(ta, tb, M, N, K, 3, 0.75f, 0.5f);
            }
    /* No product: K = 0 or alpha = 0 scale C by beta (beta = 0 writes zeros). */
    check_matmul(0, 1, 17, 9, 0, 2, 1.0f, 0.5f);
    check_matmul(0, 1, 17, 9, 0, 2, 1.0f, 0.0f);
    check_matmul(1, 0, 5, 33, 12, 1, 0.0f, 2.0f);
    /* A Linear layer as backend.h spells it: y = x W^T. */
    check_matmul(0, 1, 31, 96, 160, 0, 1.0f, 0.0f);
    /* Accumulating into C (gradients): beta = 1. */
    check_matmul(1, 0, 96, 160, 31, 0, 1.0f, 1.0f);
}

static void test_elementwise(void) {
    /* The last size passes CUDA_MAX_GRID * CUDA_BLOCK (16.7M): exercises the grid-stride loop. */
    static const size_t sizes[] = {1, 7, 1000, 65537, (size_t)65536 * 256 + 3};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        twin a = twin_random(n, -2, 2), b = twin_random(n, -2, 2), out = twin_random(n, -2, 2);
        cpu->add(cpu, out.c, a.c, b.c, n);
        gpu->add(gpu, out.g, a.g, b.g, n);
        CHECK_TWIN(out, FP32_RTOL, "add n=%zu", n);
        cpu->axpy(cpu, out.c, -0.3f, a.c, n);
        gpu->axpy(gpu, out.g, -0.3f, a.g, n);
        CHECK_TWIN(out, FP32_RTOL, "axpy n=%zu", n);
        cpu->scale(cpu, out.c, 1.7f, n);
        gpu->scale(gpu, out.g, 1.7f, n);
        CHECK_TWIN(out, FP32_RTOL, "scale n=%zu", n);
        /* In place (out aliases a). */
        cpu->add(cpu, a.c, a.c, b.c, n);
        gpu->add(gpu, a.g, a.g, b.g, n);
        CHECK_TWIN(a, FP32_RTOL, "add in place n=%zu", n);

        double sc = cpu->sum_squares(cpu, out.c, n), sg = gpu->sum_squares(gpu, out.g, n);
        CHECK_MSG(fabs(sg - sc) <= SUM_RTOL * sc, "sum_squares n=%zu: cpu %.17g cuda %.17g", n, sc, sg);
        double sg2 = gpu->sum_squares(gpu, out.g, n);
        CHECK_MSG(memcmp(&sg, &sg2, sizeof sg) == 0, "sum_squares n=%zu not deterministic", n);
        twin_free(a);
        twin_free(b);
        twin_free(out);
    }
    CHECK(gpu->sum_squares(gpu, NULL, 0) == 0.0);

    static const int bias_sizes[][2] = {{1, 1}, {37, 129}, {1000, 3}, {5, 4099}};
    for (size_t s = 0; s < sizeof bias_sizes / sizeof bias_sizes[0]; s++) {
        int rows = bias_sizes[s][0], d = bias_sizes[s][1];
        twin out = twin_random((size_t)rows * d, -1, 1), bias = twin_random((size_t)d, -1, 1);
        cpu->add_bias(cpu, out.c, bias.c, rows, d);
        gpu->add_bias(gpu, out.g, bias.g, rows, d);
        CHECK_TWIN(out, FP32_RTOL, "add_bias rows=%d d=%d", rows, d);
        twin_free(out);
        twin_free(bias);
    }
}

static void test_swiglu(void) {
    static const size_t sizes[] = {1, 33, 100003};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        /* Gates out to +-30 reach both saturated ends of the sigmoid. */
        twin gate = twin_random(n, -30, 30), up = twin_random(n, -3, 3), dout = twin_random(n, -1, 1);
        twin out = twin_random(n, -1, 1), dgate = twin_random(n, -1, 1), dup = twin_random(n, -1, 1);
        cpu->swiglu_forward(cpu, out.c, gate.c, up.c, n);
        gpu->swiglu_forward(gpu, out.g, gate.g, up.g, n);
        CHECK_TWIN(out, FP32_RTOL, "swiglu_forward n=%zu", n);
        cpu->swiglu_backward(cpu, dgate.c, dup.c, dout.c, gate.c, up.c, n);
        gpu->swiglu_backward(gpu, dgate.g, dup.g, dout.g, gate.g, up.g, n);
        CHECK_TWIN(dgate, FP32_RTOL, "swiglu_backward dgate n=%zu", n);
        CHECK_TWIN(dup, FP32_RTOL, "swiglu_backward dup n=%zu", n);
        twin_free(gate);
        twin_free(up);
        twin_free(dout);
        twin_free(out);
        twin_free(dgate);
        twin_free(dup);
    }
}

int main(void) {
    char desc[2048];
    backend_cuda_describe(desc, sizeof desc);
    int count = backend_cuda_device_count();
    if (count == 0) {
        /* Asking for a device must fail with a message, not crash. */
        backend *none = backend_cuda_create(0);
        CHECK(none == NULL);
        CHECK(grpo_error_message()[0] != 0);
        CHECK_MSG(strstr(desc, "no CUDA device") || strstr(desc, "not compiled in"), "describe: %s", desc);
        backend_free(none);
        if (harness_failures) TEST_MAIN_END();
        TEST_SKIP("%s", desc);
    }
    printf("%s\n", desc);
    CHECK(strstr(desc, "cuda:0") != NULL);
    CHECK(backend_cuda_create(-1) == NULL);
    CHECK(backend_cuda_create(count) == NULL);
    CHECK(strstr(grpo_error_message(), "expected 0..") != NULL);

    cpu = backend_cpu_create();
    gpu = backend_cuda_create(0);
    CHECK_MSG(cpu && gpu, "%s", grpo_error_message());
    if (!cpu || !gpu) TEST_MAIN_END();
    CHECK_STR("cuda", gpu->name);
    CHECK_OK(BACKEND_REQUIRE(gpu, matmul));
    CHECK_OK(BACKEND_REQUIRE(gpu, swiglu_backward));

    test_memory();
    test_matmul();
    test_elementwise();
    test_swiglu();

    backend_free(gpu);
    backend_free(cpu);
    TEST_MAIN_END();
}
