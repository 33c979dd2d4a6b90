/* The MoE expert-load heatmap (tools/report.h): rows are (layer, expert), columns the
 * logged steps, colour the relative load "moe/load/L<l>/E<e>" (load / mean load, written
 * by rl/grpo_train.c): blue under-used, white balanced, red overloaded (clamped at 0
 * and 2). Each cell carries a <title> with its value. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/report.h"

enum { CELL_H = 8, LABEL_W = 70, HEAT_W = 640, TOP = 26, MAX_COLUMNS = 400 };

typedef struct {
    int layer, expert;
    const report_series *s;
} heat_row;

static int row_order(const void *a, const void *b) {
    const heat_row *x = a, *y = b;
    return x->layer != y->layer ? (x->layer > y->layer) - (x->layer < y->layer)
                                : (x->expert > y->expert) - (x->expert < y->expert);
}

/* rgb of relative load v: 0 blue, 1 white, 2 (and above) red. */
static void load_color(double v, int rgb[3]) {
    if (!isfinite(v)) { rgb[0] = rgb[1] = rgb[2] = 200; return; }
    double t = v < 0 ? 0 : v > 2 ? 2 : v;
    if (t <= 1) {
        rgb[0] = (int)(59 + (255 - 59) * t);
        rgb[1] = (int)(76 + (255 - 76) * t);
        rgb[2] = (int)(192 + (255 - 192) * t);
    } else {
        t -= 1;
        rgb[0] = (int)(255 + (180 - 255) * t);
        rgb[1] = (int)(255 + (4 - 255) * t);
        rgb[2] = (int)(255 + (38 - 255) * t);
    }
}

static int64_t value_at(const report_series *s, int64_t step, double *v) {
    for (int64_t i = 0; i < s->n; i++)
        if (s->steps[i] == step) { *v = s->values[i]; return 1; }
    return 0;
}

int report_svg_heatmap(report_buf *b, const report_run *r, int stage) {
    int n_rows = 0;
    heat_row *rows = malloc((size_t)(r->n_series ? r->n_series : 1) * sizeof *rows);
    if (!rows) return 0;
    for (int i = 0; i < r->n_series; i++) {
        const report_series *s = &r->series[i];
        int layer, expert, used = 0;
        if (s->stage == stage && sscanf(s->name, "moe/load/L%d/E%d%n", &layer, &expert, &used) == 2 &&
            s->name[used] == 0 && s->n > 0)
            rows[n_rows++] = (heat_row){layer, expert, s};
    }
    if (!n_rows) { free(rows); return 0; }
    qsort(rows, (size_t)n_rows, sizeof *rows, row_order);
    /* the columns: steps of the first row (all rows are written together), thinned to MAX_COLUMNS */
    const report_series *cols = rows[0].s;
    int64_t n_cols = cols->n, stride = (n_cols + MAX_COLUMNS - 1) / MAX_COLUMNS, shown = (n_cols + stride - 1) / stride;
    double cell_w = (double)(HEAT_W - LABEL_W - 10) / (double)shown;
    int layers = 1;
    for (int i = 1; i < n_rows; i++) layers += rows[i].layer != rows[i - 1].layer;
    int gap = 4, H = TOP + n_rows * CELL_H + layers * gap + 40;
    report_buf_printf(b, "<figure class=\"plot\">\n<svg class=\"heatmap\" xmlns=\"http://www.w3.org/2000/svg\" "
                         "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" data-rows=\"%d\" data-columns=\"%lld\">\n"
                         "<text class=\"title\" x=\"8\" y=\"18\">MoE expert load (load / mean load), layer x expert "
                         "over steps</text>\n", HEAT_W, H, HEAT_W, H, n_rows, (long long)shown);
    int y = TOP;
    for (int i = 0; i < n_rows; i++) {
        if (i == 0 || rows[i].layer != rows[i - 1].layer) {
            y += gap;
            report_buf_printf(b, "<text class=\"tick\" x=\"4\" y=\"%d\">layer %d</text>\n", y + CELL_H, rows[i].layer);
        }
        for (int64_t c = 0; c < shown; c++) {
            int64_t step = cols->steps[c * stride];
            double v = NAN;
            value_at(rows[i].s, step, &v);
            int rgb[3];
            load_color(v, rgb);
            report_buf_printf(b, "<rect class=\"cell\" x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" "
                                 "fill=\"rgb(%d,%d,%d)\"><title>layer %d expert %d step %lld: %.4g</title></rect>\n",
                              LABEL_W + c * cell_w, y, cell_w + 0.05, CELL_H, rgb[0], rgb[1], rgb[2],
                              rows[i].layer, rows[i].expert, (long long)step, v);
        }
        y += CELL_H;
    }
    report_buf_printf(b, "<text class=\"tick\" x=\"%d\" y=\"%d\">step %lld</text>"
                         "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"end\">step %lld</text>\n",
                      LABEL_W, y + 16, (long long)cols->steps[0], HEAT_W - 10, y + 16,
                      (long long)cols->steps[(shown - 1) * stride]);
    report_buf_printf(b, "<text class=\"legend\" x=\"%d\" y=\"%d\">blue: under-used, white: balanced (1), red: "
                         "overloaded (2 or more), grey: no tokens routed</text>\n</svg>\n</figure>\n", LABEL_W, y + 32);
    free(rows);
    return 1;
}
