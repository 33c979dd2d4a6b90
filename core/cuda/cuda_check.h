/* Check macros for the CUDA backend (core/cuda/ only: C code never includes CUDA
 * headers). A failing CUDA or cuBLAS call inside an op is a broken invariant of ours
 * (bad pointer, bad launch, lost device), so each macro prints the call's text, the
 * library's error name and string, file and line, and stops through grpo_fatal (which
 * runs the abort hook first). Code that can report a failure upward instead (creating
 * the backend, allocating) checks by hand and returns a grpo_status. */
#ifndef GRPO_CUDA_CHECK_H
#define GRPO_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/status.h"

#define CUDA_CHECK(call) do { cudaError_t cuda_err_ = (call); \
    if (cuda_err_ != cudaSuccess) grpo_fatal(__FILE__, __LINE__, "%s: CUDA error %d %s: %s", #call, \
        (int)cuda_err_, cudaGetErrorName(cuda_err_), cudaGetErrorString(cuda_err_)); } while (0)

#define CUBLAS_CHECK(call) do { cublasStatus_t cublas_st_ = (call); \
    if (cublas_st_ != CUBLAS_STATUS_SUCCESS) grpo_fatal(__FILE__, __LINE__, "%s: cuBLAS error %d %s: %s", \
        #call, (int)cublas_st_, cublasGetStatusName(cublas_st_), cublasGetStatusString(cublas_st_)); } while (0)

/* After every kernel launch: a bad launch configuration or an earlier asynchronous
 * fault shows up here, at the launch that found it. */
#define CUDA_CHECK_LAST() do { cudaError_t cuda_err_ = cudaGetLastError(); \
    if (cuda_err_ != cudaSuccess) grpo_fatal(__FILE__, __LINE__, "kernel launch: CUDA error %d %s: %s", \
        (int)cuda_err_, cudaGetErrorName(cuda_err_), cudaGetErrorString(cuda_err_)); } while (0)

#endif
