/* `grpo run`: executes the stages of a run configuration in order, in the run
 * directory OUTPUT_DIR/NAME (run.db, data/, tokenizer/, ckpt/, summary.json), resuming
 * from the newest checkpoint when the run exists. */
#ifndef GRPO_RUN_H
#define GRPO_RUN_H

#include <stdio.h>

#include "rl/run_config.h"

#define RUN_MAX_STAGES 64

/* A held-out evaluation; what does not apply to the stage's kind is NAN. */
typedef struct {
    double loss;          /* sft: cross-entropy per response token */
    double exact_match;   /* sft: greedy decoding reproduces the response exactly */
    double pass_at_1;     /* grpo: mean correctness over n samples per problem */
    double pass_at_k;     /* grpo: unbiased pass@k, k = n */
    double maj_at_k;      /* grpo: majority answer of the n samples correct */
    double mean_length;   /* grpo: completion tokens */
    int k;
} run_eval;

typedef struct {
    char name[64];
    char kind[16];
    int steps;
    double seconds;
    run_eval before, after;   /* all NAN without an eval set */
    double train_loss;        /* sft */
    double reward_mean;       /* grpo, last logging window */
    double tokens_per_second; /* sft */
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
