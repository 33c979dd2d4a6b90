/* The stage runner behind `grpo run` (rl/run.h). */
#include "rl/run.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/store.h"
#include "data/generate.h"
#include "model/presets.h"
#include "model/tokenizer.h"
#include "data/template.h"
#include "rl/checkpoint.h"
#include "rl/grpo_train.h"
#include "rl/problems.h"

typedef struct {
    store *db;
    int64_t run_id;
    int stage;
} metrics_sink;

static void put_metrics(void *ctx, int step, int n, const char *const *names, const double *values) {
    metrics_sink *sink = ctx;
    if (!sink->db) return;
    if (store_put_metrics(sink->db, sink->run_id, sink->stage, step, n, names, values) != GRPO_OK)
        log_warn("run store: %s", grpo_error_message());
}

static void put_rollouts(void *ctx, int step, int n, const store_rollout *rows) {
    metrics_sink *sink = ctx;
    if (!sink->db || n <= 0) return;
    store_rollout *own = malloc((size_t)n * sizeof *own);
    if (!own) return;
    for (int i = 0; i < n; i++) {
        own[i] = rows[i];
        own[i].run_id = sink->run_id;
        own[i].stage = sink->stage;
        own[i].step = step;
    }
    if (store_put_rollouts(sink->db, n, own) != GRPO_OK) log_warn("run store: %s", grpo_error_message());
    free(own);
}

/* Writes a generated dataset to RUN_DIR/data/NAME.jsonl (or names the given file). */
static grpo_status materialise_dataset(const run_config *c, const dataset_section *d, const char *run_dir, char *path,
                                       size_t size) {
    if (d->generate == DATA_FILE) {
        snprintf(path, size, "%s", d->path);
        return GRPO_OK;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/data", run_dir);
    GRPO_TRY(fs_mkdirs(dir));
    snprintf(path, size, "%s/%s.jsonl", dir, d->name);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return grpo_fail(GRPO_ERR_IO, "cannot create %s", tmp);
    uint64_t seed = (uint64_t)(d->seed >= 0 ? d->seed : c->run.seed);
    grpo_status s;
    if (d->generate == DATA_ARITH) {
        data_arith_options o = {.difficulty = d->difficulty, .ops = d->ops, .answer_noise = d->answer_noise};
        s = data_write_arith(f, seed, d->offset, d->n, &o);
    } else {
        data_countdown_options o = {.count = d->count, .max_number = d->max_number, .max_target = d->max_target,
                                    .use_all = d->use_all};
        s = data_write_countdown(f, seed, d->offset, d->n, &o);
    }
    if (fclose(f) != 0 && !s) s = grpo_fail(GRPO_ERR_IO, "cannot write %s", tmp);
    if (!s && rename(tmp, path) != 0) s = grpo_fail(GRPO_ERR_IO, "cannot rename %s", tmp);
    return s;
}

static const dataset_section *find_dataset(const run_config *c, const char *name) {
    for (int i = 0; i < c->n_datasets; i++)
        if (!strcmp(c->datasets[i].name, name)) return &c->datasets[i];
    return NULL;
}

/* The tokenizer directory of the run: RUN_DIR/tokenizer, holding either the built-in
 * vocabulary or a copy of the configured one. */
static grpo_status prepare_tokenizer(const run_config *c, const char *run_dir, char *dir, size_t size,
                                     tokenizer **tok) {
    snprintf(dir, size, "%s/tokenizer", run_dir);
    GRPO_TRY(fs_mkdirs(dir));
    const char *source = c->model.tokenizer;
    char probe[PATH_MAX];
    if (!source && c->model.path) {
        snprintf(probe, sizeof probe, "%s/tokenizer.json", c->model.path);
        if (fs_exists(probe)) source = c->model.path;
    }
    if (!source || !strcmp(source, "builtin")) {
        GRPO_TRY(tokenizer_builtin_save(dir));
    } else {
        char src[PATH_MAX], dst[PATH_MAX];
        snprintf(src, sizeof src, "%s/tokenizer.json", source);
        snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
        GRPO_TRY(fs_copy_file(src, dst));
        snprintf(src, sizeof src, "%s/tokenizer_config.json", source);
        snprintf(dst, sizeof dst, "%s/tokenizer_config.json", dir);
        if (fs_exists(src)) GRPO_TRY(fs_copy_file(src, dst));
    }
    return tokenizer_load_dir(dir, tok);
}

static grpo_status create_model(const run_config *c, backend *be, lm **model) {
    if (c->model.path) return lm_load_dir(be, c->model.path, model);
    size_t len;
    const char *json = preset_find(c->model.preset, &len);
    char origin[128];
    snprintf(origin, sizeof origin, "preset %s", c->model.preset);
    uint64_t seed = (uint64_t)(c->model.init_seed >= 0 ? c->model.init_seed : c->run.seed);
    return lm_create_random(be, json, len, origin, seed, model);
}

static void json_set_number(json_t *obj, const char *key, double v) {
    if (isfinite(v)) json_object_set_new(obj, key, json_real(v));
}

static json_t *eval_json(const run_eval *e) {
    json_t *o = json_object();
    json_set_number(o, "loss", e->loss);
    json_set_number(o, "exact_match", e->exact_match);
    json_set_number(o, "pass@1", e->pass_at_1);
    json_set_number(o, "pass@k", e->pass_at_k);
    json_set_number(o, "maj@k", e->maj_at_k);
    json_set_number(o, "mean_length", e->mean_length);
    if (isfinite(e->pass_at_1)) json_object_set_new(o, "k", json_integer(e->k));
    return o;
}

static grpo_status write_summary(const run_summary *sum) {
    json_t *stages = json_array();
    for (int i = 0; i < sum->n_stages; i++) {
        const run_stage_summary *st = &sum->stages[i];
        json_t *o = json_pack("{s:s, s:s, s:i, s:f, s:o, s:o}", "name", st->name, "kind", st->kind, "steps", st->steps,
                              "wall_seconds", st->seconds, "eval_before", eval_json(&st->before), "eval",
                              eval_json(&st->after));
        json_set_number(o, "train_loss", st->train_loss);
        json_set_number(o, "reward_mean", st->reward_mean);
        json_set_number(o, "tokens_per_second", st->tokens_per_second);
        json_array_append_new(stages, o);
    }
    json_t *root = json_pack("{s:s, s:o}", "run_dir", sum->run_dir, "stages", stages);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/summary.json", sum->run_dir);
    grpo_status s = text ? fs_write_atomic(path, text, strlen(text)) : grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    free(text);
    return s;
}

/* "a -> b" with each side formatted (or "-" when NAN). */
static void before_after(char *buf, size_t size, const char *label, double a, double b, int percent) {
    char x[32], y[32];
    if (isfinite(a)) snprintf(x, sizeof x, percent ? "%.1f%%" : "%.4f", percent ? 100 * a : a);
    else snprintf(x, sizeof x, "-");
    if (isfinite(b)) snprintf(y, sizeof y, percent ? "%.1f%%" : "%.4f", percent ? 100 * b : b);
    else snprintf(y, sizeof y, "-");
    snprintf(buf, size, "%s %s -> %s", label, x, y);
}

void run_summary_print(const run_summary *s, FILE *out) {
    fprintf(out, "\n%-16s %-5s %6s %8s  %s\n", "stage", "kind", "steps", "seconds", "held-out evaluation (before -> after)");
    for (int i = 0; i < s->n_stages; i++) {
        const run_stage_summary *st = &s->stages[i];
        char a[96], b[96], c[96];
        if (!strcmp(st->kind, "grpo")) {
            before_after(a, sizeof a, "pass@1", st->before.pass_at_1, st->after.pass_at_1, 1);
            char label[32];
            snprintf(label, sizeof label, "maj@%d", st->after.k ? st->after.k : st->before.k);
            before_after(b, sizeof b, label, st->before.maj_at_k, st->after.maj_at_k, 1);
            before_after(c, sizeof c, "length", st->before.mean_length, st->after.mean_length, 0);
        } else {
            before_after(a, sizeof a, "loss", st->before.loss, st->after.loss, 0);
            before_after(b, sizeof b, "exact", st->before.exact_match, st->after.exact_match, 1);
            c[0] = 0;
        }
        fprintf(out, "%-16s %-5s %6d %8.1f  %s, %s%s%s\n", st->name, st->kind, st->steps, st->seconds, a, b,
                c[0] ? ", " : "", c);
    }
    fprintf(out, "summary: %s/summary.json\n", s->run_dir);
}

/* Which stage to start at: the stage of the newest checkpoint, when resuming. */
static int first_stage(const run_config *c, const char *run_dir) {
    char dir[PATH_MAX];
    trainer_state ts;
    if (!c->run.resume || checkpoint_latest(run_dir, dir, sizeof dir) != GRPO_OK ||
        checkpoint_read_state(dir, &ts) != GRPO_OK) {
        grpo_error_clear();
        return 0;
    }
    return ts.stage_index < c->n_stages ? ts.stage_index : c->n_stages;
}

/* Steps of the stages before `index`: checkpoints are named by the run-wide step. */
static int steps_before(const run_config *c, int index) {
    int n = 0;
    for (int i = 0; i < index; i++) n += c->stages[i].max_steps;
    return n;
}

static int32_t pad_id_of(const tokenizer *tok) {
    int32_t pad = tokenizer_pad_id(tok) >= 0 ? tokenizer_pad_id(tok) : tokenizer_eos_id(tok);
    return pad < 0 ? 0 : pad;
}

/* 1 when the newest checkpoint of the run is inside stage `index` (so it resumes there). */
static int resuming_inside(const run_config *c, const char *run_dir, int index) {
    char ckpt[PATH_MAX];
    trainer_state ts;
    int inside = c->run.resume && checkpoint_latest(run_dir, ckpt, sizeof ckpt) == GRPO_OK &&
                 checkpoint_read_state(ckpt, &ts) == GRPO_OK && ts.stage_index == index;
    grpo_error_clear();
    return inside;
}

static grpo_status run_stage_sft(const run_config *c, const stage_section *st, int index, lm *model,
                                 const tokenizer *tok, const char *run_dir, const char *tok_dir, metrics_sink *sink,
                                 run_stage_summary *out) {
    char train_path[PATH_MAX], eval_path[PATH_MAX];
    GRPO_TRY(materialise_dataset(c, find_dataset(c, st->train_dataset), run_dir, train_path, sizeof train_path));
    if (st->eval_dataset)
        GRPO_TRY(materialise_dataset(c, find_dataset(c, st->eval_dataset), run_dir, eval_path, sizeof eval_path));
    sft_dataset *train = NULL, *eval = NULL;
    const char *tmpl = st->prompt_template ? st->prompt_template : "{prompt}";
    grpo_status s = sft_dataset_load(train_path, tok, tmpl, st->max_length, &train);
    if (!s && st->eval_dataset) s = sft_dataset_load(eval_path, tok, tmpl, st->max_length, &eval);
    if (s) {
        sft_dataset_free(train);
        return s;
    }
    if (!st->completion_only_loss) {
        /* pretraining: every token after the first is a target */
        for (int i = 0; i < train->count; i++) train->prompt_lengths[i] = 0;
        for (int i = 0; eval && i < eval->count; i++) eval->prompt_lengths[i] = 0;
    }
    if (train->truncated)
        log_warn("stage %s: %d of %d training examples were cut to max_length %d", st->name, train->truncated,
                 train->count, st->max_length);
    sft_config cfg = run_config_sft(c, st);
    int32_t pad = pad_id_of(tok);
    sft_run run = {.run_dir = run_dir, .tokenizer_dir = tok_dir, .stage_name = st->name, .stage_index = index,
                   .step_offset = steps_before(c, index), .resume = c->run.resume, .pad_id = pad, .on_metrics = put_metrics, .ctx = sink};
    if (eval && !resuming_inside(c, run_dir, index)) {
        GRPO_TRY(lm_reserve(model, cfg.eval_batch_size, cfg.max_length));
        s = sft_evaluate(model, eval, cfg.eval_batch_size, cfg.max_length, pad, &out->before.loss,
                         &out->before.exact_match);
        if (!s) log_info("stage %s: before training: eval loss %.4f, exact match %.1f%%", st->name,
                         out->before.loss, 100 * out->before.exact_match);
    }
    sft_result r;
    if (!s) s = sft_train(&cfg, model, train, eval, &run, &r);
    if (!s) {
        out->steps = r.steps;
        out->after.loss = r.eval_loss;
        out->after.exact_match = r.eval_exact_match;
        out->train_loss = r.train_loss;
        out->tokens_per_second = r.tokens_per_second;
    }
    sft_dataset_free(train);
    sft_dataset_free(eval);
    return s;
}

static grpo_config run_config_grpo(const run_config *c, const stage_section *st) {
    grpo_config g = grpo_config_default();
    sft_config common = run_config_sft(c, st);
    g.max_steps = st->max_steps;
    g.per_device_train_batch_size = st->per_device_train_batch_size;
    g.gradient_accumulation_steps = st->gradient_accumulation_steps;
    g.num_generations = st->num_generations;
    g.num_iterations = st->num_iterations;
    g.max_completion_length = st->max_completion_length;
    g.sampling.temperature = (float)st->temperature;
    g.sampling.top_p = (float)st->top_p;
    g.sampling.top_k = st->top_k;
    g.sampling.min_p = (float)st->min_p;
    g.eval_sampling = g.sampling;
    g.eval_sampling.temperature = (float)st->eval_temperature;
    g.loss.loss_type = (grpo_loss_type)st->loss_type;
    g.loss.beta = st->beta;
    g.loss.epsilon = st->epsilon;
    g.loss.epsilon_high = st->epsilon_high;
    g.loss.entropy_coef = st->entropy_coef;
    g.advantage.scale_rewards = (advantage_scale)st->scale_rewards;
    g.mask_truncated_completions = st->mask_truncated_completions;
    g.dynamic_sampling = st->dynamic_sampling;
    g.bias_update_gamma = st->bias_update_gamma;
    g.logging_steps = st->logging_steps;
    g.log_rollouts_per_step = st->log_rollouts_per_step;
    g.eval_steps = st->eval_steps;
    g.save_steps = st->save_steps;
    g.save_total_limit = st->save_total_limit;
    g.eval_num_generations = st->eval_num_generations;
    g.eval_max_problems = st->eval_max_problems;
    g.optim = common.optim;
    g.seed = common.seed;
    return g;
}

/* The frozen reference for KL: the policy as the stage starts, saved once to
 * RUN_DIR/ref-STAGE (so a resumed run compares against the same weights). */
static grpo_status load_reference(const char *run_dir, const stage_section *st, lm *model, backend *be, lm **ref) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/ref-%s", run_dir, st->name);
    char config[PATH_MAX];
    snprintf(config, sizeof config, "%s/config.json", dir);
    if (!fs_exists(config)) {
        GRPO_TRY(fs_mkdirs(dir));
        GRPO_TRY(lm_save(model, dir));
    }
    return lm_load_dir(be, dir, ref);
}

static grpo_status run_stage_grpo(const run_config *c, const stage_section *st, int index, lm *model,
                                  const tokenizer *tok, const char *run_dir, const char *tok_dir, metrics_sink *sink,
                                  run_stage_summary *out) {
    char train_path[PATH_MAX], eval_path[PATH_MAX];
    GRPO_TRY(materialise_dataset(c, find_dataset(c, st->train_dataset), run_dir, train_path, sizeof train_path));
    if (st->eval_dataset)
        GRPO_TRY(materialise_dataset(c, find_dataset(c, st->eval_dataset), run_dir, eval_path, sizeof eval_path));
    const char *tmpl = st->prompt_template ? st->prompt_template : template_r1_zero;
    problem_set *train = NULL, *eval = NULL;
    reward_set *rewards = NULL;
    lm *ref = NULL;
    grpo_status s = problem_set_load(train_path, tok, tmpl, st->max_prompt_length, &train);
    if (!s && st->eval_dataset) s = problem_set_load(eval_path, tok, tmpl, st->max_prompt_length, &eval);
    if (!s) s = reward_set_create(st->rewards, st->n_rewards, &rewards);
    if (!s && st->beta > 0) s = load_reference(run_dir, st, model, model->be, &ref);
    grpo_config cfg = run_config_grpo(c, st);
    train_run run = {.run_dir = run_dir, .tokenizer_dir = tok_dir, .stage_name = st->name, .stage_index = index,
                     .step_offset = steps_before(c, index), .resume = c->run.resume, .pad_id = pad_id_of(tok), .on_metrics = put_metrics, .ctx = sink,
                     .on_rollouts = put_rollouts};
    if (!s && eval && !resuming_inside(c, run_dir, index)) {
        eval_summary es;
        s = grpo_evaluate(&cfg, model, tok, eval, rewards, &es);
        if (!s) {
            out->before.pass_at_1 = es.pass_at_1;
            out->before.pass_at_k = es.pass_at_k;
            out->before.maj_at_k = es.maj_at_k;
            out->before.mean_length = es.mean_length;
            out->before.k = es.k;
            log_info("stage %s: before training: held-out pass@1 %.1f%%, maj@%d %.1f%%, mean length %.1f", st->name,
                     100 * es.pass_at_1, es.k, 100 * es.maj_at_k, es.mean_length);
        }
    }
    grpo_result r;
    if (!s) s = grpo_train(&cfg, model, ref, tok, train, eval, rewards, &run, &r);
    if (!s) {
        out->steps = r.steps;
        out->reward_mean = r.reward_mean;
        if (eval) {
            out->after.pass_at_1 = r.eval.pass_at_1;
            out->after.pass_at_k = r.eval.pass_at_k;
            out->after.maj_at_k = r.eval.maj_at_k;
            out->after.mean_length = r.eval.mean_length;
            out->after.k = r.eval.k;
        }
    }
    lm_free(ref);
    reward_set_free(rewards);
    problem_set_free(train);
    problem_set_free(eval);
    return s;
}

grpo_status run_execute(const run_config *c, run_summary *summary) {
    memset(summary, 0, sizeof *summary);
    if (c->n_stages > RUN_MAX_STAGES) return grpo_fail(GRPO_ERR_INVALID, "at most %d stages", RUN_MAX_STAGES);
#ifdef _OPENMP
    if (c->run.threads > 0) omp_set_num_threads(c->run.threads);
#endif
    char *run_dir = summary->run_dir, tok_dir[PATH_MAX], db_path[PATH_MAX];
    snprintf(run_dir, sizeof summary->run_dir, "%s/%s", c->run.output_dir, c->run.name);
    if (!c->run.resume && fs_exists(run_dir))
        return grpo_fail(GRPO_ERR_INVALID, "%s exists and run.resume is false: remove it or choose another run.name",
                         run_dir);
    GRPO_TRY(fs_mkdirs(run_dir));

    backend *be = c->run.backend == 1 ? backend_cuda_create(0) : backend_cpu_create();
    if (!be) return GRPO_ERR_UNSUPPORTED;
    tokenizer *tok = NULL;
    lm *model = NULL;
    metrics_sink sink = {0};
    snprintf(db_path, sizeof db_path, "%s/run.db", run_dir);
    grpo_status s = store_open(db_path, &sink.db);
    char *config_text = NULL;
    if (!s) s = cfg_dump(cfg_root(c->doc), &config_text);
    if (!s) {
        /* A resumed run keeps its row (and metrics); a new one gets its own. */
        if (store_find_run(sink.db, c->run.name, &sink.run_id) != GRPO_OK) {
            grpo_error_clear();
            s = store_begin_run(sink.db, c->run.name, config_text, &sink.run_id);
        }
        grpo_set_abort_hook(store_abort_hook, sink.db);
    }
    free(config_text);
    if (!s) s = prepare_tokenizer(c, run_dir, tok_dir, sizeof tok_dir, &tok);
    if (!s) s = create_model(c, be, &model);
    if (!s && tokenizer_vocab_size(tok) > model->vocab_size)
        s = grpo_fail(GRPO_ERR_INVALID, "the tokenizer has %d tokens but the model's vocab_size is %d",
                      tokenizer_vocab_size(tok), model->vocab_size);
    if (!s) s = param_set_alloc_grad(model->params);
    if (!s)
        log_info("run %s: model %s, %.2fM parameters, backend %s", run_dir, model->model_type,
                 (double)model->num_parameters / 1e6, be->name);
    int start = s ? 0 : first_stage(c, run_dir);
    for (int i = 0; i < c->n_stages && !s; i++) {
        const stage_section *st = &c->stages[i];
        run_stage_summary *out = &summary->stages[i];
        snprintf(out->name, sizeof out->name, "%s", st->name);
        snprintf(out->kind, sizeof out->kind, "%s", stage_kind_names[st->kind]);
        run_eval none = {NAN, NAN, NAN, NAN, NAN, NAN, 0};
        out->before = out->after = none;
        out->train_loss = out->tokens_per_second = out->reward_mean = NAN;
        summary->n_stages = i + 1;
        if (i < start) {
            log_info("stage %s: done in an earlier invocation (see run.db)", st->name);
            continue;
        }
        sink.stage = i;
        double t0 = progress_now();
        s = store_begin_stage(sink.db, sink.run_id, i, st->name, stage_kind_names[st->kind]);
        if (!s && st->kind == STAGE_GRPO) s = run_stage_grpo(c, st, i, model, tok, run_dir, tok_dir, &sink, out);
        else if (!s) s = run_stage_sft(c, st, i, model, tok, run_dir, tok_dir, &sink, out);
        out->seconds = progress_now() - t0;
        if (!s) s = store_end_stage(sink.db, sink.run_id, i, out->steps, NULL);
    }
    if (!s) s = write_summary(summary);
    if (sink.db) {
        store_set_run_status(sink.db, sink.run_id, s ? "failed" : "finished");
        grpo_set_abort_hook(NULL, NULL);
        store_close(sink.db);
    }
    lm_free(model);
    tokenizer_free(tok);
    backend_free(be);
    return s;
}
