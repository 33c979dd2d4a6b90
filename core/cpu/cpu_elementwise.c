/* Elementwise ops on the CPU: add, axpy, scale, bias, sum of squares, SwiGLU.
 * Blocks of cpu_vec.c's vector kernels (plain loops for the rarely used ones), split
 * over OpenMP threads when long enough. */
#include "core/cpu/cpu_impl.h"

/* out[n] = a[n] + b[n]; out may alias a or b. */
void cpu_add(backend *be, float *out, const float *a, const float *b, size_t n) {
    (void)be;
    CPU_OMP(parallel for schedule(static) if (n >= CPU_PARALLEL_MIN))
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* Elements per task of the streaming loops (a multiple of the vector width). */
#define CPU_STREAM_BLOCK 8192

/* y[n] += alpha * x[n]. */
void cpu_axpy(backend *be, float *y, float alpha, const float *x, size_t n) {
    (void)be;
    size_t nblocks = (n + CPU_STREAM_BLOCK - 1) / CPU_STREAM_BLOCK;
    CPU_OMP(parallel for schedule(static) if (n >= CPU_PARALLEL_MIN))
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t j0 = blk * CPU_STREAM_BLOCK, len = n - j0 < CPU_STREAM_BLOCK ? n - j0 : CPU_STREAM_BLOCK;
        cpu_vec_axpy(y + j0, alpha, x + j0, len);
    }
}

/* x[n] *= alpha. */
void cpu_scale(backend *be, float *x, float alpha, size_t n) {
    (void)be;
    size_t nblocks = (n + CPU_STREAM_BLOCK - 1) / CPU_STREAM_BLOCK;
    CPU_OMP(parallel for schedule(static) if (n >= CPU_PARALLEL_MIN))
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t j0 = blk * CPU_STREAM_BLOCK, len = n - j0 < CPU_STREAM_BLOCK ? n - j0 : CPU_STREAM_BLOCK;
        cpu_vec_scale(x + j0, alpha, len);
    }
}

/* out: [rows, d] += bias: [d] on every row. */
void cpu_add_bias(backend *be, float *out, const float *bias, int rows, int d) {
    (void)be;
    CPU_OMP(parallel for schedule(static) if ((size_t)rows * d >= CPU_PARALLEL_MIN))
    for (int r = 0; r < rows; r++) {
        float *o = out + (size_t)r * d;
        for (int j = 0; j < d; j++) o[j] += bias[j];
    }
}

/* Columns per task of the column-parallel reductions: each thread owns a slice of
 * the result, so there are no races and the sum order does not depend on threads. */
#define CPU_COLUMN_BLOCK 64

/* dbias: [d] += sum over rows of dout: [rows, d]. Each column block is summed row
 * by row into a double accumulator per column (rows are read contiguously). */
void cpu_bias_backward(backend *be, float *dbias, const float *dout, int rows, int d) {
    (void)be;
    int nblocks = (d + CPU_COLUMN_BLOCK - 1) / CPU_COLUMN_BLOCK;
    CPU_OMP(parallel for schedule(static) if ((size_t)rows * d >= CPU_PARALLEL_MIN))
    for (int blk = 0; blk < nblocks; blk++) {
        int j0 = blk * CPU_COLUMN_BLOCK;
        int j1 = j0 + CPU_COLUMN_BLOCK < d ? j0 + CPU_COLUMN_BLOCK : d;
        double acc[CPU_COLUMN_BLOCK] = {0};
        for (int r = 0; r < rows; r++) {
            const float *g = dout + (size_t)r * d;
            for (int j = j0; j < j1; j++) acc[j - j0] += g[j];
        }
        for (int j = j0; j < j1; j++) dbias[j] += (float)acc[j - j0];
    }
}

/* Partial sums of sum_squares: at most this many, each over a block of the vector. */
#define CPU_SUM_PARTS 256

/* Sum of x[i]^2 in double (gradient norms must not lose small entries to big ones).
 * Blocks are summed into partials that are then added in order, so the result does
 * not depend on the thread count or on which thread finished first. */
double cpu_sum_squares(backend *be, const float *x, size_t n) {
    (void)be;
    size_t block = (n + CPU_SUM_PARTS - 1) / CPU_SUM_PARTS;
    if (block < CPU_STREAM_BLOCK) block = CPU_STREAM_BLOCK;
    size_t nblocks = (n + block - 1) / block;
    double part[CPU_SUM_PARTS];
    CPU_OMP(parallel for schedule(static) if (n >= CPU_PARALLEL_MIN))
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t j0 = blk * block, len = n - j0 < block ? n - j0 : block;
        part[blk] = cpu_vec_sum_squares(x + j0, len);
    }
    double total = 0.0;
    for (size_t blk = 0; blk < nblocks; blk++) total += part[blk];
    return total;
}

/* out[n] = silu(gate) * up, silu(g) = g * sigmoid(g) (SwiGLU, Shazeer 2020). */
void cpu_swiglu_forward(backend *be, float *out, const float *gate, const float *up, size_t n) {
    (void)be;
    size_t nblocks = (n + CPU_STREAM_BLOCK - 1) / CPU_STREAM_BLOCK;
    CPU_OMP(parallel for schedule(static) if (n >= CPU_PARALLEL_MIN))
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t j0 = blk * CPU_STREAM_BLOCK, len = n - j0 < CPU_STREAM_BLOCK ? n - j0 : CPU_STREAM_BLOCK;
        cpu_vec_swiglu(out + j0, gate + j0, up + j0, len);
    }
}

/* d silu(g)/dg = s + g s (1 - s) with s = sigmoid(g);
 * dgate = dout * up * silu'(g), dup = dout * silu(g). Both written. */
void cpu_swiglu_backward(backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, size_t n) {
    (void)be;
    size_t nblocks = (n + CPU_STREAM_BLOCK - 1) / CPU_STREAM_BLOCK;
    CPU_OMP(parallel for schedule(static) if (n >= CPU_PARALLEL_MIN))
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t j0 = blk * CPU_STREAM_BLOCK, len = n - j0 < CPU_STREAM_BLOCK ? n - j0 : CPU_STREAM_BLOCK;
        cpu_vec_swiglu_backward(dgate + j0, dup + j0, dout + j0, gate + j0, up + j0, len);
    }
}
