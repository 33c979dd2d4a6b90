/* CPU references of the low-precision and grouped products (contracts in core/backend.h):
 * both operands decoded exactly to float32 with core/quant.h's codecs, then the float32
 * product cpu_matmul runs. A decoded FP8 operand holds the very values round_fp8 writes
 * (e4m3_value(code) * scale), so matmul_fp8 of quantize_fp8's codes equals matmul of
 * round_fp8's copies bit for bit: the emulation and the compact path agree. */
#include "core/cpu/cpu_impl.h"

#include <stdlib.h>

#include "core/quant.h"

/* The decode buffer (impl->lowp_decode, grown on demand and kept) for `floats` floats;
 * call with impl->lowp_lock held. */
static float *decode_buffer(cpu_impl *impl, size_t floats) {
    if (floats > impl->lowp_decode_floats) {
        free(impl->lowp_decode);
        impl->lowp_decode = NULL;
        void *p = NULL;
        GRPO_ASSERTF(posix_memalign(&p, 64, (floats ? floats : 1) * sizeof(float)) == 0,
                     "cpu backend: out of memory for %zu floats of low-precision decode buffer", floats);
        impl->lowp_decode = p;
        impl->lowp_decode_floats = floats;
    }
    return impl->lowp_decode;
}

static void check_product(const char *op, int trans_a, int trans_b, int M, int N, int K, int lda, int ldb, int ldc) {
    GRPO_ASSERTF(M >= 0 && N >= 0 && K >= 0, "%s: negative size M=%d N=%d K=%d", op, M, N, K);
    int a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
    GRPO_ASSERTF(lda >= (a_cols > 1 ? a_cols : 1), "%s: lda=%d < %d (stored A columns)", op, lda, a_cols);
    GRPO_ASSERTF(ldb >= (b_cols > 1 ? b_cols : 1), "%s: ldb=%d < %d (stored B columns)", op, ldb, b_cols);
    GRPO_ASSERTF(ldc >= (N > 1 ? N : 1), "%s: ldc=%d < N=%d", op, ldc, N);
}

void cpu_to_bf16(backend *be, uint16_t *out, int ldo, const float *x, int ldx, int rows, int cols) {
    (void)be;
    GRPO_ASSERTF(rows >= 0 && cols >= 0 && ldx >= cols && ldo >= cols,
                 "to_bf16: bad shape rows=%d cols=%d ldx=%d ldo=%d", rows, cols, ldx, ldo);
    CPU_OMP(parallel for schedule(static) if ((size_t)rows * (size_t)cols >= CPU_PARALLEL_MIN))
    for (int r = 0; r < rows; r++) {
        const float *src = x + (size_t)r * ldx;
        uint16_t *dst = out + (size_t)r * ldo;
        for (int c = 0; c < cols; c++) dst[c] = st_f32_to_bf16(src[c]);
    }
}

/* dst [rows, cols] contiguous = the bf16 matrix src (rows ld apart) as float32. */
static void decode_bf16(float *dst, const uint16_t *src, int ld, int rows, int cols) {
    CPU_OMP(parallel for schedule(static) if ((size_t)rows * (size_t)cols >= CPU_PARALLEL_MIN))
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)r * cols + c] = st_bf16_to_f32(src[(size_t)r * ld + c]);
}

void cpu_matmul_bf16(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const uint16_t *A,
                     int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc) {
    check_product("matmul_bf16", trans_a, trans_b, M, N, K, lda, ldb, ldc);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        cpu_matmul(be, trans_a, trans_b, M, N, 0, alpha, NULL, trans_a ? M : 1, NULL, trans_b ? 1 : N, beta, C, ldc);
        return;
    }
    cpu_impl *impl = be->impl;
    pthread_mutex_lock(&impl->lowp_lock);
    /* Stored shapes: A [M, K] or [K, M]; B [K, N] or [N, K]; decoded contiguous. */
    int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
    int b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    size_t a_n = (size_t)a_rows * a_cols, b_n = (size_t)b_rows * b_cols;
    float *a = decode_buffer(impl, a_n + b_n), *b = a + a_n;
    decode_bf16(a, A, lda, a_rows, a_cols);
    decode_bf16(b, B, ldb, b_rows, b_cols);
    cpu_matmul(be, trans_a, trans_b, M, N, K, alpha, a, a_cols, b, b_cols, beta, C, ldc);
    pthread_mutex_unlock(&impl->lowp_lock);
}

/* dst [rows, cols] contiguous = e4m3_value(q[r, c]) * its tile's scale (q rows ld apart;
 * scales [ceil(rows/tr), ceil(cols/tc)]): quant_fp8_dequantize with a row stride. */
static void decode_fp8(float *dst, const uint8_t *q, int ld, const float *scales, int rows, int cols, int tr,
                       int tc) {
    int across = (cols + tc - 1) / tc;
    CPU_OMP(parallel for schedule(static) if ((size_t)rows * (size_t)cols >= CPU_PARALLEL_MIN))
    for (int r = 0; r < rows; r++) {
        const float *s = scales + (size_t)(r / tr) * across;
        for (int c = 0; c < cols; c++) dst[(size_t)r * cols + c] = st_e4m3_to_f32(q[(size_t)r * ld + c]) * s[c / tc];
    }
}

void cpu_matmul_fp8(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const uint8_t *A, int lda,
                    const float *a_scales, int a_tile_rows, int a_tile_cols, const uint8_t *B, int ldb,
                    const float *b_scales, int b_tile_rows, int b_tile_cols, float beta, float *C, int ldc) {
    check_product("matmul_fp8", trans_a, trans_b, M, N, K, lda, ldb, ldc);
    GRPO_ASSERTF(a_tile_rows >= 1 && a_tile_cols >= 1 && b_tile_rows >= 1 && b_tile_cols >= 1,
                 "matmul_fp8: tiles %dx%d and %dx%d must be at least 1x1", a_tile_rows, a_tile_cols, b_tile_rows,
                 b_tile_cols);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        cpu_matmul(be, trans_a, trans_b, M, N, 0, alpha, NULL, trans_a ? M : 1, NULL, trans_b ? 1 : N, beta, C, ldc);
        return;
    }
    cpu_impl *impl = be->impl;
    pthread_mutex_lock(&impl->lowp_lock);
    int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
    int b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    size_t a_n = (size_t)a_rows * a_cols, b_n = (size_t)b_rows * b_cols;
    float *a = decode_buffer(impl, a_n + b_n), *b = a + a_n;
    decode_fp8(a, A, lda, a_scales, a_rows, a_cols, a_tile_rows, a_tile_cols);
    decode_fp8(b, B, ldb, b_scales, b_rows, b_cols, b_tile_rows, b_tile_cols);
    cpu_matmul(be, trans_a, trans_b, M, N, K, alpha, a, a_cols, b, b_cols, beta, C, ldc);
    pthread_mutex_unlock(&impl->lowp_lock);
}

void cpu_matmul_grouped(backend *be, int trans_a, int trans_b, int count, const int *M, int N, int K, float alpha,
                        const float *const *A, int lda, const float *const *B, int ldb, float beta, float *const *C,
                        int ldc) {
    GRPO_ASSERTF(count >= 0, "matmul_grouped: count=%d < 0", count);
    for (int g = 0; g < count; g++) {
        GRPO_ASSERTF(M[g] >= 0, "matmul_grouped: group %d has M=%d < 0", g, M[g]);
        if (M[g] == 0) continue;
        cpu_matmul(be, trans_a, trans_b, M[g], N, K, alpha, A[g], lda, B[g], ldb, beta, C[g], ldc);
    }
}
