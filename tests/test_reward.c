/* Tests of reward composition (verifiers/reward.h): each component against hand-computed
 * values, weighted totals, config errors with their place and key path, problem lines that
 * lack a field, batch scoring through the verify pool (a hanging program does not hang the
 * caller), and scoring from several threads at once. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "verifiers/reward.h"
#include "verifiers/sandbox.h"
#include "harness.h"

static json_t *parse_json(const char *text) {
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    if (!v) fprintf(stderr, "test JSON does not parse: %s: %s\n", text, err.text);
    return v;
}

/* Builds a set from YAML text holding a top-level `rewards:` list; *doc must be freed. */
static grpo_status set_from_yaml(const char *yaml, cfg_doc **doc, reward_set **set) {
    *set = NULL;
    GRPO_TRY(cfg_load_string(yaml, strlen(yaml), "r.yaml", doc));
    return reward_set_from_config(cfg_get(cfg_root(*doc), "rewards"), set);
}

/* The config must be refused with a message holding every needle. */
static void expect_config_error(const char *yaml, const char *needle1, const char *needle2) {
    cfg_doc *doc = NULL;
    reward_set *set = NULL;
    grpo_status s = set_from_yaml(yaml, &doc, &set);
    const char *m = grpo_error_message();
    CHECK_MSG(s != GRPO_OK, "config accepted:\n%s", yaml);
    CHECK(set == NULL);
    CHECK_MSG(!needle1 || strstr(m, needle1), "message \"%s\" lacks \"%s\"", m, needle1);
    CHECK_MSG(!needle2 || strstr(m, needle2), "message \"%s\" lacks \"%s\"", m, needle2);
    reward_set_free(set);
    cfg_doc_free(doc);
}

static double component(const reward_result *r, const char *name) {
    for (int j = 0; j < r->n_components; j++)
        if (!strcmp(r->components[j].name, name)) return r->components[j].score;
    fprintf(stderr, "no component %s\n", name);
    return -999;
}

static const char *r1_response = "<think>2 + 2 is 4</think>\n<answer>The answer is \\boxed{4}</answer>";

/* Language consistency scores the reasoning (R1 sec. 2.3.2, the CoT), not the answer. */
static void test_language_consistency_reasoning(void) {
    cfg_doc *doc = NULL;
    reward_set *set = NULL;
    CHECK_OK(set_from_yaml("rewards:\n  - name: language_consistency\n    params: {script: latin}\n", &doc, &set));
    cfg_doc_free(doc);
    if (!set) return;
    json_t *problem = parse_json("{\"prompt\": \"q\", \"answer\": \"4\"}");
    reward_result r;
    /* inside <think>..</think>: 8 Latin letters (twowords) of 10; the CJK answer is ignored */
    CHECK_OK(reward_set_score(set, problem, "<think>\xe6\x80\x9d\xe8\x80\x83 two words</think>"
                                            "<answer>\xe7\xad\x94\xe6\xa1\x88\xe7\xad\x94</answer>", -1, &r));
    CHECK_NEAR(8.0 / 10.0, component(&r, "language_consistency"), 1e-6, 0);
    /* the prompt opened the block: up to </think>, 9 Latin (reasoning) of 11 */
    CHECK_OK(reward_set_score(set, problem, "reasoning \xe4\xb8\xad\xe6\x96\x87</think> <answer>\xe4\xb8\xad</answer>",
                              -1, &r));
    CHECK_NEAR(9.0 / 11.0, component(&r, "language_consistency"), 1e-6, 0);
    /* never closed: to the end, 3 of 4 */
    CHECK_OK(reward_set_score(set, problem, "<think>abc \xe4\xb8\xad", -1, &r));
    CHECK_NEAR(3.0 / 4.0, component(&r, "language_consistency"), 1e-6, 0);
    json_decref(problem);
    reward_set_free(set);
}

static void test_math_format_components(void) {
    const char *yaml =
        "rewards:\n"
        "  - name: accuracy\n    weight: 2\n"
        "  - name: format\n    weight: 0.5\n"
        "  - name: tag_count\n    weight: 0.25\n"
        "  - name: language_consistency\n    weight: 0.1\n"
        "  - name: repetition_penalty\n    weight: 1\n    params: {ngram_size: 2, max_penalty: -0.5}\n";
    cfg_doc *doc = NULL;
    reward_set *set = NULL;
    CHECK_OK(set_from_yaml(yaml, &doc, &set));
    cfg_doc_free(doc);   /* the set keeps nothing from the doc */
    if (!set) return;
    CHECK_INT(5, reward_set_size(set));
    CHECK_STR("accuracy", reward_set_name(set, 0));
    CHECK_STR("repetition_penalty", reward_set_name(set, 4));
    CHECK_NEAR(0.5, reward_set_weight(set, 1), 0, 0);
    CHECK_INT(0, reward_set_has_code(set));

    json_t *problem = parse_json("{\"prompt\": \"2+2?\", \"answer\": \"4\"}");
    reward_result r;
    CHECK_OK(reward_set_score(set, problem, r1_response, 20, &r));
    CHECK_INT(5, r.n_components);
    CHECK_NEAR(1, component(&r, "accuracy"), 0, 0);
    CHECK_NEAR(1, component(&r, "format"), 0, 0);
    CHECK_NEAR(1, component(&r, "tag_count"), 0, 0);
    CHECK_NEAR(1, component(&r, "language_consistency"), 0, 0);
    /* words: <think>2 + 2 is 4</think> <answer>The answer is \boxed{4}</answer>: 9 words, 8
     * bigrams, all distinct -> 0 */
    CHECK_NEAR(0, component(&r, "repetition_penalty"), 0, 0);
    CHECK_NEAR(2 * 1 + 0.5 * 1 + 0.25 * 1 + 0.1 * 1 + 0, r.total, 1e-12, 0);
    CHECK_INT(1, r.has_verdict);
    CHECK_INT(1, r.correct);
    CHECK_STR("correct", r.verdict);
    CHECK_STR("4", r.extracted);
    CHECK_INT(GRPO_OK, r.status);

    /* A wrong, unformatted, repetitive, partly CJK answer: "a b a b a b 中文 5" has 8 words,
     * 7 bigrams of which 4 are distinct ("a b", "b a", "b 中文", "中文 5"):
     * (1 - 4/7) * -0.5; letters a b a b a b 中 文: 6 Latin of 8. */
    const char *bad = "a b a b a b 中文 5";
    CHECK_OK(reward_set_score(set, problem, bad, 8, &r));
    CHECK_NEAR(0, component(&r, "accuracy"), 0, 0);
    CHECK_NEAR(0, component(&r, "format"), 0, 0);
    CHECK_NEAR(0, component(&r, "tag_count"), 0, 0);
    CHECK_NEAR(6.0 / 8.0, component(&r, "language_consistency"), 1e-6, 0);
    CHECK_NEAR((1 - 4.0 / 7.0) * -0.5, component(&r, "repetition_penalty"), 1e-6, 0);
    CHECK_NEAR(0.1 * 6.0 / 8.0 + (1 - 4.0 / 7.0) * -0.5, r.total, 1e-6, 0);
    CHECK_INT(0, r.correct);
    CHECK_STR("wrong", r.verdict);
    for (int j = 0; j < r.n_components; j++)
        CHECK_NEAR(r.components[j].weight * r.components[j].score, r.components[j].weighted, 1e-12, 0);

    /* <think> and </think> twice: only the two answer tags count */
    CHECK_OK(reward_set_score(set, problem, "<think>a</think><think>b</think><answer>4</answer>", 5, &r));
    CHECK_NEAR(0.5, component(&r, "tag_count"), 0, 0);
    /* the template's lazy .*? still spans "a</think><think>b": a format match (as open-r1's) */
    CHECK_NEAR(1, component(&r, "format"), 0, 0);
    json_decref(problem);
    reward_set_free(set);
}

static void test_tag_count_newlines_and_no_answer(void) {
    cfg_doc *doc = NULL;
    reward_set *set = NULL;
    CHECK_OK(set_from_yaml("rewards:\n  - name: tag_count\n    params: {newlines: true}\n  - name: accuracy\n"
                           "    params: {answer_field: solution}\n", &doc, &set));
    cfg_doc_free(doc);
    if (!set) return;
    json_t *problem = parse_json("{\"solution\": \"\\\\frac{1}{2}\"}");
    reward_result r;
    /* exact strings: "<think>\n" yes, "\n</think>\n" no, "\n<answer>\n" yes, "\n</answer>" yes */
    CHECK_OK(reward_set_score(set, problem, "<think>\nx</think>\n<answer>\n0.5\n</answer>", -1, &r));
    CHECK_NEAR(0.75, component(&r, "tag_count"), 0, 0);
    CHECK_NEAR(1, component(&r, "accuracy"), 0, 0);
    CHECK_STR("correct", r.verdict);
    CHECK_OK(reward_set_score(set, problem, "I cannot decide between several long possibilities here, sorry about it", -1, &r));
    CHECK_NEAR(0, component(&r, "accuracy"), 0, 0);
    CHECK_STR("no_answer", r.verdict);
    json_decref(problem);
    reward_set_free(set);
}

static void test_countdown_and_overlong(void) {
    cfg_doc *doc = NULL;
    reward_set *set = NULL;
    CHECK_OK(set_from_yaml("rewards:\n  - name: countdown\n    params: {format_score: 0.1}\n"
                           "  - name: overlong_penalty\n    weight: 0.5\n    params: {max_len: 100, cache_len: 20}\n",
                           &doc, &set));
    cfg_doc_free(doc);
    if (!set) return;
    json_t *problem = parse_json("{\"numbers\": [25, 3, 7, 1], \"target\": 82}");
    reward_result r;
    CHECK_OK(reward_set_score(set, problem, "<think>try</think><answer>25 * 3 + 7</answer>", 50, &r));
    CHECK_NEAR(1, component(&r, "countdown"), 0, 0);
    CHECK_NEAR(0, component(&r, "overlong_penalty"), 0, 0);   /* 50 <= 100 - 20 */
    CHECK_STR("correct", r.verdict);
    CHECK_STR("25 * 3 + 7", r.extracted);
    CHECK_NEAR(1.0, r.total, 1e-12, 0);
    /* wrong value: the format score; 90 tokens: ((100 - 20) - 90) / 20 = -0.5 */
    CHECK_OK(reward_set_score(set, problem, "<answer>25 * 3 + 1</answer>", 90, &r));
    CHECK_NEAR(0.1, component(&r, "countdown"), 1e-12, 0);
    CHECK_NEAR(-0.5, component(&r, "overlong_penalty"), 1e-6, 0);
    CHECK_NEAR(0.1 + 0.5 * -0.5, r.total, 1e-6, 0);
    CHECK_STR("wrong_value", r.verdict);
    CHECK_INT(0, r.correct);
    /* no expression at all: 0; past max_len: -1 */
    CHECK_OK(reward_set_score(set, problem, "<answer>I give up</answer>", 101, &r));
    CHECK_NEAR(0, component(&r, "countdown"), 0, 0);
    CHECK_NEAR(-1, component(&r, "overlong_penalty"), 0, 0);
    CHECK_STR("unparseable", r.verdict);
    /* the token count is needed */
    CHECK_FAILS(reward_set_score(set, problem, "<answer>25 * 3 + 7</answer>", -1, &r), "token count");
    CHECK(r.status != GRPO_OK);
    CHECK_NEAR(0, r.total, 0, 0);
    json_decref(problem);
    reward_set_free(set);
}

/* Entries built in C, no YAML: weights only. */
static void test_create_from_entries(void) {
    reward_entry entries[3] = {reward_entry_defaults, reward_entry_defaults, reward_entry_defaults};
    entries[0].kind = REWARD_ACCURACY;
    entries[0].weight = 1.5;
    entries[1].kind = REWARD_FORMAT;
    entries[1].weight = -0.25;
    entries[2].kind = REWARD_TAG_COUNT;
    entries[2].weight = 0.125;
    reward_set *set = NULL;
    CHECK_OK(reward_set_create(entries, 3, &set));
    if (!set) return;
    json_t *problem = parse_json("{\"answer\": 4}");   /* an integer gold is fine */
    reward_result r;
    CHECK_OK(reward_set_score(set, problem, r1_response, -1, &r));
    CHECK_NEAR(1.5 - 0.25 + 0.125, r.total, 1e-12, 0);
    json_decref(problem);
    reward_set_free(set);

    /* duplicate names, out-of-range kinds and counts */
    entries[1].kind = REWARD_ACCURACY;
    CHECK_FAILS(reward_set_create(entries, 3, &set), "rewards[1]: 'accuracy' appears twice");
    CHECK(set == NULL);
    entries[1].kind = 99;
    CHECK_FAILS(reward_set_create(entries, 3, &set), "rewards[1]");
    CHECK_FAILS(reward_set_create(entries, 0, &set), "1 to 16");
    entries[0].kind = REWARD_OVERLONG_PENALTY;
    CHECK_FAILS(reward_set_create(entries, 1, &set), "rewards[0]: params: overlong_penalty needs 'max_len'");
    entries[0].kind = REWARD_LENGTH;
    CHECK_FAILS(reward_set_create(entries, 1, &set), "length needs a verdict reward");
}

static void test_config_errors(void) {
    /* unknown name: at the value, with the key path and a suggestion */
    expect_config_error("rewards:\n  - name: acuracy\n", "r.yaml:2:11: rewards[0].name", "did you mean 'accuracy'");
    /* bad and unknown params: at the value, with the key path */
    expect_config_error("rewards:\n  - name: accuracy\n  - name: repetition_penalty\n    params: {ngram_size: 0}\n",
                        "r.yaml:4:26: rewards[1].params.ngram_size", "expected a value in [1, 64], found 0");
    expect_config_error("rewards:\n  - name: repetition_penalty\n    params: {max_penalty: 0.5}\n",
                        "rewards[0].params.max_penalty", "found 0.5");
    expect_config_error("rewards:\n  - name: format\n    params: {patern: x}\n", "rewards[0].params",
                        "unknown key 'patern'");
    expect_config_error("rewards:\n  - name: format\n    params:\n      pattern: \"(\"\n",
                        "r.yaml:4:16: rewards[0].params.pattern", "missing closing parenthesis");
    expect_config_error("rewards:\n  - name: code\n    params: {compare: fuzzy}\n", "rewards[0].params.compare",
                        "'whitespace'");
    expect_config_error("rewards:\n  - name: language_consistency\n    params: {script: klingon}\n",
                        "rewards[0].params.script", "'cjk'");
    expect_config_error("rewards:\n  - name: accuracy\n    params: {answer_field: \"\"}\n",
                        "rewards[0].params.answer_field", "field name");
    expect_config_error("rewards:\n  - name: accuracy\n    params: [1, 2]\n", "rewards[0].params", "mapping");
    expect_config_error("rewards:\n  - name: accuracy\n    weight: heavy\n", "rewards[0].weight", "'heavy'");
    /* required params: missing entirely (placed at the entry) or partly; cross-field check */
    expect_config_error("rewards:\n  - name: accuracy\n  - name: overlong_penalty\n",
                        "r.yaml:3:5: rewards[1]", "needs 'max_len'");
    expect_config_error("rewards:\n  - name: overlong_penalty\n    params: {max_len: 10}\n",
                        "rewards[0].params", "cache_len");
    expect_config_error("rewards:\n  - name: overlong_penalty\n    params: {max_len: 10, cache_len: 20}\n",
                        "rewards[0].params.cache_len", "cache_len <= max_len");
    /* set-level rules */
    expect_config_error("rewards:\n  - name: format\n  - name: format\n", "rewards[1]", "appears twice");
    expect_config_error("rewards:\n  - name: format\n  - name: length\n", "rewards[1]", "verdict reward");
    expect_config_error("rewards: 3\n", "rewards", "list of rewards");
    expect_config_error("rewards: []\n", "rewards", "1 to 16");
    expect_config_error("rewards:\n  - accuracy\n", "rewards[0]", "mapping");
    expect_config_error("rewards:\n  - weight: 1\n", "rewards[0]", "name");
    /* inside a bigger config the full key path shows */
    cfg_doc *doc = NULL;
    const char *yaml = "stages:\n  - name: rl\n    rewards:\n      - name: tag_count\n        params: {newlines: maybe}\n";
    CHECK_OK(cfg_load_string(yaml, strlen(yaml), "run.yaml", &doc));
    reward_set *set = NULL;
    if (doc) CHECK_FAILS(reward_set_from_config(cfg_get(cfg_root(doc), "stages[0].rewards"), &set),
                         "run.yaml:5:28: stages[0].rewards[0].params.newlines");
    cfg_doc_free(doc);
}

static void test_missing_fields(void) {
    reward_entry e[2] = {reward_entry_defaults, reward_entry_defaults};
    reward_set *acc = NULL, *cd = NULL, *code = NULL;
    e[0].kind = REWARD_ACCURACY;
    CHECK_OK(reward_set_create(e, 1, &acc));
    e[0].kind = REWARD_COUNTDOWN;
    CHECK_OK(reward_set_create(e, 1, &cd));
    e[0].kind = REWARD_CODE;
    CHECK_OK(reward_set_create(e, 1, &code));
    if (!acc || !cd || !code) goto done;
    reward_result r;
    json_t *p = parse_json("{\"prompt\": \"x\"}");
    CHECK_FAILS(reward_set_score(acc, p, "\\boxed{1}", -1, &r), "reward 'accuracy' needs field 'answer'");
    CHECK(r.status != GRPO_OK && strstr(r.error, "'answer'"));
    CHECK_FAILS(reward_set_score(cd, p, "<answer>1</answer>", -1, &r), "reward 'countdown' needs field 'numbers'");
    CHECK_FAILS(reward_set_score(code, p, "```python\nprint(1)\n```", -1, &r), "reward 'code' needs field 'language'");
    json_decref(p);
    p = parse_json("{\"answer\": [1]}");
    CHECK_FAILS(reward_set_score(acc, p, "\\boxed{1}", -1, &r), "found an array");
    json_decref(p);
    p = parse_json("{\"answer\": \"\\\\frac{1\"}");   /* a gold that does not parse */
    CHECK_FAILS(reward_set_score(acc, p, "\\boxed{1}", -1, &r), "field 'answer'");
    CHECK(r.total == 0 && r.verdict[0] == 0);
    json_decref(p);
    p = parse_json("{\"numbers\": [1, 2], \"target\": \"3\"}");
    CHECK_FAILS(reward_set_score(cd, p, "<answer>1+2</answer>", -1, &r), "needs field 'target' (an integer), found a string");
    json_decref(p);
    p = parse_json("{\"numbers\": [1, 2.5], \"target\": 3}");
    CHECK_FAILS(reward_set_score(cd, p, "<answer>1+2</answer>", -1, &r), "at index 1");
    json_decref(p);
    p = parse_json("{\"language\": \"python\"}");
    CHECK_FAILS(reward_set_score(code, p, "```python\nprint(1)\n```", -1, &r), "needs field 'tests'");
    json_decref(p);
    p = parse_json("{\"language\": \"python\", \"tests\": [{\"input\": \"\"}]}");
    CHECK_FAILS(reward_set_score(code, p, "```python\nprint(1)\n```", -1, &r), "'tests'[0]");
    json_decref(p);
    p = parse_json("[1, 2]");
    CHECK_FAILS(reward_set_score(acc, p, "\\boxed{1}", -1, &r), "expected a JSON object");
    json_decref(p);
done:
    reward_set_free(acc);
    reward_set_free(cd);
    reward_set_free(code);
}

static void test_extract_code(void) {
    size_t start, len;
    const char *t = "text ```python\nprint(1)\n``` more ```\nprint(2)\n```";
    CHECK_INT(1, reward_extract_code(t, strlen(t), &start, &len));
    CHECK_INT(strlen("print(2)\n"), len);
    CHECK(!strncmp(t + start, "print(2)\n", len));
    /* inside the answer tag, the block there wins over a later one outside */
    t = "<think>```python\nbad()\n```</think><answer>```py\ngood()\n```</answer>";
    CHECK_INT(1, reward_extract_code(t, strlen(t), &start, &len));
    CHECK(len == 7 && !strncmp(t + start, "good()\n", len));
    t = "<answer>no code here</answer> ```python\nx()\n```";
    CHECK_INT(0, reward_extract_code(t, strlen(t), &start, &len));
    t = "```python\nunclosed()\n";
    CHECK_INT(0, reward_extract_code(t, strlen(t), &start, &len));
    CHECK_INT(0, reward_extract_code("", 0, &start, &len));
}

static void test_length_groups(void) {
    cfg_doc *doc = NULL;
    reward_set *set = NULL;
    CHECK_OK(set_from_yaml("rewards:\n  - name: accuracy\n  - name: length\n    weight: 0.5\n", &doc, &set));
    cfg_doc_free(doc);
    if (!set) return;
    json_t *p1 = parse_json("{\"answer\": \"7\"}"), *p2 = parse_json("{\"answer\": \"9\"}");
    const json_t *problems[8] = {p1, p1, p1, p1, p2, p2, p2, p2};
    const char *responses[8] = {"\\boxed{7}", "\\boxed{6}", "\\boxed{7}", "\\boxed{8}",
                                "\\boxed{9}", "\\boxed{9}", "\\boxed{1}", "\\boxed{9}"};
    int tokens[8] = {10, 20, 30, 50, 5, 5, 5, 5};
    reward_result r[8];
    CHECK_OK(reward_set_score_batch(set, NULL, problems, responses, tokens, 8, 4, r));
    /* group 1: lo 10, hi 50, lambda = 0.5 - (len - 10) / 40 = 0.5, 0.25, 0, -0.5;
     * correct, wrong, correct, wrong -> 0.5, min(0, 0.25) = 0, 0, -0.5 */
    const double expect1[4] = {0.5, 0.0, 0.0, -0.5};
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(expect1[i], component(&r[i], "length"), 1e-12, 0);
        CHECK_NEAR((i % 2 == 0 ? 1.0 : 0.0) + 0.5 * expect1[i], r[i].total, 1e-12, 0);
    }
    /* group 2: equal lengths: 0 for all */
    for (int i = 4; i < 8; i++) CHECK_NEAR(0, component(&r[i], "length"), 0, 0);
    CHECK_FAILS(reward_set_score_batch(set, NULL, problems, responses, tokens, 8, 3, r), "divide");
    /* alone, a response is a group of one */
    reward_result one;
    CHECK_OK(reward_set_score(set, p1, "\\boxed{7}", 40, &one));
    CHECK_NEAR(0, component(&one, "length"), 0, 0);
    json_decref(p1);
    json_decref(p2);
    reward_set_free(set);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_code_batch(void) {
    if (!sandbox_python_path()) {
        printf("code reward: python3 not found, skipped\n");
        return;
    }
    cfg_doc *doc = NULL;
    reward_set *set = NULL;
    CHECK_OK(set_from_yaml("rewards:\n  - name: code\n    params: {time_limit_s: 1, partial_credit: true}\n"
                           "  - name: format\n    weight: 0.5\n", &doc, &set));
    cfg_doc_free(doc);
    if (!set) return;
    CHECK_INT(1, reward_set_has_code(set));
    json_t *p = parse_json("{\"language\": \"python\", \"tests\": [{\"input\": \"3\\n\", \"output\": \"6\\n\"}, "
                           "{\"input\": \"5\\n\", \"output\": \"10\\n\"}]}");
    json_t *bad = parse_json("{\"language\": \"python\"}");
    const char *good = "<think>double it</think>\n<answer>```python\nprint(int(input()) * 2)\n```</answer>";
    const char *half = "```python\nx = int(input())\nprint(6 if x == 3 else 0)\n```";
    const char *hang = "<think>loop</think><answer>```python\nwhile True:\n    pass\n```</answer>";
    const char *none = "<think>hmm</think><answer>no program</answer>";
    const json_t *problems[5] = {p, p, p, p, bad};
    const char *responses[5] = {good, half, hang, none, good};
    reward_result r[5];
    verify_pool *pool = NULL;
    CHECK_OK(verify_pool_create(2, 8, &pool));
    if (!pool) goto done;
    double t0 = now_s();
    CHECK_OK(reward_set_score_batch(set, pool, problems, responses, NULL, 5, 1, r));
    double elapsed = now_s() - t0;
    CHECK_MSG(elapsed < 30, "a batch with a hanging program took %.1f s", elapsed);
    CHECK_INT(GRPO_OK, r[0].status);
    CHECK_NEAR(1, component(&r[0], "code"), 0, 0);
    CHECK_NEAR(1, component(&r[0], "format"), 0, 0);
    CHECK_NEAR(1.5, r[0].total, 1e-12, 0);
    CHECK_STR("ok", r[0].verdict);
    CHECK_INT(1, r[0].correct);
    CHECK_NEAR(0.5, component(&r[1], "code"), 0, 0);   /* partial credit: 1 of 2 */
    CHECK_STR("wrong_answer", r[1].verdict);
    CHECK_INT(0, r[1].correct);
    CHECK_NEAR(0, component(&r[2], "code"), 0, 0);
    CHECK_STR("time_limit", r[2].verdict);
    CHECK_NEAR(0.5, r[2].total, 1e-12, 0);             /* formatted, but it hangs */
    CHECK_STR("no_code", r[3].verdict);
    CHECK_NEAR(0.5, r[3].total, 1e-12, 0);
    CHECK(r[4].status != GRPO_OK && strstr(r[4].error, "'tests'"));
    CHECK_INT(0, verify_pool_count(pool));             /* cleared */

    /* the same without a pool, and one sample alone */
    reward_result s[5];
    CHECK_OK(reward_set_score_batch(set, NULL, problems, responses, NULL, 5, 1, s));
    for (int i = 0; i < 5; i++) {
        CHECK_NEAR(r[i].total, s[i].total, 1e-12, 0);
        CHECK_STR(r[i].verdict, s[i].verdict);
        CHECK_INT(r[i].status, s[i].status);
    }
    reward_result one;
    CHECK_OK(reward_set_score(set, p, good, -1, &one));
    CHECK_NEAR(1.5, one.total, 1e-12, 0);
done:
    verify_pool_free(pool);
    json_decref(p);
    json_decref(bad);
    reward_set_free(set);
}

/* ---- several threads scoring with one set ----------------------------------------------- */

typedef struct {
    const reward_set *set;
    const json_t *const *problems;
    const char *const *responses;
    const double *expected;
    int n, rounds, mismatches;
} thread_work;

static void *score_thread(void *arg) {
    thread_work *w = arg;
    for (int k = 0; k < w->rounds; k++)
        for (int i = 0; i < w->n; i++) {
            reward_result r;
            if (reward_set_score(w->set, w->problems[i], w->responses[i], 10, &r) != GRPO_OK ||
                r.total != w->expected[i])
                w->mismatches++;
        }
    return NULL;
}

static void test_threads(void) {
    cfg_doc *doc = NULL;
    reward_set *set = NULL;
    CHECK_OK(set_from_yaml("rewards:\n  - name: accuracy\n  - name: countdown\n    weight: 0.5\n"
                           "  - name: format\n    weight: 0.25\n  - name: repetition_penalty\n", &doc, &set));
    cfg_doc_free(doc);
    if (!set) return;
    json_t *p = parse_json("{\"answer\": \"10\", \"numbers\": [2, 5, 3], \"target\": 10}");
    const json_t *problems[4] = {p, p, p, p};
    const char *responses[4] = {"<think>2*5</think>\n<answer>2 * 5</answer>", "<think>x</think><answer>\\boxed{10}</answer>",
                                "<answer>5 + 3 + 2</answer>", "no no no no no no"};
    double expected[4];
    for (int i = 0; i < 4; i++) {
        reward_result r;
        CHECK_OK(reward_set_score(set, p, responses[i], 10, &r));
        expected[i] = r.total;
    }
    /* 2 * 5 is 10 both as math and countdown; 5 + 3 + 2 as well, without the format */
    CHECK_NEAR(1 + 0.5 + 0.25, expected[0], 1e-12, 0);
    CHECK_NEAR(1 + 0.5, expected[2], 1e-12, 0);
    enum { NT = 4 };
    pthread_t threads[NT];
    thread_work work[NT];
    for (int t = 0; t < NT; t++) {
        work[t] = (thread_work){set, problems, responses, expected, 4, 200, 0};
        pthread_create(&threads[t], NULL, score_thread, &work[t]);
    }
    int mismatches = 0;
    for (int t = 0; t < NT; t++) {
        pthread_join(threads[t], NULL);
        mismatches += work[t].mismatches;
    }
    CHECK_INT(0, mismatches);
    json_decref(p);
    reward_set_free(set);
}

int main(void) {
    test_math_format_components();
    test_language_consistency_reasoning();
    test_tag_count_newlines_and_no_answer();
    test_countdown_and_overlong();
    test_create_from_entries();
    test_config_errors();
    test_missing_fields();
    test_extract_code();
    test_length_groups();
    test_threads();
    test_code_batch();
    TEST_MAIN_END();
}
