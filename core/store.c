/* The run store: opening runs/NAME/run.db (WAL), the versioned schema and its
 * migrations, and the writes the trainer makes (runs, stages, metrics, rollouts,
 * checkpoints). Reads live in store_query.c. Every sqlite3 call is checked. */
#include "core/store_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/check.h"
#include "core/log.h"

/* Schema migrations: migrations[v] takes a database from user_version v to v + 1.
 * Append new versions at the end; never edit a released one. Times are unix seconds. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL,"
    "  config_yaml TEXT, status TEXT NOT NULL);"
    "CREATE TABLE stages(run_id INTEGER NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,"
    "  started_at REAL, finished_at REAL, steps INTEGER, summary_json TEXT, PRIMARY KEY (run_id, idx));"
    "CREATE TABLE metrics(run_id INTEGER NOT NULL, stage INTEGER NOT NULL, step INTEGER NOT NULL,"
    "  name TEXT NOT NULL, value REAL);"
    "CREATE UNIQUE INDEX metrics_by_name ON metrics(run_id, name, stage, step);"
    "CREATE TABLE checkpoints(run_id INTEGER NOT NULL, step INTEGER NOT NULL, path TEXT NOT NULL,"
    "  created_at REAL NOT NULL);"
    "CREATE TABLE rollouts(run_id INTEGER NOT NULL, stage INTEGER NOT NULL, step INTEGER NOT NULL,"
    "  prompt_id TEXT, sample_idx INTEGER, prompt TEXT, completion TEXT, reward REAL, rewards_json TEXT,"
    "  verdict TEXT, advantage REAL, length INTEGER);"
    "CREATE INDEX rollouts_by_step ON rollouts(run_id, step);",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");

static const char *const statement_sql[STMT_COUNT] = {
    [STMT_INSERT_RUN] = "INSERT INTO runs(name, created_at, config_yaml, status) VALUES(?1, ?2, ?3, 'running')",
    [STMT_FIND_RUN] = "SELECT id FROM runs WHERE name = ?1 ORDER BY id DESC LIMIT 1",
    [STMT_SET_STATUS] = "UPDATE runs SET status = ?2 WHERE id = ?1",
    [STMT_BEGIN_STAGE] = "INSERT INTO stages(run_id, idx, name, kind, started_at) VALUES(?1, ?2, ?3, ?4, ?5)"
                         " ON CONFLICT(run_id, idx) DO UPDATE SET name = excluded.name, kind = excluded.kind",
    [STMT_END_STAGE] = "UPDATE stages SET finished_at = ?3, steps = ?4, summary_json = ?5"
                       " WHERE run_id = ?1 AND idx = ?2",
    [STMT_PUT_METRIC] = "INSERT OR REPLACE INTO metrics(run_id, stage, step, name, value) VALUES(?1, ?2, ?3, ?4, ?5)",
    [STMT_PUT_ROLLOUT] = "INSERT INTO rollouts(run_id, stage, step, prompt_id, sample_idx, prompt, completion,"
                         " reward, rewards_json, verdict, advantage, length)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [STMT_ADD_CHECKPOINT] = "INSERT INTO checkpoints(run_id, step, path, created_at) VALUES(?1, ?2, ?3, ?4)",
    [STMT_METRIC_SERIES] = "SELECT stage, step, value FROM metrics WHERE run_id = ?1 AND name = ?2"
                           " ORDER BY stage, step",
    [STMT_METRIC_NAMES] = "SELECT DISTINCT name FROM metrics WHERE run_id = ?1 ORDER BY name",
    [STMT_LATEST_STEP] = "SELECT max(step) FROM metrics WHERE run_id = ?1",
    [STMT_LATEST_CHECKPOINT] = "SELECT step, path FROM checkpoints WHERE run_id = ?1"
                               " ORDER BY step DESC, rowid DESC LIMIT 1",
    [STMT_LATEST_ROLLOUT_STEP] = "SELECT max(step) FROM rollouts WHERE run_id = ?1",
    [STMT_GET_ROLLOUTS] = "SELECT stage, step, prompt_id, sample_idx, prompt, completion, reward, rewards_json,"
                          " verdict, advantage, length FROM rollouts WHERE run_id = ?1 AND step = ?2 ORDER BY rowid",
    [STMT_GET_STAGES] = "SELECT idx, name, kind, started_at, finished_at, steps, summary_json FROM stages"
                        " WHERE run_id = ?1 ORDER BY idx",
    [STMT_GET_RUNS] = "SELECT id, name, created_at, config_yaml, status FROM runs ORDER BY id",
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

grpo_status store_stmt(store *s, store_stmt_id id, sqlite3_stmt **out) {
    GRPO_ASSERT(id >= 0 && id < STMT_COUNT);
    if (!s->stmts[id])
        GRPO_CHECK_SQLITE(s->db, sqlite3_prepare_v3(s->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                                    &s->stmts[id], NULL));
    sqlite3_reset(s->stmts[id]); /* returns the previous step's error, already reported */
    GRPO_CHECK_SQLITE(s->db, sqlite3_clear_bindings(s->stmts[id]));
    *out = s->stmts[id];
    return GRPO_OK;
}

grpo_status store_step(store *s, sqlite3_stmt *st, int *row) {
    int rc;
    GRPO_CHECK_SQLITE(s->db, rc = sqlite3_step(st));
    *row = rc == SQLITE_ROW;
    return GRPO_OK;
}

/* ---- opening ---- */

/* mkdir -p of the directory part of `path`. */
static grpo_status make_parent_dirs(const char *path) {
    char *dir = strdup(path);
    if (!dir) return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    char *slash = strrchr(dir, '/');
    grpo_status status = GRPO_OK;
    if (slash && slash != dir) {
        *slash = 0;
        for (char *p = dir + 1; status == GRPO_OK; p++) {
            if (*p != '/' && *p != 0) continue;
            char saved = *p;
            *p = 0;
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                status = grpo_fail(GRPO_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
            *p = saved;
            if (saved == 0) break;
        }
    }
    free(dir);
    return status;
}

/* The first text column of a one-row PRAGMA into buf ("" when there is no row). */
static grpo_status pragma_value(store *s, const char *sql, char *buf, size_t n) {
    sqlite3_stmt *st = NULL;
    GRPO_CHECK_SQLITE(s->db, sqlite3_prepare_v2(s->db, sql, -1, &st, NULL));
    int row = 0;
    grpo_status status = store_step(s, st, &row);
    const unsigned char *text = row ? sqlite3_column_text(st, 0) : NULL;
    snprintf(buf, n, "%s", text ? (const char *)text : "");
    sqlite3_finalize(st);
    return status;
}

static grpo_status read_user_version(store *s, int *version) {
    char buf[32];
    GRPO_TRY(pragma_value(s, "PRAGMA user_version", buf, sizeof buf));
    *version = atoi(buf);
    return GRPO_OK;
}

static grpo_status check_version_known(const store *s, int version) {
    if (version > STORE_SCHEMA_VERSION)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: run store schema version %d is newer than this build knows (%d); "
                         "open it with a newer grpo", s->path, version, STORE_SCHEMA_VERSION);
    return GRPO_OK;
}

static grpo_status commit(store *s) {
    GRPO_CHECK_SQLITE(s->db, sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL));
    return GRPO_OK;
}

static grpo_status apply_migrations_locked(store *s) {
    int version;
    GRPO_TRY(read_user_version(s, &version)); /* again, now that no one else can migrate */
    GRPO_TRY(check_version_known(s, version));
    for (int v = version; v < STORE_SCHEMA_VERSION; v++) {
        char sql[64];
        GRPO_CHECK_SQLITE(s->db, sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL));
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        GRPO_CHECK_SQLITE(s->db, sqlite3_exec(s->db, sql, NULL, NULL, NULL));
        log_debug("%s: run store migrated to schema version %d", s->path, v + 1);
    }
    return GRPO_OK;
}

static grpo_status migrate(store *s) {
    int version;
    GRPO_TRY(read_user_version(s, &version));
    GRPO_TRY(check_version_known(s, version));
    if (version == STORE_SCHEMA_VERSION) return GRPO_OK;
    GRPO_CHECK_SQLITE(s->db, sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
    grpo_status status = apply_migrations_locked(s);
    if (status == GRPO_OK && (status = commit(s)) == GRPO_OK) return GRPO_OK;
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* the first error is the one reported */
    return status;
}

/* Opens the connection (s->db is set even on failure; store_close releases it) and sets it up. */
static grpo_status configure(store *s) {
    int flags = s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    GRPO_CHECK_SQLITE(s->db, sqlite3_open_v2(s->path, &s->db, flags, NULL));
    GRPO_CHECK_SQLITE(s->db, sqlite3_extended_result_codes(s->db, 1));
    GRPO_CHECK_SQLITE(s->db, sqlite3_busy_timeout(s->db, 10000));
    int version;
    GRPO_TRY(read_user_version(s, &version)); /* also where a non-database file fails */
    if (s->readonly) {
        GRPO_TRY(check_version_known(s, version));
        if (version != STORE_SCHEMA_VERSION)
            return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: run store schema version %d, this build reads %d (open it "
                             "for writing once to migrate)", s->path, version, STORE_SCHEMA_VERSION);
        return GRPO_OK;
    }
    char mode[16];
    GRPO_TRY(pragma_value(s, "PRAGMA journal_mode = WAL", mode, sizeof mode));
    if (strcmp(mode, "wal") != 0)
        log_warn("%s: journal_mode is '%s', not WAL: readers may wait for the writer", s->path, mode);
    GRPO_CHECK_SQLITE(s->db, sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL));
    return migrate(s);
}

static grpo_status open_store(const char *path, int readonly, store **out) {
    *out = NULL;
    store *s = calloc(1, sizeof *s);
    if (!s) return grpo_fail(GRPO_ERR_NOMEM, "out of memory opening %s", path);
    s->readonly = readonly;
    struct stat st;
    size_t n = strlen(path) + sizeof "/run.db";
    s->path = malloc(n);
    if (!s->path) {
        free(s);
        return grpo_fail(GRPO_ERR_NOMEM, "out of memory opening %s", path);
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(s->path, n, "%s/run.db", path);
    else snprintf(s->path, n, "%s", path);

    grpo_status status = readonly ? GRPO_OK : make_parent_dirs(s->path);
    if (status == GRPO_OK) {
        status = configure(s);
        if (status != GRPO_OK && !strstr(grpo_error_message(), s->path)) grpo_error_prefix("%s", s->path);
    }
    if (status != GRPO_OK) {
        store_close(s);
        return status;
    }
    *out = s;
    return GRPO_OK;
}

grpo_status store_open(const char *path, store **out) { return open_store(path, 0, out); }
grpo_status store_open_readonly(const char *path, store **out) { return open_store(path, 1, out); }

const char *store_path(const store *s) { return s ? s->path : NULL; }

void store_close(store *s) {
    if (!s) return;
    if (s->in_transaction && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        log_error("%s: commit at close failed: %s", s->path, sqlite3_errmsg(s->db));
    for (int i = 0; i < STMT_COUNT; i++) sqlite3_finalize(s->stmts[i]);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        log_error("%s: closing the run store: %s", s->path, sqlite3_errmsg(s->db));
    free(s->path);
    free(s);
}

/* ---- transactions ---- */

grpo_status store_transaction_begin(store *s) {
    if (s->in_transaction) return grpo_fail(GRPO_ERR_INVALID, "%s: a store transaction is already open", s->path);
    GRPO_CHECK_SQLITE(s->db, sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
    s->in_transaction = 1;
    return GRPO_OK;
}

grpo_status store_transaction_commit(store *s) {
    if (!s->in_transaction) return grpo_fail(GRPO_ERR_INVALID, "%s: no store transaction is open", s->path);
    GRPO_TRY(commit(s));
    s->in_transaction = 0;
    return GRPO_OK;
}

/* A multi-row write runs in its own transaction unless the caller opened one. */
static grpo_status tx_enter(store *s, int *own) {
    *own = !s->in_transaction;
    if (*own) GRPO_CHECK_SQLITE(s->db, sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
    return GRPO_OK;
}

static grpo_status tx_leave(store *s, int own, grpo_status status) {
    if (!own) return status;
    if (status == GRPO_OK && (status = commit(s)) == GRPO_OK) return GRPO_OK;
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* the first error is the one reported */
    return status;
}

grpo_status store_flush(store *s) {
    if (!s || s->readonly) return GRPO_OK;
    if (s->in_transaction) GRPO_TRY(store_transaction_commit(s));
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) GRPO_CHECK_SQLITE(s->db, rc);
    return GRPO_OK;
}

void store_abort_hook(void *store_ptr) {
    if (store_flush(store_ptr) != GRPO_OK) log_error("run store flush: %s", grpo_error_message());
}

/* ---- writes ---- */

static int bind_text_or_null(sqlite3_stmt *st, int i, const char *text) {
    return text ? sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* Steps a write statement that must finish (SQLITE_DONE) and resets it. */
static grpo_status run_write(store *s, sqlite3_stmt *st) {
    GRPO_CHECK_SQLITE(s->db, sqlite3_step(st)); /* on failure store_stmt resets it at next use */
    sqlite3_reset(st);
    return GRPO_OK;
}

grpo_status store_begin_run(store *s, const char *name, const char *config_text, int64_t *run_id) {
    if (!name) return grpo_fail(GRPO_ERR_INVALID, "store_begin_run: a run needs a name");
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_INSERT_RUN, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_double(st, 2, now_seconds()));
    GRPO_CHECK_SQLITE(s->db, bind_text_or_null(st, 3, config_text));
    GRPO_TRY(run_write(s, st));
    *run_id = sqlite3_last_insert_rowid(s->db);
    return GRPO_OK;
}

grpo_status store_set_run_status(store *s, int64_t run_id, const char *status) {
    if (!status) return grpo_fail(GRPO_ERR_INVALID, "store_set_run_status: no status given");
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_SET_STATUS, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC));
    GRPO_TRY(run_write(s, st));
    if (sqlite3_changes(s->db) == 0)
        return grpo_fail(GRPO_ERR_NOTFOUND, "%s: no run with id %lld", s->path, (long long)run_id);
    return GRPO_OK;
}

grpo_status store_begin_stage(store *s, int64_t run_id, int idx, const char *name, const char *kind) {
    if (!name || !kind) return grpo_fail(GRPO_ERR_INVALID, "store_begin_stage: stage %d needs a name and a kind", idx);
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_BEGIN_STAGE, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int(st, 2, idx));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_double(st, 5, now_seconds()));
    return run_write(s, st);
}

grpo_status store_end_stage(store *s, int64_t run_id, int idx, int64_t steps, const char *summary_json) {
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_END_STAGE, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int(st, 2, idx));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_double(st, 3, now_seconds()));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 4, steps));
    GRPO_CHECK_SQLITE(s->db, bind_text_or_null(st, 5, summary_json));
    GRPO_TRY(run_write(s, st));
    if (sqlite3_changes(s->db) == 0)
        return grpo_fail(GRPO_ERR_NOTFOUND, "%s: stage %d of run %lld was never begun", s->path, idx,
                         (long long)run_id);
    return GRPO_OK;
}

static grpo_status put_metric_rows(store *s, int64_t run_id, int stage, int64_t step, int n,
                                   const char *const *names, const double *values) {
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_PUT_METRIC, &st));
    for (int i = 0; i < n; i++) {
        sqlite3_reset(st);
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int(st, 2, stage));
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 3, step));
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_text(st, 4, names[i], -1, SQLITE_STATIC));
        if (isnan(values[i])) GRPO_CHECK_SQLITE(s->db, sqlite3_bind_null(st, 5));
        else GRPO_CHECK_SQLITE(s->db, sqlite3_bind_double(st, 5, values[i]));
        GRPO_TRY(run_write(s, st));
    }
    return GRPO_OK;
}

grpo_status store_put_metrics(store *s, int64_t run_id, int stage, int64_t step, int n, const char *const *names,
                              const double *values) {
    if (n < 0 || (n > 0 && (!names || !values)))
        return grpo_fail(GRPO_ERR_INVALID, "store_put_metrics: %d metrics without names or values", n);
    for (int i = 0; i < n; i++)
        if (!names[i]) return grpo_fail(GRPO_ERR_INVALID, "store_put_metrics: metric %d has no name", i);
    if (n == 0) return GRPO_OK;
    int own;
    GRPO_TRY(tx_enter(s, &own));
    return tx_leave(s, own, put_metric_rows(s, run_id, stage, step, n, names, values));
}

static grpo_status put_rollout_rows(store *s, int n, const store_rollout *rows) {
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_PUT_ROLLOUT, &st));
    for (int i = 0; i < n; i++) {
        const store_rollout *r = &rows[i];
        sqlite3_reset(st);
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, r->run_id));
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int(st, 2, r->stage));
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 3, r->step));
        GRPO_CHECK_SQLITE(s->db, bind_text_or_null(st, 4, r->prompt_id));
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int(st, 5, r->sample_idx));
        GRPO_CHECK_SQLITE(s->db, bind_text_or_null(st, 6, r->prompt));
        GRPO_CHECK_SQLITE(s->db, bind_text_or_null(st, 7, r->completion));
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_double(st, 8, r->reward));
        GRPO_CHECK_SQLITE(s->db, bind_text_or_null(st, 9, r->rewards_json));
        GRPO_CHECK_SQLITE(s->db, bind_text_or_null(st, 10, r->verdict));
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_double(st, 11, r->advantage));
        GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 12, r->length));
        GRPO_TRY(run_write(s, st));
    }
    return GRPO_OK;
}

grpo_status store_put_rollouts(store *s, int n, const store_rollout *r) {
    if (n < 0 || (n > 0 && !r)) return grpo_fail(GRPO_ERR_INVALID, "store_put_rollouts: %d rollouts, no data", n);
    if (n == 0) return GRPO_OK;
    int own;
    GRPO_TRY(tx_enter(s, &own));
    return tx_leave(s, own, put_rollout_rows(s, n, r));
}

grpo_status store_put_rollout(store *s, const store_rollout *r) { return store_put_rollouts(s, 1, r); }

grpo_status store_add_checkpoint(store *s, int64_t run_id, int64_t step, const char *path) {
    if (!path) return grpo_fail(GRPO_ERR_INVALID, "store_add_checkpoint: no path for step %lld", (long long)step);
    sqlite3_stmt *st;
    GRPO_TRY(store_stmt(s, STMT_ADD_CHECKPOINT, &st));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 1, run_id));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_int64(st, 2, step));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC));
    GRPO_CHECK_SQLITE(s->db, sqlite3_bind_double(st, 4, now_seconds()));
    return run_write(s, st);
}
