/* Training basics over a param_set: AdamW (decoupled weight decay, bias correction),
 * global-norm gradient clipping, learning-rate schedules. Gradient accumulation is the
 * caller's: it leaves gradients un-zeroed across micro-batches and scales the loss. */
#ifndef GRPO_OPTIM_H
#define GRPO_OPTIM_H

#include "core/status.h"
#include "model/params.h"

typedef enum { LR_CONSTANT = 0, LR_LINEAR = 1, LR_COSINE = 2 } lr_schedule_kind;
extern const char *const lr_schedule_names[];   /* "constant", "linear", "cosine", NULL */

typedef struct {
    double learning_rate;     /* peak */
    double beta1, beta2, eps;
    double weight_decay;
    double max_grad_norm;     /* <= 0: no clipping */
    lr_schedule_kind schedule;
    int warmup_steps;         /* linear warm-up from 0 to the peak over these steps */
    double min_lr_ratio;      /* floor of the decay, as a fraction of the peak */
} optim_config;

/* TRL/transformers-like defaults: lr 1e-5, betas (0.9, 0.999), eps 1e-8, wd 0, clip 1.0. */
optim_config optim_config_default(void);

/* Learning rate at 0-based step `step` of `total_steps`: warm-up, then constant, linear
 * decay or cosine decay (SGDR, Loshchilov & Hutter 2017) to min_lr_ratio * peak. */
double optim_lr_at(const optim_config *cfg, int step, int total_steps);

typedef struct optim optim;

/* Allocates m and v mirroring ps (backend memory, zero). With several ranks
 * (core/comm.h) the state is sharded ZeRO-1 style: this rank keeps m and v for its
 * contiguous shard of the parameter block only; optim_step then all-reduces the
 * gradients, steps the shard and all-gathers the weights, so every rank holds the same
 * updated parameters. One rank: exactly the unsharded update. */
grpo_status optim_create(const optim_config *cfg, param_set *ps, optim **out);
void optim_free(optim *o);
/* One update with lr (a collective with several ranks): clips the global gradient norm to max_grad_norm first and returns
 * the norm before clipping in *grad_norm (may be NULL). Norm and bias views (no_decay)
 * get no weight decay. A non-finite gradient norm skips the update and is reported as
 * GRPO_ERR_INVALID (the caller decides whether that is fatal). */
grpo_status optim_step(optim *o, double lr, double *grad_norm);
int optim_step_count(const optim *o);
/* This rank's shard [*lo, *hi) of the parameter block (floats); returns the world size. */
int optim_shard(const optim *o, size_t *lo, size_t *hi);
/* Sums the gradients over the ranks in buckets (optim_step does this itself; exposed for
 * tests and benchmarks). No-op with one rank. */
grpo_status optim_allreduce_gradients(optim *o);
/* Global L2 norm of all gradients. */
double optim_grad_norm(const param_set *ps);

/* The optimizer state (m, v, step) as safetensors tensors "optimizer.m", "optimizer.v"
 * plus metadata {"format": "grpo-adamw", "version": "1", "step": N}. With several ranks
 * optim_save is a collective (the shards are gathered) and rank 0 writes the file;
 * optim_load reads the whole file on every rank and keeps the rank's shard. */
grpo_status optim_save(const optim *o, const char *path);
grpo_status optim_load(optim *o, const char *path);

#endif
