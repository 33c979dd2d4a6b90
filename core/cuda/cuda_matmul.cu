/* Matrix products on CUDA: one cublasSgemm, row-major. cuBLAS is column-major, and a
 * row-major [R, C] matrix with row stride ld is the column-major [C, R] matrix (its
 * transpose) with the same ld, so C = op(A) op(B) is computed as the column-major
 * C^T = op(B)^T op(A)^T: swap the operands and M with N, keep each transpose flag. */
#include "core/cuda/cuda_impl.h"

/* C[M,N] = alpha * op(A) op(B) + beta * C (contract in core/backend.h).
 * A: [M, K] (stored [K, M] when trans_a), B: [K, N] (stored [N, K] when trans_b),
 * each row `ld*` elements apart. beta == 0 ignores what C held (NaN included). */
void cuda_matmul(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    GRPO_ASSERTF(M >= 0 && N >= 0 && K >= 0, "matmul: negative size M=%d N=%d K=%d", M, N, K);
    /* The same stride checks as the CPU reference, so both backends reject the same calls
     * (cuBLAS would answer with a bare CUBLAS_STATUS_INVALID_VALUE). */
    int a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
    GRPO_ASSERTF(lda >= (a_cols > 1 ? a_cols : 1), "matmul: lda=%d < %d (stored A columns)", lda, a_cols);
    GRPO_ASSERTF(ldb >= (b_cols > 1 ? b_cols : 1), "matmul: ldb=%d < %d (stored B columns)", ldb, b_cols);
    GRPO_ASSERTF(ldc >= (N > 1 ? N : 1), "matmul: ldc=%d < N=%d", ldc, N);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        /* No product to add: C = beta * C, beta == 0 writing zeros (as on the CPU). */
        cuda_scale_rows(be, C, M, N, ldc, beta);
        return;
    }
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasSgemm(cuda_impl_of(be)->cublas, op_b, op_a, N, M, K, &alpha, B, ldb, A, lda, &beta,
                             C, ldc));
}
