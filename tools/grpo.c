/* The `grpo` command line: dispatches to one function per subcommand (tools/cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "tools/commands.h"

static const command commands[] = {
    {"run", "run the stages of a config (pretrain, sft, grpo, rejection, distill, eval)", cmd_run},
    {"init", "a randomly initialised model from a preset, HF layout", cmd_init},
    {"forward", "logits of a model over given token ids, as safetensors", cmd_forward},
    {"data", "synthetic problems (arith, countdown) as JSONL", cmd_data},
    {"verify", "JSONL in, verdicts out: math, code, countdown, format", cmd_verify},
    {"sample", "G sampled completions per dataset line, as JSONL", cmd_sample},
    {"eval", "pass@1, pass@k, maj@k of a model on a JSONL problem set", cmd_eval},
    {"report", "HTML report of one or more runs: plots per stage, tables, config", cmd_report},
    {"inspect", "rollouts, rewards, verdicts and advantages from a run's store", cmd_inspect},
    {"info", "version, backends compiled in, devices seen", cmd_info},
};
enum { NUM_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *out) {
    fprintf(out, "usage: grpo COMMAND [ARGS...]\n\n"
                 "DeepSeek-R1-style reasoning RL trainer (GRPO), in C.\n\ncommands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`grpo COMMAND --help` describes one command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    if (!strcmp(argv[1], "--version")) { printf("grpo %s\n", GRPO_VERSION); return 0; }
    for (int i = 0; i < NUM_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "grpo: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
