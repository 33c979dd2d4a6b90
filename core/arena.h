/* A bump allocator over one block: sizes are added up first, one block is taken, and
 * named views are carved from it (parameters, gradients, activations — llm.c style).
 * Nothing is freed piecemeal; arena_mark / arena_reset_to roll back to a saved point. */
#ifndef GRPO_ARENA_H
#define GRPO_ARENA_H

#include <stddef.h>

typedef struct arena arena;

/* An arena owning a zero-filled host block of `bytes` (64-byte aligned). NULL (with a
 * grpo_fail message) when the memory cannot be had. The caller frees with arena_free. */
arena *arena_create(size_t bytes);
/* An arena over memory the caller owns (e.g. one backend allocation, device memory
 * included: only addresses are computed, never dereferenced). arena_free releases the
 * arena, not `base`. NULL (with a message) when base is NULL and bytes > 0. */
arena *arena_create_over(void *base, size_t bytes);
/* `bytes` bytes aligned to `align` (a power of two; 0 means 16). NULL when the rest
 * of the block is too small; the arena is then unchanged. Memory from arena_create
 * is zero on first use; after arena_reset_to it holds whatever was written before. */
void *arena_alloc(arena *a, size_t bytes, size_t align);
/* A point to roll back to, and the roll-back: every allocation made after the mark is
 * released (its memory may be handed out again). */
size_t arena_mark(const arena *a);
void arena_reset_to(arena *a, size_t mark);
/* Bytes handed out so far (alignment padding included), and the block's size. */
size_t arena_used(const arena *a);
size_t arena_capacity(const arena *a);
/* The start of the block. */
void *arena_base(const arena *a);
void arena_free(arena *a);

#endif
