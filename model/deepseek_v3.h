/* DeepSeek-V3-style MoE policy (DeepSeek-V3 report sec. 2; transformers'
 * DeepseekV3ForCausalLM, and DeepseekV2ForCausalLM for model_type deepseek_v2): pre-norm
 * blocks of Multi-head Latent Attention (model/mla.h) and an MLP that is dense for the
 * first first_k_dense_replace layers and DeepSeekMoE (model/moe.h) after, plus
 * num_nextn_predict_layers Multi-Token Prediction modules (report sec. 2.2) trained with
 * a separate loss. Forward and backward are written once against the backend op table;
 * weights carry the Hugging Face / official checkpoint tensor names.
 *
 *   h = embed_tokens[ids]
 *   per layer l: h = h + mla(input_layernorm(h));  h = h + mlp_l(post_attention_layernorm(h))
 *   logits = lm_head(norm(h))
 *
 * MTP module k = 1..D (V3 report eq. 21-25), with h^0 = norm(h) of the main model:
 *   h'^k_i = eh_proj([enorm(emb(t_{i+k})); hnorm(h^{k-1}_i)])
 *   h^k    = block_k(h'^k)                          (one MLA + MLP block, causal over i)
 *   logits^k_i = lm_head(shared_head.norm(h^k_i))    predicts t_{i+k+1}
 *   L_MTP  = lambda / D * sum_k mean_i CE(logits^k_i, t_{i+k+1})
 * The report writes the concatenation as [RMSNorm(h); RMSNorm(Emb)]; the released V3
 * weights (as vLLM and SGLang load them) take the embedding half first, and so do we, so
 * that an official eh_proj works unchanged. Embedding and output head are shared with the
 * main model.
 *
 * Checkpoint names: transformers' DeepseekV3ForCausalLM has no MTP (it drops layers from
 * num_hidden_layers on). MTP module k is stored under the official V3 names
 * model.layers.{num_hidden_layers + k - 1}.{enorm, hnorm, eh_proj, shared_head.norm,
 * self_attn.*, mlp.*, input_layernorm, post_attention_layernorm}; the official files also
 * carry copies of the shared tensors there (embed_tokens, shared_head.head), which we
 * write on save and skip on load. FP8 E4M3 weights with `weight_scale_inv` (one float per
 * 128x128 block) are dequantised into the float32 master weights on load.
 *
 * Memory: parameters are one param_set block; activations one block sized by
 * deepseek_v3_reserve (plus each MoE layer's own state, allocated there too); forward and
 * backward never allocate. */
#ifndef GRPO_DEEPSEEK_V3_H
#define GRPO_DEEPSEEK_V3_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/backend.h"
#include "model/hf_config.h"
#include "model/lm.h"
#include "model/mla.h"
#include "model/moe.h"
#include "model/params.h"

typedef struct deepseek_v3_model deepseek_v3_model;

/* Makes a model with zero weights (then deepseek_v3_init_random or deepseek_v3_load).
 * cfg is copied and validated. On failure *out is NULL and the message says why. */
grpo_status deepseek_v3_create(backend *be, const deepseek_v3_config *cfg, deepseek_v3_model **out);
void deepseek_v3_free(deepseek_v3_model *m);   /* NULL is a no-op */

const deepseek_v3_config *deepseek_v3_get_config(const deepseek_v3_model *m);
param_set *deepseek_v3_params(deepseek_v3_model *m);
/* The per-layer MLA / MoE configs the model built from its config.json. */
const mla_config *deepseek_v3_mla_config(const deepseek_v3_model *m);
const moe_config *deepseek_v3_moe_config(const deepseek_v3_model *m);
/* RoPE tables cos, sin: [max_position_embeddings, qk_rope_head_dim/2], backend memory,
 * YaRN-scaled and multiplied by the attention factor as transformers computes them. */
void deepseek_v3_rope_tables(const deepseek_v3_model *m, const float **cos, const float **sin);
/* Layer l's attention weights (l < num_hidden_layers + num_nextn_predict_layers). */
const mla_weights *deepseek_v3_layer_attention(const deepseek_v3_model *m, int layer);

/* HF initialisation: matrices and embeddings ~ N(0, initializer_range), norms 1, the
 * routing bias 0, from the counter-based RNG (same values on every backend). */
void deepseek_v3_init_random(deepseek_v3_model *m, uint64_t seed);

/* Loads weights from a .safetensors file or a model directory (sharded or not). Shapes
 * must match; missing or unknown tensors are errors naming them, except: MTP modules
 * absent as a whole (transformers does not save them) keep their current values with a
 * warning; the official MTP copies of the shared embedding/head are skipped; a tied
 * lm_head copy is skipped. F8_E4M3 weights need their `<name>_scale_inv` [ceil(out/128),
 * ceil(in/128)] and are dequantised w * scale_inv[block]. */
grpo_status deepseek_v3_load(deepseek_v3_model *m, const char *path);
/* Reads dir/config.json, creates the model on be and loads its weights. */
grpo_status deepseek_v3_load_dir(backend *be, const char *dir, deepseek_v3_model **out);
/* Writes dir/config.json and dir/model.safetensors (float32, official tensor names incl.
 * the MTP modules and their shared copies), creating dir when missing. */
grpo_status deepseek_v3_save(const deepseek_v3_model *m, const char *dir);
/* The same in shards of at most max_shard_bytes (a larger tensor gets a shard of its own):
 * model-0000i-of-0000N.safetensors + model.safetensors.index.json (total_size, weight_map),
 * as save_pretrained lays them out; one model.safetensors when everything fits in one. The
 * other layout's entry file (a stale index or single file) is removed; older shard files
 * that the new index does not name are left (harmless: the index decides). */
grpo_status deepseek_v3_save_sharded(const deepseek_v3_model *m, const char *dir, size_t max_shard_bytes);

/* Sizes activations for up to B * T tokens per forward (T <= max_position_embeddings),
 * keeping what backward (and the MTP loss) needs; frees the previous block. */
grpo_status deepseek_v3_reserve(deepseek_v3_model *m, int B, int T);
/* Bytes of backend memory the activations take for B * T tokens: the model's block and
 * the MoE layers' expert activations; with recompute = 1 each block's input plus one
 * block's activations and one MoE layer's (deepseek_v3_set_recompute). */
size_t deepseek_v3_activation_bytes(const deepseek_v3_config *cfg, int B, int T, int recompute);
/* Activation recomputation (lm_set_recompute): the forward (and the MTP loss) keep each
 * block's input (the residual stream) and one block's attention / norm / MLP activations
 * (every MoE layer runs in one shared backend block, its routing state staying its own);
 * deepseek_v3_backward recomputes a block's forward (without the residual add of its
 * output) just before the block's backward; a MoE layer's loads are restored after its
 * second run, so balancing counts each forward once. Same ops in the same order: the same
 * gradient bits. Applies from the next reserve; a reserved block is re-reserved at the
 * same size (the last forward is dropped). */
grpo_status deepseek_v3_set_recompute(deepseek_v3_model *m, int on);
/* Bytes of the activation block reserved now (0 before any reserve). */
size_t deepseek_v3_activation_block_bytes(const deepseek_v3_model *m);

/* Forward over a batch. ids: [B*T] int32 backend memory in [0, vocab_size); positions:
 * [B*T] int32 backend memory in [0, max_position_embeddings) or NULL for 0..T-1 per row.
 * *logits: [B*T, V] backend memory owned by m, valid until the next forward. Causal within
 * each row. Also records each MoE layer's routing load (deepseek_v3_moe_stats). */
grpo_status deepseek_v3_forward(deepseek_v3_model *m, const int32_t *ids, const int32_t *positions, int B, int T,
                                float **logits);

/* MTP loss of the last forward: runs the num_nextn_predict_layers modules and returns
 * *loss = lambda / D * sum_k (mean over positions i with i + k + 1 < T of
 * -log p^k(t_{i+k+1})) (targets from the same row of ids). The next deepseek_v3_backward
 * adds this loss's gradient (into the MTP modules, the shared embedding/head and, through
 * h^0, the whole main model). Fails when the model has no MTP module. */
grpo_status deepseek_v3_mtp_loss(deepseek_v3_model *m, float lambda, double *loss);

/* Backward of the last forward (and of the MTP loss when deepseek_v3_mtp_loss ran after
 * it). dlogits: [B*T, V] backend memory (may be the logits buffer). ACCUMULATES into the
 * parameter gradients (param_set_alloc_grad first; the caller zeroes them). The routing
 * bias gets no gradient. */
grpo_status deepseek_v3_backward(deepseek_v3_model *m, const float *dlogits);

/* ---- auxiliary-loss-free balancing (V3 report eq. 16) ----
 * After each optimizer step: every MoE layer's e_score_correction_bias +=
 * gamma * sign(mean load - load_e), from the loads of all forwards since the last call,
 * which are then cleared (moe_update_bias; gamma = 0 does nothing, the loads keep
 * accumulating). Covers the MTP blocks' MoE layers too. */
void deepseek_v3_update_bias(deepseek_v3_model *m, float gamma);
/* Number of MoE layers (main layers first, then the MTP blocks' MoE layers). */
int deepseek_v3_num_moe_layers(const deepseek_v3_model *m);
/* The decoder layer index of MoE layer i. */
int deepseek_v3_moe_layer_index(const deepseek_v3_model *m, int i);
/* Routing statistics of MoE layer i's last forward (load per expert, max violation =
 * max load / mean load - 1), valid until the next forward. */
const moe_stats *deepseek_v3_moe_stats(const deepseek_v3_model *m, int i);
/* MoE layer i's loads accumulated since the last deepseek_v3_update_bias: [*n_experts],
 * writable (data parallelism replaces them with the sums over the ranks); NULL before
 * deepseek_v3_reserve. */
int64_t *deepseek_v3_moe_loads(deepseek_v3_model *m, int i, int *n_experts);
/* Largest max violation over the main model's MoE layers in the last forward. */
double deepseek_v3_max_violation(const deepseek_v3_model *m);
/* Sets the sequence-wise balance loss weight alpha (V3 eq. 17-20) of every MoE layer
 * (0: off, the default); takes effect at the next deepseek_v3_reserve. */
void deepseek_v3_set_seq_aux_alpha(deepseek_v3_model *m, float alpha);

/* ---- cached decoding (deepseek_v3_decode.c) ----
 * The lm-level table model/lm.c puts into this family's lm_ops: a paged latent cache of
 * kv_lora_rank + qk_rope_head_dim floats per token per layer (the normed latent, then the
 * rotated shared RoPE key), absorbed attention; with one cache layer more, the MTP module
 * drafts (lm_decode_ops.draft) for speculative decoding. */
extern const lm_decode_ops deepseek_v3_lm_decode_ops;

/* ---- sizes without allocating (grpo info --model-config) ---- */
typedef struct {
    int64_t total_params;            /* everything stored, MTP modules included */
    int64_t main_params;             /* without the MTP modules */
    int64_t activated_params;        /* per token in the main model: shared + top-k routed experts */
    int64_t embedding_params;        /* embed_tokens + lm_head */
    int64_t mtp_params;
    double bytes_fp32, bytes_bf16;
    double bytes_fp8;                /* 2-D weights E4M3 + one fp32 scale per 128x128 block (V3 release);
                                        embeddings, head, norms, router in bf16 */
    int64_t latent_cache_bytes_per_token;  /* all layers, bf16: (kv_lora_rank + qk_rope) * 2 */
    int64_t mha_cache_bytes_per_token;     /* same heads as MHA, bf16: H * (qk_nope + qk_rope + v) * 2 */
} deepseek_v3_sizes;

void deepseek_v3_count(const deepseek_v3_config *cfg, deepseek_v3_sizes *out);
/* A human-readable report of the config's shapes and the sizes above. */
void deepseek_v3_describe(const deepseek_v3_config *cfg, FILE *f);

#endif
