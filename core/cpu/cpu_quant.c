/* The low-precision emulation ops (contracts in core/backend.h): core/quant.h's tile
 * quantisation, threaded over bands of tile_rows rows (bands share no tile, so the
 * result is the same for any thread count). */
#include "core/cpu/cpu_impl.h"
#include "core/quant.h"

static void check_tiles(const char *op, int ldx, int rows, int cols, int tile_rows, int tile_cols) {
    GRPO_ASSERTF(rows >= 0 && cols >= 0 && tile_rows >= 1 && tile_cols >= 1 && ldx >= cols,
                 "%s: bad shape rows=%d cols=%d ld=%d tiles %dx%d", op, rows, cols, ldx, tile_rows, tile_cols);
}

void cpu_quantize_fp8(backend *be, uint8_t *q, float *scales, const float *x, int ldx, int rows, int cols,
                      int tile_rows, int tile_cols) {
    (void)be;
    check_tiles("quantize_fp8", ldx, rows, cols, tile_rows, tile_cols);
    int bands = (rows + tile_rows - 1) / tile_rows, tc = (cols + tile_cols - 1) / tile_cols;
    CPU_OMP(parallel for schedule(static))
    for (int b = 0; b < bands; b++) {
        int r0 = b * tile_rows, nr = rows - r0 < tile_rows ? rows - r0 : tile_rows;
        quant_fp8_quantize(q + (size_t)r0 * cols, scales + (size_t)b * tc, x + (size_t)r0 * ldx, ldx, nr, cols,
                           tile_rows, tile_cols);
    }
}

void cpu_dequantize_fp8(backend *be, float *x, int ldx, const uint8_t *q, const float *scales, int rows, int cols,
                        int tile_rows, int tile_cols) {
    (void)be;
    check_tiles("dequantize_fp8", ldx, rows, cols, tile_rows, tile_cols);
    int bands = (rows + tile_rows - 1) / tile_rows, tc = (cols + tile_cols - 1) / tile_cols;
    CPU_OMP(parallel for schedule(static))
    for (int b = 0; b < bands; b++) {
        int r0 = b * tile_rows, nr = rows - r0 < tile_rows ? rows - r0 : tile_rows;
        quant_fp8_dequantize(x + (size_t)r0 * ldx, ldx, q + (size_t)r0 * cols, scales + (size_t)b * tc, nr, cols,
                             tile_rows, tile_cols);
    }
}

void cpu_round_fp8(backend *be, float *out, int ldo, const float *x, int ldx, int rows, int cols, int tile_rows,
                   int tile_cols) {
    (void)be;
    check_tiles("round_fp8", ldx, rows, cols, tile_rows, tile_cols);
    GRPO_ASSERTF(ldo >= cols, "round_fp8: ldo=%d < cols=%d", ldo, cols);
    int bands = (rows + tile_rows - 1) / tile_rows;
    CPU_OMP(parallel for schedule(static))
    for (int b = 0; b < bands; b++) {
        int r0 = b * tile_rows, nr = rows - r0 < tile_rows ? rows - r0 : tile_rows;
        quant_fp8_round(out + (size_t)r0 * ldo, ldo, x + (size_t)r0 * ldx, ldx, nr, cols, tile_rows, tile_cols);
    }
}

void cpu_round_bf16(backend *be, float *out, int ldo, const float *x, int ldx, int rows, int cols) {
    (void)be;
    check_tiles("round_bf16", ldx, rows, cols, 1, 1);
    GRPO_ASSERTF(ldo >= cols, "round_bf16: ldo=%d < cols=%d", ldo, cols);
    CPU_OMP(parallel for schedule(static))
    for (int r = 0; r < rows; r++) quant_bf16_round(out + (size_t)r * ldo, ldo, x + (size_t)r * ldx, ldx, 1, cols);
}
