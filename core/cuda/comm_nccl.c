/* NCCL collectives on CUDA buffers (core/cuda/comm_nccl.h). */
#include "core/cuda/comm_nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(COMM_NCCL_ID_BYTES == NCCL_UNIQUE_ID_BYTES, "NCCL unique id size changed");

struct comm_nccl {
    ncclComm_t comm;
    cudaStream_t stream;
    int rank, size;
};

#define NCCL_CHECK(call)                                                                                   \
    do {                                                                                                   \
        ncclResult_t r_ = (call);                                                                          \
        if (r_ != ncclSuccess)                                                                             \
            return grpo_fail(GRPO_ERR_IO, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call,               \
                             ncclGetErrorString(r_));                                                      \
    } while (0)
#define CUDA_CHECK(call)                                                                                   \
    do {                                                                                                   \
        cudaError_t e_ = (call);                                                                           \
        if (e_ != cudaSuccess)                                                                             \
            return grpo_fail(GRPO_ERR_IO, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call,               \
                             cudaGetErrorString(e_));                                                      \
    } while (0)

grpo_status comm_nccl_unique_id(unsigned char id[COMM_NCCL_ID_BYTES]) {
    ncclUniqueId u;
    NCCL_CHECK(ncclGetUniqueId(&u));
    memcpy(id, u.internal, COMM_NCCL_ID_BYTES);
    return GRPO_OK;
}

grpo_status comm_nccl_create(const unsigned char id[COMM_NCCL_ID_BYTES], int rank, int size, comm_nccl **out) {
    *out = NULL;
    comm_nccl *c = calloc(1, sizeof *c);
    if (!c) return grpo_fail(GRPO_ERR_NOMEM, "comm_nccl_create: out of memory");
    ncclUniqueId u;
    memcpy(u.internal, id, COMM_NCCL_ID_BYTES);
    c->rank = rank;
    c->size = size;
    cudaError_t e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        free(c);
        return grpo_fail(GRPO_ERR_IO, "%s:%d: cudaStreamCreateWithFlags failed: %s", __FILE__, __LINE__,
                         cudaGetErrorString(e));
    }
    ncclResult_t r = ncclCommInitRank(&c->comm, size, u, rank);
    if (r != ncclSuccess) {
        cudaStreamDestroy(c->stream);
        free(c);
        return grpo_fail(GRPO_ERR_IO, "%s:%d: ncclCommInitRank(rank %d of %d) failed: %s", __FILE__, __LINE__, rank,
                         size, ncclGetErrorString(r));
    }
    *out = c;
    return GRPO_OK;
}

void comm_nccl_free(comm_nccl *c) {
    if (!c) return;
    ncclCommDestroy(c->comm);
    cudaStreamDestroy(c->stream);
    free(c);
}

static ncclRedOp_t red_op(int op) { return op == 1 ? ncclMax : op == 2 ? ncclMin : ncclSum; }

grpo_status comm_nccl_allreduce(comm_nccl *c, float *buf, size_t n, int op) {
    CUDA_CHECK(cudaDeviceSynchronize());
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, red_op(op), c->comm, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return GRPO_OK;
}

grpo_status comm_nccl_reduce_scatter(comm_nccl *c, const float *send, float *recv, size_t count) {
    CUDA_CHECK(cudaDeviceSynchronize());
    NCCL_CHECK(ncclReduceScatter(send, recv, count, ncclFloat32, ncclSum, c->comm, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return GRPO_OK;
}

grpo_status comm_nccl_allgather(comm_nccl *c, const float *send, float *recv, size_t count) {
    CUDA_CHECK(cudaDeviceSynchronize());
    NCCL_CHECK(ncclAllGather(send, recv, count, ncclFloat32, c->comm, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return GRPO_OK;
}

grpo_status comm_nccl_broadcast(comm_nccl *c, void *buf, size_t bytes, int root) {
    CUDA_CHECK(cudaDeviceSynchronize());
    NCCL_CHECK(ncclBroadcast(buf, buf, bytes, ncclUint8, root, c->comm, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return GRPO_OK;
}

grpo_status comm_nccl_alltoall(comm_nccl *c, const float *send, float *recv, size_t count) {
    CUDA_CHECK(cudaDeviceSynchronize());
    NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < c->size; r++) {
        NCCL_CHECK(ncclSend(send + (size_t)r * count, count, ncclFloat32, r, c->comm, c->stream));
        NCCL_CHECK(ncclRecv(recv + (size_t)r * count, count, ncclFloat32, r, c->comm, c->stream));
    }
    NCCL_CHECK(ncclGroupEnd());
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return GRPO_OK;
}
