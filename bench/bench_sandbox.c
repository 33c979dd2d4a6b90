/* Sandbox cost: median wall time of `python3 -I -c pass` started bare (posix_spawn +
 * waitpid) and inside the sandbox (bwrap, and the fallback), the overhead per run,
 * and code-verifier throughput (one-test python requests through the worker pool).
 * Usage: bench_sandbox [N=40] [threads=2] */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "verifiers/code.h"
#include "verifiers/pool.h"
#include "verifiers/sandbox.h"

extern char **environ;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double bare_run(const char *python) {
    char *argv[] = {(char *)python, "-I", "-c", "pass", NULL};
    double t0 = now_s();
    pid_t pid;
    if (posix_spawn(&pid, python, NULL, NULL, argv, environ) != 0) return -1;
    int status;
    waitpid(pid, &status, 0);
    return now_s() - t0;
}

/* One sandboxed run; *run_only excludes sandbox_create/sandbox_free. -1 on failure. */
static double sandbox_once(sandbox_mode mode, const char *python, double *run_only) {
    const char *argv[] = {python, "-I", "-c", "pass", NULL};
    sandbox_limits lim;
    sandbox_limits_default(&lim);
    double t0 = now_s();
    sandbox *sb = NULL;
    if (sandbox_create(mode, &sb) != GRPO_OK) {
        fprintf(stderr, "sandbox_create(%s): %s\n", sandbox_mode_name(mode), grpo_error_message());
        return -1;
    }
    sandbox_result r;
    double t1 = now_s();
    grpo_status s = sandbox_run(sb, argv, NULL, 0, &lim, &r);
    *run_only = now_s() - t1;
    int ok = s == GRPO_OK && r.exited && r.exit_code == 0;
    if (!ok) fprintf(stderr, "sandboxed run failed: %s %s\n", grpo_error_message(), s == GRPO_OK ? r.err : "");
    if (s == GRPO_OK) sandbox_result_clear(&r);
    sandbox_free(sb);
    return ok ? now_s() - t0 : -1;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 40;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (n < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_sandbox [N>=1] [threads>=1]\n");
        return 2;
    }
    const char *python = sandbox_python_path();
    if (!python) {
        fprintf(stderr, "no python3 found\n");
        return 1;
    }
    printf("python: %s, N=%d, sandbox mode here: %s, seccomp %d\n", python, n,
           sandbox_mode_name(sandbox_available_mode()), sandbox_has_seccomp());
    /* Interleaved, so that a load that comes and goes weighs on all columns alike. */
    enum { BARE, BWRAP_RUN, BWRAP_ALL, FALLBACK_RUN, FALLBACK_ALL, COLUMNS };
    double *t[COLUMNS];
    for (int c = 0; c < COLUMNS; c++) t[c] = calloc((size_t)n, sizeof(double));
    int have_bwrap = sandbox_available_mode() == SANDBOX_BWRAP;
    bare_run(python);   /* warm the page cache */
    for (int i = 0; i < n; i++) {
        t[BARE][i] = bare_run(python);
        if (have_bwrap && (t[BWRAP_ALL][i] = sandbox_once(SANDBOX_BWRAP, python, &t[BWRAP_RUN][i])) < 0) return 1;
        if ((t[FALLBACK_ALL][i] = sandbox_once(SANDBOX_FALLBACK, python, &t[FALLBACK_RUN][i])) < 0) return 1;
    }
    double bare_med = median(t[BARE], n);
    printf("bare python3 -I -c pass             median %7.2f ms\n", 1e3 * bare_med);
    const char *names[COLUMNS] = {"", "bwrap run", "bwrap create+run+free", "fallback run", "fallback create+run+free"};
    for (int c = 1; c < COLUMNS; c++) {
        if (!have_bwrap && (c == BWRAP_RUN || c == BWRAP_ALL)) continue;
        double m = median(t[c], n);
        printf("%-35s median %7.2f ms   overhead %6.2f ms\n", names[c], 1e3 * m, 1e3 * (m - bare_med));
    }
    for (int c = 0; c < COLUMNS; c++) free(t[c]);

    /* Throughput: n one-test requests (read two ints, print the sum) through the pool. */
    verify_pool *pool = NULL;
    if (verify_pool_create(threads, 2 * threads, &pool) != GRPO_OK) {
        fprintf(stderr, "%s\n", grpo_error_message());
        return 1;
    }
    const char *code = "a, b = map(int, input().split())\nprint(a + b)\n";
    verify_code_test test = {"20 22\n", 6, "42\n", 3};
    verify_code_request req;
    verify_code_request_init(&req);
    req.language = "python";
    req.code = code;
    req.code_len = strlen(code);
    req.tests = &test;
    req.n_tests = 1;
    double t0 = now_s();
    for (int i = 0; i < n; i++) verify_pool_submit_code(pool, &req, NULL);
    verify_pool_wait(pool);
    double elapsed = now_s() - t0;
    int ok = 0;
    for (long i = 0; i < n; i++) {
        verify_code_result r;
        if (verify_pool_code_result(pool, i, &r) == GRPO_OK && r.status == VERIFY_CODE_OK) ok++;
    }
    verify_pool_free(pool);
    printf("verify_code python, %d threads: %.1f requests/s (%d/%d ok)\n", threads, n / elapsed, ok, n);
    return ok == n ? 0 : 1;
}
