/* The README's main job, whole: `grpo run configs/demo.yaml` as a user runs it (in a temp
 * output dir). Checks what the demo promises: the summary table and summary.json, a base
 * evaluated before RL and the RL model after, held-out pass@1 up by at least 20 points, and
 * held-out problems that neither the pretraining text nor the RL problems contain.
 * Then the R1 pipeline's distillation claim on the demo's two models: a dense student trained
 * on the RL model's verified samples beats the same student trained on the base model's
 * unfiltered samples (configs/r1-pipeline-demo.yaml's distill and baseline stages, smaller). */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fs.h"
#include "harness.h"

/* The "prompt" of every line of a JSONL file, as one newline-joined string ("\n" first). */
static char *prompts_of(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 1 << 20, len = 1;
    char *all = malloc(cap), line[8192];
    all[0] = '\n';
    all[1] = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        const char *p = json_string_value(json_object_get(o, "prompt"));
        size_t n = p ? strlen(p) : 0;
        if (p && len + n + 2 >= cap) {
            cap = 2 * (len + n + 2);
            all = realloc(all, cap);
        }
        if (p) {
            memcpy(all + len, p, n);
            len += n;
            all[len++] = '\n';
            all[len] = 0;
        }
        json_decref(o);
    }
    fclose(f);
    return all;
}

/* How many of `held`'s prompts occur among `train`'s. */
static int shared_prompts(const char *held, const char *train) {
    int shared = 0;
    char needle[8192];
    for (const char *p = held + 1; *p; ) {
        const char *end = strchr(p, '\n');
        size_t n = (size_t)(end - p);
        if (n + 3 < sizeof needle) {
            needle[0] = '\n';
            memcpy(needle + 1, p, n);
            needle[n + 1] = '\n';
            needle[n + 2] = 0;
            shared += strstr(train, needle) != NULL;
        }
        p = end + 1;
    }
    return shared;
}

/* Two distill stages from the demo's models into the same dense student preset. */
static const char *distill_config =
    "run: {name: distill, output_dir: %s, seed: 1, resume: false}\n"
    "model: {path: %s/demo/models/rl, tokenizer: builtin}\n"
    "datasets:\n"
    "  - {name: prompts, generate: arith, n: 2000, offset: 700000000, difficulty: 2, ops: \"+\", split: train}\n"
    "  - {name: held_out, generate: arith, n: 64, offset: 1000000000, difficulty: 2, ops: \"+\", split: held_out}\n"
    "defaults:\n"
    "  prompt_template: \"User: {prompt} Show your work in <think> </think> and the result in <answer> </answer>.\\nAssistant: \"\n"
    "  heldout_dataset: held_out\n  eval_num_generations: 4\n  max_prompt_length: 64\n  max_completion_length: 112\n"
    "  max_length: 192\n"
    "  rewards: [{name: accuracy, weight: 1.0}, {name: format, weight: 0.2}]\n"
    "  student: tiny-dense\n  train_dataset: prompts\n  max_prompts: 1000\n  num_samples: 4\n  max_per_prompt: 2\n"
    "  max_steps: 500\n  per_device_train_batch_size: 32\n  learning_rate: 3.0e-3\n  lr_scheduler_type: cosine\n"
    "  warmup_steps: 10\n  save_steps: 0\n  logging_steps: 100\n"
    "stages:\n"
    "  - {name: distill, kind: distill}\n"
    "  - {name: baseline, kind: distill, model: %s/demo/models/pretrain, filter: false}\n";

static double eval_number(json_t *stage, const char *which, const char *key) {
    json_t *v = json_object_get(json_object_get(stage, which), key);
    return json_is_number(v) ? json_number_value(v) : -1;
}

int main(void) {
    const char *grpo = getenv("GRPO_BINARY");
    if (!grpo) TEST_SKIP("GRPO_BINARY is not set (run through ctest)");
    char dir[PATH_MAX], cmd[3 * PATH_MAX], path[PATH_MAX];
    snprintf(dir, sizeof dir, "/tmp/grpo_test_demo_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(dir));
    snprintf(cmd, sizeof cmd, "%s run %s --set run.output_dir=%s > %s/log.txt 2>&1", grpo,
             harness_source_path("configs/demo.yaml"), dir, dir);
    int status = system(cmd);
    snprintf(path, sizeof path, "%s/log.txt", dir);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "grpo run configs/demo.yaml failed, see %s", path);

    /* the printed table */
    char *log = NULL;
    size_t log_len = 0;
    CHECK_OK(fs_read_file(path, &log, &log_len));
    CHECK_MSG(log && strstr(log, "pass@1") && strstr(log, "summary.json"), "no summary table in %s", path);
    free(log);

    snprintf(path, sizeof path, "%s/demo/summary.json", dir);
    json_error_t err;
    json_t *sum = json_load_file(path, 0, &err);
    CHECK_MSG(sum != NULL, "%s: %s", path, err.text);
    json_t *stages = json_object_get(sum, "stages");
    CHECK_INT(2, (int)json_array_size(stages));
    json_t *rl = json_array_get(stages, 1);
    double before = eval_number(rl, "eval_before", "pass@1"), after = eval_number(rl, "eval", "pass@1");
    printf("held-out pass@1: base %.1f%% -> RL %.1f%%; maj@k %.1f%% -> %.1f%%\n", 100 * before, 100 * after,
           100 * eval_number(rl, "eval_before", "maj@k"), 100 * eval_number(rl, "eval", "maj@k"));
    CHECK_MSG(before >= 0 && after >= 0, "the rl stage has no before/after evaluation in %s", path);
    CHECK_MSG(after - before >= 0.20, "pass@1 rose by %.1f points, the demo promises at least 20",
              100 * (after - before));
    json_decref(sum);

    /* the base never sees a held-out problem, and neither does RL */
    char held_path[PATH_MAX], pre_path[PATH_MAX], rl_path[PATH_MAX];
    snprintf(held_path, sizeof held_path, "%s/demo/data/held_out.jsonl", dir);
    snprintf(pre_path, sizeof pre_path, "%s/demo/data/pretrain_text.jsonl", dir);
    snprintf(rl_path, sizeof rl_path, "%s/demo/data/rl_train.jsonl", dir);
    char *held = prompts_of(held_path), *pre = prompts_of(pre_path), *train = prompts_of(rl_path);
    CHECK_MSG(held && pre && train, "the run's materialised datasets are missing under %s/demo/data", dir);
    if (held && pre && train) {
        CHECK_MSG(strlen(held) > 64, "held-out set is empty");
        int a = shared_prompts(held, pre), b = shared_prompts(held, train);
        CHECK_MSG(a == 0 && b == 0, "held-out problems seen in training: %d in the pretraining text, %d in RL", a, b);
    }
    free(held);
    free(pre);
    free(train);

    /* distillation: filtered RL teacher vs unfiltered base teacher, same student */
    char cfg_path[PATH_MAX], text[8192];
    snprintf(cfg_path, sizeof cfg_path, "%s/distill.yaml", dir);
    snprintf(text, sizeof text, distill_config, dir, dir, dir);
    FILE *f = fopen(cfg_path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s run %s > %s/distill.log 2>&1", grpo, cfg_path, dir);
    status = system(cmd);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the distill comparison failed, see %s/distill.log", dir);
    snprintf(path, sizeof path, "%s/distill/summary.json", dir);
    sum = json_load_file(path, 0, &err);
    CHECK_MSG(sum != NULL, "%s: %s", path, err.text);
    stages = json_object_get(sum, "stages");
    double filtered = eval_number(json_array_get(stages, 0), "heldout", "pass@1");
    double unfiltered = eval_number(json_array_get(stages, 1), "heldout", "pass@1");
    printf("dense student, held-out pass@1: on the RL model's verified samples %.1f%%, on the base's unfiltered "
           "samples %.1f%%\n", 100 * filtered, 100 * unfiltered);
    CHECK_MSG(filtered >= 0 && unfiltered >= 0, "no student evaluations in %s", path);
    CHECK_MSG(filtered > unfiltered + 0.10, "the distilled student (%.1f%%) does not beat the baseline student (%.1f%%) "
              "by 10 points", 100 * filtered, 100 * unfiltered);
    json_decref(sum);
    if (harness_failures) {   /* kept for a look at the logs */
        fprintf(stderr, "kept %s\n", dir);
        TEST_MAIN_END();
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
