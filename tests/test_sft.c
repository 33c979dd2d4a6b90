/* SFT end to end on a small dense model: held-out loss falls below a stated bound,
 * the loss mask covers exactly the response, gradient accumulation matches one big
 * batch, and a run interrupted after a checkpoint and resumed logs the same losses,
 * step for step, as an uninterrupted one. */
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
#include "rl/checkpoint.h"
#include "rl/sft.h"

/* Sizes of the test model (from its config like any other): a 2-layer Qwen2 with GQA. */
static const char *model_json =
    "{\"model_type\": \"qwen2\", \"vocab_size\": 400, \"hidden_size\": 64, \"intermediate_size\": 128,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"max_position_embeddings\": 256, \"tie_word_embeddings\": true}";

#define MAX_LOG 256
typedef struct {
    int n;
    int steps[MAX_LOG];
    double loss[MAX_LOG];
} loss_log;

static void record(void *ctx, int step, int n, const char *const *names, const double *values) {
    loss_log *log = ctx;
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], "train/loss") && log->n < MAX_LOG) {
            log->steps[log->n] = step;
            log->loss[log->n++] = values[i];
        }
}

static char tmp_root[PATH_MAX];

static void write_data(const char *path, uint64_t seed, int64_t offset, int n) {
    FILE *f = fopen(path, "w");
    data_arith_options o = {.difficulty = 1, .ops = "+"};
    CHECK_OK(data_write_arith(f, seed, offset, n, &o));
    fclose(f);
}

static lm *new_model(backend *be) {
    lm *m = NULL;
    CHECK_OK(lm_create_random(be, model_json, strlen(model_json), "test model", 3, &m));
    CHECK_OK(param_set_alloc_grad(m->params));
    return m;
}

static sft_config small_config(void) {
    sft_config c = sft_config_default();
    c.max_steps = 80;
    c.per_device_train_batch_size = 16;
    c.max_length = 96;
    c.logging_steps = 1;
    c.eval_batch_size = 32;
    c.optim.learning_rate = 3e-3;
    c.optim.schedule = LR_COSINE;
    c.optim.warmup_steps = 5;
    c.save_total_limit = 0;
    c.seed = 11;
    return c;
}

static void test_mask(const sft_dataset *ds, int32_t pad) {
    int idx[2] = {0, 1}, n_targets;
    int32_t ids[2 * 96], targets[2 * 96];
    int T = sft_batch_fill(ds, idx, 2, 96, pad, ids, targets, &n_targets);
    int expected = 0;
    for (int b = 0; b < 2; b++) {
        int len = sft_example_length(ds, b), plen = ds->prompt_lengths[b];
        expected += len - plen;   /* every response token (and EOS) is predicted once */
        for (int t = 0; t < T; t++) {
            int inside = t + 1 < len && t + 1 >= plen;
            CHECK_INT(inside ? ds->tokens[ds->offsets[b] + t + 1] : -1, targets[b * T + t]);
            if (t >= len) CHECK_INT(pad, ids[b * T + t]);
        }
    }
    CHECK_INT(expected, n_targets);
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/grpo_test_sft_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(tmp_root));
    char train_path[PATH_MAX], eval_path[PATH_MAX], tok_dir[PATH_MAX];
    snprintf(train_path, sizeof train_path, "%s/train.jsonl", tmp_root);
    snprintf(eval_path, sizeof eval_path, "%s/eval.jsonl", tmp_root);
    snprintf(tok_dir, sizeof tok_dir, "%s/tok", tmp_root);
    write_data(train_path, 5, 0, 2000);
    write_data(eval_path, 5, 1000000, 64);
    CHECK_OK(fs_mkdirs(tok_dir));
    CHECK_OK(tokenizer_builtin_save(tok_dir));
    tokenizer *tok = NULL;
    CHECK_OK(tokenizer_load_dir(tok_dir, &tok));
    sft_dataset *train = NULL, *eval = NULL;
    CHECK_OK(sft_dataset_load(train_path, tok, "Q: {prompt}\nA: ", 96, &train));
    CHECK_OK(sft_dataset_load(eval_path, tok, "Q: {prompt}\nA: ", 96, &eval));
    if (!train || !eval) TEST_MAIN_END();
    int32_t pad = tokenizer_pad_id(tok);
    test_mask(train, pad);

    backend *be = backend_cpu_create();

    /* 1. Training lowers the held-out loss below a stated bound. */
    sft_config cfg = small_config();
    lm *m = new_model(be);
    double loss0, exact0;
    CHECK_OK(lm_reserve(m, 32, 96));
    CHECK_OK(sft_evaluate(m, eval, 32, 96, pad, &loss0, &exact0));
    loss_log log_a = {0};
    sft_run run = {.pad_id = pad, .on_metrics = record, .ctx = &log_a, .quiet = 1};
    sft_result r;
    CHECK_OK(sft_train(&cfg, m, train, eval, &run, &r));
    printf("held-out loss %.4f -> %.4f, exact match %.3f -> %.3f\n", loss0, r.eval_loss, exact0, r.eval_exact_match);
    /* A random 400-way model starts near ln(400) = 6.0; the worked 1-digit sums are
     * nearly deterministic text, so 80 steps must bring the loss under 0.8 nats. */
    CHECK(loss0 > 5.0);
    CHECK_MSG(r.eval_loss < 0.8, "held-out loss %.4f, bound 0.8", r.eval_loss);
    CHECK_INT(80, r.steps);
    CHECK_INT(80, log_a.n);
    lm_free(m);

    /* 2. Gradient accumulation: 2 micro-batches of 8 give the same update as 1 of 16. */
    {
        sft_config one = small_config(), two = small_config();
        one.max_steps = two.max_steps = 3;
        two.per_device_train_batch_size = 8;
        two.gradient_accumulation_steps = 2;
        loss_log l1 = {0}, l2 = {0};
        lm *m1 = new_model(be), *m2 = new_model(be);
        sft_run r1 = {.pad_id = pad, .on_metrics = record, .ctx = &l1, .quiet = 1};
        sft_run r2 = {.pad_id = pad, .on_metrics = record, .ctx = &l2, .quiet = 1};
        CHECK_OK(sft_train(&one, m1, train, NULL, &r1, &r));
        CHECK_OK(sft_train(&two, m2, train, NULL, &r2, &r));
        for (int i = 0; i < 3; i++) CHECK_NEAR(l1.loss[i], l2.loss[i], 0, 1e-5);
        double maxdiff = 0;
        for (size_t i = 0; i < m1->params->total; i++) {
            double d = fabs((double)m1->params->data[i] - (double)m2->params->data[i]);
            if (d > maxdiff) maxdiff = d;
        }
        CHECK_MSG(maxdiff < 1e-5, "weights differ by %.3g after 3 steps", maxdiff);
        lm_free(m1);
        lm_free(m2);
    }

    /* 3. Resume: 30 steps straight vs 12 steps, a stop (as if killed after the
     * checkpoint at 12), and a resumed run to 30. Same losses, step for step. */
    {
        char dir_a[PATH_MAX], dir_b[PATH_MAX];
        snprintf(dir_a, sizeof dir_a, "%s/run_a", tmp_root);
        snprintf(dir_b, sizeof dir_b, "%s/run_b", tmp_root);
        sft_config c = small_config();
        c.max_steps = 30;
        c.save_steps = 12;
        loss_log straight = {0}, first = {0}, second = {0};
        lm *ma = new_model(be);
        sft_run ra = {.run_dir = dir_a, .tokenizer_dir = tok_dir, .stage_name = "sft", .pad_id = pad,
                      .on_metrics = record, .ctx = &straight, .quiet = 1};
        CHECK_OK(sft_train(&c, ma, train, eval, &ra, &r));

        lm *mb = new_model(be);
        sft_run rb = {.run_dir = dir_b, .tokenizer_dir = tok_dir, .stage_name = "sft", .pad_id = pad,
                      .on_metrics = record, .ctx = &first, .quiet = 1, .stop_after_steps = 12};
        CHECK_OK(sft_train(&c, mb, train, eval, &rb, &r));
        CHECK_INT(12, r.steps);
        lm_free(mb);
        char latest[PATH_MAX];
        CHECK_OK(checkpoint_latest(dir_b, latest, sizeof latest));
        CHECK(strstr(latest, "step-12") != NULL);

        /* A fresh process would start from a different random init: resume must overwrite it. */
        mb = NULL;
        CHECK_OK(lm_create_random(be, model_json, strlen(model_json), "test model", 999, &mb));
        CHECK_OK(param_set_alloc_grad(mb->params));
        rb.ctx = &second;
        rb.resume = 1;
        rb.stop_after_steps = 0;
        CHECK_OK(sft_train(&c, mb, train, eval, &rb, &r));
        CHECK_INT(12, r.resumed_from);
        CHECK_INT(30, r.steps);
        CHECK_INT(30, straight.n);
        CHECK_INT(12, first.n);
        CHECK_INT(18, second.n);
        for (int i = 0; i < first.n && i < straight.n; i++) CHECK(first.loss[i] == straight.loss[i]);
        for (int i = 0; i < second.n && 12 + i < straight.n; i++) {
            CHECK_INT(13 + i, second.steps[i]);
            CHECK_MSG(second.loss[i] == straight.loss[12 + i], "step %d: resumed loss %.9g, straight %.9g", 13 + i,
                      second.loss[i], straight.loss[12 + i]);
        }
        int same = 1;
        for (size_t i = 0; i < ma->params->total; i++) same &= ma->params->data[i] == mb->params->data[i];
        CHECK_MSG(same, "final weights of the resumed run differ from the uninterrupted one");
        lm_free(ma);
        lm_free(mb);
    }

    sft_dataset_free(train);
    sft_dataset_free(eval);
    tokenizer_free(tok);
    backend_free(be);
    fs_remove_tree(tmp_root);
    TEST_MAIN_END();
}
