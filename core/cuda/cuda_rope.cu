/* Rotary position embedding (RoFormer, Su et al. 2021) in place on CUDA (contract in
 * core/backend.h, CPU reference core/cpu/cpu_rope.c). */
#include "core/cuda/cuda_reduce.h"

/* x: [T, H, head_stride]; one thread per rotating pair (t, h, i), i < half = rot_dim/2.
 * Pair i is (i, i + half) (HF rotate_half) or (2i, 2i+1) when interleaved; it turns by
 * theta_i(pos) (sign = -1: by -theta, the inverse and the backward):
 *   (a, b) -> (a cos - b sin, b cos + a sin). cos, sin: [max_pos, half]. */
__global__ void rope_kernel(float *x, size_t pairs, int H, int head_stride, int half, const int32_t *positions,
                            const float *cos, const float *sin, int interleaved, float sign) {
    for (size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x; p < pairs; p += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(p % (size_t)half);
        size_t th = p / (size_t)half;   /* t * H + h */
        int t = (int)(th / (size_t)H);
        int pos = positions[t];
        if (pos < 0) CUDA_DEVICE_FAIL("rope: positions[%d] = %d is negative\n", t, pos);
        float c = cos[(size_t)pos * half + i], sn = sign * sin[(size_t)pos * half + i];
        float *xh = x + th * head_stride;
        int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
        float a = xh[ia], b = xh[ib];
        xh[ia] = a * c - b * sn;
        xh[ib] = b * c + a * sn;
    }
}

void cuda_rope(backend *be, float *x, int T, int H, int head_stride, int rot_dim, const int32_t *positions,
               const float *cos, const float *sin, int interleaved, int inverse) {
    GRPO_ASSERTF(rot_dim >= 0 && rot_dim % 2 == 0 && rot_dim <= head_stride,
                 "rope: rot_dim=%d must be even and <= head_stride=%d", rot_dim, head_stride);
    GRPO_ASSERTF(T >= 0 && H >= 0, "rope: negative size T=%d H=%d", T, H);
    int half = rot_dim / 2;
    size_t pairs = (size_t)T * (size_t)H * (size_t)half;
    if (!pairs) return;
    rope_kernel<<<cuda_grid_for(pairs), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(
        x, pairs, H, head_stride, half, positions, cos, sin, interleaved, inverse ? -1.0f : 1.0f);
    CUDA_CHECK_LAST();
}
