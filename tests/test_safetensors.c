/* Tests for core/safetensors: the scalar conversions (e4m3 exhaustively, bf16/f16 over
 * all codes and against torch's encodings), reading files written by the reference
 * library (tests/fixtures/make_safetensors_fixtures.py), sharded directories, the
 * writer (byte-identical to the reference library's output), and hostile inputs. */
#include "core/safetensors.h"

#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness.h"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Same float, bit for bit (so -0 differs from +0), or both NaN. */
static int same_float(float a, float b) { return (isnan(a) && isnan(b)) || bits_of(a) == bits_of(b); }

/* ---- scalar conversions ---- */

static void test_dtype_table(void) {
    const char *names[] = {"F32", "F16", "BF16", "F8_E4M3", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
    const size_t sizes[] = {4, 2, 2, 1, 8, 8, 4, 2, 1, 1, 1};
    for (int i = 0; i < 11; i++) {
        st_dtype d;
        CHECK_INT(0, st_dtype_parse(names[i], &d));
        CHECK_INT(i, d);
        CHECK_STR(names[i], st_dtype_name(d));
        CHECK_INT(sizes[i], st_dtype_size(d));
    }
    st_dtype d;
    CHECK_INT(-1, st_dtype_parse("F8_E5M2", &d));
    CHECK_INT(-1, st_dtype_parse("f32", &d));
}

/* E4M3 value of a code from its definition (OCP 8-bit FP spec, E4M3: bias 7, S.1111.111 NaN). */
static double e4m3_reference(int code) {
    int sign = code >> 7, exp = (code >> 3) & 15, mant = code & 7;
    if (exp == 15 && mant == 7) return NAN;
    double v = exp == 0 ? ldexp(mant, -9) : ldexp(8 + mant, exp - 10);
    return sign ? -v : v;
}

static void test_e4m3(void) {
    int decode_bad = 0, roundtrip_bad = 0;
    for (int c = 0; c < 256; c++) {
        float got = st_e4m3_to_f32((uint8_t)c);
        double want = e4m3_reference(c);
        if (!same_float(got, (float)want) && !(c == 0x80 && bits_of(got) == 0x80000000u)) decode_bad++;
        if (!isnan(want) && st_f32_to_e4m3(got) != c) {
            roundtrip_bad++;
            fprintf(stderr, "e4m3 code 0x%02x -> %g -> 0x%02x\n", c, got, st_f32_to_e4m3(got));
        }
    }
    CHECK_INT(0, decode_bad);
    CHECK_INT(0, roundtrip_bad);
    CHECK(bits_of(st_e4m3_to_f32(0x80)) == 0x80000000u); /* -0 */
    CHECK(st_e4m3_to_f32(0x7e) == 448.0f && st_e4m3_to_f32(0x01) == ldexpf(1, -9));
    CHECK(isnan(st_e4m3_to_f32(0x7f)) && isnan(st_e4m3_to_f32(0xff)));

    /* ties between neighbours go to the even code; one ulp off a tie goes to the near side */
    int tie_bad = 0;
    for (int c = 0; c < 0x7e; c++) {
        for (int s = 0; s <= 0x80; s += 0x80) {
            float lo = st_e4m3_to_f32((uint8_t)(c | s)), hi = st_e4m3_to_f32((uint8_t)((c + 1) | s));
            float mid = (lo + hi) / 2; /* exact: neighbours differ in the last of few bits */
            int even = (c & 1) ? c + 1 : c;
            if (st_f32_to_e4m3(mid) != (even | s)) tie_bad++;
            if (st_f32_to_e4m3(nextafterf(mid, lo)) != (c | s)) tie_bad++;
            if (st_f32_to_e4m3(nextafterf(mid, hi)) != ((c + 1) | s)) tie_bad++;
        }
    }
    CHECK_INT(0, tie_bad);
    /* saturation at +-448, infinities included; NaN stays NaN */
    const float big[] = {448.0f, 449.0f, 464.0f, 465.0f, 480.0f, 1e6f, 3.4e38f, INFINITY};
    for (int i = 0; i < 8; i++) {
        CHECK_INT(0x7e, st_f32_to_e4m3(big[i]));
        CHECK_INT(0xfe, st_f32_to_e4m3(-big[i]));
    }
    CHECK_INT(0x7f, st_f32_to_e4m3(NAN));
    CHECK_INT(0x7f, st_f32_to_e4m3(-NAN) & 0x7f);
    CHECK_INT(0x00, st_f32_to_e4m3(ldexpf(1, -10)));              /* tie between 0 and 2^-9: to even 0 */
    CHECK_INT(0x01, st_f32_to_e4m3(nextafterf(ldexpf(1, -10), 1))); /* just above: 2^-9 */
    CHECK_INT(0x80, st_f32_to_e4m3(-1e-30f));
    CHECK_INT(0x00, st_f32_to_e4m3(1e-45f));
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t c = 0; c < 65536; c++) {
        float v = st_bf16_to_f32((uint16_t)c);
        if (bits_of(v) != c << 16) bad++;
        if (isnan(v) ? !isnan(st_bf16_to_f32(st_f32_to_bf16(v))) : st_f32_to_bf16(v) != c) bad++;
    }
    CHECK_INT(0, bad);
    CHECK_INT(0x3f80, st_f32_to_bf16(1.0f + ldexpf(1, -8)));     /* tie -> even (1.0) */
    CHECK_INT(0x3f82, st_f32_to_bf16(1.0f + 3 * ldexpf(1, -8))); /* tie -> even (1 + 2^-6) */
    CHECK_INT(0x3f81, st_f32_to_bf16(nextafterf(1.0f + ldexpf(1, -8), 2)));
    CHECK_INT(0x7f80, st_f32_to_bf16(3.4028235e38f)); /* rounds past the largest bf16: inf */
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
}

static void test_f16(void) {
    int bad = 0;
    for (uint32_t c = 0; c < 65536; c++) {
        float v = st_f16_to_f32((uint16_t)c);
#ifdef __FLT16_MAX__
        _Float16 h;
        uint16_t cc = (uint16_t)c;
        memcpy(&h, &cc, 2);
        if (!same_float(v, (float)h)) bad++;
#endif
        if (isnan(v) ? !isnan(st_f16_to_f32(st_f32_to_f16(v))) : st_f32_to_f16(v) != c) bad++;
    }
    CHECK_INT(0, bad);
#ifdef __FLT16_MAX__
    /* encoding vs the compiler's float -> _Float16 conversion over a sweep of all exponents */
    int enc_bad = 0;
    for (uint64_t u = 0; u < 0x80000000ull; u += 1021) {
        for (int s = 0; s < 2; s++) {
            uint32_t b = (uint32_t)u | (s ? 0x80000000u : 0);
            float f;
            memcpy(&f, &b, 4);
            _Float16 h = (_Float16)f;
            uint16_t want;
            memcpy(&want, &h, 2);
            uint16_t got = st_f32_to_f16(f);
            if (isnan(f) ? (got & 0x7c00) != 0x7c00 || !(got & 0x3ff) : got != want) enc_bad++;
        }
    }
    CHECK_INT(0, enc_bad);
#endif
    CHECK_INT(0x7bff, st_f32_to_f16(65519.0f));
    CHECK_INT(0x7c00, st_f32_to_f16(65520.0f));
    CHECK_INT(0x0000, st_f32_to_f16(ldexpf(1, -25)));
    CHECK_INT(0x0001, st_f32_to_f16(nextafterf(ldexpf(1, -25), 1)));
    CHECK_INT(0x0002, st_f32_to_f16(3 * ldexpf(1, -25))); /* 1.5 units: tie -> even 2 */
}

/* ---- fixtures from the reference library ---- */

static json_t *load_expected(void) {
    json_error_t err;
    json_t *root = json_load_file(harness_source_path("tests/fixtures/safetensors/expected.json"), 0, &err);
    if (!root) fprintf(stderr, "expected.json: %s (line %d)\n", err.text, err.line);
    return root;
}

/* Every tensor of `f` matches the expected {"dtype", "shape", "values"} table exactly. */
static void compare_with_expected(const st_file *f, const json_t *expected) {
    const json_t *tensors = json_object_get(expected, "tensors");
    CHECK_INT(json_object_size(tensors), st_count(f));
    const char *name;
    json_t *info;
    json_object_foreach((json_t *)tensors, name, info) {
        const st_tensor *t = st_find(f, name);
        CHECK_MSG(t != NULL, "tensor '%s' missing", name);
        if (!t) continue;
        CHECK_STR(json_string_value(json_object_get(info, "dtype")), st_dtype_name(t->dtype));
        const json_t *shape = json_object_get(info, "shape");
        CHECK_INT(json_array_size(shape), t->ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            CHECK_INT(json_integer_value(json_array_get(shape, (size_t)d)), t->shape[d]);
            numel *= t->shape[d];
        }
        CHECK_INT(numel, t->numel);
        CHECK_INT((size_t)numel * st_dtype_size(t->dtype), t->nbytes);
        CHECK_MSG((uintptr_t)t->data % st_dtype_size(t->dtype) == 0, "tensor '%s' data is not aligned", name);
        const json_t *values = json_object_get(info, "values");
        CHECK_INT(numel, json_array_size(values));
        if (t->dtype == ST_I64) {
            int bad = 0;
            for (int64_t i = 0; i < numel; i++) {
                int64_t v;
                memcpy(&v, (const char *)t->data + 8 * i, 8);
                if (v != json_integer_value(json_array_get(values, (size_t)i))) bad++;
            }
            CHECK_MSG(bad == 0, "tensor '%s': %d int64 values differ", name, bad);
            continue;
        }
        float *got = malloc((size_t)(numel ? numel : 1) * sizeof *got);
        CHECK_OK(st_read_f32(t, got, numel));
        int bad = 0;
        for (int64_t i = 0; i < numel; i++) {
            const json_t *v = json_array_get(values, (size_t)i);
            float want = json_is_null(v) ? NAN : (float)json_number_value(v);
            if (!same_float(got[i], want)) {
                if (bad++ < 5) fprintf(stderr, "  %s[%lld]: expected %.9g, got %.9g\n", name, (long long)i, want, got[i]);
            }
        }
        CHECK_MSG(bad == 0, "tensor '%s': %d of %lld values differ", name, bad, (long long)numel);
        free(got);
    }
    const json_t *meta = json_object_get(expected, "metadata");
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)meta, key, value) CHECK_STR(json_string_value(value), st_metadata(f, key));
    CHECK(st_metadata(f, "no such key") == NULL);
}

static void test_read_fixtures(const json_t *expected) {
    st_file *f = NULL;
    CHECK_OK(st_open(harness_source_path("tests/fixtures/safetensors/mixed.safetensors"), &f));
    if (f) {
        compare_with_expected(f, json_object_get(expected, "mixed"));
        /* name order across st_get */
        for (int i = 1; i < st_count(f); i++) CHECK(strcmp(st_get(f, i - 1)->name, st_get(f, i)->name) < 0);
        CHECK(st_get(f, -1) == NULL && st_get(f, st_count(f)) == NULL);
        float buf[12];
        CHECK_OK(st_load_f32(f, "model.embed.weight", buf, 12));
        CHECK_FAILS(st_load_f32(f, "model.embed.weight", buf, 11), "expected 11 elements");
        CHECK_FAILS(st_load_f32(f, "token_ids", buf, 6), "expected a float dtype");
        CHECK_INT(GRPO_ERR_NOTFOUND, st_load_f32(f, "no.such.tensor", buf, 1));
        CHECK(strstr(grpo_error_message(), "no.such.tensor") != NULL);
    }
    st_close(f);

    /* the sharded directory, opened as a directory and through its index file */
    const char *paths[] = {"tests/fixtures/safetensors/sharded",
                           "tests/fixtures/safetensors/sharded/model.safetensors.index.json"};
    for (int p = 0; p < 2; p++) {
        char path[4096];
        snprintf(path, sizeof path, "%s", harness_source_path(paths[p]));
        f = NULL;
        CHECK_OK(st_open(path, &f));
        if (f) compare_with_expected(f, json_object_get(expected, "sharded"));
        st_close(f);
    }
}

static void test_encodings_vs_torch(const json_t *expected) {
    const json_t *enc = json_object_get(expected, "encode");
    const char *kinds[] = {"e4m3", "bf16", "f16"};
    for (int k = 0; k < 3; k++) {
        const json_t *in = json_object_get(json_object_get(enc, kinds[k]), "in");
        const json_t *out = json_object_get(json_object_get(enc, kinds[k]), "out");
        CHECK(json_array_size(in) > 100 && json_array_size(in) == json_array_size(out));
        int bad = 0;
        for (size_t i = 0; i < json_array_size(in); i++) {
            float x = (float)json_number_value(json_array_get(in, i));
            long long want = json_integer_value(json_array_get(out, i));
            long long got = k == 0 ? st_f32_to_e4m3(x) : k == 1 ? st_f32_to_bf16(x) : st_f32_to_f16(x);
            if (got != want && bad++ < 5) fprintf(stderr, "  %s(%.9g): torch 0x%llx, ours 0x%llx\n", kinds[k], x, want, got);
        }
        CHECK_MSG(bad == 0, "%s: %d encodings differ from torch", kinds[k], bad);
    }
}

/* ---- writer ---- */

/* The formulas of writer_reference_tensors() in the fixture script. */
typedef struct {
    float w_f32[6];
    uint16_t b_f16[3], a_bf16[4];
    uint8_t q_fp8[5];
    int64_t n_i64[3];
    int32_t z_i32[2];
    int16_t s_i16[1];
    int8_t t_i8[3];
    uint8_t m_u8[3], flag[2];
    double d_f64[2];
    float scalar;
    float named[2];
} reference_data;

static void writer_reference_add(st_writer *w, reference_data *r) {
    for (int i = 0; i < 6; i++) r->w_f32[i] = i * 0.25f - 1;
    for (int i = 0; i < 3; i++) r->b_f16[i] = st_f32_to_f16(i * 0.5f - 0.5f);
    for (int i = 0; i < 4; i++) r->a_bf16[i] = st_f32_to_bf16(i * 1.5f);
    for (int i = 0; i < 5; i++) r->q_fp8[i] = st_f32_to_e4m3(i * 0.125f - 0.25f);
    for (int i = 0; i < 3; i++) r->n_i64[i] = i * 7 - 5;
    for (int i = 0; i < 2; i++) r->z_i32[i] = i * -3 + 1;
    r->s_i16[0] = -300;
    for (int i = 0; i < 3; i++) r->t_i8[i] = (int8_t)(i - 1);
    for (int i = 0; i < 3; i++) r->m_u8[i] = (uint8_t)(i * 100);
    r->flag[0] = 1;
    r->flag[1] = 0;
    for (int i = 0; i < 2; i++) r->d_f64[i] = i / 3.0;
    r->scalar = 2.5f;
    const int64_t s23[] = {2, 3}, s3[] = {3}, s22[] = {2, 2}, s5[] = {5}, s2[] = {2}, s1[] = {1}, s04[] = {0, 4};
    CHECK_OK(st_writer_add(w, "w.f32", ST_F32, 2, s23, r->w_f32));
    CHECK_OK(st_writer_add(w, "b.f16", ST_F16, 1, s3, r->b_f16));
    CHECK_OK(st_writer_add(w, "a.bf16", ST_BF16, 2, s22, r->a_bf16));
    CHECK_OK(st_writer_add(w, "q.fp8", ST_F8_E4M3, 1, s5, r->q_fp8));
    CHECK_OK(st_writer_add(w, "n.i64", ST_I64, 1, s3, r->n_i64));
    CHECK_OK(st_writer_add(w, "z.i32", ST_I32, 1, s2, r->z_i32));
    CHECK_OK(st_writer_add(w, "s.i16", ST_I16, 1, s1, r->s_i16));
    CHECK_OK(st_writer_add(w, "t.i8", ST_I8, 1, s3, r->t_i8));
    CHECK_OK(st_writer_add(w, "m.u8", ST_U8, 1, s3, r->m_u8));
    CHECK_OK(st_writer_add(w, "flag", ST_BOOL, 1, s2, r->flag));
    CHECK_OK(st_writer_add(w, "d.f64", ST_F64, 1, s2, r->d_f64));
    CHECK_OK(st_writer_add(w, "scalar", ST_F32, 0, NULL, &r->scalar));
    CHECK_OK(st_writer_add(w, "empty", ST_F32, 2, s04, NULL));
}

static unsigned char *read_whole(const char *path, size_t *size) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *size = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    return buf;
}

static int write_whole(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t k = fwrite(data, 1, n, fp);
    fclose(fp);
    return k == n ? 0 : -1;
}

static char tmpdir[1024];

static const char *tmp_path(const char *name) {
    static char buf[8][4096];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 4096, "%s/%s", tmpdir, name);
    return p;
}

static void test_writer(void) {
    reference_data r;
    st_writer *w = st_writer_create();
    writer_reference_add(w, &r);
    CHECK_OK(st_writer_add_metadata(w, "format", "pt"));
    const char *out = tmp_path("written.safetensors");
    CHECK_OK(st_writer_save(w, out));
    CHECK(access(tmp_path("written.safetensors.tmp"), F_OK) != 0); /* renamed away */
    st_writer_free(w);

    size_t n_ours = 0, n_ref = 0;
    unsigned char *ours = read_whole(out, &n_ours);
    unsigned char *ref = read_whole(harness_source_path("tests/fixtures/safetensors/writer_reference.safetensors"), &n_ref);
    CHECK(ours && ref);
    if (ours && ref) {
        CHECK_INT(n_ref, n_ours);
        size_t first_diff = 0;
        while (first_diff < n_ours && first_diff < n_ref && ours[first_diff] == ref[first_diff]) first_diff++;
        CHECK_MSG(n_ours == n_ref && first_diff == n_ours, "written file differs from the reference library's at byte %zu",
                  first_diff);
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | ours[i];
        CHECK_INT(0, hlen % 8);
        size_t last = 8 + hlen - 1;
        while (last > 8 && ours[last] == ' ') last--; /* padding is spaces after the closing brace */
        CHECK(ours[8] == '{' && ours[last] == '}' && last + 8 > 8 + hlen - 1);
    }
    free(ours);
    free(ref);

    /* read back: every tensor exactly as added */
    st_file *f = NULL;
    CHECK_OK(st_open(out, &f));
    if (f) {
        CHECK_INT(13, st_count(f));
        CHECK_STR("pt", st_metadata(f, "format"));
        const st_tensor *t = st_find(f, "w.f32");
        CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && memcmp(t->data, r.w_f32, 24) == 0);
        t = st_find(f, "d.f64");
        CHECK(t && t->dtype == ST_F64 && memcmp(t->data, r.d_f64, 16) == 0);
        t = st_find(f, "q.fp8");
        CHECK(t && t->dtype == ST_F8_E4M3 && memcmp(t->data, r.q_fp8, 5) == 0);
        t = st_find(f, "scalar");
        CHECK(t && t->ndim == 0 && t->numel == 1 && *(const float *)t->data == 2.5f);
        t = st_find(f, "empty");
        CHECK(t && t->numel == 0 && t->nbytes == 0 && t->shape[1] == 4);
        for (int i = 0; i < st_count(f); i++)
            CHECK((uintptr_t)st_get(f, i)->data % st_dtype_size(st_get(f, i)->dtype) == 0);
    }
    st_close(f);

    /* a file with what the reference writer cannot be compared on byte for byte
     * (several metadata keys, escapes, unicode); the fixture script reads it back */
    w = st_writer_create();
    writer_reference_add(w, &r);
    r.named[0] = 1;
    r.named[1] = -1;
    const int64_t s2[] = {2};
    CHECK_OK(st_writer_add(w, "name with \"quote\" and \xc3\xa9", ST_F32, 1, s2, r.named));
    CHECK_OK(st_writer_add_metadata(w, "format", "pt"));
    CHECK_OK(st_writer_add_metadata(w, "unicode", "\xc3\xa9\xe4\xb8\xad"));
    CHECK_OK(st_writer_add_metadata(w, "b", "one"));
    CHECK_OK(st_writer_add_metadata(w, "b", "two")); /* set again: replaced */
    CHECK_OK(st_writer_add_metadata(w, "ctl", "a\nb\x01"));
    const char *export_dir = getenv("GRPO_ST_EXPORT_DIR");
    char c_written[8192];
    snprintf(c_written, sizeof c_written, "%s/c_written.safetensors", export_dir ? export_dir : tmpdir);
    CHECK_OK(st_writer_save(w, c_written));
    st_writer_free(w);
    f = NULL;
    CHECK_OK(st_open(c_written, &f));
    if (f) {
        CHECK_INT(14, st_count(f));
        CHECK_STR("two", st_metadata(f, "b"));
        CHECK_STR("a\nb\x01", st_metadata(f, "ctl"));
        CHECK_STR("\xc3\xa9\xe4\xb8\xad", st_metadata(f, "unicode"));
        const st_tensor *t = st_find(f, "name with \"quote\" and \xc3\xa9");
        CHECK(t && t->numel == 2 && memcmp(t->data, r.named, 8) == 0);
    }
    st_close(f);
    /* the committed copy (checked by the fixture script with the reference loader) is
     * what this code writes today */
    size_t n_now = 0, n_committed = 0;
    unsigned char *now = read_whole(c_written, &n_now);
    unsigned char *committed = read_whole(harness_source_path("tests/fixtures/safetensors/c_written.safetensors"),
                                          &n_committed);
    CHECK_MSG(now && committed && n_now == n_committed && memcmp(now, committed, n_now) == 0,
              "c_written.safetensors differs from what st_writer writes now; regenerate it (GRPO_ST_EXPORT_DIR) "
              "and rerun the fixture script");
    free(now);
    free(committed);

    /* writer misuse */
    w = st_writer_create();
    float x = 1;
    const int64_t one[] = {1}, negative[] = {-2}, huge[] = {INT64_MAX / 2, 4};
    CHECK_OK(st_writer_add(w, "x", ST_F32, 1, one, &x));
    CHECK_FAILS(st_writer_add(w, "x", ST_F32, 1, one, &x), "added twice");
    CHECK_FAILS(st_writer_add(w, "__metadata__", ST_F32, 1, one, &x), "reserved");
    CHECK_FAILS(st_writer_add(w, "neg", ST_F32, 1, negative, &x), "shape[0] is -2");
    CHECK_FAILS(st_writer_add(w, "huge", ST_F32, 2, huge, &x), "overflows");
    CHECK_FAILS(st_writer_add(w, "nodata", ST_F32, 1, one, NULL), "no data");
    CHECK_FAILS(st_writer_add(w, "bad\xff", ST_F32, 1, one, &x), "UTF-8");
    CHECK_FAILS(st_writer_add(w, "dims", ST_F32, 9, one, &x), "dimensions");
    CHECK_FAILS(st_writer_save(w, tmp_path("no/such/dir/x.safetensors")), "cannot create");
    st_writer_free(w);
    st_writer_free(NULL);
    st_close(NULL);
}

/* ---- hostile inputs ---- */

/* 8-byte length + header + data_size zero bytes; the caller frees. */
static unsigned char *make_image(const char *header, uint64_t claimed_len, size_t data_size, size_t *size) {
    size_t h = strlen(header);
    *size = 8 + h + data_size;
    unsigned char *buf = calloc(1, *size);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(claimed_len >> (8 * i));
    memcpy(buf + 8, header, h);
    return buf;
}

static void expect_bad_header(int line, const char *header, size_t data_size, const char *needle) {
    size_t n;
    unsigned char *img = make_image(header, strlen(header), data_size, &n);
    st_file *f = (st_file *)1;
    int s = st_open_memory(img, n, "hostile.safetensors", &f);
    const char *msg = grpo_error_message();
    harness_checks++;
    if (s == GRPO_OK || f != NULL || !strstr(msg, needle) || !strstr(msg, "hostile.safetensors")) {
        harness_failures++;
        fprintf(stderr, "%s:%d: header %s: status %d, message \"%s\", expected one with \"%s\"\n", __FILE__, line,
                header, s, msg, needle);
    }
    if (s == GRPO_OK) st_close(f);
    free(img);
}
#define BAD(header, data_size, needle) expect_bad_header(__LINE__, header, data_size, needle)

static void test_hostile_memory(void) {
    st_file *f = NULL;
    CHECK_FAILS(st_open_memory("", 0, "empty.safetensors", &f), "too short");
    CHECK_FAILS(st_open_memory("\x10\0\0\0\0", 5, "five.safetensors", &f), "too short");
    size_t n;
    unsigned char *img = make_image("{}", 1000, 0, &n);
    CHECK_FAILS(st_open_memory(img, n, "x.safetensors", &f), "past the end of the file");
    free(img);
    img = make_image("{}", 1ull << 62, 0, &n);
    CHECK_FAILS(st_open_memory(img, n, "x.safetensors", &f), "exceeds");
    free(img);
    CHECK(f == NULL);

    BAD("{not json", 0, "not valid JSON");
    BAD("[1, 2]", 0, "expected a JSON object");
    BAD("{\"x\": 3}", 0, "tensor 'x': expected an object");
    BAD("{\"x\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "tensor 'x': expected a string \"dtype\"");
    BAD("{\"x\": {\"dtype\": \"F8_E5M2\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1, "unknown dtype 'F8_E5M2'");
    BAD("{\"x\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}", 16, "\"shape\" array");
    BAD("{\"x\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, "shape[0] is -1");
    BAD("{\"x\": {\"dtype\": \"F32\", \"shape\": [2.0], \"data_offsets\": [0, 8]}}", 8, "shape[0] is a real number");
    BAD("{\"x\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}", 1, "9 dimensions");
    BAD("{\"x\": {\"dtype\": \"U8\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 0]}}", 0,
        "more bytes than fit");
    BAD("{\"x\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904], \"data_offsets\": [0, 0]}}", 0,
        "more bytes than fit");
    BAD("{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, "data_offsets");
    BAD("{\"x\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "data_offsets");
    BAD("{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4, "non-negative");
    BAD("{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8, "begin after end");
    BAD("{\"lm_head.weight\": {\"dtype\": \"F32\", \"shape\": [1024], \"data_offsets\": [0, 4096]}}", 2048,
        "tensor 'lm_head.weight': data_offsets end 4096 is past the data block (2048 bytes)");
    BAD("{\"x\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8,
        "hold 8 bytes, but F32 [3] needs 12 bytes");
    BAD("{\"x\": {\"dtype\": \"F16\", \"shape\": [2, 2], \"data_offsets\": [0, 4]}}", 8, "F16 [2, 2] needs 8 bytes");
    BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
        " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12, "overlap");
    BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
        " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "overlap");
    BAD("{\"a\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8]},"
        " \"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [3, 5]}}", 8, "overlap");
    BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
        " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "duplicate");
    BAD("{\"__metadata__\": {\"k\": 3}}", 0, "__metadata__ 'k': expected a string");
    BAD("{\"__metadata__\": [\"k\"]}", 0, "__metadata__: expected an object");

    /* legal corner cases: empty tensors may share an offset; a scalar; no tensors */
    const char *ok = "{\"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]},"
                     " \"b\": {\"dtype\": \"F32\", \"shape\": [0, 5], \"data_offsets\": [4, 4]},"
                     " \"c\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]},"
                     " \"d\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}  ";
    img = make_image(ok, strlen(ok), 8, &n);
    f = NULL;
    CHECK_OK(st_open_memory(img, n, "ok.safetensors", &f));
    CHECK_INT(4, st_count(f));
    CHECK(st_find(f, "c") && st_find(f, "c")->numel == 1 && st_find(f, "b")->numel == 0);
    st_close(f);
    free(img);
    img = make_image("{}", 2, 0, &n);
    f = NULL;
    CHECK_OK(st_open_memory(img, n, "none.safetensors", &f));
    CHECK_INT(0, st_count(f));
    CHECK(st_find(f, "x") == NULL);
    st_close(f);
    free(img);
}

static const char *write_file(const char *name, const void *data, size_t n) {
    const char *p = tmp_path(name);
    if (write_whole(p, data, n) != 0) fprintf(stderr, "cannot write %s\n", p);
    return p;
}

static void write_text(const char *name, const char *text) { write_file(name, text, strlen(text)); }

static void test_hostile_files(void) {
    st_file *f = NULL;
    size_t n = 0;
    unsigned char *good = read_whole(harness_source_path("tests/fixtures/safetensors/mixed.safetensors"), &n);
    CHECK(good && n > 200);
    if (!good) return;
    CHECK_FAILS(st_open(write_file("trunc1.safetensors", good, n - 1), &f), "past the data block");
    CHECK_FAILS(st_open(write_file("trunc2.safetensors", good, 100), &f), "past the end of the file");
    CHECK_FAILS(st_open(write_file("trunc3.safetensors", good, 3), &f), "too short");
    CHECK_FAILS(st_open(write_file("trunc4.safetensors", good, 0), &f), "trunc4.safetensors");
    CHECK_INT(GRPO_ERR_NOTFOUND, st_open(tmp_path("missing.safetensors"), &f));
    CHECK(strstr(grpo_error_message(), "missing.safetensors") != NULL);
    mkdir(tmp_path("emptydir"), 0755);
    CHECK_FAILS(st_open(tmp_path("emptydir"), &f), "neither");
    CHECK(f == NULL);

    /* a directory with model.safetensors and no index */
    mkdir(tmp_path("single"), 0755);
    write_file("single/model.safetensors", good, n);
    CHECK_OK(st_open(tmp_path("single"), &f));
    CHECK_INT(8, st_count(f));
    st_close(f);
    f = NULL;

    /* sharded directories that lie */
    st_writer *w = st_writer_create();
    float v[2] = {1, 2};
    const int64_t s2[] = {2};
    CHECK_OK(st_writer_add(w, "x", ST_F32, 1, s2, v));
    CHECK_OK(st_writer_save(w, tmp_path("shard_x.safetensors")));
    CHECK_OK(st_writer_save(w, tmp_path("shard_x2.safetensors")));
    st_writer_free(w);
    mkdir(tmp_path("idx"), 0755);
    rename(tmp_path("shard_x.safetensors"), tmp_path("idx/a.safetensors"));
    rename(tmp_path("shard_x2.safetensors"), tmp_path("idx/b.safetensors"));
    const char *index = tmp_path("idx/model.safetensors.index.json");
    write_text("idx/model.safetensors.index.json", "{\"weight_map\": {\"x\": \"a.safetensors\"}}");
    CHECK_OK(st_open(tmp_path("idx"), &f));
    CHECK(st_find(f, "x") != NULL);
    st_close(f);
    f = NULL;
    write_text("idx/model.safetensors.index.json",
               "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"model-00009.safetensors\"}}");
    CHECK_FAILS(st_open(tmp_path("idx"), &f), "tensor 'y' is mapped to shard 'model-00009.safetensors', which is missing");
    write_text("idx/model.safetensors.index.json", "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"a.safetensors\"}}");
    CHECK_FAILS(st_open(index, &f), "weight_map puts 'y' in 'a.safetensors', but that shard has no such tensor");
    write_text("idx/model.safetensors.index.json", "{\"weight_map\": {\"x\": \"a.safetensors\", \"z\": \"b.safetensors\"}}");
    CHECK_FAILS(st_open(index, &f), "appears in both");
    write_text("idx/model.safetensors.index.json", "{\"weight_map\": {\"x\": \"../a.safetensors\"}}");
    CHECK_FAILS(st_open(index, &f), "not a file name inside the model directory");
    write_text("idx/model.safetensors.index.json", "{\"weight_map\": {\"x\": \"/etc/passwd\"}}");
    CHECK_FAILS(st_open(index, &f), "not a file name inside");
    write_text("idx/model.safetensors.index.json", "{\"weight_map\": {\"x\": 7}}");
    CHECK_FAILS(st_open(index, &f), "expected a shard file name");
    write_text("idx/model.safetensors.index.json", "{\"metadata\": {}}");
    CHECK_FAILS(st_open(index, &f), "weight_map");
    write_text("idx/model.safetensors.index.json", "{\"weight_map\": {}}");
    CHECK_FAILS(st_open(index, &f), "empty");
    write_text("idx/model.safetensors.index.json", "{\"weight_map\": {\"x\": \"a.safetensors\",");
    CHECK_FAILS(st_open(index, &f), "model.safetensors.index.json");
    write_file("idx/b.safetensors", good, 50);
    write_text("idx/model.safetensors.index.json", "{\"weight_map\": {\"x\": \"a.safetensors\", \"q\": \"b.safetensors\"}}");
    CHECK_FAILS(st_open(index, &f), "b.safetensors");
    CHECK(f == NULL);
    free(good);
}

static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        remove_tree(child);
    }
    closedir(d);
    rmdir(path);
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/test_safetensors.XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_dtype_table();
    test_e4m3();
    test_bf16();
    test_f16();
    json_t *expected = load_expected();
    CHECK(expected != NULL);
    if (expected) {
        test_read_fixtures(expected);
        test_encodings_vs_torch(expected);
        json_decref(expected);
    }
    test_writer();
    test_hostile_memory();
    test_hostile_files();
    remove_tree(tmpdir);
    TEST_MAIN_END();
}
