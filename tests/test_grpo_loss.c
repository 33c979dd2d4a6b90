/* The GRPO objective (rl/grpo_loss.h):
 *  - parity with TRL 1.16's GRPOTrainer._compute_loss on the fixtures of
 *    tests/fixtures/make_grpo_fixtures.py (every loss_type x beta 0 / 0.04 x epsilon_high
 *    none / 0.28 x num_iterations 1 / 2, on two shapes, one with an empty row; the four
 *    importance-sampling modes; entropy bonus; KL without bias correction; DAPO's
 *    num_items_in_batch / processes / accumulation normalisation): loss within 1e-9
 *    relative, every per-token gradient within 1e-6 relative (float output), TRL's
 *    metrics within 1e-6 (TRL logs the clip shares in float32);
 *  - central finite differences of the loss w.r.t. every logprob and entropy, in double,
 *    for every loss_type, with and without KL, bias correction and IS modes;
 *  - logprobs_old = NULL equals logprobs_old = logprobs (num_iterations 1);
 *  - relations between aggregations and a hand-worked one-token case;
 *  - ratio_mean against a direct computation;
 *  - bad options and missing inputs are refused with a message. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rl/grpo_loss.h"
#include "tests/harness.h"

/* ---- fixtures ---- */

typedef struct {
    char name[32];
    int B, T;
    float *logprobs, *logprobs_old, *ref_logprobs, *sampling_logprobs, *entropies;
    uint8_t *mask;
    double *advantages;
} shape;

/* JSON number or null (NaN) array of exactly n entries into doubles. */
static int json_doubles(json_t *arr, double *dst, size_t n) {
    if (!json_is_array(arr) || json_array_size(arr) != n) return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (json_is_null(v)) dst[i] = NAN;
        else if (json_is_number(v)) dst[i] = json_number_value(v);
        else return -1;
    }
    return 0;
}

static float *json_floats(json_t *obj, const char *key, size_t n) {
    double *tmp = malloc(n * sizeof *tmp);
    float *out = malloc(n * sizeof *out);
    GRPO_ASSERT(tmp && out);
    if (json_doubles(json_object_get(obj, key), tmp, n) != 0) {
        fprintf(stderr, "fixture: %s is not an array of %zu numbers\n", key, n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) out[i] = (float)tmp[i];   /* the values are float32 draws */
    free(tmp);
    return out;
}

static void shape_load(json_t *j, shape *s) {
    snprintf(s->name, sizeof s->name, "%s", json_string_value(json_object_get(j, "name")));
    s->B = (int)json_integer_value(json_object_get(j, "B"));
    s->T = (int)json_integer_value(json_object_get(j, "T"));
    size_t n = (size_t)s->B * s->T;
    s->logprobs = json_floats(j, "logprobs", n);
    s->logprobs_old = json_floats(j, "logprobs_old", n);
    s->ref_logprobs = json_floats(j, "ref_logprobs", n);
    s->sampling_logprobs = json_floats(j, "sampling_logprobs", n);
    s->entropies = json_floats(j, "entropies", n);
    float *m = json_floats(j, "completion_mask", n);
    s->mask = malloc(n);
    for (size_t i = 0; i < n; i++) s->mask[i] = m[i] != 0;
    free(m);
    s->advantages = malloc(s->B * sizeof(double));
    if (json_doubles(json_object_get(j, "advantages"), s->advantages, s->B) != 0) {
        fprintf(stderr, "fixture: bad advantages\n");
        exit(1);
    }
}

static void shape_free(shape *s) {
    free(s->logprobs); free(s->logprobs_old); free(s->ref_logprobs); free(s->sampling_logprobs);
    free(s->entropies); free(s->mask); free(s->advantages);
}

static double json_num_or_nan(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void options_from_json(json_t *j, grpo_loss_options *o) {
    *o = grpo_loss_options_default();
    CHECK_OK(grpo_loss_parse_type(json_string_value(json_object_get(j, "loss_type")), &o->loss_type));
    o->epsilon = json_number_value(json_object_get(j, "epsilon"));
    o->epsilon_high = json_num_or_nan(j, "epsilon_high");
    o->beta = json_number_value(json_object_get(j, "beta"));
    o->use_bias_correction_kl = (int)json_integer_value(json_object_get(j, "use_bias_correction_kl"));
    o->max_completion_length = (int)json_integer_value(json_object_get(j, "max_completion_length"));
    o->num_items_in_batch = json_number_value(json_object_get(j, "num_items_in_batch"));
    o->num_processes = (int)json_integer_value(json_object_get(j, "num_processes"));
    o->gradient_accumulation_steps = (int)json_integer_value(json_object_get(j, "gradient_accumulation_steps"));
    o->steps_per_generation = (int)json_integer_value(json_object_get(j, "steps_per_generation"));
    CHECK_OK(grpo_loss_parse_is_mode(json_string_value(json_object_get(j, "importance_sampling_mode")),
                                     &o->importance_sampling_mode));
    o->is_clip_min = json_num_or_nan(j, "is_clip_min");
    o->is_clip_max = json_num_or_nan(j, "is_clip_max");
    o->entropy_coef = json_number_value(json_object_get(j, "entropy_coef"));
}

/* TRL's metric name -> our field. */
static double metric_by_trl_name(const grpo_loss_result *r, const char *name, int *known) {
    *known = 1;
    if (!strcmp(name, "kl")) return r->kl;
    if (!strcmp(name, "entropy")) return r->entropy;
    if (!strcmp(name, "policy_loss")) return r->policy_loss;
    if (!strcmp(name, "clip_ratio/low_mean")) return r->clip_ratio_low_mean;
    if (!strcmp(name, "clip_ratio/high_mean")) return r->clip_ratio_high_mean;
    if (!strcmp(name, "clip_ratio/region_mean")) return r->clip_ratio_region_mean;
    if (!strcmp(name, "clip_ratio/low_min")) return r->clip_ratio_low_min;
    if (!strcmp(name, "clip_ratio/high_max")) return r->clip_ratio_high_max;
    if (!strcmp(name, "sampling/sampling_logp_difference/mean")) return r->sampling_logp_difference_mean;
    if (!strcmp(name, "sampling/sampling_logp_difference/max")) return r->sampling_logp_difference_max;
    if (!strcmp(name, "sampling/importance_sampling_ratio/min")) return r->importance_sampling_ratio_min;
    if (!strcmp(name, "sampling/importance_sampling_ratio/mean")) return r->importance_sampling_ratio_mean;
    if (!strcmp(name, "sampling/importance_sampling_ratio/max")) return r->importance_sampling_ratio_max;
    *known = 0;
    return NAN;
}

static void test_trl_parity(void) {
    const char *path = harness_source_path("tests/fixtures/grpo/loss_cases.json");
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fprintf(stderr, "%s:%d: %s\n", path, jerr.line, jerr.text);
        CHECK(root != NULL);
        return;
    }
    json_t *jshapes = json_object_get(root, "shapes");
    size_t nshapes = json_array_size(jshapes);
    shape shapes[4];
    CHECK(nshapes >= 1 && nshapes <= 4);
    if (nshapes < 1 || nshapes > 4) { json_decref(root); return; }
    for (size_t i = 0; i < nshapes; i++) shape_load(json_array_get(jshapes, i), &shapes[i]);

    json_t *cases = json_object_get(root, "cases");
    size_t ncases = json_array_size(cases);
    CHECK(ncases >= 64);   /* the 4 x 2 x 2 x 2 grid on two shapes, plus the extras */
    int seen_type[4] = {0}, seen_is[5] = {0}, seen_entropy = 0;
    double worst_loss = 0, worst_grad = 0, worst_metric = 0;
    for (size_t c = 0; c < ncases; c++) {
        json_t *jc = json_array_get(cases, c);
        const char *sname = json_string_value(json_object_get(jc, "shape"));
        shape *s = NULL;
        for (size_t i = 0; i < nshapes; i++) if (sname && !strcmp(sname, shapes[i].name)) s = &shapes[i];
        CHECK(s != NULL);
        if (!s) continue;
        grpo_loss_options o;
        options_from_json(json_object_get(jc, "options"), &o);
        int num_iterations = (int)json_integer_value(json_object_get(jc, "num_iterations"));
        seen_type[o.loss_type]++;
        seen_is[o.importance_sampling_mode]++;
        seen_entropy += o.entropy_coef != 0;

        size_t n = (size_t)s->B * s->T;
        grpo_loss_inputs in = {
            .B = s->B, .T = s->T, .logprobs = s->logprobs,
            .logprobs_old = num_iterations > 1 ? s->logprobs_old : NULL,
            .ref_logprobs = o.beta > 0 ? s->ref_logprobs : NULL,
            .sampling_logprobs = o.importance_sampling_mode != GRPO_IS_NONE ? s->sampling_logprobs : NULL,
            .entropies = s->entropies, .completion_mask = s->mask, .advantages = s->advantages,
        };
        float *grad = malloc(n * sizeof *grad), *grad_ent = malloc(n * sizeof *grad_ent);
        double *want = malloc(n * sizeof *want);
        grpo_loss_result r;
        CHECK_OK(grpo_loss_compute(&o, &in, grad, grad_ent, &r));

        double want_loss = json_number_value(json_object_get(jc, "loss"));
        double err = fabs(r.loss - want_loss) / fmax(fabs(want_loss), 1e-12);
        if (err > worst_loss) worst_loss = err;
        CHECK_MSG(fabs(r.loss - want_loss) <= 1e-12 + 1e-9 * fabs(want_loss), "case %zu (%s %s beta %g iter %d): "
                  "loss %.17g, TRL %.17g", c, sname, grpo_loss_type_names[o.loss_type], o.beta, num_iterations,
                  r.loss, want_loss);

        CHECK(json_doubles(json_object_get(jc, "grad_logprobs"), want, n) == 0);
        for (size_t i = 0; i < n; i++) {
            double e = fabs(grad[i] - want[i]);
            if (e / fmax(fabs(want[i]), 1e-6) > worst_grad) worst_grad = e / fmax(fabs(want[i]), 1e-6);
            CHECK_MSG(e <= 1e-10 + 1e-6 * fabs(want[i]), "case %zu (%s %s beta %g iter %d is %s) token %zu: "
                      "grad %.9g, TRL %.9g", c, sname, grpo_loss_type_names[o.loss_type], o.beta, num_iterations,
                      grpo_is_mode_names[o.importance_sampling_mode], i, grad[i], want[i]);
        }
        json_t *jge = json_object_get(jc, "grad_entropies");
        if (jge) {
            CHECK(json_doubles(jge, want, n) == 0);
            for (size_t i = 0; i < n; i++)
                CHECK_MSG(fabs(grad_ent[i] - want[i]) <= 1e-10 + 1e-6 * fabs(want[i]),
                          "case %zu token %zu: d/d entropy %.9g, TRL %.9g", c, i, grad_ent[i], want[i]);
        }

        const char *key;
        json_t *val;
        json_t *metrics = json_object_get(jc, "metrics");
        json_object_foreach(metrics, key, val) {
            int known;
            double got = metric_by_trl_name(&r, key, &known);
            if (!known) continue;   /* entropy_coef: an input, not ours to report */
            double w = json_is_number(val) ? json_number_value(val) : NAN;
            if (isnan(w)) {
                CHECK_MSG(isnan(got), "case %zu metric %s: expected NaN, got %.9g", c, key, got);
                continue;
            }
            double e = fabs(got - w);
            if (e / fmax(fabs(w), 1e-6) > worst_metric) worst_metric = e / fmax(fabs(w), 1e-6);
            CHECK_MSG(e <= 1e-7 + 1e-6 * fabs(w), "case %zu (%s %s) metric %s: %.9g, TRL %.9g", c, sname,
                      grpo_loss_type_names[o.loss_type], key, got, w);
        }
        if (o.beta == 0) CHECK(isnan(r.kl));
        else CHECK(json_object_get(metrics, "kl") != NULL);
        free(grad);
        free(grad_ent);
        free(want);
    }
    for (int t = 0; t < 4; t++) CHECK_MSG(seen_type[t] >= 16, "loss_type %s: %d cases", grpo_loss_type_names[t],
                                          seen_type[t]);
    for (int m = 1; m < 5; m++) CHECK_MSG(seen_is[m] >= 2, "is mode %s: %d cases", grpo_is_mode_names[m], seen_is[m]);
    CHECK(seen_entropy >= 2);
    printf("TRL parity: %zu cases; worst relative error: loss %.2g, gradient %.2g, metric %.2g\n", ncases,
           worst_loss, worst_grad, worst_metric);
    for (size_t i = 0; i < nshapes; i++) shape_free(&shapes[i]);
    json_decref(root);
}

/* ---- random inputs for the finite-difference tests ---- */

static uint64_t lcg_state = 77;
static double uniform(void) {   /* [0, 1) */
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}
static double normal(void) {
    double u = uniform() + 1e-300, v = uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

typedef struct {
    int B, T;
    float *lp, *old, *ref, *samp, *ent;
    uint8_t *mask;
    double *adv;
} batch;

static batch batch_random(int B, int T) {
    batch x = {.B = B, .T = T};
    size_t n = (size_t)B * T;
    x.lp = malloc(n * sizeof(float)); x.old = malloc(n * sizeof(float)); x.ref = malloc(n * sizeof(float));
    x.samp = malloc(n * sizeof(float)); x.ent = malloc(n * sizeof(float)); x.mask = malloc(n);
    x.adv = malloc(B * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        x.lp[i] = (float)(-3.0 * uniform() - 0.01);
        x.old[i] = (float)(x.lp[i] + 0.3 * normal());
        x.ref[i] = (float)(x.lp[i] + 0.3 * normal());
        x.samp[i] = (float)(x.old[i] + 0.2 * normal());
        x.ent[i] = (float)(3.0 * uniform());
    }
    for (int b = 0; b < B; b++) {
        int len = b == 1 ? 0 : 1 + (int)(uniform() * T);   /* row 1 empty */
        for (int t = 0; t < T; t++) x.mask[(size_t)b * T + t] = t < len;
        x.adv[b] = normal();
    }
    return x;
}

static void batch_free(batch *x) {
    free(x->lp); free(x->old); free(x->ref); free(x->samp); free(x->ent); free(x->mask); free(x->adv);
}

static grpo_loss_inputs batch_inputs(const batch *x) {
    grpo_loss_inputs in = {.B = x->B, .T = x->T, .logprobs = x->lp, .logprobs_old = x->old, .ref_logprobs = x->ref,
                           .sampling_logprobs = x->samp, .entropies = x->ent, .completion_mask = x->mask,
                           .advantages = x->adv};
    return in;
}

static double loss_at(const grpo_loss_options *o, const grpo_loss_inputs *in, float *scratch_g, float *scratch_e) {
    grpo_loss_result r;
    grpo_status s = grpo_loss_compute(o, in, scratch_g, scratch_e, &r);
    GRPO_ASSERTF(s == GRPO_OK, "%s", grpo_error_message());
    return r.loss;
}

/* Central differences in double: the step is applied to the float input and the exact
 * applied step (the float difference) is used. Tokens whose ratio lies within the step's
 * reach of a clip bound are skipped (the loss has a kink there). */
static void check_finite_differences(const grpo_loss_options *o, batch *x, const char *what) {
    size_t n = (size_t)x->B * x->T;
    float *grad = malloc(n * sizeof(float)), *grad_ent = malloc(n * sizeof(float));
    float *sg = malloc(n * sizeof(float)), *se = malloc(n * sizeof(float));
    grpo_loss_inputs in = batch_inputs(x);
    grpo_loss_result r;
    CHECK_OK(grpo_loss_compute(o, &in, grad, grad_ent, &r));
    double eps_high = isnan(o->epsilon_high) ? o->epsilon : o->epsilon_high;
    const float h = 1.0f / 1024;
    int checked = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double ratio = exp((double)x->lp[i] - x->old[i]);
        if (fabs(ratio - (1 - o->epsilon)) < 0.01 || fabs(ratio - (1 + eps_high)) < 0.01) continue;
        float keep = x->lp[i];
        x->lp[i] = keep + h;
        double up_step = (double)x->lp[i] - keep;
        double up = loss_at(o, &in, sg, se);
        x->lp[i] = keep - h;
        double down_step = (double)keep - x->lp[i];
        double down = loss_at(o, &in, sg, se);
        x->lp[i] = keep;
        double fd = (up - down) / (up_step + down_step);
        double e = fabs(fd - grad[i]);
        if (e > worst) worst = e;
        CHECK_MSG(e <= 1e-6 + 1e-4 * fabs(fd), "%s token %zu: analytic %.9g, finite difference %.9g", what, i,
                  grad[i], fd);
        checked++;
        if (o->entropy_coef != 0) {
            keep = x->ent[i];
            x->ent[i] = keep + h;
            up_step = (double)x->ent[i] - keep;
            up = loss_at(o, &in, sg, se);
            x->ent[i] = keep - h;
            down_step = (double)keep - x->ent[i];
            down = loss_at(o, &in, sg, se);
            x->ent[i] = keep;
            fd = (up - down) / (up_step + down_step);
            CHECK_MSG(fabs(fd - grad_ent[i]) <= 1e-9 + 1e-6 * fabs(fd), "%s token %zu: d/d entropy %.9g, "
                      "finite difference %.9g", what, i, grad_ent[i], fd);
        }
    }
    CHECK_MSG(checked > (int)n / 2, "%s: only %d of %zu tokens away from the clip bounds", what, checked, n);
    free(grad); free(grad_ent); free(sg); free(se);
}

static void test_finite_differences(void) {
    batch x = batch_random(5, 7);
    char what[160];
    for (int lt = 0; lt < 4; lt++) {
        for (int variant = 0; variant < 6; variant++) {
            grpo_loss_options o = grpo_loss_options_default();
            o.loss_type = (grpo_loss_type)lt;
            o.max_completion_length = 9;
            o.epsilon_high = variant % 2 ? 0.28 : NAN;
            o.beta = variant >= 2 ? 0.04 : 0.0;
            o.use_bias_correction_kl = variant != 3;
            if (variant == 4) { o.importance_sampling_mode = GRPO_IS_TOKEN_TRUNCATE; o.is_clip_max = 1.1; }
            if (variant == 5) {
                o.importance_sampling_mode = GRPO_IS_SEQUENCE_MASK;
                o.is_clip_min = 0.7;
                o.entropy_coef = 0.05;
                o.gradient_accumulation_steps = 3;
            }
            snprintf(what, sizeof what, "%s variant %d", grpo_loss_type_names[lt], variant);
            check_finite_differences(&o, &x, what);
        }
    }
    batch_free(&x);
}

/* logprobs_old = NULL (num_iterations 1) is the same as logprobs_old = logprobs. */
static void test_old_null_is_detached_current(void) {
    batch x = batch_random(4, 6);
    size_t n = 24;
    float g1[24], g2[24];
    for (int lt = 0; lt < 4; lt++) {
        grpo_loss_options o = grpo_loss_options_default();
        o.loss_type = (grpo_loss_type)lt;
        o.beta = 0.04;
        o.max_completion_length = 6;
        o.importance_sampling_mode = GRPO_IS_TOKEN_TRUNCATE;
        grpo_loss_inputs in = batch_inputs(&x);
        in.logprobs_old = NULL;
        grpo_loss_result r1, r2;
        CHECK_OK(grpo_loss_compute(&o, &in, g1, NULL, &r1));
        in.logprobs_old = x.lp;
        CHECK_OK(grpo_loss_compute(&o, &in, g2, NULL, &r2));
        CHECK_NEAR(r2.loss, r1.loss, 0, 0);
        CHECK_NEAR(1.0, r1.ratio_mean, 0, 0);
        CHECK_NEAR(0.0, r1.clip_ratio_region_mean, 0, 0);
        for (size_t i = 0; i < n; i++) CHECK_NEAR(g2[i], g1[i], 0, 0);
    }
    batch_free(&x);
}

/* Hand-worked: one token, ratio 1, A = 1, no KL: L = -1, dL/dlp = -1 for every loss type
 * with one token (dr_grpo: / max_completion_length). With ratio e^0.5 > 1.2 and A = 1 the
 * clipped branch is taken: L = -1.2, gradient 0. With A = -1: L = e^0.5, gradient e^0.5. */
static void test_hand_worked(void) {
    float lp = -1.0f, old = -1.0f, old_low = -1.5f;
    uint8_t m = 1;
    double a = 1.0;
    float g;
    grpo_loss_result r;
    grpo_loss_options o = grpo_loss_options_default();
    grpo_loss_inputs in = {.B = 1, .T = 1, .logprobs = &lp, .logprobs_old = &old, .completion_mask = &m,
                           .advantages = &a};
    for (int lt = 0; lt < 4; lt++) {
        o.loss_type = (grpo_loss_type)lt;
        o.max_completion_length = 4;
        double scale = lt == GRPO_LOSS_DR_GRPO ? 0.25 : 1.0;
        in.logprobs_old = &old;
        a = 1.0;
        CHECK_OK(grpo_loss_compute(&o, &in, &g, NULL, &r));
        CHECK_NEAR(-1.0 * scale, r.loss, 1e-15, 0);
        CHECK_NEAR(-1.0 * scale, g, 1e-7, 0);
        in.logprobs_old = &old_low;
        CHECK_OK(grpo_loss_compute(&o, &in, &g, NULL, &r));
        CHECK_NEAR(-1.2 * scale, r.loss, 1e-12, 0);
        CHECK_NEAR(0.0, g, 0, 0);
        CHECK_NEAR(1.0, r.clip_ratio_high_mean, 0, 0);
        a = -1.0;
        CHECK_OK(grpo_loss_compute(&o, &in, &g, NULL, &r));
        CHECK_NEAR(exp(0.5) * scale, r.loss, 1e-12, 0);
        CHECK_NEAR(exp(0.5) * scale, g, 1e-6, 0);
        CHECK_NEAR(0.0, r.clip_ratio_region_mean, 0, 0);
    }
    /* KL alone: lp = ref gives KL 0 and gradient 0 from the KL term. */
    a = 0.0;
    float ref = -1.0f;
    in.ref_logprobs = &ref;
    in.logprobs_old = NULL;
    o.loss_type = GRPO_LOSS_BNPO;
    o.beta = 0.5;
    CHECK_OK(grpo_loss_compute(&o, &in, &g, NULL, &r));
    CHECK_NEAR(0.0, r.loss, 1e-15, 0);
    CHECK_NEAR(0.0, r.kl, 1e-15, 0);
    CHECK_NEAR(0.0, g, 1e-15, 0);
    ref = -2.0f;   /* d = ref - lp = -1: KL = e^-1 + 1 - 1 = e^-1; with r = 1 */
    CHECK_OK(grpo_loss_compute(&o, &in, &g, NULL, &r));
    CHECK_NEAR(0.5 * exp(-1.0), r.loss, 1e-12, 0);
    /* bias-corrected: d(kl r)/dlp = (1 - e^d) + kl = 1 - e^-1 + e^-1 = 1 */
    CHECK_NEAR(0.5, g, 1e-7, 0);
    o.use_bias_correction_kl = 0;
    CHECK_OK(grpo_loss_compute(&o, &in, &g, NULL, &r));
    CHECK_NEAR(0.5 * (1.0 - exp(-1.0)), g, 1e-7, 0);
}

/* Aggregations against each other on one batch: with B = 1 grpo == bnpo; dr_grpo ==
 * bnpo * N / (B * max_completion_length); dapo with num_items_in_batch = 0 == bnpo; dapo
 * with a global count K is bnpo * N / K. Accumulation divides by its step count. */
static void test_aggregations(void) {
    batch x = batch_random(4, 6);
    float g[24];
    grpo_loss_inputs in = batch_inputs(&x);
    grpo_loss_options o = grpo_loss_options_default();
    o.beta = 0.04;
    o.max_completion_length = 10;
    grpo_loss_result bnpo, other;
    o.loss_type = GRPO_LOSS_BNPO;
    CHECK_OK(grpo_loss_compute(&o, &in, g, NULL, &bnpo));
    CHECK(bnpo.num_tokens > 0);
    o.loss_type = GRPO_LOSS_DR_GRPO;
    CHECK_OK(grpo_loss_compute(&o, &in, g, NULL, &other));
    CHECK_NEAR(bnpo.loss * bnpo.num_tokens / (4.0 * 10), other.loss, 1e-15, 1e-12);
    o.loss_type = GRPO_LOSS_DAPO;
    CHECK_OK(grpo_loss_compute(&o, &in, g, NULL, &other));
    CHECK_NEAR(bnpo.loss, other.loss, 1e-15, 1e-12);
    o.num_items_in_batch = 1000;
    CHECK_OK(grpo_loss_compute(&o, &in, g, NULL, &other));
    CHECK_NEAR(bnpo.loss * bnpo.num_tokens / 1000.0, other.loss, 1e-15, 1e-12);
    o.num_items_in_batch = 0;
    o.loss_type = GRPO_LOSS_BNPO;
    o.gradient_accumulation_steps = 4;
    CHECK_OK(grpo_loss_compute(&o, &in, g, NULL, &other));
    CHECK_NEAR(bnpo.loss / 4, other.loss, 1e-15, 1e-12);
    CHECK_NEAR(bnpo.loss, other.policy_loss, 1e-15, 1e-12);
    o.gradient_accumulation_steps = 1;

    /* One sequence: grpo's per-sequence mean is bnpo's token mean. */
    in.B = 1;
    o.loss_type = GRPO_LOSS_GRPO;
    CHECK_OK(grpo_loss_compute(&o, &in, g, NULL, &other));
    o.loss_type = GRPO_LOSS_BNPO;
    CHECK_OK(grpo_loss_compute(&o, &in, g, NULL, &bnpo));
    CHECK_NEAR(bnpo.loss, other.loss, 1e-15, 1e-12);

    /* ratio_mean: masked mean of exp(lp - old), computed here directly. */
    in.B = 4;
    CHECK_OK(grpo_loss_compute(&o, &in, g, NULL, &other));
    double s = 0;
    long k = 0;
    for (int i = 0; i < 24; i++) if (x.mask[i]) { s += exp((double)x.lp[i] - x.old[i]); k++; }
    CHECK_NEAR(s / k, other.ratio_mean, 1e-15, 1e-12);
    CHECK_INT(k, other.num_tokens);
    /* Masked tokens get zero gradient. */
    for (int i = 0; i < 24; i++) if (!x.mask[i]) CHECK_NEAR(0.0, g[i], 0, 0);

    /* All tokens masked: a zero loss, no NaN. */
    uint8_t none[24] = {0};
    in.completion_mask = none;
    for (int lt = 0; lt < 4; lt++) {
        o.loss_type = (grpo_loss_type)lt;
        CHECK_OK(grpo_loss_compute(&o, &in, g, NULL, &other));
        CHECK_NEAR(0.0, other.loss, 0, 0);
        CHECK(isnan(other.clip_ratio_low_min));
    }
    batch_free(&x);
}

static void test_bad_options(void) {
    batch x = batch_random(2, 3);
    float g[6], ge[6];
    grpo_loss_result r;
    grpo_loss_inputs in = batch_inputs(&x);
    grpo_loss_options o;
    grpo_loss_type lt;
    grpo_is_mode im;

    CHECK_FAILS(grpo_loss_parse_type("ppo", &lt), "ppo");
    CHECK_FAILS(grpo_loss_parse_type(NULL, &lt), "loss_type");
    CHECK_FAILS(grpo_loss_parse_is_mode("token", &im), "token");
    CHECK_OK(grpo_loss_parse_type("dr_grpo", &lt));
    CHECK_INT(GRPO_LOSS_DR_GRPO, lt);

#define BAD(field_assign, needle) do { o = grpo_loss_options_default(); o.beta = 0.04; field_assign; \
        CHECK_FAILS(grpo_loss_compute(&o, &in, g, ge, &r), needle); } while (0)
    BAD(o.loss_type = (grpo_loss_type)7, "loss_type");
    BAD(o.beta = -0.1, "beta");
    BAD(o.beta = NAN, "beta");
    BAD(o.epsilon = -0.2, "epsilon");
    BAD(o.epsilon_high = -0.28, "epsilon_high");
    BAD(o.epsilon_high = INFINITY, "epsilon_high");
    BAD((o.loss_type = GRPO_LOSS_DR_GRPO, o.max_completion_length = 0), "max_completion_length");
    BAD((o.loss_type = GRPO_LOSS_DR_GRPO, o.max_completion_length = 2), "max_completion_length 2");
    BAD(o.num_processes = 0, "num_processes");
    BAD(o.steps_per_generation = 0, "steps_per_generation");
    BAD(o.use_bias_correction_kl = 2, "use_bias_correction_kl");
    BAD(o.importance_sampling_mode = (grpo_is_mode)9, "importance_sampling_mode");
    BAD((o.importance_sampling_mode = GRPO_IS_TOKEN_TRUNCATE, o.is_clip_max = NAN), "is_clip_min or");
    BAD((o.is_clip_min = 2.0, o.is_clip_max = 1.0), "is_clip_min <= is_clip_max");
    BAD(o.is_clip_max = -1, "is_clip_max");
    BAD(o.entropy_coef = INFINITY, "entropy_coef");
#undef BAD
    o = grpo_loss_options_default();
    o.beta = 0.04;
    in.ref_logprobs = NULL;
    CHECK_FAILS(grpo_loss_compute(&o, &in, g, ge, &r), "ref_logprobs");
    in = batch_inputs(&x);
    o.beta = 0;
    o.importance_sampling_mode = GRPO_IS_SEQUENCE_MASK;
    in.sampling_logprobs = NULL;
    CHECK_FAILS(grpo_loss_compute(&o, &in, g, ge, &r), "sampling_logprobs");
    in = batch_inputs(&x);
    o = grpo_loss_options_default();
    o.entropy_coef = 0.01;
    CHECK_FAILS(grpo_loss_compute(&o, &in, g, NULL, &r), "entropies");
    in.entropies = NULL;
    CHECK_FAILS(grpo_loss_compute(&o, &in, g, ge, &r), "entropies");
    in = batch_inputs(&x);
    o = grpo_loss_options_default();
    in.B = 0;
    CHECK_FAILS(grpo_loss_compute(&o, &in, g, ge, &r), "B >= 1");
    in = batch_inputs(&x);
    in.advantages = NULL;
    CHECK_FAILS(grpo_loss_compute(&o, &in, g, ge, &r), "advantages");
    CHECK_FAILS(grpo_loss_check_options(NULL), "NULL");
    /* the defaults are valid, and T up to max_completion_length passes for dr_grpo */
    o = grpo_loss_options_default();
    CHECK_OK(grpo_loss_check_options(&o));
    in = batch_inputs(&x);
    o.loss_type = GRPO_LOSS_DR_GRPO;
    o.max_completion_length = 3;
    CHECK_OK(grpo_loss_compute(&o, &in, g, ge, &r));
    batch_free(&x);
}

int main(void) {
    test_trl_parity();
    test_finite_differences();
    test_old_null_is_detached_current();
    test_hand_worked();
    test_aggregations();
    test_bad_options();
    TEST_MAIN_END();
}
