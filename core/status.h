/* Status codes and error messages for everything the outside world can get wrong.
 * A failing function records one message (thread-local) and returns a non-zero
 * grpo_status; the caller either handles it or passes the same code up. Broken
 * invariants of our own code use GRPO_ASSERT instead and stop the program. */
#ifndef GRPO_STATUS_H
#define GRPO_STATUS_H

#include <stdarg.h>

/* Usable from the CUDA translation units (C++) too. */
#ifdef __cplusplus
#define GRPO_NORETURN [[noreturn]]
extern "C" {
#else
#define GRPO_NORETURN _Noreturn
#endif

typedef enum {
    GRPO_OK = 0,
    GRPO_ERR_INVALID,     /* a value is out of range or inconsistent */
    GRPO_ERR_PARSE,       /* malformed outside input (YAML, JSON, safetensors, ...) */
    GRPO_ERR_IO,          /* a file or system call failed */
    GRPO_ERR_NOMEM,       /* an allocation failed */
    GRPO_ERR_UNSUPPORTED, /* valid, but not something this build can do */
    GRPO_ERR_NOTFOUND,    /* a named thing (file, key, tensor) is missing */
    GRPO_ERR_BACKEND,     /* a CUDA / cuBLAS / NCCL / SQLite call failed */
    GRPO_ERR_USAGE        /* bad command-line use */
} grpo_status;

/* Records the message (printf-style) as this thread's last error and returns code.
 * Typical use: return grpo_fail(GRPO_ERR_PARSE, "%s:%d: expected ..., found ...", path, line, ...); */
grpo_status grpo_fail(grpo_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
grpo_status grpo_failv(grpo_status code, const char *fmt, va_list ap);
/* Prepends "context: " to the current message (for adding the file name higher up). */
void grpo_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last error's message on this thread; "" when none. Valid until the next grpo_fail. */
const char *grpo_error_message(void);
void grpo_error_clear(void);
const char *grpo_status_name(grpo_status s);
/* Process exit code for a status: 0 ok, 2 usage, 1 anything else. */
int grpo_exit_code(grpo_status s);

/* Called once by a fatal error before the process aborts (flush the run store, the
 * log). One hook; setting it again replaces it. */
typedef void (*grpo_abort_hook)(void *ctx);
void grpo_set_abort_hook(grpo_abort_hook hook, void *ctx);
GRPO_NORETURN void grpo_fatal(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#define GRPO_ASSERT(cond) \
    do { if (!(cond)) grpo_fatal(__FILE__, __LINE__, "assertion failed: %s", #cond); } while (0)
#define GRPO_ASSERTF(cond, ...) \
    do { if (!(cond)) grpo_fatal(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* Propagate a non-OK status. */
#define GRPO_TRY(expr) \
    do { grpo_status grpo_try_s_ = (expr); if (grpo_try_s_ != GRPO_OK) return grpo_try_s_; } while (0)

#endif
