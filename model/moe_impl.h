/* Private to the DeepSeekMoE files: the struct behind moe_layer, the host routing
 * (moe_route.c) and the token dispatch (moe_dispatch.c). The routing and the dispatch are
 * each behind a few functions so a CUDA kernel can replace one without touching the rest. */
#ifndef GRPO_MOE_IMPL_H
#define GRPO_MOE_IMPL_H

#include "model/moe.h"

/* Host scratch of the routing for one token (sized by moe_layer_create). */
typedef struct {
    double *choice;      /* [n_routed] scores + bias */
    double *group_score; /* [n_group] */
    unsigned char *keep; /* [n_routed] 1: expert's group kept */
} moe_route_scratch;

/* Routing of N tokens on the host (HF DeepseekV3TopkRouter / DeepseekV2TopkRouter).
 * logits: [N, n_routed]; bias: [n_routed]; writes scores: [N, n_routed] (sigmoid or
 * softmax of the logits, kept for backward), topk_idx: [N, K] (the chosen experts in
 * order of falling `choice`; ties go to the lower index) and topk_weight: [N, K] (the
 * final weights: unbiased scores, normalised when norm_topk_prob, times
 * routed_scaling_factor). Never fails: NaN logits still give K distinct valid experts. */
void moe_route_tokens(const moe_config *c, const float *logits, const float *bias, int N, float *scores,
                      int32_t *topk_idx, float *topk_weight, moe_route_scratch *s);

/* Sequence-wise balance loss (V3 eq. 17-20), averaged over the B sequences, alpha included.
 * scores: [B*T, n_routed]; topk_idx: [B*T, K]; counts: [n_routed] host scratch. */
double moe_route_aux_loss(const moe_config *c, const float *scores, const int32_t *topk_idx, int B, int T,
                          int64_t *counts);

/* Backward of moe_route_tokens and of the balance loss into the gate logits.
 * dweight: [N, K] gradient of the final topk_weight; writes dlogits: [N, n_routed].
 * The balance loss's gradient (times dloss_aux) is added when c->seq_aux_alpha > 0.
 * dscore: [n_routed] double scratch, counts: [n_routed] scratch. */
void moe_route_backward(const moe_config *c, const float *scores, const int32_t *topk_idx, const float *dweight,
                        int B, int T, double dloss_aux, float *dlogits, double *dscore, int64_t *counts);

struct moe_layer {
    backend *be;
    moe_config cfg;
    int max_tokens;
    int is_host;                  /* backend memory is host memory (the CPU backend) */
    int shared_inter;             /* n_shared_experts * moe_intermediate_size */

    /* The last forward's batch; 0 when none. */
    int last_B, last_T;

    /* ---- backend memory: one block carved into views (N = max_tokens, NK = N * K,
     * H hidden, I moe_intermediate, IS shared_inter, E n_routed) ---- */
    float *block;
    int borrowed_block;  /* block is the caller's (moe_layer_create_over): not freed here */
    float *logits;       /* [N, E] gate logits */
    float *xs;           /* [NK, H] token rows gathered per expert (sorted by expert) */
    float *h_gate;       /* [NK, I] */
    float *h_up;         /* [NK, I] */
    float *act;          /* [NK, I] silu(h_gate) * h_up */
    float *y_rows;       /* [NK, H] expert outputs before the routing weight */
    float *s_gate;       /* [N, IS] shared expert */
    float *s_up;         /* [N, IS] */
    float *s_act;        /* [N, IS] */
    float *d_rows;       /* [NK, H] backward: weighted dout rows, then d xs */
    float *d_act;        /* [NK, I] */
    float *d_gate;       /* [NK, I] */
    float *d_up;         /* [NK, I] */
    float *ds_act;       /* [N, IS] */
    float *ds_gate;      /* [N, IS] */
    float *ds_up;        /* [N, IS] */
    float *dlogits;      /* [N, E] */
    float *dot;          /* [NK] per-row dot products (non-host backends) */

    /* ---- host memory: one block ---- */
    void *host_block;
    float *logits_h;     /* [N, E] */
    float *scores_h;     /* [N, E] */
    float *bias_h;       /* [E] */
    int32_t *topk_idx;   /* [N, K] */
    float *topk_weight;  /* [N, K] */
    float *dweight_h;    /* [N, K] */
    float *dlogits_h;    /* [N, E] */
    double *dscore;      /* [E] */
    int64_t *counts;     /* [E] scratch */
    int64_t *load;       /* [E] the last forward's loads (moe_stats.load) */
    int64_t *load_accum; /* [E] loads since the last moe_update_bias */
    /* dispatch: rows of xs are token slots sorted by expert (counting sort, stable in the
     * token order); expert e owns rows expert_offset[e] .. expert_offset[e + 1] - 1. */
    int *expert_offset;  /* [E + 1] */
    int32_t *row_token;  /* [NK] token of each row */
    int32_t *slot_row;   /* [NK] row of slot t * K + k */
    float *row_weight;   /* [NK] routing weight of each row */
    float *dot_h;        /* [NK] */
    int *group_m;              /* [E] rows per expert of one grouped product (moe_experts_matmul) */
    const float **group_a;     /* [E] its operands and outputs, backend pointers */
    const float **group_b;     /* [E] */
    float **group_c;           /* [E] */
    moe_route_scratch route;

    moe_stats stats;
};

/* Error naming `what` unless every pointer the config uses is set (moe_forward.c).
 * e_score_correction_bias may be NULL (a model without one, V2: zeros; gradients: none). */
grpo_status moe_check_weights(const moe_layer *l, const moe_weights *w, const char *what);

/* The routed experts' products of one projection as ONE backend matmul_grouped call (the
 * GPU runs them as one launch), when lin is fp32 (or NULL) and the backend has the op; 0
 * when it did nothing (the caller loops over experts). For every expert e with n_e rows
 * (rows r0_e .. of the sorted layout): C_e[n_e, N] = A_e[n_e, K] op(W_e) + beta C_e with
 * A_e = A + r0_e K, C_e = C + r0_e N; op(W_e) = W_e^T (trans_w, W_e: [N, K]: forward) or
 * W_e (W_e: [K, N]: the input gradient). moe_forward.c. */
int moe_experts_matmul(moe_layer *l, linear *lin, int trans_w, float *const *W, const float *A, int K, float *C, int N,
                       float beta);

/* ---- dispatch (moe_dispatch.c) ---- */
/* Counting sort of the last routing's slots by expert: fills expert_offset, row_token,
 * slot_row, row_weight and adds the loads (load, load_accum). N tokens. */
void moe_dispatch_plan(moe_layer *l, int N);
/* dst: [NK, H] row r = src[row_token[r]] (times row_weight[r] when weighted). src: [N, H]. */
void moe_gather(moe_layer *l, float *dst, const float *src, int N, int weighted);
/* out: [N, H] += sum over rows r of token t of (row_weight[r] when weighted, else 1) * rows[r]. */
void moe_scatter_add(moe_layer *l, float *out, const float *rows, int N, int weighted);
/* dweight_h: [N, K] (host) slot (t, k) = dout[t] . y_rows[slot_row[t * K + k]]. */
void moe_weight_grad(moe_layer *l, const float *dout, int N);

#endif
