/* Free and total memory of the CUDA backend's device, for sizing the memory pool
 * (core/backend_pool.c: backend_memory_info). */
#include "core/cuda/cuda_impl.h"

extern "C" grpo_status cuda_memory_info(backend *be, size_t *free_bytes, size_t *total_bytes);

/* A failure is reported (not fatal): it comes before any training state exists. */
extern "C" grpo_status cuda_memory_info(backend *be, size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = 0;
    cuda_impl *impl = cuda_impl_of(be);
    cudaError_t err = cudaSetDevice(impl->device);
    if (err == cudaSuccess) err = cudaMemGetInfo(free_bytes, total_bytes);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return grpo_fail(GRPO_ERR_BACKEND, "cuda backend: cudaMemGetInfo on device %d: %s", impl->device,
                         cudaGetErrorString(err));
    }
    return GRPO_OK;
}
