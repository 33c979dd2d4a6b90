/* The family-independent model interface (model/lm.h): dispatch on config.json's
 * model_type to the family's implementation. */
#include "model/lm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "model/dense.h"
#include "model/hf_config.h"

/* ---- dense (Qwen2 / Llama) ---- */

static grpo_status dense_lm_forward(lm *m, const int32_t *ids, const int32_t *positions, int B, int T,
                                    float **logits) {
    return dense_forward(m->impl, ids, positions, B, T, logits);
}
static grpo_status dense_lm_backward(lm *m, const float *dlogits) { return dense_backward(m->impl, dlogits); }
static grpo_status dense_lm_reserve(lm *m, int B, int T) { return dense_reserve(m->impl, B, T); }
static grpo_status dense_lm_save(lm *m, const char *dir) { return dense_save(m->impl, dir); }
static void dense_lm_destroy(lm *m) { dense_model_free(m->impl); }

static const lm_ops dense_lm_ops = {dense_lm_forward, dense_lm_backward, dense_lm_reserve, dense_lm_save,
                                     dense_lm_destroy};

static grpo_status wrap_dense(backend *be, dense_model *dm, lm **out) {
    lm *m = calloc(1, sizeof *m);
    if (!m) {
        dense_model_free(dm);
        return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    }
    const dense_config *cfg = dense_model_config(dm);
    m->ops = &dense_lm_ops;
    m->impl = dm;
    m->be = be;
    m->params = dense_model_params(dm);
    snprintf(m->model_type, sizeof m->model_type, "%s", cfg->model_type);
    m->vocab_size = cfg->vocab_size;
    m->max_position_embeddings = cfg->max_position_embeddings;
    for (int i = 0; i < m->params->count; i++) m->num_parameters += (int64_t)m->params->views[i].numel;
    *out = m;
    return GRPO_OK;
}

static int is_dense_type(const char *type) { return !strcmp(type, "qwen2") || !strcmp(type, "llama"); }

grpo_status lm_load_dir(backend *be, const char *dir, lm **out) {
    *out = NULL;
    char path[PATH_MAX], type[64];
    snprintf(path, sizeof path, "%s/config.json", dir);
    GRPO_TRY(hf_config_model_type(path, type, sizeof type));
    if (!is_dense_type(type))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (expected qwen2 or llama)",
                         path, type);
    dense_model *dm;
    GRPO_TRY(dense_model_load_dir(be, dir, &dm));
    return wrap_dense(be, dm, out);
}

grpo_status lm_create_random(backend *be, const char *config_json, size_t len, const char *origin, uint64_t seed,
                             lm **out) {
    *out = NULL;
    dense_config cfg;
    GRPO_TRY(hf_config_dense_parse(config_json, len, origin, &cfg));
    dense_model *dm;
    GRPO_TRY(dense_model_create(be, &cfg, &dm));
    dense_init_random(dm, seed);
    return wrap_dense(be, dm, out);
}

void lm_free(lm *m) {
    if (!m) return;
    m->ops->destroy(m);
    free(m);
}
