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
    int precision;             /* compute precision of the projections: quant_precision (core/quant.h) */
    const char *device_memory; /* memory pool reserved at start (core/backend_pool.h: backend_pool_setup);
                                  NULL: 0.9 of the free memory on CUDA, none on the CPU */
    int recompute;             /* activation recomputation in training (lm_set_recompute) */
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
    const char *from_stage;    /* DATA_FILE: instead of path, the JSONL a rejection or distill
                                  stage of this run writes (RUN_DIR/data/STAGE.jsonl) */
    int n;                     /* generated lines */
    int64_t seed;
    int64_t offset;            /* first problem index (disjoint splits share a seed) */
    int difficulty;            /* arith */
    const char *ops;           /* arith */
    double answer_noise;       /* arith: share of responses with a wrong final answer */
    int split;                 /* arith: DATA_SPLIT_* (data/generate.h) */
    int count, max_number, max_target, use_all;   /* countdown */
} dataset_section;

/* pretrain: SFT with the loss on every token by default; rejection: samples, verifies and
 * writes the kept ones as SFT JSONL (no training); distill: rejection sampling with the
 * teacher (the stage's input model) then SFT of `student`; eval: held-out evaluation of
 * the input model (no training). */
typedef enum {
    STAGE_SFT = 0, STAGE_GRPO = 1, STAGE_PRETRAIN = 2, STAGE_REJECTION = 3, STAGE_DISTILL = 4, STAGE_EVAL = 5
} stage_kind;

typedef struct {
    const char *name;
    int kind;                  /* stage_kind */
    const char *model;         /* input model: an earlier stage's name (its output), a preset or an
                                  HF model directory; NULL = the previous stage's output (stage 0:
                                  the run's model section) */
    const char *student;       /* distill: the model trained, a preset, directory or earlier stage */
    const char *heldout_dataset; /* evaluated by sampling on the stage's output model after the
                                    stage (teacher and student for distill): the summary table */
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
    int completion_only_loss;  /* sft: loss on the response only (1) or on every token (0); -1 (unset):
                                  0 for pretrain, 1 otherwise */
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
    int importance_sampling_mode;       /* grpo_is_mode (truncated importance sampling: Yao et al. 2025) */
    double importance_sampling_cap;
    double bias_update_gamma;  /* MoE aux-loss-free balancing step (0: off) */
    reward_entry *rewards;
    int n_rewards;
    int eval_num_generations;  /* n samples per held-out problem (pass@1 mean, pass@k, maj@k) */
    double eval_temperature;
    int eval_max_problems;     /* 0: all */
    /* rejection / distill (sampling uses temperature, top_p, top_k, min_p, max_*_length) */
    int num_samples;           /* samples per prompt */
    int filter;                /* keep only verified-correct, well-formatted samples (0: keep all) */
    int max_per_prompt;        /* kept samples per prompt after dedup (0: all) */
    int max_prompts;           /* prompts of train_dataset sampled (0: all) */
    const char *mix_dataset;   /* an SFT JSONL dataset mixed into the output */
    double mix_ratio;          /* mixed lines per kept line */
    double kd_alpha;           /* distill: weight of logit KD (0: sample-only distillation) */
    double kd_temperature;
    int kd_top_k;
} stage_section;

typedef struct {
    run_section run;
    model_section model;
    dataset_section *datasets;
    int n_datasets;
    stage_section *stages;
    int n_stages;
    const cfg_node *defaults;  /* the `defaults:` mapping every stage starts from (may be NULL) */
    cfg_doc *doc;              /* owns every string above */
} run_config;

/* Loads path, applies the overrides ("a.b=c"), binds (every stage starts from the
 * `defaults:` mapping, then its own keys) and cross-checks before any work: dataset
 * names exist, unique names, model preset xor path, a stage's `model:` / `student:` names
 * an earlier stage, a preset or a model directory, a dataset `from_stage` names an
 * earlier rejection or distill stage, a distill stage has a student, an eval stage an
 * eval_dataset. Errors name file:line:col. On failure *out is NULL. */
grpo_status run_config_load(const char *path, const char *const *overrides, int n_overrides, run_config **out);
void run_config_free(run_config *c);
/* The index of the stage named `name`, or -1. */
int run_config_find_stage(const run_config *c, const char *name);
/* The dataset named `name`, or NULL. */
const dataset_section *run_config_find_dataset(const run_config *c, const char *name);
/* 1 for the kinds that train a model (sft, pretrain, grpo, distill). */
int run_config_stage_trains(const stage_section *st);
/* The SFT settings of a stage. */
sft_config run_config_sft(const run_config *c, const stage_section *st);

extern const char *const stage_kind_names[];

#endif
