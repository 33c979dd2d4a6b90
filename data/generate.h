/* Seeded generators of synthetic reasoning problems, written as JSONL (DESIGN.md's
 * dataset formats). The same (seed, n, options) always gives the same file, whatever the
 * thread count: problem i draws from its own RNG stream (core/rng.h). */
#ifndef GRPO_DATA_GENERATE_H
#define GRPO_DATA_GENERATE_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

/* Arithmetic: multi-digit +, - and * with a worked, digit-by-digit solution.
 * difficulty 1..5: operands of `difficulty` digits for + and -, and for * a
 * difficulty-digit number times a 1-digit one (2-digit from difficulty 4 on).
 * ops: a subset of "+-*". Each line: {"id","prompt","answer","response"}, where response
 * is "<think>steps</think> <answer>N</answer>" (usable for SFT) and answer the number. */
/* Content splits: a problem (operands and operator) is in exactly one of train and
 * held_out, one in DATA_SPLIT_HELD_OUT_SHARE held out, so sets drawn from different splits
 * never share a problem. DATA_SPLIT_ALL draws from both. */
enum { DATA_SPLIT_ALL = 0, DATA_SPLIT_TRAIN = 1, DATA_SPLIT_HELD_OUT = 2 };
#define DATA_SPLIT_HELD_OUT_SHARE 8

typedef struct {
    int difficulty;
    const char *ops;
    int split;             /* DATA_SPLIT_*: which problems may be drawn */
    double answer_noise;   /* share of responses whose final <answer> is wrong (the worked
                              steps and the "answer" field stay right): pretraining text
                              for a base that knows the method but is unreliable */
} data_arith_options;

/* Countdown: `count` numbers in [1, max_number] and a target reachable with + - * /
 * (exact division, positive intermediates) using each number exactly once when
 * use_all, else a random subset of at least two. Solvable by construction: the line
 * carries the construction as "solution". Each line: {"id","numbers","target","solution"}. */
typedef struct {
    int count;
    int max_number;
    int max_target;
    int use_all;
} data_countdown_options;

/* One problem, into caller buffers prompt, answer and response, each of `size` bytes. */
void data_arith_problem(uint64_t seed, uint64_t index, const data_arith_options *opt, char *prompt,
                        char *answer, char *response, size_t size);
/* numbers: [opt->count] out; the solution expression (which may leave some numbers out
 * unless use_all) into a buffer of `size` bytes. */
void data_countdown_problem(uint64_t seed, uint64_t index, const data_countdown_options *opt, int *numbers,
                            int *target, char *solution, size_t size);

/* Writes n problems as JSONL to out; ids are "<kind>-<seed>-<index>". index_offset lets
 * a held-out split draw disjoint indices from the same seed. */
grpo_status data_write_arith(FILE *out, uint64_t seed, int64_t index_offset, int n, const data_arith_options *opt);
grpo_status data_write_countdown(FILE *out, uint64_t seed, int64_t index_offset, int n,
                                 const data_countdown_options *opt);

#endif
