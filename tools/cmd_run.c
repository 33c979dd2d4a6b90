/* `grpo run CONFIG.yaml [--set k=v ...]`: run the stages of a config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl/run.h"
#include "tools/args.h"
#include "tools/commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: grpo run CONFIG.yaml [--set key.path=value ...]\n\n"
               "Runs the stages of a run configuration (see configs/ and configs/README.md) in\n"
               "OUTPUT_DIR/NAME: run.db (metrics), data/, tokenizer/, ckpt/step-N/, summary.json.\n"
               "An existing run resumes from its newest checkpoint (run.resume: true, the default).\n"
               "--set overrides any key, e.g. --set stages[0].max_steps=50 --set run.name=try2.\n");
}

int cmd_run(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) { usage(stdout); return 0; }
    const char *config = NULL, *value;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    int n_overrides = 0;
    for (int i = 1; i < argc; i++) {
        int m;
        if ((m = arg_match(argc, argv, &i, "--set", &value))) {
            if (m < 0) { free(overrides); return 2; }
            overrides[n_overrides++] = value;
        } else if (argv[i][0] == '-' || config) {
            fprintf(stderr, "grpo run: unexpected argument '%s'\n", argv[i]);
            free(overrides);
            return 2;
        } else {
            config = argv[i];
        }
    }
    if (!config) { usage(stderr); free(overrides); return 2; }
    run_config *c;
    grpo_status s = run_config_load(config, overrides, n_overrides, &c);
    free(overrides);
    if (s) {
        fprintf(stderr, "grpo run: %s\n", grpo_error_message());
        return grpo_exit_code(s);
    }
    run_summary summary;
    s = run_execute(c, &summary);
    if (s) fprintf(stderr, "grpo run: %s\n", grpo_error_message());
    else run_summary_print(&summary, stdout);
    run_config_free(c);
    return grpo_exit_code(s);
}
