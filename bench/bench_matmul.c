/* bench_matmul: GFLOP/s of the CPU backend's matmul against cblas_sgemm called
 * directly on the same shapes and buffers. The backend adds argument checks and one
 * indirect call, so the two should match; "peak" is the best BLAS figure of this run.
 *
 *   bench_matmul [--reps N] [--quick]
 * Threads: OpenBLAS's (OPENBLAS_NUM_THREADS). Prints a table to stdout. */
#include "core/backend.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *what;   /* the layer the shape comes from */
    int M, N, K, trans_a, trans_b;
} shape;

static const shape shapes[] = {
    {"square", 256, 256, 256, 0, 0},
    {"square", 512, 512, 512, 0, 0},
    {"square", 1024, 1024, 1024, 0, 0},
    {"square", 2048, 2048, 2048, 0, 0},
    {"square, B^T", 1024, 1024, 1024, 0, 1},
    /* Linear y = x W^T, T = 4096 tokens (backend.h's convention: trans_b = 1). */
    {"attn proj 1024->1024", 4096, 1024, 1024, 0, 1},
    {"mlp up 1024->4096", 4096, 4096, 1024, 0, 1},
    {"mlp down 4096->1024", 4096, 1024, 4096, 0, 1},
    /* Its backward: dx = dy W (no transpose), dW += dy^T x (trans_a = 1). */
    {"mlp up, dx", 4096, 1024, 4096, 0, 0},
    {"mlp up, dW", 4096, 1024, 4096, 1, 0},
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xFFFF) / 65536.0f - 0.5f;
    }
}

static void cpu_model(char *buf, size_t size) {
    snprintf(buf, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            snprintf(buf, size, "%s", colon + 2);
            buf[strcspn(buf, "\n")] = 0;
            break;
        }
    }
    fclose(f);
}

int main(int argc, char **argv) {
    int reps = 5, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else {
            fprintf(stderr, "usage: %s [--reps N] [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    backend *be = backend_cpu_create();
    if (!be) {
        fprintf(stderr, "bench_matmul: %s\n", grpo_error_message());
        return 1;
    }
    char cpu[256], date[64];
    cpu_model(cpu, sizeof cpu);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d", localtime(&t));
    printf("# bench_matmul  %s  %s  OpenBLAS %s, %d threads, best of %d\n", date, cpu, openblas_get_config(),
           openblas_get_num_threads(), reps);
    printf("%-22s %5s %5s %5s %2s %2s %12s %12s %8s %8s\n", "shape", "M", "N", "K", "tA", "tB", "backend GF/s",
           "cblas GF/s", "ratio", "of peak");

    int n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
    double backend_gf[sizeof shapes / sizeof shapes[0]] = {0}, blas_gf[sizeof shapes / sizeof shapes[0]] = {0};
    double peak = 0;
    for (int s = 0; s < n_shapes; s++) {
        const shape *sh = &shapes[s];
        if (quick && (double)sh->M * sh->N * sh->K > 1100.0 * 1024 * 1024) continue;
        int lda = sh->trans_a ? sh->M : sh->K, ldb = sh->trans_b ? sh->K : sh->N, ldc = sh->N;
        size_t na = (size_t)sh->M * sh->K, nb = (size_t)sh->K * sh->N, nc = (size_t)sh->M * sh->N;
        float *A = be->alloc(be, na * sizeof(float)), *B = be->alloc(be, nb * sizeof(float));
        float *C = be->alloc(be, nc * sizeof(float));
        if (!A || !B || !C) {
            fprintf(stderr, "bench_matmul: out of memory for %dx%dx%d\n", sh->M, sh->N, sh->K);
            return 1;
        }
        fill(A, na, 1u + (unsigned)s);
        fill(B, nb, 7u + (unsigned)s);
        double flops = 2.0 * sh->M * sh->N * sh->K;
        double best_be = 1e30, best_blas = 1e30;
        /* One untimed call each warms caches and OpenBLAS's thread pool; then the two
         * alternate so drifting clocks or neighbours hit both alike. */
        be->matmul(be, sh->trans_a, sh->trans_b, sh->M, sh->N, sh->K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        for (int r = 0; r < reps; r++) {
            double t0 = now_seconds();
            be->matmul(be, sh->trans_a, sh->trans_b, sh->M, sh->N, sh->K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
            double t1 = now_seconds();
            cblas_sgemm(CblasRowMajor, sh->trans_a ? CblasTrans : CblasNoTrans,
                        sh->trans_b ? CblasTrans : CblasNoTrans, sh->M, sh->N, sh->K, 1.0f, A, lda, B, ldb, 0.0f, C,
                        ldc);
            double t2 = now_seconds();
            if (t1 - t0 < best_be) best_be = t1 - t0;
            if (t2 - t1 < best_blas) best_blas = t2 - t1;
        }
        backend_gf[s] = flops / best_be / 1e9;
        blas_gf[s] = flops / best_blas / 1e9;
        if (blas_gf[s] > peak) peak = blas_gf[s];
        be->free(be, A);
        be->free(be, B);
        be->free(be, C);
    }
    for (int s = 0; s < n_shapes; s++) {
        const shape *sh = &shapes[s];
        if (blas_gf[s] == 0) continue;
        printf("%-22s %5d %5d %5d %2d %2d %12.1f %12.1f %8.2f %7.0f%%\n", sh->what, sh->M, sh->N, sh->K, sh->trans_a,
               sh->trans_b, backend_gf[s], blas_gf[s], backend_gf[s] / blas_gf[s], 100.0 * backend_gf[s] / peak);
    }
    printf("# peak = best cblas_sgemm figure above: %.1f GFLOP/s\n", peak);
    backend_free(be);
    return 0;
}
