/* The `grpo run` stage pipeline (rl/run.h): each stage kind on tiny data (pretrain, sft,
 * grpo, rejection, distill, eval), stage outputs as models other stages name, the
 * `defaults:` mapping, the run store driving resume, and configuration errors refused
 * before any work with file:line. The real-size templates load and validate. */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/log.h"
#include "harness.h"
#include "rl/run.h"

static char dir[PATH_MAX];

static void write_text(const char *name, const char *text) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static const char *path_of(const char *name) {
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* Line numbers matter: the error tests below point at them. */
static const char *pipeline_yaml =
    "run: {name: p, output_dir: OUT, seed: 5, threads: 1}\n"                                      /* 1 */
    "model: {preset: tiny-dense, tokenizer: builtin}\n"                                            /* 2 */
    "datasets:\n"                                                                                  /* 3 */
    "  - {name: text, generate: arith, n: 48, difficulty: 1, ops: \"+-\", answer_noise: 0.5}\n"    /* 4 */
    "  - {name: train, generate: arith, n: 48, offset: 1000, difficulty: 1, ops: \"+-\"}\n"        /* 5 */
    "  - {name: held, generate: arith, n: 6, offset: 90000, difficulty: 1, ops: \"+-\"}\n"         /* 6 */
    "  - {name: kept, from_stage: sample}\n"                                                       /* 7 */
    "defaults:\n"                                                                                  /* 8 */
    "  max_steps: 2\n"                                                                             /* 9 */
    "  per_device_train_batch_size: 4\n"                                                           /* 10 */
    "  max_length: 96\n"                                                                           /* 11 */
    "  max_prompt_length: 48\n"                                                                    /* 12 */
    "  max_completion_length: 24\n"                                                                /* 13 */
    "  learning_rate: 1.0e-3\n"                                                                    /* 14 */
    "  logging_steps: 1\n"                                                                         /* 15 */
    "  eval_num_generations: 2\n"                                                                  /* 16 */
    "  num_generations: 2\n"                                                                       /* 17 */
    "  num_samples: 2\n"                                                                           /* 18 */
    "  max_prompts: 4\n"                                                                           /* 19 */
    "  heldout_dataset: held\n"                                                                    /* 20 */
    "  prompt_template: \"Q: {prompt}\\nA: \"\n"                                                   /* 21 */
    "  rewards: [{name: accuracy}, {name: format, weight: 0.2}]\n"                                 /* 22 */
    "stages:\n"                                                                                    /* 23 */
    "  - {name: base, kind: pretrain, train_dataset: text, max_steps: 3}\n"                        /* 24 */
    "  - {name: cold, kind: sft, train_dataset: text}\n"                                           /* 25 */
    "  - {name: rl, kind: grpo, train_dataset: train}\n"                                           /* 26 */
    "  - {name: sample, kind: rejection, train_dataset: train, filter: false}\n"                   /* 27 */
    "  - {name: resft, kind: sft, train_dataset: kept}\n"                                          /* 28 */
    "  - {name: small, kind: distill, train_dataset: train, seed: 9, student: tiny-dense, filter: false}\n" /* 29 */
    "  - {name: final, kind: eval, model: rl, eval_dataset: held}\n";                              /* 30 */

static char *config_text(void) {
    size_t n = strlen(pipeline_yaml) + strlen(dir) + 64;
    char *text = malloc(n), *out = text;
    const char *at = strstr(pipeline_yaml, "OUT");
    out += snprintf(out, n, "%.*s%s/runs%s", (int)(at - pipeline_yaml), pipeline_yaml, dir, at + 3);
    (void)out;
    return text;
}

/* The pipeline config with the first `from` replaced by `to`, as bad.yaml: loading (and
 * the disk checks run_execute starts with) must fail with a message holding `where`
 * (file:line) and `what`, before any work. */
static void expect_refused(const char *from, const char *to, const char *where, const char *what) {
    char *text = config_text();
    char *at = strstr(text, from);
    CHECK_MSG(at != NULL, "test bug: '%s' is not in the config", from);
    if (!at) {
        free(text);
        return;
    }
    size_t n = strlen(text) + strlen(to) + 1;
    char *bad = malloc(n);
    snprintf(bad, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    write_text("bad.yaml", bad);
    free(bad);
    free(text);
    run_config *c = NULL;
    grpo_status s = run_config_load(path_of("bad.yaml"), NULL, 0, &c);
    if (!s) {
        s = run_check_paths(c);
        run_config_free(c);
    }
    CHECK_MSG(s != GRPO_OK, "'%s' -> '%s': expected a refusal", from, to);
    const char *m = grpo_error_message();
    CHECK_MSG(strstr(m, where) && strstr(m, what), "'%s' -> '%s': message \"%s\" lacks \"%s\" or \"%s\"", from, to,
              m, where, what);
}

static void test_config_errors(void) {
    expect_refused("name: cold, kind: sft", "name: cold, kind: dance", "bad.yaml:25:", "dance");
    expect_refused(", student: tiny-dense, filter: false}", ", filter: false}", "bad.yaml:29:", "needs student");
    expect_refused("train_dataset: kept}", "train_dataset: kept, student: tiny-dense}", "bad.yaml:28:",
                   "distill stages only");
    /* a dataset from a stage that runs later */
    expect_refused("kind: grpo, train_dataset: train}", "kind: grpo, train_dataset: kept}", "bad.yaml:26:",
                   "does not run before");
    expect_refused("from_stage: sample}", "from_stage: rl}", "bad.yaml:7:", "rejection or distill");
    expect_refused("kind: sft, train_dataset: text}", "kind: sft, train_dataset: text, model: final}", "bad.yaml:25:",
                   "does not run before");
    expect_refused("kind: sft, train_dataset: text}", "kind: sft, train_dataset: text, model: no-such-model}",
                   "bad.yaml:25:", "no-such-model");
    expect_refused("model: rl, eval_dataset: held}", "model: rl}", "bad.yaml:30:", "eval_dataset");
    expect_refused("model: rl, eval_dataset: held}", "model: rl, eval_dataset: held, heldout_dataset: nope}",
                   "bad.yaml:30:", "no dataset named 'nope'");
    expect_refused("  max_steps: 2\n", "  max_steps: 0\n", "bad.yaml:9:", "max_steps");
    expect_refused("train, filter: false}", "train, filter: false, rewards: []}", "bad.yaml:27:", "rewards");
    /* and nothing was started */
    char runs[PATH_MAX];
    snprintf(runs, sizeof runs, "%s/runs", dir);
    CHECK_MSG(!fs_exists(runs), "a refused config must not start a run (found %s)", runs);
}

static void test_defaults(void) {
    run_config *c = NULL;
    CHECK_OK(run_config_load(path_of("p.yaml"), NULL, 0, &c));
    if (!c) return;
    CHECK_INT(7, c->n_stages);
    CHECK_INT(3, c->stages[0].max_steps);       /* its own key wins */
    CHECK_INT(2, c->stages[1].max_steps);       /* from defaults */
    CHECK_INT(24, c->stages[2].max_completion_length);
    CHECK_INT(2, c->stages[3].n_rewards);
    CHECK_STR("held", c->stages[6].heldout_dataset);
    CHECK_INT(-1, c->stages[0].completion_only_loss);   /* unset: the kind decides */
    run_config_free(c);
}

static json_t *stage_json(json_t *summary, int i) {
    return json_array_get(json_object_get(summary, "stages"), (size_t)i);
}

static void test_every_kind(void) {
    run_config *c = NULL;
    CHECK_OK(run_config_load(path_of("p.yaml"), NULL, 0, &c));
    if (!c) return;
    run_summary *sum = calloc(1, sizeof *sum);
    grpo_status s = run_execute(c, sum);
    CHECK_MSG(s == GRPO_OK, "run_execute: %s", grpo_error_message());
    if (!s) {
        CHECK_INT(7, sum->n_stages);
        const char *kinds[] = {"pretrain", "sft", "grpo", "rejection", "sft", "distill", "eval"};
        for (int i = 0; i < 7; i++) CHECK_STR(kinds[i], sum->stages[i].kind);
        CHECK_INT(3, sum->stages[0].steps);
        CHECK_INT(2, sum->stages[1].steps);
        CHECK_INT(2, sum->stages[2].steps);
        /* the training kinds leave a model the later stages can name */
        const char *trained[] = {"base", "cold", "rl", "resft", "small"};
        for (int i = 0; i < 5; i++) {
            char p[PATH_MAX];
            snprintf(p, sizeof p, "%s/runs/p/models/%s/config.json", dir, trained[i]);
            CHECK_MSG(fs_exists(p), "missing %s", p);
        }
        /* rejection: N samples of max_prompts prompts, all kept without the filter, 1 per
         * prompt (the default cap) */
        CHECK_INT(4 * 2, sum->stages[3].samples);
        CHECK_INT(4, sum->stages[3].kept);
        char data[PATH_MAX];
        snprintf(data, sizeof data, "%s/runs/p/data/sample.jsonl", dir);
        CHECK(fs_exists(data));
        /* distill: teacher and student side by side; the student is the dense preset */
        CHECK(isfinite(sum->stages[5].heldout.pass_at_1));
        CHECK(isfinite(sum->stages[5].heldout_teacher.pass_at_1));
        CHECK(strstr(sum->stages[5].student, "tiny-dense") != NULL);
        CHECK(strstr(sum->stages[5].model, "models/resft") != NULL);
        /* the teacher is resft's output: the same held-out numbers as resft's row, whatever
         * the stage's own seed */
        CHECK_NEAR(sum->stages[4].heldout.pass_at_1, sum->stages[5].heldout_teacher.pass_at_1, 0, 0);
        CHECK_NEAR(sum->stages[4].heldout.mean_length, sum->stages[5].heldout_teacher.mean_length, 0, 0);
        /* eval names an earlier stage's output */
        CHECK(strstr(sum->stages[6].model, "models/rl") != NULL);
        CHECK_INT(2, sum->stages[6].heldout.k);
        for (int i = 0; i < 7; i++)
            if (i != 3) CHECK_MSG(isfinite(sum->stages[i].heldout.pass_at_1), "stage %d has no held-out row", i);
        /* the eval of rl's output equals rl's own held-out row: same model, same settings */
        CHECK_NEAR(sum->stages[2].heldout.pass_at_1, sum->stages[6].heldout.pass_at_1, 0, 0);
        CHECK_NEAR(sum->stages[2].heldout.mean_length, sum->stages[6].heldout.mean_length, 0, 0);
        FILE *devnull = fopen("/dev/null", "w");
        run_summary_print(sum, devnull);
        fclose(devnull);

        /* run again: every stage is finished in run.db; nothing reruns and the summary
         * comes back the same */
        run_summary *again = calloc(1, sizeof *again);
        CHECK_OK(run_execute(c, again));
        for (int i = 0; i < 7; i++) {
            CHECK_STR(sum->stages[i].name, again->stages[i].name);
            CHECK_INT(sum->stages[i].steps, again->stages[i].steps);
            CHECK_NEAR(sum->stages[i].heldout.pass_at_1, again->stages[i].heldout.pass_at_1, 0, 0);
            CHECK_NEAR(sum->stages[i].seconds, again->stages[i].seconds, 1e-9, 1e-9);
        }
        free(again);
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/runs/p/summary.json", dir);
        json_error_t err;
        json_t *j = json_load_file(p, 0, &err);
        CHECK(j != NULL);
        CHECK(json_object_get(stage_json(j, 5), "heldout_teacher") != NULL);
        CHECK_STR("distill", json_string_value(json_object_get(stage_json(j, 5), "kind")));
        json_decref(j);
    }
    free(sum);
    run_config_free(c);
}

/* A stage that fails leaves the finished ones recorded: the next invocation resumes at
 * it. Filtered rejection sampling of a barely trained model keeps nothing and stops the
 * run with a clear message; without the filter the same run then finishes, and the
 * first three stages are not run again (their summaries come back from run.db). */
static void test_resume_after_failure(void) {
    char *text = config_text();
    char *name = strstr(text, "name: p,");
    name[6] = 'q';
    char *filter = strstr(text, "train_dataset: train, filter: false}");
    const char *keep = "train_dataset: train, filter: false}";
    memcpy(filter, "train_dataset: train, filter: true} ", strlen(keep));
    write_text("q.yaml", text);
    run_config *c = NULL;
    run_summary *first = calloc(1, sizeof *first), *second = calloc(1, sizeof *second);
    CHECK_OK(run_config_load(path_of("q.yaml"), NULL, 0, &c));
    if (c) CHECK_FAILS(run_execute(c, first), "no sample was kept");
    run_config_free(c);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/runs/q/models/rl/config.json", dir);
    CHECK_MSG(fs_exists(p), "stage rl's output is missing after the failure in the next stage");
    snprintf(p, sizeof p, "%s/runs/q/data/sample.jsonl", dir);
    CHECK_MSG(!fs_exists(p), "a failed rejection stage must not leave its output");

    memcpy(filter, keep, strlen(keep));
    write_text("q.yaml", text);
    c = NULL;
    CHECK_OK(run_config_load(path_of("q.yaml"), NULL, 0, &c));
    if (c) CHECK_OK(run_execute(c, second));
    run_config_free(c);
    for (int i = 0; i < 3; i++) {
        CHECK_STR(first->stages[i].name, second->stages[i].name);
        CHECK_NEAR(first->stages[i].seconds, second->stages[i].seconds, 0, 0);   /* read back, not rerun */
        CHECK_NEAR(first->stages[i].heldout.pass_at_1, second->stages[i].heldout.pass_at_1, 0, 0);
    }
    CHECK_INT(8, second->stages[3].samples);
    free(first);
    free(second);
    free(text);
}

/* The real-size templates: documented, never run here; they must load and validate. */
static void test_templates(void) {
    const char *names[] = {"configs/r1-zero.yaml", "configs/distill.yaml", "configs/r1-pipeline-demo.yaml",
                           "configs/demo.yaml"};
    for (int i = 0; i < 4; i++) {
        run_config *c = NULL;
        grpo_status s = run_config_load(harness_source_path(names[i]), NULL, 0, &c);
        CHECK_MSG(s == GRPO_OK, "%s: %s", names[i], grpo_error_message());
        run_config_free(c);
    }
}

int main(void) {
    log_set_level(LOG_WARN);
    snprintf(dir, sizeof dir, "/tmp/grpo_test_pipeline_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(dir));
    char *text = config_text();
    write_text("p.yaml", text);
    free(text);
    test_config_errors();
    test_defaults();
    test_templates();
    test_every_kind();
    test_resume_after_failure();
    fs_remove_tree(dir);
    TEST_MAIN_END();
}
