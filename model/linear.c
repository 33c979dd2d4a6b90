/* Precision-aware products for a model's projections (model/linear.h): rounded weight
 * copies kept per parameter view, rounded activation operands in grow-once scratch. */
#include "model/linear.h"

#include <pthread.h>
#include <stdlib.h>

struct linear {
    param_set *ps;            /* not owned; the block whose weights are recognised */
    quant_precision precision;
    float *copy;              /* backend [ps->total]: rounded weights at the same offsets */
    uint64_t *fresh;          /* [ps->count] ps->version the view's copy was made at, or UINT64_MAX */
    float *scratch[2];        /* backend, rounded A and B operands */
    size_t scratch_floats[2];
    pthread_mutex_t lock;     /* one product at a time uses the scratch and the copies */
};

grpo_status linear_create(param_set *ps, linear **out) {
    *out = NULL;
    linear *lin = calloc(1, sizeof *lin);
    if (!lin) return grpo_fail(GRPO_ERR_NOMEM, "linear_create: out of memory");
    lin->ps = ps;
    lin->precision = QUANT_FP32;
    pthread_mutex_init(&lin->lock, NULL);
    *out = lin;
    return GRPO_OK;
}

static void drop_copies(linear *lin) {
    backend *be = lin->ps->be;
    be->free(be, lin->copy);
    lin->copy = NULL;
    free(lin->fresh);
    lin->fresh = NULL;
}

void linear_free(linear *lin) {
    if (!lin) return;
    drop_copies(lin);
    for (int i = 0; i < 2; i++) lin->ps->be->free(lin->ps->be, lin->scratch[i]);
    pthread_mutex_destroy(&lin->lock);
    free(lin);
}

quant_precision linear_get_precision(const linear *lin) { return lin ? lin->precision : QUANT_FP32; }

grpo_status linear_set_precision(linear *lin, quant_precision p) {
    backend *be = lin->ps->be;
    if (p == QUANT_BF16) GRPO_TRY(BACKEND_REQUIRE(be, round_bf16));
    if (p == QUANT_FP8) GRPO_TRY(BACKEND_REQUIRE(be, round_fp8));
    if (p != QUANT_FP32 && p != QUANT_BF16 && p != QUANT_FP8)
        return grpo_fail(GRPO_ERR_INVALID, "linear_set_precision: unknown precision %d", (int)p);
    pthread_mutex_lock(&lin->lock);
    drop_copies(lin);
    lin->precision = p;
    grpo_status s = GRPO_OK;
    if (p != QUANT_FP32 && lin->ps->total > 0) {
        lin->copy = be->alloc(be, lin->ps->total * sizeof(float));
        lin->fresh = malloc((size_t)(lin->ps->count > 0 ? lin->ps->count : 1) * sizeof *lin->fresh);
        if (!lin->copy || !lin->fresh) {
            drop_copies(lin);
            lin->precision = QUANT_FP32;
            s = grpo_fail(GRPO_ERR_NOMEM, "cannot allocate the %s copy of %zu parameters (%.1f MiB) on backend %s",
                          quant_precision_name(p), lin->ps->total, lin->ps->total * 4.0 / (1 << 20), be->name);
        } else {
            for (int i = 0; i < lin->ps->count; i++) lin->fresh[i] = UINT64_MAX;
        }
    }
    pthread_mutex_unlock(&lin->lock);
    return s;
}

/* The view holding parameter offset `off` (views are laid out in order). */
static int view_of(const param_set *ps, size_t off) {
    int lo = 0, hi = ps->count - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (ps->views[mid].offset <= off) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* The rounded copy of the weight at p (inside the block), made now if stale. A view is
 * a [rows, cols] matrix with cols its last dimension (128x128 blocks for fp8). */
static const float *weight_copy(linear *lin, backend *be, const float *p) {
    param_set *ps = lin->ps;
    size_t off = (size_t)(p - ps->data);
    int v = view_of(ps, off);
    if (lin->fresh[v] != ps->version) {
        const param_view *pv = &ps->views[v];
        int cols = (int)pv->shape[pv->ndim - 1], rows = (int)(pv->numel / (size_t)cols);
        const float *src = ps->data + pv->offset;
        float *dst = lin->copy + pv->offset;
        if (lin->precision == QUANT_BF16) be->round_bf16(be, dst, cols, src, cols, rows, cols);
        else be->round_fp8(be, dst, cols, src, cols, rows, cols, QUANT_TILE, QUANT_TILE);
        lin->fresh[v] = ps->version;
    }
    return lin->copy + off;
}

/* Operand `slot` stored [rows, cols] (ld apart), contracted along its columns (along_cols)
 * or its rows; returns the pointer and row stride to multiply. */
static const float *operand(linear *lin, backend *be, int slot, const float *p, int ld, int rows, int cols,
                            int along_cols, int weight_only, int *ld_out) {
    const param_set *ps = lin->ps;
    *ld_out = ld;
    if (p >= ps->data && p < ps->data + ps->total) return weight_copy(lin, be, p);
    if (weight_only) return p;
    size_t need = (size_t)rows * (size_t)cols;
    if (need > lin->scratch_floats[slot]) {
        be->free(be, lin->scratch[slot]);
        lin->scratch[slot] = be->alloc(be, need * sizeof(float));
        GRPO_ASSERTF(lin->scratch[slot] != NULL, "linear: cannot allocate %zu floats of %s scratch", need, be->name);
        lin->scratch_floats[slot] = need;
    }
    float *dst = lin->scratch[slot];
    if (lin->precision == QUANT_BF16) be->round_bf16(be, dst, cols, p, ld, rows, cols);
    else if (along_cols) be->round_fp8(be, dst, cols, p, ld, rows, cols, 1, QUANT_TILE);
    else be->round_fp8(be, dst, cols, p, ld, rows, cols, QUANT_TILE, 1);
    *ld_out = cols;
    return dst;
}

static void product(linear *lin, backend *be, int weight_only, int trans_a, int trans_b, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (!lin || lin->precision == QUANT_FP32 || M == 0 || N == 0 || K == 0) {
        be->matmul(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    pthread_mutex_lock(&lin->lock);
    int la, lb, w = weight_only;
    /* A is [M, K] (stored [K, M] when trans_a); B is [K, N] (stored [N, K] when trans_b). */
    const float *a = trans_a ? operand(lin, be, 0, A, lda, K, M, 0, w, &la)
                             : operand(lin, be, 0, A, lda, M, K, 1, w, &la);
    const float *b = trans_b ? operand(lin, be, 1, B, ldb, N, K, 1, w, &lb)
                             : operand(lin, be, 1, B, ldb, K, N, 0, w, &lb);
    be->matmul(be, trans_a, trans_b, M, N, K, alpha, a, la, b, lb, beta, C, ldc);
    pthread_mutex_unlock(&lin->lock);
}

void linear_matmul(linear *lin, backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    product(lin, be, 0, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void linear_matmul_weight_only(linear *lin, backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    product(lin, be, 1, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void linear_round_rows(linear *lin, backend *be, float *x, int ld, int rows, int cols) {
    if (!lin || lin->precision == QUANT_FP32 || rows == 0 || cols == 0) return;
    if (lin->precision == QUANT_BF16) be->round_bf16(be, x, ld, x, ld, rows, cols);
    else be->round_fp8(be, x, ld, x, ld, rows, cols, 1, QUANT_TILE);
}

void linear_forward(linear *lin, backend *be, float *y, int ldy, const float *x, int ldx, const float *W, int N,
                    int in, int out, float beta) {
    linear_matmul(lin, be, 0, 1, N, out, in, 1.0f, x, ldx, W, in, beta, y, ldy);
}

void linear_backward(linear *lin, backend *be, float *dx, float dx_beta, float *dW, const float *dy, const float *x,
                     const float *W, int N, int in, int out) {
    if (dx) linear_matmul(lin, be, 0, 0, N, in, out, 1.0f, dy, out, W, in, dx_beta, dx, in);
    if (dW) linear_matmul(lin, be, 1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
}
