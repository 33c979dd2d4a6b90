/* `grpo report`: one self-contained HTML page (inline SVG, one small inline script, no
 * network) with a run's metrics per stage, its MoE expert loads, the per-stage
 * evaluation table and its configuration; several runs are overlaid on the same axes.
 * report_data.c reads the store, report_svg.c draws line plots, report_heatmap.c the
 * expert-load heatmap, report_html.c the page, report_buf.c holds text and escaping. */
#ifndef GRPO_TOOLS_REPORT_H
#define GRPO_TOOLS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

/* ---- report_buf.c: a growing text buffer ---- */
typedef struct {
    char *data;     /* NUL-terminated; NULL until the first write */
    size_t len, cap;
    int failed;     /* an allocation failed: the text is incomplete */
} report_buf;

void report_buf_printf(report_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_buf_puts(report_buf *b, const char *text);
/* Appends text escaped for HTML text and attribute values (& < > " '); bytes that are
 * not valid UTF-8 become U+FFFD and control characters other than \n and \t are
 * dropped, so any model output leaves the page valid. NULL appends nothing. */
void report_buf_html(report_buf *b, const char *text);
void report_buf_free(report_buf *b);

/* ---- report_data.c: what the page shows, read from RUN_DIR/run.db and summary.json ---- */
typedef struct {
    char *name;          /* metric name, e.g. "reward/mean" */
    int stage;           /* stage index */
    int64_t n;
    int64_t *steps;      /* [n], increasing */
    double *values;      /* [n], NaN where the store holds NULL */
} report_series;

typedef struct {
    int idx;
    char *name, *kind;
    double started_at, finished_at;   /* finished_at NaN: the stage never finished */
    int64_t steps;                    /* -1 while running */
} report_stage;

typedef struct {
    char *label;         /* the run directory as given */
    char *name, *status, *config_yaml;   /* of the run's newest row in `runs`; may be NULL */
    report_stage *stages;
    int n_stages;
    report_series *series;   /* one per (metric, stage) */
    int n_series;
    char *summary_json;  /* RUN_DIR/summary.json, NULL when absent (killed run) */
    int max_stage;       /* the largest stage index seen in stages or metrics; -1: none */
} report_run;

/* Reads everything the report shows. A run directory or a run.db path; a store whose
 * process was killed (unfinished stages, no summary.json) loads what is there. */
grpo_status report_run_load(const char *path, report_run **out);
void report_run_free(report_run *r);
/* The series of metric `name` in stage `stage`, NULL when the run has none. */
const report_series *report_run_find(const report_run *r, const char *name, int stage);
/* The stage with index idx, NULL when the stages table lacks it. */
const report_stage *report_run_stage(const report_run *r, int idx);

/* ---- report_svg.c: a line plot ---- */
typedef struct {
    const char *label;       /* legend text */
    const report_series *s;  /* the points (NaN values break the line) */
    int run;                 /* which run (dash pattern) */
    int color;               /* palette index */
} report_line;

/* An <svg class="plot"> of the lines on shared axes with ticks and a legend, followed by a
 * caption with each line's last value. The SVG carries its scale (data-x0, data-y0,
 * data-w, data-h: the plot area in pixels; data-xmin/xmax/ymin/ymax: the data range) so
 * a reader can map path points back to values:
 *   x = x0 + (step - xmin) / (xmax - xmin) * w,  y = y0 + h - (value - ymin) / (ymax - ymin) * h. */
void report_svg_line_plot(report_buf *b, const char *title, int n_lines, const report_line *lines);

/* ---- report_heatmap.c: MoE expert load, layer x expert over steps ---- */
/* Draws the "moe/load/L<l>/E<e>" series of `stage` (relative load, 1 = balanced) as an
 * <svg class="heatmap">: one row per (layer, expert), one column per logged step.
 * Returns 0 (drawing nothing) when the run has no such series. */
int report_svg_heatmap(report_buf *b, const report_run *r, int stage);

/* ---- report_html.c: the page ---- */
/* Writes the whole page for n runs (overlaid when n > 1) to out. */
grpo_status report_write_html(FILE *out, int n, report_run *const *runs);

#endif
