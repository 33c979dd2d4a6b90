/* What `grpo report` shows, gathered from the run store (core/store.h) and the run's
 * summary.json: the newest run's config and status, its stages, and every metric as one
 * series per stage. A killed run's store loads as far as it was written. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "core/store.h"
#include "tools/report.h"

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* ---- the newest run row ---- */
typedef struct {
    report_run *r;
    int64_t id;
    int found, nomem;
} run_pick;

static int on_run(void *ctx, const store_run *run) {
    run_pick *p = ctx;   /* runs come in id order: the last one wins */
    report_run *r = p->r;
    free(r->name);
    free(r->status);
    free(r->config_yaml);
    r->name = dup_or_null(run->name);
    r->status = dup_or_null(run->status);
    r->config_yaml = dup_or_null(run->config_yaml);
    if ((run->name && !r->name) || (run->status && !r->status) || (run->config_yaml && !r->config_yaml)) p->nomem = 1;
    p->id = run->id;
    p->found = 1;
    return 0;
}

/* ---- stages ---- */
static int on_stage(void *ctx, const store_stage *st) {
    report_run *r = ctx;
    report_stage *grown = realloc(r->stages, (size_t)(r->n_stages + 1) * sizeof *grown);
    if (!grown) return 1;
    r->stages = grown;
    report_stage *s = &r->stages[r->n_stages];
    s->idx = st->idx;
    s->name = dup_or_null(st->name);
    s->kind = dup_or_null(st->kind);
    s->started_at = st->started_at;
    s->finished_at = st->finished_at;
    s->steps = st->steps;
    r->n_stages++;
    if (st->idx > r->max_stage) r->max_stage = st->idx;
    return !s->name || !s->kind;
}

/* ---- metric names, then each series split by stage ---- */
typedef struct {
    char **names;
    int n, cap, nomem;
} name_list;

static int on_name(void *ctx, const char *name) {
    name_list *l = ctx;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **grown = realloc(l->names, (size_t)cap * sizeof *grown);
        if (!grown) { l->nomem = 1; return 1; }
        l->names = grown;
        l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(name))) { l->nomem = 1; return 1; }
    l->n++;
    return 0;
}

static grpo_status add_series(report_run *r, const char *name, int stage, int64_t n, const int64_t *steps,
                              const double *values) {
    report_series *grown = realloc(r->series, (size_t)(r->n_series + 1) * sizeof *grown);
    if (!grown) return grpo_fail(GRPO_ERR_NOMEM, "report: out of memory");
    r->series = grown;
    report_series *s = &r->series[r->n_series];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    s->stage = stage;
    s->n = n;
    s->steps = malloc((size_t)n * sizeof *s->steps);
    s->values = malloc((size_t)n * sizeof *s->values);
    r->n_series++;   /* counted now so report_run_free releases what was allocated */
    if (!s->name || !s->steps || !s->values) return grpo_fail(GRPO_ERR_NOMEM, "report: out of memory");
    memcpy(s->steps, steps, (size_t)n * sizeof *steps);
    memcpy(s->values, values, (size_t)n * sizeof *values);
    if (stage > r->max_stage) r->max_stage = stage;
    return GRPO_OK;
}

typedef struct {
    int n, cap;
    int *stage;
    int64_t *steps;
    double *values;
} series_rows;

static int on_value(void *ctx, int stage, int64_t step, double value) {
    series_rows *rows = ctx;
    if (rows->n == rows->cap) {
        int cap = rows->cap ? 2 * rows->cap : 256;
        int *st = realloc(rows->stage, (size_t)cap * sizeof *st);
        if (st) rows->stage = st;
        int64_t *sp = realloc(rows->steps, (size_t)cap * sizeof *sp);
        if (sp) rows->steps = sp;
        double *v = realloc(rows->values, (size_t)cap * sizeof *v);
        if (v) rows->values = v;
        if (!st || !sp || !v) return 1;
        rows->cap = cap;
    }
    rows->stage[rows->n] = stage;
    rows->steps[rows->n] = step;
    rows->values[rows->n++] = value;
    return 0;
}

static grpo_status load_metric(store *db, int64_t run_id, report_run *r, const char *name) {
    series_rows rows = {0};
    grpo_status s = store_get_metric_series(db, run_id, name, on_value, &rows);
    /* rows come ordered by stage then step: cut them into one series per stage */
    for (int i = 0; i < rows.n && !s;) {
        int j = i;
        while (j < rows.n && rows.stage[j] == rows.stage[i]) j++;
        s = add_series(r, name, rows.stage[i], j - i, rows.steps + i, rows.values + i);
        i = j;
    }
    free(rows.stage);
    free(rows.steps);
    free(rows.values);
    return s;
}

static grpo_status read_summary(const char *dir, report_run *r) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    if (!fs_exists(path)) return GRPO_OK;
    FILE *f = fopen(path, "rb");
    if (!f) return GRPO_OK;   /* unreadable: the page does without it */
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (64L << 20)) { fclose(f); return GRPO_OK; }
    r->summary_json = malloc((size_t)n + 1);
    if (!r->summary_json) { fclose(f); return grpo_fail(GRPO_ERR_NOMEM, "report: out of memory"); }
    size_t got = fread(r->summary_json, 1, (size_t)n, f);
    r->summary_json[got] = 0;
    fclose(f);
    return GRPO_OK;
}

grpo_status report_run_load(const char *path, report_run **out) {
    *out = NULL;
    report_run *r = calloc(1, sizeof *r);
    if (!r || !(r->label = strdup(path))) {
        free(r);
        return grpo_fail(GRPO_ERR_NOMEM, "report: out of memory");
    }
    r->max_stage = -1;
    /* the run directory: PATH itself, or the folder of PATH/run.db */
    char dir[PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof dir, "%s", path);
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    store *db = NULL;
    grpo_status s = store_open_readonly(path, &db);
    run_pick pick = {.r = r};
    if (!s) s = store_get_runs(db, on_run, &pick);
    if (!s && pick.nomem) s = grpo_fail(GRPO_ERR_NOMEM, "report: out of memory");
    if (!s && !pick.found) s = grpo_fail(GRPO_ERR_NOTFOUND, "%s: the run store holds no run", store_path(db));
    if (!s) s = store_get_stages(db, pick.id, on_stage, r);
    name_list names = {0};
    if (!s) s = store_list_metric_names(db, pick.id, on_name, &names);
    if (!s && names.nomem) s = grpo_fail(GRPO_ERR_NOMEM, "report: out of memory");
    for (int i = 0; i < names.n && !s; i++) s = load_metric(db, pick.id, r, names.names[i]);
    for (int i = 0; i < names.n; i++) free(names.names[i]);
    free(names.names);
    store_close(db);
    if (!s) s = read_summary(dir, r);
    if (s) {
        report_run_free(r);
        return s;
    }
    *out = r;
    return GRPO_OK;
}

void report_run_free(report_run *r) {
    if (!r) return;
    for (int i = 0; i < r->n_stages; i++) {
        free(r->stages[i].name);
        free(r->stages[i].kind);
    }
    for (int i = 0; i < r->n_series; i++) {
        free(r->series[i].name);
        free(r->series[i].steps);
        free(r->series[i].values);
    }
    free(r->stages);
    free(r->series);
    free(r->label);
    free(r->name);
    free(r->status);
    free(r->config_yaml);
    free(r->summary_json);
    free(r);
}

const report_series *report_run_find(const report_run *r, const char *name, int stage) {
    for (int i = 0; i < r->n_series; i++)
        if (r->series[i].stage == stage && !strcmp(r->series[i].name, name)) return &r->series[i];
    return NULL;
}

const report_stage *report_run_stage(const report_run *r, int idx) {
    for (int i = 0; i < r->n_stages; i++)
        if (r->stages[i].idx == idx) return &r->stages[i];
    return NULL;
}
