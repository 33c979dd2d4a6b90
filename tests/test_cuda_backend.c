/* Every CUDA op beside the CPU reference (backend_cpu_create) on random inputs of odd
 * sizes, compared by relative error max|cuda - cpu| / max|cpu|. Tolerances: fp32 ops
 * 1e-5 (matmul sums K products in another order; expf differs by an ulp or two; nvcc
 * fuses multiply-adds); sum_squares is summed in double on both sides, 1e-9. Exact
 * (bit for bit): embedding_forward (a copy) and the low-precision ops quantize_fp8 /
 * dequantize_fp8 / round_fp8 / round_bf16 (integer codecs and IEEE divisions on both
 * sides). Attention (training and paged) is in test_cuda_attention.c. Without a CUDA
 * device (or a build without CUDA) it checks that asking for one fails cleanly, then
 * skips (77). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/rng.h"
#include "core/status.h"
#include "tests/harness.h"

#define FP32_RTOL 1e-5
#define SUM_RTOL 1e-9
#define REL_FLOOR 1e-6

static backend *cpu, *gpu;
static uint64_t next_stream = 1;

/* n uniform numbers in [lo, hi), a fresh Philox stream per call. Caller frees. */
static float *random_floats(size_t n, float lo, float hi) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    GRPO_ASSERT(h);
    uint64_t stream = next_stream++;
    for (size_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * rng_uniform(20240611, stream, i);
    return h;
}

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

static void twin_free(twin t) {
    cpu->free(cpu, t.c);
    gpu->free(gpu, t.g);
}

/* Relative error between the two copies (downloaded to the host). */
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

#define CHECK_TWIN(t, rtol, ...) do { double e_ = twin_rel_err(t); \
    CHECK_MSG(e_ <= (rtol), "rel err %.3g > %.1g: ", e_, (double)(rtol)); \
    if (e_ > (rtol)) fprintf(stderr, __VA_ARGS__), fputc('\n', stderr); } while (0)

static void test_memory(void) {
    const size_t n = 1001;
    float *h = random_floats(n, -1, 1), *back = malloc(n * sizeof *back);
    float *d = gpu->alloc(gpu, n * sizeof(float)), *d2 = gpu->alloc(gpu, n * sizeof(float));
    CHECK(d && d2 && back);
    if (!d || !d2 || !back) return;
    gpu->to_host(gpu, back, d, n * sizeof(float));
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= back[i] == 0.0f;
    CHECK_MSG(zero, "alloc is not zero-filled");
    gpu->to_device(gpu, d, h, n * sizeof(float));
    gpu->copy(gpu, d2, d, n * sizeof(float));
    gpu->zero(gpu, d, 10 * sizeof(float));
    gpu->synchronize(gpu);
    gpu->to_host(gpu, back, d2, n * sizeof(float));
    CHECK(memcmp(back, h, n * sizeof(float)) == 0);
    gpu->to_host(gpu, back, d, n * sizeof(float));
    CHECK(back[0] == 0.0f && back[9] == 0.0f && back[10] == h[10] && back[n - 1] == h[n - 1]);
    void *empty = gpu->alloc(gpu, 0);
    CHECK(empty != NULL);
    gpu->free(gpu, empty);
    gpu->free(gpu, NULL);
    gpu->free(gpu, d);
    gpu->free(gpu, d2);
    free(h);
    free(back);
}

/* One matmul on both backends, C padded to ldc with a sentinel that must survive. */
static void check_matmul(int ta, int tb, int M, int N, int K, int pad, float alpha, float beta) {
    int a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
    int lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
    twin A = twin_random((size_t)a_rows * lda, -1, 1);
    twin B = twin_random((size_t)b_rows * ldb, -1, 1);
    float *hc = random_floats((size_t)M * ldc, -1, 1);
    for (int i = 0; i < M; i++) {
        for (int j = N; j < ldc; j++) hc[(size_t)i * ldc + j] = 1234.5f;   /* padding sentinel */
        if (beta == 0.0f)
            for (int j = 0; j < N; j++) hc[(size_t)i * ldc + j] = NAN;   /* must be ignored */
    }
    twin C = twin_upload(hc, (size_t)M * ldc);
    cpu->matmul(cpu, ta, tb, M, N, K, alpha, A.c, lda, B.c, ldb, beta, C.c, ldc);
    gpu->matmul(gpu, ta, tb, M, N, K, alpha, A.g, lda, B.g, ldb, beta, C.g, ldc);
    CHECK_TWIN(C, FP32_RTOL, "matmul ta=%d tb=%d M=%d N=%d K=%d pad=%d alpha=%g beta=%g", ta, tb, M, N, K, pad,
               alpha, beta);
    size_t c_len = (size_t)M * ldc;
    float *back = malloc((c_len > 0 ? c_len : 1) * sizeof *back);
    gpu->to_host(gpu, back, C.g, (size_t)M * ldc * sizeof(float));
    int pad_ok = 1;
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) pad_ok &= back[(size_t)i * ldc + j] == 1234.5f;
    CHECK_MSG(pad_ok, "matmul wrote past N in a padded row (ta=%d tb=%d M=%d N=%d K=%d)", ta, tb, M, N, K);
    free(back);
    free(hc);
    twin_free(A);
    twin_free(B);
    twin_free(C);
}

static void test_matmul(void) {
    static const int sizes[][3] = {{1, 1, 1}, {37, 29, 53}, {64, 65, 1}, {3, 200, 17}, {129, 67, 255},
                                   {1, 513, 77}, {250, 1, 31}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                check_matmul(ta, tb, M, N, K, 0, 1.0f, 0.0f);
                check_matmul(ta, tb, M, N, K, 3, 0.75f, 0.5f);
            }
    /* No product: K = 0 or alpha = 0 scale C by beta (beta = 0 writes zeros). */
    check_matmul(0, 1, 17, 9, 0, 2, 1.0f, 0.5f);
    check_matmul(0, 1, 17, 9, 0, 2, 1.0f, 0.0f);
    check_matmul(1, 0, 5, 33, 12, 1, 0.0f, 2.0f);
    /* A Linear layer as backend.h spells it: y = x W^T. */
    check_matmul(0, 1, 31, 96, 160, 0, 1.0f, 0.0f);
    /* Accumulating into C (gradients): beta = 1. */
    check_matmul(1, 0, 96, 160, 31, 0, 1.0f, 1.0f);
}

static void test_elementwise(void) {
    /* The last size passes CUDA_MAX_GRID * CUDA_BLOCK (16.7M): exercises the grid-stride loop. */
    static const size_t sizes[] = {1, 7, 1000, 65537, (size_t)65536 * 256 + 3};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        twin a = twin_random(n, -2, 2), b = twin_random(n, -2, 2), out = twin_random(n, -2, 2);
        cpu->add(cpu, out.c, a.c, b.c, n);
        gpu->add(gpu, out.g, a.g, b.g, n);
        CHECK_TWIN(out, FP32_RTOL, "add n=%zu", n);
        cpu->axpy(cpu, out.c, -0.3f, a.c, n);
        gpu->axpy(gpu, out.g, -0.3f, a.g, n);
        CHECK_TWIN(out, FP32_RTOL, "axpy n=%zu", n);
        cpu->scale(cpu, out.c, 1.7f, n);
        gpu->scale(gpu, out.g, 1.7f, n);
        CHECK_TWIN(out, FP32_RTOL, "scale n=%zu", n);
        /* In place (out aliases a). */
        cpu->add(cpu, a.c, a.c, b.c, n);
        gpu->add(gpu, a.g, a.g, b.g, n);
        CHECK_TWIN(a, FP32_RTOL, "add in place n=%zu", n);

        double sc = cpu->sum_squares(cpu, out.c, n), sg = gpu->sum_squares(gpu, out.g, n);
        CHECK_MSG(fabs(sg - sc) <= SUM_RTOL * sc, "sum_squares n=%zu: cpu %.17g cuda %.17g", n, sc, sg);
        double sg2 = gpu->sum_squares(gpu, out.g, n);
        CHECK_MSG(memcmp(&sg, &sg2, sizeof sg) == 0, "sum_squares n=%zu not deterministic", n);
        twin_free(a);
        twin_free(b);
        twin_free(out);
    }
    CHECK(gpu->sum_squares(gpu, NULL, 0) == 0.0);

    static const int bias_sizes[][2] = {{1, 1}, {37, 129}, {1000, 3}, {5, 4099}};
    for (size_t s = 0; s < sizeof bias_sizes / sizeof bias_sizes[0]; s++) {
        int rows = bias_sizes[s][0], d = bias_sizes[s][1];
        twin out = twin_random((size_t)rows * d, -1, 1), bias = twin_random((size_t)d, -1, 1);
        cpu->add_bias(cpu, out.c, bias.c, rows, d);
        gpu->add_bias(gpu, out.g, bias.g, rows, d);
        CHECK_TWIN(out, FP32_RTOL, "add_bias rows=%d d=%d", rows, d);
        twin_free(out);
        twin_free(bias);
    }
}

static void test_swiglu(void) {
    static const size_t sizes[] = {1, 33, 100003};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        /* Gates out to +-30 reach both saturated ends of the sigmoid. */
        twin gate = twin_random(n, -30, 30), up = twin_random(n, -3, 3), dout = twin_random(n, -1, 1);
        twin out = twin_random(n, -1, 1), dgate = twin_random(n, -1, 1), dup = twin_random(n, -1, 1);
        cpu->swiglu_forward(cpu, out.c, gate.c, up.c, n);
        gpu->swiglu_forward(gpu, out.g, gate.g, up.g, n);
        CHECK_TWIN(out, FP32_RTOL, "swiglu_forward n=%zu", n);
        cpu->swiglu_backward(cpu, dgate.c, dup.c, dout.c, gate.c, up.c, n);
        gpu->swiglu_backward(gpu, dgate.g, dup.g, dout.g, gate.g, up.g, n);
        CHECK_TWIN(dgate, FP32_RTOL, "swiglu_backward dgate n=%zu", n);
        CHECK_TWIN(dup, FP32_RTOL, "swiglu_backward dup n=%zu", n);
        twin_free(gate);
        twin_free(up);
        twin_free(dout);
        twin_free(out);
        twin_free(dgate);
        twin_free(dup);
    }
}

/* ---- helpers for the ops below ---- */

/* n int32 in [lo, hi) on both backends (ids, positions, targets). */
typedef struct { int32_t *c, *g; } itwin;

static itwin itwin_random(size_t n, int lo, int hi) {
    int32_t *h = malloc((n ? n : 1) * sizeof *h);
    GRPO_ASSERT(h);
    uint64_t stream = next_stream++;
    for (size_t i = 0; i < n; i++) {
        int v = lo + (int)(rng_uniform(20240611, stream, i) * (float)(hi - lo));
        h[i] = v < hi ? v : hi - 1;
    }
    itwin t = {cpu->alloc(cpu, n * sizeof(int32_t)), gpu->alloc(gpu, n * sizeof(int32_t))};
    GRPO_ASSERTF(t.c && t.g, "%s", grpo_error_message());
    cpu->to_device(cpu, t.c, h, n * sizeof(int32_t));
    gpu->to_device(gpu, t.g, h, n * sizeof(int32_t));
    free(h);
    return t;
}

static void itwin_free(itwin t) {
    cpu->free(cpu, t.c);
    gpu->free(gpu, t.g);
}

/* Whether the two copies of `bytes` bytes are identical, bit for bit. */
static int same_bytes(const void *c, const void *g, size_t bytes) {
    unsigned char *a = malloc(bytes ? bytes : 1), *b = malloc(bytes ? bytes : 1);
    GRPO_ASSERT(a && b);
    cpu->to_host(cpu, a, c, bytes);
    gpu->to_host(gpu, b, g, bytes);
    int same = memcmp(a, b, bytes) == 0;
    free(a);
    free(b);
    return same;
}

/* ---- bias_backward, embedding ---- */

static void test_bias_embedding(void) {
    static const int bias_sizes[][2] = {{1, 1}, {37, 129}, {1000, 3}, {5, 4099}};
    for (size_t s = 0; s < sizeof bias_sizes / sizeof bias_sizes[0]; s++) {
        int rows = bias_sizes[s][0], d = bias_sizes[s][1];
        /* dbias starts non-zero: the op accumulates. Same order and precision as the CPU. */
        twin dout = twin_random((size_t)rows * d, -1, 1), dbias = twin_random((size_t)d, -1, 1);
        cpu->bias_backward(cpu, dbias.c, dout.c, rows, d);
        gpu->bias_backward(gpu, dbias.g, dout.g, rows, d);
        CHECK_TWIN(dbias, FP32_RTOL, "bias_backward rows=%d d=%d", rows, d);
        twin_free(dout);
        twin_free(dbias);
    }
    /* T > V, so ids repeat (the backward's scatter-add must add them all). */
    static const int emb_sizes[][3] = {{1, 1, 1}, {50, 7, 33}, {300, 41, 129}, {17, 1000, 513}};
    for (size_t s = 0; s < sizeof emb_sizes / sizeof emb_sizes[0]; s++) {
        int T = emb_sizes[s][0], V = emb_sizes[s][1], D = emb_sizes[s][2];
        itwin ids = itwin_random((size_t)T, 0, V);
        twin table = twin_random((size_t)V * D, -1, 1), out = twin_random((size_t)T * D, -1, 1);
        twin dout = twin_random((size_t)T * D, -1, 1), dtable = twin_random((size_t)V * D, -1, 1);
        cpu->embedding_forward(cpu, out.c, ids.c, table.c, T, D);
        gpu->embedding_forward(gpu, out.g, ids.g, table.g, T, D);
        CHECK_MSG(same_bytes(out.c, out.g, out.n * sizeof(float)), "embedding_forward T=%d V=%d D=%d differs", T, V, D);
        cpu->embedding_backward(cpu, dtable.c, ids.c, dout.c, T, D);
        gpu->embedding_backward(gpu, dtable.g, ids.g, dout.g, T, D);
        CHECK_TWIN(dtable, FP32_RTOL, "embedding_backward T=%d V=%d D=%d", T, V, D);
        itwin_free(ids);
        twin_free(table);
        twin_free(out);
        twin_free(dout);
        twin_free(dtable);
    }
}

/* ---- RMSNorm ---- */

static void test_rmsnorm(void) {
    /* D below, at and above the block's 256 threads. */
    static const int sizes[][2] = {{1, 1}, {3, 7}, {37, 256}, {64, 129}, {5, 4099}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int N = sizes[s][0], D = sizes[s][1];
        twin x = twin_random((size_t)N * D, -3, 3), w = twin_random((size_t)D, 0.5f, 1.5f);
        twin out = twin_random((size_t)N * D, -1, 1), rstd = twin_random((size_t)N, -1, 1);
        twin dout = twin_random((size_t)N * D, -1, 1), dx = twin_random((size_t)N * D, -1, 1);
        twin dw = twin_random((size_t)D, -1, 1);
        cpu->rmsnorm_forward(cpu, out.c, rstd.c, x.c, w.c, N, D, 1e-6f);
        gpu->rmsnorm_forward(gpu, out.g, rstd.g, x.g, w.g, N, D, 1e-6f);
        CHECK_TWIN(out, FP32_RTOL, "rmsnorm_forward out N=%d D=%d", N, D);
        CHECK_TWIN(rstd, FP32_RTOL, "rmsnorm_forward rstd N=%d D=%d", N, D);
        cpu->rmsnorm_backward(cpu, dx.c, dw.c, dout.c, x.c, w.c, rstd.c, N, D);
        gpu->rmsnorm_backward(gpu, dx.g, dw.g, dout.g, x.g, w.g, rstd.g, N, D);
        CHECK_TWIN(dx, FP32_RTOL, "rmsnorm_backward dx N=%d D=%d", N, D);
        CHECK_TWIN(dw, FP32_RTOL, "rmsnorm_backward dw N=%d D=%d", N, D);
        twin_free(x);
        twin_free(w);
        twin_free(out);
        twin_free(rstd);
        twin_free(dout);
        twin_free(dx);
        twin_free(dw);
    }
}

/* ---- RoPE ---- */

static void test_rope(void) {
    /* T, H, head_stride, rot_dim: full rotation, partial (the tail must stay), odd sizes. */
    static const int shapes[][4] = {{1, 1, 2, 2}, {7, 3, 16, 16}, {33, 5, 24, 8}, {129, 2, 192, 64}, {5, 7, 10, 0}};
    const int max_pos = 300;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int interleaved = 0; interleaved < 2; interleaved++)
            for (int inverse = 0; inverse < 2; inverse++) {
                int T = shapes[s][0], H = shapes[s][1], hs = shapes[s][2], rot = shapes[s][3];
                int half = rot / 2 > 0 ? rot / 2 : 1;
                /* Tables from random angles (any model's scaling is just other angles). */
                float *ang = random_floats((size_t)max_pos * half, -10, 10);
                float *hc = malloc((size_t)max_pos * half * sizeof *hc), *hs_ = malloc((size_t)max_pos * half * sizeof *hs_);
                GRPO_ASSERT(hc && hs_);
                for (size_t i = 0; i < (size_t)max_pos * half; i++) {
                    hc[i] = cosf(ang[i]);
                    hs_[i] = sinf(ang[i]);
                }
                twin cs = twin_upload(hc, (size_t)max_pos * half), sn = twin_upload(hs_, (size_t)max_pos * half);
                itwin pos = itwin_random((size_t)T, 0, max_pos);   /* unordered, with repeats */
                twin x = twin_random((size_t)T * H * hs, -2, 2);
                cpu->rope(cpu, x.c, T, H, hs, rot, pos.c, cs.c, sn.c, interleaved, inverse);
                gpu->rope(gpu, x.g, T, H, hs, rot, pos.g, cs.g, sn.g, interleaved, inverse);
                CHECK_TWIN(x, FP32_RTOL, "rope T=%d H=%d head_stride=%d rot_dim=%d interleaved=%d inverse=%d", T, H,
                           hs, rot, interleaved, inverse);
                free(ang);
                free(hc);
                free(hs_);
                twin_free(cs);
                twin_free(sn);
                itwin_free(pos);
                twin_free(x);
            }
}

/* ---- token log-probabilities ---- */

static void test_token_logprobs(void) {
    static const int sizes[][2] = {{1, 1}, {37, 5}, {19, 1000}, {7, 32003}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int N = sizes[s][0], V = sizes[s][1];
        /* Targets in [-1, V): some rows ignored (-1). */
        itwin targets = itwin_random((size_t)N, -1, V);
        twin logits = twin_random((size_t)N * V, -12, 12), logprobs = twin_random((size_t)N, -1, 1);
        twin lse = twin_random((size_t)N, -1, 1), dlogprobs = twin_random((size_t)N, -2, 2);
        twin dlogits = twin_random((size_t)N * V, -1, 1);   /* written, not accumulated */
        cpu->token_logprobs_forward(cpu, logprobs.c, lse.c, logits.c, targets.c, N, V);
        gpu->token_logprobs_forward(gpu, logprobs.g, lse.g, logits.g, targets.g, N, V);
        CHECK_TWIN(logprobs, FP32_RTOL, "token_logprobs_forward logprobs N=%d V=%d", N, V);
        CHECK_TWIN(lse, FP32_RTOL, "token_logprobs_forward lse N=%d V=%d", N, V);
        cpu->token_logprobs_backward(cpu, dlogits.c, logits.c, lse.c, targets.c, dlogprobs.c, N, V);
        gpu->token_logprobs_backward(gpu, dlogits.g, logits.g, lse.g, targets.g, dlogprobs.g, N, V);
        CHECK_TWIN(dlogits, FP32_RTOL, "token_logprobs_backward N=%d V=%d", N, V);
        itwin_free(targets);
        twin_free(logits);
        twin_free(logprobs);
        twin_free(lse);
        twin_free(dlogprobs);
        twin_free(dlogits);
    }
}

/* ---- AdamW ---- */

static void test_adamw(void) {
    static const size_t sizes[] = {1, 1000, 100003};
    static const int steps[] = {1, 2, 10, 1000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        twin param = twin_random(n, -1, 1), m = twin_random(n, -0.1f, 0.1f), v = twin_random(n, 0, 0.01f);
        for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
            twin grad = twin_random(n, -1, 1);
            cpu->adamw(cpu, param.c, grad.c, m.c, v.c, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, steps[k]);
            gpu->adamw(gpu, param.g, grad.g, m.g, v.g, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, steps[k]);
            CHECK_TWIN(param, FP32_RTOL, "adamw param n=%zu step=%d", n, steps[k]);
            CHECK_TWIN(m, FP32_RTOL, "adamw m n=%zu step=%d", n, steps[k]);
            CHECK_TWIN(v, FP32_RTOL, "adamw v n=%zu step=%d", n, steps[k]);
            twin_free(grad);
        }
        twin_free(param);
        twin_free(m);
        twin_free(v);
    }
}

/* ---- low-precision emulation: bit for bit ---- */

/* [rows, ldx] values spread over 15 binades (e4m3 subnormals and zeros within a tile)
 * with both signs; row 0 is all zeros (scale 1 tiles). */
static twin quant_input(int rows, int ldx) {
    size_t n = (size_t)rows * ldx;
    float *h = random_floats(n, 0, 1), *e = random_floats(n, -12, 3);
    for (size_t i = 0; i < n; i++) h[i] = (h[i] < 0.5f ? -1.0f : 1.0f) * exp2f(e[i]);
    for (int c = 0; c < ldx && rows > 1; c++) h[c] = 0.0f;
    twin t = twin_upload(h, n);
    free(h);
    free(e);
    return t;
}

static void test_quant(void) {
    static const int shapes[][2] = {{1, 1}, {3, 200}, {130, 257}, {257, 130}};
    static const int tiles[][2] = {{1, 128}, {128, 128}, {128, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t k = 0; k < sizeof tiles / sizeof tiles[0]; k++) {
            int rows = shapes[s][0], cols = shapes[s][1], tr = tiles[k][0], tc = tiles[k][1];
            int ldx = cols + 3;
            size_t n_sc = (size_t)((rows + tr - 1) / tr) * (size_t)((cols + tc - 1) / tc);
            twin x = quant_input(rows, ldx);
            twin scales = twin_random(n_sc, -1, 1), back = twin_random((size_t)rows * ldx, -1, 1);
            twin out = twin_random((size_t)rows * (cols + 5), -1, 1);
            uint8_t *qc = cpu->alloc(cpu, (size_t)rows * cols), *qg = gpu->alloc(gpu, (size_t)rows * cols);
            GRPO_ASSERT(qc && qg);
            cpu->quantize_fp8(cpu, qc, scales.c, x.c, ldx, rows, cols, tr, tc);
            gpu->quantize_fp8(gpu, qg, scales.g, x.g, ldx, rows, cols, tr, tc);
            CHECK_MSG(same_bytes(qc, qg, (size_t)rows * cols), "quantize_fp8 codes %dx%d tiles %dx%d", rows, cols, tr, tc);
            CHECK_MSG(same_bytes(scales.c, scales.g, n_sc * sizeof(float)), "quantize_fp8 scales %dx%d tiles %dx%d",
                      rows, cols, tr, tc);
            /* Dequantize the CPU's codes and scales on both (so a quantize mismatch above
             * does not show up here twice). */
            uint8_t *hq = malloc((size_t)rows * cols + 1);
            float *hsc = malloc(n_sc * sizeof *hsc);
            GRPO_ASSERT(hq && hsc);
            cpu->to_host(cpu, hq, qc, (size_t)rows * cols);
            cpu->to_host(cpu, hsc, scales.c, n_sc * sizeof(float));
            gpu->to_device(gpu, qg, hq, (size_t)rows * cols);
            gpu->to_device(gpu, scales.g, hsc, n_sc * sizeof(float));
            free(hq);
            free(hsc);
            cpu->dequantize_fp8(cpu, back.c, ldx, qc, scales.c, rows, cols, tr, tc);
            gpu->dequantize_fp8(gpu, back.g, ldx, qg, scales.g, rows, cols, tr, tc);
            CHECK_MSG(same_bytes(back.c, back.g, back.n * sizeof(float)), "dequantize_fp8 %dx%d tiles %dx%d", rows, cols,
                      tr, tc);
            /* round_fp8 out of place (ldo != ldx), then in place. */
            cpu->round_fp8(cpu, out.c, cols + 5, x.c, ldx, rows, cols, tr, tc);
            gpu->round_fp8(gpu, out.g, cols + 5, x.g, ldx, rows, cols, tr, tc);
            CHECK_MSG(same_bytes(out.c, out.g, out.n * sizeof(float)), "round_fp8 %dx%d tiles %dx%d", rows, cols, tr, tc);
            cpu->round_fp8(cpu, x.c, ldx, x.c, ldx, rows, cols, tr, tc);
            gpu->round_fp8(gpu, x.g, ldx, x.g, ldx, rows, cols, tr, tc);
            CHECK_MSG(same_bytes(x.c, x.g, x.n * sizeof(float)), "round_fp8 in place %dx%d tiles %dx%d", rows, cols, tr,
                      tc);
            cpu->free(cpu, qc);
            gpu->free(gpu, qg);
            twin_free(x);
            twin_free(scales);
            twin_free(back);
            twin_free(out);
        }
    /* bf16: ties (low 16 bits 0x8000) both ways, values near overflow, and a NaN. */
    static const int bshapes[][2] = {{1, 1}, {37, 129}, {300, 1001}};
    for (size_t s = 0; s < sizeof bshapes / sizeof bshapes[0]; s++) {
        int rows = bshapes[s][0], cols = bshapes[s][1], ldx = cols + 2, ldo = cols + 1;
        size_t n = (size_t)rows * ldx;
        float *h = random_floats(n, -4, 4);
        for (size_t i = 0; i < n; i += 7) {
            uint32_t u;
            memcpy(&u, &h[i], 4);
            u = (u & 0xffff0000u) | 0x8000u;   /* exact tie */
            memcpy(&h[i], &u, 4);
        }
        if (n > 3) {
            h[1] = 3.4e38f;
            h[2] = -3.39e38f;
            h[3] = NAN;
        }
        twin x = twin_upload(h, n), out = twin_random((size_t)rows * ldo, -1, 1);
        cpu->round_bf16(cpu, out.c, ldo, x.c, ldx, rows, cols);
        gpu->round_bf16(gpu, out.g, ldo, x.g, ldx, rows, cols);
        CHECK_MSG(same_bytes(out.c, out.g, out.n * sizeof(float)), "round_bf16 %dx%d", rows, cols);
        cpu->round_bf16(cpu, x.c, ldx, x.c, ldx, rows, cols);
        gpu->round_bf16(gpu, x.g, ldx, x.g, ldx, rows, cols);
        CHECK_MSG(same_bytes(x.c, x.g, x.n * sizeof(float)), "round_bf16 in place %dx%d", rows, cols);
        free(h);
        twin_free(x);
        twin_free(out);
    }
}

int main(void) {
    char desc[2048];
    backend_cuda_describe(desc, sizeof desc);
    int count = backend_cuda_device_count();
    if (count == 0) {
        /* Asking for a device must fail with a message, not crash. */
        backend *none = backend_cuda_create(0);
        CHECK(none == NULL);
        CHECK(grpo_error_message()[0] != 0);
        CHECK_MSG(strstr(desc, "no CUDA device") || strstr(desc, "not compiled in"), "describe: %s", desc);
        backend_free(none);
        if (harness_failures) TEST_MAIN_END();
        TEST_SKIP("%s", desc);
    }
    printf("%s\n", desc);
    CHECK(strstr(desc, "cuda:0") != NULL);
    CHECK(backend_cuda_create(-1) == NULL);
    CHECK(backend_cuda_create(count) == NULL);
    CHECK(strstr(grpo_error_message(), "expected 0..") != NULL);

    cpu = backend_cpu_create();
    gpu = backend_cuda_create(0);
    CHECK_MSG(cpu && gpu, "%s", grpo_error_message());
    if (!cpu || !gpu) TEST_MAIN_END();
    CHECK_STR("cuda", gpu->name);
    CHECK_OK(BACKEND_REQUIRE(gpu, matmul));
    CHECK_OK(BACKEND_REQUIRE(gpu, swiglu_backward));
    CHECK_OK(BACKEND_REQUIRE(gpu, adamw));
    CHECK_OK(BACKEND_REQUIRE(gpu, round_fp8));
    CHECK_OK(BACKEND_REQUIRE(gpu, attention_backward));
    /* The attention ops (training and paged decoding) are checked in test_cuda_attention. */

    test_memory();
    test_matmul();
    test_elementwise();
    test_swiglu();
    test_bias_embedding();
    test_rmsnorm();
    test_rope();
    test_token_logprobs();
    test_adamw();
    test_quant();

    backend_free(gpu);
    backend_free(cpu);
    TEST_MAIN_END();
}
