/* `grpo report RUN_DIR [RUN_DIR...] [--out report.html]`: the HTML report of one run, or
 * of several overlaid on the same axes (tools/report.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/args.h"
#include "tools/commands.h"
#include "tools/report.h"

static void usage(FILE *f) {
    fprintf(f, "usage: grpo report RUN_DIR [RUN_DIR ...] [--out report.html]\n\n"
               "Writes one self-contained HTML page (inline SVG, no network) with, per stage, the\n"
               "run's metrics from RUN_DIR/run.db: reward (total and per component), accuracy,\n"
               "held-out pass@k, KL, entropy, clip fraction, response length, truncated share,\n"
               "reflection-word rate, zero-variance groups, tokens/s, seconds per phase, the MoE\n"
               "expert-load heatmap, the per-stage accuracy table and the run's config. Several\n"
               "runs are overlaid for comparison (solid, dashed, dotted lines). A run still going\n"
               "or killed shows what its store holds. Default output: RUN_DIR/report.html.\n");
}

int cmd_report(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) { usage(stdout); return 0; }
    const char *out_path = NULL, *value;
    char **dirs = calloc((size_t)argc, sizeof *dirs);
    int n = 0;
    if (!dirs) return 1;
    for (int i = 1; i < argc; i++) {
        int m;
        if ((m = arg_match(argc, argv, &i, "--out", &value))) {
            if (m < 0) { free(dirs); return 2; }
            out_path = value;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "grpo report: unexpected argument '%s'\n", argv[i]);
            free(dirs);
            return 2;
        } else {
            dirs[n++] = argv[i];
        }
    }
    if (!n) { usage(stderr); free(dirs); return 2; }
    report_run **runs = calloc((size_t)n, sizeof *runs);
    grpo_status s = runs ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && !s; i++) s = report_run_load(dirs[i], &runs[i]);
    char fallback[4096];
    if (!out_path) {
        snprintf(fallback, sizeof fallback, "%s/report.html", dirs[0]);
        out_path = fallback;
    }
    if (!s) {
        /* written to a temp name and renamed, so a reader never sees half a page */
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
        FILE *f = fopen(tmp, "wb");
        if (!f) s = grpo_fail(GRPO_ERR_IO, "cannot create %s", tmp);
        if (!s) s = report_write_html(f, n, runs);
        if (f && fclose(f) != 0 && !s) s = grpo_fail(GRPO_ERR_IO, "cannot write %s", tmp);
        if (!s && rename(tmp, out_path) != 0) s = grpo_fail(GRPO_ERR_IO, "cannot rename %s to %s", tmp, out_path);
        if (s && f) remove(tmp);
    }
    if (s) fprintf(stderr, "grpo report: %s\n", grpo_error_message());
    else printf("report: %s\n", out_path);
    for (int i = 0; runs && i < n; i++) report_run_free(runs[i]);
    free(runs);
    free(dirs);
    return grpo_exit_code(s);
}
