/* The bump allocator of arena.h: an offset into one block, moved forward by each
 * allocation and back by arena_reset_to. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/status.h"

struct arena {
    unsigned char *base;   /* start of the usable block (aligned) */
    unsigned char *raw;    /* what arena_create allocated; NULL over a foreign block */
    size_t capacity;
    size_t used;
};

enum { ARENA_BLOCK_ALIGN = 64 };

arena *arena_create(size_t bytes) {
    arena *a = calloc(1, sizeof *a);
    if (!a) {
        grpo_fail(GRPO_ERR_NOMEM, "arena_create: no memory for the arena header");
        return NULL;
    }
    /* calloc (not malloc + memset): a large block comes as untouched zero pages, so a
     * multi-GB arena costs nothing until used. Over-allocate to align by hand. */
    if (bytes > SIZE_MAX - ARENA_BLOCK_ALIGN) {
        free(a);
        grpo_fail(GRPO_ERR_NOMEM, "arena_create: %zu bytes is too large", bytes);
        return NULL;
    }
    a->raw = calloc(1, bytes + ARENA_BLOCK_ALIGN);
    if (!a->raw) {
        free(a);
        grpo_fail(GRPO_ERR_NOMEM, "arena_create: cannot allocate %zu bytes", bytes);
        return NULL;
    }
    uintptr_t raw = (uintptr_t)a->raw;
    a->base = a->raw + (((raw + ARENA_BLOCK_ALIGN - 1) & ~(uintptr_t)(ARENA_BLOCK_ALIGN - 1)) - raw);
    a->capacity = bytes;
    return a;
}

arena *arena_create_over(void *base, size_t bytes) {
    if (!base && bytes > 0) {
        grpo_fail(GRPO_ERR_INVALID, "arena_create_over: NULL block of %zu bytes", bytes);
        return NULL;
    }
    arena *a = calloc(1, sizeof *a);
    if (!a) {
        grpo_fail(GRPO_ERR_NOMEM, "arena_create_over: no memory for the arena header");
        return NULL;
    }
    a->base = base;
    a->capacity = bytes;
    return a;
}

void *arena_alloc(arena *a, size_t bytes, size_t align) {
    if (align == 0) align = 16;
    if (!a->base) return NULL;
    GRPO_ASSERTF((align & (align - 1)) == 0, "arena_alloc: alignment %zu is not a power of two", align);
    /* Align the address, not the offset, so arenas over foreign blocks align too. */
    uintptr_t start = (uintptr_t)a->base + a->used;
    uintptr_t aligned = (start + (align - 1)) & ~(uintptr_t)(align - 1);
    if (aligned < start) return NULL;
    size_t offset = (size_t)(aligned - (uintptr_t)a->base);
    if (offset > a->capacity || bytes > a->capacity - offset) return NULL;
    a->used = offset + bytes;
    return a->base + offset;
}

size_t arena_mark(const arena *a) { return a->used; }

void arena_reset_to(arena *a, size_t mark) {
    GRPO_ASSERTF(mark <= a->used, "arena_reset_to: mark %zu is past the used size %zu", mark, a->used);
    a->used = mark;
}

size_t arena_used(const arena *a) { return a->used; }
size_t arena_capacity(const arena *a) { return a->capacity; }
void *arena_base(const arena *a) { return a->base; }

void arena_free(arena *a) {
    if (!a) return;
    free(a->raw);
    free(a);
}
