/* The stage pipeline behind `grpo run` (rl/run.h): resolves each stage's input model,
 * keeps stage outputs in RUN_DIR/models/STAGE, records stages in the run store and
 * resumes at the first unfinished one. What each kind does is in run_stages.c. */
#include "rl/run.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "model/presets.h"
#include "rl/run_impl.h"
#include "rl/run_ranks.h"

/* Where a model comes from: the output of stage `stage` (>= 0), the run's model section
 * (RUN_MODEL) or a preset / directory named by a stage key (NAMED). */
enum { RUN_MODEL = -1, NAMED = -2 };

typedef struct {
    int stage;
    const char *name;   /* NAMED: a preset or directory */
} model_source;

static int passes_model_through(const stage_section *st) {
    return st->kind == STAGE_REJECTION || st->kind == STAGE_EVAL;
}

/* What a stage key naming a model (`model:`, `student:`) refers to. */
static model_source source_of_name(const run_config *c, const char *name);

/* The model stage `index` leaves: its output, or for the kinds that do not train, the
 * model it was given. */
static model_source output_of(const run_config *c, int index) {
    const stage_section *st = &c->stages[index];
    if (!passes_model_through(st)) return (model_source){index, NULL};
    if (st->model) return source_of_name(c, st->model);
    return index == 0 ? (model_source){RUN_MODEL, NULL} : output_of(c, index - 1);
}

static model_source source_of_name(const run_config *c, const char *name) {
    int j = run_config_find_stage(c, name);
    return j >= 0 ? output_of(c, j) : (model_source){NAMED, name};
}

static model_source input_of(const run_config *c, int index) {
    const stage_section *st = &c->stages[index];
    if (st->model) return source_of_name(c, st->model);
    return index == 0 ? (model_source){RUN_MODEL, NULL} : output_of(c, index - 1);
}

static void output_dir(const char *run_dir, const char *stage, char *dir, size_t size) {
    snprintf(dir, size, "%s/models/%s", run_dir, stage);
}

/* Where the source lives, for the summary: "preset NAME" or a directory. */
static void describe(const run_config *c, const char *run_dir, model_source m, char *buf, size_t size) {
    const char *name = m.stage == RUN_MODEL ? (c->model.preset ? c->model.preset : c->model.path) : m.name;
    if (m.stage >= 0) output_dir(run_dir, c->stages[m.stage].name, buf, size);
    else if (preset_find(name, NULL)) snprintf(buf, size, "preset %s", name);
    else snprintf(buf, size, "%s", name);
}

static grpo_status create_preset(const run_config *c, backend *be, const char *preset, lm **model) {
    size_t len;
    const char *json = preset_find(preset, &len);
    if (!json) return grpo_fail(GRPO_ERR_NOTFOUND, "no preset named '%s'", preset);
    char origin[128];
    snprintf(origin, sizeof origin, "preset %s", preset);
    uint64_t seed = (uint64_t)(c->model.init_seed >= 0 ? c->model.init_seed : c->run.seed);
    return lm_create_random(be, json, len, origin, seed, model);
}

static grpo_status open_model_weights(const run_ctx *r, model_source m, lm **model) {
    const run_config *c = r->c;
    char dir[PATH_MAX];
    if (m.stage >= 0) {
        output_dir(r->run_dir, c->stages[m.stage].name, dir, sizeof dir);
        return lm_load_dir(r->be, dir, model);
    }
    if (m.stage == RUN_MODEL)
        return c->model.path ? lm_load_dir(r->be, c->model.path, model) : create_preset(c, r->be, c->model.preset, model);
    if (preset_find(m.name, NULL)) return create_preset(c, r->be, m.name, model);
    return lm_load_dir(r->be, m.name, model);
}

/* Opens a model at the run's compute precision (run.precision; model/linear.h). */
static grpo_status open_model(const run_ctx *r, model_source m, lm **model) {
    GRPO_TRY(open_model_weights(r, m, model));
    grpo_status s = lm_set_precision(*model, (quant_precision)r->c->run.precision);
    if (s) {
        lm_free(*model);
        *model = NULL;
    }
    return s;
}

/* Opens a model for a stage, its vocabulary checked against the tokenizer it will use
 * (tok: the run's when NULL); gradients are allocated when it will be trained (a model
 * that only samples, a teacher say, does without). */
static grpo_status open_for_stage(const run_ctx *r, model_source m, const tokenizer *tok, int trains, lm **model) {
    GRPO_TRY(open_model(r, m, model));
    grpo_status s = GRPO_OK;
    if (!tok) tok = r->tok;
    if (tokenizer_vocab_size(tok) > (*model)->vocab_size)
        s = grpo_fail(GRPO_ERR_INVALID, "the tokenizer has %d tokens but the model's vocab_size is %d",
                      tokenizer_vocab_size(tok), (*model)->vocab_size);
    if (!s && trains) s = param_set_alloc_grad((*model)->params);
    if (s) {
        lm_free(*model);
        *model = NULL;
    }
    return s;
}

/* Writes the stage's output model (with the run's tokenizer) to RUN_DIR/models/STAGE,
 * through a temporary directory so a crash leaves the whole model or none. */
static grpo_status save_output(const run_ctx *r, const char *stage, lm *model, char *dir, size_t size) {
    char tmp[PATH_MAX], src[PATH_MAX], dst[PATH_MAX];
    output_dir(r->run_dir, stage, dir, size);
    snprintf(tmp, sizeof tmp, "%s/models/.%s.tmp", r->run_dir, stage);
    if (fs_exists(tmp)) GRPO_TRY(fs_remove_tree(tmp));
    GRPO_TRY(fs_mkdirs(tmp));
    GRPO_TRY(lm_save(model, tmp));
    const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(src, sizeof src, "%s/%s", r->tok_dir, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", tmp, files[i]);
        if (fs_exists(src)) GRPO_TRY(fs_copy_file(src, dst));
    }
    if (fs_exists(dir)) GRPO_TRY(fs_remove_tree(dir));
    if (rename(tmp, dir) != 0) return grpo_fail(GRPO_ERR_IO, "cannot rename %s to %s", tmp, dir);
    return fs_sync_path(dir);
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

static grpo_status check_model_dir(const cfg_node *stage, const char *key, const run_config *c, const char *name) {
    if (!name || run_config_find_stage(c, name) >= 0 || preset_find(name, NULL)) return GRPO_OK;
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s/config.json", name);
    if (fs_exists(probe)) return GRPO_OK;
    const cfg_node *node = cfg_get(stage, key);
    return cfg_fail_at(node ? node : stage, GRPO_ERR_NOTFOUND,
                       "expected an earlier stage's name, a preset or a model directory with config.json, found '%s'",
                       name);
}

grpo_status run_check_paths(const run_config *c) {
    const cfg_node *root = cfg_root(c->doc);
    char key[64];
    for (int i = 0; i < c->n_datasets; i++) {
        const dataset_section *d = &c->datasets[i];
        snprintf(key, sizeof key, "datasets[%d].path", i);
        if (d->generate == DATA_FILE && d->path && !fs_exists(d->path))
            return cfg_fail_at(cfg_get(root, key), GRPO_ERR_NOTFOUND, "no file %s", d->path);
    }
    if (c->model.path) {
        char probe[PATH_MAX];
        snprintf(probe, sizeof probe, "%s/config.json", c->model.path);
        if (!fs_exists(probe))
            return cfg_fail_at(cfg_get(root, "model.path"), GRPO_ERR_NOTFOUND,
                               "expected a model directory with config.json, found '%s'", c->model.path);
    }
    for (int i = 0; i < c->n_stages; i++) {
        snprintf(key, sizeof key, "stages[%d]", i);
        const cfg_node *stage = cfg_get(root, key);
        GRPO_TRY(check_model_dir(stage, "model", c, c->stages[i].model));
        GRPO_TRY(check_model_dir(stage, "student", c, c->stages[i].student));
    }
    return GRPO_OK;
}

/* Stages of an earlier invocation: done[i] = 1 when stage i finished with the name the
 * config gives it now, its summary read back into sum->stages[i]. */
typedef struct {
    const run_config *c;
    run_summary *sum;
    int done[RUN_MAX_STAGES];
} finished_stages;

static int note_stage(void *ctx, const store_stage *st) {
    finished_stages *f = ctx;
    if (st->idx < 0 || st->idx >= f->c->n_stages || isnan(st->finished_at) || !st->summary_json ||
        strcmp(st->name, f->c->stages[st->idx].name) != 0)
        return 0;
    if (run_stage_summary_from_json(st->summary_json, &f->sum->stages[st->idx]) != GRPO_OK) {
        log_warn("run store: stage %s: %s (it runs again)", st->name, grpo_error_message());
        grpo_error_clear();
        return 0;
    }
    f->done[st->idx] = 1;
    return 0;
}

/* The first stage to run: the first one not finished in an earlier invocation. */
static grpo_status first_unfinished(const run_ctx *r, run_summary *sum, int *start) {
    finished_stages f = {.c = r->c, .sum = sum};
    *start = 0;
    if (!r->c->run.resume) return GRPO_OK;
    GRPO_TRY(store_get_stages(r->db, r->run_id, note_stage, &f));
    while (*start < r->c->n_stages && f.done[*start]) (*start)++;
    return GRPO_OK;
}

/* The model the pipeline holds between stages: the output of `source`. */
typedef struct {
    lm *model;
    model_source source;
} held_model;

static int same_source(model_source a, model_source b) {
    return a.stage == b.stage && a.stage != NAMED;
}

static grpo_status run_one(run_ctx *r, int i, held_model *held, run_stage_summary *out) {
    const run_config *c = r->c;
    const stage_section *st = &c->stages[i];
    model_source in = input_of(c, i);
    describe(c, r->run_dir, in, out->model, sizeof out->model);
    if (!held->model || !same_source(held->source, in)) {
        lm_free(held->model);
        held->model = NULL;
        GRPO_TRY(open_for_stage(r, in, NULL, 0, &held->model));
        held->source = in;
        log_info("stage %s: model %s (%s, %.2fM parameters)", st->name, out->model, held->model->model_type,
                 (double)held->model->num_parameters / 1e6);
    }
    lm *model = held->model;
    int trains_input = st->kind == STAGE_SFT || st->kind == STAGE_PRETRAIN || st->kind == STAGE_GRPO;
    grpo_status s = trains_input ? param_set_alloc_grad(model->params) : GRPO_OK;   /* once; kept after */
    if (s) return s;
    switch (st->kind) {
    case STAGE_SFT:
    case STAGE_PRETRAIN: s = run_stage_sft(r, i, model, out); break;
    case STAGE_GRPO: s = run_stage_grpo(r, i, model, out); break;
    case STAGE_REJECTION: s = RUN_ON_ROOT(run_stage_rejection(r, i, model, out)); break;
    case STAGE_EVAL:
        s = RUN_ON_ROOT(run_evaluate(r, st, st->eval_dataset, model, &out->after));
        out->heldout = out->after;
        break;
    case STAGE_DISTILL: {
        model_source ss = source_of_name(c, st->student);
        describe(c, r->run_dir, ss, out->student, sizeof out->student);
        lm *student = NULL;
        tokenizer *student_tok = NULL;
        char tok_probe[PATH_MAX];
        /* a student directory with its own tokenizer trains with it */
        snprintf(tok_probe, sizeof tok_probe, "%s/tokenizer.json", ss.stage == NAMED ? ss.name : "");
        if (ss.stage == NAMED && fs_exists(tok_probe)) s = tokenizer_load_dir(ss.name, &student_tok);
        if (!s) s = open_for_stage(r, ss, student_tok, 1, &student);
        if (!s) s = run_stage_distill(r, i, model, student, student_tok, student_tok ? ss.name : NULL, out);
        if (!s && st->heldout_dataset)
            s = RUN_ON_ROOT(run_evaluate(r, st, st->heldout_dataset, model, &out->heldout_teacher));
        tokenizer_free(student_tok);
        if (s) {
            lm_free(student);
            return s;
        }
        /* the pipeline holds the student from here on */
        lm_free(held->model);
        held->model = student;
        held->source = (model_source){i, NULL};
        model = student;
        break;
    }
    default: GRPO_ASSERT(!"unknown stage kind");
    }
    if (s) return s;
    if (!passes_model_through(st)) {
        held->source = (model_source){i, NULL};
        GRPO_TRY(RUN_ON_ROOT(save_output(r, st->name, model, out->output, sizeof out->output)));
    }
    if (st->heldout_dataset && st->kind != STAGE_EVAL && st->kind != STAGE_DISTILL) {
        if (st->kind == STAGE_GRPO && st->eval_dataset && !strcmp(st->eval_dataset, st->heldout_dataset))
            out->heldout = out->after;   /* the same evaluation, already done by the trainer */
        else
            GRPO_TRY(RUN_ON_ROOT(run_evaluate(r, st, st->heldout_dataset, model, &out->heldout)));
        log_info("stage %s: held-out pass@1 %.1f%%, pass@%d %.1f%%, mean length %.1f", st->name,
                 100 * out->heldout.pass_at_1, out->heldout.k, 100 * out->heldout.pass_at_k, out->heldout.mean_length);
    }
    return GRPO_OK;
}

grpo_status run_execute(const run_config *c, run_summary *summary) {
    memset(summary, 0, sizeof *summary);
    if (c->n_stages > RUN_MAX_STAGES) return grpo_fail(GRPO_ERR_INVALID, "at most %d stages", RUN_MAX_STAGES);
    GRPO_TRY(run_check_paths(c));
#ifdef _OPENMP
    if (c->run.threads > 0) omp_set_num_threads(c->run.threads);
#endif
    char *run_dir = summary->run_dir, tok_dir[PATH_MAX], db_path[PATH_MAX];
    snprintf(run_dir, sizeof summary->run_dir, "%s/%s", c->run.output_dir, c->run.name);
    GRPO_TRY(run_ranks_make_run_dir(run_dir, !c->run.resume));   /* rank 0 checks and creates it */

    backend *be = c->run.backend == 1 ? backend_cuda_create(run_ranks_device()) : backend_cpu_create();
    if (!be) return GRPO_ERR_UNSUPPORTED;
    tokenizer *tok = NULL;
    run_ctx r = {.c = c, .run_dir = run_dir, .tok_dir = tok_dir, .be = be};
    snprintf(db_path, sizeof db_path, "%s/run.db", run_dir);
    grpo_status s = run_ranks_is_root() ? store_open(db_path, &r.db) : GRPO_OK;   /* rank 0 owns the store */
    char *config_text = NULL;
    if (!s) s = cfg_dump(cfg_root(c->doc), &config_text);
    if (!s && r.db) {
        /* A resumed run keeps its row (and metrics); a new one gets its own. */
        if (store_find_run(r.db, c->run.name, &r.run_id) != GRPO_OK) {
            grpo_error_clear();
            s = store_begin_run(r.db, c->run.name, config_text, &r.run_id);
        }
        grpo_set_abort_hook(store_abort_hook, r.db);
    }
    free(config_text);
    if (!s && run_ranks_is_root()) s = prepare_tokenizer(c, run_dir, tok_dir, sizeof tok_dir, &tok);
    s = run_ranks_join(s);   /* the other ranks read what rank 0 wrote */
    if (!s && !tok) s = run_ranks_load_tokenizer(run_dir, tok_dir, sizeof tok_dir, &tok);
    r.tok = tok;
    for (int i = 0; i < c->n_stages; i++) {
        run_stage_summary_clear(&summary->stages[i]);
        snprintf(summary->stages[i].name, sizeof summary->stages[i].name, "%s", c->stages[i].name);
        snprintf(summary->stages[i].kind, sizeof summary->stages[i].kind, "%s", stage_kind_names[c->stages[i].kind]);
    }
    summary->n_stages = c->n_stages;
    int start = 0;
    if (!s && r.db) s = first_unfinished(&r, summary, &start);
    s = run_ranks_share_int(s, &start);   /* every rank resumes where rank 0's store says */
    if (!s) s = run_ranks_materialise(&r);
    if (!s && start > 0)
        log_info("run %s: stages 0..%d finished in an earlier invocation (see run.db); resuming at stage %s", run_dir,
                 start - 1, start < c->n_stages ? c->stages[start].name : "(none: all done)");
    held_model held = {NULL, {NAMED, NULL}};
    for (int i = start; i < c->n_stages && !s; i++) {
        const stage_section *st = &c->stages[i];
        run_stage_summary *out = &summary->stages[i];
        r.stage = i;
        double t0 = progress_now();
        s = r.db ? store_begin_stage(r.db, r.run_id, i, st->name, stage_kind_names[st->kind]) : GRPO_OK;
        if (!s) s = run_one(&r, i, &held, out);
        out->seconds = progress_now() - t0;
        if (!s) {
            json_t *o = run_stage_summary_to_json(out);
            char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
            s = !text ? grpo_fail(GRPO_ERR_NOMEM, "out of memory")
                : r.db ? store_end_stage(r.db, r.run_id, i, out->steps, text) : GRPO_OK;
            free(text);
        }
    }
    if (!s && run_ranks_is_root()) s = run_summary_write(summary);
    if (r.db) {
        store_set_run_status(r.db, r.run_id, s ? "failed" : "finished");
        grpo_set_abort_hook(NULL, NULL);
        store_close(r.db);
    }
    lm_free(held.model);
    tokenizer_free(tok);
    backend_free(be);
    return s;
}
