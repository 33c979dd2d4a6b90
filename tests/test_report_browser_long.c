/* End to end: a real short `grpo run` (tiny MoE, SFT then GRPO), `grpo report`, and the
 * page opened in headless Chromium: it loads with its inline script run and no console
 * errors, the screenshot is a PNG, every plot has a line with points, and the points
 * equal the store's values. Also: --quiet prints only the summary, --log-every N gives
 * one live line per N steps in a log, and the report of a run killed with SIGKILL
 * renders what its store holds. Skips (77) without chromium. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/store.h"
#include "harness.h"
#include "report_check.h"

static const char *grpo;
static char dir[256];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "cd %s && ", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *read_in_dir(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return report_read_file(path, NULL);
}

static const char *config =
    "run:\n  name: t\n  output_dir: runs\n  seed: 5\n"
    "model:\n  preset: tiny-moe\n"
    "datasets:\n  - {name: p, generate: arith, n: 32, difficulty: 1, ops: \"+-\"}\n"
    "  - {name: h, generate: arith, n: 4, offset: 100000, difficulty: 1, ops: \"+-\"}\n"
    "stages:\n"
    "  - {name: warm, kind: sft, train_dataset: p, max_steps: 2, per_device_train_batch_size: 4, max_length: 96}\n"
    "  - name: rl\n    kind: grpo\n    train_dataset: p\n    eval_dataset: h\n    max_steps: 4\n"
    "    per_device_train_batch_size: 8\n    num_generations: 4\n    max_prompt_length: 256\n"
    "    max_completion_length: 12\n    max_length: 300\n    beta: 0.01\n    eval_steps: 2\n"
    "    eval_num_generations: 2\n    log_rollouts_per_step: 4\n"
    "    rewards:\n      - {name: accuracy, weight: 1.0}\n      - {name: format, weight: 0.5}\n";

/* Every path point of metric `name` in the plot titled `title` equals the stored series. */
static void check_against_store(const char *html, store *db, int64_t run, const char *title, const char *name) {
    report_plot p;
    CHECK_MSG(report_find_plot(html, title, &p), "no plot \"%s\"", title);
    if (!p.begin) return;
    const char *path = report_find_line(&p, name, 0);
    CHECK_MSG(path != NULL, "plot \"%s\" has no line %s", title, name);
    if (!path) return;
    int64_t *steps = NULL, n = 0;
    double *values = NULL;
    CHECK_OK(store_get_metric_arrays(db, run, name, &steps, &values, &n));
    double xs[512], ys[512];
    int sub, got = report_line_points(&p, path, xs, ys, 512, &sub);
    /* the series spans both stages when both wrote it: keep the grpo stage's (index 1) rows */
    int k = 0;
    double ytol = 0.0051 / p.h * (p.ymax - p.ymin), xtol = 0.0051 / p.w * (p.xmax - p.xmin);
    (void)xtol;
    for (int64_t i = 0; i < n && k < got; i++) {
        if (!isfinite(values[i])) continue;
        CHECK_NEAR(values[i], ys[k], ytol, 0);
        CHECK_NEAR((double)steps[i], xs[k], xtol, 0);
        k++;
    }
    CHECK_MSG(k == got && got > 0, "%s: %d points drawn, %d compared", name, got, k);
    free(steps);
    free(values);
}

/* Loads the page in Chromium: the DOM dump shows the script's marker and every plot drawn;
 * the screenshot is a PNG; no uncaught script error is logged. */
static void check_in_browser(const char *page, const char *tag, int screenshot) {
    if (screenshot) CHECK_INT(0, sh("chromium --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 "
                    "--window-size=1400,3000 --screenshot=%s.png file://%s/%s > %s.shot.log 2>&1",
                    tag, dir, page, tag));
    CHECK_INT(0, sh("chromium --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 "
                    "--dump-dom file://%s/%s > %s.dom 2> %s.console.log", dir, page, tag, tag));
    char name[128];
    snprintf(name, sizeof name, "%s.dom", tag);
    char *dom = read_in_dir(name);
    CHECK_MSG(dom && strstr(dom, "data-report-ready=\"1\""), "%s: the page's script did not run", page);
    if (dom) {
        char *a = strstr(dom, "data-plots=\""), *b = strstr(dom, "data-plots-drawn=\"");
        int plots = a ? atoi(a + 12) : -1, drawn = b ? atoi(b + 18) : -2;
        CHECK_MSG(plots > 0 && plots == drawn, "%s: %d plots, %d with a drawn line", page, plots, drawn);
    }
    free(dom);
    snprintf(name, sizeof name, "%s.console.log", tag);
    char *console = read_in_dir(name);
    CHECK_MSG(console && !strstr(console, "Uncaught"), "%s: script error:\n%s", page, console ? console : "");
    free(console);
    if (!screenshot) return;
    snprintf(name, sizeof name, "%s.png", tag);
    size_t len = 0;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *png = report_read_file(path, &len);
    CHECK_MSG(png && len > 10000 && !memcmp(png, "\x89PNG", 4), "%s: no screenshot (%zu bytes)", page, len);
    free(png);
}

/* Each plot of the page has a line with at least one point. */
static void check_plots_drawn(const char *html) {
    const char *c = html;
    report_plot p;
    int plots = 0;
    while (report_next_plot(&c, &p)) {
        plots++;
        int points = 0;
        for (const char *t = p.begin; (t = strstr(t, "<path class=\"line\"")) && t < p.end; t++) {
            double xs[1], ys[1];
            int sub;
            points += report_line_points(&p, t, xs, ys, 1, &sub);
        }
        CHECK_MSG(points > 0, "plot \"%s\" has no points", p.title);
    }
    CHECK(plots >= 12);
}

int main(void) {
    grpo = getenv("GRPO_BINARY");
    if (!grpo) TEST_SKIP("GRPO_BINARY is not set (run through ctest)");
    if (system("command -v chromium > /dev/null 2>&1") != 0)
        TEST_SKIP("chromium is not installed (scripts/deps.sh installs Debian's package 'chromium')");
    snprintf(dir, sizeof dir, "/tmp/grpo_test_report_browser_%d", (int)getpid());
    char path[512];
    snprintf(path, sizeof path, "rm -rf %s && mkdir -p %s", dir, dir);
    CHECK_INT(0, system(path));
    snprintf(path, sizeof path, "%s/t.yaml", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) TEST_MAIN_END();
    fputs(config, f);
    fclose(f);

    /* --quiet: the summary table and nothing from the log or the live line */
    CHECK_INT(0, sh("%s run t.yaml --quiet > quiet.out 2> quiet.err", grpo));
    char *out = read_in_dir("quiet.out"), *err = read_in_dir("quiet.err");
    CHECK(out && strstr(out, "summary: runs/t/summary.json"));
    CHECK_MSG(err && err[0] == 0, "--quiet printed on stderr:\n%s", err ? err : "");
    free(out);
    free(err);

    /* the report: plots drawn, numbers equal the store's, the heatmap of the MoE run */
    CHECK_INT(0, sh("%s report runs/t --out report.html > report.out 2>&1", grpo));
    char *html = read_in_dir("report.html");
    CHECK(html != NULL);
    store *db = NULL;
    int64_t run = -1;
    snprintf(path, sizeof path, "%s/runs/t/run.db", dir);
    CHECK_OK(store_open_readonly(path, &db));
    if (db) CHECK_OK(store_find_run(db, "t", &run));
    if (html && db) {
        check_plots_drawn(html);
        check_against_store(html, db, run, "Reward (total and per component)", "reward/mean");
        check_against_store(html, db, run, "Reward (total and per component)", "reward/format/mean");
        check_against_store(html, db, run, "Accuracy of the training samples", "accuracy");
        check_against_store(html, db, run, "KL to the reference", "kl");
        check_against_store(html, db, run, "Response length (tokens)", "completions/mean_length");
        check_against_store(html, db, run, "Held-out evaluation", "eval/pass@1");
        check_against_store(html, db, run, "Zero-variance group share", "frac_reward_zero_std");
        CHECK(strstr(html, "<svg class=\"heatmap\"") != NULL);
        CHECK(strstr(html, "id=\"stage-0\"") && strstr(html, "id=\"stage-1\""));
    }
    store_close(db);
    free(html);
    check_in_browser("report.html", "report", 1);

    /* --log-every 2 in a log: one live line per 2 steps, and the final one */
    CHECK_INT(0, sh("%s run t.yaml --set run.name=t2 --log-every 2 > every.out 2> every.err", grpo));
    char *every = read_in_dir("every.err");
    CHECK_MSG(report_count(every ? every : "", "rl step: ") == 3, "expected the lines of steps 2, 4 and the total:\n%s",
              every ? every : "");
    CHECK(every && strstr(every, "rl step: 2/4") && strstr(every, "reward ") && strstr(every, "kl "));
    free(every);
    /* two runs overlaid */
    CHECK_INT(0, sh("%s report runs/t runs/t2 --out cmp.html > cmp.out 2>&1", grpo));
    html = read_in_dir("cmp.html");
    CHECK(html && strstr(html, "data-label=\"runs/t2: reward/mean\""));
    free(html);
    check_in_browser("cmp.html", "cmp", 0);

    /* a run killed with SIGKILL once its GRPO stage has logged a step */
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(127);
        if (!freopen("/dev/null", "w", stderr) || !freopen("/dev/null", "w", stdout)) _exit(127);
        execl(grpo, grpo, "run", "t.yaml", "--set", "run.name=killed", "--set", "stages[1].max_steps=1000", (char *)NULL);
        _exit(127);
    }
    snprintf(path, sizeof path, "%s/runs/killed/run.db", dir);
    int logged = 0;
    for (int waited = 0; waited < 1200 && !logged; waited++) {   /* up to 2 minutes */
        usleep(100000);
        store *s = NULL;
        int64_t id, last = -1;
        if (access(path, F_OK) == 0 && store_open_readonly(path, &s) == GRPO_OK &&
            store_find_run(s, "killed", &id) == GRPO_OK && store_latest_step(s, id, &last) == GRPO_OK) {
            int64_t *steps = NULL, n = 0;
            double *values = NULL;
            if (store_get_metric_arrays(s, id, "reward/mean", &steps, &values, &n) == GRPO_OK && n > 0) logged = 1;
            free(steps);
            free(values);
        }
        grpo_error_clear();
        store_close(s);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK_MSG(logged, "the run never logged a GRPO step");
    CHECK_INT(0, sh("%s report runs/killed --out killed.html > killed.out 2>&1", grpo));
    html = read_in_dir("killed.html");
    CHECK(html && strstr(html, "unfinished") && strstr(html, "data-label=\"reward/mean\""));
    free(html);
    check_in_browser("killed.html", "killed", 0);

    if (!harness_failures) CHECK_INT(0, sh("cd / && rm -rf %s", dir));
    TEST_MAIN_END();
}
