/* Elementwise CUDA kernels: add, axpy, scale, bias and its backward, SwiGLU, and the sum of squares
 * (a deterministic two-pass reduction in double). Each op launches grid-stride
 * kernels on the backend's stream and checks the launch. */
#include "core/cuda/cuda_impl.h"

/* Grid-stride index loop over [0, n) in size_t (n may pass 2^31). */
#define GRID_STRIDE_LOOP(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE_LOOP(i, n) out[i] = a[i] + b[i];
}

__global__ void axpy_kernel(float *y, float alpha, const float *x, size_t n) {
    GRID_STRIDE_LOOP(i, n) y[i] += alpha * x[i];
}

__global__ void scale_kernel(float *x, float alpha, size_t n) {
    GRID_STRIDE_LOOP(i, n) x[i] *= alpha;
}

/* out: [rows, d] += bias: [d] on every row. */
__global__ void add_bias_kernel(float *out, const float *bias, size_t total, int d) {
    GRID_STRIDE_LOOP(i, total) out[i] += bias[i % (size_t)d];
}

/* dbias[j] += sum over rows of dout[r, j]: one thread per column, rows added in order
 * in double (the CPU's order and precision, so the same bits). */
__global__ void bias_backward_kernel(float *dbias, const float *dout, int rows, int d) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    double acc = 0.0;
    for (int r = 0; r < rows; r++) acc += dout[(size_t)r * d + j];
    dbias[j] += (float)acc;
}

/* C: [M, N] rows ldc apart; beta == 0 writes zeros without reading C (NaN included). */
__global__ void scale_rows_kernel(float *C, int N, int ldc, float beta, size_t total) {
    GRID_STRIDE_LOOP(i, total) {
        float *c = C + (i / (size_t)N) * (size_t)ldc + i % (size_t)N;
        *c = beta == 0.0f ? 0.0f : beta * *c;
    }
}

/* sigmoid without overflow: exp of a large positive argument is avoided (as on the CPU). */
__device__ __forceinline__ float sigmoid_f(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* out = silu(gate) * up, silu(g) = g * sigmoid(g) (SwiGLU, Shazeer 2020). */
__global__ void swiglu_forward_kernel(float *out, const float *gate, const float *up, size_t n) {
    GRID_STRIDE_LOOP(i, n) {
        float g = gate[i];
        out[i] = g * sigmoid_f(g) * up[i];
    }
}

/* d silu(g)/dg = s + g s (1 - s) with s = sigmoid(g);
 * dgate = dout * up * silu'(g), dup = dout * silu(g). Both written. */
__global__ void swiglu_backward_kernel(float *dgate, float *dup, const float *dout, const float *gate,
                                       const float *up, size_t n) {
    GRID_STRIDE_LOOP(i, n) {
        float g = gate[i], s = sigmoid_f(g), d = dout[i], u = up[i];
        dgate[i] = d * u * (s + g * s * (1.0f - s));
        dup[i] = d * g * s;
    }
}

/* Tree sum of CUDA_REDUCE_THREADS doubles in shared memory; thread 0 gets the total. */
__device__ double block_sum(double v, double *shared) {
    unsigned t = threadIdx.x;
    shared[t] = v;
    __syncthreads();
    for (unsigned stride = CUDA_REDUCE_THREADS / 2; stride > 0; stride >>= 1) {
        if (t < stride) shared[t] += shared[t + stride];
        __syncthreads();
    }
    return shared[0];
}

/* Pass 1: partial[b] = sum of x[i]^2 over the indices block b visits (fixed grid of
 * CUDA_REDUCE_BLOCKS, so the grouping depends on n only). */
__global__ void sum_squares_partial_kernel(double *partial, const float *x, size_t n) {
    __shared__ double shared[CUDA_REDUCE_THREADS];
    double acc = 0.0;
    GRID_STRIDE_LOOP(i, n) {
        double v = (double)x[i];
        acc += v * v;
    }
    double total = block_sum(acc, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

/* Pass 2, one block: out = sum of partial[0..count). */
__global__ void sum_partials_kernel(double *out, const double *partial, int count) {
    __shared__ double shared[CUDA_REDUCE_THREADS];
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    double total = block_sum(acc, shared);
    if (threadIdx.x == 0) *out = total;
}

void cuda_add(backend *be, float *out, const float *a, const float *b, size_t n) {
    if (!n) return;
    add_kernel<<<cuda_grid_for(n), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(out, a, b, n);
    CUDA_CHECK_LAST();
}

void cuda_axpy(backend *be, float *y, float alpha, const float *x, size_t n) {
    if (!n) return;
    axpy_kernel<<<cuda_grid_for(n), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(y, alpha, x, n);
    CUDA_CHECK_LAST();
}

void cuda_scale(backend *be, float *x, float alpha, size_t n) {
    if (!n) return;
    scale_kernel<<<cuda_grid_for(n), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(x, alpha, n);
    CUDA_CHECK_LAST();
}

void cuda_add_bias(backend *be, float *out, const float *bias, int rows, int d) {
    GRPO_ASSERTF(rows >= 0 && d >= 0, "add_bias: negative size rows=%d d=%d", rows, d);
    size_t total = (size_t)rows * (size_t)d;
    if (!total) return;
    add_bias_kernel<<<cuda_grid_for(total), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(out, bias, total, d);
    CUDA_CHECK_LAST();
}

void cuda_bias_backward(backend *be, float *dbias, const float *dout, int rows, int d) {
    GRPO_ASSERTF(rows >= 0 && d >= 0, "bias_backward: negative size rows=%d d=%d", rows, d);
    if (!d) return;
    bias_backward_kernel<<<(d + CUDA_BLOCK - 1) / CUDA_BLOCK, CUDA_BLOCK, 0, cuda_stream_of(be)>>>(dbias, dout,
                                                                                                 rows, d);
    CUDA_CHECK_LAST();
}

void cuda_scale_rows(backend *be, float *C, int M, int N, int ldc, float beta) {
    size_t total = (size_t)M * (size_t)N;
    if (!total) return;
    scale_rows_kernel<<<cuda_grid_for(total), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(C, N, ldc, beta, total);
    CUDA_CHECK_LAST();
}

void cuda_swiglu_forward(backend *be, float *out, const float *gate, const float *up, size_t n) {
    if (!n) return;
    swiglu_forward_kernel<<<cuda_grid_for(n), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(out, gate, up, n);
    CUDA_CHECK_LAST();
}

void cuda_swiglu_backward(backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                          const float *up, size_t n) {
    if (!n) return;
    swiglu_backward_kernel<<<cuda_grid_for(n), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(dgate, dup, dout, gate,
                                                                                    up, n);
    CUDA_CHECK_LAST();
}

/* Sum of x[i]^2 in double, returned to the host (waits for the stream). The same n
 * gives the same bits on every call. */
double cuda_sum_squares(backend *be, const float *x, size_t n) {
    if (!n) return 0.0;
    cuda_impl *impl = cuda_impl_of(be);
    /* Fewer blocks for short inputs: blocks past n would only add zeros. */
    size_t want = (n + CUDA_REDUCE_THREADS - 1) / CUDA_REDUCE_THREADS;
    int blocks = want < CUDA_REDUCE_BLOCKS ? (int)want : CUDA_REDUCE_BLOCKS;
    sum_squares_partial_kernel<<<blocks, CUDA_REDUCE_THREADS, 0, impl->stream>>>(impl->reduce_partial, x, n);
    CUDA_CHECK_LAST();
    double *total = impl->reduce_partial + CUDA_REDUCE_BLOCKS;
    sum_partials_kernel<<<1, CUDA_REDUCE_THREADS, 0, impl->stream>>>(total, impl->reduce_partial, blocks);
    CUDA_CHECK_LAST();
    CUDA_CHECK(cudaMemcpyAsync(impl->reduce_host, total, sizeof(double), cudaMemcpyDeviceToHost, impl->stream));
    CUDA_CHECK(cudaStreamSynchronize(impl->stream));
    return *impl->reduce_host;
}
