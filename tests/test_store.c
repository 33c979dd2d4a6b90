/* Tests for core/store: create a run store, write a run's stages, metrics, rollouts and
 * checkpoints, reopen and query them; schema migration from an empty database
 * (user_version 0) and refusal of a newer one (99); a reader on its own connection
 * while a writer commits steps (WAL); bad calls and bad files. */
#include "core/store.h"

#include <dirent.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness.h"

static char tmpdir[1024];

static const char *tmp_path(const char *name) {
    static char buf[8][2048];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 2048, "%s/%s", tmpdir, name);
    return p;
}

/* A value every test can recompute: metric m at step t. */
static double metric_value(int m, int64_t step) { return (m + 1) * 0.5 + step * 0.125 - (step % 3) * 1.5; }

static const char *const metric_names[] = {"reward/mean", "loss", "completion_length"};

static int pragma_int(const char *path, const char *pragma) {
    sqlite3 *db = NULL;
    int value = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, pragma, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            value = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return value;
}

static char *pragma_text(const char *path, const char *pragma) {
    sqlite3 *db = NULL;
    char *value = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, pragma, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            value = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return value;
}

typedef struct {
    int count, bad, stage_seen[4];
    int metric;
    int64_t last_step;
} series_check;

static int check_point(void *ctx, int stage, int64_t step, double value) {
    series_check *c = ctx;
    if (stage >= 0 && stage < 4) c->stage_seen[stage]++;
    int64_t global = stage * 100 + step;
    if (c->count > 0 && global <= c->last_step) c->bad++; /* ordered by stage, then step */
    c->last_step = global;
    if (value != metric_value(c->metric, global)) c->bad++;
    c->count++;
    return 0;
}

typedef struct {
    int count, bad;
} rollout_check;

static int check_rollout(void *ctx, const store_rollout *r) {
    rollout_check *c = ctx;
    char want_completion[64];
    snprintf(want_completion, sizeof want_completion, "<think>%d</think><answer>%lld</answer>", r->sample_idx,
             (long long)r->step);
    if (!r->completion || strcmp(r->completion, want_completion) != 0) c->bad++;
    if (r->sample_idx != c->count) c->bad++;
    if (r->reward != (r->sample_idx % 2 ? 1.0 : 0.0)) c->bad++;
    if (!r->verdict || strcmp(r->verdict, r->sample_idx % 2 ? "correct" : "wrong") != 0) c->bad++;
    if (r->length != 10 + r->sample_idx) c->bad++;
    if (r->prompt_id && strcmp(r->prompt_id, "p7") != 0) c->bad++;
    c->count++;
    return 0;
}

typedef struct {
    int count, bad;
} stage_check;

static int check_stage(void *ctx, const store_stage *st) {
    stage_check *c = ctx;
    if (st->idx != c->count) c->bad++;
    if (st->idx == 0 && (strcmp(st->name, "sft") || strcmp(st->kind, "sft") || st->steps != 10 ||
                         !st->summary_json || !strstr(st->summary_json, "pass@1") || isnan(st->finished_at) ||
                         st->finished_at < st->started_at))
        c->bad++;
    if (st->idx == 1 && (strcmp(st->name, "rl") || strcmp(st->kind, "grpo") || st->steps != -1 ||
                         st->summary_json || !isnan(st->finished_at)))
        c->bad++;
    c->count++;
    return 0;
}

static int collect_names(void *ctx, const char *name) {
    char *buf = ctx;
    strcat(buf, name);
    strcat(buf, ",");
    return 0;
}

static void put_steps(store *s, int64_t run_id, int stage, int64_t first, int64_t last) {
    for (int64_t step = first; step <= last; step++) {
        double values[3];
        for (int m = 0; m < 3; m++) values[m] = metric_value(m, stage * 100 + step);
        CHECK_OK(store_put_metrics(s, run_id, stage, step, 3, metric_names, values));
    }
}

static void test_create_write_reopen(void) {
    const char *db_path = tmp_path("runs/demo/run.db");
    store *s = NULL;
    CHECK_OK(store_open(db_path, &s));
    if (!s) return;
    CHECK_STR(db_path, store_path(s));
    CHECK_INT(STORE_SCHEMA_VERSION, pragma_int(db_path, "PRAGMA user_version"));
    char *mode = pragma_text(db_path, "PRAGMA journal_mode");
    CHECK_STR("wal", mode);
    free(mode);

    int64_t run_id = -1, other = -1;
    CHECK_OK(store_begin_run(s, "demo", "model:\n  preset: tiny\n", &run_id));
    CHECK_OK(store_begin_run(s, "other", NULL, &other));
    CHECK(run_id > 0 && other > run_id);
    CHECK_OK(store_begin_stage(s, run_id, 0, "sft", "sft"));
    put_steps(s, run_id, 0, 0, 9);
    CHECK_OK(store_end_stage(s, run_id, 0, 10, "{\"pass@1\": 0.25}"));
    CHECK_OK(store_begin_stage(s, run_id, 1, "rl", "grpo"));
    put_steps(s, run_id, 1, 0, 4);

    /* one group of G = 4 rollouts at step 4 in one call, plus one at step 3 alone */
    store_rollout rows[4];
    char completions[4][64];
    for (int i = 0; i < 4; i++) {
        snprintf(completions[i], sizeof completions[i], "<think>%d</think><answer>4</answer>", i);
        rows[i] = (store_rollout){.run_id = run_id, .stage = 1, .step = 4, .prompt_id = "p7", .sample_idx = i,
                                  .prompt = "What is 2+2?", .completion = completions[i], .reward = i % 2 ? 1.0 : 0.0,
                                  .rewards_json = "{\"accuracy\": 1}", .verdict = i % 2 ? "correct" : "wrong",
                                  .advantage = i % 2 ? 1.0 : -1.0, .length = 10 + i};
    }
    CHECK_OK(store_put_rollouts(s, 4, rows));
    store_rollout single = rows[0];
    single.step = 3;
    single.completion = "<think>0</think><answer>3</answer>";
    single.prompt_id = NULL;
    CHECK_OK(store_put_rollout(s, &single));
    CHECK_OK(store_add_checkpoint(s, run_id, 2, "runs/demo/ckpt/step-2"));
    CHECK_OK(store_add_checkpoint(s, run_id, 4, "runs/demo/ckpt/step-4"));
    CHECK_OK(store_set_run_status(s, run_id, "running"));
    store_close(s);

    /* reopen (no migration now) and read everything back */
    s = NULL;
    CHECK_OK(store_open(tmp_path("runs/demo"), &s)); /* a directory means DIR/run.db */
    if (!s) return;
    int64_t found = -1;
    CHECK_OK(store_find_run(s, "demo", &found));
    CHECK_INT(run_id, found);
    CHECK_INT(GRPO_ERR_NOTFOUND, store_find_run(s, "nobody", &found));

    for (int m = 0; m < 3; m++) {
        series_check c = {.metric = m};
        CHECK_OK(store_get_metric_series(s, run_id, metric_names[m], check_point, &c));
        CHECK_INT(15, c.count);
        CHECK_INT(0, c.bad);
        CHECK_INT(10, c.stage_seen[0]);
        CHECK_INT(5, c.stage_seen[1]);
    }
    int64_t *steps = NULL, n = 0;
    double *values = NULL;
    CHECK_OK(store_get_metric_arrays(s, run_id, "loss", &steps, &values, &n));
    CHECK_INT(15, n);
    if (n == 15) {
        CHECK_INT(9, steps[9]);
        CHECK_INT(0, steps[10]);
        CHECK(values[12] == metric_value(1, 102));
    }
    free(steps);
    free(values);
    CHECK_OK(store_get_metric_arrays(s, run_id, "no such metric", &steps, &values, &n));
    CHECK(n == 0 && steps == NULL && values == NULL);

    char names[256] = "";
    CHECK_OK(store_list_metric_names(s, run_id, collect_names, names));
    CHECK_STR("completion_length,loss,reward/mean,", names);

    int64_t latest = -2;
    CHECK_OK(store_latest_step(s, run_id, &latest));
    CHECK_INT(9, latest);
    CHECK_OK(store_latest_step(s, other, &latest));
    CHECK_INT(-1, latest);

    char *ckpt = NULL;
    int64_t ckpt_step = -1;
    CHECK_OK(store_latest_checkpoint(s, run_id, &ckpt_step, &ckpt));
    CHECK_INT(4, ckpt_step);
    CHECK_STR("runs/demo/ckpt/step-4", ckpt);
    free(ckpt);
    CHECK_INT(GRPO_ERR_NOTFOUND, store_latest_checkpoint(s, other, &ckpt_step, &ckpt));
    CHECK(ckpt == NULL);

    rollout_check rc = {0};
    CHECK_OK(store_get_rollouts(s, run_id, -1, check_rollout, &rc)); /* latest step: 4 */
    CHECK_INT(4, rc.count);
    CHECK_INT(0, rc.bad);
    rc = (rollout_check){0};
    CHECK_OK(store_get_rollouts(s, run_id, 3, check_rollout, &rc));
    CHECK_INT(1, rc.count);
    CHECK_INT(0, rc.bad);
    rc = (rollout_check){0};
    CHECK_OK(store_get_rollouts(s, other, -1, check_rollout, &rc));
    CHECK_INT(0, rc.count);

    stage_check sc = {0};
    CHECK_OK(store_get_stages(s, run_id, check_stage, &sc));
    CHECK_INT(2, sc.count);
    CHECK_INT(0, sc.bad);

    /* a resumed run redoes steps 3..4 of stage 1: values replaced, not duplicated; beginning
     * the stage again keeps it once */
    CHECK_OK(store_begin_stage(s, run_id, 1, "rl", "grpo"));
    const char *loss_name[] = {"loss"};
    double nan_value[] = {NAN};
    CHECK_OK(store_put_metrics(s, run_id, 1, 4, 1, loss_name, nan_value));
    CHECK_OK(store_get_metric_arrays(s, run_id, "loss", &steps, &values, &n));
    CHECK_INT(15, n);
    if (n == 15) CHECK(isnan(values[14]));
    free(steps);
    free(values);
    sc = (stage_check){0};
    CHECK_OK(store_get_stages(s, run_id, check_stage, &sc));
    CHECK_INT(2, sc.count);

    /* a transaction the abort hook flushes */
    CHECK_OK(store_transaction_begin(s));
    CHECK_FAILS(store_transaction_begin(s), "already open");
    put_steps(s, run_id, 1, 5, 6);
    store_abort_hook(s);
    CHECK_FAILS(store_transaction_commit(s), "no store transaction");
    CHECK_OK(store_latest_step(s, run_id, &latest));
    CHECK_INT(9, latest); /* stage 0 ran to 9; stage 1 is at 6 */
    CHECK_INT(3, pragma_int(db_path, "SELECT count(*) FROM metrics WHERE stage = 1 AND step = 6"));

    /* bad calls name what is wrong */
    CHECK_FAILS(store_set_run_status(s, 999, "finished"), "no run with id 999");
    CHECK_FAILS(store_end_stage(s, run_id, 7, 1, NULL), "stage 7");
    const char *null_name[] = {NULL};
    double one[] = {1};
    CHECK_FAILS(store_put_metrics(s, run_id, 0, 0, 1, null_name, one), "no name");
    CHECK_FAILS(store_put_metrics(s, run_id, 0, 0, -1, NULL, NULL), "store_put_metrics");
    CHECK_FAILS(store_begin_run(s, NULL, NULL, &found), "name");
    CHECK_OK(store_set_run_status(s, run_id, "finished"));
    store_close(s);

    /* read-only handle: sees the data, writes fail */
    s = NULL;
    CHECK_OK(store_open_readonly(db_path, &s));
    if (s) {
        CHECK_OK(store_latest_step(s, run_id, &latest));
        CHECK_INT(9, latest);
        int64_t id;
        CHECK_FAILS(store_begin_run(s, "x", NULL, &id), "readonly");
        store_close(s);
    }
    CHECK_INT(1, pragma_int(db_path, "SELECT count(*) FROM runs WHERE name = 'demo' AND status = 'finished'"));
    CHECK_INT(1, pragma_int(db_path, "SELECT count(*) FROM runs WHERE name = 'demo' AND config_yaml LIKE '%tiny%'"));
    store_close(NULL);
}

static void make_db_with_version(const char *path, int version) {
    sqlite3 *db = NULL;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
    if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fprintf(stderr, "cannot make %s: %s\n", path, sqlite3_errmsg(db));
    sqlite3_close(db);
}

static void test_versions(void) {
    /* an empty database (version 0) is migrated to the current schema */
    const char *empty = tmp_path("empty.db");
    make_db_with_version(empty, 0);
    CHECK_INT(0, pragma_int(empty, "PRAGMA user_version"));
    store *s = NULL;
    CHECK_OK(store_open(empty, &s));
    CHECK_INT(STORE_SCHEMA_VERSION, pragma_int(empty, "PRAGMA user_version"));
    CHECK_INT(5, pragma_int(empty, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                                   "('runs', 'stages', 'metrics', 'checkpoints', 'rollouts')"));
    CHECK_INT(1, pragma_int(empty, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'metrics'"));
    store_close(s);

    /* read-only refuses an unmigrated one */
    const char *zero = tmp_path("zero.db");
    make_db_with_version(zero, 0);
    s = (store *)1;
    CHECK_FAILS(store_open_readonly(zero, &s), "schema version 0");
    CHECK(s == NULL);

    /* a newer database is refused and left alone */
    const char *newer = tmp_path("newer.db");
    make_db_with_version(newer, 99);
    s = (store *)1;
    CHECK_FAILS(store_open(newer, &s), "schema version 99 is newer than this build knows");
    CHECK(s == NULL);
    CHECK_FAILS(store_open_readonly(newer, &s), "99");
    CHECK_INT(99, pragma_int(newer, "PRAGMA user_version"));
    CHECK_INT(0, pragma_int(newer, "SELECT count(*) FROM sqlite_master"));

    /* not a database at all */
    const char *junk = tmp_path("junk.db");
    FILE *fp = fopen(junk, "wb");
    if (fp) {
        for (int i = 0; i < 200; i++) fputs("this is not an sqlite file ", fp);
        fclose(fp);
    }
    CHECK_FAILS(store_open(junk, &s), "junk.db");
    CHECK(s == NULL);
    CHECK_FAILS(store_open_readonly(tmp_path("missing.db"), &s), "missing.db");
    CHECK_FAILS(store_open("/proc/grpo-no-such/run.db", &s), "/proc/grpo-no-such");
}

/* ---- a reader on its own connection while a writer commits (WAL) ---- */

enum { WRITER_STEPS = 150 };

typedef struct {
    const char *path;
    int64_t run_id;
    int failures;
} writer_args;

static void *writer_thread(void *arg) {
    writer_args *w = arg;
    store *s = NULL;
    if (store_open(w->path, &s) != GRPO_OK) {
        w->failures++;
        return NULL;
    }
    for (int64_t step = 0; step < WRITER_STEPS; step++) {
        double values[3];
        for (int m = 0; m < 3; m++) values[m] = metric_value(m, step);
        if (store_put_metrics(s, w->run_id, 0, step, 3, metric_names, values) != GRPO_OK) w->failures++;
        usleep(200); /* let the reader see states in between */
    }
    store_close(s);
    return NULL;
}

static void test_concurrent_reader(void) {
    const char *path = tmp_path("concurrent/run.db");
    store *writer = NULL, *reader = NULL;
    CHECK_OK(store_open(path, &writer));
    if (!writer) return;
    int64_t run_id;
    CHECK_OK(store_begin_run(writer, "concurrent", NULL, &run_id));
    CHECK_OK(store_open_readonly(path, &reader));
    if (!reader) {
        store_close(writer);
        return;
    }

    /* a writer's open transaction neither blocks the reader nor shows to it */
    CHECK_OK(store_transaction_begin(writer));
    put_steps(writer, run_id, 0, 0, 4);
    int64_t latest = -2;
    CHECK_OK(store_latest_step(reader, run_id, &latest));
    CHECK_INT(-1, latest);
    CHECK_OK(store_transaction_commit(writer));
    CHECK_OK(store_latest_step(reader, run_id, &latest));
    CHECK_INT(4, latest);
    store_close(writer);

    /* a writer thread commits step after step; every read succeeds and never goes back */
    writer_args args = {.path = path, .run_id = run_id};
    pthread_t thread;
    pthread_create(&thread, NULL, writer_thread, &args);
    int reads = 0, read_failures = 0, went_back = 0, states_between = 0;
    int64_t last = -1;
    for (int i = 0; i < 400 && last < WRITER_STEPS - 1; i++) {
        int64_t *steps = NULL, n = 0;
        double *values = NULL;
        if (store_get_metric_arrays(reader, run_id, "loss", &steps, &values, &n) != GRPO_OK) {
            read_failures++;
            fprintf(stderr, "read failed: %s\n", grpo_error_message());
        } else {
            reads++;
            int64_t top = n ? steps[n - 1] : -1;
            if (top < last || n != top + 1) went_back++;
            if (top > 4 && top < WRITER_STEPS - 1) states_between++;
            for (int64_t k = 0; k < n; k++)
                if (values[k] != metric_value(1, steps[k])) went_back++;
            last = top;
        }
        free(steps);
        free(values);
        usleep(500);
    }
    pthread_join(thread, NULL);
    CHECK_INT(0, args.failures);
    CHECK_INT(0, read_failures);
    CHECK_INT(0, went_back);
    CHECK(reads > 0);
    printf("concurrent: %d reads, %d of them while the writer was part-way\n", reads, states_between);
    CHECK_OK(store_latest_step(reader, run_id, &latest));
    CHECK_INT(WRITER_STEPS - 1, latest);
    store_close(reader);
}

static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        remove_tree(child);
    }
    closedir(d);
    rmdir(path);
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/test_store.XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_create_write_reopen();
    test_versions();
    test_concurrent_reader();
    remove_tree(tmpdir);
    TEST_MAIN_END();
}
