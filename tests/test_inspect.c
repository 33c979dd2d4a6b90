/* `grpo inspect` on a store built here: --filter, --grep, --step and --stage select
 * exactly the rows an independent count over store_get_rollouts finds, and hostile model
 * output (ESC sequences, BEL, C1 controls, bidi overrides, bad UTF-8) reaches the
 * terminal escaped, never raw. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/store.h"
#include "harness.h"

static const char *grpo;
static char dir[256];
static char *output;

static int run_cmd(const char *args) {
    char cmd[2048], path[512];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s > out.txt 2> err.txt", dir, grpo, args);
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    free(output);
    output = NULL;
    FILE *f = fopen(path, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        output = calloc((size_t)n + 1, 1);
        if (output && fread(output, 1, (size_t)n, f) != (size_t)n) output[0] = 0;
        fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static const char *verdicts[] = {"correct", "wrong", "no_answer", "truncated", NULL, "correct", "error", "wrong"};
static const char *completions[] = {
    "<think>2+2</think><answer>4</answer> apple",
    "wait, let me check: banana \x1b]0;pwned\x07 \x1b[2J",
    "cherry \xc2\x9b" "31m C1 CSI and \xe2\x80\xae reversed",
    "truncated text with a bad byte \xff and apple",
    "no verdict here",
    "<answer>7</answer> banana",
    "sandbox error",
    "plain wrong cherry",
};
enum { N_PER_STEP = 8 };

static void build_store(const char *path) {
    store *s;
    CHECK_OK(store_open(path, &s));
    if (!s) return;
    int64_t run;
    CHECK_OK(store_begin_run(s, "r", NULL, &run));
    for (int stage = 0; stage < 2; stage++)
        for (int step = 1; step <= 3; step++) {
            store_rollout rows[N_PER_STEP];
            for (int i = 0; i < N_PER_STEP; i++) {
                int k = (i + step + stage) % N_PER_STEP;
                rows[i] = (store_rollout){.run_id = run, .stage = stage, .step = step, .prompt_id = "p\x1b[1m",
                                          .sample_idx = i % 4, .prompt = i < 4 ? "What is 2+2?" : "What is 3+4?",
                                          .completion = completions[k], .reward = k * 0.5,
                                          .rewards_json = "{\"accuracy\": 1, \"format\": 0.5}", .verdict = verdicts[k],
                                          .advantage = k - 3.5, .length = 10 + k};
            }
            CHECK_OK(store_put_rollouts(s, N_PER_STEP, rows));
        }
    store_close(s);
}

/* The independent count: rows of (stage, step) the filter and the substrings select. */
typedef struct {
    int stage;                 /* -1: any */
    const char *filter;        /* NULL: any */
    const char *any_of[2];     /* prompt or completion contains one of these (NULL: no grep) */
    int n;
} expect_ctx;

static int select_row(void *ctx, const store_rollout *r) {
    expect_ctx *e = ctx;
    if (e->stage >= 0 && r->stage != e->stage) return 0;
    const char *v = r->verdict;
    if (e->filter) {
        int correct = v && !strcmp(v, "correct"), truncated = v && !strcmp(v, "truncated");
        if (!strcmp(e->filter, "correct") && !correct) return 0;
        if (!strcmp(e->filter, "truncated") && !truncated) return 0;
        if (!strcmp(e->filter, "wrong") && (!v || correct || truncated)) return 0;
    }
    if (e->any_of[0]) {
        int hit = 0;
        for (int k = 0; k < 2 && e->any_of[k]; k++)
            hit |= (r->prompt && strstr(r->prompt, e->any_of[k])) || (r->completion && strstr(r->completion, e->any_of[k]));
        if (!hit) return 0;
    }
    e->n++;
    return 0;
}

static int expected(store *s, int64_t step, int stage, const char *filter, const char *a, const char *b) {
    expect_ctx e = {.stage = stage, .filter = filter, .any_of = {a, b}};
    if (step == 0) {
        for (int k = 1; k <= 3; k++) CHECK_OK(store_get_rollouts(s, 1, k, select_row, &e));
    } else {
        CHECK_OK(store_get_rollouts(s, 1, step, select_row, &e));
    }
    return e.n;
}

int main(void) {
    grpo = getenv("GRPO_BINARY");
    if (!grpo) TEST_SKIP("GRPO_BINARY is not set (run through ctest)");
    snprintf(dir, sizeof dir, "/tmp/grpo_test_inspect_%d", (int)getpid());
    char path[512], cmd[600], args[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/run/run.db", dir);
    build_store(path);
    store *s;
    CHECK_OK(store_open_readonly(path, &s));
    if (!s) TEST_MAIN_END();

    static const char *filters[] = {NULL, "correct", "wrong", "truncated"};
    for (int step = 1; step <= 3; step++)
        for (int f = 0; f < 4; f++) {
            snprintf(args, sizeof args, "inspect run --step %d%s%s", step, filters[f] ? " --filter " : "",
                     filters[f] ? filters[f] : "");
            CHECK_INT(0, run_cmd(args));
            int want = expected(s, step, -1, filters[f], NULL, NULL);
            CHECK_MSG(count(output, "=== rollout") == want, "%s: %d rows shown, the store has %d", args,
                      count(output, "=== rollout"), want);
            CHECK(want > 0 || filters[f]);
        }
    /* the default is the latest step */
    CHECK_INT(0, run_cmd("inspect run"));
    CHECK_INT(expected(s, 3, -1, NULL, NULL, NULL), count(output, "=== rollout"));
    CHECK(count(output, "=== rollout step 3,") == count(output, "=== rollout"));
    /* --stage, --step all, --grep (a word, and an alternation) */
    CHECK_INT(0, run_cmd("inspect run --step 2 --stage 1 --filter wrong"));
    CHECK_INT(expected(s, 2, 1, "wrong", NULL, NULL), count(output, "=== rollout"));
    CHECK_INT(0, count(output, "stage 0,"));
    CHECK_INT(0, run_cmd("inspect run --step all"));
    CHECK_INT(expected(s, 0, -1, NULL, NULL, NULL), count(output, "=== rollout"));
    CHECK_INT(0, run_cmd("inspect run --step all --grep apple"));
    CHECK_INT(expected(s, 0, -1, NULL, "apple", NULL), count(output, "=== rollout"));
    CHECK_INT(0, run_cmd("inspect run --step all --filter wrong --grep 'cherry|banana'"));
    CHECK_INT(expected(s, 0, -1, "wrong", "cherry", "banana"), count(output, "=== rollout"));
    CHECK_INT(0, run_cmd("inspect run --step all --grep '3\\+4'"));
    CHECK_INT(expected(s, 0, -1, NULL, "3+4", NULL), count(output, "=== rollout"));
    char tail[64];
    snprintf(tail, sizeof tail, "%d of %d rollouts shown", expected(s, 0, -1, NULL, "3+4", NULL),
             expected(s, 0, -1, NULL, NULL, NULL));
    CHECK_MSG(strstr(output, tail) != NULL, "output lacks \"%s\"", tail);

    /* hostile text: escaped, never raw */
    CHECK_INT(0, run_cmd("inspect run --step all"));
    CHECK(output && strchr(output, 0x1b) == NULL);
    CHECK(output && strchr(output, 0x07) == NULL);
    CHECK(output && strstr(output, "\xc2\x9b") == NULL);
    CHECK(output && strstr(output, "\xe2\x80\xae") == NULL);
    CHECK(output && strchr(output, (char)0xff) == NULL);
    CHECK(strstr(output, "\\x1b]0;pwned\\x07") != NULL);
    CHECK(strstr(output, "\\u009b31m") != NULL);
    CHECK(strstr(output, "\\u202e") != NULL);
    CHECK(strstr(output, "\\xff") != NULL);
    CHECK(strstr(output, "accuracy=1 format=0.5") != NULL);

    /* bad usage */
    CHECK_INT(2, run_cmd("inspect run --filter maybe"));
    CHECK_INT(2, run_cmd("inspect run --grep '(unclosed'"));
    CHECK_INT(1, run_cmd("inspect nowhere"));
    store_close(s);
    free(output);
    if (!harness_failures) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
    TEST_MAIN_END();
}
