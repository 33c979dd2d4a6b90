/* The `grpo` command line on good and hostile input: every bad input gives a clear
 * message and exit code 1 (bad input) or 2 (bad usage), never a crash. Runs the built
 * binary (GRPO_BINARY, set by ctest). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "harness.h"

static const char *grpo;
static char dir[PATH_MAX];
static char output[65536];

/* Runs `grpo ARGS` in the temp dir, capturing stdout+stderr; returns the exit code
 * (128+signal when killed, which counts as a crash). */
static int run(const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>&1", dir, grpo, args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(output, 1, sizeof output - 1, p) : 0;
    output[n] = 0;
    int status = p ? pclose(p) : -1;
    if (status == -1) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void write_text(const char *name, const char *text) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static int output_has(const char *needle) { return !needle || strstr(output, needle) != NULL; }

#define EXPECT_RUN(args, code, needle) do { int rc_ = run(args); \
    CHECK_MSG(rc_ == (code), "grpo %s: exit %d, expected %d; output:\n%s", args, rc_, code, output); \
    CHECK_MSG(output_has(needle), "grpo %s: output lacks the expected text; output:\n%s", args, output); \
    } while (0)

static const char *good_config =
    "run:\n  name: r1\n  output_dir: runs\n  seed: 3\n"
    "model:\n  preset: tiny-dense\n"
    "datasets:\n  - name: train\n    path: sft.jsonl\n"
    "stages:\n  - name: sft\n    kind: sft\n    train_dataset: train\n    max_steps: 2\n"
    "    per_device_train_batch_size: 2\n    max_length: 64\n";

int main(void) {
    grpo = getenv("GRPO_BINARY");
    if (!grpo) TEST_SKIP("GRPO_BINARY is not set (run through ctest)");
    snprintf(dir, sizeof dir, "/tmp/grpo_test_cli_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(dir));

    /* usage */
    EXPECT_RUN("", 2, "usage: grpo COMMAND");
    EXPECT_RUN("--help", 0, "commands:");
    EXPECT_RUN("frobnicate", 2, "unknown command 'frobnicate'");
    const char *commands[] = {"run", "init", "forward", "data", "info", "eval", "sample", "verify"};
    for (int i = 0; i < 8; i++) {
        char args[64];
        snprintf(args, sizeof args, "%s --help", commands[i]);
        EXPECT_RUN(args, 0, "usage: grpo");
    }
    EXPECT_RUN("info", 0, "cpu backend: yes");

    /* data */
    EXPECT_RUN("data arith --n 3 --seed 1", 0, "\"prompt\":\"What is");
    EXPECT_RUN("data arith --n x", 2, "--n: expected an integer");
    EXPECT_RUN("data arith --n 3 --ops /", 2, "--ops");
    EXPECT_RUN("data countdown --n 2 --max-number 50 --max-target 10", 2, "--max-target");
    EXPECT_RUN("data sudoku --n 2", 2, "usage");

    /* init + forward */
    EXPECT_RUN("init --preset nope --out m", 2, "no preset named 'nope'");
    EXPECT_RUN("init --preset tiny-dense --out m", 0, "wrote m");
    EXPECT_RUN("forward --model m --tokens 1,2,3 --out f.safetensors", 0, "logits [3, 400]");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/f.safetensors", dir);
    st_file *f = NULL;
    CHECK_OK(st_open(path, &f));
    if (f) {
        const st_tensor *t = st_find(f, "logits");
        CHECK(t && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 400);
        st_close(f);
    }
    EXPECT_RUN("forward --model m --tokens 1,x --out g.safetensors", 2, "--tokens");
    /* eval: a random model on a few problems gives a well-formed summary */
    EXPECT_RUN("data arith --n 3 --seed 2 --out e.jsonl", 0, NULL);
    EXPECT_RUN("eval --model m --data e.jsonl --k 2 --max-tokens 8 --template {prompt}", 0, "\"pass@k\"");
    CHECK(strstr(output, "\"problems\": 3") != NULL);
    EXPECT_RUN("eval --model m --data e.jsonl --reward nonsense", 2, "--reward");
    EXPECT_RUN("eval --model m --data missing.jsonl --k 2", 1, "missing.jsonl");
    EXPECT_RUN("forward --model m --tokens 400 --out g.safetensors", 1, "outside the vocabulary");
    EXPECT_RUN("forward --model nowhere --tokens 1 --out g.safetensors", 1, "nowhere/config.json");
    /* a truncated weights file */
    EXPECT_RUN("init --preset tiny-dense --out bad", 0, NULL);
    snprintf(path, sizeof path, "%s/bad/model.safetensors", dir);
    CHECK(truncate(path, 5000) == 0);
    EXPECT_RUN("forward --model bad --tokens 1 --out g.safetensors", 1, "model.safetensors");
    /* a lying header: length past the end of the file */
    snprintf(path, sizeof path, "%s/bad/model.safetensors", dir);
    FILE *w = fopen(path, "wb");
    unsigned char header[16] = {0xff, 0xff, 0xff, 0x00, 0, 0, 0, 0, '{', '}'};
    fwrite(header, 1, 10, w);
    fclose(w);
    EXPECT_RUN("forward --model bad --tokens 1 --out g.safetensors", 1, "header");
    /* a config.json with a wrong field */
    write_text("bad/config.json", "{\"model_type\": \"qwen2\", \"hidden_size\": \"big\"}");
    EXPECT_RUN("forward --model bad --tokens 1 --out g.safetensors", 1, "hidden_size");

    /* run: configuration errors, each before any work starts */
    write_text("sft.jsonl", "{\"prompt\": \"1+1?\", \"response\": \"2\"}\n{\"prompt\": \"2+2?\", \"response\": \"4\"}\n");
    write_text("good.yaml", good_config);
    EXPECT_RUN("run missing.yaml", 1, "missing.yaml");
    write_text("tab.yaml", "run:\n\tname: x\n");
    EXPECT_RUN("run tab.yaml", 1, "tab.yaml:2:");
    write_text("quote.yaml", "run:\n  name: \"x\nmodel: {}\n");
    EXPECT_RUN("run quote.yaml", 1, "quote.yaml:");
    char text[4096];
    snprintf(text, sizeof text, "%s    learning_rat: 0.1\n", good_config);
    write_text("unknown.yaml", text);
    EXPECT_RUN("run unknown.yaml", 1, "unknown.yaml:17:5");
    CHECK(strstr(output, "learning_rat") != NULL);
    snprintf(text, sizeof text, "%s    learning_rate: fast\n", good_config);
    write_text("type.yaml", text);
    EXPECT_RUN("run type.yaml", 1, "expected a number, found 'fast'");
    snprintf(text, sizeof text, "%s    max_grad_norm: -1\n", good_config);
    write_text("range.yaml", text);
    EXPECT_RUN("run range.yaml", 1, "max_grad_norm");
    EXPECT_RUN("run good.yaml --set stages[0].max_steps=abc", 1, "--set stages[0].max_steps=abc");
    EXPECT_RUN("run good.yaml --set stages[0].train_dataset=nope", 1, "no dataset named 'nope'");
    EXPECT_RUN("run good.yaml --set model.path=elsewhere", 1, "exactly one of preset and path");
    EXPECT_RUN("run good.yaml --set stages[0].kind=dance", 1, "dance");
    EXPECT_RUN("run good.yaml --set stages[0].prompt_template={oops", 1, "prompt_template");

    /* run: a grpo stage's bad settings are refused before any work starts */
    {
        char grpo_cfg[4096];
        snprintf(grpo_cfg, sizeof grpo_cfg,
                 "run:\n  name: g\n  output_dir: runs\nmodel:\n  preset: tiny-dense\n"
                 "datasets:\n  - {name: p, generate: arith, n: 10}\n"
                 "stages:\n  - name: rl\n    kind: grpo\n    train_dataset: p\n    max_steps: 1\n"
                 "    per_device_train_batch_size: 8\n    num_generations: 4\n    max_prompt_length: 200\n"
                 "    max_completion_length: 16\n    max_length: 256\n"
                 "    rewards:\n      - {name: accuracy, weight: 1.0}\n");
        write_text("grpo.yaml", grpo_cfg);
        EXPECT_RUN("run grpo.yaml --set stages[0].num_generations=1", 1, "num_generations must be at least 2");
        EXPECT_RUN("run grpo.yaml --set stages[0].num_generations=3", 1, "must be divisible by num_generations");
        EXPECT_RUN("run grpo.yaml --set stages[0].beta=-0.1", 1, "beta");
        EXPECT_RUN("run grpo.yaml --set stages[0].rewards[0].name=acuracy", 1, "acuracy");
        EXPECT_RUN("run grpo.yaml --set stages[0].loss_type=ppo", 1, "loss_type");
        snprintf(path, sizeof path, "%s/runs/g", dir);
        CHECK_MSG(!fs_exists(path), "a refused config must not start a run (found %s)", path);
        EXPECT_RUN("run grpo.yaml", 0, "summary: runs/g/summary.json");
    }

    /* run: bad dataset lines name file:line */
    write_text("bad.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\"}\n");
    EXPECT_RUN("run good.yaml --set datasets[0].path=bad.jsonl --set run.name=r2", 1, "bad.jsonl:2");
    write_text("bad2.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}\nnot json\n");
    EXPECT_RUN("run good.yaml --set datasets[0].path=bad2.jsonl --set run.name=r3", 1, "bad2.jsonl:2");
    /* a tokenizer.json missing its model */
    snprintf(path, sizeof path, "%s/tok", dir);
    CHECK_OK(fs_mkdirs(path));
    write_text("tok/tokenizer.json", "{\"version\": \"1.0\", \"added_tokens\": []}");
    EXPECT_RUN("run good.yaml --set model.tokenizer=tok --set run.name=r4", 1, "tokenizer.json");

    /* and the good run works, resumes as finished, and writes its summary */
    EXPECT_RUN("run good.yaml", 0, "summary: runs/r1/summary.json");
    snprintf(path, sizeof path, "%s/runs/r1/summary.json", dir);
    CHECK(fs_exists(path));
    snprintf(path, sizeof path, "%s/runs/r1/ckpt/step-2/model.safetensors", dir);
    CHECK(fs_exists(path));
    EXPECT_RUN("run good.yaml", 0, "summary: runs/r1/summary.json");
    EXPECT_RUN("run good.yaml --set run.resume=false", 1, "run.resume is false");

    fs_remove_tree(dir);
    TEST_MAIN_END();
}
