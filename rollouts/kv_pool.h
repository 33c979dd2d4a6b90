/* The rollout engine's cache memory: a pool of fixed-size blocks (vLLM's PagedAttention,
 * Kwon et al. 2023), so a sequence's cache grows block by block with its actual length
 * and blocks are shared between sequences by reference count (a group's G samples share
 * their prompt's blocks). The pool is one backend allocation laid out as model/lm.h's
 * lm_cache: per layer, num_blocks blocks of block_size * floats_per_token floats (dense:
 * K and V of every kv head; DeepSeek-V3: latent + RoPE key).
 *
 * Bytes per cached token = num_layers * floats_per_token * sizeof(float), e.g. dense
 * 2 * L * Hkv * head_dim * 4, MLA L * (kv_lora_rank + qk_rope_head_dim) * 4.
 *
 * Blocks come from a free stack (the last freed first); which block a sequence gets never
 * changes its numbers. The pool is host bookkeeping over backend memory and is not
 * thread-safe (the engine's one thread owns it). */
#ifndef GRPO_KV_POOL_H
#define GRPO_KV_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"
#include "model/lm.h"

typedef struct kv_pool kv_pool;

/* Allocates num_blocks blocks of block_size tokens for num_layers layers of
 * floats_per_token floats each. On failure *out is NULL and the message gives the bytes. */
grpo_status kv_pool_create(backend *be, int num_layers, size_t floats_per_token, int block_size, int num_blocks,
                           kv_pool **out);
void kv_pool_free(kv_pool *p);   /* NULL is a no-op */

/* A free block with reference count 1, or -1 when none is free. */
int kv_pool_alloc(kv_pool *p);
/* Adds a reference to a block in use. */
void kv_pool_retain(kv_pool *p, int block);
/* Drops a reference; the block is free again when none is left. */
void kv_pool_release(kv_pool *p, int block);
int kv_pool_refcount(const kv_pool *p, int block);
/* Copies block src into block dst in every layer (copy on write of a shared, partly
 * filled block; the whole block, whatever the family's layout inside it). */
void kv_pool_copy_block(kv_pool *p, int dst, int src);

int kv_pool_num_blocks(const kv_pool *p);
int kv_pool_num_free(const kv_pool *p);
int kv_pool_block_size(const kv_pool *p);
/* Most blocks in use at once since creation (or the last kv_pool_reset_peak). */
int kv_pool_peak_used(const kv_pool *p);
void kv_pool_reset_peak(kv_pool *p);
/* The cache view handed to lm_decode (valid while p lives). */
const lm_cache *kv_pool_cache(const kv_pool *p);
/* num_layers * floats_per_token * sizeof(float). */
size_t kv_pool_bytes_per_token(const kv_pool *p);
/* Bytes of backend memory the pool holds: num_blocks * block_size * bytes_per_token. */
size_t kv_pool_bytes(const kv_pool *p);

#endif
