/* RMSNorm forward and backward on the CPU (Zhang & Sennrich 2019; the Llama/Qwen2/
 * DeepSeek norm): out = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps), in float32
 * like the reference implementation (HF computes the norm in float32). */
#include "core/cpu/cpu_impl.h"

#include <math.h>

/* out: [N, D], rstd: [N] (saved for backward), x: [N, D], w: [D]. */
void cpu_rmsnorm_forward(backend *be, float *out, float *rstd, const float *x, const float *w, int N, int D,
                         float eps) {
    (void)be;
    CPU_OMP(parallel for schedule(static) if ((size_t)N * D >= CPU_PARALLEL_MIN))
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * D;
        float *o = out + (size_t)n * D;
        float ss = cpu_vec_dot(xr, xr, D);
        float r = 1.0f / sqrtf(ss / (float)D + eps);
        rstd[n] = r;
        cpu_vec_scale_mul(o, xr, r, w, D);
    }
}

#define RMSNORM_COLUMN_BLOCK 64

/* With y = x * r * w, r = (mean(x^2) + eps)^-1/2 and g = dout:
 *   dx_i = r * g_i w_i - x_i * r^3 / D * sum_j g_j w_j x_j      (written)
 *   dw_i += sum over rows of g_i * x_i * r                       (accumulated)
 * dx is split over rows; dw over column blocks so each thread owns its slice. */
void cpu_rmsnorm_backward(backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rstd, int N, int D) {
    (void)be;
    const int big = (size_t)N * D >= CPU_PARALLEL_MIN;
    (void)big;   /* read only by the OpenMP clauses */
    CPU_OMP(parallel for schedule(static) if (big))
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * D, *g = dout + (size_t)n * D;
        float *d = dx + (size_t)n * D;
        float r = rstd[n];
        float dot = cpu_vec_dot3(g, w, xr, D);
        float c = r * r * r * dot / (float)D;
        cpu_vec_rmsnorm_dx(d, g, w, xr, r, c, D);
    }
    int nblocks = (D + RMSNORM_COLUMN_BLOCK - 1) / RMSNORM_COLUMN_BLOCK;
    CPU_OMP(parallel for schedule(static) if (big))
    for (int blk = 0; blk < nblocks; blk++) {
        int j0 = blk * RMSNORM_COLUMN_BLOCK;
        int j1 = j0 + RMSNORM_COLUMN_BLOCK < D ? j0 + RMSNORM_COLUMN_BLOCK : D;
        double acc[RMSNORM_COLUMN_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * D, *g = dout + (size_t)n * D;
            cpu_vec_acc_gxr(acc, g + j0, xr + j0, rstd[n], j1 - j0);
        }
        for (int j = j0; j < j1; j++) dw[j] += (float)acc[j - j0];
    }
}
