/* Loading and saving dense models as Hugging Face directories: config.json +
 * model.safetensors (or the sharded index), tensor names as transformers writes them. */
#include "model/dense_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int never(const char *name) { (void)name; return 0; }

/* 1 when the only tensor of f that m lacks is a (redundant) lm_head.weight of a tied model:
 * some tied checkpoints carry the copy; it is ignored. */
static int only_extra_is_tied_lm_head(const dense_model *m, const st_file *f) {
    if (!m->cfg.tie_word_embeddings || !st_find(f, "lm_head.weight")) return 0;
    int extras = 0;
    for (int i = 0; i < st_count(f); i++)
        if (param_find(&m->params, st_get(f, i)->name) < 0) extras++;
    return extras == 1;
}

grpo_status dense_load(dense_model *m, const char *path) {
    st_file *f = NULL;
    GRPO_TRY(st_open(path, &f));
    /* A tied model has no lm_head view, so only an untied one could miss it: that is an error. */
    grpo_status s = param_set_load(&m->params, f, never, only_extra_is_tied_lm_head(m, f));
    if (s != GRPO_OK) grpo_error_prefix("%s", path);
    st_close(f);
    return s;
}

static grpo_status join(char *buf, size_t size, const char *dir, const char *file) {
    if (snprintf(buf, size, "%s/%s", dir, file) >= (int)size)
        return grpo_fail(GRPO_ERR_INVALID, "%s: path too long", dir);
    return GRPO_OK;
}

grpo_status dense_model_load_dir(backend *be, const char *dir, dense_model **out) {
    *out = NULL;
    char path[4096];
    dense_config cfg;
    GRPO_TRY(join(path, sizeof path, dir, "config.json"));
    GRPO_TRY(hf_config_dense_read(path, &cfg));
    dense_model *m = NULL;
    GRPO_TRY(dense_model_create(be, &cfg, &m));
    grpo_status s = dense_load(m, dir);
    if (s != GRPO_OK) {
        dense_model_free(m);
        return s;
    }
    *out = m;
    return GRPO_OK;
}

grpo_status dense_save(const dense_model *m, const char *dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return grpo_fail(GRPO_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    char path[4096];
    GRPO_TRY(join(path, sizeof path, dir, "config.json"));
    GRPO_TRY(hf_config_dense_write(&m->cfg, path));
    GRPO_TRY(join(path, sizeof path, dir, "model.safetensors"));
    /* Tied models have no lm_head view: transformers' save_pretrained omits it too. */
    return param_set_save(&m->params, path, 0, NULL);
}
