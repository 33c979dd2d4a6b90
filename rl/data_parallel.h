/* Data parallelism for the trainers (SFT, GRPO, every stage kind): each rank trains on
 * its own share of every optimizer step's global batch, the ranks' gradients are summed
 * (rl/optim: bucketed all-reduce, ZeRO-1 state shards, weights all-gathered), and the
 * loss normalisers are global, so N ranks compute the update one rank would compute on
 * the same global batch. With one rank every function here is the identity. */
#ifndef GRPO_DATA_PARALLEL_H
#define GRPO_DATA_PARALLEL_H

#include <stdint.h>

#include "core/status.h"
#include "model/lm.h"
#include "rl/grpo_loss.h"

int dp_rank(void);
int dp_size(void);

/* Position in the global sample order of this rank's first slot of batch `index`, when
 * every rank takes per_rank consecutive slots of each batch: (index * W + rank) * per_rank. */
int64_t dp_first_slot(int64_t index, int per_rank);

/* Sums over the ranks, in place (host values). */
grpo_status dp_sum_int(int *v);
grpo_status dp_sum_double(double *v, int n);

/* GRPO's loss options for a rank's share: the micro-batches of the whole step are
 * accum * W (so GRPO/BNPO/DR_GRPO divide by it) and DAPO's num_items_in_batch is the
 * global count of active tokens (TRL's num_processes stays 1 because gradients are
 * summed, not averaged). Refuses what cannot be split per rank yet. */
grpo_status dp_grpo_loss_options(grpo_loss_options *lo, int batch_scaled_advantages);

/* Metrics for logging, reduced over the ranks in place: names containing "max" take the
 * maximum, "loss" (each rank's part of the global loss) the sum, time/ the maximum,
 * everything else the mean of the ranks' values. */
grpo_status dp_reduce_metrics(int n, const char *const *names, double *values);

/* The MoE router-bias step (V3 report eq. 16-17) from the expert loads summed over the
 * ranks, so every rank applies the same step. */
grpo_status dp_update_router_bias(lm *model, float gamma);

#endif
