/* Check macros for calls into outside libraries. Each one, on failure, records a
 * message with the call's text, the library's own error string, file and line, and
 * returns a grpo_status from the enclosing function (which must return grpo_status).
 * The CUDA/cuBLAS ones live in core/cuda/cuda_check.h so C code needs no CUDA headers. */
#ifndef GRPO_CHECK_H
#define GRPO_CHECK_H

#include "core/status.h"

/* SQLite: `call` returns an int result code; ok is SQLITE_OK, SQLITE_DONE or SQLITE_ROW. */
#define GRPO_CHECK_SQLITE(db, call) do { int rc_ = (call); \
    if (rc_ != SQLITE_OK && rc_ != SQLITE_DONE && rc_ != SQLITE_ROW) \
        return grpo_fail(GRPO_ERR_BACKEND, "%s:%d: %s: sqlite error %d: %s", __FILE__, __LINE__, #call, \
                         rc_, (db) ? sqlite3_errmsg(db) : sqlite3_errstr(rc_)); } while (0)

/* PCRE2: `call` returns an int; negative is an error code (PCRE2_ERROR_NOMATCH is not
 * an error and passes through: check its value yourself). */
#define GRPO_CHECK_PCRE2(call) do { int rc_ = (call); \
    if (rc_ < 0 && rc_ != PCRE2_ERROR_NOMATCH) { PCRE2_UCHAR msg_[256]; \
        pcre2_get_error_message(rc_, msg_, sizeof msg_); \
        return grpo_fail(GRPO_ERR_BACKEND, "%s:%d: %s: pcre2 error %d: %s", __FILE__, __LINE__, #call, \
                         rc_, (const char *)msg_); } } while (0)

/* A system call returning -1 on failure with errno set. */
#define GRPO_CHECK_SYS(call) do { if ((call) == -1) \
    return grpo_fail(GRPO_ERR_IO, "%s:%d: %s: %s", __FILE__, __LINE__, #call, strerror(errno)); } while (0)

#endif
