/* Thread-local last-error message, status names, and the one fatal path. */
#include "core/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char error_message[2048];
static grpo_abort_hook abort_hook;
static void *abort_ctx;

grpo_status grpo_failv(grpo_status code, const char *fmt, va_list ap) {
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    return code;
}

grpo_status grpo_fail(grpo_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    grpo_failv(code, fmt, ap);
    va_end(ap);
    return code;
}

void grpo_error_prefix(const char *fmt, ...) {
    char prefix[512], old[sizeof error_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    snprintf(error_message, sizeof error_message, "%s: %s", prefix, old);
}

const char *grpo_error_message(void) { return error_message; }
void grpo_error_clear(void) { error_message[0] = 0; }

const char *grpo_status_name(grpo_status s) {
    switch (s) {
    case GRPO_OK: return "ok";
    case GRPO_ERR_INVALID: return "invalid value";
    case GRPO_ERR_PARSE: return "parse error";
    case GRPO_ERR_IO: return "I/O error";
    case GRPO_ERR_NOMEM: return "out of memory";
    case GRPO_ERR_UNSUPPORTED: return "unsupported";
    case GRPO_ERR_NOTFOUND: return "not found";
    case GRPO_ERR_BACKEND: return "backend error";
    case GRPO_ERR_USAGE: return "usage error";
    }
    return "unknown status";
}

int grpo_exit_code(grpo_status s) {
    if (s == GRPO_OK) return 0;
    return s == GRPO_ERR_USAGE ? 2 : 1;
}

void grpo_set_abort_hook(grpo_abort_hook hook, void *ctx) {
    abort_hook = hook;
    abort_ctx = ctx;
}

void grpo_fatal(const char *file, int line, const char *fmt, ...) {
    static int in_fatal;
    fflush(stdout);
    fprintf(stderr, "grpo: fatal: %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (!in_fatal && abort_hook) {
        in_fatal = 1;
        abort_hook(abort_ctx);
    }
    fflush(stderr);
    abort();
}
