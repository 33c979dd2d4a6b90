/* Dense decoder-only transformers of the Qwen2 / Llama families (the distillation
 * students): pre-norm RMSNorm blocks with grouped-query attention + RoPE and a SwiGLU
 * MLP, forward and backward written once against the backend op table. Weights carry
 * the Hugging Face tensor names and a model directory is HF layout (config.json +
 * model.safetensors), so models move between here and `transformers` both ways.
 *
 * Maths: transformers' modeling_qwen2.py / modeling_llama.py:
 *   h = embed_tokens[ids]
 *   per layer: h = h + o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))), n1 = rmsnorm(h)
 *              h = h + down_proj(silu(gate_proj(n2)) * up_proj(n2)),                 n2 = rmsnorm(h)
 *   logits = lm_head(rmsnorm(h))   (lm_head = embed_tokens when tied)
 *
 * Memory: parameters are one param_set block; activations saved for backward are one
 * block sized by dense_reserve() and carved into named views; no allocation happens
 * inside dense_forward / dense_backward. */
#ifndef GRPO_DENSE_H
#define GRPO_DENSE_H

#include <stdint.h>

#include "core/backend.h"
#include "model/hf_config.h"
#include "model/lm.h"
#include "model/params.h"

typedef struct dense_model dense_model;

/* Backend pointers to one layer's weights (HF shapes, [out, in] for Linear); a bias the
 * config does not have is NULL. */
typedef struct {
    float *input_layernorm;            /* [D] */
    float *q_proj, *q_bias;            /* [Hq*Dh, D], [Hq*Dh] */
    float *k_proj, *k_bias;            /* [Hkv*Dh, D], [Hkv*Dh] */
    float *v_proj, *v_bias;            /* [Hkv*Dh, D], [Hkv*Dh] */
    float *o_proj, *o_bias;            /* [D, Hq*Dh], [D] */
    float *post_attention_layernorm;   /* [D] */
    float *gate_proj, *up_proj;        /* [I, D] */
    float *down_proj;                  /* [D, I] */
} dense_layer_weights;

/* Makes a model with zero weights (call dense_init_random or dense_load). cfg is copied
 * and validated. On failure *out is NULL and the message says why. */
grpo_status dense_model_create(backend *be, const dense_config *cfg, dense_model **out);
void dense_model_free(dense_model *m);   /* NULL is a no-op */

const dense_config *dense_model_config(const dense_model *m);
backend *dense_model_backend(const dense_model *m);
/* The parameter set (values, and gradients once param_set_alloc_grad has run on it). */
param_set *dense_model_params(dense_model *m);
/* Weight pointers for layer l (valid while m lives), and the model-level tensors. */
const dense_layer_weights *dense_model_layer(const dense_model *m, int layer);
float *dense_model_embed_tokens(const dense_model *m);   /* [V, D] */
float *dense_model_final_norm(const dense_model *m);     /* [D] */
float *dense_model_lm_head(const dense_model *m);        /* [V, D]; the embedding when tied */
/* RoPE tables cos, sin: [max_position_embeddings, head_dim/2], backend memory, scaled per
 * the config's rope type; pairs (i, i + head_dim/2) (HF rotate_half). */
void dense_model_rope_tables(const dense_model *m, const float **cos, const float **sin);

/* HF initialisation: Linear and Embedding weights ~ N(0, initializer_range), biases 0,
 * norms 1, drawn from the counter-based RNG (same values on every backend). */
void dense_init_random(dense_model *m, uint64_t seed);

/* Loads the weights of m from a .safetensors file or a model directory (sharded or not).
 * Shapes must match the config; missing or extra tensors are errors naming them
 * (lm_head.weight must be absent or a redundant copy when embeddings are tied). */
grpo_status dense_load(dense_model *m, const char *path);
/* Reads dir/config.json, creates the model on be and loads its weights. */
grpo_status dense_model_load_dir(backend *be, const char *dir, dense_model **out);
/* Writes dir/config.json and dir/model.safetensors (float32; the tied lm_head omitted,
 * as transformers does), creating dir when missing. */
grpo_status dense_save(const dense_model *m, const char *dir);

/* Sizes the activation block for up to B * T tokens per forward (T <= max_position_
 * embeddings), keeping every layer's activations for dense_backward; frees the previous
 * block. Forward and backward never allocate. */
grpo_status dense_reserve(dense_model *m, int B, int T);
/* The same for forward only (a frozen reference policy, evaluation): one layer's views
 * shared by all layers, about 1/num_hidden_layers of the memory; dense_backward fails. */
grpo_status dense_reserve_inference(dense_model *m, int B, int T);
/* What the activation block keeps: every layer's activations (training), one layer's
 * (inference), or each layer's input plus one layer's activations, the rest recomputed
 * in backward (training with recomputation, dense_set_recompute). */
typedef enum { DENSE_ACTS_TRAINING = 0, DENSE_ACTS_INFERENCE = 1, DENSE_ACTS_RECOMPUTE = 2 } dense_acts_mode;
/* Bytes of backend memory the activation block takes for B * T tokens in `mode`. */
size_t dense_activation_bytes(const dense_config *cfg, int B, int T, dense_acts_mode mode);
/* Activation recomputation (on = 1): the training forward keeps only each layer's input
 * (the residual stream) and one layer's worth of activations; dense_backward recomputes
 * each layer's forward just before its backward (same ops in the same order, so the
 * gradients are the same bits). Applies from the next dense_reserve; a block already
 * reserved for training is re-reserved at the same size (the last forward is dropped). */
grpo_status dense_set_recompute(dense_model *m, int on);
/* Bytes of the activation block reserved now (0 before any reserve). */
size_t dense_activation_block_bytes(const dense_model *m);

/* Forward over a batch. ids: [B*T] int32 in backend memory, each in [0, vocab_size).
 * positions: [B*T] int32 backend memory, each in [0, max_position_embeddings), or NULL
 * for 0..T-1 in every row. Attention is causal within each row; right padding needs no
 * mask (pads never reach earlier tokens; the caller's loss mask drops them).
 * *logits: [B*T, V], backend memory owned by m, valid until the next dense_forward.
 * ids and positions are copied, so the caller may reuse them at once.
 * Fails (without touching anything) when B*T exceeds the reserved size. */
grpo_status dense_forward(dense_model *m, const int32_t *ids, const int32_t *positions, int B, int T,
                          float **logits);

/* Backward of the last dense_forward. dlogits: [B*T, V] backend memory (may be the
 * logits buffer itself). ACCUMULATES into the parameter gradients (the caller zeroes
 * them with param_set_zero_grad); with tied embeddings the lm_head gradient adds into
 * the embedding's. Needs param_set_alloc_grad(dense_model_params(m)) beforehand. */
grpo_status dense_backward(dense_model *m, const float *dlogits);

/* ---- cached decoding (dense_decode.c) ----
 * The same maths as dense_forward, for a batch of sequences each appending a few tokens
 * to a paged K/V cache (model/lm.h's lm_cache): per layer a block holds the rotated keys
 * [Hkv, head_dim, block_size] then the values [Hkv, block_size, head_dim], 2 * Hkv *
 * head_dim floats per token. Attention over the cache goes through the backend's paged_attention op. The decoder holds its own activation block,
 * so decoding never disturbs the training forward's saved activations. */
typedef struct dense_decoder dense_decoder;

/* Floats one token takes in one layer's cache: 2 * num_key_value_heads * head_dim. */
size_t dense_cache_floats_per_token(const dense_config *cfg);
/* Sizes the decoder's buffers for the limits (one backend block). On failure *out is NULL. */
grpo_status dense_decoder_create(dense_model *m, const lm_decode_limits *limits, dense_decoder **out);
void dense_decoder_free(dense_decoder *d);   /* NULL is a no-op */
/* Contract of lm_decode_ops.decode (model/lm.h). *logits: [sum n_logits, V] backend
 * memory owned by d, valid until the next dense_decode with d. */
grpo_status dense_decode(dense_decoder *d, const lm_cache *cache, const lm_decode_seq *seqs, int n_seqs,
                         float **logits);
/* The lm-level table model/lm.c puts into the dense families' lm_ops. */
extern const lm_decode_ops dense_lm_decode_ops;

#endif
