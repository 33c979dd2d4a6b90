/* Vector kernels shared by the CPU ops: a register-blocked tile product (attention's
 * tiles), and exp, sum-of-exp and max over rows (softmax, log-sum-exp). Written with
 * GCC vector extensions and compiled for several x86 levels (AVX-512, AVX2+FMA,
 * baseline) picked at load time, so the build needs no -march flag and still uses the
 * machine's vector width. Results can differ in the last bits between machines (FMA). */
#include "core/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

/* Overridable (-DCPU_MULTIVERSION=) to test one code path by itself. */
#ifndef CPU_MULTIVERSION
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define CPU_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CPU_MULTIVERSION
#endif
#endif

typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));

/* Unaligned loads and stores (memcpy compiles to one vector move). Macros, not
 * functions: a function taking a 64-byte vector by value draws GCC's ABI note. */
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(vf16))
#define VSTORE(p, v) memcpy((p), &(v), sizeof(vf16))

/* ---- tile product ---- */

/* Rows of C computed together: 4 rows x 16 columns of accumulators fit the register
 * file at every vector width above SSE. */
#define TILE_MR 4
#define TILE_NR 16

CPU_MULTIVERSION
static void vec_gemm_any(float *restrict C, int ldc, const float *restrict A, int lda, const float *restrict B,
                  size_t ldb, int m, int n, int kd, int accumulate) {
    int i = 0;
    for (; i + TILE_MR <= m; i += TILE_MR) {
        const float *a0 = A + (size_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        float *c0p = C + (size_t)i * ldc, *c1p = c0p + ldc, *c2p = c1p + ldc, *c3p = c2p + ldc;
        int j = 0;
        for (; j + TILE_NR <= n; j += TILE_NR) {
            vf16 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, t0, t1, t2, t3;
            const float *b = B + j;
            for (int p = 0; p < kd; p++, b += ldb) {
                vf16 bv;
                VLOAD(bv, b);
                c0 += a0[p] * bv;
                c1 += a1[p] * bv;
                c2 += a2[p] * bv;
                c3 += a3[p] * bv;
            }
            if (accumulate) {
                VLOAD(t0, c0p + j);
                VLOAD(t1, c1p + j);
                VLOAD(t2, c2p + j);
                VLOAD(t3, c3p + j);
                c0 += t0;
                c1 += t1;
                c2 += t2;
                c3 += t3;
            }
            VSTORE(c0p + j, c0);
            VSTORE(c1p + j, c1);
            VSTORE(c2p + j, c2);
            VSTORE(c3p + j, c3);
        }
        for (; j < n; j++) {   /* column tail */
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int p = 0; p < kd; p++) {
                float bv = B[(size_t)p * ldb + j];
                s0 += a0[p] * bv;
                s1 += a1[p] * bv;
                s2 += a2[p] * bv;
                s3 += a3[p] * bv;
            }
            c0p[j] = accumulate ? c0p[j] + s0 : s0;
            c1p[j] = accumulate ? c1p[j] + s1 : s1;
            c2p[j] = accumulate ? c2p[j] + s2 : s2;
            c3p[j] = accumulate ? c3p[j] + s3 : s3;
        }
    }
    for (; i < m; i++) {   /* row tail */
        const float *a = A + (size_t)i * lda;
        float *c = C + (size_t)i * ldc;
        int j = 0;
        for (; j + TILE_NR <= n; j += TILE_NR) {
            vf16 acc = {0}, t;
            const float *b = B + j;
            for (int p = 0; p < kd; p++, b += ldb) {
                VLOAD(t, b);
                acc += a[p] * t;
            }
            if (accumulate) {
                VLOAD(t, c + j);
                acc += t;
            }
            VSTORE(c + j, acc);
        }
        for (; j < n; j++) {
            float s = 0;
            for (int p = 0; p < kd; p++) s += a[p] * B[(size_t)p * ldb + j];
            c[j] = accumulate ? c[j] + s : s;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define CPU_VEC_WIDE 1
/* With AVX-512's 32 vector registers a 4 x 32 tile (8 accumulators, two B loads per four
 * broadcasts) keeps both FMA units busy where 4 x 16 waits on FMA latency: ~1.5x on the
 * attention tiles (32 x 64 x 64) of a Zen 5 core. Rows m4 (a multiple of 4) x columns
 * n32 (a multiple of 32); the caller does the rest. */
__attribute__((target("arch=x86-64-v4"))) static void vec_gemm_wide(float *restrict C, int ldc,
                                                                      const float *restrict A, int lda,
                                                                      const float *restrict B, size_t ldb, int m4,
                                                                      int n32, int kd, int accumulate) {
    for (int i = 0; i < m4; i += TILE_MR) {
        const float *a0 = A + (size_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        float *c0p = C + (size_t)i * ldc, *c1p = c0p + ldc, *c2p = c1p + ldc, *c3p = c2p + ldc;
        for (int j = 0; j < n32; j += 2 * TILE_NR) {
            vf16 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, d0 = {0}, d1 = {0}, d2 = {0}, d3 = {0}, t;
            const float *b = B + j;
            for (int p = 0; p < kd; p++, b += ldb) {
                vf16 bv, bw;
                VLOAD(bv, b);
                VLOAD(bw, b + TILE_NR);
                c0 += a0[p] * bv;
                c1 += a1[p] * bv;
                c2 += a2[p] * bv;
                c3 += a3[p] * bv;
                d0 += a0[p] * bw;
                d1 += a1[p] * bw;
                d2 += a2[p] * bw;
                d3 += a3[p] * bw;
            }
#define WIDE_STORE(cp, x, y)          \
            do {                      \
                if (accumulate) {     \
                    VLOAD(t, cp + j); \
                    x += t;           \
                    VLOAD(t, cp + j + TILE_NR); \
                    y += t;           \
                }                     \
                VSTORE(cp + j, x);    \
                VSTORE(cp + j + TILE_NR, y); \
            } while (0)
            WIDE_STORE(c0p, c0, d0);
            WIDE_STORE(c1p, c1, d1);
            WIDE_STORE(c2p, c2, d2);
            WIDE_STORE(c3p, c3, d3);
#undef WIDE_STORE
        }
    }
}
#else
#define CPU_VEC_WIDE 0
#endif

void cpu_vec_gemm(float *restrict C, int ldc, const float *restrict A, int lda, const float *restrict B,
                  size_t ldb, int m, int n, int kd, int accumulate) {
#if CPU_VEC_WIDE
    int m4 = m / TILE_MR * TILE_MR, n32 = n / (2 * TILE_NR) * (2 * TILE_NR);
    if (m4 > 0 && n32 > 0 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        vec_gemm_wide(C, ldc, A, lda, B, ldb, m4, n32, kd, accumulate);
        if (n32 < n) vec_gemm_any(C + n32, ldc, A, lda, B + n32, ldb, m4, n - n32, kd, accumulate);
        if (m4 < m) vec_gemm_any(C + (size_t)m4 * ldc, ldc, A + (size_t)m4 * lda, lda, B, ldb, m - m4, n, kd, accumulate);
        return;
    }
#endif
    vec_gemm_any(C, ldc, A, lda, B, ldb, m, n, kd, accumulate);
}

/* ---- exp ----
 * exp(x) = 2^n * e^r with n = round(x / ln 2), |r| <= ln2 / 2, e^r by the Cephes
 * expf polynomial (Moshier, Cephes Math Library, expf.c): about 1 ulp on [-87.3, 88].
 * Inputs below -87.3 (incl. -inf) give 0; inputs above 88 give exp(88). */
static inline void vexp(vf16 *v) {
    vf16 x = *v;
    const vf16 zero = {0};
    const vf16 hi = zero + 88.0f, lo_cut = zero - 87.3365447505531f;
    vi16 too_small = x < lo_cut;
    vi16 too_big = x > hi;
    x = (vf16)(((vi16)x & ~too_big) | ((vi16)hi & too_big));
    x = (vf16)(((vi16)x & ~too_small) | ((vi16)lo_cut & too_small));
    vf16 fx = x * 1.44269504088896341f + 0.5f;
    vi16 n = __builtin_convertvector(fx, vi16);             /* truncates toward zero */
    n += (vi16)(__builtin_convertvector(n, vf16) > fx);   /* floor: -1 where truncation went up */
    vf16 nf = __builtin_convertvector(n, vf16);
    vf16 r = x - nf * 0.693359375f + nf * 2.12194440e-4f;
    vf16 y = 1.9875691500e-4f * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f;
    vf16 pow2n = (vf16)((n + 127) << 23);
    *v = (vf16)((vi16)(y * pow2n) & ~too_small);
}

/* Scalar twin of vexp for the tails, so every element gets the same function. */
static inline float sexp(float x) {
    vf16 v = {0};
    v[0] = x;
    vexp(&v);
    return v[0];
}

CPU_MULTIVERSION
float cpu_vec_exp_sum(float *x, int n, float shift) {
    vf16 acc = {0};
    int j = 0;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        vf16 e;
        VLOAD(e, x + j);
        e -= shift;
        vexp(&e);
        VSTORE(x + j, e);
        acc += e;
    }
    if (j < n) {   /* tail through one padded vector; only its valid lanes are summed */
        vf16 e = {0}, valid = {0};
        memcpy(&e, x + j, (size_t)(n - j) * sizeof(float));
        e -= shift;
        vexp(&e);
        memcpy(x + j, &e, (size_t)(n - j) * sizeof(float));
        memcpy(&valid, &e, (size_t)(n - j) * sizeof(float));
        acc += valid;
    }
    float sum = 0;
    for (int t = 0; t < TILE_NR; t++) sum += acc[t];
    return sum;
}

CPU_MULTIVERSION
void cpu_vec_exp_sub(float *x, const float *shift, int n) {
    int j = 0;
    vf16 e, sh;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(e, x + j);
        VLOAD(sh, shift + j);
        e -= sh;
        vexp(&e);
        VSTORE(x + j, e);
    }
    if (j < n) {
        vf16 et = {0}, st = {0};
        memcpy(&et, x + j, (size_t)(n - j) * sizeof(float));
        memcpy(&st, shift + j, (size_t)(n - j) * sizeof(float));
        et -= st;
        vexp(&et);
        memcpy(x + j, &et, (size_t)(n - j) * sizeof(float));
    }
}

CPU_MULTIVERSION
void cpu_vec_softmax_grad(float *p, const float *dp, const float *d, float scale, int n) {
    int j = 0;
    vf16 pv, dpv, dv;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(pv, p + j);
        VLOAD(dpv, dp + j);
        VLOAD(dv, d + j);
        pv = pv * (dpv - dv) * scale;
        VSTORE(p + j, pv);
    }
    for (; j < n; j++) p[j] = p[j] * (dp[j] - d[j]) * scale;
}

/* Elements summed in float lanes before the lanes go into the double total: each lane
 * adds at most 64 terms in float (relative error below 64 ulp even in the worst case). */
#define SUM_BLOCK 1024

CPU_MULTIVERSION
double cpu_vec_sum_exp(const float *x, size_t n, float shift) {
    double total = 0;
    size_t j = 0;
    while (j + TILE_NR <= n) {
        size_t end = j + SUM_BLOCK < n ? j + SUM_BLOCK : n;
        vf16 acc = {0}, e;
        for (; j + TILE_NR <= end; j += TILE_NR) {
            VLOAD(e, x + j);
            e -= shift;
            vexp(&e);
            acc += e;
        }
        for (int t = 0; t < TILE_NR; t++) total += acc[t];
    }
    for (; j < n; j++) total += sexp(x[j] - shift);
    return total;
}

CPU_MULTIVERSION
void cpu_vec_exp_scale(float *y, const float *x, size_t n, float shift, float alpha) {
    size_t j = 0;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        vf16 e;
        VLOAD(e, x + j);
        e -= shift;
        vexp(&e);
        e *= alpha;
        VSTORE(y + j, e);
    }
    for (; j < n; j++) y[j] = alpha * sexp(x[j] - shift);
}

CPU_MULTIVERSION
float cpu_vec_max(const float *x, int n) {
    float mx = -INFINITY;
    int j = 0;
    if (n >= TILE_NR) {
        vf16 m, v;
        VLOAD(m, x);
        for (j = TILE_NR; j + TILE_NR <= n; j += TILE_NR) {
            VLOAD(v, x + j);
            vi16 gt = v > m;
            m = (vf16)(((vi16)v & gt) | ((vi16)m & ~gt));
        }
        for (int t = 0; t < TILE_NR; t++) mx = m[t] > mx ? m[t] : mx;
    }
    for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

/* ---- SwiGLU ----
 * s = sigmoid(g) = 1 / (1 + exp(-g)) with the exp above: for g > 87.3 exp(-g) is 0 and
 * s = 1; for g < -88 exp(-g) stops at exp(88) and s ~ 6e-39 (the true value is smaller
 * still, and silu = g s is ~0 either way). A NaN gate gives NaN (g multiplies it). */
static inline void vsigmoid(vf16 *s, const vf16 *g) {
    vf16 e = -*g;
    vexp(&e);
    *s = 1.0f / (1.0f + e);
}

CPU_MULTIVERSION
void cpu_vec_swiglu(float *out, const float *gate, const float *up, size_t n) {
    size_t j = 0;
    vf16 g, u, s, o;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(g, gate + j);
        VLOAD(u, up + j);
        vsigmoid(&s, &g);
        o = g * s * u;
        VSTORE(out + j, o);
    }
    if (j < n) {   /* tail through a zero-padded vector, so it gets the same function */
        vf16 gt = {0}, ut = {0};
        memcpy(&gt, gate + j, (n - j) * sizeof(float));
        memcpy(&ut, up + j, (n - j) * sizeof(float));
        vsigmoid(&s, &gt);
        o = gt * s * ut;
        memcpy(out + j, &o, (n - j) * sizeof(float));
    }
}

CPU_MULTIVERSION
void cpu_vec_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                             size_t n) {
    size_t j = 0;
    vf16 g, u, d, s, dg, du;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(g, gate + j);
        VLOAD(u, up + j);
        VLOAD(d, dout + j);
        vsigmoid(&s, &g);
        dg = d * u * (s + g * s * (1.0f - s));
        du = d * g * s;
        VSTORE(dgate + j, dg);
        VSTORE(dup + j, du);
    }
    if (j < n) {
        vf16 gt = {0}, ut = {0}, dt = {0};
        memcpy(&gt, gate + j, (n - j) * sizeof(float));
        memcpy(&ut, up + j, (n - j) * sizeof(float));
        memcpy(&dt, dout + j, (n - j) * sizeof(float));
        vsigmoid(&s, &gt);
        dg = dt * ut * (s + gt * s * (1.0f - s));
        du = dt * gt * s;
        memcpy(dgate + j, &dg, (n - j) * sizeof(float));
        memcpy(dup + j, &du, (n - j) * sizeof(float));
    }
}

/* ---- streaming kernels of the elementwise, norm, RoPE and optimizer ops ----
 * GCC at -O2 leaves loops with a run-time length scalar, and never vectorises a float
 * reduction without -ffast-math; these are written in vectors (sums in 16 lanes, then
 * the lanes in order, so a result depends only on n, not on the thread count). */

CPU_MULTIVERSION
float cpu_vec_dot(const float *a, const float *b, int n) {
    vf16 acc = {0}, x, y;
    int j = 0;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(x, a + j);
        VLOAD(y, b + j);
        acc += x * y;
    }
    float sum = 0;
    for (int t = 0; t < TILE_NR; t++) sum += acc[t];
    for (; j < n; j++) sum += a[j] * b[j];
    return sum;
}

CPU_MULTIVERSION
float cpu_vec_dot3(const float *a, const float *b, const float *c, int n) {
    vf16 acc = {0}, x, y, z;
    int j = 0;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(x, a + j);
        VLOAD(y, b + j);
        VLOAD(z, c + j);
        acc += x * y * z;
    }
    float sum = 0;
    for (int t = 0; t < TILE_NR; t++) sum += acc[t];
    for (; j < n; j++) sum += a[j] * b[j] * c[j];
    return sum;
}

CPU_MULTIVERSION
void cpu_vec_scale_mul(float *y, const float *x, float s, const float *w, int n) {
    vf16 a, b;
    int j = 0;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(a, x + j);
        VLOAD(b, w + j);
        a = (a * s) * b;
        VSTORE(y + j, a);
    }
    for (; j < n; j++) y[j] = (x[j] * s) * w[j];
}

CPU_MULTIVERSION
void cpu_vec_rmsnorm_dx(float *dx, const float *g, const float *w, const float *x, float r, float c, int n) {
    vf16 gv, wv, xv;
    int j = 0;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(gv, g + j);
        VLOAD(wv, w + j);
        VLOAD(xv, x + j);
        gv = r * gv * wv - c * xv;
        VSTORE(dx + j, gv);
    }
    for (; j < n; j++) dx[j] = r * g[j] * w[j] - c * x[j];
}

typedef double vd8 __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
#define VLOADD(v, p) memcpy(&(v), (p), sizeof(vd8))
#define VSTORED(p, v) memcpy((p), &(v), sizeof(vd8))

CPU_MULTIVERSION
void cpu_vec_acc_gxr(double *acc, const float *g, const float *x, float r, int n) {
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        vf8 gv, xv;
        vd8 a;
        memcpy(&gv, g + j, sizeof gv);
        memcpy(&xv, x + j, sizeof xv);
        gv = gv * xv * r;   /* the float product, then its exact double */
        VLOADD(a, acc + j);
        a += __builtin_convertvector(gv, vd8);
        VSTORED(acc + j, a);
    }
    for (; j < n; j++) acc[j] += g[j] * x[j] * r;
}

CPU_MULTIVERSION
double cpu_vec_sum_squares(const float *x, size_t n) {
    vd8 acc = {0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        vf8 v;
        memcpy(&v, x + j, sizeof v);
        vd8 d = __builtin_convertvector(v, vd8);
        acc += d * d;
    }
    double total = 0;
    for (int t = 0; t < 8; t++) total += acc[t];
    for (; j < n; j++) total += (double)x[j] * (double)x[j];
    return total;
}

CPU_MULTIVERSION
void cpu_vec_axpy(float *y, float alpha, const float *x, size_t n) {
    vf16 a, b;
    size_t j = 0;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(a, y + j);
        VLOAD(b, x + j);
        a += alpha * b;
        VSTORE(y + j, a);
    }
    for (; j < n; j++) y[j] += alpha * x[j];
}

CPU_MULTIVERSION
void cpu_vec_scale(float *x, float alpha, size_t n) {
    vf16 a;
    size_t j = 0;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(a, x + j);
        a *= alpha;
        VSTORE(x + j, a);
    }
    for (; j < n; j++) x[j] *= alpha;
}

CPU_MULTIVERSION
void cpu_vec_rotate(float *a, float *b, const float *c, const float *s, float sign, int n) {
    vf16 av, bv, cv, sv;
    int j = 0;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        VLOAD(av, a + j);
        VLOAD(bv, b + j);
        VLOAD(cv, c + j);
        VLOAD(sv, s + j);
        sv *= sign;
        vf16 na = av * cv - bv * sv, nb = bv * cv + av * sv;
        VSTORE(a + j, na);
        VSTORE(b + j, nb);
    }
    for (; j < n; j++) {
        float x = a[j], y = b[j], sn = sign * s[j];
        a[j] = x * c[j] - y * sn;
        b[j] = y * c[j] + x * sn;
    }
}

/* AdamW over n elements (cpu_optim.c's formula). The square root needs the AVX-512
 * instruction (a vector sqrt in plain C needs -fno-math-errno), so this one is written
 * with intrinsics for x86-64-v4 and plain C elsewhere. */
static void adamw_scalar(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                         float beta2, float eps, float weight_decay, float inv_c1, float inv_c2) {
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi * inv_c1, vhat = vi * inv_c2;
        float p = param[i];
        param[i] = p - lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
    }
}

#if CPU_VEC_WIDE
#include <immintrin.h>
__attribute__((target("arch=x86-64-v4"))) static size_t adamw_wide(float *param, const float *grad, float *m,
                                                                     float *v, size_t n, float lr, float beta1,
                                                                     float beta2, float eps, float weight_decay,
                                                                     float inv_c1, float inv_c2) {
    const __m512 b1 = _mm512_set1_ps(beta1), b2 = _mm512_set1_ps(beta2), c1 = _mm512_set1_ps(1.0f - beta1);
    const __m512 c2 = _mm512_set1_ps(1.0f - beta2), i1 = _mm512_set1_ps(inv_c1), i2 = _mm512_set1_ps(inv_c2);
    const __m512 ep = _mm512_set1_ps(eps), wd = _mm512_set1_ps(weight_decay), lrv = _mm512_set1_ps(lr);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(grad + i);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(c1, g));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)), _mm512_mul_ps(_mm512_mul_ps(c2, g), g));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        __m512 mhat = _mm512_mul_ps(mi, i1), vhat = _mm512_mul_ps(vi, i2);
        __m512 p = _mm512_loadu_ps(param + i);
        __m512 step = _mm512_add_ps(_mm512_div_ps(mhat, _mm512_add_ps(_mm512_sqrt_ps(vhat), ep)), _mm512_mul_ps(wd, p));
        _mm512_storeu_ps(param + i, _mm512_sub_ps(p, _mm512_mul_ps(lrv, step)));
    }
    return i;
}
#endif

void cpu_vec_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                   float eps, float weight_decay, float inv_c1, float inv_c2) {
    size_t done = 0;
#if CPU_VEC_WIDE
    if (__builtin_cpu_supports("avx512f"))
        done = adamw_wide(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, inv_c1, inv_c2);
#endif
    adamw_scalar(param + done, grad + done, m + done, v + done, n - done, lr, beta1, beta2, eps, weight_decay, inv_c1,
                 inv_c2);
}
