/* Synthetic data generators: deterministic per seed, answers right (checked by an
 * independent evaluation of the prompt), countdown solvable with the given numbers,
 * prompt templates rendered and their errors named. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/generate.h"
#include "data/template.h"
#include "harness.h"

/* A tiny evaluator of + - * / and parentheses over integers, recording the numbers
 * used. Returns 0 on a syntax error or a non-exact division. */
typedef struct {
    const char *p;
    int used[16];
    int n_used;
    int ok;
} expr_parser;

static double parse_sum(expr_parser *e);

static void skip_spaces(expr_parser *e) {
    while (*e->p == ' ') e->p++;
}

static double parse_atom(expr_parser *e) {
    skip_spaces(e);
    if (*e->p == '(') {
        e->p++;
        double v = parse_sum(e);
        skip_spaces(e);
        if (*e->p != ')') e->ok = 0;
        else e->p++;
        return v;
    }
    if (*e->p < '0' || *e->p > '9') { e->ok = 0; return 0; }
    long v = strtol(e->p, (char **)&e->p, 10);
    if (e->n_used < 16) e->used[e->n_used++] = (int)v;
    return (double)v;
}

static double parse_product(expr_parser *e) {
    double v = parse_atom(e);
    for (;;) {
        skip_spaces(e);
        char op = *e->p;
        if (op != '*' && op != '/') return v;
        e->p++;
        double r = parse_atom(e);
        if (op == '*') v *= r;
        else if (r == 0 || (long long)v % (long long)r) { e->ok = 0; return 0; }
        else v /= r;
    }
}

static double parse_sum(expr_parser *e) {
    double v = parse_product(e);
    for (;;) {
        skip_spaces(e);
        char op = *e->p;
        if (op != '+' && op != '-') return v;
        e->p++;
        double r = parse_product(e);
        v = op == '+' ? v + r : v - r;
    }
}

static void test_arith(void) {
    char prompt[2048], answer[2048], response[2048], prompt2[2048], answer2[2048], response2[2048];
    int counts[3] = {0, 0, 0};
    for (int d = 1; d <= 5; d++) {
        data_arith_options o = {.difficulty = d, .ops = "+-*"};
        for (int i = 0; i < 300; i++) {
            data_arith_problem(77, (uint64_t)i, &o, prompt, answer, response, sizeof prompt);
            long long a, b, expect;
            char op;
            CHECK_MSG(sscanf(prompt, "What is %lld %c %lld?", &a, &op, &b) == 3, "prompt '%s'", prompt);
            expect = op == '+' ? a + b : op == '-' ? a - b : a * b;
            counts[op == '+' ? 0 : op == '-' ? 1 : 2]++;
            CHECK_INT(expect, atoll(answer));
            char tail[128];
            snprintf(tail, sizeof tail, "<answer>%lld</answer>", expect);
            CHECK_MSG(strstr(response, tail) && strncmp(response, "<think>", 7) == 0, "response '%s'", response);
            /* operand sizes follow the difficulty */
            if (op != '*') CHECK_MSG(a < (d == 5 ? 100000 : d == 4 ? 10000 : d == 3 ? 1000 : d == 2 ? 100 : 10),
                                     "difficulty %d operand %lld", d, a);
            /* same seed and index, same problem */
            data_arith_problem(77, (uint64_t)i, &o, prompt2, answer2, response2, sizeof prompt);
            CHECK_STR(prompt, prompt2);
            CHECK_STR(response, response2);
        }
    }
    CHECK(counts[0] > 100 && counts[1] > 100 && counts[2] > 100);
    /* ops restrict the operators */
    data_arith_options plus = {.difficulty = 3, .ops = "+"};
    for (int i = 0; i < 50; i++) {
        data_arith_problem(1, (uint64_t)i, &plus, prompt, answer, response, sizeof prompt);
        CHECK(strchr(prompt, '+') && !strchr(prompt, '*'));
    }
    /* another seed gives other problems */
    data_arith_options o = {.difficulty = 3, .ops = "+-*"};
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        data_arith_problem(1, (uint64_t)i, &o, prompt, answer, response, sizeof prompt);
        data_arith_problem(2, (uint64_t)i, &o, prompt2, answer2, response2, sizeof prompt);
        differ += strcmp(prompt, prompt2) != 0;
    }
    CHECK(differ >= 18);
}

/* answer_noise: that share of responses ends in a wrong <answer>; the gold stays right. */
static void test_arith_noise(void) {
    char prompt[2048], answer[2048], response[2048];
    data_arith_options o = {.difficulty = 2, .ops = "+-", .answer_noise = 0.3};
    int wrong = 0, n = 2000;
    for (int i = 0; i < n; i++) {
        data_arith_problem(5, (uint64_t)i, &o, prompt, answer, response, sizeof prompt);
        long long a, b;
        char op;
        CHECK(sscanf(prompt, "What is %lld %c %lld?", &a, &op, &b) == 3);
        CHECK_INT(op == '+' ? a + b : a - b, atoll(answer));
        const char *tag = strstr(response, "<answer>");
        CHECK(tag != NULL);
        if (tag && atoll(tag + 8) != atoll(answer)) wrong++;
    }
    CHECK_MSG(wrong > 0.25 * n && wrong < 0.35 * n, "%d of %d answers wrong, expected ~30%%", wrong, n);
}

/* Content splits: with 1-digit + and - there are only 200 distinct problems, so thousands
 * of draws cover each split whole. The splits must be disjoint, cover every problem between
 * them, hold out about one in DATA_SPLIT_HELD_OUT_SHARE, and keep DATA_SPLIT_ALL's draws. */
static void test_arith_split(void) {
    char prompt[2048], answer[2048], response[2048];
    static unsigned char seen[3][2][10][10];   /* [split][op][a][b] */
    memset(seen, 0, sizeof seen);
    for (int split = 0; split < 3; split++) {
        data_arith_options o = {.difficulty = 1, .ops = "+-", .split = split};
        for (int i = 0; i < 6000; i++) {
            data_arith_problem((uint64_t)(11 + split), (uint64_t)i, &o, prompt, answer, response, sizeof prompt);
            long long a, b;
            char op;
            CHECK(sscanf(prompt, "What is %lld %c %lld?", &a, &op, &b) == 3 && a >= 0 && a < 10 && b >= 0 && b < 10);
            if (a >= 0 && a < 10 && b >= 0 && b < 10) seen[split][op == '-'][a][b] = 1;
        }
    }
    int held = 0, all = 0;
    for (int op = 0; op < 2; op++)
        for (int a = 0; a < 10; a++)
            for (int b = 0; b < 10; b++) {
                CHECK_MSG(!(seen[1][op][a][b] && seen[2][op][a][b]), "%d %c %d drawn in both splits", a, "+-"[op], b);
                CHECK_MSG(seen[1][op][a][b] || seen[2][op][a][b], "%d %c %d in neither split", a, "+-"[op], b);
                held += seen[2][op][a][b];
                all += seen[0][op][a][b];
            }
    CHECK_INT(200, all);
    CHECK_MSG(held >= 200 / DATA_SPLIT_HELD_OUT_SHARE / 2 && held <= 200 * 2 / DATA_SPLIT_HELD_OUT_SHARE,
              "%d of 200 problems held out, expected about %d", held, 200 / DATA_SPLIT_HELD_OUT_SHARE);
    /* Most first draws are not held-out problems, so a held-out set must differ from the
     * unsplit one at most indices: the split really redraws. */
    data_arith_options all_o = {.difficulty = 2, .ops = "+-*"}, held_o = all_o;
    held_o.split = DATA_SPLIT_HELD_OUT;
    int differ = 0;
    char prompt2[2048];
    for (int i = 0; i < 64; i++) {
        data_arith_problem(3, (uint64_t)i, &all_o, prompt, answer, response, sizeof prompt);
        data_arith_problem(3, (uint64_t)i, &held_o, prompt2, answer, response, sizeof prompt2);
        differ += strcmp(prompt, prompt2) != 0;
    }
    CHECK_MSG(differ > 32, "held-out draws equal the unsplit ones %d of 64 times", 64 - differ);
}

static void test_countdown(void) {
    for (int use_all = 0; use_all <= 1; use_all++)
        for (int count = 2; count <= 6; count++) {
            data_countdown_options o = {.count = count, .max_number = 50, .max_target = 1000, .use_all = use_all};
            for (int i = 0; i < 100; i++) {
                int numbers[8], target;
                char solution[512];
                data_countdown_problem(9, (uint64_t)i, &o, numbers, &target, solution, sizeof solution);
                expr_parser e = {.p = solution, .ok = 1};
                double v = parse_sum(&e);
                skip_spaces(&e);
                CHECK_MSG(e.ok && *e.p == 0, "solution '%s' does not parse", solution);
                CHECK_MSG(v == target, "solution '%s' = %g, target %d", solution, v, target);
                CHECK(target >= 1 && target <= 1000);
                if (use_all) CHECK_INT(count, e.n_used);
                else CHECK(e.n_used >= 2 && e.n_used <= count);
                /* every number used comes from the list, each at most once */
                int taken[8] = {0};
                for (int u = 0; u < e.n_used; u++) {
                    int found = 0;
                    for (int k = 0; k < count && !found; k++)
                        if (!taken[k] && numbers[k] == e.used[u]) taken[k] = found = 1;
                    CHECK_MSG(found, "solution '%s' uses %d not available", solution, e.used[u]);
                }
                for (int k = 0; k < count; k++) CHECK(numbers[k] >= 1 && numbers[k] <= 50);
            }
        }
}

static void test_jsonl_output(void) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    data_arith_options o = {.difficulty = 2, .ops = "+-"};
    CHECK_OK(data_write_arith(f, 3, 10, 5, &o));
    data_countdown_options c = {.count = 4, .max_number = 20, .max_target = 500, .use_all = 1};
    CHECK_OK(data_write_countdown(f, 3, 0, 5, &c));
    fclose(f);
    int lines = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        json_error_t err;
        json_t *obj = json_loads(line, 0, &err);
        CHECK_MSG(obj != NULL, "line %d: %s", lines + 1, err.text);
        if (!obj) continue;
        CHECK(json_is_string(json_object_get(obj, "id")));
        if (lines < 5) {
            CHECK(json_is_string(json_object_get(obj, "prompt")) && json_is_string(json_object_get(obj, "answer")));
            char expect[64];
            snprintf(expect, sizeof expect, "arith-3-%d", 10 + lines);
            CHECK_STR(expect, json_string_value(json_object_get(obj, "id")));
        } else {
            CHECK_INT(4, json_array_size(json_object_get(obj, "numbers")));
            CHECK(json_is_integer(json_object_get(obj, "target")));
        }
        json_decref(obj);
    }
    CHECK_INT(10, lines);
    free(buf);
}

static void test_template(void) {
    json_t *line = json_pack("{s:s, s:[i,i,i], s:i, s:f}", "prompt", "2+2?", "numbers", 3, 5, 7, "target", 15, "x", 0.5);
    char *out = NULL;
    CHECK_OK(template_render("Q: {prompt} | {{literal}} | {numbers} -> {target} {x}", line, "t", &out));
    CHECK_STR("Q: 2+2? | {literal} | 3, 5, 7 -> 15 0.5", out);
    free(out);
    CHECK_OK(template_render(template_r1_zero, line, "t", &out));
    CHECK(out && strstr(out, "User: 2+2?. Assistant:") && strstr(out, "<think>"));
    free(out);
    CHECK_FAILS(template_render("{missing}", line, "data.jsonl:4", &out), "data.jsonl:4: template placeholder {missing}");
    CHECK(out == NULL);
    CHECK_FAILS(template_validate("oops {prompt", "prompt_template"), "unclosed");
    CHECK_FAILS(template_validate("oops }", "prompt_template"), "unmatched '}'");
    CHECK_FAILS(template_validate("{}", "prompt_template"), "empty placeholder");
    json_decref(line);
}

int main(void) {
    test_arith();
    test_arith_noise();
    test_arith_split();
    test_countdown();
    test_jsonl_output();
    test_template();
    TEST_MAIN_END();
}
