/* What store.c (opening, schema, writes) and store_query.c (reads) share: the handle
 * and its cache of prepared statements. Not for use outside the store module. */
#ifndef GRPO_STORE_IMPL_H
#define GRPO_STORE_IMPL_H

#include <sqlite3.h>

#include "core/store.h"

typedef enum {
    STMT_INSERT_RUN, STMT_FIND_RUN, STMT_SET_STATUS, STMT_BEGIN_STAGE, STMT_END_STAGE, STMT_PUT_METRIC,
    STMT_PUT_ROLLOUT, STMT_ADD_CHECKPOINT, STMT_METRIC_SERIES, STMT_METRIC_NAMES, STMT_LATEST_STEP,
    STMT_LATEST_CHECKPOINT, STMT_LATEST_ROLLOUT_STEP, STMT_GET_ROLLOUTS, STMT_GET_STAGES, STMT_GET_RUNS,
    STMT_COUNT
} store_stmt_id;

struct store {
    sqlite3 *db;
    char *path;            /* the database file */
    int readonly;
    int in_transaction;    /* store_transaction_begin is open */
    sqlite3_stmt *stmts[STMT_COUNT];
};

/* The cached statement `id`, prepared on first use, reset and with bindings cleared.
 * The caller resets it again when done so no read transaction stays open. */
grpo_status store_stmt(store *s, store_stmt_id id, sqlite3_stmt **out);
/* One sqlite3_step, checked: *row is 1 when it produced a row, 0 when the statement is done. */
grpo_status store_step(store *s, sqlite3_stmt *st, int *row);

#endif
