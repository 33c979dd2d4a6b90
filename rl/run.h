/* `grpo run`: executes the stages of a run configuration in order, in the run
 * directory OUTPUT_DIR/NAME (run.db, data/, tokenizer/, ckpt/, summary.json), resuming
 * from the newest checkpoint when the run exists. */
#ifndef GRPO_RUN_H
#define GRPO_RUN_H

#include <stdio.h>

#include "rl/run_config.h"

#define RUN_MAX_STAGES 64

typedef struct {
    char name[64];
    char kind[16];
    int steps;
    double seconds;
    double eval_loss_before, eval_loss;                 /* NAN without an eval set */
    double eval_exact_match_before, eval_exact_match;   /* NAN without an eval set */
    double train_loss;
    double tokens_per_second;
} run_stage_summary;

typedef struct {
    char run_dir[1024];
    int n_stages;
    run_stage_summary stages[RUN_MAX_STAGES];
} run_summary;

/* Runs every stage; writes RUN_DIR/summary.json and prints the summary table. */
grpo_status run_execute(const run_config *c, run_summary *summary);
void run_summary_print(const run_summary *s, FILE *out);

#endif
