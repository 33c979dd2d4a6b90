/* bench_cuda_decode: the CUDA paged_attention op for MLA's absorbed decode at
 * DeepSeek-V3's sizes (Hq = 128 heads on one latent kv head, rows of kv_lora_rank + rope =
 * 576 floats, values the first 512 of them), one query token per sequence, as GB/s of
 * cache read against the device's peak memory bandwidth. The bytes counted are the
 * least the op must read: every cached row once (N x ctx x 576 x 4) plus q and out.
 * Peak: 2 x memory clock x bus width (cudaDevAttrMemoryClockRate / GlobalMemoryBusWidth),
 * and beside it a device-to-device copy measured in the same run (read + write bytes).
 *
 *   bench_cuda_decode [--max-gib G] [--min-seconds S]
 * Without a CUDA device it prints why and exits 0. Prints a table to stdout. */
#include "core/backend.h"
#include "core/status.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef GRPO_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

enum { HQ = 128, RANK = 512, ROPE = 64, ROW = RANK + ROPE, BLOCK = 64 };

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Peak bandwidth from the device's attributes in bytes/s; 0 when they are not reported. */
static double attribute_peak(void) {
#ifdef GRPO_HAVE_CUDA
    int dev = 0, clock_khz = 0, bus_bits = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev) != cudaSuccess) clock_khz = 0;
    if (cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev) != cudaSuccess) bus_bits = 0;
    cudaGetLastError();
    return 2.0 * clock_khz * 1e3 * (bus_bits / 8.0);   /* double data rate */
#else
    return 0;
#endif
}

/* Device-to-device copy rate (bytes read + written per second) over `bytes`. */
static double measured_copy_rate(backend *be, size_t bytes) {
    void *a = be->alloc(be, bytes), *b = be->alloc(be, bytes);
    double rate = 0;
    if (a && b) {
        be->copy(be, b, a, bytes);
        be->synchronize(be);
        int reps = 0;
        double t0 = now_seconds(), t;
        do {
            be->copy(be, b, a, bytes);
            reps++;
            be->synchronize(be);
            t = now_seconds() - t0;
        } while (t < 0.3);
        rate = 2.0 * (double)bytes * reps / t;
    }
    be->free(be, a);
    be->free(be, b);
    return rate;
}

int main(int argc, char **argv) {
    double max_gib = 16, min_seconds = 0.2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--max-gib") && i + 1 < argc) max_gib = atof(argv[++i]);
        else if (!strcmp(argv[i], "--min-seconds") && i + 1 < argc) min_seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cuda_decode [--max-gib G] [--min-seconds S]\n");
            return 2;
        }
    }
    char desc[2048];
    backend_cuda_describe(desc, sizeof desc);
    if (backend_cuda_device_count() == 0) {
        printf("bench_cuda_decode: no CUDA device, nothing to measure (%s)\n", desc);
        return 0;
    }
    backend *be = backend_cuda_create(0);
    if (!be) {
        printf("bench_cuda_decode: %s\n", grpo_error_message());
        return 0;
    }
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
    printf("%s\n%s\n", date, desc);

    static const int ctxs[] = {1024, 4096, 16384, 32768};
    static const int Ns[] = {1, 8, 32, 128, 256};
    const size_t budget = (size_t)(max_gib * 1073741824.0);
    size_t most_rows = 0;   /* the cache of the largest case within the budget */
    for (size_t c = 0; c < sizeof ctxs / sizeof *ctxs; c++)
        for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++) {
            size_t rows = (size_t)Ns[n] * ctxs[c];
            if (rows * ROW * sizeof(float) <= budget && rows > most_rows) most_rows = rows;
        }
    const size_t max_blocks_all = most_rows / BLOCK;

    const double peak_attr = attribute_peak();
    const double peak_copy = measured_copy_rate(be, (size_t)1 << 30);
    const double peak = peak_attr > 0 ? peak_attr : peak_copy;
    printf("peak bandwidth: %.0f GB/s from the device attributes, %.0f GB/s measured copying 1 GiB "
           "device to device; percentages below are of %s\n",
           peak_attr / 1e9, peak_copy / 1e9, peak_attr > 0 ? "the attribute peak" : "the measured copy");

    float *cache = be->alloc(be, most_rows * ROW * sizeof(float));
    /* random rows (uniform in [-1, 1)) uploaded once and copied across the cache */
    const size_t chunk = (size_t)1 << 22;
    float *host = malloc(chunk * sizeof *host);
    int32_t *tables = malloc(max_blocks_all * sizeof *tables);
    int32_t *seq_of = malloc(256 * sizeof *seq_of), *ctx_len = malloc(256 * sizeof *ctx_len);
    float *q = be->alloc(be, (size_t)256 * HQ * ROW * sizeof(float));
    float *out = be->alloc(be, (size_t)256 * HQ * RANK * sizeof(float));
    int32_t *d_tables = be->alloc(be, max_blocks_all * sizeof(int32_t));
    int32_t *d_seq = be->alloc(be, 256 * sizeof(int32_t)), *d_ctx = be->alloc(be, 256 * sizeof(int32_t));
    if (!cache || !host || !tables || !seq_of || !ctx_len || !q || !out || !d_tables || !d_seq || !d_ctx) {
        printf("bench_cuda_decode: out of memory for a %.1f GiB cache: %s\n",
               (double)most_rows * ROW * 4 / 1073741824.0, grpo_error_message());
        return 1;
    }
    uint32_t state = 12345;
    for (size_t i = 0; i < chunk; i++) {
        state = state * 1664525u + 1013904223u;
        host[i] = (float)(state >> 8) / 8388608.0f - 1.0f;
    }
    const size_t cache_floats = most_rows * ROW;
    be->to_device(be, cache, host, (chunk < cache_floats ? chunk : cache_floats) * sizeof(float));
    for (size_t off = chunk; off < cache_floats; off += chunk)
        be->copy(be, cache + off, cache, (cache_floats - off < chunk ? cache_floats - off : chunk) * sizeof(float));
    be->to_device(be, q, host, chunk * sizeof(float));   /* q: [256, HQ, ROW] is longer than chunk */
    be->synchronize(be);

    const backend_paged_layout row = {(size_t)BLOCK * ROW, 0, ROW, 1, BLOCK};
    const float scale = 1.0f / 13.856406f;   /* 1 / sqrt(192), V3's qk_nope + qk_rope head size */
    printf("\n%6s %5s %12s %10s %10s %8s\n", "ctx", "N", "cache MiB", "us/call", "GB/s", "% peak");
    for (size_t c = 0; c < sizeof ctxs / sizeof *ctxs; c++)
        for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++) {
            const int ctx = ctxs[c], N = Ns[n], max_blocks = ctx / BLOCK;
            const size_t rows = (size_t)N * ctx;
            if (rows > most_rows) {
                printf("%6d %5d %12s   skipped (cache over --max-gib %.0f)\n", ctx, N, "-", max_gib);
                continue;
            }
            /* sequence s gets blocks of a random permutation of the whole cache's blocks */
            const size_t nb = most_rows / BLOCK;
            int32_t *perm = malloc(nb * sizeof *perm);
            if (!perm) return 1;
            for (size_t b = 0; b < nb; b++) perm[b] = (int32_t)b;
            for (size_t b = nb - 1; b > 0; b--) {
                state = state * 1664525u + 1013904223u;
                size_t r = state % (b + 1);
                int32_t t = perm[b];
                perm[b] = perm[r];
                perm[r] = t;
            }
            for (size_t i = 0; i < (size_t)N * max_blocks; i++) tables[i] = perm[i];
            free(perm);
            for (int i = 0; i < N; i++) {
                seq_of[i] = i;
                ctx_len[i] = ctx;
            }
            be->to_device(be, d_tables, tables, (size_t)N * max_blocks * sizeof(int32_t));
            be->to_device(be, d_seq, seq_of, N * sizeof(int32_t));
            be->to_device(be, d_ctx, ctx_len, N * sizeof(int32_t));
            be->paged_attention(be, out, q, cache, &row, cache, &row, d_tables, max_blocks, d_seq, d_ctx, N, HQ, 1, ROW,
                                RANK, scale);
            be->synchronize(be);
            int reps = 0;
            double t0 = now_seconds(), t;
            do {
                be->paged_attention(be, out, q, cache, &row, cache, &row, d_tables, max_blocks, d_seq, d_ctx, N, HQ, 1,
                                    ROW, RANK, scale);
                reps++;
                be->synchronize(be);
                t = now_seconds() - t0;
            } while (t < min_seconds || reps < 3);
            const double per = t / reps;
            const double bytes = (double)rows * ROW * 4 + (double)N * HQ * (ROW + RANK) * 4;
            printf("%6d %5d %12.1f %10.1f %10.1f %7.1f%%\n", ctx, N, (double)rows * ROW * 4 / 1048576.0, per * 1e6,
                   bytes / per / 1e9, 100.0 * bytes / per / peak);
        }
    be->free(be, cache);
    be->free(be, q);
    be->free(be, out);
    be->free(be, d_tables);
    be->free(be, d_seq);
    be->free(be, d_ctx);
    free(host);
    free(tables);
    free(seq_of);
    free(ctx_len);
    backend_free(be);
    return 0;
}
