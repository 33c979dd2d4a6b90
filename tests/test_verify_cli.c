/* `grpo verify math|code|countdown|format` end to end: runs the built binary (GRPO_BINARY,
 * set by ctest) on JSONL files and checks every answer line, that a bad line in the middle
 * gets an {"error": "stdin:LINE: ..."} answer while the others still answer, the exit codes
 * (0 all answered, 1 some errors, 2 usage), and that code answers keep input order. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fs.h"
#include "verifiers/format.h"
#include "verifiers/sandbox.h"
#include "harness.h"

static const char *grpo;
static char dir[PATH_MAX];

enum { MAX_LINES = 64 };
static json_t *answers[MAX_LINES];
static int n_answers;
static char stderr_text[4096];

static void clear_answers(void) {
    for (int i = 0; i < n_answers; i++) json_decref(answers[i]);
    n_answers = 0;
}

/* Writes `input` to a file, runs `grpo verify ARGS < file`, parses each stdout line into
 * answers[] (a line that is not JSON is a failed check). Returns the exit code. */
static int run_verify(const char *args, const char *input) {
    clear_answers();
    char in_path[PATH_MAX + 16], err_path[PATH_MAX + 16], cmd[3 * PATH_MAX];
    snprintf(in_path, sizeof in_path, "%s/in.jsonl", dir);
    snprintf(err_path, sizeof err_path, "%s/err.txt", dir);
    FILE *f = fopen(in_path, "w");
    if (!f) return -1;
    fputs(input, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s verify %s < %s 2> %s", grpo, args, in_path, err_path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[65536];
    while (fgets(line, sizeof line, p)) {
        json_error_t err;
        json_t *v = json_loads(line, 0, &err);
        CHECK_MSG(v != NULL, "grpo verify %s: answer line is not JSON: %s", args, line);
        if (v && n_answers < MAX_LINES) answers[n_answers++] = v;
        else json_decref(v);
    }
    int status = pclose(p);
    f = fopen(err_path, "r");
    size_t n = f ? fread(stderr_text, 1, sizeof stderr_text - 1, f) : 0;
    stderr_text[n] = 0;
    if (f) fclose(f);
    if (status == -1) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *str_of(int i, const char *key) {
    return i < n_answers ? json_string_value(json_object_get(answers[i], key)) : NULL;
}
static int bool_of(int i, const char *key) {
    json_t *v = i < n_answers ? json_object_get(answers[i], key) : NULL;
    return json_is_true(v) ? 1 : json_is_false(v) ? 0 : -1;
}
static double num_of(int i, const char *key) {
    json_t *v = i < n_answers ? json_object_get(answers[i], key) : NULL;
    return json_is_number(v) ? json_number_value(v) : -999;
}
/* Answer i is an error object whose message starts with prefix and contains needle. */
static int is_error(int i, const char *prefix, const char *needle) {
    const char *m = str_of(i, "error");
    if (!m || strncmp(m, prefix, strlen(prefix)) != 0 || (needle && !strstr(m, needle))) {
        fprintf(stderr, "answer %d: expected an error starting \"%s\" with \"%s\", found %s\n", i, prefix,
                needle ? needle : "", m ? m : "no error");
        return 0;
    }
    return json_object_size(answers[i]) == 1;
}

static void test_math(void) {
    const char *input =
        "{\"gold\": \"\\\\frac{1}{2}\", \"pred\": \"<think>half</think><answer>\\\\boxed{0.5}</answer>\"}\n"
        "{\"gold\": \"3\", \"pred\": \"so the answer is 4.\"}\n"
        "{\"gold\": \"3\", \"pred\": oops}\n"                                /* not JSON */
        "\n"                                                                 /* blank: skipped */
        "{\"gold\": \"\\\\frac{1\", \"pred\": \"\\\\boxed{1}\"}\n"            /* gold does not parse */
        "{\"pred\": \"\\\\boxed{1}\"}\n"                                     /* missing gold */
        "{\"gold\": \"1\", \"pred\": 1}\n"                                   /* wrong type */
        "{\"gold\": 42, \"response\": \"The final answer is 42\"}\n";        /* integer gold, response */
    int rc = run_verify("math", input);
    CHECK_INT(1, rc);
    CHECK_INT(7, n_answers);
    CHECK_INT(1, bool_of(0, "correct"));
    CHECK_STR("0.5", str_of(0, "extracted"));
    CHECK_STR("boxed", str_of(0, "rule"));
    CHECK_STR("ok", str_of(0, "status"));
    CHECK_INT(0, bool_of(1, "correct"));
    CHECK_STR("4", str_of(1, "extracted"));
    CHECK(is_error(2, "stdin:3:", NULL));
    CHECK(is_error(3, "stdin:5: ", "\\frac{1"));
    CHECK(is_error(4, "stdin:6: ", "missing field 'gold'"));
    CHECK(is_error(5, "stdin:7: ", "expected a string in 'pred', found a number"));
    CHECK_INT(1, bool_of(6, "correct"));
    CHECK_STR("42", str_of(6, "extracted"));
    CHECK_MSG(strstr(stderr_text, "4 line(s)"), "stderr: %s", stderr_text);

    /* all good: exit 0; an empty input: no answers, exit 0 */
    CHECK_INT(0, run_verify("math", "{\"gold\": \"2\", \"pred\": \"\\\\boxed{2}\"}\n{\"gold\": \"x+1\", \"pred\": \"\\\\boxed{1+x}\"}"));
    CHECK_INT(2, n_answers);
    CHECK_INT(1, bool_of(0, "correct"));
    CHECK_INT(1, bool_of(1, "correct"));
    CHECK_INT(0, run_verify("math", ""));
    CHECK_INT(0, n_answers);
    /* the last-number fallback is opt-in */
    const char *tail = "{\"gold\": \"12\", \"pred\": \"we computed many things and got 7 then finally 12 after all of this work\"}\n";
    CHECK_INT(0, run_verify("math", tail));
    CHECK_INT(0, bool_of(0, "correct"));
    CHECK_INT(0, run_verify("math --last-number-fallback", tail));
    CHECK_INT(1, bool_of(0, "correct"));
    CHECK_STR("last_number", str_of(0, "rule"));
}

static void test_countdown(void) {
    const char *input =
        "{\"numbers\": [25, 3, 7, 1], \"target\": 82, \"response\": \"<think>t</think><answer>25 * 3 + 7</answer>\"}\n"
        "{\"numbers\": [25, 3, 7, 1], \"target\": 82, \"response\": \"<answer>25 * 3 + 3 + 1</answer>\"}\n"
        "{\"numbers\": [1, 2], \"response\": \"<answer>1 + 2</answer>\"}\n"
        "{\"numbers\": [2, 5], \"target\": 10, \"response\": \"<answer>2 * 5 = 10</answer>\"}\n"
        "{\"numbers\": [2, 5], \"target\": 10, \"response\": \"<answer>2 +</answer>\"}\n";
    CHECK_INT(1, run_verify("countdown", input));
    CHECK_INT(5, n_answers);
    CHECK_INT(1, bool_of(0, "correct"));
    CHECK_STR("correct", str_of(0, "verdict"));
    CHECK_STR("25 * 3 + 7", str_of(0, "expression"));
    CHECK_INT(0, bool_of(1, "correct"));
    CHECK_STR("bad_numbers", str_of(1, "verdict"));
    CHECK(is_error(2, "stdin:3: ", "missing field 'target'"));
    CHECK_INT(1, bool_of(3, "correct"));
    CHECK_STR("unparseable", str_of(4, "verdict"));
    /* --use-all: 2 * 5 leaves 3 unused */
    const char *partial = "{\"numbers\": [2, 5, 3], \"target\": 10, \"response\": \"<answer>2 * 5</answer>\"}\n";
    CHECK_INT(0, run_verify("countdown", partial));
    CHECK_STR("correct", str_of(0, "verdict"));
    CHECK_INT(0, run_verify("countdown --use-all", partial));
    CHECK_STR("bad_numbers", str_of(0, "verdict"));
}

static void test_format(void) {
    const char *good = "<think>\\nsome thought\\n</think>\\n<answer>\\n42\\n</answer>";
    const char *good_raw = "<think>\nsome thought\n</think>\n<answer>\n42\n</answer>";
    char input[2048];
    snprintf(input, sizeof input,
             "{\"response\": \"%s\"}\n"
             "{\"response\": \"the the the the the the\"}\n"
             "{\"text\": \"no response key\"}\n"
             "{\"response\": \"abc\", \"pattern\": \"^a.c$\"}\n"
             "{\"response\": \"abc\", \"pattern\": \"(\"}\n",
             good);
    CHECK_INT(1, run_verify("format", input));
    CHECK_INT(5, n_answers);
    CHECK_NEAR(1, num_of(0, "format"), 0, 0);
    CHECK_NEAR(1, num_of(0, "tag_count"), 0, 0);
    CHECK_NEAR(1, num_of(0, "language_consistency"), 0, 0);
    CHECK_NEAR(verify_format_repetition_penalty(good_raw, strlen(good_raw), 3, -1.0f), num_of(0, "repetition_penalty"),
               1e-6, 0);
    CHECK_NEAR(0, num_of(1, "format"), 0, 0);
    CHECK_NEAR(0, num_of(1, "tag_count"), 0, 0);
    /* 6 words, 4 trigrams, 1 distinct: (1 - 1/4) * -1 */
    CHECK_NEAR(-0.75, num_of(1, "repetition_penalty"), 1e-6, 0);
    CHECK(is_error(2, "stdin:3: ", "missing field 'response'"));
    CHECK_NEAR(1, num_of(3, "format"), 0, 0);
    CHECK(is_error(4, "stdin:5: ", "pattern"));
    /* options: open-r1's newline tags, another n-gram size and penalty, another pattern */
    CHECK_INT(0, run_verify("format --newlines --ngram-size 2 --max-penalty -0.5 --pattern '^<think>'",
                            "{\"response\": \"<think>x</think><answer>y</answer> the the the\"}\n"));
    CHECK_NEAR(1, num_of(0, "format"), 0, 0);
    CHECK_NEAR(0, num_of(0, "tag_count"), 0, 0);   /* none of the exact newline strings */
    /* words: <think>x</think><answer>y</answer> the the the: 3 bigrams, 2 distinct */
    CHECK_NEAR((1 - 2.0 / 3.0) * -0.5, num_of(0, "repetition_penalty"), 1e-6, 0);
    CHECK_INT(0, run_verify("format --script cjk", "{\"response\": \"中文 ab\"}\n"));
    CHECK_NEAR(0.5, num_of(0, "language_consistency"), 1e-6, 0);
    CHECK_INT(2, run_verify("format --pattern '('", "{\"response\": \"x\"}\n"));
}

static void test_code(void) {
    if (!sandbox_python_path()) {
        printf("grpo verify code: python3 not found, skipped\n");
        return;
    }
    const char *input =
        "{\"language\": \"python\", \"code\": \"print(int(input()) * 2)\", \"tests\": [{\"input\": \"3\", \"output\": \"6\"}, "
        "{\"input\": \"4\", \"output\": \"9\"}]}\n"
        "{\"language\": \"python\", \"code\": \"while True: pass\", \"tests\": [{\"input\": \"\", \"output\": \"1\"}], "
        "\"time_limit_s\": 1}\n"
        "{\"language\": \"python\", \"tests\": []}\n"
        "[1, 2]\n"
        "{\"language\": \"python\", \"code\": \"import sys; print(sum(map(int, sys.stdin.read().split())))\", "
        "\"tests\": [{\"input\": \"1 2\", \"output\": \"3\"}], \"id\": \"ignored\"}\n";
    CHECK_INT(1, run_verify("code --workers 2", input));
    CHECK_INT(5, n_answers);
    CHECK_STR("wrong_answer", str_of(0, "status"));
    CHECK_NEAR(1, num_of(0, "passed"), 0, 0);
    CHECK_NEAR(2, num_of(0, "total"), 0, 0);
    CHECK_STR("time_limit", str_of(1, "status"));
    CHECK(is_error(2, "stdin:3: ", "code"));
    CHECK(is_error(3, "stdin:4", "object"));
    CHECK_STR("ok", str_of(4, "status"));
    CHECK_NEAR(1, num_of(4, "passed"), 0, 0);

    /* Order: line i sleeps less the later it comes and has i + 1 tests, so "total" names the
     * line; with 3 workers later lines finish first, yet answers come in input order. */
    enum { N = 9 };
    char buf[16384];
    size_t used = 0;
    for (int i = 0; i < N; i++) {
        used += (size_t)snprintf(buf + used, sizeof buf - used,
                                 "{\"language\": \"python\", \"code\": \"import time; time.sleep(%.2f); print(input())\", "
                                 "\"tests\": [", 0.05 * (N - i));
        for (int t = 0; t <= i; t++)
            used += (size_t)snprintf(buf + used, sizeof buf - used, "%s{\"input\": \"%d\", \"output\": \"%d\"}",
                                     t ? ", " : "", t, t);
        used += (size_t)snprintf(buf + used, sizeof buf - used, "]}\n");
    }
    CHECK_INT(0, run_verify("code --workers 3 --flush", buf));
    CHECK_INT(N, n_answers);
    for (int i = 0; i < N && i < n_answers; i++) {
        CHECK_STR("ok", str_of(i, "status"));
        CHECK_NEAR(i + 1, num_of(i, "total"), 0, 0);
        CHECK_NEAR(i + 1, num_of(i, "passed"), 0, 0);
    }
}

/* Runs `grpo verify ARGS` with no input, capturing stdout into out; returns the exit code. */
static int run_text(const char *args, char *out, size_t cap) {
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "%s verify %s < /dev/null 2>/dev/null", grpo, args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, cap - 1, p) : 0;
    out[n] = 0;
    int status = p ? pclose(p) : -1;
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_usage(void) {
    const char *verbs[] = {"math", "code", "countdown", "format"};
    char args[64], out[8192];
    for (int k = 0; k < 4; k++) {
        snprintf(args, sizeof args, "%s --help", verbs[k]);
        CHECK_INT(0, run_text(args, out, sizeof out));
        CHECK_MSG(strstr(out, "in:") && strstr(out, "out:") && strstr(out, verbs[k]), "grpo verify %s:\n%s", args, out);
    }
    CHECK_INT(0, run_text("--help", out, sizeof out));
    CHECK_MSG(strstr(out, "Exit status") && strstr(out, "math|code|countdown|format"), "grpo verify --help:\n%s", out);
    CHECK_INT(2, run_text("", out, sizeof out));
    CHECK_INT(2, run_text("algebra", out, sizeof out));
    CHECK_INT(2, run_text("math --bogus", out, sizeof out));
    CHECK_INT(2, run_text("code --workers 0", out, sizeof out));
    CHECK_INT(2, run_text("format --script klingon", out, sizeof out));
}

int main(void) {
    grpo = getenv("GRPO_BINARY");
    if (!grpo) TEST_SKIP("GRPO_BINARY is not set (run through ctest)");
    snprintf(dir, sizeof dir, "/tmp/grpo_test_verify_cli_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(dir));
    test_math();
    test_countdown();
    test_format();
    test_code();
    test_usage();
    clear_answers();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
