/* A progress line for long work (training steps, evaluation, data generation).
 * On a terminal it redraws one line in place (\r) at most ~10 times a second; in a
 * log file or pipe it writes a plain line at most every GRPO_PROGRESS_INTERVAL seconds
 * (default 10) and a final one, so logs stay short. A line reads
 *   "label: 120/1000 12.0% | 3.51/s | eta 4m11s | loss=1.23"
 * and the final one "label: 1000/1000 100.0% | 3.50/s | 4m45s total | loss=0.98". */
#ifndef GRPO_PROGRESS_H
#define GRPO_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct progress progress;

/* A progress line on stderr for `total` units of work (0: unknown, then no percent or
 * ETA). The label is copied. NULL only when out of memory. */
progress *progress_create(const char *label, int64_t total);
/* The same on `out` (not owned); TTY or not is decided by isatty(fileno(out)). */
progress *progress_create_on(FILE *out, const char *label, int64_t total);
/* `done` units are finished; fmt (NULL: none) is printf-style extra text shown after
 * the numbers, e.g. "loss=%.3f tok/s=%.0f". It is formatted on every call (kept for the
 * final line) but printed only when the line is due. */
void progress_update(progress *p, int64_t done, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints the final line (with the last extra text) and frees p. NULL does nothing. */
void progress_finish(progress *p);
/* Frees p without printing (for error paths). NULL does nothing. */
void progress_free(progress *p);

/* Work finished before this run started (a resumed run): it counts in done/total but
 * not in the rate or ETA. Call before the first update. */
void progress_set_start(progress *p, int64_t done);
/* For tests and callers with their own cadence: the seconds between plain lines
 * (overrides the environment; 0 prints every update), TTY mode on or off, and the
 * clock (seconds, any origin; NULL restores the monotonic clock). */
void progress_set_interval(progress *p, double seconds);
void progress_set_tty(progress *p, int tty);
void progress_set_clock(progress *p, double (*now)(void *ctx), void *ctx);

/* The phase of work now under way ("generate", "score", "train", "eval", "save"; NULL
 * or "" for none), shown after the counts: "rl: 12/100 12.0% [train] | ...". Copied. On
 * a terminal a new phase is drawn at once (it is how a user sees where a long step is);
 * clearing it makes the next progress_update draw regardless of the redraw period. */
void progress_set_phase(progress *p, const char *phase);
/* 1 when p redraws in place (a terminal), 0 for plain lines; 0 for NULL. Callers with
 * their own cadence in logs (the trainer: one line per logged step) use it together
 * with progress_set_interval(p, 0). */
int progress_is_tty(const progress *p);
/* Process-wide: when on, progress lines created afterwards print nothing (`--quiet`). */
void progress_set_quiet(int quiet);
int progress_quiet(void);

/* Seconds on the monotonic clock (for timing phases of work). */
double progress_now(void);
/* "45.0s", "4m05s", "2h03m" — a duration for humans; writes at most size bytes. */
void progress_format_duration(char *buf, size_t size, double seconds);

#endif
