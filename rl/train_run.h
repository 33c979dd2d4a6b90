/* What every trainer (SFT, GRPO) needs to know about the run around it: where it lives,
 * how it reports, whether it resumes. All fields optional but run_dir for checkpoints. */
#ifndef GRPO_TRAIN_RUN_H
#define GRPO_TRAIN_RUN_H

#include <stdint.h>

#include "core/store.h"

typedef struct {
    const char *run_dir;          /* checkpoints go to run_dir/ckpt/ (NULL: none) */
    const char *tokenizer_dir;    /* copied into each checkpoint (NULL: none) */
    const char *stage_name;
    int stage_index;
    int step_offset;              /* steps of the run's earlier stages (checkpoints are named by
                                     the run-wide step) */
    int resume;                   /* continue from the newest checkpoint of this stage, if any */
    int32_t pad_id;
    /* metrics for the run store: called every logging step and at each evaluation */
    void (*on_metrics)(void *ctx, int step, int n, const char *const *names, const double *values);
    void *ctx;
    /* sampled rollouts of a step for the run store (run_id and stage left 0 for the callee
     * to fill; strings valid during the call); NULL: not kept */
    void (*on_rollouts)(void *ctx, int step, int n, const store_rollout *rows);
    int quiet;                    /* no progress line */
    int stop_after_steps;         /* stop once this step is done and checkpointed, as if the
                                     process were killed there (0: run to max_steps) */
} train_run;

#endif
