/* Group-relative advantages for GRPO (no critic): each completion's reward against the
 * other completions of its prompt, as TRL's GRPOTrainer computes them (trl 1.16,
 * _generate_and_score_completions, multi_objective_aggregation "sum_then_normalize"),
 * plus the zero-variance statistics and the dynamic-sampling filter of DAPO. */
#ifndef GRPO_ADVANTAGE_H
#define GRPO_ADVANTAGE_H

#include <stdint.h>

#include "core/status.h"

/* TRL's scale_rewards: what the centred reward is divided by.
 *  GROUP: the group's standard deviation (GRPO, DeepSeekMath eq. 3 / R1 report eq. 3);
 *  BATCH: the standard deviation over the whole batch (PPO-Lite); the mean stays the group's;
 *  NONE:  nothing (Dr. GRPO, Liu et al. 2025, sec. 3.1: no std division). */
typedef enum { ADVANTAGE_SCALE_GROUP = 0, ADVANTAGE_SCALE_BATCH = 1, ADVANTAGE_SCALE_NONE = 2 } advantage_scale;
extern const char *const advantage_scale_names[];   /* "group", "batch", "none", NULL */

/* "group" | "batch" | "none" (also TRL's booleans "true" -> group, "false" -> none).
 * Anything else is GRPO_ERR_INVALID naming the value and the choices. */
grpo_status advantage_parse_scale(const char *name, advantage_scale *out);

typedef struct {
    advantage_scale scale_rewards;
    double epsilon;   /* added to the std before dividing; TRL's constant 1e-4 */
} advantage_options;

advantage_options advantage_options_default(void);   /* group, 1e-4 */

/* Per-batch statistics (TRL's logged names in brackets). */
typedef struct {
    int num_groups;
    int num_zero_std_groups;     /* groups whose std (below) is ~0: std <= 1e-8, torch.isclose */
    double frac_zero_std_groups; /* num_zero_std_groups / num_groups [frac_reward_zero_std for
                                    scale group|none; for batch TRL logs the global std's test] */
    int num_unscorable;          /* NaN rewards: left out of every statistic, advantage 0 */
    double reward_mean;          /* over scorable rewards [reward] */
    double reward_std;           /* unbiased, over scorable rewards [reward_std]; NaN when < 2 */
} advantage_stats;

/* rewards: [num_groups * num_generations], group-major (the G completions of prompt 0
 * first). A NaN reward means "unscorable" (TRL: every reward function returned None).
 * advantages (out): [num_groups * num_generations]; may alias rewards.
 *
 *   A_i = (r_i - mean_group) / (std + epsilon)     (std per scale_rewards; NONE: A_i = r_i - mean)
 *
 * Means and stds skip NaN rewards; the std is the unbiased one (Bessel's n - 1), as TRL
 * 1.16's trainer/utils.py nanstd (and torch.std's default) computes it. TRL forms the
 * factor count / (count - 1) from integer tensors, which torch divides in float32, so
 * TRL's std differs from the exact one by ~3e-8 relative; ours is exact. A group with fewer than 2 scorable rewards has an undefined
 * std; its advantages come out 0, as TRL's nan_to_num makes them; NaN rewards get 0 too.
 * Accumulation in double.
 * Refused (GRPO_ERR_INVALID): num_groups < 1, num_generations < 1, num_generations == 1
 * with scale GROUP, a batch of 1 with scale BATCH (no std can be formed), epsilon < 0 or
 * not finite, an infinite reward (names its index). stats may be NULL. */
grpo_status advantage_compute(const advantage_options *opt, const double *rewards, int num_groups,
                              int num_generations, double *advantages, advantage_stats *stats);

/* Zero-variance groups: zero_std[g] = 1 when group g's scorable rewards have std <= 1e-8
 * (all equal). Groups with fewer than 2 scorable rewards have no std and get 0 here (as in
 * TRL's metric). Returns the count through *count (may be NULL); zero_std may be NULL. */
grpo_status advantage_zero_std_groups(const double *rewards, int num_groups, int num_generations,
                                      uint8_t *zero_std, int *count);

/* Dynamic sampling (DAPO, Yu et al. 2025, sec. 3.2 and eq. 11: keep only groups with
 * 0 < accuracy < 1): keep[g] = 1 when group g carries a learning signal, i.e. it has at
 * least 2 scorable rewards and they are not all equal; 0 marks a group to drop (the
 * trainer may sample more prompts to refill the batch). keep: [num_groups]. *num_kept
 * (may be NULL) gets the number of ones. */
grpo_status advantage_dynamic_sampling_keep(const double *rewards, int num_groups, int num_generations,
                                            uint8_t *keep, int *num_kept);

#endif
