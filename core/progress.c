/* The progress line of progress.h: when a line is due, formatting the numbers, and
 * drawing it in place (terminal) or as plain lines (logs). */
#include "core/progress.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

enum { PROGRESS_LABEL_MAX = 128, PROGRESS_EXTRA_MAX = 512, PROGRESS_PHASE_MAX = 32 };
static const double PROGRESS_TTY_PERIOD = 0.1;        /* at most ~10 redraws a second */
static const double PROGRESS_DEFAULT_INTERVAL = 10.0; /* seconds between plain lines */

struct progress {
    FILE *out;
    char label[PROGRESS_LABEL_MAX];
    char extra[PROGRESS_EXTRA_MAX];
    char phase[PROGRESS_PHASE_MAX];
    int silent;             /* created while progress_set_quiet(1): prints nothing */
    int phase_cleared;      /* the phase went away since the last draw: the next update draws */
    int64_t total, done, start_done;
    int tty;
    int drawn;              /* a TTY line is on screen (needs a newline at the end) */
    double interval;        /* seconds between plain lines */
    double t_start, t_last; /* clock at create, and at the last line printed */
    double (*now)(void *ctx);
    void *now_ctx;
};

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int quiet_all;   /* progress_set_quiet */

void progress_set_quiet(int quiet) { quiet_all = quiet != 0; }
int progress_quiet(void) { return quiet_all; }

static double monotonic_seconds(void *ctx) {
    (void)ctx;
    return progress_now();
}

static double interval_from_env(void) {
    const char *s = getenv("GRPO_PROGRESS_INTERVAL");
    if (!s || !*s) return PROGRESS_DEFAULT_INTERVAL;
    char *end;
    double v = strtod(s, &end);
    if (*end != 0 || !(v >= 0 && v < 1e9)) {
        log_warn("GRPO_PROGRESS_INTERVAL: expected seconds >= 0, found \"%s\"; using %.0f",
                 s, PROGRESS_DEFAULT_INTERVAL);
        return PROGRESS_DEFAULT_INTERVAL;
    }
    return v;
}

progress *progress_create_on(FILE *out, const char *label, int64_t total) {
    progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->out = out;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total > 0 ? total : 0;
    p->tty = isatty(fileno(out));
    p->silent = quiet_all;
    p->interval = interval_from_env();
    p->now = monotonic_seconds;
    p->t_start = p->t_last = p->now(NULL);
    return p;
}

progress *progress_create(const char *label, int64_t total) {
    return progress_create_on(stderr, label, total);
}

void progress_set_interval(progress *p, double seconds) { p->interval = seconds > 0 ? seconds : 0; }
void progress_set_tty(progress *p, int tty) { p->tty = tty != 0; }

int progress_is_tty(const progress *p) { return p && p->tty; }

void progress_set_start(progress *p, int64_t done) {
    p->start_done = done;
    p->done = done;
}

void progress_set_clock(progress *p, double (*now)(void *ctx), void *ctx) {
    p->now = now ? now : monotonic_seconds;
    p->now_ctx = now ? ctx : NULL;
    p->t_start = p->t_last = p->now(p->now_ctx);
}

void progress_format_duration(char *buf, size_t size, double seconds) {
    if (!(seconds >= 0)) seconds = 0;
    if (seconds < 60) {
        snprintf(buf, size, "%.1fs", seconds);
    } else if (seconds < 3600) {
        long s = (long)(seconds + 0.5);
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
    } else {
        long m = (long)(seconds / 60 + 0.5);
        snprintf(buf, size, "%ldh%02ldm", m / 60, m % 60);
    }
}

/* "label: done/total pct% | rate | eta T" (or "| T total" when final) + " | extra". */
static void format_line(const progress *p, double now, int final, char *buf, size_t size) {
    double elapsed = now - p->t_start;
    double rate = elapsed > 0 ? (double)(p->done - p->start_done) / elapsed : 0;
    size_t n = 0;
#define APPEND(...) do { if (n < size) { int w_ = snprintf(buf + n, size - n, __VA_ARGS__); \
        if (w_ > 0) n += (size_t)w_; } } while (0)
    APPEND("%s%s", p->label, p->label[0] ? ": " : "");
    if (p->total > 0)
        APPEND("%lld/%lld %.1f%%", (long long)p->done, (long long)p->total, 100.0 * p->done / p->total);
    else
        APPEND("%lld", (long long)p->done);
    if (p->phase[0] && !final) APPEND(" [%s]", p->phase);
    char t[32];
    if (rate <= 0) {
        APPEND(" | ?/s");
    } else if (rate < 1) {
        progress_format_duration(t, sizeof t, 1.0 / rate);
        APPEND(" | %s/it", t);
    } else {
        APPEND(" | %.2f/s", rate);
    }
    if (final) {
        progress_format_duration(t, sizeof t, elapsed);
        APPEND(" | %s total", t);
    } else if (p->total > 0) {
        if (rate > 0) {
            double left = p->total > p->done ? (double)(p->total - p->done) / rate : 0;
            progress_format_duration(t, sizeof t, left);
            APPEND(" | eta %s", t);
        } else {
            APPEND(" | eta ?");
        }
    }
    if (p->extra[0]) APPEND(" | %s", p->extra);
#undef APPEND
}

static void draw(progress *p, double now, int final) {
    if (p->silent) return;
    char line[PROGRESS_LABEL_MAX + PROGRESS_EXTRA_MAX + 160];
    format_line(p, now, final, line, sizeof line);
    if (p->tty) {
        /* \033[K clears what a longer earlier line left to the right. */
        fprintf(p->out, "\r%s\033[K%s", line, final ? "\n" : "");
        p->drawn = !final;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->t_last = now;
    p->phase_cleared = 0;
}

void progress_update(progress *p, int64_t done, const char *fmt, ...) {
    if (!p) return;
    p->done = done;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->extra, sizeof p->extra, fmt, ap);
        va_end(ap);
    } else {
        p->extra[0] = 0;
    }
    double now = p->now(p->now_ctx);
    double period = p->tty ? PROGRESS_TTY_PERIOD : p->interval;
    int first_tty_draw = p->tty && !p->drawn;
    if (first_tty_draw || (p->tty && p->phase_cleared) || now - p->t_last >= period) draw(p, now, 0);
}

void progress_set_phase(progress *p, const char *phase) {
    if (!p) return;
    snprintf(p->phase, sizeof p->phase, "%s", phase ? phase : "");
    if (p->tty && p->phase[0]) draw(p, p->now(p->now_ctx), 0);
    else if (p->tty) p->phase_cleared = 1;
}

void progress_finish(progress *p) {
    if (!p) return;
    draw(p, p->now(p->now_ctx), 1);
    free(p);
}

void progress_free(progress *p) {
    if (!p) return;
    if (p->tty && p->drawn && !p->silent) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    free(p);
}
