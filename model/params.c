/* A model's parameters as one block carved into named views (see params.h): declaring,
 * allocating, finding, random initialisation, and loading/saving as safetensors. */
#include "model/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend_pool.h"
#include "core/rng.h"
#include "model/linear.h"

void param_set_init(param_set *ps, backend *be) {
    memset(ps, 0, sizeof *ps);
    ps->be = be;
}

void param_set_deinit(param_set *ps) {
    if (!ps) return;
    linear_free(ps->compute);
    if (ps->be) {
        ps->be->free(ps->be, ps->data);
        ps->be->free(ps->be, ps->grad);
    }
    free(ps->views);
    backend *be = ps->be;
    memset(ps, 0, sizeof *ps);
    ps->be = be;
}

int param_set_add(param_set *ps, const char *name, int ndim, const int64_t *shape, int no_decay) {
    GRPO_ASSERTF(ps->data == NULL, "param_set_add(%s) after param_set_alloc", name);
    GRPO_ASSERTF(strlen(name) < PARAM_NAME_MAX, "param name too long: %s", name);
    GRPO_ASSERTF(ndim >= 1 && ndim <= PARAM_MAX_DIMS, "param %s: ndim %d", name, ndim);
    GRPO_ASSERTF(param_find(ps, name) < 0, "param %s declared twice", name);
    if (ps->count == ps->capacity) {
        int cap = ps->capacity ? ps->capacity * 2 : 64;
        param_view *v = realloc(ps->views, (size_t)cap * sizeof *v);
        GRPO_ASSERTF(v != NULL, "out of memory declaring %d params", cap);
        ps->views = v;
        ps->capacity = cap;
    }
    param_view *v = &ps->views[ps->count];
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s", name);
    v->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        GRPO_ASSERTF(shape[i] >= 1, "param %s: dim %d is %lld", name, i, (long long)shape[i]);
        v->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    v->numel = numel;
    v->offset = ps->total;
    v->no_decay = no_decay;
    ps->total += numel;
    return ps->count++;
}

grpo_status param_set_alloc(param_set *ps) {
    GRPO_ASSERT(ps->data == NULL);
    if (ps->total == 0) return grpo_fail(GRPO_ERR_INVALID, "param_set_alloc: no parameters declared");
    char what[64];
    snprintf(what, sizeof what, "%zu parameters", ps->total);
    ps->data = backend_alloc(ps->be, ps->total * sizeof(float), what);
    if (!ps->data) return GRPO_ERR_NOMEM;   /* backend_alloc's message names the size and the pool */
    return linear_create(ps, &ps->compute);
}

grpo_status param_set_alloc_grad(param_set *ps) {
    if (ps->grad) return GRPO_OK;
    char what[64];
    snprintf(what, sizeof what, "gradients of %zu parameters", ps->total);
    ps->grad = backend_alloc(ps->be, ps->total * sizeof(float), what);
    if (!ps->grad) return GRPO_ERR_NOMEM;
    return GRPO_OK;
}

void param_set_zero_grad(param_set *ps) {
    if (ps->grad) ps->be->zero(ps->be, ps->grad, ps->total * sizeof(float));
}

float *param_ptr(const param_set *ps, int view) {
    GRPO_ASSERT(view >= 0 && view < ps->count && ps->data);
    return ps->data + ps->views[view].offset;
}

float *param_grad_ptr(const param_set *ps, int view) {
    GRPO_ASSERT(view >= 0 && view < ps->count && ps->grad);
    return ps->grad + ps->views[view].offset;
}

/* Linear: params.h has no slot for an index, and lookups by name happen at set-up only.
 * Loading builds its own hash table (below). */
int param_find(const param_set *ps, const char *name) {
    for (int i = 0; i < ps->count; i++)
        if (strcmp(ps->views[i].name, name) == 0) return i;
    return -1;
}

/* ---- a name -> view hash for loading (FNV-1a, open addressing, power-of-two size) ---- */

typedef struct {
    int *slots;    /* view index or -1 */
    size_t mask;
} name_index;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static grpo_status name_index_build(name_index *ix, const param_set *ps) {
    size_t size = 16;
    while (size < (size_t)ps->count * 2) size *= 2;
    ix->slots = malloc(size * sizeof *ix->slots);
    if (!ix->slots) return grpo_fail(GRPO_ERR_NOMEM, "out of memory indexing %d parameters", ps->count);
    ix->mask = size - 1;
    for (size_t i = 0; i < size; i++) ix->slots[i] = -1;
    for (int v = 0; v < ps->count; v++) {
        size_t h = fnv1a(ps->views[v].name) & ix->mask;
        while (ix->slots[h] >= 0) h = (h + 1) & ix->mask;
        ix->slots[h] = v;
    }
    return GRPO_OK;
}

static int name_index_find(const name_index *ix, const param_set *ps, const char *name) {
    for (size_t h = fnv1a(name) & ix->mask; ix->slots[h] >= 0; h = (h + 1) & ix->mask)
        if (strcmp(ps->views[ix->slots[h]].name, name) == 0) return ix->slots[h];
    return -1;
}

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
}

static size_t largest_view(const param_set *ps) {
    size_t m = 0;
    for (int i = 0; i < ps->count; i++)
        if (ps->views[i].numel > m) m = ps->views[i].numel;
    return m;
}

grpo_status param_set_load(param_set *ps, const st_file *f, int (*optional_missing)(const char *name),
                           int ignore_extra) {
    GRPO_ASSERT(ps->data != NULL);
    name_index ix = {NULL, 0};
    GRPO_TRY(name_index_build(&ix, ps));
    char *seen = calloc((size_t)ps->count + 1, 1);
    float *host = malloc((largest_view(ps) + 1) * sizeof(float));
    grpo_status s = GRPO_OK;
    if (!seen || !host) { s = grpo_fail(GRPO_ERR_NOMEM, "out of memory loading parameters"); goto done; }
    int n = st_count(f);
    for (int i = 0; i < n && s == GRPO_OK; i++) {
        const st_tensor *t = st_get(f, i);
        int v = name_index_find(&ix, ps, t->name);
        if (v < 0) {
            if (!ignore_extra)
                s = grpo_fail(GRPO_ERR_INVALID, "tensor %s in the file is not a parameter of this model", t->name);
            continue;
        }
        const param_view *pv = &ps->views[v];
        if (seen[v]) { s = grpo_fail(GRPO_ERR_INVALID, "tensor %s appears twice", t->name); break; }
        int same = t->ndim == pv->ndim;
        for (int d = 0; same && d < pv->ndim; d++) same = t->shape[d] == pv->shape[d];
        if (!same) {
            char want[96], got[96];
            format_shape(want, sizeof want, pv->ndim, pv->shape);
            format_shape(got, sizeof got, t->ndim, t->shape);
            s = grpo_fail(GRPO_ERR_INVALID, "tensor %s: expected shape %s, found %s", t->name, want, got);
            break;
        }
        s = st_read_f32(t, host, (int64_t)pv->numel);
        if (s != GRPO_OK) break;
        ps->be->to_device(ps->be, ps->data + pv->offset, host, pv->numel * sizeof(float));
        seen[v] = 1;
    }
    for (int v = 0; v < ps->count && s == GRPO_OK; v++) {
        if (seen[v] || (optional_missing && optional_missing(ps->views[v].name))) continue;
        s = grpo_fail(GRPO_ERR_NOTFOUND, "tensor %s is missing from the file", ps->views[v].name);
    }
done:
    param_set_touch(ps);
    free(ix.slots);
    free(seen);
    free(host);
    return s;
}

grpo_status param_set_save(const param_set *ps, const char *path, int bf16, int (*skip)(const char *name)) {
    GRPO_ASSERT(ps->data != NULL);
    float *host = malloc(ps->total * sizeof(float));
    uint16_t *half = bf16 ? malloc(ps->total * sizeof(uint16_t)) : NULL;
    st_writer *w = st_writer_create();
    grpo_status s = GRPO_OK;
    if (!host || (bf16 && !half) || !w) {
        s = grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory saving %zu parameters", path, ps->total);
        goto done;
    }
    ps->be->to_host(ps->be, host, ps->data, ps->total * sizeof(float));
    if (bf16)
        for (size_t i = 0; i < ps->total; i++) half[i] = st_f32_to_bf16(host[i]);
    for (int v = 0; v < ps->count && s == GRPO_OK; v++) {
        const param_view *pv = &ps->views[v];
        if (skip && skip(pv->name)) continue;
        const void *data = bf16 ? (const void *)(half + pv->offset) : (const void *)(host + pv->offset);
        s = st_writer_add(w, pv->name, bf16 ? ST_BF16 : ST_F32, pv->ndim, pv->shape, data);
    }
    if (s == GRPO_OK) s = st_writer_add_metadata(w, "format", "pt");
    if (s == GRPO_OK) s = st_writer_save(w, path);
done:
    st_writer_free(w);
    free(host);
    free(half);
    return s;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

void param_set_init_normal(param_set *ps, uint64_t seed, float std) {
    GRPO_ASSERT(ps->data != NULL);
    float *host = malloc((largest_view(ps) + 1) * sizeof(float));
    GRPO_ASSERTF(host != NULL, "out of memory initialising parameters");
    for (int v = 0; v < ps->count; v++) {
        const param_view *pv = &ps->views[v];
        if (ends_with(pv->name, "norm.weight") || ends_with(pv->name, "layernorm.weight")) {
            for (size_t i = 0; i < pv->numel; i++) host[i] = 1.0f;
        } else if (ends_with(pv->name, ".bias") || strcmp(pv->name, "bias") == 0) {
            memset(host, 0, pv->numel * sizeof(float));
        } else {
            for (size_t i = 0; i < pv->numel; i++) host[i] = std * rng_normal(seed, (uint64_t)v, i);
        }
        ps->be->to_device(ps->be, ps->data + pv->offset, host, pv->numel * sizeof(float));
    }
    param_set_touch(ps);
    free(host);
}
