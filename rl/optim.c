/* AdamW over a param_set, gradient clipping, learning-rate schedules. */
#include "rl/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"

const char *const lr_schedule_names[] = {"constant", "linear", "cosine", NULL};

struct optim {
    optim_config cfg;
    param_set *ps;       /* not owned */
    float *m, *v;        /* [ps->total], backend memory */
    int step;            /* updates done so far */
};

optim_config optim_config_default(void) {
    optim_config c = {0};
    c.learning_rate = 1e-5;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.weight_decay = 0.0;
    c.max_grad_norm = 1.0;
    c.schedule = LR_CONSTANT;
    c.warmup_steps = 0;
    c.min_lr_ratio = 0.0;
    return c;
}

double optim_lr_at(const optim_config *cfg, int step, int total_steps) {
    double peak = cfg->learning_rate;
    if (cfg->warmup_steps > 0 && step < cfg->warmup_steps)
        return peak * (double)(step + 1) / (double)cfg->warmup_steps;
    if (cfg->schedule == LR_CONSTANT) return peak;
    int decay_steps = total_steps - cfg->warmup_steps;
    if (decay_steps <= 1) return peak;
    double progress = (double)(step - cfg->warmup_steps) / (double)(decay_steps - 1);
    if (progress > 1) progress = 1;
    double floor_lr = peak * cfg->min_lr_ratio;
    if (cfg->schedule == LR_LINEAR) return floor_lr + (peak - floor_lr) * (1.0 - progress);
    return floor_lr + (peak - floor_lr) * 0.5 * (1.0 + cos(M_PI * progress));
}

grpo_status optim_create(const optim_config *cfg, param_set *ps, optim **out) {
    *out = NULL;
    if (!ps->grad) return grpo_fail(GRPO_ERR_INVALID, "optim_create: the parameter set has no gradients allocated");
    GRPO_TRY(BACKEND_REQUIRE(ps->be, adamw));
    optim *o = calloc(1, sizeof *o);
    if (!o) return grpo_fail(GRPO_ERR_NOMEM, "optim_create: out of memory");
    o->cfg = *cfg;
    o->ps = ps;
    o->m = ps->be->alloc(ps->be, ps->total * sizeof(float));
    o->v = ps->be->alloc(ps->be, ps->total * sizeof(float));
    if (!o->m || !o->v) {
        optim_free(o);
        return grpo_fail(GRPO_ERR_NOMEM, "optim_create: cannot allocate %zu floats of optimizer state", 2 * ps->total);
    }
    *out = o;
    return GRPO_OK;
}

void optim_free(optim *o) {
    if (!o) return;
    o->ps->be->free(o->ps->be, o->m);
    o->ps->be->free(o->ps->be, o->v);
    free(o);
}

int optim_step_count(const optim *o) { return o->step; }

double optim_grad_norm(const param_set *ps) {
    return sqrt(ps->be->sum_squares(ps->be, ps->grad, ps->total));
}

grpo_status optim_step(optim *o, double lr, double *grad_norm) {
    param_set *ps = o->ps;
    backend *be = ps->be;
    double norm = optim_grad_norm(ps);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm))
        return grpo_fail(GRPO_ERR_INVALID, "gradient norm is %g at update %d: update skipped", norm, o->step + 1);
    if (o->cfg.max_grad_norm > 0 && norm > o->cfg.max_grad_norm)
        be->scale(be, ps->grad, (float)(o->cfg.max_grad_norm / (norm + 1e-6)), ps->total);
    o->step++;
    for (int i = 0; i < ps->count; i++) {
        const param_view *pv = &ps->views[i];
        float wd = pv->no_decay ? 0.0f : (float)o->cfg.weight_decay;
        be->adamw(be, ps->data + pv->offset, ps->grad + pv->offset, o->m + pv->offset, o->v + pv->offset,
                  pv->numel, (float)lr, (float)o->cfg.beta1, (float)o->cfg.beta2, (float)o->cfg.eps, wd, o->step);
    }
    return GRPO_OK;
}

grpo_status optim_save(const optim *o, const char *path) {
    backend *be = o->ps->be;
    size_t n = o->ps->total;
    float *m = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    if (!m || !v) {
        free(m);
        free(v);
        return grpo_fail(GRPO_ERR_NOMEM, "optim_save: out of memory");
    }
    be->to_host(be, m, o->m, n * sizeof(float));
    be->to_host(be, v, o->v, n * sizeof(float));
    st_writer *w = st_writer_create();
    int64_t shape[1] = {(int64_t)n};
    char step[32];
    snprintf(step, sizeof step, "%d", o->step);
    grpo_status s = st_writer_add(w, "optimizer.m", ST_F32, 1, shape, m);
    if (!s) s = st_writer_add(w, "optimizer.v", ST_F32, 1, shape, v);
    if (!s) s = st_writer_add_metadata(w, "format", "grpo-adamw");
    if (!s) s = st_writer_add_metadata(w, "version", "1");
    if (!s) s = st_writer_add_metadata(w, "step", step);
    if (!s) s = st_writer_save(w, path);
    st_writer_free(w);
    free(m);
    free(v);
    return s;
}

grpo_status optim_load(optim *o, const char *path) {
    st_file *f;
    GRPO_TRY(st_open(path, &f));
    grpo_status s = GRPO_OK;
    const char *format = st_metadata(f, "format"), *version = st_metadata(f, "version"),
               *step = st_metadata(f, "step");
    if (!format || strcmp(format, "grpo-adamw") != 0 || !version || strcmp(version, "1") != 0 || !step) {
        s = grpo_fail(GRPO_ERR_PARSE, "%s: expected optimizer state with metadata format=grpo-adamw version=1 "
                      "and a step, found format=%s version=%s", path, format ? format : "(none)",
                      version ? version : "(none)");
        goto done;
    }
    size_t n = o->ps->total;
    float *host = malloc(n * sizeof(float));
    if (!host) { s = grpo_fail(GRPO_ERR_NOMEM, "optim_load: out of memory"); goto done; }
    backend *be = o->ps->be;
    s = st_load_f32(f, "optimizer.m", host, (int64_t)n);
    if (!s) be->to_device(be, o->m, host, n * sizeof(float));
    if (!s) s = st_load_f32(f, "optimizer.v", host, (int64_t)n);
    if (!s) be->to_device(be, o->v, host, n * sizeof(float));
    free(host);
    if (!s) o->step = atoi(step);
done:
    if (s) grpo_error_prefix("%s", path);
    st_close(f);
    return s;
}
