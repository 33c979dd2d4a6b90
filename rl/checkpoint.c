/* Crash-safe checkpoints (rl/checkpoint.h). */
#include "rl/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/comm.h"
#include "core/fs.h"
#include "core/safetensors.h"

static grpo_status write_state(const char *path, const trainer_state *ts) {
    json_t *rng = json_pack("{s:I, s:I, s:I}", "seed", (json_int_t)ts->rng.seed, "stream", (json_int_t)ts->rng.stream,
                            "counter", (json_int_t)ts->rng.counter);
    json_t *root = json_pack("{s:s, s:i, s:i, s:i, s:i, s:s, s:I, s:o, s:i}", "format", "grpo-trainer-state",
                             "version", CHECKPOINT_STATE_VERSION, "step", ts->step, "global_step",
                             ts->global_step ? ts->global_step : ts->step, "stage_index", ts->stage_index, "stage",
                             ts->stage, "seed", (json_int_t)ts->seed, "rng", rng, "world_size",
                             ts->world_size > 0 ? ts->world_size : 1);
    if (!root) return grpo_fail(GRPO_ERR_NOMEM, "cannot build %s", path);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return grpo_fail(GRPO_ERR_NOMEM, "cannot serialise %s", path);
    grpo_status s = fs_write_atomic(path, text, strlen(text));
    free(text);
    return s;
}

grpo_status checkpoint_read_state(const char *dir, trainer_state *ts) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) return grpo_fail(GRPO_ERR_PARSE, "%s:%d:%d: %s", path, err.line, err.column, err.text);
    trainer_state t = {0};
    const char *format = NULL, *stage = NULL;
    json_int_t seed = 0, rseed = 0, rstream = 0, rcounter = 0;
    int version = 0;
    t.world_size = 1;   /* states written before data parallelism were one rank's */
    if (json_unpack_ex(root, &err, JSON_STRICT, "{s:s, s:i, s:i, s:i, s:i, s:s, s:I, s:{s:I, s:I, s:I}, s?i}",
                       "format", &format, "version", &version, "step", &t.step, "global_step", &t.global_step,
                       "stage_index", &t.stage_index, "stage", &stage, "seed", &seed, "rng", "seed", &rseed, "stream",
                       &rstream, "counter", &rcounter, "world_size", &t.world_size) != 0) {
        json_decref(root);
        return grpo_fail(GRPO_ERR_PARSE, "%s: expected a grpo trainer state: %s", path, err.text);
    }
    grpo_status s = GRPO_OK;
    if (strcmp(format, "grpo-trainer-state") != 0 || version != CHECKPOINT_STATE_VERSION)
        s = grpo_fail(GRPO_ERR_PARSE, "%s: expected format grpo-trainer-state version %d, found %s version %d", path,
                      CHECKPOINT_STATE_VERSION, format, version);
    else if (t.step < 0)
        s = grpo_fail(GRPO_ERR_PARSE, "%s: step %d is negative", path, t.step);
    else if (t.world_size < 1)
        s = grpo_fail(GRPO_ERR_PARSE, "%s: world_size %d is not a positive number of ranks", path, t.world_size);
    snprintf(t.stage, sizeof t.stage, "%s", stage);
    t.seed = (uint64_t)seed;
    t.rng.seed = (uint64_t)rseed;
    t.rng.stream = (uint64_t)rstream;
    t.rng.counter = (uint64_t)rcounter;
    json_decref(root);
    if (!s) *ts = t;
    return s;
}

static grpo_status copy_if_exists(const char *src_dir, const char *dst_dir, const char *name) {
    char src[PATH_MAX], dst[PATH_MAX];
    snprintf(src, sizeof src, "%s/%s", src_dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dst_dir, name);
    if (!fs_exists(src)) return GRPO_OK;
    return fs_copy_file(src, dst);
}

/* Rank 0's part of a checkpoint before the optimizer state: the temp directory, the
 * model and the tokenizer files. */
static grpo_status save_model_part(const char *ckpt_dir, const char *tmp, lm *model, const char *tokenizer_dir) {
    GRPO_TRY(fs_mkdirs(ckpt_dir));
    GRPO_TRY(fs_remove_tree(tmp));
    GRPO_TRY(fs_mkdirs(tmp));
    GRPO_TRY(lm_save(model, tmp));
    if (tokenizer_dir) {
        GRPO_TRY(copy_if_exists(tokenizer_dir, tmp, "tokenizer.json"));
        GRPO_TRY(copy_if_exists(tokenizer_dir, tmp, "tokenizer_config.json"));
    }
    return GRPO_OK;
}

/* Rank 0's part after it: the trainer state, then the rename into place. */
static grpo_status save_finish(const char *ckpt_dir, const char *tmp, const char *final_dir, const trainer_state *ts) {
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/trainer_state.json", tmp);
    GRPO_TRY(write_state(file, ts));
    GRPO_TRY(fs_sync_path(tmp));
    GRPO_TRY(fs_remove_tree(final_dir));
    if (rename(tmp, final_dir) != 0)
        return grpo_fail(GRPO_ERR_IO, "cannot rename %s to %s: %s", tmp, final_dir, strerror(errno));
    return fs_sync_path(ckpt_dir);
}

/* With several ranks every rank calls this (the sharded optimizer state is gathered),
 * rank 0 writes, and all return together once the checkpoint is in place (or all fail). */
static grpo_status save_all_ranks(const char *run_dir, const trainer_state *ts_in, lm *model, const optim *opt,
                                  const char *tokenizer_dir, int keep_last, char *path_out, size_t size) {
    comm *world = comm_world();
    int writer = comm_rank(world) == 0;
    trainer_state ts = *ts_in;
    ts.world_size = comm_size(world);
    char ckpt_dir[PATH_MAX], tmp[PATH_MAX], final_dir[PATH_MAX], file[PATH_MAX];
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run_dir);
    int n = ts.global_step ? ts.global_step : ts.step;
    snprintf(tmp, sizeof tmp, "%s/.step-%d.tmp", ckpt_dir, n);
    snprintf(final_dir, sizeof final_dir, "%s/step-%d", ckpt_dir, n);
    grpo_status s = writer ? save_model_part(ckpt_dir, tmp, model, tokenizer_dir) : GRPO_OK;
    if (opt) {   /* a collective: every rank takes part even after a failure on rank 0 */
        snprintf(file, sizeof file, "%s/optimizer.safetensors", tmp);
        grpo_status os = optim_save(opt, file);
        if (!s) s = os;
    }
    if (!s && writer) s = save_finish(ckpt_dir, tmp, final_dir, &ts);
    if (!s && writer && keep_last > 0) s = checkpoint_prune(run_dir, keep_last);
    s = comm_agree(world, s);
    if (!s && path_out) snprintf(path_out, size, "%s", final_dir);
    return s;
}

grpo_status checkpoint_save(const char *run_dir, const trainer_state *ts, lm *model, const optim *opt,
                            const char *tokenizer_dir, char *path_out, size_t size) {
    return save_all_ranks(run_dir, ts, model, opt, tokenizer_dir, 0, path_out, size);
}

/* Steps of the complete checkpoints of a run, newest last; *n set. Caller frees. */
static grpo_status list_steps(const char *run_dir, int **steps, int *n) {
    char ckpt_dir[PATH_MAX];
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run_dir);
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(ckpt_dir);
    if (!d) return GRPO_OK;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int step;
        char rest;
        if (sscanf(e->d_name, "step-%d%c", &step, &rest) != 1 || step < 0) continue;
        char state[PATH_MAX];
        snprintf(state, sizeof state, "%s/%s/trainer_state.json", ckpt_dir, e->d_name);
        if (!fs_exists(state)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int *grown = realloc(*steps, (size_t)cap * sizeof(int));
            if (!grown) { closedir(d); free(*steps); *steps = NULL; return grpo_fail(GRPO_ERR_NOMEM, "out of memory"); }
            *steps = grown;
        }
        (*steps)[(*n)++] = step;
    }
    closedir(d);
    for (int i = 1; i < *n; i++)   /* insertion sort: a run has few checkpoints */
        for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
            int t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    return GRPO_OK;
}

grpo_status checkpoint_latest(const char *run_dir, char *path, size_t size) {
    int *steps, n;
    GRPO_TRY(list_steps(run_dir, &steps, &n));
    if (n == 0) {
        free(steps);
        return grpo_fail(GRPO_ERR_NOTFOUND, "%s: no checkpoint under %s/ckpt", run_dir, run_dir);
    }
    snprintf(path, size, "%s/ckpt/step-%d", run_dir, steps[n - 1]);
    free(steps);
    return GRPO_OK;
}

grpo_status checkpoint_prune(const char *run_dir, int keep) {
    if (keep <= 0) return GRPO_OK;
    int *steps, n;
    GRPO_TRY(list_steps(run_dir, &steps, &n));
    grpo_status s = GRPO_OK;
    for (int i = 0; i + keep < n && !s; i++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/ckpt/step-%d", run_dir, steps[i]);
        s = fs_remove_tree(dir);
    }
    free(steps);
    return s;
}

grpo_status checkpoint_restore(const char *dir, lm *model, optim *opt) {
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    st_file *f;
    GRPO_TRY(st_open(dir, &f));
    grpo_status s = param_set_load(model->params, f, NULL, 1);
    st_close(f);
    if (s) return s;
    if (opt) {
        snprintf(file, sizeof file, "%s/optimizer.safetensors", dir);
        GRPO_TRY(optim_load(opt, file));
    }
    return GRPO_OK;
}

grpo_status checkpoint_save_step(const train_run *run, int step, uint64_t seed, const rng_stream *rng,
                                 lm *model, const optim *opt, int keep_last, char *path_out, size_t size) {
    if (!run->run_dir) return GRPO_OK;
    trainer_state ts = {0};
    ts.step = step;
    ts.global_step = run->step_offset + step;
    ts.stage_index = run->stage_index;
    snprintf(ts.stage, sizeof ts.stage, "%s", run->stage_name ? run->stage_name : "train");
    ts.seed = seed;
    if (rng) ts.rng = *rng;
    return save_all_ranks(run->run_dir, &ts, model, opt, run->tokenizer_dir, keep_last, path_out, size);
}

grpo_status checkpoint_resume_stage(const train_run *run, lm *model, optim *opt, trainer_state *ts, int *resumed) {
    *resumed = 0;
    if (!run->resume || !run->run_dir) return GRPO_OK;
    char dir[PATH_MAX];
    if (checkpoint_latest(run->run_dir, dir, sizeof dir) != GRPO_OK) {
        grpo_error_clear();
        return GRPO_OK;
    }
    trainer_state state;
    GRPO_TRY(checkpoint_read_state(dir, &state));
    if (state.stage_index != run->stage_index) return GRPO_OK;
    int world = comm_size(comm_world());
    if (state.world_size != world)
        return grpo_fail(GRPO_ERR_INVALID,
                         "%s was written by a run on %d rank%s but this run has %d: the data order and the random "
                         "streams depend on the number of ranks, so resume with the same number (mpirun -np %d), "
                         "or start a new run from the checkpoint's weights (model.path: %s)",
                         dir, state.world_size, state.world_size == 1 ? "" : "s", world, state.world_size, dir);
    GRPO_TRY(checkpoint_restore(dir, model, opt));
    *ts = state;
    *resumed = 1;
    return GRPO_OK;
}
