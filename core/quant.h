/* Low-precision number formats for the compute precision (DESIGN.md, Numerics):
 * `precision: fp32|bf16|fp8`, BF16 rounding and FP8 E4M3 block quantisation with one
 * float scale per tile (1x128 for activations, 128x128 for weights; DeepSeek-V3 report
 * sec. 3.3). The scalar codecs are core/safetensors.h's st_f32_to_e4m3 / st_e4m3_to_f32 /
 * st_f32_to_bf16 (bit-exact, round to nearest even, E4M3 saturating at +-448); this
 * module adds the scaled tiles on top, on host memory (the CPU backend's quantize ops
 * call it). */
#ifndef GRPO_QUANT_H
#define GRPO_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core/safetensors.h"
#include "core/status.h"

/* What a model's projections compute in. fp32: plain float32. bf16: both operands
 * rounded to bfloat16. fp8: both operands block-quantised to E4M3. Accumulation is
 * float32 in every mode. */
typedef enum { QUANT_FP32 = 0, QUANT_BF16 = 1, QUANT_FP8 = 2 } quant_precision;

#define QUANT_E4M3_MAX 448.0f   /* largest finite E4M3 (OCP "E4M3FN") */
#define QUANT_TILE 128          /* tile edge along the contraction dimension (V3: 1x128, 128x128) */

/* "fp32", "bf16", "fp8". */
const char *quant_precision_name(quant_precision p);
/* Parses "fp32", "bf16" or "fp8" into *out; anything else (fp16 included) is an error
 * naming what was found and the choices; `what` says where the text came from. */
grpo_status quant_precision_parse(const char *text, const char *what, quant_precision *out);

/* The scale of a tile whose largest |x| is amax: amax / 448 (V3's convention, the same
 * number HF checkpoints store as `weight_scale_inv`), so the tile's values map onto the
 * whole E4M3 range. An all-zero tile gets 1; a non-finite amax gives NaN (the tile's
 * codes become NaN, so a NaN or inf input still reaches the output). */
float quant_fp8_scale(float amax);

/* Scales of a [rows, cols] matrix cut into tile_rows x tile_cols tiles (partial tiles at
 * the right and bottom edges): [ceil(rows / tile_rows), ceil(cols / tile_cols)]. */
size_t quant_fp8_num_scales(int rows, int cols, int tile_rows, int tile_cols);

/* x: [rows, cols], rows ldx floats apart -> q: [rows, cols] E4M3 codes (contiguous) and
 * scales: [ceil(rows/tile_rows), ceil(cols/tile_cols)]; q = e4m3(x / scale), round to
 * nearest even, saturating (torch's x.div(scale).to(float8_e4m3fn)). */
void quant_fp8_quantize(uint8_t *q, float *scales, const float *x, int ldx, int rows, int cols, int tile_rows,
                        int tile_cols);
/* x[r, c] = e4m3_value(q[r, c]) * scales[r / tile_rows, c / tile_cols]; x rows ldx apart.
 * The DeepSeek-V3 checkpoint dequantisation (weight_dequant) with 128x128 tiles. */
void quant_fp8_dequantize(float *x, int ldx, const uint8_t *q, const float *scales, int rows, int cols,
                          int tile_rows, int tile_cols);
/* out = dequantize(quantize(x)) without keeping the codes: the values an FP8 matmul
 * multiplies, in float32. out: [rows, cols] rows ldo apart (may equal x with ldo == ldx). */
void quant_fp8_round(float *out, int ldo, const float *x, int ldx, int rows, int cols, int tile_rows, int tile_cols);
/* out[r, c] = bf16(x[r, c]) as float32 (round to nearest even; may be in place). */
void quant_bf16_round(float *out, int ldo, const float *x, int ldx, int rows, int cols);

#endif
