/* The progress line, written to a temporary file with a hand-driven clock: when lines
 * are due (interval, env override, TTY throttle) and what they say. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/progress.h"
#include "tests/harness.h"

static double fake_now;
static double fake_clock(void *ctx) { (void)ctx; return fake_now; }

/* Everything written to f so far (static buffer), then f is emptied. */
static const char *drain(FILE *f) {
    static char buf[8192];
    fflush(f);
    long n = ftell(f);
    rewind(f);
    size_t got = fread(buf, 1, n > 0 && n < (long)sizeof buf ? (size_t)n : sizeof buf - 1, f);
    buf[got] = 0;
    rewind(f);
    CHECK(ftruncate(fileno(f), 0) == 0);
    return buf;
}

static void test_plain_lines(void) {
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f) return;
    fake_now = 100;
    progress *p = progress_create_on(f, "train", 100);
    progress_set_clock(p, fake_clock, NULL);
    progress_set_interval(p, 10);
    fake_now = 101;
    progress_update(p, 10, "loss=%.2f", 2.5);
    CHECK_STR("", drain(f));                       /* not due yet */
    fake_now = 110;
    progress_update(p, 50, "loss=%.2f tok/s=%d", 1.23, 800);
    CHECK_STR("train: 50/100 50.0% | 5.00/s | eta 10.0s | loss=1.23 tok/s=800\n", drain(f));
    fake_now = 119.5;
    progress_update(p, 60, NULL);
    CHECK_STR("", drain(f));                       /* 9.5 s after the last line */
    fake_now = 120;
    progress_update(p, 100, "loss=%.2f", 0.98);
    CHECK_STR("train: 100/100 100.0% | 5.00/s | eta 0.0s | loss=0.98\n", drain(f));
    fake_now = 121;
    progress_finish(p);                            /* final line, always */
    CHECK_STR("train: 100/100 100.0% | 4.76/s | 21.0s total | loss=0.98\n", drain(f));
    fclose(f);
}

static void test_env_interval(void) {
    FILE *f = tmpfile();
    if (!f) { CHECK(f != NULL); return; }
    setenv("GRPO_PROGRESS_INTERVAL", "3", 1);
    fake_now = 0;
    progress *p = progress_create_on(f, "gen", 0);   /* unknown total */
    progress_set_clock(p, fake_clock, NULL);
    int lines = 0;
    for (int s = 1; s <= 12; s++) {
        fake_now = s;
        progress_update(p, 2 * s, NULL);
        const char *out = drain(f);
        if (*out) {
            lines++;
            CHECK_MSG(s % 3 == 0, "line at t=%d: %s", s, out);
        }
        if (s == 6) CHECK_STR("gen: 12 | 2.00/s\n", out);
    }
    CHECK_INT(4, lines);
    progress_finish(p);
    CHECK_STR("gen: 24 | 2.00/s | 12.0s total\n", drain(f));

    /* A bad value falls back to 10 s (with a warning on stderr). */
    setenv("GRPO_PROGRESS_INTERVAL", "soon", 1);
    fake_now = 0;
    p = progress_create_on(f, "x", 10);
    progress_set_clock(p, fake_clock, NULL);
    fake_now = 9.9;
    progress_update(p, 1, NULL);
    CHECK_STR("", drain(f));
    fake_now = 10;
    progress_update(p, 2, NULL);
    CHECK(strstr(drain(f), "x: 2/10") != NULL);
    progress_free(p);                              /* no final line */
    CHECK_STR("", drain(f));
    unsetenv("GRPO_PROGRESS_INTERVAL");
    fclose(f);
}

static void test_tty(void) {
    FILE *f = tmpfile();
    if (!f) { CHECK(f != NULL); return; }
    fake_now = 0;
    progress *p = progress_create_on(f, "eval", 1000);
    CHECK(p != NULL);
    progress_set_clock(p, fake_clock, NULL);
    progress_set_tty(p, 1);
    /* 1000 updates, 1 ms apart: at most ~10 redraws per second plus the first one. */
    for (int i = 1; i <= 1000; i++) {
        fake_now = i * 0.001;
        progress_update(p, i, "acc=%d", i);
    }
    const char *out = drain(f);
    int redraws = 0;
    for (const char *c = out; *c; c++) redraws += *c == '\r';
    CHECK_MSG(redraws >= 10 && redraws <= 12, "%d redraws", redraws);
    CHECK(strchr(out, '\n') == NULL);              /* one line, redrawn in place */
    CHECK(strstr(out, "\033[K") != NULL);
    progress_finish(p);
    out = drain(f);
    CHECK_STR("\reval: 1000/1000 100.0% | 1000.00/s | 1.0s total | acc=1000\033[K\n", out);
    fclose(f);
}

static void test_slow_and_resumed(void) {
    FILE *f = tmpfile();
    if (!f) { CHECK(f != NULL); return; }
    fake_now = 0;
    progress *p = progress_create_on(f, "", 10);
    progress_set_clock(p, fake_clock, NULL);
    progress_set_interval(p, 0);                   /* every update */
    progress_set_start(p, 4);                      /* 4 done by an earlier run */
    fake_now = 90;
    progress_update(p, 6, NULL);                   /* 2 steps in 90 s: 45 s each */
    CHECK_STR("6/10 60.0% | 45.0s/it | eta 3m00s\n", drain(f));
    fake_now = 90;
    progress_update(p, 6, NULL);
    progress_free(p);
    drain(f);

    fake_now = 0;
    p = progress_create_on(f, "none", 5);
    progress_set_clock(p, fake_clock, NULL);
    progress_set_interval(p, 0);
    progress_update(p, 0, NULL);                   /* no time has passed: no rate yet */
    CHECK_STR("none: 0/5 0.0% | ?/s | eta ?\n", drain(f));
    progress_finish(p);
    drain(f);
    progress_finish(NULL);
    progress_free(NULL);
    progress_update(NULL, 1, NULL);

    /* A label longer than the buffer is cut, not overflowed. */
    char label[400];
    memset(label, 'a', sizeof label - 1);
    label[sizeof label - 1] = 0;
    p = progress_create_on(f, label, 1);
    progress_finish(p);
    CHECK(strlen(drain(f)) > 100);
    fclose(f);
}

static void test_durations(void) {
    char b[32];
    progress_format_duration(b, sizeof b, 0);       CHECK_STR("0.0s", b);
    progress_format_duration(b, sizeof b, 59.94);   CHECK_STR("59.9s", b);
    progress_format_duration(b, sizeof b, 60);      CHECK_STR("1m00s", b);
    progress_format_duration(b, sizeof b, 3599.4);  CHECK_STR("59m59s", b);
    progress_format_duration(b, sizeof b, 3600);    CHECK_STR("1h00m", b);
    progress_format_duration(b, sizeof b, 7380);    CHECK_STR("2h03m", b);
    progress_format_duration(b, sizeof b, -5);      CHECK_STR("0.0s", b);
    progress_format_duration(b, sizeof b, 0.0 / 0.0); CHECK_STR("0.0s", b);
}

/* The trainer's live line: a phase is drawn at once on a terminal, clearing it lets the
 * next update draw at once; in a log, interval 0 gives one line per update and phases
 * print nothing by themselves; progress_set_quiet silences lines created afterwards. */
static void test_phase_and_quiet(void) {
    FILE *f = tmpfile();
    if (!f) { CHECK(f != NULL); return; }
    fake_now = 0;
    progress *p = progress_create_on(f, "rl step", 10);
    progress_set_clock(p, fake_clock, NULL);
    progress_set_tty(p, 1);
    CHECK(progress_is_tty(p));
    progress_set_phase(p, "generate");
    CHECK(strstr(drain(f), "rl step: 0/10 0.0% [generate] |") != NULL);
    fake_now = 0.01;   /* well inside the redraw period */
    progress_set_phase(p, NULL);
    progress_update(p, 1, "reward %.3f", 0.5);
    const char *out = drain(f);
    CHECK_MSG(strstr(out, "rl step: 1/10 10.0% |") && strstr(out, "reward 0.500") && !strstr(out, "[generate]"), "%s", out);
    progress_free(p);
    drain(f);

    p = progress_create_on(f, "rl step", 4);
    progress_set_clock(p, fake_clock, NULL);
    progress_set_tty(p, 0);
    progress_set_interval(p, 0);
    CHECK(!progress_is_tty(p));
    for (int i = 1; i <= 4; i++) {
        progress_set_phase(p, "train");
        fake_now += 0.001;
        progress_update(p, i, "kl %.1f", (double)i);
    }
    out = drain(f);
    int lines = 0;
    for (const char *c = out; *c; c++) lines += *c == '\n';
    CHECK_INT(4, lines);
    CHECK(strstr(out, "rl step: 3/4 75.0% [train]") && strstr(out, "kl 3.0"));
    progress_free(p);

    progress_set_quiet(1);
    CHECK(progress_quiet());
    p = progress_create_on(f, "quiet", 2);
    CHECK(p != NULL);
    progress_set_tty(p, 1);
    progress_set_phase(p, "generate");
    progress_update(p, 1, "x");
    progress_finish(p);
    CHECK_STR("", drain(f));
    progress_set_quiet(0);
    fclose(f);
}

int main(void) {
    test_phase_and_quiet();
    test_plain_lines();
    test_env_interval();
    test_tty();
    test_slow_and_resumed();
    test_durations();
    TEST_MAIN_END();
}
