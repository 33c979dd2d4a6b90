/* `grpo data arith|countdown`: seeded synthetic problems as JSONL on stdout (or --out). */
#include <stdio.h>
#include <string.h>

#include "data/generate.h"
#include "tools/args.h"
#include "tools/commands.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: grpo data arith|countdown --n N [--seed S] [--offset K] [--out FILE] [options]\n\n"
            "Writes N synthetic problems as JSONL (stdout unless --out). The same seed gives the same\n"
            "file; --offset K starts at problem index K (disjoint indices can still repeat a problem:\n"
            "use --split for sets that must never share one).\n\n"
            "arith: {\"id\",\"prompt\",\"answer\",\"response\"}; response is a worked digit-by-digit solution\n"
            "  --difficulty D   1..5, digits per operand (default 2)\n"
            "  --ops OPS        a subset of \"+-*\" (default \"+-*\")\n"
            "  --answer-noise P share of responses whose final <answer> is wrong (default 0)\n"
            "  --split S        all (default), train or held_out: one problem in 8, chosen by its\n"
            "                   operands and operator, is held out; the two splits never share a problem\n"
            "countdown: {\"id\",\"numbers\",\"target\",\"solution\"}, solvable by construction\n"
            "  --count C        numbers per problem, 2..8 (default 4)\n"
            "  --max-number M   numbers drawn from 1..M (default 99)\n"
            "  --max-target T   largest target and intermediate value (default 1000)\n"
            "  --use-all        the solution uses every number exactly once\n");
}

int cmd_data(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) { usage(stdout); return 0; }
    if (argc < 2 || (strcmp(argv[1], "arith") && strcmp(argv[1], "countdown"))) { usage(stderr); return 2; }
    int is_arith = !strcmp(argv[1], "arith");
    int64_t n = -1, seed = 0, offset = 0, v;
    const char *out_path = NULL, *value;
    data_arith_options arith = {.difficulty = 2, .ops = "+-*"};
    data_countdown_options countdown = {.count = 4, .max_number = 99, .max_target = 1000, .use_all = 0};
    for (int i = 2; i < argc; i++) {
        int m;
#define FLAG(name) ((m = arg_match(argc, argv, &i, name, &value)) != 0)
        if (FLAG("--n")) { if (m < 0 || !arg_int("data", "--n", value, 0, 100000000, &n)) return 2; }
        else if (FLAG("--seed")) { if (m < 0 || !arg_int("data", "--seed", value, 0, INT64_MAX, &seed)) return 2; }
        else if (FLAG("--offset")) { if (m < 0 || !arg_int("data", "--offset", value, 0, INT64_MAX / 2, &offset)) return 2; }
        else if (FLAG("--out")) { if (m < 0) return 2; out_path = value; }
        else if (is_arith && FLAG("--difficulty")) {
            if (m < 0 || !arg_int("data", "--difficulty", value, 1, 5, &v)) return 2;
            arith.difficulty = (int)v;
        } else if (is_arith && FLAG("--ops")) {
            if (m < 0) return 2;
            if (!value[0] || strspn(value, "+-*") != strlen(value)) {
                fprintf(stderr, "grpo data: --ops: expected a non-empty subset of \"+-*\", found '%s'\n", value);
                return 2;
            }
            arith.ops = value;
        } else if (is_arith && FLAG("--answer-noise")) {
            double p;
            if (m < 0 || !arg_double("data", "--answer-noise", value, 0, 1, &p)) return 2;
            arith.answer_noise = p;
        } else if (is_arith && FLAG("--split")) {
            if (m < 0) return 2;
            static const char *const splits[] = {"all", "train", "held_out"};
            int k = 0;
            while (k < 3 && strcmp(value, splits[k])) k++;
            if (k == 3) {
                fprintf(stderr, "grpo data: --split: expected all, train or held_out, found '%s'\n", value);
                return 2;
            }
            arith.split = k;
        } else if (!is_arith && FLAG("--count")) {
            if (m < 0 || !arg_int("data", "--count", value, 2, 8, &v)) return 2;
            countdown.count = (int)v;
        } else if (!is_arith && FLAG("--max-number")) {
            if (m < 0 || !arg_int("data", "--max-number", value, 1, 1000000, &v)) return 2;
            countdown.max_number = (int)v;
        } else if (!is_arith && FLAG("--max-target")) {
            if (m < 0 || !arg_int("data", "--max-target", value, 1, 1000000000, &v)) return 2;
            countdown.max_target = (int)v;
        } else if (!is_arith && !strcmp(argv[i], "--use-all")) {
            countdown.use_all = 1;
        } else {
            fprintf(stderr, "grpo data %s: unknown option '%s'\n", argv[1], argv[i]);
            return 2;
        }
#undef FLAG
    }
    if (n < 0) { fprintf(stderr, "grpo data: --n is required\n"); return 2; }
    if (!is_arith && countdown.max_target < countdown.max_number) {
        fprintf(stderr, "grpo data countdown: --max-target (%d) must be at least --max-number (%d)\n",
                countdown.max_target, countdown.max_number);
        return 2;
    }
    FILE *out = stdout;
    if (out_path && !(out = fopen(out_path, "w"))) {
        perror(out_path);
        return 1;
    }
    grpo_status s = is_arith ? data_write_arith(out, (uint64_t)seed, offset, (int)n, &arith)
                             : data_write_countdown(out, (uint64_t)seed, offset, (int)n, &countdown);
    if (out != stdout && fclose(out) != 0 && !s) s = grpo_fail(GRPO_ERR_IO, "%s: write failed", out_path);
    if (s) fprintf(stderr, "grpo data: %s\n", grpo_error_message());
    return grpo_exit_code(s);
}
