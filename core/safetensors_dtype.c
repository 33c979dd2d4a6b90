/* safetensors element types: names, sizes, the scalar float conversions (bf16, f16,
 * FP8 E4M3) shared with the FP8 emulation, and conversion of whole tensors to float32.
 * All conversions are bit-exact and rounding-mode independent (integer arithmetic). */
#include "core/safetensors.h"

#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this code reads it in place on little-endian hosts only"
#endif

static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {
    [ST_F32] = {"F32", 4},    [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2}, [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_F64] = {"F64", 8},    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},   [ST_I16] = {"I16", 2},
    [ST_I8] = {"I8", 1},      [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
enum { DTYPE_COUNT = (int)(sizeof dtype_table / sizeof dtype_table[0]) };

const char *st_dtype_name(st_dtype d) {
    return (int)d >= 0 && (int)d < DTYPE_COUNT ? dtype_table[d].name : "?";
}

size_t st_dtype_size(st_dtype d) {
    return (int)d >= 0 && (int)d < DTYPE_COUNT ? dtype_table[d].size : 0;
}

int st_dtype_parse(const char *name, st_dtype *out) {
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (name && strcmp(name, dtype_table[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- bfloat16: the top 16 bits of a float32 ---- */
float st_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t st_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN stays a (quiet) NaN */
    /* Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate. A carry
     * out of the mantissa bumps the exponent, which is the correct rounded result (and
     * becomes infinity past the largest finite bf16). */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ---- IEEE binary16 ---- */
float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13)); /* inf / NaN (payload kept) */
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        /* subnormal: mant * 2^-24, exact in float32 */
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t st_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN, quiet */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to infinity */
    if (a >= 0x38800000u) { /* normal f16 range: |f| >= 2^-14 */
        /* rebias exponent (127 -> 15) and round 23 -> 10 mantissa bits to nearest even */
        uint32_t r = a - (112u << 23);
        r += 0xfffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    /* subnormal f16 (or zero): value / 2^-24 rounded to the nearest even integer */
    uint32_t e = a >> 23;
    if (e < 102) return sign; /* below 2^-25: rounds to zero (2^-25 itself is a tie to zero too) */
    uint32_t m = (a & 0x7fffffu) | 0x800000u; /* value = m * 2^(e - 150) */
    uint32_t shift = 126u - e;                /* value / 2^-24 = m >> (126 - e) */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

/* ---- FP8 E4M3 (OCP "E4M3FN"): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no
 * infinities; 0x7f / 0xff are NaN; largest finite 448 = 1.75 * 2^8; smallest subnormal 2^-9. */
float st_e4m3_to_f32(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t exp = (b >> 3) & 0xfu, mant = b & 0x7u;
    if (exp == 0xf && mant == 0x7) return bits_f32(sign | 0x7fc00000u);
    if (exp == 0) {
        float v = (float)mant * (1.0f / 512.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 120u) << 23) | (mant << 20));
}

uint8_t st_f32_to_e4m3(float f) {
    uint32_t u = f32_bits(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint8_t)(sign | 0x7fu); /* NaN */
    if (a >= 0x43e00000u) return (uint8_t)(sign | 0x7eu); /* |f| >= 448 (and inf): saturate */
    if (a >= 0x3c800000u) {                                /* normal e4m3: |f| >= 2^-6 */
        uint32_t r = a - (120u << 23);
        r += 0x7ffffu + ((r >> 20) & 1u);
        return (uint8_t)(sign | (r >> 20)); /* < 448 rounds to at most 448 (0x7e), never NaN */
    }
    /* subnormal e4m3 (or zero): value / 2^-9 rounded to the nearest even integer (0..8;
     * 8 is code 0x08, the smallest normal) */
    uint32_t e = a >> 23;
    if (e < 116) return sign; /* below 2^-11: rounds to zero */
    uint32_t m = (a & 0x7fffffu) | 0x800000u; /* value = m * 2^(e - 150) */
    uint32_t shift = 141u - e;                /* value / 2^-9 = m >> (141 - e), shift in 21..25 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint8_t)(sign | q);
}

/* ---- whole tensors ---- */
static uint16_t load_u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

grpo_status st_read_f32(const st_tensor *t, float *dst, int64_t numel) {
    if (!t) return grpo_fail(GRPO_ERR_INVALID, "st_read_f32: no tensor given");
    if (t->numel != numel)
        return grpo_fail(GRPO_ERR_INVALID, "tensor '%s': expected %lld elements, the file has %lld", t->name,
                         (long long)numel, (long long)t->numel);
    const unsigned char *src = t->data;
    /* data may be unaligned (a header that is not padded to 8 bytes): read bytewise/memcpy */
    switch (t->dtype) {
    case ST_F32:
        if (numel) memcpy(dst, src, (size_t)numel * 4);
        return GRPO_OK;
    case ST_F64:
        for (int64_t i = 0; i < numel; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        return GRPO_OK;
    case ST_F16:
        for (int64_t i = 0; i < numel; i++) dst[i] = st_f16_to_f32(load_u16(src + 2 * i));
        return GRPO_OK;
    case ST_BF16:
        for (int64_t i = 0; i < numel; i++) dst[i] = st_bf16_to_f32(load_u16(src + 2 * i));
        return GRPO_OK;
    case ST_F8_E4M3:
        for (int64_t i = 0; i < numel; i++) dst[i] = st_e4m3_to_f32(src[i]);
        return GRPO_OK;
    default:
        return grpo_fail(GRPO_ERR_INVALID, "tensor '%s': expected a float dtype (F32, F16, BF16, F8_E4M3, F64), found %s",
                         t->name, st_dtype_name(t->dtype));
    }
}

grpo_status st_load_f32(const st_file *f, const char *name, float *dst, int64_t numel) {
    const st_tensor *t = st_find(f, name);
    if (!t) return grpo_fail(GRPO_ERR_NOTFOUND, "tensor '%s' not found", name);
    return st_read_f32(t, dst, numel);
}
