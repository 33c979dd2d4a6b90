/* FP8 E4M3 tile quantisation and BF16 rounding on host memory (core/quant.h). The scalar
 * codecs are core/safetensors_dtype.c's, so checkpoint loading and the compute emulation
 * round the same way. */
#include "core/quant.h"

#include <math.h>
#include <string.h>

const char *quant_precision_name(quant_precision p) {
    switch (p) {
    case QUANT_FP32: return "fp32";
    case QUANT_BF16: return "bf16";
    case QUANT_FP8: return "fp8";
    }
    return "?";
}

grpo_status quant_precision_parse(const char *text, const char *what, quant_precision *out) {
    static const quant_precision all[] = {QUANT_FP32, QUANT_BF16, QUANT_FP8};
    for (size_t i = 0; text && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(text, quant_precision_name(all[i]))) {
            *out = all[i];
            return GRPO_OK;
        }
    return grpo_fail(GRPO_ERR_INVALID, "%s: expected a precision fp32, bf16 or fp8, found \"%s\"%s", what,
                     text ? text : "(none)",
                     text && !strcmp(text, "fp16") ? " (fp16 is not supported: use bf16, which needs no loss scaling)"
                                                    : "");
}

float quant_fp8_scale(float amax) {
    if (!isfinite(amax)) return NAN;
    if (amax == 0.0f) return 1.0f;
    return amax / QUANT_E4M3_MAX;
}

size_t quant_fp8_num_scales(int rows, int cols, int tile_rows, int tile_cols) {
    return (size_t)((rows + tile_rows - 1) / tile_rows) * (size_t)((cols + tile_cols - 1) / tile_cols);
}

/* The tiles are visited a band of tile_rows rows at a time and, within a band, CHUNK
 * tiles across at a time, reading rows front to back (a 128x1 tile, the wgrad layout, is
 * a column strip: reading it alone would stride through memory). */
enum { CHUNK = 64 };

/* scale[j] for the tiles of the band at rows r0 .. r0+nr-1 and columns c0 + j*tile_cols..,
 * j < nt: amax / 448 (quant_fp8_scale); NaN when a value is NaN. */
static void band_scales(float *scale, const float *x, int ldx, int r0, int nr, int c0, int c1, int tile_cols, int nt) {
    float amax[CHUNK];
    for (int j = 0; j < nt; j++) amax[j] = 0.0f;
    for (int r = r0; r < r0 + nr; r++) {
        const float *row = x + (size_t)r * ldx;
        for (int c = c0; c < c1; c++) {
            float a = fabsf(row[c]);
            int j = (c - c0) / tile_cols;
            if (!(a <= amax[j])) amax[j] = a != a || amax[j] != amax[j] ? NAN : a;
        }
    }
    for (int j = 0; j < nt; j++) scale[j] = quant_fp8_scale(amax[j]);
}

/* Quantises (q != NULL: codes and scales) or rounds (out != NULL) one pass over x. */
static void fp8_tiles(uint8_t *q, float *scales, float *out, int ldo, const float *x, int ldx, int rows, int cols,
                      int tile_rows, int tile_cols) {
    int tc_count = (cols + tile_cols - 1) / tile_cols;
    float scale[CHUNK];
    for (int r0 = 0; r0 < rows; r0 += tile_rows) {
        int nr = rows - r0 < tile_rows ? rows - r0 : tile_rows;
        for (int t0 = 0; t0 < tc_count; t0 += CHUNK) {
            int nt = tc_count - t0 < CHUNK ? tc_count - t0 : CHUNK;
            int c0 = t0 * tile_cols, c1 = (t0 + nt) * tile_cols < cols ? (t0 + nt) * tile_cols : cols;
            band_scales(scale, x, ldx, r0, nr, c0, c1, tile_cols, nt);
            if (scales)
                for (int j = 0; j < nt; j++) scales[(size_t)(r0 / tile_rows) * tc_count + t0 + j] = scale[j];
            for (int r = r0; r < r0 + nr; r++) {
                const float *row = x + (size_t)r * ldx;
                for (int c = c0; c < c1; c++) {
                    float s = scale[(c - c0) / tile_cols];
                    uint8_t code = st_f32_to_e4m3(row[c] / s);
                    if (q) q[(size_t)r * cols + c] = code;
                    if (out) out[(size_t)r * ldo + c] = st_e4m3_to_f32(code) * s;
                }
            }
        }
    }
}

void quant_fp8_quantize(uint8_t *q, float *scales, const float *x, int ldx, int rows, int cols, int tile_rows,
                        int tile_cols) {
    fp8_tiles(q, scales, NULL, 0, x, ldx, rows, cols, tile_rows, tile_cols);
}

void quant_fp8_dequantize(float *x, int ldx, const uint8_t *q, const float *scales, int rows, int cols,
                          int tile_rows, int tile_cols) {
    int tc_count = (cols + tile_cols - 1) / tile_cols;
    for (int r = 0; r < rows; r++) {
        const float *s = scales + (size_t)(r / tile_rows) * tc_count;
        for (int c = 0; c < cols; c++)
            x[(size_t)r * ldx + c] = st_e4m3_to_f32(q[(size_t)r * cols + c]) * s[c / tile_cols];
    }
}

void quant_fp8_round(float *out, int ldo, const float *x, int ldx, int rows, int cols, int tile_rows, int tile_cols) {
    fp8_tiles(NULL, NULL, out, ldo, x, ldx, rows, cols, tile_rows, tile_cols);
}

void quant_bf16_round(float *out, int ldo, const float *x, int ldx, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            out[(size_t)r * ldo + c] = st_bf16_to_f32(st_f32_to_bf16(x[(size_t)r * ldx + c]));
}
