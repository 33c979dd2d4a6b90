/* AdamW over a param_set, gradient clipping, learning-rate schedules. */
#include "rl/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend_pool.h"
#include "core/comm.h"
#include "core/safetensors.h"

/* Gradients are all-reduced in buckets of this many floats (one collective each; with a
 * backend that can overlap, a bucket goes out as soon as its gradients are final). */
#define OPTIM_GRAD_BUCKET ((size_t)1 << 22)

const char *const lr_schedule_names[] = {"constant", "linear", "cosine", NULL};

/* ZeRO-1 (Rajbhandari et al., "ZeRO", SC 2020, stage 1): with W ranks, rank r owns
 * floats [shard_lo, shard_hi) of the parameter block, shard = ceil(total / W) each; it
 * keeps m and v for that range only, steps it, and the updated shards are all-gathered.
 * One rank owns everything and the step is exactly the single-process one. */
struct optim {
    optim_config cfg;
    param_set *ps;       /* not owned */
    comm *world;
    float *m, *v;        /* [shard], backend memory */
    size_t shard, shard_lo, shard_hi;
    float *gather;       /* [W * shard] all-gather scratch (W > 1 only) */
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
    o->world = comm_world();
    size_t W = (size_t)comm_size(o->world), r = (size_t)comm_rank(o->world);
    o->shard = (ps->total + W - 1) / W;
    o->shard_lo = r * o->shard < ps->total ? r * o->shard : ps->total;
    o->shard_hi = o->shard_lo + o->shard < ps->total ? o->shard_lo + o->shard : ps->total;
    /* backend_alloc's message names the state that did not fit */
    if (!(o->m = backend_alloc(ps->be, o->shard * sizeof(float), "AdamW first moments")) ||
        !(o->v = backend_alloc(ps->be, o->shard * sizeof(float), "AdamW second moments")) ||
        (W > 1 && !(o->gather = backend_alloc(ps->be, W * o->shard * sizeof(float), "ZeRO-1 parameter gather")))) {
        optim_free(o);
        return GRPO_ERR_NOMEM;
    }
    *out = o;
    return GRPO_OK;
}

void optim_free(optim *o) {
    if (!o) return;
    o->ps->be->free(o->ps->be, o->m);
    o->ps->be->free(o->ps->be, o->v);
    o->ps->be->free(o->ps->be, o->gather);
    free(o);
}

int optim_step_count(const optim *o) { return o->step; }

double optim_grad_norm(const param_set *ps) {
    return sqrt(ps->be->sum_squares(ps->be, ps->grad, ps->total));
}

int optim_shard(const optim *o, size_t *lo, size_t *hi) {
    if (lo) *lo = o->shard_lo;
    if (hi) *hi = o->shard_hi;
    return comm_size(o->world);
}

grpo_status optim_allreduce_gradients(optim *o) {
    param_set *ps = o->ps;
    for (size_t at = 0; at < ps->total; at += OPTIM_GRAD_BUCKET) {
        size_t n = ps->total - at < OPTIM_GRAD_BUCKET ? ps->total - at : OPTIM_GRAD_BUCKET;
        GRPO_TRY(comm_allreduce_f32(o->world, ps->be, ps->grad + at, n, COMM_SUM));
    }
    return GRPO_OK;
}

/* All ranks (W > 1): every rank's shard_values [its shard] into o->gather, whose first
 * ps->total floats are then the whole block in order. */
static grpo_status gather_shards(optim *o, const float *shard_values) {
    backend *be = o->ps->be;
    size_t n = o->shard_hi - o->shard_lo;
    float *mine = o->gather + (size_t)comm_rank(o->world) * o->shard;
    if (n) be->copy(be, mine, shard_values, n * sizeof(float));
    return comm_allgather_f32(o->world, be, mine, o->gather, o->shard);
}

/* The whole of a sharded state vector (m or v) on the host: host[ps->total]. */
static grpo_status state_to_host(optim *o, const float *state, float *host) {
    backend *be = o->ps->be;
    if (comm_size(o->world) == 1) {
        be->to_host(be, host, state, o->ps->total * sizeof(float));
        return GRPO_OK;
    }
    GRPO_TRY(gather_shards(o, state));
    be->to_host(be, host, o->gather, o->ps->total * sizeof(float));
    return GRPO_OK;
}

grpo_status optim_step(optim *o, double lr, double *grad_norm) {
    param_set *ps = o->ps;
    backend *be = ps->be;
    int W = comm_size(o->world);
    if (W > 1) GRPO_TRY(optim_allreduce_gradients(o));
    double norm = optim_grad_norm(ps);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm))
        return grpo_fail(GRPO_ERR_INVALID, "gradient norm is %g at update %d: update skipped", norm, o->step + 1);
    if (o->cfg.max_grad_norm > 0 && norm > o->cfg.max_grad_norm)
        be->scale(be, ps->grad, (float)(o->cfg.max_grad_norm / (norm + 1e-6)), ps->total);
    o->step++;
    /* each view's part inside this rank's shard (the whole view with one rank) */
    for (int i = 0; i < ps->count; i++) {
        const param_view *pv = &ps->views[i];
        size_t lo = pv->offset > o->shard_lo ? pv->offset : o->shard_lo;
        size_t hi = pv->offset + pv->numel < o->shard_hi ? pv->offset + pv->numel : o->shard_hi;
        if (lo >= hi) continue;
        float wd = pv->no_decay ? 0.0f : (float)o->cfg.weight_decay;
        size_t at = lo - o->shard_lo;
        be->adamw(be, ps->data + lo, ps->grad + lo, o->m + at, o->v + at, hi - lo, (float)lr, (float)o->cfg.beta1,
                  (float)o->cfg.beta2, (float)o->cfg.eps, wd, o->step);
    }
    if (W > 1) {
        GRPO_TRY(gather_shards(o, ps->data + o->shard_lo));
        be->copy(be, ps->data, o->gather, ps->total * sizeof(float));
    }
    param_set_touch(ps);   /* the bf16/fp8 compute copies (model/linear.h) are remade on next use */
    return GRPO_OK;
}

grpo_status optim_save(const optim *o_const, const char *path) {
    optim *o = (optim *)o_const;   /* the all-gather scratch is used; the state is not changed */
    size_t n = o->ps->total;
    float *m = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    if (!m || !v) {
        free(m);
        free(v);
        return grpo_fail(GRPO_ERR_NOMEM, "optim_save: out of memory");
    }
    grpo_status gs = state_to_host(o, o->m, m);
    if (!gs) gs = state_to_host(o, o->v, v);
    if (gs || comm_rank(o->world) != 0) {   /* rank 0 writes the whole state */
        free(m);
        free(v);
        return gs;
    }
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
    /* every rank reads the whole state and keeps its shard */
    size_t lo = o->shard_lo, k = o->shard_hi - o->shard_lo;
    s = st_load_f32(f, "optimizer.m", host, (int64_t)n);
    if (!s && k) be->to_device(be, o->m, host + lo, k * sizeof(float));
    if (!s) s = st_load_f32(f, "optimizer.v", host, (int64_t)n);
    if (!s && k) be->to_device(be, o->v, host + lo, k * sizeof(float));
    free(host);
    if (!s) o->step = atoi(step);
done:
    if (s) grpo_error_prefix("%s", path);
    st_close(f);
    return s;
}
