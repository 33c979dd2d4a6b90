/* `grpo run` on several ranks (rl/run_ranks.h): who writes the run directory's shared
 * files, and the collectives that make the others wait for them. */
#include "rl/run_ranks.h"

#include <limits.h>
#include <stdio.h>

#include "core/comm.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"

void run_ranks_setup(void) {
    comm *world = comm_world();
    if (comm_size(world) == 1) return;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "rank %d: ", comm_rank(world));
    log_set_prefix(prefix);
    if (comm_rank(world) != 0) {
        if (log_get_level() > LOG_WARN) log_set_level(LOG_WARN);
        progress_set_quiet(1);
    }
}

int run_ranks_is_root(void) { return comm_rank(comm_world()) == 0; }

int run_ranks_device(void) {
    int n = backend_cuda_device_count();
    return n > 0 ? comm_local_rank(comm_world()) % n : 0;
}

grpo_status run_ranks_join(grpo_status s) {
    comm *world = comm_world();
    if (comm_size(world) == 1) return s;
    double before = comm_set_timeout(world, 0);
    s = comm_agree(world, s);
    comm_set_timeout(world, before);
    return s;
}

grpo_status run_ranks_share_int(grpo_status s, int *value) {
    comm *world = comm_world();
    if (comm_size(world) == 1) return s;
    GRPO_TRY(run_ranks_join(s));
    int64_t v = run_ranks_is_root() ? *value : 0;   /* a sum with zeros elsewhere: rank 0's value */
    GRPO_TRY(comm_allreduce_i64(world, &v, 1, COMM_SUM));
    *value = (int)v;
    return GRPO_OK;
}

static grpo_status make_run_dir(const char *run_dir, int must_be_new) {
    if (must_be_new && fs_exists(run_dir))
        return grpo_fail(GRPO_ERR_INVALID, "%s exists and run.resume is false: remove it or choose another run.name",
                         run_dir);
    return fs_mkdirs(run_dir);
}

grpo_status run_ranks_make_run_dir(const char *run_dir, int must_be_new) {
    return RUN_ON_ROOT(make_run_dir(run_dir, must_be_new));
}

static grpo_status save_unless_there(lm *model, const char *dir) {
    char config[PATH_MAX];
    snprintf(config, sizeof config, "%s/config.json", dir);
    if (fs_exists(config)) return GRPO_OK;
    GRPO_TRY(fs_mkdirs(dir));
    return lm_save(model, dir);
}

grpo_status run_ranks_save_once(lm *model, const char *dir) { return RUN_ON_ROOT(save_unless_there(model, dir)); }

static grpo_status write_generated(const run_ctx *r) {
    char path[PATH_MAX];
    for (int i = 0; i < r->c->n_datasets; i++) {
        const dataset_section *d = &r->c->datasets[i];
        if (d->from_stage || d->generate == DATA_FILE) continue;
        GRPO_TRY(run_dataset_path(r, d->name, path, sizeof path));
    }
    return GRPO_OK;
}

grpo_status run_ranks_materialise(const run_ctx *r) { return RUN_ON_ROOT(write_generated(r)); }

grpo_status run_ranks_load_tokenizer(const char *run_dir, char *dir, size_t size, tokenizer **tok) {
    snprintf(dir, size, "%s/tokenizer", run_dir);
    return tokenizer_load_dir(dir, tok);
}
