/* Device memory as one pool sized up front: backend_pool_reserve takes ONE allocation from
 * a backend and from then on serves that backend's alloc/free from it, so a training or
 * decoding loop never reaches cudaMalloc, and running out of memory is one clear message
 * naming the tensor (backend_alloc) instead of a failed call deep inside an op.
 * Works on any backend (the CPU backend tests it). */
#ifndef GRPO_BACKEND_POOL_H
#define GRPO_BACKEND_POOL_H

#include <stddef.h>

#include "core/backend.h"

/* Every block the pool hands out starts (and is sized) on this boundary. */
#define BACKEND_POOL_ALIGN 256

/* Takes one allocation of `bytes` from be (be->alloc as it is now) and makes be->alloc /
 * be->free serve from it: first fit over an address-ordered list of blocks, neighbouring
 * free blocks merged on free, every block zero-filled through be->zero when handed out.
 * The bookkeeping (one record per block, O(live blocks)) lives in host memory; host
 * threads sharing be take turns on it (a mutex).
 * Memory allocated before the reserve still goes back to the backend's own free. Freeing
 * a pointer the pool did not hand out, or freeing it twice, stops with GRPO_ASSERT.
 * Blocks are reused in stream order: on CUDA a block freed and handed out again is
 * zeroed and then written by ops queued after every op that read it (one stream).
 * Fails (be unchanged) when be already has a pool, bytes < BACKEND_POOL_ALIGN, or the
 * allocation fails (the message names the size and the backend). The pool is released
 * with the backend (backend_free), or earlier by backend_pool_release. */
grpo_status backend_pool_reserve(backend *be, size_t bytes);

/* Gives the pool's memory back and restores be's own alloc/free. Fails (pool kept) while
 * pool blocks are still live, naming how many and how large. No pool: GRPO_OK. */
grpo_status backend_pool_release(backend *be);

/* be->alloc(be, bytes) (zero-filled); on failure NULL with a message naming `what`, its
 * size and, with a pool, the pool's state, e.g.
 *   out of device memory allocating layer 3 activations (1.2 GiB) on cuda: pool 74.1 of
 *   75.0 GiB used, largest free block 0.4 GiB; lower max_num_seqs / micro-batch, or set
 *   run.recompute: true
 * `what` is the caller's (a string literal or a formatted name). */
void *backend_alloc(backend *be, size_t bytes, const char *what);

typedef struct {
    size_t capacity;        /* bytes reserved */
    size_t used;            /* bytes in live blocks (alignment included) */
    size_t peak;            /* the most `used` has been since the reserve */
    size_t largest_free;    /* the largest block an allocation can get now */
    int live_blocks;        /* allocations not yet freed */
    int free_blocks;        /* holes between them (1 when nothing is allocated) */
} backend_pool_info;

/* The pool's state; 0 (and *out zeroed) when be has no pool, 1 otherwise. */
int backend_pool_stats(const backend *be, backend_pool_info *out);
/* One line for the log: "pool cuda: 61.2 of 70.0 GiB used (peak 65.3 GiB), 412 blocks,
 * largest free 8.8 GiB", or "no memory pool on cpu". */
void backend_pool_describe(const backend *be, char *buf, size_t size);

/* bytes as "1.2 GiB", "340.0 MiB", "12.0 KiB" or "100 B" (buf of >= 32 bytes). */
const char *backend_pool_format_bytes(size_t bytes, char *buf, size_t size);

/* The `run.device_memory` setting: NULL or "" (auto: 0.9 of the free memory on a CUDA
 * backend, no pool on the CPU), "none"/"off"/"0" (no pool), a fraction of the free
 * device memory in (0, 1] ("0.9"), or a size with a unit ("60GiB", "512 MiB", "8GB",
 * "1000000B"). *fraction and *bytes: one of them is set (> 0), both 0 for no pool;
 * *is_auto is 1 for the default. Fails naming the text and what was expected. */
grpo_status backend_pool_parse_size(const char *text, double *fraction, size_t *bytes, int *is_auto);

/* Free and total memory of be's device (CUDA: cudaMemGetInfo on its device; CPU: the
 * host's available and physical memory). */
grpo_status backend_memory_info(backend *be, size_t *free_bytes, size_t *total_bytes);

/* What a trainer calls right after creating its backend: parses `device_memory`
 * (backend_pool_parse_size), reserves the pool it asks for (a fraction of the free
 * memory, rounded down to BACKEND_POOL_ALIGN, or the size given) and logs the line
 * "device memory: pool of 63.0 GiB on cuda (0.90 of 70.0 GiB free)". No pool for the
 * CPU by default or for "none". Errors name the setting `run.device_memory`. */
grpo_status backend_pool_setup(backend *be, const char *device_memory);

#endif
