/* Worker pool for verification jobs: a ring buffer of pending jobs (bounded), N
 * threads that pop and run them, and a results array indexed by submission order.
 * One mutex guards queue, results and counters; two condition variables say "queue
 * changed" (not full / not empty) and "a job finished". */
#include "verifiers/pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long index;
    verify_pool_fn fn;             /* generic job, or NULL for a code job */
    void *arg;
    verify_code_request req;       /* code job: deep copy, freed by the worker */
    char *owned;                   /* one block holding language, code and test strings */
    verify_code_test *tests;
} pool_job;

typedef struct {
    verify_code_result result;
    grpo_status status;
    char message[512];
} pool_result;

struct verify_pool {
    pthread_mutex_t lock;
    pthread_cond_t queue_changed;
    pthread_cond_t job_done;
    pthread_t *threads;
    int nthreads;
    pool_job *queue;               /* ring of capacity jobs */
    int capacity, head, count;
    pool_result *results;          /* [results_cap], the first `submitted` valid */
    long results_cap;
    long submitted, finished;
    int stopping;
};

static void job_free(pool_job *job) {
    free(job->owned);
    free(job->tests);
    job->owned = NULL;
    job->tests = NULL;
}

static void *worker_main(void *arg) {
    verify_pool *pool = arg;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (pool->count == 0 && !pool->stopping) pthread_cond_wait(&pool->queue_changed, &pool->lock);
        if (pool->count == 0) {   /* stopping and drained */
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        pool_job job = pool->queue[pool->head];
        pool->head = (pool->head + 1) % pool->capacity;
        pool->count--;
        pthread_cond_broadcast(&pool->queue_changed);
        pthread_mutex_unlock(&pool->lock);

        pool_result r;
        memset(&r, 0, sizeof r);
        if (job.fn) {
            job.fn(job.arg);
        } else {
            r.status = verify_code_run(&job.req, &r.result);
            if (r.status != GRPO_OK) snprintf(r.message, sizeof r.message, "%s", grpo_error_message());
        }
        job_free(&job);

        pthread_mutex_lock(&pool->lock);
        pool->results[job.index] = r;
        pool->finished++;
        pthread_cond_broadcast(&pool->job_done);
        pthread_mutex_unlock(&pool->lock);
    }
}

grpo_status verify_pool_create(int nthreads, int queue_capacity, verify_pool **out) {
    *out = NULL;
    if (nthreads < 1 || nthreads > 1024 || queue_capacity < 1 || queue_capacity > (1 << 20))
        return grpo_fail(GRPO_ERR_INVALID, "%s:%d: verify pool: expected 1..1024 threads and a queue of 1..%d, found "
                         "%d threads and %d", __FILE__, __LINE__, 1 << 20, nthreads, queue_capacity);
    verify_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return grpo_fail(GRPO_ERR_NOMEM, "%s:%d: out of memory for a verify pool", __FILE__, __LINE__);
    pool->queue = calloc((size_t)queue_capacity, sizeof *pool->queue);
    pool->threads = calloc((size_t)nthreads, sizeof *pool->threads);
    if (!pool->queue || !pool->threads) {
        free(pool->queue);
        free(pool->threads);
        free(pool);
        return grpo_fail(GRPO_ERR_NOMEM, "%s:%d: out of memory for a verify pool", __FILE__, __LINE__);
    }
    pool->capacity = queue_capacity;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->queue_changed, NULL);
    pthread_cond_init(&pool->job_done, NULL);
    /* Probe the sandbox once here, not in the first jobs racing for it. */
    (void)sandbox_available_mode();
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0) {
            pool->nthreads = i;
            verify_pool_free(pool);
            return grpo_fail(GRPO_ERR_IO, "%s:%d: verify pool: could not start thread %d of %d", __FILE__, __LINE__,
                             i, nthreads);
        }
    }
    pool->nthreads = nthreads;
    *out = pool;
    return GRPO_OK;
}

void verify_pool_free(verify_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->queue_changed);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->nthreads; i++) pthread_join(pool->threads[i], NULL);
    for (int i = 0; i < pool->count; i++) job_free(&pool->queue[(pool->head + i) % pool->capacity]);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->queue_changed);
    pthread_cond_destroy(&pool->job_done);
    free(pool->threads);
    free(pool->queue);
    free(pool->results);
    free(pool);
}

/* Takes ownership of job's buffers (frees them on failure). Called without the lock. */
static grpo_status enqueue(verify_pool *pool, pool_job *job, long *index) {
    pthread_mutex_lock(&pool->lock);
    while (pool->count == pool->capacity && !pool->stopping) pthread_cond_wait(&pool->queue_changed, &pool->lock);
    if (pool->stopping) {
        pthread_mutex_unlock(&pool->lock);
        job_free(job);
        return grpo_fail(GRPO_ERR_INVALID, "%s:%d: verify pool is shutting down", __FILE__, __LINE__);
    }
    if (pool->submitted == pool->results_cap) {
        long cap = pool->results_cap ? 2 * pool->results_cap : 64;
        pool_result *grown = realloc(pool->results, (size_t)cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&pool->lock);
            job_free(job);
            return grpo_fail(GRPO_ERR_NOMEM, "%s:%d: out of memory for %ld pool results", __FILE__, __LINE__, cap);
        }
        pool->results = grown;
        pool->results_cap = cap;
    }
    job->index = pool->submitted++;
    memset(&pool->results[job->index], 0, sizeof pool->results[job->index]);
    pool->queue[(pool->head + pool->count) % pool->capacity] = *job;
    pool->count++;
    if (index) *index = job->index;
    pthread_cond_broadcast(&pool->queue_changed);
    pthread_mutex_unlock(&pool->lock);
    return GRPO_OK;
}

grpo_status verify_pool_submit(verify_pool *pool, verify_pool_fn fn, void *arg, long *index) {
    if (!fn) return grpo_fail(GRPO_ERR_INVALID, "%s:%d: verify_pool_submit: no function", __FILE__, __LINE__);
    pool_job job = {.fn = fn, .arg = arg};
    return enqueue(pool, &job, index);
}

grpo_status verify_pool_submit_code(verify_pool *pool, const verify_code_request *req, long *index) {
    if (!req->language || !req->code || req->n_tests < 0 || (req->n_tests > 0 && !req->tests))
        return grpo_fail(GRPO_ERR_INVALID, "%s:%d: verify_pool_submit_code: request lacks language, code or tests",
                         __FILE__, __LINE__);
    /* One block: language \0 code \0 then each test's input \0 output \0. */
    size_t lang_len = strlen(req->language), total = lang_len + 1 + req->code_len + 1;
    for (int i = 0; i < req->n_tests; i++)
        total += (req->tests[i].input ? req->tests[i].input_len : 0) + 1 +
                 (req->tests[i].output ? req->tests[i].output_len : 0) + 1;
    pool_job job = {.fn = NULL, .req = *req};
    job.owned = malloc(total);
    job.tests = req->n_tests > 0 ? calloc((size_t)req->n_tests, sizeof *job.tests) : NULL;
    if (!job.owned || (req->n_tests > 0 && !job.tests)) {
        job_free(&job);
        return grpo_fail(GRPO_ERR_NOMEM, "%s:%d: out of memory copying a code request (%zu bytes)", __FILE__,
                         __LINE__, total);
    }
    char *p = job.owned;
#define COPY_INTO(dst, src, n) do { if (n) memcpy(p, (src), (n)); p[(n)] = '\0'; (dst) = p; p += (n) + 1; } while (0)
    COPY_INTO(job.req.language, req->language, lang_len);
    COPY_INTO(job.req.code, req->code, req->code_len);
    for (int i = 0; i < req->n_tests; i++) {
        const verify_code_test *t = &req->tests[i];
        size_t in_len = t->input ? t->input_len : 0, out_len = t->output ? t->output_len : 0;
        COPY_INTO(job.tests[i].input, t->input, in_len);
        COPY_INTO(job.tests[i].output, t->output, out_len);
        job.tests[i].input_len = in_len;
        job.tests[i].output_len = out_len;
    }
#undef COPY_INTO
    job.req.tests = job.tests;
    return enqueue(pool, &job, index);
}

void verify_pool_wait(verify_pool *pool) {
    pthread_mutex_lock(&pool->lock);
    while (pool->finished < pool->submitted) pthread_cond_wait(&pool->job_done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

grpo_status verify_pool_code_result(verify_pool *pool, long index, verify_code_result *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&pool->lock);
    if (index < 0 || index >= pool->submitted) {
        long n = pool->submitted;
        pthread_mutex_unlock(&pool->lock);
        return grpo_fail(GRPO_ERR_INVALID, "%s:%d: verify pool: no job %ld (have %ld)", __FILE__, __LINE__, index, n);
    }
    pool_result r = pool->results[index];
    pthread_mutex_unlock(&pool->lock);
    *out = r.result;
    if (r.status != GRPO_OK) return grpo_fail(r.status, "%s", r.message);
    return GRPO_OK;
}

long verify_pool_count(verify_pool *pool) {
    pthread_mutex_lock(&pool->lock);
    long n = pool->submitted;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void verify_pool_clear(verify_pool *pool) {
    verify_pool_wait(pool);
    pthread_mutex_lock(&pool->lock);
    pool->submitted = pool->finished = 0;
    pthread_mutex_unlock(&pool->lock);
}
