/* The CUDA attention kernels beside the CPU reference: training attention forward and
 * backward (core/cuda/cuda_attention.cu vs core/cpu/cpu_attention.c) and paged decoding,
 * cache_write_rows + paged_attention (core/cuda/cuda_decode.cu vs core/cpu/cpu_decode.c),
 * on random inputs drawn fresh each run (seed from time and pid, printed; GRPO_TEST_SEED
 * overrides it). Every output element is compared: GPU outputs start as NaN, so one left
 * unwritten fails. Tolerances, relative to the largest reference element:
 *   fp32 attention (forward out and lse, backward dq/dk/dv, paged out): 5e-5 -- both sides
 *   sum in FP32 in other orders (tiles of 32 vs 32/64, online softmax, split-K merges),
 *   and the gradients' P (dP - D) terms cancel;
 *   cache_write_rows: exact (a copy; the whole cache is compared, untouched slots too).
 * Two decode cases run again on a device memory pool (core/backend_pool.h), the path
 * where split-K's scratch comes from the pool.
 * The plain-C tiling arithmetic the kernels use (core/cuda/cuda_attention_plan.h) is checked
 * on the CPU on every machine. Without a CUDA device it then checks that asking for one
 * fails cleanly and skips (77). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/backend_pool.h"
#include "core/cuda/cuda_attention_plan.h"
#include "core/rng.h"
#include "core/status.h"
#include "tests/harness.h"

#define ATT_RTOL 5e-5
#define REL_FLOOR 1e-6

static uint64_t seed;
static uint64_t next_stream = 1;
static backend *cpu, *gpu;

/* n uniform numbers in [lo, hi), a fresh stream per call. Caller frees. */
static float *random_floats(size_t n, float lo, float hi) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    GRPO_ASSERT(h);
    uint64_t stream = next_stream++;
    for (size_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * rng_uniform(seed, stream, i);
    return h;
}

/* A uniform integer in [lo, hi]. */
static int random_int(int lo, int hi) {
    static uint64_t counter;
    return lo + (int)(rng_u32(seed, 0, counter++) % (uint32_t)(hi - lo + 1));
}

/* ---- the plan (plain C, no device) ---- */

static void test_plan_tiles(void) {
    for (int w = 1; w <= 600; w++) {
        int s = attn_pad_stride(w);
        CHECK_MSG(s % 2 == 1 && s >= w && s <= w + 1, "pad_stride(%d) = %d", w, s);
    }
    /* attn_visible against counting keys j <= i one by one */
    int bad = 0;
    for (int i = 0; i < 200; i++)
        for (int j0 = 0; j0 < 230; j0 += 32)
            for (int nk = 1; nk <= ATTN_TILE; nk++) {
                int n = 0;
                for (int j = j0; j < j0 + nk; j++) n += j <= i;
                if (n != attn_visible(i, j0, nk) && bad++ < 5)
                    fprintf(stderr, "attn_visible(%d, %d, %d) = %d, expected %d\n", i, j0, nk,
                            attn_visible(i, j0, nk), n);
            }
    CHECK_INT(0, bad);
    /* attn_causal_key_tiles: exactly the tiles holding a key some query of the tile sees */
    bad = 0;
    for (int rows = 1; rows <= ATTN_MAX_ROWS; rows *= 2)
        for (int T = 1; T < 300; T += 37)
            for (int i0 = 0; i0 < T; i0 += rows) {
                int nq = T - i0 < rows ? T - i0 : rows, want = 0;
                for (int kt = 0; kt * ATTN_TILE < T; kt++) {
                    int j0 = kt * ATTN_TILE, nk = T - j0 < ATTN_TILE ? T - j0 : ATTN_TILE, seen = 0;
                    for (int i = i0; i < i0 + nq; i++) seen |= attn_visible(i, j0, nk) > 0;
                    if (seen) want = kt + 1;
                }
                if (want != attn_causal_key_tiles(i0, nq) && bad++ < 5)
                    fprintf(stderr, "attn_causal_key_tiles(%d, %d) = %d, expected %d\n", i0, nq,
                            attn_causal_key_tiles(i0, nq), want);
            }
    CHECK_INT(0, bad);
}

typedef size_t (*smem_fn)(int, int, int, int);

static void check_pick(const char *what, smem_fn f, int Dqk, int Dv, int shared_kv, size_t limit, int most) {
    int rows = attn_pick_rows(f, Dqk, Dv, shared_kv, limit, most, 1);
    CHECK_MSG(rows >= 1, "%s Dqk=%d Dv=%d: nothing fits %zu bytes", what, Dqk, Dv, limit);
    if (rows < 1) return;
    CHECK_MSG(f(rows, Dqk, Dv, shared_kv) <= limit, "%s: %d rows need %zu > %zu bytes", what, rows,
              f(rows, Dqk, Dv, shared_kv), limit);
    CHECK_MSG(rows == most || f(2 * rows, Dqk, Dv, shared_kv) > limit, "%s: %d rows picked, %d would fit", what, rows,
              2 * rows);
}

static void test_plan_smem(void) {
    /* the forward's layout written out by hand: Qs 64x129, Ks 32x129, Vs 32x129, O 64x128,
     * P 64x32, m and l 64 each */
    CHECK_INT((64 * 129 + 32 * 129 + 32 * 129 + 64 * 128 + 64 * 32 + 128) * 4, attn_forward_smem(64, 128, 128, 0));
    CHECK_INT((64 * 129 + 32 * 129 + 64 * 128 + 64 * 32 + 128) * 4, attn_forward_smem(64, 128, 128, 1));
    /* the opt-in shared memory per block of an A100 (163 KiB) and an H100 (227 KiB) */
    const size_t limits[] = {163 * 1024, 227 * 1024};
    const int dims[][2] = {{1, 1}, {64, 64}, {128, 128}, {192, 128}, {256, 256}, {24, 40}};
    for (int li = 0; li < 2; li++)
        for (int d = 0; d < 6; d++) {
            check_pick("forward", attn_forward_smem, dims[d][0], dims[d][1], 0, limits[li], ATTN_MAX_ROWS);
            check_pick("dq", attn_dq_smem, dims[d][0], dims[d][1], 0, limits[li], ATTN_MAX_ROWS);
            check_pick("dkv", attn_dkv_smem, dims[d][0], dims[d][1], 0, limits[li], ATTN_MAX_ROWS);
        }
    /* MLA decode at V3's sizes: a block serves 32 heads on an H100, 16 on an A100 */
    CHECK_INT(32, attn_pick_rows(attn_forward_smem, 576, 512, 1, limits[1], 64, 1));
    CHECK_INT(16, attn_pick_rows(attn_forward_smem, 576, 512, 1, limits[0], 64, 1));
    check_pick("decode", attn_forward_smem, 576, 512, 1, limits[0], 64);
    check_pick("decode", attn_forward_smem, 256, 256, 0, limits[0], 8);
    check_pick("decode", attn_forward_smem, ATTN_MAX_DECODE_DIM, ATTN_MAX_DECODE_DIM, 1, limits[0], 64);
    CHECK_INT(0, attn_pick_rows(attn_forward_smem, 4096, 4096, 0, limits[1], 64, 1));
}

static void test_plan_splits(void) {
    const int sms[] = {108, 132};
    int bad = 0;
    for (int trial = 0; trial < 2000; trial++) {
        int sm = sms[trial % 2], max_ctx = random_int(1, 40000), chunk = 0;
        long blocks = random_int(1, 600);
        int splits = attn_decode_splits(blocks, sm, max_ctx, &chunk);
        int ok = splits >= 1 && splits <= ATTN_MAX_SPLITS && chunk % ATTN_TILE == 0 && chunk > 0 &&
                 (long)chunk * splits >= max_ctx && (long)chunk * (splits - 1) < max_ctx;
        if (blocks >= 2L * sm || max_ctx <= ATTN_SPLIT_MIN) ok &= splits == 1;
        if (splits > 1) ok &= chunk >= ATTN_SPLIT_MIN;
        /* every context up to max_ctx is cut into consecutive, disjoint, covering ranges */
        int ctx = random_int(1, max_ctx), next = 0;
        for (int s = 0; s < splits; s++) {
            int lo, hi;
            attn_split_range(s, chunk, ctx, &lo, &hi);
            if (lo < hi) {
                ok &= lo == next;
                next = hi;
            } else {
                ok &= lo == hi && hi == ctx;
            }
        }
        ok &= next == ctx;
        if (!ok && bad++ < 5)
            fprintf(stderr, "splits: blocks=%ld sm=%d max_ctx=%d ctx=%d -> %d x %d\n", blocks, sm, max_ctx, ctx,
                    splits, chunk);
    }
    CHECK_INT(0, bad);
}

/* Merging per-split softmax partials equals one softmax over all keys (double reference). */
static void test_plan_merge(void) {
    enum { DV = 8, MAXN = 3000 };
    float *s = random_floats(MAXN, -30, 30), *v = random_floats((size_t)MAXN * DV, -1, 1);
    for (int trial = 0; trial < 50; trial++) {
        int n = random_int(1, MAXN), splits = random_int(1, ATTN_MAX_SPLITS);
        int chunk = (n + splits - 1) / splits;
        double M = -INFINITY, Z = 0, ref[DV] = {0};
        for (int j = 0; j < n; j++) M = fmax(M, s[j]);
        for (int j = 0; j < n; j++) {
            double e = exp(s[j] - M);
            Z += e;
            for (int d = 0; d < DV; d++) ref[d] += e * v[(size_t)j * DV + d];
        }
        float lse[ATTN_MAX_SPLITS], o[ATTN_MAX_SPLITS][DV], w[ATTN_MAX_SPLITS];
        for (int p = 0; p < splits; p++) {
            int lo = p * chunk < n ? p * chunk : n, hi = (p + 1) * chunk < n ? (p + 1) * chunk : n;
            double m = -INFINITY, z = 0, acc[DV] = {0};
            for (int j = lo; j < hi; j++) m = fmax(m, s[j]);
            for (int j = lo; j < hi; j++) {
                double e = exp(s[j] - m);
                z += e;
                for (int d = 0; d < DV; d++) acc[d] += e * v[(size_t)j * DV + d];
            }
            lse[p] = hi > lo ? (float)(m + log(z)) : -INFINITY;
            for (int d = 0; d < DV; d++) o[p][d] = hi > lo ? (float)(acc[d] / z) : 0.0f;
        }
        float L = attn_merge_weights(lse, splits, w);
        CHECK_NEAR(M + log(Z), L, 1e-5, 1e-6);
        for (int d = 0; d < DV; d++) {
            double got = 0;
            for (int p = 0; p < splits; p++) got += (double)w[p] * o[p][d];
            CHECK_NEAR(ref[d] / Z, got, 1e-6, 1e-5);
        }
    }
    float lse[3] = {-INFINITY, -INFINITY, -INFINITY}, w[3] = {1, 1, 1};
    CHECK(attn_merge_weights(lse, 3, w) == -INFINITY);
    CHECK(w[0] == 0.0f && w[1] == 0.0f && w[2] == 0.0f);
    free(s);
    free(v);
}

/* attn_paged_offset finds what the CPU's cache_write_rows wrote, under several layouts. */
static void test_plan_paged_offset(void) {
    backend *be = backend_cpu_create();
    GRPO_ASSERT(be);
    for (int kind = 0; kind < 3; kind++) {
        const int bs = kind == 2 ? 5 : 16, H = kind == 1 ? 1 : 3, width = kind == 1 ? 24 : 20, nb = 12, seqs = 3;
        backend_paged_layout L;
        if (kind == 0) L = (backend_paged_layout){(size_t)bs * H * width * 2, (size_t)bs * width, 1, (size_t)bs, bs};
        else if (kind == 1) L = (backend_paged_layout){(size_t)bs * 40, 0, 40, 1, bs};
        else   /* position-major, every other number, a gap after each block */
            L = (backend_paged_layout){(size_t)bs * H * 2 * width + 7, (size_t)2 * width, (size_t)H * 2 * width, 2, bs};
        size_t floats = (size_t)nb * L.block_stride + 64;
        float *cache = calloc(floats, sizeof *cache);
        int32_t table[3][4], slots[3 * 4 * 16];
        int perm[12];
        for (int b = 0; b < nb; b++) perm[b] = b;
        for (int b = nb - 1; b > 0; b--) {
            int r = random_int(0, b), t = perm[b];
            perm[b] = perm[r];
            perm[r] = t;
        }
        for (int s = 0; s < seqs; s++)
            for (int b = 0; b < 4; b++) table[s][b] = perm[s * 4 + b];
        int n = 0;   /* every position of every sequence */
        for (int s = 0; s < seqs; s++)
            for (int p = 0; p < 4 * bs; p++) slots[n++] = table[s][p / bs] * bs + p % bs;
        float *src = random_floats((size_t)n * H * width, 1, 2);
        be->cache_write_rows(be, cache, &L, src, H, width, slots, n);
        int bad = 0;
        n = 0;
        for (int s = 0; s < seqs; s++)
            for (int p = 0; p < 4 * bs; p++, n++)
                for (int h = 0; h < H; h++) {
                    size_t off = attn_paged_offset(&L, table[s], p, h);
                    for (int d = 0; d < width; d++)
                        bad += cache[off + (size_t)d * L.dim_stride] != src[((size_t)n * H + h) * width + d];
                }
        CHECK_MSG(bad == 0, "layout %d: %d elements not where attn_paged_offset says", kind, bad);
        free(src);
        free(cache);
    }
    backend_free(be);
}

/* ---- GPU beside CPU ---- */

/* The same host data on both backends. */
typedef struct { float *c, *g; size_t n; } twin;

static twin twin_upload(const float *h, size_t n) {
    twin t = {cpu->alloc(cpu, n * sizeof(float)), gpu->alloc(gpu, n * sizeof(float)), n};
    GRPO_ASSERTF(t.c && t.g, "%s", grpo_error_message());
    cpu->to_device(cpu, t.c, h, n * sizeof(float));
    gpu->to_device(gpu, t.g, h, n * sizeof(float));
    return t;
}

static twin twin_random(size_t n, float lo, float hi) {
    float *h = random_floats(n, lo, hi);
    twin t = twin_upload(h, n);
    free(h);
    return t;
}

/* An output: random on the CPU side, NaN on the GPU side (an element left unwritten fails). */
static twin twin_output(size_t n) {
    twin t = twin_random(n, -1, 1);
    float *h = malloc((n ? n : 1) * sizeof *h);
    GRPO_ASSERT(h);
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    gpu->to_device(gpu, t.g, h, n * sizeof(float));
    free(h);
    return t;
}

static void twin_free(twin t) {
    cpu->free(cpu, t.c);
    gpu->free(gpu, t.g);
}

/* The CPU copy replaces the GPU copy. */
static void twin_cpu_to_gpu(twin t) {
    float *h = malloc((t.n ? t.n : 1) * sizeof *h);
    GRPO_ASSERT(h);
    cpu->to_host(cpu, h, t.c, t.n * sizeof(float));
    gpu->to_device(gpu, t.g, h, t.n * sizeof(float));
    free(h);
}

/* max|gpu - cpu| / max|cpu| over every element (NaN anywhere: infinite). */
static double twin_rel_err(twin t) {
    float *a = malloc((t.n ? t.n : 1) * sizeof *a), *b = malloc((t.n ? t.n : 1) * sizeof *b);
    GRPO_ASSERT(a && b);
    gpu->to_host(gpu, a, t.g, t.n * sizeof(float));
    cpu->to_host(cpu, b, t.c, t.n * sizeof(float));
    double err = harness_max_rel_err(a, b, (long)t.n, REL_FLOOR);
    free(a);
    free(b);
    return err;
}

static int twin_same_bits(twin t) {
    float *a = malloc((t.n ? t.n : 1) * sizeof *a), *b = malloc((t.n ? t.n : 1) * sizeof *b);
    GRPO_ASSERT(a && b);
    gpu->to_host(gpu, a, t.g, t.n * sizeof(float));
    cpu->to_host(cpu, b, t.c, t.n * sizeof(float));
    int same = memcmp(a, b, t.n * sizeof(float)) == 0;
    free(a);
    free(b);
    return same;
}

#define CHECK_TWIN(t, rtol, ...) do { double e_ = twin_rel_err(t); \
    CHECK_MSG(e_ <= (rtol), "rel err %.3g > %.1g: ", e_, (double)(rtol)); \
    if (e_ > (rtol)) fprintf(stderr, __VA_ARGS__), fputc('\n', stderr); } while (0)

/* int32 host data on both backends. */
typedef struct { int32_t *c, *g; } itwin;

static itwin itwin_upload(const int32_t *h, size_t n) {
    itwin t = {cpu->alloc(cpu, (n ? n : 1) * sizeof(int32_t)), gpu->alloc(gpu, (n ? n : 1) * sizeof(int32_t))};
    GRPO_ASSERTF(t.c && t.g, "%s", grpo_error_message());
    cpu->to_device(cpu, t.c, h, n * sizeof(int32_t));
    gpu->to_device(gpu, t.g, h, n * sizeof(int32_t));
    return t;
}

static void itwin_free(itwin t) {
    cpu->free(cpu, t.c);
    gpu->free(gpu, t.g);
}

/* ---- training attention ---- */

static void check_training(int B, int T, int Hq, int Hkv, int Dqk, int Dv) {
    const float scale = 1.0f / sqrtf((float)Dqk);
    const size_t nq = (size_t)B * T * Hq * Dqk, nk = (size_t)B * T * Hkv * Dqk, nv = (size_t)B * T * Hkv * Dv;
    const size_t no = (size_t)B * T * Hq * Dv, nl = (size_t)B * Hq * T;
    /* q, k out to +-2 (scores up to ~4 sqrt(Dqk) scale): peaked and flat rows alike */
    twin q = twin_random(nq, -2, 2), k = twin_random(nk, -2, 2), v = twin_random(nv, -1, 1);
    twin dout = twin_random(no, -1, 1);
    twin out = twin_output(no), lse = twin_output(nl), dq = twin_output(nq), dk = twin_output(nk), dv = twin_output(nv);
    cpu->attention_forward(cpu, out.c, lse.c, q.c, k.c, v.c, B, T, Hq, Hkv, Dqk, Dv, scale);
    gpu->attention_forward(gpu, out.g, lse.g, q.g, k.g, v.g, B, T, Hq, Hkv, Dqk, Dv, scale);
    CHECK_TWIN(out, ATT_RTOL, "attention_forward out B=%d T=%d Hq=%d Hkv=%d Dqk=%d Dv=%d", B, T, Hq, Hkv, Dqk, Dv);
    CHECK_TWIN(lse, ATT_RTOL, "attention_forward lse B=%d T=%d Hq=%d Hkv=%d Dqk=%d Dv=%d", B, T, Hq, Hkv, Dqk, Dv);
    /* each side's backward from the CPU's out and lse, so only the backward differs */
    twin_cpu_to_gpu(out);
    twin_cpu_to_gpu(lse);
    cpu->attention_backward(cpu, dq.c, dk.c, dv.c, dout.c, q.c, k.c, v.c, out.c, lse.c, B, T, Hq, Hkv, Dqk, Dv, scale);
    gpu->attention_backward(gpu, dq.g, dk.g, dv.g, dout.g, q.g, k.g, v.g, out.g, lse.g, B, T, Hq, Hkv, Dqk, Dv, scale);
    CHECK_TWIN(dq, ATT_RTOL, "attention_backward dq B=%d T=%d Hq=%d Hkv=%d Dqk=%d Dv=%d", B, T, Hq, Hkv, Dqk, Dv);
    CHECK_TWIN(dk, ATT_RTOL, "attention_backward dk B=%d T=%d Hq=%d Hkv=%d Dqk=%d Dv=%d", B, T, Hq, Hkv, Dqk, Dv);
    CHECK_TWIN(dv, ATT_RTOL, "attention_backward dv B=%d T=%d Hq=%d Hkv=%d Dqk=%d Dv=%d", B, T, Hq, Hkv, Dqk, Dv);
    twin_free(q);
    twin_free(k);
    twin_free(v);
    twin_free(dout);
    twin_free(out);
    twin_free(lse);
    twin_free(dq);
    twin_free(dk);
    twin_free(dv);
}

static void test_training(void) {
    /* B, T, Hq, Hkv, Dqk, Dv */
    static const int shapes[][6] = {
        {1, 1, 1, 1, 64, 64},       /* T = 1 */
        {2, 37, 8, 2, 64, 64},      /* GQA Hq/Hkv = 4, B > 1, T not a multiple of a tile */
        {1, 100, 4, 4, 128, 128},   /* MHA */
        {2, 70, 4, 1, 192, 128},    /* MLA training dims (Dqk != Dv), multi-query */
        {1, 300, 2, 2, 256, 256},   /* the largest head size, several tiles each way */
        {1, 129, 6, 3, 24, 40},     /* odd sizes, one past a tile */
        {3, 65, 2, 2, 1, 7},        /* head size 1 */
        {1, 513, 4, 1, 64, 32},     /* longer, Dv < Dqk */
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        check_training(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], shapes[s][5]);
}

/* ---- paged decoding ---- */

enum { LAYOUT_DENSE, LAYOUT_MLA, LAYOUT_STRIDED };

typedef struct {
    int layout, n_seqs, N, Hq, Hkv, Dqk, Dv, block_size, max_ctx;
} decode_case;

/* One decode step as the decoders run it: the N new tokens' vectors are written into the
 * cache (at each token's last position), then every token attends over its context. */
static void check_decode(decode_case dc) {
    const int bs = dc.block_size, Hq = dc.Hq, Hkv = dc.Hkv, Dqk = dc.Dqk, Dv = dc.Dv, N = dc.N;
    const int max_blocks = (dc.max_ctx + bs - 1) / bs;
    /* sequence lengths; the N tokens are the last positions of their sequences (several per
     * sequence, as a chunk of prefill), so their slots are distinct */
    int *seq_len = malloc(dc.n_seqs * sizeof *seq_len), *taken = calloc(dc.n_seqs, sizeof *taken);
    int32_t *seq_of = malloc(N * sizeof *seq_of), *ctx_len = malloc(N * sizeof *ctx_len);
    int32_t *slots = malloc(N * sizeof *slots);
    GRPO_ASSERT(seq_len && taken && seq_of && ctx_len && slots);
    for (int s = 0; s < dc.n_seqs; s++) seq_len[s] = s == 0 ? dc.max_ctx : random_int(1, dc.max_ctx);
    for (int i = 0; i < N; i++) {
        int s = i < dc.n_seqs ? i : random_int(0, dc.n_seqs - 1);
        for (int tries = 0; taken[s] >= seq_len[s]; tries++) {   /* full: the next one with room */
            GRPO_ASSERTF(tries < dc.n_seqs, "decode case: %d tokens do not fit the sequences", N);
            s = (s + 1) % dc.n_seqs;
        }
        seq_of[i] = s;
        ctx_len[i] = seq_len[s] - taken[s]++;
        GRPO_ASSERT(ctx_len[i] >= 1);
    }
    /* block tables: a random permutation of physical blocks; entries past a sequence's
     * length are -1 (read: a fault) */
    int total = 0;
    for (int s = 0; s < dc.n_seqs; s++) total += (seq_len[s] + bs - 1) / bs;
    const int num_blocks = total + 3;
    int *perm = malloc(num_blocks * sizeof *perm);
    int32_t *tables = malloc((size_t)dc.n_seqs * max_blocks * sizeof *tables);
    GRPO_ASSERT(perm && tables);
    for (int b = 0; b < num_blocks; b++) perm[b] = b;
    for (int b = num_blocks - 1; b > 0; b--) {
        int r = random_int(0, b), t = perm[b];
        perm[b] = perm[r];
        perm[r] = t;
    }
    int used = 0;
    for (int s = 0; s < dc.n_seqs; s++)
        for (int b = 0; b < max_blocks; b++)
            tables[(size_t)s * max_blocks + b] = b * bs < seq_len[s] ? perm[used++] : -1;
    for (int i = 0; i < N; i++) {
        int p = ctx_len[i] - 1;
        slots[i] = tables[(size_t)seq_of[i] * max_blocks + p / bs] * bs + p % bs;
    }

    /* layouts and the cache (random everywhere, so stale positions count) */
    backend_paged_layout KL, VL;
    size_t cache_floats, v_offset = 0;
    const int F = dc.layout == LAYOUT_DENSE ? 2 * Hkv * Dqk : dc.layout == LAYOUT_MLA ? Dqk : 0;
    if (dc.layout == LAYOUT_DENSE) {   /* model/dense_decode.c: keys [Hkv, Dh, bs] then values [Hkv, bs, Dh] */
        KL = (backend_paged_layout){(size_t)bs * F, (size_t)bs * Dqk, 1, (size_t)bs, bs};
        VL = (backend_paged_layout){(size_t)bs * F, (size_t)bs * Dqk, (size_t)Dqk, 1, bs};
        v_offset = (size_t)bs * Hkv * Dqk;
        cache_floats = (size_t)num_blocks * bs * F;
    } else if (dc.layout == LAYOUT_MLA) {   /* model/deepseek_v3_decode.c: rows [bs, rkv + rope] */
        KL = VL = (backend_paged_layout){(size_t)bs * F, 0, (size_t)F, 1, bs};
        cache_floats = (size_t)num_blocks * bs * F;
    } else {   /* anything: position-major with padding, strided numbers, gaps between blocks */
        const size_t kw = 2 * (size_t)Dqk + 1, vw = (size_t)Dv + 3;
        KL = (backend_paged_layout){(size_t)bs * Hkv * kw + 5, kw, (size_t)Hkv * kw, 2, bs};
        VL = (backend_paged_layout){(size_t)bs * Hkv * vw + 11, vw, (size_t)Hkv * vw, 1, bs};
        v_offset = (size_t)num_blocks * KL.block_stride;
        cache_floats = v_offset + (size_t)num_blocks * VL.block_stride;
    }
    twin cache = twin_random(cache_floats, -1, 1);
    itwin slot_t = itwin_upload(slots, N), seq_t = itwin_upload(seq_of, N), ctx_t = itwin_upload(ctx_len, N);
    itwin table_t = itwin_upload(tables, (size_t)dc.n_seqs * max_blocks);
    twin q = twin_random((size_t)N * Hq * Dqk, -2, 2), out = twin_output((size_t)N * Hq * Dv);

    if (dc.layout == LAYOUT_MLA) {   /* the latent, then the rope key beside it, as the decoder does */
        const int rkv = Dv, dr = Dqk - Dv;
        twin latent = twin_random((size_t)N * rkv, -1, 1), k_pe = twin_random((size_t)N * (dr > 0 ? dr : 1), -1, 1);
        cpu->cache_write_rows(cpu, cache.c, &KL, latent.c, 1, rkv, slot_t.c, N);
        gpu->cache_write_rows(gpu, cache.g, &KL, latent.g, 1, rkv, slot_t.g, N);
        if (dr > 0) {
            cpu->cache_write_rows(cpu, cache.c + rkv, &KL, k_pe.c, 1, dr, slot_t.c, N);
            gpu->cache_write_rows(gpu, cache.g + rkv, &KL, k_pe.g, 1, dr, slot_t.g, N);
        }
        twin_free(latent);
        twin_free(k_pe);
    } else {
        twin k = twin_random((size_t)N * Hkv * Dqk, -2, 2), v = twin_random((size_t)N * Hkv * Dv, -1, 1);
        cpu->cache_write_rows(cpu, cache.c, &KL, k.c, Hkv, Dqk, slot_t.c, N);
        gpu->cache_write_rows(gpu, cache.g, &KL, k.g, Hkv, Dqk, slot_t.g, N);
        cpu->cache_write_rows(cpu, cache.c + v_offset, &VL, v.c, Hkv, Dv, slot_t.c, N);
        gpu->cache_write_rows(gpu, cache.g + v_offset, &VL, v.g, Hkv, Dv, slot_t.g, N);
        twin_free(k);
        twin_free(v);
    }
    CHECK_MSG(twin_same_bits(cache), "cache_write_rows: caches differ (layout %d, N=%d, Hkv=%d, Dqk=%d, Dv=%d, bs=%d)",
              dc.layout, N, Hkv, Dqk, Dv, bs);
    /* attention from the same cache on both sides */
    twin_cpu_to_gpu(cache);
    const float scale = 1.0f / sqrtf((float)Dqk);
    cpu->paged_attention(cpu, out.c, q.c, cache.c, &KL, cache.c + v_offset, &VL, table_t.c, max_blocks, seq_t.c,
                         ctx_t.c, N, Hq, Hkv, Dqk, Dv, scale);
    gpu->paged_attention(gpu, out.g, q.g, cache.g, &KL, cache.g + v_offset, &VL, table_t.g, max_blocks, seq_t.g,
                         ctx_t.g, N, Hq, Hkv, Dqk, Dv, scale);
    CHECK_TWIN(out, ATT_RTOL, "paged_attention layout %d: N=%d seqs=%d Hq=%d Hkv=%d Dqk=%d Dv=%d bs=%d ctx<=%d",
               dc.layout, N, dc.n_seqs, Hq, Hkv, Dqk, Dv, bs, dc.max_ctx);

    twin_free(cache);
    twin_free(q);
    twin_free(out);
    itwin_free(slot_t);
    itwin_free(seq_t);
    itwin_free(ctx_t);
    itwin_free(table_t);
    free(seq_len);
    free(taken);
    free(seq_of);
    free(ctx_len);
    free(slots);
    free(perm);
    free(tables);
}

static void test_decode(void) {
    static const decode_case cases[] = {
        /* layout, n_seqs, N, Hq, Hkv, Dqk, Dv, block_size, max_ctx */
        {LAYOUT_DENSE, 1, 1, 4, 4, 64, 64, 16, 1},            /* one position */
        {LAYOUT_DENSE, 3, 7, 8, 2, 64, 64, 16, 3000},         /* GQA, long contexts: split-K */
        {LAYOUT_DENSE, 40, 300, 4, 2, 128, 128, 16, 200},     /* many tokens: no split */
        {LAYOUT_DENSE, 2, 5, 12, 1, 32, 32, 64, 700},         /* multi-query, big blocks */
        {LAYOUT_MLA, 2, 5, 16, 1, 80, 64, 64, 3000},          /* MLA rows, small ranks */
        {LAYOUT_MLA, 3, 4, 128, 1, 576, 512, 64, 2000},       /* MLA at V3's sizes */
        {LAYOUT_MLA, 1, 1, 128, 1, 576, 512, 64, 3000},       /* one token, long: many splits */
        {LAYOUT_STRIDED, 4, 9, 6, 3, 40, 24, 5, 300},         /* any strides, odd block size */
        {LAYOUT_STRIDED, 2, 3, 2, 2, 7, 13, 3, 50},           /* Dv > Dqk */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) check_decode(cases[c]);
    /* again with the device memory served by a pool (split-K scratch then comes from it) */
    CHECK_OK(backend_pool_reserve(gpu, (size_t)512 << 20));
    check_decode(cases[1]);
    check_decode(cases[6]);
    backend_pool_info info;
    CHECK(backend_pool_stats(gpu, &info) && info.live_blocks == 0);
}

int main(void) {
    const char *env = getenv("GRPO_TEST_SEED");
    seed = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    printf("seed %llu (GRPO_TEST_SEED=%llu repeats this run)\n", (unsigned long long)seed, (unsigned long long)seed);

    test_plan_tiles();
    test_plan_smem();
    test_plan_splits();
    test_plan_merge();
    test_plan_paged_offset();

    char desc[2048];
    backend_cuda_describe(desc, sizeof desc);
    if (backend_cuda_device_count() == 0) {
        /* asking for a device must fail with a message, not crash */
        backend *none = backend_cuda_create(0);
        CHECK(none == NULL);
        CHECK(grpo_error_message()[0] != 0);
        backend_free(none);
        if (harness_failures) TEST_MAIN_END();
        TEST_SKIP("%s (the plan's %d CPU checks passed)", desc, harness_checks);
    }
    printf("%s\n", desc);
    cpu = backend_cpu_create();
    gpu = backend_cuda_create(0);
    CHECK_MSG(cpu && gpu, "%s", grpo_error_message());
    if (!cpu || !gpu) TEST_MAIN_END();
    CHECK_OK(BACKEND_REQUIRE(gpu, attention_forward));
    CHECK_OK(BACKEND_REQUIRE(gpu, attention_backward));
    CHECK_OK(BACKEND_REQUIRE(gpu, cache_write_rows));
    CHECK_OK(BACKEND_REQUIRE(gpu, paged_attention));

    test_training();
    test_decode();

    backend_free(gpu);
    backend_free(cpu);
    TEST_MAIN_END();
}
