/* bench_cuda_matmul: TFLOP/s of the CUDA backend's low-precision products at DeepSeek-V3's
 * projection shapes, beside cuBLASLt's own best in the same run and FP32 sgemm.
 *
 *   bench_cuda_matmul [--reps N] [--device D]
 * For each shape (Linear y = x W^T: M tokens, N = out, K = in):
 *   bf16        be->matmul_bf16 on bf16 operands (GEMM alone)
 *   bf16+cvt    the same plus to_bf16 of the activation x (what model/linear.c runs)
 *   fp8         be->matmul_fp8 on E4M3 codes, x 1x128 tiles, W 128x128 (GEMM alone,
 *               incl. the scale rewrite cuda_lowp.cu does per call)
 *   fp8+q       the same plus quantize_fp8 of x
 *   lt bf16 / lt fp8   cuBLASLt called directly, same types and layouts, every algorithm
 *               the heuristic offers (up to 32) timed and the fastest kept
 *   fp32        be->matmul (cublasSgemm, no TF32)
 * and the FP8/BF16 ratio of ours and of cuBLASLt's best (target >= 1.5 at large shapes).
 * Timing: best of N runs (default 10) after one untimed warm-up, device synchronised
 * around each run; TFLOP/s = 2 M N K / seconds. Without CUDA (or a device) it prints why
 * and exits 0. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backend.h"
#include "core/quant.h"
#include "core/status.h"

#ifdef GRPO_HAVE_CUDA
#include <cublasLt.h>
#include <cuda_runtime.h>

typedef struct {
    const char *what;
    int M, N, K;
} shape;

/* DeepSeek-V3 (hidden 7168, MLA q_lora 1536, kv_lora 512, experts 2048, dense MLP 18432). */
static const shape shapes[] = {
    {"4096 x 7168 x 16384", 4096, 7168, 16384},
    {"4096 x 16384 x 7168", 4096, 16384, 7168},
    {"128 x 24576 x 1536 (q_b_proj, decode)", 128, 24576, 1536},
    {"4096 x 2048 x 7168 (expert up)", 4096, 2048, 7168},
    {"4096 x 7168 x 2048 (expert down)", 4096, 7168, 2048},
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); exit(1); } } while (0)
#define LT(call) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cublasGetStatusString(s_)); exit(1); } } while (0)

static backend *gpu;
static int reps = 10;

typedef enum { RUN_BF16, RUN_BF16_CVT, RUN_FP8, RUN_FP8_Q, RUN_FP32 } run_kind;

typedef struct {
    int M, N, K;
    float *x, *W, *C;               /* fp32 operands [M, K], [N, K], output [M, N] */
    uint16_t *xb, *Wb;              /* bf16 */
    uint8_t *xq, *Wq;               /* e4m3 */
    float *xs, *Ws;                 /* their scales: [M, ceil(K/128)], [ceil(N/128), ceil(K/128)] */
} operands;

static void *dev_alloc(size_t bytes) {
    void *p = gpu->alloc(gpu, bytes);
    if (!p) {
        fprintf(stderr, "bench_cuda_matmul: %s\n", grpo_error_message());
        exit(1);
    }
    return p;
}

/* Random fp32 operands on the device, then their bf16 and fp8 codes by the backend's own ops. */
static operands make_operands(int M, int N, int K) {
    operands o;
    memset(&o, 0, sizeof o);
    o.M = M, o.N = N, o.K = K;
    size_t nx = (size_t)M * K, nw = (size_t)N * K;
    float *h = malloc((nx > nw ? nx : nw) * sizeof(float));
    unsigned seed = 12345u;
    o.x = dev_alloc(nx * sizeof(float));
    o.W = dev_alloc(nw * sizeof(float));
    for (int which = 0; which < 2; which++) {
        size_t n = which ? nw : nx;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1664525u + 1013904223u;
            h[i] = ((float)((seed >> 8) & 0xFFFF) / 65536.0f - 0.5f) * (which ? 0.05f : 2.0f);
        }
        gpu->to_device(gpu, which ? (void *)o.W : (void *)o.x, h, n * sizeof(float));
    }
    free(h);
    o.C = dev_alloc((size_t)M * N * sizeof(float));
    o.xb = dev_alloc(nx * 2);
    o.Wb = dev_alloc(nw * 2);
    o.xq = dev_alloc(nx);
    o.Wq = dev_alloc(nw);
    o.xs = dev_alloc(quant_fp8_num_scales(M, K, 1, QUANT_TILE) * sizeof(float));
    o.Ws = dev_alloc(quant_fp8_num_scales(N, K, QUANT_TILE, QUANT_TILE) * sizeof(float));
    gpu->to_bf16(gpu, o.xb, K, o.x, K, M, K);
    gpu->to_bf16(gpu, o.Wb, K, o.W, K, N, K);
    gpu->quantize_fp8(gpu, o.xq, o.xs, o.x, K, M, K, 1, QUANT_TILE);
    gpu->quantize_fp8(gpu, o.Wq, o.Ws, o.W, K, N, K, QUANT_TILE, QUANT_TILE);
    gpu->synchronize(gpu);
    return o;
}

static void free_operands(operands *o) {
    void *all[] = {o->x, o->W, o->C, o->xb, o->Wb, o->xq, o->Wq, o->xs, o->Ws};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gpu->free(gpu, all[i]);
}

static void run_once(const operands *o, run_kind k) {
    int M = o->M, N = o->N, K = o->K;
    switch (k) {
    case RUN_BF16_CVT: gpu->to_bf16(gpu, o->xb, K, o->x, K, M, K); /* fall through */
    case RUN_BF16: gpu->matmul_bf16(gpu, 0, 1, M, N, K, 1.0f, o->xb, K, o->Wb, K, 0.0f, o->C, N); break;
    case RUN_FP8_Q: gpu->quantize_fp8(gpu, o->xq, o->xs, o->x, K, M, K, 1, QUANT_TILE); /* fall through */
    case RUN_FP8:
        gpu->matmul_fp8(gpu, 0, 1, M, N, K, 1.0f, o->xq, K, o->xs, 1, QUANT_TILE, o->Wq, K, o->Ws, QUANT_TILE,
                        QUANT_TILE, 0.0f, o->C, N);
        break;
    case RUN_FP32: gpu->matmul(gpu, 0, 1, M, N, K, 1.0f, o->x, K, o->W, K, 0.0f, o->C, N); break;
    }
}

/* Best seconds of `reps` runs after a warm-up. */
static double time_ours(const operands *o, run_kind k) {
    run_once(o, k);
    gpu->synchronize(gpu);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        run_once(o, k);
        gpu->synchronize(gpu);
        double t = now_seconds() - t0;
        if (t < best) best = t;
    }
    return best;
}

/* cuBLASLt's best over its heuristic's algorithms for D[N x M] (col-major) = W^T x with
 * W, x K-major (the TN layout), FP32 output; fp8 with VEC128 (x) / BLK128x128 (W) scales
 * (values: any positive numbers; timing only). Returns 0 when it has no algorithm. */
static double time_lt(cublasLtHandle_t lt, const operands *o, int fp8, void *ws, size_t ws_bytes) {
    int M = o->M, N = o->N, K = o->K;
    cudaDataType_t t = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulPreference_t pref;
    LT(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof op_t));
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof op_n));
    float *sa = NULL, *sb = NULL;
    if (fp8) {
        int kb = (K + 127) / 128, ldw = (kb + 3) / 4 * 4;
        size_t na = (size_t)((N + 127) / 128) * ldw, nb = (size_t)kb * M;
        sa = dev_alloc(na * sizeof(float));
        sb = dev_alloc(nb * sizeof(float));
        float *h = malloc((na > nb ? na : nb) * sizeof(float));
        for (size_t i = 0; i < (na > nb ? na : nb); i++) h[i] = 1.0f / 64;
        gpu->to_device(gpu, sa, h, na * sizeof(float));
        gpu->to_device(gpu, sb, h, nb * sizeof(float));
        free(h);
        int32_t ma = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F, mb = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
        LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ma, sizeof ma));
        LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mb, sizeof mb));
        LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa));
        LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb));
    }
    LT(cublasLtMatrixLayoutCreate(&la, t, K, N, K));
    LT(cublasLtMatrixLayoutCreate(&lb, t, K, M, K));
    LT(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, N, M, N));
    LT(cublasLtMatmulPreferenceCreate(&pref));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes));
    cublasLtMatmulHeuristicResult_t results[32];
    int found = 0;
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 32, results, &found);
    const void *A = fp8 ? (const void *)o->Wq : (const void *)o->Wb, *B = fp8 ? (const void *)o->xq : (const void *)o->xb;
    float alpha = 1.0f, beta = 0.0f;
    double best = 0;
    for (int i = 0; hs == CUBLAS_STATUS_SUCCESS && i < found; i++) {
        cublasStatus_t s = cublasLtMatmul(lt, desc, &alpha, A, la, B, lb, &beta, o->C, ld, o->C, ld, &results[i].algo,
                                          ws, ws_bytes, 0);
        CK(cudaDeviceSynchronize());
        if (s != CUBLAS_STATUS_SUCCESS) continue;
        for (int r = 0; r < reps; r++) {
            double t0 = now_seconds();
            LT(cublasLtMatmul(lt, desc, &alpha, A, la, B, lb, &beta, o->C, ld, o->C, ld, &results[i].algo, ws,
                              ws_bytes, 0));
            CK(cudaDeviceSynchronize());
            double tt = now_seconds() - t0;
            if (best == 0 || tt < best) best = tt;
        }
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
    if (sa) gpu->free(gpu, sa);
    if (sb) gpu->free(gpu, sb);
    return best;
}

static double tflops(const shape *s, double seconds) {
    return seconds > 0 ? 2.0 * s->M * (double)s->N * s->K / seconds / 1e12 : 0.0;
}

int main(int argc, char **argv) {
    int device = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cuda_matmul [--reps N] [--device D]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    char why[1024];
    backend_cuda_describe(why, sizeof why);
    if (backend_cuda_device_count() == 0) {
        printf("bench_cuda_matmul: skipped: %s\n", why);
        return 0;
    }
    gpu = backend_cuda_create(device);
    if (!gpu) {
        printf("bench_cuda_matmul: skipped: %s\n", grpo_error_message());
        return 0;
    }
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
    printf("bench_cuda_matmul, %s, %s, cuBLASLt %zu, best of %d\n", date, why, cublasLtGetVersion(), reps);
    cublasLtHandle_t lt;
    LT(cublasLtCreate(&lt));
    size_t ws_bytes = (size_t)32 << 20;
    void *ws = dev_alloc(ws_bytes);
    printf("\nTFLOP/s (y = x W^T, M x N x K; x 1x128 tiles, W 128x128 blocks for fp8)\n");
    printf("| shape | bf16 | bf16+cvt | fp8 | fp8+q | lt bf16 | lt fp8 | fp32 | fp8/bf16 ours | fp8/bf16 lt |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        operands o = make_operands(s->M, s->N, s->K);
        double bf16 = tflops(s, time_ours(&o, RUN_BF16)), bf16c = tflops(s, time_ours(&o, RUN_BF16_CVT));
        double fp8 = tflops(s, time_ours(&o, RUN_FP8)), fp8q = tflops(s, time_ours(&o, RUN_FP8_Q));
        double ltb = tflops(s, time_lt(lt, &o, 0, ws, ws_bytes)), ltf = tflops(s, time_lt(lt, &o, 1, ws, ws_bytes));
        double f32 = tflops(s, time_ours(&o, RUN_FP32));
        printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f |\n", s->what, bf16, bf16c, fp8,
               fp8q, ltb, ltf, f32, bf16 > 0 ? fp8 / bf16 : 0.0, ltb > 0 ? ltf / ltb : 0.0);
        fflush(stdout);
        free_operands(&o);
    }
    printf("\n(lt fp8 0.0: cuBLASLt offered no block-scaled algorithm; ours then runs its FP32 fallback, see the log)\n");
    gpu->free(gpu, ws);
    cublasLtDestroy(lt);
    backend_free(gpu);
    return 0;
}

#else

int main(void) {
    printf("bench_cuda_matmul: skipped: this build has no CUDA backend (configure with -DGRPO_CUDA=ON)\n");
    return 0;
}

#endif
