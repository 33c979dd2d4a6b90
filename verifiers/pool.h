/* A fixed pool of worker threads that run verification jobs (code in sandboxes, or
 * any function) off the trainer's thread. The queue is bounded: submit blocks while
 * it is full. Results are kept by submission index until verify_pool_clear. A job
 * cannot hang the pool for long: each sandbox run is killed by its own wall clock. */
#ifndef GRPO_VERIFY_POOL_H
#define GRPO_VERIFY_POOL_H

#include "core/status.h"
#include "verifiers/code.h"

typedef struct verify_pool verify_pool;

/* nthreads >= 1 workers, a queue of queue_capacity >= 1 waiting jobs. */
grpo_status verify_pool_create(int nthreads, int queue_capacity, verify_pool **out);
/* Waits for queued and running jobs, joins the workers, frees. NULL is a no-op. */
void verify_pool_free(verify_pool *pool);

/* Queues a code verification; the pool copies the request (code, tests, language),
 * so the caller's buffers may go at once. *index (may be NULL) is the position of
 * this job since the last clear. Blocks while the queue is full. */
grpo_status verify_pool_submit_code(verify_pool *pool, const verify_code_request *req, long *index);

/* Queues fn(arg) to run on a worker (the caller keeps arg alive until it ran). */
typedef void (*verify_pool_fn)(void *arg);
grpo_status verify_pool_submit(verify_pool *pool, verify_pool_fn fn, void *arg, long *index);

/* Blocks until every job submitted so far has finished. */
void verify_pool_wait(verify_pool *pool);

/* The result of code job `index` (after it finished: call verify_pool_wait first).
 * When verify_code_run failed for that job the status is returned and the message
 * is the one the job recorded. */
grpo_status verify_pool_code_result(verify_pool *pool, long index, verify_code_result *out);

/* Number of jobs submitted since the last clear. */
long verify_pool_count(verify_pool *pool);
/* Forgets all results (waits for outstanding jobs first); indices restart at 0. */
void verify_pool_clear(verify_pool *pool);

#endif
