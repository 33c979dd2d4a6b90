/* Rotary position embedding (RoFormer, Su et al. 2021) applied in place on the CPU.
 * The angle tables come from the model, so YaRN and other scalings live there. */
#include "core/cpu/cpu_impl.h"

/* x: [T, H, head_stride], first rot_dim numbers of each head rotate; positions: [T];
 * cos, sin: [max_pos, rot_dim / 2]. Pair i (i < rot_dim/2) is (i, i + rot_dim/2) when
 * not interleaved (HF rotate_half) and (2i, 2i+1) when interleaved; it turns by angle
 * theta_i(pos): (a, b) -> (a cos - b sin, b cos + a sin). inverse turns by -theta,
 * which is both the inverse and the backward (the rotation is orthogonal). */
void cpu_rope(backend *be, float *x, int T, int H, int head_stride, int rot_dim, const int32_t *positions,
              const float *cos, const float *sin, int interleaved, int inverse) {
    (void)be;
    GRPO_ASSERTF(rot_dim % 2 == 0 && rot_dim <= head_stride, "rope: rot_dim=%d must be even and <= head_stride=%d",
                 rot_dim, head_stride);
    int half = rot_dim / 2;
    float sign = inverse ? -1.0f : 1.0f;
    CPU_OMP(parallel for schedule(static) if ((size_t)T * H * rot_dim >= CPU_PARALLEL_MIN))
    for (int t = 0; t < T; t++) {
        int pos = positions[t];
        GRPO_ASSERTF(pos >= 0, "rope: positions[%d] = %d is negative", t, pos);
        const float *c = cos + (size_t)pos * half, *s = sin + (size_t)pos * half;
        for (int h = 0; h < H; h++) {
            float *xh = x + ((size_t)t * H + h) * head_stride;
            if (interleaved) {
                for (int i = 0; i < half; i++) {
                    float a = xh[2 * i], b = xh[2 * i + 1], sn = sign * s[i];
                    xh[2 * i] = a * c[i] - b * sn;
                    xh[2 * i + 1] = b * c[i] + a * sn;
                }
            } else {
                cpu_vec_rotate(xh, xh + half, c, s, sign, half);
            }
        }
    }
}
