/* `grpo run CONFIG.yaml [--set k=v ...] [--quiet] [--log-every N]`: run the stages of a config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "rl/run.h"
#include "rl/run_ranks.h"
#include "tools/args.h"
#include "tools/commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: grpo run CONFIG.yaml [--set key.path=value ...] [--quiet] [--check] [--log-every N]\n\n"
               "Runs the stages of a run configuration (see configs/ and configs/README.md) in\n"
               "OUTPUT_DIR/NAME: run.db (metrics), data/, tokenizer/, ckpt/step-N/, summary.json.\n"
               "An existing run resumes from its newest checkpoint (run.resume: true, the default).\n"
               "--set overrides any key, e.g. --set stages[0].max_steps=50 --set run.name=try2.\n"
               "While training, a live line shows step, phase, reward, accuracy, KL, tokens/s and\n"
               "ETA: redrawn in place on a terminal, one line per logged step otherwise.\n"
               "  --quiet        print only errors and the final summary\n"
               "  --check        load and validate the config (and the paths it names), run nothing\n"
               "  --log-every N  log metrics and the live line every N steps (overrides every\n"
               "                 stage's logging_steps)\n");
}

int cmd_run(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) { usage(stdout); return 0; }
    const char *config = NULL, *value;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    int n_overrides = 0, quiet = 0, check_only = 0;
    int64_t log_every = 0;
    for (int i = 1; i < argc; i++) {
        int m;
        if ((m = arg_match(argc, argv, &i, "--set", &value))) {
            if (m < 0) { free(overrides); return 2; }
            overrides[n_overrides++] = value;
        } else if ((m = arg_match(argc, argv, &i, "--log-every", &value))) {
            if (m < 0 || !arg_int("run", "--log-every", value, 1, 1000000000, &log_every)) {
                free(overrides);
                return 2;
            }
        } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "--check")) {
            check_only = 1;
        } else if (argv[i][0] == '-' || config) {
            fprintf(stderr, "grpo run: unexpected argument '%s'\n", argv[i]);
            free(overrides);
            return 2;
        } else {
            config = argv[i];
        }
    }
    if (!config) { usage(stderr); free(overrides); return 2; }
    run_ranks_setup();   /* under mpirun/srun: rank 0 prints, the others only warnings and errors */
    run_config *c;
    grpo_status s = run_config_load(config, overrides, n_overrides, &c);
    free(overrides);
    if (s) {
        fprintf(stderr, "grpo run: %s\n", grpo_error_message());
        return grpo_exit_code(s);
    }
    if (check_only) {   /* load, cross-check and look at the paths it names; run nothing */
        s = run_check_paths(c);
        if (s) fprintf(stderr, "grpo run: %s\n", grpo_error_message());
        else if (run_ranks_is_root()) printf("%s: %d stages, configuration OK\n", config, c->n_stages);
        run_config_free(c);
        return grpo_exit_code(s);
    }
    for (int i = 0; i < c->n_stages && log_every > 0; i++) c->stages[i].logging_steps = (int)log_every;
    if (quiet) {
        log_set_level(LOG_ERROR);
        progress_set_quiet(1);
    }
    run_summary summary;
    s = run_execute(c, &summary);
    if (s) fprintf(stderr, "grpo run: %s\n", grpo_error_message());
    else if (run_ranks_is_root()) run_summary_print(&summary, stdout);
    run_config_free(c);
    return grpo_exit_code(s);
}
