/* Small helpers for subcommand flags: "--flag VALUE" and "--flag=VALUE". */
#ifndef GRPO_TOOLS_ARGS_H
#define GRPO_TOOLS_ARGS_H

#include <stdint.h>

/* If argv[*i] is `flag`, stores its value (the next argument, or the part after '='),
 * advances *i past it and returns 1; returns -1 (after printing why) when the value is
 * missing; 0 when argv[*i] is another flag. */
int arg_match(int argc, char **argv, int *i, const char *flag, const char **value);
/* Parses a whole integer / float in [lo, hi]; prints "grpo CMD: --flag: expected ..." and
 * returns 0 on failure. */
int arg_int(const char *cmd, const char *flag, const char *value, int64_t lo, int64_t hi, int64_t *out);
int arg_double(const char *cmd, const char *flag, const char *value, double lo, double hi, double *out);

#endif
