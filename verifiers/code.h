/* The code verifier: runs a Python or C program against test cases in the sandbox
 * (verifiers/sandbox.h) and says how it did, as `grpo verify code` reports it:
 * {"status": "ok"|"wrong_answer"|"time_limit"|"memory_limit"|"runtime_error"|
 *  "compile_error"|"output_limit"|"denied", "passed": k, "total": n}. */
#ifndef GRPO_VERIFY_CODE_H
#define GRPO_VERIFY_CODE_H

#include <jansson.h>
#include <stddef.h>

#include "core/status.h"
#include "verifiers/sandbox.h"

typedef enum {
    VERIFY_CODE_OK = 0,
    VERIFY_CODE_WRONG_ANSWER,
    VERIFY_CODE_TIME_LIMIT,
    VERIFY_CODE_MEMORY_LIMIT,
    VERIFY_CODE_RUNTIME_ERROR,
    VERIFY_CODE_COMPILE_ERROR,
    VERIFY_CODE_OUTPUT_LIMIT,
    VERIFY_CODE_DENIED,
    VERIFY_CODE_STATUS_COUNT
} verify_code_status;

typedef enum {
    VERIFY_COMPARE_WHITESPACE = 0,   /* default: same whitespace-separated tokens */
    VERIFY_COMPARE_EXACT,            /* byte for byte */
    VERIFY_COMPARE_FLOAT             /* tokens; numbers within relative 1e-6 (absolute near 0) */
} verify_compare;

typedef struct {
    const char *input;   /* stdin; NULL = empty */
    size_t input_len;
    const char *output;  /* expected stdout */
    size_t output_len;
} verify_code_test;

typedef struct {
    const char *language;          /* "python" (also "python3", "py") or "c" */
    const char *code;
    size_t code_len;
    const verify_code_test *tests;
    int n_tests;
    double time_limit_s;           /* per test, CPU seconds; 0 -> 2 */
    double wall_limit_s;           /* per test; 0 -> 1.5 * time_limit_s + 0.5 */
    long memory_mb;                /* 0 -> 256 */
    size_t output_limit_bytes;     /* per test, stdout and stderr each; 0 -> max(1 MiB, 4x expected) */
    verify_compare compare;
    int stop_on_failure;           /* 1: stop at the first failing test (the rest count as failed) */
    sandbox_mode mode;             /* SANDBOX_AUTO normally */
} verify_code_request;

typedef struct {
    verify_code_status status;     /* the first failing test's status, or OK */
    int passed, total;
    int first_failed;              /* index of the first failing test, -1 if none */
    double wall_s;                 /* whole request, compile included */
    char detail[256];              /* one line on the first failure (for logs, not for rewards) */
} verify_code_result;

/* Fills req with defaults (time 2 s, 256 MiB, whitespace compare, AUTO sandbox). */
void verify_code_request_init(verify_code_request *req);

/* Compiles (C) and runs every test in a fresh sandbox. Returns GRPO_OK whenever the
 * program was judged (whatever its status); an error for a malformed request
 * (unknown language, no tests, bad limits) or when the sandbox could not be set up.
 * Thread-safe: many calls may run at once (verifiers/pool.h does that). */
grpo_status verify_code_run(const verify_code_request *req, verify_code_result *out);

const char *verify_code_status_name(verify_code_status status);
/* -1 for an unknown name. */
int verify_code_status_parse(const char *name);

/* Judges one run's outcome (exposed for tests; documented in code.c). `expected` is
 * compared with the run's stdout only when the run ended cleanly. */
verify_code_status verify_code_classify(const sandbox_result *run, const sandbox_limits *limits,
                                        const char *expected, size_t expected_len, verify_compare compare);
/* 1 when `got` matches `expected` under `compare`. */
int verify_code_compare(const char *got, size_t got_len, const char *expected, size_t expected_len,
                        verify_compare compare);

/* JSON adaptor for `grpo verify code`. Reads {"language", "code", "tests": [{"input",
 * "output"}], "time_limit_s"?, "memory_mb"?, "compare"?: "exact"|"whitespace"|"float",
 * "wall_limit_s"?, "output_limit_bytes"?}; other keys (id, prompt, ...) are ignored.
 * req borrows the strings of `line` (keep it alive) and owns its tests array: release
 * it with verify_code_request_clear. On error req is left empty and the message says
 * which key was wrong and what was found. */
grpo_status verify_code_from_json(const json_t *line, verify_code_request *req);
void verify_code_request_clear(verify_code_request *req);
/* {"status": ..., "passed": k, "total": n}; the caller owns the object. */
json_t *verify_code_result_to_json(const verify_code_result *result);
/* One request line in, one answer object out: the result, or {"error": message} for a
 * malformed request or a sandbox failure. Never NULL except out of memory. */
json_t *verify_code_json(const json_t *line);

#endif
