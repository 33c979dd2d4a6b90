/* Distillation helpers: a student learns from a teacher either through the teacher's
 * verified samples (rejection sampling with the teacher, rl/rejection.h, then SFT) or also
 * through its logits (logit KD mixed into SFT, rl/sft.h sft_kd + rl/kd_loss.h). Logit KD
 * compares distributions token by token, so the two tokenizers must be the same. */
#ifndef GRPO_DISTILL_H
#define GRPO_DISTILL_H

#include "core/status.h"
#include "model/lm.h"
#include "model/tokenizer.h"
#include "rl/kd_loss.h"
#include "rl/sft_data.h"

/* Fails (GRPO_ERR_INVALID) unless the two loaded tokenizers are the same: vocabulary size,
 * every id's token string and special flag, BOS/EOS/PAD ids, the encoding of every
 * token's own bytes (a merge one lacks splits the token it makes) and of a probe text
 * (pre-tokenizer). The message names both tokenizers
 * (teacher_name, student_name: e.g. their directories) and the first difference, e.g.
 * "tokenizers differ: teacher 'runs/t' has 32000 tokens, student 'runs/s' has 151665:
 * logit distillation needs one tokenizer (use kd_alpha: 0 for sample-only distillation)". */
grpo_status distill_check_tokenizers(const tokenizer *teacher, const char *teacher_name, const tokenizer *student,
                                     const char *student_name);

/* The same from files: each path is a tokenizer.json or a model directory holding one. It
 * compares the JSON sections that define the tokenization (model: type, vocab, merges,
 * unk_token, ignore_merges...; added_tokens; normalizer; pre_tokenizer; decoder) and then
 * loads both and runs distill_check_tokenizers. A missing or unreadable file is an error
 * naming it. */
grpo_status distill_check_tokenizer_files(const char *teacher_path, const char *student_path);

/* Mean KD loss per response token (rl/kd_loss.h, T^2-scaled) of student against teacher on
 * every example of ds, batches of batch_size padded to at most max_length tokens. Both
 * models run forward only (their gradients are untouched) and must have room reserved for
 * [batch_size, max_length] (this call reserves it). NAN when ds has no response token. */
grpo_status distill_kd_evaluate(lm *student, lm *teacher, const sft_dataset *ds, const kd_options *kd, int batch_size,
                                int max_length, int32_t pad_id, double *kd_loss_mean);

#endif
