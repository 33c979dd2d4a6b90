/* Supervised fine-tuning: next-token cross-entropy on response tokens only, padded
 * batches, gradient accumulation, periodic evaluation (held-out loss and greedy exact
 * match) and crash-safe checkpoints with exact resume. */
#ifndef GRPO_SFT_H
#define GRPO_SFT_H

#include <stdint.h>

#include "model/lm.h"
#include "rl/kd_loss.h"
#include "rl/optim.h"
#include "rl/sft_data.h"
#include "rl/train_run.h"

/* Key names follow TRL's SFTConfig / transformers' TrainingArguments. */
typedef struct {
    int max_steps;                      /* optimizer steps */
    int per_device_train_batch_size;    /* sequences per micro-batch */
    int gradient_accumulation_steps;
    int max_length;                     /* tokens per example (longer ones are cut) */
    int eval_steps;                     /* evaluate every N steps (0: only at the end) */
    int save_steps;                     /* checkpoint every N steps (0: only at the end) */
    int logging_steps;
    int save_total_limit;               /* keep the newest N checkpoints (0: all) */
    int eval_batch_size;
    optim_config optim;
    uint64_t seed;                      /* data order */
    /* Logit distillation mixed into SFT (rl/kd_loss.h): with a teacher, the loss per
     * optimizer step is (1 - kd_alpha) * CE + kd_alpha * KD, both averaged over the step's
     * response tokens, the teacher's logits computed on the same batch. teacher NULL (the
     * default): plain SFT, unchanged. The teacher is borrowed, never updated, and must use
     * the student's tokenizer (check with distill_check_tokenizers, rl/distill.h). */
    lm *teacher;
    double kd_alpha;                    /* in [0, 1]; default 0.5 */
    kd_options kd;                      /* temperature (default 1), top_k (default 0: all) */
} sft_config;

sft_config sft_config_default(void);
/* Checks ranges; messages name the key. */
grpo_status sft_config_validate(const sft_config *cfg);

/* Where a run lives and how it reports (rl/train_run.h); SFT uses it as it is. */
typedef train_run sft_run;

typedef struct {
    int steps;                    /* optimizer steps done (including resumed ones) */
    int resumed_from;             /* step of the checkpoint resumed from, -1 if none */
    double train_loss;            /* mean over the last logging window (the mixed loss with KD) */
    double train_kd_loss;         /* the KD part of it (NAN without a teacher) */
    double eval_loss;             /* per response token, NAN without an eval set */
    double eval_exact_match;      /* share of eval examples greedy decoding reproduces exactly */
    double seconds;
    double tokens_per_second;     /* trained tokens (padded batch, all positions) per second */
    char checkpoint[1024];        /* the last checkpoint written */
} sft_result;

/* Trains `model` (whose parameter gradients must be allocated) for cfg->max_steps. */
grpo_status sft_train(const sft_config *cfg, lm *model, const sft_dataset *train, const sft_dataset *eval,
                      const sft_run *run, sft_result *result);

/* Held-out evaluation: mean loss per response token, and the share of examples for which
 * every response token is the argmax given the reference prefix (i.e. greedy decoding
 * reproduces the response exactly). */
grpo_status sft_evaluate(lm *model, const sft_dataset *ds, int batch_size, int max_length, int32_t pad_id,
                         double *loss, double *exact_match);

#endif
