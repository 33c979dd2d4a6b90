/* Tests for core/quant (FP8 E4M3 tiles, BF16 rounding) and the backend's quantize ops,
 * against torch (tests/fixtures/make_fp8.py): every one of the 256 E4M3 codes decoded,
 * round-to-nearest-even encoding of values between codes, saturation, BF16 casts, and a
 * matrix block-quantised in 1x128, 128x128 and 128x1 tiles with torch's scales, bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/quant.h"
#include "core/safetensors.h"
#include "harness.h"

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static const st_tensor *need(const st_file *f, const char *name, st_dtype dtype) {
    const st_tensor *t = st_find(f, name);
    CHECK_MSG(t && t->dtype == dtype, "fixture tensor %s missing or not %s", name, st_dtype_name(dtype));
    return t && t->dtype == dtype ? t : NULL;
}

static void test_codes(const st_file *f) {
    const st_tensor *t = need(f, "code_values", ST_F32);
    if (!t) return;
    CHECK_INT(256, t->numel);
    const float *want = t->data;
    int bad = 0;
    for (int c = 0; c < 256; c++) {
        float got = st_e4m3_to_f32((uint8_t)c);
        int same = isnan(want[c]) ? isnan(got) : bits(got) == bits(want[c]);
        if (!same && bad++ < 5) fprintf(stderr, "code 0x%02x: torch %g, ours %g\n", c, want[c], got);
    }
    CHECK_INT(0, bad);
}

static void test_values(const st_file *f) {
    const st_tensor *tv = need(f, "values", ST_F32), *te = need(f, "values_e4m3", ST_U8),
                    *tb = need(f, "values_bf16", ST_I16);
    if (!tv || !te || !tb) return;
    CHECK(tv->numel > 1000 && te->numel == tv->numel && tb->numel == tv->numel);
    const float *v = tv->data;
    const uint8_t *e = te->data;
    const int16_t *b = tb->data;
    int bad_e = 0, bad_b = 0, ties = 0;
    for (int64_t i = 0; i < tv->numel; i++) {
        uint8_t got = st_f32_to_e4m3(v[i]);
        int ok = isnan(v[i]) ? (got & 0x7f) == 0x7f && (e[i] & 0x7f) == 0x7f : got == e[i];
        if (!ok && bad_e++ < 5) fprintf(stderr, "e4m3(%.9g): torch 0x%02x, ours 0x%02x\n", v[i], e[i], got);
        uint16_t gb = st_f32_to_bf16(v[i]);
        float gbf = st_bf16_to_f32(gb), wbf = st_bf16_to_f32((uint16_t)b[i]);
        ok = isnan(v[i]) ? isnan(gbf) && isnan(wbf) : gb == (uint16_t)b[i];
        if (!ok && bad_b++ < 5) fprintf(stderr, "bf16(%.9g): torch 0x%04x, ours 0x%04x\n", v[i], (uint16_t)b[i], gb);
        /* a tie between two codes rounds to the even one */
        float lo = st_e4m3_to_f32(e[i] & 0x7f ? (uint8_t)(e[i] - 1) : e[i]);
        float hi = st_e4m3_to_f32(e[i]);
        if (isfinite(v[i]) && fabsf(v[i]) < 448 && (e[i] & 0x7f) && fabsf(v[i]) == (fabsf(lo) + fabsf(hi)) / 2) {
            ties++;
            CHECK_MSG((got & 1) == 0, "tie %.9g rounded to odd code 0x%02x", v[i], got);
        }
    }
    CHECK_INT(0, bad_e);
    CHECK_INT(0, bad_b);
    CHECK(ties > 50);   /* the fixture's midpoints exercise round-half-even */
    /* saturation (torch's scaled casts clamp): past 448 and infinity give the largest finite code */
    CHECK_INT(0x7e, st_f32_to_e4m3(1e9f));
    CHECK_INT(0xfe, st_f32_to_e4m3(-INFINITY));
}

/* The fixture matrix quantised with tiles tr x tc by core/quant and by the backend op
 * must give torch's codes and scales exactly; dequantize and round agree with them. */
static void test_tiles(const st_file *f, backend *be, const char *codes_name, const char *scales_name, int tr, int tc) {
    const st_tensor *tx = need(f, "x", ST_F32), *tq = need(f, codes_name, ST_U8), *ts = need(f, scales_name, ST_F32);
    if (!tx || !tq || !ts) return;
    int R = (int)tx->shape[0], C = (int)tx->shape[1];
    size_t ns = quant_fp8_num_scales(R, C, tr, tc);
    CHECK_INT((long long)ns, ts->numel);
    const float *x = tx->data;
    uint8_t *q = malloc((size_t)R * C), *q2 = malloc((size_t)R * C);
    float *s = malloc(ns * sizeof(float)), *s2 = malloc(ns * sizeof(float));
    float *dq = malloc((size_t)R * C * sizeof(float)), *rd = malloc((size_t)R * C * sizeof(float));
    quant_fp8_quantize(q, s, x, C, R, C, tr, tc);
    be->quantize_fp8(be, q2, s2, x, C, R, C, tr, tc);
    CHECK_MSG(memcmp(q, tq->data, (size_t)R * C) == 0, "%s: codes differ from torch's", codes_name);
    CHECK_MSG(memcmp(s, ts->data, ns * sizeof(float)) == 0, "%s: scales differ from torch's", scales_name);
    CHECK_MSG(memcmp(q2, q, (size_t)R * C) == 0 && memcmp(s2, s, ns * sizeof(float)) == 0,
              "backend quantize_fp8 differs from core/quant (%dx%d tiles)", tr, tc);
    be->dequantize_fp8(be, dq, C, q, s, R, C, tr, tc);
    be->round_fp8(be, rd, C, x, C, R, C, tr, tc);
    int bad = 0;
    double max_rel = 0;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)r * C + c;
            size_t tile = (size_t)(r / tr) * ((C + tc - 1) / tc) + c / tc;
            float want = st_e4m3_to_f32(((const uint8_t *)tq->data)[i]) * ((const float *)ts->data)[tile];
            if (bits(dq[i]) != bits(want) || bits(rd[i]) != bits(want)) bad++;
            /* E4M3 keeps 3 mantissa bits: a value at least 1/64 of its tile's amax is within 2^-4 relative */
            float sc = s[(r / tr) * ((C + tc - 1) / tc) + c / tc];
            if (fabsf(x[i]) >= sc * 448.0f / 64.0f) {
                double rel = fabs((double)rd[i] - x[i]) / fabs(x[i]);
                if (rel > max_rel) max_rel = rel;
            }
        }
    CHECK_MSG(bad == 0, "%s: %d dequantised values differ", codes_name, bad);
    CHECK_MSG(max_rel <= 0.0625 + 1e-7, "%s: relative rounding error %g > 2^-4", codes_name, max_rel);
    /* the all-zero row's tiles have scale 1 and codes 0 (1x128 tiles) */
    if (tr == 1) CHECK(s[5 * ((C + tc - 1) / tc)] == 1.0f && q[5 * C] == 0);
    free(q), free(q2), free(s), free(s2), free(dq), free(rd);
}

/* Strided input, in-place rounding, NaN propagation, BF16 rounding op. */
static void test_ops(backend *be) {
    enum { R = 3, C = 150, LD = 160 };
    float x[R * LD], out[R * C], inplace[R * LD];
    for (int i = 0; i < R * LD; i++) x[i] = sinf(0.37f * (float)i) * (float)(1 + i % 7);
    memcpy(inplace, x, sizeof x);
    be->round_fp8(be, out, C, x, LD, R, C, 1, QUANT_TILE);
    be->round_fp8(be, inplace, LD, inplace, LD, R, C, 1, QUANT_TILE);
    int same = 1;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) same &= bits(out[r * C + c]) == bits(inplace[r * LD + c]);
    CHECK_MSG(same, "round_fp8 in place differs from out of place");
    CHECK(inplace[C] == x[C]);   /* the padding past cols is untouched */
    x[1 * LD + 10] = NAN;
    be->round_fp8(be, out, C, x, LD, R, C, 1, QUANT_TILE);
    CHECK(isnan(out[1 * C + 0]) && isnan(out[1 * C + 127]) && !isnan(out[1 * C + 128]) && !isnan(out[0]));
    be->round_bf16(be, out, C, x, LD, R, C);
    int bad = 0;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            float want = st_bf16_to_f32(st_f32_to_bf16(x[r * LD + c]));
            if (!(bits(out[r * C + c]) == bits(want) || (isnan(want) && isnan(out[r * C + c])))) bad++;
        }
    CHECK_INT(0, bad);
}

static void test_parse(void) {
    quant_precision p = QUANT_FP32;
    CHECK_OK(quant_precision_parse("fp8", "precision", &p));
    CHECK_INT(QUANT_FP8, p);
    CHECK_OK(quant_precision_parse("bf16", "precision", &p));
    CHECK_INT(QUANT_BF16, p);
    CHECK_STR("bf16", quant_precision_name(p));
    CHECK_FAILS(quant_precision_parse("fp16", "run.precision", &p), "fp16 is not supported");
    CHECK_FAILS(quant_precision_parse("FP8", "run.precision", &p), "expected a precision fp32, bf16 or fp8");
    CHECK_INT(QUANT_BF16, p);   /* unchanged on failure */
}

int main(void) {
    backend *be = backend_cpu_create();
    st_file *f = NULL;
    CHECK_OK(st_open(harness_source_path("tests/fixtures/fp8/fp8_cases.safetensors"), &f));
    if (f) {
        test_codes(f);
        test_values(f);
        test_tiles(f, be, "act_codes", "act_scales", 1, 128);
        test_tiles(f, be, "w_codes", "w_scales", 128, 128);
        test_tiles(f, be, "col_codes", "col_scales", 128, 1);
    }
    test_ops(be);
    test_parse();
    st_close(f);
    backend_free(be);
    TEST_MAIN_END();
}
