/* The CPU backend: host memory, the per-thread scratch arena, and the op table.
 * The ops themselves live in the other core/cpu/ files; this one wires them up. */
#include "core/cpu/cpu_impl.h"

#include <stdlib.h>
#include <string.h>

#define CPU_ALIGN 64

/* ---- memory: plain host memory, 64-byte aligned so SIMD loads stay in one line ---- */

static void *cpu_alloc(backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    /* A zero-byte request still gets a distinct pointer, so NULL always means failure. */
    if (posix_memalign(&p, CPU_ALIGN, bytes ? bytes : 1) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

static void cpu_free(backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

static void cpu_to_device(backend *be, void *dst, const void *host_src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, host_src, bytes);
}

static void cpu_to_host(backend *be, void *host_dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(host_dst, src, bytes);
}

static void cpu_copy(backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, src, bytes);
}

static void cpu_zero(backend *be, void *ptr, size_t bytes) {
    (void)be;
    if (bytes) memset(ptr, 0, bytes);
}

static void cpu_synchronize(backend *be) {
    (void)be;   /* every CPU op has finished when it returns */
}

/* ---- scratch ---- */

void cpu_scratch_acquire(backend *be, size_t floats) {
    cpu_impl *impl = be->impl;
#ifdef _OPENMP
    /* Slots are indexed by omp_get_thread_num() of the op's own team; inside an
     * enclosing parallel region several callers would share slot 0. */
    GRPO_ASSERTF(!omp_in_parallel(), "cpu backend: tiled ops must be called outside an OpenMP parallel region");
#endif
    GRPO_ASSERT(pthread_mutex_lock(&impl->scratch_lock) == 0);
    int want_slots = cpu_max_threads();
    if (want_slots < 1) want_slots = 1;
    if (want_slots <= impl->n_slots && floats <= impl->scratch_floats) return;
    int slots = want_slots > impl->n_slots ? want_slots : impl->n_slots;
    size_t cap = floats > impl->scratch_floats ? floats : impl->scratch_floats;
    float **table = calloc((size_t)slots, sizeof *table);
    GRPO_ASSERTF(table, "cpu backend: out of memory for %d scratch slots", slots);
    for (int i = 0; i < slots; i++) {
        void *p = NULL;
        GRPO_ASSERTF(posix_memalign(&p, CPU_ALIGN, cap * sizeof(float)) == 0,
                     "cpu backend: out of memory for %zu floats of scratch", cap);
        table[i] = p;
    }
    for (int i = 0; i < impl->n_slots; i++) free(impl->scratch[i]);
    free(impl->scratch);
    impl->scratch = table;
    impl->scratch_floats = cap;
    impl->n_slots = slots;
}

void cpu_scratch_release(backend *be) {
    cpu_impl *impl = be->impl;
    GRPO_ASSERT(pthread_mutex_unlock(&impl->scratch_lock) == 0);
}

float *cpu_scratch_thread(backend *be) {
    cpu_impl *impl = be->impl;
    int t = cpu_thread_num();
    GRPO_ASSERT(t < impl->n_slots);
    return impl->scratch[t];
}

/* ---- the table ---- */

static void cpu_destroy(backend *be) {
    if (!be) return;
    cpu_impl *impl = be->impl;
    if (impl) {
        for (int i = 0; i < impl->n_slots; i++) free(impl->scratch[i]);
        free(impl->scratch);
        free(impl->gemm_panel);
        free(impl->lowp_decode);
        pthread_mutex_destroy(&impl->lowp_lock);
        pthread_mutex_destroy(&impl->scratch_lock);
        free(impl);
    }
    free(be);
}

backend *backend_cpu_create(void) {
    backend *be = calloc(1, sizeof *be);
    cpu_impl *impl = calloc(1, sizeof *impl);
    if (!be || !impl) {
        free(be);
        free(impl);
        grpo_fail(GRPO_ERR_NOMEM, "cpu backend: out of memory creating the backend");
        return NULL;
    }
    if (pthread_mutex_init(&impl->scratch_lock, NULL) != 0 || pthread_mutex_init(&impl->lowp_lock, NULL) != 0) {
        free(be);
        free(impl);
        grpo_fail(GRPO_ERR_BACKEND, "cpu backend: pthread_mutex_init failed");
        return NULL;
    }
    be->name = "cpu";
    be->impl = impl;
    be->destroy = cpu_destroy;

    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->to_device = cpu_to_device;
    be->to_host = cpu_to_host;
    be->copy = cpu_copy;
    be->zero = cpu_zero;
    be->synchronize = cpu_synchronize;

    be->matmul = cpu_matmul;

    be->add = cpu_add;
    be->axpy = cpu_axpy;
    be->scale = cpu_scale;
    be->add_bias = cpu_add_bias;
    be->bias_backward = cpu_bias_backward;
    be->sum_squares = cpu_sum_squares;

    be->embedding_forward = cpu_embedding_forward;
    be->embedding_backward = cpu_embedding_backward;

    be->rmsnorm_forward = cpu_rmsnorm_forward;
    be->rmsnorm_backward = cpu_rmsnorm_backward;
    be->rope = cpu_rope;

    be->attention_forward = cpu_attention_forward;
    be->attention_backward = cpu_attention_backward;

    be->swiglu_forward = cpu_swiglu_forward;
    be->swiglu_backward = cpu_swiglu_backward;

    be->token_logprobs_forward = cpu_token_logprobs_forward;
    be->token_logprobs_backward = cpu_token_logprobs_backward;

    be->adamw = cpu_adamw;

    be->cache_write_rows = cpu_cache_write_rows;
    be->paged_attention = cpu_paged_attention;

    be->quantize_fp8 = cpu_quantize_fp8;
    be->dequantize_fp8 = cpu_dequantize_fp8;
    be->round_fp8 = cpu_round_fp8;
    be->round_bf16 = cpu_round_bf16;
    be->to_bf16 = cpu_to_bf16;
    be->matmul_bf16 = cpu_matmul_bf16;
    be->matmul_fp8 = cpu_matmul_fp8;
    be->matmul_grouped = cpu_matmul_grouped;
    be->sample = cpu_sample;
    return be;
}
