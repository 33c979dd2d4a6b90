/* The ranks of a run and the collectives between them. MPI (OpenMPI) launches and
 * addresses the ranks (`mpirun -np N`, `srun`); the tensors move over NCCL when the
 * buffers live on a CUDA backend (its unique id broadcast over MPI), over MPI otherwise.
 * A build without MPI, or a process not started by a launcher, is one rank of one and
 * every collective is the identity (so single-process results are exactly unchanged).
 *
 * Buffers are in the given backend's memory (host memory for the CPU backend). Every
 * collective is blocking for the caller, runs on all ranks in the same order, and is
 * bounded in time: a rank that does not join within GRPO_COMM_TIMEOUT_S seconds
 * (default 600) stops the job with a message naming the collective. A rank the
 * launcher kills because another rank died prints which ranks on its node are gone. */
#ifndef GRPO_COMM_H
#define GRPO_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"
#include "core/status.h"

typedef struct comm comm;

typedef enum { COMM_SUM = 0, COMM_MAX = 1, COMM_MIN = 2 } comm_op;

/* The process's world: initialised on first use (MPI_Init_thread when the process was
 * started by mpirun/srun and the build has MPI; MPI_Finalize runs at exit). Never NULL. */
comm *comm_world(void);
int comm_rank(const comm *c);
int comm_size(const comm *c);
int comm_local_rank(const comm *c);   /* rank among the ranks of this node (picks the GPU) */
/* 1 when the build has MPI compiled in (whether or not this process was launched by it). */
int comm_have_mpi(void);
/* "mpi", "nccl" or "single": what moves tensors of backend be. */
const char *comm_transport(comm *c, backend *be);

/* In place: buf[n] becomes the element-wise reduction over the ranks. */
grpo_status comm_allreduce_f32(comm *c, backend *be, float *buf, size_t n, comm_op op);
/* Host buffers (metrics, counters, flags): reduced over the ranks with MPI. */
grpo_status comm_allreduce_f64(comm *c, double *buf, size_t n, comm_op op);
grpo_status comm_allreduce_i64(comm *c, int64_t *buf, size_t n, comm_op op);
/* send: [size * count] in rank order; recv: [count] gets the sum of every rank's block
 * `rank`. */
grpo_status comm_reduce_scatter_f32(comm *c, backend *be, const float *send, float *recv, size_t count);
/* send: [count] from each rank; recv: [size * count], rank r's block at r * count.
 * send may alias recv + rank * count (in place). */
grpo_status comm_allgather_f32(comm *c, backend *be, const float *send, float *recv, size_t count);
/* bytes of buf on root overwrite buf on every rank. */
grpo_status comm_broadcast(comm *c, backend *be, void *buf, size_t bytes, int root);
/* send: [size * count], block r goes to rank r; recv: [size * count], block r came from
 * rank r (the dispatch/combine of expert parallelism). */
grpo_status comm_alltoall_f32(comm *c, backend *be, const float *send, float *recv, size_t count);
grpo_status comm_barrier(comm *c);
/* The deadline of the collectives from now on, in seconds (<= 0: none); returns the one
 * before, so a caller that waits on one rank's long solo work can lift it and put it back. */
double comm_set_timeout(comm *c, double seconds);
/* Every rank learns whether any rank failed: returns GRPO_OK only when s is GRPO_OK on
 * all ranks; a rank whose s was OK gets an error naming the lowest failing rank. */
grpo_status comm_agree(comm *c, grpo_status s);

/* Byte accounting since the last reset (this rank): `model` is what the collectives
 * send under ring algorithms (allreduce 2(W-1)/W n, reduce-scatter and all-gather
 * (W-1)/W n of the whole buffer, broadcast n from the root, all-to-all (W-1)/W n);
 * `wire` is what this process wrote to sockets during collectives (Linux /proc/self/io,
 * only counted with the tcp transport and GRPO_COMM_STATS=1; 0 otherwise). */
typedef struct {
    uint64_t calls;
    uint64_t model_bytes;
    uint64_t wire_bytes;
} comm_stats;
comm_stats comm_get_stats(const comm *c);
void comm_reset_stats(comm *c);

/* Stops every rank of the job (MPI_Abort) after printing msg; single process: exit. */
void comm_abort(comm *c, int code, const char *msg);

#endif
