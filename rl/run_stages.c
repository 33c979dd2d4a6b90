/* What each stage kind of `grpo run` does (rl/run_impl.h): sft and pretrain, grpo,
 * rejection sampling, distillation and evaluation, given the input model the pipeline
 * (run.c) hands it. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "core/log.h"
#include "data/generate.h"
#include "data/template.h"
#include "rl/checkpoint.h"
#include "rl/grpo_train.h"
#include "rl/distill.h"
#include "rl/grpo_rollout.h"
#include "rl/problems.h"
#include "rl/rejection.h"
#include "rl/run_impl.h"
#include "rl/run_ranks.h"
#include "rl/sft.h"

void run_put_metrics(void *ctx, int step, int n, const char *const *names, const double *values) {
    const run_ctx *r = ctx;
    if (!r->db) return;
    if (store_put_metrics(r->db, r->run_id, r->stage, step, n, names, values) != GRPO_OK)
        log_warn("run store: %s", grpo_error_message());
}

void run_put_rollouts(void *ctx, int step, int n, const store_rollout *rows) {
    const run_ctx *r = ctx;
    if (!r->db || n <= 0) return;
    store_rollout *own = malloc((size_t)n * sizeof *own);
    if (!own) return;
    for (int i = 0; i < n; i++) {
        own[i] = rows[i];
        own[i].run_id = r->run_id;
        own[i].stage = r->stage;
        own[i].step = step;
    }
    if (store_put_rollouts(r->db, n, own) != GRPO_OK) log_warn("run store: %s", grpo_error_message());
    free(own);
}

void run_stage_data_path(const run_ctx *r, const char *stage, char *path, size_t size) {
    snprintf(path, size, "%s/data/%s.jsonl", r->run_dir, stage);
}

grpo_status run_dataset_path(const run_ctx *r, const char *name, char *path, size_t size) {
    const dataset_section *d = run_config_find_dataset(r->c, name);
    GRPO_ASSERT(d);   /* run_config_load checked every name */
    if (d->from_stage) {
        run_stage_data_path(r, d->from_stage, path, size);
        if (!fs_exists(path))
            return grpo_fail(GRPO_ERR_NOTFOUND, "dataset '%s': %s (the output of stage %s) does not exist", name, path,
                             d->from_stage);
        return GRPO_OK;
    }
    if (d->generate == DATA_FILE) {
        snprintf(path, size, "%s", d->path);
        return GRPO_OK;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/data", r->run_dir);
    GRPO_TRY(fs_mkdirs(dir));
    snprintf(path, size, "%s/%s.jsonl", dir, d->name);
    if (!run_ranks_is_root()) return GRPO_OK;   /* rank 0 wrote it (run_ranks_materialise) */
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return grpo_fail(GRPO_ERR_IO, "cannot create %s", tmp);
    uint64_t seed = (uint64_t)(d->seed >= 0 ? d->seed : r->c->run.seed);
    grpo_status s;
    if (d->generate == DATA_ARITH) {
        data_arith_options o = {.difficulty = d->difficulty, .ops = d->ops, .answer_noise = d->answer_noise,
                                .split = d->split};
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

/* Steps of the training stages before `index`: checkpoints are named by the run-wide step. */
static int steps_before(const run_config *c, int index) {
    int n = 0;
    for (int i = 0; i < index; i++)
        if (run_config_stage_trains(&c->stages[i])) n += c->stages[i].max_steps;
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

static train_run train_run_of(const run_ctx *r, int index) {
    const stage_section *st = &r->c->stages[index];
    train_run run = {.run_dir = r->run_dir, .tokenizer_dir = r->tok_dir, .stage_name = st->name,
                     .stage_index = index, .step_offset = steps_before(r->c, index), .resume = r->c->run.resume,
                     .pad_id = pad_id_of(r->tok), .on_metrics = run_put_metrics, .on_rollouts = run_put_rollouts, .ctx = (void *)r,
                     .quiet = r->quiet};
    return run;
}

/* SFT of `model` on `train_path` (pretrain: the loss on every token; with a teacher,
 * logit KD at the stage's kd_alpha). Lines written by a rejection or distill stage are
 * rendered already: their prompt_template is "{prompt}". */
static grpo_status sft_on(const run_ctx *r, int index, lm *model, const char *train_path, lm *teacher,
                          run_stage_summary *out) {
    const run_config *c = r->c;
    const stage_section *st = &c->stages[index];
    char eval_path[PATH_MAX];
    if (st->eval_dataset) GRPO_TRY(run_dataset_path(r, st->eval_dataset, eval_path, sizeof eval_path));
    sft_dataset *train = NULL, *eval = NULL;
    const char *tmpl = st->prompt_template ? st->prompt_template : "{prompt}";
    const dataset_section *d = st->kind == STAGE_DISTILL ? NULL : run_config_find_dataset(c, st->train_dataset);
    const char *train_tmpl = st->kind == STAGE_DISTILL || d->from_stage ? "{prompt}" : tmpl;
    grpo_status s = sft_dataset_load(train_path, r->tok, train_tmpl, st->max_length, &train);
    if (!s && st->eval_dataset) s = sft_dataset_load(eval_path, r->tok, tmpl, st->max_length, &eval);
    if (s) {
        sft_dataset_free(train);
        return s;
    }
    int completion_only = st->completion_only_loss >= 0 ? st->completion_only_loss : st->kind != STAGE_PRETRAIN;
    if (!completion_only) {
        /* pretraining: every token after the first is a target */
        for (int i = 0; i < train->count; i++) train->prompt_lengths[i] = 0;
        for (int i = 0; eval && i < eval->count; i++) eval->prompt_lengths[i] = 0;
    }
    if (train->truncated)
        log_warn("stage %s: %d of %d training examples were cut to max_length %d", st->name, train->truncated,
                 train->count, st->max_length);
    sft_config cfg = run_config_sft(c, st);
    if (teacher && st->kd_alpha > 0) {
        cfg.teacher = teacher;
        cfg.kd_alpha = st->kd_alpha;
        cfg.kd.temperature = st->kd_temperature;
        cfg.kd.top_k = st->kd_top_k;
    }
    int32_t pad = pad_id_of(r->tok);
    sft_run run = train_run_of(r, index);
    if (eval && !resuming_inside(c, r->run_dir, index)) {
        s = lm_reserve(model, cfg.eval_batch_size, cfg.max_length);
        if (!s)
            s = sft_evaluate(model, eval, cfg.eval_batch_size, cfg.max_length, pad, &out->before.loss,
                             &out->before.exact_match);
        if (!s) log_info("stage %s: before training: eval loss %.4f, exact match %.1f%%", st->name,
                         out->before.loss, 100 * out->before.exact_match);
    }
    sft_result res;
    if (!s) s = sft_train(&cfg, model, train, eval, &run, &res);
    if (!s) {
        out->steps = res.steps;
        out->after.loss = res.eval_loss;
        out->after.exact_match = res.eval_exact_match;
        out->train_loss = res.train_loss;
        out->tokens_per_second = res.tokens_per_second;
    }
    sft_dataset_free(train);
    sft_dataset_free(eval);
    return s;
}

grpo_status run_stage_sft(const run_ctx *r, int index, lm *model, run_stage_summary *out) {
    char train_path[PATH_MAX];
    GRPO_TRY(run_dataset_path(r, r->c->stages[index].train_dataset, train_path, sizeof train_path));
    return sft_on(r, index, model, train_path, NULL, out);
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
    g.loss.importance_sampling_mode = (grpo_is_mode)st->importance_sampling_mode;
    g.loss.is_clip_max = st->importance_sampling_cap;
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
    GRPO_TRY(run_ranks_save_once(model, dir));   /* rank 0 writes it unless it is there */
    GRPO_TRY(lm_load_dir(be, dir, ref));
    grpo_status s = lm_set_precision(*ref, lm_get_precision(model));   /* the policy's compute precision */
    if (s) {
        lm_free(*ref);
        *ref = NULL;
    }
    return s;
}

static void copy_eval(run_eval *dst, const eval_summary *es) {
    dst->pass_at_1 = es->pass_at_1;
    dst->pass_at_k = es->pass_at_k;
    dst->maj_at_k = es->maj_at_k;
    dst->mean_length = es->mean_length;
    dst->k = es->k;
}

/* The stage's rewards, or accuracy alone when it has none (the verdict of a sample). */
static grpo_status stage_rewards(const stage_section *st, reward_set **out) {
    if (st->n_rewards > 0) return reward_set_create(st->rewards, st->n_rewards, out);
    reward_entry accuracy = reward_entry_defaults;
    accuracy.kind = REWARD_ACCURACY;
    return reward_set_create(&accuracy, 1, out);
}

static const char *sampling_template(const stage_section *st) {
    return st->prompt_template ? st->prompt_template : template_r1_zero;
}

grpo_status run_stage_grpo(const run_ctx *r, int index, lm *model, run_stage_summary *out) {
    const run_config *c = r->c;
    const stage_section *st = &c->stages[index];
    char train_path[PATH_MAX], eval_path[PATH_MAX];
    GRPO_TRY(run_dataset_path(r, st->train_dataset, train_path, sizeof train_path));
    if (st->eval_dataset) GRPO_TRY(run_dataset_path(r, st->eval_dataset, eval_path, sizeof eval_path));
    const char *tmpl = sampling_template(st);
    problem_set *train = NULL, *eval = NULL;
    reward_set *rewards = NULL;
    lm *ref = NULL;
    grpo_status s = problem_set_load(train_path, r->tok, tmpl, st->max_prompt_length, &train);
    if (!s && st->eval_dataset) s = problem_set_load(eval_path, r->tok, tmpl, st->max_prompt_length, &eval);
    if (!s) s = reward_set_create(st->rewards, st->n_rewards, &rewards);
    if (!s && st->beta > 0) s = load_reference(r->run_dir, st, model, model->be, &ref);
    grpo_config cfg = run_config_grpo(c, st);
    train_run run = train_run_of(r, index);
    if (!s && eval && !resuming_inside(c, r->run_dir, index)) {
        eval_summary es;
        s = grpo_evaluate(&cfg, model, r->tok, eval, rewards, &es);
        if (!s) {
            copy_eval(&out->before, &es);
            log_info("stage %s: before training: held-out pass@1 %.1f%%, maj@%d %.1f%%, mean length %.1f", st->name,
                     100 * es.pass_at_1, es.k, 100 * es.maj_at_k, es.mean_length);
        }
    }
    grpo_result res;
    if (!s) s = grpo_train(&cfg, model, ref, r->tok, train, eval, rewards, &run, &res);
    if (!s) {
        out->steps = res.steps;
        out->reward_mean = res.reward_mean;
        if (eval) copy_eval(&out->after, &res.eval);
    }
    lm_free(ref);
    reward_set_free(rewards);
    problem_set_free(train);
    problem_set_free(eval);
    return s;
}

grpo_status run_evaluate(const run_ctx *r, const stage_section *st, const char *dataset, lm *model, run_eval *out) {
    char path[PATH_MAX];
    GRPO_TRY(run_dataset_path(r, dataset, path, sizeof path));
    problem_set *problems = NULL;
    reward_set *rewards = NULL;
    grpo_status s = problem_set_load(path, r->tok, sampling_template(st), st->max_prompt_length, &problems);
    if (!s) s = stage_rewards(st, &rewards);
    grpo_config cfg = run_config_grpo(r->c, st);
    /* the run's seed, not the stage's: one model gets the same numbers in every row */
    cfg.seed = (uint64_t)r->c->run.seed;
    eval_summary es;
    if (!s) s = grpo_evaluate(&cfg, model, r->tok, problems, rewards, &es);
    if (!s) copy_eval(out, &es);
    reward_set_free(rewards);
    problem_set_free(problems);
    return s;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629 table 3: no overlongs, surrogates or
 * code points past U+10FFFF), 0 when it is not one. */
static int utf8_sequence(const unsigned char *s) {
    unsigned char c = s[0];
    if (c >= 0x01 && c <= 0x7F) return 1;
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!n) return 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

/* A JSON string of text with every byte that is not valid UTF-8 replaced by U+FFFD (a
 * model's raw sample may split a character). */
static json_t *json_string_repaired(const char *text) {
    size_t len = strlen(text);
    char *buf = malloc(3 * len + 1);
    if (!buf) return NULL;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        int n = utf8_sequence(p);
        if (n) {
            memcpy(buf + o, p, (size_t)n);
            o += (size_t)n;
            p += n;
        } else {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            p++;
        }
    }
    json_t *j = json_stringn(buf, o);
    free(buf);
    return j;
}

/* filter: false. Every sample of the first max_prompts problems, unverified (the
 * baseline of "train on the model's own samples"), written like rejection_run's kept
 * lines: {"prompt": rendered prompt, "response": completion, "source": "unfiltered"}, at
 * most max_per_prompt per problem, by temp file + rename. */
static grpo_status write_unfiltered(lm *model, const tokenizer *tok, const problem_set *ps, const rejection_options *o,
                                    const char *out_path, rejection_stats *stats) {
    memset(stats, 0, sizeof *stats);
    rollout_config rc;
    rollout_config_defaults(&rc);
    rc.sampling.sampler = o->sampling;
    rc.sampling.max_tokens = o->max_completion_length;
    rc.add_bos = 0;   /* problem prompts carry their BOS already */
    rollout_engine *e = NULL;
    GRPO_TRY(rollout_engine_create(model, tok, &rc, &e));
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    FILE *f = fopen(tmp, "w");
    int chunk = 16, N = o->samples_per_prompt;
    int *problems = malloc((size_t)chunk * sizeof(int));
    rollout_samples gen = {0};
    grpo_status s = !f ? grpo_fail(GRPO_ERR_IO, "cannot create %s", tmp)
                       : problems ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    for (int start = 0; start < ps->count && !s; start += chunk) {
        int np = ps->count - start < chunk ? ps->count - start : chunk;
        for (int k = 0; k < np; k++) problems[k] = start + k;
        s = grpo_rollout_generate(e, ps, problems, np, N, o->seed + (uint64_t)start, o->max_completion_length, &gen);
        for (int i = 0; i < gen.n && !s; i++) {
            stats->samples++;
            stats->generated_tokens += gen.lengths[i];
            if (o->max_kept_per_prompt > 0 && i % N >= o->max_kept_per_prompt) continue;
            json_t *line = json_pack("{s:o, s:o, s:s}", "prompt", json_string_repaired(ps->prompts[gen.problem[i]]),
                                     "response", json_string_repaired(gen.texts[i] ? gen.texts[i] : ""), "source",
                                     "unfiltered");
            if (!line || json_dumpf(line, f, JSON_COMPACT) != 0 || fputc('\n', f) == EOF)
                s = grpo_fail(GRPO_ERR_IO, "cannot write %s", tmp);
            json_decref(line);
            stats->kept++;
        }
        stats->prompts += np;
    }
    stats->lines = stats->kept;
    if (f && fclose(f) != 0 && !s) s = grpo_fail(GRPO_ERR_IO, "cannot write %s", tmp);
    if (!s && rename(tmp, out_path) != 0) s = grpo_fail(GRPO_ERR_IO, "cannot rename %s", tmp);
    grpo_rollout_samples_free(&gen);
    free(problems);
    rollout_engine_free(e);
    return s;
}

/* RUN_DIR/data/STAGE.stats.json: what a sampling stage drew and wrote, so a distill
 * stage resumed after its sampling reports the same counts. */
static void counts_path(const run_ctx *r, const char *stage, char *path, size_t size) {
    snprintf(path, size, "%s/data/%s.stats.json", r->run_dir, stage);
}

static grpo_status write_counts(const run_ctx *r, const char *stage, const run_stage_summary *out) {
    char path[PATH_MAX], text[128];
    counts_path(r, stage, path, sizeof path);
    int n = snprintf(text, sizeof text, "{\"samples\": %d, \"lines\": %d}\n", out->samples, out->kept);
    return fs_write_atomic(path, text, (size_t)n);
}

static grpo_status read_counts(const run_ctx *r, const char *stage, run_stage_summary *out) {
    char path[PATH_MAX];
    counts_path(r, stage, path, sizeof path);
    json_error_t err;
    json_t *o = json_load_file(path, 0, &err);
    int samples = -1, lines = -1;
    int bad = !o || json_unpack(o, "{s:i, s:i}", "samples", &samples, "lines", &lines) != 0;
    json_decref(o);
    if (bad) return grpo_fail(GRPO_ERR_PARSE, "%s: expected {\"samples\": N, \"lines\": M}", path);
    out->samples = samples;
    out->kept = lines;
    return GRPO_OK;
}

/* Samples `model` on the stage's train_dataset prompts and writes what it keeps (all of
 * it with filter: false) to RUN_DIR/data/STAGE.jsonl, with its stats beside it. */
static grpo_status sample_prompts(const run_ctx *r, int index, lm *model, run_stage_summary *out) {
    const run_config *c = r->c;
    const stage_section *st = &c->stages[index];
    char train_path[PATH_MAX], mix_path[PATH_MAX], out_path[PATH_MAX], dir[PATH_MAX];
    GRPO_TRY(run_dataset_path(r, st->train_dataset, train_path, sizeof train_path));
    if (st->mix_dataset) GRPO_TRY(run_dataset_path(r, st->mix_dataset, mix_path, sizeof mix_path));
    snprintf(dir, sizeof dir, "%s/data", r->run_dir);
    GRPO_TRY(fs_mkdirs(dir));
    run_stage_data_path(r, st->name, out_path, sizeof out_path);
    problem_set *ps = NULL;
    reward_set *rewards = NULL;
    grpo_status s = problem_set_load(train_path, r->tok, sampling_template(st), st->max_prompt_length, &ps);
    if (!s) s = stage_rewards(st, &rewards);
    if (s) {
        problem_set_free(ps);
        return s;
    }
    int all = ps->count;
    if (st->max_prompts > 0 && st->max_prompts < ps->count) ps->count = st->max_prompts;
    rejection_options o = rejection_options_default();
    o.samples_per_prompt = st->num_samples;
    o.sampling.temperature = (float)st->temperature;
    o.sampling.top_p = (float)st->top_p;
    o.sampling.top_k = st->top_k;
    o.sampling.min_p = (float)st->min_p;
    o.max_completion_length = st->max_completion_length;
    o.max_kept_per_prompt = st->max_per_prompt;
    o.require_format = 1;
    o.seed = run_config_sft(c, st).seed;
    o.prompt_template = sampling_template(st);
    o.mix_path = st->mix_dataset ? mix_path : NULL;
    o.mix_ratio = st->mix_ratio;
    o.quiet = r->quiet;
    rejection_stats stats;
    if (st->filter) s = rejection_run(model, r->tok, ps, rewards, &o, out_path, &stats);
    else s = write_unfiltered(model, r->tok, ps, &o, out_path, &stats);
    ps->count = all;
    if (!s) {
        out->samples = (int)stats.samples;
        out->kept = (int)stats.lines;
        const char *names[64];
        double values[64];
        int n = st->filter ? rejection_stats_metrics(&stats, 64, names, values) : 0;
        if (n > 0) run_put_metrics((void *)r, 0, n, names, values);
        log_info("stage %s: %lld samples of %d prompts, %lld lines written to %s", st->name, (long long)stats.samples,
                 stats.prompts, (long long)stats.lines, out_path);
        if (stats.lines == 0) {
            remove(out_path);   /* an empty file must not pass for the stage's output */
            s = grpo_fail(GRPO_ERR_INVALID, "stage %s: no sample was kept (of %lld): nothing to train on", st->name,
                          (long long)stats.samples);
        }
    }
    if (!s) s = write_counts(r, st->name, out);
    reward_set_free(rewards);
    problem_set_free(ps);
    return s;
}

grpo_status run_stage_rejection(const run_ctx *r, int index, lm *model, run_stage_summary *out) {
    return sample_prompts(r, index, model, out);
}

grpo_status run_stage_distill(const run_ctx *r, int index, lm *teacher, lm *student, const tokenizer *student_tok,
                              const char *student_tok_dir, run_stage_summary *out) {
    const stage_section *st = &r->c->stages[index];
    char data[PATH_MAX];
    run_stage_data_path(r, st->name, data, sizeof data);
    /* a resumed stage whose samples were written already goes straight to training */
    if (resuming_inside(r->c, r->run_dir, index) && fs_exists(data)) GRPO_TRY(read_counts(r, st->name, out));
    else GRPO_TRY(RUN_ON_ROOT(sample_prompts(r, index, teacher, out)));
    run_ctx rs = *r;
    if (student_tok) {
        rs.tok = student_tok;
        rs.tok_dir = student_tok_dir;
    }
    if (st->kd_alpha > 0)
        GRPO_TRY(distill_check_tokenizers(r->tok, r->tok_dir, rs.tok, rs.tok_dir));
    GRPO_TRY(sft_on(&rs, index, student, data, teacher, out));
    if (st->heldout_dataset) GRPO_TRY(RUN_ON_ROOT(run_evaluate(&rs, st, st->heldout_dataset, student, &out->heldout)));
    return GRPO_OK;
}
