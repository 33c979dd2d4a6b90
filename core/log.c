/* Leveled logging to stderr; one line per call, written whole so threads don't interleave. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int current_level = -1;
static char current_prefix[64];

int log_level_parse(const char *name) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0) return i;
    return -1;
}

log_level log_get_level(void) {
    if (current_level < 0) {
        int parsed = log_level_parse(getenv("GRPO_LOG"));
        current_level = parsed < 0 ? LOG_INFO : parsed;
    }
    return (log_level)current_level;
}

void log_set_level(log_level level) { current_level = level; }

void log_set_prefix(const char *prefix) { snprintf(current_prefix, sizeof current_prefix, "%s", prefix ? prefix : ""); }

void log_write(log_level level, const char *fmt, ...) {
    if (level > log_get_level()) return;
    static const char *tags[] = {"error", "warn", "info", "debug"};
    char line[4096];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    int n = (int)strftime(line, sizeof line, "%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - n, " [%s] %s", tags[level], current_prefix);
    va_list ap;
    va_start(ap, fmt);
    if (n < (int)sizeof line) n += vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}
