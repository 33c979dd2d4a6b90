/* The low-precision and grouped matrix products on CUDA (contracts in core/backend.h; CPU
 * reference core/cpu/cpu_lowp.c):
 *  - to_bf16: one thread per element, st_f32_to_bf16's bit arithmetic;
 *  - matmul_bf16: cuBLASLt, BF16 operands, FP32 output, CUBLAS_COMPUTE_32F;
 *  - matmul_fp8: cuBLASLt E4M3 with DeepSeek-V3's block scales (VEC128_32F for 1x128 /
 *    128x1 tiles, BLK128x128_32F for 128x128 blocks; cuBLASLt 12.9+ on compute capability
 *    9.x), operands brought to the "TN" layout and scales to cuBLASLt's layout as
 *    core/lowp_layout.h works out; otherwise (older device or library, tiles no mode
 *    takes, no algorithm for the shape) both operands decoded into float32 scratch and
 *    multiplied by cublasSgemm, said once in the log;
 *  - matmul_grouped: one cublasGemmGroupedBatchedEx (FP32, CUBLAS_COMPUTE_32F), one group
 *    per non-empty member.
 * Row-major to column-major as core/cuda/cuda_matmul.cu: C^T = op(B)^T op(A)^T.
 * Scratch (transposed codes, rewritten scales, decoded operands, pointer arrays) is grown
 * on first use of a larger shape and kept, so a training step of steady shapes allocates
 * nothing. Descriptors live on the stack (cublasLt*Init), so no call allocates host memory. */
#include "core/cuda/cuda_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

extern "C" {
#include "core/log.h"
#include "core/lowp_layout.h"
}

/* What cuda_lowp_create makes per backend. */
struct cuda_lowp {
    int blockscaled;            /* 1: device and cuBLASLt take the block-scaled FP8 modes */
    int warned;                 /* matmul_fp8's fallback has been logged */
    int warned_bf16;            /* matmul_bf16's */
    void *scratch[6];           /* device: see SCRATCH_* */
    size_t scratch_bytes[6];
    void *ptrs_dev;             /* device: 3 x group pointer arrays */
    size_t ptrs_dev_bytes;
    void *host;                 /* host: pointer arrays and the per-group parameter arrays */
    size_t host_bytes;
};

enum { SCRATCH_A_CODES, SCRATCH_B_CODES, SCRATCH_A_SCALES, SCRATCH_B_SCALES, SCRATCH_A_DECODED, SCRATCH_B_DECODED };
static const char *const scratch_names[6] = {"transposed A codes", "transposed B codes", "A block scales",
                                             "B block scales", "decoded A", "decoded B"};

/* The device scratch `slot` with at least `bytes` (zero-filled when made; grown, never shrunk). */
static void *scratch(backend *be, int slot, size_t bytes) {
    cuda_lowp *lp = cuda_impl_of(be)->lowp;
    if (bytes <= lp->scratch_bytes[slot]) return lp->scratch[slot];
    if (lp->scratch[slot]) CUDA_CHECK(cudaFree(lp->scratch[slot]));   /* waits for queued users */
    lp->scratch[slot] = NULL;
    lp->scratch_bytes[slot] = 0;
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        cudaGetLastError();
        grpo_fatal(__FILE__, __LINE__, "cuda low-precision products: no device memory for %s scratch: %zu bytes "
                   "(%zu of %zu bytes free): %s", scratch_names[slot], bytes, free_b, total_b,
                   cudaGetErrorString(err));
    }
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream_of(be)));
    lp->scratch[slot] = p;
    lp->scratch_bytes[slot] = bytes;
    return p;
}

/* ---- life cycle (called by cuda_backend.cu) ---- */

cuda_lowp *cuda_lowp_create(int device) {
    cuda_lowp *lp = (cuda_lowp *)calloc(1, sizeof *lp);
    if (!lp) return NULL;
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        cudaGetLastError();
        prop.major = 0;
    }
    /* The 1x128 / 128x128 FP32 scale modes: cuBLASLt 12.9 and later, Hopper (9.x) only
     * (Blackwell's block-scaled FP8 is MXFP8, another format). */
    lp->blockscaled = prop.major == 9 && cublasLtGetVersion() >= 120900;
    return lp;
}

void cuda_lowp_free(cuda_lowp *lp) {
    if (!lp) return;
    for (int i = 0; i < 6; i++)
        if (lp->scratch[i]) cudaFree(lp->scratch[i]);
    if (lp->ptrs_dev) cudaFree(lp->ptrs_dev);
    free(lp->host);
    cudaGetLastError();
    free(lp);
}

/* ---- to_bf16 ---- */

/* st_f32_to_bf16 (core/safetensors_dtype.c), line for line: round to nearest even, NaN
 * stays a quiet NaN. */
static __device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__global__ void to_bf16_kernel(uint16_t *out, int ldo, const float *x, int ldx, int cols, size_t total) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        out[r * ldo + c] = f32_to_bf16_bits(x[r * ldx + c]);
    }
}

void cuda_to_bf16(backend *be, uint16_t *out, int ldo, const float *x, int ldx, int rows, int cols) {
    GRPO_ASSERTF(rows >= 0 && cols >= 0 && ldx >= cols && ldo >= cols,
                 "to_bf16: bad shape rows=%d cols=%d ldx=%d ldo=%d", rows, cols, ldx, ldo);
    size_t total = (size_t)rows * (size_t)cols;
    if (!total) return;
    to_bf16_kernel<<<cuda_grid_for(total), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(out, ldo, x, ldx, cols, total);
    CUDA_CHECK_LAST();
}

/* ---- one cuBLASLt product ---- */

/* The largest power of two (<= 256) dividing the address: what cuBLASLt may assume. */
static uint32_t alignment_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t align = 256;
    while (align > 1 && (a % align)) align >>= 1;
    return align;
}

/* Column-major D[m, n] = alpha op(LA) op(LB) + beta D (D float32, ldd), LA / LB of type
 * ab_type; scale modes and pointers for FP8 (mode < 0: none). Returns
 * CUBLAS_STATUS_NOT_SUPPORTED when the heuristic has no algorithm, else cublasLtMatmul's
 * status. Descriptors are initialised on the stack. */
static cublasStatus_t lt_product(backend *be, cudaDataType_t ab_type, cublasOperation_t op_a, cublasOperation_t op_b,
                                 int m, int n, int k, float alpha, const void *LA, int lda, const void *LB, int ldb,
                                 float beta, float *D, int ldd, int a_mode, const float *a_scale, int b_mode,
                                 const float *b_scale) {
    cuda_impl *impl = cuda_impl_of(be);
    cublasLtMatmulDescOpaque_t desc_store;
    cublasLtMatrixLayoutOpaque_t la_store, lb_store, d_store;
    cublasLtMatmulPreferenceOpaque_t pref_store;
    cublasLtMatmulDesc_t desc = &desc_store;
    cublasLtMatrixLayout_t la = &la_store, lb = &lb_store, ld = &d_store;
    cublasLtMatmulPreference_t pref = &pref_store;
#define LT_TRY(call) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) return s_; } while (0)
    LT_TRY(cublasLtMatmulDescInit(desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
    LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
    if (a_mode >= 0) {
        int32_t am = a_mode, bm = b_mode;
        LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &am, sizeof am));
        LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &bm, sizeof bm));
        LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale, sizeof a_scale));
        LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale, sizeof b_scale));
    }
    /* Stored shapes: op N keeps [rows, cols] = [m, k] for LA and [k, n] for LB. */
    LT_TRY(cublasLtMatrixLayoutInit(la, ab_type, op_a == CUBLAS_OP_N ? m : k, op_a == CUBLAS_OP_N ? k : m, lda));
    LT_TRY(cublasLtMatrixLayoutInit(lb, ab_type, op_b == CUBLAS_OP_N ? k : n, op_b == CUBLAS_OP_N ? n : k, ldb));
    LT_TRY(cublasLtMatrixLayoutInit(ld, CUDA_R_32F, m, n, ldd));
    LT_TRY(cublasLtMatmulPreferenceInit(pref));
    size_t ws = impl->lt_workspace_bytes;
    uint32_t align_a = alignment_of(LA), align_b = alignment_of(LB), align_d = alignment_of(D);
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                sizeof align_a));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                sizeof align_b));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d,
                                                sizeof align_d));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d,
                                                sizeof align_d));
    cublasLtMatmulHeuristicResult_t result;
    memset(&result, 0, sizeof result);
    int found = 0;
    LT_TRY(cublasLtMatmulAlgoGetHeuristic(impl->cublaslt, desc, la, lb, ld, ld, pref, 1, &result, &found));
    if (found < 1) return CUBLAS_STATUS_NOT_SUPPORTED;
    return cublasLtMatmul(impl->cublaslt, desc, &alpha, LA, la, LB, lb, &beta, D, ld, D, ld, &result.algo,
                          impl->lt_workspace, ws, cuda_stream_of(be));
#undef LT_TRY
}

static void check_product(const char *op, int trans_a, int trans_b, int M, int N, int K, int lda, int ldb, int ldc) {
    GRPO_ASSERTF(M >= 0 && N >= 0 && K >= 0, "%s: negative size M=%d N=%d K=%d", op, M, N, K);
    int a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
    GRPO_ASSERTF(lda >= (a_cols > 1 ? a_cols : 1), "%s: lda=%d < %d (stored A columns)", op, lda, a_cols);
    GRPO_ASSERTF(ldb >= (b_cols > 1 ? b_cols : 1), "%s: ldb=%d < %d (stored B columns)", op, ldb, b_cols);
    GRPO_ASSERTF(ldc >= (N > 1 ? N : 1), "%s: ldc=%d < N=%d", op, ldc, N);
}

/* ---- matmul_bf16 ---- */

/* x [rows, cols] contiguous = the bf16 values of q (rows ldq apart). */
__global__ void bf16_decode_kernel(float *x, const uint16_t *q, int ldq, int cols, size_t total) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        x[i] = __uint_as_float((uint32_t)q[r * ldq + c] << 16);
    }
}

static void bf16_decode(backend *be, float *x, const uint16_t *q, int ldq, int rows, int cols) {
    size_t total = (size_t)rows * (size_t)cols;
    if (!total) return;
    bf16_decode_kernel<<<cuda_grid_for(total), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(x, q, ldq, cols, total);
    CUDA_CHECK_LAST();
}

void cuda_matmul_bf16(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const uint16_t *A,
                      int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc) {
    check_product("matmul_bf16", trans_a, trans_b, M, N, K, lda, ldb, ldc);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        cuda_scale_rows(be, C, M, N, ldc, beta);
        return;
    }
    cublasStatus_t s = lt_product(be, CUDA_R_16BF, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc,
                                  -1, NULL, -1, NULL);
    if (s == CUBLAS_STATUS_SUCCESS) return;
    if (s != CUBLAS_STATUS_NOT_SUPPORTED)
        grpo_fatal(__FILE__, __LINE__, "matmul_bf16 M=%d N=%d K=%d trans %d%d lda=%d ldb=%d ldc=%d: cuBLASLt %s: %s",
                   M, N, K, trans_a, trans_b, lda, ldb, ldc, cublasGetStatusName(s), cublasGetStatusString(s));
    /* No algorithm for these strides / alignments: decode to float32, then sgemm. */
    cuda_lowp *lp = cuda_impl_of(be)->lowp;
    if (!lp->warned_bf16) {
        lp->warned_bf16 = 1;
        log_info("matmul_bf16: cuBLASLt has no algorithm for M=%d N=%d K=%d lda=%d ldb=%d (alignment); decoding to "
                 "float32 and multiplying in FP32 where that happens; said once", M, N, K, lda, ldb);
    }
    int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K, b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    float *a = (float *)scratch(be, SCRATCH_A_DECODED, (size_t)a_rows * a_cols * sizeof(float));
    float *b = (float *)scratch(be, SCRATCH_B_DECODED, (size_t)b_rows * b_cols * sizeof(float));
    bf16_decode(be, a, A, lda, a_rows, a_cols);
    bf16_decode(be, b, B, ldb, b_rows, b_cols);
    cuda_matmul(be, trans_a, trans_b, M, N, K, alpha, a, a_cols, b, b_cols, beta, C, ldc);
}

/* ---- matmul_fp8 ---- */

static void dequantize_strided(backend *be, float *x, const uint8_t *q, int ldq, const float *scales, int rows,
                               int cols, int tile_rows, int tile_cols);

/* dst [outer, K] (rows K apart) = the transpose of src [K, outer] (rows ld apart): 32x32
 * tiles through shared memory, so both the reads and the writes are coalesced. */
#define TRANSPOSE_TILE 32
__global__ void transpose_codes_kernel(uint8_t *dst, const uint8_t *src, int ld, int K, int outer) {
    __shared__ uint8_t tile[TRANSPOSE_TILE][TRANSPOSE_TILE + 1];
    int o0 = blockIdx.x * TRANSPOSE_TILE, k0 = blockIdx.y * TRANSPOSE_TILE;
    for (int dy = threadIdx.y; dy < TRANSPOSE_TILE; dy += blockDim.y) {
        int k = k0 + dy, o = o0 + threadIdx.x;
        if (k < K && o < outer) tile[dy][threadIdx.x] = src[(size_t)k * ld + o];
    }
    __syncthreads();
    for (int dy = threadIdx.y; dy < TRANSPOSE_TILE; dy += blockDim.y) {
        int o = o0 + dy, k = k0 + threadIdx.x;
        if (o < outer && k < K) dst[(size_t)o * K + k] = tile[threadIdx.x][dy];
    }
}

static void transpose_codes(backend *be, uint8_t *dst, const uint8_t *src, int ld, int K, int outer) {
    dim3 block(TRANSPOSE_TILE, 8);
    dim3 grid((unsigned)lowp_ceil_div(outer, TRANSPOSE_TILE), (unsigned)lowp_ceil_div(K, TRANSPOSE_TILE));
    GRPO_ASSERTF(grid.y <= 65535u, "matmul_fp8: K=%d is more than one transpose launch covers", K);
    transpose_codes_kernel<<<grid, block, 0, cuda_stream_of(be)>>>(dst, src, ld, K, outer);
    CUDA_CHECK_LAST();
}

/* dst (cuBLASLt's scale layout of op) = the stored scales src, slot by slot
 * (lowp_scale_source); padding slots keep what they hold (zeros from allocation). */
__global__ void rewrite_scales_kernel(float *dst, const float *src, lowp_operand op, size_t total) {
    int cols = lowp_scale_cols(&op);
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(t / (size_t)cols), j = (int)(t % (size_t)cols);
        size_t d;
        size_t s = lowp_scale_source(&op, i, j, &d);
        dst[d] = src[s];
    }
}

/* The operand's codes K-major and its scales in cuBLASLt's layout, in scratch when they
 * have to move. src stored [outer, K] (k_major) or [K, outer], rows ld apart. */
static void prepare_operand(backend *be, const lowp_operand *op, const uint8_t *src, int ld, const float *scales,
                            int code_slot, int scale_slot, const uint8_t **codes_out, int *ld_out,
                            const float **scales_out) {
    if (op->k_major && (uintptr_t)src % 16 == 0 && ld % 16 == 0) {
        *codes_out = src;
        *ld_out = ld;
    } else if (op->k_major) {
        /* FP8 operands need 16-byte aligned rows: a plain copy into scratch (K % 16 == 0). */
        uint8_t *t = (uint8_t *)scratch(be, code_slot, (size_t)op->outer * (size_t)op->K);
        CUDA_CHECK(cudaMemcpy2DAsync(t, (size_t)op->K, src, (size_t)ld, (size_t)op->K, (size_t)op->outer,
                                     cudaMemcpyDeviceToDevice, cuda_stream_of(be)));
        *codes_out = t;
        *ld_out = op->K;
    } else {
        uint8_t *t = (uint8_t *)scratch(be, code_slot, (size_t)op->outer * (size_t)op->K);
        transpose_codes(be, t, src, ld, op->K, op->outer);
        *codes_out = t;
        *ld_out = op->K;
    }
    if (lowp_scales_in_place(op) && (uintptr_t)scales % 16 == 0) {
        *scales_out = scales;
        return;
    }
    float *s = (float *)scratch(be, scale_slot, lowp_scale_floats(op) * sizeof(float));
    size_t total = (size_t)lowp_scale_rows(op) * (size_t)lowp_scale_cols(op);
    rewrite_scales_kernel<<<cuda_grid_for(total), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(s, scales, *op, total);
    CUDA_CHECK_LAST();
    *scales_out = s;
}

static int lt_scale_mode(lowp_scale_mode m) {
    return m == LOWP_SCALE_VEC128 ? (int)CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
                                  : (int)CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
}

void cuda_matmul_fp8(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const uint8_t *A,
                     int lda, const float *a_scales, int a_tile_rows, int a_tile_cols, const uint8_t *B, int ldb,
                     const float *b_scales, int b_tile_rows, int b_tile_cols, float beta, float *C, int ldc) {
    check_product("matmul_fp8", trans_a, trans_b, M, N, K, lda, ldb, ldc);
    GRPO_ASSERTF(a_tile_rows >= 1 && a_tile_cols >= 1 && b_tile_rows >= 1 && b_tile_cols >= 1,
                 "matmul_fp8: tiles %dx%d and %dx%d must be at least 1x1", a_tile_rows, a_tile_cols, b_tile_rows,
                 b_tile_cols);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        cuda_scale_rows(be, C, M, N, ldc, beta);
        return;
    }
    cuda_lowp *lp = cuda_impl_of(be)->lowp;
    lowp_operand pa = lowp_operand_plan(!trans_a, M, K, a_tile_rows, a_tile_cols);
    lowp_operand pb = lowp_operand_plan(trans_b, N, K, b_tile_rows, b_tile_cols);
    const char *why = NULL;
    char reason[128];
    if (!lp->blockscaled) why = "this device or cuBLASLt has no 1x128 / 128x128 block-scaled FP8 (Hopper, 12.9+)";
    else if (!lowp_pair_supported(&pa, &pb)) why = "the tiles or K have no block-scaled cuBLASLt product";
    if (!why) {
        const uint8_t *a_codes, *b_codes;
        const float *a_s, *b_s;
        int a_ld, b_ld;
        prepare_operand(be, &pa, A, lda, a_scales, SCRATCH_A_CODES, SCRATCH_A_SCALES, &a_codes, &a_ld, &a_s);
        prepare_operand(be, &pb, B, ldb, b_scales, SCRATCH_B_CODES, SCRATCH_B_SCALES, &b_codes, &b_ld, &b_s);
        /* cuBLASLt's A = our B as column-major [K, N] taken op T; its B = our A as [K, M], op N. */
        cublasStatus_t s = lt_product(be, CUDA_R_8F_E4M3, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, alpha, b_codes, b_ld,
                                      a_codes, a_ld, beta, C, ldc, lt_scale_mode(pb.mode), b_s,
                                      lt_scale_mode(pa.mode), a_s);
        if (s == CUBLAS_STATUS_SUCCESS) return;
        if (s != CUBLAS_STATUS_NOT_SUPPORTED && s != CUBLAS_STATUS_INVALID_VALUE)
            grpo_fatal(__FILE__, __LINE__, "matmul_fp8 M=%d N=%d K=%d: cuBLASLt %s: %s", M, N, K,
                       cublasGetStatusName(s), cublasGetStatusString(s));
        snprintf(reason, sizeof reason, "cuBLASLt answered %s for the block-scaled product", cublasGetStatusName(s));
        why = reason;
    }
    if (!lp->warned) {
        lp->warned = 1;
        log_info("matmul_fp8: decoding to float32 and multiplying in FP32 (%s; first at M=%d N=%d K=%d, tiles "
                 "%dx%d and %dx%d); said once", why, M, N, K, a_tile_rows, a_tile_cols, b_tile_rows, b_tile_cols);
    }
    /* Fallback: the values the CPU reference multiplies, then an FP32 product. */
    int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K, b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    float *a = (float *)scratch(be, SCRATCH_A_DECODED, (size_t)a_rows * a_cols * sizeof(float));
    float *b = (float *)scratch(be, SCRATCH_B_DECODED, (size_t)b_rows * b_cols * sizeof(float));
    dequantize_strided(be, a, A, lda, a_scales, a_rows, a_cols, a_tile_rows, a_tile_cols);
    dequantize_strided(be, b, B, ldb, b_scales, b_rows, b_cols, b_tile_rows, b_tile_cols);
    cuda_matmul(be, trans_a, trans_b, M, N, K, alpha, a, a_cols, b, b_cols, beta, C, ldc);
}

/* x [rows, cols] contiguous = e4m3_value(q[r, c]) (rows ldq apart) * its tile's scale. */
__global__ void dequantize_strided_kernel(float *x, const uint8_t *q, int ldq, const float *scales, int cols,
                                          int tile_rows, int tile_cols, int across, size_t total) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int r = (int)(i / (size_t)cols), c = (int)(i % (size_t)cols);
        uint8_t b = q[(size_t)r * ldq + c];
        /* st_e4m3_to_f32 */
        uint32_t sign = (uint32_t)(b & 0x80u) << 24, e = (b >> 3) & 0xfu, m = b & 0x7u;
        float v;
        if (e == 0xf && m == 0x7) v = __uint_as_float(sign | 0x7fc00000u);
        else if (e == 0) v = (sign ? -1.0f : 1.0f) * ((float)m * (1.0f / 512.0f));
        else v = __uint_as_float(sign | ((e + 120u) << 23) | (m << 20));
        x[i] = v * scales[(size_t)(r / tile_rows) * across + c / tile_cols];
    }
}

static void dequantize_strided(backend *be, float *x, const uint8_t *q, int ldq, const float *scales, int rows,
                               int cols, int tile_rows, int tile_cols) {
    size_t total = (size_t)rows * (size_t)cols;
    if (!total) return;
    int across = lowp_ceil_div(cols, tile_cols);
    dequantize_strided_kernel<<<cuda_grid_for(total), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(
        x, q, ldq, scales, cols, tile_rows, tile_cols, across, total);
    CUDA_CHECK_LAST();
}

/* ---- matmul_grouped ---- */

void cuda_matmul_grouped(backend *be, int trans_a, int trans_b, int count, const int *M, int N, int K, float alpha,
                         const float *const *A, int lda, const float *const *B, int ldb, float beta,
                         float *const *C, int ldc) {
    GRPO_ASSERTF(count >= 0, "matmul_grouped: count=%d < 0", count);
    int groups = 0;
    for (int g = 0; g < count; g++) {
        GRPO_ASSERTF(M[g] >= 0, "matmul_grouped: group %d has M=%d < 0", g, M[g]);
        check_product("matmul_grouped", trans_a, trans_b, M[g], N, K, lda, ldb, ldc);
        groups += M[g] > 0;
    }
    if (groups == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        for (int g = 0; g < count; g++) cuda_scale_rows(be, C[g], M[g], N, ldc, beta);
        return;
    }
    cuda_lowp *lp = cuda_impl_of(be)->lowp;
    /* Host arrays: 3 pointer arrays, then per group: transa, transb, m, n, k, lda, ldb, ldc,
     * group_size (ints) and alpha, beta (floats). */
    size_t ptr_bytes = 3 * (size_t)groups * sizeof(void *);
    size_t host_need = ptr_bytes + (size_t)groups * (9 * sizeof(int) + 2 * sizeof(float));
    if (host_need > lp->host_bytes) {
        void *h = realloc(lp->host, host_need);
        GRPO_ASSERTF(h != NULL, "matmul_grouped: out of host memory for %d groups", groups);
        lp->host = h;
        lp->host_bytes = host_need;
    }
    if (ptr_bytes > lp->ptrs_dev_bytes) {
        if (lp->ptrs_dev) CUDA_CHECK(cudaFree(lp->ptrs_dev));
        lp->ptrs_dev = NULL;
        lp->ptrs_dev_bytes = 0;
        /* Room for twice as many groups, so a layer with a few more busy experts next
         * step does not allocate again. */
        CUDA_CHECK(cudaMalloc(&lp->ptrs_dev, 2 * ptr_bytes));
        lp->ptrs_dev_bytes = 2 * ptr_bytes;
    }
    const void **ha = (const void **)lp->host, **hb = ha + groups;
    void **hc = (void **)(hb + groups);
    int *ints = (int *)(hc + groups);
    cublasOperation_t *ta = (cublasOperation_t *)ints, *tb = ta + groups;
    int *m = (int *)(tb + groups), *n = m + groups, *k = n + groups, *la = k + groups, *lb = la + groups,
        *lc = lb + groups, *size = lc + groups;
    float *alphas = (float *)(size + groups), *betas = alphas + groups;
    static_assert(sizeof(cublasOperation_t) == sizeof(int), "cublasOperation_t is an int-sized enum");
    int i = 0;
    for (int g = 0; g < count; g++) {
        if (M[g] == 0) continue;
        /* C_g^T [N, M_g] = op(B_g)^T op(A_g)^T, column-major. */
        ha[i] = B[g];
        hb[i] = A[g];
        hc[i] = C[g];
        ta[i] = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
        tb[i] = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
        m[i] = N;
        n[i] = M[g];
        k[i] = K;
        la[i] = ldb;
        lb[i] = lda;
        lc[i] = ldc;
        size[i] = 1;
        alphas[i] = alpha;
        betas[i] = beta;
        i++;
    }
    cudaStream_t stream = cuda_stream_of(be);
    /* Pageable source: the copy has taken the bytes when it returns, so lp->host may be
     * rewritten by the next call; the device array is reused in stream order. */
    CUDA_CHECK(cudaMemcpyAsync(lp->ptrs_dev, lp->host, ptr_bytes, cudaMemcpyHostToDevice, stream));
    const void *const *da = (const void *const *)lp->ptrs_dev;
    const void *const *db = da + groups;
    void *const *dc = (void *const *)(db + groups);
    CUBLAS_CHECK(cublasGemmGroupedBatchedEx(cuda_impl_of(be)->cublas, ta, tb, m, n, k, alphas, da, CUDA_R_32F, la, db,
                                            CUDA_R_32F, lb, betas, dc, CUDA_R_32F, lc, groups, size,
                                            CUBLAS_COMPUTE_32F));
}
