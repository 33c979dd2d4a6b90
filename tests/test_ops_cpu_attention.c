/* The CPU backend's causal grouped-query attention against a naive double-precision
 * softmax(q k^T * scale) v written here, and its backward against central differences
 * of that reference. Sizes cover one tile (T=7) and several (T=77, 130: the kernel
 * tiles 32 queries by 64 keys), GQA and plain multi-head, Dqk != Dv, and large scores. */
#include "core/backend.h"
#include "core/cpu/cpu_impl.h"
#include "tests/harness.h"
#include "tests/ops_check.h"

#include <pthread.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define TOL_FWD 5e-6
#define TOL_GRAD 5e-5

static backend *be;

typedef struct {
    int B, T, Hq, Hkv, Dqk, Dv;
    double scale;
    double *q, *k, *v, *r;   /* inputs and the loss weights r (= dout) */
} att_ctx;

/* out: [B, T, Hq, Dv], lse: [B, Hq, T] straight from the definition, in double. */
static void attention_d(const att_ctx *c, double *out, double *lse) {
    int group = c->Hq / c->Hkv;
    double *s = malloc((size_t)c->T * sizeof *s);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->Hq; h++)
            for (int t = 0; t < c->T; t++) {
                const double *qt = c->q + (((size_t)b * c->T + t) * c->Hq + h) * c->Dqk;
                double mx = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    const double *kj = c->k + (((size_t)b * c->T + j) * c->Hkv + h / group) * c->Dqk;
                    double dot = 0;
                    for (int d = 0; d < c->Dqk; d++) dot += qt[d] * kj[d];
                    s[j] = dot * c->scale;
                    if (s[j] > mx) mx = s[j];
                }
                double sum = 0;
                for (int j = 0; j <= t; j++) sum += exp(s[j] - mx);
                double *o = out + (((size_t)b * c->T + t) * c->Hq + h) * c->Dv;
                for (int e = 0; e < c->Dv; e++) o[e] = 0;
                for (int j = 0; j <= t; j++) {
                    const double *vj = c->v + (((size_t)b * c->T + j) * c->Hkv + h / group) * c->Dv;
                    double p = exp(s[j] - mx) / sum;
                    for (int e = 0; e < c->Dv; e++) o[e] += p * vj[e];
                }
                if (lse) lse[((size_t)b * c->Hq + h) * c->T + t] = mx + log(sum);
            }
    free(s);
}

static double attention_loss(void *p) {
    att_ctx *c = p;
    size_t n = (size_t)c->B * c->T * c->Hq * c->Dv;
    double *out = malloc(n * sizeof *out), loss = 0;
    attention_d(c, out, NULL);
    for (size_t i = 0; i < n; i++) loss += c->r[i] * out[i];
    free(out);
    return loss;
}

/* Forward vs the reference; then (when fd_samples > 0) the backward vs central
 * differences on fd_samples coordinates of each of q, k, v. */
static void test_attention_case(ops_rng *rng, int B, int T, int Hq, int Hkv, int Dqk, int Dv, float scale,
                                size_t fd_samples) {
    size_t nq = (size_t)B * T * Hq * Dqk, nk = (size_t)B * T * Hkv * Dqk, nv = (size_t)B * T * Hkv * Dv;
    size_t no = (size_t)B * T * Hq * Dv, nl = (size_t)B * Hq * T;
    float *q = ops_random(rng, nq, -1, 1), *k = ops_random(rng, nk, -1, 1), *v = ops_random(rng, nv, -1, 1);
    float *dout = ops_random(rng, no, -1, 1);
    float *out = malloc(no * sizeof *out), *lse = malloc(nl * sizeof *lse);
    att_ctx c = {B, T, Hq, Hkv, Dqk, Dv, scale, ops_to_double(q, nq), ops_to_double(k, nk), ops_to_double(v, nv),
                 ops_to_double(dout, no)};
    double *want = malloc(no * sizeof *want), *want_lse = malloc(nl * sizeof *want_lse);

    be->attention_forward(be, out, lse, q, k, v, B, T, Hq, Hkv, Dqk, Dv, scale);
    attention_d(&c, want, want_lse);
    double e_out = ops_rel_err_d(out, want, no, 1e-6), e_lse = ops_rel_err_d(lse, want_lse, nl, 1.0);
    CHECK_MSG(e_out < TOL_FWD, "attention forward B=%d T=%d Hq=%d Hkv=%d Dqk=%d Dv=%d scale=%g: rel err %.3g", B,
              T, Hq, Hkv, Dqk, Dv, scale, e_out);
    CHECK_MSG(e_lse < TOL_FWD, "attention lse B=%d T=%d Hq=%d Hkv=%d scale=%g: rel err %.3g", B, T, Hq, Hkv, scale,
              e_lse);

    if (fd_samples > 0) {
        float *dq = malloc(nq * sizeof *dq), *dk = malloc(nk * sizeof *dk), *dv = malloc(nv * sizeof *dv);
        for (size_t i = 0; i < nq; i++) dq[i] = NAN;   /* written, not accumulated */
        for (size_t i = 0; i < nk; i++) dk[i] = NAN;
        for (size_t i = 0; i < nv; i++) dv[i] = NAN;
        be->attention_backward(be, dq, dk, dv, dout, q, k, v, out, lse, B, T, Hq, Hkv, Dqk, Dv, scale);
        char what[96];
        snprintf(what, sizeof what, "dq (B=%d T=%d Hq=%d Hkv=%d)", B, T, Hq, Hkv);
        CHECK_MSG(ops_fd_check(what, attention_loss, &c, c.q, nq, dq, fd_samples, rng) < TOL_GRAD, "%s", what);
        snprintf(what, sizeof what, "dk (B=%d T=%d Hq=%d Hkv=%d)", B, T, Hq, Hkv);
        CHECK_MSG(ops_fd_check(what, attention_loss, &c, c.k, nk, dk, fd_samples, rng) < TOL_GRAD, "%s", what);
        snprintf(what, sizeof what, "dv (B=%d T=%d Hq=%d Hkv=%d)", B, T, Hq, Hkv);
        CHECK_MSG(ops_fd_check(what, attention_loss, &c, c.v, nv, dv, fd_samples, rng) < TOL_GRAD, "%s", what);
        int finite = 1;
        for (size_t i = 0; i < nq; i++) finite &= isfinite(dq[i]);
        for (size_t i = 0; i < nk; i++) finite &= isfinite(dk[i]);
        for (size_t i = 0; i < nv; i++) finite &= isfinite(dv[i]);
        CHECK_MSG(finite, "attention backward writes every element of dq, dk, dv");
        free(dq), free(dk), free(dv);
    }
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(want), free(want_lse);
    free(c.q), free(c.k), free(c.v), free(c.r);
}

/* Query t's output depends only on keys 0..t: changing the last position's k and v
 * leaves every earlier output bit-identical. */
static void test_attention_causal(ops_rng *rng) {
    enum { B = 1, T = 70, H = 2, D = 8 };
    size_t n = (size_t)B * T * H * D;
    float *q = ops_random(rng, n, -1, 1), *k = ops_random(rng, n, -1, 1), *v = ops_random(rng, n, -1, 1);
    float *out1 = malloc(n * sizeof(float)), *out2 = malloc(n * sizeof(float)), lse[B * H * T];
    be->attention_forward(be, out1, lse, q, k, v, B, T, H, H, D, D, 0.35f);
    for (int i = 0; i < H * D; i++) {
        k[(size_t)(T - 1) * H * D + i] += 5.0f;
        v[(size_t)(T - 1) * H * D + i] -= 5.0f;
    }
    be->attention_forward(be, out2, lse, q, k, v, B, T, H, H, D, D, 0.35f);
    CHECK(memcmp(out1, out2, (size_t)(T - 1) * H * D * sizeof(float)) == 0);
    CHECK(memcmp(out1 + (size_t)(T - 1) * H * D, out2 + (size_t)(T - 1) * H * D, H * D * sizeof(float)) != 0);
    free(q), free(k), free(v), free(out1), free(out2);
}

/* Two host threads running attention on one backend at once take turns on its scratch
 * and get exactly what each gets alone (outputs do not depend on thread scheduling). */
typedef struct {
    int T;
    float *q, *k, *v, *out, *lse, *want;
    int mismatches;
} att_thread_job;

enum { THR_H = 2, THR_D = 16, THR_REPS = 40 };

static void *att_thread_run(void *p) {
    att_thread_job *job = p;
#ifdef _OPENMP
    if (job->T % 2 == 0) omp_set_num_threads(1);   /* a one-thread team: always slot 0, like the other's first */
#endif
    for (int r = 0; r < THR_REPS; r++) {
        be->attention_forward(be, job->out, job->lse, job->q, job->k, job->v, 1, job->T, THR_H, 1, THR_D, THR_D,
                              0.25f);
        job->mismatches += memcmp(job->out, job->want, (size_t)job->T * THR_H * THR_D * sizeof(float)) != 0;
    }
    return NULL;
}

static void test_attention_two_host_threads(ops_rng *rng) {
    att_thread_job jobs[2];
    for (int j = 0; j < 2; j++) {
        int T = j ? 333 : 290;
        size_t n = (size_t)T * THR_H * THR_D, nkv = (size_t)T * THR_D;
        jobs[j] = (att_thread_job){T, ops_random(rng, n, -1, 1), ops_random(rng, nkv, -1, 1),
                                   ops_random(rng, nkv, -1, 1), malloc(n * sizeof(float)),
                                   malloc((size_t)THR_H * T * sizeof(float)), malloc(n * sizeof(float)), 0};
        be->attention_forward(be, jobs[j].want, jobs[j].lse, jobs[j].q, jobs[j].k, jobs[j].v, 1, T, THR_H, 1, THR_D,
                              THR_D, 0.25f);
    }
    pthread_t threads[2];
    for (int j = 0; j < 2; j++) CHECK(pthread_create(&threads[j], NULL, att_thread_run, &jobs[j]) == 0);
    for (int j = 0; j < 2; j++) pthread_join(threads[j], NULL);
    for (int j = 0; j < 2; j++) {
        CHECK_INT(0, jobs[j].mismatches);
        free(jobs[j].q), free(jobs[j].k), free(jobs[j].v), free(jobs[j].out), free(jobs[j].lse), free(jobs[j].want);
    }
}

/* The tile kernels under attention (core/cpu/cpu_vec.c): the product on shapes with
 * row and column tails, and exp against libm over the softmax range. */
static void test_tile_kernels(ops_rng *rng) {
    const int shapes[][3] = {{32, 64, 64}, {7, 5, 3}, {5, 37, 19}, {33, 16, 1}, {4, 16, 8}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], kd = shapes[s][2], lda = kd + 1, ldb = n + 3, ldc = n + 2;
        float *A = ops_random(rng, (size_t)m * lda, -1, 1), *Bm = ops_random(rng, (size_t)kd * ldb, -1, 1);
        float *C = ops_random(rng, (size_t)m * ldc, -1, 1), *C0 = ops_copy(C, (size_t)m * ldc);
        for (int acc = 0; acc < 2; acc++) {
            for (size_t i = 0; i < (size_t)m * ldc; i++) C[i] = C0[i];
            cpu_vec_gemm(C, ldc, A, lda, Bm, ldb, m, n, kd, acc);
            double worst = 0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double want = acc ? C0[(size_t)i * ldc + j] : 0;
                    for (int p = 0; p < kd; p++) want += (double)A[(size_t)i * lda + p] * Bm[(size_t)p * ldb + j];
                    worst = fmax(worst, fabs(want - C[(size_t)i * ldc + j]));
                }
            CHECK_MSG(worst < 1e-5 * (1 + kd), "cpu_vec_gemm m=%d n=%d kd=%d acc=%d: err %.3g", m, n, kd, acc, worst);
        }
        free(A), free(Bm), free(C), free(C0);
    }
    enum { NX = 1000 };
    float x[NX + 1];
    for (int i = 0; i < NX; i++) x[i] = -87.0f * i / NX + (i % 3) * 0.3f;   /* [-87, 0.6] */
    x[NX] = -INFINITY;
    float xs[NX + 1];
    for (int i = 0; i <= NX; i++) xs[i] = x[i];
    float sum = cpu_vec_exp_sum(xs, NX + 1, 0.5f);
    double worst = 0, want_sum = 0;
    for (int i = 0; i < NX; i++) {
        double want = exp((double)(x[i] - 0.5f));   /* the float argument the kernel sees */
        want_sum += want;
        if ((double)x[i] - 0.5 >= -87.3) worst = fmax(worst, fabs(xs[i] - want) / want);
        else worst = fmax(worst, xs[i] > 1.2e-38 ? 1.0 : 0.0);   /* documented: flushed to 0 */
    }
    CHECK_MSG(worst < 5e-7, "cpu_vec_exp_sum: rel err %.3g", worst);
    CHECK(xs[NX] == 0.0f);
    CHECK_NEAR(want_sum, sum, 0, 1e-6);
    CHECK(cpu_vec_max(x, NX + 1) == x[2]);
    CHECK(cpu_vec_max(x + 1, 5) == x[2]);
}

int main(void) {
    be = backend_cpu_create();
    CHECK(be != NULL);
    if (!be) TEST_MAIN_END();
    ops_rng rng = {777};
    test_tile_kernels(&rng);
    /* One tile, GQA (2 query heads per kv head), Dqk != Dv, two batch rows: every
     * coordinate finite-differenced. */
    test_attention_case(&rng, 2, 7, 4, 2, 6, 5, 1.0f / sqrtf(6.0f), (size_t)-1);
    /* Large scores: exp overflows in float32 without the running max. */
    test_attention_case(&rng, 1, 7, 4, 2, 6, 5, 30.0f, 0);
    /* Several query and key tiles, a partial last tile, 3 query heads on 1 kv head. */
    test_attention_case(&rng, 1, 77, 3, 1, 8, 12, 0.35f, 200);
    /* Plain multi-head (Hq == Hkv), T past two key tiles. */
    test_attention_case(&rng, 2, 130, 2, 2, 16, 16, 0.25f, 150);
    /* A last key tile holding one key (T = 64 + 1): every coordinate checked. */
    test_attention_case(&rng, 1, 65, 2, 1, 5, 7, 0.4f, (size_t)-1);
    /* Single position. */
    test_attention_case(&rng, 1, 1, 2, 1, 4, 3, 0.5f, (size_t)-1);
    test_attention_causal(&rng);
    test_attention_two_host_threads(&rng);
    backend_free(be);
    TEST_MAIN_END();
}
