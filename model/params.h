/* A model's parameters as one block of floats carved into named views (llm.c's layout):
 * sizes first, then one allocation each for the values and the gradients, in the
 * backend's memory. Views carry the Hugging Face tensor names, so loading and saving a
 * checkpoint is a walk over the views. The optimizer state (rl/optim) mirrors the block. */
#ifndef GRPO_PARAMS_H
#define GRPO_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"
#include "core/safetensors.h"

#define PARAM_NAME_MAX 128
#define PARAM_MAX_DIMS 4

typedef struct {
    char name[PARAM_NAME_MAX];    /* HF name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    int ndim;
    int64_t shape[PARAM_MAX_DIMS];
    size_t offset;                /* in floats, from the start of the block */
    size_t numel;
    int no_decay;                 /* 1 for norms and biases: AdamW skips weight decay */
} param_view;

typedef struct {
    backend *be;                  /* not owned */
    float *data;                  /* [total] values, backend memory */
    float *grad;                  /* [total] gradients, backend memory (NULL until param_set_alloc_grad) */
    size_t total;
    int count;
    int capacity;
    param_view *views;
    uint64_t version;             /* bumped by param_set_touch whenever the values change */
    struct linear *compute;       /* the projections' compute precision and rounded weight
                                   * copies (model/linear.h); made by param_set_alloc, owned */
} param_set;

/* Declaring: add views in order, then allocate once. */
void param_set_init(param_set *ps, backend *be);
void param_set_deinit(param_set *ps);           /* frees data, grad and views */
/* Declares a tensor; returns its view index. Shapes are the HF shapes ([out, in] for Linear). */
int param_set_add(param_set *ps, const char *name, int ndim, const int64_t *shape, int no_decay);
/* Allocates data (zeros) once all views are declared. */
grpo_status param_set_alloc(param_set *ps);
grpo_status param_set_alloc_grad(param_set *ps);
void param_set_zero_grad(param_set *ps);
/* Says the values changed (an optimizer step, a load, any direct write): the compute
 * copies of model/linear.h are remade on their next use. */
static inline void param_set_touch(param_set *ps) { ps->version++; }
float *param_ptr(const param_set *ps, int view);        /* backend pointer to the view's values */
float *param_grad_ptr(const param_set *ps, int view);   /* backend pointer to its gradient */
int param_find(const param_set *ps, const char *name);  /* -1 when absent */

/* Loads every view from an open safetensors file (any float dtype; shapes must match
 * exactly: a mismatch names the tensor, expected and found shapes). A view missing from
 * the file is an error unless `optional_missing` returns 1 for its name (e.g. lm_head
 * when embeddings are tied). Extra tensors in the file are an error naming them unless
 * ignore_extra. */
grpo_status param_set_load(param_set *ps, const st_file *f, int (*optional_missing)(const char *name),
                           int ignore_extra);
/* Writes every view (F32, or BF16 when bf16 != 0) to path atomically; skip(name) may omit
 * views (e.g. a tied lm_head). */
grpo_status param_set_save(const param_set *ps, const char *path, int bf16, int (*skip)(const char *name));

/* Fills every view with N(0, std) from the counter-based RNG (core/rng.h), stream = view
 * index, so the result does not depend on thread count or backend; views whose name ends
 * in "norm.weight" (or layernorm) get 1, biases get 0. */
void param_set_init_normal(param_set *ps, uint64_t seed, float std);

#endif
