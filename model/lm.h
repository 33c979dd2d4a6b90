/* A causal language model of any family behind one interface, so trainers (rl/) and the
 * rollout engine drive dense students and DeepSeek-V3 policies the same way. The
 * family is read from config.json's model_type. */
#ifndef GRPO_LM_H
#define GRPO_LM_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"
#include "core/quant.h"
#include "model/params.h"

typedef struct lm lm;

/* ---- cached decoding (the rollout engine's interface; rollouts/README.md) ----
 * The caller (rollouts/kv_pool) owns the cache: per layer, num_blocks blocks of
 * block_size * floats_per_token floats, a block holding block_size token positions. The
 * family lays out a block's floats (dense: keys [Hkv, head_dim, block_size], then values
 * [Hkv, block_size, head_dim]; DeepSeek-V3: per position the normed latent then the
 * rotated shared RoPE key) and reads and writes positions only through block tables. */
typedef struct {
    float *base;              /* backend memory [num_layers, num_blocks, block_size * floats_per_token] */
    int num_layers;
    int num_blocks;
    int block_size;           /* tokens per block */
    size_t floats_per_token;  /* per layer */
} lm_cache;

/* One sequence's part of a cached forward: n_new tokens at positions n_cached ..
 * n_cached + n_new - 1, whose cache rows are written; they attend to positions 0 .. their
 * own. block_table holds at least ceil((n_cached + n_new) / block_size) block indices, the
 * blocks of positions written here owned by this sequence alone (the caller copies a
 * shared block before it is written). Logits come back for the last n_logits positions. */
typedef struct {
    const int32_t *ids;          /* host [n_new], each in [0, vocab_size) */
    int n_new;                   /* >= 1 */
    int n_cached;                /* >= 0 */
    int n_logits;                /* 1 .. n_new */
    const int32_t *block_table;  /* host */
} lm_decode_seq;

/* A family's decoding scratch, sized once (no allocation per step); the caller owns it. */
typedef struct {
    int max_tokens;              /* sum of n_new per call */
    int max_seqs;                /* sequences per call */
    int max_logits;              /* sum of n_logits per call */
    int max_blocks_per_seq;      /* block table length */
} lm_decode_limits;

/* For the families' decoders: checks a decode call against the limits, the cache's blocks,
 * the vocabulary and max_positions (messages start with `who`), and fills the host staging
 * arrays in host: ids, positions, cache rows (slots), owning sequence, visible length, each
 * [T], then the block tables [n_seqs, max_blocks_per_seq] padded with block 0. *T_out, *G_out:
 * new tokens and logit rows. */
grpo_status lm_decode_stage(const char *who, const lm_decode_limits *l, const lm_cache *cache,
                            int vocab_size, int max_positions, const lm_decode_seq *seqs, int n_seqs, int32_t *host,
                            int *T_out, int *G_out);

typedef struct lm_decoder {
    lm *model;
    lm_decode_limits limits;
    void *impl;                  /* the family's state */
} lm_decoder;

/* One sequence's part of a draft call (multi-token prediction, DeepSeek-V3 report sec.
 * 2.2): the MTP module runs at positions position .. position + n - 1, whose main-model
 * hidden states are rows hidden_row .. hidden_row + n - 1 of the new tokens of the last
 * decode call with the same decoder (in call order), each with the token that follows
 * it (next_ids); it writes its own cache layer for those positions and returns the logits
 * of the last n_logits (a guess of the token after the next). */
typedef struct {
    int hidden_row;
    int n;                       /* >= 1 */
    int position;                /* >= 0 */
    int n_logits;                /* 1 .. n */
    const int32_t *next_ids;     /* host [n] */
    const int32_t *block_table;  /* host, covering position + n - 1 */
} lm_draft_seq;

typedef struct {
    /* Cache floats one token takes in one layer, and the number of cached layers. */
    void (*cache_layout)(const lm *m, int *num_layers, size_t *floats_per_token);
    grpo_status (*decoder_create)(lm *m, const lm_decode_limits *limits, lm_decoder **out);
    void (*decoder_free)(lm_decoder *d);
    /* Appends each sequence's tokens to the cache and computes the logits of its last
     * n_logits positions: *logits is backend memory [sum n_logits, vocab] (sequence order),
     * valid until the next decode with d. Independent of the training forward's buffers. */
    grpo_status (*decode)(lm_decoder *d, const lm_cache *cache, const lm_decode_seq *seqs, int n_seqs,
                          float **logits);
    /* Optional multi-token prediction for speculative decoding (NULL when the family has
     * none). mtp_layers: cache layers the MTP module needs, appended after cache_layout's
     * (a cache with them makes decode keep every new token's hidden state for draft);
     * draft: *logits [sum n_logits, vocab], valid until the next call with d. */
    int (*mtp_layers)(const lm *m);
    grpo_status (*draft)(lm_decoder *d, const lm_cache *cache, const lm_draft_seq *seqs, int n_seqs,
                         float **logits);
} lm_decode_ops;

typedef struct {
    /* ids, positions: backend memory [B*T] int32 (positions NULL = 0..T-1 per row).
     * *logits: backend memory [B*T, vocab], valid until the next forward. Activations for
     * backward are kept. */
    grpo_status (*forward)(lm *m, const int32_t *ids, const int32_t *positions, int B, int T, float **logits);
    /* dlogits: [B*T, vocab] for the last forward; accumulates into the parameter gradients. */
    grpo_status (*backward)(lm *m, const float *dlogits);
    /* Sizes activations for up to B sequences of T tokens (no allocation in forward). */
    grpo_status (*reserve)(lm *m, int B, int T);
    /* Writes config.json + model.safetensors into dir (which must exist). */
    grpo_status (*save)(lm *m, const char *dir);
    void (*destroy)(lm *m);
    /* Cached decoding; NULL for a family without it. */
    const lm_decode_ops *decode;
    /* Mixture-of-experts families (NULL otherwise): the auxiliary-loss-free bias step after
     * an optimizer update (DeepSeek-V3 report eq. 16-17), and the largest expert-load
     * violation (max load / mean load - 1) of the last forward. */
    void (*update_router_bias)(lm *m, float gamma);
    double (*max_load_violation)(const lm *m);
    /* Per MoE layer i (0-based among the MoE layers): its decoder layer index and the max
     * violation of its last forward; num_moe_layers NULL or 0 for dense families. */
    int (*num_moe_layers)(const lm *m);
    double (*moe_layer_violation)(const lm *m, int i, int *layer_index);
    /* MoE layer i's expert loads accumulated since the last update_router_bias:
     * [*n_experts] tokens per routed expert, writable so that data parallelism can put
     * the sums over the ranks there before the bias step. NULL for dense families. */
    int64_t *(*moe_layer_loads)(lm *m, int i, int *n_experts);
    /* Activation recomputation on/off (lm_set_recompute), and the bytes of the training
     * activation block reserved now. */
    grpo_status (*set_recompute)(lm *m, int on);
    size_t (*activation_bytes)(const lm *m);
} lm_ops;

struct lm {
    const lm_ops *ops;
    void *impl;                /* the family's model object */
    backend *be;               /* not owned */
    param_set *params;         /* owned by impl */
    char model_type[32];       /* "qwen2", "llama", "deepseek_v3" */
    int vocab_size;
    int max_position_embeddings;
    int64_t num_parameters;
};

/* Loads DIR/config.json + weights. */
grpo_status lm_load_dir(backend *be, const char *dir, lm **out);
/* A randomly initialised model from config.json text (origin names it in errors). */
grpo_status lm_create_random(backend *be, const char *config_json, size_t len, const char *origin, uint64_t seed,
                             lm **out);
void lm_free(lm *m);   /* lm_free(NULL) does nothing */

static inline grpo_status lm_forward(lm *m, const int32_t *ids, const int32_t *positions, int B, int T,
                                     float **logits) {
    return m->ops->forward(m, ids, positions, B, T, logits);
}
static inline grpo_status lm_backward(lm *m, const float *dlogits) { return m->ops->backward(m, dlogits); }
static inline grpo_status lm_reserve(lm *m, int B, int T) { return m->ops->reserve(m, B, T); }
static inline void lm_update_router_bias(lm *m, float gamma) {
    if (m->ops->update_router_bias && gamma != 0) m->ops->update_router_bias(m, gamma);
}
/* NAN for a model without routed experts. */
double lm_max_load_violation(const lm *m);
/* Appends "moe/max_violation" and "moe/layer<L>/max_violation" for each MoE layer L to
 * names/values (names point into name_store[max][48]); returns how many were added
 * (0 for dense models). */
int lm_moe_metrics(const lm *m, int max, char (*name_store)[48], const char **names, double *values);
static inline grpo_status lm_save(lm *m, const char *dir) { return m->ops->save(m, dir); }

/* The compute precision of the model's projections (model/linear.h; DESIGN.md Numerics),
 * for training and decoding alike: fp32 (the default), bf16 or fp8 (E4M3, 1x128
 * activation tiles, 128x128 weight blocks). The FP32 master weights are unchanged; their
 * rounded copies are remade after each change (param_set_touch, the optimizer step).
 * Fails, naming the op, on a backend without the rounding ops. */
grpo_status lm_set_precision(lm *m, quant_precision p);
quant_precision lm_get_precision(const lm *m);

/* Activation recomputation for long sequences (config `run.recompute`): with on = 1 the
 * training forward keeps only each layer's input (the residual stream) and one layer's
 * worth of activations, and backward recomputes each layer's forward just before its
 * backward: the same gradients (bit for bit on the CPU) for about one more forward of
 * compute. Takes effect at the next lm_reserve (a reserved block is re-reserved at the
 * same size; the last forward is dropped). Fails naming the model type for a family
 * without it. */
grpo_status lm_set_recompute(lm *m, int on);
/* Bytes of the model's training activation block reserved now (0 before lm_reserve). */
size_t lm_activation_bytes(const lm *m);

/* Cached decoding: fails with a message naming the model type when the family lacks it. */
static inline grpo_status lm_decoder_create(lm *m, const lm_decode_limits *limits, lm_decoder **out) {
    *out = NULL;
    if (!m->ops->decode)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "model_type %s has no cached decoding", m->model_type);
    return m->ops->decode->decoder_create(m, limits, out);
}
static inline void lm_decoder_free(lm_decoder *d) {
    if (d) d->model->ops->decode->decoder_free(d);
}
static inline grpo_status lm_decode(lm_decoder *d, const lm_cache *cache, const lm_decode_seq *seqs, int n_seqs,
                                    float **logits) {
    return d->model->ops->decode->decode(d, cache, seqs, n_seqs, logits);
}

#endif
