/* The device memory pool (core/backend_pool.h): one backend allocation carved by a
 * first-fit allocator over an address-ordered array of blocks, plus the named allocation
 * helper, the `run.device_memory` parser and the reserve a trainer makes at start. */
#include "core/backend_pool.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"

/* One block of the pool: [offset, offset + size) bytes from the base. The blocks tile the
 * pool exactly, in address order; no two free blocks are neighbours (merged on free). */
typedef struct {
    size_t offset;
    size_t size;
    int used;
} pool_block;

typedef struct {
    /* the backend's own memory ops, restored by release */
    void *(*inner_alloc)(backend *be, size_t bytes);
    void (*inner_free)(backend *be, void *ptr);
    void (*inner_destroy)(backend *be);
    char *base;
    size_t capacity;
    pool_block *blocks;   /* [count], capacity `slots` */
    int count, slots;
    size_t used, peak;
    int live;
    pthread_mutex_t lock;
} backend_pool;

static size_t align_up(size_t n) { return (n + BACKEND_POOL_ALIGN - 1) / BACKEND_POOL_ALIGN * BACKEND_POOL_ALIGN; }

const char *backend_pool_format_bytes(size_t bytes, char *buf, size_t size) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, size, "%zu B", bytes);
        return buf;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, "%.1f %s", v, units[u]);
    return buf;
}

/* ---- the block array (caller holds the lock) ---- */

/* Room for one more record; 0 when the host is out of memory. */
static int grow(backend_pool *p) {
    if (p->count < p->slots) return 1;
    int slots = p->slots ? 2 * p->slots : 64;
    pool_block *b = realloc(p->blocks, (size_t)slots * sizeof *b);
    if (!b) return 0;
    p->blocks = b;
    p->slots = slots;
    return 1;
}

/* The index of the block starting at offset, or -1 (binary search: blocks are sorted). */
static int find_block(const backend_pool *p, size_t offset) {
    int lo = 0, hi = p->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (p->blocks[mid].offset == offset) return mid;
        if (p->blocks[mid].offset < offset) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static void remove_block(backend_pool *p, int i) {
    memmove(&p->blocks[i], &p->blocks[i + 1], (size_t)(p->count - i - 1) * sizeof *p->blocks);
    p->count--;
}

static size_t largest_free(const backend_pool *p) {
    size_t best = 0;
    for (int i = 0; i < p->count; i++)
        if (!p->blocks[i].used && p->blocks[i].size > best) best = p->blocks[i].size;
    return best;
}

static void fill_info(const backend_pool *p, backend_pool_info *out) {
    out->capacity = p->capacity;
    out->used = p->used;
    out->peak = p->peak;
    out->largest_free = largest_free(p);
    out->live_blocks = p->live;
    out->free_blocks = p->count - p->live;
}

/* ---- alloc / free as the backend's ---- */

static void *pool_alloc(backend *be, size_t bytes) {
    backend_pool *p = be->pool;
    size_t need = align_up(bytes ? bytes : 1);
    if (need < bytes) {   /* wrapped around */
        grpo_fail(GRPO_ERR_NOMEM, "memory pool on %s: a request of %zu bytes cannot be aligned", be->name, bytes);
        return NULL;
    }
    GRPO_ASSERT(pthread_mutex_lock(&p->lock) == 0);
    int i = 0;
    while (i < p->count && (p->blocks[i].used || p->blocks[i].size < need)) i++;
    void *ptr = NULL;
    if (i < p->count && (p->blocks[i].size == need || grow(p))) {
        pool_block *b = &p->blocks[i];
        if (b->size > need) {   /* split: the rest stays free, right after */
            memmove(&p->blocks[i + 2], &p->blocks[i + 1], (size_t)(p->count - i - 1) * sizeof *p->blocks);
            p->count++;
            p->blocks[i + 1] = (pool_block){b->offset + need, b->size - need, 0};
            b->size = need;
        }
        b->used = 1;
        p->used += need;
        if (p->used > p->peak) p->peak = p->used;
        p->live++;
        ptr = p->base + b->offset;
    }
    backend_pool_info info;
    if (!ptr) fill_info(p, &info);
    GRPO_ASSERT(pthread_mutex_unlock(&p->lock) == 0);
    if (!ptr) {
        char a[32], u[32], c[32], l[32];
        grpo_fail(GRPO_ERR_NOMEM, "memory pool on %s: no free block of %s: pool %s of %s used, largest free block %s",
                  be->name, backend_pool_format_bytes(need, a, sizeof a),
                  backend_pool_format_bytes(info.used, u, sizeof u),
                  backend_pool_format_bytes(info.capacity, c, sizeof c),
                  backend_pool_format_bytes(info.largest_free, l, sizeof l));
        return NULL;
    }
    be->zero(be, ptr, bytes);   /* the backend's contract: alloc is zero-filled */
    return ptr;
}

static void pool_free(backend *be, void *ptr) {
    backend_pool *p = be->pool;
    if (!ptr) return;
    char *c = ptr;
    if (c < p->base || c >= p->base + p->capacity) {   /* allocated before the reserve */
        p->inner_free(be, ptr);
        return;
    }
    GRPO_ASSERT(pthread_mutex_lock(&p->lock) == 0);
    int i = find_block(p, (size_t)(c - p->base));
    GRPO_ASSERTF(i >= 0 && p->blocks[i].used,
                 "memory pool on %s: free of %p (offset %zu), which is not a live allocation (freed twice, or not "
                 "the start of a block)", be->name, ptr, (size_t)(c - p->base));
    p->blocks[i].used = 0;
    p->used -= p->blocks[i].size;
    p->live--;
    if (i + 1 < p->count && !p->blocks[i + 1].used) {   /* merge with the next hole */
        p->blocks[i].size += p->blocks[i + 1].size;
        remove_block(p, i + 1);
    }
    if (i > 0 && !p->blocks[i - 1].used) {   /* and with the previous one */
        p->blocks[i - 1].size += p->blocks[i].size;
        remove_block(p, i);
    }
    GRPO_ASSERT(pthread_mutex_unlock(&p->lock) == 0);
}

/* Gives the block back and frees the host records; the backend's own ops are restored. */
static void pool_detach(backend *be) {
    backend_pool *p = be->pool;
    be->alloc = p->inner_alloc;
    be->free = p->inner_free;
    be->destroy = p->inner_destroy;
    be->pool = NULL;
    p->inner_free(be, p->base);
    pthread_mutex_destroy(&p->lock);
    free(p->blocks);
    free(p);
}

/* backend_free with a pool: the pool goes first (live blocks included: the backend ends). */
static void pool_destroy(backend *be) {
    void (*inner_destroy)(backend *) = ((backend_pool *)be->pool)->inner_destroy;
    pool_detach(be);
    if (inner_destroy) inner_destroy(be);
}

grpo_status backend_pool_reserve(backend *be, size_t bytes) {
    char sz[32];
    if (be->pool) return grpo_fail(GRPO_ERR_INVALID, "backend_pool_reserve: backend %s already has a pool", be->name);
    if (bytes < BACKEND_POOL_ALIGN)
        return grpo_fail(GRPO_ERR_INVALID, "backend_pool_reserve: a pool of %zu bytes on %s is too small (at least %d)",
                         bytes, be->name, BACKEND_POOL_ALIGN);
    GRPO_TRY(BACKEND_REQUIRE(be, zero));
    bytes = bytes / BACKEND_POOL_ALIGN * BACKEND_POOL_ALIGN;
    backend_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->blocks = malloc(64 * sizeof *p->blocks))) {
        free(p);
        return grpo_fail(GRPO_ERR_NOMEM, "backend_pool_reserve: out of host memory");
    }
    p->slots = 64;
    p->base = be->alloc(be, bytes);
    if (!p->base) {
        grpo_error_prefix("reserving a memory pool of %s on %s", backend_pool_format_bytes(bytes, sz, sizeof sz),
                          be->name);
        free(p->blocks);
        free(p);
        return GRPO_ERR_NOMEM;
    }
    /* cudaMalloc's alignment is 256 bytes; a host backend's 64 is checked here. */
    GRPO_ASSERTF((uintptr_t)p->base % BACKEND_POOL_ALIGN == 0 || strcmp(be->name, "cuda") != 0,
                 "backend %s returned a pool base %p not aligned to %d bytes", be->name, (void *)p->base,
                 BACKEND_POOL_ALIGN);
    p->capacity = bytes;
    p->blocks[0] = (pool_block){0, bytes, 0};
    p->count = 1;
    pthread_mutex_init(&p->lock, NULL);
    p->inner_alloc = be->alloc;
    p->inner_free = be->free;
    p->inner_destroy = be->destroy;
    be->pool = p;
    be->alloc = pool_alloc;
    be->free = pool_free;
    be->destroy = pool_destroy;
    return GRPO_OK;
}

grpo_status backend_pool_release(backend *be) {
    backend_pool *p = be->pool;
    if (!p) return GRPO_OK;
    if (p->live > 0) {
        char u[32];
        return grpo_fail(GRPO_ERR_INVALID, "backend_pool_release: %d allocations (%s) on %s are still live", p->live,
                         backend_pool_format_bytes(p->used, u, sizeof u), be->name);
    }
    pool_detach(be);
    return GRPO_OK;
}

/* ---- named allocations and the state for the log ---- */

void *backend_alloc(backend *be, size_t bytes, const char *what) {
    /* the message before, so an older one is not passed off as the backend's reason */
    char before[256];
    snprintf(before, sizeof before, "%s", grpo_error_message());
    void *ptr = be->alloc(be, bytes);
    if (ptr) return ptr;
    char sz[32], u[32], c[32], l[32];
    backend_pool_format_bytes(bytes, sz, sizeof sz);
    backend_pool_info info;
    if (backend_pool_stats(be, &info)) {
        grpo_fail(GRPO_ERR_NOMEM,
                  "out of device memory allocating %s (%s) on %s: pool %s of %s used, largest free block %s; "
                  "lower max_num_seqs / micro-batch, or set run.recompute: true",
                  what, sz, be->name, backend_pool_format_bytes(info.used, u, sizeof u),
                  backend_pool_format_bytes(info.capacity, c, sizeof c),
                  backend_pool_format_bytes(info.largest_free, l, sizeof l));
    } else {
        /* keep the backend's own reason (e.g. cudaMalloc's, with the device's free bytes) */
        char why[512] = "";   /* copied: grpo_fail rewrites the message buffer */
        if (strncmp(before, grpo_error_message(), sizeof before - 1) != 0)
            snprintf(why, sizeof why, "%s", grpo_error_message());
        grpo_fail(GRPO_ERR_NOMEM, "out of %s memory allocating %s (%s)%s%s", strcmp(be->name, "cpu") ? "device" : "host",
                  what, sz, why[0] ? ": " : "", why);
    }
    return NULL;
}

int backend_pool_stats(const backend *be, backend_pool_info *out) {
    memset(out, 0, sizeof *out);
    backend_pool *p = be->pool;
    if (!p) return 0;
    GRPO_ASSERT(pthread_mutex_lock(&p->lock) == 0);
    fill_info(p, out);
    GRPO_ASSERT(pthread_mutex_unlock(&p->lock) == 0);
    return 1;
}

void backend_pool_describe(const backend *be, char *buf, size_t size) {
    backend_pool_info info;
    if (!backend_pool_stats(be, &info)) {
        snprintf(buf, size, "no memory pool on %s", be->name);
        return;
    }
    char u[32], c[32], pk[32], l[32];
    snprintf(buf, size, "pool %s: %s of %s used (peak %s), %d blocks, largest free %s", be->name,
             backend_pool_format_bytes(info.used, u, sizeof u), backend_pool_format_bytes(info.capacity, c, sizeof c),
             backend_pool_format_bytes(info.peak, pk, sizeof pk), info.live_blocks,
             backend_pool_format_bytes(info.largest_free, l, sizeof l));
}

/* ---- run.device_memory ---- */

grpo_status backend_pool_parse_size(const char *text, double *fraction, size_t *bytes, int *is_auto) {
    *fraction = 0;
    *bytes = 0;
    *is_auto = 0;
    if (!text || !text[0] || !strcasecmp(text, "auto")) {
        *is_auto = 1;
        return GRPO_OK;
    }
    if (!strcasecmp(text, "none") || !strcasecmp(text, "off")) return GRPO_OK;
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || !isfinite(v) || v < 0)
        return grpo_fail(GRPO_ERR_INVALID, "device memory \"%s\": expected a fraction of the free memory in (0, 1] "
                         "(e.g. 0.9), a size with a unit (e.g. 60GiB), or none", text);
    while (*end == ' ') end++;
    if (!*end) {
        if (v > 1)
            return grpo_fail(GRPO_ERR_INVALID, "device memory \"%s\": a number without a unit is a fraction of the "
                             "free memory and must be in (0, 1]; give bytes with a unit (e.g. %gB or 60GiB)", text, v);
        *fraction = v;   /* 0: no pool */
        return GRPO_OK;
    }
    static const struct { const char *unit; double scale; } units[] = {
        {"B", 1}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
        {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcasecmp(end, units[i].unit) && (strcmp(units[i].unit, "B") || v == floor(v))) {
            double b = v * units[i].scale;
            if (b >= 9.0e18)
                return grpo_fail(GRPO_ERR_INVALID, "device memory \"%s\": %g bytes is too large", text, b);
            *bytes = (size_t)b;
            return GRPO_OK;
        }
    return grpo_fail(GRPO_ERR_INVALID, "device memory \"%s\": unknown unit \"%s\" (expected B, KiB, MiB, GiB, TiB, "
                     "KB, MB, GB or TB)", text, end);
}

#ifdef GRPO_HAVE_CUDA
/* core/cuda/cuda_memory.cu: cudaMemGetInfo on be's device. */
grpo_status cuda_memory_info(backend *be, size_t *free_bytes, size_t *total_bytes);
#endif

grpo_status backend_memory_info(backend *be, size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = 0;
#ifdef GRPO_HAVE_CUDA
    if (!strcmp(be->name, "cuda")) return cuda_memory_info(be, free_bytes, total_bytes);
#endif
    long page = sysconf(_SC_PAGESIZE), avail = sysconf(_SC_AVPHYS_PAGES), phys = sysconf(_SC_PHYS_PAGES);
    if (page <= 0 || avail < 0 || phys <= 0)
        return grpo_fail(GRPO_ERR_IO, "backend_memory_info: cannot read the host's memory size (sysconf)");
    *free_bytes = (size_t)avail * (size_t)page;
    *total_bytes = (size_t)phys * (size_t)page;
    return GRPO_OK;
}

grpo_status backend_pool_setup(backend *be, const char *device_memory) {
    double fraction;
    size_t bytes;
    int is_auto;
    grpo_status s = backend_pool_parse_size(device_memory, &fraction, &bytes, &is_auto);
    if (s != GRPO_OK) {
        grpo_error_prefix("run.device_memory");
        return s;
    }
    int is_cuda = strcmp(be->name, "cuda") == 0;
    if (is_auto) fraction = is_cuda ? 0.9 : 0;
    if (fraction == 0 && bytes == 0) {
        log_info("device memory: no pool on %s (allocations go to the backend)", be->name);
        return GRPO_OK;
    }
    size_t free_b = 0, total_b = 0;
    GRPO_TRY(backend_memory_info(be, &free_b, &total_b));
    char want[32], fr[32], tot[32];
    if (fraction > 0) bytes = (size_t)((double)free_b * fraction);
    bytes = bytes / BACKEND_POOL_ALIGN * BACKEND_POOL_ALIGN;
    if (bytes < BACKEND_POOL_ALIGN || bytes > free_b)
        return grpo_fail(GRPO_ERR_NOMEM, "run.device_memory \"%s\": a pool of %s on %s does not fit the %s free "
                         "(of %s)", device_memory ? device_memory : "", backend_pool_format_bytes(bytes, want, sizeof want),
                         be->name, backend_pool_format_bytes(free_b, fr, sizeof fr),
                         backend_pool_format_bytes(total_b, tot, sizeof tot));
    s = backend_pool_reserve(be, bytes);
    if (s != GRPO_OK) {
        grpo_error_prefix("run.device_memory");
        return s;
    }
    log_info("device memory: pool of %s on %s (%.2f of %s free, %s total)",
             backend_pool_format_bytes(bytes, want, sizeof want), be->name, (double)bytes / (double)free_b,
             backend_pool_format_bytes(free_b, fr, sizeof fr), backend_pool_format_bytes(total_b, tot, sizeof tot));
    return GRPO_OK;
}
