/* Causal self-attention with grouped-query heads on CUDA, forward and backward
 * (contract in core/backend.h; CPU reference core/cpu/cpu_attention.c, same maths).
 * Straightforward, not flash: one block of CUDA_REDUCE_THREADS threads per query row
 * (forward, dq) or key row (dk, dv); scores are recomputed in each pass instead of
 * being stored, and the weighted sums run over the keys (queries) a chunk of
 * CUDA_REDUCE_THREADS at a time through shared memory. Every output element is owned by
 * one thread of one block: no atomics, the same bits on every run.
 *
 * With s_ij = scale q_i . k_j (j <= i), lse_i = logsumexp_j s_ij, P_ij = exp(s_ij - lse_i),
 * D_i = dout_i . out_i (Dao 2023, FlashAttention-2, Alg. 1 and 2):
 *   out_i = sum_j P_ij v_j
 *   dS_ij = P_ij (dout_i . v_j - D_i)
 *   dq_i = scale sum_j dS_ij k_j;  dk_j = scale sum_{h, i >= j} dS_ij q_i;  dv_j = sum_{h, i >= j} P_ij dout_i
 * where dk and dv of a kv head sum over the Hq / Hkv query heads that share it. */
#include "core/cuda/cuda_reduce.h"

/* Layout of one launch: q: [B, T, Hq, Dqk], k: [B, T, Hkv, Dqk], v: [B, T, Hkv, Dv],
 * out/dout: [B, T, Hq, Dv]; lse and D: [B, Hq, T]. */
typedef struct {
    int T, Hq, Hkv, Dqk, Dv;
    float scale;
} att_shape;

static __device__ __forceinline__ const float *att_q(const float *q, att_shape a, int b, int t, int h) {
    return q + (((size_t)b * a.T + t) * a.Hq + h) * a.Dqk;
}
static __device__ __forceinline__ const float *att_k(const float *k, att_shape a, int b, int t, int hk) {
    return k + (((size_t)b * a.T + t) * a.Hkv + hk) * a.Dqk;
}
static __device__ __forceinline__ const float *att_v(const float *v, att_shape a, int b, int t, int hk) {
    return v + (((size_t)b * a.T + t) * a.Hkv + hk) * a.Dv;
}
static __device__ __forceinline__ size_t att_o(att_shape a, int b, int t, int h) {
    return (((size_t)b * a.T + t) * a.Hq + h) * a.Dv;
}

static __device__ __forceinline__ float att_dot(const float *x, const float *y, int n) {
    float acc = 0.0f;
    for (int d = 0; d < n; d++) acc += x[d] * y[d];
    return acc;
}

/* One block per query row, blockIdx.x = (b * Hq + h) * T + i (lse's index).
 * Dynamic shared memory: p [CUDA_REDUCE_THREADS] then acc [Dv]. */
__global__ void attention_forward_kernel(float *out, float *lse, const float *q, const float *k, const float *v,
                                         att_shape a) {
    extern __shared__ float smem[];
    __shared__ float red[CUDA_REDUCE_THREADS];
    float *p = smem, *acc = smem + CUDA_REDUCE_THREADS;
    size_t row = blockIdx.x;
    int i = (int)(row % a.T), h = (int)((row / a.T) % a.Hq), b = (int)(row / ((size_t)a.T * a.Hq));
    int hk = h / (a.Hq / a.Hkv);
    const float *qi = att_q(q, a, b, i, h);

    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) mx = fmaxf(mx, a.scale * att_dot(qi, att_k(k, a, b, j, hk), a.Dqk));
    mx = cuda_block_max(mx, red);
    float l = 0.0f;
    for (int j = threadIdx.x; j <= i; j += blockDim.x)
        l += expf(a.scale * att_dot(qi, att_k(k, a, b, j, hk), a.Dqk) - mx);
    l = cuda_block_sum(l, red);
    float z = mx + logf(l);

    for (int d = threadIdx.x; d < a.Dv; d += blockDim.x) acc[d] = 0.0f;
    for (int j0 = 0; j0 <= i; j0 += CUDA_REDUCE_THREADS) {
        int j = j0 + threadIdx.x, n = i - j0 + 1 < CUDA_REDUCE_THREADS ? i - j0 + 1 : CUDA_REDUCE_THREADS;
        __syncthreads();   /* the previous chunk's p is used up */
        p[threadIdx.x] = j <= i ? expf(a.scale * att_dot(qi, att_k(k, a, b, j, hk), a.Dqk) - z) : 0.0f;
        __syncthreads();
        for (int d = threadIdx.x; d < a.Dv; d += blockDim.x) {
            float s = acc[d];
            for (int jj = 0; jj < n; jj++) s += p[jj] * att_v(v, a, b, j0 + jj, hk)[d];
            acc[d] = s;
        }
    }
    float *o = out + att_o(a, b, i, h);
    for (int d = threadIdx.x; d < a.Dv; d += blockDim.x) o[d] = acc[d];
    if (threadIdx.x == 0) lse[row] = z;
}

/* D[row] = dout_i . out_i for row = (b * Hq + h) * T + i; one thread per row. */
__global__ void attention_dot_kernel(float *D, const float *dout, const float *out, att_shape a, size_t rows) {
    for (size_t row = (size_t)blockIdx.x * blockDim.x + threadIdx.x; row < rows; row += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(row % a.T), h = (int)((row / a.T) % a.Hq), b = (int)(row / ((size_t)a.T * a.Hq));
        size_t o = att_o(a, b, i, h);
        D[row] = att_dot(dout + o, out + o, a.Dv);
    }
}

/* dq: one block per query row (indexed as in the forward). Dynamic shared memory:
 * ds [CUDA_REDUCE_THREADS] then acc [Dqk]. */
__global__ void attention_dq_kernel(float *dq, const float *dout, const float *q, const float *k, const float *v,
                                    const float *lse, const float *D, att_shape a) {
    extern __shared__ float smem[];
    float *ds = smem, *acc = smem + CUDA_REDUCE_THREADS;
    size_t row = blockIdx.x;
    int i = (int)(row % a.T), h = (int)((row / a.T) % a.Hq), b = (int)(row / ((size_t)a.T * a.Hq));
    int hk = h / (a.Hq / a.Hkv);
    const float *qi = att_q(q, a, b, i, h), *gi = dout + att_o(a, b, i, h);
    float z = lse[row], Di = D[row];
    for (int d = threadIdx.x; d < a.Dqk; d += blockDim.x) acc[d] = 0.0f;
    for (int j0 = 0; j0 <= i; j0 += CUDA_REDUCE_THREADS) {
        int j = j0 + threadIdx.x, n = i - j0 + 1 < CUDA_REDUCE_THREADS ? i - j0 + 1 : CUDA_REDUCE_THREADS;
        __syncthreads();
        float g = 0.0f;
        if (j <= i) {
            float P = expf(a.scale * att_dot(qi, att_k(k, a, b, j, hk), a.Dqk) - z);
            g = P * (att_dot(gi, att_v(v, a, b, j, hk), a.Dv) - Di);
        }
        ds[threadIdx.x] = g;
        __syncthreads();
        for (int d = threadIdx.x; d < a.Dqk; d += blockDim.x) {
            float s = acc[d];
            for (int jj = 0; jj < n; jj++) s += ds[jj] * att_k(k, a, b, j0 + jj, hk)[d];
            acc[d] = s;
        }
    }
    float *out = dq + (((size_t)b * a.T + i) * a.Hq + h) * a.Dqk;
    for (int d = threadIdx.x; d < a.Dqk; d += blockDim.x) out[d] = a.scale * acc[d];
}

/* dk, dv: one block per key row, blockIdx.x = (b * Hkv + hk) * T + j; it visits every
 * query i >= j of every query head of the group. Dynamic shared memory: P, ds
 * [CUDA_REDUCE_THREADS] each, then acck [Dqk], accv [Dv]. */
__global__ void attention_dkv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k,
                                     const float *v, const float *lse, const float *D, att_shape a) {
    extern __shared__ float smem[];
    float *P = smem, *ds = P + CUDA_REDUCE_THREADS, *acck = ds + CUDA_REDUCE_THREADS, *accv = acck + a.Dqk;
    size_t row = blockIdx.x;
    int j = (int)(row % a.T), hk = (int)((row / a.T) % a.Hkv), b = (int)(row / ((size_t)a.T * a.Hkv));
    int group = a.Hq / a.Hkv;
    const float *kj = att_k(k, a, b, j, hk), *vj = att_v(v, a, b, j, hk);
    for (int d = threadIdx.x; d < a.Dqk; d += blockDim.x) acck[d] = 0.0f;
    for (int d = threadIdx.x; d < a.Dv; d += blockDim.x) accv[d] = 0.0f;
    for (int h = hk * group; h < (hk + 1) * group; h++) {
        size_t lrow = ((size_t)b * a.Hq + h) * a.T;   /* + i: lse's and D's index */
        for (int i0 = j; i0 < a.T; i0 += CUDA_REDUCE_THREADS) {
            int i = i0 + threadIdx.x, n = a.T - i0 < CUDA_REDUCE_THREADS ? a.T - i0 : CUDA_REDUCE_THREADS;
            __syncthreads();
            float p = 0.0f, g = 0.0f;
            if (i < a.T) {
                p = expf(a.scale * att_dot(att_q(q, a, b, i, h), kj, a.Dqk) - lse[lrow + i]);
                g = p * (att_dot(dout + att_o(a, b, i, h), vj, a.Dv) - D[lrow + i]);
            }
            P[threadIdx.x] = p;
            ds[threadIdx.x] = g;
            __syncthreads();
            for (int d = threadIdx.x; d < a.Dqk; d += blockDim.x) {
                float s = acck[d];
                for (int ii = 0; ii < n; ii++) s += ds[ii] * att_q(q, a, b, i0 + ii, h)[d];
                acck[d] = s;
            }
            for (int d = threadIdx.x; d < a.Dv; d += blockDim.x) {
                float s = accv[d];
                for (int ii = 0; ii < n; ii++) s += P[ii] * dout[att_o(a, b, i0 + ii, h) + d];
                accv[d] = s;
            }
        }
    }
    float *dkj = dk + (((size_t)b * a.T + j) * a.Hkv + hk) * a.Dqk;
    float *dvj = dv + (((size_t)b * a.T + j) * a.Hkv + hk) * a.Dv;
    for (int d = threadIdx.x; d < a.Dqk; d += blockDim.x) dkj[d] = a.scale * acck[d];
    for (int d = threadIdx.x; d < a.Dv; d += blockDim.x) dvj[d] = accv[d];
}

/* Head sizes up to this fit the kernels' shared memory (48 KiB by default). */
#define ATT_MAX_HEAD_DIM 4096

static att_shape att_check(const char *op, int B, int T, int Hq, int Hkv, int Dqk, int Dv, float scale) {
    GRPO_ASSERTF(Hkv > 0 && Hq % Hkv == 0, "%s: Hq=%d is not a multiple of Hkv=%d", op, Hq, Hkv);
    GRPO_ASSERTF(B >= 0 && T >= 0 && Dqk >= 1 && Dv >= 1 && Dqk <= ATT_MAX_HEAD_DIM && Dv <= ATT_MAX_HEAD_DIM,
                 "%s: bad size B=%d T=%d Dqk=%d Dv=%d (head sizes 1..%d)", op, B, T, Dqk, Dv, ATT_MAX_HEAD_DIM);
    GRPO_ASSERTF((size_t)B * Hq * T <= 0x7fffffffu, "%s: B*Hq*T = %zu rows is more than one launch holds", op,
                 (size_t)B * Hq * T);
    att_shape a = {T, Hq, Hkv, Dqk, Dv, scale};
    return a;
}

void cuda_attention_forward(backend *be, float *out, float *lse, const float *q, const float *k, const float *v, int B,
                            int T, int Hq, int Hkv, int Dqk, int Dv, float scale) {
    att_shape a = att_check("attention_forward", B, T, Hq, Hkv, Dqk, Dv, scale);
    unsigned rows = (unsigned)((size_t)B * Hq * T);
    if (!rows) return;
    size_t shared = (CUDA_REDUCE_THREADS + (size_t)Dv) * sizeof(float);
    attention_forward_kernel<<<rows, CUDA_REDUCE_THREADS, shared, cuda_stream_of(be)>>>(out, lse, q, k, v, a);
    CUDA_CHECK_LAST();
}

void cuda_attention_backward(backend *be, float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *out, const float *lse, int B, int T, int Hq,
                             int Hkv, int Dqk, int Dv, float scale) {
    att_shape a = att_check("attention_backward", B, T, Hq, Hkv, Dqk, Dv, scale);
    size_t rows = (size_t)B * Hq * T, kv_rows = (size_t)B * Hkv * T;
    if (!rows) return;
    cudaStream_t s = cuda_stream_of(be);
    /* D: [B, Hq, T] scratch, stream-ordered (freed once the kernels below are done). */
    float *D = NULL;
    CUDA_CHECK(cudaMallocAsync((void **)&D, rows * sizeof(float), s));
    attention_dot_kernel<<<cuda_grid_for(rows), CUDA_BLOCK, 0, s>>>(D, dout, out, a, rows);
    CUDA_CHECK_LAST();
    attention_dq_kernel<<<(unsigned)rows, CUDA_REDUCE_THREADS, (CUDA_REDUCE_THREADS + (size_t)Dqk) * sizeof(float),
                          s>>>(dq, dout, q, k, v, lse, D, a);
    CUDA_CHECK_LAST();
    attention_dkv_kernel<<<(unsigned)kv_rows, CUDA_REDUCE_THREADS,
                           (2 * CUDA_REDUCE_THREADS + (size_t)Dqk + Dv) * sizeof(float), s>>>(dk, dv, dout, q, k, v,
                                                                                             lse, D, a);
    CUDA_CHECK_LAST();
    CUDA_CHECK(cudaFreeAsync(D, s));
}
