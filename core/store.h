/* The run store: one SQLite database per run directory (runs/NAME/run.db, WAL mode)
 * holding runs, stages, per-step metrics, sampled rollouts and checkpoints, so a
 * report or `grpo inspect` can read it while training writes. The schema is versioned
 * (PRAGMA user_version) and migrated forward on open; a newer database is refused.
 * A store handle belongs to one thread; other readers open their own handle. */
#ifndef GRPO_STORE_H
#define GRPO_STORE_H

#include <stdint.h>

#include "core/status.h"

#define STORE_SCHEMA_VERSION 1

typedef struct store store;

/* Opens (creating if needed) the database at `path`, e.g. "runs/NAME/run.db"; when
 * `path` is an existing directory the database is `path`/run.db. Missing parent
 * directories are created. Sets WAL, synchronous=NORMAL and a busy timeout, then
 * applies schema migrations up to STORE_SCHEMA_VERSION. On failure *out is NULL. */
grpo_status store_open(const char *path, store **out);
/* Opens an existing store for reading only (reports, inspect): nothing is created or
 * migrated; a database at another schema version is refused. */
grpo_status store_open_readonly(const char *path, store **out);
void store_close(store *s);   /* commits an open transaction; store_close(NULL) does nothing */
const char *store_path(const store *s);

/* ---- writing (each call is one transaction unless one is open, see below) ---- */

/* A new row in runs (status "running"); *run_id is its id. config_text may be NULL. */
grpo_status store_begin_run(store *s, const char *name, const char *config_text, int64_t *run_id);
/* The newest run with this name (to resume it); GRPO_ERR_NOTFOUND when there is none. */
grpo_status store_find_run(store *s, const char *name, int64_t *run_id);
/* e.g. "running", "finished", "failed", "killed". */
grpo_status store_set_run_status(store *s, int64_t run_id, const char *status);

/* Stage `idx` (0-based position in the config's stages:) starts now. Beginning a stage
 * that exists (a resumed run) keeps its original start time. */
grpo_status store_begin_stage(store *s, int64_t run_id, int idx, const char *name, const char *kind);
/* Records finish time, steps done and the stage summary (JSON text, may be NULL). */
grpo_status store_end_stage(store *s, int64_t run_id, int idx, int64_t steps, const char *summary_json);

/* n metrics of one step, in one transaction. A (run, stage, step, name) written again
 * replaces the earlier value (a resumed run redoing steps). NaN is stored as NULL and
 * read back as NaN. */
grpo_status store_put_metrics(store *s, int64_t run_id, int stage, int64_t step, int n, const char *const *names,
                              const double *values);

/* One sampled completion and its scoring. Strings may be NULL (stored as NULL). */
typedef struct {
    int64_t run_id;
    int stage;
    int64_t step;
    const char *prompt_id;
    int sample_idx;          /* 0..num_generations-1 within the prompt's group */
    const char *prompt;
    const char *completion;
    double reward;
    const char *rewards_json; /* the reward's components, e.g. {"accuracy": 1, "format": 0.5} */
    const char *verdict;      /* "correct", "wrong", "no_answer", a code status, ... */
    double advantage;
    int64_t length;           /* completion length in tokens */
} store_rollout;

grpo_status store_put_rollout(store *s, const store_rollout *r);
/* n rollouts in one transaction. */
grpo_status store_put_rollouts(store *s, int n, const store_rollout *r);
grpo_status store_add_checkpoint(store *s, int64_t run_id, int64_t step, const char *path);

/* Groups several writes (a step's metrics and rollouts) into one transaction. */
grpo_status store_transaction_begin(store *s);
grpo_status store_transaction_commit(store *s);
/* Commits an open transaction and checkpoints the WAL into the database. Call from the
 * abort hook (grpo_set_abort_hook(store_abort_hook, s)), never from a signal handler. */
grpo_status store_flush(store *s);
void store_abort_hook(void *store_ptr);

/* ---- reading ---- */

/* Calls fn for each value of metric `name` of the run, ordered by stage then step;
 * fn returning non-zero stops the walk early. */
typedef int (*store_metric_fn)(void *ctx, int stage, int64_t step, double value);
grpo_status store_get_metric_series(store *s, int64_t run_id, const char *name, store_metric_fn fn, void *ctx);
/* The same series as arrays (malloc'd, caller frees both; NULL when *n is 0). */
grpo_status store_get_metric_arrays(store *s, int64_t run_id, const char *name, int64_t **steps, double **values,
                                    int64_t *n);
/* The distinct metric names of a run, sorted. */
typedef int (*store_name_fn)(void *ctx, const char *name);
grpo_status store_list_metric_names(store *s, int64_t run_id, store_name_fn fn, void *ctx);
/* The largest step with a metric in the run; -1 when there is none. */
grpo_status store_latest_step(store *s, int64_t run_id, int64_t *step);
/* The checkpoint with the largest step: its step and path (*path malloc'd, caller frees).
 * GRPO_ERR_NOTFOUND when the run has none. */
grpo_status store_latest_checkpoint(store *s, int64_t run_id, int64_t *step, char **path);

/* Rollouts of one step (step < 0: the latest step that has any; none at all is not an
 * error), in the order they were written. The strings in *r are valid only during the call. */
typedef int (*store_rollout_fn)(void *ctx, const store_rollout *r);
grpo_status store_get_rollouts(store *s, int64_t run_id, int64_t step, store_rollout_fn fn, void *ctx);

typedef struct {
    int idx;
    const char *name, *kind;
    double started_at, finished_at; /* unix seconds; finished_at is NaN while running */
    int64_t steps;                  /* -1 while running */
    const char *summary_json;       /* NULL while running */
} store_stage;
/* Stages of the run in index order; strings valid only during the call. */
typedef int (*store_stage_fn)(void *ctx, const store_stage *st);
grpo_status store_get_stages(store *s, int64_t run_id, store_stage_fn fn, void *ctx);

typedef struct {
    int64_t id;
    const char *name;
    double created_at;          /* unix seconds */
    const char *config_yaml;    /* the run's configuration as resolved (may be NULL) */
    const char *status;         /* "running", "finished", "failed", ... */
} store_run;
/* Every run in the store in id order; strings valid only during the call. */
typedef int (*store_run_fn)(void *ctx, const store_run *run);
grpo_status store_get_runs(store *s, store_run_fn fn, void *ctx);

#endif
