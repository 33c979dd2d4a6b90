/* Multi-head Latent Attention (model/mla.h) on the CPU backend, at odd sizes
 * (hidden 24, 3 heads, q_lora_rank 10 and 0, kv_lora_rank 8, nope 4, rope 6, v 5, B 2, T 7):
 *  - the backend's interleaved RoPE equals transformers' apply_rotary_pos_emb_interleave
 *    (element by element after its even/odd reordering, and in every q . k);
 *  - mla_forward against a double-precision reference written here (K and V materialised,
 *    explicit loops, explicit causal softmax);
 *  - mla_backward against central finite differences for every weight and for x, and
 *    accumulation into the gradients;
 *  - mla_decode (absorbed attention over the latent cache) equals mla_forward when the
 *    same tokens are prefilled in chunks (3 + 4), one at a time, in one call, and in small
 *    query blocks; the cache rows equal the forward's latent and rotated k_pe;
 *  - parity with transformers' DeepseekV3Attention (output, gradients, decode) on the
 *    fixtures of tests/fixtures/make_mla_fixtures.py (one with q_lora_rank 0 and YaRN);
 *  - cache floats per token: kv_lora_rank + qk_rope_head_dim, beside the MHA count;
 *  - bad configs, missing weights and bad positions fail with a message. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/safetensors.h"
#include "model/mla.h"
#include "model/mla_impl.h"
#include "tests/harness.h"

static backend *be;

/* ---- helpers ---- */

static uint64_t lcg_state = 2024;
static double uniform(void) {   /* [-1, 1) */
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return 2.0 * ((double)(lcg_state >> 11) / 9007199254740992.0) - 1.0;
}

static float *dev_alloc(size_t n) {
    float *p = be->alloc(be, (n ? n : 1) * sizeof(float));
    GRPO_ASSERT(p);
    return p;
}

static void fill_uniform(float *host, size_t n, double center, double scale) {
    for (size_t i = 0; i < n; i++) host[i] = (float)(center + scale * uniform());
}

static float get_elem(const float *dev, size_t i) {
    float v;
    be->to_host(be, &v, dev + i, sizeof v);
    return v;
}

static void set_elem(float *dev, size_t i, float v) { be->to_device(be, dev + i, &v, sizeof v); }

static mla_config tiny_config(int q_lora_rank) {
    mla_config c = {
        .hidden_size = 24,
        .num_heads = 3,
        .q_lora_rank = q_lora_rank,
        .kv_lora_rank = 8,
        .qk_nope_head_dim = 4,
        .qk_rope_head_dim = 6,
        .v_head_dim = 5,
        .rms_norm_eps = 1e-6f,
    };
    c.softmax_scale = 1.0f / sqrtf((float)(c.qk_nope_head_dim + c.qk_rope_head_dim));
    return c;
}

/* One layer's weights: host copies (for the reference) and backend copies. */
enum { W_Q_A, W_Q_A_NORM, W_Q_B, W_Q, W_KV_A, W_KV_A_NORM, W_KV_B, W_O, W_COUNT };
static const char *weight_names[W_COUNT] = {"q_a_proj", "q_a_layernorm", "q_b_proj", "q_proj",
                                            "kv_a_proj_with_mqa", "kv_a_layernorm", "kv_b_proj", "o_proj"};

typedef struct {
    size_t numel[W_COUNT];
    float *host[W_COUNT];
    float *dev[W_COUNT];
    float *grad[W_COUNT];
    mla_weights w, g;
} layer;

static void weight_sizes(const mla_config *c, size_t *numel) {
    size_t D = c->hidden_size, H = c->num_heads, rq = c->q_lora_rank, rkv = c->kv_lora_rank;
    size_t Dqk = (size_t)c->qk_nope_head_dim + c->qk_rope_head_dim, dv = c->v_head_dim;
    size_t dr = c->qk_rope_head_dim, dn = c->qk_nope_head_dim;
    numel[W_Q_A] = rq * D;
    numel[W_Q_A_NORM] = rq;
    numel[W_Q_B] = H * Dqk * rq;
    numel[W_Q] = rq ? 0 : H * Dqk * D;
    numel[W_KV_A] = (rkv + dr) * D;
    numel[W_KV_A_NORM] = rkv;
    numel[W_KV_B] = H * (dn + dv) * rkv;
    numel[W_O] = D * H * dv;
}

static void layer_init(layer *L, const mla_config *c) {
    memset(L, 0, sizeof *L);
    weight_sizes(c, L->numel);
    size_t fan_in[W_COUNT] = {(size_t)c->hidden_size, 1, (size_t)c->q_lora_rank, (size_t)c->hidden_size,
                              (size_t)c->hidden_size, 1, (size_t)c->kv_lora_rank,
                              (size_t)c->num_heads * c->v_head_dim};
    for (int i = 0; i < W_COUNT; i++) {
        if (L->numel[i] == 0) continue;
        L->host[i] = malloc(L->numel[i] * sizeof(float));
        int is_norm = i == W_Q_A_NORM || i == W_KV_A_NORM;
        /* Norm weights 1 +- 0.2 (so their gradients are generic); matrices scaled so the
         * activations stay O(1) and the softmax is neither flat nor one-hot. */
        if (is_norm) fill_uniform(L->host[i], L->numel[i], 1.0, 0.2);
        else fill_uniform(L->host[i], L->numel[i], 0.0, 1.7 / sqrt((double)fan_in[i]));
        L->dev[i] = dev_alloc(L->numel[i]);
        L->grad[i] = dev_alloc(L->numel[i]);
        be->to_device(be, L->dev[i], L->host[i], L->numel[i] * sizeof(float));
    }
    float **wp[W_COUNT] = {&L->w.q_a_proj, &L->w.q_a_layernorm, &L->w.q_b_proj, &L->w.q_proj,
                           &L->w.kv_a_proj_with_mqa, &L->w.kv_a_layernorm, &L->w.kv_b_proj, &L->w.o_proj};
    float **gp[W_COUNT] = {&L->g.q_a_proj, &L->g.q_a_layernorm, &L->g.q_b_proj, &L->g.q_proj,
                           &L->g.kv_a_proj_with_mqa, &L->g.kv_a_layernorm, &L->g.kv_b_proj, &L->g.o_proj};
    for (int i = 0; i < W_COUNT; i++) {
        *wp[i] = L->numel[i] ? L->dev[i] : NULL;
        *gp[i] = L->numel[i] ? L->grad[i] : NULL;
    }
}

static void layer_free(layer *L) {
    for (int i = 0; i < W_COUNT; i++) {
        free(L->host[i]);
        be->free(be, L->dev[i]);
        be->free(be, L->grad[i]);
    }
}

/* RoPE tables [max_pos, rope/2]: angle p * theta^(-2i/rope) with a small theta, so every
 * pair turns visibly over a few positions. */
#define MAX_POS 32
static void rope_tables(int dr, float *cos_h, float *sin_h) {
    for (int p = 0; p < MAX_POS; p++)
        for (int i = 0; i < dr / 2; i++) {
            double ang = p * pow(50.0, -2.0 * i / dr);
            cos_h[p * (dr / 2) + i] = (float)cos(ang);
            sin_h[p * (dr / 2) + i] = (float)sin(ang);
        }
}

/* ---- RoPE convention ---- */

/* transformers' apply_rotary_pos_emb_interleave for one vector of rope numbers at one
 * position: x1 = x[0::2], x2 = x[1::2], out = cat(x1 cos - x2 sin, x2 cos + x1 sin). */
static void hf_rope_interleave(const float *x, int dr, const float *c, const float *s, double *out) {
    for (int i = 0; i < dr / 2; i++) {
        double x1 = x[2 * i], x2 = x[2 * i + 1];
        out[i] = x1 * c[i] - x2 * s[i];
        out[i + dr / 2] = x2 * c[i] + x1 * s[i];
    }
}

static void test_rope_convention(void) {
    enum { DR = 6, HEADS = 2, TOK = 3 };
    float cos_h[MAX_POS * DR / 2], sin_h[MAX_POS * DR / 2];
    rope_tables(DR, cos_h, sin_h);
    int32_t pos_h[TOK] = {0, 5, 11};
    float q_h[TOK * HEADS * DR], k_h[TOK * DR];
    fill_uniform(q_h, TOK * HEADS * DR, 0.0, 1.0);
    fill_uniform(k_h, TOK * DR, 0.0, 1.0);
    float *q = dev_alloc(TOK * HEADS * DR), *k = dev_alloc(TOK * DR), *cs = dev_alloc(MAX_POS * DR / 2),
          *sn = dev_alloc(MAX_POS * DR / 2);
    int32_t *pos = (int32_t *)dev_alloc(TOK);
    be->to_device(be, q, q_h, sizeof q_h);
    be->to_device(be, k, k_h, sizeof k_h);
    be->to_device(be, cs, cos_h, sizeof cos_h);
    be->to_device(be, sn, sin_h, sizeof sin_h);
    be->to_device(be, pos, pos_h, sizeof pos_h);
    be->rope(be, q, TOK, HEADS, DR, DR, pos, cs, sn, 1, 0);
    be->rope(be, k, TOK, 1, DR, DR, pos, cs, sn, 1, 0);
    float qr[TOK * HEADS * DR], kr[TOK * DR];
    be->to_host(be, qr, q, sizeof qr);
    be->to_host(be, kr, k, sizeof kr);
    for (int t = 0; t < TOK; t++) {
        const float *c = cos_h + pos_h[t] * DR / 2, *s = sin_h + pos_h[t] * DR / 2;
        double hk[DR];
        hf_rope_interleave(k_h + t * DR, DR, c, s, hk);
        for (int h = 0; h < HEADS; h++) {
            double hq[DR], dot_hf = 0, dot_ours = 0;
            hf_rope_interleave(q_h + (t * HEADS + h) * DR, DR, c, s, hq);
            const float *oq = qr + (t * HEADS + h) * DR;
            /* Ours keeps pairs in place (2i, 2i+1); HF writes evens first, then odds. */
            for (int i = 0; i < DR / 2; i++) {
                CHECK_NEAR(hq[i], oq[2 * i], 1e-6, 1e-6);
                CHECK_NEAR(hq[i + DR / 2], oq[2 * i + 1], 1e-6, 1e-6);
            }
            for (int i = 0; i < DR; i++) {
                dot_hf += hq[i] * hk[i];
                dot_ours += (double)oq[i] * kr[t * DR + i];
            }
            CHECK_NEAR(dot_hf, dot_ours, 1e-5, 1e-5);
        }
    }
    be->free(be, q);
    be->free(be, k);
    be->free(be, cs);
    be->free(be, sn);
    be->free(be, pos);
}

/* ---- double-precision reference ---- */

static void ref_linear(const float *W, const double *x, int in, int out, double *y) {
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += (double)W[(size_t)o * in + i] * x[i];
        y[o] = s;
    }
}

static void ref_rmsnorm(double *x, const float *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) x[i] = x[i] * r * w[i];
}

/* Rotates pairs (2i, 2i+1) by the table angle of position p. */
static void ref_rope(double *x, int dr, int p, const float *cos_h, const float *sin_h) {
    for (int i = 0; i < dr / 2; i++) {
        double c = cos_h[p * (dr / 2) + i], s = sin_h[p * (dr / 2) + i];
        double a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = b * c + a * s;
    }
}

/* out[B*T, hidden]: transformers' DeepseekV3Attention.forward, eager path, in double. */
static void ref_forward(const mla_config *c, const layer *L, const float *x, const int32_t *pos,
                        const float *cos_h, const float *sin_h, int B, int T, double *out) {
    int D = c->hidden_size, H = c->num_heads, rq = c->q_lora_rank, rkv = c->kv_lora_rank;
    int dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim, dv = c->v_head_dim, Dqk = dn + dr, N = B * T;
    double *q = calloc((size_t)N * H * Dqk, sizeof(double)), *k = calloc((size_t)N * H * Dqk, sizeof(double));
    double *v = calloc((size_t)N * H * dv, sizeof(double)), *att = calloc((size_t)N * H * dv, sizeof(double));
    double *xd = malloc(D * sizeof(double)), *qa = malloc((rq + 1) * sizeof(double));
    double *ckv = malloc((rkv + dr) * sizeof(double)), *kv = malloc((size_t)H * (dn + dv) * sizeof(double));
    double *p = malloc(T * sizeof(double));
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < D; i++) xd[i] = x[(size_t)n * D + i];
        double *qn = q + (size_t)n * H * Dqk;
        if (rq > 0) {
            ref_linear(L->host[W_Q_A], xd, D, rq, qa);
            ref_rmsnorm(qa, L->host[W_Q_A_NORM], rq, c->rms_norm_eps);
            ref_linear(L->host[W_Q_B], qa, rq, H * Dqk, qn);
        } else {
            ref_linear(L->host[W_Q], xd, D, H * Dqk, qn);
        }
        for (int h = 0; h < H; h++) ref_rope(qn + h * Dqk + dn, dr, pos[n], cos_h, sin_h);
        ref_linear(L->host[W_KV_A], xd, D, rkv + dr, ckv);
        ref_rmsnorm(ckv, L->host[W_KV_A_NORM], rkv, c->rms_norm_eps);
        ref_rope(ckv + rkv, dr, pos[n], cos_h, sin_h);
        ref_linear(L->host[W_KV_B], ckv, rkv, H * (dn + dv), kv);
        for (int h = 0; h < H; h++) {
            double *kh = k + ((size_t)n * H + h) * Dqk, *vh = v + ((size_t)n * H + h) * dv;
            for (int i = 0; i < dn; i++) kh[i] = kv[h * (dn + dv) + i];
            for (int i = 0; i < dr; i++) kh[dn + i] = ckv[rkv + i];
            for (int i = 0; i < dv; i++) vh[i] = kv[h * (dn + dv) + dn + i];
        }
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const double *qt = q + (((size_t)b * T + t) * H + h) * Dqk;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const double *kj = k + (((size_t)b * T + j) * H + h) * Dqk;
                    double s = 0;
                    for (int i = 0; i < Dqk; i++) s += qt[i] * kj[i];
                    p[j] = s * c->softmax_scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
                double *o = att + (((size_t)b * T + t) * H + h) * dv;
                for (int j = 0; j <= t; j++) {
                    const double *vj = v + (((size_t)b * T + j) * H + h) * dv;
                    for (int i = 0; i < dv; i++) o[i] += p[j] / sum * vj[i];
                }
            }
    for (int n = 0; n < N; n++) {
        const float *Wo = L->host[W_O];
        for (int o = 0; o < D; o++) {
            double s = 0;
            for (int i = 0; i < H * dv; i++) s += (double)Wo[(size_t)o * H * dv + i] * att[(size_t)n * H * dv + i];
            out[(size_t)n * D + o] = s;
        }
    }
    free(q);
    free(k);
    free(v);
    free(att);
    free(xd);
    free(qa);
    free(ckv);
    free(kv);
    free(p);
}

/* ---- a prepared problem: weights, input, positions, tables, buffers ---- */

typedef struct {
    mla_config cfg;
    layer L;
    int B, T, N;
    float *x_h;          /* [N, D] host */
    int32_t pos_h[64];   /* [N] host */
    float cos_h[MAX_POS * 8], sin_h[MAX_POS * 8];
    float *x, *out, *acts, *scratch, *dout, *dx, *cos, *sin;
    int32_t *pos;
} problem;

/* Weights, input and buffers for P->cfg, batch [B, T]. */
static void problem_init_config(problem *P, int B, int T) {
    layer_init(&P->L, &P->cfg);
    P->B = B;
    P->T = T;
    P->N = B * T;
    GRPO_ASSERT(P->N <= 64 && P->cfg.qk_rope_head_dim <= 16);
    int D = P->cfg.hidden_size, dr = P->cfg.qk_rope_head_dim;
    P->x_h = malloc((size_t)P->N * D * sizeof(float));
    fill_uniform(P->x_h, (size_t)P->N * D, 0.0, 1.0);
    /* Sequence b starts at position 3b: positions need not start at 0. */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) P->pos_h[b * T + t] = 3 * b + t;
    rope_tables(dr, P->cos_h, P->sin_h);
    P->x = dev_alloc((size_t)P->N * D);
    P->out = dev_alloc((size_t)P->N * D);
    P->dout = dev_alloc((size_t)P->N * D);
    P->dx = dev_alloc((size_t)P->N * D);
    P->acts = dev_alloc(mla_activation_floats(&P->cfg, B, T));
    P->scratch = dev_alloc(mla_scratch_floats(&P->cfg, B, T));
    P->cos = dev_alloc(MAX_POS * dr / 2);
    P->sin = dev_alloc(MAX_POS * dr / 2);
    P->pos = (int32_t *)dev_alloc(P->N);
    be->to_device(be, P->x, P->x_h, (size_t)P->N * D * sizeof(float));
    be->to_device(be, P->cos, P->cos_h, MAX_POS * dr / 2 * sizeof(float));
    be->to_device(be, P->sin, P->sin_h, MAX_POS * dr / 2 * sizeof(float));
    be->to_device(be, P->pos, P->pos_h, (size_t)P->N * sizeof(int32_t));
}

static void problem_init(problem *P, int q_lora_rank, int B, int T) {
    P->cfg = tiny_config(q_lora_rank);
    problem_init_config(P, B, T);
}

static void problem_free(problem *P) {
    layer_free(&P->L);
    free(P->x_h);
    float *bufs[] = {P->x, P->out, P->dout, P->dx, P->acts, P->scratch, P->cos, P->sin, (float *)P->pos};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->free(be, bufs[i]);
}

static grpo_status problem_forward(problem *P) {
    return mla_forward(be, &P->cfg, &P->L.w, P->acts, P->x, P->pos, P->cos, P->sin, P->B, P->T, P->out);
}

/* ---- forward against the reference ---- */

static void test_forward_reference(int q_lora_rank) {
    problem P;
    problem_init(&P, q_lora_rank, 2, 7);
    int D = P.cfg.hidden_size;
    CHECK_OK(problem_forward(&P));
    size_t n = (size_t)P.N * D;
    float *got = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
    double *ref = malloc(n * sizeof(double));
    be->to_host(be, got, P.out, n * sizeof(float));
    ref_forward(&P.cfg, &P.L, P.x_h, P.pos_h, P.cos_h, P.sin_h, P.B, P.T, ref);
    double maxref = 0;
    for (size_t i = 0; i < n; i++) {
        want[i] = (float)ref[i];
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    }
    double err = harness_max_rel_err(got, want, (long)n, 1e-6);
    printf("forward vs double reference (q_lora_rank %d): max rel err %.2e (max |out| %.3f)\n", q_lora_rank, err,
           maxref);
    CHECK(maxref > 0.1);   /* the comparison sees real numbers */
    CHECK_MSG(err < 1e-5, "max rel err %.3g", err);
    free(got);
    free(want);
    free(ref);
    problem_free(&P);
}

/* ---- backward against finite differences ---- */

/* loss = sum_i r[i] * out[i], in double. */
static double loss_of(problem *P, const float *r) {
    size_t n = (size_t)P->N * P->cfg.hidden_size;
    float *o = malloc(n * sizeof(float));
    GRPO_ASSERT(problem_forward(P) == GRPO_OK);
    be->to_host(be, o, P->out, n * sizeof(float));
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * o[i];
    free(o);
    return s;
}

/* Central differences with step h for every element of dev[numel], against the analytic
 * gradient an[numel]. Checked: max |fd - an| <= tol * max(max |an|, 0.01). */
static void check_fd(problem *P, const float *r, const char *name, float *dev, const float *an, size_t numel,
                     double h, double tol) {
    double maxdiff = 0, maxan = 0;
    size_t worst = 0;
    for (size_t i = 0; i < numel; i++) {
        float v0 = get_elem(dev, i);
        set_elem(dev, i, v0 + (float)h);
        double lp = loss_of(P, r);
        set_elem(dev, i, v0 - (float)h);
        double lm = loss_of(P, r);
        set_elem(dev, i, v0);
        /* The actual step taken in float. */
        double step = (double)(v0 + (float)h) - (double)(v0 - (float)h);
        double fd = (lp - lm) / step;
        double d = fabs(fd - an[i]);
        if (d > maxdiff) maxdiff = d, worst = i;
        if (fabs(an[i]) > maxan) maxan = fabs(an[i]);
    }
    double scale = maxan > 0.01 ? maxan : 0.01;
    printf("  %-20s %4zu elems: max |fd - analytic| = %.2e, max |analytic| = %.3f (rel %.2e)\n", name, numel, maxdiff,
           maxan, maxdiff / scale);
    CHECK_MSG(maxdiff <= tol * scale, "%s[%zu]: max diff %.3g > %.3g * %.3g", name, worst, maxdiff, tol, scale);
    CHECK_MSG(maxan > 1e-3, "%s: gradient is all (near) zero", name);
}

static void test_backward_fd(int q_lora_rank) {
    problem P;
    problem_init(&P, q_lora_rank, 2, 7);
    int D = P.cfg.hidden_size;
    size_t n = (size_t)P.N * D;
    float *r = malloc(n * sizeof(float));
    fill_uniform(r, n, 0.0, 1.0);
    be->to_device(be, P.dout, r, n * sizeof(float));
    for (int i = 0; i < W_COUNT; i++)
        if (P.L.numel[i]) be->zero(be, P.L.grad[i], P.L.numel[i] * sizeof(float));
    CHECK_OK(problem_forward(&P));
    CHECK_OK(mla_backward(be, &P.cfg, &P.L.w, &P.L.g, P.acts, P.scratch, P.x, P.pos, P.cos, P.sin, P.dout, P.B,
                          P.T, P.dx));
    printf("finite differences (q_lora_rank %d), step 1e-2 in float32, loss in double:\n", q_lora_rank);
    /* Float32 forward: rounding noise in the loss is ~1e-6, so a step of 1e-2 keeps the
     * difference quotient's noise near 1e-4 and its truncation error (h^2) near 1e-4;
     * tolerance 1e-3 relative to the tensor's largest gradient. */
    const double h = 1e-2, tol = 1e-3;
    for (int i = 0; i < W_COUNT; i++) {
        if (!P.L.numel[i]) continue;
        float *an = malloc(P.L.numel[i] * sizeof(float));
        be->to_host(be, an, P.L.grad[i], P.L.numel[i] * sizeof(float));
        check_fd(&P, r, weight_names[i], P.L.dev[i], an, P.L.numel[i], h, tol);
        free(an);
    }
    float *dx = malloc(n * sizeof(float));
    be->to_host(be, dx, P.dx, n * sizeof(float));
    check_fd(&P, r, "x", P.x, dx, n, h, tol);

    /* A second backward accumulates into the weight gradients and rewrites dx. */
    float *g1 = malloc(P.L.numel[W_KV_B] * sizeof(float)), *g2 = malloc(P.L.numel[W_KV_B] * sizeof(float));
    float *dx2 = malloc(n * sizeof(float));
    be->to_host(be, g1, P.L.grad[W_KV_B], P.L.numel[W_KV_B] * sizeof(float));
    CHECK_OK(problem_forward(&P));
    CHECK_OK(mla_backward(be, &P.cfg, &P.L.w, &P.L.g, P.acts, P.scratch, P.x, P.pos, P.cos, P.sin, P.dout, P.B,
                          P.T, P.dx));
    be->to_host(be, g2, P.L.grad[W_KV_B], P.L.numel[W_KV_B] * sizeof(float));
    be->to_host(be, dx2, P.dx, n * sizeof(float));
    for (size_t i = 0; i < P.L.numel[W_KV_B]; i++) g1[i] *= 2.0f;
    CHECK(harness_max_rel_err(g2, g1, (long)P.L.numel[W_KV_B], 1e-6) < 1e-6);
    CHECK(harness_max_rel_err(dx2, dx, (long)n, 1e-6) < 1e-6);
    free(g1);
    free(g2);
    free(dx2);
    free(dx);
    free(r);
    problem_free(&P);
}

/* ---- decode over the latent cache equals the training path ---- */

/* Prefills every sequence of P through mla_decode in chunks of chunk[0], chunk[1], ...
 * (summing to T), with query blocks of query_block tokens (0: mla_decode's own choice),
 * and compares each chunk's output and the cache with mla_forward's. */
static void check_decode(problem *P, const int *chunks, int n_chunks, int query_block, const char *what) {
    const mla_config *c = &P->cfg;
    int D = c->hidden_size, T = P->T, rkv = c->kv_lora_rank, dr = c->qk_rope_head_dim;
    size_t n = (size_t)P->N * D;
    float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    be->to_host(be, want, P->out, n * sizeof(float));
    mla_acts a;
    mla_acts_layout(c, P->B, T, P->acts, &a);
    float *cache_latent = dev_alloc((size_t)T * rkv), *cache_rope = dev_alloc((size_t)T * dr);
    size_t scratch_floats = 0;
    for (int k = 0, done = 0; k < n_chunks; done += chunks[k], k++) {
        size_t s = query_block ? mla_decode_layout(c, chunks[k], done + chunks[k], query_block, NULL, NULL)
                               : mla_decode_scratch_floats(c, chunks[k], done + chunks[k]);
        if (s > scratch_floats) scratch_floats = s;
    }
    float *scratch = dev_alloc(scratch_floats), *out = dev_alloc(n);
    for (int b = 0; b < P->B; b++) {
        int done = 0;
        for (int k = 0; k < n_chunks; k++) {
            const float *xb = P->x + ((size_t)b * T + done) * D;
            const int32_t *pos = P->pos_h + b * T + done;
            float *ob = out + ((size_t)b * T + done) * D;
            if (query_block)
                CHECK_OK(mla_decode_blocked(be, c, &P->L.w, xb, pos, P->cos, P->sin, cache_latent, cache_rope, done,
                                            chunks[k], query_block, scratch, ob));
            else
                CHECK_OK(mla_decode(be, c, &P->L.w, xb, pos, P->cos, P->sin, cache_latent, cache_rope, done,
                                    chunks[k], scratch, ob));
            done += chunks[k];
        }
        GRPO_ASSERT(done == T);
        /* The cache holds the forward's normed latent and rotated k_pe, nothing more. */
        float *cl = malloc((size_t)T * rkv * sizeof(float)), *fl = malloc((size_t)T * rkv * sizeof(float));
        float *cr = malloc((size_t)T * dr * sizeof(float)), *fr = malloc((size_t)T * dr * sizeof(float));
        be->to_host(be, cl, cache_latent, (size_t)T * rkv * sizeof(float));
        be->to_host(be, fl, a.latent + (size_t)b * T * rkv, (size_t)T * rkv * sizeof(float));
        be->to_host(be, cr, cache_rope, (size_t)T * dr * sizeof(float));
        be->to_host(be, fr, a.k_pe + (size_t)b * T * dr, (size_t)T * dr * sizeof(float));
        CHECK(harness_max_rel_err(cl, fl, (long)T * rkv, 1e-6) < 1e-6);
        CHECK(harness_max_rel_err(cr, fr, (long)T * dr, 1e-6) < 1e-6);
        free(cl);
        free(fl);
        free(cr);
        free(fr);
    }
    be->to_host(be, got, out, n * sizeof(float));
    double err = harness_max_rel_err(got, want, (long)n, 1e-6);
    printf("decode %-28s (q_lora_rank %d): max rel err vs mla_forward %.2e\n", what, c->q_lora_rank, err);
    CHECK_MSG(err < 1e-4, "decode %s: max rel err %.3g", what, err);
    be->free(be, cache_latent);
    be->free(be, cache_rope);
    be->free(be, scratch);
    be->free(be, out);
    free(want);
    free(got);
}

static void test_decode_equals_forward(int q_lora_rank) {
    problem P;
    problem_init(&P, q_lora_rank, 2, 7);
    CHECK_OK(problem_forward(&P));
    static const int three_four[] = {3, 4}, ones[] = {1, 1, 1, 1, 1, 1, 1}, all[] = {7}, mixed[] = {2, 5};
    check_decode(&P, three_four, 2, 0, "chunks 3 + 4");
    check_decode(&P, ones, 7, 0, "one token at a time");
    check_decode(&P, all, 1, 0, "all 7 at once");
    check_decode(&P, all, 1, 2, "7 at once, query blocks of 2");
    check_decode(&P, mixed, 2, 3, "chunks 2 + 5, query blocks of 3");
    problem_free(&P);
}

/* ---- parity with transformers' DeepseekV3Attention ---- */

static int meta_int(const st_file *f, const char *key) {
    const char *v = st_metadata(f, key);
    CHECK_MSG(v != NULL, "fixture metadata lacks %s", key);
    return v ? atoi(v) : 0;
}

/* Loads tensor `name` (float32, numel floats) into backend memory dev (and host, if given). */
static void load_tensor(const st_file *f, const char *name, float *dev, float *host, size_t numel) {
    float *h = host ? host : malloc((numel ? numel : 1) * sizeof(float));
    CHECK_OK(st_load_f32(f, name, h, (int64_t)numel));
    if (dev) be->to_device(be, dev, h, numel * sizeof(float));
    if (!host) free(h);
}

static void compare_tensor(const st_file *f, const char *name, const float *dev, size_t numel, double tol) {
    float *want = malloc(numel * sizeof(float)), *got = malloc(numel * sizeof(float));
    load_tensor(f, name, NULL, want, numel);
    be->to_host(be, got, dev, numel * sizeof(float));
    double err = harness_max_rel_err(got, want, (long)numel, 1e-6);
    printf("  %-32s max rel err %.2e\n", name, err);
    CHECK_MSG(err < tol, "%s: max rel err %.3g >= %.3g", name, err, tol);
    free(want);
    free(got);
}

/* tests/fixtures/mla/<name>.safetensors (make_mla_fixtures.py): output, every weight's
 * gradient and dx against transformers (float64 there), and decode against the same
 * output. Float32 here: 1e-5 relative on the output, 1e-4 on gradients. */
static void test_hf_parity(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/mla/%s.safetensors", name);
    st_file *f = NULL;
    CHECK_OK(st_open(harness_source_path(rel), &f));
    if (!f) return;
    problem P;
    memset(&P, 0, sizeof P);
    mla_config *c = &P.cfg;
    c->hidden_size = meta_int(f, "hidden_size");
    c->num_heads = meta_int(f, "num_heads");
    c->q_lora_rank = meta_int(f, "q_lora_rank");
    c->kv_lora_rank = meta_int(f, "kv_lora_rank");
    c->qk_nope_head_dim = meta_int(f, "qk_nope_head_dim");
    c->qk_rope_head_dim = meta_int(f, "qk_rope_head_dim");
    c->v_head_dim = meta_int(f, "v_head_dim");
    const char *eps = st_metadata(f, "rms_norm_eps");
    c->rms_norm_eps = eps ? (float)atof(eps) : 0.0f;
    int B = meta_int(f, "B"), T = meta_int(f, "T"), max_pos = meta_int(f, "max_pos");
    c->softmax_scale = 1.0f;   /* loaded below */
    grpo_status sizes_ok = mla_check_config(c, name);
    CHECK_OK(sizes_ok);
    if (sizes_ok != GRPO_OK || max_pos != MAX_POS || B * T > 64 || c->qk_rope_head_dim > 16) {
        CHECK_MSG(0, "%s: fixture sizes do not fit this test", name);
        st_close(f);
        return;
    }
    load_tensor(f, "softmax_scale", NULL, &c->softmax_scale, 1);
    problem_init_config(&P, B, T);
    printf("transformers DeepseekV3Attention parity, fixture %s (q_lora_rank %d, softmax_scale %.6f):\n", name,
           c->q_lora_rank, (double)c->softmax_scale);
    size_t n = (size_t)P.N * c->hidden_size, half = (size_t)c->qk_rope_head_dim / 2;
    char tname[128];
    for (int i = 0; i < W_COUNT; i++) {
        if (!P.L.numel[i]) continue;
        snprintf(tname, sizeof tname, "%s.weight", weight_names[i]);
        load_tensor(f, tname, P.L.dev[i], P.L.host[i], P.L.numel[i]);
        be->zero(be, P.L.grad[i], P.L.numel[i] * sizeof(float));
    }
    load_tensor(f, "x", P.x, P.x_h, n);
    load_tensor(f, "cos", P.cos, P.cos_h, MAX_POS * half);
    load_tensor(f, "sin", P.sin, P.sin_h, MAX_POS * half);
    load_tensor(f, "r", P.dout, NULL, n);
    const st_tensor *pt = st_find(f, "position_ids");
    CHECK(pt && pt->dtype == ST_I32 && pt->numel == P.N);
    if (pt && pt->dtype == ST_I32 && pt->numel == P.N) {
        memcpy(P.pos_h, pt->data, (size_t)P.N * sizeof(int32_t));
        be->to_device(be, P.pos, P.pos_h, (size_t)P.N * sizeof(int32_t));
    }

    CHECK_OK(problem_forward(&P));
    compare_tensor(f, "out", P.out, n, 1e-5);
    CHECK_OK(mla_backward(be, c, &P.L.w, &P.L.g, P.acts, P.scratch, P.x, P.pos, P.cos, P.sin, P.dout, B, T, P.dx));
    for (int i = 0; i < W_COUNT; i++) {
        if (!P.L.numel[i]) continue;
        snprintf(tname, sizeof tname, "grad.%s.weight", weight_names[i]);
        compare_tensor(f, tname, P.L.grad[i], P.L.numel[i], 1e-4);
    }
    compare_tensor(f, "grad.x", P.dx, n, 1e-4);
    static const int three_four[] = {3, 4};
    if (T == 7) check_decode(&P, three_four, 2, 0, "chunks 3 + 4");
    problem_free(&P);
    st_close(f);
}

/* ---- cache accounting ---- */

static void report_cache(const char *name, mla_config c) {
    size_t mla = mla_cache_floats_per_token(&c), mha = mla_mha_floats_per_token(&c);
    CHECK_INT((size_t)c.kv_lora_rank + c.qk_rope_head_dim, mla);
    CHECK_INT((size_t)c.num_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim), mha);
    printf("cache per token per layer, %-12s: MLA %zu floats (kv_lora %d + rope %d), MHA %zu floats (%.1fx)\n", name,
           mla, c.kv_lora_rank, c.qk_rope_head_dim, mha, (double)mha / (double)mla);
}

static void test_cache_floats(void) {
    report_cache("tiny", tiny_config(10));
    mla_config v3 = tiny_config(1536);   /* DeepSeek-V3's attention sizes */
    v3.hidden_size = 7168;
    v3.num_heads = 128;
    v3.kv_lora_rank = 512;
    v3.qk_nope_head_dim = 128;
    v3.qk_rope_head_dim = 64;
    v3.v_head_dim = 128;
    report_cache("DeepSeek-V3", v3);
    /* The decode scratch for one token grows linearly with the cached length. */
    size_t s1 = mla_decode_scratch_floats(&v3, 1, 1000), s2 = mla_decode_scratch_floats(&v3, 1, 2000);
    CHECK(s2 > s1 && s2 < 3 * s1);
}

/* ---- errors ---- */

static void test_errors(void) {
    problem P;
    problem_init(&P, 10, 1, 3);
    mla_config bad = P.cfg;
    bad.qk_rope_head_dim = 5;
    CHECK_FAILS(mla_forward(be, &bad, &P.L.w, P.acts, P.x, P.pos, P.cos, P.sin, 1, 3, P.out), "qk_rope_head_dim");
    bad = P.cfg;
    bad.num_heads = 0;
    CHECK_FAILS(mla_forward(be, &bad, &P.L.w, P.acts, P.x, P.pos, P.cos, P.sin, 1, 3, P.out), "num_heads");
    bad = P.cfg;
    bad.softmax_scale = NAN;
    CHECK_FAILS(mla_forward(be, &bad, &P.L.w, P.acts, P.x, P.pos, P.cos, P.sin, 1, 3, P.out), "softmax_scale");
    mla_weights w = P.L.w;
    w.q_b_proj = NULL;
    CHECK_FAILS(mla_forward(be, &P.cfg, &w, P.acts, P.x, P.pos, P.cos, P.sin, 1, 3, P.out), "q_b_proj");
    CHECK_FAILS(mla_forward(be, &P.cfg, &P.L.w, P.acts, P.x, P.pos, P.cos, P.sin, 1, 0, P.out), "batch");
    mla_weights g = P.L.g;
    g.kv_b_proj = NULL;
    CHECK_FAILS(mla_backward(be, &P.cfg, &P.L.w, &g, P.acts, P.scratch, P.x, P.pos, P.cos, P.sin, P.dout, 1, 3, P.dx),
                "gradient kv_b_proj");
    float *cl = dev_alloc(3 * 8), *cr = dev_alloc(3 * 6), *scratch = dev_alloc(mla_decode_scratch_floats(&P.cfg, 3, 3));
    int32_t neg[3] = {0, -1, 2};
    CHECK_FAILS(mla_decode(be, &P.cfg, &P.L.w, P.x, neg, P.cos, P.sin, cl, cr, 0, 3, scratch, P.out), "positions[1]");
    CHECK_FAILS(mla_decode(be, &P.cfg, &P.L.w, P.x, neg, P.cos, P.sin, cl, cr, -1, 3, scratch, P.out), "n_cached");
    backend lacking = *be;
    lacking.attention_forward = NULL;
    CHECK_FAILS(mla_forward(&lacking, &P.cfg, &P.L.w, P.acts, P.x, P.pos, P.cos, P.sin, 1, 3, P.out),
                "attention_forward");
    be->free(be, cl);
    be->free(be, cr);
    be->free(be, scratch);
    problem_free(&P);
}

int main(void) {
    be = backend_cpu_create();
    if (!be) TEST_SKIP("no CPU backend: %s", grpo_error_message());
    test_rope_convention();
    for (int lora = 1; lora >= 0; lora--) {
        int q_lora_rank = lora ? 10 : 0;
        test_forward_reference(q_lora_rank);
        test_backward_fd(q_lora_rank);
        test_decode_equals_forward(q_lora_rank);
    }
    test_hf_parity("lora");
    test_hf_parity("no_lora");
    test_cache_floats();
    test_errors();
    backend_free(be);
    TEST_MAIN_END();
}
