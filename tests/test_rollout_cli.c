/* `grpo sample` end to end (the built binary, GRPO_BINARY set by ctest): a random
 * tiny-dense model and arithmetic problems; every output line is JSON with the fields
 * documented in `grpo sample --help`, G lines per problem, completions within
 * --max-tokens; the same --seed gives the same tokens with other slots and threads;
 * greedy samples of a problem agree; --template fills fields; bad flags, bad data lines
 * and missing template fields fail with exit codes 2 / 1 and messages naming them. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/harness.h"

static const char *grpo;
static char dir[PATH_MAX];
static char err_text[8192];

/* Runs `grpo ARGS` with stderr captured into err_text; returns the exit code. */
static int run(const char *args) {
    char cmd[4 * PATH_MAX], err_path[PATH_MAX + 16];
    snprintf(err_path, sizeof err_path, "%s/err.txt", dir);
    snprintf(cmd, sizeof cmd, "%s %s 2> %s", grpo, args, err_path);
    int status = system(cmd);
    FILE *f = fopen(err_path, "r");
    size_t n = f ? fread(err_text, 1, sizeof err_text - 1, f) : 0;
    err_text[n] = 0;
    if (f) fclose(f);
    return status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Reads a JSONL file into lines[] (NULL-terminated; at most max); returns the count. */
static int read_lines(const char *path, json_t **lines, int max) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[1 << 16];
    int n = 0;
    while (fgets(buf, sizeof buf, f) && n < max) {
        json_error_t e;
        json_t *v = json_loads(buf, 0, &e);
        CHECK_MSG(v != NULL, "%s: line %d is not JSON: %s", path, n + 1, e.text);
        if (v) lines[n++] = v;
    }
    fclose(f);
    return n;
}

static void free_lines(json_t **lines, int n) {
    for (int i = 0; i < n; i++) json_decref(lines[i]);
}

#define MAXL 64

int main(void) {
    grpo = getenv("GRPO_BINARY");
    if (!grpo) TEST_SKIP("GRPO_BINARY is not set (run through ctest)");
    snprintf(dir, sizeof dir, "/tmp/grpo_test_sample_XXXXXX");
    if (!mkdtemp(dir)) TEST_SKIP("mkdtemp failed");
    char args[4 * PATH_MAX], out1[PATH_MAX + 16], out2[PATH_MAX + 16];
    snprintf(out1, sizeof out1, "%s/s1.jsonl", dir);
    snprintf(out2, sizeof out2, "%s/s2.jsonl", dir);

    snprintf(args, sizeof args, "init --preset tiny-dense --out %s/m > /dev/null", dir);
    CHECK_INT(0, run(args));
    snprintf(args, sizeof args, "data arith --n 5 --seed 3 > %s/a.jsonl", dir);
    CHECK_INT(0, run(args));

    const char *common = "-n 3 --max-tokens 12 --seed 9 --temperature 0.8 --top-p 0.95 --stop '</answer>'";
    snprintf(args, sizeof args, "sample --model %s/m --data %s/a.jsonl %s --out %s", dir, dir, common, out1);
    CHECK_INT(0, run(args));
    CHECK_MSG(strstr(err_text, "5 prompts x 3 samples") != NULL, "summary line: %s", err_text);
    json_t *a[MAXL], *b[MAXL];
    int na = read_lines(out1, a, MAXL);
    CHECK_INT(15, na);
    for (int i = 0; i < na; i++) {
        json_t *o = a[i], *tokens = json_object_get(o, "tokens");
        CHECK_INT(i / 3, json_integer_value(json_object_get(o, "index")));
        CHECK_INT(i % 3, json_integer_value(json_object_get(o, "sample")));
        CHECK(json_is_string(json_object_get(o, "id")) && json_is_string(json_object_get(o, "answer")));
        CHECK(json_is_string(json_object_get(o, "completion")));
        const char *prompt = json_string_value(json_object_get(o, "prompt"));
        CHECK(prompt && !strncmp(prompt, "A conversation between User and Assistant", 41));
        size_t n = json_array_size(tokens);
        CHECK(n >= 1 && n <= 12);
        CHECK_INT(n, json_array_size(json_object_get(o, "logprobs")));
        CHECK_INT(n, json_array_size(json_object_get(o, "policy_logprobs")));
        const char *fr = json_string_value(json_object_get(o, "finish_reason"));
        CHECK(fr && (!strcmp(fr, "length") ? n == 12 : !strcmp(fr, "stop")));
        for (size_t t = 0; t < n; t++) CHECK(json_real_value(json_array_get(json_object_get(o, "logprobs"), t)) <= 0);
    }
    /* the same seed with 2 slots and one thread: the same tokens */
    snprintf(args, sizeof args, "sample --model %s/m --data %s/a.jsonl %s --max-num-seqs 2 --threads 1 --out %s", dir,
             dir, common, out2);
    CHECK_INT(0, run(args));
    int nb = read_lines(out2, b, MAXL);
    CHECK_INT(na, nb);
    for (int i = 0; i < na && i < nb; i++)
        CHECK_MSG(json_equal(json_object_get(a[i], "tokens"), json_object_get(b[i], "tokens")),
                  "line %d: other tokens with another batch and thread count", i + 1);
    free_lines(b, nb);
    /* another seed: other tokens somewhere */
    snprintf(args, sizeof args, "sample --model %s/m --data %s/a.jsonl -n 3 --max-tokens 12 --seed 10 "
             "--temperature 0.8 --top-p 0.95 --out %s", dir, dir, out2);
    CHECK_INT(0, run(args));
    nb = read_lines(out2, b, MAXL);
    int differ = 0;
    for (int i = 0; i < na && i < nb; i++) differ += !json_equal(json_object_get(a[i], "tokens"), json_object_get(b[i], "tokens"));
    CHECK(differ > 0);
    free_lines(b, nb);
    free_lines(a, na);

    /* greedy with a custom template */
    snprintf(args, sizeof args, "sample --model %s/m --data %s/a.jsonl -n 2 --max-tokens 6 --temperature 0 "
             "--template 'Q: {prompt} ({id})' --out %s", dir, dir, out2);
    CHECK_INT(0, run(args));
    nb = read_lines(out2, b, MAXL);
    CHECK_INT(10, nb);
    for (int i = 0; i + 1 < nb; i += 2) {
        CHECK(json_equal(json_object_get(b[i], "tokens"), json_object_get(b[i + 1], "tokens")));
        const char *prompt = json_string_value(json_object_get(b[i], "prompt"));
        CHECK(prompt && !strncmp(prompt, "Q: What is", 10) && strstr(prompt, "(arith-3-"));
    }
    free_lines(b, nb);

    /* failures */
    snprintf(args, sizeof args, "sample --model %s/m --data %s/a.jsonl --out %s", dir, dir, out2);
    CHECK_INT(2, run(args));   /* no -n */
    snprintf(args, sizeof args, "sample --model %s/m --data %s/a.jsonl -n 2 --top-p 0", dir, dir);
    CHECK_INT(2, run(args));
    CHECK(strstr(err_text, "--top-p") != NULL);
    snprintf(args, sizeof args, "sample --model %s/m --data %s/a.jsonl -n 2 --bogus 1", dir, dir);
    CHECK_INT(2, run(args));
    snprintf(args, sizeof args, "sample --model %s/m --data %s/a.jsonl -n 2 --template '{question}' --out %s", dir,
             dir, out2);
    CHECK_INT(1, run(args));
    CHECK_MSG(strstr(err_text, "question") && strstr(err_text, "a.jsonl:1"), "missing field message: %s", err_text);
    char bad_path[PATH_MAX + 16];
    snprintf(bad_path, sizeof bad_path, "%s/bad.jsonl", dir);
    FILE *bf = fopen(bad_path, "w");
    CHECK(bf != NULL);
    if (bf) {
        fputs("{\"prompt\": \"x\"}\nnot json\n", bf);
        fclose(bf);
    }
    snprintf(args, sizeof args, "sample --model %s/m --data %s/bad.jsonl -n 2 --out %s", dir, dir, out2);
    CHECK_INT(1, run(args));
    CHECK_MSG(strstr(err_text, "bad.jsonl:2") != NULL, "bad line message: %s", err_text);
    snprintf(args, sizeof args, "sample --model %s/nowhere --data %s/a.jsonl -n 2 --out %s", dir, dir, out2);
    CHECK_INT(1, run(args));

    snprintf(args, sizeof args, "rm -rf %s", dir);
    CHECK_INT(0, system(args));
    TEST_MAIN_END();
}
