/* The compute precision of a model's projections (DESIGN.md, Numerics; STYLE.md: chosen at
 * run time). Every Linear inside a block (MLA q/kv/o projections, expert and shared-expert
 * FFNs, dense attention and MLP projections) multiplies through linear_matmul, which in
 * bf16 / fp8 multiplies rounded copies of both operands with float32 accumulation:
 *   bf16: each operand rounded to bfloat16 (nearest even);
 *   fp8:  E4M3 with one scale (amax / 448) per tile, tiles of 128 along the contraction:
 *         a weight (an operand inside the model's parameter block) in 128x128 blocks of
 *         its own [out, in] layout, whichever way it is multiplied; any other operand
 *         (activations, output gradients) in 1x128 tiles along the contracted dimension.
 *         So y = x W^T tiles x along `in`; dgrad dx = dy W tiles dy along `out`; wgrad
 *         dW = dy^T x tiles dy and x in 128-token strips (DeepSeek-V3 report sec. 3.3).
 * The weight copies (bf16 bit patterns or E4M3 codes + 128x128 scales multiplied by the
 * backend's matmul_bf16 / matmul_fp8 when it has them; else float32 copies of the rounded
 * values through matmul, the emulation) are made once per change of the weights:
 * param_set's version, bumped by the optimizer step and by loading, is compared per view
 * on use. The embedding, output head, norms, the MoE gate and attention
 * scores/softmax call the backend's matmul directly and stay float32.
 * The emulation is exact: a CPU fp8 product is what block-scaled FP8 hardware with FP32
 * accumulation computes, up to float32 summation order. */
#ifndef GRPO_LINEAR_H
#define GRPO_LINEAR_H

#include "core/backend.h"
#include "core/quant.h"
#include "model/params.h"

typedef struct linear linear;

/* The compute state of ps's block (fp32 until set); param_set_alloc makes one per set. */
grpo_status linear_create(param_set *ps, linear **out);
void linear_free(linear *lin);   /* linear_free(NULL) does nothing */
/* Switches precision; fails (naming the op) when the backend lacks the rounding ops. */
grpo_status linear_set_precision(linear *lin, quant_precision p);
quant_precision linear_get_precision(const linear *lin);   /* QUANT_FP32 for NULL */

/* be->matmul's contract (core/backend.h) computed at lin's precision; lin NULL or fp32
 * calls be->matmul unchanged. Operands inside the parameter block are weights (their
 * rounded copy is used); others are rounded into lin's scratch (grown on first use). */
void linear_matmul(linear *lin, backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The same with only the weight operand rounded (its copy) and the other operand as it is:
 * MLA's absorbed decoding (W_UK applied to q_nope, W_UV to the attention-weighted latent),
 * as DeepSeek-V3's inference code multiplies the dequantised FP8 kv_b_proj with
 * higher-precision activations. */
void linear_matmul_weight_only(linear *lin, backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* x[rows, cols] (rows ld apart) rounded in place as linear_matmul rounds an activation
 * contracted along its columns (fp8: 1x128 tiles); nothing at fp32. MLA's decoding caches
 * the latent rounded so, which makes its absorbed products equal to training's
 * round(latent) kv_b_proj^T up to summation order. */
void linear_round_rows(linear *lin, backend *be, float *x, int ld, int rows, int cols);

/* y[N, out] (rows ldy apart) = x[N, in] (rows ldx apart) W^T + beta y; W: [out, in]. */
void linear_forward(linear *lin, backend *be, float *y, int ldy, const float *x, int ldx, const float *W, int N,
                    int in, int out, float beta);
/* Backward of y = x W^T: dx[N, in] = dy W (dx NULL: skipped; dx_beta 0 writes, 1 adds);
 * dW[out, in] += dy^T x (dW NULL: skipped). dy: [N, out]. */
void linear_backward(linear *lin, backend *be, float *dx, float dx_beta, float *dW, const float *dy, const float *x,
                     const float *W, int N, int in, int out);

#endif
