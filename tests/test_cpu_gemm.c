/* The CPU backend's matmul on products large enough for its own AVX-512 GEMM
 * (core/cpu/cpu_gemm.c; OpenBLAS runs them on CPUs without AVX-512, and this test then
 * checks that path): every transpose combination, alpha and beta, row strides past the
 * row, sizes with tails in every blocking dimension, a panel of op(B) split in column
 * chunks, NaN in C under beta = 0, and (for cpu_gemm, which promises it) bitwise equal
 * results on 1, 2 and 3 threads. */
#include "core/backend.h"
#include "core/cpu/cpu_impl.h"
#include "tests/harness.h"
#include "tests/ops_check.h"

#include <math.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static backend *be;

static double mat_at(const float *A, int ld, int trans, int i, int p) {
    return trans ? A[(size_t)p * ld + i] : A[(size_t)i * ld + p];
}

static void set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* C = alpha op(A) op(B) + beta C against a double reference, with padded strides: the
 * padding of C must stay untouched. With beta == 0, C starts as NaN. Then the same
 * product on 1, 2 and 3 threads must give the same bits. */
static void gemm_case(ops_rng *r, int ta, int tb, int M, int N, int K, float alpha, float beta) {
    int lda = (ta ? M : K) + 5, ldb = (tb ? K : N) + 3, ldc = N + 7;
    int a_rows = ta ? K : M, b_rows = tb ? N : K;
    float *A = ops_random(r, (size_t)a_rows * lda, -1, 1);
    float *B = ops_random(r, (size_t)b_rows * ldb, -1, 1);
    float *C = ops_random(r, (size_t)M * ldc, -1, 1);
    float *C0 = ops_copy(C, (size_t)M * ldc);
    if (beta == 0.0f)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = NAN;
    float *Cnan = ops_copy(C, (size_t)M * ldc);
    set_threads(2);
    be->matmul(be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double maxerr = 0, maxref = 1e-30;
    int pad_ok = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double ref = beta == 0.0f ? 0.0 : (double)beta * C0[(size_t)i * ldc + j];
            double dot = 0;
            for (int p = 0; p < K; p++) dot += mat_at(A, lda, ta, i, p) * mat_at(B, ldb, tb, p, j);
            ref += (double)alpha * dot;
            double e = fabs(ref - (double)C[(size_t)i * ldc + j]);
            if (!(e <= maxerr)) maxerr = isnan(e) ? INFINITY : e;
            if (fabs(ref) > maxref) maxref = fabs(ref);
        }
        for (int j = N; j < ldc; j++) pad_ok &= C[(size_t)i * ldc + j] == Cnan[(size_t)i * ldc + j];
    }
    /* float32 sums of K products of numbers in [-1, 1]: error ~ sqrt(K) ulp of the sum */
    CHECK_MSG(maxerr / maxref < 2e-6 * sqrt((double)K),
              "matmul ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g: rel err %.3g", ta, tb, M, N, K, alpha, beta,
              maxerr / maxref);
    CHECK_MSG(pad_ok, "matmul ta=%d tb=%d M=%d N=%d K=%d wrote past N in a row of C", ta, tb, M, N, K);
    float *want = ops_copy(C, (size_t)M * ldc);
    /* OpenBLAS's sums may depend on the thread count; cpu_gemm's do not. */
    for (int threads = 1; threads <= 3 && cpu_gemm_wanted(M, N, K); threads += 2) {
        for (size_t i = 0; i < (size_t)M * ldc; i++) C[i] = Cnan[i];
        set_threads(threads);
        be->matmul(be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        CHECK_MSG(memcmp(C, want, (size_t)M * ldc * sizeof(float)) == 0,
                  "matmul ta=%d tb=%d M=%d N=%d K=%d on %d threads differs from 2 threads", ta, tb, M, N, K, threads);
    }
    set_threads(2);
    free(A), free(B), free(C), free(C0), free(Cnan), free(want);
}

int main(void) {
    be = backend_cpu_create();
    CHECK(be != NULL);
    if (!be) TEST_MAIN_END();
    ops_rng r = {4242};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            /* Tails everywhere: 12-row strips, 32-column strips, 256-deep blocks. */
            gemm_case(&r, ta, tb, 77, 45, 300, 1.0f, 0.0f);
            gemm_case(&r, ta, tb, 100, 70, 33, 0.7f, 0.3f);
            gemm_case(&r, ta, tb, 37, 160, 513, -1.5f, 1.0f);
            /* Fewer rows than one strip (a decode step of a few sequences). */
            gemm_case(&r, ta, tb, 9, 33, 17, 1.0f, 0.0f);
        }
    /* Exactly whole strips and blocks. */
    gemm_case(&r, 0, 1, 144, 64, 256, 1.0f, 0.0f);
    /* Many rows (several tasks per thread), the Linear layer's forward and backward. */
    gemm_case(&r, 0, 1, 600, 96, 80, 1.0f, 1.0f);
    gemm_case(&r, 1, 0, 96, 80, 600, 1.0f, 1.0f);
    /* K * N past the packed panel's 4M floats: op(B) goes in column chunks. */
    gemm_case(&r, 0, 0, 40, 1100, 4000, 1.0f, 0.5f);
    backend_free(be);
    TEST_MAIN_END();
}
