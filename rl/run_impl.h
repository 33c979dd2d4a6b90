/* Shared by the files of `grpo run`: run.c (the pipeline: models between stages, the
 * run store, resume), run_stages.c (what each stage kind does) and run_summary.c
 * (summary.json, the store's stage summaries and the printed table). */
#ifndef GRPO_RUN_IMPL_H
#define GRPO_RUN_IMPL_H

#include <jansson.h>
#include <stddef.h>

#include "core/store.h"
#include "model/lm.h"
#include "model/tokenizer.h"
#include "rl/run.h"

/* What every stage executor needs from the run around it. */
typedef struct {
    const run_config *c;
    const char *run_dir;
    const char *tok_dir;          /* RUN_DIR/tokenizer: the run's tokenizer files */
    const tokenizer *tok;         /* the run's tokenizer (every model of the run shares it) */
    backend *be;
    store *db;                    /* metrics go here (may be NULL) */
    int64_t run_id;
    int stage;                    /* the stage running now */
    int quiet;
} run_ctx;

/* The path of a dataset's JSONL, generating it into RUN_DIR/data/NAME.jsonl first when
 * it is a generated one; a from_stage dataset is RUN_DIR/data/STAGE.jsonl. */
grpo_status run_dataset_path(const run_ctx *r, const char *name, char *path, size_t size);
/* RUN_DIR/data/STAGE.jsonl: what a rejection or distill stage writes. */
void run_stage_data_path(const run_ctx *r, const char *stage, char *path, size_t size);

/* The stage kinds. `model` is the stage's input model (gradients allocated for the kinds
 * that train it); each fills the fields of *out that apply. */
grpo_status run_stage_sft(const run_ctx *r, int index, lm *model, run_stage_summary *out);
grpo_status run_stage_grpo(const run_ctx *r, int index, lm *model, run_stage_summary *out);
/* Samples the input model on train_dataset's prompts, verifies, keeps, and writes
 * RUN_DIR/data/STAGE.jsonl (+ .stats.json). */
grpo_status run_stage_rejection(const run_ctx *r, int index, lm *model, run_stage_summary *out);
/* Rejection sampling with `teacher` into RUN_DIR/data/STAGE.jsonl, then SFT of `student`
 * on what was kept (with logit KD from the teacher when kd_alpha > 0: the tokenizers must
 * be the same), then heldout_dataset on the student into out->heldout. student_tok (and
 * its directory): the student's own tokenizer, NULL = the run's. */
grpo_status run_stage_distill(const run_ctx *r, int index, lm *teacher, lm *student, const tokenizer *student_tok,
                              const char *student_tok_dir, run_stage_summary *out);
/* Held-out evaluation by sampling (pass@1, pass@k, maj@k, mean length) of `model` on the
 * problems of `dataset` with the stage's eval settings (its rewards decide correctness;
 * accuracy when it has none). */
grpo_status run_evaluate(const run_ctx *r, const stage_section *st, const char *dataset, lm *model, run_eval *out);

/* The metrics and rollouts sinks trainers report to (ctx: a run_ctx). */
void run_put_metrics(void *ctx, int step, int n, const char *const *names, const double *values);
void run_put_rollouts(void *ctx, int step, int n, const store_rollout *rows);

/* A stage summary as JSON (for summary.json and the run store), and back. */
json_t *run_stage_summary_to_json(const run_stage_summary *st);
grpo_status run_stage_summary_from_json(const char *text, run_stage_summary *out);
/* Every number NAN, counts 0, strings empty. */
void run_stage_summary_clear(run_stage_summary *st);
/* Writes RUN_DIR/summary.json. */
grpo_status run_summary_write(const run_summary *sum);

#endif
