/* Layout maths of the block-scaled FP8 product (core/backend.h's matmul_fp8) on cuBLASLt,
 * kept in plain C so the CPU tests check it (tests/test_ops_cpu_lowp.c) and the CUDA
 * backend (core/cuda/cuda_lowp.cu) runs the same functions on the device.
 *
 * cuBLASLt multiplies FP8 only in the "TN" layout: both operands K-major (each row of
 * the [outer, K] operand holds its whole contraction). Row-major C[M,N] = A[M,K] B[K,N]
 * is column-major C^T[N,M] = B^T A^T, so cuBLASLt's A is our B held as [N, K] (op T) and
 * cuBLASLt's B is our A held as [M, K] (op N). An operand stored the other way ([K, outer]:
 * A with trans_a, B without trans_b) has its codes transposed into scratch first.
 * Its scales (quantize_fp8's: [ceil(rows/tile_rows), ceil(cols/tile_cols)] row-major over
 * the operand AS STORED) are rewritten into the layout the scale mode wants (PyTorch's
 * _scaled_mm checks, which hand the tensors straight to cuBLASLt 12.9+, state the same):
 *   VEC128_32F    (1x128 tiles along K):  scale of (o, k) at (k / 128) * outer + o
 *                 (outer-dimension-major: the `outer` scales of one K block are adjacent);
 *   BLK128x128_32F (128x128 blocks):      scale of (o, k) at (o / 128) * ld + k / 128,
 *                 ld = ceil(K / 128) rounded up to a multiple of 4 (16-byte rows).
 * Tiles that are neither (e.g. a weight tiled 1x128) have no scale mode: the product falls
 * back to decoding both operands (cuda_lowp.cu says so once in the log). */
#ifndef GRPO_LOWP_LAYOUT_H
#define GRPO_LOWP_LAYOUT_H

#include <stddef.h>

#ifdef __CUDACC__
#define LOWP_HD __host__ __device__
#else
#define LOWP_HD
#endif

#define LOWP_BLOCK 128   /* the scale block along K (and along the outer dimension for 128x128) */

typedef enum {
    LOWP_SCALE_NONE = 0,    /* tiles no cuBLASLt mode takes: decode and multiply in float32 */
    LOWP_SCALE_VEC128 = 1,  /* CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F */
    LOWP_SCALE_BLK128 = 2   /* CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F */
} lowp_scale_mode;

/* One operand of matmul_fp8 on its way to cuBLASLt. */
typedef struct {
    lowp_scale_mode mode;
    int k_major;      /* 1: stored [outer, K] (no transpose); 0: stored [K, outer], codes transposed */
    int outer;        /* M for A, N for B */
    int K;
    int tile_rows, tile_cols;   /* the tiles of the operand AS STORED */
    int k_blocks;     /* ceil(K / 128) */
    int scale_ld;     /* BLK128: the padded row of block scales; VEC128: outer */
} lowp_operand;

static inline LOWP_HD int lowp_ceil_div(int a, int b) { return (a + b - 1) / b; }

/* The plan of an operand stored [outer, K] when k_major, else [K, outer], tiled
 * tile_rows x tile_cols as stored. */
static inline LOWP_HD lowp_operand lowp_operand_plan(int k_major, int outer, int K, int tile_rows, int tile_cols) {
    lowp_operand op;
    op.k_major = k_major;
    op.outer = outer;
    op.K = K;
    op.tile_rows = tile_rows;
    op.tile_cols = tile_cols;
    op.k_blocks = lowp_ceil_div(K, LOWP_BLOCK);
    /* tile extent along K and along the outer dimension */
    int tk = k_major ? tile_cols : tile_rows, to = k_major ? tile_rows : tile_cols;
    if (tk == LOWP_BLOCK && to == 1) {
        op.mode = LOWP_SCALE_VEC128;
        op.scale_ld = outer;
    } else if (tk == LOWP_BLOCK && to == LOWP_BLOCK) {
        op.mode = LOWP_SCALE_BLK128;
        op.scale_ld = (op.k_blocks + 3) / 4 * 4;
    } else {
        op.mode = LOWP_SCALE_NONE;
        op.scale_ld = 0;
    }
    return op;
}

/* Scale slots of the operand: VEC128 [k_blocks, outer]; BLK128 [ceil(outer/128), scale_ld]. */
static inline LOWP_HD int lowp_scale_rows(const lowp_operand *op) {
    return op->mode == LOWP_SCALE_VEC128 ? op->k_blocks : lowp_ceil_div(op->outer, LOWP_BLOCK);
}
static inline LOWP_HD int lowp_scale_cols(const lowp_operand *op) {
    return op->mode == LOWP_SCALE_VEC128 ? op->outer : op->k_blocks;
}
static inline LOWP_HD size_t lowp_scale_floats(const lowp_operand *op) {
    if (op->mode == LOWP_SCALE_NONE) return 0;
    return (size_t)lowp_scale_rows(op) * (size_t)op->scale_ld;
}

/* Where quantize_fp8 put the scale of stored element (r, c) of a [rows, cols] matrix. */
static inline LOWP_HD size_t lowp_stored_scale_index(int r, int c, int cols, int tile_rows, int tile_cols) {
    return (size_t)(r / tile_rows) * (size_t)lowp_ceil_div(cols, tile_cols) + (size_t)(c / tile_cols);
}

/* For scale slot (i, j) of the cuBLASLt layout (i < lowp_scale_rows, j < lowp_scale_cols):
 * the index cuBLASLt reads it at (*dst) and the index of the stored scale that belongs
 * there (return value). VEC128: (i, j) = (k block, outer index); BLK128: (outer block,
 * k block). Padding slots (j >= k_blocks in a BLK128 row) have no source. */
static inline LOWP_HD size_t lowp_scale_source(const lowp_operand *op, int i, int j, size_t *dst) {
    int o, k;   /* an element of the block, in (outer, K) coordinates */
    if (op->mode == LOWP_SCALE_VEC128) {
        k = i * LOWP_BLOCK;
        o = j;
    } else {
        o = i * LOWP_BLOCK;
        k = j * LOWP_BLOCK;
    }
    *dst = (size_t)i * (size_t)op->scale_ld + (size_t)j;
    if (op->k_major) return lowp_stored_scale_index(o, k, op->K, op->tile_rows, op->tile_cols);
    return lowp_stored_scale_index(k, o, op->outer, op->tile_rows, op->tile_cols);
}

/* 1 when the stored scales already are the cuBLASLt layout element for element (no
 * rewrite needed): a K-down-rows 128x1 operand (its [k_blocks, outer] scales are
 * outer-major), or a layout of one row/column where both orders agree. */
static inline LOWP_HD int lowp_scales_in_place(const lowp_operand *op) {
    if (op->mode == LOWP_SCALE_VEC128) return !op->k_major || op->outer == 1 || op->k_blocks == 1;
    if (op->mode == LOWP_SCALE_BLK128)
        return op->k_major && (op->k_blocks == op->scale_ld || lowp_ceil_div(op->outer, LOWP_BLOCK) == 1);
    return 0;
}

/* The scale cuBLASLt applies to element (o, k) of the operand, read from the rewritten
 * scales (what a block-scaled product multiplies; the tests' model of cuBLASLt). */
static inline LOWP_HD float lowp_scale_at(const lowp_operand *op, const float *scales, int o, int k) {
    if (op->mode == LOWP_SCALE_VEC128) return scales[(size_t)(k / LOWP_BLOCK) * (size_t)op->scale_ld + (size_t)o];
    return scales[(size_t)(o / LOWP_BLOCK) * (size_t)op->scale_ld + (size_t)(k / LOWP_BLOCK)];
}

/* 1 when cuBLASLt may take the pair at all: one of the scale modes each, not both 128x128
 * (cuBLASLt on Hopper pairs VEC128 with VEC128 or BLK128, not BLK128 with BLK128), K a
 * multiple of 16 (FP8 rows of 16-byte multiples). The heuristic still has the last word. */
static inline LOWP_HD int lowp_pair_supported(const lowp_operand *a, const lowp_operand *b) {
    if (a->mode == LOWP_SCALE_NONE || b->mode == LOWP_SCALE_NONE) return 0;
    if (a->mode == LOWP_SCALE_BLK128 && b->mode == LOWP_SCALE_BLK128) return 0;
    return a->K % 16 == 0;
}

#endif
