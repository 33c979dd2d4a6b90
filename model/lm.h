/* A causal language model of any family behind one interface, so trainers (rl/) and the
 * rollout engine drive dense students and DeepSeek-V3 policies the same way. The
 * family is read from config.json's model_type. */
#ifndef GRPO_LM_H
#define GRPO_LM_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"
#include "model/params.h"

typedef struct lm lm;

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
static inline grpo_status lm_save(lm *m, const char *dir) { return m->ops->save(m, dir); }

#endif
