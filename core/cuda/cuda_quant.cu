/* The low-precision emulation ops on CUDA (contracts in core/backend.h, formats in
 * core/quant.h; CPU reference core/cpu/cpu_quant.c over core/quant.c). The scalar
 * codecs are device copies of core/safetensors_dtype.c's st_f32_to_e4m3 /
 * st_e4m3_to_f32 / st_f32_to_bf16 (integer bit arithmetic, round to nearest even, E4M3
 * saturating at +-448), and x / scale and amax / 448 are IEEE float divisions on both
 * sides (nvcc's default -prec-div=true), so finite inputs give the CPU's bits. */
#include "core/cuda/cuda_reduce.h"

extern "C" {
#include "core/quant.h"
}

/* ---- scalar codecs (core/safetensors_dtype.c, line for line) ---- */

static __device__ __forceinline__ float e4m3_to_f32(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t exp = (b >> 3) & 0xfu, mant = b & 0x7u;
    if (exp == 0xf && mant == 0x7) return __uint_as_float(sign | 0x7fc00000u);
    if (exp == 0) {
        float v = (float)mant * (1.0f / 512.0f);
        return sign ? -v : v;
    }
    return __uint_as_float(sign | ((exp + 120u) << 23) | (mant << 20));
}

static __device__ __forceinline__ uint8_t f32_to_e4m3(float f) {
    uint32_t u = __float_as_uint(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint8_t)(sign | 0x7fu);   /* NaN */
    if (a >= 0x43e00000u) return (uint8_t)(sign | 0x7eu);  /* |f| >= 448 (and inf): saturate */
    if (a >= 0x3c800000u) {                                 /* normal e4m3: |f| >= 2^-6 */
        uint32_t r = a - (120u << 23);
        r += 0x7ffffu + ((r >> 20) & 1u);
        return (uint8_t)(sign | (r >> 20));
    }
    uint32_t e = a >> 23;   /* subnormal e4m3 or zero: value / 2^-9 to the nearest even integer */
    if (e < 116) return sign;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 141u - e;
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint8_t)(sign | q);
}

/* bf16(f) as float32: round to nearest even on the top 16 bits; NaN stays a quiet NaN. */
static __device__ __forceinline__ float bf16_round(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __uint_as_float(((u >> 16) | 0x0040u) << 16);
    u += 0x7fffu + ((u >> 16) & 1u);
    return __uint_as_float((u >> 16) << 16);
}

/* The larger of two |x| values, NaN when either is NaN (core/quant.c's band_scales rule:
 * a NaN anywhere in a tile makes its amax NaN). Exact, so the order does not matter. */
static __device__ __forceinline__ float amax_join(float a, float b) {
    return (a != a || b != b) ? __uint_as_float(0x7fc00000u) : fmaxf(a, b);
}

/* quant_fp8_scale: amax / 448; 1 for an all-zero tile; NaN for a non-finite amax. */
static __device__ __forceinline__ float fp8_scale(float amax) {
    if (!isfinite(amax)) return __uint_as_float(0x7fc00000u);
    if (amax == 0.0f) return 1.0f;
    return amax / QUANT_E4M3_MAX;
}

/* One block per tile (tile index = tile row * tiles_across + tile column, the scales'
 * layout): the tile's amax by a shared-memory tree, then every element of the tile
 * coded as e4m3(x / scale) into q (when given; rows `cols` apart) and/or decoded back
 * times the scale into out (when given; rows ldo apart; may be x, since each element
 * is read and written by one thread after the amax pass has read the whole tile).
 * scales (when given) gets the tile's scale. Tiles at the right and bottom edges are
 * partial. */
__global__ void fp8_tile_kernel(uint8_t *q, float *scales, float *out, int ldo, const float *x, int ldx, int rows,
                                int cols, int tile_rows, int tile_cols, int tiles_across) {
    __shared__ float shared[CUDA_REDUCE_THREADS];
    size_t tile = blockIdx.x;
    int r0 = (int)(tile / (size_t)tiles_across) * tile_rows, c0 = (int)(tile % (size_t)tiles_across) * tile_cols;
    int nr = rows - r0 < tile_rows ? rows - r0 : tile_rows, nc = cols - c0 < tile_cols ? cols - c0 : tile_cols;
    size_t count = (size_t)nr * (size_t)nc;
    float amax = 0.0f;
    for (size_t e = threadIdx.x; e < count; e += blockDim.x) {
        int r = r0 + (int)(e / (size_t)nc), c = c0 + (int)(e % (size_t)nc);
        amax = amax_join(amax, fabsf(x[(size_t)r * ldx + c]));
    }
    /* Tree of amax_join (cuda_block_max's fmaxf would drop a NaN). */
    shared[threadIdx.x] = amax;
    __syncthreads();
    for (unsigned stride = CUDA_REDUCE_THREADS / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) shared[threadIdx.x] = amax_join(shared[threadIdx.x], shared[threadIdx.x + stride]);
        __syncthreads();
    }
    float s = fp8_scale(shared[0]);
    if (scales && threadIdx.x == 0) scales[tile] = s;
    for (size_t e = threadIdx.x; e < count; e += blockDim.x) {
        int r = r0 + (int)(e / (size_t)nc), c = c0 + (int)(e % (size_t)nc);
        uint8_t code = f32_to_e4m3(x[(size_t)r * ldx + c] / s);
        if (q) q[(size_t)r * cols + c] = code;
        if (out) out[(size_t)r * ldo + c] = e4m3_to_f32(code) * s;
    }
}

/* x[r, c] (rows ldx apart) = e4m3_value(q[r, c]) * scales[r / tile_rows, c / tile_cols];
 * one thread per element. */
__global__ void fp8_dequantize_kernel(float *x, int ldx, const uint8_t *q, const float *scales, int cols,
                                      int tile_rows, int tile_cols, int tiles_across, size_t total) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int r = (int)(i / (size_t)cols), c = (int)(i % (size_t)cols);
        float s = scales[(size_t)(r / tile_rows) * tiles_across + c / tile_cols];
        x[(size_t)r * ldx + c] = e4m3_to_f32(q[i]) * s;
    }
}

/* out[r, c] (rows ldo apart) = bf16(x[r, c]) (rows ldx apart); one thread per element. */
__global__ void bf16_round_kernel(float *out, int ldo, const float *x, int ldx, int cols, size_t total) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        out[r * ldo + c] = bf16_round(x[r * ldx + c]);
    }
}

static void check_tiles(const char *op, int ldx, int rows, int cols, int tile_rows, int tile_cols) {
    GRPO_ASSERTF(rows >= 0 && cols >= 0 && tile_rows >= 1 && tile_cols >= 1 && ldx >= cols,
                 "%s: bad shape rows=%d cols=%d ld=%d tiles %dx%d", op, rows, cols, ldx, tile_rows, tile_cols);
}

/* Launches fp8_tile_kernel over every tile of a [rows, cols] matrix. */
static void fp8_tiles(backend *be, const char *op, uint8_t *q, float *scales, float *out, int ldo, const float *x,
                      int ldx, int rows, int cols, int tile_rows, int tile_cols) {
    check_tiles(op, ldx, rows, cols, tile_rows, tile_cols);
    if (!rows || !cols) return;
    int down = (rows + tile_rows - 1) / tile_rows, across = (cols + tile_cols - 1) / tile_cols;
    size_t tiles = (size_t)down * (size_t)across;
    GRPO_ASSERTF(tiles <= 0x7fffffffu, "%s: %zu tiles of %dx%d is more than one launch holds", op, tiles, tile_rows,
                 tile_cols);
    fp8_tile_kernel<<<(unsigned)tiles, CUDA_REDUCE_THREADS, 0, cuda_stream_of(be)>>>(
        q, scales, out, ldo, x, ldx, rows, cols, tile_rows, tile_cols, across);
    CUDA_CHECK_LAST();
}

void cuda_quantize_fp8(backend *be, uint8_t *q, float *scales, const float *x, int ldx, int rows, int cols,
                       int tile_rows, int tile_cols) {
    fp8_tiles(be, "quantize_fp8", q, scales, NULL, 0, x, ldx, rows, cols, tile_rows, tile_cols);
}

void cuda_round_fp8(backend *be, float *out, int ldo, const float *x, int ldx, int rows, int cols, int tile_rows,
                    int tile_cols) {
    GRPO_ASSERTF(ldo >= cols, "round_fp8: ldo=%d < cols=%d", ldo, cols);
    fp8_tiles(be, "round_fp8", NULL, NULL, out, ldo, x, ldx, rows, cols, tile_rows, tile_cols);
}

void cuda_dequantize_fp8(backend *be, float *x, int ldx, const uint8_t *q, const float *scales, int rows, int cols,
                         int tile_rows, int tile_cols) {
    check_tiles("dequantize_fp8", ldx, rows, cols, tile_rows, tile_cols);
    size_t total = (size_t)rows * (size_t)cols;
    if (!total) return;
    int across = (cols + tile_cols - 1) / tile_cols;
    fp8_dequantize_kernel<<<cuda_grid_for(total), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(
        x, ldx, q, scales, cols, tile_rows, tile_cols, across, total);
    CUDA_CHECK_LAST();
}

void cuda_round_bf16(backend *be, float *out, int ldo, const float *x, int ldx, int rows, int cols) {
    check_tiles("round_bf16", ldx, rows, cols, 1, 1);
    GRPO_ASSERTF(ldo >= cols, "round_bf16: ldo=%d < cols=%d", ldo, cols);
    size_t total = (size_t)rows * (size_t)cols;
    if (!total) return;
    bf16_round_kernel<<<cuda_grid_for(total), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(out, ldo, x, ldx, cols, total);
    CUDA_CHECK_LAST();
}
