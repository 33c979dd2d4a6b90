/* config.json for the dense families (Qwen2, Llama): read with transformers' defaults,
 * validated with messages naming the field, written back with the fields transformers
 * needs. Field meanings: transformers' Qwen2Config / LlamaConfig and modeling_rope_utils. */
#include "model/hf_config.h"
#include "model/hf_config_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static int is_qwen2(const char *t) { return strcmp(t, "qwen2") == 0; }
static int is_llama(const char *t) { return strcmp(t, "llama") == 0; }

int dense_config_qkv_bias(const dense_config *c) { return is_qwen2(c->model_type) ? 1 : c->attention_bias; }
int dense_config_o_bias(const dense_config *c) { return is_qwen2(c->model_type) ? 0 : c->attention_bias; }

grpo_status hf_config_dense_defaults(dense_config *cfg, const char *model_type) {
    memset(cfg, 0, sizeof *cfg);
    if (!model_type || (!is_qwen2(model_type) && !is_llama(model_type)))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "model_type \"%s\" is not a dense family (expected \"qwen2\" or \"llama\")",
                         model_type ? model_type : "(null)");
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", model_type);
    cfg->hidden_size = 4096;
    cfg->num_hidden_layers = 32;
    cfg->num_attention_heads = 32;
    cfg->num_key_value_heads = 32;
    cfg->head_dim = 128;
    cfg->rms_norm_eps = 1e-6;
    cfg->initializer_range = 0.02;
    cfg->rope.type = HF_ROPE_DEFAULT;
    cfg->rope.theta = 10000.0;
    cfg->rope.factor = 1.0;
    cfg->pad_token_id = -1;
    if (is_qwen2(model_type)) {
        cfg->vocab_size = 151936;
        cfg->intermediate_size = 22016;
        cfg->max_position_embeddings = 32768;
        cfg->attention_bias = 1;
        cfg->bos_token_id = -1;
        cfg->n_eos = 0;
    } else {
        cfg->vocab_size = 32000;
        cfg->intermediate_size = 11008;
        cfg->max_position_embeddings = 2048;
        cfg->bos_token_id = 1;
        cfg->n_eos = 1;
        cfg->eos_token_ids[0] = 2;
    }
    return GRPO_OK;
}

grpo_status hf_check_range(const char *origin, const char *field, long long v, long long lo, long long hi) {
    if (v < lo || v > hi)
        return grpo_fail(GRPO_ERR_INVALID, "%s: %s (%lld) must be in [%lld, %lld]", origin, field, v, lo, hi);
    return GRPO_OK;
}

grpo_status hf_config_dense_validate(const dense_config *c, const char *origin) {
    if (!is_qwen2(c->model_type) && !is_llama(c->model_type))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (expected \"qwen2\" or \"llama\")",
                         origin, c->model_type);
    GRPO_TRY(hf_check_range(origin, "vocab_size", c->vocab_size, 1, HF_MAX_DIM));
    GRPO_TRY(hf_check_range(origin, "hidden_size", c->hidden_size, 1, HF_MAX_DIM));
    GRPO_TRY(hf_check_range(origin, "intermediate_size", c->intermediate_size, 1, HF_MAX_DIM));
    GRPO_TRY(hf_check_range(origin, "num_hidden_layers", c->num_hidden_layers, 1, 1 << 12));
    GRPO_TRY(hf_check_range(origin, "num_attention_heads", c->num_attention_heads, 1, HF_MAX_HEADS));
    GRPO_TRY(hf_check_range(origin, "num_key_value_heads", c->num_key_value_heads, 1, HF_MAX_HEADS));
    GRPO_TRY(hf_check_range(origin, "head_dim", c->head_dim, 2, 1 << 16));
    GRPO_TRY(hf_check_range(origin, "max_position_embeddings", c->max_position_embeddings, 1, 1 << 24));
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return grpo_fail(GRPO_ERR_INVALID, "%s: num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)",
                         origin, c->num_attention_heads, c->num_key_value_heads);
    if (c->head_dim % 2 != 0)
        return grpo_fail(GRPO_ERR_INVALID, "%s: head_dim (%d) must be even (rotary embedding pairs)", origin, c->head_dim);
    if ((int64_t)c->num_attention_heads * c->head_dim > HF_MAX_DIM)
        return grpo_fail(GRPO_ERR_INVALID, "%s: num_attention_heads * head_dim (%d * %d) exceeds %d", origin,
                         c->num_attention_heads, c->head_dim, HF_MAX_DIM);
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps < 1))
        return grpo_fail(GRPO_ERR_INVALID, "%s: rms_norm_eps (%g) must be in (0, 1)", origin, c->rms_norm_eps);
    if (!(c->initializer_range >= 0 && c->initializer_range <= 1))
        return grpo_fail(GRPO_ERR_INVALID, "%s: initializer_range (%g) must be in [0, 1]", origin, c->initializer_range);
    if (!(c->rope.theta > 1 && isfinite(c->rope.theta)))
        return grpo_fail(GRPO_ERR_INVALID, "%s: rope_theta (%g) must be a finite number > 1", origin, c->rope.theta);
    if (c->rope.type != HF_ROPE_DEFAULT && !(c->rope.factor > 0 && isfinite(c->rope.factor)))
        return grpo_fail(GRPO_ERR_INVALID, "%s: rope factor (%g) must be a finite number > 0", origin, c->rope.factor);
    if (c->rope.type == HF_ROPE_LLAMA3) {
        if (!(c->rope.low_freq_factor > 0 && c->rope.high_freq_factor > c->rope.low_freq_factor))
            return grpo_fail(GRPO_ERR_INVALID, "%s: llama3 rope needs 0 < low_freq_factor (%g) < high_freq_factor (%g)",
                             origin, c->rope.low_freq_factor, c->rope.high_freq_factor);
        GRPO_TRY(hf_check_range(origin, "original_max_position_embeddings", c->rope.original_max_position_embeddings, 1,
                             1 << 24));
    }
    if (c->mlp_bias)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: mlp_bias true is not supported", origin);
    if (c->n_eos < 0 || c->n_eos > HF_CONFIG_MAX_EOS)
        return grpo_fail(GRPO_ERR_INVALID, "%s: eos_token_id has %d entries (at most %d)", origin, c->n_eos,
                         HF_CONFIG_MAX_EOS);
    return GRPO_OK;
}

/* ---- reading ---- */

grpo_status hf_json_int(json_t *root, const char *origin, const char *key, int *dst) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return GRPO_OK;
    double d;
    if (json_is_integer(v)) d = (double)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) d = json_real_value(v);
    else return grpo_fail(GRPO_ERR_PARSE, "%s: %s: expected an integer", origin, key);
    if (d < INT32_MIN || d > INT32_MAX)
        return grpo_fail(GRPO_ERR_INVALID, "%s: %s (%.0f) is out of range", origin, key, d);
    *dst = (int)d;
    return GRPO_OK;
}

/* An optional token id: null or absent gives -1. */
grpo_status hf_json_token_id(json_t *root, const char *origin, const char *key, int *dst) {
    json_t *v = json_object_get(root, key);
    if (v && json_is_null(v)) { *dst = -1; return GRPO_OK; }
    return hf_json_int(root, origin, key, dst);
}

grpo_status hf_json_real(json_t *root, const char *origin, const char *key, double *dst) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return GRPO_OK;
    if (!json_is_number(v)) return grpo_fail(GRPO_ERR_PARSE, "%s: %s: expected a number", origin, key);
    *dst = json_number_value(v);
    return GRPO_OK;
}

grpo_status hf_json_bool(json_t *root, const char *origin, const char *key, int *dst) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return GRPO_OK;
    if (!json_is_boolean(v)) return grpo_fail(GRPO_ERR_PARSE, "%s: %s: expected true or false", origin, key);
    *dst = json_is_true(v);
    return GRPO_OK;
}

const char *hf_json_string(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "rope_parameters" (transformers >= 5) or "rope_scaling" (older): type, theta, factors. */
static grpo_status parse_rope(json_t *root, const char *origin, dense_config *c) {
    GRPO_TRY(hf_json_real(root, origin, "rope_theta", &c->rope.theta));
    const char *key = "rope_parameters";
    json_t *rp = json_object_get(root, key);
    if (!rp || json_is_null(rp)) { key = "rope_scaling"; rp = json_object_get(root, key); }
    if (!rp || json_is_null(rp)) return GRPO_OK;
    if (!json_is_object(rp)) return grpo_fail(GRPO_ERR_PARSE, "%s: %s: expected an object", origin, key);
    GRPO_TRY(hf_json_real(rp, origin, "rope_theta", &c->rope.theta));
    const char *type = hf_json_string(rp, "rope_type");
    if (!type) type = hf_json_string(rp, "type");
    if (!type) {
        /* Per-layer-type nesting ({"full_attention": {...}}) has no top-level type. */
        if (json_object_size(rp) > 0 && !json_object_get(rp, "rope_theta"))
            return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: %s: per-layer rope parameters are not supported", origin, key);
        type = "default";
    }
    double partial = 1.0;
    GRPO_TRY(hf_json_real(rp, origin, "partial_rotary_factor", &partial));
    if (partial != 1.0)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: %s.partial_rotary_factor (%g) is not supported (only 1)", origin, key,
                         partial);
    if (strcmp(type, "default") == 0) {
        c->rope.type = HF_ROPE_DEFAULT;
    } else if (strcmp(type, "linear") == 0) {
        c->rope.type = HF_ROPE_LINEAR;
        c->rope.factor = 0;
        GRPO_TRY(hf_json_real(rp, origin, "factor", &c->rope.factor));
    } else if (strcmp(type, "llama3") == 0) {
        c->rope.type = HF_ROPE_LLAMA3;
        c->rope.factor = 0;
        GRPO_TRY(hf_json_real(rp, origin, "factor", &c->rope.factor));
        GRPO_TRY(hf_json_real(rp, origin, "low_freq_factor", &c->rope.low_freq_factor));
        GRPO_TRY(hf_json_real(rp, origin, "high_freq_factor", &c->rope.high_freq_factor));
        c->rope.original_max_position_embeddings = c->max_position_embeddings;
        GRPO_TRY(hf_json_int(rp, origin, "original_max_position_embeddings", &c->rope.original_max_position_embeddings));
    } else {
        return grpo_fail(GRPO_ERR_UNSUPPORTED,
                         "%s: %s: rope type \"%s\" is not supported (supported: default, linear, llama3)", origin, key,
                         type);
    }
    return GRPO_OK;
}

grpo_status hf_json_eos(json_t *root, const char *origin, int *n_eos, int *eos_token_ids) {
    json_t *v = json_object_get(root, "eos_token_id");
    if (!v) return GRPO_OK;
    if (json_is_null(v)) { *n_eos = 0; return GRPO_OK; }
    if (json_is_integer(v)) {
        *n_eos = 1;
        return hf_json_int(root, origin, "eos_token_id", &eos_token_ids[0]);
    }
    if (!json_is_array(v)) return grpo_fail(GRPO_ERR_PARSE, "%s: eos_token_id: expected an integer or a list", origin);
    size_t n = json_array_size(v);
    if (n > HF_CONFIG_MAX_EOS)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: eos_token_id lists %zu ids (at most %d)", origin, n,
                         HF_CONFIG_MAX_EOS);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX)
            return grpo_fail(GRPO_ERR_PARSE, "%s: eos_token_id[%zu]: expected a non-negative integer", origin, i);
        eos_token_ids[i] = (int)json_integer_value(e);
    }
    *n_eos = (int)n;
    return GRPO_OK;
}

/* Features of the families that this implementation does not have. */
static grpo_status refuse_unsupported(json_t *root, const char *origin, const dense_config *c) {
    const char *act = hf_json_string(root, "hidden_act");
    if (json_object_get(root, "hidden_act") && (!act || strcmp(act, "silu") != 0))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (only \"silu\")", origin,
                         act ? act : "(not a string)");
    int sliding = 0, max_window_layers = 28;
    GRPO_TRY(hf_json_bool(root, origin, "use_sliding_window", &sliding));
    GRPO_TRY(hf_json_int(root, origin, "max_window_layers", &max_window_layers));
    if (is_qwen2(c->model_type) && sliding && max_window_layers < c->num_hidden_layers)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: use_sliding_window with max_window_layers (%d) < num_hidden_layers (%d) "
                         "is not supported", origin, max_window_layers, c->num_hidden_layers);
    json_t *types = json_object_get(root, "layer_types");
    if (types && !json_is_null(types)) {
        if (!json_is_array(types)) return grpo_fail(GRPO_ERR_PARSE, "%s: layer_types: expected a list", origin);
        for (size_t i = 0; i < json_array_size(types); i++) {
            const char *t = json_string_value(json_array_get(types, i));
            if (!t || strcmp(t, "full_attention") != 0)
                return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: layer_types[%zu] = \"%s\" is not supported (only "
                                 "\"full_attention\")", origin, i, t ? t : "(not a string)");
        }
    }
    int tp = 1;
    GRPO_TRY(hf_json_int(root, origin, "pretraining_tp", &tp));
    if (tp != 1) return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: pretraining_tp (%d) must be 1", origin, tp);
    return GRPO_OK;
}

static grpo_status parse_root(json_t *root, const char *origin, dense_config *out) {
    if (!json_is_object(root)) return grpo_fail(GRPO_ERR_PARSE, "%s: expected a JSON object", origin);
    const char *type = hf_json_string(root, "model_type");
    if (!type) return grpo_fail(GRPO_ERR_PARSE, "%s: model_type: missing or not a string", origin);
    if (!is_qwen2(type) && !is_llama(type))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not a dense family (expected \"qwen2\" or "
                         "\"llama\")", origin, type);
    dense_config c;
    GRPO_TRY(hf_config_dense_defaults(&c, type));
    GRPO_TRY(hf_json_int(root, origin, "vocab_size", &c.vocab_size));
    GRPO_TRY(hf_json_int(root, origin, "hidden_size", &c.hidden_size));
    GRPO_TRY(hf_json_int(root, origin, "intermediate_size", &c.intermediate_size));
    GRPO_TRY(hf_json_int(root, origin, "num_hidden_layers", &c.num_hidden_layers));
    GRPO_TRY(hf_json_int(root, origin, "num_attention_heads", &c.num_attention_heads));
    c.num_key_value_heads = c.num_attention_heads;
    GRPO_TRY(hf_json_int(root, origin, "num_key_value_heads", &c.num_key_value_heads));
    if (c.num_attention_heads <= 0)
        return grpo_fail(GRPO_ERR_INVALID, "%s: num_attention_heads (%d) must be >= 1", origin, c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
    GRPO_TRY(hf_json_int(root, origin, "head_dim", &c.head_dim));
    GRPO_TRY(hf_json_real(root, origin, "rms_norm_eps", &c.rms_norm_eps));
    GRPO_TRY(hf_json_int(root, origin, "max_position_embeddings", &c.max_position_embeddings));
    GRPO_TRY(hf_json_bool(root, origin, "tie_word_embeddings", &c.tie_word_embeddings));
    if (is_llama(type)) {
        GRPO_TRY(hf_json_bool(root, origin, "attention_bias", &c.attention_bias));
        GRPO_TRY(hf_json_bool(root, origin, "mlp_bias", &c.mlp_bias));
    }
    GRPO_TRY(hf_json_real(root, origin, "initializer_range", &c.initializer_range));
    GRPO_TRY(hf_json_token_id(root, origin, "bos_token_id", &c.bos_token_id));
    GRPO_TRY(hf_json_token_id(root, origin, "pad_token_id", &c.pad_token_id));
    GRPO_TRY(hf_json_eos(root, origin, &c.n_eos, c.eos_token_ids));
    GRPO_TRY(parse_rope(root, origin, &c));
    GRPO_TRY(refuse_unsupported(root, origin, &c));
    GRPO_TRY(hf_config_dense_validate(&c, origin));
    *out = c;
    return GRPO_OK;
}

grpo_status hf_json_load_text(const char *text, size_t len, const char *origin, json_t **root) {
    json_error_t err;
    *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!*root) return grpo_fail(GRPO_ERR_PARSE, "%s:%d:%d: %s", origin, err.line, err.column, err.text);
    return GRPO_OK;
}

grpo_status hf_json_load_path(const char *path, json_t **root) {
    json_error_t err;
    *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (*root) return GRPO_OK;
    if (err.line < 0) return grpo_fail(GRPO_ERR_IO, "%s: %s", path, err.text);
    return grpo_fail(GRPO_ERR_PARSE, "%s:%d:%d: %s", path, err.line, err.column, err.text);
}

grpo_status hf_config_dense_parse(const char *json_text, size_t len, const char *origin, dense_config *cfg) {
    json_t *root;
    GRPO_TRY(hf_json_load_text(json_text, len, origin, &root));
    grpo_status s = parse_root(root, origin, cfg);
    json_decref(root);
    return s;
}

grpo_status hf_config_dense_read(const char *path, dense_config *cfg) {
    json_t *root;
    GRPO_TRY(hf_json_load_path(path, &root));
    grpo_status s = parse_root(root, path, cfg);
    json_decref(root);
    return s;
}

grpo_status hf_config_model_type(const char *path, char *out, size_t size) {
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) {
        if (err.line < 0) return grpo_fail(GRPO_ERR_IO, "%s: %s", path, err.text);
        return grpo_fail(GRPO_ERR_PARSE, "%s:%d:%d: %s", path, err.line, err.column, err.text);
    }
    const char *type = json_is_object(root) ? hf_json_string(root, "model_type") : NULL;
    grpo_status s = GRPO_OK;
    if (!type) s = grpo_fail(GRPO_ERR_PARSE, "%s: model_type: missing or not a string", path);
    else snprintf(out, size, "%s", type);
    json_decref(root);
    return s;
}

/* ---- writing ----
 * The text is built here rather than by jansson's dump, whose fixed real precision
 * prints 1e-6 as 9.9999999999999995e-07: reals get the shortest form that reads back
 * to the same double, keys are sorted and indented as transformers writes them. */

void hf_put(hf_object *o, const char *key, const char *fmt, ...) {
    GRPO_ASSERT(o->count < HF_MAX_FIELDS);
    hf_field *f = &o->fields[o->count++];
    f->key = key;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->value, sizeof f->value, fmt, ap);
    va_end(ap);
}

/* The shortest text that parses back to x, laid out as Python's repr does: fixed
 * notation for 1e-4 <= |x| < 1e16 (with ".0" on integral values, so Python reads a
 * float), exponent notation otherwise. x is finite (validated). */
static void format_real(char *buf, size_t size, double x) {
    double ax = fabs(x);
    if (ax >= 1e-4 && ax < 1e16) {
        for (int decimals = 0; decimals <= 20; decimals++) {
            snprintf(buf, size, "%.*f", decimals, x);
            if (strtod(buf, NULL) == x) break;
        }
        if (!strchr(buf, '.')) strncat(buf, ".0", size - strlen(buf) - 1);
        return;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, size, "%.*g", precision, x);
        if (strtod(buf, NULL) == x) break;
    }
    if (!strpbrk(buf, ".eE")) strncat(buf, ".0", size - strlen(buf) - 1);
}

void hf_put_real(hf_object *o, const char *key, double x) {
    char buf[40];
    format_real(buf, sizeof buf, x);
    hf_put(o, key, "%s", buf);
}

void hf_put_token_id(hf_object *o, const char *key, int id) {
    if (id < 0) hf_put(o, key, "null");
    else hf_put(o, key, "%d", id);
}

static int field_cmp(const void *a, const void *b) {
    return strcmp(((const hf_field *)a)->key, ((const hf_field *)b)->key);
}

/* Renders o as a JSON object, keys sorted, members indented by indent + 2 spaces. */
void hf_render(hf_object *o, int indent, char *buf, size_t size) {
    qsort(o->fields, (size_t)o->count, sizeof o->fields[0], field_cmp);
    size_t n = (size_t)snprintf(buf, size, "{\n");
    for (int i = 0; i < o->count && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%*s\"%s\": %s%s\n", indent + 2, "", o->fields[i].key,
                              o->fields[i].value, i + 1 < o->count ? "," : "");
    if (n < size) snprintf(buf + n, size - n, "%*s}", indent, "");
}

static void rope_object(const dense_config *c, char *buf, size_t size) {
    hf_object r = {.count = 0};
    hf_put_real(&r, "rope_theta", c->rope.theta);
    switch (c->rope.type) {
    case HF_ROPE_DEFAULT:
        hf_put(&r, "rope_type", "\"default\"");
        break;
    case HF_ROPE_LINEAR:
        hf_put(&r, "rope_type", "\"linear\"");
        hf_put_real(&r, "factor", c->rope.factor);
        break;
    case HF_ROPE_LLAMA3:
        hf_put(&r, "rope_type", "\"llama3\"");
        hf_put_real(&r, "factor", c->rope.factor);
        hf_put_real(&r, "low_freq_factor", c->rope.low_freq_factor);
        hf_put_real(&r, "high_freq_factor", c->rope.high_freq_factor);
        hf_put(&r, "original_max_position_embeddings", "%d", c->rope.original_max_position_embeddings);
        break;
    }
    hf_render(&r, 2, buf, size);
}

/* Writes text to path via path.tmp + fsync + rename, so a crash leaves the old file or the new one. */
grpo_status hf_write_atomic(const char *path, const char *text) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return grpo_fail(GRPO_ERR_INVALID, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return grpo_fail(GRPO_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return grpo_fail(GRPO_ERR_IO, "%s: write failed: %s", tmp, strerror(e));
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return grpo_fail(GRPO_ERR_IO, "%s: fsync/close failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return grpo_fail(GRPO_ERR_IO, "%s: rename to %s failed: %s", tmp, path, strerror(e));
    }
    return GRPO_OK;
}

grpo_status hf_config_dense_write(const dense_config *c, const char *path) {
    GRPO_TRY(hf_config_dense_validate(c, path));
    int qwen2 = is_qwen2(c->model_type);
    hf_object o = {.count = 0};
    hf_put(&o, "architectures", "[\"%s\"]", qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM");
    hf_put(&o, "model_type", "\"%s\"", c->model_type);
    hf_put(&o, "vocab_size", "%d", c->vocab_size);
    hf_put(&o, "hidden_size", "%d", c->hidden_size);
    hf_put(&o, "intermediate_size", "%d", c->intermediate_size);
    hf_put(&o, "num_hidden_layers", "%d", c->num_hidden_layers);
    hf_put(&o, "num_attention_heads", "%d", c->num_attention_heads);
    hf_put(&o, "num_key_value_heads", "%d", c->num_key_value_heads);
    hf_put(&o, "head_dim", "%d", c->head_dim);
    hf_put(&o, "hidden_act", "\"silu\"");
    hf_put_real(&o, "rms_norm_eps", c->rms_norm_eps);
    hf_put(&o, "max_position_embeddings", "%d", c->max_position_embeddings);
    /* Both spellings: transformers >= 5 reads rope_parameters, older versions rope_theta
     * and rope_scaling (null for the default type). */
    char rope[512];
    rope_object(c, rope, sizeof rope);
    hf_put_real(&o, "rope_theta", c->rope.theta);
    hf_put(&o, "rope_parameters", "%s", rope);
    if (c->rope.type == HF_ROPE_DEFAULT) hf_put(&o, "rope_scaling", "null");
    else hf_put(&o, "rope_scaling", "%s", rope);
    hf_put(&o, "tie_word_embeddings", "%s", c->tie_word_embeddings ? "true" : "false");
    hf_put_real(&o, "initializer_range", c->initializer_range);
    hf_put_token_id(&o, "bos_token_id", c->bos_token_id);
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
    hf_put_token_id(&o, "pad_token_id", c->pad_token_id);
    hf_put(&o, "attention_dropout", "0.0");
    hf_put(&o, "use_cache", "true");
    if (qwen2) {
        hf_put(&o, "use_sliding_window", "false");
        hf_put(&o, "max_window_layers", "%d", c->num_hidden_layers);
    } else {
        hf_put(&o, "attention_bias", "%s", c->attention_bias ? "true" : "false");
        hf_put(&o, "mlp_bias", "false");
        hf_put(&o, "pretraining_tp", "1");
    }
    hf_put(&o, "torch_dtype", "\"float32\"");   /* transformers < 5 */
    hf_put(&o, "dtype", "\"float32\"");
    char text[8192];
    hf_render(&o, 0, text, sizeof text - 1);
    strcat(text, "\n");
    return hf_write_atomic(path, text);
}
