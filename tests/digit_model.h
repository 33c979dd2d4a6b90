/* A test helper: turns a randomly initialised model of any family into one that says
 * digits. Every attention and MLP output projection is zeroed (so the last hidden state
 * is the embedding of the last token), and a set of "favoured" tokens (the ten digits, a
 * space, EOS and the given context tokens) get embeddings and output rows along one
 * shared direction, so after any favoured token the next token is drawn almost uniformly
 * from the favoured set. A one-digit problem is then answered correctly by chance often
 * enough for rejection sampling to keep some samples, with repeats and variants
 * ("7", "7 ", " 7") to exercise dedup and the cap. */
#ifndef GRPO_TEST_DIGIT_MODEL_H
#define GRPO_TEST_DIGIT_MODEL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/lm.h"
#include "model/tokenizer.h"

static int digit_model_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Returns 0 on success, -1 when the model lacks an embedding or a text token is not one id. */
static int digit_model_make(lm *m, const tokenizer *tok, const int32_t *context_ids, int n_context, uint64_t seed) {
    param_set *ps = m->params;
    backend *be = m->be;
    int emb = param_find(ps, "model.embed_tokens.weight"), head = param_find(ps, "lm_head.weight");
    if (emb < 0) return -1;
    int D = (int)ps->views[emb].shape[1], V = m->vocab_size;
    for (int i = 0; i < ps->count; i++) {
        const char *name = ps->views[i].name;
        if (digit_model_ends_with(name, "o_proj.weight") || digit_model_ends_with(name, "down_proj.weight")) {
            float *zeros = calloc(ps->views[i].numel, sizeof(float));
            if (!zeros) return -1;
            be->to_device(be, param_ptr(ps, i), zeros, ps->views[i].numel * sizeof(float));
            free(zeros);
        }
    }
    int32_t favoured[64];
    int n = 0;
    const char *texts[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", " "};
    for (int i = 0; i < 11; i++) {
        int32_t *ids = NULL;
        int k = 0;
        if (tokenizer_encode(tok, texts[i], 1, &ids, &k) || k != 1) { free(ids); return -1; }
        favoured[n++] = ids[0];
        free(ids);
    }
    if (tokenizer_eos_id(tok) >= 0) favoured[n++] = tokenizer_eos_id(tok);
    for (int i = 0; i < n_context && n < 64; i++) {
        int seen = 0;   /* each favoured row gets u once, or it outweighs the others */
        for (int j = 0; j < n; j++) seen |= favoured[j] == context_ids[i];
        if (!seen) favoured[n++] = context_ids[i];
    }
    /* one random unit direction u; favoured rows become u + their small random values */
    float *u = malloc((size_t)D * sizeof(float)), *rows = malloc((size_t)V * D * sizeof(float));
    if (!u || !rows) { free(u); free(rows); return -1; }
    double norm = 0;
    rng_stream r = rng_stream_make(seed, 0x64);
    for (int d = 0; d < D; d++) {
        u[d] = rng_next_normal(&r);
        norm += (double)u[d] * u[d];
    }
    for (int d = 0; d < D; d++) u[d] = (float)(u[d] / sqrt(norm));
    int views[2] = {emb, head};
    for (int v = 0; v < 2; v++) {
        if (views[v] < 0) continue;
        be->to_host(be, rows, param_ptr(ps, views[v]), (size_t)V * D * sizeof(float));
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++) rows[(size_t)favoured[i] * D + d] += u[d];
        be->to_device(be, param_ptr(ps, views[v]), rows, (size_t)V * D * sizeof(float));
    }
    free(u);
    free(rows);
    param_set_touch(ps);
    return 0;
}

#endif
