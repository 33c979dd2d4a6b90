/* Reading `grpo report` pages back in tests: the <svg class="plot"> elements, their scale
 * (data-x0/y0/w/h, data-xmin/xmax/ymin/ymax) and the points of their <path class="line">
 * elements mapped back to (step, value), so tests compare them with the store. */
#ifndef GRPO_TESTS_REPORT_CHECK_H
#define GRPO_TESTS_REPORT_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *begin, *end;   /* the <svg ...> ... </svg> text */
    double x0, y0, w, h, xmin, xmax, ymin, ymax;
    char title[256];           /* data-title, still HTML-escaped */
} report_plot;

/* The value of attribute `name` in the tag starting at tag (up to its '>'), copied into
 * out; 0 when the tag lacks it. */
static inline int report_attr(const char *tag, const char *name, char *out, size_t n) {
    const char *end = strchr(tag, '>');
    char key[64];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *a = strstr(tag, key);
    if (!a || !end || a > end) return 0;
    a += strlen(key);
    const char *q = strchr(a, '"');
    if (!q) return 0;
    size_t len = (size_t)(q - a) < n - 1 ? (size_t)(q - a) : n - 1;
    memcpy(out, a, len);
    out[len] = 0;
    return 1;
}

static inline double report_attr_double(const char *tag, const char *name) {
    char v[64];
    return report_attr(tag, name, v, sizeof v) ? strtod(v, NULL) : NAN;
}

/* The next <svg class="plot"> at or after *cursor; advances *cursor past it. 0 at the end. */
static inline int report_next_plot(const char **cursor, report_plot *p) {
    const char *s = strstr(*cursor, "<svg class=\"plot\"");
    if (!s) return 0;
    const char *e = strstr(s, "</svg>");
    if (!e) return 0;
    p->begin = s;
    p->end = e;
    p->x0 = report_attr_double(s, "data-x0");
    p->y0 = report_attr_double(s, "data-y0");
    p->w = report_attr_double(s, "data-w");
    p->h = report_attr_double(s, "data-h");
    p->xmin = report_attr_double(s, "data-xmin");
    p->xmax = report_attr_double(s, "data-xmax");
    p->ymin = report_attr_double(s, "data-ymin");
    p->ymax = report_attr_double(s, "data-ymax");
    if (!report_attr(s, "data-title", p->title, sizeof p->title)) p->title[0] = 0;
    *cursor = e + 6;
    return 1;
}

/* The first plot whose data-title equals title (escaped form); 0 when none. */
static inline int report_find_plot(const char *html, const char *title, report_plot *p) {
    const char *c = html;
    while (report_next_plot(&c, p))
        if (!strcmp(p->title, title)) return 1;
    return 0;
}

/* The <path class="line"> of plot p with data-label == label (escaped form) and
 * data-run == run; NULL when none. */
static inline const char *report_find_line(const report_plot *p, const char *label, int run) {
    for (const char *t = p->begin; (t = strstr(t, "<path class=\"line\"")) && t < p->end; t++) {
        char l[512], r[16];
        if (report_attr(t, "data-label", l, sizeof l) && !strcmp(l, label) && report_attr(t, "data-run", r, sizeof r) &&
            atoi(r) == run)
            return t;
    }
    return NULL;
}

/* The points of a path tag as (step, value) through the plot's scale; returns how many
 * (at most max); *subpaths counts the "M" commands (a NaN in the data starts a new one). */
static inline int report_line_points(const report_plot *p, const char *path_tag, double *steps, double *values,
                                     int max, int *subpaths) {
    char *d = malloc(1 << 20);
    int n = 0;
    *subpaths = 0;
    if (!d || !report_attr(path_tag, "d", d, 1 << 20)) { free(d); return 0; }
    for (char *s = d; *s;) {
        if (*s == ' ') { s++; continue; }
        if (*s == 'M') (*subpaths)++;
        if (*s == 'M' || *s == 'L') s++;
        char *end;
        double x = strtod(s, &end);
        if (end == s || *end != ',') break;
        double y = strtod(end + 1, &s);
        if (n < max) {
            steps[n] = p->xmin + (x - p->x0) / p->w * (p->xmax - p->xmin);
            values[n] = p->ymin + (p->y0 + p->h - y) / p->h * (p->ymax - p->ymin);
        }
        n++;
    }
    free(d);
    return n;
}

/* Reads a whole file (malloc'd, NUL-terminated; NULL when unreadable). */
static inline char *report_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (buf) buf[got] = 0;
    if (len) *len = got;
    return buf;
}

static inline int report_count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

#endif
