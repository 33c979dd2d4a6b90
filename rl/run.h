/* `grpo run`: executes the stage pipeline of a run configuration in order, in the run
 * directory OUTPUT_DIR/NAME (run.db, data/, tokenizer/, ckpt/, models/STAGE/,
 * summary.json). Each stage's output model is kept in models/STAGE so later stages can
 * name it; each finished stage is recorded in run.db, and a run that exists resumes at
 * its first unfinished stage (inside it from its newest checkpoint). */
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
    char model[1024];         /* the input model (the teacher for distill): "preset NAME", a
                                 directory, or RUN_DIR/models/STAGE of an earlier stage */
    char student[1024];       /* distill: where the student started */
    char output[1024];        /* RUN_DIR/models/STAGE: the model the stage leaves ("" when it
                                 leaves its input unchanged: rejection, eval) */
    int steps;
    double seconds;
    run_eval before, after;   /* the stage's own eval_dataset; all NAN without one */
    run_eval heldout;         /* heldout_dataset on the output model (the student for distill) */
    run_eval heldout_teacher; /* distill: heldout_dataset on the teacher */
    double train_loss;        /* sft */
    double reward_mean;       /* grpo, last logging window */
    double tokens_per_second; /* sft */
    int samples, kept;        /* rejection / distill: samples drawn, lines written */
} run_stage_summary;

typedef struct {
    char run_dir[1024];
    int n_stages;
    run_stage_summary stages[RUN_MAX_STAGES];
} run_summary;

/* Checks what the config names on disk (model directories, data files) before any
 * work; errors name the config's file:line. run_execute calls it first. */
grpo_status run_check_paths(const run_config *c);
/* Runs the stages not finished yet; writes RUN_DIR/summary.json (every stage, the ones of
 * earlier invocations read back from run.db). */
grpo_status run_execute(const run_config *c, run_summary *summary);
/* The table: one row per stage with the held-out pass@1 / pass@k / mean length of its
 * output model (teacher and student side by side for distill). */
void run_summary_print(const run_summary *s, FILE *out);

#endif
