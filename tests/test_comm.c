/* core/comm: one process is one rank and every collective the identity; on 2 and 4 MPI
 * ranks (this executable again under mpirun, loopback) each collective gives what a
 * direct computation says, with the byte accounting of the ring formulas; a rank killed
 * mid-run stops the job within a bounded time with a message naming it. SKIPs without
 * MPI or mpirun. */
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/comm.h"
#include "harness.h"

/* OpenMPI unloads its plugins at MPI_Finalize, so their allocations cannot be named in
 * suppressions: the MPI workers run without LeakSanitizer (ASan and UBSan stay on); the
 * single-process part of each test keeps it. */

#define N 1000   /* elements per rank block: not a multiple of anything in particular */

/* The value rank r puts at index i (exact in float, so sums are exact). */
static float value(int r, size_t i) { return (float)((r + 1) * 1000 + (int)(i % 997)); }

static int worker_collectives(void) {
    comm *c = comm_world();
    int W = comm_size(c), r = comm_rank(c);
    backend *be = backend_cpu_create();
    float *a = malloc((size_t)W * N * sizeof(float)), *b = malloc((size_t)W * N * sizeof(float));
    int bad = 0;
    /* all-reduce sum and max */
    for (size_t i = 0; i < N; i++) a[i] = value(r, i);
    comm_reset_stats(c);
    bad |= comm_allreduce_f32(c, be, a, N, COMM_SUM) != GRPO_OK;
    for (size_t i = 0; i < N; i++) {
        double want = 0;
        for (int q = 0; q < W; q++) want += value(q, i);
        bad |= a[i] != (float)want;
    }
    comm_stats st = comm_get_stats(c);
    bad |= st.model_bytes != (uint64_t)(2.0 * (W - 1) / W * N * 4 + 0.5);
    for (size_t i = 0; i < N; i++) a[i] = value(r, i);
    bad |= comm_allreduce_f32(c, be, a, N, COMM_MAX) != GRPO_OK;
    for (size_t i = 0; i < N; i++) bad |= a[i] != value(W - 1, i);
    /* reduce-scatter: block q of every rank summed onto rank q */
    for (int q = 0; q < W; q++)
        for (size_t i = 0; i < N; i++) a[(size_t)q * N + i] = value(r, i) + (float)q;
    bad |= comm_reduce_scatter_f32(c, be, a, b, N) != GRPO_OK;
    for (size_t i = 0; i < N; i++) {
        double want = 0;
        for (int q = 0; q < W; q++) want += value(q, i) + r;
        bad |= b[i] != (float)want;
    }
    /* all-gather, in place */
    for (size_t i = 0; i < N; i++) a[(size_t)r * N + i] = value(r, i);
    bad |= comm_allgather_f32(c, be, a + (size_t)r * N, a, N) != GRPO_OK;
    for (int q = 0; q < W; q++)
        for (size_t i = 0; i < N; i++) bad |= a[(size_t)q * N + i] != value(q, i);
    /* broadcast from the last rank */
    int64_t token[2] = {r == W - 1 ? 424242 : -1, r};
    bad |= comm_broadcast(c, be, token, sizeof token, W - 1) != GRPO_OK;
    bad |= token[0] != 424242 || token[1] != W - 1;
    /* all-to-all: block q of rank r goes to rank q as block r */
    for (int q = 0; q < W; q++)
        for (size_t i = 0; i < N; i++) a[(size_t)q * N + i] = (float)(r * 100 + q) + (float)(i % 7);
    bad |= comm_alltoall_f32(c, be, a, b, N) != GRPO_OK;
    for (int q = 0; q < W; q++)
        for (size_t i = 0; i < N; i++) bad |= b[(size_t)q * N + i] != (float)(q * 100 + r) + (float)(i % 7);
    /* host reductions and agreement */
    double d = r + 0.5;
    bad |= comm_allreduce_f64(c, &d, 1, COMM_SUM) != GRPO_OK;
    bad |= d != W * (W - 1) / 2.0 + 0.5 * W;
    bad |= comm_agree(c, GRPO_OK) != GRPO_OK;
    if (W > 1) {
        grpo_status s = comm_agree(c, r == 1 ? grpo_fail(GRPO_ERR_IO, "rank 1 pretends to fail") : GRPO_OK);
        bad |= s == GRPO_OK;
        if (r != 1) bad |= strstr(grpo_error_message(), "rank 1 failed") == NULL;
        grpo_error_clear();
    }
    bad |= comm_barrier(c) != GRPO_OK;
    free(a);
    free(b);
    backend_free(be);
    if (bad) fprintf(stderr, "rank %d of %d: a collective gave a wrong result\n", r, W);
    return bad;
}

/* Every rank loops over all-reduces; rank 1 kills itself with SIGKILL after a few. */
static int worker_die(void) {
    comm *c = comm_world();
    backend *be = backend_cpu_create();
    float x[64] = {0};
    for (int it = 0;; it++) {
        if (comm_rank(c) == 1 && it == 20) raise(SIGKILL);
        if (comm_allreduce_f32(c, be, x, 64, COMM_SUM) != GRPO_OK) return 1;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
}

static int have_mpirun(void) { return system("command -v mpirun > /dev/null 2>&1") == 0; }

#define MPIRUN "env LSAN_OPTIONS=detect_leaks=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " \
               "mpirun --oversubscribe --mca btl self,vader --bind-to none"

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--collectives")) return worker_collectives();
    if (argc == 2 && !strcmp(argv[1], "--die")) return worker_die();

    /* one process: rank 0 of 1, collectives are the identity */
    comm *c = comm_world();
    CHECK_INT(0, comm_rank(c));
    CHECK_INT(1, comm_size(c));
    CHECK_STR("single", comm_transport(c, NULL));
    CHECK_INT(0, worker_collectives());
    CHECK_INT(0, (long)comm_get_stats(c).model_bytes);

    if (!comm_have_mpi()) TEST_SKIP("built without MPI (GRPO_MPI=OFF or no MPI found)");
    if (!have_mpirun()) TEST_SKIP("no mpirun on PATH");
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(len > 0);
    if (len <= 0) TEST_MAIN_END();
    self[len] = 0;
    char cmd[2 * PATH_MAX];
    for (int world = 2; world <= 4; world *= 2) {
        snprintf(cmd, sizeof cmd, MPIRUN " -np %d %s --collectives", world, self);
        CHECK_INT(0, system(cmd));
    }

    /* a rank that dies: the job ends within the bound, and the messages name rank 1 */
    char log[PATH_MAX];
    snprintf(log, sizeof log, "/tmp/grpo_test_comm_%d.log", (int)getpid());
    snprintf(cmd, sizeof cmd, "timeout 60 " MPIRUN " -np 3 %s --die > %s 2>&1", self, log);
    double t0 = (double)time(NULL);
    int rc = system(cmd);
    double took = (double)time(NULL) - t0;
    printf("killed rank: job ended with status %d after %.0f s\n", rc, took);
    CHECK(rc != 0);
    CHECK(took < 30);
    FILE *f = fopen(log, "r");
    char text[16384] = {0};
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
    }
    printf("---- mpirun output ----\n%s-----------------------\n", text);
    CHECK(strstr(text, "rank 1") != NULL);
    CHECK(strstr(text, "gone on this node: rank 1") != NULL);   /* our message, beside mpirun's */
    unlink(log);
    TEST_MAIN_END();
}
