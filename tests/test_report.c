/* `grpo report` on stores built here through core/store.h: the SVG points read back
 * through the plot's scale equal the stored values, a NaN breaks the line, hostile
 * strings from the store are escaped (the page stays valid), a stage that never
 * finished and a store whose writer was killed mid-transaction still render, and two
 * runs overlay on the same axes. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/store.h"
#include "harness.h"
#include "report_check.h"

static const char *grpo;
static char dir[256];

/* A hostile metric/stage name and config: markup, quotes, a bad UTF-8 byte, ESC. */
#define HOSTILE "evil</svg><script>alert(1)</script>\"'&\xff\x1b[31m"

static int run_cmd(const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s > out.txt 2>&1", dir, grpo, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* reward/mean = 0.1 * step^2 - 0.3 (with a NaN at step 4), accuracy = step / 10, and a
 * heatmap of 2 layers x 3 experts; stage 1 begins but never ends. */
static double reward_at(int step) { return 0.1 * step * step - 0.3; }

static void build_store(const char *path, double scale, int steps) {
    store *s;
    CHECK_OK(store_open(path, &s));
    if (!s) return;
    int64_t run;
    CHECK_OK(store_begin_run(s, "r", "stages:\n  - name: " HOSTILE "\n", &run));
    CHECK_OK(store_begin_stage(s, run, 0, "rl", "grpo"));
    for (int step = 1; step <= steps; step++) {
        char names[10][48];
        const char *np[10];
        double v[10];
        int n = 0;
        snprintf(names[n], 48, "reward/mean");
        v[n++] = step == 4 ? NAN : scale * reward_at(step);
        snprintf(names[n], 48, "accuracy");
        v[n++] = step / 10.0;
        snprintf(names[n], 48, "%s", HOSTILE);
        v[n++] = -step;
        for (int l = 1; l <= 2; l++)
            for (int e = 0; e < 3; e++) {
                snprintf(names[n], 48, "moe/load/L%d/E%d", l, e);
                v[n++] = 0.5 + 0.25 * e + 0.01 * step;
            }
        for (int i = 0; i < n; i++) np[i] = names[i];
        CHECK_OK(store_put_metrics(s, run, 0, step, n, np, v));
    }
    CHECK_OK(store_end_stage(s, run, 0, steps, NULL));
    CHECK_OK(store_begin_stage(s, run, 1, HOSTILE, "sft"));
    const char *kl = "train/loss";
    double one = 2.5;
    CHECK_OK(store_put_metrics(s, run, 1, 1, 1, &kl, &one));
    store_close(s);
}

/* Points of the line `label` (run `run`) in the plot titled `title` against the stored
 * series; returns the number of points. */
static int check_line(const char *html, const char *title, const char *label, int run, int steps, double scale,
                      int expect_subpaths) {
    report_plot p;
    CHECK_MSG(report_find_plot(html, title, &p), "no plot titled %s", title);
    if (!p.begin) return 0;
    const char *path = report_find_line(&p, label, run);
    CHECK_MSG(path != NULL, "plot %s has no line %s (run %d)", title, label, run);
    if (!path) return 0;
    double xs[256], ys[256];
    int sub, n = report_line_points(&p, path, xs, ys, 256, &sub);
    /* two decimals of a pixel: the value error is at most 0.005 px of the range */
    double ytol = 0.0051 / p.h * (p.ymax - p.ymin), xtol = 0.0051 / p.w * (p.xmax - p.xmin);
    int k = 0;
    for (int step = 1; step <= steps && k < n; step++) {
        double want = !strcmp(label, "accuracy") ? step / 10.0 : step == 4 ? NAN : scale * reward_at(step);
        if (isnan(want)) continue;
        CHECK_NEAR(step, xs[k], xtol, 0);
        CHECK_NEAR(want, ys[k], ytol, 0);
        k++;
    }
    CHECK_INT(k, n);
    CHECK_INT(expect_subpaths, sub);
    return n;
}

/* A crude validity check: these elements open and close the same number of times. */
static void check_balanced(const char *html) {
    static const char *tags[][2] = {{"<svg", "</svg>"}, {"<figure", "</figure>"}, {"<section", "</section>"},
                                    {"<table", "</table>"}, {"<tr>", "</tr>"}, {"<pre>", "</pre>"},
                                    {"<script>", "</script>"}, {"<text", "</text>"}};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
        CHECK_MSG(report_count(html, tags[i][0]) == report_count(html, tags[i][1]), "%s: %d opened, %d closed",
                  tags[i][0], report_count(html, tags[i][0]), report_count(html, tags[i][1]));
    CHECK_INT(1, report_count(html, "<script>"));
}

int main(void) {
    grpo = getenv("GRPO_BINARY");
    if (!grpo) TEST_SKIP("GRPO_BINARY is not set (run through ctest)");
    snprintf(dir, sizeof dir, "/tmp/grpo_test_report_%d", (int)getpid());
    char path[512], cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    CHECK(system(cmd) == 0);

    /* one run: points, NaN gap, captions, heatmap, unfinished stage, escaping */
    const int steps = 6;
    snprintf(path, sizeof path, "%s/a/run.db", dir);
    build_store(path, 1.0, steps);
    CHECK_INT(0, run_cmd("report a --out a.html"));
    snprintf(path, sizeof path, "%s/a.html", dir);
    size_t len;
    char *html = report_read_file(path, &len);
    CHECK(html != NULL);
    if (html) {
        CHECK_INT(steps - 1, check_line(html, "Reward (total and per component)", "reward/mean", 0, steps, 1.0, 2));
        CHECK_INT(steps, check_line(html, "Accuracy of the training samples", "accuracy", 0, steps, 1.0, 1));
        /* the caption shows the last stored value */
        char want[64];
        snprintf(want, sizeof want, "data-step=\"%d\">%.6g</span>", steps, reward_at(steps));
        CHECK_MSG(strstr(html, want) != NULL, "caption lacks %s", want);
        /* heatmap: 2 layers x 3 experts over the steps */
        CHECK(strstr(html, "<svg class=\"heatmap\"") != NULL);
        CHECK(strstr(html, "data-rows=\"6\"") != NULL);
        char cols[32];
        snprintf(cols, sizeof cols, "data-columns=\"%d\"", steps);
        CHECK(strstr(html, cols) != NULL);
        /* the stage that never finished renders, marked */
        CHECK(strstr(html, "id=\"stage-1\"") != NULL);
        CHECK(strstr(html, "unfinished") != NULL);
        report_plot p;
        CHECK(report_find_plot(html, "Loss", &p));
        /* hostile text: escaped everywhere, no raw markup, bad bytes or control characters */
        CHECK(strstr(html, "<script>alert") == NULL);
        CHECK(strstr(html, "&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;") != NULL);
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)html[i];
            if (c == 0xff || c == 0x1b) {
                CHECK_MSG(0, "raw byte 0x%02x at offset %zu", c, i);
                break;
            }
        }
        check_balanced(html);
        free(html);
    }

    /* two runs overlaid: both lines on the same axes, legend names each run */
    snprintf(path, sizeof path, "%s/b/run.db", dir);
    build_store(path, 2.0, steps);
    CHECK_INT(0, run_cmd("report a b --out cmp.html"));
    snprintf(path, sizeof path, "%s/cmp.html", dir);
    html = report_read_file(path, NULL);
    CHECK(html != NULL);
    if (html) {
        CHECK_INT(steps - 1, check_line(html, "Reward (total and per component)", "a: reward/mean", 0, steps, 1.0, 2));
        CHECK_INT(steps - 1, check_line(html, "Reward (total and per component)", "b: reward/mean", 1, steps, 2.0, 2));
        check_balanced(html);
        free(html);
    }

    /* a writer killed inside a transaction: what it committed renders, the rest is gone */
    snprintf(path, sizeof path, "%s/k/run.db", dir);
    pid_t pid = fork();
    if (pid == 0) {
        store *s;
        int64_t run;
        if (store_open(path, &s) || store_begin_run(s, "k", NULL, &run) || store_begin_stage(s, run, 0, "rl", "grpo"))
            _exit(1);
        const char *name = "accuracy";
        for (int step = 1; step <= 3; step++) {
            double v = step / 10.0;
            if (store_put_metrics(s, run, 0, step, 1, &name, &v)) _exit(1);
        }
        store_transaction_begin(s);
        double v = 99;
        store_put_metrics(s, run, 0, 4, 1, &name, &v);
        raise(SIGKILL);
        _exit(2);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_INT(0, run_cmd("report k --out k.html"));
    snprintf(path, sizeof path, "%s/k.html", dir);
    html = report_read_file(path, NULL);
    CHECK(html != NULL);
    if (html) {
        CHECK_INT(3, check_line(html, "Accuracy of the training samples", "accuracy", 0, 3, 1.0, 1));
        CHECK(strstr(html, "unfinished") != NULL);
        check_balanced(html);
        free(html);
    }

    /* a directory without a store is an error naming it, not a crash */
    CHECK_INT(1, run_cmd("report nowhere --out x.html"));
    if (!harness_failures) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
    TEST_MAIN_END();
}
