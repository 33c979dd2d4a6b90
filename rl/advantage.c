/* Group-relative advantages (see advantage.h). The arithmetic follows TRL 1.16's
 * GRPOTrainer._generate_and_score_completions ("sum_then_normalize"): nanmean per group,
 * nanstd (Bessel-corrected) per group or over the batch, + 1e-4, nan_to_num(0). */
#include "rl/advantage.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

const char *const advantage_scale_names[] = {"group", "batch", "none", NULL};

/* TRL logs a group as zero-variance when torch.isclose(std, 0): |std| <= atol 1e-8. */
#define ADVANTAGE_ZERO_STD_ATOL 1e-8

grpo_status advantage_parse_scale(const char *name, advantage_scale *out) {
    if (!name) return grpo_fail(GRPO_ERR_INVALID, "scale_rewards: expected group|batch|none, found nothing");
    for (int i = 0; advantage_scale_names[i]; i++) {
        if (strcmp(name, advantage_scale_names[i]) == 0) {
            *out = (advantage_scale)i;
            return GRPO_OK;
        }
    }
    /* TRL's GRPOConfig accepts booleans: True -> "group", False -> "none". */
    if (strcasecmp(name, "true") == 0) { *out = ADVANTAGE_SCALE_GROUP; return GRPO_OK; }
    if (strcasecmp(name, "false") == 0) { *out = ADVANTAGE_SCALE_NONE; return GRPO_OK; }
    return grpo_fail(GRPO_ERR_INVALID, "scale_rewards: expected group|batch|none, found \"%s\"", name);
}

advantage_options advantage_options_default(void) {
    advantage_options o = {.scale_rewards = ADVANTAGE_SCALE_GROUP, .epsilon = 1e-4};
    return o;
}

/* Mean and unbiased std of the non-NaN values of x[0..n-1] (TRL's nanmean / nanstd).
 * *count gets the number of non-NaN values; the mean is NaN when it is 0, the std NaN
 * when it is below 2. Two passes, double accumulation. */
static void nan_mean_std(const double *x, long n, double *mean, double *std, long *count) {
    double sum = 0;
    long c = 0;
    for (long i = 0; i < n; i++) {
        if (isnan(x[i])) continue;
        sum += x[i];
        c++;
    }
    *count = c;
    *mean = c > 0 ? sum / (double)c : NAN;
    if (c < 2) {
        *std = NAN;
        return;
    }
    double ss = 0;
    for (long i = 0; i < n; i++) {
        if (isnan(x[i])) continue;
        double d = x[i] - *mean;
        ss += d * d;
    }
    *std = sqrt(ss / (double)(c - 1));
}

static grpo_status check_rewards(const double *rewards, int num_groups, int num_generations) {
    if (!rewards) return grpo_fail(GRPO_ERR_INVALID, "advantages: rewards is NULL");
    if (num_groups < 1 || num_generations < 1)
        return grpo_fail(GRPO_ERR_INVALID, "advantages: expected num_groups >= 1 and num_generations >= 1, "
                         "found %d and %d", num_groups, num_generations);
    long n = (long)num_groups * num_generations;
    for (long i = 0; i < n; i++) {
        if (isinf(rewards[i]))
            return grpo_fail(GRPO_ERR_INVALID, "advantages: reward %ld (group %ld, generation %ld) is %s; "
                             "expected a finite value or NaN (unscorable)", i, i / num_generations,
                             i % num_generations, rewards[i] > 0 ? "+inf" : "-inf");
    }
    return GRPO_OK;
}

grpo_status advantage_compute(const advantage_options *opt, const double *rewards, int num_groups,
                              int num_generations, double *advantages, advantage_stats *stats) {
    if (!opt || !advantages) return grpo_fail(GRPO_ERR_INVALID, "advantages: options or output is NULL");
    GRPO_TRY(check_rewards(rewards, num_groups, num_generations));
    if ((int)opt->scale_rewards < 0 || (int)opt->scale_rewards > ADVANTAGE_SCALE_NONE)
        return grpo_fail(GRPO_ERR_INVALID, "advantages: unknown scale_rewards value %d; expected group|batch|none",
                         (int)opt->scale_rewards);
    if (!(opt->epsilon >= 0) || !isfinite(opt->epsilon))
        return grpo_fail(GRPO_ERR_INVALID, "advantages: expected epsilon >= 0 and finite, found %g", opt->epsilon);
    const int G = num_generations;
    const long n = (long)num_groups * G;
    if (opt->scale_rewards == ADVANTAGE_SCALE_GROUP && G < 2)
        return grpo_fail(GRPO_ERR_INVALID, "advantages: scale_rewards=group needs num_generations >= 2 to form "
                         "a group std, found %d", G);
    if (opt->scale_rewards == ADVANTAGE_SCALE_BATCH && n < 2)
        return grpo_fail(GRPO_ERR_INVALID, "advantages: scale_rewards=batch needs at least 2 rewards in the batch, "
                         "found %ld", n);

    double batch_mean, batch_std;
    long batch_count;
    nan_mean_std(rewards, n, &batch_mean, &batch_std, &batch_count);

    int zero_std_groups = 0;
    for (int g = 0; g < num_groups; g++) {
        const double *r = rewards + (long)g * G;
        double *a = advantages + (long)g * G;
        double mean, std;
        long count;
        nan_mean_std(r, G, &mean, &std, &count);
        if (std <= ADVANTAGE_ZERO_STD_ATOL) zero_std_groups++;   /* NaN std: not counted */
        double scale_std = opt->scale_rewards == ADVANTAGE_SCALE_BATCH ? batch_std : std;
        for (int i = 0; i < G; i++) {
            /* r may alias a: read before write, element by element. */
            double v = r[i] - mean;
            if (opt->scale_rewards != ADVANTAGE_SCALE_NONE) v = v / (scale_std + opt->epsilon);
            a[i] = isnan(v) ? 0.0 : v;   /* TRL: torch.nan_to_num(advantages, nan=0.0) */
        }
    }
    if (stats) {
        stats->num_groups = num_groups;
        stats->num_zero_std_groups = zero_std_groups;
        stats->frac_zero_std_groups = (double)zero_std_groups / num_groups;
        stats->num_unscorable = (int)(n - batch_count);
        stats->reward_mean = batch_mean;
        stats->reward_std = batch_std;
    }
    return GRPO_OK;
}

grpo_status advantage_zero_std_groups(const double *rewards, int num_groups, int num_generations,
                                      uint8_t *zero_std, int *count) {
    GRPO_TRY(check_rewards(rewards, num_groups, num_generations));
    int c = 0;
    for (int g = 0; g < num_groups; g++) {
        double mean, std;
        long k;
        nan_mean_std(rewards + (long)g * num_generations, num_generations, &mean, &std, &k);
        int z = std <= ADVANTAGE_ZERO_STD_ATOL;
        if (zero_std) zero_std[g] = (uint8_t)z;
        c += z;
    }
    if (count) *count = c;
    return GRPO_OK;
}

grpo_status advantage_dynamic_sampling_keep(const double *rewards, int num_groups, int num_generations,
                                            uint8_t *keep, int *num_kept) {
    GRPO_TRY(check_rewards(rewards, num_groups, num_generations));
    if (!keep) return grpo_fail(GRPO_ERR_INVALID, "dynamic sampling: keep is NULL");
    int c = 0;
    for (int g = 0; g < num_groups; g++) {
        double mean, std;
        long k;
        nan_mean_std(rewards + (long)g * num_generations, num_generations, &mean, &std, &k);
        /* NaN std (fewer than 2 scorable) fails the comparison: dropped, no signal. */
        keep[g] = (uint8_t)(std > ADVANTAGE_ZERO_STD_ATOL);
        c += keep[g];
    }
    if (num_kept) *num_kept = c;
    return GRPO_OK;
}
