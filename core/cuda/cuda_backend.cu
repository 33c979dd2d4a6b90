/* The CUDA backend: device, stream and cuBLAS handle, device memory and copies, the
 * op table, and the device listing for `grpo info`. The ops live in the other
 * core/cuda/ files. Defines the real backend_cuda_* (core/backend.c has stubs for
 * builds without CUDA). */
#include "core/cuda/cuda_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory ---- */

/* Zero-filled device memory; NULL (with a message) when the device has none left.
 * A zero-byte request still gets a distinct pointer, so NULL always means failure. */
static void *cuda_alloc(backend *be, size_t bytes) {
    cuda_impl *impl = cuda_impl_of(be);
    CUDA_CHECK(cudaSetDevice(impl->device));
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        cudaGetLastError();   /* out of memory is not sticky; clear it for the next check */
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        cudaGetLastError();
        grpo_fail(GRPO_ERR_NOMEM, "cuda backend: cudaMalloc of %zu bytes on device %d failed: %s "
                  "(%zu of %zu bytes free)", bytes, impl->device, cudaGetErrorString(err), free_b, total_b);
        return NULL;
    }
    /* Queued on our stream, so every later op on this backend sees the zeros. */
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, impl->stream));
    return p;
}

/* cudaFree waits for the device, so no queued op can still be using ptr. */
static void cuda_free(backend *be, void *ptr) {
    (void)be;
    if (ptr) CUDA_CHECK(cudaFree(ptr));
}

/* Waits until the copy is done, so host_src may be reused (pinned or not) on return. */
static void cuda_to_device(backend *be, void *dst, const void *host_src, size_t bytes) {
    if (!bytes) return;
    cudaStream_t s = cuda_stream_of(be);
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
}

/* Waits for every op queued before it, then for the copy. */
static void cuda_to_host(backend *be, void *host_dst, const void *src, size_t bytes) {
    if (!bytes) return;
    cudaStream_t s = cuda_stream_of(be);
    CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
}

static void cuda_copy(backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream_of(be)));
}

static void cuda_zero(backend *be, void *ptr, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, cuda_stream_of(be)));
}

static void cuda_synchronize(backend *be) {
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream_of(be)));
}

/* ---- the table ---- */

static void cuda_release(cuda_impl *impl) {
    /* Teardown must not stop the program: errors here are reported by nobody. */
    if (impl->stream) cudaStreamSynchronize(impl->stream);
    if (impl->cublas) cublasDestroy(impl->cublas);
    if (impl->cublaslt) cublasLtDestroy(impl->cublaslt);
    if (impl->lt_workspace) cudaFree(impl->lt_workspace);
    cuda_lowp_free(impl->lowp);
    if (impl->reduce_partial) cudaFree(impl->reduce_partial);
    if (impl->reduce_host) cudaFreeHost(impl->reduce_host);
    if (impl->stream) cudaStreamDestroy(impl->stream);
    cudaGetLastError();
}

static void cuda_destroy(backend *be) {
    if (!be) return;
    cuda_impl *impl = cuda_impl_of(be);
    if (impl) {
        cudaSetDevice(impl->device);
        cuda_release(impl);
        free(impl);
    }
    free(be);
}

/* Steps of backend_cuda_create that the environment can make fail (no memory, a
 * broken driver): record the message and unwind instead of stopping. */
#define CREATE_TRY_CUDA(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
    cudaGetLastError(); grpo_fail(GRPO_ERR_BACKEND, "cuda backend: %s: %s (device %d)", #call, \
    cudaGetErrorString(e_), device); goto fail; } } while (0)
#define CREATE_TRY_CUBLAS(call) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    grpo_fail(GRPO_ERR_BACKEND, "cuda backend: %s: %s (device %d)", #call, cublasGetStatusString(s_), \
    device); goto fail; } } while (0)

extern "C" backend *backend_cuda_create(int device) {
    int count = backend_cuda_device_count();
    if (count == 0) {
        char why[512];
        backend_cuda_describe(why, sizeof why);
        grpo_fail(GRPO_ERR_UNSUPPORTED, "cuda backend: device %d requested: %s", device, why);
        return NULL;
    }
    if (device < 0 || device >= count) {
        grpo_fail(GRPO_ERR_INVALID, "cuda backend: device %d requested, expected 0..%d (%d present)", device,
                  count - 1, count);
        return NULL;
    }
    backend *be = (backend *)calloc(1, sizeof *be);
    cuda_impl *impl = (cuda_impl *)calloc(1, sizeof *impl);
    if (!be || !impl) {
        free(be);
        free(impl);
        grpo_fail(GRPO_ERR_NOMEM, "cuda backend: out of host memory creating the backend");
        return NULL;
    }
    impl->device = device;
    CREATE_TRY_CUDA(cudaSetDevice(device));
    /* Non-blocking: our stream does not wait on work other libraries put on stream 0. */
    CREATE_TRY_CUDA(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking));
    CREATE_TRY_CUDA(cudaMalloc(&impl->reduce_partial, (CUDA_REDUCE_BLOCKS + 1) * sizeof(double)));
    CREATE_TRY_CUDA(cudaMallocHost(&impl->reduce_host, sizeof(double)));
    CREATE_TRY_CUBLAS(cublasCreate(&impl->cublas));
    CREATE_TRY_CUBLAS(cublasSetStream(impl->cublas, impl->stream));
    /* FP32 products in FP32 (no TF32 tensor cores): parity with the CPU reference at
     * ~1e-5. Faster modes come with the precision setting, chosen at run time. */
    CREATE_TRY_CUBLAS(cublasSetMathMode(impl->cublas, CUBLAS_DEFAULT_MATH));
    CREATE_TRY_CUBLAS(cublasSetPointerMode(impl->cublas, CUBLAS_POINTER_MODE_HOST));
    /* cuBLASLt for the BF16 / FP8 products: one workspace (32 MiB, NVIDIA's advice for Hopper) for every call. */
    CREATE_TRY_CUBLAS(cublasLtCreate(&impl->cublaslt));
    impl->lt_workspace_bytes = (size_t)32 << 20;
    CREATE_TRY_CUDA(cudaMalloc(&impl->lt_workspace, impl->lt_workspace_bytes));
    impl->lowp = cuda_lowp_create(device);
    if (!impl->lowp) {
        grpo_fail(GRPO_ERR_NOMEM, "cuda backend: out of host memory creating the backend");
        goto fail;
    }

    be->name = "cuda";
    be->impl = impl;
    be->destroy = cuda_destroy;

    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->to_device = cuda_to_device;
    be->to_host = cuda_to_host;
    be->copy = cuda_copy;
    be->zero = cuda_zero;
    be->synchronize = cuda_synchronize;

    be->matmul = cuda_matmul;

    be->add = cuda_add;
    be->axpy = cuda_axpy;
    be->scale = cuda_scale;
    be->add_bias = cuda_add_bias;
    be->sum_squares = cuda_sum_squares;
    be->bias_backward = cuda_bias_backward;
    be->swiglu_forward = cuda_swiglu_forward;
    be->swiglu_backward = cuda_swiglu_backward;

    be->embedding_forward = cuda_embedding_forward;
    be->embedding_backward = cuda_embedding_backward;
    be->rmsnorm_forward = cuda_rmsnorm_forward;
    be->rmsnorm_backward = cuda_rmsnorm_backward;
    be->rope = cuda_rope;
    be->token_logprobs_forward = cuda_token_logprobs_forward;
    be->token_logprobs_backward = cuda_token_logprobs_backward;
    be->adamw = cuda_adamw;

    be->quantize_fp8 = cuda_quantize_fp8;
    be->dequantize_fp8 = cuda_dequantize_fp8;
    be->round_fp8 = cuda_round_fp8;
    be->round_bf16 = cuda_round_bf16;
    be->to_bf16 = cuda_to_bf16;
    be->matmul_bf16 = cuda_matmul_bf16;
    be->matmul_fp8 = cuda_matmul_fp8;
    be->matmul_grouped = cuda_matmul_grouped;
    be->attention_forward = cuda_attention_forward;
    be->attention_backward = cuda_attention_backward;
    be->sample = cuda_sample;
    be->cache_write_rows = cuda_cache_write_rows;
    be->paged_attention = cuda_paged_attention;
    return be;

fail:
    cuda_release(impl);
    free(impl);
    free(be);
    return NULL;
}

/* ---- devices ---- */

/* 0 when no driver, no device, or a driver older than the runtime: never an error. */
extern "C" int backend_cuda_device_count(void) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" void backend_cuda_describe(char *buf, size_t size) {
    if (!buf || size == 0) return;
    buf[0] = 0;
    int runtime = 0, driver = 0, n = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);   /* 0 when no driver is installed */
    cudaError_t err = cudaGetDeviceCount(&n);
    cudaGetLastError();
    if (err != cudaSuccess || n == 0) {
        snprintf(buf, size, "no CUDA device: %s (CUDA runtime %d.%d, driver %s)",
                 err != cudaSuccess ? cudaGetErrorString(err) : "the driver reports 0 devices",
                 runtime / 1000, (runtime % 1000) / 10, driver ? "present" : "not found");
        return;
    }
    size_t used = 0;
#define DESCRIBE_APPEND(...) do { if (used < size) { int w_ = snprintf(buf + used, size - used, __VA_ARGS__); \
        if (w_ > 0) used += (size_t)w_; } } while (0)
    DESCRIBE_APPEND("CUDA runtime %d.%d, driver %d.%d, %d device%s", runtime / 1000, (runtime % 1000) / 10,
                    driver / 1000, (driver % 1000) / 10, n, n == 1 ? "" : "s");
    for (int d = 0; d < n; d++) {
        cudaDeviceProp prop;
        err = cudaGetDeviceProperties(&prop, d);
        if (err != cudaSuccess) {
            cudaGetLastError();
            DESCRIBE_APPEND("\ncuda:%d: properties unavailable: %s", d, cudaGetErrorString(err));
            continue;
        }
        DESCRIBE_APPEND("\ncuda:%d: %s, %.1f GiB, compute capability %d.%d, %d SMs", d, prop.name,
                        (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), prop.major, prop.minor,
                        prop.multiProcessorCount);
    }
#undef DESCRIBE_APPEND
}
