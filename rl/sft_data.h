/* SFT datasets: JSONL {"prompt", "response"} lines (other fields are ignored), rendered
 * through a prompt template and tokenized once, kept as one token block. */
#ifndef GRPO_SFT_DATA_H
#define GRPO_SFT_DATA_H

#include <stdint.h>

#include "core/status.h"
#include "model/tokenizer.h"

typedef struct {
    int count;
    int32_t *tokens;        /* every example's ids, concatenated */
    int64_t *offsets;       /* [count + 1]: example i is tokens[offsets[i] .. offsets[i+1]) */
    int *prompt_lengths;    /* [count]: tokens before the response starts (BOS + prompt) */
    int truncated;          /* examples cut to max_length */
    int max_example_length;
} sft_dataset;

/* Each example is [BOS if the tokenizer has one] + template(prompt) + response + EOS,
 * cut to max_length tokens (counted in ->truncated). A bad line fails with
 * file:line and the reason; an example whose prompt alone fills max_length is an error. */
grpo_status sft_dataset_load(const char *path, const tokenizer *tok, const char *prompt_template, int max_length,
                             sft_dataset **out);
void sft_dataset_free(sft_dataset *ds);

static inline int sft_example_length(const sft_dataset *ds, int i) {
    return (int)(ds->offsets[i + 1] - ds->offsets[i]);
}

/* Fills a right-padded batch of the examples indices[0..B) into host arrays
 * ids[B*T], targets[B*T] (T = the longest example, at most T_max) and returns T.
 * targets[t] = ids[t+1] where that token belongs to the response (the loss mask),
 * -1 elsewhere. *n_targets = the number of targets >= 0. */
int sft_batch_fill(const sft_dataset *ds, const int *indices, int B, int T_max, int32_t pad_id, int32_t *ids,
                   int32_t *targets, int *n_targets);

#endif
