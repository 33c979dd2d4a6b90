/* Prompt templates: a string with {field} placeholders filled from a dataset line's
 * JSON fields ({prompt}, {numbers}, {target}, ...). "{{" and "}}" write literal braces. */
#ifndef GRPO_TEMPLATE_H
#define GRPO_TEMPLATE_H

#include <jansson.h>

#include "core/status.h"

/* The R1-Zero template (DeepSeek-R1 report, table 1), with {prompt}. */
extern const char *const template_r1_zero;

/* Renders tmpl with the fields of `line` (strings as they are, numbers in decimal,
 * arrays of numbers as "1, 2, 3"). *out is malloc'd (the caller frees). A placeholder
 * naming a field the line lacks is an error naming it; origin ("file.jsonl:12") prefixes
 * messages. */
grpo_status template_render(const char *tmpl, const json_t *line, const char *origin, char **out);
/* Checks the template's syntax (balanced braces) without a line. */
grpo_status template_validate(const char *tmpl, const char *origin);

#endif
