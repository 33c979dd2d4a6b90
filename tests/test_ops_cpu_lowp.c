/* The CPU references of the low-precision and grouped products (core/cpu/cpu_lowp.c) and
 * the cuBLASLt layout maths (core/lowp_layout.h), on random inputs fresh each run (seed
 * printed; env GRPO_TEST_SEED repeats one), every output element checked:
 *  - to_bf16 gives round_bf16's values bit for bit (ties, subnormals, inf, NaN included);
 *  - matmul_bf16 / matmul_fp8 against an independent double-precision product of the
 *    decoded operands, for every transpose combination, odd sizes and partial tiles, with
 *    the float32 summation bound |err| <= (K + 4) 2^-24 (|alpha| sum_k |a_k b_k| + |beta c|)
 *    (Higham, Accuracy and Stability, thm 3.5: any order, one rounding per add);
 *  - matmul_fp8 of quantize_fp8's codes == matmul of round_fp8's copies, and matmul_bf16 of
 *    to_bf16's == matmul of round_bf16's, bit for bit (what model/linear.c relies on);
 *  - matmul_grouped == one matmul per group, bit for bit, empty groups included;
 *  - the scales rewritten into cuBLASLt's VEC128 / BLK128x128 layouts with transposed
 *    codes, multiplied as cuBLASLt defines the modes, give the reference product exactly. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/lowp_layout.h"
#include "core/quant.h"
#include "tests/harness.h"
#include "tests/ops_check.h"

static ops_rng rng;
static backend *be;

/* Random values with a spread of magnitudes (2^-6 .. 2^6 times uniform), never all zero. */
static float *random_matrix(size_t n) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        float u = ops_rng_uniform(&rng, -1.0f, 1.0f);
        x[i] = ldexpf(u == 0.0f ? 0.5f : u, ops_rng_int(&rng, 13) - 6);
    }
    return x;
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ---- to_bf16 ---- */

static void test_to_bf16(void) {
    int rows = 37, cols = 53, ldx = 61, ldo = 59;
    float *x = random_matrix((size_t)rows * ldx);
    /* Specials and exact ties (low 16 bits 0x8000, both parities of the kept bit). */
    const uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0x00000001u, 0x807fffffu,
                                 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x00000000u, 0x80000000u, 0x3f7fff80u};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) memcpy(&x[i * 3], &specials[i], 4);
    uint16_t *out = malloc((size_t)rows * ldo * sizeof *out);
    float *ref = malloc((size_t)rows * cols * sizeof *ref);
    be->to_bf16(be, out, ldo, x, ldx, rows, cols);
    be->round_bf16(be, ref, cols, x, ldx, rows, cols);
    int bad = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            uint32_t got = (uint32_t)out[(size_t)r * ldo + c] << 16, want = bits_of(ref[(size_t)r * cols + c]);
            if (got != want && bad++ < 5)
                fprintf(stderr, "to_bf16[%d,%d] of %a: bits %08x, round_bf16 %08x\n", r, c, x[(size_t)r * ldx + c],
                        got, want);
        }
    CHECK_INT(0, bad);
    free(x);
    free(out);
    free(ref);
}

/* ---- a checked product ---- */

/* C (M x N, ldc) against alpha * sum_k a(m,k) b(k,n) + beta * c0 with a, b the decoded
 * operands as double [M, K] and [K, N]; the float32 summation bound per element. */
static int check_product(const char *what, const float *C, int ldc, const double *a, const double *b, const float *c0,
                         int M, int N, int K, float alpha, float beta) {
    int bad = 0;
    double gamma = (K + 4) * ldexp(1.0, -24);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double sum = 0, abs_sum = 0;
            for (int k = 0; k < K; k++) {
                double p = a[(size_t)m * K + k] * b[(size_t)k * N + n];
                sum += p;
                abs_sum += fabs(p);
            }
            double c = c0[(size_t)m * ldc + n];
            double want = alpha * sum + (beta == 0.0f ? 0.0 : beta * c);
            double tol = gamma * (fabs(alpha) * abs_sum + fabs(beta * c)) + 1e-30;
            double got = C[(size_t)m * ldc + n];
            if (!(fabs(got - want) <= tol) && bad++ < 5)
                fprintf(stderr, "%s: C[%d,%d] = %.9g, want %.9g (tol %.3g)\n", what, m, n, got, want, tol);
        }
    return bad;
}

/* op(X) as double [rows, cols] from a stored float matrix (transposed when trans). */
static double *op_to_double(const float *x, int ld, int trans, int rows, int cols) {
    double *d = malloc((size_t)rows * cols * sizeof *d);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) d[(size_t)r * cols + c] = trans ? x[(size_t)c * ld + r] : x[(size_t)r * ld + c];
    return d;
}

/* ---- matmul_bf16 ---- */

static void test_matmul_bf16(int trans_a, int trans_b, int M, int N, int K) {
    int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K, b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    int lda = a_cols + 3, ldb = b_cols + 1, ldc = N + 2;
    float *xa = random_matrix((size_t)a_rows * a_cols), *xb = random_matrix((size_t)b_rows * b_cols);
    uint16_t *qa = calloc((size_t)a_rows * lda, 2), *qb = calloc((size_t)b_rows * ldb, 2);
    be->to_bf16(be, qa, lda, xa, a_cols, a_rows, a_cols);
    be->to_bf16(be, qb, ldb, xb, b_cols, b_rows, b_cols);
    /* the decoded operands, stored layout */
    float *da = malloc((size_t)a_rows * a_cols * sizeof *da), *db = malloc((size_t)b_rows * b_cols * sizeof *db);
    for (size_t i = 0; i < (size_t)a_rows * a_cols; i++)
        da[i] = st_bf16_to_f32(qa[(i / a_cols) * lda + i % a_cols]);
    for (size_t i = 0; i < (size_t)b_rows * b_cols; i++)
        db[i] = st_bf16_to_f32(qb[(i / b_cols) * ldb + i % b_cols]);
    float *c0 = random_matrix((size_t)M * ldc), *C = ops_copy(c0, (size_t)M * ldc);
    float alpha = 0.75f, beta = 0.5f;
    be->matmul_bf16(be, trans_a, trans_b, M, N, K, alpha, qa, lda, qb, ldb, beta, C, ldc);
    double *a = op_to_double(da, a_cols, trans_a, M, K), *b = op_to_double(db, b_cols, trans_b, K, N);
    char what[64];
    snprintf(what, sizeof what, "matmul_bf16 %d%d %dx%dx%d", trans_a, trans_b, M, N, K);
    CHECK_INT(0, check_product(what, C, ldc, a, b, c0, M, N, K, alpha, beta));
    /* The emulation: round_bf16 copies through matmul give the same bits. */
    float *ra = malloc((size_t)a_rows * a_cols * sizeof *ra), *rb = malloc((size_t)b_rows * b_cols * sizeof *rb);
    be->round_bf16(be, ra, a_cols, xa, a_cols, a_rows, a_cols);
    be->round_bf16(be, rb, b_cols, xb, b_cols, b_rows, b_cols);
    float *E = ops_copy(c0, (size_t)M * ldc), *L = ops_copy(c0, (size_t)M * ldc);
    be->matmul(be, trans_a, trans_b, M, N, K, alpha, ra, a_cols, rb, b_cols, beta, E, ldc);
    uint16_t *qa2 = malloc((size_t)a_rows * a_cols * 2), *qb2 = malloc((size_t)b_rows * b_cols * 2);
    be->to_bf16(be, qa2, a_cols, xa, a_cols, a_rows, a_cols);
    be->to_bf16(be, qb2, b_cols, xb, b_cols, b_rows, b_cols);
    be->matmul_bf16(be, trans_a, trans_b, M, N, K, alpha, qa2, a_cols, qb2, b_cols, beta, L, ldc);
    int differ = 0;
    for (size_t i = 0; i < (size_t)M * ldc; i++) differ += bits_of(E[i]) != bits_of(L[i]);
    CHECK_MSG(differ == 0, "%s: %d elements differ from matmul of round_bf16 copies", what, differ);
    free(xa), free(xb), free(qa), free(qb), free(da), free(db), free(c0), free(C), free(a), free(b);
    free(ra), free(rb), free(E), free(L), free(qa2), free(qb2);
}

/* ---- matmul_fp8 ---- */

typedef struct { int tr, tc; } tiles;

/* x (stored [rows, cols]) quantised: codes [rows, ld] and scales, and the decoded values. */
typedef struct {
    uint8_t *q;
    float *s;
    float *dec;   /* [rows, cols] decoded independently: e4m3(q) * scale of (r / tr, c / tc) */
    float *x;
    int rows, cols, ld;
    tiles t;
} fp8_operand;

static fp8_operand fp8_make(int rows, int cols, int ld, tiles t) {
    fp8_operand o = {0};
    o.rows = rows, o.cols = cols, o.ld = ld, o.t = t;
    o.x = random_matrix((size_t)rows * cols);
    uint8_t *packed = malloc((size_t)rows * cols + 1);
    o.s = malloc((quant_fp8_num_scales(rows, cols, t.tr, t.tc) + 1) * sizeof(float));
    be->quantize_fp8(be, packed, o.s, o.x, cols, rows, cols, t.tr, t.tc);
    o.q = calloc((size_t)rows * ld + 1, 1);
    for (int r = 0; r < rows; r++) memcpy(o.q + (size_t)r * ld, packed + (size_t)r * cols, (size_t)cols);
    free(packed);
    o.dec = malloc((size_t)rows * cols * sizeof(float) + 4);
    int across = (cols + t.tc - 1) / t.tc;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            o.dec[(size_t)r * cols + c] =
                st_e4m3_to_f32(o.q[(size_t)r * ld + c]) * o.s[(size_t)(r / t.tr) * across + c / t.tc];
    return o;
}

static void fp8_free(fp8_operand *o) {
    free(o->q), free(o->s), free(o->dec), free(o->x);
}

/* The product cuBLASLt computes from the rewritten layouts (core/lowp_layout.h): codes
 * K-major, each element times lowp_scale_at of its operand, in double; C[m, n] for the
 * row-major product. Returns the number of elements that differ from want (double). */
static int check_lt_layout(const fp8_operand *A, int trans_a, const fp8_operand *B, int trans_b, int M, int N, int K,
                           const double *want) {
    lowp_operand pa = lowp_operand_plan(!trans_a, M, K, A->t.tr, A->t.tc);
    lowp_operand pb = lowp_operand_plan(trans_b, N, K, B->t.tr, B->t.tc);
    const fp8_operand *ops[2] = {A, B};
    lowp_operand *plans[2] = {&pa, &pb};
    float *scales[2];
    uint8_t *codes[2];
    int bad = 0;
    for (int w = 0; w < 2; w++) {
        const lowp_operand *p = plans[w];
        const fp8_operand *o = ops[w];
        CHECK(p->mode != LOWP_SCALE_NONE);
        CHECK(p->mode != LOWP_SCALE_BLK128 || (p->scale_ld % 4 == 0 && p->scale_ld >= p->k_blocks));
        size_t n = lowp_scale_floats(p);
        scales[w] = malloc((n ? n : 1) * sizeof(float));
        for (size_t i = 0; i < n; i++) scales[w][i] = NAN;   /* padding stays NaN: never read */
        for (int i = 0; i < lowp_scale_rows(p); i++)
            for (int j = 0; j < lowp_scale_cols(p); j++) {
                size_t d, s = lowp_scale_source(p, i, j, &d);
                CHECK(d < n);
                scales[w][d] = o->s[s];
                /* in place: the stored scale already sits where cuBLASLt reads it */
                if (lowp_scales_in_place(p) && d != s) bad++;
            }
        /* codes [outer, K] */
        codes[w] = malloc((size_t)p->outer * K);
        for (int oi = 0; oi < p->outer; oi++)
            for (int k = 0; k < K; k++)
                codes[w][(size_t)oi * K + k] = p->k_major ? o->q[(size_t)oi * o->ld + k] : o->q[(size_t)k * o->ld + oi];
    }
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double sum = 0;
            for (int k = 0; k < K; k++) {
                double av = (double)st_e4m3_to_f32(codes[0][(size_t)m * K + k]) * lowp_scale_at(&pa, scales[0], m, k);
                double bv = (double)st_e4m3_to_f32(codes[1][(size_t)n * K + k]) * lowp_scale_at(&pb, scales[1], n, k);
                /* a float32 product e4m3 * scale is what the reference decodes: round it alike */
                sum += (double)(float)av * (double)(float)bv;
            }
            if (!(fabs(sum - want[(size_t)m * N + n]) <= 1e-12 * fabs(want[(size_t)m * N + n]) + 1e-300) &&
                bad++ < 5)
                fprintf(stderr, "cuBLASLt layout model: C[%d,%d] = %.17g, reference %.17g\n", m, n, sum,
                        want[(size_t)m * N + n]);
        }
    for (int w = 0; w < 2; w++) free(scales[w]), free(codes[w]);
    return bad;
}

static void test_matmul_fp8(int trans_a, int trans_b, int M, int N, int K, tiles ta, tiles tb, int lt_layout) {
    int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K, b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    fp8_operand A = fp8_make(a_rows, a_cols, a_cols + 5, ta), B = fp8_make(b_rows, b_cols, b_cols + 2, tb);
    int ldc = N + 1;
    float *c0 = random_matrix((size_t)M * ldc), *C = ops_copy(c0, (size_t)M * ldc);
    float alpha = -1.25f, beta = 0.25f;
    be->matmul_fp8(be, trans_a, trans_b, M, N, K, alpha, A.q, A.ld, A.s, ta.tr, ta.tc, B.q, B.ld, B.s, tb.tr, tb.tc,
                   beta, C, ldc);
    double *a = op_to_double(A.dec, a_cols, trans_a, M, K), *b = op_to_double(B.dec, b_cols, trans_b, K, N);
    char what[96];
    snprintf(what, sizeof what, "matmul_fp8 %d%d %dx%dx%d tiles %dx%d %dx%d", trans_a, trans_b, M, N, K, ta.tr, ta.tc,
             tb.tr, tb.tc);
    CHECK_INT(0, check_product(what, C, ldc, a, b, c0, M, N, K, alpha, beta));

    /* The emulation (round_fp8 copies through matmul, contiguous as linear.c keeps them)
     * and the codes path give the same bits. */
    float *ra = malloc((size_t)a_rows * a_cols * sizeof(float)), *rb = malloc((size_t)b_rows * b_cols * sizeof(float));
    be->round_fp8(be, ra, a_cols, A.x, a_cols, a_rows, a_cols, ta.tr, ta.tc);
    be->round_fp8(be, rb, b_cols, B.x, b_cols, b_rows, b_cols, tb.tr, tb.tc);
    float *E = ops_copy(c0, (size_t)M * ldc), *L = ops_copy(c0, (size_t)M * ldc);
    be->matmul(be, trans_a, trans_b, M, N, K, alpha, ra, a_cols, rb, b_cols, beta, E, ldc);
    uint8_t *qa = malloc((size_t)a_rows * a_cols), *qb = malloc((size_t)b_rows * b_cols);
    float *sa = malloc(quant_fp8_num_scales(a_rows, a_cols, ta.tr, ta.tc) * sizeof(float));
    float *sb = malloc(quant_fp8_num_scales(b_rows, b_cols, tb.tr, tb.tc) * sizeof(float));
    be->quantize_fp8(be, qa, sa, A.x, a_cols, a_rows, a_cols, ta.tr, ta.tc);
    be->quantize_fp8(be, qb, sb, B.x, b_cols, b_rows, b_cols, tb.tr, tb.tc);
    be->matmul_fp8(be, trans_a, trans_b, M, N, K, alpha, qa, a_cols, sa, ta.tr, ta.tc, qb, b_cols, sb, tb.tr, tb.tc,
                   beta, L, ldc);
    int differ = 0;
    for (size_t i = 0; i < (size_t)M * ldc; i++) differ += bits_of(E[i]) != bits_of(L[i]);
    CHECK_MSG(differ == 0, "%s: %d elements differ from matmul of round_fp8 copies", what, differ);

    if (lt_layout) {
        /* reference in double: sum of the float32 decoded products */
        double *want = malloc((size_t)M * N * sizeof *want);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += a[(size_t)m * K + k] * b[(size_t)k * N + n];
                want[(size_t)m * N + n] = s;
            }
        CHECK_MSG(check_lt_layout(&A, trans_a, &B, trans_b, M, N, K, want) == 0, "%s: cuBLASLt layout model", what);
        free(want);
    }
    fp8_free(&A), fp8_free(&B);
    free(c0), free(C), free(a), free(b), free(ra), free(rb), free(E), free(L), free(qa), free(qb), free(sa), free(sb);
}

/* The plans linear.c's products get, and the ones that must fall back. */
static void test_plans(void) {
    /* forward y = x W^T: A = x [T, in] 1x128, B = W [out, in] 128x128 (trans_b) */
    lowp_operand a = lowp_operand_plan(1, 300, 528, 1, 128), b = lowp_operand_plan(1, 200, 528, 128, 128);
    CHECK_INT(LOWP_SCALE_VEC128, a.mode);
    CHECK_INT(LOWP_SCALE_BLK128, b.mode);
    CHECK_INT(5, a.k_blocks);
    CHECK_INT(8, b.scale_ld);   /* ceil(528/128) = 5 rounded up to 8 */
    CHECK_INT(300, a.scale_ld);
    CHECK_INT(5 * 300, (int)lowp_scale_floats(&a));
    CHECK_INT(2 * 8, (int)lowp_scale_floats(&b));
    CHECK(lowp_pair_supported(&a, &b));
    CHECK(!lowp_scales_in_place(&a));
    CHECK(!lowp_scales_in_place(&b));
    /* dgrad dx = dy W: B = W stored [out=K, in=N] 128x128, not K-major */
    b = lowp_operand_plan(0, 528, 200, 128, 128);
    CHECK_INT(LOWP_SCALE_BLK128, b.mode);
    CHECK_INT(0, b.k_major);
    CHECK(!lowp_scales_in_place(&b));
    /* wgrad dW = dy^T x: both stored [tokens = K, outer], 128x1: scales already outer-major */
    a = lowp_operand_plan(0, 200, 300, 128, 1);
    b = lowp_operand_plan(0, 520, 300, 128, 1);
    CHECK_INT(LOWP_SCALE_VEC128, a.mode);
    CHECK(lowp_scales_in_place(&a) && lowp_scales_in_place(&b));
    CHECK(!lowp_pair_supported(&a, &b));   /* K = 300 is no multiple of 16 */
    a.K = b.K = 304;
    CHECK(lowp_pair_supported(&a, &b));
    /* a weight multiplied by a weight, or tiles no mode takes: fall back */
    a = lowp_operand_plan(1, 256, 256, 128, 128);
    b = lowp_operand_plan(1, 256, 256, 128, 128);
    CHECK(!lowp_pair_supported(&a, &b));
    CHECK_INT(LOWP_SCALE_NONE, lowp_operand_plan(1, 64, 256, 1, 64).mode);
    CHECK_INT(LOWP_SCALE_NONE, lowp_operand_plan(0, 64, 256, 1, 128).mode);   /* 1x128 across a K-down operand */
    /* 128x128 with k_blocks a multiple of 4: the stored rows are cuBLASLt's */
    b = lowp_operand_plan(1, 300, 512, 128, 128);
    CHECK(lowp_scales_in_place(&b));
}

/* ---- matmul_grouped ---- */

static void test_grouped(int trans_a, int trans_b) {
    enum { G = 5 };
    const int Ms[G] = {7, 0, 33, 1, 0};
    int N = 19, K = 45;
    int lda = (trans_a ? 40 : K) + 2, ldb = (trans_b ? K : N) + 3, ldc = N + 1;
    float *A[G], *B[G], *C[G], *R[G];
    for (int g = 0; g < G; g++) {
        int a_rows = trans_a ? K : Ms[g], b_rows = trans_b ? N : K;
        A[g] = random_matrix((size_t)a_rows * lda + 1);
        B[g] = random_matrix((size_t)b_rows * ldb);
        C[g] = random_matrix((size_t)Ms[g] * ldc + 1);
        R[g] = ops_copy(C[g], (size_t)Ms[g] * ldc + 1);
    }
    float alpha = 1.5f, beta = 1.0f;
    be->matmul_grouped(be, trans_a, trans_b, G, Ms, N, K, alpha, (const float *const *)A, lda, (const float *const *)B,
                       ldb, beta, C, ldc);
    int differ = 0;
    for (int g = 0; g < G; g++) {
        if (Ms[g]) be->matmul(be, trans_a, trans_b, Ms[g], N, K, alpha, A[g], lda, B[g], ldb, beta, R[g], ldc);
        for (size_t i = 0; i < (size_t)Ms[g] * ldc + 1; i++) differ += bits_of(C[g][i]) != bits_of(R[g][i]);
    }
    CHECK_MSG(differ == 0, "matmul_grouped %d%d: %d elements differ from separate matmuls", trans_a, trans_b, differ);
    for (int g = 0; g < G; g++) free(A[g]), free(B[g]), free(C[g]), free(R[g]);
}

int main(void) {
    const char *env = getenv("GRPO_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("seed %llu (GRPO_TEST_SEED=%llu repeats this run)\n", (unsigned long long)seed, (unsigned long long)seed);
    rng.state = seed;
    be = backend_cpu_create();
    GRPO_ASSERT(be);

    test_to_bf16();
    test_plans();
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            test_matmul_bf16(ta, tb, 37, 29, 131);
            test_matmul_bf16(ta, tb, 1, 3, 2);
            test_grouped(ta, tb);
        }
    const tiles act = {1, 128}, wgt = {128, 128}, down = {128, 1}, odd = {3, 5};
    /* the tilings linear.c uses: forward (0,1), dgrad (0,0), wgrad (1,0); partial tiles
     * (K = 300, N = 200), 128-multiples, and one row */
    test_matmul_fp8(0, 1, 45, 200, 300, act, wgt, 1);
    test_matmul_fp8(0, 0, 45, 200, 300, act, wgt, 1);
    test_matmul_fp8(1, 0, 130, 77, 300, down, down, 1);
    test_matmul_fp8(1, 1, 33, 140, 256, down, wgt, 1);
    test_matmul_fp8(0, 1, 128, 256, 256, act, wgt, 1);
    test_matmul_fp8(0, 1, 1, 129, 640, act, wgt, 1);
    /* any tiling decodes (the CPU takes what cuBLASLt does not) */
    test_matmul_fp8(0, 1, 17, 23, 41, odd, odd, 0);
    test_matmul_fp8(1, 0, 9, 11, 13, wgt, act, 0);
    /* beta with no product: C = beta C */
    {
        float c[6] = {1, 2, 3, 4, 5, 6};
        be->matmul_fp8(be, 0, 1, 2, 3, 0, 1.0f, NULL, 1, NULL, 1, 128, NULL, 1, NULL, 128, 128, 2.0f, c, 3);
        CHECK_NEAR(12.0, c[5], 0, 0);
        be->matmul_bf16(be, 0, 0, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 0.0f, c, 3);
        CHECK_NEAR(0.0, c[0], 0, 0);
    }
    backend_free(be);
    TEST_MAIN_END();
}
