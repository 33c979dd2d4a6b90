/* Single-precision matrix product for x86-64 CPUs with AVX-512 (x86-64-v4), which
 * cpu_matmul uses there instead of OpenBLAS: the OpenBLAS a distribution ships may not
 * know a newer CPU and run its AVX2 kernels (half the FMA width of a Zen 5 core: ~115
 * against ~210 GFLOP/s a core measured on an EPYC of family 1Ah), or be pinned to them
 * by OPENBLAS_CORETYPE. Blocked like GotoBLAS/BLIS (Goto & van de Geijn 2008, "Anatomy
 * of high-performance matrix multiplication"; Van Zee & van de Geijn 2015, "BLIS"): op(B)
 * is packed once per product into strips of GEMM_NR columns shared by the threads; each
 * task packs GEMM_MC x GEMM_KC blocks of its own rows of op(A) into strips of GEMM_MR
 * rows, and a register-blocked GEMM_MR x GEMM_NR kernel multiplies strip pairs. Every
 * element of C is summed in the same order whatever the number of threads. */
#include "core/cpu/cpu_impl.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define CPU_GEMM_BUILT 1
#define GEMM_TARGET __attribute__((target("arch=x86-64-v4")))
#else
#define CPU_GEMM_BUILT 0
#endif

/* Register tile: 12 rows x 32 columns = 24 accumulators of 16 floats, out of the 32
 * vector registers of AVX-512. Cache blocks: a GEMM_KC x GEMM_NR strip of op(B) (32 KiB)
 * stays in L1 while the kernel runs down the GEMM_MR x GEMM_KC strips of a block of
 * op(A) (96 KiB) held in L2; the packed op(B) (up to 16 MiB) sits in L2/L3. GEMM_MC of
 * 48 to 96 rows ran ~5% faster than 144 or 240 on the dense-10m shapes (Zen 5). */
#define GEMM_MR 12
#define GEMM_NR 32
#define GEMM_KC 256
#define GEMM_MC 96

/* Below these sizes OpenBLAS runs the product (no packing to amortise). */
#define GEMM_MIN_M 8
#define GEMM_MIN_N 32
#define GEMM_MIN_K 16
/* Flops per thread below which a product runs on fewer threads. */
#define GEMM_FLOPS_PER_THREAD (4.0 * 1024 * 1024)
/* The most floats of op(B) packed at once (16 MiB): all of K, as many columns as fit. */
#define GEMM_PANEL_FLOATS (4u << 20)
/* Rows of op(B) per packing job (a multiple of 4). */
#define GEMM_PACK_ROWS 32
/* Tasks (blocks of rows of C) per thread, so a thread slowed down is covered. */
#define GEMM_TASKS_PER_THREAD 4

#if CPU_GEMM_BUILT

typedef float gemm_v16 __attribute__((vector_size(64)));

#define GLOAD(v, p) memcpy(&(v), (p), sizeof(gemm_v16))
#define GSTORE(p, v) memcpy((p), &(v), sizeof(gemm_v16))

/* Ap: [kc][GEMM_MR] (one strip), Bp: [kc][GEMM_NR] (one strip).
 * C[r][c] = acc + beta * C[r][c] for r < GEMM_MR, c < GEMM_NR; beta == 0 ignores C. */
GEMM_TARGET static void gemm_kernel(int kc, const float *restrict Ap, const float *restrict Bp, float *restrict C,
                                    size_t ldc, float beta) {
    gemm_v16 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    gemm_v16 c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0}, c60 = {0}, c61 = {0}, c70 = {0}, c71 = {0};
    gemm_v16 c80 = {0}, c81 = {0}, c90 = {0}, c91 = {0}, ca0 = {0}, ca1 = {0}, cb0 = {0}, cb1 = {0};
    for (int r = 0; r < GEMM_MR; r++) {   /* C's lines arrive while the sums run */
        __builtin_prefetch(C + (size_t)r * ldc, 1, 3);
        __builtin_prefetch(C + (size_t)r * ldc + 16, 1, 3);
    }
    for (int p = 0; p < kc; p++, Ap += GEMM_MR, Bp += GEMM_NR) {
        gemm_v16 b0, b1;
        __builtin_prefetch(Ap + 8 * GEMM_MR, 0, 3);   /* op(A) streams from L2 */
        GLOAD(b0, Bp);
        GLOAD(b1, Bp + 16);
#define GEMM_ROW(r, x0, x1) \
        do {                \
            float a = Ap[r]; \
            x0 += a * b0;   \
            x1 += a * b1;   \
        } while (0)
        GEMM_ROW(0, c00, c01);
        GEMM_ROW(1, c10, c11);
        GEMM_ROW(2, c20, c21);
        GEMM_ROW(3, c30, c31);
        GEMM_ROW(4, c40, c41);
        GEMM_ROW(5, c50, c51);
        GEMM_ROW(6, c60, c61);
        GEMM_ROW(7, c70, c71);
        GEMM_ROW(8, c80, c81);
        GEMM_ROW(9, c90, c91);
        GEMM_ROW(10, ca0, ca1);
        GEMM_ROW(11, cb0, cb1);
#undef GEMM_ROW
    }
#define GEMM_STORE(r, x0, x1)                      \
    do {                                           \
        float *c = C + (size_t)(r) * ldc;          \
        if (beta != 0.0f) {                        \
            gemm_v16 o0, o1;                       \
            GLOAD(o0, c);                          \
            GLOAD(o1, c + 16);                     \
            x0 += beta * o0;                       \
            x1 += beta * o1;                       \
        }                                          \
        GSTORE(c, x0);                             \
        GSTORE(c + 16, x1);                        \
    } while (0)
    GEMM_STORE(0, c00, c01);
    GEMM_STORE(1, c10, c11);
    GEMM_STORE(2, c20, c21);
    GEMM_STORE(3, c30, c31);
    GEMM_STORE(4, c40, c41);
    GEMM_STORE(5, c50, c51);
    GEMM_STORE(6, c60, c61);
    GEMM_STORE(7, c70, c71);
    GEMM_STORE(8, c80, c81);
    GEMM_STORE(9, c90, c91);
    GEMM_STORE(10, ca0, ca1);
    GEMM_STORE(11, cb0, cb1);
#undef GEMM_STORE
}

/* A partial tile (rows < GEMM_MR or cols < GEMM_NR): the kernel writes a full tile into
 * `tile`, and the valid corner goes to C. */
GEMM_TARGET static void gemm_kernel_edge(int kc, const float *Ap, const float *Bp, float *C, size_t ldc, float beta,
                                         int rows, int cols, float *tile) {
    gemm_kernel(kc, Ap, Bp, tile, GEMM_NR, 0.0f);
    for (int r = 0; r < rows; r++) {
        float *c = C + (size_t)r * ldc;
        const float *t = tile + (size_t)r * GEMM_NR;
        if (beta == 0.0f)
            for (int j = 0; j < cols; j++) c[j] = t[j];
        else
            for (int j = 0; j < cols; j++) c[j] = t[j] + beta * c[j];
    }
}

typedef float gemm_v8 __attribute__((vector_size(32)));
typedef float gemm_v4 __attribute__((vector_size(16)));
typedef int32_t gemm_i4 __attribute__((vector_size(16)));

/* dst[k * ldd + i] = alpha * src[i][k] for i, k < 4: four rows of 4 floats transposed in
 * registers (rows src[i] anywhere). */
GEMM_TARGET static inline void gemm_transpose4(float *dst, size_t ldd, const float *s0, const float *s1,
                                               const float *s2, const float *s3, float alpha) {
    gemm_v4 r0, r1, r2, r3;
    memcpy(&r0, s0, sizeof r0);
    memcpy(&r1, s1, sizeof r1);
    memcpy(&r2, s2, sizeof r2);
    memcpy(&r3, s3, sizeof r3);
    gemm_v4 t0 = __builtin_shuffle(r0, r1, (gemm_i4){0, 4, 1, 5});
    gemm_v4 t1 = __builtin_shuffle(r0, r1, (gemm_i4){2, 6, 3, 7});
    gemm_v4 t2 = __builtin_shuffle(r2, r3, (gemm_i4){0, 4, 1, 5});
    gemm_v4 t3 = __builtin_shuffle(r2, r3, (gemm_i4){2, 6, 3, 7});
    gemm_v4 c0 = alpha * __builtin_shuffle(t0, t2, (gemm_i4){0, 1, 4, 5});
    gemm_v4 c1 = alpha * __builtin_shuffle(t0, t2, (gemm_i4){2, 3, 6, 7});
    gemm_v4 c2 = alpha * __builtin_shuffle(t1, t3, (gemm_i4){0, 1, 4, 5});
    gemm_v4 c3 = alpha * __builtin_shuffle(t1, t3, (gemm_i4){2, 3, 6, 7});
    memcpy(dst, &c0, sizeof c0);
    memcpy(dst + ldd, &c1, sizeof c1);
    memcpy(dst + 2 * ldd, &c2, sizeof c2);
    memcpy(dst + 3 * ldd, &c3, sizeof c3);
}

/* Packs rows [i0, i0 + mc) x columns [p0, p0 + kc) of op(A) (times alpha) into strips of
 * GEMM_MR rows: Ap[s][p][r] = alpha op(A)[i0 + s GEMM_MR + r][p0 + p], zero past mc. */
GEMM_TARGET static void gemm_pack_a(float *restrict Ap, const float *restrict A, size_t lda, int trans_a, int i0,
                                    int mc, int p0, int kc, float alpha) {
    if (trans_a) {   /* op(A)[i][p] = A[p][i]: each row of A read once, into every strip */
        for (int p = 0; p < kc; p++) {
            const float *src = A + (size_t)(p0 + p) * lda + i0;
            for (int s = 0; s < mc; s += GEMM_MR) {
                int rows = mc - s < GEMM_MR ? mc - s : GEMM_MR;
                float *dst = Ap + (size_t)s * kc + (size_t)p * GEMM_MR;
                if (rows == GEMM_MR) {
                    gemm_v8 x;
                    gemm_v4 y;
                    memcpy(&x, src + s, sizeof x);
                    memcpy(&y, src + s + 8, sizeof y);
                    x *= alpha;
                    y *= alpha;
                    memcpy(dst, &x, sizeof x);
                    memcpy(dst + 8, &y, sizeof y);
                } else {
                    for (int r = 0; r < GEMM_MR; r++) dst[r] = r < rows ? alpha * src[s + r] : 0.0f;
                }
            }
        }
        return;
    }
    /* op(A)[i][p] = A[i][p]: GEMM_MR rows read along p, 4 x 4 blocks transposed */
    for (int s = 0; s < mc; s += GEMM_MR) {
        int rows = mc - s < GEMM_MR ? mc - s : GEMM_MR;
        float *dst = Ap + (size_t)s * kc;
        const float *a[GEMM_MR];
        for (int r = 0; r < GEMM_MR; r++) a[r] = A + (size_t)(i0 + s + (r < rows ? r : 0)) * lda + p0;
        int p = 0;
        if (rows == GEMM_MR)
            for (; p + 4 <= kc; p += 4)
                for (int r = 0; r < GEMM_MR; r += 4)
                    gemm_transpose4(dst + (size_t)p * GEMM_MR + r, GEMM_MR, a[r] + p, a[r + 1] + p, a[r + 2] + p,
                                    a[r + 3] + p, alpha);
        for (; p < kc; p++)
            for (int r = 0; r < GEMM_MR; r++) dst[(size_t)p * GEMM_MR + r] = r < rows ? alpha * a[r][p] : 0.0f;
    }
}

/* Packs rows [p0 + q0, p0 + q1) of a kc-deep block of op(B) (columns [j0, j0 + nc)) into
 * Bp, the block's strips: Bp[s][p][c] = op(B)[p0 + p][j0 + s GEMM_NR + c], zero past nc.
 * Without transpose each row of B is read once, across all strips; with it (op(B) =
 * B^T, the Linear layer's weight) 4 x 4 blocks are transposed in registers. */
GEMM_TARGET static void gemm_pack_b(float *restrict Bp, const float *restrict B, size_t ldb, int trans_b, int p0,
                                    int kc, int q0, int q1, int j0, int nc) {
    int nstrips = (nc + GEMM_NR - 1) / GEMM_NR;
    if (!trans_b) {
        for (int p = q0; p < q1; p++) {
            const float *src = B + (size_t)(p0 + p) * ldb + j0;
            for (int s = 0; s < nstrips; s++) {
                int cols = nc - s * GEMM_NR < GEMM_NR ? nc - s * GEMM_NR : GEMM_NR;
                float *dst = Bp + ((size_t)s * kc + p) * GEMM_NR;
                if (cols == GEMM_NR) {
                    memcpy(dst, src + s * GEMM_NR, GEMM_NR * sizeof(float));
                } else {
                    int c = 0;
                    for (; c < cols; c++) dst[c] = src[s * GEMM_NR + c];
                    for (; c < GEMM_NR; c++) dst[c] = 0.0f;
                }
            }
        }
        return;
    }
    for (int s = 0; s < nstrips; s++) {
        int cols = nc - s * GEMM_NR < GEMM_NR ? nc - s * GEMM_NR : GEMM_NR;
        float *strip = Bp + (size_t)s * kc * GEMM_NR;
        const float *b = B + (size_t)(j0 + s * GEMM_NR) * ldb + p0;   /* row c of B is column c */
        int c = 0;
        for (; c + 4 <= cols; c += 4) {
            const float *b0 = b + (size_t)c * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
            int p = q0;
            for (; p + 4 <= q1; p += 4)
                gemm_transpose4(strip + (size_t)p * GEMM_NR + c, GEMM_NR, b0 + p, b1 + p, b2 + p, b3 + p, 1.0f);
            for (; p < q1; p++) {
                float *d = strip + (size_t)p * GEMM_NR + c;
                d[0] = b0[p], d[1] = b1[p], d[2] = b2[p], d[3] = b3[p];
            }
        }
        for (; c < GEMM_NR; c++)
            for (int p = q0; p < q1; p++) strip[(size_t)p * GEMM_NR + c] = c < cols ? b[(size_t)c * ldb + p] : 0.0f;
    }
}

typedef struct {
    int trans_a, trans_b, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    size_t lda, ldb, ldc;
    int task_rows;   /* rows of C per task (a multiple of GEMM_MR) */
    float *panel;    /* op(B)[:, jc : jc + nc] packed, [K][nc] in strips; shared */
    atomic_int packed;   /* packing jobs finished so far, all panels counted */
} gemm_job;

/* C[m0:m1, jc:jc+nc] = op(A)[m0:m1, pc:pc+kc] Bp + beta C, Bp: [kc][nc] packed in strips;
 * C points at column jc of row 0. */
GEMM_TARGET static void gemm_rows(const gemm_job *g, float *C, float beta, const float *Bp, int m0, int m1, int nc,
                                  int pc, int kc, float *Ap, float *tile) {
    size_t ldc = g->ldc;
    for (int ic = m0; ic < m1; ic += GEMM_MC) {
        int mc = m1 - ic < GEMM_MC ? m1 - ic : GEMM_MC;
        gemm_pack_a(Ap, g->A, g->lda, g->trans_a, ic, mc, pc, kc, g->alpha);
        for (int jr = 0; jr < nc; jr += GEMM_NR) {
            int cols = nc - jr < GEMM_NR ? nc - jr : GEMM_NR;
            const float *Bs = Bp + (size_t)jr * kc;
            for (int ir = 0; ir < mc; ir += GEMM_MR) {
                int rows = mc - ir < GEMM_MR ? mc - ir : GEMM_MR;
                float *c = C + (size_t)(ic + ir) * ldc + jr;
                const float *As = Ap + (size_t)ir * kc;
                if (rows == GEMM_MR && cols == GEMM_NR)
                    gemm_kernel(kc, As, Bs, c, ldc, beta);
                else
                    gemm_kernel_edge(kc, As, Bs, c, ldc, beta, rows, cols, tile);
            }
        }
    }
}

/* Floats of a [K][nc] panel packed in strips (nc rounded up to whole strips). */
static size_t gemm_panel_floats(int K, int nc) { return (size_t)K * (size_t)((nc + GEMM_NR - 1) / GEMM_NR * GEMM_NR); }

/* Columns of op(B) packed at once: the panel holds all of K for them. */
static int gemm_panel_cols(int K, int N) {
    size_t cap = (size_t)GEMM_PANEL_FLOATS / (size_t)K / GEMM_NR * GEMM_NR;
    if (cap < GEMM_NR) cap = GEMM_NR;
    return N < (int)cap ? N : (int)cap;
}

/* Rows [m0, m1) of C against the packed panel of columns [jc, jc + nc), all of K. */
GEMM_TARGET static void gemm_task(const gemm_job *g, int m0, int m1, int jc, int nc, size_t stride, float *Ap,
                                  float *tile) {
    for (int pc = 0; pc < g->K; pc += GEMM_KC) {
        int kc = g->K - pc < GEMM_KC ? g->K - pc : GEMM_KC;
        gemm_rows(g, g->C + jc, pc == 0 ? g->beta : 1.0f, g->panel + (size_t)pc * stride, m0, m1, nc, pc, kc, Ap,
                  tile);
    }
}

/* Run by every thread of the team (or alone, outside any parallel region). For each
 * panel of op(B) (all of K, as many columns as fit): the threads pack its strips, then
 * take tasks of task_rows rows of C, each packing its own rows of op(A). Jobs and tasks
 * are handed out as threads come free, so a thread the OS puts aside for a while holds
 * up at most one of them; every element of C is summed in the same order however they
 * are handed out. A thread waiting for the others' packing yields its core (on a busy
 * machine the thread it waits for may be queued behind it); past the last panel the
 * team meets only at the end of the parallel region. */
GEMM_TARGET static void gemm_team(gemm_job *g, float *scratch) {
    float *Ap = scratch, *tile = Ap + (size_t)GEMM_MC * GEMM_KC;
    int ncols = gemm_panel_cols(g->K, g->N);
    int kblocks = (g->K + GEMM_KC - 1) / GEMM_KC;
    int ntasks = (g->M + g->task_rows - 1) / g->task_rows;
    /* Packing jobs: GEMM_PACK_ROWS rows of a kc-deep block, all its strips. */
    int chunks = (GEMM_KC + GEMM_PACK_ROWS - 1) / GEMM_PACK_ROWS, njobs = kblocks * chunks;
    int panels = 0;
    for (int jc = 0; jc < g->N; jc += ncols) {
        int nc = g->N - jc < ncols ? g->N - jc : ncols;
        size_t stride = gemm_panel_floats(1, nc);   /* floats per row of K */
        CPU_OMP(for schedule(dynamic, 1) nowait)
        for (int job = 0; job < njobs; job++) {
            int pc = job / chunks * GEMM_KC, q0 = job % chunks * GEMM_PACK_ROWS;
            int kc = g->K - pc < GEMM_KC ? g->K - pc : GEMM_KC;
            int q1 = q0 + GEMM_PACK_ROWS < kc ? q0 + GEMM_PACK_ROWS : kc;
            if (q0 < kc) gemm_pack_b(g->panel + (size_t)pc * stride, g->B, g->ldb, g->trans_b, pc, kc, q0, q1, jc, nc);
            atomic_fetch_add_explicit(&g->packed, 1, memory_order_release);
        }
        panels++;
        while (atomic_load_explicit(&g->packed, memory_order_acquire) < panels * njobs) sched_yield();
        if (jc + nc >= g->N) {
            CPU_OMP(for schedule(dynamic, 1) nowait)
            for (int task = 0; task < ntasks; task++) {
                int m0 = task * g->task_rows, m1 = m0 + g->task_rows < g->M ? m0 + g->task_rows : g->M;
                gemm_task(g, m0, m1, jc, nc, stride, Ap, tile);
            }
        } else {
            CPU_OMP(for schedule(dynamic, 1))
            for (int task = 0; task < ntasks; task++) {
                int m0 = task * g->task_rows, m1 = m0 + g->task_rows < g->M ? m0 + g->task_rows : g->M;
                gemm_task(g, m0, m1, jc, nc, stride, Ap, tile);
            }
            /* (the loop's implicit barrier: every task is done with the panel) */
        }
    }
}

static int gemm_usable = -1;

static void gemm_probe(void) {
    __builtin_cpu_init();
    const char *env = getenv("GRPO_CPU_GEMM");
    gemm_usable = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                  !(env && strcmp(env, "blas") == 0);
}

static pthread_once_t gemm_once = PTHREAD_ONCE_INIT;

int cpu_gemm_wanted(int M, int N, int K) {
    pthread_once(&gemm_once, gemm_probe);
    return gemm_usable && M >= GEMM_MIN_M && N >= GEMM_MIN_N && K >= GEMM_MIN_K;
}

void cpu_gemm(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    cpu_impl *impl = be->impl;
    int strips = (M + GEMM_MR - 1) / GEMM_MR;
    int nthreads = cpu_max_threads();
    int by_work = (int)(2.0 * M * N * K / GEMM_FLOPS_PER_THREAD) + 1;
    if (nthreads > by_work) nthreads = by_work;
    if (nthreads > strips) nthreads = strips;
    if (nthreads < 1) nthreads = 1;
    /* About GEMM_TASKS_PER_THREAD tasks a thread, at most GEMM_MC rows each. */
    int task_strips = (strips + nthreads * GEMM_TASKS_PER_THREAD - 1) / (nthreads * GEMM_TASKS_PER_THREAD);
    if (task_strips * GEMM_MR > GEMM_MC) task_strips = GEMM_MC / GEMM_MR;
    if (task_strips < 1) task_strips = 1;

    cpu_scratch_acquire(be, (size_t)GEMM_MC * GEMM_KC + (size_t)GEMM_MR * GEMM_NR);
    size_t panel = gemm_panel_floats(K, gemm_panel_cols(K, N));
    if (panel > impl->gemm_panel_floats) {
        free(impl->gemm_panel);
        void *p = NULL;
        GRPO_ASSERTF(posix_memalign(&p, 64, panel * sizeof(float)) == 0,
                     "cpu backend: out of memory for a %zu-float matmul panel", panel);
        impl->gemm_panel = p;
        impl->gemm_panel_floats = panel;
    }
    gemm_job g = {.trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
                  .A = A, .B = B, .C = C, .lda = (size_t)lda, .ldb = (size_t)ldb, .ldc = (size_t)ldc,
                  .task_rows = task_strips * GEMM_MR, .panel = impl->gemm_panel};
    atomic_init(&g.packed, 0);
    if (nthreads == 1) {
        gemm_team(&g, cpu_scratch_thread(be));
    } else {
        CPU_OMP(parallel num_threads(nthreads))
        gemm_team(&g, cpu_scratch_thread(be));
    }
    cpu_scratch_release(be);
}

#else /* !CPU_GEMM_BUILT */

int cpu_gemm_wanted(int M, int N, int K) {
    (void)M, (void)N, (void)K;
    return 0;
}

void cpu_gemm(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    (void)be, (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B,
        (void)ldb, (void)beta, (void)C, (void)ldc;
    GRPO_ASSERTF(0, "cpu_gemm: not built for this compiler/architecture");
}

#endif
