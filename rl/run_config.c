/* Schema tables and cross-checks of the run configuration (rl/run_config.h). */
#include "rl/run_config.h"

#include <stdlib.h>
#include <string.h>

#include "core/backend_pool.h"
#include "data/template.h"
#include "model/presets.h"
#include "rl/advantage.h"
#include "rl/grpo_loss.h"
#include "rl/grpo_train.h"
#include "rl/optim.h"

const char *const stage_kind_names[] = {"sft", "grpo", "pretrain", "rejection", "distill", "eval", NULL};
static const char *const backend_names[] = {"cpu", "cuda", NULL};
static const char *const precision_names[] = {"fp32", "bf16", "fp8", NULL};   /* QUANT_* of core/quant.h */
static const char *const source_names[] = {"file", "arith", "countdown", NULL};
static const char *const split_names[] = {"all", "train", "held_out", NULL};   /* DATA_SPLIT_* */

static const cfg_field run_schema[] = {
    CFG_FIELD_STRING(run_section, name, "name", "run name: the run directory is OUTPUT_DIR/NAME", .required = 1),
    CFG_FIELD_STRING(run_section, output_dir, "output_dir", "parent directory of runs (default runs)"),
    CFG_FIELD_INT64(run_section, seed, "seed", 0, 9.2e18, "seed of every random choice"),
    CFG_FIELD_INT(run_section, threads, "threads", 0, 4096, "CPU threads (0: all cores)"),
    CFG_FIELD_BOOL(run_section, resume, "resume", "continue from the newest checkpoint"),
    CFG_FIELD_ENUM(run_section, backend, "backend", backend_names, "cpu or cuda"),
    CFG_FIELD_ENUM(run_section, precision, "precision", precision_names,
                   "compute precision of the projections in training and rollouts: fp32, bf16 or fp8"),
    CFG_FIELD_STRING(run_section, device_memory, "device_memory",
                     "device memory pool reserved at start: a fraction of the free memory (default 0.9 on CUDA), "
                     "a size like 60GiB, or none (the CPU's default)"),
    CFG_FIELD_BOOL(run_section, recompute, "recompute",
                   "activation recomputation: keep each layer's input only, recompute the layer in backward"),
    CFG_END,
};

static const cfg_field model_schema[] = {
    CFG_FIELD_STRING(model_section, preset, "preset", "compiled-in preset name (configs/models/)"),
    CFG_FIELD_STRING(model_section, path, "path", "Hugging Face model directory"),
    CFG_FIELD_STRING(model_section, tokenizer, "tokenizer", "builtin, or a directory with tokenizer.json"),
    CFG_FIELD_INT64(model_section, init_seed, "init_seed", -1, 9.2e18, "seed of a preset's random weights (-1: run seed)"),
    CFG_END,
};

static const cfg_field dataset_schema[] = {
    CFG_FIELD_STRING(dataset_section, name, "name", "name the stages use", .required = 1),
    CFG_FIELD_ENUM(dataset_section, generate, "generate", source_names, "file, arith or countdown"),
    CFG_FIELD_STRING(dataset_section, path, "path", "JSONL file (generate: file)"),
    CFG_FIELD_STRING(dataset_section, from_stage, "from_stage", "the JSONL an earlier rejection/distill stage writes"),
    CFG_FIELD_INT(dataset_section, n, "n", 1, 1e8, "problems to generate"),
    CFG_FIELD_INT64(dataset_section, seed, "seed", -1, 9.2e18, "generator seed (-1: run seed)"),
    CFG_FIELD_INT64(dataset_section, offset, "offset", 0, 4.6e18, "first problem index"),
    CFG_FIELD_INT(dataset_section, difficulty, "difficulty", 1, 5, "arith: digits per operand"),
    CFG_FIELD_STRING(dataset_section, ops, "ops", "arith: a subset of +-*"),
    CFG_FIELD_FLOAT(dataset_section, answer_noise, "answer_noise", 0, 1, "arith: share of wrong final answers"),
    CFG_FIELD_ENUM(dataset_section, split, "split", split_names,
                   "arith: all, train or held_out problems (content splits never share a problem)"),
    CFG_FIELD_INT(dataset_section, count, "count", 2, 8, "countdown: numbers per problem"),
    CFG_FIELD_INT(dataset_section, max_number, "max_number", 1, 1e6, "countdown: largest number"),
    CFG_FIELD_INT(dataset_section, max_target, "max_target", 1, 1e9, "countdown: largest target"),
    CFG_FIELD_BOOL(dataset_section, use_all, "use_all", "countdown: use every number"),
    CFG_END,
};

static const cfg_field stage_schema[] = {
    CFG_FIELD_STRING(stage_section, name, "name", "stage name", .required = 1),
    CFG_FIELD_ENUM(stage_section, kind, "kind", stage_kind_names, "what the stage does", .required = 1),
    CFG_FIELD_STRING(stage_section, model, "model", "input model: earlier stage, preset or directory "
                     "(default: the previous stage's output)"),
    CFG_FIELD_STRING(stage_section, student, "student", "distill: the student (earlier stage, preset or directory)"),
    CFG_FIELD_STRING(stage_section, heldout_dataset, "heldout_dataset",
                     "problems sampled on the stage's output model for the summary table"),
    CFG_FIELD_STRING(stage_section, train_dataset, "train_dataset", "dataset name (prompts for rejection/distill)"),
    CFG_FIELD_STRING(stage_section, eval_dataset, "eval_dataset", "held-out dataset name"),
    CFG_FIELD_STRING(stage_section, prompt_template, "prompt_template", "template with {prompt} and other fields"),
    CFG_FIELD_INT(stage_section, max_steps, "max_steps", 1, 1e9, "optimizer steps"),
    CFG_FIELD_INT(stage_section, per_device_train_batch_size, "per_device_train_batch_size", 1, 1e6, "sequences per micro-batch"),
    CFG_FIELD_INT(stage_section, gradient_accumulation_steps, "gradient_accumulation_steps", 1, 1e6, "micro-batches per step"),
    CFG_FIELD_INT(stage_section, max_length, "max_length", 2, 1e7, "tokens per example"),
    CFG_FIELD_INT(stage_section, eval_steps, "eval_steps", 0, 1e9, "evaluate every N steps (0: at the end)"),
    CFG_FIELD_INT(stage_section, save_steps, "save_steps", 0, 1e9, "checkpoint every N steps (0: at the end)"),
    CFG_FIELD_INT(stage_section, logging_steps, "logging_steps", 1, 1e9, "metrics every N steps"),
    CFG_FIELD_INT(stage_section, log_rollouts_per_step, "log_rollouts_per_step", 0, 1e6,
                  "grpo: completions per step kept in run.db (whole groups first; 0: none)"),
    CFG_FIELD_INT(stage_section, save_total_limit, "save_total_limit", 0, 1e6, "checkpoints kept (0: all)"),
    CFG_FIELD_INT(stage_section, per_device_eval_batch_size, "per_device_eval_batch_size", 1, 1e6, "evaluation batch"),
    CFG_FIELD_FLOAT(stage_section, learning_rate, "learning_rate", 0, 10, "peak learning rate"),
    CFG_FIELD_FLOAT(stage_section, adam_beta1, "adam_beta1", 0, 0.999999, "AdamW beta1"),
    CFG_FIELD_FLOAT(stage_section, adam_beta2, "adam_beta2", 0, 0.99999999, "AdamW beta2"),
    CFG_FIELD_FLOAT(stage_section, adam_epsilon, "adam_epsilon", 0, 1, "AdamW epsilon"),
    CFG_FIELD_FLOAT(stage_section, weight_decay, "weight_decay", 0, 10, "decoupled weight decay"),
    CFG_FIELD_FLOAT(stage_section, max_grad_norm, "max_grad_norm", 0, 1e9, "global-norm clipping (0: off)"),
    CFG_FIELD_ENUM(stage_section, lr_scheduler_type, "lr_scheduler_type", lr_schedule_names, "constant, linear or cosine"),
    CFG_FIELD_INT(stage_section, warmup_steps, "warmup_steps", 0, 1e9, "linear warm-up steps"),
    CFG_FIELD_FLOAT(stage_section, min_lr_ratio, "min_lr_ratio", 0, 1, "decay floor as a share of the peak"),
    CFG_FIELD_INT64(stage_section, seed, "seed", -1, 9.2e18, "data order seed (-1: run seed)"),
    CFG_FIELD_BOOL(stage_section, completion_only_loss, "completion_only_loss", "sft: loss on the response only"),
    CFG_FIELD_INT(stage_section, num_generations, "num_generations", 1, 4096, "grpo: completions per prompt (G)"),
    CFG_FIELD_INT(stage_section, max_prompt_length, "max_prompt_length", 1, 1e7, "grpo: longest prompt in tokens"),
    CFG_FIELD_INT(stage_section, max_completion_length, "max_completion_length", 1, 1e7, "grpo: tokens per completion"),
    CFG_FIELD_FLOAT(stage_section, temperature, "temperature", 0, 100, "grpo: sampling temperature"),
    CFG_FIELD_FLOAT(stage_section, top_p, "top_p", 0, 1, "grpo: nucleus sampling"),
    CFG_FIELD_FLOAT(stage_section, min_p, "min_p", 0, 1, "grpo: min-p sampling"),
    CFG_FIELD_INT(stage_section, top_k, "top_k", 0, 1e9, "grpo: top-k sampling (0: off)"),
    CFG_FIELD_FLOAT(stage_section, beta, "beta", 0, 1e6, "grpo: KL coefficient (0: no reference model)"),
    CFG_FIELD_FLOAT(stage_section, epsilon, "epsilon", 0, 10, "grpo: lower clip range"),
    CFG_FIELD_FLOAT(stage_section, epsilon_high, "epsilon_high", 0, 10, "grpo: upper clip range (null: epsilon)",
                    .nullable = 1, .null_value = NAN),
    CFG_FIELD_ENUM(stage_section, loss_type, "loss_type", grpo_loss_type_names, "grpo, bnpo, dr_grpo or dapo"),
    CFG_FIELD_ENUM(stage_section, scale_rewards, "scale_rewards", advantage_scale_names, "group, batch or none"),
    CFG_FIELD_INT(stage_section, num_iterations, "num_iterations", 1, 1000, "grpo: updates per generation batch (mu)"),
    CFG_FIELD_BOOL(stage_section, mask_truncated_completions, "mask_truncated_completions",
                   "grpo: leave completions cut at max_completion_length out of the loss"),
    CFG_FIELD_BOOL(stage_section, dynamic_sampling, "dynamic_sampling", "grpo: drop groups whose rewards are equal"),
    CFG_FIELD_FLOAT(stage_section, entropy_coef, "entropy_coef", 0, 10, "grpo: entropy bonus"),
    CFG_FIELD_ENUM(stage_section, importance_sampling_mode, "importance_sampling_mode", grpo_is_mode_names,
                   "grpo: correction for sampler/trainer log-prob mismatch (TRL's vllm_importance_sampling_mode): "
                   "none, token_truncate, token_mask, sequence_truncate or sequence_mask"),
    CFG_FIELD_FLOAT(stage_section, importance_sampling_cap, "importance_sampling_cap", 0, 1e6,
                    "grpo: upper bound of the importance ratio (TRL's vllm_importance_sampling_cap)"),
    CFG_FIELD_FLOAT(stage_section, bias_update_gamma, "bias_update_gamma", 0, 1, "MoE bias balancing step (0: off)"),
    CFG_FIELD_LIST(stage_section, rewards, n_rewards, "rewards", reward_entry, reward_entry_schema,
                   &reward_entry_defaults, 32, "grpo: reward components {name, weight, params}"),
    CFG_FIELD_INT(stage_section, eval_num_generations, "eval_num_generations", 1, 4096,
                  "grpo: samples per held-out problem"),
    CFG_FIELD_FLOAT(stage_section, eval_temperature, "eval_temperature", 0, 100, "grpo: held-out sampling temperature"),
    CFG_FIELD_INT(stage_section, eval_max_problems, "eval_max_problems", 0, 1e9, "held-out problems used (0: all)"),
    CFG_FIELD_INT(stage_section, num_samples, "num_samples", 1, 4096, "rejection/distill: samples per prompt"),
    CFG_FIELD_BOOL(stage_section, filter, "filter", "rejection/distill: keep only verified, well-formatted samples"),
    CFG_FIELD_INT(stage_section, max_per_prompt, "max_per_prompt", 0, 4096, "rejection/distill: kept per prompt (0: all)"),
    CFG_FIELD_INT(stage_section, max_prompts, "max_prompts", 0, 1e9, "rejection/distill: prompts sampled (0: all)"),
    CFG_FIELD_STRING(stage_section, mix_dataset, "mix_dataset", "rejection/distill: SFT JSONL dataset mixed in"),
    CFG_FIELD_FLOAT(stage_section, mix_ratio, "mix_ratio", 0, 1e6, "rejection/distill: mixed lines per kept line"),
    CFG_FIELD_FLOAT(stage_section, kd_alpha, "kd_alpha", 0, 1, "distill: weight of logit KD (0: samples only)"),
    CFG_FIELD_FLOAT(stage_section, kd_temperature, "kd_temperature", 1e-6, 1e6, "distill: KD softening temperature"),
    CFG_FIELD_INT(stage_section, kd_top_k, "kd_top_k", 0, 1e9, "distill: teacher logits kept per token (0: all)"),
    CFG_END,
};

static const dataset_section dataset_defaults = {
    .generate = DATA_FILE, .n = 1000, .seed = -1, .difficulty = 2, .ops = "+-*", .count = 4, .max_number = 99,
    .max_target = 1000};

static stage_section stage_defaults_value(void) {
    sft_config d = sft_config_default();
    stage_section s = {0};
    s.prompt_template = NULL;   /* sft: "{prompt}"; grpo: the R1-Zero template */
    s.max_steps = d.max_steps;
    s.per_device_train_batch_size = d.per_device_train_batch_size;
    s.gradient_accumulation_steps = d.gradient_accumulation_steps;
    s.max_length = d.max_length;
    s.eval_steps = d.eval_steps;
    s.save_steps = d.save_steps;
    s.logging_steps = d.logging_steps;
    s.save_total_limit = d.save_total_limit;
    s.per_device_eval_batch_size = d.eval_batch_size;
    s.learning_rate = d.optim.learning_rate;
    s.adam_beta1 = d.optim.beta1;
    s.adam_beta2 = d.optim.beta2;
    s.adam_epsilon = d.optim.eps;
    s.weight_decay = d.optim.weight_decay;
    s.max_grad_norm = d.optim.max_grad_norm;
    s.lr_scheduler_type = d.optim.schedule;
    s.warmup_steps = d.optim.warmup_steps;
    s.min_lr_ratio = d.optim.min_lr_ratio;
    s.seed = -1;
    s.completion_only_loss = -1;
    s.num_generations = 8;
    s.max_prompt_length = 512;
    s.max_completion_length = 256;
    s.temperature = 1.0;
    s.top_p = 1.0;
    s.min_p = 0.0;
    s.top_k = 0;
    s.beta = 0.0;
    s.epsilon = 0.2;
    s.epsilon_high = NAN;
    s.importance_sampling_mode = GRPO_IS_NONE;
    s.importance_sampling_cap = 3.0;
    s.loss_type = GRPO_LOSS_DAPO;
    s.scale_rewards = ADVANTAGE_SCALE_GROUP;
    s.num_iterations = 1;
    s.log_rollouts_per_step = grpo_config_default().log_rollouts_per_step;
    s.bias_update_gamma = 0.001;
    s.eval_num_generations = 4;
    s.eval_temperature = 1.0;
    s.num_samples = 4;
    s.filter = 1;
    s.max_per_prompt = 1;
    s.kd_temperature = 1.0;
    return s;
}

static stage_section stage_defaults;
/* stage_schema without required keys: the `defaults:` mapping */
static cfg_field defaults_schema[sizeof stage_schema / sizeof stage_schema[0]];

static const cfg_field root_schema[] = {
    CFG_FIELD_SECTION(run_config, run, "run", run_schema, "the run", .required = 1),
    CFG_FIELD_SECTION(run_config, model, "model", model_schema, "the model", .required = 1),
    CFG_FIELD_LIST(run_config, datasets, n_datasets, "datasets", dataset_section, dataset_schema, &dataset_defaults, 256,
                   "datasets"),
    CFG_FIELD_ANY(run_config, defaults, "defaults", "stage keys every stage starts from"),
    CFG_FIELD_LIST(run_config, stages, n_stages, "stages", stage_section, stage_schema, &stage_defaults, 64, "stages",
                   .required = 1),
    CFG_END,
};

void run_config_free(run_config *c) {
    if (!c) return;
    cfg_doc_free(c->doc);
    free(c);
}

const dataset_section *run_config_find_dataset(const run_config *c, const char *name) {
    for (int i = 0; i < c->n_datasets; i++)
        if (!strcmp(c->datasets[i].name, name)) return &c->datasets[i];
    return NULL;
}

int run_config_find_stage(const run_config *c, const char *name) {
    for (int i = 0; i < c->n_stages; i++)
        if (!strcmp(c->stages[i].name, name)) return i;
    return -1;
}

int run_config_stage_trains(const stage_section *st) {
    return st->kind == STAGE_SFT || st->kind == STAGE_PRETRAIN || st->kind == STAGE_GRPO || st->kind == STAGE_DISTILL;
}

/* The node of a stage key, or the stage itself when the key came from `defaults:`. */
static const cfg_node *stage_key_node(const cfg_node *stage, const char *key) {
    const cfg_node *n = cfg_get(stage, key);
    return n ? n : stage;
}

/* A stage's reference to a dataset: it exists and, when it is an earlier stage's output,
 * that stage runs before this one. */
static grpo_status check_dataset_ref(const run_config *c, int index, const cfg_node *stage, const char *key,
                                     const char *name) {
    if (!name) return GRPO_OK;
    const dataset_section *d = run_config_find_dataset(c, name);
    if (!d) return cfg_fail_at(stage_key_node(stage, key), GRPO_ERR_INVALID, "no dataset named '%s' in datasets", name);
    if (d->from_stage && run_config_find_stage(c, d->from_stage) >= index)
        return cfg_fail_at(stage_key_node(stage, key), GRPO_ERR_INVALID,
                           "dataset '%s' is the output of stage '%s', which does not run before stage '%s'", name,
                           d->from_stage, c->stages[index].name);
    return GRPO_OK;
}

/* A stage's `model:` or `student:`: an earlier stage, a compiled-in preset or (checked
 * by run_check_paths, so templates load without the user's files) a model directory. */
static grpo_status check_model_ref(const run_config *c, int index, const cfg_node *stage, const char *key,
                                   const char *name) {
    if (!name) return GRPO_OK;
    int j = run_config_find_stage(c, name);
    if (j >= index)
        return cfg_fail_at(stage_key_node(stage, key), GRPO_ERR_INVALID,
                           "'%s' is stage %d, which does not run before this stage (%d): a stage can only use the "
                           "output of an earlier one", name, j, index);
    return GRPO_OK;
}

static grpo_status check_rewards(const stage_section *s) {
    reward_set *set = NULL;
    grpo_status rs = reward_set_create(s->rewards, s->n_rewards, &set);
    reward_set_free(set);
    return rs;
}

static grpo_status check_stage(const run_config *c, int i, const cfg_node *node) {
    const stage_section *s = &c->stages[i];
    for (int j = 0; j < i; j++)
        if (!strcmp(c->stages[j].name, s->name))
            return cfg_fail_at(node, GRPO_ERR_INVALID, "stage name '%s' is used twice", s->name);
    if (!s->train_dataset && s->kind != STAGE_EVAL)
        return cfg_fail_at(node, GRPO_ERR_INVALID, "a %s stage needs train_dataset", stage_kind_names[s->kind]);
    if (s->kind == STAGE_EVAL && !s->eval_dataset)
        return cfg_fail_at(node, GRPO_ERR_INVALID, "an eval stage needs eval_dataset (the held-out problems)");
    GRPO_TRY(check_dataset_ref(c, i, node, "train_dataset", s->train_dataset));
    GRPO_TRY(check_dataset_ref(c, i, node, "eval_dataset", s->eval_dataset));
    GRPO_TRY(check_dataset_ref(c, i, node, "heldout_dataset", s->heldout_dataset));
    GRPO_TRY(check_dataset_ref(c, i, node, "mix_dataset", s->mix_dataset));
    GRPO_TRY(check_model_ref(c, i, node, "model", s->model));
    GRPO_TRY(check_model_ref(c, i, node, "student", s->student));
    if (s->kind == STAGE_DISTILL && !s->student)
        return cfg_fail_at(node, GRPO_ERR_INVALID, "a distill stage needs student: (a preset, a model directory or an "
                           "earlier stage); the teacher is its model:");
    if (s->kind != STAGE_DISTILL && s->student)
        return cfg_fail_at(cfg_get(node, "student"), GRPO_ERR_INVALID, "student: applies to distill stages only");
    if (s->kind == STAGE_GRPO) {
        int completions = s->per_device_train_batch_size * s->gradient_accumulation_steps;
        if (s->num_generations < 2)
            return cfg_fail_at(stage_key_node(node, "num_generations"), GRPO_ERR_INVALID,
                               "num_generations must be at least 2 for group-relative advantages, found %d",
                               s->num_generations);
        if (completions % s->num_generations != 0)
            return cfg_fail_at(node, GRPO_ERR_INVALID, "per_device_train_batch_size * gradient_accumulation_steps "
                               "(%d) must be divisible by num_generations (%d)", completions, s->num_generations);
    }
    if (s->kind == STAGE_GRPO || s->kind == STAGE_REJECTION || s->kind == STAGE_DISTILL) {
        if (s->n_rewards == 0)
            return cfg_fail_at(node, GRPO_ERR_INVALID, "a %s stage needs a rewards list (its verifiers)",
                               stage_kind_names[s->kind]);
        if (s->max_prompt_length + s->max_completion_length > s->max_length)
            return cfg_fail_at(node, GRPO_ERR_INVALID, "max_prompt_length + max_completion_length (%d) must not "
                               "exceed max_length (%d)", s->max_prompt_length + s->max_completion_length,
                               s->max_length);
    }
    if (s->n_rewards > 0) GRPO_TRY(check_rewards(s));
    if (s->prompt_template && template_validate(s->prompt_template, "prompt_template") != GRPO_OK)
        return cfg_fail_at(stage_key_node(node, "prompt_template"), GRPO_ERR_INVALID, "%s", grpo_error_message());
    return GRPO_OK;
}

/* Cross-field checks a schema cannot express; errors point at the offending node. */
static grpo_status check(const run_config *c) {
    const cfg_node *root = cfg_root(c->doc);
    char key[64];
    if (!c->model.preset == !c->model.path)
        return cfg_fail_at(cfg_get(root, "model"), GRPO_ERR_INVALID, "expected exactly one of preset and path");
    if (c->model.preset && !preset_find(c->model.preset, NULL))
        return cfg_fail_at(cfg_get(root, "model.preset"), GRPO_ERR_INVALID, "no preset named '%s' (see grpo init --help)",
                           c->model.preset);
    if (c->n_stages == 0) return cfg_fail_at(cfg_get(root, "stages"), GRPO_ERR_INVALID, "expected at least one stage");
    double pool_fraction;   /* run.device_memory's syntax now; its size once the backend exists */
    size_t pool_bytes;
    int pool_auto;
    if (backend_pool_parse_size(c->run.device_memory, &pool_fraction, &pool_bytes, &pool_auto) != GRPO_OK)
        return cfg_fail_at(cfg_get(root, "run.device_memory"), GRPO_ERR_INVALID, "%s", grpo_error_message());
    for (int i = 0; i < c->n_datasets; i++) {
        const dataset_section *d = &c->datasets[i];
        snprintf(key, sizeof key, "datasets[%d]", i);
        for (int j = 0; j < i; j++)
            if (!strcmp(c->datasets[j].name, d->name))
                return cfg_fail_at(cfg_get(root, key), GRPO_ERR_INVALID, "dataset name '%s' is used twice", d->name);
        if (d->generate == DATA_FILE && !d->path == !d->from_stage)
            return cfg_fail_at(cfg_get(root, key), GRPO_ERR_INVALID,
                               "expected exactly one of path and from_stage (or generate: arith|countdown)");
        if (d->generate != DATA_FILE && (d->path || d->from_stage))
            return cfg_fail_at(cfg_get(root, key), GRPO_ERR_INVALID, "a generated dataset has no path or from_stage");
        if (d->from_stage) {
            int j = run_config_find_stage(c, d->from_stage);
            if (j < 0 || (c->stages[j].kind != STAGE_REJECTION && c->stages[j].kind != STAGE_DISTILL))
                return cfg_fail_at(cfg_get(cfg_get(root, key), "from_stage"), GRPO_ERR_INVALID,
                                   "expected the name of a rejection or distill stage, found '%s'", d->from_stage);
        }
        if (d->generate == DATA_ARITH && (!d->ops[0] || strspn(d->ops, "+-*") != strlen(d->ops)))
            return cfg_fail_at(cfg_get(root, key), GRPO_ERR_INVALID, "ops: expected a subset of \"+-*\", found '%s'",
                               d->ops);
        if (d->generate == DATA_COUNTDOWN && d->max_target < d->max_number)
            return cfg_fail_at(cfg_get(root, key), GRPO_ERR_INVALID, "max_target must be at least max_number");
    }
    for (int i = 0; i < c->n_stages; i++) {
        snprintf(key, sizeof key, "stages[%d]", i);
        GRPO_TRY(check_stage(c, i, cfg_get(root, key)));
    }
    return GRPO_OK;
}

grpo_status run_config_load(const char *path, const char *const *overrides, int n_overrides, run_config **out) {
    *out = NULL;
    stage_defaults = stage_defaults_value();
    run_config *c = calloc(1, sizeof *c);
    if (!c) return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    c->run.output_dir = "runs";
    c->run.seed = 1;
    c->run.resume = 1;
    c->model.init_seed = -1;
    grpo_status s = cfg_load_file(path, &c->doc);
    for (int i = 0; i < n_overrides && !s; i++) s = cfg_apply_override(c->doc, overrides[i]);
    /* `defaults:` first: the stages list starts each stage from it */
    for (size_t i = 0; i < sizeof defaults_schema / sizeof defaults_schema[0]; i++) {
        defaults_schema[i] = stage_schema[i];
        defaults_schema[i].required = 0;
    }
    if (!s) s = cfg_bind(cfg_get(cfg_root(c->doc), "defaults"), defaults_schema, &stage_defaults);
    if (!s) s = cfg_bind(cfg_root(c->doc), root_schema, c);
    if (!s) s = check(c);
    if (s) {
        run_config_free(c);
        return s;
    }
    *out = c;
    return GRPO_OK;
}

sft_config run_config_sft(const run_config *c, const stage_section *st) {
    sft_config s = sft_config_default();
    s.max_steps = st->max_steps;
    s.per_device_train_batch_size = st->per_device_train_batch_size;
    s.gradient_accumulation_steps = st->gradient_accumulation_steps;
    s.max_length = st->max_length;
    s.eval_steps = st->eval_steps;
    s.save_steps = st->save_steps;
    s.logging_steps = st->logging_steps;
    s.save_total_limit = st->save_total_limit;
    s.eval_batch_size = st->per_device_eval_batch_size;
    s.optim.learning_rate = st->learning_rate;
    s.optim.beta1 = st->adam_beta1;
    s.optim.beta2 = st->adam_beta2;
    s.optim.eps = st->adam_epsilon;
    s.optim.weight_decay = st->weight_decay;
    s.optim.max_grad_norm = st->max_grad_norm;
    s.optim.schedule = (lr_schedule_kind)st->lr_scheduler_type;
    s.optim.warmup_steps = st->warmup_steps;
    s.optim.min_lr_ratio = st->min_lr_ratio;
    s.seed = (uint64_t)(st->seed >= 0 ? st->seed : c->run.seed);
    return s;
}
