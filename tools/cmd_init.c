/* `grpo init --preset NAME --out DIR`: a randomly initialised model in the HF layout. */
#include <stdio.h>
#include <string.h>

#include "core/fs.h"
#include "model/lm.h"
#include "model/presets.h"
#include "model/tokenizer.h"
#include "tools/args.h"
#include "tools/commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: grpo init --preset NAME --out DIR [--seed S]\n\n"
               "Writes DIR/config.json, DIR/model.safetensors (float32, random weights drawn as\n"
               "transformers initialises them) and the built-in tokenizer (DIR/tokenizer.json).\n\npresets:");
    for (int i = 0; preset_name(i); i++) fprintf(f, " %s", preset_name(i));
    fprintf(f, "\n");
}

int cmd_init(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) { usage(stdout); return 0; }
    const char *preset = NULL, *out = NULL, *value;
    int64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        int m;
        if ((m = arg_match(argc, argv, &i, "--preset", &value))) { if (m < 0) return 2; preset = value; }
        else if ((m = arg_match(argc, argv, &i, "--out", &value))) { if (m < 0) return 2; out = value; }
        else if ((m = arg_match(argc, argv, &i, "--seed", &value))) {
            if (m < 0 || !arg_int("init", "--seed", value, 0, INT64_MAX, &seed)) return 2;
        } else {
            fprintf(stderr, "grpo init: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!preset || !out) { usage(stderr); return 2; }
    size_t len;
    const char *json = preset_find(preset, &len);
    if (!json) {
        fprintf(stderr, "grpo init: no preset named '%s'\n", preset);
        usage(stderr);
        return 2;
    }
    backend *be = backend_cpu_create();
    lm *model = NULL;
    char origin[128];
    snprintf(origin, sizeof origin, "preset %s", preset);
    grpo_status s = fs_mkdirs(out);
    if (!s) s = lm_create_random(be, json, len, origin, (uint64_t)seed, &model);
    if (!s) s = lm_save(model, out);
    if (!s) s = tokenizer_builtin_save(out);
    if (!s)
        printf("wrote %s: %s, %.3fM parameters, vocab %d\n", out, model->model_type,
               (double)model->num_parameters / 1e6, model->vocab_size);
    else
        fprintf(stderr, "grpo init: %s\n", grpo_error_message());
    lm_free(model);
    backend_free(be);
    return grpo_exit_code(s);
}
