/* The CPU backend's ops (core/cpu/) against naive double-precision references written
 * here, and every backward against central differences of those references
 * (tests/ops_check.h). Attention has its own file, test_ops_cpu_attention.c.
 * Sizes are odd on purpose (T=7, D=12, V=11, ...) so no loop gets a round count. */
#include "core/backend.h"
#include "tests/harness.h"
#include "tests/ops_check.h"

#include <stdint.h>

/* float32 forward and backward vs double references: errors relative to the largest
 * reference value. */
#define TOL_FWD 2e-6
#define TOL_GRAD 2e-5

static backend *be;

/* ---- memory ---- */

static void test_memory(void) {
    const size_t n = 1000;
    float *a = be->alloc(be, n * sizeof(float));
    float *b = be->alloc(be, n * sizeof(float));
    CHECK(a && b);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= a[i] == 0.0f;
    CHECK_MSG(zero, "alloc must zero-fill");
    float host[1000], back[1000];
    for (size_t i = 0; i < n; i++) host[i] = (float)i * 0.5f - 7.0f;
    be->to_device(be, a, host, sizeof host);
    be->copy(be, b, a, sizeof host);
    be->to_host(be, back, b, sizeof back);
    CHECK(memcmp(host, back, sizeof host) == 0);
    be->zero(be, b, 10 * sizeof(float));
    be->synchronize(be);
    be->to_host(be, back, b, sizeof back);
    CHECK(back[9] == 0.0f && back[10] == host[10]);
    void *empty = be->alloc(be, 0);
    CHECK_MSG(empty != NULL, "alloc(0) must not look like a failure");
    be->free(be, empty);
    be->free(be, NULL);
    be->free(be, a);
    be->free(be, b);
}

/* ---- matmul ---- */

/* op(A)[i][p] read from storage, in double. */
static double mat_at(const float *A, int ld, int trans, int i, int p) {
    return trans ? A[(size_t)p * ld + i] : A[(size_t)i * ld + p];
}

static void test_matmul_case(ops_rng *r, int ta, int tb, int M, int N, int K, float alpha, float beta) {
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 4;
    int a_rows = ta ? K : M, b_rows = tb ? N : K;
    float *A = ops_random(r, (size_t)a_rows * lda, -1, 1);
    float *B = ops_random(r, (size_t)b_rows * ldb, -1, 1);
    float *C = ops_random(r, (size_t)M * ldc, -1, 1);
    float *C0 = ops_copy(C, (size_t)M * ldc);
    if (beta == 0.0f)
        for (int i = 0; i < M; i++) C[(size_t)i * ldc] = NAN;   /* beta 0 must not read C */
    be->matmul(be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double maxerr = 0, maxref = 1e-6;
    int pad_ok = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double want = beta == 0.0f ? 0.0 : (double)beta * C0[(size_t)i * ldc + j];
            double prod = 0;
            for (int p = 0; p < K; p++) prod += mat_at(A, lda, ta, i, p) * mat_at(B, ldb, tb, p, j);
            want += alpha * prod;
            double got = C[(size_t)i * ldc + j];
            double e = fabs(got - want);
            if (!(e <= maxerr)) maxerr = e != e ? INFINITY : e;
            if (fabs(want) > maxref) maxref = fabs(want);
        }
        for (int j = N; j < ldc; j++) pad_ok &= C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j];
    }
    CHECK_MSG(maxerr / maxref < 1e-5, "matmul ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g: rel err %.3g", ta, tb,
              M, N, K, alpha, beta, maxerr / maxref);
    CHECK_MSG(pad_ok, "matmul ta=%d tb=%d wrote past N in a row of C", ta, tb);
    free(A);
    free(B);
    free(C);
    free(C0);
}

static void test_matmul(ops_rng *r) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            test_matmul_case(r, ta, tb, 7, 5, 9, 0.7f, 0.3f);
            test_matmul_case(r, ta, tb, 13, 11, 3, 1.0f, 0.0f);
            test_matmul_case(r, ta, tb, 1, 17, 33, -2.0f, 1.0f);
            test_matmul_case(r, ta, tb, 5, 4, 0, 1.0f, 0.5f);   /* K = 0: C = beta C */
        }
}

/* Linear layer y = x W^T + b and its backward through matmul and bias_backward:
 * dx = dy W, dW += dy^T x, db += sum_rows dy. x: [T, IN], W: [OUT, IN], y: [T, OUT]. */
enum { LIN_T = 7, LIN_IN = 12, LIN_OUT = 5 };
typedef struct { double *x, *w, *b, *r; } linear_ctx;

static double linear_loss(void *p) {
    linear_ctx *c = p;
    double loss = 0;
    for (int t = 0; t < LIN_T; t++)
        for (int o = 0; o < LIN_OUT; o++) {
            double y = c->b[o];
            for (int i = 0; i < LIN_IN; i++) y += c->x[t * LIN_IN + i] * c->w[o * LIN_IN + i];
            loss += c->r[t * LIN_OUT + o] * y;
        }
    return loss;
}

static void test_linear_backward(ops_rng *r) {
    float *x = ops_random(r, LIN_T * LIN_IN, -1, 1), *w = ops_random(r, LIN_OUT * LIN_IN, -1, 1);
    float *b = ops_random(r, LIN_OUT, -1, 1), *dy = ops_random(r, LIN_T * LIN_OUT, -1, 1);
    float y[LIN_T * LIN_OUT], dx[LIN_T * LIN_IN];
    float *dw0 = ops_random(r, LIN_OUT * LIN_IN, -1, 1), *db0 = ops_random(r, LIN_OUT, -1, 1);
    float *dw = ops_copy(dw0, LIN_OUT * LIN_IN), *db = ops_copy(db0, LIN_OUT);
    linear_ctx c = {ops_to_double(x, LIN_T * LIN_IN), ops_to_double(w, LIN_OUT * LIN_IN), ops_to_double(b, LIN_OUT),
                    ops_to_double(dy, LIN_T * LIN_OUT)};

    be->matmul(be, 0, 1, LIN_T, LIN_OUT, LIN_IN, 1.0f, x, LIN_IN, w, LIN_IN, 0.0f, y, LIN_OUT);
    be->add_bias(be, y, b, LIN_T, LIN_OUT);
    double want_y[LIN_T * LIN_OUT];
    for (int t = 0; t < LIN_T; t++)
        for (int o = 0; o < LIN_OUT; o++) {
            double s = c.b[o];
            for (int i = 0; i < LIN_IN; i++) s += c.x[t * LIN_IN + i] * c.w[o * LIN_IN + i];
            want_y[t * LIN_OUT + o] = s;
        }
    CHECK_MSG(ops_rel_err_d(y, want_y, LIN_T * LIN_OUT, 1e-6) < TOL_FWD, "linear forward");

    be->matmul(be, 0, 0, LIN_T, LIN_IN, LIN_OUT, 1.0f, dy, LIN_OUT, w, LIN_IN, 0.0f, dx, LIN_IN);
    be->matmul(be, 1, 0, LIN_OUT, LIN_IN, LIN_T, 1.0f, dy, LIN_OUT, x, LIN_IN, 1.0f, dw, LIN_IN);
    be->bias_backward(be, db, dy, LIN_T, LIN_OUT);
    for (int i = 0; i < LIN_OUT * LIN_IN; i++) dw[i] -= dw0[i];   /* accumulated: keep the increment */
    for (int i = 0; i < LIN_OUT; i++) db[i] -= db0[i];
    CHECK(ops_fd_check("linear dx", linear_loss, &c, c.x, LIN_T * LIN_IN, dx, 1000, r) < TOL_GRAD);
    CHECK(ops_fd_check("linear dW", linear_loss, &c, c.w, LIN_OUT * LIN_IN, dw, 1000, r) < TOL_GRAD);
    CHECK(ops_fd_check("linear db", linear_loss, &c, c.b, LIN_OUT, db, 1000, r) < TOL_GRAD);
    free(x), free(w), free(b), free(dy), free(dw0), free(db0), free(dw), free(db);
    free(c.x), free(c.w), free(c.b), free(c.r);
}

/* ---- elementwise ---- */

static void test_elementwise_n(ops_rng *r, size_t n) {
    float *a = ops_random(r, n, -2, 2), *b = ops_random(r, n, -2, 2), *out = malloc(n * sizeof(float));
    float *y = ops_copy(a, n);
    be->add(be, out, a, b, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= out[i] == a[i] + b[i];
    CHECK_MSG(ok, "add n=%zu", n);
    be->axpy(be, y, -0.75f, b, n);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= fabsf(y[i] - (a[i] - 0.75f * b[i])) <= 1e-6f;
    CHECK_MSG(ok, "axpy n=%zu", n);
    be->scale(be, y, 3.0f, n);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= fabsf(y[i] - 3.0f * (a[i] - 0.75f * b[i])) <= 1e-5f;
    CHECK_MSG(ok, "scale n=%zu", n);
    double want = 0;
    for (size_t i = 0; i < n; i++) want += (double)a[i] * a[i];
    CHECK_NEAR(want, be->sum_squares(be, a, n), 0, 1e-12);
    be->add(be, a, a, b, n);   /* out may alias an input */
    CHECK(a[n - 1] == out[n - 1]);
    free(a), free(b), free(out), free(y);
}

/* add_bias forward; bias_backward accumulates the column sums (checked on a size large
 * enough for the parallel path). */
static void test_bias(ops_rng *r, int rows, int d) {
    size_t n = (size_t)rows * d;
    float *x = ops_random(r, n, -1, 1), *bias = ops_random(r, d, -1, 1), *y = ops_copy(x, n);
    be->add_bias(be, y, bias, rows, d);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= y[i] == x[i] + bias[i % d];
    CHECK_MSG(ok, "add_bias rows=%d d=%d", rows, d);
    float *db = ops_random(r, d, -1, 1), *db0 = ops_copy(db, d);
    be->bias_backward(be, db, x, rows, d);
    double worst = 0;
    for (int j = 0; j < d; j++) {
        double s = db0[j];
        for (int i = 0; i < rows; i++) s += x[(size_t)i * d + j];
        double e = fabs(s - db[j]);
        if (!(e <= worst)) worst = e != e ? INFINITY : e;
    }
    CHECK_MSG(worst < 1e-5 * (1 + sqrt(rows)), "bias_backward rows=%d d=%d: err %.3g", rows, d, worst);
    free(x), free(bias), free(y), free(db), free(db0);
}

/* ---- embedding ---- */

enum { EMB_V = 11, EMB_D = 12, EMB_T = 7 };
typedef struct { double *table, *r; const int32_t *ids; } emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    double loss = 0;
    for (int t = 0; t < EMB_T; t++)
        for (int j = 0; j < EMB_D; j++) loss += c->r[t * EMB_D + j] * c->table[c->ids[t] * EMB_D + j];
    return loss;
}

static void test_embedding(ops_rng *r) {
    const int32_t ids[EMB_T] = {3, 0, 10, 3, 7, 3, 0};   /* repeats: the scatter-add must sum them */
    float *table = ops_random(r, EMB_V * EMB_D, -1, 1), out[EMB_T * EMB_D];
    be->embedding_forward(be, out, ids, table, EMB_T, EMB_D);
    int ok = 1;
    for (int t = 0; t < EMB_T; t++)
        for (int j = 0; j < EMB_D; j++) ok &= out[t * EMB_D + j] == table[ids[t] * EMB_D + j];
    CHECK_MSG(ok, "embedding_forward copies rows");
    float *dout = ops_random(r, EMB_T * EMB_D, -1, 1);
    float *dtable = ops_random(r, EMB_V * EMB_D, -1, 1), *dtable0 = ops_copy(dtable, EMB_V * EMB_D);
    be->embedding_backward(be, dtable, ids, dout, EMB_T, EMB_D);
    for (int i = 0; i < EMB_V * EMB_D; i++) dtable[i] -= dtable0[i];
    emb_ctx c = {ops_to_double(table, EMB_V * EMB_D), ops_to_double(dout, EMB_T * EMB_D), ids};
    CHECK(ops_fd_check("embedding dtable", emb_loss, &c, c.table, EMB_V * EMB_D, dtable, 1000, r) < TOL_GRAD);
    free(table), free(dout), free(dtable), free(dtable0), free(c.table), free(c.r);
}

/* ---- SwiGLU ---- */

enum { SW_N = 37 };
typedef struct { double *gate, *up, *r; } swiglu_ctx;

static double silu_d(double g) { return g / (1.0 + exp(-g)); }

static double swiglu_loss(void *p) {
    swiglu_ctx *c = p;
    double loss = 0;
    for (int i = 0; i < SW_N; i++) loss += c->r[i] * silu_d(c->gate[i]) * c->up[i];
    return loss;
}

static void test_swiglu(ops_rng *r) {
    float *gate = ops_random(r, SW_N, -6, 6), *up = ops_random(r, SW_N, -2, 2), *dout = ops_random(r, SW_N, -1, 1);
    gate[0] = -90.0f;   /* far tails: no overflow, no NaN */
    gate[1] = 90.0f;
    float out[SW_N], dgate[SW_N], dup[SW_N];
    swiglu_ctx c = {ops_to_double(gate, SW_N), ops_to_double(up, SW_N), ops_to_double(dout, SW_N)};
    be->swiglu_forward(be, out, gate, up, SW_N);
    double want[SW_N];
    for (int i = 0; i < SW_N; i++) want[i] = silu_d(c.gate[i]) * c.up[i];
    CHECK_MSG(ops_rel_err_d(out, want, SW_N, 1e-6) < TOL_FWD, "swiglu forward");
    be->swiglu_backward(be, dgate, dup, dout, gate, up, SW_N);
    CHECK(ops_fd_check("swiglu dgate", swiglu_loss, &c, c.gate, SW_N, dgate, 1000, r) < TOL_GRAD);
    CHECK(ops_fd_check("swiglu dup", swiglu_loss, &c, c.up, SW_N, dup, 1000, r) < TOL_GRAD);
    free(gate), free(up), free(dout), free(c.gate), free(c.up), free(c.r);
}

/* ---- token log-probabilities ---- */

typedef struct { double *logits, *r; const int32_t *targets; int N, V; } logprob_ctx;

/* logits[i, t] - log sum_j exp(logits[i, j]), in double, max subtracted. */
static double logprob_d(const double *l, int V, int t, double *lse_out) {
    double mx = l[0], s = 0;
    for (int j = 1; j < V; j++) mx = l[j] > mx ? l[j] : mx;
    for (int j = 0; j < V; j++) s += exp(l[j] - mx);
    double lse = mx + log(s);
    if (lse_out) *lse_out = lse;
    return t < 0 ? 0.0 : l[t] - lse;
}

static double logprob_loss(void *p) {
    logprob_ctx *c = p;
    double loss = 0;
    for (int i = 0; i < c->N; i++)
        loss += c->r[i] * logprob_d(c->logits + (size_t)i * c->V, c->V, c->targets[i], NULL);
    return loss;
}

/* Rows 1 and 4 (if present) are ignored; row 5 (if present) is shifted by +200 so a
 * sum of exps without the max subtracted would overflow. */
static void test_token_logprobs(ops_rng *r, int N, int V, size_t fd_samples) {
    size_t n = (size_t)N * V;
    int32_t *targets = malloc((size_t)N * sizeof *targets);
    for (int i = 0; i < N; i++) targets[i] = (i == 1 || i == 4) ? -1 - i * 20 : ops_rng_int(r, V);
    if (N > 3) targets[3] = V - 1;
    float *logits = ops_random(r, n, -4, 4), *dlp = ops_random(r, N, -1, 1);
    if (N > 5)
        for (int j = 0; j < V; j++) logits[5 * (size_t)V + j] += 200.0f;
    float *lp = malloc(N * sizeof(float)), *lse = malloc(N * sizeof(float)), *dlogits = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) dlogits[i] = NAN;   /* written, not accumulated */
    logprob_ctx c = {ops_to_double(logits, n), ops_to_double(dlp, N), targets, N, V};
    be->token_logprobs_forward(be, lp, lse, logits, targets, N, V);
    for (int i = 0; i < N; i++) {
        double want_lse, want = logprob_d(c.logits + (size_t)i * V, V, targets[i], &want_lse);
        CHECK_NEAR(want_lse, lse[i], 1e-6, 1e-6);
        if (targets[i] < 0) CHECK_INT(1, lp[i] == 0.0f);
        else CHECK_NEAR(want, lp[i], 2e-5, 1e-6);   /* float rounding of l[t] - lse near 200 */
    }
    be->token_logprobs_backward(be, dlogits, logits, lse, targets, dlp, N, V);
    int zero_rows = 1;
    for (int i = 0; i < N; i++)
        if (targets[i] < 0)
            for (int j = 0; j < V; j++) zero_rows &= dlogits[(size_t)i * V + j] == 0.0f;
    CHECK_MSG(zero_rows, "ignored targets give zero gradient rows (N=%d V=%d)", N, V);
    /* Every coordinate (FD below samples some) against the closed form in double. */
    double *want_d = malloc(n * sizeof *want_d);
    for (int i = 0; i < N; i++) {
        double z;
        logprob_d(c.logits + (size_t)i * V, V, 0, &z);
        for (int j = 0; j < V; j++) {
            double p = exp(c.logits[(size_t)i * V + j] - z);
            want_d[(size_t)i * V + j] = targets[i] < 0 ? 0.0 : c.r[i] * ((j == targets[i]) - p);
        }
    }
    CHECK_MSG(ops_rel_err_d(dlogits, want_d, n, 1e-3) < TOL_GRAD, "logprobs dlogits closed form N=%d V=%d", N, V);
    free(want_d);
    char what[64];
    snprintf(what, sizeof what, "logprobs dlogits N=%d V=%d", N, V);
    CHECK_MSG(ops_fd_check(what, logprob_loss, &c, c.logits, n, dlogits, fd_samples, r) < TOL_GRAD, "%s", what);
    free(targets), free(logits), free(dlp), free(lp), free(lse), free(dlogits), free(c.logits), free(c.r);
}

/* ---- RMSNorm ---- */

enum { RN_N = 7, RN_D = 12 };
#define RN_EPS 1e-5f
typedef struct { double *x, *w, *r; } rmsnorm_ctx;

static void rmsnorm_d(double *out, double *rstd, const double *x, const double *w) {
    for (int n = 0; n < RN_N; n++) {
        double ss = 0;
        for (int i = 0; i < RN_D; i++) ss += x[n * RN_D + i] * x[n * RN_D + i];
        double rs = 1.0 / sqrt(ss / RN_D + (double)RN_EPS);
        rstd[n] = rs;
        for (int i = 0; i < RN_D; i++) out[n * RN_D + i] = x[n * RN_D + i] * rs * w[i];
    }
}

static double rmsnorm_loss(void *p) {
    rmsnorm_ctx *c = p;
    double out[RN_N * RN_D], rstd[RN_N], loss = 0;
    rmsnorm_d(out, rstd, c->x, c->w);
    for (int i = 0; i < RN_N * RN_D; i++) loss += c->r[i] * out[i];
    return loss;
}

static void test_rmsnorm(ops_rng *r) {
    float *x = ops_random(r, RN_N * RN_D, -2, 2), *w = ops_random(r, RN_D, 0.5f, 1.5f);
    float *dout = ops_random(r, RN_N * RN_D, -1, 1);
    for (int i = 0; i < RN_D; i++) x[3 * RN_D + i] *= 1e-3f;   /* a small row: eps matters */
    float out[RN_N * RN_D], rstd[RN_N], dx[RN_N * RN_D];
    float *dw = ops_random(r, RN_D, -1, 1), *dw0 = ops_copy(dw, RN_D);
    rmsnorm_ctx c = {ops_to_double(x, RN_N * RN_D), ops_to_double(w, RN_D), ops_to_double(dout, RN_N * RN_D)};
    be->rmsnorm_forward(be, out, rstd, x, w, RN_N, RN_D, RN_EPS);
    double want[RN_N * RN_D], want_rstd[RN_N];
    rmsnorm_d(want, want_rstd, c.x, c.w);
    CHECK_MSG(ops_rel_err_d(out, want, RN_N * RN_D, 1e-6) < TOL_FWD, "rmsnorm forward");
    CHECK_MSG(ops_rel_err_d(rstd, want_rstd, RN_N, 1e-6) < TOL_FWD, "rmsnorm rstd");
    be->rmsnorm_backward(be, dx, dw, dout, x, w, rstd, RN_N, RN_D);
    for (int i = 0; i < RN_D; i++) dw[i] -= dw0[i];
    CHECK(ops_fd_check("rmsnorm dx", rmsnorm_loss, &c, c.x, RN_N * RN_D, dx, 1000, r) < TOL_GRAD);
    CHECK(ops_fd_check("rmsnorm dw", rmsnorm_loss, &c, c.w, RN_D, dw, 1000, r) < TOL_GRAD);
    free(x), free(w), free(dout), free(dw), free(dw0), free(c.x), free(c.w), free(c.r);
}

/* ---- RoPE ---- */

enum { RP_T = 7, RP_H = 3, RP_STRIDE = 10, RP_ROT = 6, RP_MAXPOS = 16 };
typedef struct { double *x, *r; const int32_t *pos; const float *cos_tab, *sin_tab; int interleaved; } rope_ctx;

/* Rotates pairs of x (double, [T, H, STRIDE]) by +angle, straight from the definition. */
static void rope_d(double *y, const double *x, const int32_t *pos, const float *cos_tab, const float *sin_tab,
                   int interleaved) {
    const int half = RP_ROT / 2;
    for (int i = 0; i < RP_T * RP_H * RP_STRIDE; i++) y[i] = x[i];
    for (int t = 0; t < RP_T; t++)
        for (int h = 0; h < RP_H; h++) {
            const double *a = x + (t * RP_H + h) * RP_STRIDE;
            double *o = y + (t * RP_H + h) * RP_STRIDE;
            for (int i = 0; i < half; i++) {
                int i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
                double c = cos_tab[pos[t] * half + i], s = sin_tab[pos[t] * half + i];
                o[i1] = a[i1] * c - a[i2] * s;
                o[i2] = a[i2] * c + a[i1] * s;
            }
        }
}

static double rope_loss(void *p) {
    rope_ctx *c = p;
    double y[RP_T * RP_H * RP_STRIDE], loss = 0;
    rope_d(y, c->x, c->pos, c->cos_tab, c->sin_tab, c->interleaved);
    for (int i = 0; i < RP_T * RP_H * RP_STRIDE; i++) loss += c->r[i] * y[i];
    return loss;
}

static void test_rope(ops_rng *r) {
    const int n = RP_T * RP_H * RP_STRIDE, half = RP_ROT / 2;
    const int32_t pos[RP_T] = {0, 1, 2, 15, 9, 9, 4};
    float cos_tab[RP_MAXPOS * RP_ROT / 2], sin_tab[RP_MAXPOS * RP_ROT / 2];
    for (int p = 0; p < RP_MAXPOS; p++)
        for (int i = 0; i < half; i++) {
            double theta = p * pow(10000.0, -2.0 * i / RP_ROT);
            cos_tab[p * half + i] = (float)cos(theta);
            sin_tab[p * half + i] = (float)sin(theta);
        }
    for (int interleaved = 0; interleaved < 2; interleaved++) {
        float *x = ops_random(r, n, -1, 1), *y = ops_copy(x, n), *dout = ops_random(r, n, -1, 1);
        rope_ctx c = {ops_to_double(x, n), ops_to_double(dout, n), pos, cos_tab, sin_tab, interleaved};
        be->rope(be, y, RP_T, RP_H, RP_STRIDE, RP_ROT, pos, cos_tab, sin_tab, interleaved, 0);
        double want[RP_T * RP_H * RP_STRIDE];
        rope_d(want, c.x, pos, cos_tab, sin_tab, interleaved);
        CHECK_MSG(ops_rel_err_d(y, want, n, 1e-6) < TOL_FWD, "rope forward interleaved=%d", interleaved);
        int tail_same = 1;
        for (int i = 0; i < n; i++)
            if (i % RP_STRIDE >= RP_ROT) tail_same &= y[i] == x[i];
        CHECK_MSG(tail_same, "rope leaves numbers past rot_dim alone (interleaved=%d)", interleaved);
        be->rope(be, y, RP_T, RP_H, RP_STRIDE, RP_ROT, pos, cos_tab, sin_tab, interleaved, 1);
        CHECK_MSG(harness_max_rel_err(y, x, n, 1e-6) < 1e-6, "rope inverse round trip interleaved=%d",
                  interleaved);
        /* Backward of the rotation = inverse rotation of dout. */
        float *dx = ops_copy(dout, n);
        be->rope(be, dx, RP_T, RP_H, RP_STRIDE, RP_ROT, pos, cos_tab, sin_tab, interleaved, 1);
        CHECK(ops_fd_check(interleaved ? "rope dx (interleaved)" : "rope dx", rope_loss, &c, c.x, n, dx, 1000, r) <
              TOL_GRAD);
        free(x), free(y), free(dout), free(dx), free(c.x), free(c.r);
    }
}

/* ---- AdamW ---- */

static void test_adamw(ops_rng *r) {
    enum { N = 29 };
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
    float *p = ops_random(r, N, -1, 1), m[N] = {0}, v[N] = {0};
    double pd[N], md[N] = {0}, vd[N] = {0};
    for (int i = 0; i < N; i++) pd[i] = p[i];
    for (int step = 1; step <= 3; step++) {
        float *g = ops_random(r, N, -1, 1);
        g[0] = 0.0f;   /* zero gradient: only decay moves it */
        be->adamw(be, p, g, m, v, N, lr, b1, b2, eps, wd, step);
        for (int i = 0; i < N; i++) {
            md[i] = b1 * md[i] + (1.0 - b1) * g[i];
            vd[i] = b2 * vd[i] + (1.0 - b2) * (double)g[i] * g[i];
            double mhat = md[i] / (1.0 - pow(b1, step)), vhat = vd[i] / (1.0 - pow(b2, step));
            pd[i] -= lr * (mhat / (sqrt(vhat) + eps) + wd * pd[i]);
        }
        double em = 0, ev = 0, ep = 0;
        for (int i = 0; i < N; i++) {
            em = fmax(em, fabs(m[i] - md[i]));
            ev = fmax(ev, fabs(v[i] - vd[i]));
            ep = fmax(ep, fabs(p[i] - pd[i]));
        }
        CHECK_MSG(em < 1e-6 && ev < 1e-6 && ep < 1e-6, "adamw step %d: errors m %.3g v %.3g param %.3g", step, em,
                  ev, ep);
        free(g);
    }
    free(p);
}

int main(void) {
    be = backend_cpu_create();
    CHECK(be != NULL);
    if (!be) TEST_MAIN_END();
    CHECK_STR("cpu", be->name);
    ops_rng r = {12345};
    test_memory();
    test_matmul(&r);
    test_linear_backward(&r);
    test_elementwise_n(&r, 13);
    test_elementwise_n(&r, 40001);   /* long enough for the threaded path */
    test_bias(&r, 7, 12);
    test_bias(&r, 301, 129);
    test_embedding(&r);
    test_swiglu(&r);
    test_token_logprobs(&r, 7, 11, (size_t)-1);
    test_token_logprobs(&r, 6, 2500, 400);   /* vector path and several summing blocks */
    test_rmsnorm(&r);
    test_rope(&r);
    test_adamw(&r);
    backend_free(be);
    TEST_MAIN_END();
}
