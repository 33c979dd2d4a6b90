/* DeepSeekMoE routing on the host: scores, group-limited top-k selection and the routing
 * weights (HF DeepseekV3TopkRouter, DeepseekV2TopkRouter "group_limited_greedy"), the
 * sequence-wise balance loss (V3 report eq. 17-20) and the backward of both into the gate
 * logits. Plain C over [N, n_routed] arrays, so a CUDA kernel can take its place. */
#include "model/moe_impl.h"

#include <math.h>
#include <string.h>

static double sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* s: [E] = sigmoid(z) or softmax(z) (max-subtracted, summed in double). */
static void token_scores(const moe_config *c, const float *z, float *s) {
    int E = c->n_routed_experts;
    if (c->scoring_func == MOE_SCORING_SIGMOID) {
        for (int e = 0; e < E; e++) s[e] = (float)sigmoid(z[e]);
        return;
    }
    double zmax = z[0], sum = 0.0;
    for (int e = 1; e < E; e++) zmax = z[e] > zmax ? z[e] : zmax;
    for (int e = 0; e < E; e++) sum += exp((double)z[e] - zmax);
    for (int e = 0; e < E; e++) s[e] = (float)(exp((double)z[e] - zmax) / sum);
}

/* Group score: sum of the group's two largest choices (V3, HF `.topk(2).sum()`) or its
 * largest (V2 group_limited_greedy); a group of one expert scores its single choice. */
static double group_score(const double *choice, int size, int top2) {
    double first = -INFINITY, second = -INFINITY;
    for (int i = 0; i < size; i++) {
        double v = choice[i];
        if (v > first) { second = first; first = v; }
        else if (v > second) second = v;
    }
    return top2 && size >= 2 ? first + second : first;
}

void moe_route_tokens(const moe_config *c, const float *logits, const float *bias, int N, float *scores,
                      int32_t *topk_idx, float *topk_weight, moe_route_scratch *s) {
    int E = c->n_routed_experts, K = c->num_experts_per_tok, G = c->n_group, gsize = E / G;
    for (int t = 0; t < N; t++) {
        float *st = scores + (size_t)t * E;
        int32_t *idx = topk_idx + (size_t)t * K;
        float *wt = topk_weight + (size_t)t * K;
        token_scores(c, logits + (size_t)t * E, st);
        /* the bias only steers the choice (V3 eq. 16) */
        for (int e = 0; e < E; e++) s->choice[e] = (double)st[e] + (double)bias[e];

        /* keep the topk_group best groups; the rest are out (HF masks them with -inf).
         * keep[e]: 0 out, 1 kept, 2 chosen. Scans pick the first candidate and replace it
         * only by a strictly larger one: ties go to the lower index, NaN never wins. */
        for (int g = 0; g < G; g++) s->group_score[g] = group_score(s->choice + (size_t)g * gsize, gsize,
                                                                     c->group_score_top2);
        memset(s->keep, 0, (size_t)E);
        for (int j = 0; j < c->topk_group; j++) {
            int best = -1;
            for (int g = 0; g < G; g++) {
                if (s->keep[(size_t)g * gsize]) continue;
                if (best < 0 || s->group_score[g] > s->group_score[best]) best = g;
            }
            memset(s->keep + (size_t)best * gsize, 1, (size_t)gsize);
        }
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                if (s->keep[e] != 1) continue;
                if (best < 0 || s->choice[e] > s->choice[best]) best = e;
            }
            s->keep[best] = 2;
            idx[k] = best;
        }

        /* weights from the unbiased scores (HF: gather, / (sum + 1e-20), * scaling) */
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += st[idx[k]];
        double denom = c->norm_topk_prob ? sum + 1e-20 : 1.0;
        for (int k = 0; k < K; k++) wt[k] = (float)((double)st[idx[k]] / denom * c->routed_scaling_factor);
    }
}

/* counts: [E] = how many of the T tokens starting at row t0 chose each expert. */
static void sequence_counts(const moe_config *c, const int32_t *topk_idx, int t0, int T, int64_t *counts) {
    int E = c->n_routed_experts, K = c->num_experts_per_tok;
    memset(counts, 0, (size_t)E * sizeof *counts);
    for (int t = t0; t < t0 + T; t++)
        for (int k = 0; k < K; k++) counts[topk_idx[(size_t)t * K + k]]++;
}

/* Per sequence (V3 eq. 17-20): f_i = E / (K T) * #tokens choosing i,
 * P_i = 1/T sum_t s_{i,t} / sum_j s_{j,t}, L = alpha sum_i f_i P_i; averaged over the
 * B sequences (as DeepSeek-V2's seq_aux loss, `.sum(dim=1).mean()`). */
double moe_route_aux_loss(const moe_config *c, const float *scores, const int32_t *topk_idx, int B, int T,
                          int64_t *counts) {
    if (!(c->seq_aux_alpha > 0)) return 0.0;
    int E = c->n_routed_experts, K = c->num_experts_per_tok;
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        sequence_counts(c, topk_idx, b * T, T, counts);
        double loss = 0.0;
        for (int t = b * T; t < (b + 1) * T; t++) {
            const float *st = scores + (size_t)t * E;
            double ssum = 0.0, dot = 0.0;
            for (int e = 0; e < E; e++) {
                ssum += st[e];
                dot += (double)counts[e] * st[e];
            }
            loss += dot / ssum;
        }
        /* sum_i f_i P_i = E / (K T) * 1/T * sum_t sum_i count_i s'_{i,t} */
        total += loss * E / ((double)K * T * T);
    }
    return c->seq_aux_alpha * total / B;
}

void moe_route_backward(const moe_config *c, const float *scores, const int32_t *topk_idx, const float *dweight,
                        int B, int T, double dloss_aux, float *dlogits, double *dscore, int64_t *counts) {
    int E = c->n_routed_experts, K = c->num_experts_per_tok;
    double rsf = c->routed_scaling_factor;
    int aux = c->seq_aux_alpha > 0 && dloss_aux != 0.0;
    /* dL/ds'_{i,t} = alpha f_i / (T B) * dloss_aux = aux_scale * count_i */
    double aux_scale = aux ? dloss_aux * c->seq_aux_alpha * E / ((double)K * T * T * B) : 0.0;
    for (int b = 0; b < B; b++) {
        if (aux) sequence_counts(c, topk_idx, b * T, T, counts);
        for (int t = b * T; t < (b + 1) * T; t++) {
            const float *st = scores + (size_t)t * E;
            const int32_t *idx = topk_idx + (size_t)t * K;
            const float *dw = dweight + (size_t)t * K;
            memset(dscore, 0, (size_t)E * sizeof *dscore);

            /* w_k = rsf * u_k / S (S = sum u + 1e-20) or rsf * u_k, u_k = s[idx_k]:
             * du_j = rsf * (dw_j / S - sum_k dw_k u_k / S^2) */
            if (c->norm_topk_prob) {
                double S = 1e-20, g = 0.0;
                for (int k = 0; k < K; k++) S += st[idx[k]];
                for (int k = 0; k < K; k++) g += (double)dw[k] * st[idx[k]];
                for (int k = 0; k < K; k++) dscore[idx[k]] += rsf * ((double)dw[k] / S - g / (S * S));
            } else {
                for (int k = 0; k < K; k++) dscore[idx[k]] += rsf * dw[k];
            }

            /* balance loss through s'_i = s_i / sum_j s_j: ds_j += (g_j - sum_i g_i s'_i) / sum s */
            if (aux) {
                double ssum = 0.0, gs = 0.0;
                for (int e = 0; e < E; e++) {
                    ssum += st[e];
                    gs += aux_scale * (double)counts[e] * st[e];
                }
                gs /= ssum;
                for (int e = 0; e < E; e++) dscore[e] += (aux_scale * (double)counts[e] - gs) / ssum;
            }

            float *dz = dlogits + (size_t)t * E;
            if (c->scoring_func == MOE_SCORING_SIGMOID) {
                for (int e = 0; e < E; e++) dz[e] = (float)(dscore[e] * st[e] * (1.0 - st[e]));
            } else {
                double dot = 0.0;
                for (int e = 0; e < E; e++) dot += dscore[e] * st[e];
                for (int e = 0; e < E; e++) dz[e] = (float)(st[e] * (dscore[e] - dot));
            }
        }
    }
}
