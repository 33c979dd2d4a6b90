/* Logging with levels to stderr. The level comes from GRPO_LOG (error, warn, info,
 * debug) or log_set_level; messages at or above it are printed with a timestamp. */
#ifndef GRPO_LOG_H
#define GRPO_LOG_H

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level;

void log_set_level(log_level level);
/* Printed after the level tag of every line from now on ("rank 1: "); NULL or "" for none. */
void log_set_prefix(const char *prefix);
log_level log_get_level(void);
/* Parses "error|warn|info|debug"; returns -1 for anything else. */
int log_level_parse(const char *name);
void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)

#endif
