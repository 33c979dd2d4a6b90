/* Parameter sets (model/params.h): declaring and carving, finding, random
 * initialisation, and the safetensors round trip with its error messages (shape
 * mismatch, missing tensor, extra tensor). */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/safetensors.h"
#include "model/params.h"
#include "tests/harness.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* The three-tensor set used throughout: a [3, 4] weight, a [4] bias, a [4] norm weight,
 * plus an optional extra [2, 2, 2] tensor. */
static void declare(param_set *ps, backend *be, int64_t rows, int64_t cols, int with_extra) {
    param_set_init(ps, be);
    int64_t w[2] = {rows, cols}, b[1] = {cols}, e[3] = {2, 2, 2};
    param_set_add(ps, "layer.weight", 2, w, 0);
    param_set_add(ps, "layer.bias", 1, b, 1);
    param_set_add(ps, "layer.norm.weight", 1, b, 1);
    if (with_extra) param_set_add(ps, "extra.weight", 3, e, 0);
}

static void fill(param_set *ps, float base) {
    float *host = malloc(ps->total * sizeof(float));
    for (size_t i = 0; i < ps->total; i++) host[i] = base + 0.37f * (float)i - 0.01f * (float)(i * i);
    ps->be->to_device(ps->be, ps->data, host, ps->total * sizeof(float));
    free(host);
}

static int skip_bias(const char *name) { return strcmp(name, "layer.bias") == 0; }
static int extra_optional(const char *name) { return strcmp(name, "extra.weight") == 0; }

static void test_declare(backend *be) {
    param_set ps;
    declare(&ps, be, 3, 4, 1);
    CHECK_INT(4, ps.count);
    CHECK_INT(12 + 4 + 4 + 8, ps.total);
    CHECK_INT(0, ps.views[0].offset);
    CHECK_INT(12, ps.views[1].offset);
    CHECK_INT(16, ps.views[2].offset);
    CHECK_INT(20, ps.views[3].offset);
    CHECK_INT(8, ps.views[3].numel);
    CHECK_INT(3, ps.views[3].ndim);
    CHECK_INT(1, ps.views[1].no_decay);
    CHECK_INT(2, param_find(&ps, "layer.norm.weight"));
    CHECK_INT(-1, param_find(&ps, "layer.missing"));
    CHECK_OK(param_set_alloc(&ps));
    CHECK(param_ptr(&ps, 2) == ps.data + 16);
    CHECK(ps.grad == NULL);
    CHECK_OK(param_set_alloc_grad(&ps));
    CHECK(param_grad_ptr(&ps, 3) == ps.grad + 20);
    float one = 1.0f, back = -1.0f;
    be->to_device(be, ps.grad + 5, &one, sizeof one);
    param_set_zero_grad(&ps);
    be->to_host(be, &back, ps.grad + 5, sizeof back);
    CHECK(back == 0.0f);
    param_set_deinit(&ps);
    CHECK(ps.data == NULL && ps.views == NULL && ps.count == 0);
    param_set_deinit(&ps);   /* twice is harmless */
}

static void test_round_trip(backend *be) {
    param_set a, b;
    declare(&a, be, 3, 4, 1);
    CHECK_OK(param_set_alloc(&a));
    fill(&a, 0.5f);
    CHECK_OK(param_set_save(&a, tmp_path("a.safetensors"), 0, NULL));

    st_file *f = NULL;
    CHECK_OK(st_open(tmp_path("a.safetensors"), &f));
    if (!f) return;
    CHECK_INT(4, st_count(f));
    const st_tensor *t = st_find(f, "extra.weight");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 3 && t->shape[2] == 2);

    declare(&b, be, 3, 4, 1);
    CHECK_OK(param_set_alloc(&b));
    CHECK_OK(param_set_load(&b, f, NULL, 0));
    float *ha = malloc(a.total * sizeof(float)), *hb = malloc(b.total * sizeof(float));
    be->to_host(be, ha, a.data, a.total * sizeof(float));
    be->to_host(be, hb, b.data, b.total * sizeof(float));
    CHECK(memcmp(ha, hb, a.total * sizeof(float)) == 0);
    st_close(f);

    /* bf16 keeps 8 significant bits: each value within half an ulp, 2^-8 relative. */
    CHECK_OK(param_set_save(&a, tmp_path("a16.safetensors"), 1, NULL));
    CHECK_OK(st_open(tmp_path("a16.safetensors"), &f));
    if (f) {
        CHECK(st_find(f, "layer.weight")->dtype == ST_BF16);
        CHECK_OK(param_set_load(&b, f, NULL, 0));
        be->to_host(be, hb, b.data, b.total * sizeof(float));
        double worst = 0;
        for (size_t i = 0; i < a.total; i++) {
            double rel = fabs(ha[i] - hb[i]) / fmax(fabs(ha[i]), 1e-30);
            if (rel > worst) worst = rel;
        }
        CHECK_MSG(worst <= 1.0 / 256, "bf16 round trip relative error %g", worst);
        st_close(f);
    }

    /* skip() leaves a view out of the file; loading it back then needs optional_missing. */
    CHECK_OK(param_set_save(&a, tmp_path("skip.safetensors"), 0, skip_bias));
    CHECK_OK(st_open(tmp_path("skip.safetensors"), &f));
    if (f) {
        CHECK_INT(3, st_count(f));
        CHECK(st_find(f, "layer.bias") == NULL);
        CHECK_FAILS(param_set_load(&b, f, NULL, 0), "tensor layer.bias is missing");
        st_close(f);
    }
    free(ha);
    free(hb);
    param_set_deinit(&a);
    param_set_deinit(&b);
}

static void test_load_errors(backend *be) {
    param_set a, wrong_shape, more, fewer;
    declare(&a, be, 3, 4, 0);
    CHECK_OK(param_set_alloc(&a));
    fill(&a, -1.0f);
    CHECK_OK(param_set_save(&a, tmp_path("b.safetensors"), 0, NULL));
    st_file *f = NULL;
    CHECK_OK(st_open(tmp_path("b.safetensors"), &f));
    if (!f) return;

    /* Same names, transposed weight: the message names the tensor and both shapes. */
    param_set_init(&wrong_shape, be);
    param_set_add(&wrong_shape, "layer.weight", 2, (int64_t[]){4, 3}, 0);
    param_set_add(&wrong_shape, "layer.bias", 1, (int64_t[]){4}, 1);
    param_set_add(&wrong_shape, "layer.norm.weight", 1, (int64_t[]){4}, 1);
    CHECK_OK(param_set_alloc(&wrong_shape));
    CHECK_FAILS(param_set_load(&wrong_shape, f, NULL, 0),
                "tensor layer.weight: expected shape [4, 3], found [3, 4]");

    /* A declared tensor that the file lacks. */
    declare(&more, be, 3, 4, 1);
    CHECK_OK(param_set_alloc(&more));
    CHECK_FAILS(param_set_load(&more, f, NULL, 0), "tensor extra.weight is missing from the file");
    CHECK_OK(param_set_load(&more, f, extra_optional, 0));

    /* A tensor in the file that the set lacks. */
    param_set_init(&fewer, be);
    param_set_add(&fewer, "layer.weight", 2, (int64_t[]){3, 4}, 0);
    param_set_add(&fewer, "layer.norm.weight", 1, (int64_t[]){4}, 1);
    CHECK_OK(param_set_alloc(&fewer));
    CHECK_FAILS(param_set_load(&fewer, f, NULL, 0), "tensor layer.bias in the file is not a parameter");
    CHECK_OK(param_set_load(&fewer, f, NULL, 1));
    float back[4], want[4];
    be->to_host(be, back, param_ptr(&fewer, 1), sizeof back);
    be->to_host(be, want, param_ptr(&a, 2), sizeof want);
    CHECK(memcmp(back, want, sizeof back) == 0);

    st_close(f);
    param_set_deinit(&a);
    param_set_deinit(&wrong_shape);
    param_set_deinit(&more);
    param_set_deinit(&fewer);
}

static void test_init_normal(backend *be) {
    param_set a, b;
    param_set_init(&a, be);
    param_set_init(&b, be);
    int64_t big[2] = {200, 100}, vec[1] = {50};
    for (int k = 0; k < 2; k++) {
        param_set *ps = k ? &b : &a;
        param_set_add(ps, "model.embed_tokens.weight", 2, big, 0);
        param_set_add(ps, "model.layers.0.input_layernorm.weight", 1, vec, 1);
        param_set_add(ps, "model.layers.0.self_attn.q_proj.bias", 1, vec, 1);
        param_set_add(ps, "model.norm.weight", 1, vec, 1);
        param_set_add(ps, "lm_head.weight", 2, big, 0);
        CHECK_OK(param_set_alloc(ps));
    }
    param_set_init_normal(&a, 42, 0.5f);
    param_set_init_normal(&b, 42, 0.5f);
    float *ha = malloc(a.total * sizeof(float)), *hb = malloc(b.total * sizeof(float));
    be->to_host(be, ha, a.data, a.total * sizeof(float));
    be->to_host(be, hb, b.data, b.total * sizeof(float));
    CHECK(memcmp(ha, hb, a.total * sizeof(float)) == 0);
    const float *emb = ha + a.views[0].offset, *head = ha + a.views[4].offset;
    double sum = 0, sq = 0;
    size_t n = a.views[0].numel;
    for (size_t i = 0; i < n; i++) { sum += emb[i]; sq += (double)emb[i] * emb[i]; }
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    /* 20000 draws: the mean's standard error is 0.5/141 = 0.0035, the sd's about 0.0025. */
    CHECK_NEAR(0.0, mean, 0.02, 0);
    CHECK_NEAR(0.5, sd, 0.02, 0);
    CHECK(memcmp(emb, head, n * sizeof(float)) != 0);   /* different streams per view */
    for (int i = 0; i < 50; i++) {
        CHECK(ha[a.views[1].offset + i] == 1.0f);
        CHECK(ha[a.views[2].offset + i] == 0.0f);
        CHECK(ha[a.views[3].offset + i] == 1.0f);
    }
    param_set_init_normal(&b, 43, 0.5f);
    be->to_host(be, hb, b.data, b.total * sizeof(float));
    CHECK(memcmp(ha, hb, n * sizeof(float)) != 0);
    free(ha);
    free(hb);
    param_set_deinit(&a);
    param_set_deinit(&b);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_params_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    backend *be = backend_cpu_create();
    CHECK(be != NULL);
    if (!be) TEST_MAIN_END();
    test_declare(be);
    test_round_trip(be);
    test_load_errors(be);
    test_init_normal(be);
    backend_free(be);
    const char *files[] = {"a.safetensors", "a16.safetensors", "skip.safetensors", "b.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(tmp_path(files[i]));
    rmdir(tmpdir);
    TEST_MAIN_END();
}
