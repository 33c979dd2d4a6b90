/* The code verifier: compile (C) and run a program on each test case in a fresh
 * sandbox, judge each run, and report the first failing status with the pass count.
 *
 * How one run is judged (verify_code_classify), first rule that applies:
 *   1. killed for too much stdout/stderr                       -> output_limit
 *   2. wall clock ran out, or CPU time >= the limit            -> time_limit
 *   3. ended by SIGKILL/SIGXCPU that we did not send, having used at least half of the
 *      RLIMIT_CPU budget: the kernel's CPU limit (rusage lags the kernel's own count
 *      on a loaded machine, by up to a quarter in our measurements) -> time_limit
 *   4. ended by SIGSYS (seccomp killed a foreign-ABI call)     -> denied
 *   5. ended by SIGXFSZ (RLIMIT_FSIZE)                         -> output_limit
 *   6. failed (signal or non-zero exit) and stderr says MemoryError, std::bad_alloc,
 *      "Cannot allocate memory" or "out of memory"             -> memory_limit
 *   7. ended by SIGSEGV/SIGBUS/SIGKILL/SIGABRT with peak RSS >= half the memory
 *      limit (RLIMIT_AS makes allocations fail; the program then faults while near
 *      the cap; a stack overflow faults far below it)          -> memory_limit
 *   8. failed and stderr says "File too large" (EFBIG)         -> output_limit
 *   9. failed and stderr shows EPERM/EACCES ("Operation not permitted", "Permission
 *      denied", PermissionError): the sandbox said no           -> denied
 *  10. any other failure (non-zero exit, other signal)         -> runtime_error
 *  11. exit 0: stdout compared with the expected output        -> ok | wrong_answer
 * Python: a first test that fails with SyntaxError/IndentationError/TabError and no
 * traceback (the script itself did not parse) is compile_error. C: gcc -O2 failing or
 * running out of its limits is compile_error. After a time_limit the remaining tests
 * are not run (counted failed): a program that hangs once is not given n more tries
 * at n times the limit. A fork bomb ends as runtime_error (fork fails under
 * RLIMIT_NPROC and the program dies of it) or time_limit (it spins on failed forks). */
#include "verifiers/code.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const status_names[VERIFY_CODE_STATUS_COUNT] = {
    "ok", "wrong_answer", "time_limit", "memory_limit", "runtime_error", "compile_error", "output_limit", "denied"};

const char *verify_code_status_name(verify_code_status status) {
    return (unsigned)status < VERIFY_CODE_STATUS_COUNT ? status_names[status] : "?";
}

int verify_code_status_parse(const char *name) {
    for (int i = 0; name && i < VERIFY_CODE_STATUS_COUNT; i++)
        if (strcmp(name, status_names[i]) == 0) return i;
    return -1;
}

void verify_code_request_init(verify_code_request *req) {
    memset(req, 0, sizeof *req);
    req->time_limit_s = 2.0;
    req->memory_mb = 256;
    req->compare = VERIFY_COMPARE_WHITESPACE;
    req->mode = SANDBOX_AUTO;
}

/* ---- comparing outputs ------------------------------------------------------ */

/* Next whitespace-separated token of s[*pos..len); returns its length, 0 at the end. */
static size_t next_token(const char *s, size_t len, size_t *pos, const char **tok) {
    size_t i = *pos;
    while (i < len && isspace((unsigned char)s[i])) i++;
    size_t start = i;
    while (i < len && !isspace((unsigned char)s[i])) i++;
    *tok = s + start;
    *pos = i;
    return i - start;
}

/* Parses the whole token as a finite number. */
static int token_number(const char *tok, size_t n, double *value) {
    char buf[128];
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, tok, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + n || errno == ERANGE || !isfinite(v)) return 0;
    *value = v;
    return 1;
}

int verify_code_compare(const char *got, size_t got_len, const char *expected, size_t expected_len,
                        verify_compare compare) {
    if (!got) got = "", got_len = 0;
    if (!expected) expected = "", expected_len = 0;
    if (compare == VERIFY_COMPARE_EXACT) return got_len == expected_len && memcmp(got, expected, got_len) == 0;
    size_t pg = 0, pe = 0;
    for (;;) {
        const char *tg, *te;
        size_t ng = next_token(got, got_len, &pg, &tg);
        size_t ne = next_token(expected, expected_len, &pe, &te);
        if (ng == 0 || ne == 0) return ng == ne;
        if (ng == ne && memcmp(tg, te, ng) == 0) continue;
        if (compare != VERIFY_COMPARE_FLOAT) return 0;
        double a, b;
        if (!token_number(tg, ng, &a) || !token_number(te, ne, &b)) return 0;
        /* relative 1e-6, absolute 1e-6 for |expected| < 1 */
        if (!(fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b)))) return 0;
    }
}

/* ---- judging one run -------------------------------------------------------- */

static int err_has(const sandbox_result *run, const char *needle) {
    return run->err && strstr(run->err, needle) != NULL;
}

verify_code_status verify_code_classify(const sandbox_result *run, const sandbox_limits *limits,
                                        const char *expected, size_t expected_len, verify_compare compare) {
    if (run->output_exceeded) return VERIFY_CODE_OUTPUT_LIMIT;
    if (run->wall_timeout || run->cpu_s >= limits->cpu_time_s) return VERIFY_CODE_TIME_LIMIT;
    int sig = run->term_signal;
    if ((sig == SIGKILL || sig == SIGXCPU) && run->cpu_s >= 0.5 * ceil(limits->cpu_time_s))
        return VERIFY_CODE_TIME_LIMIT;
    if (sig == SIGSYS) return VERIFY_CODE_DENIED;
    if (sig == SIGXFSZ) return VERIFY_CODE_OUTPUT_LIMIT;
    int failed = sig != 0 || !run->exited || run->exit_code != 0;
    if (failed) {
        if (err_has(run, "MemoryError") || err_has(run, "std::bad_alloc") || err_has(run, "Cannot allocate memory") ||
            err_has(run, "out of memory"))
            return VERIFY_CODE_MEMORY_LIMIT;
        if ((sig == SIGSEGV || sig == SIGBUS || sig == SIGKILL || sig == SIGABRT) &&
            (double)run->max_rss_kb * 1024.0 >= 0.5 * (double)limits->memory_mb * 1048576.0)
            return VERIFY_CODE_MEMORY_LIMIT;
        if (err_has(run, "File too large")) return VERIFY_CODE_OUTPUT_LIMIT;
        if (err_has(run, "Operation not permitted") || err_has(run, "Permission denied") ||
            err_has(run, "PermissionError"))
            return VERIFY_CODE_DENIED;
        return VERIFY_CODE_RUNTIME_ERROR;
    }
    return verify_code_compare(run->out, run->out_len, expected, expected_len, compare) ? VERIFY_CODE_OK
                                                                                       : VERIFY_CODE_WRONG_ANSWER;
}

/* ---- running a request ------------------------------------------------------ */

typedef enum { LANG_PYTHON, LANG_C } language;

static int parse_language(const char *name, language *lang) {
    if (!name) return 0;
    if (strcmp(name, "python") == 0 || strcmp(name, "python3") == 0 || strcmp(name, "py") == 0) *lang = LANG_PYTHON;
    else if (strcmp(name, "c") == 0 || strcmp(name, "C") == 0) *lang = LANG_C;
    else return 0;
    return 1;
}

/* The first line of s that mentions "error" (else the first line), into out. */
static void first_error_line(const char *s, char *out, size_t cap) {
    out[0] = '\0';
    if (!s) return;
    const char *line = strstr(s, "error");
    if (line) while (line > s && line[-1] != '\n') line--;
    else line = s;
    size_t n = strcspn(line, "\n");
    if (n >= cap) n = cap - 1;
    memcpy(out, line, n);
    out[n] = '\0';
}

static grpo_status compile_c(sandbox *sb, const verify_code_request *req, verify_code_result *out, int *ok) {
    *ok = 0;
    const char *gcc = sandbox_gcc_path();
    if (!gcc) return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s:%d: language \"c\" needs gcc, which was not found",
                               __FILE__, __LINE__);
    GRPO_TRY(sandbox_write_file(sb, "main.c", req->code, req->code_len));
    const char *argv[] = {gcc, "-O2", "-std=gnu11", "-pipe", "-o", "main", "main.c", "-lm", NULL};
    sandbox_limits lim;
    sandbox_limits_default(&lim);
    lim.cpu_time_s = 10;
    lim.wall_time_s = 20;
    lim.memory_mb = 1024;
    lim.max_processes = 64;
    lim.max_file_mb = 64;
    lim.output_limit_bytes = 256 << 10;
    sandbox_result run;
    GRPO_TRY(sandbox_run(sb, argv, NULL, 0, &lim, &run));
    if (run.exited && run.exit_code == 0) {
        *ok = 1;
    } else {
        char line[200];
        first_error_line(run.err, line, sizeof line);
        snprintf(out->detail, sizeof out->detail, "compile: %s%s", run.wall_timeout ? "timed out " : "", line);
    }
    sandbox_result_clear(&run);
    return GRPO_OK;
}

static int python_did_not_parse(const sandbox_result *run) {
    if (!run->err || strstr(run->err, "Traceback (most recent call last)")) return 0;
    return strstr(run->err, "SyntaxError") || strstr(run->err, "IndentationError") || strstr(run->err, "TabError");
}

grpo_status verify_code_run(const verify_code_request *req, verify_code_result *out) {
    memset(out, 0, sizeof *out);
    out->first_failed = -1;
    language lang;
    if (!req->language || !parse_language(req->language, &lang))
        return grpo_fail(GRPO_ERR_INVALID, "%s:%d: code request: language: expected \"python\" or \"c\", found \"%s\"",
                         __FILE__, __LINE__, req->language ? req->language : "(none)");
    if (!req->code) return grpo_fail(GRPO_ERR_INVALID, "%s:%d: code request: no code", __FILE__, __LINE__);
    if (req->n_tests <= 0 || !req->tests)
        return grpo_fail(GRPO_ERR_INVALID, "%s:%d: code request: expected at least one test, found %d", __FILE__,
                         __LINE__, req->n_tests);
    double time_limit = req->time_limit_s > 0 ? req->time_limit_s : 2.0;
    long memory_mb = req->memory_mb > 0 ? req->memory_mb : 256;
    if (!(time_limit <= 600) || memory_mb < 16 || memory_mb > (1L << 20) || req->wall_limit_s < 0 ||
        req->wall_limit_s > 1200)
        return grpo_fail(GRPO_ERR_INVALID, "%s:%d: code request: limits out of range (time_limit_s %.3g in (0, 600], "
                         "memory_mb %ld in [16, 1048576], wall_limit_s %.3g in [0, 1200])", __FILE__, __LINE__,
                         time_limit, memory_mb, req->wall_limit_s);
    const char *python = NULL;
    if (lang == LANG_PYTHON && !(python = sandbox_python_path()))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s:%d: language \"python\" needs python3, which was not found",
                         __FILE__, __LINE__);

    double t0 = now_s();
    out->total = req->n_tests;
    sandbox *sb = NULL;
    GRPO_TRY(sandbox_create(req->mode, &sb));
    grpo_status status = GRPO_OK;
    const char *python_argv[] = {python, "-I", "main.py", NULL};
    const char *binary_argv[] = {"./main", NULL};
    const char *const *argv = python_argv;
    if (lang == LANG_PYTHON) {
        status = sandbox_write_file(sb, "main.py", req->code, req->code_len);
    } else {
        int compiled = 0;
        status = compile_c(sb, req, out, &compiled);
        argv = binary_argv;
        if (status == GRPO_OK && !compiled) {
            out->status = VERIFY_CODE_COMPILE_ERROR;
            out->first_failed = 0;
            goto finish;
        }
    }
    if (status != GRPO_OK) goto finish;

    const char *keep[] = {lang == LANG_PYTHON ? "main.py" : "main", NULL};
    for (int t = 0; t < req->n_tests; t++) {
        const verify_code_test *test = &req->tests[t];
        if (t > 0) sandbox_clean(sb, keep);   /* each test starts from the same work dir */
        sandbox_limits lim;
        sandbox_limits_default(&lim);
        lim.cpu_time_s = time_limit;
        lim.wall_time_s = req->wall_limit_s;
        lim.memory_mb = memory_mb;
        size_t expected_len = test->output ? test->output_len : 0;
        lim.output_limit_bytes = req->output_limit_bytes ? req->output_limit_bytes
                                 : 2 * expected_len + (64u << 10) > (1u << 20) ? 2 * expected_len + (64u << 10)
                                                                               : (1u << 20);
        sandbox_result run;
        status = sandbox_run(sb, argv, test->input, test->input ? test->input_len : 0, &lim, &run);
        if (status != GRPO_OK) break;
        verify_code_status s = verify_code_classify(&run, &lim, test->output, expected_len, req->compare);
        if (lang == LANG_PYTHON && t == 0 && s == VERIFY_CODE_RUNTIME_ERROR && python_did_not_parse(&run))
            s = VERIFY_CODE_COMPILE_ERROR;
        if (s == VERIFY_CODE_OK) {
            out->passed++;
        } else if (out->first_failed < 0) {
            out->status = s;
            out->first_failed = t;
            char line[160];
            first_error_line(run.err, line, sizeof line);
            snprintf(out->detail, sizeof out->detail, "test %d: %s (exit %d, signal %d, cpu %.2f s, wall %.2f s)%s%s",
                     t, verify_code_status_name(s), run.exited ? run.exit_code : -1, run.term_signal, run.cpu_s,
                     run.wall_s, line[0] ? ": " : "", line);
        }
        sandbox_result_clear(&run);
        if (s != VERIFY_CODE_OK && (req->stop_on_failure || s == VERIFY_CODE_TIME_LIMIT || s == VERIFY_CODE_COMPILE_ERROR))
            break;
    }
finish:
    sandbox_free(sb);
    out->wall_s = now_s() - t0;
    return status;
}

/* ---- JSON ------------------------------------------------------------------- */

void verify_code_request_clear(verify_code_request *req) {
    if (!req) return;
    free((void *)req->tests);
    verify_code_request_init(req);
}

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static grpo_status bad_key(const char *key, const char *expected, const json_t *found) {
    return grpo_fail(GRPO_ERR_PARSE, "code request: \"%s\": expected %s, found %s", key, expected,
                     found ? json_type_name(found) : "nothing");
}

/* A positive number under key, or the default when the key is absent. */
static grpo_status optional_number(const json_t *line, const char *key, double *value) {
    const json_t *v = json_object_get(line, key);
    if (!v || json_is_null(v)) return GRPO_OK;
    if (!json_is_number(v) || !(json_number_value(v) > 0)) return bad_key(key, "a positive number", v);
    *value = json_number_value(v);
    return GRPO_OK;
}

grpo_status verify_code_from_json(const json_t *line, verify_code_request *req) {
    verify_code_request_init(req);
    if (!json_is_object(line)) return bad_key("(line)", "an object", line);
    const json_t *lang = json_object_get(line, "language");
    if (!json_is_string(lang)) return bad_key("language", "a string", lang);
    language parsed;
    if (!parse_language(json_string_value(lang), &parsed))
        return grpo_fail(GRPO_ERR_PARSE, "code request: \"language\": expected \"python\" or \"c\", found \"%.40s\"",
                         json_string_value(lang));
    const json_t *code = json_object_get(line, "code");
    if (!json_is_string(code)) return bad_key("code", "a string", code);
    const json_t *tests = json_object_get(line, "tests");
    if (!json_is_array(tests)) return bad_key("tests", "an array", tests);
    size_t n = json_array_size(tests);
    if (n == 0 || n > 100000)
        return grpo_fail(GRPO_ERR_PARSE, "code request: \"tests\": expected 1 to 100000 tests, found %zu", n);
    double time_limit = 2.0, memory = 256, wall = 0, output_limit = 0;
    GRPO_TRY(optional_number(line, "time_limit_s", &time_limit));
    GRPO_TRY(optional_number(line, "memory_mb", &memory));
    GRPO_TRY(optional_number(line, "wall_limit_s", &wall));
    GRPO_TRY(optional_number(line, "output_limit_bytes", &output_limit));
    if (time_limit > 600 || memory < 16 || memory > (1 << 20) || wall > 1200 || output_limit > (double)(1u << 30))
        return grpo_fail(GRPO_ERR_PARSE, "code request: limits out of range: time_limit_s %.3g (max 600), memory_mb "
                         "%.0f (16..1048576), wall_limit_s %.3g (max 1200), output_limit_bytes %.0f (max 1 GiB)",
                         time_limit, memory, wall, output_limit);
    verify_compare compare = VERIFY_COMPARE_WHITESPACE;
    const json_t *cmp = json_object_get(line, "compare");
    if (cmp && !json_is_null(cmp)) {
        const char *c = json_is_string(cmp) ? json_string_value(cmp) : NULL;
        if (c && strcmp(c, "exact") == 0) compare = VERIFY_COMPARE_EXACT;
        else if (c && strcmp(c, "whitespace") == 0) compare = VERIFY_COMPARE_WHITESPACE;
        else if (c && strcmp(c, "float") == 0) compare = VERIFY_COMPARE_FLOAT;
        else return bad_key("compare", "\"exact\", \"whitespace\" or \"float\"", cmp);
    }
    verify_code_test *array = calloc(n, sizeof *array);
    if (!array) return grpo_fail(GRPO_ERR_NOMEM, "%s:%d: out of memory for %zu tests", __FILE__, __LINE__, n);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(tests, i);
        const json_t *in = json_is_object(t) ? json_object_get(t, "input") : NULL;
        const json_t *expect = json_is_object(t) ? json_object_get(t, "output") : NULL;
        if (!json_is_object(t) || (in && !json_is_string(in) && !json_is_null(in)) || !json_is_string(expect)) {
            grpo_status s = grpo_fail(GRPO_ERR_PARSE, "code request: \"tests\"[%zu]: expected {\"input\": string, "
                                      "\"output\": string}, found %s%s", i, t ? json_type_name(t) : "nothing",
                                      json_is_object(t) ? (json_is_string(expect) ? " with a bad \"input\""
                                                                                  : " with a bad \"output\"") : "");
            free(array);
            return s;
        }
        if (json_is_string(in)) array[i].input = json_string_value(in), array[i].input_len = json_string_length(in);
        array[i].output = json_string_value(expect);
        array[i].output_len = json_string_length(expect);
    }
    req->language = json_string_value(lang);
    req->code = json_string_value(code);
    req->code_len = json_string_length(code);
    req->tests = array;
    req->n_tests = (int)n;
    req->time_limit_s = time_limit;
    req->memory_mb = (long)memory;
    req->wall_limit_s = wall;
    req->output_limit_bytes = (size_t)output_limit;
    req->compare = compare;
    return GRPO_OK;
}

json_t *verify_code_result_to_json(const verify_code_result *result) {
    return json_pack("{s:s, s:i, s:i}", "status", verify_code_status_name(result->status), "passed", result->passed,
                     "total", result->total);
}

json_t *verify_code_json(const json_t *line) {
    verify_code_request req;
    verify_code_result result;
    grpo_status s = verify_code_from_json(line, &req);
    if (s == GRPO_OK) s = verify_code_run(&req, &result);
    verify_code_request_clear(&req);
    if (s != GRPO_OK) return json_pack("{s:s}", "error", grpo_error_message());
    return verify_code_result_to_json(&result);
}
