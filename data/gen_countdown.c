/* Synthetic countdown problems, solvable by construction (data/generate.h). A random
 * expression tree is built over the drawn numbers; its value is the target. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "data/generate.h"

enum { MAX_NUMBERS = 8 };

typedef struct {
    int64_t value;
    char text[256];
} partial;

/* Combines a and b with a random operator whose result is a positive integer (exact
 * division only); returns 0 when no operator qualifies. */
static int combine(rng_stream *r, const partial *a, const partial *b, partial *out, int64_t max_value) {
    int order[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; i--) {
        int j = (int)rng_next_below(r, (uint32_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < 4; k++) {
        const partial *x = a, *y = b;
        int64_t v;
        char op;
        switch (order[k]) {
        case 0: v = a->value + b->value; op = '+'; break;
        case 1: if (a->value < b->value) { x = b; y = a; }
                v = x->value - y->value; op = '-'; break;
        case 2: v = a->value * b->value; op = '*'; break;
        default:
            if (a->value < b->value) { x = b; y = a; }
            if (y->value == 0 || x->value % y->value != 0) continue;
            v = x->value / y->value; op = '/'; break;
        }
        if (v <= 0 || v > max_value) continue;
        out->value = v;
        snprintf(out->text, sizeof out->text, "(%.120s %c %.120s)", x->text, op, y->text);
        return 1;
    }
    return 0;
}

void data_countdown_problem(uint64_t seed, uint64_t index, const data_countdown_options *opt, int *numbers,
                            int *target, char *solution, size_t size) {
    int count = opt->count < 2 ? 2 : opt->count > MAX_NUMBERS ? MAX_NUMBERS : opt->count;
    int max_number = opt->max_number < 1 ? 1 : opt->max_number;
    int64_t max_target = opt->max_target < 1 ? 1000 : opt->max_target;
    for (uint64_t attempt = 0;; attempt++) {
        /* Each attempt is its own stream so a retry never depends on thread timing. */
        rng_stream r = rng_stream_make(seed, index * 1024 + attempt);
        partial pool[MAX_NUMBERS];
        for (int i = 0; i < count; i++) {
            numbers[i] = 1 + (int)rng_next_below(&r, (uint32_t)max_number);
            pool[i].value = numbers[i];
            snprintf(pool[i].text, sizeof pool[i].text, "%d", numbers[i]);
        }
        int use = opt->use_all ? count : 2 + (int)rng_next_below(&r, (uint32_t)(count - 1));
        /* Draw which numbers take part: shuffle the pool, take the first `use`. */
        for (int i = count - 1; i > 0; i--) {
            int j = (int)rng_next_below(&r, (uint32_t)(i + 1));
            partial t = pool[i];
            pool[i] = pool[j];
            pool[j] = t;
        }
        int live = use, ok = 1;
        while (live > 1 && ok) {
            int i = (int)rng_next_below(&r, (uint32_t)live), j = (int)rng_next_below(&r, (uint32_t)(live - 1));
            if (j >= i) j++;
            partial merged;
            ok = combine(&r, &pool[i], &pool[j], &merged, max_target);
            if (!ok) break;
            int lo = i < j ? i : j, hi = i < j ? j : i;
            pool[lo] = merged;
            pool[hi] = pool[live - 1];
            live--;
        }
        /* Options are validated by the caller (max_target >= max_number), so some
         * operator always fits within a few attempts; the bound guards our invariant. */
        GRPO_ASSERTF(attempt < 100000, "countdown: no expression found for options count=%d max=%d",
                     count, max_number);
        if (!ok) continue;
        *target = (int)pool[0].value;
        /* Drop the outer parentheses of the final expression. */
        const char *text = pool[0].text;
        size_t n = strlen(text);
        if (n >= 2 && text[0] == '(' && text[n - 1] == ')') snprintf(solution, size, "%.*s", (int)(n - 2), text + 1);
        else snprintf(solution, size, "%s", text);
        return;
    }
}

grpo_status data_write_countdown(FILE *out, uint64_t seed, int64_t index_offset, int n,
                                 const data_countdown_options *opt) {
    int numbers[MAX_NUMBERS], target;
    char solution[512], id[64];
    int count = opt->count < 2 ? 2 : opt->count > MAX_NUMBERS ? MAX_NUMBERS : opt->count;
    for (int i = 0; i < n; i++) {
        uint64_t index = (uint64_t)(index_offset + i);
        data_countdown_problem(seed, index, opt, numbers, &target, solution, sizeof solution);
        snprintf(id, sizeof id, "countdown-%" PRIu64 "-%" PRIu64, seed, index);
        json_t *nums = json_array();
        for (int k = 0; k < count; k++) json_array_append_new(nums, json_integer(numbers[k]));
        json_t *line = json_pack("{s:s, s:o, s:i, s:s}", "id", id, "numbers", nums, "target", target,
                                 "solution", solution);
        if (!line || json_dumpf(line, out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || fputc('\n', out) == EOF) {
            json_decref(line);
            return grpo_fail(GRPO_ERR_IO, "data countdown: cannot write line %d", i + 1);
        }
        json_decref(line);
    }
    return GRPO_OK;
}
