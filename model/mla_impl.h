/* Private to the MLA files (mla.c, mla_forward.c, mla_backward.c, mla_decode.c): the
 * named views carved from the caller's activation, scratch and decode blocks, checks of
 * a config and weights, and the few device-side fills the layer needs (the backend has
 * no fill op, so they are one host-to-device copy plus doubling device copies). */
#ifndef GRPO_MLA_IMPL_H
#define GRPO_MLA_IMPL_H

#include "model/mla.h"

/* What mla_forward keeps for mla_backward; N = B*T tokens, H heads, Dqk = nope + rope. */
typedef struct {
    float *identity;    /* [rope, rope] identity: copies k_pe into every head by matmul */
    float *q_a;         /* [N, q_lora_rank] q_a_proj output (q_lora_rank > 0) */
    float *q_a_rstd;    /* [N] q_a_layernorm's 1/rms */
    float *q_a_normed;  /* [N, q_lora_rank] q_a_layernorm output */
    float *q;           /* [N, H, Dqk] = [B, T, H, Dqk], rope part rotated */
    float *kv_a;        /* [N, kv_lora_rank] latent before kv_a_layernorm */
    float *kv_a_rstd;   /* [N] */
    float *latent;      /* [N, kv_lora_rank] c = kv_a_layernorm(kv_a) */
    float *k_pe;        /* [N, rope] the shared RoPE key, rotated */
    float *k;           /* [N, H, Dqk] = [k_nope, k_pe] per head */
    float *v;           /* [N, H, v_head] */
    float *att;         /* [N, H, v_head] attention output before o_proj */
    float *lse;         /* [B, H, T] attention log-sum-exp */
} mla_acts;

/* Backward scratch (gradients of the activations). */
typedef struct {
    float *d_att;         /* [N, H, v_head] */
    float *d_q;           /* [N, H, Dqk] */
    float *d_k;           /* [N, H, Dqk] */
    float *d_v;           /* [N, H, v_head] */
    float *d_k_pe;        /* [N, rope] */
    float *d_latent;      /* [N, kv_lora_rank] */
    float *d_kv_a;        /* [N, kv_lora_rank] */
    float *d_q_a_normed;  /* [N, q_lora_rank] */
    float *d_q_a;         /* [N, q_lora_rank] */
} mla_grads;

/* Decode scratch for T new tokens, L = n_cached + T cached tokens after the append and
 * query blocks of QB tokens (rows R = QB * H of scores at a time). */
typedef struct {
    int32_t *positions;   /* [T] device copy of the host positions */
    float *q_a;           /* [T, q_lora_rank] */
    float *q_a_rstd;      /* [T] */
    float *q_a_normed;    /* [T, q_lora_rank] */
    float *q;             /* [T, H, Dqk] */
    float *kv_a;          /* [T, kv_lora_rank] */
    float *kv_a_rstd;     /* [T] */
    float *q_absorbed;    /* [T, H, kv_lora_rank] q_nope W_UK; overwritten block by block by the
                             attention-weighted latents (a block's rows are read before written) */
    float *mask;          /* [L + QB]: L zeros then QB times MLA_MASKED */
    float *scores;        /* [R, L + 1] scaled scores + mask; the last column is a masked dummy */
    float *probs;         /* [R, L + 1] softmax of scores */
    int32_t *targets;     /* [R] the dummy column's index */
    float *dlogprobs;     /* [R] all -1 */
    float *logprobs;      /* [R] (unused output) */
    float *lse;           /* [R] */
    float *att;           /* [T, H, v_head] */
} mla_decode_buffers;

/* A finite stand-in for -inf in masked scores: exp(MLA_MASKED - lse) is exactly 0 and
 * adding it to any score of magnitude below ~1e22 gives MLA_MASKED again. */
#define MLA_MASKED (-1e30f)

/* Errors (GRPO_ERR_INVALID) naming `who` and the bad field, for sizes that are not
 * positive, an odd qk_rope_head_dim, a non-positive eps or softmax_scale. */
grpo_status mla_check_config(const mla_config *cfg, const char *who);
/* Error naming the first weight the config uses that is NULL; `what` is "weight" or
 * "gradient". */
grpo_status mla_check_weights(const mla_config *cfg, const mla_weights *w, const char *who, const char *what);

/* Error naming the first op the backend lacks (or a NULL backend); kind 0: forward,
 * 1: backward, 2: decode. */
grpo_status mla_require_ops(const backend *be, const char *who, int kind);

/* Carves the views from base (NULL: sizes only, views left NULL); returns the floats
 * used. Every view starts on a 16-float (64-byte) boundary relative to base. */
size_t mla_acts_layout(const mla_config *cfg, int B, int T, float *base, mla_acts *a);
size_t mla_grads_layout(const mla_config *cfg, int B, int T, float *base, mla_grads *g);
size_t mla_decode_layout(const mla_config *cfg, int T, int total_len, int query_block, float *base,
                         mla_decode_buffers *d);

/* The query block mla_decode uses for T new tokens and total_len cached ones: as many
 * tokens as keep the [QB * H, total_len + 1] score matrix under about 16M floats. */
int mla_decode_query_block(const mla_config *cfg, int T, int total_len);
/* mla_decode with an explicit query block (1 <= query_block); scratch must hold
 * mla_decode_layout(cfg, T, n_cached + T, query_block, NULL, NULL) floats. The tests use
 * it to run several blocks on tiny inputs. */
grpo_status mla_decode_blocked(backend *be, const mla_config *cfg, const mla_weights *w, const float *x,
                               const int32_t *positions, const float *cos, const float *sin,
                               float *cache_latent, float *cache_rope, int n_cached, int T, int query_block,
                               float *scratch, float *out);

/* Device fills: dst[0..n) = value (elements of 4 bytes). */
void mla_fill_f32(backend *be, float *dst, float value, size_t n);
void mla_fill_i32(backend *be, int32_t *dst, int32_t value, size_t n);
/* dst: [n, n] identity. */
void mla_write_identity(backend *be, float *dst, int n);

/* y[N, out] = x[N, in] W^T + beta y; W: [out, in] (a Linear layer's weight, or a block of
 * consecutive rows of one); x and y rows are ldx and ldy apart. */
static inline void mla_linear(linear *lin, backend *be, float *y, int ldy, const float *x, int ldx, const float *W,
                              int N, int in, int out, float beta) {
    linear_forward(lin, be, y, ldy, x, ldx, W, N, in, out, beta);
}

#endif
