/* The CUDA low-precision and grouped products (core/cuda/cuda_lowp.cu) beside the CPU
 * references (core/cpu/cpu_lowp.c) on the same coded operands: random inputs fresh each
 * run (seed printed; env GRPO_TEST_SEED repeats one), every output element checked.
 * Tolerances, per element, relative to S = |alpha| sum_k |a_k b_k| + |beta c| (the size of
 * what was summed; a cancelling sum may be far smaller than S):
 *  - to_bf16: exact (integer rounding on both sides);
 *  - fp32 (matmul_grouped, and matmul_fp8's decode-and-sgemm fallback): (K + 4) 2^-22:
 *    float32 sums in any order, each add off by at most one ulp (2^-23, twice round to
 *    nearest's half ulp, for adders that truncate);
 *  - bf16 (cuBLASLt, CUBLAS_COMPUTE_32F): the same (K + 4) 2^-22: BF16 products are exact
 *    in FP32 (8 + 8 significant bits), so only the FP32 accumulation differs from the CPU;
 *  - fp8 (cuBLASLt block-scaled): 2^-7 + (K + 4) 2^-22: Hopper's FP8 tensor cores keep
 *    about 14 bits while accumulating inside a 128-long K block (DeepSeek-V3 report sec.
 *    3.3.2), cuBLASLt promotes each block's sum to FP32 with its two scales; 128 adds of
 *    at most 2^-14 each bound a block's error by 2^-7 of its |products|, then FP32 over blocks.
 * Shapes: odd sizes, partial tiles (K = 300, 304, N = 200), 128-multiples, one row; every
 * transpose combination, with the tilings model/linear.c uses (forward x W^T: 1x128 and
 * 128x128; dgrad dy W: 1x128 and 128x128 not K-major; wgrad dy^T x: 128x1 and 128x1) and
 * tilings cuBLASLt takes no mode for (the fallback); and model/linear.c's forward, dgrad
 * and wgrad at bf16 / fp8 on the GPU (compact copies) vs the CPU. Without a CUDA device (or a build
 * without CUDA) it checks that asking for one fails cleanly, then skips (77). Run on a
 * GPU machine, also under compute-sanitizer (memcheck). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/quant.h"
#include "core/status.h"
#include "model/linear.h"
#include "model/params.h"
#include "tests/harness.h"
#include "tests/ops_check.h"

static backend *cpu, *gpu;
static ops_rng rng;

static float *random_matrix(size_t n) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        float u = ops_rng_uniform(&rng, -1.0f, 1.0f);
        x[i] = ldexpf(u == 0.0f ? 0.5f : u, ops_rng_int(&rng, 13) - 6);
    }
    return x;
}

static void *upload(const void *host, size_t bytes) {
    void *d = gpu->alloc(gpu, bytes ? bytes : 1);
    GRPO_ASSERTF(d, "%s", grpo_error_message());
    gpu->to_device(gpu, d, host, bytes);
    return d;
}

/* Compares got (GPU) with want (CPU) element by element: |got - want| <= rtol * S where S
 * = |alpha| sum_k |a b| + |beta c0| from the decoded operands (double [M, K], [K, N]). */
static int compare(const char *what, const float *got, const float *want, const double *a, const double *b,
                   const float *c0, int M, int N, int K, int ldc, float alpha, float beta, double rtol) {
    int bad = 0;
    double worst = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += fabs(a[(size_t)m * K + k] * b[(size_t)k * N + n]);
            s = fabs(alpha) * s + fabs(beta * c0[(size_t)m * ldc + n]) + 1e-30;
            double e = fabs((double)got[(size_t)m * ldc + n] - want[(size_t)m * ldc + n]) / s;
            if (!(e <= rtol) && bad++ < 5)
                fprintf(stderr, "%s: C[%d,%d] cuda %.9g cpu %.9g (error %.3g of S, allowed %.3g)\n", what, m, n,
                        got[(size_t)m * ldc + n], want[(size_t)m * ldc + n], e, rtol);
            if (e > worst || e != e) worst = e;
        }
    printf("  %-58s worst error / S %.2e (allowed %.2e)\n", what, worst, rtol);
    return bad;
}

static double *op_to_double(const float *x, int ld, int trans, int rows, int cols) {
    double *d = malloc((size_t)rows * cols * sizeof *d);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) d[(size_t)r * cols + c] = trans ? x[(size_t)c * ld + r] : x[(size_t)r * ld + c];
    return d;
}

static double fp32_rtol(int K) { return (K + 4) * ldexp(1.0, -22); }
static double fp8_rtol(int K) { return ldexp(1.0, -7) + fp32_rtol(K); }

/* ---- to_bf16 ---- */

static void test_to_bf16(void) {
    int rows = 301, cols = 257, ldx = 260, ldo = 259;
    float *x = random_matrix((size_t)rows * ldx);
    const uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x00000001u, 0x3f808000u, 0x3f818000u,
                                 0x7f7fffffu, 0x80000000u};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) memcpy(&x[i * 7], &specials[i], 4);
    size_t nb = (size_t)rows * ldo * sizeof(uint16_t);
    uint16_t *hc = calloc(1, nb), *hg = calloc(1, nb);
    float *dx = upload(x, (size_t)rows * ldx * sizeof(float));
    uint16_t *dout = gpu->alloc(gpu, nb);
    cpu->to_bf16(cpu, hc, ldo, x, ldx, rows, cols);
    gpu->to_bf16(gpu, dout, ldo, dx, ldx, rows, cols);
    gpu->to_host(gpu, hg, dout, nb);
    int bad = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) bad += hc[(size_t)r * ldo + c] != hg[(size_t)r * ldo + c];
    CHECK_MSG(bad == 0, "to_bf16: %d of %d elements differ from the CPU", bad, rows * cols);
    printf("  to_bf16 %dx%d: %s\n", rows, cols, bad ? "DIFFERS" : "bit-equal");
    gpu->free(gpu, dx), gpu->free(gpu, dout);
    free(x), free(hc), free(hg);
}

/* ---- matmul_bf16 ---- */

static void test_bf16(int trans_a, int trans_b, int M, int N, int K) {
    int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K, b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    int lda = a_cols + 8, ldb = b_cols, ldc = N + 4;   /* a padded row, a tight one */
    float *xa = random_matrix((size_t)a_rows * a_cols), *xb = random_matrix((size_t)b_rows * b_cols);
    uint16_t *qa = calloc((size_t)a_rows * lda, 2), *qb = calloc((size_t)b_rows * ldb, 2);
    cpu->to_bf16(cpu, qa, lda, xa, a_cols, a_rows, a_cols);
    cpu->to_bf16(cpu, qb, ldb, xb, b_cols, b_rows, b_cols);
    float *ra = malloc((size_t)a_rows * a_cols * sizeof(float)), *rb = malloc((size_t)b_rows * b_cols * sizeof(float));
    cpu->round_bf16(cpu, ra, a_cols, xa, a_cols, a_rows, a_cols);
    cpu->round_bf16(cpu, rb, b_cols, xb, b_cols, b_rows, b_cols);
    float *c0 = random_matrix((size_t)M * ldc), *want = ops_copy(c0, (size_t)M * ldc);
    float *got = malloc((size_t)M * ldc * sizeof(float));
    float alpha = 0.5f, beta = -1.0f;
    cpu->matmul_bf16(cpu, trans_a, trans_b, M, N, K, alpha, qa, lda, qb, ldb, beta, want, ldc);
    uint16_t *da = upload(qa, (size_t)a_rows * lda * 2), *db = upload(qb, (size_t)b_rows * ldb * 2);
    float *dc = upload(c0, (size_t)M * ldc * sizeof(float));
    gpu->matmul_bf16(gpu, trans_a, trans_b, M, N, K, alpha, da, lda, db, ldb, beta, dc, ldc);
    gpu->to_host(gpu, got, dc, (size_t)M * ldc * sizeof(float));
    double *a = op_to_double(ra, a_cols, trans_a, M, K), *b = op_to_double(rb, b_cols, trans_b, K, N);
    char what[96];
    snprintf(what, sizeof what, "matmul_bf16 trans %d%d %dx%dx%d", trans_a, trans_b, M, N, K);
    CHECK_INT(0, compare(what, got, want, a, b, c0, M, N, K, ldc, alpha, beta, fp32_rtol(K)));
    gpu->free(gpu, da), gpu->free(gpu, db), gpu->free(gpu, dc);
    free(xa), free(xb), free(qa), free(qb), free(ra), free(rb), free(c0), free(want), free(got), free(a), free(b);
}

/* ---- matmul_fp8 ---- */

typedef struct { int tr, tc; } tiles;

/* misalign: operands 1 byte and scales 1 float past 16-byte alignment (a weight slice inside
 * a parameter block; cuda_lowp.cu copies them into aligned scratch). */
static void test_fp8(int trans_a, int trans_b, int M, int N, int K, tiles ta, tiles tb, int misalign) {
    int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K, b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    int lda = a_cols, ldb = b_cols, ldc = N;
    float *xa = random_matrix((size_t)a_rows * a_cols), *xb = random_matrix((size_t)b_rows * b_cols);
    size_t nsa = quant_fp8_num_scales(a_rows, a_cols, ta.tr, ta.tc), nsb = quant_fp8_num_scales(b_rows, b_cols, tb.tr, tb.tc);
    uint8_t *qa = malloc((size_t)a_rows * a_cols), *qb = malloc((size_t)b_rows * b_cols);
    float *sa = malloc(nsa * sizeof(float)), *sb = malloc(nsb * sizeof(float));
    cpu->quantize_fp8(cpu, qa, sa, xa, a_cols, a_rows, a_cols, ta.tr, ta.tc);
    cpu->quantize_fp8(cpu, qb, sb, xb, b_cols, b_rows, b_cols, tb.tr, tb.tc);
    float *ra = malloc((size_t)a_rows * a_cols * sizeof(float)), *rb = malloc((size_t)b_rows * b_cols * sizeof(float));
    cpu->dequantize_fp8(cpu, ra, a_cols, qa, sa, a_rows, a_cols, ta.tr, ta.tc);
    cpu->dequantize_fp8(cpu, rb, b_cols, qb, sb, b_rows, b_cols, tb.tr, tb.tc);
    float *c0 = random_matrix((size_t)M * ldc), *want = ops_copy(c0, (size_t)M * ldc);
    float *got = malloc((size_t)M * ldc * sizeof(float));
    float alpha = 1.0f, beta = 0.5f;
    cpu->matmul_fp8(cpu, trans_a, trans_b, M, N, K, alpha, qa, lda, sa, ta.tr, ta.tc, qb, ldb, sb, tb.tr, tb.tc, beta,
                    want, ldc);
    size_t na = (size_t)a_rows * a_cols, nb = (size_t)b_rows * b_cols;
    uint8_t *base_a = gpu->alloc(gpu, na + 16), *base_b = gpu->alloc(gpu, nb + 16);
    float *base_sa = gpu->alloc(gpu, (nsa + 4) * sizeof(float)), *base_sb = gpu->alloc(gpu, (nsb + 4) * sizeof(float));
    GRPO_ASSERTF(base_a && base_b && base_sa && base_sb, "%s", grpo_error_message());
    uint8_t *dqa = base_a + misalign, *dqb = base_b + misalign;
    float *dsa = base_sa + misalign, *dsb = base_sb + misalign;
    gpu->to_device(gpu, dqa, qa, na);
    gpu->to_device(gpu, dqb, qb, nb);
    gpu->to_device(gpu, dsa, sa, nsa * sizeof(float));
    gpu->to_device(gpu, dsb, sb, nsb * sizeof(float));
    float *dc = upload(c0, (size_t)M * ldc * sizeof(float));
    /* twice: the second call finds its scratch made (the steady state of a training loop) */
    for (int rep = 0; rep < 2; rep++) {
        gpu->to_device(gpu, dc, c0, (size_t)M * ldc * sizeof(float));
        gpu->matmul_fp8(gpu, trans_a, trans_b, M, N, K, alpha, dqa, lda, dsa, ta.tr, ta.tc, dqb, ldb, dsb, tb.tr,
                        tb.tc, beta, dc, ldc);
    }
    gpu->to_host(gpu, got, dc, (size_t)M * ldc * sizeof(float));
    double *a = op_to_double(ra, a_cols, trans_a, M, K), *b = op_to_double(rb, b_cols, trans_b, K, N);
    char what[96];
    snprintf(what, sizeof what, "matmul_fp8 trans %d%d %dx%dx%d tiles %dx%d, %dx%d%s", trans_a, trans_b, M, N, K,
             ta.tr, ta.tc, tb.tr, tb.tc, misalign ? " misaligned" : "");
    CHECK_INT(0, compare(what, got, want, a, b, c0, M, N, K, ldc, alpha, beta, fp8_rtol(K)));
    gpu->free(gpu, base_a), gpu->free(gpu, base_b), gpu->free(gpu, base_sa), gpu->free(gpu, base_sb);
    gpu->free(gpu, dc);
    free(xa), free(xb), free(qa), free(qb), free(sa), free(sb), free(ra), free(rb), free(c0), free(want), free(got);
    free(a), free(b);
}

/* ---- matmul_grouped ---- */

static void test_grouped(int trans_a, int trans_b) {
    enum { G = 6 };
    const int Ms[G] = {64, 0, 129, 1, 0, 300};
    int N = 96, K = 160;
    int lda = (trans_a ? 300 : K) + 1, ldb = (trans_b ? K : N) + 2, ldc = N + 3;
    float *hA[G], *hB[G], *hC[G], *want[G];
    float *dA[G], *dB[G], *dC[G];
    for (int g = 0; g < G; g++) {
        int a_rows = trans_a ? K : Ms[g], b_rows = trans_b ? N : K;
        size_t na = (size_t)a_rows * lda, nb = (size_t)b_rows * ldb, nc = (size_t)Ms[g] * ldc;
        hA[g] = random_matrix(na), hB[g] = random_matrix(nb), hC[g] = random_matrix(nc);
        want[g] = ops_copy(hC[g], nc);
        dA[g] = upload(hA[g], na * sizeof(float)), dB[g] = upload(hB[g], nb * sizeof(float));
        dC[g] = upload(hC[g], nc * sizeof(float));
    }
    float alpha = 1.0f, beta = 0.0f;
    cpu->matmul_grouped(cpu, trans_a, trans_b, G, Ms, N, K, alpha, (const float *const *)hA, lda,
                        (const float *const *)hB, ldb, beta, want, ldc);
    gpu->matmul_grouped(gpu, trans_a, trans_b, G, Ms, N, K, alpha, (const float *const *)dA, lda,
                        (const float *const *)dB, ldb, beta, dC, ldc);
    for (int g = 0; g < G; g++) {
        if (Ms[g] > 0) {
            float *got = malloc((size_t)Ms[g] * ldc * sizeof(float));
            gpu->to_host(gpu, got, dC[g], (size_t)Ms[g] * ldc * sizeof(float));
            double *a = op_to_double(hA[g], lda, trans_a, Ms[g], K), *b = op_to_double(hB[g], ldb, trans_b, K, N);
            char what[96];
            snprintf(what, sizeof what, "matmul_grouped trans %d%d group %d (M %d) N %d K %d", trans_a, trans_b, g,
                     Ms[g], N, K);
            CHECK_INT(0, compare(what, got, want[g], a, b, hC[g], Ms[g], N, K, ldc, alpha, beta, fp32_rtol(K)));
            free(got), free(a), free(b);
        }
        gpu->free(gpu, dA[g]), gpu->free(gpu, dB[g]), gpu->free(gpu, dC[g]);
        free(hA[g]), free(hB[g]), free(hC[g]), free(want[g]);
    }
}

/* ---- model/linear.c on the GPU: the compact weight copies and coded activations ---- */

/* got vs want (host, n = rows x cols) with |got - want| <= rtol * S[i] * 1.01 (S from the
 * unrounded operands: rounding moves it by far less than 1%). */
static int compare_s(const char *what, const float *got, const float *want, const double *S, size_t n, double rtol) {
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (S[i] * 1.01 + 1e-30);
        if (!(e <= rtol) && bad++ < 5)
            fprintf(stderr, "%s[%zu]: cuda %.9g cpu %.9g (error %.3g of S, allowed %.3g)\n", what, i, got[i], want[i], e,
                    rtol);
        if (e > worst || e != e) worst = e;
    }
    printf("  %-58s worst error / S %.2e (allowed %.2e)\n", what, worst, rtol);
    return bad;
}

static void test_linear(quant_precision p) {
    enum { T = 77, IN = 384, OUT = 256 };
    backend *bes[2] = {cpu, gpu};
    param_set ps[2];
    const int64_t shape[2] = {OUT, IN};
    float *x = random_matrix((size_t)T * IN), *dy = random_matrix((size_t)T * OUT);
    float *out[2][3];   /* y, dx, dW on the host, per backend */
    for (int b = 0; b < 2; b++) {
        backend *be = bes[b];
        param_set_init(&ps[b], be);
        param_set_add(&ps[b], "proj.weight", 2, shape, 0);
        CHECK_OK(param_set_alloc(&ps[b]));
        param_set_init_normal(&ps[b], 7, 0.05f);   /* the same numbers on both backends */
        CHECK_OK(linear_set_precision(ps[b].compute, p));
        float *dx_ = be->alloc(be, (size_t)T * IN * 4), *dy_ = be->alloc(be, (size_t)T * OUT * 4);
        float *y = be->alloc(be, (size_t)T * OUT * 4), *dxo = be->alloc(be, (size_t)T * IN * 4);
        float *dW = be->alloc(be, (size_t)OUT * IN * 4);
        be->to_device(be, dx_, x, (size_t)T * IN * 4);
        be->to_device(be, dy_, dy, (size_t)T * OUT * 4);
        const float *W = param_ptr(&ps[b], 0);
        for (int rep = 0; rep < 2; rep++) {   /* the second finds its copies made */
            be->zero(be, dW, (size_t)OUT * IN * 4);
            linear_forward(ps[b].compute, be, y, OUT, dx_, IN, W, T, IN, OUT, 0.0f);
            linear_backward(ps[b].compute, be, dxo, 0.0f, dW, dy_, dx_, W, T, IN, OUT);
        }
        out[b][0] = malloc((size_t)T * OUT * 4);
        out[b][1] = malloc((size_t)T * IN * 4);
        out[b][2] = malloc((size_t)OUT * IN * 4);
        be->to_host(be, out[b][0], y, (size_t)T * OUT * 4);
        be->to_host(be, out[b][1], dxo, (size_t)T * IN * 4);
        be->to_host(be, out[b][2], dW, (size_t)OUT * IN * 4);
        float *d[] = {dx_, dy_, y, dxo, dW};
        for (int i = 0; i < 5; i++) be->free(be, d[i]);
    }
    float *w = malloc((size_t)OUT * IN * 4);
    cpu->to_host(cpu, w, param_ptr(&ps[0], 0), (size_t)OUT * IN * 4);
    double *S = malloc((size_t)OUT * IN * sizeof *S > (size_t)T * IN * sizeof *S ? (size_t)OUT * IN * sizeof *S
                                                                                 : (size_t)T * IN * sizeof *S);
    double rtol = p == QUANT_FP8 ? fp8_rtol(T > IN ? T : IN) : fp32_rtol(T > IN ? T : IN);
    char what[64];
    /* y = x W^T */
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OUT; o++) {
            double s = 0;
            for (int i = 0; i < IN; i++) s += fabs((double)x[(size_t)t * IN + i] * w[(size_t)o * IN + i]);
            S[(size_t)t * OUT + o] = s;
        }
    snprintf(what, sizeof what, "linear %s forward y = x W^T", quant_precision_name(p));
    CHECK_INT(0, compare_s(what, out[1][0], out[0][0], S, (size_t)T * OUT, rtol));
    /* dx = dy W */
    for (int t = 0; t < T; t++)
        for (int i = 0; i < IN; i++) {
            double s = 0;
            for (int o = 0; o < OUT; o++) s += fabs((double)dy[(size_t)t * OUT + o] * w[(size_t)o * IN + i]);
            S[(size_t)t * IN + i] = s;
        }
    snprintf(what, sizeof what, "linear %s dgrad dx = dy W", quant_precision_name(p));
    CHECK_INT(0, compare_s(what, out[1][1], out[0][1], S, (size_t)T * IN, rtol));
    /* dW = dy^T x (accumulated twice from zero: the bound doubles) */
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double s = 0;
            for (int t = 0; t < T; t++) s += fabs((double)dy[(size_t)t * OUT + o] * x[(size_t)t * IN + i]);
            S[(size_t)o * IN + i] = 2 * s;
        }
    snprintf(what, sizeof what, "linear %s wgrad dW = dy^T x", quant_precision_name(p));
    CHECK_INT(0, compare_s(what, out[1][2], out[0][2], S, (size_t)OUT * IN, rtol));
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < 3; i++) free(out[b][i]);
        param_set_deinit(&ps[b]);
    }
    free(x), free(dy), free(w), free(S);
}

int main(void) {
    const char *env = getenv("GRPO_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("seed %llu (GRPO_TEST_SEED=%llu repeats this run)\n", (unsigned long long)seed, (unsigned long long)seed);
    rng.state = seed;
    if (backend_cuda_device_count() == 0) {
        backend *none = backend_cuda_create(0);
        CHECK(none == NULL);
        CHECK(strlen(grpo_error_message()) > 0);
        if (none) backend_free(none);
        if (harness_failures) TEST_MAIN_END();
        TEST_SKIP("no CUDA device (%s)", grpo_error_message());
    }
    cpu = backend_cpu_create();
    gpu = backend_cuda_create(0);
    if (!gpu) {
        fprintf(stderr, "backend_cuda_create(0) failed with a device present: %s\n", grpo_error_message());
        return 1;
    }
    CHECK(gpu->to_bf16 && gpu->matmul_bf16 && gpu->matmul_fp8 && gpu->matmul_grouped);
    test_to_bf16();
    static const int shapes[][3] = {{37, 29, 131}, {128, 256, 512}, {1, 129, 640}, {200, 300, 136}};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                test_bf16(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2]);
            test_grouped(ta, tb);
        }
    const tiles act = {1, 128}, wgt = {128, 128}, down = {128, 1}, odd = {3, 5};
    /* forward (x W^T), dgrad (dy W), wgrad (dy^T x) as linear.c tiles them; K = 300 has no
     * 16-multiple rows (fallback), 304 a partial K block, 1024 / 512 whole blocks */
    const int fp8_shapes[][3] = {{45, 200, 304}, {256, 384, 1024}, {1, 129, 640}, {130, 200, 300}, {64, 512, 512}};
    for (size_t s = 0; s < sizeof fp8_shapes / sizeof fp8_shapes[0]; s++) {
        int M = fp8_shapes[s][0], N = fp8_shapes[s][1], K = fp8_shapes[s][2];
        test_fp8(0, 1, M, N, K, act, wgt, 0);
        test_fp8(0, 0, M, N, K, act, wgt, 0);
        test_fp8(1, 0, M, N, K, down, down, 0);
        test_fp8(1, 1, M, N, K, down, wgt, 0);
    }
    test_fp8(0, 1, 256, 384, 1024, act, wgt, 1);
    test_fp8(1, 0, 256, 384, 1024, down, down, 1);
    test_fp8(0, 1, 17, 23, 41, odd, odd, 0);       /* no cuBLASLt mode: fallback */
    test_fp8(0, 1, 256, 256, 256, wgt, wgt, 0);    /* 128x128 with 128x128: fallback */
    test_linear(QUANT_BF16);
    test_linear(QUANT_FP8);
    backend_free(gpu);
    backend_free(cpu);
    TEST_MAIN_END();
}
