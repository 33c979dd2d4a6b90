/* DeepSeekMoE layer (DeepSeek-V3 report sec. 2.1.2; HF DeepseekV3MoE), forward and
 * backward on the backend op table: shared experts always on, plus top-k of
 * n_routed_experts fine-grained routed experts chosen per token.
 *
 * Routing, per token x: [hidden]:
 *   logits = gate.weight x                              [n_routed]
 *   scores = sigmoid(logits) (V3) or softmax(logits) (V2)
 *   choice = scores + e_score_correction_bias           (bias for SELECTION only, V3 eq. 16)
 *   group-limited: experts split into n_group groups; a group's score is the sum of its
 *   top-2 `choice` values (V3; V2 uses the max); keep the topk_group best groups, mask the
 *   rest, take the top num_experts_per_tok experts by `choice`
 *   weights = scores of the chosen experts (unbiased), divided by their sum when
 *   norm_topk_prob, times routed_scaling_factor
 *   y = sum_shared expert(x) + sum_chosen weight_e * expert_e(x)
 * Each expert is a SwiGLU MLP with moe_intermediate_size. Tokens are dispatched per expert
 * (sorted by expert, each expert's rows contiguous, one matmul per expert: a grouped
 * matmul); no token is dropped. Gradients flow into the chosen experts, the gate weight
 * (through the chosen weights), and x; e_score_correction_bias gets none.
 *
 * Auxiliary-loss-free balancing (V3 eq. 16-17): after each optimizer step the caller
 * calls moe_update_bias: bias_e += gamma * sign(mean_load - load_e).
 * Sequence-wise balance loss (V3 eq. 17-20), weight alpha: per sequence,
 *   f_i = N_r / (K_r T) * #tokens choosing i, P_i = mean over tokens of the normalised
 *   scores s'_i = s_i / sum_j s_j; L = alpha * sum_i f_i P_i (f is a constant). */
#ifndef GRPO_MOE_H
#define GRPO_MOE_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"
#include "model/linear.h"

typedef enum { MOE_SCORING_SIGMOID = 0, MOE_SCORING_SOFTMAX = 1 } moe_scoring;

typedef struct {
    int hidden_size;
    int moe_intermediate_size;
    int n_routed_experts;
    int n_shared_experts;          /* shared experts are one MLP of n_shared * moe_intermediate */
    int num_experts_per_tok;
    int n_group;
    int topk_group;
    int norm_topk_prob;
    float routed_scaling_factor;
    moe_scoring scoring_func;
    int group_score_top2;          /* 1: group score = sum of top-2 (V3), 0: max (V2) */
    float seq_aux_alpha;           /* sequence-wise balance loss weight (0: off) */
} moe_config;

/* Weights (backend pointers; HF names under model.layers.N.mlp.); gradients use the same
 * struct (accumulated into). */
typedef struct {
    float *gate;                   /* [n_routed, hidden]          gate.weight */
    float *e_score_correction_bias;/* [n_routed]                  gate.e_score_correction_bias (no grad) */
    float **experts_gate_proj;     /* [n_routed] x [moe_inter, hidden]  experts.E.gate_proj.weight */
    float **experts_up_proj;       /* [n_routed] x [moe_inter, hidden] */
    float **experts_down_proj;     /* [n_routed] x [hidden, moe_inter] */
    float *shared_gate_proj;       /* [n_shared * moe_inter, hidden]  shared_experts.gate_proj.weight */
    float *shared_up_proj;
    float *shared_down_proj;       /* [hidden, n_shared * moe_inter] */
    linear *compute;               /* the experts' precision (model/linear.h); NULL: fp32.
                                    * The gate always multiplies in float32. */
} moe_weights;

/* Per-layer routing statistics of the last forward (host memory, owned by the layer
 * state): tokens routed to each expert. */
typedef struct {
    int64_t *load;                 /* [n_routed] */
    double max_violation;          /* max load / mean load - 1 */
    double aux_loss;               /* sequence-wise balance loss of the last forward (incl. alpha) */
} moe_stats;

typedef struct moe_layer moe_layer;   /* routing state + activation views of one layer */

/* Creates the per-layer state for up to max_tokens tokens (allocates its activation and
 * scratch memory once: forward/backward never allocate). */
grpo_status moe_layer_create(backend *be, const moe_config *cfg, int max_tokens, moe_layer **out);
/* The same over backend memory the caller owns (moe_layer_device_bytes of it): layers
 * that share one block (activation recomputation: each layer's forward is run again
 * before its backward) keep their own routing state in host memory. moe_layer_free
 * leaves `block` to the caller. */
grpo_status moe_layer_create_over(backend *be, const moe_config *cfg, int max_tokens, float *block, moe_layer **out);
/* Bytes of backend memory one layer takes for max_tokens tokens (its activations and
 * backward scratch). */
size_t moe_layer_device_bytes(const moe_config *cfg, int max_tokens);
void moe_layer_free(moe_layer *l);

/* x: [N, hidden] normed input (N = B*T tokens, rows of B sequences of length T, used by
 * the sequence-wise loss); out: [N, hidden] (written). */
grpo_status moe_forward(moe_layer *l, const moe_weights *w, const float *x, int B, int T, float *out);
/* dout: [N, hidden]; dx: [N, hidden] (written); grads accumulate into g. Adds the
 * balance loss's gradient when seq_aux_alpha > 0 (its value is in moe_get_stats). */
grpo_status moe_backward(moe_layer *l, const moe_weights *w, moe_weights *g, const float *x, const float *dout,
                         float *dx);
const moe_stats *moe_get_stats(const moe_layer *l);
/* bias_e += gamma * sign(mean_load - load_e), from the loads accumulated since the last
 * call (over every forward in between), then clears them. gamma = 0 does nothing. */
void moe_update_bias(moe_layer *l, moe_weights *w, float gamma);

#endif
