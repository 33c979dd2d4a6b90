/* Precision-aware products for a model's projections (model/linear.h). Two ways to the
 * same numbers:
 *  - compact (the backend has to_bf16 + matmul_bf16, or quantize_fp8 + matmul_fp8): weight
 *    copies kept as bf16 bit patterns or E4M3 codes + 128x128 block scales, activation
 *    operands coded into scratch, the product by the backend's low-precision matmul (on a
 *    GPU: tensor cores through cuBLASLt);
 *  - emulation (otherwise, and for what the compact layouts cannot express: weight-only
 *    products, an FP8 weight slice that does not start on its 128x128 grid): float32
 *    copies rounded to the format's values, the product by be->matmul.
 * On the CPU both give the same bits (the CPU matmul_fp8 / matmul_bf16 decode exactly and
 * run the same float32 product; tests/test_ops_cpu_lowp.c). */
#include "model/linear.h"

#include <pthread.h>
#include <stdlib.h>

struct linear {
    param_set *ps;            /* not owned; the block whose weights are recognised */
    quant_precision precision;
    int compact;              /* bf16 / fp8 products through matmul_bf16 / matmul_fp8 */
    /* emulation: rounded float32 weights at the block's offsets (made when first needed in compact mode) */
    float *copy;              /* backend [ps->total] */
    uint64_t *fresh;          /* [ps->count] ps->version the view's copy was made at, or UINT64_MAX */
    /* compact weights */
    void *codes;              /* backend [ps->total] uint16 bf16 bit patterns or uint8 E4M3 codes */
    float *scales;            /* backend fp8: each view's 128x128 block scales, view after view */
    size_t *scale_offset;     /* [ps->count] fp8: where view v's scales start */
    uint64_t *cfresh;         /* [ps->count] as fresh, for the compact copy */
    float *scratch[2];        /* backend, rounded A and B operands (emulation) */
    size_t scratch_floats[2];
    void *cscratch[2];        /* backend, coded A and B operands (compact): codes, then fp8 scales */
    size_t cscratch_bytes[2];
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
    be->free(be, lin->codes);
    be->free(be, lin->scales);
    lin->copy = NULL;
    lin->codes = NULL;
    lin->scales = NULL;
    free(lin->fresh);
    free(lin->cfresh);
    free(lin->scale_offset);
    lin->fresh = lin->cfresh = NULL;
    lin->scale_offset = NULL;
    lin->compact = 0;
}

void linear_free(linear *lin) {
    if (!lin) return;
    drop_copies(lin);
    for (int i = 0; i < 2; i++) {
        lin->ps->be->free(lin->ps->be, lin->scratch[i]);
        lin->ps->be->free(lin->ps->be, lin->cscratch[i]);
    }
    pthread_mutex_destroy(&lin->lock);
    free(lin);
}

quant_precision linear_get_precision(const linear *lin) { return lin ? lin->precision : QUANT_FP32; }

static void view_shape(const param_view *pv, int *rows, int *cols) {
    *cols = (int)pv->shape[pv->ndim - 1];
    *rows = (int)(pv->numel / (size_t)*cols);
}

/* The float32 emulation copy and its freshness marks; 0 when out of memory. */
static int make_float_copy(linear *lin) {
    backend *be = lin->ps->be;
    lin->copy = be->alloc(be, lin->ps->total * sizeof(float));
    lin->fresh = malloc((size_t)(lin->ps->count > 0 ? lin->ps->count : 1) * sizeof *lin->fresh);
    if (!lin->copy || !lin->fresh) return 0;
    for (int i = 0; i < lin->ps->count; i++) lin->fresh[i] = UINT64_MAX;
    return 1;
}

/* The compact copies (codes, fp8 scales) and their marks; 0 when out of memory. */
static int make_compact_copy(linear *lin, quant_precision p) {
    param_set *ps = lin->ps;
    backend *be = ps->be;
    size_t n = (size_t)(ps->count > 0 ? ps->count : 1);
    lin->cfresh = malloc(n * sizeof *lin->cfresh);
    lin->scale_offset = malloc(n * sizeof *lin->scale_offset);
    lin->codes = be->alloc(be, ps->total * (p == QUANT_BF16 ? sizeof(uint16_t) : sizeof(uint8_t)));
    if (!lin->cfresh || !lin->scale_offset || !lin->codes) return 0;
    size_t scales = 0;
    for (int i = 0; i < ps->count; i++) {
        int rows, cols;
        view_shape(&ps->views[i], &rows, &cols);
        lin->scale_offset[i] = scales;
        if (p == QUANT_FP8) scales += quant_fp8_num_scales(rows, cols, QUANT_TILE, QUANT_TILE);
        lin->cfresh[i] = UINT64_MAX;
    }
    if (p == QUANT_FP8 && !(lin->scales = be->alloc(be, (scales ? scales : 1) * sizeof(float)))) return 0;
    return 1;
}

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
        int compact = p == QUANT_BF16 ? be->to_bf16 && be->matmul_bf16 : be->quantize_fp8 && be->matmul_fp8;
        if (compact ? make_compact_copy(lin, p) : make_float_copy(lin)) {
            lin->compact = compact;
        } else {
            drop_copies(lin);
            lin->precision = QUANT_FP32;
            s = grpo_fail(GRPO_ERR_NOMEM, "cannot allocate the %s copy of %zu parameters (%.1f MiB as %s) on backend %s",
                          quant_precision_name(p), lin->ps->total,
                          lin->ps->total * (compact ? (p == QUANT_BF16 ? 2.0 : 1.0) : 4.0) / (1 << 20),
                          compact ? "codes" : "float32", be->name);
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

static int is_weight(const linear *lin, const float *p) {
    return p >= lin->ps->data && p < lin->ps->data + lin->ps->total;
}

/* ---- emulation: float32 copies of the rounded values ---- */

/* The rounded copy of the weight at p (inside the block), made now if stale. A view is
 * a [rows, cols] matrix with cols its last dimension (128x128 blocks for fp8). */
static const float *weight_copy(linear *lin, backend *be, const float *p) {
    param_set *ps = lin->ps;
    if (!lin->copy)   /* compact mode: the first product that needs float weights makes them */
        GRPO_ASSERTF(make_float_copy(lin), "linear: cannot allocate the float32 %s copy of %zu parameters on %s",
                     quant_precision_name(lin->precision), ps->total, be->name);
    size_t off = (size_t)(p - ps->data);
    int v = view_of(ps, off);
    if (lin->fresh[v] != ps->version) {
        const param_view *pv = &ps->views[v];
        int rows, cols;
        view_shape(pv, &rows, &cols);
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
    *ld_out = ld;
    if (is_weight(lin, p)) return weight_copy(lin, be, p);
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

/* ---- compact: codes (+ scales) ---- */

/* One operand of matmul_bf16 / matmul_fp8. */
typedef struct {
    const void *codes;
    int ld;
    const float *scales;   /* fp8 */
    int tile_rows, tile_cols;
} coded;

/* 1 when the operand stored [rows, cols] (ld apart) at p can be multiplied from the
 * compact copies: always for bf16 and for activations; an fp8 weight only when the slice
 * starts on its view's 128x128 grid and spans the view's width (its block scales are then
 * a contiguous run of the view's). */
static int compact_ok(const linear *lin, const float *p, int ld, int cols) {
    if (lin->precision == QUANT_BF16 || !is_weight(lin, p)) return 1;
    const param_set *ps = lin->ps;
    size_t off = (size_t)(p - ps->data);
    const param_view *pv = &ps->views[view_of(ps, off)];
    int vrows, vcols;
    view_shape(pv, &vrows, &vcols);
    size_t rel = off - pv->offset;
    return rel % (size_t)vcols == 0 && (rel / (size_t)vcols) % QUANT_TILE == 0 && ld == vcols &&
           (cols + QUANT_TILE - 1) / QUANT_TILE == (vcols + QUANT_TILE - 1) / QUANT_TILE;
}

/* The compact copy of the weight at p (compact_ok), made now if stale. */
static coded weight_coded(linear *lin, backend *be, const float *p, int ld) {
    param_set *ps = lin->ps;
    size_t off = (size_t)(p - ps->data);
    int v = view_of(ps, off);
    const param_view *pv = &ps->views[v];
    int rows, cols;
    view_shape(pv, &rows, &cols);
    if (lin->cfresh[v] != ps->version) {
        const float *src = ps->data + pv->offset;
        if (lin->precision == QUANT_BF16)
            be->to_bf16(be, (uint16_t *)lin->codes + pv->offset, cols, src, cols, rows, cols);
        else
            be->quantize_fp8(be, (uint8_t *)lin->codes + pv->offset, lin->scales + lin->scale_offset[v], src, cols,
                             rows, cols, QUANT_TILE, QUANT_TILE);
        lin->cfresh[v] = ps->version;
    }
    coded c = {0};
    c.ld = ld;
    if (lin->precision == QUANT_BF16) {
        c.codes = (const uint16_t *)lin->codes + off;
        return c;
    }
    size_t first_row = (off - pv->offset) / (size_t)cols;
    c.codes = (const uint8_t *)lin->codes + off;
    c.scales = lin->scales + lin->scale_offset[v] +
               first_row / QUANT_TILE * (size_t)((cols + QUANT_TILE - 1) / QUANT_TILE);
    c.tile_rows = c.tile_cols = QUANT_TILE;
    return c;
}

/* Operand `slot` stored [rows, cols] (ld apart), contracted along its columns (along_cols)
 * or its rows, coded: a weight's compact copy, or the activation coded into scratch (fp8:
 * 1x128 tiles along its columns, 128x1 down its rows). */
static coded operand_coded(linear *lin, backend *be, int slot, const float *p, int ld, int rows, int cols,
                           int along_cols) {
    if (is_weight(lin, p)) return weight_coded(lin, be, p, ld);
    int fp8 = lin->precision == QUANT_FP8;
    int tr = along_cols ? 1 : QUANT_TILE, tc = along_cols ? QUANT_TILE : 1;
    size_t code_bytes = (size_t)rows * (size_t)cols * (fp8 ? 1 : 2);
    code_bytes = (code_bytes + 255) / 256 * 256;   /* the scales start 256-byte aligned */
    size_t need = code_bytes + (fp8 ? quant_fp8_num_scales(rows, cols, tr, tc) * sizeof(float) : 0);
    if (need > lin->cscratch_bytes[slot]) {
        be->free(be, lin->cscratch[slot]);
        lin->cscratch[slot] = be->alloc(be, need);
        GRPO_ASSERTF(lin->cscratch[slot] != NULL, "linear: cannot allocate %zu bytes of %s %s operand scratch", need,
                     be->name, quant_precision_name(lin->precision));
        lin->cscratch_bytes[slot] = need;
    }
    coded c = {0};
    c.codes = lin->cscratch[slot];
    c.ld = cols;
    if (!fp8) {
        be->to_bf16(be, lin->cscratch[slot], cols, p, ld, rows, cols);
        return c;
    }
    float *scales = (float *)((char *)lin->cscratch[slot] + code_bytes);
    be->quantize_fp8(be, lin->cscratch[slot], scales, p, ld, rows, cols, tr, tc);
    c.scales = scales;
    c.tile_rows = tr;
    c.tile_cols = tc;
    return c;
}

static void product(linear *lin, backend *be, int weight_only, int trans_a, int trans_b, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (!lin || lin->precision == QUANT_FP32 || M == 0 || N == 0 || K == 0) {
        be->matmul(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    pthread_mutex_lock(&lin->lock);
    /* A is [M, K] (stored [K, M] when trans_a); B is [K, N] (stored [N, K] when trans_b). */
    int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K, b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    if (lin->compact && !weight_only && compact_ok(lin, A, lda, a_cols) && compact_ok(lin, B, ldb, b_cols)) {
        coded a = operand_coded(lin, be, 0, A, lda, a_rows, a_cols, !trans_a);
        coded b = operand_coded(lin, be, 1, B, ldb, b_rows, b_cols, trans_b);
        if (lin->precision == QUANT_BF16)
            be->matmul_bf16(be, trans_a, trans_b, M, N, K, alpha, a.codes, a.ld, b.codes, b.ld, beta, C, ldc);
        else
            be->matmul_fp8(be, trans_a, trans_b, M, N, K, alpha, a.codes, a.ld, a.scales, a.tile_rows, a.tile_cols,
                           b.codes, b.ld, b.scales, b.tile_rows, b.tile_cols, beta, C, ldc);
    } else {
        int la, lb, w = weight_only;
        const float *a = operand(lin, be, 0, A, lda, a_rows, a_cols, !trans_a, w, &la);
        const float *b = operand(lin, be, 1, B, ldb, b_rows, b_cols, trans_b, w, &lb);
        be->matmul(be, trans_a, trans_b, M, N, K, alpha, a, la, b, lb, beta, C, ldc);
    }
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
