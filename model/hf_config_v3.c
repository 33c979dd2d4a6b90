/* config.json for DeepSeek-V3 (and V2: softmax routing, no MTP) models: read with
 * transformers' defaults (DeepseekV3Config / DeepseekV2Config) and the official
 * checkpoints' extra fields, validated with messages naming the field, written back so
 * that transformers rebuilds the same model. YaRN: transformers' modeling_rope_utils. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model/hf_config.h"
#include "model/hf_config_impl.h"

static int is_v3(const char *t) { return strcmp(t, "deepseek_v3") == 0; }
static int is_v2(const char *t) { return strcmp(t, "deepseek_v2") == 0; }

grpo_status hf_config_v3_defaults(deepseek_v3_config *c, const char *model_type) {
    memset(c, 0, sizeof *c);
    if (!model_type || (!is_v3(model_type) && !is_v2(model_type)))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "model_type \"%s\" is not a DeepSeek family (expected \"deepseek_v3\" "
                         "or \"deepseek_v2\")", model_type ? model_type : "(null)");
    snprintf(c->model_type, sizeof c->model_type, "%s", model_type);
    c->rms_norm_eps = 1e-6;
    c->initializer_range = 0.02;
    c->rope.theta = 10000.0;
    c->rope.truncate = 1;
    c->pad_token_id = -1;
    c->kv_lora_rank = 512;
    c->q_lora_rank = 1536;
    c->qk_nope_head_dim = 128;
    c->qk_rope_head_dim = 64;
    c->v_head_dim = 128;
    if (is_v3(model_type)) {   /* DeepseekV3Config */
        c->vocab_size = 129280;
        c->hidden_size = 7168;
        c->intermediate_size = 18432;
        c->moe_intermediate_size = 2048;
        c->num_hidden_layers = 61;
        c->num_attention_heads = 128;
        c->n_shared_experts = 1;
        c->n_routed_experts = 256;
        c->routed_scaling_factor = 2.5;
        c->n_group = 8;
        c->topk_group = 4;
        c->num_experts_per_tok = 8;
        c->first_k_dense_replace = 3;
        c->norm_topk_prob = 1;
        c->scoring_func = HF_SCORING_SIGMOID;
        c->topk_method = HF_TOPK_NOAUX_TC;
        c->max_position_embeddings = 4096;
        c->bos_token_id = 0;
        c->n_eos = 1;
        c->eos_token_ids[0] = 1;
        c->num_nextn_predict_layers = 1;
    } else {                   /* DeepseekV2Config */
        c->vocab_size = 102400;
        c->hidden_size = 4096;
        c->intermediate_size = 11008;
        c->moe_intermediate_size = 1407;
        c->num_hidden_layers = 32;
        c->num_attention_heads = 32;
        c->n_shared_experts = 2;
        c->n_routed_experts = 64;
        c->routed_scaling_factor = 1.0;
        c->n_group = 1;
        c->topk_group = 1;
        c->num_experts_per_tok = 6;
        c->first_k_dense_replace = 0;
        c->norm_topk_prob = 0;
        c->scoring_func = HF_SCORING_SOFTMAX;
        c->topk_method = HF_TOPK_GREEDY;
        c->max_position_embeddings = 2048;
        c->bos_token_id = 1;
        c->n_eos = 1;
        c->eos_token_ids[0] = 2;
        c->num_nextn_predict_layers = 0;
    }
    return GRPO_OK;
}

grpo_status hf_config_v3_validate(const deepseek_v3_config *c, const char *origin) {
    if (!is_v3(c->model_type) && !is_v2(c->model_type))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (expected \"deepseek_v3\" or "
                         "\"deepseek_v2\")", origin, c->model_type);
    GRPO_TRY(hf_check_range(origin, "vocab_size", c->vocab_size, 1, HF_MAX_DIM));
    GRPO_TRY(hf_check_range(origin, "hidden_size", c->hidden_size, 1, HF_MAX_DIM));
    GRPO_TRY(hf_check_range(origin, "intermediate_size", c->intermediate_size, 1, HF_MAX_DIM));
    GRPO_TRY(hf_check_range(origin, "moe_intermediate_size", c->moe_intermediate_size, 1, HF_MAX_DIM));
    GRPO_TRY(hf_check_range(origin, "num_hidden_layers", c->num_hidden_layers, 1, 1 << 12));
    GRPO_TRY(hf_check_range(origin, "num_attention_heads", c->num_attention_heads, 1, HF_MAX_HEADS));
    GRPO_TRY(hf_check_range(origin, "q_lora_rank", c->q_lora_rank, 0, HF_MAX_DIM));
    GRPO_TRY(hf_check_range(origin, "kv_lora_rank", c->kv_lora_rank, 1, HF_MAX_DIM));
    GRPO_TRY(hf_check_range(origin, "qk_nope_head_dim", c->qk_nope_head_dim, 0, 1 << 16));
    GRPO_TRY(hf_check_range(origin, "qk_rope_head_dim", c->qk_rope_head_dim, 2, 1 << 16));
    GRPO_TRY(hf_check_range(origin, "v_head_dim", c->v_head_dim, 1, 1 << 16));
    GRPO_TRY(hf_check_range(origin, "n_routed_experts", c->n_routed_experts, 1, 1 << 16));
    GRPO_TRY(hf_check_range(origin, "n_shared_experts", c->n_shared_experts, 0, 1 << 10));
    GRPO_TRY(hf_check_range(origin, "num_experts_per_tok", c->num_experts_per_tok, 1, c->n_routed_experts));
    GRPO_TRY(hf_check_range(origin, "n_group", c->n_group, 1, c->n_routed_experts));
    GRPO_TRY(hf_check_range(origin, "topk_group", c->topk_group, 1, c->n_group));
    GRPO_TRY(hf_check_range(origin, "first_k_dense_replace", c->first_k_dense_replace, 0, 1 << 12));
    GRPO_TRY(hf_check_range(origin, "max_position_embeddings", c->max_position_embeddings, 1, 1 << 24));
    GRPO_TRY(hf_check_range(origin, "num_nextn_predict_layers", c->num_nextn_predict_layers, 0, 16));
    if (c->qk_rope_head_dim % 2 != 0)
        return grpo_fail(GRPO_ERR_INVALID, "%s: qk_rope_head_dim (%d) must be even (rotary pairs)", origin,
                         c->qk_rope_head_dim);
    if (c->n_routed_experts % c->n_group != 0)
        return grpo_fail(GRPO_ERR_INVALID, "%s: n_routed_experts (%d) must be a multiple of n_group (%d)", origin,
                         c->n_routed_experts, c->n_group);
    int per_group = c->n_routed_experts / c->n_group;
    if (c->topk_method == HF_TOPK_NOAUX_TC && c->n_group > 1 && per_group < 2)
        return grpo_fail(GRPO_ERR_INVALID, "%s: noaux_tc routing scores a group by its top-2 experts: n_routed_experts / "
                         "n_group (%d) must be >= 2", origin, per_group);
    if (c->topk_method != HF_TOPK_GREEDY && c->num_experts_per_tok > c->topk_group * per_group)
        return grpo_fail(GRPO_ERR_INVALID, "%s: num_experts_per_tok (%d) exceeds the experts of topk_group (%d) groups "
                         "of %d", origin, c->num_experts_per_tok, c->topk_group, per_group);
    if ((int64_t)c->num_attention_heads * (c->qk_nope_head_dim + c->qk_rope_head_dim) > HF_MAX_DIM ||
        (int64_t)c->num_attention_heads * (c->qk_nope_head_dim + c->v_head_dim) > HF_MAX_DIM)
        return grpo_fail(GRPO_ERR_INVALID, "%s: num_attention_heads * head dims exceeds %d", origin, HF_MAX_DIM);
    if ((int64_t)c->n_shared_experts * c->moe_intermediate_size > HF_MAX_DIM)
        return grpo_fail(GRPO_ERR_INVALID, "%s: n_shared_experts * moe_intermediate_size exceeds %d", origin, HF_MAX_DIM);
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps < 1))
        return grpo_fail(GRPO_ERR_INVALID, "%s: rms_norm_eps (%g) must be in (0, 1)", origin, c->rms_norm_eps);
    if (!(c->initializer_range >= 0 && c->initializer_range <= 1))
        return grpo_fail(GRPO_ERR_INVALID, "%s: initializer_range (%g) must be in [0, 1]", origin, c->initializer_range);
    if (!(c->routed_scaling_factor > 0 && isfinite(c->routed_scaling_factor)))
        return grpo_fail(GRPO_ERR_INVALID, "%s: routed_scaling_factor (%g) must be a finite number > 0", origin,
                         c->routed_scaling_factor);
    if (!(c->rope.theta > 1 && isfinite(c->rope.theta)))
        return grpo_fail(GRPO_ERR_INVALID, "%s: rope_theta (%g) must be a finite number > 1", origin, c->rope.theta);
    if (c->rope.yarn) {
        const hf_yarn_rope *r = &c->rope;
        if (!(r->factor > 0 && isfinite(r->factor)))
            return grpo_fail(GRPO_ERR_INVALID, "%s: yarn factor (%g) must be a finite number > 0", origin, r->factor);
        GRPO_TRY(hf_check_range(origin, "original_max_position_embeddings", r->original_max_position_embeddings, 1,
                                1 << 24));
        double v[] = {r->beta_fast, r->beta_slow, r->mscale, r->mscale_all_dim, r->attention_factor};
        const char *n[] = {"beta_fast", "beta_slow", "mscale", "mscale_all_dim", "attention_factor"};
        for (int i = 0; i < 5; i++)
            if (!(v[i] >= 0 && v[i] < 1e6))
                return grpo_fail(GRPO_ERR_INVALID, "%s: yarn %s (%g) must be in [0, 1e6)", origin, n[i], v[i]);
    }
    if (c->n_eos < 0 || c->n_eos > HF_CONFIG_MAX_EOS)
        return grpo_fail(GRPO_ERR_INVALID, "%s: eos_token_id has %d entries (at most %d)", origin, c->n_eos,
                         HF_CONFIG_MAX_EOS);
    return GRPO_OK;
}

double hf_yarn_get_mscale(double scale, double mscale) {
    if (scale <= 1) return 1.0;
    return 0.1 * mscale * log(scale) + 1.0;
}

double hf_config_v3_softmax_scale(const deepseek_v3_config *c) {
    double scale = pow((double)deepseek_v3_qk_head_dim(c), -0.5);
    if (c->rope.yarn && c->rope.mscale_all_dim != 0) {
        double m = hf_yarn_get_mscale(c->rope.factor, c->rope.mscale_all_dim);
        scale = scale * m * m;
    }
    return scale;
}

double hf_config_v3_rope_attention_factor(const deepseek_v3_config *c) {
    const hf_yarn_rope *r = &c->rope;
    if (!r->yarn) return 1.0;
    if (r->attention_factor > 0) return r->attention_factor;
    if (r->mscale != 0 && r->mscale_all_dim != 0)
        return hf_yarn_get_mscale(r->factor, r->mscale) / hf_yarn_get_mscale(r->factor, r->mscale_all_dim);
    return hf_yarn_get_mscale(r->factor, 1.0);
}

/* ---- reading ---- */

/* rope_theta and "rope_parameters" (transformers >= 5) or "rope_scaling" (older and the
 * official checkpoints, with "type": "yarn"). */
static grpo_status parse_rope(json_t *root, const char *origin, deepseek_v3_config *c) {
    GRPO_TRY(hf_json_real(root, origin, "rope_theta", &c->rope.theta));
    const char *key = "rope_parameters";
    json_t *rp = json_object_get(root, key);
    if (!rp || json_is_null(rp)) { key = "rope_scaling"; rp = json_object_get(root, key); }
    if (!rp || json_is_null(rp)) return GRPO_OK;
    if (!json_is_object(rp)) return grpo_fail(GRPO_ERR_PARSE, "%s: %s: expected an object", origin, key);
    GRPO_TRY(hf_json_real(rp, origin, "rope_theta", &c->rope.theta));
    const char *type = hf_json_string(rp, "rope_type");
    if (!type) type = hf_json_string(rp, "type");
    if (!type) type = "default";
    double partial = 1.0;
    GRPO_TRY(hf_json_real(rp, origin, "partial_rotary_factor", &partial));
    if (partial != 1.0)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: %s.partial_rotary_factor (%g) is not supported (only 1)", origin, key,
                         partial);
    if (strcmp(type, "default") == 0) {
        c->rope.yarn = 0;
        return GRPO_OK;
    }
    if (strcmp(type, "yarn") != 0)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: %s: rope type \"%s\" is not supported (supported: default, yarn)",
                         origin, key, type);
    hf_yarn_rope *r = &c->rope;
    r->yarn = 1;
    r->factor = 0;
    GRPO_TRY(hf_json_real(rp, origin, "factor", &r->factor));
    r->original_max_position_embeddings = c->max_position_embeddings;
    GRPO_TRY(hf_json_int(rp, origin, "original_max_position_embeddings", &r->original_max_position_embeddings));
    if (r->factor == 0)   /* transformers: max_position_embeddings / original when factor is absent */
        r->factor = (double)c->max_position_embeddings / r->original_max_position_embeddings;
    GRPO_TRY(hf_json_real(rp, origin, "beta_fast", &r->beta_fast));
    GRPO_TRY(hf_json_real(rp, origin, "beta_slow", &r->beta_slow));
    GRPO_TRY(hf_json_real(rp, origin, "mscale", &r->mscale));
    GRPO_TRY(hf_json_real(rp, origin, "mscale_all_dim", &r->mscale_all_dim));
    GRPO_TRY(hf_json_real(rp, origin, "attention_factor", &r->attention_factor));
    GRPO_TRY(hf_json_bool(rp, origin, "truncate", &r->truncate));
    return GRPO_OK;
}

static grpo_status parse_enums(json_t *root, const char *origin, deepseek_v3_config *c) {
    json_t *v = json_object_get(root, "scoring_func");
    if (v && !json_is_null(v)) {
        const char *s = json_string_value(v);
        if (s && !strcmp(s, "sigmoid")) c->scoring_func = HF_SCORING_SIGMOID;
        else if (s && !strcmp(s, "softmax")) c->scoring_func = HF_SCORING_SOFTMAX;
        else return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: scoring_func \"%s\" is not supported (sigmoid or softmax)",
                              origin, s ? s : "(not a string)");
    }
    v = json_object_get(root, "topk_method");
    if (v && !json_is_null(v)) {
        const char *s = json_string_value(v);
        if (s && !strcmp(s, "noaux_tc")) c->topk_method = HF_TOPK_NOAUX_TC;
        else if (s && !strcmp(s, "greedy")) c->topk_method = HF_TOPK_GREEDY;
        else if (s && !strcmp(s, "group_limited_greedy")) c->topk_method = HF_TOPK_GROUP_LIMITED_GREEDY;
        else return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: topk_method \"%s\" is not supported (noaux_tc, greedy, "
                              "group_limited_greedy)", origin, s ? s : "(not a string)");
    }
    if (is_v3(c->model_type) && c->topk_method != HF_TOPK_NOAUX_TC)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: deepseek_v3 routes with topk_method \"noaux_tc\" (as transformers' "
                         "DeepseekV3TopkRouter)", origin);
    if (is_v2(c->model_type) && c->topk_method == HF_TOPK_NOAUX_TC)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: deepseek_v2 routes with topk_method \"greedy\" or "
                         "\"group_limited_greedy\"", origin);
    return GRPO_OK;
}

/* Features these models do not have here; refused by name rather than ignored. */
static grpo_status refuse_unsupported(json_t *root, const char *origin) {
    const char *act = hf_json_string(root, "hidden_act");
    if (json_object_get(root, "hidden_act") && (!act || strcmp(act, "silu") != 0))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (only \"silu\")", origin,
                         act ? act : "(not a string)");
    int flag = 0;
    GRPO_TRY(hf_json_bool(root, origin, "attention_bias", &flag));
    if (flag) return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: attention_bias true is not supported", origin);
    GRPO_TRY(hf_json_bool(root, origin, "mlp_bias", &flag));
    if (flag) return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: mlp_bias true is not supported", origin);
    flag = 1;
    GRPO_TRY(hf_json_bool(root, origin, "rope_interleave", &flag));
    if (!flag) return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: rope_interleave false is not supported (DeepSeek "
                                "checkpoints rotate interleaved pairs)", origin);
    int freq = 1, tp = 1;
    GRPO_TRY(hf_json_int(root, origin, "moe_layer_freq", &freq));
    if (freq != 1) return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: moe_layer_freq (%d) must be 1", origin, freq);
    GRPO_TRY(hf_json_int(root, origin, "pretraining_tp", &tp));
    if (tp != 1) return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: pretraining_tp (%d) must be 1", origin, tp);
    json_t *q = json_object_get(root, "quantization_config");
    if (q && !json_is_null(q)) {
        const char *method = json_is_object(q) ? hf_json_string(q, "quant_method") : NULL;
        if (!method || strcmp(method, "fp8") != 0)
            return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: quantization_config.quant_method \"%s\" is not supported (only "
                             "fp8)", origin, method ? method : "(missing)");
        json_t *bs = json_object_get(q, "weight_block_size");
        if (bs && !(json_is_array(bs) && json_array_size(bs) == 2 &&
                    json_integer_value(json_array_get(bs, 0)) == 128 &&
                    json_integer_value(json_array_get(bs, 1)) == 128))
            return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: quantization_config.weight_block_size must be [128, 128]",
                             origin);
    }
    return GRPO_OK;
}

static grpo_status parse_root(json_t *root, const char *origin, deepseek_v3_config *out) {
    if (!json_is_object(root)) return grpo_fail(GRPO_ERR_PARSE, "%s: expected a JSON object", origin);
    const char *type = hf_json_string(root, "model_type");
    if (!type) return grpo_fail(GRPO_ERR_PARSE, "%s: model_type: missing or not a string", origin);
    if (!is_v3(type) && !is_v2(type))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not a DeepSeek family (expected \"deepseek_v3\" "
                         "or \"deepseek_v2\")", origin, type);
    deepseek_v3_config c;
    GRPO_TRY(hf_config_v3_defaults(&c, type));
    struct { const char *key; int *dst; } ints[] = {
        {"vocab_size", &c.vocab_size}, {"hidden_size", &c.hidden_size},
        {"intermediate_size", &c.intermediate_size}, {"moe_intermediate_size", &c.moe_intermediate_size},
        {"num_hidden_layers", &c.num_hidden_layers}, {"num_attention_heads", &c.num_attention_heads},
        {"kv_lora_rank", &c.kv_lora_rank}, {"qk_nope_head_dim", &c.qk_nope_head_dim},
        {"qk_rope_head_dim", &c.qk_rope_head_dim}, {"v_head_dim", &c.v_head_dim},
        {"n_routed_experts", &c.n_routed_experts}, {"n_shared_experts", &c.n_shared_experts},
        {"num_experts_per_tok", &c.num_experts_per_tok}, {"n_group", &c.n_group}, {"topk_group", &c.topk_group},
        {"first_k_dense_replace", &c.first_k_dense_replace}, {"max_position_embeddings", &c.max_position_embeddings},
        {"num_nextn_predict_layers", &c.num_nextn_predict_layers},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) GRPO_TRY(hf_json_int(root, origin, ints[i].key, ints[i].dst));
    /* q_lora_rank: null means a plain q_proj (V2-Lite); an absent key keeps the default. */
    json_t *q = json_object_get(root, "q_lora_rank");
    if (q && json_is_null(q)) c.q_lora_rank = 0;
    else GRPO_TRY(hf_json_int(root, origin, "q_lora_rank", &c.q_lora_rank));
    /* transformers' V3 class names the MTP depth num_mtp_layers too (attribute_map). */
    GRPO_TRY(hf_json_int(root, origin, "num_mtp_layers", &c.num_nextn_predict_layers));
    GRPO_TRY(hf_json_int(root, origin, "num_nextn_predict_layers", &c.num_nextn_predict_layers));
    int kv_heads = c.num_attention_heads;
    GRPO_TRY(hf_json_int(root, origin, "num_key_value_heads", &kv_heads));
    if (kv_heads != c.num_attention_heads)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: num_key_value_heads (%d) must equal num_attention_heads (%d) "
                         "(MLA has one latent shared by all heads)", origin, kv_heads, c.num_attention_heads);
    GRPO_TRY(hf_json_real(root, origin, "routed_scaling_factor", &c.routed_scaling_factor));
    GRPO_TRY(hf_json_bool(root, origin, "norm_topk_prob", &c.norm_topk_prob));
    GRPO_TRY(hf_json_real(root, origin, "rms_norm_eps", &c.rms_norm_eps));
    GRPO_TRY(hf_json_bool(root, origin, "tie_word_embeddings", &c.tie_word_embeddings));
    GRPO_TRY(hf_json_real(root, origin, "initializer_range", &c.initializer_range));
    GRPO_TRY(hf_json_token_id(root, origin, "bos_token_id", &c.bos_token_id));
    GRPO_TRY(hf_json_token_id(root, origin, "pad_token_id", &c.pad_token_id));
    GRPO_TRY(hf_json_eos(root, origin, &c.n_eos, c.eos_token_ids));
    /* n_group / topk_group may be null in V2 configs: one group of all experts. */
    if (json_is_null(json_object_get(root, "n_group"))) c.n_group = 1;
    if (json_is_null(json_object_get(root, "topk_group"))) c.topk_group = 1;
    GRPO_TRY(parse_enums(root, origin, &c));
    if (c.topk_method == HF_TOPK_GREEDY) c.n_group = c.topk_group = 1;   /* greedy ignores groups */
    GRPO_TRY(parse_rope(root, origin, &c));
    GRPO_TRY(refuse_unsupported(root, origin));
    GRPO_TRY(hf_config_v3_validate(&c, origin));
    *out = c;
    return GRPO_OK;
}

grpo_status hf_config_v3_parse(const char *json_text, size_t len, const char *origin, deepseek_v3_config *cfg) {
    json_t *root;
    GRPO_TRY(hf_json_load_text(json_text, len, origin, &root));
    grpo_status s = parse_root(root, origin, cfg);
    json_decref(root);
    return s;
}

grpo_status hf_config_v3_read(const char *path, deepseek_v3_config *cfg) {
    json_t *root;
    GRPO_TRY(hf_json_load_path(path, &root));
    grpo_status s = parse_root(root, path, cfg);
    json_decref(root);
    return s;
}

/* ---- writing ---- */

static void rope_object(const deepseek_v3_config *c, char *buf, size_t size) {
    hf_object r = {.count = 0};
    const hf_yarn_rope *y = &c->rope;
    hf_put_real(&r, "rope_theta", y->theta);
    if (!y->yarn) {
        hf_put(&r, "rope_type", "\"default\"");
    } else {
        hf_put(&r, "rope_type", "\"yarn\"");
        hf_put_real(&r, "factor", y->factor);
        hf_put(&r, "original_max_position_embeddings", "%d", y->original_max_position_embeddings);
        if (y->beta_fast > 0) hf_put_real(&r, "beta_fast", y->beta_fast);
        if (y->beta_slow > 0) hf_put_real(&r, "beta_slow", y->beta_slow);
        if (y->mscale != 0) hf_put_real(&r, "mscale", y->mscale);
        if (y->mscale_all_dim != 0) hf_put_real(&r, "mscale_all_dim", y->mscale_all_dim);
        if (y->attention_factor > 0) hf_put_real(&r, "attention_factor", y->attention_factor);
        if (!y->truncate) hf_put(&r, "truncate", "false");
    }
    hf_render(&r, 2, buf, size);
}

grpo_status hf_config_v3_write(const deepseek_v3_config *c, const char *path) {
    GRPO_TRY(hf_config_v3_validate(c, path));
    int v3 = is_v3(c->model_type);
    hf_object o = {.count = 0};
    hf_put(&o, "architectures", "[\"%s\"]", v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM");
    hf_put(&o, "model_type", "\"%s\"", c->model_type);
    hf_put(&o, "vocab_size", "%d", c->vocab_size);
    hf_put(&o, "hidden_size", "%d", c->hidden_size);
    hf_put(&o, "intermediate_size", "%d", c->intermediate_size);
    hf_put(&o, "moe_intermediate_size", "%d", c->moe_intermediate_size);
    hf_put(&o, "num_hidden_layers", "%d", c->num_hidden_layers);
    hf_put(&o, "num_attention_heads", "%d", c->num_attention_heads);
    hf_put(&o, "num_key_value_heads", "%d", c->num_attention_heads);
    if (c->q_lora_rank > 0) hf_put(&o, "q_lora_rank", "%d", c->q_lora_rank);
    else hf_put(&o, "q_lora_rank", "null");
    hf_put(&o, "kv_lora_rank", "%d", c->kv_lora_rank);
    hf_put(&o, "qk_nope_head_dim", "%d", c->qk_nope_head_dim);
    hf_put(&o, "qk_rope_head_dim", "%d", c->qk_rope_head_dim);
    hf_put(&o, "v_head_dim", "%d", c->v_head_dim);
    hf_put(&o, "n_routed_experts", "%d", c->n_routed_experts);
    hf_put(&o, "n_shared_experts", "%d", c->n_shared_experts);
    hf_put(&o, "num_experts_per_tok", "%d", c->num_experts_per_tok);
    hf_put(&o, "n_group", "%d", c->n_group);
    hf_put(&o, "topk_group", "%d", c->topk_group);
    hf_put_real(&o, "routed_scaling_factor", c->routed_scaling_factor);
    hf_put(&o, "norm_topk_prob", "%s", c->norm_topk_prob ? "true" : "false");
    hf_put(&o, "scoring_func", "\"%s\"", c->scoring_func == HF_SCORING_SIGMOID ? "sigmoid" : "softmax");
    hf_put(&o, "topk_method", "\"%s\"", c->topk_method == HF_TOPK_NOAUX_TC ? "noaux_tc"
                                        : c->topk_method == HF_TOPK_GREEDY ? "greedy" : "group_limited_greedy");
    hf_put(&o, "first_k_dense_replace", "%d", c->first_k_dense_replace);
    hf_put(&o, "moe_layer_freq", "1");
    if (v3 || c->num_nextn_predict_layers) hf_put(&o, "num_nextn_predict_layers", "%d", c->num_nextn_predict_layers);
    hf_put(&o, "hidden_act", "\"silu\"");
    hf_put_real(&o, "rms_norm_eps", c->rms_norm_eps);
    hf_put(&o, "max_position_embeddings", "%d", c->max_position_embeddings);
    /* Both spellings: transformers >= 5 reads rope_parameters, older versions rope_theta
     * and rope_scaling (null for the default type). */
    char rope[1024];
    rope_object(c, rope, sizeof rope);
    hf_put_real(&o, "rope_theta", c->rope.theta);
    hf_put(&o, "rope_parameters", "%s", rope);
    if (!c->rope.yarn) hf_put(&o, "rope_scaling", "null");
    else hf_put(&o, "rope_scaling", "%s", rope);
    hf_put(&o, "rope_interleave", "true");
    hf_put(&o, "attention_bias", "false");
    hf_put(&o, "attention_dropout", "0.0");
    hf_put(&o, "tie_word_embeddings", "%s", c->tie_word_embeddings ? "true" : "false");
    hf_put_real(&o, "initializer_range", c->initializer_range);
    hf_put_token_id(&o, "bos_token_id", c->bos_token_id);
    hf_put_token_id(&o, "pad_token_id", c->pad_token_id);
    if (c->n_eos == 0) {
        hf_put(&o, "eos_token_id", "null");
    } else if (c->n_eos == 1) {
        hf_put(&o, "eos_token_id", "%d", c->eos_token_ids[0]);
    } else {
        char list[HF_CONFIG_MAX_EOS * 16 + 4];
        size_t n = (size_t)snprintf(list, sizeof list, "[");
        for (int i = 0; i < c->n_eos; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%d", i ? ", " : "", c->eos_token_ids[i]);
        snprintf(list + n, sizeof list - n, "]");
        hf_put(&o, "eos_token_id", "%s", list);
    }
    hf_put(&o, "use_cache", "true");
    hf_put(&o, "pretraining_tp", "1");
    hf_put(&o, "torch_dtype", "\"float32\"");
    hf_put(&o, "dtype", "\"float32\"");
    char text[16384];
    hf_render(&o, 0, text, sizeof text - 1);
    strcat(text, "\n");
    return hf_write_atomic(path, text);
}
