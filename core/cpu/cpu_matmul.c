/* Matrix products on the CPU: cpu_gemm (cpu_gemm.c) on CPUs with AVX-512 for products
 * big enough to pack, else one call to OpenBLAS's cblas_sgemm, row-major. Both thread
 * the call themselves (OpenBLAS with the OpenMP flavour the build prefers, on our OpenMP
 * threads), so callers call it once per product, not from inside a parallel loop. */
#include "core/cpu/cpu_impl.h"

#include <cblas.h>

/* C[M,N] = alpha * op(A) op(B) + beta * C (contract in core/backend.h).
 * A: [M, K] (stored [K, M] when trans_a), B: [K, N] (stored [N, K] when trans_b),
 * each row `ld*` elements apart. beta == 0 ignores what C held (NaN included). */
void cpu_matmul(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    GRPO_ASSERTF(M >= 0 && N >= 0 && K >= 0, "matmul: negative size M=%d N=%d K=%d", M, N, K);
    /* Row strides must cover a stored row: BLAS rejects anything else with a bare
     * parameter number, so say which one here. */
    int a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
    GRPO_ASSERTF(lda >= (a_cols > 1 ? a_cols : 1), "matmul: lda=%d < %d (stored A columns)", lda, a_cols);
    GRPO_ASSERTF(ldb >= (b_cols > 1 ? b_cols : 1), "matmul: ldb=%d < %d (stored B columns)", ldb, b_cols);
    GRPO_ASSERTF(ldc >= (N > 1 ? N : 1), "matmul: ldc=%d < N=%d", ldc, N);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        /* No product to add: C = beta * C, with beta == 0 writing zeros. */
        for (int i = 0; i < M; i++) {
            float *c = C + (size_t)i * ldc;
            for (int j = 0; j < N; j++) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        }
        return;
    }
    if (cpu_gemm_wanted(M, N, K)) {
        cpu_gemm(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}
