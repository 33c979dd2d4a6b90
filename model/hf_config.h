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

/* Grouped-query size helpers. */
static inline int dense_config_q_dim(const dense_config *c) { return c->num_attention_heads * c->head_dim; }
static inline int dense_config_kv_dim(const dense_config *c) { return c->num_key_value_heads * c->head_dim; }
/* 1 when q/k/v carry a bias; 1 when o_proj does. */
int dense_config_qkv_bias(const dense_config *c);
int dense_config_o_bias(const dense_config *c);

#endif
