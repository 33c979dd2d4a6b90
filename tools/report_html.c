/* The report page (tools/report.h): per stage the charts of a GRPO/SFT run (reward,
 * accuracy, held-out pass@k, KL, entropy, clipping, lengths, truncation, reflection
 * words, zero-variance groups, throughput, phase times, loss, MoE load), any other
 * metric, the expert-load heatmap, the per-stage evaluation table and each run's config.
 * Runs given together share axes. Every string from a store or summary is escaped. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tools/report.h"

typedef struct {
    const char *title;
    const char *patterns[6];   /* '*' matches one path segment (no '/') */
} chart;

static const chart charts[] = {
    {"Reward (total and per component)", {"reward/mean", "reward/*/mean"}},
    {"Accuracy of the training samples", {"accuracy"}},
    {"Held-out evaluation", {"eval/pass@1", "eval/pass@k", "eval/maj@k", "eval/exact_match"}},
    {"KL to the reference", {"kl"}},
    {"Entropy", {"entropy"}},
    {"Clip fraction", {"clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"}},
    {"Response length (tokens)", {"completions/mean_length", "completions/max_length"}},
    {"Truncated share", {"completions/clipped_ratio"}},
    {"Reflection-word rate", {"completions/reflection_rate"}},
    {"Zero-variance group share", {"frac_reward_zero_std"}},
    {"Tokens per second", {"tokens_per_second/*", "train/tokens_per_second"}},
    {"Seconds per phase", {"time/*"}},
    {"Loss", {"loss", "train/loss", "eval/loss"}},
    {"MoE max load violation", {"moe/max_violation", "moe/*/max_violation"}},
};
enum { N_CHARTS = sizeof charts / sizeof charts[0] };

static int glob_match(const char *p, const char *s) {
    for (; *p; p++, s++) {
        if (*p == '*') {
            for (const char *t = s;; t++) {
                if (glob_match(p + 1, t)) return 1;
                if (!*t || *t == '/') return 0;
            }
        }
        if (*p != *s) return 0;
    }
    return *s == 0;
}

static int is_heatmap_metric(const char *name) { return !strncmp(name, "moe/load/", 9); }

/* 1 when a chart claims the metric. */
static int charted(const char *name) {
    for (int c = 0; c < N_CHARTS; c++)
        for (int k = 0; k < 6 && charts[c].patterns[k]; k++)
            if (glob_match(charts[c].patterns[k], name)) return 1;
    return is_heatmap_metric(name);
}

/* Collects the lines of one chart (or, with name != NULL, of that one metric) in a stage. */
static int gather(int n_runs, report_run *const *runs, int stage, const chart *c, const char *name, report_line *out,
                  char (*labels)[256], int max) {
    int n = 0, color = 0;
    /* one colour per metric, shared by the runs; runs differ by dash pattern */
    for (int k = 0; name ? k < 1 : k < 6 && c->patterns[k]; k++) {
        /* metric names in the first run that has them, in sorted order */
        for (int r = 0; r < n_runs; r++)
            for (int i = 0; i < runs[r]->n_series; i++) {
                const report_series *s = &runs[r]->series[i];
                if (s->stage != stage || (name ? strcmp(s->name, name) : !glob_match(c->patterns[k], s->name)))
                    continue;
                int seen = -1, dup = 0;   /* this metric already has a colour */
                for (int j = 0; j < n; j++) {
                    if (!strcmp(out[j].s->name, s->name)) seen = out[j].color;
                    dup |= out[j].s == s;
                }
                if (dup) continue;
                if (n == max) return n;
                out[n].s = s;
                out[n].run = r;
                out[n].color = seen >= 0 ? seen : color++;
                if (n_runs > 1) snprintf(labels[n], sizeof labels[n], "%s: %s", runs[r]->label, s->name);
                else snprintf(labels[n], sizeof labels[n], "%s", s->name);
                out[n].label = labels[n];
                n++;
            }
    }
    return n;
}

enum { MAX_LINES = 64 };

static void stage_section(report_buf *b, int n_runs, report_run *const *runs, int stage) {
    const report_stage *st = NULL;
    for (int r = 0; r < n_runs && !st; r++) st = report_run_stage(runs[r], stage);
    report_buf_printf(b, "<section class=\"stage\" id=\"stage-%d\">\n<h2>Stage %d", stage, stage);
    if (st) {
        report_buf_puts(b, ": ");
        report_buf_html(b, st->name);
        report_buf_puts(b, " <span class=\"kind\">(");
        report_buf_html(b, st->kind);
        report_buf_puts(b, ")</span>");
    }
    for (int r = 0; r < n_runs; r++) {
        const report_stage *rs = report_run_stage(runs[r], stage);
        if (rs && !isfinite(rs->finished_at)) {
            report_buf_puts(b, " <span class=\"unfinished\">unfinished");
            if (n_runs > 1) {
                report_buf_puts(b, " in ");
                report_buf_html(b, runs[r]->label);
            }
            report_buf_puts(b, "</span>");
        }
    }
    report_buf_puts(b, "</h2>\n<div class=\"plots\">\n");
    report_line lines[MAX_LINES];
    char labels[MAX_LINES][256];
    int plots = 0;
    for (int c = 0; c < N_CHARTS; c++) {
        int n = gather(n_runs, runs, stage, &charts[c], NULL, lines, labels, MAX_LINES);
        if (n) report_svg_line_plot(b, charts[c].title, n, lines);
        plots += n > 0;
    }
    /* every metric no chart claims gets its own plot (names seen in any run, once) */
    for (int r = 0; r < n_runs; r++)
        for (int i = 0; i < runs[r]->n_series; i++) {
            const report_series *s = &runs[r]->series[i];
            if (s->stage != stage || charted(s->name)) continue;
            int earlier = 0;
            for (int q = 0; q < r && !earlier; q++) earlier = report_run_find(runs[q], s->name, stage) != NULL;
            if (earlier) continue;
            int n = gather(n_runs, runs, stage, NULL, s->name, lines, labels, MAX_LINES);
            if (n) report_svg_line_plot(b, s->name, n, lines);
            plots += n > 0;
        }
    report_buf_puts(b, "</div>\n");
    for (int r = 0; r < n_runs; r++) {
        if (n_runs > 1) {
            report_buf_puts(b, "<h3>Expert load: ");
            report_buf_html(b, runs[r]->label);
            report_buf_puts(b, "</h3>\n");
        }
        plots += report_svg_heatmap(b, runs[r], stage);
    }
    if (!plots) report_buf_puts(b, "<p class=\"empty\">No metrics were stored for this stage.</p>\n");
    report_buf_puts(b, "</section>\n");
}

/* A number cell: the value or "-" when absent. */
static void number_cell(report_buf *b, double v, int percent) {
    if (!isfinite(v)) report_buf_puts(b, "<td>-</td>");
    else if (percent) report_buf_printf(b, "<td>%.1f%%</td>", 100 * v);
    else report_buf_printf(b, "<td>%.4g</td>", v);
}

static double json_number(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static double last_value(const report_run *r, const char *name, int stage) {
    const report_series *s = report_run_find(r, name, stage);
    for (int64_t i = s ? s->n - 1 : -1; i >= 0; i--)
        if (isfinite(s->values[i])) return s->values[i];
    return NAN;
}

/* The pipeline's per-stage table: summary.json's held-out numbers when the run finished,
 * else the last stored evaluation metrics. */
static void stage_table(report_buf *b, int n_runs, report_run *const *runs) {
    report_buf_puts(b, "<section id=\"stages\">\n<h2>Per-stage accuracy</h2>\n<table class=\"stages\">\n<tr><th>run</th>"
                       "<th>stage</th><th>kind</th><th>steps</th><th>state</th><th>pass@1 before</th>"
                       "<th>pass@1 after</th><th>maj@k after</th><th>mean length</th><th>eval loss</th>"
                       "<th>exact match</th><th>last training accuracy</th></tr>\n");
    for (int r = 0; r < n_runs; r++) {
        const report_run *run = runs[r];
        json_t *root = run->summary_json ? json_loads(run->summary_json, 0, NULL) : NULL;
        json_t *stages = json_object_get(root, "stages");
        for (int idx = 0; idx <= run->max_stage; idx++) {
            const report_stage *st = report_run_stage(run, idx);
            json_t *sj = json_is_array(stages) ? json_array_get(stages, (size_t)idx) : NULL;
            json_t *before = json_object_get(sj, "eval_before"), *after = json_object_get(sj, "eval");
            report_buf_puts(b, "<tr><td>");
            report_buf_html(b, run->label);
            report_buf_puts(b, "</td><td>");
            if (st) report_buf_html(b, st->name);
            else report_buf_printf(b, "%d", idx);
            report_buf_puts(b, "</td><td>");
            if (st) report_buf_html(b, st->kind);
            report_buf_puts(b, "</td>");
            if (st && st->steps >= 0) report_buf_printf(b, "<td>%lld</td>", (long long)st->steps);
            else report_buf_puts(b, "<td>-</td>");
            report_buf_printf(b, "<td>%s</td>", !st ? "-" : isfinite(st->finished_at) ? "finished" : "unfinished");
            double p_after = after ? json_number(after, "pass@1") : last_value(run, "eval/pass@1", idx);
            double maj = after ? json_number(after, "maj@k") : last_value(run, "eval/maj@k", idx);
            double len = after ? json_number(after, "mean_length") : last_value(run, "eval/mean_length", idx);
            double loss = after ? json_number(after, "loss") : last_value(run, "eval/loss", idx);
            double exact = after ? json_number(after, "exact_match") : last_value(run, "eval/exact_match", idx);
            number_cell(b, before ? json_number(before, "pass@1") : NAN, 1);
            number_cell(b, p_after, 1);
            number_cell(b, maj, 1);
            number_cell(b, len, 0);
            number_cell(b, loss, 0);
            number_cell(b, exact, 1);
            number_cell(b, last_value(run, "accuracy", idx), 1);
            report_buf_puts(b, "</tr>\n");
        }
        json_decref(root);
    }
    report_buf_puts(b, "</table>\n</section>\n");
}

static const char style[] =
    "body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}"
    "h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px}"
    ".plots{display:flex;flex-wrap:wrap;gap:12px}figure.plot{margin:0;border:1px solid #e4e4e4;padding:6px}"
    "figcaption{font-size:12px;color:#444;max-width:560px}svg text{font-size:11px;fill:#333}"
    "svg text.title{font-size:13px;font-weight:600}rect.area{fill:#fafafa;stroke:#bbb}"
    "line.grid{stroke:#e6e6e6}.unfinished{color:#b00;font-size:14px}.kind{color:#666;font-weight:400}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}"
    "pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}";

/* Runs after load: counts the plots that have a drawn line and marks the page, so a
 * headless browser's DOM dump shows the script ran without errors. No network. */
static const char script[] =
    "(function(){var plots=document.querySelectorAll('svg.plot,svg.heatmap'),drawn=0;"
    "for(var i=0;i<plots.length;i++){var p=plots[i];"
    "if(p.querySelector('path.line[d^=\"M\"],path.line[d^=\" M\"],rect.cell'))drawn++;}"
    "document.body.setAttribute('data-plots',String(plots.length));"
    "document.body.setAttribute('data-plots-drawn',String(drawn));"
    "document.body.setAttribute('data-report-ready','1');})();";

grpo_status report_write_html(FILE *out, int n, report_run *const *runs) {
    report_buf b = {0};
    report_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>grpo report: ");
    for (int r = 0; r < n; r++) {
        if (r) report_buf_puts(&b, " vs ");
        report_buf_html(&b, runs[r]->name ? runs[r]->name : runs[r]->label);
    }
    report_buf_printf(&b, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>grpo report</h1>\n", style);
    report_buf_puts(&b, "<table class=\"runs\">\n<tr><th>run directory</th><th>name</th><th>status</th>"
                        "<th>stages</th><th>line style</th></tr>\n");
    int max_stage = -1;
    for (int r = 0; r < n; r++) {
        report_buf_puts(&b, "<tr><td>");
        report_buf_html(&b, runs[r]->label);
        report_buf_puts(&b, "</td><td>");
        report_buf_html(&b, runs[r]->name);
        report_buf_puts(&b, "</td><td>");
        report_buf_html(&b, runs[r]->status);
        report_buf_printf(&b, "</td><td>%d</td><td>%s</td></tr>\n", runs[r]->max_stage + 1,
                          r == 0 ? "solid" : r == 1 ? "dashed" : r == 2 ? "dotted" : "dash-dot");
        if (runs[r]->max_stage > max_stage) max_stage = runs[r]->max_stage;
    }
    report_buf_puts(&b, "</table>\n");
    if (max_stage < 0) report_buf_puts(&b, "<p class=\"empty\">The run store holds no stages or metrics yet.</p>\n");
    for (int stage = 0; stage <= max_stage; stage++) stage_section(&b, n, runs, stage);
    stage_table(&b, n, runs);
    report_buf_puts(&b, "<section id=\"config\">\n<h2>Configuration</h2>\n");
    for (int r = 0; r < n; r++) {
        report_buf_puts(&b, "<details open><summary>");
        report_buf_html(&b, runs[r]->label);
        report_buf_puts(&b, "</summary>\n<pre>");
        if (runs[r]->config_yaml) report_buf_html(&b, runs[r]->config_yaml);
        else report_buf_puts(&b, "(not stored)");
        report_buf_puts(&b, "</pre></details>\n");
    }
    report_buf_printf(&b, "</section>\n<script>%s</script>\n</body>\n</html>\n", script);
    grpo_status s = GRPO_OK;
    if (b.failed) s = grpo_fail(GRPO_ERR_NOMEM, "report: out of memory building the page");
    else if (fwrite(b.data, 1, b.len, out) != b.len) s = grpo_fail(GRPO_ERR_IO, "report: cannot write the page");
    report_buf_free(&b);
    return s;
}
