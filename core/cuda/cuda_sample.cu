/* The `sample` op on CUDA (contract in core/backend.h, reference core/sample.c): one block
 * of CUDA_REDUCE_THREADS threads per row, the CPU's rules without a sort:
 *   z = logits / T (float division, IEEE as on the CPU), zmax, sum exp(z - zmax) in double;
 *   top-k: the k-th largest z by bisection over the 32-bit order key of z (counts);
 *   top-p: the cut value by bisection over the key (kept mass at or below it, in double),
 *          then, inside the tie group at the cut, the CPU's running sum over the group's
 *          members (its sort puts the higher ids first) and a bisection over ids;
 *   min-p: exp(z - zmax) >= min_p;
 *   the draw: chunk sums of the kept mass in id order, then a scan of the crossing chunk.
 * Sums are in double as on the CPU, in another order, so a token differs from the CPU's
 * only when u * total lands within ~1e-12 relative of a CDF boundary (or the top-p limit
 * within that of a cumulative mass). Every bisection runs at most 32 rounds; loops are
 * bounded whatever the input (NaN or inf logits give garbage, never a hang or a fault). */
#include <climits>

#include "core/cuda/cuda_reduce.h"

#define SAMPLE_THREADS CUDA_REDUCE_THREADS

/* Order key of a float: a < b <=> key(a) < key(b), a == b <=> equal keys, for non-NaN
 * floats; -0 and +0 share the key of +0 (they are equal, a tie, on the CPU too). */
static __device__ __forceinline__ uint32_t sample_key(float x) {
    if (x == 0.0f) x = 0.0f;
    uint32_t u = __float_as_uint(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static __device__ __forceinline__ float sample_key_value(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/* One row's state once the thresholds are known (every thread holds the same copy). */
typedef struct {
    const float *x;   /* logits row [V] */
    int V;
    float T;          /* temperature > 0 */
    float zmax;
    float kth;        /* top-k: z >= kth stays (-inf: off) */
    float zf;         /* top-p: z > zf stays, and z == zf with id <= idf (-inf, INT_MAX: off) */
    int idf;
    double min_p;     /* min-p: exp(z - zmax) >= min_p stays (0: off) */
} sample_row_state;

static __device__ __forceinline__ float row_z(const sample_row_state &r, int i) { return r.x[i] / r.T; }
static __device__ __forceinline__ double row_mass(const sample_row_state &r, float z) {
    return exp((double)z - (double)r.zmax);
}
static __device__ __forceinline__ bool row_kept(const sample_row_state &r, float z, int i) {
    if (!(z >= r.kth)) return false;
    if (!(z > r.zf || (z == r.zf && i <= r.idf))) return false;
    return r.min_p <= 0.0 || row_mass(r, z) >= r.min_p;
}

/* Greedy: the argmax (lowest id on ties; 0 when no logit beats -inf, as the CPU's scan),
 * logprob 0, policy log-prob at T = 1. */
static __device__ void sample_greedy(const float *x, int V, int32_t *token, float *logprob, float *policy,
                                     float *shared_f, int *shared_i, double *shared_d) {
    const unsigned t = threadIdx.x;
    float best = -INFINITY;
    int best_id = INT_MAX;
    for (int i = (int)t; i < V; i += SAMPLE_THREADS) {
        float v = x[i];
        if (v > best) {   /* ids ascend within a thread: the first of equal values stays */
            best = v;
            best_id = i;
        }
    }
    shared_f[t] = best;
    shared_i[t] = best_id;
    __syncthreads();
    for (unsigned stride = SAMPLE_THREADS / 2; stride > 0; stride >>= 1) {
        if (t < stride) {
            float b = shared_f[t + stride];
            int bi = shared_i[t + stride];
            if (b > shared_f[t] || (b == shared_f[t] && bi < shared_i[t])) {
                shared_f[t] = b;
                shared_i[t] = bi;
            }
        }
        __syncthreads();
    }
    int id = shared_i[0] == INT_MAX ? 0 : shared_i[0];
    __syncthreads();
    const float shift = x[id];
    double s = 0.0;
    for (int i = (int)t; i < V; i += SAMPLE_THREADS) s += exp((double)x[i] - (double)shift);
    s = cuda_block_sum(s, shared_d);
    if (t == 0) {
        *token = id;
        *logprob = 0.0f;
        *policy = (float)((double)x[id] - ((double)shift + log(s)));
    }
}

/* logits: [N, V] rows ldl floats apart (0: one row for all); u: [N] (NULL when greedy). */
__global__ void sample_kernel(int32_t *tokens, float *logprob, float *policy_logprob, const float *logits,
                              size_t ldl, int V, const double *u, float temperature, int top_k, float top_p,
                              float min_p) {
    __shared__ double shared_d[SAMPLE_THREADS];
    __shared__ float shared_f[SAMPLE_THREADS];
    __shared__ int shared_i[SAMPLE_THREADS];
    __shared__ int shared_result;
    const size_t row = blockIdx.x;
    const int t = (int)threadIdx.x;
    const float *x = logits + row * ldl;
    if (temperature == 0.0f) {
        sample_greedy(x, V, tokens + row, logprob + row, policy_logprob + row, shared_f, shared_i, shared_d);
        return;
    }
    sample_row_state r = {x, V, temperature, -INFINITY, -INFINITY, -INFINITY, INT_MAX, 0.0};

    float m = -INFINITY;
    for (int i = t; i < V; i += SAMPLE_THREADS) m = fmaxf(m, row_z(r, i));
    r.zmax = cuda_block_max(m, shared_f);
    double s = 0.0;
    for (int i = t; i < V; i += SAMPLE_THREADS) s += row_mass(r, row_z(r, i));
    const double sum_all = cuda_block_sum(s, shared_d);

    /* top-k: the largest key K with at least top_k z's at or above it is the k-th largest
     * z (a value of the row: the count only changes at the row's keys) */
    int n_kept = V;
    if (top_k > 0 && top_k < V) {
        uint32_t lo = 0, hi = 0xffffffffu;   /* count(key >= lo) >= top_k holds throughout */
        while (lo < hi) {
            uint32_t mid = lo + (uint32_t)(((uint64_t)hi - lo + 1) / 2);
            int c = 0;
            for (int i = t; i < V; i += SAMPLE_THREADS) c += sample_key(row_z(r, i)) >= mid;
            c = cuda_block_sum(c, shared_i);
            if (c >= top_k) lo = mid;
            else hi = mid - 1;
        }
        r.kth = sample_key_value(lo);
        int c = 0;
        for (int i = t; i < V; i += SAMPLE_THREADS) c += row_z(r, i) >= r.kth;
        n_kept = cuda_block_sum(c, shared_i);
    }

    /* top-p (TopPLogitsWarper as core/sample.c runs it): ascending by z, the higher id first
     * among equal z, the first position whose running mass / total exceeds 1 - top_p (at
     * most the last) and everything above it stay. */
    if (top_p < 1.0f && n_kept > 1) {
        double acc = 0.0;
        for (int i = t; i < V; i += SAMPLE_THREADS) {
            float z = row_z(r, i);
            if (z >= r.kth) acc += row_mass(r, z);
        }
        const double total = cuda_block_sum(acc, shared_d);
        const double limit = 1.0 - (double)top_p;
        /* the cut's value: the smallest key K with mass(key <= K) / total > limit; the top
         * value when rounding leaves none (the CPU keeps its last position then) */
        uint32_t lo = r.kth == -INFINITY ? 0u : sample_key(r.kth), hi = sample_key(r.zmax);
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            double a = 0.0;
            for (int i = t; i < V; i += SAMPLE_THREADS) {
                float z = row_z(r, i);
                if (z >= r.kth && sample_key(z) <= mid) a += row_mass(r, z) / total;
            }
            if (cuda_block_sum(a, shared_d) > limit) hi = mid;
            else lo = mid + 1;
        }
        const float zf = sample_key_value(hi);
        double below = 0.0;
        int c = 0;
        for (int i = t; i < V; i += SAMPLE_THREADS) {
            float z = row_z(r, i);
            if (z >= r.kth && z < zf) below += row_mass(r, z) / total;
            c += z == zf;
        }
        below = cuda_block_sum(below, shared_d);
        const int group = cuda_block_sum(c, shared_i);
        /* inside the group the CPU adds the same mass per member, highest id first, and
         * stops at the crossing (or at the group's last member) */
        if (t == 0) {
            const double pf = exp((double)zf - (double)r.zmax) / total;
            double cum = below;
            int k = 0;
            for (; k < group - 1; k++) {
                cum += pf;
                if (cum > limit) break;
            }
            shared_result = group - k;   /* the group's members that stay: its lowest ids */
        }
        __syncthreads();
        const int stay = shared_result;
        __syncthreads();
        r.zf = zf;
        if (stay < group) {
            /* idf: the smallest id x with `stay` members of the group at or below it */
            int id_lo = 0, id_hi = V - 1;
            while (id_lo < id_hi) {
                int mid = id_lo + (id_hi - id_lo) / 2;
                int n = 0;
                for (int i = t; i <= mid; i += SAMPLE_THREADS) n += row_z(r, i) == zf;
                if (cuda_block_sum(n, shared_i) >= stay) id_hi = mid;
                else id_lo = mid + 1;
            }
            r.idf = id_lo;
        }
    }

    /* min-p (MinPLogitsWarper): exp(z - zmax) < min_p goes; the top token always stays */
    if (min_p > 0.0f) r.min_p = (double)min_p;

    /* the draw: thread t's chunk of ids [t chunk, (t + 1) chunk), its kept mass and last kept id */
    const int chunk = (V + SAMPLE_THREADS - 1) / SAMPLE_THREADS;
    const int begin = t * chunk < V ? t * chunk : V, end = begin + chunk < V ? begin + chunk : V;
    double part = 0.0;
    int last = -1;
    for (int i = begin; i < end; i++) {
        float z = row_z(r, i);
        if (row_kept(r, z, i)) {
            part += row_mass(r, z);
            last = i;
        }
    }
    shared_d[t] = part;
    shared_i[t] = last;
    __syncthreads();
    if (t == 0) {
        double total = 0.0;
        int token = -1;
        for (int j = 0; j < SAMPLE_THREADS; j++) {
            total += shared_d[j];
            if (shared_i[j] > token) token = shared_i[j];   /* the last kept id, when nothing crosses */
        }
        const double target = u[row] * total;
        double cum = 0.0;
        int j = 0;
        for (; j < SAMPLE_THREADS; j++) {
            if (cum + shared_d[j] > target) break;
            cum += shared_d[j];
        }
        for (int i = j * chunk; i < V; i++) {   /* empty when no chunk crosses */
            float z = row_z(r, i);
            if (!row_kept(r, z, i)) continue;
            cum += row_mass(r, z);
            if (cum > target) {
                token = i;
                break;
            }
        }
        if (token < 0) token = 0;   /* nothing kept: only NaN logits get here */
        const double zt = (double)row_z(r, token);
        tokens[row] = token;
        logprob[row] = (float)(zt - (double)r.zmax - log(total));
        policy_logprob[row] = (float)(zt - ((double)r.zmax + log(sum_all)));
    }
}

void cuda_sample(backend *be, int32_t *tokens, float *logprob, float *policy_logprob, const float *logits, int ldl,
                 int N, int V, const double *u, float temperature, int top_k, float top_p, float min_p) {
    GRPO_ASSERTF(N >= 0 && V > 0 && ldl >= 0, "sample: N=%d V=%d ldl=%d", N, V, ldl);
    GRPO_ASSERTF(temperature == 0.0f || u, "sample: no uniform numbers for temperature %g", temperature);
    if (!N) return;
    sample_kernel<<<N, SAMPLE_THREADS, 0, cuda_stream_of(be)>>>(tokens, logprob, policy_logprob, logits, (size_t)ldl,
                                                                V, u, temperature, top_k, top_p, min_p);
    CUDA_CHECK_LAST();
}
