/* The DeepSeekMoE layer (model/moe.h) on the CPU backend, against a naive per-token
 * reference written here in double precision (sort-based top-k, one expert at a time):
 *  - routing: sigmoid (V3) and softmax (V2) scores, top-2-sum and max group scores,
 *    group limitation, e_score_correction_bias steering the choice but not the weights,
 *    norm_topk_prob on/off, routed_scaling_factor; NaN logits stay in range;
 *  - forward output, routing weights and balance-loss value;
 *  - gradients of x, gate, every expert's and the shared expert's weights against central
 *    finite differences of the reference (double, h = 1e-6), of the balance loss alone,
 *    and a float finite-difference spot check of the implementation's own forward;
 *  - the op-table dispatch path (for backends whose memory is not host memory) against
 *    the host path, on the CPU backend;
 *  - the bias update rule (sign rule exactly; loads move toward balance on skewed input;
 *    gamma = 0 is a no-op); no token dropped; config and call errors.
 * Finite differences need no top-k or top-group tie within the step: every drawn input's
 * smallest selection margin is checked and the input redrawn (printed) when too close,
 * and the routing at every perturbed point is checked to equal the unperturbed one. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/rng.h"
#include "model/moe.h"
#include "model/moe_impl.h"
#include "tests/harness.h"

#define MAX_E 64
#define MAX_K 16

static backend *be;

/* ---- the reference ---- */

/* Offsets of each tensor in one flat parameter array; x comes last. */
typedef struct {
    size_t gate, bias, eg, eu, ed, sg, su, sd, x, total;
} layout;

static layout make_layout(const moe_config *c, int N) {
    size_t H = c->hidden_size, I = c->moe_intermediate_size, E = c->n_routed_experts;
    size_t IS = (size_t)c->n_shared_experts * I;
    layout L;
    L.gate = 0;
    L.bias = L.gate + E * H;
    L.eg = L.bias + E;
    L.eu = L.eg + E * I * H;
    L.ed = L.eu + E * I * H;
    L.sg = L.ed + E * H * I;
    L.su = L.sg + IS * H;
    L.sd = L.su + IS * H;
    L.x = L.sd + H * IS;
    L.total = L.x + (size_t)N * H;
    return L;
}

static double ref_sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }
static double ref_silu(double g) { return g / (1.0 + exp(-g)); }

/* Indices 0..n-1 sorted by value[] descending, ties by lower index (insertion sort). */
static void sort_desc(const double *value, int *order, int n) {
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) {
        int v = order[i], j = i - 1;
        while (j >= 0 && (value[order[j]] < value[v] || (value[order[j]] == value[v] && order[j] > v))) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = v;
    }
}

/* One token's routing: z: [E] logits. Writes s: [E] scores, idx/w: [K], and the smallest
 * gap at a selection boundary (groups and experts) into *margin. */
static void ref_route(const moe_config *c, const double *z, const double *bias, double *s, int *idx, double *w,
                      double *margin) {
    int E = c->n_routed_experts, K = c->num_experts_per_tok, G = c->n_group, gs = E / G, TG = c->topk_group;
    double choice[MAX_E], gscore[MAX_E], tmp[MAX_E], cand_choice[MAX_E] = {0};
    int order[MAX_E], cand[MAX_E];
    if (c->scoring_func == MOE_SCORING_SIGMOID) {
        for (int e = 0; e < E; e++) s[e] = ref_sigmoid(z[e]);
    } else {
        double sum = 0;
        for (int e = 0; e < E; e++) sum += exp(z[e]);
        for (int e = 0; e < E; e++) s[e] = exp(z[e]) / sum;
    }
    for (int e = 0; e < E; e++) choice[e] = s[e] + bias[e];
    for (int g = 0; g < G; g++) {
        sort_desc(choice + g * gs, order, gs);
        for (int i = 0; i < gs; i++) tmp[i] = choice[g * gs + order[i]];
        gscore[g] = c->group_score_top2 && gs >= 2 ? tmp[0] + tmp[1] : tmp[0];
    }
    int gorder[MAX_E];
    sort_desc(gscore, gorder, G);
    *margin = INFINITY;
    if (TG < G) *margin = gscore[gorder[TG - 1]] - gscore[gorder[TG]];
    int ncand = 0;
    for (int e = 0; e < E; e++)
        for (int j = 0; j < TG; j++)
            if (e / gs == gorder[j]) cand[ncand++] = e;
    for (int i = 0; i < ncand; i++) cand_choice[i] = choice[cand[i]];
    sort_desc(cand_choice, order, ncand);
    if (K < ncand) {
        double m = cand_choice[order[K - 1]] - cand_choice[order[K]];
        if (m < *margin) *margin = m;
    }
    double sum = 0;
    for (int k = 0; k < K; k++) {
        idx[k] = cand[order[k]];
        sum += s[idx[k]];
    }
    for (int k = 0; k < K; k++)
        w[k] = (c->norm_topk_prob ? s[idx[k]] / (sum + 1e-20) : s[idx[k]]) * c->routed_scaling_factor;
}

/* y[H] = down(silu(Wg x) * (Wu x)); Wg, Wu: [I, H], Wd: [H, I]. */
static void ref_mlp(const double *Wg, const double *Wu, const double *Wd, const double *x, int H, int I, double *y) {
    double a[256];
    for (int i = 0; i < I; i++) {
        double g = 0, u = 0;
        for (int h = 0; h < H; h++) {
            g += Wg[(size_t)i * H + h] * x[h];
            u += Wu[(size_t)i * H + h] * x[h];
        }
        a[i] = ref_silu(g) * u;
    }
    for (int h = 0; h < H; h++) {
        double acc = 0;
        for (int i = 0; i < I; i++) acc += Wd[(size_t)h * I + i] * a[i];
        y[h] = acc;
    }
}

/* The whole layer on P (layout L): out [N, H], returns the balance loss; idx_out: [N, K],
 * w_out: [N, K] (either may be NULL); *min_margin: smallest routing margin. */
static double ref_forward(const moe_config *c, const layout *L, const double *P, int B, int T, double *out,
                          int *idx_out, double *w_out, double *min_margin) {
    int N = B * T, H = c->hidden_size, I = c->moe_intermediate_size, E = c->n_routed_experts;
    int K = c->num_experts_per_tok, IS = c->n_shared_experts * I;
    double z[MAX_E], s[MAX_E], w[MAX_K], y[256], margin;
    int idx[MAX_K];
    double *scores = malloc((size_t)N * E * sizeof *scores);
    int *all_idx = malloc((size_t)N * K * sizeof *all_idx);
    *min_margin = INFINITY;
    for (int t = 0; t < N; t++) {
        const double *x = P + L->x + (size_t)t * H;
        for (int e = 0; e < E; e++) {
            z[e] = 0;
            for (int h = 0; h < H; h++) z[e] += P[L->gate + (size_t)e * H + h] * x[h];
        }
        ref_route(c, z, P + L->bias, s, idx, w, &margin);
        if (margin < *min_margin) *min_margin = margin;
        memcpy(scores + (size_t)t * E, s, (size_t)E * sizeof *s);
        memcpy(all_idx + (size_t)t * K, idx, (size_t)K * sizeof *idx);
        if (idx_out) memcpy(idx_out + (size_t)t * K, idx, (size_t)K * sizeof *idx);
        if (w_out) memcpy(w_out + (size_t)t * K, w, (size_t)K * sizeof *w);
        double *o = out + (size_t)t * H;
        for (int h = 0; h < H; h++) o[h] = 0;
        if (IS > 0) ref_mlp(P + L->sg, P + L->su, P + L->sd, x, H, IS, o);
        for (int k = 0; k < K; k++) {
            size_t e = (size_t)idx[k];
            ref_mlp(P + L->eg + e * I * H, P + L->eu + e * I * H, P + L->ed + e * H * I, x, H, I, y);
            for (int h = 0; h < H; h++) o[h] += w[k] * y[h];
        }
    }
    /* V3 eq. 17-20 per sequence, mean over sequences */
    double aux = 0;
    for (int b = 0; b < B && c->seq_aux_alpha > 0; b++) {
        double count[MAX_E] = {0}, P_i[MAX_E] = {0};
        for (int t = b * T; t < (b + 1) * T; t++) {
            double ssum = 0;
            for (int e = 0; e < E; e++) ssum += scores[(size_t)t * E + e];
            for (int e = 0; e < E; e++) P_i[e] += scores[(size_t)t * E + e] / ssum / T;
            for (int k = 0; k < K; k++) count[all_idx[(size_t)t * K + k]] += 1;
        }
        double Lb = 0;
        for (int e = 0; e < E; e++) Lb += (double)E / (K * T) * count[e] * P_i[e];
        aux += c->seq_aux_alpha * Lb / B;
    }
    free(scores);
    free(all_idx);
    return aux;
}

/* ---- the implementation, on backend copies of a flat float array ---- */

typedef struct {
    moe_config c;
    layout L;
    int B, T;
    float *dev;    /* [L.total] parameters + x */
    float *gdev;   /* [L.total] gradients + dx */
    float *out, *dout;   /* [N, H] */
    float *pexp[6][MAX_E];
    moe_weights w, g;
    moe_layer *layer;
} impl;

static void bind(const moe_config *c, const layout *L, float *base, float **ptrs, moe_weights *w) {
    size_t H = c->hidden_size, I = c->moe_intermediate_size;
    w->gate = base + L->gate;
    w->e_score_correction_bias = base + L->bias;
    for (int e = 0; e < c->n_routed_experts; e++) {
        ptrs[e] = base + L->eg + e * I * H;
        ptrs[MAX_E + e] = base + L->eu + e * I * H;
        ptrs[2 * MAX_E + e] = base + L->ed + e * H * I;
    }
    w->experts_gate_proj = ptrs;
    w->experts_up_proj = ptrs + MAX_E;
    w->experts_down_proj = ptrs + 2 * MAX_E;
    w->shared_gate_proj = c->n_shared_experts ? base + L->sg : NULL;
    w->shared_up_proj = c->n_shared_experts ? base + L->su : NULL;
    w->shared_down_proj = c->n_shared_experts ? base + L->sd : NULL;
}

static int impl_open(impl *m, const moe_config *c, int B, int T) {
    memset(m, 0, sizeof *m);
    m->c = *c;
    m->B = B;
    m->T = T;
    m->L = make_layout(c, B * T);
    size_t NH = (size_t)B * T * c->hidden_size;
    m->dev = be->alloc(be, m->L.total * sizeof(float));
    m->gdev = be->alloc(be, m->L.total * sizeof(float));
    m->out = be->alloc(be, NH * sizeof(float));
    m->dout = be->alloc(be, NH * sizeof(float));
    bind(c, &m->L, m->dev, m->pexp[0], &m->w);
    bind(c, &m->L, m->gdev, m->pexp[3], &m->g);
    grpo_status st = moe_layer_create(be, c, B * T, &m->layer);
    if (st != GRPO_OK) fprintf(stderr, "moe_layer_create: %s\n", grpo_error_message());
    return st == GRPO_OK;
}

static void impl_close(impl *m) {
    moe_layer_free(m->layer);
    be->free(be, m->dev);
    be->free(be, m->gdev);
    be->free(be, m->out);
    be->free(be, m->dout);
}

/* Forward with parameters P (float, flat) and, when dout != NULL, backward into G (flat:
 * parameter gradients, dx at L.x). out: [N, H] host. Returns the balance loss. */
static double impl_run(impl *m, const float *P, float *out, const float *dout, float *G) {
    size_t NH = (size_t)m->B * m->T * m->c.hidden_size;
    be->to_device(be, m->dev, P, m->L.total * sizeof(float));
    grpo_status st = moe_forward(m->layer, &m->w, m->dev + m->L.x, m->B, m->T, m->out);
    if (st != GRPO_OK) fprintf(stderr, "moe_forward: %s\n", grpo_error_message());
    if (out) be->to_host(be, out, m->out, NH * sizeof(float));
    if (dout) {
        be->zero(be, m->gdev, m->L.total * sizeof(float));
        be->to_device(be, m->dout, dout, NH * sizeof(float));
        st = moe_backward(m->layer, &m->w, &m->g, m->dev + m->L.x, m->dout, m->gdev + m->L.x);
        if (st != GRPO_OK) fprintf(stderr, "moe_backward: %s\n", grpo_error_message());
        be->to_host(be, G, m->gdev, m->L.total * sizeof(float));
    }
    return moe_get_stats(m->layer)->aux_loss;
}

/* ---- problems ---- */

typedef struct {
    const char *name;
    moe_config c;
    int B, T;
} problem;

static moe_config base_config(void) {
    moe_config c = {0};
    c.hidden_size = 12;
    c.moe_intermediate_size = 7;
    c.n_routed_experts = 8;
    c.n_shared_experts = 1;
    c.num_experts_per_tok = 2;
    c.n_group = 4;
    c.topk_group = 2;
    c.norm_topk_prob = 1;
    c.routed_scaling_factor = 2.5f;
    c.scoring_func = MOE_SCORING_SIGMOID;
    c.group_score_top2 = 1;
    c.seq_aux_alpha = 0.0f;
    return c;
}

static problem problems[8];
static int n_problems;

static void add_problem(const char *name, moe_config c) { problems[n_problems++] = (problem){name, c, 2, 5}; }

static void make_problems(void) {
    moe_config c = base_config();
    add_problem("v3 sigmoid top2-groups norm", c);
    c = base_config();
    c.norm_topk_prob = 0;
    c.seq_aux_alpha = 0.3f;
    c.n_shared_experts = 2;
    add_problem("v3 sigmoid no-norm aux shared=2", c);
    c = base_config();
    c.seq_aux_alpha = 0.3f;
    c.topk_group = 1;
    add_problem("v3 sigmoid norm aux topk_group=1", c);
    c = base_config();
    c.scoring_func = MOE_SCORING_SOFTMAX;
    c.group_score_top2 = 0;
    c.norm_topk_prob = 0;
    add_problem("v2 softmax max-groups no-norm", c);
    c = base_config();
    c.scoring_func = MOE_SCORING_SOFTMAX;
    c.group_score_top2 = 0;
    c.seq_aux_alpha = 0.5f;
    c.n_shared_experts = 0;
    c.num_experts_per_tok = 3;
    add_problem("v2 softmax max-groups norm aux K=3 no-shared", c);
}

/* Draws parameters and x (floats): N(0, 0.5) weights, N(0, 1) x, bias U(-0.2, 0.2). */
static void draw(const moe_config *c, const layout *L, uint64_t seed, float *P, float *dout, int N) {
    rng_stream r = rng_stream_make(seed, 1);
    for (size_t i = 0; i < L->total; i++) P[i] = 0.5f * rng_next_normal(&r);
    for (size_t i = L->x; i < L->total; i++) P[i] *= 2.0f;
    for (size_t i = L->bias; i < L->bias + (size_t)c->n_routed_experts; i++)
        P[i] = 0.4f * (rng_next_uniform(&r) - 0.5f);
    for (size_t i = 0; i < (size_t)N * c->hidden_size; i++) dout[i] = rng_next_normal(&r);
}

static void to_double(const float *a, double *b, size_t n) {
    for (size_t i = 0; i < n; i++) b[i] = a[i];
}

/* Draws until the smallest routing margin is >= min_margin; returns the seed used. */
static uint64_t draw_clear(const problem *p, const layout *L, uint64_t seed, double min_margin, float *P,
                           float *dout) {
    int N = p->B * p->T;
    double *Pd = malloc(L->total * sizeof *Pd), *out = malloc((size_t)N * p->c.hidden_size * sizeof *out);
    int redraws = 0;
    for (;; seed++) {
        double margin;
        draw(&p->c, L, seed, P, dout, N);
        to_double(P, Pd, L->total);
        ref_forward(&p->c, L, Pd, p->B, p->T, out, NULL, NULL, &margin);
        if (margin >= min_margin) break;
        redraws++;
    }
    if (redraws) printf("  [%s] redrew %d time(s): a routing margin was < %g\n", p->name, redraws, min_margin);
    free(Pd);
    free(out);
    return seed;
}

/* ---- routing ---- */

static void test_routing(void) {
    const int N = 300;
    int E_max = MAX_E;
    float *logits = malloc((size_t)N * E_max * sizeof(float)), *scores = malloc((size_t)N * E_max * sizeof(float));
    float *wt = malloc((size_t)N * MAX_K * sizeof(float));
    int32_t *idx = malloc((size_t)N * MAX_K * sizeof(int32_t));
    double choice[MAX_E], gscore[MAX_E];
    unsigned char keep[MAX_E];
    moe_route_scratch scratch = {choice, gscore, keep};
    for (int pi = 0; pi < n_problems; pi++) {
        const moe_config *c = &problems[pi].c;
        int E = c->n_routed_experts, K = c->num_experts_per_tok;
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            float bias[MAX_E] = {0};
            double biasd[MAX_E] = {0};
            rng_stream r = rng_stream_make(100 + pi, with_bias);
            for (int e = 0; e < E && with_bias; e++) biasd[e] = bias[e] = 0.6f * (rng_next_uniform(&r) - 0.5f);
            /* margin check: redraw a token's logits until every selection gap is >= 1e-5
             * (float vs double rounding must not flip a choice) */
            int redraws = 0, limited = 0, bias_moved = 0;
            for (int t = 0; t < N; t++) {
                double z[MAX_E], s[MAX_E], w[MAX_K], margin;
                int ridx[MAX_K];
                for (;;) {
                    for (int e = 0; e < E; e++) z[e] = logits[(size_t)t * E + e] = 2.0f * rng_next_normal(&r);
                    ref_route(c, z, biasd, s, ridx, w, &margin);
                    if (margin >= 1e-5) break;
                    redraws++;
                }
            }
            moe_route_tokens(c, logits, bias, N, scores, idx, wt, &scratch);
            double max_werr = 0, max_serr = 0;
            int mismatches = 0;
            for (int t = 0; t < N; t++) {
                double z[MAX_E], s[MAX_E], w[MAX_K], margin, zero[MAX_E] = {0};
                int ridx[MAX_K], uidx[MAX_K], gidx[MAX_K];
                for (int e = 0; e < E; e++) z[e] = logits[(size_t)t * E + e];
                ref_route(c, z, biasd, s, ridx, w, &margin);
                for (int e = 0; e < E; e++) max_serr = fmax(max_serr, fabs(s[e] - scores[(size_t)t * E + e]));
                for (int k = 0; k < K; k++) {
                    if (idx[(size_t)t * K + k] != ridx[k]) mismatches++;
                    max_werr = fmax(max_werr, fabs(w[k] - wt[(size_t)t * K + k]));
                }
                /* the same without group limitation, and without the bias */
                moe_config open = *c;
                open.topk_group = open.n_group;
                double w2[MAX_K];
                ref_route(&open, z, biasd, s, gidx, w2, &margin);
                if (memcmp(gidx, ridx, (size_t)K * sizeof(int)) != 0) limited++;
                ref_route(c, z, zero, s, uidx, w2, &margin);
                if (memcmp(uidx, ridx, (size_t)K * sizeof(int)) != 0) bias_moved++;
                /* the chosen experts span at most topk_group groups */
                int groups_used = 0, seen[MAX_E] = {0}, gs = E / c->n_group;
                for (int k = 0; k < K; k++) {
                    int g = idx[(size_t)t * K + k] / gs;
                    if (!seen[g]) groups_used++;
                    seen[g] = 1;
                }
                CHECK(groups_used <= c->topk_group);
            }
            CHECK_MSG(mismatches == 0, "[%s bias=%d] %d chosen experts differ from the reference",
                      problems[pi].name, with_bias, mismatches);
            CHECK_MSG(max_werr < 1e-6 * c->routed_scaling_factor, "[%s bias=%d] weight error %g", problems[pi].name,
                      with_bias, max_werr);
            CHECK_MSG(max_serr < 1e-6, "[%s bias=%d] score error %g", problems[pi].name, with_bias, max_serr);
            /* the reference's group limitation and bias do change choices on these inputs,
             * so matching it tests them */
            if (c->topk_group == 1) CHECK_MSG(limited > 0, "[%s] group limitation never mattered", problems[pi].name);
            if (with_bias) CHECK_MSG(bias_moved > 0, "[%s] the bias never changed a choice", problems[pi].name);
            printf("  routing [%s, bias %d]: %d tokens, %d redrawn (margin < 1e-5), %d changed by group limits, "
                   "%d by the bias; weight err %.2g\n",
                   problems[pi].name, with_bias, N, redraws, limited, bias_moved, max_werr);
        }
    }

    /* a large bias on one expert: chosen by every token, its weight is still its unbiased score */
    {
        moe_config c = base_config();
        int E = c.n_routed_experts, K = c.num_experts_per_tok, star = 5;
        float bias[MAX_E] = {0};
        bias[star] = 10.0f;
        rng_stream r = rng_stream_make(7, 7);
        for (int i = 0; i < N * E; i++) logits[i] = 2.0f * rng_next_normal(&r);
        moe_route_tokens(&c, logits, bias, N, scores, idx, wt, &scratch);
        int always = 1;
        double max_err = 0;
        for (int t = 0; t < N; t++) {
            CHECK_INT(star, idx[(size_t)t * K]);   /* largest choice first */
            always &= idx[(size_t)t * K] == star;
            double sum = 0;
            for (int k = 0; k < K; k++)
                sum += 1.0 / (1.0 + exp(-(double)logits[(size_t)t * E + idx[(size_t)t * K + k]]));
            double expect = 1.0 / (1.0 + exp(-(double)logits[(size_t)t * E + star])) / sum * c.routed_scaling_factor;
            max_err = fmax(max_err, fabs(expect - wt[(size_t)t * K]));
        }
        CHECK(always);
        CHECK_MSG(max_err < 1e-5, "biased expert's weight err %g", max_err);
    }

    /* NaN and infinite logits: K distinct experts in range, no crash */
    for (int pi = 0; pi < n_problems; pi++) {
        const moe_config *c = &problems[pi].c;
        int E = c->n_routed_experts, K = c->num_experts_per_tok;
        float bias[MAX_E] = {0};
        for (int i = 0; i < 4 * E; i++) logits[i] = (i % 3 == 0) ? NAN : (i % 3 == 1 ? INFINITY : -INFINITY);
        for (int i = 4 * E; i < 5 * E; i++) logits[i] = NAN;
        moe_route_tokens(c, logits, bias, 5, scores, idx, wt, &scratch);
        for (int t = 0; t < 5; t++)
            for (int k = 0; k < K; k++) {
                int e = idx[(size_t)t * K + k];
                CHECK(e >= 0 && e < E);
                for (int j = 0; j < k; j++) CHECK(idx[(size_t)t * K + j] != e);
            }
    }
    free(logits);
    free(scores);
    free(wt);
    free(idx);
}

/* ---- forward ---- */

static void test_forward(void) {
    for (int pi = 0; pi < n_problems; pi++) {
        const problem *p = &problems[pi];
        impl m;
        if (!impl_open(&m, &p->c, p->B, p->T)) { CHECK(0); continue; }
        int N = p->B * p->T, H = p->c.hidden_size, K = p->c.num_experts_per_tok, E = p->c.n_routed_experts;
        float *P = malloc(m.L.total * sizeof *P), *dout = malloc((size_t)N * H * sizeof *dout);
        float *out = malloc((size_t)N * H * sizeof *out), *ref_f = malloc((size_t)N * H * sizeof *ref_f);
        double *Pd = malloc(m.L.total * sizeof *Pd), *ref = malloc((size_t)N * H * sizeof *ref);
        double *rw = malloc((size_t)N * K * sizeof *rw), margin;
        int *ridx = malloc((size_t)N * K * sizeof *ridx);
        draw_clear(p, &m.L, 1000 + pi, 1e-4, P, dout);
        to_double(P, Pd, m.L.total);
        double aux_ref = ref_forward(&p->c, &m.L, Pd, p->B, p->T, ref, ridx, rw, &margin);
        double aux = impl_run(&m, P, out, NULL, NULL);
        for (int i = 0; i < N * H; i++) ref_f[i] = (float)ref[i];
        double err = harness_max_rel_err(out, ref_f, (long)N * H, 1e-3);
        CHECK_MSG(err < 1e-5, "[%s] forward rel err %g", p->name, err);
        CHECK_NEAR(aux_ref, aux, 1e-7, 1e-5);
        if (p->c.seq_aux_alpha > 0) CHECK(aux > 0);
        /* the layer's routing = the reference's; no token dropped */
        const moe_layer *l = m.layer;
        int mismatch = 0;
        double werr = 0;
        for (int s = 0; s < N * K; s++) {
            mismatch += l->topk_idx[s] != ridx[s];
            werr = fmax(werr, fabs(l->topk_weight[s] - rw[s]));
        }
        CHECK_INT(0, mismatch);
        CHECK_MSG(werr < 1e-6 * p->c.routed_scaling_factor, "[%s] routing weight err %g", p->name, werr);
        const moe_stats *st = moe_get_stats(l);
        int64_t total = 0, maxload = 0;
        for (int e = 0; e < E; e++) {
            total += st->load[e];
            maxload = st->load[e] > maxload ? st->load[e] : maxload;
        }
        CHECK_INT((int64_t)N * K, total);
        CHECK_INT((int64_t)N * K, l->expert_offset[E]);
        CHECK_NEAR((double)maxload / ((double)N * K / E) - 1.0, st->max_violation, 1e-12, 0);
        for (int t = 0; t < N; t++)
            for (int k = 0; k < K; k++)
                for (int j = 0; j < k; j++) CHECK(l->topk_idx[t * K + j] != l->topk_idx[t * K + k]);
        printf("  forward [%s]: rel err %.2g, aux %.6g (ref %.6g), max violation %.3f\n", p->name, err, aux, aux_ref,
               st->max_violation);

        /* the op-table dispatch path (what a backend whose memory is not host memory runs)
         * gives the same forward and gradients as the host path */
        float *G = malloc(m.L.total * sizeof *G), *G2 = malloc(m.L.total * sizeof *G2);
        float *out2 = malloc((size_t)N * H * sizeof *out2);
        impl_run(&m, P, out, dout, G);
        m.layer->is_host = 0;
        impl_run(&m, P, out2, dout, G2);
        m.layer->is_host = 1;
        double gerr = harness_max_rel_err(G2, G, (long)m.L.total, 1e-3);
        double oerr = harness_max_rel_err(out2, out, (long)N * H, 1e-3);
        CHECK_MSG(oerr < 1e-6 && gerr < 1e-6, "[%s] op-table path: out rel err %g, gradients rel err %g", p->name, oerr,
                  gerr);
        free(G), free(G2), free(out2);
        free(P), free(dout), free(out), free(ref_f), free(Pd), free(ref), free(rw), free(ridx);
        impl_close(&m);
    }
}

/* ---- gradients ---- */

typedef struct {
    const char *name;
    size_t off, n;
} tensor_range;

static int tensor_ranges(const moe_config *c, const layout *L, tensor_range *tr) {
    int n = 0;
    size_t E = c->n_routed_experts, IH = (size_t)c->moe_intermediate_size * c->hidden_size;
    tr[n++] = (tensor_range){"x", L->x, L->total - L->x};
    tr[n++] = (tensor_range){"gate", L->gate, L->bias - L->gate};
    static char names[3][MAX_E][40];
    for (size_t e = 0; e < E; e++) {
        snprintf(names[0][e], 40, "experts.%zu.gate_proj", e);
        snprintf(names[1][e], 40, "experts.%zu.up_proj", e);
        snprintf(names[2][e], 40, "experts.%zu.down_proj", e);
        tr[n++] = (tensor_range){names[0][e], L->eg + e * IH, IH};
        tr[n++] = (tensor_range){names[1][e], L->eu + e * IH, IH};
        tr[n++] = (tensor_range){names[2][e], L->ed + e * IH, IH};
    }
    if (c->n_shared_experts) {
        tr[n++] = (tensor_range){"shared.gate_proj", L->sg, L->su - L->sg};
        tr[n++] = (tensor_range){"shared.up_proj", L->su, L->sd - L->su};
        tr[n++] = (tensor_range){"shared.down_proj", L->sd, L->x - L->sd};
    }
    return n;
}

/* Reference loss sum(dout * out) + aux at Pd; checks the routing equals base_idx. */
static double ref_loss(const problem *p, const layout *L, const double *Pd, const double *doutd, double *out,
                       int *idx, const int *base_idx, int *route_changes) {
    int N = p->B * p->T, H = p->c.hidden_size, K = p->c.num_experts_per_tok;
    double margin, loss = ref_forward(&p->c, L, Pd, p->B, p->T, out, idx, NULL, &margin);
    if (doutd)
        for (int i = 0; i < N * H; i++) loss += doutd[i] * out[i];
    if (base_idx && memcmp(idx, base_idx, (size_t)N * K * sizeof *idx) != 0) (*route_changes)++;
    return loss;
}

/* Gradient of sum(dout * out) + aux (dout == NULL: the balance loss alone) of every
 * tensor against central differences of the reference (h = 1e-6 in double). */
static void check_gradients(const problem *p, int aux_only) {
    impl m;
    if (!impl_open(&m, &p->c, p->B, p->T)) { CHECK(0); return; }
    int N = p->B * p->T, H = p->c.hidden_size, K = p->c.num_experts_per_tok;
    size_t total = m.L.total;
    float *P = malloc(total * sizeof *P), *G = malloc(total * sizeof *G), *dout = malloc((size_t)N * H * sizeof *dout);
    double *Pd = malloc(total * sizeof *Pd), *doutd = malloc((size_t)N * H * sizeof *doutd);
    double *out = malloc((size_t)N * H * sizeof *out), *fd = malloc(total * sizeof *fd);
    int *idx = malloc((size_t)N * K * sizeof *idx), *base_idx = malloc((size_t)N * K * sizeof *base_idx);
    /* margin 2e-2: also clear of the float spot check's h = 1e-2 steps below */
    draw_clear(p, &m.L, 5000 + (uint64_t)(p - problems) * 100 + aux_only * 50, 2e-2, P, dout);
    if (aux_only) memset(dout, 0, (size_t)N * H * sizeof *dout);
    to_double(P, Pd, total);
    to_double(dout, doutd, (size_t)N * H);
    impl_run(&m, P, NULL, dout, G);
    int changes = 0;
    ref_loss(p, &m.L, Pd, aux_only ? NULL : doutd, out, base_idx, NULL, &changes);

    tensor_range tr[8 + 3 * MAX_E];
    int nt = tensor_ranges(&p->c, &m.L, tr);
    const double h = 1e-6;
    double worst = 0;
    const char *worst_name = "";
    for (int ti = 0; ti < nt; ti++) {
        double maxdiff = 0, maxref = 1e-3;
        for (size_t i = tr[ti].off; i < tr[ti].off + tr[ti].n; i++) {
            double save = Pd[i];
            Pd[i] = save + h;
            double lp = ref_loss(p, &m.L, Pd, aux_only ? NULL : doutd, out, idx, base_idx, &changes);
            Pd[i] = save - h;
            double lm = ref_loss(p, &m.L, Pd, aux_only ? NULL : doutd, out, idx, base_idx, &changes);
            Pd[i] = save;
            fd[i] = (lp - lm) / (2 * h);
            maxdiff = fmax(maxdiff, fabs(fd[i] - G[i]));
            maxref = fmax(maxref, fabs(fd[i]));
        }
        double rel = maxdiff / maxref;
        CHECK_MSG(rel < 1e-5, "[%s%s] d%s: max |analytic - fd| / max |fd| = %g (max |fd| %g)", p->name,
                  aux_only ? " aux only" : "", tr[ti].name, rel, maxref);
        if (rel > worst) worst = rel, worst_name = tr[ti].name;
    }
    CHECK_MSG(changes == 0, "[%s] %d finite-difference points changed the routing", p->name, changes);
    /* the gate receives gradient through the routing (not all zero) */
    double gate_norm = 0;
    for (size_t i = m.L.gate; i < m.L.bias; i++) gate_norm += fabs(G[i]);
    CHECK(gate_norm > 0);
    if (aux_only && p->c.seq_aux_alpha > 0) {
        /* only the gate and x see the balance loss */
        double other = 0;
        for (size_t i = m.L.eg; i < m.L.x; i++) other += fabs(G[i]);
        CHECK(other == 0);
    }
    printf("  gradients [%s%s]: %d tensors, worst rel err %.2g (%s)\n", p->name, aux_only ? ", balance loss only" : "",
           nt, worst, worst_name);

    /* float spot check of the implementation's own forward: central differences, h = 1e-2,
     * a few coordinates per tensor (float rounding: tolerance 2e-2 of the tensor's scale) */
    if (!aux_only) {
        float *outf = malloc((size_t)N * H * sizeof *outf);
        double *Pt = malloc(total * sizeof *Pt);
        int spot_changes = 0;
        for (int ti = 0; ti < nt; ti++) {
            double maxdiff = 0, maxref = 1e-2;
            for (int j = 0; j < 3; j++) {
                size_t i = tr[ti].off + (size_t)(j * 7919 + ti) % tr[ti].n;
                float save = P[i];
                double l2[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    P[i] = save + (sgn ? -1e-2f : 1e-2f);
                    double aux = impl_run(&m, P, outf, NULL, NULL);
                    double loss = aux;
                    for (int q = 0; q < N * H; q++) loss += (double)dout[q] * outf[q];
                    l2[sgn] = loss;
                    to_double(P, Pt, total);
                    ref_loss(p, &m.L, Pt, NULL, out, idx, base_idx, &spot_changes);
                }
                P[i] = save;
                double f = (l2[0] - l2[1]) / (2 * (double)1e-2f);
                maxdiff = fmax(maxdiff, fabs(f - G[i]));
                maxref = fmax(maxref, fabs(G[i]));
            }
            CHECK_MSG(maxdiff / maxref < 2e-2, "[%s] float spot check d%s: rel err %g", p->name, tr[ti].name,
                      maxdiff / maxref);
        }
        CHECK_MSG(spot_changes == 0, "[%s] %d float spot-check points changed the routing", p->name, spot_changes);
        free(outf);
        free(Pt);
    }
    free(P), free(G), free(dout), free(Pd), free(doutd), free(out), free(fd), free(idx), free(base_idx);
    impl_close(&m);
}

static void test_gradients(void) {
    for (int pi = 0; pi < n_problems; pi++) {
        check_gradients(&problems[pi], 0);
        if (problems[pi].c.seq_aux_alpha > 0) check_gradients(&problems[pi], 1);
    }
    /* gradients accumulate: a second backward doubles them (dx is written, not added) */
    const problem *p = &problems[1];
    impl m;
    if (!impl_open(&m, &p->c, p->B, p->T)) { CHECK(0); return; }
    int NH = p->B * p->T * p->c.hidden_size;
    float *P = malloc(m.L.total * sizeof *P), *dout = malloc(NH * sizeof *dout);
    float *G1 = malloc(m.L.total * sizeof *G1), *G2 = malloc(m.L.total * sizeof *G2);
    draw(&p->c, &m.L, 77, P, dout, p->B * p->T);
    impl_run(&m, P, NULL, dout, G1);
    moe_backward(m.layer, &m.w, &m.g, m.dev + m.L.x, m.dout, m.gdev + m.L.x);
    be->to_host(be, G2, m.gdev, m.L.total * sizeof(float));
    double err = 0;
    for (size_t i = 0; i < m.L.x; i++) err = fmax(err, fabs(G2[i] - 2 * G1[i]));
    for (size_t i = m.L.x; i < m.L.total; i++) err = fmax(err, fabs(G2[i] - G1[i]));
    CHECK_MSG(err < 1e-5, "second backward: max deviation from 2x gradients / same dx = %g", err);
    free(P), free(dout), free(G1), free(G2);
    impl_close(&m);
}

/* ---- bias update ---- */

static void test_bias_update(void) {
    moe_config c = base_config();
    int B = 4, T = 16, N = B * T, H = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
    impl m;
    if (!impl_open(&m, &c, B, T)) { CHECK(0); return; }
    float *P = malloc(m.L.total * sizeof *P), *dout = malloc((size_t)N * H * sizeof *dout);
    float *out = malloc((size_t)N * H * sizeof *out), bias[MAX_E], bias2[MAX_E];
    draw(&c, &m.L, 4242, P, dout, N);
    /* skew: experts 0 and 1 (group 0) align with a direction v that every token carries */
    rng_stream r = rng_stream_make(4242, 9);
    float v[64];
    for (int h = 0; h < H; h++) v[h] = rng_next_normal(&r);
    for (int e = 0; e < 2; e++)
        for (int h = 0; h < H; h++) {
            float *g = &P[m.L.gate + (size_t)e * H + h];
            *g = 0.3f * *g + 0.5f * v[h];
        }
    for (int t = 0; t < N; t++)
        for (int h = 0; h < H; h++) P[m.L.x + (size_t)t * H + h] = 0.5f * P[m.L.x + (size_t)t * H + h] + v[h];
    for (int e = 0; e < E; e++) P[m.L.bias + e] = 0.0f;

    /* gamma = 0: nothing changes */
    impl_run(&m, P, out, NULL, NULL);
    moe_update_bias(m.layer, &m.w, 0.0f);
    be->to_host(be, bias, m.w.e_score_correction_bias, E * sizeof(float));
    for (int e = 0; e < E; e++) CHECK(bias[e] == 0.0f);

    /* the sign rule, over the loads of two forwards (this one and the gamma = 0 one's,
     * which gamma = 0 left accumulated) */
    int64_t load_sum[MAX_E];
    const moe_stats *st = moe_get_stats(m.layer);
    for (int e = 0; e < E; e++) load_sum[e] = st->load[e];
    double violation_before = st->max_violation;
    int64_t loads_before[MAX_E];
    memcpy(loads_before, st->load, E * sizeof(int64_t));
    impl_run(&m, P, out, NULL, NULL);
    for (int e = 0; e < E; e++) load_sum[e] += st->load[e];
    const float gamma = 0.01f;
    moe_update_bias(m.layer, &m.w, gamma);
    be->to_host(be, bias, m.w.e_score_correction_bias, E * sizeof(float));
    double mean = 2.0 * N * K / E;
    for (int e = 0; e < E; e++) {
        float expect = load_sum[e] > mean ? -gamma : (load_sum[e] < mean ? gamma : 0.0f);
        CHECK_NEAR(expect, bias[e], 0, 0);
    }
    /* loads were cleared: an update right away changes nothing */
    moe_update_bias(m.layer, &m.w, gamma);
    be->to_host(be, bias2, m.w.e_score_correction_bias, E * sizeof(float));
    CHECK(memcmp(bias, bias2, E * sizeof(float)) == 0);

    /* training-like loop: loads move toward balance */
    double late = 0;
    int steps = 80;
    for (int s = 0; s < steps; s++) {
        /* keep x and weights, only the bias (in m.dev) moves */
        grpo_status rc = moe_forward(m.layer, &m.w, m.dev + m.L.x, B, T, m.out);
        CHECK(rc == GRPO_OK);
        if (s >= steps - 10) late += st->max_violation / 10;
        int64_t tot = 0;
        for (int e = 0; e < E; e++) tot += st->load[e];
        if (tot != (int64_t)N * K) CHECK_INT((int64_t)N * K, tot);
        moe_update_bias(m.layer, &m.w, 0.02f);
    }
    printf("  bias update: loads before");
    for (int e = 0; e < E; e++) printf(" %lld", (long long)loads_before[e]);
    printf(" (max violation %.2f); after", violation_before);
    for (int e = 0; e < E; e++) printf(" %lld", (long long)st->load[e]);
    printf(" (mean max violation of the last 10 steps %.2f)\n", late);
    CHECK(violation_before > 2.0);
    CHECK_MSG(late < 0.5 * violation_before, "max violation %.3f -> %.3f", violation_before, late);
    free(P), free(dout), free(out);
    impl_close(&m);
}

/* ---- errors ---- */

static void test_errors(void) {
    moe_layer *l = (moe_layer *)1;
    moe_config c = base_config();
    c.n_group = 3;
    CHECK_FAILS(moe_layer_create(be, &c, 4, &l), "n_group");
    CHECK(l == NULL);
    c = base_config();
    c.topk_group = 1;
    c.num_experts_per_tok = 3;
    CHECK_FAILS(moe_layer_create(be, &c, 4, &l), "fewer than num_experts_per_tok");
    c = base_config();
    c.num_experts_per_tok = 9;
    CHECK_FAILS(moe_layer_create(be, &c, 4, &l), "num_experts_per_tok");
    c = base_config();
    c.topk_group = 5;
    CHECK_FAILS(moe_layer_create(be, &c, 4, &l), "topk_group");
    c = base_config();
    c.seq_aux_alpha = -1;
    CHECK_FAILS(moe_layer_create(be, &c, 4, &l), "seq_aux_alpha");
    c = base_config();
    CHECK_FAILS(moe_layer_create(be, &c, 0, &l), "max_tokens");
    moe_layer_free(NULL);

    impl m;
    if (!impl_open(&m, &c, 1, 3)) { CHECK(0); return; }
    CHECK_FAILS(moe_backward(m.layer, &m.w, &m.g, m.dev + m.L.x, m.dout, m.gdev + m.L.x), "no forward");
    CHECK_FAILS(moe_forward(m.layer, &m.w, m.dev + m.L.x, 2, 3, m.out), "at most 3 tokens");
    CHECK_FAILS(moe_forward(m.layer, &m.w, m.dev + m.L.x, 0, 3, m.out), "positive");
    moe_weights w = m.w;
    w.gate = NULL;
    CHECK_FAILS(moe_forward(m.layer, &w, m.dev + m.L.x, 1, 3, m.out), "gate");
    w = m.w;
    w.shared_up_proj = NULL;
    CHECK_FAILS(moe_forward(m.layer, &w, m.dev + m.L.x, 1, 3, m.out), "shared");

    /* no bias (NULL) routes as a zero bias */
    int NH = 3 * c.hidden_size;
    float *P = malloc(m.L.total * sizeof *P), *dout = malloc(NH * sizeof *dout);
    float *o1 = malloc(NH * sizeof *o1), *o2 = malloc(NH * sizeof *o2);
    draw(&c, &m.L, 99, P, dout, 3);
    for (int e = 0; e < c.n_routed_experts; e++) P[m.L.bias + e] = 0.0f;
    impl_run(&m, P, o1, NULL, NULL);
    w = m.w;
    w.e_score_correction_bias = NULL;
    CHECK_OK(moe_forward(m.layer, &w, m.dev + m.L.x, 1, 3, m.out));
    be->to_host(be, o2, m.out, NH * sizeof(float));
    CHECK(memcmp(o1, o2, NH * sizeof(float)) == 0);
    moe_update_bias(m.layer, &w, 0.1f);   /* nothing to update, no crash */
    free(P), free(dout), free(o1), free(o2);
    impl_close(&m);
}

int main(void) {
    be = backend_cpu_create();
    make_problems();
    test_routing();
    test_forward();
    test_gradients();
    test_bias_update();
    test_errors();
    backend_free(be);
    TEST_MAIN_END();
}
