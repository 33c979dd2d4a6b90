/* Ranks and collectives (core/comm.h): MPI for host buffers, NCCL for CUDA ones, the
 * identity for one process. Collectives are MPI's non-blocking ones waited on with a
 * deadline, so a rank that never joins stops the job instead of hanging it. */
#include "core/comm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef GRPO_HAVE_MPI
#include <mpi.h>
#endif
#ifdef GRPO_HAVE_NCCL
#include "core/cuda/comm_nccl.h"
#endif

#define COMM_MAX_PEERS 4096   /* peers whose pid is kept for the "which rank is gone" message */

struct comm {
    int rank, size, local_rank;
    int mpi;                  /* MPI_Init was called by us */
    double timeout_s;
    int count_wire;           /* GRPO_COMM_STATS=1 */
    comm_stats stats;
#ifdef GRPO_HAVE_NCCL
    comm_nccl *nccl;
#endif
};

static comm g_world = {.rank = 0, .size = 1, .timeout_s = 600.0};
static int g_initialised;
/* For the SIGTERM message: pid of each rank on this node (0 elsewhere). */
static pid_t g_peer_pid[COMM_MAX_PEERS];

int comm_rank(const comm *c) { return c->rank; }
int comm_size(const comm *c) { return c->size; }
int comm_local_rank(const comm *c) { return c->local_rank; }

int comm_have_mpi(void) {
#ifdef GRPO_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

comm_stats comm_get_stats(const comm *c) { return c->stats; }
void comm_reset_stats(comm *c) { memset(&c->stats, 0, sizeof c->stats); }

__attribute__((unused)) static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Bytes this process has written with write()/writev() (sockets included), from
 * /proc/self/io's wchar; 0 where that file is missing. */
static uint64_t wchar_now(void) {
    FILE *f = fopen("/proc/self/io", "r");
    if (!f) return 0;
    char line[128];
    unsigned long long v = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "wchar: %llu", &v) == 1) break;
    fclose(f);
    return (uint64_t)v;
}

/* ---- signal-safe messages ------------------------------------------------------------ */

static size_t put_str(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at + 1 < cap) buf[at++] = *s++;
    return at;
}

static size_t put_int(char *buf, size_t at, size_t cap, long v) {
    char tmp[24];
    int n = 0;
    if (v < 0) { at = put_str(buf, at, cap, "-"); v = -v; }
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < (int)sizeof tmp);
    while (n && at + 1 < cap) buf[at++] = tmp[--n];
    return at;
}

/* The launcher (mpirun) sends SIGTERM to the survivors when a rank dies: say so, and
 * name the ranks of this node whose process is gone, then die of the signal. */
__attribute__((unused)) static void on_terminate(int sig) {
    char msg[512];
    size_t n = 0;
    n = put_str(msg, n, sizeof msg, "grpo: rank ");
    n = put_int(msg, n, sizeof msg, g_world.rank);
    n = put_str(msg, n, sizeof msg, " of ");
    n = put_int(msg, n, sizeof msg, g_world.size);
    n = put_str(msg, n, sizeof msg, ": stopped by the launcher (signal ");
    n = put_int(msg, n, sizeof msg, sig);
    n = put_str(msg, n, sizeof msg, ") because another rank failed");
    int listed = 0;
    for (int r = 0; r < g_world.size && r < COMM_MAX_PEERS; r++) {
        if (r == g_world.rank || g_peer_pid[r] <= 0) continue;
        if (kill(g_peer_pid[r], 0) != 0 && errno == ESRCH) {
            n = put_str(msg, n, sizeof msg, listed ? ", " : "; gone on this node: rank ");
            n = put_int(msg, n, sizeof msg, r);
            listed++;
        }
    }
    n = put_str(msg, n, sizeof msg, "; resume from the last checkpoint with run.resume: true\n");
    ssize_t w = write(STDERR_FILENO, msg, n);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- initialisation ------------------------------------------------------------------- */

#ifdef GRPO_HAVE_MPI
#define MPI_CHECK(call)                                                                                    \
    do {                                                                                                   \
        int rc_ = (call);                                                                                  \
        if (rc_ != MPI_SUCCESS) {                                                                          \
            char es_[MPI_MAX_ERROR_STRING];                                                                \
            int el_ = 0;                                                                                   \
            MPI_Error_string(rc_, es_, &el_);                                                              \
            return grpo_fail(GRPO_ERR_IO, "%s:%d: rank %d: %s failed: %s", __FILE__, __LINE__, g_world.rank, \
                             #call, es_);                                                                  \
        }                                                                                                  \
    } while (0)

/* Runs at exit: a clean exit (status 0) finalises MPI; a failing rank aborts the job so
 * the others stop now instead of waiting in their next collective. */
static void at_exit(int status, void *arg) {
    (void)arg;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (status != 0 && g_world.size > 1) {
        fprintf(stderr, "grpo: rank %d of %d failed (exit status %d): stopping the other ranks\n", g_world.rank,
                g_world.size, status);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
#ifdef GRPO_HAVE_NCCL
    comm_nccl_free(g_world.nccl);
    g_world.nccl = NULL;
#endif
    MPI_Finalize();
}

static int launched_by_mpi(void) {
    const char *force = getenv("GRPO_COMM");
    if (force && !strcmp(force, "single")) return 0;
    if (force && !strcmp(force, "mpi")) return 1;
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}

static void init_mpi(comm *c) {
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "grpo: MPI_Init_thread failed; running as a single process\n");
        return;
    }
    c->mpi = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_rank(local, &c->local_rank);
        /* pids of the node's ranks, by world rank, for the SIGTERM message */
        int lsize = 0;
        MPI_Comm_size(local, &lsize);
        int *pairs = malloc(2 * (size_t)lsize * sizeof(int));
        int mine[2] = {c->rank, (int)getpid()};
        if (pairs && MPI_Allgather(mine, 2, MPI_INT, pairs, 2, MPI_INT, local) == MPI_SUCCESS)
            for (int i = 0; i < lsize; i++)
                if (pairs[2 * i] >= 0 && pairs[2 * i] < COMM_MAX_PEERS) g_peer_pid[pairs[2 * i]] = pairs[2 * i + 1];
        free(pairs);
        MPI_Comm_free(&local);
    }
    on_exit(at_exit, NULL);
    if (c->size > 1) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_terminate;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
    }
}
#endif

comm *comm_world(void) {
    if (g_initialised) return &g_world;
    g_initialised = 1;
    const char *t = getenv("GRPO_COMM_TIMEOUT_S");
    if (t && atof(t) > 0) g_world.timeout_s = atof(t);
    const char *st = getenv("GRPO_COMM_STATS");
    g_world.count_wire = st && !strcmp(st, "1");
#ifdef GRPO_HAVE_MPI
    if (launched_by_mpi()) init_mpi(&g_world);
#endif
    return &g_world;
}

void comm_abort(comm *c, int code, const char *msg) {
    fprintf(stderr, "grpo: rank %d of %d: %s\n", c->rank, c->size, msg);
    fflush(stderr);
#ifdef GRPO_HAVE_MPI
    if (c->mpi && c->size > 1) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
    exit(code ? code : 1);
}

/* ---- accounting ------------------------------------------------------------------------ */

static void account(comm *c, double model_bytes, uint64_t wire_before) {
    c->stats.calls++;
    c->stats.model_bytes += (uint64_t)(model_bytes + 0.5);
    if (c->count_wire) c->stats.wire_bytes += wchar_now() - wire_before;
}

__attribute__((unused)) static int on_host(backend *be) { return !be || !strcmp(be->name, "cpu"); }

const char *comm_transport(comm *c, backend *be) {
    if (c->size == 1) return "single";
#ifdef GRPO_HAVE_NCCL
    if (!on_host(be)) return "nccl";
#endif
    return "mpi";
}

#ifdef GRPO_HAVE_MPI
/* Waits for req with the deadline; spins briefly, then sleeps so oversubscribed ranks
 * leave the cores to the others. */
static grpo_status wait_request(comm *c, MPI_Request *req, const char *what, size_t n) {
    double start = now_s();
    long polls = 0;
    for (;;) {
        int done = 0;
        MPI_CHECK(MPI_Test(req, &done, MPI_STATUS_IGNORE));
        if (done) return GRPO_OK;
        if (++polls > 200) {
            struct timespec ts = {0, polls > 20000 ? 1000000 : 20000};
            nanosleep(&ts, NULL);
        }
        if (c->timeout_s > 0 && now_s() - start > c->timeout_s) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "%s of %zu elements waited %.0f s for the other ranks (GRPO_COMM_TIMEOUT_S): a rank is stuck "
                     "or gone; stopping the job",
                     what, n, c->timeout_s);
            comm_abort(c, 1, msg);
        }
    }
}

static MPI_Op mpi_op(comm_op op) { return op == COMM_MAX ? MPI_MAX : op == COMM_MIN ? MPI_MIN : MPI_SUM; }

static grpo_status host_allreduce(comm *c, void *buf, size_t n, MPI_Datatype type, comm_op op, const char *what) {
    /* MPI counts are int: large buffers go in chunks. */
    size_t elem = type == MPI_FLOAT ? 4 : 8, chunk = (size_t)1 << 28;
    for (size_t at = 0; at < n; at += chunk) {
        int k = (int)(n - at < chunk ? n - at : chunk);
        MPI_Request req;
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + at * elem, k, type, mpi_op(op), MPI_COMM_WORLD, &req));
        GRPO_TRY(wait_request(c, &req, what, n));
    }
    return GRPO_OK;
}
#endif

grpo_status comm_broadcast(comm *c, backend *be, void *buf, size_t bytes, int root);
#ifdef GRPO_HAVE_NCCL
static grpo_status nccl_ensure(comm *c) {
    if (c->nccl) return GRPO_OK;
    unsigned char id[COMM_NCCL_ID_BYTES] = {0};
    if (c->rank == 0) GRPO_TRY(comm_nccl_unique_id(id));
    GRPO_TRY(comm_broadcast(c, NULL, id, sizeof id, 0));   /* NULL backend: host bytes over MPI */
    return comm_nccl_create(id, c->rank, c->size, &c->nccl);
}
#endif

/* A CUDA buffer without NCCL goes through host memory. */
__attribute__((unused)) static grpo_status staged(backend *be, size_t bytes, void **host) {
    *host = malloc(bytes ? bytes : 1);
    if (!*host) return grpo_fail(GRPO_ERR_NOMEM, "comm: cannot stage %zu bytes through host memory", bytes);
    return GRPO_OK;
}

grpo_status comm_allreduce_f32(comm *c, backend *be, float *buf, size_t n, comm_op op) {
    if (c->size == 1 || n == 0) return GRPO_OK;
    uint64_t w0 = c->count_wire ? wchar_now() : 0;
    grpo_status s = GRPO_OK;
#ifdef GRPO_HAVE_NCCL
    if (!on_host(be)) {
        GRPO_TRY(nccl_ensure(c));
        s = comm_nccl_allreduce(c->nccl, buf, n, (int)op);
        account(c, 2.0 * (c->size - 1) / c->size * (double)n * 4, w0);
        return s;
    }
#endif
#ifdef GRPO_HAVE_MPI
    if (on_host(be)) {
        s = host_allreduce(c, buf, n, MPI_FLOAT, op, "all-reduce");
    } else {
        void *h;
        GRPO_TRY(staged(be, n * 4, &h));
        be->to_host(be, h, buf, n * 4);
        s = host_allreduce(c, h, n, MPI_FLOAT, op, "all-reduce");
        if (!s) be->to_device(be, buf, h, n * 4);
        free(h);
    }
#endif
    account(c, 2.0 * (c->size - 1) / c->size * (double)n * 4, w0);
    return s;
}

grpo_status comm_allreduce_f64(comm *c, double *buf, size_t n, comm_op op) {
    if (c->size == 1 || n == 0) return GRPO_OK;
    uint64_t w0 = c->count_wire ? wchar_now() : 0;
    grpo_status s = GRPO_OK;
#ifdef GRPO_HAVE_MPI
    s = host_allreduce(c, buf, n, MPI_DOUBLE, op, "all-reduce (f64)");
#endif
    account(c, 2.0 * (c->size - 1) / c->size * (double)n * 8, w0);
    return s;
}

grpo_status comm_allreduce_i64(comm *c, int64_t *buf, size_t n, comm_op op) {
    if (c->size == 1 || n == 0) return GRPO_OK;
    uint64_t w0 = c->count_wire ? wchar_now() : 0;
    grpo_status s = GRPO_OK;
#ifdef GRPO_HAVE_MPI
    s = host_allreduce(c, buf, n, MPI_INT64_T, op, "all-reduce (i64)");
#endif
    account(c, 2.0 * (c->size - 1) / c->size * (double)n * 8, w0);
    return s;
}

grpo_status comm_reduce_scatter_f32(comm *c, backend *be, const float *send, float *recv, size_t count) {
    if (c->size == 1) {
        if (send != recv && count) be->copy(be, recv, send, count * 4);
        return GRPO_OK;
    }
    uint64_t w0 = c->count_wire ? wchar_now() : 0;
    double model = (double)(c->size - 1) * (double)count * 4;
    grpo_status s = GRPO_OK;
#ifdef GRPO_HAVE_NCCL
    if (!on_host(be)) {
        GRPO_TRY(nccl_ensure(c));
        s = comm_nccl_reduce_scatter(c->nccl, send, recv, count);
        account(c, model, w0);
        return s;
    }
#endif
#ifdef GRPO_HAVE_MPI
    GRPO_ASSERT(count <= (size_t)1 << 30);
    size_t total = count * (size_t)c->size;
    void *hs = (void *)send, *hr = recv;
    if (!on_host(be)) {
        GRPO_TRY(staged(be, total * 4 + count * 4, &hs));
        hr = (char *)hs + total * 4;
        be->to_host(be, hs, send, total * 4);
    }
    MPI_Request req;
    int rc = MPI_Ireduce_scatter_block(hs, hr, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS) s = grpo_fail(GRPO_ERR_IO, "%s:%d: rank %d: MPI_Ireduce_scatter_block failed", __FILE__,
                                         __LINE__, c->rank);
    if (!s) s = wait_request(c, &req, "reduce-scatter", total);
    if (!on_host(be)) {
        if (!s) be->to_device(be, recv, hr, count * 4);
        free(hs);
    }
#endif
    account(c, model, w0);
    return s;
}

grpo_status comm_allgather_f32(comm *c, backend *be, const float *send, float *recv, size_t count) {
    int in_place = send == recv + (size_t)c->rank * count;
    if (c->size == 1) {
        if (!in_place && count) be->copy(be, recv, send, count * 4);
        return GRPO_OK;
    }
    uint64_t w0 = c->count_wire ? wchar_now() : 0;
    double model = (double)(c->size - 1) * (double)count * 4;
    grpo_status s = GRPO_OK;
#ifdef GRPO_HAVE_NCCL
    if (!on_host(be)) {
        GRPO_TRY(nccl_ensure(c));
        s = comm_nccl_allgather(c->nccl, send, recv, count);
        account(c, model, w0);
        return s;
    }
#endif
#ifdef GRPO_HAVE_MPI
    GRPO_ASSERT(count <= (size_t)1 << 30);
    size_t total = count * (size_t)c->size;
    float *hr = recv;
    if (!on_host(be)) {
        void *h;
        GRPO_TRY(staged(be, total * 4, &h));
        hr = h;
        be->to_host(be, hr + (size_t)c->rank * count, send, count * 4);
        in_place = 1;
    }
    MPI_Request req;
    int rc = MPI_Iallgather(in_place ? MPI_IN_PLACE : send, (int)count, MPI_FLOAT, hr, (int)count, MPI_FLOAT,
                            MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS)
        s = grpo_fail(GRPO_ERR_IO, "%s:%d: rank %d: MPI_Iallgather failed", __FILE__, __LINE__, c->rank);
    if (!s) s = wait_request(c, &req, "all-gather", total);
    if (!on_host(be)) {
        if (!s) be->to_device(be, recv, hr, total * 4);
        free(hr);
    }
#endif
    account(c, model, w0);
    return s;
}

grpo_status comm_broadcast(comm *c, backend *be, void *buf, size_t bytes, int root) {
    if (c->size == 1 || bytes == 0) return GRPO_OK;
    uint64_t w0 = c->count_wire ? wchar_now() : 0;
    double model = c->rank == root ? (double)bytes : 0;
    grpo_status s = GRPO_OK;
#ifdef GRPO_HAVE_NCCL
    if (!on_host(be)) {
        GRPO_TRY(nccl_ensure(c));
        s = comm_nccl_broadcast(c->nccl, buf, bytes, root);
        account(c, model, w0);
        return s;
    }
#endif
#ifdef GRPO_HAVE_MPI
    GRPO_ASSERT(bytes <= (size_t)1 << 31);
    void *h = buf;
    if (!on_host(be)) {
        GRPO_TRY(staged(be, bytes, &h));
        be->to_host(be, h, buf, bytes);
    }
    MPI_Request req;
    int rc = MPI_Ibcast(h, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS) s = grpo_fail(GRPO_ERR_IO, "%s:%d: rank %d: MPI_Ibcast failed", __FILE__, __LINE__, c->rank);
    if (!s) s = wait_request(c, &req, "broadcast", bytes);
    if (!on_host(be)) {
        if (!s) be->to_device(be, buf, h, bytes);
        free(h);
    }
#endif
    account(c, model, w0);
    return s;
}

grpo_status comm_alltoall_f32(comm *c, backend *be, const float *send, float *recv, size_t count) {
    if (c->size == 1) {
        if (send != recv && count) be->copy(be, recv, send, count * 4);
        return GRPO_OK;
    }
    uint64_t w0 = c->count_wire ? wchar_now() : 0;
    double model = (double)(c->size - 1) * (double)count * 4;
    grpo_status s = GRPO_OK;
#ifdef GRPO_HAVE_NCCL
    if (!on_host(be)) {
        GRPO_TRY(nccl_ensure(c));
        s = comm_nccl_alltoall(c->nccl, send, recv, count);
        account(c, model, w0);
        return s;
    }
#endif
#ifdef GRPO_HAVE_MPI
    GRPO_ASSERT(count <= (size_t)1 << 30);
    size_t total = count * (size_t)c->size;
    const float *hs = send;
    float *hr = recv, *h = NULL;
    if (!on_host(be)) {
        GRPO_TRY(staged(be, 2 * total * 4, (void **)&h));
        be->to_host(be, h, send, total * 4);
        hs = h;
        hr = h + total;
    }
    MPI_Request req;
    int rc = MPI_Ialltoall(hs, (int)count, MPI_FLOAT, hr, (int)count, MPI_FLOAT, MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS)
        s = grpo_fail(GRPO_ERR_IO, "%s:%d: rank %d: MPI_Ialltoall failed", __FILE__, __LINE__, c->rank);
    if (!s) s = wait_request(c, &req, "all-to-all", total);
    if (h) {
        if (!s) be->to_device(be, recv, hr, total * 4);
        free(h);
    }
#endif
    account(c, model, w0);
    return s;
}

grpo_status comm_barrier(comm *c) {
    if (c->size == 1) return GRPO_OK;
#ifdef GRPO_HAVE_MPI
    MPI_Request req;
    MPI_CHECK(MPI_Ibarrier(MPI_COMM_WORLD, &req));
    return wait_request(c, &req, "barrier", 0);
#else
    return GRPO_OK;
#endif
}

double comm_set_timeout(comm *c, double seconds) {
    double before = c->timeout_s;
    c->timeout_s = seconds;
    return before;
}

grpo_status comm_agree(comm *c, grpo_status s) {
    if (c->size == 1) return s;
    /* the lowest failing rank, or size when none failed */
    int64_t first = s ? c->rank : c->size;
    grpo_status cs = comm_allreduce_i64(c, &first, 1, COMM_MIN);
    if (cs) return cs;
    if (s) return s;
    if (first < c->size) return grpo_fail(GRPO_ERR_IO, "rank %d failed (see its message); rank %d stops too",
                                          (int)first, c->rank);
    return GRPO_OK;
}

