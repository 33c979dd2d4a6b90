/* Reads from the run store for reports, `grpo inspect` and resuming: metric series,
 * metric names, latest step and checkpoint, rollouts of a step, stages. Each query
 * resets its statement when done so no read transaction outlives the call. */
#include "core/store_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

static double column_double_or_nan(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static const char *column_text(sqlite3_stmt *st, int i) { return (const char *)sqlite3_column_text(st, i); }

/* Steps a one-row query; *has_value is 0 when there is no row or the value is NULL. */
static grpo_status single_int64(store *s, sqlite3_stmt *st, int64_t *value, int *has_value) {
    int row;
    GRPO_TRY(store_step(s, st, &row));
    *has_value = row && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (*has_value) *value = sqlite3_column_int64(st, 0);
    return GRPO_OK;
}

grpo_status store_find_run(store *s, const char *name, int64_t *run_id) {
    if (!name) return grpo_fail(GRPO_ERR_INVALID, "store_find_run: no name given");
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_FIND_RUN, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC));
    int found = 0;
    grpo_status status = single_int64(s, st, run_id, &found);
    sqlite3_reset(st);
    GRPO_TRY(status);
    if (!found) return grpo_fail(GRPO_ERR_NOTFOUND, "%s: no run named '%s'", s->path, name);
    return GRPO_OK;
}

static grpo_status metric_rows(store *s, sqlite3_stmt *st, store_metric_fn fn, void *ctx) {
    for (int row;;) {
        GRPO_TRY(store_step(s, st, &row));
        if (!row || fn(ctx, sqlite3_column_int(st, 0), sqlite3_column_int64(st, 1), column_double_or_nan(st, 2)))
            return GRPO_OK;
    }
}

grpo_status store_get_metric_series(store *s, int64_t run_id, const char *name, store_metric_fn fn, void *ctx) {
    if (!name || !fn) return grpo_fail(GRPO_ERR_INVALID, "store_get_metric_series: name and callback are required");
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_METRIC_SERIES, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC));
    grpo_status status = metric_rows(s, st, fn, ctx);
    sqlite3_reset(st);
    return status;
}

typedef struct {
    int64_t *steps;
    double *values;
    int64_t n, cap;
    int failed;
} series_arrays;

static int append_point(void *ctx, int stage, int64_t step, double value) {
    series_arrays *a = ctx;
    if (a->n == a->cap) {
        int64_t cap = a->cap ? 2 * a->cap : 256;
        int64_t *steps = realloc(a->steps, (size_t)cap * sizeof *steps);
        if (steps) a->steps = steps;
        double *values = steps ? realloc(a->values, (size_t)cap * sizeof *values) : NULL;
        if (values) a->values = values;
        if (!steps || !values) {
            a->failed = 1;
            return 1;
        }
        a->cap = cap;
    }
    a->steps[a->n] = step;
    a->values[a->n] = value;
    a->n++;
    return 0;
}

grpo_status store_get_metric_arrays(store *s, int64_t run_id, const char *name, int64_t **steps, double **values,
                                    int64_t *n) {
    *steps = NULL;
    *values = NULL;
    *n = 0;
    series_arrays a = {0};
    grpo_status status = store_get_metric_series(s, run_id, name, append_point, &a);
    if (status == GRPO_OK && a.failed) status = grpo_fail(GRPO_ERR_NOMEM, "out of memory reading metric '%s'", name);
    if (status != GRPO_OK || a.n == 0) {
        free(a.steps);
        free(a.values);
        return status;
    }
    *steps = a.steps;
    *values = a.values;
    *n = a.n;
    return GRPO_OK;
}

static grpo_status name_rows(store *s, sqlite3_stmt *st, store_name_fn fn, void *ctx) {
    for (int row;;) {
        GRPO_TRY(store_step(s, st, &row));
        if (!row || fn(ctx, column_text(st, 0))) return GRPO_OK;
    }
}

grpo_status store_list_metric_names(store *s, int64_t run_id, store_name_fn fn, void *ctx) {
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_METRIC_NAMES, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
    grpo_status status = name_rows(s, st, fn, ctx);
    sqlite3_reset(st);
    return status;
}

grpo_status store_latest_step(store *s, int64_t run_id, int64_t *step) {
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_LATEST_STEP, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
    int found = 0;
    grpo_status status = single_int64(s, st, step, &found);
    sqlite3_reset(st);
    if (!found) *step = -1;
    return status;
}

static grpo_status checkpoint_row(store *s, sqlite3_stmt *st, int64_t run_id, int64_t *step, char **path) {
    int row;
    GRPO_TRY(store_step(s, st, &row));
    if (!row) return grpo_fail(GRPO_ERR_NOTFOUND, "%s: run %lld has no checkpoint", s->path, (long long)run_id);
    *step = sqlite3_column_int64(st, 0);
    const char *text = column_text(st, 1);
    *path = strdup(text ? text : "");
    if (!*path) return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    return GRPO_OK;
}

grpo_status store_latest_checkpoint(store *s, int64_t run_id, int64_t *step, char **path) {
    *path = NULL;
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_LATEST_CHECKPOINT, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
    grpo_status status = checkpoint_row(s, st, run_id, step, path);
    sqlite3_reset(st);
    return status;
}

static grpo_status rollout_rows(store *s, sqlite3_stmt *st, int64_t run_id, store_rollout_fn fn, void *ctx) {
    for (int row;;) {
        GRPO_TRY(store_step(s, st, &row));
        if (!row) return GRPO_OK;
        store_rollout r = {
            .run_id = run_id,
            .stage = sqlite3_column_int(st, 0),
            .step = sqlite3_column_int64(st, 1),
            .prompt_id = column_text(st, 2),
            .sample_idx = sqlite3_column_int(st, 3),
            .prompt = column_text(st, 4),
            .completion = column_text(st, 5),
            .reward = column_double_or_nan(st, 6),
            .rewards_json = column_text(st, 7),
            .verdict = column_text(st, 8),
            .advantage = column_double_or_nan(st, 9),
            .length = sqlite3_column_int64(st, 10),
        };
        if (fn(ctx, &r)) return GRPO_OK;
    }
}

grpo_status store_get_rollouts(store *s, int64_t run_id, int64_t step, store_rollout_fn fn, void *ctx) {
    if (!fn) return grpo_fail(GRPO_ERR_INVALID, "store_get_rollouts: no callback");
    sqlite3_stmt *st;
    if (step < 0) {
        GRPO_TRY(store_stmt(s, STMT_LATEST_ROLLOUT_STEP, &st));
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
        int found = 0;
        grpo_status status = single_int64(s, st, &step, &found);
        sqlite3_reset(st);
        GRPO_TRY(status);
        if (!found) return GRPO_OK;
    }
    GRPO_TRY(store_stmt(s, STMT_GET_ROLLOUTS, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 2, step));
    grpo_status status = rollout_rows(s, st, run_id, fn, ctx);
    sqlite3_reset(st);
    return status;
}

static grpo_status stage_rows(store *s, sqlite3_stmt *st, store_stage_fn fn, void *ctx) {
    for (int has_row;;) {
        GRPO_TRY(store_step(s, st, &has_row));
        if (!has_row) return GRPO_OK;
        store_stage row = {
            .idx = sqlite3_column_int(st, 0),
            .name = column_text(st, 1),
            .kind = column_text(st, 2),
            .started_at = column_double_or_nan(st, 3),
            .finished_at = column_double_or_nan(st, 4),
            .steps = sqlite3_column_type(st, 5) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 5),
            .summary_json = column_text(st, 6),
        };
        if (fn(ctx, &row)) return GRPO_OK;
    }
}

grpo_status store_get_stages(store *s, int64_t run_id, store_stage_fn fn, void *ctx) {
    if (!fn) return grpo_fail(GRPO_ERR_INVALID, "store_get_stages: no callback");
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_GET_STAGES, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
    grpo_status status = stage_rows(s, st, fn, ctx);
    sqlite3_reset(st);
    return status;
}

grpo_status store_get_runs(store *s, store_run_fn fn, void *ctx) {
    if (!fn) return grpo_fail(GRPO_ERR_INVALID, "store_get_runs: a callback is required");
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_GET_RUNS, &st));
    grpo_status status = GRPO_OK;
    for (int row;;) {
        if ((status = store_step(s, st, &row)) != GRPO_OK || !row) break;
        store_run r = {.id = sqlite3_column_int64(st, 0), .name = column_text(st, 1),
                       .created_at = column_double_or_nan(st, 2), .config_yaml = column_text(st, 3),
                       .status = column_text(st, 4)};
        if (fn(ctx, &r)) break;
    }
    sqlite3_reset(st);
    return status;
}
