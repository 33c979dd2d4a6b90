/* Multi-head Latent Attention (DeepSeek-V2 report sec. 2.1; V3 report sec. 2.1.1), one
 * layer, forward and backward on the backend op table, plus the inference path that
 * caches only the compressed latent and the shared RoPE key.
 *
 * Training path (materialised K/V), per token x: [hidden]:
 *   q      = q_b_proj(q_a_layernorm(q_a_proj(x)))      (or q_proj(x) when q_lora_rank == 0)
 *            -> [H, qk_nope + qk_rope]; the rope part is rotated (interleaved pairs, as HF)
 *   ckv    = kv_a_proj_with_mqa(x) -> [kv_lora_rank + qk_rope]; the last qk_rope numbers are
 *            the one RoPE key shared by all heads (rotated); the first kv_lora_rank go
 *            through kv_a_layernorm into the latent c
 *   kv     = kv_b_proj(c) -> [H, qk_nope + v_head]
 *   k      = [k_nope, k_rope (broadcast to every head)], v as given
 *   out    = o_proj(softmax(q k^T * softmax_scale, causal) v)
 * softmax_scale = 1/sqrt(qk_nope + qk_rope), times mscale^2 under YaRN (V3 report 4.3;
 * the model computes it and passes it in the config).
 *
 * Inference path: the cache holds per token only [kv_lora_rank] latent + [qk_rope] rotated
 * key; kv_b_proj is absorbed: q_nope' = q_nope W_UK (per head) scores against the latent,
 * and the per-head value up-projection W_UV is applied after the attention-weighted sum
 * of latents. Gives the same outputs as the training path. */
#ifndef GRPO_MLA_H
#define GRPO_MLA_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"
#include "model/linear.h"

typedef struct {
    int hidden_size;
    int num_heads;
    int q_lora_rank;        /* 0: plain q_proj (DeepSeek-V2-Lite) */
    int kv_lora_rank;
    int qk_nope_head_dim;
    int qk_rope_head_dim;
    int v_head_dim;
    float rms_norm_eps;     /* eps of q_a_layernorm and kv_a_layernorm. transformers builds both as
                               DeepseekV3RMSNorm(rank) with its default eps 1e-6, NOT config.rms_norm_eps:
                               pass 1e-6 for parity whatever config.json says. RoPE is always the
                               interleaved kind (config rope_interleave = true, the V3 default). */
    float softmax_scale;    /* computed by the model (YaRN mscale included) */
} mla_config;

/* One layer's weights (backend pointers; HF names under model.layers.N.self_attn.). The
 * same struct holds the gradients (accumulated into) in mla_backward. Unused ones NULL. */
typedef struct {
    float *q_a_proj;            /* [q_lora_rank, hidden] */
    float *q_a_layernorm;       /* [q_lora_rank] */
    float *q_b_proj;            /* [H * (nope + rope), q_lora_rank] */
    float *q_proj;              /* [H * (nope + rope), hidden] when q_lora_rank == 0 */
    float *kv_a_proj_with_mqa;  /* [kv_lora_rank + rope, hidden] */
    float *kv_a_layernorm;      /* [kv_lora_rank] */
    float *kv_b_proj;           /* [H * (nope + v), kv_lora_rank] */
    float *o_proj;              /* [hidden, H * v] */
    linear *compute;            /* the projections' precision (model/linear.h); NULL: fp32 */
} mla_weights;

/* Floats of backend memory one layer's forward keeps for backward for N = B*T tokens
 * (the caller carves them from its activation block and passes the pointer). */
size_t mla_activation_floats(const mla_config *cfg, int B, int T);
/* Floats of backward scratch (shared by all layers). */
size_t mla_scratch_floats(const mla_config *cfg, int B, int T);

/* x: [B*T, hidden] (the normed input), out: [B*T, hidden] (written).
 * positions: [B*T] int32 backend memory; cos/sin: [max_pos, qk_rope/2] tables.
 * acts: mla_activation_floats(cfg, B, T) floats, kept for backward. */
grpo_status mla_forward(backend *be, const mla_config *cfg, const mla_weights *w, float *acts, const float *x,
                        const int32_t *positions, const float *cos, const float *sin, int B, int T, float *out);
/* dout: [B*T, hidden]; dx: [B*T, hidden] (written); grads accumulate into g. x is the
 * same input as the forward's. */
grpo_status mla_backward(backend *be, const mla_config *cfg, const mla_weights *w, mla_weights *g,
                         const float *acts, float *scratch, const float *x, const int32_t *positions,
                         const float *cos, const float *sin, const float *dout, int B, int T, float *dx);

/* ---- inference: the latent cache ----
 * Cache bytes per token per layer: (kv_lora_rank + qk_rope_head_dim) * sizeof(float);
 * an MHA layer with the same heads would keep H * (qk_nope + qk_rope + v_head) floats. */
size_t mla_cache_floats_per_token(const mla_config *cfg);
size_t mla_mha_floats_per_token(const mla_config *cfg);

/* Appends T new tokens of one sequence to its cache and attends over all cached tokens.
 * x: [T, hidden] normed input; positions: [T] host int32 (absolute); cache_latent:
 * [capacity, kv_lora_rank], cache_rope: [capacity, qk_rope] (rotated keys), both backend
 * memory, with n_cached valid rows (the new rows are written at n_cached..n_cached+T-1);
 * scratch: mla_decode_scratch_floats(cfg, T, n_cached + T). out: [T, hidden]. */
size_t mla_decode_scratch_floats(const mla_config *cfg, int T, int total_len);
grpo_status mla_decode(backend *be, const mla_config *cfg, const mla_weights *w, const float *x,
                       const int32_t *positions, const float *cos, const float *sin, float *cache_latent,
                       float *cache_rope, int n_cached, int T, float *scratch, float *out);

#endif
