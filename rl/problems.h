/* RL problem sets: JSONL lines (math {"id","prompt","answer"}, countdown {"id","numbers",
 * "target"}, code, ...) kept whole for the verifiers, with each prompt rendered through a
 * template and tokenized once. */
#ifndef GRPO_PROBLEMS_H
#define GRPO_PROBLEMS_H

#include <jansson.h>
#include <stdint.h>

#include "core/status.h"
#include "model/tokenizer.h"

typedef struct {
    int count;
    json_t **lines;          /* [count] the problem lines (owned) */
    char **prompts;          /* [count] rendered prompt text (owned) */
    int32_t **prompt_ids;    /* [count] tokenized prompts, BOS first when the tokenizer has one */
    int *prompt_lengths;     /* [count] */
    int max_prompt_length;
} problem_set;

/* Loads every line of path; a line the template cannot render (missing field) or whose
 * prompt is longer than max_prompt_length tokens is an error naming file:line. */
grpo_status problem_set_load(const char *path, const tokenizer *tok, const char *prompt_template,
                             int max_prompt_length, problem_set **out);
void problem_set_free(problem_set *ps);

#endif
