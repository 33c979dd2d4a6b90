/* One entry per `grpo` subcommand. Each run() gets argv starting at the command name,
 * handles --help itself, and returns the process exit code (0 ok, 1 error, 2 usage). */
#ifndef GRPO_TOOLS_COMMANDS_H
#define GRPO_TOOLS_COMMANDS_H

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

int cmd_info(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

/* True when argv holds --help or -h. */
int cmd_wants_help(int argc, char **argv);

#endif
