/* `grpo forward --model DIR --tokens 1,2,3 --out F.safetensors`: logits [T, V] float32. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "model/lm.h"
#include "tools/args.h"
#include "tools/commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: grpo forward --model DIR --tokens ID,ID,... --out F.safetensors\n\n"
               "Runs the model over one sequence and writes its logits as tensor \"logits\" [T, V]\n"
               "float32 (and the ids as \"tokens\" [T] int32).\n");
}

/* Parses "1,2,3" into ids (malloc'd); 0 on a bad list. */
static int parse_tokens(const char *text, int32_t **ids, int *n) {
    int cap = 16, count = 0;
    int32_t *out = malloc((size_t)cap * sizeof(int32_t));
    const char *p = text;
    while (out && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) { free(out); return 0; }
        if (count == cap) {
            int32_t *grown = realloc(out, (size_t)(cap *= 2) * sizeof(int32_t));
            if (!grown) { free(out); return 0; }
            out = grown;
        }
        out[count++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!out || count == 0) { free(out); return 0; }
    *ids = out;
    *n = count;
    return 1;
}

int cmd_forward(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) { usage(stdout); return 0; }
    const char *model_dir = NULL, *tokens = NULL, *out = NULL, *value;
    for (int i = 1; i < argc; i++) {
        int m;
        if ((m = arg_match(argc, argv, &i, "--model", &value))) { if (m < 0) return 2; model_dir = value; }
        else if ((m = arg_match(argc, argv, &i, "--tokens", &value))) { if (m < 0) return 2; tokens = value; }
        else if ((m = arg_match(argc, argv, &i, "--out", &value))) { if (m < 0) return 2; out = value; }
        else { fprintf(stderr, "grpo forward: unknown option '%s'\n", argv[i]); return 2; }
    }
    if (!model_dir || !tokens || !out) { usage(stderr); return 2; }
    int32_t *ids;
    int T;
    if (!parse_tokens(tokens, &ids, &T)) {
        fprintf(stderr, "grpo forward: --tokens: expected comma-separated non-negative integers, found '%s'\n", tokens);
        return 2;
    }
    backend *be = backend_cpu_create();
    lm *model = NULL;
    float *host = NULL;
    int32_t *dev_ids = NULL;
    grpo_status s = lm_load_dir(be, model_dir, &model);
    for (int t = 0; !s && t < T; t++)
        if (ids[t] >= model->vocab_size)
            s = grpo_fail(GRPO_ERR_INVALID, "--tokens: id %d at position %d is outside the vocabulary (%d)", ids[t], t,
                          model->vocab_size);
    if (!s && T > model->max_position_embeddings)
        s = grpo_fail(GRPO_ERR_INVALID, "--tokens: %d tokens exceed max_position_embeddings %d", T,
                      model->max_position_embeddings);
    if (!s) s = lm_reserve(model, 1, T);
    float *logits = NULL;
    if (!s) {
        dev_ids = be->alloc(be, (size_t)T * sizeof(int32_t));
        be->to_device(be, dev_ids, ids, (size_t)T * sizeof(int32_t));
        s = lm_forward(model, dev_ids, NULL, 1, T, &logits);
    }
    if (!s) {
        size_t n = (size_t)T * (size_t)model->vocab_size;
        host = malloc(n * sizeof(float));
        be->to_host(be, host, logits, n * sizeof(float));
        st_writer *w = st_writer_create();
        int64_t shape[2] = {T, model->vocab_size}, tshape[1] = {T};
        s = st_writer_add(w, "logits", ST_F32, 2, shape, host);
        if (!s) s = st_writer_add(w, "tokens", ST_I32, 1, tshape, ids);
        if (!s) s = st_writer_save(w, out);
        st_writer_free(w);
    }
    if (s) fprintf(stderr, "grpo forward: %s\n", grpo_error_message());
    else printf("wrote %s: logits [%d, %d]\n", out, T, model->vocab_size);
    if (dev_ids) be->free(be, dev_ids);
    free(host);
    free(ids);
    lm_free(model);
    backend_free(be);
    return grpo_exit_code(s);
}
