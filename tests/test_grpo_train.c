/* GRPO end to end on a small dense model, in seconds: after a short SFT warm start, GRPO
 * with a format reward drives the reward up; a run stopped after a checkpoint and resumed
 * logs exactly the same next steps as an uninterrupted one; evaluation reports pass@k. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "data/generate.h"
#include "harness.h"
#include "model/lm.h"
#include "model/tokenizer.h"
#include "rl/grpo_train.h"
#include "rl/sft.h"

static const char *model_json =
    "{\"model_type\": \"qwen2\", \"vocab_size\": 400, \"hidden_size\": 64, \"intermediate_size\": 128,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"max_position_embeddings\": 256, \"tie_word_embeddings\": true}";

#define MAX_LOG 64
typedef struct {
    int n;
    double reward[MAX_LOG], loss[MAX_LOG], is_mean[MAX_LOG], gap_max[MAX_LOG];
} metric_log;

static void record(void *ctx, int step, int n, const char *const *names, const double *values) {
    metric_log *log = ctx;
    if (step < 1 || step > MAX_LOG) return;
    for (int i = 0; i < n; i++) {
        if (!strcmp(names[i], "reward/mean")) log->reward[step - 1] = values[i];
        if (!strcmp(names[i], "sampling/importance_sampling_ratio/mean")) log->is_mean[step - 1] = values[i];
        if (!strcmp(names[i], "sampling/logp_gap_max")) log->gap_max[step - 1] = values[i];
        if (!strcmp(names[i], "loss")) { log->loss[step - 1] = values[i]; if (step > log->n) log->n = step; }
    }
}

static char root[PATH_MAX];

/* A model warm-started by SFT on arithmetic in the answer-tag format, saved to dir. */
static void warm_start(backend *be, const tokenizer *tok, const char *data, const char *dir) {
    lm *m = NULL;
    CHECK_OK(lm_create_random(be, model_json, strlen(model_json), "test model", 5, &m));
    if (!m) return;
    CHECK_OK(param_set_alloc_grad(m->params));
    sft_dataset *ds = NULL;
    CHECK_OK(sft_dataset_load(data, tok, "Q: {prompt}\nA: ", 96, &ds));
    sft_config c = sft_config_default();
    c.max_steps = 30;
    c.per_device_train_batch_size = 16;
    c.max_length = 96;
    c.optim.learning_rate = 3e-3;
    c.logging_steps = 0;
    train_run run = {.pad_id = tokenizer_pad_id(tok), .quiet = 1};
    sft_result r;
    if (ds) CHECK_OK(sft_train(&c, m, ds, NULL, &run, &r));
    CHECK_OK(fs_mkdirs(dir));
    CHECK_OK(lm_save(m, dir));
    sft_dataset_free(ds);
    lm_free(m);
}

static grpo_config small_grpo(void) {
    grpo_config c = grpo_config_default();
    c.max_steps = 16;
    c.per_device_train_batch_size = 32;
    c.num_generations = 8;
    c.max_completion_length = 48;
    c.optim.learning_rate = 2e-3;
    c.optim.max_grad_norm = 1.0;
    c.eval_num_generations = 4;
    c.save_total_limit = 0;
    c.seed = 9;
    return c;
}

static lm *load(backend *be, const char *dir) {
    lm *m = NULL;
    CHECK_OK(lm_load_dir(be, dir, &m));
    if (m) CHECK_OK(param_set_alloc_grad(m->params));
    return m;
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/grpo_test_grpo_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(root));
    char data[PATH_MAX], eval_path[PATH_MAX], base[PATH_MAX];
    snprintf(data, sizeof data, "%s/train.jsonl", root);
    snprintf(eval_path, sizeof eval_path, "%s/eval.jsonl", root);
    snprintf(base, sizeof base, "%s/base", root);
    FILE *f = fopen(data, "w");
    data_arith_options o = {.difficulty = 1, .ops = "+"};
    CHECK_OK(data_write_arith(f, 3, 0, 1000, &o));
    fclose(f);
    f = fopen(eval_path, "w");
    CHECK_OK(data_write_arith(f, 3, 1000000, 16, &o));
    fclose(f);

    backend *be = backend_cpu_create();
    tokenizer *tok = NULL;
    CHECK_OK(tokenizer_builtin_create(&tok));
    warm_start(be, tok, data, base);
    problem_set *train = NULL, *eval = NULL;
    CHECK_OK(problem_set_load(data, tok, "Q: {prompt}\nA: ", 32, &train));
    CHECK_OK(problem_set_load(eval_path, tok, "Q: {prompt}\nA: ", 32, &eval));
    /* tag_count: 0.25 per R1 tag used exactly once, a reward with many levels */
    reward_entry entries[1] = {{.kind = 2, .weight = 1.0}};
    CHECK_STR("tag_count", reward_names[2]);
    reward_set *rewards = NULL;
    CHECK_OK(reward_set_create(entries, 1, &rewards));
    if (!train || !eval || !rewards) TEST_MAIN_END();

    /* 1. The reward rises. */
    grpo_config c = small_grpo();
    metric_log straight = {0};
    lm *m = load(be, base);
    train_run run = {.pad_id = tokenizer_pad_id(tok), .on_metrics = record, .ctx = &straight, .quiet = 1};
    grpo_result r;
    CHECK_OK(grpo_train(&c, m, NULL, tok, train, eval, rewards, &run, &r));
    double first = 0, last = 0;
    for (int i = 0; i < 4; i++) {
        first += straight.reward[i] / 4;
        last += straight.reward[c.max_steps - 4 + i] / 4;
    }
    printf("tag_count reward: first 4 steps %.3f, last 4 steps %.3f; held-out pass@1 %.3f pass@%d %.3f maj %.3f\n",
           first, last, r.eval.pass_at_1, r.eval.k, r.eval.pass_at_k, r.eval.maj_at_k);
    CHECK_MSG(last > first + 0.1, "the tag_count reward went from %.3f to %.3f: expected a rise of at least 0.1", first,
              last);
    CHECK_INT(16, r.eval.problems);
    CHECK(r.eval.pass_at_k >= r.eval.pass_at_1 - 1e-12);
    lm_free(m);

    /* 2. Resume: 6 steps straight vs 3, a stop after the checkpoint, and a resumed run. */
    char dir_a[PATH_MAX], dir_b[PATH_MAX];
    snprintf(dir_a, sizeof dir_a, "%s/run_a", root);
    snprintf(dir_b, sizeof dir_b, "%s/run_b", root);
    c.max_steps = 6;
    c.save_steps = 3;
    metric_log a = {0}, b1 = {0}, b2 = {0};
    m = load(be, base);
    train_run ra = {.run_dir = dir_a, .stage_name = "rl", .pad_id = tokenizer_pad_id(tok), .on_metrics = record,
                    .ctx = &a, .quiet = 1};
    CHECK_OK(grpo_train(&c, m, NULL, tok, train, NULL, rewards, &ra, &r));
    lm *mb = load(be, base);
    train_run rb = {.run_dir = dir_b, .stage_name = "rl", .pad_id = tokenizer_pad_id(tok), .on_metrics = record,
                    .ctx = &b1, .quiet = 1, .stop_after_steps = 3};
    CHECK_OK(grpo_train(&c, mb, NULL, tok, train, NULL, rewards, &rb, &r));
    CHECK_INT(3, r.steps);
    lm_free(mb);
    mb = load(be, base);
    rb.ctx = &b2;
    rb.stop_after_steps = 0;
    rb.resume = 1;
    CHECK_OK(grpo_train(&c, mb, NULL, tok, train, NULL, rewards, &rb, &r));
    CHECK_INT(6, r.steps);
    CHECK_INT(6, b2.n);
    for (int i = 0; i < 6; i++) {
        const metric_log *got = i < 3 ? &b1 : &b2;
        CHECK_MSG(got->loss[i] == a.loss[i] && got->reward[i] == a.reward[i],
                  "step %d: resumed loss %.9g reward %.9g, straight loss %.9g reward %.9g", i + 1, got->loss[i],
                  got->reward[i], a.loss[i], a.reward[i]);
    }
    int same = 1;
    for (size_t i = 0; i < m->params->total; i++) same &= m->params->data[i] == mb->params->data[i];
    CHECK_MSG(same, "final weights of the resumed GRPO run differ from the uninterrupted one");
    lm_free(m);
    lm_free(mb);

    /* 3. Truncated importance sampling against the sampler's log-probs: the ratio is logged,
     * and with the sampler and trainer on the same weights it stays within exp(+-gap). */
    grpo_config tis = small_grpo();
    tis.max_steps = 2;
    tis.loss.importance_sampling_mode = GRPO_IS_TOKEN_TRUNCATE;
    metric_log t = {0};
    for (int i = 0; i < MAX_LOG; i++) t.is_mean[i] = NAN;
    m = load(be, base);
    train_run rt = {.pad_id = tokenizer_pad_id(tok), .on_metrics = record, .ctx = &t, .quiet = 1};
    CHECK_OK(grpo_train(&tis, m, NULL, tok, train, NULL, rewards, &rt, &r));
    for (int i = 0; i < 2; i++)
        CHECK_MSG(isfinite(t.is_mean[i]) && t.is_mean[i] >= exp(-t.gap_max[i]) - 1e-9 &&
                      t.is_mean[i] <= exp(t.gap_max[i]) + 1e-9,
                  "step %d: importance ratio mean %g outside exp(+-%g)", i + 1, t.is_mean[i], t.gap_max[i]);
    lm_free(m);

    /* 4. Options a trainer must refuse. */
    grpo_config bad = small_grpo();
    bad.num_generations = 1;
    CHECK_FAILS(grpo_config_validate(&bad), "num_generations");
    bad = small_grpo();
    bad.per_device_train_batch_size = 12;
    CHECK_FAILS(grpo_config_validate(&bad), "multiple of num_generations");
    bad = small_grpo();
    bad.loss.beta = -1;
    CHECK_FAILS(grpo_config_validate(&bad), "beta");
    bad = small_grpo();
    bad.loss.beta = 0.1;
    m = load(be, base);
    CHECK_FAILS(grpo_train(&bad, m, NULL, tok, train, NULL, rewards, &run, &r), "reference");
    lm_free(m);

    reward_set_free(rewards);
    problem_set_free(train);
    problem_set_free(eval);
    tokenizer_free(tok);
    backend_free(be);
    fs_remove_tree(root);
    TEST_MAIN_END();
}
