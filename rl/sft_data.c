/* SFT dataset loading and batching (rl/sft_data.h). */
#include "rl/sft_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/jsonl.h"
#include "data/template.h"

typedef struct {
    int32_t *data;
    int64_t len, cap;
} token_buffer;

static int tokens_append(token_buffer *b, const int32_t *ids, int64_t n) {
    if (b->len + n > b->cap) {
        int64_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        int32_t *p = realloc(b->data, (size_t)cap * sizeof(int32_t));
        if (!p) return 0;
        b->data = p;
        b->cap = cap;
    }
    if (n > 0) memcpy(b->data + b->len, ids, (size_t)n * sizeof(int32_t));   /* an empty response: ids may be NULL */
    b->len += n;
    return 1;
}

void sft_dataset_free(sft_dataset *ds) {
    if (!ds) return;
    free(ds->tokens);
    free(ds->offsets);
    free(ds->prompt_lengths);
    free(ds);
}

/* Tokenizes one line into buf; returns the prompt length through *prompt_len. */
static grpo_status encode_example(const tokenizer *tok, const char *tmpl, json_t *line, const char *origin,
                                  const char *response, int max_length, token_buffer *buf, int *prompt_len,
                                  int *was_truncated) {
    char *prompt;
    GRPO_TRY(template_render(tmpl, line, origin, &prompt));
    int32_t *pids = NULL, *rids = NULL;
    int np = 0, nr = 0;
    grpo_status s = tokenizer_encode(tok, prompt, strlen(prompt), &pids, &np);
    free(prompt);
    if (!s) s = tokenizer_encode(tok, response, strlen(response), &rids, &nr);
    if (s) {
        grpo_error_prefix("%s", origin);
        free(pids);
        return s;
    }
    int32_t bos = tokenizer_bos_id(tok), eos = tokenizer_eos_id(tok);
    int nbos = bos >= 0, neos = eos >= 0;
    int plen = nbos + np;
    if (plen >= max_length) {
        free(pids);
        free(rids);
        return grpo_fail(GRPO_ERR_INVALID, "%s: the prompt takes %d tokens, leaving none of max_length %d for the "
                         "response", origin, plen, max_length);
    }
    int total = plen + nr + neos;
    *was_truncated = total > max_length;
    int ok = (!nbos || tokens_append(buf, &bos, 1)) && tokens_append(buf, pids, np);
    int keep_r = nr < max_length - plen ? nr : max_length - plen;
    ok = ok && tokens_append(buf, rids, keep_r);
    if (ok && neos && plen + keep_r < max_length) ok = tokens_append(buf, &eos, 1);
    free(pids);
    free(rids);
    *prompt_len = plen;
    return ok ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", origin);
}

grpo_status sft_dataset_load(const char *path, const tokenizer *tok, const char *prompt_template, int max_length,
                             sft_dataset **out) {
    *out = NULL;
    GRPO_TRY(template_validate(prompt_template, "prompt_template"));
    jsonl_reader *r;
    GRPO_TRY(jsonl_open(path, &r));
    sft_dataset *ds = calloc(1, sizeof *ds);
    token_buffer buf = {0};
    int cap = 0;
    grpo_status s = ds ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    json_t *line = NULL;
    while (!s) {
        s = jsonl_next(r, &line);
        if (s || !line) break;
        const char *response;
        char origin[512];
        snprintf(origin, sizeof origin, "%s:%ld", path, jsonl_line(r));
        s = jsonl_get_string(r, line, "response", &response);
        const char *prompt;
        if (!s) s = jsonl_get_string(r, line, "prompt", &prompt);
        if (!s && ds->count == cap) {
            cap = cap ? cap * 2 : 1024;
            int64_t *o = realloc(ds->offsets, (size_t)(cap + 1) * sizeof(int64_t));
            if (o) ds->offsets = o;
            int *pl = realloc(ds->prompt_lengths, (size_t)cap * sizeof(int));
            if (pl) ds->prompt_lengths = pl;
            if (!o || !pl) s = grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", origin);
        }
        int prompt_len = 0, truncated = 0;
        if (!s) {
            ds->offsets[ds->count] = buf.len;
            s = encode_example(tok, prompt_template, line, origin, response, max_length, &buf, &prompt_len,
                               &truncated);
        }
        if (!s) {
            ds->prompt_lengths[ds->count] = prompt_len;
            ds->truncated += truncated;
            ds->count++;
            ds->offsets[ds->count] = buf.len;
        }
        line = NULL;   /* owned by the reader */
    }
    jsonl_close(r);
    if (!s && ds->count == 0) s = grpo_fail(GRPO_ERR_INVALID, "%s: no examples", path);
    if (s) {
        free(buf.data);
        sft_dataset_free(ds);
        return s;
    }
    ds->tokens = buf.data;
    for (int i = 0; i < ds->count; i++)
        if (sft_example_length(ds, i) > ds->max_example_length) ds->max_example_length = sft_example_length(ds, i);
    *out = ds;
    return GRPO_OK;
}

int sft_batch_fill(const sft_dataset *ds, const int *indices, int B, int T_max, int32_t pad_id, int32_t *ids,
                   int32_t *targets, int *n_targets) {
    int T = 1;
    for (int b = 0; b < B; b++) {
        int len = sft_example_length(ds, indices[b]);
        if (len > T) T = len;
    }
    if (T > T_max) T = T_max;
    int count = 0;
    for (int b = 0; b < B; b++) {
        int i = indices[b], len = sft_example_length(ds, i), plen = ds->prompt_lengths[i];
        if (len > T) len = T;
        const int32_t *src = ds->tokens + ds->offsets[i];
        for (int t = 0; t < T; t++) {
            ids[b * T + t] = t < len ? src[t] : pad_id;
            /* position t predicts token t+1; only response tokens are learned */
            int target_ok = t + 1 < len && t + 1 >= plen;
            targets[b * T + t] = target_ok ? src[t + 1] : -1;
            count += target_ok;
        }
    }
    *n_targets = count;
    return T;
}
