/* The GRPO objective on host arrays (see grpo_loss.h). Written from TRL 1.16
 * GRPOTrainer._compute_loss (token-level importance sampling, loss types grpo / bnpo /
 * dr_grpo / dapo) and the importance-sampling block of _generate_and_score_completions;
 * the gradient is derived by hand and follows torch's subgradient choices so it equals
 * the autograd gradient. Double accumulation; float inputs and gradients. */
#include "rl/grpo_loss.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

const char *const grpo_loss_type_names[] = {"grpo", "bnpo", "dr_grpo", "dapo", NULL};
const char *const grpo_is_mode_names[] = {"none", "token_truncate", "token_mask", "sequence_truncate",
                                          "sequence_mask", NULL};

grpo_status grpo_loss_parse_type(const char *name, grpo_loss_type *out) {
    for (int i = 0; name && grpo_loss_type_names[i]; i++) {
        if (strcmp(name, grpo_loss_type_names[i]) == 0) {
            *out = (grpo_loss_type)i;
            return GRPO_OK;
        }
    }
    return grpo_fail(GRPO_ERR_INVALID, "loss_type: expected grpo|bnpo|dr_grpo|dapo, found \"%s\"",
                     name ? name : "(null)");
}

grpo_status grpo_loss_parse_is_mode(const char *name, grpo_is_mode *out) {
    for (int i = 0; name && grpo_is_mode_names[i]; i++) {
        if (strcmp(name, grpo_is_mode_names[i]) == 0) {
            *out = (grpo_is_mode)i;
            return GRPO_OK;
        }
    }
    return grpo_fail(GRPO_ERR_INVALID, "importance_sampling_mode: expected none|token_truncate|token_mask|"
                     "sequence_truncate|sequence_mask, found \"%s\"", name ? name : "(null)");
}

grpo_loss_options grpo_loss_options_default(void) {
    grpo_loss_options o = {
        .loss_type = GRPO_LOSS_DAPO,
        .epsilon = 0.2,
        .epsilon_high = NAN,
        .beta = 0.0,
        .use_bias_correction_kl = 1,
        .max_completion_length = 256,
        .num_items_in_batch = 0,
        .num_processes = 1,
        .gradient_accumulation_steps = 1,
        .steps_per_generation = 1,
        .importance_sampling_mode = GRPO_IS_NONE,
        .is_clip_min = NAN,
        .is_clip_max = 3.0,
        .entropy_coef = 0.0,
    };
    return o;
}

grpo_status grpo_loss_check_options(const grpo_loss_options *o) {
    if (!o) return grpo_fail(GRPO_ERR_INVALID, "grpo loss: options are NULL");
    if ((int)o->loss_type < 0 || (int)o->loss_type > GRPO_LOSS_DAPO)
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: unknown loss_type %d; expected grpo|bnpo|dr_grpo|dapo",
                         (int)o->loss_type);
    if (!(o->epsilon >= 0) || !isfinite(o->epsilon))
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected epsilon >= 0, found %g", o->epsilon);
    if (!isnan(o->epsilon_high) && (!(o->epsilon_high >= 0) || !isfinite(o->epsilon_high)))
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected epsilon_high >= 0 (or unset), found %g",
                         o->epsilon_high);
    if (!(o->beta >= 0) || !isfinite(o->beta))
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected beta >= 0, found %g", o->beta);
    if (o->use_bias_correction_kl != 0 && o->use_bias_correction_kl != 1)
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected use_bias_correction_kl 0 or 1, found %d",
                         o->use_bias_correction_kl);
    if (o->loss_type == GRPO_LOSS_DR_GRPO && o->max_completion_length < 1)
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: dr_grpo needs max_completion_length >= 1, found %d",
                         o->max_completion_length);
    if (!isfinite(o->num_items_in_batch))
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected a finite num_items_in_batch, found %g",
                         o->num_items_in_batch);
    if (o->num_processes < 1 || o->gradient_accumulation_steps < 1 || o->steps_per_generation < 1)
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected num_processes, gradient_accumulation_steps and "
                         "steps_per_generation >= 1, found %d, %d, %d", o->num_processes,
                         o->gradient_accumulation_steps, o->steps_per_generation);
    if ((int)o->importance_sampling_mode < 0 || (int)o->importance_sampling_mode > GRPO_IS_SEQUENCE_MASK)
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: unknown importance_sampling_mode %d",
                         (int)o->importance_sampling_mode);
    if (!isnan(o->is_clip_min) && (!(o->is_clip_min >= 0) || !isfinite(o->is_clip_min)))
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected is_clip_min >= 0 (or unset), found %g",
                         o->is_clip_min);
    if (!isnan(o->is_clip_max) && (!(o->is_clip_max > 0) || !isfinite(o->is_clip_max)))
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected is_clip_max > 0 (or unset), found %g",
                         o->is_clip_max);
    if (!isnan(o->is_clip_min) && !isnan(o->is_clip_max) && o->is_clip_min > o->is_clip_max)
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected is_clip_min <= is_clip_max, found %g > %g",
                         o->is_clip_min, o->is_clip_max);
    if ((o->importance_sampling_mode == GRPO_IS_TOKEN_TRUNCATE ||
         o->importance_sampling_mode == GRPO_IS_SEQUENCE_TRUNCATE) && isnan(o->is_clip_min) && isnan(o->is_clip_max))
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: truncated importance sampling needs is_clip_min or "
                         "is_clip_max, found neither");
    if (!isfinite(o->entropy_coef))
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected a finite entropy_coef, found %g", o->entropy_coef);
    return GRPO_OK;
}

/* rho after truncation or masking (TRL: torch.clamp / masked_fill outside [min, max]). */
static double is_bound(const grpo_loss_options *o, double rho) {
    int truncate = o->importance_sampling_mode == GRPO_IS_TOKEN_TRUNCATE ||
                   o->importance_sampling_mode == GRPO_IS_SEQUENCE_TRUNCATE;
    if (truncate) {
        if (!isnan(o->is_clip_min) && rho < o->is_clip_min) rho = o->is_clip_min;
        if (!isnan(o->is_clip_max) && rho > o->is_clip_max) rho = o->is_clip_max;
        return rho;
    }
    if ((!isnan(o->is_clip_min) && rho < o->is_clip_min) || (!isnan(o->is_clip_max) && rho > o->is_clip_max))
        return 0.0;
    return rho;
}

/* logprobs_old - sampling_logprobs for one token; 0 where the sampler gave NaN
 * (TRL: nan_to_num(nan=0) -> no correction for that token). */
static double sampling_diff(const grpo_loss_inputs *in, long i) {
    double lp_old = in->logprobs_old ? in->logprobs_old[i] : in->logprobs[i];
    double d = lp_old - (double)in->sampling_logprobs[i];
    return isnan(d) ? 0.0 : d;
}

grpo_status grpo_loss_compute(const grpo_loss_options *opt, const grpo_loss_inputs *in, float *grad_logprobs,
                              float *grad_entropies, grpo_loss_result *out) {
    GRPO_TRY(grpo_loss_check_options(opt));
    if (!in || !out || !grad_logprobs) return grpo_fail(GRPO_ERR_INVALID, "grpo loss: inputs or outputs are NULL");
    const int B = in->B, T = in->T;
    if (B < 1 || T < 1) return grpo_fail(GRPO_ERR_INVALID, "grpo loss: expected B >= 1 and T >= 1, found %d, %d", B, T);
    if (!in->logprobs || !in->completion_mask || !in->advantages)
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: logprobs, completion_mask and advantages are required");
    if (opt->beta > 0 && !in->ref_logprobs)
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: beta = %g needs ref_logprobs, found none", opt->beta);
    const grpo_is_mode is_mode = opt->importance_sampling_mode;
    if (is_mode != GRPO_IS_NONE && !in->sampling_logprobs)
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: importance_sampling_mode %s needs sampling_logprobs, found none",
                         grpo_is_mode_names[is_mode]);
    if (opt->entropy_coef != 0 && (!in->entropies || !grad_entropies))
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: entropy_coef = %g needs entropies and grad_entropies",
                         opt->entropy_coef);
    if (opt->loss_type == GRPO_LOSS_DR_GRPO && T > opt->max_completion_length)
        return grpo_fail(GRPO_ERR_INVALID, "grpo loss: dr_grpo: completions of %d tokens exceed "
                         "max_completion_length %d", T, opt->max_completion_length);

    const double eps_low = opt->epsilon;
    const double eps_high = isnan(opt->epsilon_high) ? opt->epsilon : opt->epsilon_high;
    const double clip_lo = 1.0 - eps_low, clip_hi = 1.0 + eps_high;
    const double accumulation = opt->gradient_accumulation_steps;
    const int sequence_is = is_mode == GRPO_IS_SEQUENCE_TRUNCATE || is_mode == GRPO_IS_SEQUENCE_MASK;

    long num_tokens = 0;
    for (long i = 0; i < (long)B * T; i++) num_tokens += in->completion_mask[i] != 0;
    const double tokens_clamped = num_tokens > 0 ? (double)num_tokens : 1.0;   /* .clamp(min=1.0) */

    /* Weight of one token's loss in the aggregate before the accumulation division (GRPO's
     * depends on the sequence and is set per row). */
    double token_weight = 0;
    switch (opt->loss_type) {
    case GRPO_LOSS_GRPO: break;
    case GRPO_LOSS_BNPO: token_weight = 1.0 / tokens_clamped; break;
    case GRPO_LOSS_DR_GRPO: token_weight = 1.0 / ((double)B * opt->max_completion_length); break;
    case GRPO_LOSS_DAPO: {
        double items = opt->num_items_in_batch > 0 ? opt->num_items_in_batch : (double)num_tokens;
        double normalizer = (items > 1.0 ? items : 1.0) / opt->num_processes;
        normalizer = normalizer * opt->gradient_accumulation_steps / opt->steps_per_generation;
        token_weight = 1.0 / normalizer;
        break;
    }
    }
    /* DAPO's normalizer already holds the accumulation factor; the others divide by it. */
    const double loss_scale = opt->loss_type == GRPO_LOSS_DAPO ? 1.0 : 1.0 / accumulation;

    double loss_sum = 0, kl_sum = 0, entropy_sum = 0, ratio_sum = 0;
    long low_count = 0, high_count = 0, region_count = 0;
    double low_min = INFINITY, high_max = -INFINITY;
    double gap_sum = 0, gap_max = 0;
    long gap_count = 0;
    double rho_sum = 0, rho_min = INFINITY, rho_max = -INFINITY;
    long rho_count = 0;

    for (int b = 0; b < B; b++) {
        const long row = (long)b * T;
        const double A = in->advantages[b];
        long n_b = 0;
        for (int t = 0; t < T; t++) n_b += in->completion_mask[row + t] != 0;
        double w = opt->loss_type == GRPO_LOSS_GRPO ? 1.0 / ((double)B * (n_b > 0 ? (double)n_b : 1.0)) : token_weight;
        w *= loss_scale;

        double rho_seq = 1.0;
        if (sequence_is) {
            double s = 0;
            for (int t = 0; t < T; t++)
                if (in->completion_mask[row + t]) s += sampling_diff(in, row + t);
            rho_seq = is_bound(opt, exp(s));
            rho_sum += rho_seq;
            rho_count++;
            if (rho_seq < rho_min) rho_min = rho_seq;
            if (rho_seq > rho_max) rho_max = rho_seq;
        }

        long low_b = 0, high_b = 0;
        for (int t = 0; t < T; t++) {
            const long i = row + t;
            if (!in->completion_mask[i]) {
                grad_logprobs[i] = 0.0f;
                if (grad_entropies) grad_entropies[i] = 0.0f;
                continue;
            }
            const double lp = in->logprobs[i];
            const double lp_old = in->logprobs_old ? (double)in->logprobs_old[i] : lp;
            /* Importance ratio (PPO, Schulman et al. 2017 eq. 6); d r / d lp = r. */
            const double r = exp(lp - lp_old);
            const double r_clip = r < clip_lo ? clip_lo : (r > clip_hi ? clip_hi : r);
            const double unclipped = r * A, clipped = r_clip * A;
            /* -min(unclipped, clipped), torch's gradient: a tie gives each side half;
             * clamp passes the gradient where clip_lo <= r <= clip_hi. */
            const double clamp_pass = (r >= clip_lo && r <= clip_hi) ? 1.0 : 0.0;
            double share_unclipped, share_clipped;
            if (unclipped < clipped) share_unclipped = 1.0, share_clipped = 0.0;
            else if (unclipped > clipped) share_unclipped = 0.0, share_clipped = 1.0;
            else share_unclipped = 0.5, share_clipped = 0.5;
            double token_loss = -(unclipped < clipped ? unclipped : clipped);
            double token_grad = -(share_unclipped + share_clipped * clamp_pass) * A * r;

            double rho = 1.0;
            if (sequence_is) {
                rho = rho_seq;
            } else if (is_mode != GRPO_IS_NONE) {
                rho = is_bound(opt, exp(sampling_diff(in, i)));
                rho_sum += rho;
                rho_count++;
                if (rho < rho_min) rho_min = rho;
                if (rho > rho_max) rho_max = rho;
            }
            token_loss *= rho;
            token_grad *= rho;

            if (opt->beta > 0) {
                /* k3 estimator of KL(pi || pi_ref): exp(d) - d - 1, d = ref - lp. */
                const double d = (double)in->ref_logprobs[i] - lp;
                const double e = exp(d);
                double kl = e - d - 1.0;
                double kl_grad = 1.0 - e;
                if (opt->use_bias_correction_kl) {
                    kl_grad = kl_grad * r + kl * r;   /* d (kl r) = kl' r + kl r' */
                    kl = kl * r;
                }
                kl_sum += kl;
                token_loss += opt->beta * kl;
                token_grad += opt->beta * kl_grad;
            }

            loss_sum += w * token_loss;
            grad_logprobs[i] = (float)(w * token_grad);

            if (in->entropies) entropy_sum += in->entropies[i];
            if (grad_entropies)   /* entropy bonus: -coef * masked mean / accumulation */
                grad_entropies[i] = (float)(-opt->entropy_coef / (tokens_clamped * accumulation));

            ratio_sum += r;
            const int is_low = r < clip_lo && A < 0, is_high = r > clip_hi && A > 0;
            low_b += is_low;
            high_b += is_high;
            region_count += is_low || is_high;

            if (in->sampling_logprobs) {
                const double gap = fabs(lp_old - (double)in->sampling_logprobs[i]);
                if (!isnan(gap)) {
                    gap_sum += gap;
                    gap_count++;
                    if (gap > gap_max) gap_max = gap;
                }
            }
        }
        low_count += low_b;
        high_count += high_b;
        if (n_b > 0) {   /* TRL's masked_seq_mean is 0/0 = NaN for an empty row; nanmin skips it */
            double low_share = (double)low_b / n_b, high_share = (double)high_b / n_b;
            if (low_share < low_min) low_min = low_share;
            if (high_share > high_max) high_max = high_share;
        }
    }

    double entropy_mean = in->entropies ? entropy_sum / tokens_clamped : NAN;
    memset(out, 0, sizeof *out);
    out->policy_loss = opt->loss_type == GRPO_LOSS_DAPO ? loss_sum : loss_sum * accumulation;
    out->loss = loss_sum;
    if (opt->entropy_coef != 0) out->loss -= opt->entropy_coef * entropy_mean / accumulation;
    out->num_tokens = num_tokens;
    out->kl = opt->beta > 0 ? kl_sum / tokens_clamped : NAN;
    out->entropy = entropy_mean;
    out->ratio_mean = num_tokens > 0 ? ratio_sum / (double)num_tokens : NAN;
    out->clip_ratio_low_mean = (double)low_count / tokens_clamped;
    out->clip_ratio_high_mean = (double)high_count / tokens_clamped;
    out->clip_ratio_region_mean = (double)region_count / tokens_clamped;
    out->clip_ratio_low_min = isinf(low_min) ? NAN : low_min;
    out->clip_ratio_high_max = isinf(high_max) ? NAN : high_max;
    if (in->sampling_logprobs) {
        out->sampling_logp_difference_mean = gap_count > 0 ? gap_sum / (double)gap_count : 0.0;
        out->sampling_logp_difference_max = gap_max;
    } else {
        out->sampling_logp_difference_mean = out->sampling_logp_difference_max = NAN;
    }
    if (is_mode != GRPO_IS_NONE) {
        out->importance_sampling_ratio_min = rho_count > 0 ? rho_min : 0.0;
        out->importance_sampling_ratio_mean = rho_count > 0 ? rho_sum / (double)rho_count : 0.0;
        out->importance_sampling_ratio_max = rho_count > 0 ? rho_max : 0.0;
    } else {
        out->importance_sampling_ratio_min = out->importance_sampling_ratio_mean =
            out->importance_sampling_ratio_max = NAN;
    }
    return GRPO_OK;
}
