/* AdamW over a parameter set, gradient clipping, learning-rate schedules and the
 * optimizer state file, against formulas computed here independently. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "model/params.h"
#include "rl/optim.h"

static void test_schedules(void) {
    optim_config c = optim_config_default();
    c.learning_rate = 1e-3;
    c.warmup_steps = 10;
    c.min_lr_ratio = 0.1;
    int total = 110;
    for (int step = 0; step < total; step++) {
        double expect;
        if (step < 10) expect = 1e-3 * (step + 1) / 10.0;
        else {
            double p = (step - 10) / 99.0;
            expect = 1e-4 + (1e-3 - 1e-4) * 0.5 * (1 + cos(M_PI * p));
        }
        c.schedule = LR_COSINE;
        CHECK_NEAR(expect, optim_lr_at(&c, step, total), 1e-15, 1e-12);
        c.schedule = LR_LINEAR;
        double lin = step < 10 ? expect : 1e-4 + (1e-3 - 1e-4) * (1 - (step - 10) / 99.0);
        CHECK_NEAR(lin, optim_lr_at(&c, step, total), 1e-15, 1e-12);
        c.schedule = LR_CONSTANT;
        CHECK_NEAR(step < 10 ? expect : 1e-3, optim_lr_at(&c, step, total), 1e-15, 1e-12);
    }
    c.schedule = LR_COSINE;
    CHECK_NEAR(1e-3, optim_lr_at(&c, 10, total), 0, 1e-12);    /* peak right after warm-up */
    CHECK_NEAR(1e-4, optim_lr_at(&c, 109, total), 0, 1e-12);   /* floor at the last step */
}

/* Two views: a "weight" that decays and a "norm" that does not. */
static void make_params(param_set *ps, backend *be) {
    param_set_init(ps, be);
    int64_t w_shape[2] = {3, 5}, n_shape[1] = {4};
    param_set_add(ps, "layer.weight", 2, w_shape, 0);
    param_set_add(ps, "layer.norm.weight", 1, n_shape, 1);
    CHECK_OK(param_set_alloc(ps));
    CHECK_OK(param_set_alloc_grad(ps));
}

static void test_adamw_and_clipping(void) {
    backend *be = backend_cpu_create();
    param_set ps;
    make_params(&ps, be);
    size_t n = ps.total;
    double *p_ref = malloc(n * sizeof(double)), *m_ref = calloc(n, sizeof(double)), *v_ref = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) p_ref[i] = ps.data[i] = 0.1f * (float)((int)i - 9);
    optim_config c = optim_config_default();
    c.learning_rate = 0.01;
    c.weight_decay = 0.1;
    c.max_grad_norm = 0.5;
    optim *o;
    CHECK_OK(optim_create(&c, &ps, &o));
    for (int step = 1; step <= 4; step++) {
        double sq = 0;
        for (size_t i = 0; i < n; i++) {
            ps.grad[i] = (float)(0.3 * sin((double)i * step));
            sq += (double)ps.grad[i] * ps.grad[i];
        }
        double norm = sqrt(sq), got_norm;
        CHECK_OK(optim_step(o, c.learning_rate, &got_norm));
        CHECK_NEAR(norm, got_norm, 1e-9, 1e-6);
        double clip = norm > c.max_grad_norm ? c.max_grad_norm / (norm + 1e-6) : 1.0;
        for (size_t i = 0; i < n; i++) {
            double g = (double)(float)(0.3 * sin((double)i * step)) * clip;
            int decays = i < 15;
            m_ref[i] = 0.9 * m_ref[i] + 0.1 * g;
            v_ref[i] = 0.999 * v_ref[i] + 0.001 * g * g;
            double mhat = m_ref[i] / (1 - pow(0.9, step)), vhat = v_ref[i] / (1 - pow(0.999, step));
            p_ref[i] -= c.learning_rate * (mhat / (sqrt(vhat) + 1e-8) + (decays ? 0.1 * p_ref[i] : 0));
        }
    }
    for (size_t i = 0; i < n; i++) CHECK_NEAR(p_ref[i], ps.data[i], 1e-6, 1e-4);
    CHECK_INT(4, optim_step_count(o));

    /* the state file round-trips into a fresh optimizer and continues identically */
    char path[256];
    snprintf(path, sizeof path, "/tmp/grpo_test_optim_%d.safetensors", (int)getpid());
    CHECK_OK(optim_save(o, path));
    optim *o2;
    CHECK_OK(optim_create(&c, &ps, &o2));
    CHECK_OK(optim_load(o2, path));
    CHECK_INT(4, optim_step_count(o2));
    float *saved = malloc(n * sizeof(float));
    memcpy(saved, ps.data, n * sizeof(float));
    for (size_t i = 0; i < n; i++) ps.grad[i] = 0.01f * (float)i;
    CHECK_OK(optim_step(o, 0.01, NULL));
    float *after1 = malloc(n * sizeof(float));
    memcpy(after1, ps.data, n * sizeof(float));
    memcpy(ps.data, saved, n * sizeof(float));
    for (size_t i = 0; i < n; i++) ps.grad[i] = 0.01f * (float)i;
    CHECK_OK(optim_step(o2, 0.01, NULL));
    CHECK(memcmp(after1, ps.data, n * sizeof(float)) == 0);

    /* a non-finite gradient is refused and nothing moves */
    memcpy(saved, ps.data, n * sizeof(float));
    ps.grad[3] = NAN;
    CHECK_FAILS(optim_step(o2, 0.01, NULL), "gradient norm is nan");
    CHECK(memcmp(saved, ps.data, n * sizeof(float)) == 0);

    /* a file that is not optimizer state is refused with its name */
    st_writer *w = st_writer_create();
    int64_t shape[1] = {1};
    float one = 1;
    st_writer_add(w, "x", ST_F32, 1, shape, &one);
    CHECK_OK(st_writer_save(w, path));
    st_writer_free(w);
    CHECK_FAILS(optim_load(o2, path), "expected optimizer state");
    unlink(path);

    optim_free(o);
    optim_free(o2);
    free(p_ref); free(m_ref); free(v_ref); free(saved); free(after1);
    param_set_deinit(&ps);
    backend_free(be);
}

int main(void) {
    test_schedules();
    test_adamw_and_clipping();
    TEST_MAIN_END();
}
