/* Private to the DeepSeek-V3 model's files: the struct behind deepseek_v3_model, its
 * parameter view indices, weight pointers and carved activation views. "Blocks" are the
 * num_hidden_layers decoder layers followed by the num_nextn_predict_layers MTP blocks. */
#ifndef GRPO_DEEPSEEK_V3_IMPL_H
#define GRPO_DEEPSEEK_V3_IMPL_H

#include "model/deepseek_v3.h"
#include "model/linear.h"

/* Indices into the param_set; -1 where the block does not have the tensor. */
typedef struct {
    int input_layernorm, post_attention_layernorm;
    int q_a_proj, q_a_layernorm, q_b_proj, q_proj, kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj;
    int gate_proj, up_proj, down_proj;                      /* dense MLP */
    int gate, e_score_correction_bias;                      /* MoE router */
    int shared_gate_proj, shared_up_proj, shared_down_proj; /* -1 when n_shared_experts == 0 */
    int expert0;   /* experts.E.{gate,up,down}_proj are views expert0 + 3E + {0, 1, 2} */
    int moe;       /* index into the model's MoE layers; -1 for a dense MLP */
} dsv3_block_views;

/* The tensors of MTP module k that are not a block's (official V3 names). */
typedef struct {
    int enorm, hnorm, eh_proj, shared_head_norm;
} dsv3_mtp_views;

/* Backend pointers of one block (values, or gradients: same layout). */
typedef struct {
    float *input_layernorm, *post_attention_layernorm;
    mla_weights attn;
    float *gate_proj, *up_proj, *down_proj;
    moe_weights moe;   /* expert pointer arrays point into the model's expert_ptrs */
} dsv3_block_weights;

/* What one block's forward saves for backward (N tokens, D hidden, I intermediate). */
typedef struct {
    float *x;        /* [N, D] residual stream entering the block */
    float *rstd1;    /* [N] */
    float *xn1;      /* [N, D] input_layernorm output (MLA input) */
    float *mla;      /* mla_activation_floats */
    float *xmid;     /* [N, D] residual after attention */
    float *rstd2;    /* [N] */
    float *xn2;      /* [N, D] post_attention_layernorm output (MLP input) */
    float *gate, *up, *act;   /* [N, I] dense MLP only */
} dsv3_block_acts;

/* MTP module k's saved activations. */
typedef struct {
    int32_t *ids;        /* [N] t_{i+k} (0 past the row's end) */
    int32_t *targets;    /* [N] t_{i+k+1}, -1 past the row's end */
    float *emb;          /* [N, D] embed_tokens[ids] */
    float *rstd_e, *en;  /* enorm */
    float *rstd_h, *hn;  /* hnorm of h^{k-1} */
    float *out;          /* [N, D] h^k, the block's output */
    float *rstd_o, *xo;  /* shared_head.norm */
    float *logits;       /* [N, V]; dlogits after deepseek_v3_mtp_loss */
    float *lse, *logprobs, *dlogprobs;   /* [N] */
} dsv3_mtp_acts;

/* Backward scratch shared by all blocks. */
typedef struct {
    float *dres;     /* [N, D] gradient of the residual stream */
    float *dxn;      /* [N, D] gradient of a norm's output */
    float *dtmp;     /* [N, D] gradient of a norm's input */
    float *dact, *dgate, *dup;   /* [N, I] */
    float *dcarry;   /* [N, D] gradient of h^{k} arriving from MTP module k+1 */
    float *mla;      /* mla_scratch_floats */
} dsv3_grad_acts;

struct deepseek_v3_model {
    backend *be;
    deepseek_v3_config cfg;
    mla_config mla_cfg;
    moe_config moe_cfg;
    int n_blocks;                   /* num_hidden_layers + num_nextn_predict_layers */
    param_set params;
    int embed_view, norm_view, lm_head_view;   /* lm_head_view = -1 when tied */
    dsv3_block_views *views;        /* [n_blocks] */
    dsv3_mtp_views *mtp_views;      /* [num_nextn_predict_layers] */
    dsv3_block_weights *weights;    /* [n_blocks] */
    dsv3_block_weights *grads;      /* [n_blocks], resolved when the gradients exist */
    float *grads_resolved_for;      /* params.grad the grads were resolved against */
    float **expert_ptrs;            /* [n_moe * 3 * E] values, then [n_moe * 3 * E] gradients */
    float *zero_bias;               /* [E] backend zeros: the routing bias of deepseek_v2 (none stored) */

    int n_moe;                      /* MoE blocks */
    int *moe_block;                 /* [n_moe] block index of each */
    moe_layer **moe;                /* [n_moe], created by reserve */
    float seq_aux_alpha;

    float *rope_block;              /* cos then sin, each [max_pos, qk_rope/2] */
    float *rope_cos, *rope_sin;

    /* activations: one block for `capacity` tokens */
    float *act_block;
    int capacity;
    dsv3_block_acts *acts;          /* [n_blocks] */
    dsv3_mtp_acts *mtp;             /* [num_nextn_predict_layers] */
    float *x_final;      /* [N, D] */
    float *rstd_final;   /* [N] */
    float *xn_final;     /* [N, D] model.norm output = h^0 of MTP */
    float *logits;       /* [N, V] */
    int32_t *ids;        /* [N] */
    int32_t *positions;  /* [N] */
    dsv3_grad_acts g;
    int32_t *host_i32;   /* [2 * capacity] host scratch (default positions, MTP ids) */
    float *host_f32;     /* [capacity] host scratch (MTP logprobs) */

    int last_B, last_T;  /* the last forward's batch; 0 when none */
    int mtp_pending;     /* deepseek_v3_mtp_loss ran after the last forward */

    int recompute;       /* deepseek_v3_set_recompute: blocks share one set of activation views */
    int live_block;      /* under recompute: the block whose activations the shared views hold (-1: none) */
    float *moe_shared;   /* under recompute: the one backend block every MoE layer runs in */
    int moe_live;        /* the MoE layer whose activations moe_shared holds (-1: none) */
    int64_t *loads_saved;   /* [n_routed_experts] host: a layer's loads kept across its recomputation */
    int reserved_B, reserved_T;   /* the last reserve's batch; 0 when none */
    size_t act_bytes;    /* bytes of act_block */
};

/* Shared by the model's files. */
/* A Linear in float32 (the head). */
void dsv3_linear(backend *be, float *y, const float *x, const float *W, int N, int in, int out, float beta);
void dsv3_linear_backward(backend *be, float *dx, float dx_beta, float *dW, const float *dy, const float *x,
                          const float *W, int N, int in, int out);
/* Resolves m->grads against params.grad (once per gradient block). */
void dsv3_resolve_grads(deepseek_v3_model *m);
/* One block: a->x -> out [N, D]. */
grpo_status dsv3_block_forward(deepseek_v3_model *m, int b, float *out, int B, int T);
/* On entry g.dres = d(out of block b); on exit d(x of block b). */
grpo_status dsv3_block_backward(deepseek_v3_model *m, int b, int B, int T);
float *dsv3_lm_head(const deepseek_v3_model *m);
/* MTP backward (deepseek_v3_mtp.c): leaves d h^0 in g.dcarry. */
grpo_status dsv3_mtp_backward(deepseek_v3_model *m);

#endif
