/* A line plot in inline SVG (tools/report.h): lines on shared axes, "nice" ticks, a
 * legend, and a caption with each line's last value. Points are written in pixels with
 * two decimals; the scale travels in data-* attributes so tests can read values back. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tools/report.h"

enum { PLOT_W = 560, PLOT_H = 300, MARGIN_L = 64, MARGIN_R = 16, MARGIN_T = 30, MARGIN_B = 40, LEGEND_ROW = 16 };

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
static const char *const dashes[] = {"", "6 3", "2 2", "8 3 2 3"};

/* A step of 1, 2 or 5 times a power of ten giving about `ticks` intervals over span. */
static double nice_step(double span, int ticks) {
    double raw = span / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static void format_tick(char *buf, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-9) v = 0;
    if (fabs(v) >= 1e5 || (fabs(v) < 1e-3 && v != 0)) snprintf(buf, n, "%.2g", v);
    else snprintf(buf, n, "%.*f", step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9), v);
}

void report_svg_line_plot(report_buf *b, const char *title, int n_lines, const report_line *lines) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int l = 0; l < n_lines; l++)
        for (int64_t i = 0; i < lines[l].s->n; i++) {
            double v = lines[l].s->values[i], x = (double)lines[l].s->steps[i];
            if (!isfinite(v)) continue;
            xmin = fmin(xmin, x);
            xmax = fmax(xmax, x);
            ymin = fmin(ymin, v);
            ymax = fmax(ymax, v);
        }
    if (!isfinite(xmin)) { xmin = 0; xmax = 1; ymin = 0; ymax = 1; }   /* no finite point at all */
    if (xmax == xmin) { xmin -= 1; xmax += 1; }
    if (ymax == ymin) {
        double pad = ymin != 0 ? fabs(ymin) * 0.1 : 1;
        ymin -= pad;
        ymax += pad;
    }
    int legend_h = n_lines * LEGEND_ROW + 6;
    int W = PLOT_W, H = PLOT_H + legend_h;
    int x0 = MARGIN_L, y0 = MARGIN_T, w = W - MARGIN_L - MARGIN_R, h = PLOT_H - MARGIN_T - MARGIN_B;

    report_buf_puts(b, "<figure class=\"plot\">\n");
    report_buf_printf(b, "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                         "viewBox=\"0 0 %d %d\" data-x0=\"%d\" data-y0=\"%d\" data-w=\"%d\" data-h=\"%d\" "
                         "data-xmin=\"%.17g\" data-xmax=\"%.17g\" data-ymin=\"%.17g\" data-ymax=\"%.17g\" "
                         "data-title=\"", W, H, W, H, x0, y0, w, h, xmin, xmax, ymin, ymax);
    report_buf_html(b, title);
    report_buf_puts(b, "\">\n<text class=\"title\" x=\"8\" y=\"18\">");
    report_buf_html(b, title);
    report_buf_puts(b, "</text>\n");
    report_buf_printf(b, "<rect class=\"area\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n", x0, y0, w, h);

    /* ticks and grid */
    double ys = nice_step(ymax - ymin, 5), xs = nice_step(xmax - xmin, 6);
    if (xs < 1) xs = 1;   /* steps are whole numbers */
    char t[48];
    for (double v = ceil(ymin / ys) * ys; v <= ymax + ys * 1e-9; v += ys) {
        double y = y0 + h - (v - ymin) / (ymax - ymin) * h;
        format_tick(t, sizeof t, v, ys);
        report_buf_printf(b, "<line class=\"grid\" x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\"/>"
                             "<text class=\"tick\" x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n",
                          x0, y, x0 + w, y, x0 - 4, y + 4, t);
    }
    for (double v = ceil(xmin / xs) * xs; v <= xmax + xs * 1e-9; v += xs) {
        double x = x0 + (v - xmin) / (xmax - xmin) * w;
        format_tick(t, sizeof t, v, xs);
        report_buf_printf(b, "<line class=\"grid\" x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>"
                             "<text class=\"tick\" x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                          x, y0, x, y0 + h, x, y0 + h + 16, t);
    }
    report_buf_printf(b, "<text class=\"axis\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>\n",
                      x0 + w / 2, y0 + h + 32);

    /* the lines: a NaN starts a new sub-path; few points also get markers */
    for (int l = 0; l < n_lines; l++) {
        const report_series *s = lines[l].s;
        const char *color = palette[lines[l].color % (int)(sizeof palette / sizeof palette[0])];
        const char *dash = dashes[lines[l].run % (int)(sizeof dashes / sizeof dashes[0])];
        int64_t finite = 0;
        for (int64_t i = 0; i < s->n; i++) finite += isfinite(s->values[i]);
        report_buf_printf(b, "<path class=\"line\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s%s%s "
                             "data-run=\"%d\" data-points=\"%lld\" data-label=\"", color,
                          dash[0] ? " stroke-dasharray=\"" : "", dash, dash[0] ? "\"" : "", lines[l].run,
                          (long long)finite);
        report_buf_html(b, lines[l].label);
        report_buf_puts(b, "\" d=\"");
        int pen_down = 0;
        for (int64_t i = 0; i < s->n; i++) {
            double v = s->values[i];
            if (!isfinite(v)) { pen_down = 0; continue; }
            double x = x0 + ((double)s->steps[i] - xmin) / (xmax - xmin) * w;
            double y = y0 + h - (v - ymin) / (ymax - ymin) * h;
            report_buf_printf(b, "%s%.2f,%.2f", pen_down ? " L" : (i ? " M" : "M"), x, y);
            pen_down = 1;
        }
        report_buf_puts(b, "\"/>\n");
        if (finite <= 60)
            for (int64_t i = 0; i < s->n; i++) {
                double v = s->values[i];
                if (!isfinite(v)) continue;
                double x = x0 + ((double)s->steps[i] - xmin) / (xmax - xmin) * w;
                double y = y0 + h - (v - ymin) / (ymax - ymin) * h;
                report_buf_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.2\" fill=\"%s\"><title>step %lld: %.6g"
                                     "</title></circle>\n", x, y, color, (long long)s->steps[i], v);
            }
    }

    /* legend */
    for (int l = 0; l < n_lines; l++) {
        const char *color = palette[lines[l].color % (int)(sizeof palette / sizeof palette[0])];
        const char *dash = dashes[lines[l].run % (int)(sizeof dashes / sizeof dashes[0])];
        int y = PLOT_H + l * LEGEND_ROW + 4;
        report_buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s%s%s/>"
                             "<text class=\"legend\" x=\"%d\" y=\"%d\">", x0, y, x0 + 28, y, color,
                          dash[0] ? " stroke-dasharray=\"" : "", dash, dash[0] ? "\"" : "", x0 + 34, y + 4);
        report_buf_html(b, lines[l].label);
        report_buf_puts(b, "</text>\n");
    }
    report_buf_puts(b, "</svg>\n<figcaption>");
    for (int l = 0; l < n_lines; l++) {
        const report_series *s = lines[l].s;
        int64_t last = -1;
        for (int64_t i = 0; i < s->n; i++)
            if (isfinite(s->values[i])) last = i;
        report_buf_puts(b, l ? "<br>" : "");
        report_buf_html(b, lines[l].label);
        if (last >= 0)
            report_buf_printf(b, ": <span class=\"last\" data-step=\"%lld\">%.6g</span> at step %lld",
                              (long long)s->steps[last], s->values[last], (long long)s->steps[last]);
        else
            report_buf_puts(b, ": no finite values");
    }
    report_buf_puts(b, "</figcaption>\n</figure>\n");
}
