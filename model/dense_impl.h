/* Private to the dense model's files: the struct behind dense_model, its parameter view
 * indices and the carved activation views. */
#ifndef GRPO_DENSE_IMPL_H
#define GRPO_DENSE_IMPL_H

#include "model/dense.h"
#include "model/linear.h"

/* Indices into the param_set; -1 for a bias the config lacks. */
typedef struct {
    int input_layernorm, q_proj, q_bias, k_proj, k_bias, v_proj, v_bias, o_proj, o_bias;
    int post_attention_layernorm, gate_proj, up_proj, down_proj;
} dense_layer_views;

/* What one layer's forward saves for backward (N = B*T tokens, D hidden, QD = Hq*Dh,
 * KD = Hkv*Dh, I intermediate). */
typedef struct {
    float *x;       /* [N, D] residual stream entering the layer */
    float *rstd1;   /* [N] input_layernorm's 1/rms */
    float *xn1;     /* [N, D] input_layernorm output */
    float *q;       /* [N, QD] = [B, T, Hq, Dh], after RoPE */
    float *k;       /* [N, KD] = [B, T, Hkv, Dh], after RoPE */
    float *v;       /* [N, KD] */
    float *att;     /* [N, QD] attention output before o_proj */
    float *lse;     /* [B, Hq, T] attention log-sum-exp */
    float *xmid;    /* [N, D] residual stream after attention */
    float *rstd2;   /* [N] */
    float *xn2;     /* [N, D] post_attention_layernorm output */
    float *gate;    /* [N, I] */
    float *up;      /* [N, I] */
    float *act;     /* [N, I] silu(gate) * up */
} dense_layer_acts;

/* Backward scratch: gradients of the activations, reused by every layer. */
typedef struct {
    float *dres;    /* [N, D] gradient of the residual stream */
    float *dxn;     /* [N, D] gradient of a norm's output */
    float *dtmp;    /* [N, D] gradient of a norm's input */
    float *dact, *dgate, *dup;   /* [N, I] */
    float *dq, *datt;            /* [N, QD] */
    float *dk, *dv;              /* [N, KD] */
} dense_grad_acts;

struct dense_model {
    backend *be;
    dense_config cfg;
    param_set params;
    int embed_view, norm_view, lm_head_view;   /* lm_head_view = -1 when tied */
    dense_layer_views *views;                   /* [L] */
    dense_layer_weights *weights;               /* [L] backend pointers into params.data */
    float *rope_block;                          /* cos then sin, each [max_pos, Dh/2] */
    float *rope_cos, *rope_sin;

    /* Activations: one block for `capacity` tokens. */
    float *act_block;
    int capacity;
    dense_layer_acts *acts;                     /* [L] */
    float *x_final;      /* [N, D] residual stream after the last layer */
    float *rstd_final;   /* [N] */
    float *xn_final;     /* [N, D] model.norm output */
    float *logits;       /* [N, V] */
    int32_t *ids;        /* [N] copy of the forward's ids */
    int32_t *positions;  /* [N] copy of the forward's positions */
    dense_grad_acts grads;
    int32_t *positions_host;   /* [capacity] host scratch for the default positions */

    int inference_only;        /* reserved by dense_reserve_inference: no backward */
    int recompute;             /* dense_set_recompute: training keeps layer inputs only */
    int reserved_B, reserved_T;   /* the last reserve's batch; 0 when none */
    size_t act_bytes;          /* bytes of act_block */
    int last_B, last_T;        /* the last forward's batch; 0 when none */
};

/* One decoder layer's forward (dense_forward.c): m->acts[l].x -> out [N, D], saving the
 * layer's activations in m->acts[l]; dense_backward calls it again under recomputation. */
void dense_layer_forward(dense_model *m, int l, float *out, int B, int T);

#endif
