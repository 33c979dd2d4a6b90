/* NCCL collectives for core/comm on CUDA buffers (built only with CUDA + NCCL; the
 * unique id travels over MPI in core/comm.c). Every call waits for the device before it
 * starts (the backend's stream is private to it) and for the collective before it
 * returns, so callers see the same blocking contract as the MPI path. */
#ifndef GRPO_COMM_NCCL_H
#define GRPO_COMM_NCCL_H

#include <stddef.h>

#include "core/status.h"

#define COMM_NCCL_ID_BYTES 128   /* NCCL_UNIQUE_ID_BYTES */

typedef struct comm_nccl comm_nccl;

/* Rank 0 makes the id; every rank passes the same bytes to comm_nccl_create. */
grpo_status comm_nccl_unique_id(unsigned char id[COMM_NCCL_ID_BYTES]);
/* One communicator over `size` ranks on the current CUDA device. */
grpo_status comm_nccl_create(const unsigned char id[COMM_NCCL_ID_BYTES], int rank, int size, comm_nccl **out);
void comm_nccl_free(comm_nccl *c);
/* op: 0 sum, 1 max, 2 min (comm_op). */
grpo_status comm_nccl_allreduce(comm_nccl *c, float *buf, size_t n, int op);
grpo_status comm_nccl_reduce_scatter(comm_nccl *c, const float *send, float *recv, size_t count);
grpo_status comm_nccl_allgather(comm_nccl *c, const float *send, float *recv, size_t count);
grpo_status comm_nccl_broadcast(comm_nccl *c, void *buf, size_t bytes, int root);
/* Grouped point-to-point sends and receives of `count` floats per peer. */
grpo_status comm_nccl_alltoall(comm_nccl *c, const float *send, float *recv, size_t count);

#endif
