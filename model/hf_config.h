/* Hugging Face config.json for our model families: the config structs (plain data, field
 * names as in transformers' configuration classes) and their reading, validation and
 * writing. Dense students are Qwen2ForCausalLM / LlamaForCausalLM; the DeepSeek-V3 struct
 * joins here later (hf_config_model_type() tells the families apart). */
#ifndef GRPO_HF_CONFIG_H
#define GRPO_HF_CONFIG_H

#include <stddef.h>

#include "core/status.h"

#define HF_CONFIG_MAX_EOS 8

/* How RoPE frequencies are scaled (config.json "rope_parameters" / legacy "rope_scaling"). */
typedef enum {
    HF_ROPE_DEFAULT = 0,   /* inv_freq_i = theta^(-2i/d) (RoFormer) */
    HF_ROPE_LINEAR,        /* inv_freq / factor (position interpolation) */
    HF_ROPE_LLAMA3         /* Llama 3.1 frequency-dependent scaling */
} hf_rope_type;

typedef struct {
    hf_rope_type type;
    double theta;                       /* rope_theta */
    double factor;                      /* linear, llama3 */
    double low_freq_factor;             /* llama3 */
    double high_freq_factor;            /* llama3 */
    int original_max_position_embeddings;  /* llama3 */
} hf_rope;

/* A Qwen2 or Llama decoder (transformers' Qwen2Config / LlamaConfig). */
typedef struct {
    char model_type[16];          /* "qwen2" or "llama" */
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_hidden_layers;
    int num_attention_heads;
    int num_key_value_heads;
    int head_dim;                 /* hidden_size / num_attention_heads unless given */
    double rms_norm_eps;
    int max_position_embeddings;
    hf_rope rope;
    int tie_word_embeddings;
    int attention_bias;           /* bias on q/k/v (and o for llama); qwen2: q/k/v yes, o no */
    int mlp_bias;                 /* llama only; must be 0 (not implemented) */
    double initializer_range;
    int bos_token_id;             /* -1 when null */
    int pad_token_id;             /* -1 when null */
    int n_eos;                    /* eos_token_id may be an int or a list */
    int eos_token_ids[HF_CONFIG_MAX_EOS];
} dense_config;

/* transformers' defaults for model_type "qwen2" or "llama" (sizes of the smallest
 * sensible model are NOT implied: the caller sets the sizes). Unknown type: error. */
grpo_status hf_config_dense_defaults(dense_config *cfg, const char *model_type);

/* Checks sizes and consistency; messages read "ORIGIN: field (value) must ...". */
grpo_status hf_config_dense_validate(const dense_config *cfg, const char *origin);

/* Parses config.json text (origin names it in errors: a path or "config.json"). Missing
 * optional fields take transformers' defaults; unsupported features (rope scaling types
 * other than default/linear/llama3, sliding window, activations other than silu,
 * mlp_bias) are refused by name. *cfg is written only on success. */
grpo_status hf_config_dense_parse(const char *json_text, size_t len, const char *origin, dense_config *cfg);
grpo_status hf_config_dense_read(const char *path, dense_config *cfg);

/* Writes config.json (atomically: temp file, fsync, rename) with the fields transformers
 * needs to rebuild the model: architectures, model_type, sizes, rope, dtype float32. */
grpo_status hf_config_dense_write(const dense_config *cfg, const char *path);

/* The "model_type" string of a config.json into out[size]. */
grpo_status hf_config_model_type(const char *path, char *out, size_t size);

/* ---- DeepSeek-V3 / V2 (transformers' DeepseekV3Config / DeepseekV2Config; the official
 * checkpoints' config.json) ---- */

typedef enum { HF_SCORING_SIGMOID = 0, HF_SCORING_SOFTMAX = 1 } hf_scoring_func;

/* How the router picks experts (config.json "topk_method"). */
typedef enum {
    HF_TOPK_NOAUX_TC = 0,           /* V3: group score = sum of the top-2 biased scores, bias for selection */
    HF_TOPK_GREEDY,                 /* V2: top-k over all experts */
    HF_TOPK_GROUP_LIMITED_GREEDY    /* V2: group score = max score in the group */
} hf_topk_method;

typedef struct {
    int yarn;                            /* 0: default RoPE, 1: YaRN */
    double theta;                        /* rope_theta */
    double factor;                       /* yarn */
    int original_max_position_embeddings;
    double beta_fast, beta_slow;         /* 0 = transformers' default (32, 1) */
    double mscale, mscale_all_dim;       /* 0 = absent */
    double attention_factor;             /* 0 = derived from factor/mscale (transformers' rule) */
    int truncate;                        /* correction range rounded outward (default 1) */
} hf_yarn_rope;

typedef struct {
    char model_type[16];                 /* "deepseek_v3" or "deepseek_v2" */
    int vocab_size;
    int hidden_size;
    int intermediate_size;               /* the dense MLP of the first first_k_dense_replace layers */
    int moe_intermediate_size;           /* one routed (or shared) expert */
    int num_hidden_layers;
    int num_attention_heads;
    int q_lora_rank;                     /* 0 (config null): plain q_proj, as in V2-Lite */
    int kv_lora_rank;
    int qk_nope_head_dim;
    int qk_rope_head_dim;
    int v_head_dim;
    int n_routed_experts;
    int n_shared_experts;
    int num_experts_per_tok;
    int n_group;
    int topk_group;
    double routed_scaling_factor;
    int norm_topk_prob;
    hf_scoring_func scoring_func;
    hf_topk_method topk_method;
    int first_k_dense_replace;
    double rms_norm_eps;
    int max_position_embeddings;
    hf_yarn_rope rope;
    int num_nextn_predict_layers;        /* MTP modules (V3 report 2.2) */
    int tie_word_embeddings;
    double initializer_range;
    int bos_token_id;                    /* -1 when null */
    int pad_token_id;                    /* -1 when null */
    int n_eos;
    int eos_token_ids[HF_CONFIG_MAX_EOS];
} deepseek_v3_config;

/* transformers' DeepseekV3Config defaults (the 671B model's shapes) for "deepseek_v3", or
 * DeepseekV2Config's for "deepseek_v2" (softmax scoring, greedy top-k, no MTP). */
grpo_status hf_config_v3_defaults(deepseek_v3_config *cfg, const char *model_type);
grpo_status hf_config_v3_validate(const deepseek_v3_config *cfg, const char *origin);
/* Parses config.json text of model_type deepseek_v3 or deepseek_v2 (also the official
 * checkpoints' fields: scoring_func, topk_method, rope_scaling with "type": "yarn",
 * quantization_config fp8 with 128x128 blocks). Unsupported features are refused by name
 * (attention_bias, rope_interleave false, moe_layer_freq != 1, other rope types). */
grpo_status hf_config_v3_parse(const char *json_text, size_t len, const char *origin, deepseek_v3_config *cfg);
grpo_status hf_config_v3_read(const char *path, deepseek_v3_config *cfg);
/* Writes config.json (atomically) as transformers' save_pretrained would, plus the official
 * checkpoint's scoring_func / topk_method fields. */
grpo_status hf_config_v3_write(const deepseek_v3_config *cfg, const char *path);

/* Derived quantities (transformers' formulas; V3 report 4.3 for the mscale). */
static inline int deepseek_v3_qk_head_dim(const deepseek_v3_config *c) {
    return c->qk_nope_head_dim + c->qk_rope_head_dim;
}
/* yarn_get_mscale: 1 for scale <= 1, else 0.1 * mscale * ln(scale) + 1. */
double hf_yarn_get_mscale(double scale, double mscale);
/* Attention softmax scale: qk_head_dim^-0.5, times yarn_get_mscale(factor, mscale_all_dim)^2
 * under YaRN when mscale_all_dim is set (transformers' yarn_apply_mscale). */
double hf_config_v3_softmax_scale(const deepseek_v3_config *c);
/* The factor transformers multiplies cos/sin by (YaRN attention_factor; 1 for default). */
double hf_config_v3_rope_attention_factor(const deepseek_v3_config *c);
/* 1 when layer l (0-based; l >= num_hidden_layers are the MTP modules' blocks) has an MoE MLP. */
static inline int deepseek_v3_layer_is_moe(const deepseek_v3_config *c, int l) {
    return l >= c->first_k_dense_replace;
}

/* Grouped-query size helpers. */
static inline int dense_config_q_dim(const dense_config *c) { return c->num_attention_heads * c->head_dim; }
static inline int dense_config_kv_dim(const dense_config *c) { return c->num_key_value_heads * c->head_dim; }
/* 1 when q/k/v carry a bias; 1 when o_proj does. */
int dense_config_qkv_bias(const dense_config *c);
int dense_config_o_bias(const dense_config *c);

#endif
