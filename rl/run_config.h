/* The configuration of a `grpo run`: one YAML file with run, model, datasets and
 * stages sections (DESIGN.md), bound into these structs by schema tables. Stage keys
 * follow TRL's config names where one exists. */
#ifndef GRPO_RUN_CONFIG_H
#define GRPO_RUN_CONFIG_H

#include <stdint.h>

#include "core/config.h"
#include "rl/sft.h"
#include "verifiers/reward.h"

typedef struct {
    const char *name;          /* runs/NAME */
    const char *output_dir;    /* parent of the run directory (default "runs") */
    int64_t seed;
    int threads;               /* CPU threads, 0 = all cores */
    int resume;                /* continue from the newest checkpoint when the run exists */
    int backend;               /* 0 cpu, 1 cuda */
} run_section;

typedef struct {
    const char *preset;        /* a compiled-in preset (configs/models/NAME.json) */
    const char *path;          /* or an HF model directory */
    const char *tokenizer;     /* "builtin", a directory, or NULL = the model's own, else builtin */
    int64_t init_seed;
} model_section;

typedef enum { DATA_FILE = 0, DATA_ARITH = 1, DATA_COUNTDOWN = 2 } dataset_source;

typedef struct {
    const char *name;
    int generate;              /* dataset_source */
    const char *path;          /* DATA_FILE: the JSONL file */
    int n;                     /* generated lines */
    int64_t seed;
    int64_t offset;            /* first problem index (disjoint splits share a seed) */
    int difficulty;            /* arith */
    const char *ops;           /* arith */
    double answer_noise;       /* arith: share of responses with a wrong final answer */
    int count, max_number, max_target, use_all;   /* countdown */
} dataset_section;

typedef enum { STAGE_SFT = 0, STAGE_GRPO = 1 } stage_kind;

typedef struct {
    const char *name;
    int kind;                  /* stage_kind */
    const char *train_dataset;
    const char *eval_dataset;
    const char *prompt_template;
    /* sft / optimizer (TRL SFTConfig + TrainingArguments names) */
    int max_steps, per_device_train_batch_size, gradient_accumulation_steps, max_length;
    int eval_steps, save_steps, logging_steps, save_total_limit, per_device_eval_batch_size;
    int log_rollouts_per_step; /* grpo: completions per step kept in run.db (0: none) */
    double learning_rate, adam_beta1, adam_beta2, adam_epsilon, weight_decay, max_grad_norm;
    int lr_scheduler_type;     /* lr_schedule_kind */
    int warmup_steps;
    double min_lr_ratio;
    int64_t seed;              /* data order; -1 = the run's seed */
    int completion_only_loss;  /* sft: loss on the response only (1) or on every token (0: pretraining) */
    /* grpo (TRL GRPOConfig names): a generation batch is per_device_train_batch_size *
     * gradient_accumulation_steps completions = that / num_generations prompts */
    int num_generations;
    int max_prompt_length, max_completion_length;
    double temperature, top_p, min_p;
    int top_k;
    double beta, epsilon, epsilon_high;   /* epsilon_high NAN: = epsilon */
    int loss_type;             /* grpo_loss_type */
    int scale_rewards;         /* advantage_scale */
    int num_iterations;
    int mask_truncated_completions;
    int dynamic_sampling;      /* drop groups whose rewards are all equal */
    double entropy_coef;
    double bias_update_gamma;  /* MoE aux-loss-free balancing step (0: off) */
    reward_entry *rewards;
    int n_rewards;
    int eval_num_generations;  /* n samples per held-out problem (pass@1 mean, pass@k, maj@k) */
    double eval_temperature;
    int eval_max_problems;     /* 0: all */
} stage_section;

typedef struct {
    run_section run;
    model_section model;
    dataset_section *datasets;
    int n_datasets;
    stage_section *stages;
    int n_stages;
    cfg_doc *doc;              /* owns every string above */
} run_config;

/* Loads path, applies the overrides ("a.b=c"), binds and cross-checks (stage dataset
 * names exist, unique names, model preset xor path). On failure *out is NULL. */
grpo_status run_config_load(const char *path, const char *const *overrides, int n_overrides, run_config **out);
void run_config_free(run_config *c);
/* The SFT settings of a stage. */
sft_config run_config_sft(const run_config *c, const stage_section *st);

extern const char *const stage_kind_names[];

#endif
