/* Distillation end to end on tiny models: a tiny MoE teacher (a preset whose weights
 * tests/digit_model.h sets so that it says digits) writes verified SFT data by rejection
 * sampling; a few SFT steps of a tiny dense student on it lower the student's loss on the
 * teacher's outputs; with logit KD (kd_alpha 1, identical tokenizers) the KD loss to the
 * teacher falls; kd_alpha 0 with a teacher trains exactly as plain SFT; tokenizers that
 * differ (vocabulary, merges, special ids) are refused with a message naming the
 * difference, from objects and from files. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/fs.h"
#include "core/progress.h"
#include "digit_model.h"
#include "harness.h"
#include "model/lm.h"
#include "model/presets.h"
#include "model/tokenizer.h"
#include "rl/distill.h"
#include "rl/problems.h"
#include "rl/rejection.h"
#include "rl/sft.h"
#include "verifiers/reward.h"

#define N_PROBLEMS 10
#define MAX_LENGTH 32

#define MAX_LOG 64
typedef struct {
    int n, n_kd;
    double loss[MAX_LOG], kd[MAX_LOG];
} loss_log;

static void record(void *ctx, int step, int n, const char *const *names, const double *values) {
    (void)step;
    loss_log *log = ctx;
    for (int i = 0; i < n; i++) {
        if (!strcmp(names[i], "train/loss") && log->n < MAX_LOG) log->loss[log->n++] = values[i];
        if (!strcmp(names[i], "train/kd_loss") && log->n_kd < MAX_LOG) log->kd[log->n_kd++] = values[i];
    }
}

static lm *preset_model(backend *be, const char *name, uint64_t seed, int with_grad) {
    size_t len;
    const char *json = preset_find(name, &len);
    lm *m = NULL;
    CHECK(json != NULL);
    if (!json) return NULL;
    CHECK_OK(lm_create_random(be, json, len, name, seed, &m));
    if (m && with_grad) CHECK_OK(param_set_alloc_grad(m->params));
    return m;
}

static sft_config student_config(void) {
    sft_config c = sft_config_default();
    c.max_steps = 12;
    c.per_device_train_batch_size = 8;
    c.max_length = MAX_LENGTH;
    c.logging_steps = 1;
    c.eval_batch_size = 16;
    c.optim.learning_rate = 3e-3;
    c.save_total_limit = 0;
    c.seed = 3;
    return c;
}

/* The built-in tokenizer's JSON with one change made by edit(root); loaded from memory. */
static tokenizer *edited_tokenizer(void (*edit)(json_t *root), char **json_out) {
    char *json = NULL;
    CHECK_OK(tokenizer_builtin_json(&json));
    if (!json) return NULL;
    json_t *root = json_loads(json, 0, NULL);
    free(json);
    CHECK(root != NULL);
    if (!root) return NULL;
    edit(root);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    tokenizer *t = NULL;
    CHECK_OK(tokenizer_load_buffer(text, strlen(text), "edited", &t));
    if (json_out)
        *json_out = text;
    else
        free(text);
    return t;
}

static void drop_last_merge(json_t *root) {
    json_t *merges = json_object_get(json_object_get(root, "model"), "merges");
    CHECK(json_array_size(merges) > 0);
    json_array_remove(merges, json_array_size(merges) - 1);
}

static void add_token(json_t *root) {
    json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    int next = 0;
    const char *key;
    json_t *value;
    json_object_foreach(vocab, key, value) if (json_integer_value(value) >= next) next = (int)json_integer_value(value) + 1;
    json_t *added = json_object_get(root, "added_tokens");
    size_t i;
    json_array_foreach(added, i, value) {
        int id = (int)json_integer_value(json_object_get(value, "id"));
        if (id >= next) next = id + 1;
    }
    json_object_set_new(vocab, "zzqq", json_integer(next));
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_tokenizer_checks(const tokenizer *tok, const char *root) {
    CHECK_OK(distill_check_tokenizers(tok, "teacher", tok, "student"));
    char *merges_json = NULL, *vocab_json = NULL;
    tokenizer *fewer_merges = edited_tokenizer(drop_last_merge, &merges_json);
    tokenizer *more_tokens = edited_tokenizer(add_token, &vocab_json);
    if (fewer_merges) CHECK_FAILS(distill_check_tokenizers(tok, "t-dir", fewer_merges, "s-dir"), "tokenizers differ");
    if (more_tokens) CHECK_FAILS(distill_check_tokenizers(tok, "t-dir", more_tokens, "s-dir"), "s-dir");
    if (more_tokens) CHECK_FAILS(distill_check_tokenizers(tok, "t-dir", more_tokens, "s-dir"), "kd_alpha: 0");
    /* A tokenizer of another family (GPT-2 style fixture) is refused too. */
    tokenizer *gpt2 = NULL;
    CHECK_OK(tokenizer_load(harness_source_path("tests/fixtures/tokenizer/gpt2.json"), &gpt2));
    if (gpt2) CHECK_FAILS(distill_check_tokenizers(gpt2, "gpt2", tok, "builtin"), "tokenizers differ");

    /* From files: directories holding tokenizer.json, or the files themselves. */
    char a[PATH_MAX + 16], b[PATH_MAX + 16], c[PATH_MAX + 32], d[PATH_MAX + 32];
    snprintf(a, sizeof a, "%s/tok_a", root);
    snprintf(b, sizeof b, "%s/tok_b", root);
    CHECK_OK(fs_mkdirs(a));
    CHECK_OK(fs_mkdirs(b));
    CHECK_OK(tokenizer_builtin_save(a));
    CHECK_OK(tokenizer_builtin_save(b));
    CHECK_OK(distill_check_tokenizer_files(a, b));
    snprintf(c, sizeof c, "%s/merges.json", root);
    snprintf(d, sizeof d, "%s/vocab.json", root);
    if (merges_json) write_file(c, merges_json);
    if (vocab_json) write_file(d, vocab_json);
    CHECK_FAILS(distill_check_tokenizer_files(a, c), "model.merges");
    CHECK_FAILS(distill_check_tokenizer_files(d, a), "model.vocab");
    snprintf(c, sizeof c, "%s/missing", root);
    CHECK_FAILS(distill_check_tokenizer_files(a, c), "missing");
    write_file(d, "{\"model\": ");
    CHECK_FAILS(distill_check_tokenizer_files(a, d), "vocab.json");
    free(merges_json);
    free(vocab_json);
    tokenizer_free(fewer_merges);
    tokenizer_free(more_tokens);
    tokenizer_free(gpt2);
}

int main(void) {
    char root[PATH_MAX], problems_path[PATH_MAX + 32], data_path[PATH_MAX + 32];
    snprintf(root, sizeof root, "/tmp/grpo_test_distill_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(root));
    snprintf(problems_path, sizeof problems_path, "%s/problems.jsonl", root);
    snprintf(data_path, sizeof data_path, "%s/teacher.jsonl", root);
    FILE *f = fopen(problems_path, "w");
    for (int k = 0; k < N_PROBLEMS; k++)
        fprintf(f, "{\"id\": \"p%d\", \"prompt\": \"Say the digit %d.\", \"answer\": \"%d\"}\n", k, k, k);
    fclose(f);

    backend *be = backend_cpu_create();
    tokenizer *tok = NULL;
    problem_set *ps = NULL;
    reward_set *rewards = NULL;
    CHECK_OK(tokenizer_builtin_create(&tok));
    CHECK_OK(problem_set_load(problems_path, tok, "{prompt}", 64, &ps));
    reward_entry acc = {.kind = REWARD_ACCURACY, .weight = 1.0};
    CHECK_OK(reward_set_create(&acc, 1, &rewards));
    lm *teacher = preset_model(be, "tiny-moe", 21, 0);
    if (!tok || !ps || !rewards || !teacher) TEST_MAIN_END();
    double t0 = progress_now();
    test_tokenizer_checks(tok, root);
    printf("tokenizer checks: %.1fs\n", progress_now() - t0);
    t0 = progress_now();

    /* 1. The teacher writes verified data. */
    int32_t last_ids[N_PROBLEMS];
    for (int k = 0; k < N_PROBLEMS; k++) last_ids[k] = ps->prompt_ids[k][ps->prompt_lengths[k] - 1];
    CHECK(digit_model_make(teacher, tok, last_ids, N_PROBLEMS, 5) == 0);
    rejection_options ro = rejection_options_default();
    ro.samples_per_prompt = 96;
    ro.max_completion_length = 2;
    ro.keep_truncated = 1;
    ro.max_kept_per_prompt = 4;
    ro.cache_mib = 8;
    ro.seed = 9;
    ro.quiet = 1;
    rejection_stats st;
    CHECK_OK(rejection_run(teacher, tok, ps, rewards, &ro, data_path, &st));
    printf("teacher data: %lld of %lld samples kept (%lld correct), %.1fs\n", (long long)st.kept,
           (long long)st.samples, (long long)st.correct, progress_now() - t0);
    t0 = progress_now();
    CHECK(st.kept >= 8);
    sft_dataset *ds = NULL;
    CHECK_OK(sft_dataset_load(data_path, tok, "{prompt}", MAX_LENGTH, &ds));
    if (!ds) TEST_MAIN_END();
    CHECK_INT(st.kept, ds->count);
    int32_t pad = tokenizer_pad_id(tok);

    /* 2. SFT of a dense student on the teacher's data lowers its loss on that data. */
    lm *student = preset_model(be, "tiny-dense", 33, 1);
    if (!student) TEST_MAIN_END();
    double loss0, loss1, exact;
    CHECK_OK(lm_reserve(student, 16, MAX_LENGTH));
    CHECK_OK(sft_evaluate(student, ds, 16, MAX_LENGTH, pad, &loss0, &exact));
    sft_config cfg = student_config();
    loss_log plain_log = {0};
    sft_run run = {.pad_id = pad, .on_metrics = record, .ctx = &plain_log, .quiet = 1};
    sft_result r;
    CHECK_OK(sft_train(&cfg, student, ds, NULL, &run, &r));
    CHECK_OK(sft_evaluate(student, ds, 16, MAX_LENGTH, pad, &loss1, &exact));
    printf("student loss on teacher outputs: %.4f -> %.4f, %.1fs\n", loss0, loss1, progress_now() - t0);
    CHECK_MSG(loss1 < 0.7 * loss0, "loss %.4f -> %.4f: expected a drop of at least 30%%", loss0, loss1);
    CHECK(isnan(r.train_kd_loss));
    CHECK_INT(0, plain_log.n_kd);   /* no KD metrics without a teacher */
    lm_free(student);

    /* 3. kd_alpha 0 with a teacher: the same training, step for step, as plain SFT. */
    t0 = progress_now();
    lm *s0 = preset_model(be, "tiny-dense", 33, 1);
    if (!s0) TEST_MAIN_END();
    sft_config zero = student_config();
    zero.teacher = teacher;
    zero.kd_alpha = 0;
    loss_log zero_log = {0};
    sft_run zrun = {.pad_id = pad, .on_metrics = record, .ctx = &zero_log, .quiet = 1};
    CHECK_OK(sft_train(&zero, s0, ds, NULL, &zrun, &r));
    CHECK_INT(plain_log.n, zero_log.n);
    for (int i = 0; i < plain_log.n && i < zero_log.n; i++) CHECK_NEAR(plain_log.loss[i], zero_log.loss[i], 1e-6, 1e-6);
    CHECK_INT(zero.max_steps, zero_log.n_kd);
    lm_free(s0);

    /* 4. Logit KD (kd_alpha 1, T 2, teacher top-20): the KD loss to the teacher falls. */
    printf("kd_alpha 0 run: %.1fs\n", progress_now() - t0);
    t0 = progress_now();
    lm *s1 = preset_model(be, "tiny-dense", 33, 1);
    if (!s1) TEST_MAIN_END();
    sft_config kd = student_config();
    kd.teacher = teacher;
    kd.kd_alpha = 1.0;
    kd.kd.temperature = 2.0;
    kd.kd.top_k = 20;
    double kd0, kd1;
    CHECK_OK(distill_kd_evaluate(s1, teacher, ds, &kd.kd, 16, MAX_LENGTH, pad, &kd0));
    loss_log kd_log = {0};
    sft_run krun = {.pad_id = pad, .on_metrics = record, .ctx = &kd_log, .quiet = 1};
    CHECK_OK(sft_train(&kd, s1, ds, NULL, &krun, &r));
    CHECK_OK(distill_kd_evaluate(s1, teacher, ds, &kd.kd, 16, MAX_LENGTH, pad, &kd1));
    printf("KD loss to the teacher: %.4f -> %.4f (train/kd_loss %.4f -> %.4f), %.1fs\n", kd0, kd1, kd_log.kd[0],
           kd_log.kd[kd_log.n_kd > 0 ? kd_log.n_kd - 1 : 0], progress_now() - t0);
    CHECK(kd0 > 0);
    CHECK_MSG(kd1 < 0.7 * kd0, "KD loss %.4f -> %.4f: expected a drop of at least 30%%", kd0, kd1);
    CHECK_INT(kd.max_steps, kd_log.n_kd);
    /* with kd_alpha 1 the logged loss is the KD loss */
    for (int i = 0; i < kd_log.n && i < kd_log.n_kd; i++) CHECK_NEAR(kd_log.kd[i], kd_log.loss[i], 1e-9, 1e-9);
    CHECK_NEAR(kd_log.kd[kd_log.n_kd - 1], r.train_kd_loss, 1e-12, 0);

    /* 5. A teacher identical to the student (same preset, same seed): the KD loss is 0 and
     * its gradient 0, so with kd_alpha 1 (CE weighted 0) and no weight decay AdamW leaves
     * every weight exactly where it was. A CE part leaking into the gradient would move them. */
    {
        lm *twin_student = preset_model(be, "tiny-dense", 44, 1), *twin_teacher = preset_model(be, "tiny-dense", 44, 0);
        if (twin_student && twin_teacher) {
            size_t n = twin_student->params->total;
            float *before = malloc(n * sizeof(float)), *after = malloc(n * sizeof(float));
            be->to_host(be, before, twin_student->params->data, n * sizeof(float));
            sft_config same = student_config();
            same.max_steps = 3;
            same.teacher = twin_teacher;
            same.kd_alpha = 1.0;
            same.optim.weight_decay = 0;
            loss_log twin_log = {0};
            sft_run trun = {.pad_id = pad, .on_metrics = record, .ctx = &twin_log, .quiet = 1};
            CHECK_OK(sft_train(&same, twin_student, ds, NULL, &trun, &r));
            be->to_host(be, after, twin_student->params->data, n * sizeof(float));
            CHECK(memcmp(before, after, n * sizeof(float)) == 0);
            CHECK_NEAR(0.0, r.train_kd_loss, 1e-6, 0);
            double twin_kd;
            CHECK_OK(distill_kd_evaluate(twin_student, twin_teacher, ds, &same.kd, 16, MAX_LENGTH, pad, &twin_kd));
            CHECK_NEAR(0.0, twin_kd, 1e-6, 0);
            free(before);
            free(after);
        }
        lm_free(twin_student);
        lm_free(twin_teacher);
    }

    /* 6. Bad KD settings fail naming the key. */
    sft_config bad = kd;
    bad.kd_alpha = 1.5;
    CHECK_FAILS(sft_train(&bad, s1, ds, NULL, &krun, &r), "kd_alpha");
    bad = kd;
    bad.kd.temperature = 0;
    CHECK_FAILS(sft_train(&bad, s1, ds, NULL, &krun, &r), "kd.temperature");
    lm_free(s1);

    sft_dataset_free(ds);
    lm_free(teacher);
    reward_set_free(rewards);
    problem_set_free(ps);
    tokenizer_free(tok);
    backend_free(be);
    fs_remove_tree(root);
    TEST_MAIN_END();
}
