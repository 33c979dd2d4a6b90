/* The block pool behind the rollout engine's paged cache (rollouts/kv_pool.h): one
 * backend allocation, a free stack and a reference count per block. */
#include "rollouts/kv_pool.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/backend_pool.h"

struct kv_pool {
    backend *be;
    lm_cache cache;
    int *refcount;     /* [num_blocks] */
    int *free_stack;   /* [num_blocks]; free_stack[0 .. n_free) are free (a LIFO) */
    int n_free;
    int peak_used;
};

grpo_status kv_pool_create(backend *be, int num_layers, size_t floats_per_token, int block_size, int num_blocks,
                           kv_pool **out) {
    *out = NULL;
    if (num_layers < 1 || floats_per_token < 1 || block_size < 1 || num_blocks < 1 ||
        (int64_t)num_blocks * block_size > INT32_MAX)
        return grpo_fail(GRPO_ERR_INVALID, "kv_pool: %d layers, %zu floats per token, %d blocks of %d tokens: "
                         "expected all >= 1 and fewer than 2^31 rows", num_layers, floats_per_token, num_blocks,
                         block_size);
    kv_pool *p = calloc(1, sizeof *p);
    if (!p) return grpo_fail(GRPO_ERR_NOMEM, "out of memory creating a kv pool");
    p->be = be;
    p->cache.num_layers = num_layers;
    p->cache.num_blocks = num_blocks;
    p->cache.block_size = block_size;
    p->cache.floats_per_token = floats_per_token;
    size_t bytes = (size_t)num_layers * num_blocks * block_size * floats_per_token * sizeof(float);
    p->refcount = calloc((size_t)num_blocks, sizeof *p->refcount);
    p->free_stack = malloc((size_t)num_blocks * sizeof *p->free_stack);
    if (!p->refcount || !p->free_stack) {
        kv_pool_free(p);
        return grpo_fail(GRPO_ERR_NOMEM, "kv_pool: out of host memory for %d block records", num_blocks);
    }
    char what[96];
    snprintf(what, sizeof what, "the KV cache (%d layers x %d blocks of %d tokens)", num_layers, num_blocks, block_size);
    p->cache.base = backend_alloc(be, bytes, what);
    if (!p->cache.base) {
        kv_pool_free(p);
        return GRPO_ERR_NOMEM;   /* backend_alloc's message names the cache and the pool's state */
    }
    for (int i = 0; i < num_blocks; i++) p->free_stack[i] = num_blocks - 1 - i;
    p->n_free = num_blocks;
    *out = p;
    return GRPO_OK;
}

void kv_pool_free(kv_pool *p) {
    if (!p) return;
    if (p->cache.base) p->be->free(p->be, p->cache.base);
    free(p->refcount);
    free(p->free_stack);
    free(p);
}

int kv_pool_alloc(kv_pool *p) {
    if (p->n_free == 0) return -1;
    int b = p->free_stack[--p->n_free];
    GRPO_ASSERT(p->refcount[b] == 0);
    p->refcount[b] = 1;
    int used = p->cache.num_blocks - p->n_free;
    if (used > p->peak_used) p->peak_used = used;
    return b;
}

void kv_pool_retain(kv_pool *p, int block) {
    GRPO_ASSERT(block >= 0 && block < p->cache.num_blocks && p->refcount[block] > 0);
    p->refcount[block]++;
}

void kv_pool_release(kv_pool *p, int block) {
    GRPO_ASSERT(block >= 0 && block < p->cache.num_blocks && p->refcount[block] > 0);
    if (--p->refcount[block] > 0) return;
    p->free_stack[p->n_free++] = block;
}

int kv_pool_refcount(const kv_pool *p, int block) {
    GRPO_ASSERT(block >= 0 && block < p->cache.num_blocks);
    return p->refcount[block];
}

void kv_pool_copy_block(kv_pool *p, int dst, int src) {
    const lm_cache *c = &p->cache;
    GRPO_ASSERT(dst >= 0 && dst < c->num_blocks && src >= 0 && src < c->num_blocks);
    if (dst == src) return;
    size_t block_floats = (size_t)c->block_size * c->floats_per_token;
    size_t layer_floats = (size_t)c->num_blocks * block_floats;
    for (int l = 0; l < c->num_layers; l++) {
        float *layer = c->base + (size_t)l * layer_floats;
        p->be->copy(p->be, layer + (size_t)dst * block_floats, layer + (size_t)src * block_floats,
                    block_floats * sizeof(float));
    }
}

int kv_pool_num_blocks(const kv_pool *p) { return p->cache.num_blocks; }
int kv_pool_num_free(const kv_pool *p) { return p->n_free; }
int kv_pool_block_size(const kv_pool *p) { return p->cache.block_size; }
int kv_pool_peak_used(const kv_pool *p) { return p->peak_used; }
void kv_pool_reset_peak(kv_pool *p) { p->peak_used = p->cache.num_blocks - p->n_free; }
const lm_cache *kv_pool_cache(const kv_pool *p) { return &p->cache; }
size_t kv_pool_bytes_per_token(const kv_pool *p) {
    return (size_t)p->cache.num_layers * p->cache.floats_per_token * sizeof(float);
}
size_t kv_pool_bytes(const kv_pool *p) {
    return (size_t)p->cache.num_blocks * p->cache.block_size * kv_pool_bytes_per_token(p);
}
