/* Loading and saving DeepSeek-V3 models as Hugging Face directories: config.json +
 * model.safetensors (or sharded with model.safetensors.index.json), the official tensor
 * names (experts one tensor per projection: model.layers.N.mlp.experts.E.gate_proj.weight,
 * as the hub checkpoints and transformers' save_pretrained lay them out), FP8 E4M3
 * weights with 128x128-block `weight_scale_inv` dequantised on load. */
#include "model/deepseek_v3_impl.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/log.h"
#include "core/quant.h"

#define FP8_BLOCK QUANT_TILE   /* the checkpoints' 128x128 weight blocks */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Layer index of "model.layers.N.*", or -1. */
static int layer_of(const char *name) {
    int layer, used = 0;
    if (sscanf(name, "model.layers.%d.%n", &layer, &used) == 1 && used > 0) return layer;
    return -1;
}

/* Tensors of a checkpoint that are not parameters here but are expected: the official MTP
 * modules' copies of the shared embedding and head, a tied model's lm_head copy, and the
 * FP8 scales (consumed with their weights). */
static int skippable(const deepseek_v3_model *m, const char *name) {
    int layer = layer_of(name);
    if (layer >= m->cfg.num_hidden_layers && layer < m->n_blocks) {
        const char *rest = strchr(name + strlen("model.layers."), '.') + 1;
        if (!strcmp(rest, "embed_tokens.weight") || !strcmp(rest, "shared_head.head.weight")) return 1;
    }
    if (m->cfg.tie_word_embeddings && !strcmp(name, "lm_head.weight")) return 1;
    return ends_with(name, "_scale_inv");
}

/* dst[rows, cols] = e4m3(w) * scale_inv[r / 128, c / 128] (DeepSeek-V3's weight_dequant). */
static grpo_status dequant_fp8(const st_tensor *w, const st_tensor *scale, float *dst, float *scale_buf) {
    int64_t rows = w->shape[0], cols = w->shape[1];
    int64_t br = (rows + FP8_BLOCK - 1) / FP8_BLOCK, bc = (cols + FP8_BLOCK - 1) / FP8_BLOCK;
    if (scale->ndim != 2 || scale->shape[0] != br || scale->shape[1] != bc)
        return grpo_fail(GRPO_ERR_INVALID, "tensor %s: expected shape [%lld, %lld] (one scale per 128x128 block of "
                         "%s [%lld, %lld])", scale->name, (long long)br, (long long)bc, w->name, (long long)rows,
                         (long long)cols);
    if (rows > INT_MAX || cols > INT_MAX)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "tensor %s: [%lld, %lld] is too large to dequantise", w->name,
                         (long long)rows, (long long)cols);
    GRPO_TRY(st_read_f32(scale, scale_buf, br * bc));
    quant_fp8_dequantize(dst, (int)cols, w->data, scale_buf, (int)rows, (int)cols, FP8_BLOCK, FP8_BLOCK);
    return GRPO_OK;
}

/* Name -> view lookup for loading (FNV-1a, open addressing): a V3 checkpoint has ~10^5
 * tensors, too many for param_find's linear scan per tensor. */
typedef struct {
    int *slots;   /* view index or -1 */
    size_t mask;
} name_index;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int index_build(name_index *ix, const param_set *ps) {
    size_t size = 16;
    while (size < (size_t)ps->count * 2) size *= 2;
    ix->slots = malloc(size * sizeof *ix->slots);
    if (!ix->slots) return 0;
    ix->mask = size - 1;
    for (size_t i = 0; i < size; i++) ix->slots[i] = -1;
    for (int v = 0; v < ps->count; v++) {
        size_t h = fnv1a(ps->views[v].name) & ix->mask;
        while (ix->slots[h] >= 0) h = (h + 1) & ix->mask;
        ix->slots[h] = v;
    }
    return 1;
}

static int index_find(const name_index *ix, const param_set *ps, const char *name) {
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

/* Loads view v from tensor t (any float dtype, or FP8 with its scale) into host, then the device. */
static grpo_status load_view(deepseek_v3_model *m, const st_file *f, int v, const st_tensor *t, float *host,
                             float *scale_buf) {
    const param_view *pv = &m->params.views[v];
    int same = t->ndim == pv->ndim;
    for (int d = 0; same && d < pv->ndim; d++) same = t->shape[d] == pv->shape[d];
    if (!same) {
        char want[96], got[96];
        format_shape(want, sizeof want, pv->ndim, pv->shape);
        format_shape(got, sizeof got, t->ndim, t->shape);
        return grpo_fail(GRPO_ERR_INVALID, "tensor %s: expected shape %s, found %s", t->name, want, got);
    }
    if (t->dtype == ST_F8_E4M3) {
        char scale_name[PARAM_NAME_MAX + 16];
        snprintf(scale_name, sizeof scale_name, "%s_scale_inv", t->name);
        const st_tensor *scale = st_find(f, scale_name);
        if (!scale)
            return grpo_fail(GRPO_ERR_NOTFOUND, "tensor %s is F8_E4M3 but %s is missing", t->name, scale_name);
        if (t->ndim != 2)
            return grpo_fail(GRPO_ERR_UNSUPPORTED, "tensor %s: F8_E4M3 is supported for 2-D weights only", t->name);
        GRPO_TRY(dequant_fp8(t, scale, host, scale_buf));
    } else {
        GRPO_TRY(st_read_f32(t, host, (int64_t)pv->numel));
    }
    m->be->to_device(m->be, m->params.data + pv->offset, host, pv->numel * sizeof(float));
    param_set_touch(&m->params);
    return GRPO_OK;
}

grpo_status deepseek_v3_load(deepseek_v3_model *m, const char *path) {
    st_file *f = NULL;
    GRPO_TRY(st_open(path, &f));
    param_set *ps = &m->params;
    size_t largest = 1;
    for (int v = 0; v < ps->count; v++)
        if (ps->views[v].numel > largest) largest = ps->views[v].numel;
    float *host = malloc(largest * sizeof(float));
    float *scale_buf = malloc((largest / (FP8_BLOCK * FP8_BLOCK) + 2 * (largest / FP8_BLOCK) + 16) * sizeof(float));
    char *seen = calloc((size_t)ps->count + 1, 1);
    name_index ix = {NULL, 0};
    grpo_status s = GRPO_OK;
    if (!host || !scale_buf || !seen || !index_build(&ix, ps))
        s = grpo_fail(GRPO_ERR_NOMEM, "out of memory loading %s", path);
    for (int i = 0; i < st_count(f) && s == GRPO_OK; i++) {
        const st_tensor *t = st_get(f, i);
        int v = index_find(&ix, ps, t->name);
        if (v < 0) {
            if (!skippable(m, t->name))
                s = grpo_fail(GRPO_ERR_INVALID, "tensor %s in the file is not a parameter of this model", t->name);
            continue;
        }
        if (seen[v]) { s = grpo_fail(GRPO_ERR_INVALID, "tensor %s appears twice", t->name); break; }
        s = load_view(m, f, v, t, host, scale_buf);
        seen[v] = 1;
    }
    /* Missing tensors: an MTP module absent as a whole keeps its values (transformers saves
     * none); anything else is an error. */
    int L = m->cfg.num_hidden_layers;
    int *mtp_seen = calloc((size_t)m->cfg.num_nextn_predict_layers + 1, sizeof(int));
    if (s == GRPO_OK && !mtp_seen) s = grpo_fail(GRPO_ERR_NOMEM, "out of memory loading %s", path);
    for (int v = 0; v < ps->count && s == GRPO_OK; v++) {
        int layer = layer_of(ps->views[v].name);
        if (layer >= L && seen[v]) mtp_seen[layer - L] = 1;
    }
    for (int v = 0; v < ps->count && s == GRPO_OK; v++) {
        if (seen[v]) continue;
        int layer = layer_of(ps->views[v].name);
        if (layer >= L && !mtp_seen[layer - L]) continue;
        s = grpo_fail(GRPO_ERR_NOTFOUND, "tensor %s is missing from the file", ps->views[v].name);
    }
    for (int k = 0; k < m->cfg.num_nextn_predict_layers && s == GRPO_OK; k++)
        if (!mtp_seen[k])
            log_warn("%s: no weights for MTP module %d (model.layers.%d.*): it keeps its initial values", path, k + 1,
                     L + k);
    if (s != GRPO_OK) grpo_error_prefix("%s", path);
    free(mtp_seen);
    free(ix.slots);
    free(host);
    free(scale_buf);
    free(seen);
    st_close(f);
    return s;
}

static grpo_status join(char *buf, size_t size, const char *dir, const char *file) {
    if (snprintf(buf, size, "%s/%s", dir, file) >= (int)size)
        return grpo_fail(GRPO_ERR_INVALID, "%s: path too long", dir);
    return GRPO_OK;
}

grpo_status deepseek_v3_load_dir(backend *be, const char *dir, deepseek_v3_model **out) {
    *out = NULL;
    char path[4096];
    deepseek_v3_config cfg;
    GRPO_TRY(join(path, sizeof path, dir, "config.json"));
    GRPO_TRY(hf_config_v3_read(path, &cfg));
    deepseek_v3_model *m = NULL;
    GRPO_TRY(deepseek_v3_create(be, &cfg, &m));
    /* MTP modules the file lacks start from HF's initialisation rather than zeros. */
    deepseek_v3_init_random(m, 0);
    grpo_status s = deepseek_v3_load(m, dir);
    if (s != GRPO_OK) {
        deepseek_v3_free(m);
        return s;
    }
    *out = m;
    return GRPO_OK;
}

/* One tensor to write: a view, or an official MTP copy of a shared view. */
typedef struct {
    char name[PARAM_NAME_MAX];
    const param_view *view;
} save_item;

/* The views in declaration order, then the MTP modules' copies of the shared embedding and
 * head (the official V3 layout repeats them inside each MTP module). *n set; caller frees. */
static save_item *save_items(const deepseek_v3_model *m, int *n) {
    const param_set *ps = &m->params;
    int count = ps->count + 2 * m->cfg.num_nextn_predict_layers;
    save_item *items = calloc((size_t)count, sizeof *items);
    if (!items) return NULL;
    for (int v = 0; v < ps->count; v++) {
        snprintf(items[v].name, PARAM_NAME_MAX, "%s", ps->views[v].name);
        items[v].view = &ps->views[v];
    }
    for (int k = 0; k < m->cfg.num_nextn_predict_layers; k++) {
        int layer = m->cfg.num_hidden_layers + k;
        save_item *e = &items[ps->count + 2 * k], *h = e + 1;
        snprintf(e->name, PARAM_NAME_MAX, "model.layers.%d.embed_tokens.weight", layer);
        e->view = &ps->views[m->embed_view];
        snprintf(h->name, PARAM_NAME_MAX, "model.layers.%d.shared_head.head.weight", layer);
        h->view = &ps->views[m->lm_head_view >= 0 ? m->lm_head_view : m->embed_view];
    }
    *n = count;
    return items;
}

/* Writes items [first, last) of host data into path (float32). */
static grpo_status write_shard(const save_item *items, int first, int last, const float *host, const char *path) {
    st_writer *w = st_writer_create();
    grpo_status s = w ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", path);
    for (int i = first; i < last && s == GRPO_OK; i++)
        s = st_writer_add(w, items[i].name, ST_F32, items[i].view->ndim, items[i].view->shape,
                          host + items[i].view->offset);
    if (s == GRPO_OK) s = st_writer_add_metadata(w, "format", "pt");
    if (s == GRPO_OK) s = st_writer_save(w, path);
    st_writer_free(w);
    return s;
}

grpo_status deepseek_v3_save_sharded(const deepseek_v3_model *m, const char *dir, size_t max_shard_bytes) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return grpo_fail(GRPO_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    char path[4096];
    GRPO_TRY(join(path, sizeof path, dir, "config.json"));
    GRPO_TRY(hf_config_v3_write(&m->cfg, path));
    const param_set *ps = &m->params;
    int n = 0;
    save_item *items = save_items(m, &n);
    float *host = malloc(ps->total * sizeof(float));
    int *shard_of = calloc((size_t)n + 1, sizeof(int));
    grpo_status s = GRPO_OK;
    if (!items || !host || !shard_of) s = grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory saving %zu parameters", dir,
                                                    ps->total);
    if (s == GRPO_OK) m->be->to_host(m->be, host, ps->data, ps->total * sizeof(float));
    /* shards in item order, each up to max_shard_bytes (a larger tensor gets its own) */
    int shards = 0;
    size_t used = 0, total_bytes = 0;
    for (int i = 0; i < n && s == GRPO_OK; i++) {
        size_t bytes = items[i].view->numel * sizeof(float);
        if (i == 0 || (max_shard_bytes > 0 && used > 0 && used + bytes > max_shard_bytes)) {
            shards++;
            used = 0;
        }
        shard_of[i] = shards - 1;
        used += bytes;
        total_bytes += bytes;
    }
    /* st_open prefers an index over model.safetensors: never leave the other layout behind */
    if (s == GRPO_OK) s = join(path, sizeof path, dir, shards <= 1 ? "model.safetensors.index.json" : "model.safetensors");
    if (s == GRPO_OK && unlink(path) != 0 && errno != ENOENT)
        s = grpo_fail(GRPO_ERR_IO, "%s: cannot remove the stale file: %s", path, strerror(errno));
    if (s == GRPO_OK && shards <= 1) {
        s = join(path, sizeof path, dir, "model.safetensors");
        if (s == GRPO_OK) s = write_shard(items, 0, n, host, path);
    } else if (s == GRPO_OK) {
        /* model-0000i-of-0000N.safetensors + model.safetensors.index.json, as save_pretrained */
        size_t cap = 256 + (size_t)n * (PARAM_NAME_MAX + 48), len = 0;
        char *index = malloc(cap);
        if (!index) s = grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", dir);
        if (index) len += (size_t)snprintf(index, cap, "{\n  \"metadata\": {\n    \"total_size\": %zu\n  },\n"
                                           "  \"weight_map\": {\n", total_bytes);
        for (int i = 0, first = 0; s == GRPO_OK && i <= n; i++) {
            if (i < n && shard_of[i] == shard_of[first]) continue;
            char file[64];
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", shard_of[first] + 1, shards);
            s = join(path, sizeof path, dir, file);
            if (s == GRPO_OK) s = write_shard(items, first, i, host, path);
            for (int j = first; j < i; j++)
                len += (size_t)snprintf(index + len, cap - len, "    \"%s\": \"%s\"%s\n", items[j].name, file,
                                        j + 1 < n ? "," : "");
            first = i;
        }
        if (s == GRPO_OK) {
            len += (size_t)snprintf(index + len, cap - len, "  }\n}\n");
            s = join(path, sizeof path, dir, "model.safetensors.index.json");
            if (s == GRPO_OK) s = fs_write_atomic(path, index, len);
        }
        free(index);
    }
    free(items);
    free(host);
    free(shard_of);
    return s;
}

grpo_status deepseek_v3_save(const deepseek_v3_model *m, const char *dir) { return deepseek_v3_save_sharded(m, dir, 0); }
