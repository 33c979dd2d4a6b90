/* Loading RL problem sets (rl/problems.h). */
#include "rl/problems.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/jsonl.h"
#include "data/template.h"

void problem_set_free(problem_set *ps) {
    if (!ps) return;
    for (int i = 0; i < ps->count; i++) {
        json_decref(ps->lines[i]);
        free(ps->prompts[i]);
        free(ps->prompt_ids[i]);
    }
    free(ps->lines);
    free(ps->prompts);
    free(ps->prompt_ids);
    free(ps->prompt_lengths);
    free(ps);
}

static int grow(problem_set *ps, int *cap) {
    if (ps->count < *cap) return 1;
    int n = *cap ? *cap * 2 : 256;
    json_t **l = realloc(ps->lines, (size_t)n * sizeof *l);
    if (l) ps->lines = l;
    char **p = realloc(ps->prompts, (size_t)n * sizeof *p);
    if (p) ps->prompts = p;
    int32_t **ids = realloc(ps->prompt_ids, (size_t)n * sizeof *ids);
    if (ids) ps->prompt_ids = ids;
    int *len = realloc(ps->prompt_lengths, (size_t)n * sizeof *len);
    if (len) ps->prompt_lengths = len;
    if (!l || !p || !ids || !len) return 0;
    *cap = n;
    return 1;
}

grpo_status problem_set_load(const char *path, const tokenizer *tok, const char *prompt_template,
                             int max_prompt_length, problem_set **out) {
    *out = NULL;
    GRPO_TRY(template_validate(prompt_template, "prompt_template"));
    jsonl_reader *r;
    GRPO_TRY(jsonl_open(path, &r));
    problem_set *ps = calloc(1, sizeof *ps);
    int cap = 0;
    grpo_status s = ps ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    int32_t bos = tokenizer_bos_id(tok);
    while (!s) {
        json_t *line;
        s = jsonl_next(r, &line);
        if (s || !line) break;
        char origin[512];
        snprintf(origin, sizeof origin, "%s:%ld", path, jsonl_line(r));
        if (!grow(ps, &cap)) { s = grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", origin); break; }
        char *prompt;
        s = template_render(prompt_template, line, origin, &prompt);
        if (s) break;
        int32_t *ids = NULL;
        int n = 0;
        s = tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n);
        if (s) { free(prompt); grpo_error_prefix("%s", origin); break; }
        int total = n + (bos >= 0);
        if (total > max_prompt_length) {
            free(prompt);
            free(ids);
            s = grpo_fail(GRPO_ERR_INVALID, "%s: the prompt takes %d tokens, more than max_prompt_length %d", origin,
                          total, max_prompt_length);
            break;
        }
        int32_t *with_bos = malloc((size_t)(total > 0 ? total : 1) * sizeof(int32_t));
        if (!with_bos) { free(prompt); free(ids); s = grpo_fail(GRPO_ERR_NOMEM, "out of memory"); break; }
        if (bos >= 0) with_bos[0] = bos;
        memcpy(with_bos + (bos >= 0), ids, (size_t)n * sizeof(int32_t));
        free(ids);
        ps->lines[ps->count] = json_incref(line);
        ps->prompts[ps->count] = prompt;
        ps->prompt_ids[ps->count] = with_bos;
        ps->prompt_lengths[ps->count] = total;
        if (total > ps->max_prompt_length) ps->max_prompt_length = total;
        ps->count++;
    }
    jsonl_close(r);
    if (!s && ps->count == 0) s = grpo_fail(GRPO_ERR_INVALID, "%s: no problems", path);
    if (s) {
        problem_set_free(ps);
        return s;
    }
    *out = ps;
    return GRPO_OK;
}
