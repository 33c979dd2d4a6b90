/* Group-relative advantages (rl/advantage.h):
 *  - parity with TRL 1.16's advantage block (run from the installed package by
 *    tests/fixtures/make_grpo_fixtures.py) for scale_rewards group / batch / none, with
 *    binary and continuous rewards, all-equal groups, NaN (unscorable) rewards and a group
 *    with one scorable reward; 1e-7 relative: TRL's nanstd forms Bessel's count / (count - 1)
 *    from integer tensors, which torch divides in float32, so its std carries a float32
 *    factor (~3e-8 relative) even in float64; ours is exact (the hand-computed checks hold
 *    it to 1e-12);
 *  - hand-computed groups (a separate one-pass mean / variance written here);
 *  - zero-variance detection and the dynamic-sampling keep mask;
 *  - rewards and advantages may alias;
 *  - bad options refused: G = 1 with group std, a batch of 1 with batch std, epsilon < 0,
 *    an infinite reward, an unknown scale_rewards name. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rl/advantage.h"
#include "tests/harness.h"

static void test_trl_parity(void) {
    const char *path = harness_source_path("tests/fixtures/grpo/advantage_cases.json");
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fprintf(stderr, "%s:%d: %s\n", path, jerr.line, jerr.text);
        CHECK(root != NULL);
        return;
    }
    json_t *cases = json_object_get(root, "cases");
    size_t ncases = json_array_size(cases);
    CHECK(ncases >= 9);
    int seen[3] = {0};
    for (size_t c = 0; c < ncases; c++) {
        json_t *jc = json_array_get(cases, c);
        advantage_options o = advantage_options_default();
        CHECK_OK(advantage_parse_scale(json_string_value(json_object_get(jc, "scale_rewards")), &o.scale_rewards));
        seen[o.scale_rewards]++;
        int groups = (int)json_integer_value(json_object_get(jc, "num_groups"));
        int G = (int)json_integer_value(json_object_get(jc, "num_generations"));
        size_t n = (size_t)groups * G;
        json_t *jr = json_object_get(jc, "rewards"), *ja = json_object_get(jc, "advantages");
        CHECK(json_array_size(jr) == n && json_array_size(ja) == n);
        if (json_array_size(jr) != n || json_array_size(ja) != n) continue;
        double *rewards = malloc(n * sizeof(double)), *adv = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(jr, i);
            rewards[i] = json_is_null(v) ? NAN : json_number_value(v);
        }
        advantage_stats st;
        CHECK_OK(advantage_compute(&o, rewards, groups, G, adv, &st));
        for (size_t i = 0; i < n; i++) {
            double want = json_number_value(json_array_get(ja, i));
            CHECK_MSG(fabs(adv[i] - want) <= 1e-12 + 1e-7 * fabs(want), "case %zu (%s, G %d) reward %zu: "
                      "advantage %.17g, TRL %.17g", c, advantage_scale_names[o.scale_rewards], G, i, adv[i], want);
        }
        /* TRL's frac_reward_zero_std is per group for scale group / none (float32 there). */
        if (o.scale_rewards != ADVANTAGE_SCALE_BATCH) {
            double want = json_number_value(json_object_get(jc, "frac_reward_zero_std"));
            CHECK_NEAR(want, st.frac_zero_std_groups, 1e-7, 0);
        }
        free(rewards);
        free(adv);
    }
    for (int s = 0; s < 3; s++) CHECK_MSG(seen[s] >= 3, "scale %s: %d cases", advantage_scale_names[s], seen[s]);
    json_decref(root);
}

/* A reference written differently from the module: one pass of sums and sums of squares. */
static void reference_stats(const double *x, int n, double *mean, double *std_unbiased) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) { s += x[i]; ss += x[i] * x[i]; }
    *mean = s / n;
    *std_unbiased = sqrt((ss - s * s / n) / (n - 1));
}

static void test_hand_computed(void) {
    /* 3 groups of 4: binary, continuous, all equal. */
    double r[12] = {1, 0, 0, 0, 0.5, -1.0, 2.0, 3.5, 7, 7, 7, 7};
    double a[12];
    advantage_options o = advantage_options_default();
    advantage_stats st;

    /* group: (r - mean_g) / (std_g + 1e-4) */
    CHECK_OK(advantage_compute(&o, r, 3, 4, a, &st));
    for (int g = 0; g < 3; g++) {
        double m, s;
        reference_stats(r + 4 * g, 4, &m, &s);
        for (int i = 0; i < 4; i++) CHECK_NEAR((r[4 * g + i] - m) / (s + 1e-4), a[4 * g + i], 1e-12, 1e-12);
    }
    /* binary group 1,0,0,0: mean 1/4, squared deviations sum to 3/4, unbiased variance 1/4 */
    CHECK_NEAR(0.75 / (0.5 + 1e-4), a[0], 1e-12, 1e-12);
    CHECK_NEAR(0.0, a[8], 0, 0);
    CHECK_INT(1, st.num_zero_std_groups);
    CHECK_NEAR(1.0 / 3, st.frac_zero_std_groups, 1e-15, 0);
    double bm, bs;
    reference_stats(r, 12, &bm, &bs);
    CHECK_NEAR(bm, st.reward_mean, 1e-12, 1e-12);
    CHECK_NEAR(bs, st.reward_std, 1e-12, 1e-12);
    CHECK_INT(0, st.num_unscorable);

    /* batch: the group's mean, the batch's std */
    o.scale_rewards = ADVANTAGE_SCALE_BATCH;
    CHECK_OK(advantage_compute(&o, r, 3, 4, a, NULL));
    for (int g = 0; g < 3; g++) {
        double m, s;
        reference_stats(r + 4 * g, 4, &m, &s);
        for (int i = 0; i < 4; i++) CHECK_NEAR((r[4 * g + i] - m) / (bs + 1e-4), a[4 * g + i], 1e-12, 1e-12);
    }
    /* none (Dr. GRPO): centred only */
    o.scale_rewards = ADVANTAGE_SCALE_NONE;
    CHECK_OK(advantage_compute(&o, r, 3, 4, a, NULL));
    for (int g = 0; g < 3; g++) {
        double m, s;
        reference_stats(r + 4 * g, 4, &m, &s);
        for (int i = 0; i < 4; i++) CHECK_NEAR(r[4 * g + i] - m, a[4 * g + i], 1e-15, 1e-14);
    }
    /* every group's advantages sum to zero */
    for (int g = 0; g < 3; g++) CHECK_NEAR(0.0, a[4 * g] + a[4 * g + 1] + a[4 * g + 2] + a[4 * g + 3], 1e-12, 0);

    /* a different epsilon is used as given */
    o.scale_rewards = ADVANTAGE_SCALE_GROUP;
    o.epsilon = 0.5;
    CHECK_OK(advantage_compute(&o, r, 3, 4, a, NULL));
    CHECK_NEAR(0.75 / (0.5 + 0.5), a[0], 1e-12, 1e-12);

    /* in place: advantages written over the rewards */
    o = advantage_options_default();
    double inplace[12];
    memcpy(inplace, r, sizeof r);
    CHECK_OK(advantage_compute(&o, inplace, 3, 4, inplace, NULL));
    CHECK_OK(advantage_compute(&o, r, 3, 4, a, NULL));
    for (int i = 0; i < 12; i++) CHECK_NEAR(a[i], inplace[i], 0, 0);

    /* NaN rewards: left out of mean and std, advantage 0; one scorable left: all 0 */
    double rn[8] = {1, NAN, 0, 1, NAN, NAN, 3, NAN};
    CHECK_OK(advantage_compute(&o, rn, 2, 4, a, &st));
    double m3[3] = {1, 0, 1}, m, s;
    reference_stats(m3, 3, &m, &s);
    CHECK_NEAR((1 - m) / (s + 1e-4), a[0], 1e-12, 1e-12);
    CHECK_NEAR(0.0, a[1], 0, 0);
    CHECK_NEAR((0 - m) / (s + 1e-4), a[2], 1e-12, 1e-12);
    for (int i = 4; i < 8; i++) CHECK_NEAR(0.0, a[i], 0, 0);
    CHECK_INT(4, st.num_unscorable);
    CHECK_INT(0, st.num_zero_std_groups);   /* one scorable: no std, not "zero std" */
}

static void test_zero_std_and_dynamic_sampling(void) {
    /* 5 groups of 3: mixed, all 1, all 0, one scorable, two equal scorable + NaN */
    double r[15] = {1, 0, 1, 1, 1, 1, 0, 0, 0, NAN, 2, NAN, 0.25, NAN, 0.25};
    uint8_t z[5], keep[5];
    int count = -1, kept = -1;
    CHECK_OK(advantage_zero_std_groups(r, 5, 3, z, &count));
    CHECK_INT(3, count);
    CHECK_INT(0, z[0]); CHECK_INT(1, z[1]); CHECK_INT(1, z[2]); CHECK_INT(0, z[3]); CHECK_INT(1, z[4]);
    CHECK_OK(advantage_dynamic_sampling_keep(r, 5, 3, keep, &kept));
    CHECK_INT(1, kept);
    CHECK_INT(1, keep[0]);
    for (int g = 1; g < 5; g++) CHECK_INT(0, keep[g]);
    /* nearly equal but different rewards carry signal */
    double close[2] = {0.5, 0.5 + 1e-6};
    CHECK_OK(advantage_dynamic_sampling_keep(close, 1, 2, keep, &kept));
    CHECK_INT(1, kept);
    CHECK_OK(advantage_zero_std_groups(r, 5, 3, NULL, NULL));
    /* the stats' share agrees with the zero-variance count */
    advantage_stats st;
    double a[15];
    advantage_options o = advantage_options_default();
    CHECK_OK(advantage_compute(&o, r, 5, 3, a, &st));
    CHECK_INT(count, st.num_zero_std_groups);
    CHECK_NEAR(3.0 / 5, st.frac_zero_std_groups, 1e-15, 0);
}

static void test_bad_options(void) {
    double r[4] = {1, 0, 1, 0}, a[4];
    advantage_options o = advantage_options_default();
    advantage_scale sc;
    CHECK_FAILS(advantage_compute(&o, r, 4, 1, a, NULL), "num_generations >= 2");
    o.scale_rewards = ADVANTAGE_SCALE_NONE;
    CHECK_OK(advantage_compute(&o, r, 4, 1, a, NULL));   /* centred on itself: all 0 */
    for (int i = 0; i < 4; i++) CHECK_NEAR(0.0, a[i], 0, 0);
    o.scale_rewards = ADVANTAGE_SCALE_BATCH;
    CHECK_FAILS(advantage_compute(&o, r, 1, 1, a, NULL), "at least 2");
    CHECK_OK(advantage_compute(&o, r, 2, 2, a, NULL));
    o = advantage_options_default();
    o.epsilon = -1e-4;
    CHECK_FAILS(advantage_compute(&o, r, 2, 2, a, NULL), "epsilon");
    o.epsilon = NAN;
    CHECK_FAILS(advantage_compute(&o, r, 2, 2, a, NULL), "epsilon");
    o = advantage_options_default();
    o.scale_rewards = (advantage_scale)5;
    CHECK_FAILS(advantage_compute(&o, r, 2, 2, a, NULL), "scale_rewards");
    o = advantage_options_default();
    CHECK_FAILS(advantage_compute(&o, r, 0, 2, a, NULL), "num_groups");
    CHECK_FAILS(advantage_compute(&o, NULL, 2, 2, a, NULL), "rewards");
    double rinf[4] = {1, INFINITY, 0, 0};
    CHECK_FAILS(advantage_compute(&o, rinf, 2, 2, a, NULL), "reward 1");
    CHECK_FAILS(advantage_dynamic_sampling_keep(rinf, 2, 2, (uint8_t[2]){0}, NULL), "+inf");
    CHECK_FAILS(advantage_zero_std_groups(r, 2, 0, NULL, NULL), "num_generations");

    CHECK_FAILS(advantage_parse_scale("grouped", &sc), "grouped");
    CHECK_FAILS(advantage_parse_scale(NULL, &sc), "scale_rewards");
    CHECK_OK(advantage_parse_scale("batch", &sc));
    CHECK_INT(ADVANTAGE_SCALE_BATCH, sc);
    CHECK_OK(advantage_parse_scale("false", &sc));
    CHECK_INT(ADVANTAGE_SCALE_NONE, sc);
    CHECK_OK(advantage_parse_scale("True", &sc));
    CHECK_INT(ADVANTAGE_SCALE_GROUP, sc);
}

int main(void) {
    test_trl_parity();
    test_hand_computed();
    test_zero_std_and_dynamic_sampling();
    test_bad_options();
    TEST_MAIN_END();
}
