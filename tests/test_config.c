/* Tests for core/config: a realistic run config binds into structs; every error class
 * names the right place (line:column found independently from the text), path and
 * values; malformed YAML reports libyaml's problem; overrides; aliases; dumps. */
#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness.h"

/* ---- the test schema: a run config in the shape of DESIGN.md -------------------- */

typedef struct {
    const char *name;
    double weight;
    const cfg_node *params;
} t_reward;

typedef struct {
    const char *name;
    int kind;
    int max_steps;
    t_reward *rewards;
    int num_rewards;
} t_stage;

typedef struct {
    const char *path;
    int precision;
    int num_layers;
} t_model;

typedef struct {
    const char *train;
    const char *template;
    int shuffle;
    int64_t seed;
    const char **files;
    int num_files;
} t_data;

typedef struct {
    double learning_rate;
    double weight_decay;
    double *betas;
    int num_betas;
    double max_grad_norm;
} t_optimizer;

typedef struct {
    int num_generations;
    double temperature;
    double top_p;
    int top_k;
    int max_completion_length;
    double repetition_penalty;
    const char **stop;
    int num_stop;
    int *bucket_sizes;
    int num_bucket_sizes;
} t_rollout;

typedef struct {
    t_model model;
    t_data data;
    t_optimizer optimizer;
    t_rollout rollout;
    t_stage *stages;
    int num_stages;
} t_run;

static const char *const precisions[] = {"fp32", "bf16", "fp8", NULL};
static const char *const stage_kinds[] = {"sft", "grpo", "eval", NULL};

static const cfg_field reward_schema[] = {
    CFG_FIELD_STRING(t_reward, name, "name", "reward function", .required = 1),
    CFG_FIELD_FLOAT(t_reward, weight, "weight", 0, 10, "weight in the sum"),
    CFG_FIELD_ANY(t_reward, params, "params", "free-form parameters"),
    CFG_END,
};
static const t_reward reward_defaults = {.weight = 1.0};

static const cfg_field stage_schema[] = {
    CFG_FIELD_STRING(t_stage, name, "name", "stage name", .required = 1),
    CFG_FIELD_ENUM(t_stage, kind, "kind", stage_kinds, "what the stage does"),
    CFG_FIELD_INT(t_stage, max_steps, "max_steps", 1, 1e9, "optimizer steps"),
    CFG_FIELD_LIST(t_stage, rewards, num_rewards, "rewards", t_reward, reward_schema, &reward_defaults, 8, "rewards"),
    CFG_END,
};
static const t_stage stage_defaults = {.kind = 1, .max_steps = 10};

static const cfg_field model_schema[] = {
    CFG_FIELD_STRING(t_model, path, "path", "model directory"),
    CFG_FIELD_ENUM(t_model, precision, "precision", precisions, "compute precision"),
    CFG_FIELD_INT(t_model, num_layers, "num_layers", 1, 1024, "layers"),
    CFG_END,
};
static const cfg_field data_schema[] = {
    CFG_FIELD_STRING(t_data, train, "train", "training set"),
    CFG_FIELD_STRING(t_data, template, "template", "prompt template"),
    CFG_FIELD_BOOL(t_data, shuffle, "shuffle", "shuffle each epoch"),
    CFG_FIELD_INT64(t_data, seed, "seed", 0, 1e18, "shuffle seed"),
    CFG_FIELD_STRING_LIST(t_data, files, num_files, "files", 4, "extra files"),
    CFG_END,
};
static const cfg_field optimizer_schema[] = {
    CFG_FIELD_FLOAT(t_optimizer, learning_rate, "learning_rate", 0, 1, "peak learning rate"),
    CFG_FIELD_FLOAT(t_optimizer, weight_decay, "weight_decay", 0, 1, "decoupled weight decay"),
    CFG_FIELD_FLOAT_LIST(t_optimizer, betas, num_betas, "betas", 0, 1, 2, "Adam betas"),
    CFG_FIELD_FLOAT(t_optimizer, max_grad_norm, "max_grad_norm", 0, 1e9, "clip", .nullable = 1,
                    .null_value = NAN),
    CFG_END,
};
static const cfg_field rollout_schema[] = {
    CFG_FIELD_INT(t_rollout, num_generations, "num_generations", 1, 4096, "G"),
    CFG_FIELD_FLOAT(t_rollout, temperature, "temperature", 0, CFG_NO_MAX, "sampling temperature"),
    CFG_FIELD_FLOAT(t_rollout, top_p, "top_p", 0, 1, "nucleus"),
    CFG_FIELD_INT(t_rollout, top_k, "top_k", 1, 1e6, "top-k (null: off)", .nullable = 1, .null_value = 0),
    CFG_FIELD_INT(t_rollout, max_completion_length, "max_completion_length", 1, 1e7, "tokens"),
    CFG_FIELD_FLOAT(t_rollout, repetition_penalty, "repetition_penalty", CFG_NO_MIN, CFG_NO_MAX, "penalty"),
    CFG_FIELD_STRING_LIST(t_rollout, stop, num_stop, "stop", 0, "stop strings", .nullable = 1),
    CFG_FIELD_INT_LIST(t_rollout, bucket_sizes, num_bucket_sizes, "bucket_sizes", 1, 65536, 0, "buckets"),
    CFG_END,
};
static const cfg_field run_schema[] = {
    CFG_FIELD_SECTION(t_run, model, "model", model_schema, "the policy"),
    CFG_FIELD_SECTION(t_run, data, "data", data_schema, "the dataset"),
    CFG_FIELD_SECTION(t_run, optimizer, "optimizer", optimizer_schema, "AdamW"),
    CFG_FIELD_SECTION(t_run, rollout, "rollout", rollout_schema, "sampling"),
    CFG_FIELD_LIST(t_run, stages, num_stages, "stages", t_stage, stage_schema, &stage_defaults, 16, "pipeline"),
    CFG_END,
};

static void run_defaults(t_run *r) {
    memset(r, 0, sizeof *r);
    r->model.precision = 0;
    r->model.num_layers = 2;
    r->optimizer.learning_rate = 3e-4;
    r->optimizer.weight_decay = 0.0;
    r->optimizer.max_grad_norm = 1.0;
    r->rollout.num_generations = 4;
    r->rollout.temperature = 1.0;
    r->rollout.top_p = 0.95;
    r->rollout.top_k = 50;
    r->rollout.max_completion_length = 256;
    r->rollout.repetition_penalty = 1.25;
    r->data.train = "default.jsonl";
}

static const char good_yaml[] =
    "# a test run\n"
    "model:\n"
    "  path: models/tiny\n"
    "  precision: bf16\n"
    "  num_layers: 4\n"
    "data:\n"
    "  train: data/train.jsonl\n"
    "  template: |\n"
    "    Question: {prompt}\n"
    "    Answer:\n"
    "  shuffle: yes\n"
    "  seed: 12345678901\n"
    "  files: [a.jsonl, \"b.jsonl\"]\n"
    "optimizer:\n"
    "  learning_rate: 1e-5\n"
    "  weight_decay: 0.1\n"
    "  betas: [0.9, 0.95]\n"
    "  max_grad_norm: ~\n"
    "rollout:\n"
    "  num_generations: 8\n"
    "  temperature: 0.7\n"
    "  top_k: null\n"
    "  max_completion_length: 1e3\n"
    "  stop: [\"</answer>\", \"\\n\\n\"]\n"
    "  bucket_sizes: [128, 256]\n"
    "stages:\n"
    "  - name: sft\n"
    "    kind: sft\n"
    "    max_steps: 100\n"
    "  - name: rl\n"
    "    kind: grpo\n"
    "    rewards:\n"
    "      - name: accuracy\n"
    "      - name: format\n"
    "        weight: 0.5\n"
    "        params: {tag: answer, strict: true}\n";

/* "cfg.yaml:L:C:" of the first `needle` in text (plus `skip` bytes), counted here. */
static const char *pos_of(const char *text, const char *needle, int skip) {
    static char bufs[4][64];
    static int next;
    char *buf = bufs[next++ % 4];
    const char *p = strstr(text, needle);
    if (!p) return "(needle not in text)";
    p += skip;
    int line = 1, col = 1;
    for (const char *q = text; q < p; q++) {
        if (*q == '\n') line++, col = 1;
        else col++;
    }
    snprintf(buf, 64, "cfg.yaml:%d:%d:", line, col);
    return buf;
}

static cfg_doc *last_doc;

static grpo_status load(const char *text, cfg_doc **doc) {
    return cfg_load_string(text, strlen(text), "cfg.yaml", doc);
}

/* Loads text, fills defaults, binds; the doc stays alive until the next call. */
static grpo_status bind_text(const char *text, t_run *run) {
    cfg_doc_free(last_doc);
    last_doc = NULL;
    run_defaults(run);
    GRPO_TRY(load(text, &last_doc));
    return cfg_bind(cfg_root(last_doc), run_schema, run);
}

static void check_good_run(const t_run *r) {
    CHECK_STR("models/tiny", r->model.path);
    CHECK_INT(1, r->model.precision);
    CHECK_INT(4, r->model.num_layers);
    CHECK_STR("data/train.jsonl", r->data.train);
    CHECK_STR("Question: {prompt}\nAnswer:\n", r->data.template);
    CHECK_INT(1, r->data.shuffle);
    CHECK_INT(12345678901LL, r->data.seed);
    CHECK_INT(2, r->data.num_files);
    if (r->data.num_files == 2) {
        CHECK_STR("a.jsonl", r->data.files[0]);
        CHECK_STR("b.jsonl", r->data.files[1]);
    }
    CHECK_NEAR(1e-5, r->optimizer.learning_rate, 0, 1e-15);
    CHECK_NEAR(0.1, r->optimizer.weight_decay, 0, 1e-15);
    CHECK_INT(2, r->optimizer.num_betas);
    if (r->optimizer.num_betas == 2) {
        CHECK_NEAR(0.9, r->optimizer.betas[0], 0, 1e-15);
        CHECK_NEAR(0.95, r->optimizer.betas[1], 0, 1e-15);
    }
    CHECK(isnan(r->optimizer.max_grad_norm)); /* nullable: null -> null_value NAN */
    CHECK_INT(8, r->rollout.num_generations);
    CHECK_NEAR(0.7, r->rollout.temperature, 0, 1e-15);
    CHECK_NEAR(0.95, r->rollout.top_p, 0, 0);             /* absent: default kept */
    CHECK_NEAR(1.25, r->rollout.repetition_penalty, 0, 0); /* absent: default kept */
    CHECK_INT(0, r->rollout.top_k);                        /* null -> null_value 0 */
    CHECK_INT(1000, r->rollout.max_completion_length);     /* 1e3 is an integer */
    CHECK_INT(2, r->rollout.num_stop);
    if (r->rollout.num_stop == 2) {
        CHECK_STR("</answer>", r->rollout.stop[0]);
        CHECK_STR("\n\n", r->rollout.stop[1]);
    }
    CHECK_INT(2, r->rollout.num_bucket_sizes);
    if (r->rollout.num_bucket_sizes == 2) CHECK_INT(256, r->rollout.bucket_sizes[1]);
    CHECK_INT(2, r->num_stages);
    if (r->num_stages != 2) return;
    CHECK_STR("sft", r->stages[0].name);
    CHECK_INT(0, r->stages[0].kind);
    CHECK_INT(100, r->stages[0].max_steps);
    CHECK_INT(0, r->stages[0].num_rewards);
    CHECK_STR("rl", r->stages[1].name);
    CHECK_INT(1, r->stages[1].kind);
    CHECK_INT(10, r->stages[1].max_steps); /* element default */
    CHECK_INT(2, r->stages[1].num_rewards);
    if (r->stages[1].num_rewards != 2) return;
    CHECK_STR("accuracy", r->stages[1].rewards[0].name);
    CHECK_NEAR(1.0, r->stages[1].rewards[0].weight, 0, 0); /* element default */
    CHECK(r->stages[1].rewards[0].params == NULL);
    CHECK_STR("format", r->stages[1].rewards[1].name);
    CHECK_NEAR(0.5, r->stages[1].rewards[1].weight, 0, 0);
    const cfg_node *params = r->stages[1].rewards[1].params;
    CHECK(params && cfg_node_kind(params) == CFG_NODE_MAP && cfg_size(params) == 2);
    CHECK_STR("answer", cfg_scalar(cfg_get(params, "tag")));
    CHECK_STR("true", cfg_scalar(cfg_get(params, "strict")));
}

static void test_good_config(void) {
    t_run run;
    CHECK_OK(bind_text(good_yaml, &run));
    check_good_run(&run);

    const cfg_node *root = cfg_root(last_doc);
    const cfg_node *w = cfg_get(root, "stages[1].rewards[1].weight");
    CHECK_STR("0.5", cfg_scalar(w));
    CHECK(w == cfg_get(root, "stages.1.rewards.1.weight"));
    const char *where = pos_of(good_yaml, "weight: 0.5", 8);
    char buf[128];
    snprintf(buf, sizeof buf, "%s", cfg_node_where(w, buf, sizeof buf));
    CHECK(strncmp(where, buf, strlen(buf)) == 0);
    CHECK_STR("stages[1].rewards[1].weight", cfg_node_path(w, buf, sizeof buf));
    CHECK(cfg_get(root, "stages[2]") == NULL);
    CHECK(cfg_get(root, "model.nope") == NULL);
    CHECK(cfg_get(root, "model..path") == NULL);
    CHECK(cfg_get(root, "model[0]") == NULL);
    CHECK(cfg_get(root, "model.path.x") == NULL);
    CHECK(cfg_get(root, "") == root);
    CHECK_INT(5, cfg_size(root));
    CHECK_STR("data", cfg_map_key(root, 1));
    CHECK(cfg_scalar_quoted(cfg_get(root, "data.template")));
    CHECK(!cfg_scalar_quoted(cfg_get(root, "model.path")));
    CHECK(cfg_is_null(cfg_get(root, "rollout.top_k")));
    CHECK(!cfg_is_null(cfg_get(root, "model.path")));
}

/* Binding `text` must fail with a message holding each non-NULL needle. */
static void expect_bind_error(const char *text, const char *n1, const char *n2, const char *n3, int line) {
    t_run run;
    grpo_status st = bind_text(text, &run);
    const char *msg = grpo_error_message();
    CHECK_MSG(st != GRPO_OK, "test line %d: bind succeeded", line);
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (st != GRPO_OK && needles[i])
            CHECK_MSG(strstr(msg, needles[i]) != NULL, "test line %d: \"%s\" lacks \"%s\"", line, msg, needles[i]);
}
#define EXPECT_BIND_ERROR(text, a, b, c) expect_bind_error(text, a, b, c, __LINE__)

static void test_bind_errors(void) {
    const char *t;
    t = "model:\n  path: x\noptimizer:\n  weight_decay: 0.1\n  learnig_rate: 1e-5\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "learnig_rate", 0), "optimizer: unknown key 'learnig_rate'; did you mean 'learning_rate'?",
                      "known keys: learning_rate, weight_decay, betas, max_grad_norm");
    t = "modle:\n  path: x\n";
    EXPECT_BIND_ERROR(t, "cfg.yaml:1:1: unknown key 'modle'; did you mean 'model'?", NULL, NULL);
    t = "zzzzzzzz: 1\n";
    EXPECT_BIND_ERROR(t, "unknown key 'zzzzzzzz' (known keys: model, data", NULL, NULL);
    t = "rollout:\n  temperature: 0.5\noptimizer:\n  learning_rate:   abc\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "abc", 0), "optimizer.learning_rate: expected a number, found 'abc'", NULL);
    t = "optimizer:\n  weight_decay: 1.5\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "1.5", 0), "optimizer.weight_decay: expected a value in [0, 1], found 1.5", NULL);
    t = "rollout:\n  temperature: -0.5\n";
    EXPECT_BIND_ERROR(t, "rollout.temperature: expected a value >= 0, found -0.5", NULL, NULL);
    t = "model:\n  num_layers: 1.5\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "1.5", 0), "model.num_layers: expected an integer, found '1.5'", NULL);
    t = "model:\n  num_layers: 99999999999999999999999\n";
    EXPECT_BIND_ERROR(t, "model.num_layers: expected an integer in [1, 1024]", NULL, NULL);
    t = "model:\n  num_layers: 2000\n";
    EXPECT_BIND_ERROR(t, "model.num_layers: expected a value in [1, 1024], found 2000", NULL, NULL);
    t = "data:\n  seed: -1\n";
    EXPECT_BIND_ERROR(t, "data.seed: expected a value in [0, 1e+18], found -1", NULL, NULL);
    t = "data:\n  shuffle: maybe\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "maybe", 0), "data.shuffle: expected true or false, found 'maybe'", NULL);
    t = "model:\n  precision: bf61\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "bf61", 0), "model.precision: expected one of 'fp32', 'bf16', 'fp8', found 'bf61'",
                      "did you mean 'bf16'?");
    t = "optimizer:\n  learning_rate: ~\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "~", 0), "optimizer.learning_rate: expected a number, found null", NULL);
    t = "model:\n  path:\n";
    EXPECT_BIND_ERROR(t, "model.path: expected a string, found null", NULL, NULL);
    t = "model:\n  path: [a, b]\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "[a", 0), "model.path: expected a string, found a list", NULL);
    t = "optimizer: adamw\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "adamw", 0), "optimizer: expected a mapping, found 'adamw'", NULL);
    t = "rollout:\n  stop: [a, [b]]\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "[b]", 0), "rollout.stop[1]: expected a string, found a list", NULL);
    t = "rollout:\n  stop: x\n";
    EXPECT_BIND_ERROR(t, "rollout.stop: expected a list of strings, found 'x'", NULL, NULL);
    t = "rollout:\n  bucket_sizes: [1, 2, 0]\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "0]", 0), "rollout.bucket_sizes[2]: expected a value in [1, 65536], found 0", NULL);
    t = "optimizer:\n  betas: [0.9, 0.95, 0.99]\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "[0.9", 0), "optimizer.betas: expected at most 2 elements, found 3", NULL);
    t = "optimizer:\n  betas: [0.9, x]\n";
    EXPECT_BIND_ERROR(t, "optimizer.betas[1]: expected a number, found 'x'", NULL, NULL);
    t = "optimizer:\n  learning_rate: 1e999\n";
    EXPECT_BIND_ERROR(t, "optimizer.learning_rate: the number 1e999 is too large", NULL, NULL);
    t = "optimizer:\n  learning_rate: nan\n";
    EXPECT_BIND_ERROR(t, "expected a number, found 'nan'", NULL, NULL);
    t = "optimizer:\n  learning_rate: 0x10\n";
    EXPECT_BIND_ERROR(t, "expected a number, found '0x10'", NULL, NULL);
    t = "stages:\n  - name: a\n  - name: b\n    rewards:\n      - name: acc\n      - name: fmt\n        weight: heavy\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "heavy", 0), "stages[1].rewards[1].weight: expected a number, found 'heavy'", NULL);
    t = "stages:\n  - name: a\n  - kind: grpo\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "kind: grpo", 0), "stages[1]: missing required key 'name'", NULL);
    t = "stages:\n  - name: a\n  - just a string\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "just", 0), "stages[1]: expected a mapping, found 'just a string'", NULL);
    t = "stages:\n  - name: a\n    rewrds: []\n";
    EXPECT_BIND_ERROR(t, pos_of(t, "rewrds", 0), "stages[0]: unknown key 'rewrds'; did you mean 'rewards'?", NULL);
    t = "stages: {name: a}\n";
    EXPECT_BIND_ERROR(t, "stages: expected a list of mappings, found a mapping", NULL, NULL);
    t = "stages:\n";
    EXPECT_BIND_ERROR(t, "stages: expected a list of mappings, found null", NULL, NULL);
    t = "model:\n  path: |\n    a very long value that goes on and on and on and on and on\n  num_layers: [1]\n";
    EXPECT_BIND_ERROR(t, "model.num_layers: expected an integer, found a list", NULL, NULL);

    /* Accepted forms: nullable list, quoted numbers, integral floats, bool spellings,
     * empty section, YAML .inf. */
    t_run run;
    CHECK_OK(bind_text("rollout:\n  stop: ~\n  temperature: .inf\n  num_generations: \"16\"\n"
                       "model:\n  num_layers: 8.0\ndata:\n  shuffle: No\noptimizer:\n",
                       &run));
    CHECK_INT(0, run.rollout.num_stop);
    CHECK(run.rollout.stop == NULL);
    CHECK(isinf(run.rollout.temperature));
    CHECK_INT(16, run.rollout.num_generations);
    CHECK_INT(8, run.model.num_layers);
    CHECK_INT(0, run.data.shuffle);
    CHECK_NEAR(3e-4, run.optimizer.learning_rate, 0, 0);
    CHECK_OK(bind_text("", &run));
    CHECK_INT(4, run.rollout.num_generations);
    CHECK_OK(bind_text("# only a comment\n", &run));
    CHECK_OK(bind_text("~\n", &run));
    /* cfg_bind on an absent section keeps the defaults */
    t_optimizer opt = {.learning_rate = 0.5};
    CHECK_OK(cfg_bind(cfg_get(cfg_root(last_doc), "optimizer"), optimizer_schema, &opt));
    CHECK_NEAR(0.5, opt.learning_rate, 0, 0);
}

static void expect_load_error(const char *text, size_t len, const char *n1, const char *n2, int line) {
    cfg_doc *doc = (cfg_doc *)1;
    grpo_status st = cfg_load_string(text, len, "cfg.yaml", &doc);
    const char *msg = grpo_error_message();
    CHECK_MSG(st != GRPO_OK, "test line %d: load succeeded", line);
    CHECK_MSG(doc == NULL, "test line %d: out not NULL on failure", line);
    if (st == GRPO_OK) cfg_doc_free(doc);
    const char *needles[] = {n1, n2};
    for (int i = 0; i < 2; i++)
        if (st != GRPO_OK && needles[i])
            CHECK_MSG(strstr(msg, needles[i]) != NULL, "test line %d: \"%s\" lacks \"%s\"", line, msg, needles[i]);
}
#define EXPECT_LOAD_ERROR(text, a, b) expect_load_error(text, strlen(text), a, b, __LINE__)

static void test_malformed_yaml(void) {
    const char *t;
    /* A tab where indentation is expected: libyaml stops at the tab. */
    t = "model:\n  path: x\n\tnum_layers: 3\n";
    EXPECT_LOAD_ERROR(t, pos_of(t, "\tnum", 0), "tab character");
    /* An unclosed quote: the problem is at the end, the context names the opening quote. */
    t = "model:\n  path: \"models/tiny\n";
    EXPECT_LOAD_ERROR(t, "while scanning a quoted scalar at line 2, column 9", NULL);
    /* A key indented less than its siblings. */
    t = "model:\n    path: x\n  num_layers: 3\n";
    EXPECT_LOAD_ERROR(t, pos_of(t, "num_layers", 0), "did not find expected key");
    t = "model:\n  path: x\n   num_layers: 3\n";
    EXPECT_LOAD_ERROR(t, "cfg.yaml:3:", "mapping values are not allowed");
    t = "a: [1, 2\n";
    EXPECT_LOAD_ERROR(t, "cfg.yaml:2:1:", "did not find expected ',' or ']'");
    /* Structure errors of ours. */
    t = "model:\n  path: x\n  num_layers: 3\n  path: y\n";
    EXPECT_LOAD_ERROR(t, pos_of(t, "path: y", 0), "model: duplicate key 'path' (first at line 2)");
    t = "a: 1\na: 2\n";
    EXPECT_LOAD_ERROR(t, "cfg.yaml:2:1: duplicate key 'a' (first at line 1)", NULL);
    t = "- 1\n- 2\n";
    EXPECT_LOAD_ERROR(t, "cfg.yaml:1:1: expected a mapping of keys at the top level, found a list", NULL);
    t = "just text\n";
    EXPECT_LOAD_ERROR(t, "expected a mapping of keys at the top level, found 'just text'", NULL);
    t = "a: 1\n---\nb: 2\n";
    EXPECT_LOAD_ERROR(t, "cfg.yaml:2:1: expected a single YAML document", NULL);
    t = "a: !custom 1\n";
    EXPECT_LOAD_ERROR(t, pos_of(t, "!custom", 0), "unsupported tag '!custom'");
    t = "? [a, b]\n: 1\n";
    EXPECT_LOAD_ERROR(t, "a mapping key must be a plain value, found a list", NULL);
    t = "a: \"x\\0y\"\n";
    EXPECT_LOAD_ERROR(t, pos_of(t, "\"x", 0), "may not contain a NUL");
    /* Invalid UTF-8 (libyaml's reader reports a byte offset; we give line:col). */
    t = "a: 1\nb: caf\xc3\x28\n";
    EXPECT_LOAD_ERROR(t, "cfg.yaml:2:8:", "invalid trailing UTF-8 octet (byte 0x28)");
    t = "a: 1\nb: \x01\n";
    EXPECT_LOAD_ERROR(t, "cfg.yaml:2:4:", "control characters are not allowed");
    /* Embedded NUL byte in the text itself. */
    expect_load_error("a: 1\0b: 2\n", 10, "cfg.yaml:1:5:", NULL, __LINE__);
}

static void test_depth_and_aliases(void) {
    /* 100 nested flow lists: more than CFG_MAX_DEPTH. */
    char deep[512];
    int n = 0;
    n += snprintf(deep + n, sizeof deep - n, "a: ");
    for (int i = 0; i < 100; i++) deep[n++] = '[';
    for (int i = 0; i < 100; i++) deep[n++] = ']';
    deep[n++] = '\n';
    deep[n] = 0;
    EXPECT_LOAD_ERROR(deep, "nesting deeper than 64 levels", NULL);
    /* Exactly at the limit is fine: the top mapping plus 63 lists. */
    n = snprintf(deep, sizeof deep, "a: ");
    for (int i = 0; i < 63; i++) deep[n++] = '[';
    for (int i = 0; i < 63; i++) deep[n++] = ']';
    deep[n] = 0;
    cfg_doc *doc;
    CHECK_OK(load(deep, &doc));
    cfg_doc_free(doc);

    /* Aliases are copies; merges keep the mapping's own keys. */
    const char *t =
        "base: &b {name: x, kind: sft, max_steps: 7}\n"
        "stages:\n"
        "  - *b\n"
        "  - <<: *b\n"
        "    name: y\n"
        "  - <<: [{max_steps: 3}, *b]\n"
        "    name: z\n";
    CHECK_OK(load(t, &doc));
    if (doc) {
        const cfg_node *root = cfg_root(doc);
        CHECK_STR("x", cfg_scalar(cfg_get(root, "stages[0].name")));
        CHECK_STR("y", cfg_scalar(cfg_get(root, "stages[1].name")));
        CHECK_STR("7", cfg_scalar(cfg_get(root, "stages[1].max_steps")));
        CHECK_STR("3", cfg_scalar(cfg_get(root, "stages[2].max_steps")));
        CHECK_STR("sft", cfg_scalar(cfg_get(root, "stages[2].kind")));
        CHECK_INT(3, cfg_size(cfg_get(root, "stages[1]")));
        char buf[64];
        CHECK_STR("stages[2].kind", cfg_node_path(cfg_get(root, "stages[2].kind"), buf, sizeof buf));
        /* The copy reports where the value was written: line 1. */
        CHECK_INT(1, cfg_node_line(cfg_get(root, "stages[2].kind")));
        t_stage stages[1];
        memset(stages, 0, sizeof stages);
        CHECK_OK(cfg_bind(cfg_get(root, "stages[1]"), stage_schema, &stages[0]));
        CHECK_STR("y", stages[0].name);
        CHECK_INT(7, stages[0].max_steps);
        cfg_doc_free(doc);
    }
    EXPECT_LOAD_ERROR("a: *nope\n", "cfg.yaml:1:4: unknown alias '*nope'", NULL);
    EXPECT_LOAD_ERROR("a: &x [1, *x]\n", "unknown alias '*x'", NULL);
    EXPECT_LOAD_ERROR("a: {<<: 1}\n", "'<<' expects a mapping or a list of mappings, found '1'", NULL);
    EXPECT_LOAD_ERROR("a: {<<: {b: 1}, <<: {c: 1}}\n", "a: duplicate merge key '<<'", NULL);
    /* "Billion laughs": each level doubles ten times; expansion is capped. */
    const char *laughs =
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
        "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    EXPECT_LOAD_ERROR(laughs, "aliases expand to more than 100000 nodes", NULL);
    /* An alias of a deep node placed deep again passes the depth limit: refused. */
    n = snprintf(deep, sizeof deep, "a: &d ");
    for (int i = 0; i < 40; i++) deep[n++] = '[';
    for (int i = 0; i < 40; i++) deep[n++] = ']';
    n += snprintf(deep + n, sizeof deep - n, "\nb: ");
    for (int i = 0; i < 40; i++) deep[n++] = '[';
    n += snprintf(deep + n, sizeof deep - n, "*d");
    for (int i = 0; i < 40; i++) deep[n++] = ']';
    deep[n] = 0;
    EXPECT_LOAD_ERROR(deep, "alias nests deeper than 64 levels", NULL);
}

static void test_overrides(void) {
    cfg_doc *doc;
    CHECK_OK(load(good_yaml, &doc));
    if (!doc) return;
    CHECK_OK(cfg_apply_override(doc, "optimizer.learning_rate=2e-6"));
    CHECK_OK(cfg_apply_override(doc, "stages.1.name=zero"));
    CHECK_OK(cfg_apply_override(doc, "stages[1].rewards[0].weight=2"));
    CHECK_OK(cfg_apply_override(doc, "stages[0].rewards=[{name: len, weight: 0.25}]"));
    CHECK_OK(cfg_apply_override(doc, "rollout.stop=[\"</think>\"]"));
    CHECK_OK(cfg_apply_override(doc, "rollout.top_p=0.5"));     /* absent in the file: created */
    CHECK_OK(cfg_apply_override(doc, "data.template=Solve: {prompt}"));
    CHECK_OK(cfg_apply_override(doc, "model.path='dir with spaces'"));
    CHECK_OK(cfg_apply_override(doc, "optimizer.max_grad_norm=0.5"));
    CHECK_OK(cfg_apply_override(doc, "optimizer.max_grad_norm=1.5")); /* the later one wins */
    t_run run;
    run_defaults(&run);
    CHECK_OK(cfg_bind(cfg_root(doc), run_schema, &run));
    CHECK_NEAR(2e-6, run.optimizer.learning_rate, 0, 1e-15);
    CHECK_NEAR(1.5, run.optimizer.max_grad_norm, 0, 0);
    CHECK_NEAR(0.5, run.rollout.top_p, 0, 0);
    CHECK_STR("Solve: {prompt}", run.data.template);
    CHECK_STR("dir with spaces", run.model.path);
    CHECK_INT(1, run.rollout.num_stop);
    if (run.rollout.num_stop == 1) CHECK_STR("</think>", run.rollout.stop[0]);
    if (run.num_stages == 2) {
        CHECK_STR("zero", run.stages[1].name);
        CHECK_NEAR(2.0, run.stages[1].rewards[0].weight, 0, 0);
        CHECK_INT(1, run.stages[0].num_rewards);
        if (run.stages[0].num_rewards == 1) {
            CHECK_STR("len", run.stages[0].rewards[0].name);
            CHECK_NEAR(0.25, run.stages[0].rewards[0].weight, 0, 0);
        }
    }
    char buf[128];
    const cfg_node *lr = cfg_get(cfg_root(doc), "optimizer.learning_rate");
    CHECK_STR("--set optimizer.learning_rate=2e-6", cfg_node_where(lr, buf, sizeof buf));
    CHECK_INT(0, cfg_node_line(lr));

    /* New sections are created along the way; a null section becomes a mapping. */
    cfg_doc *doc2;
    CHECK_OK(load("optimizer:\nrollout: ~\n", &doc2));
    if (doc2) {
        CHECK_OK(cfg_apply_override(doc2, "optimizer.learning_rate=0.001"));
        CHECK_OK(cfg_apply_override(doc2, "rollout.top_p=0.9"));
        CHECK_OK(cfg_apply_override(doc2, "model.path=/m"));
        run_defaults(&run);
        CHECK_OK(cfg_bind(cfg_root(doc2), run_schema, &run));
        CHECK_NEAR(0.001, run.optimizer.learning_rate, 0, 0);
        CHECK_NEAR(0.9, run.rollout.top_p, 0, 0);
        CHECK_STR("/m", run.model.path);
        /* A bad value from an override is reported against the command line. */
        CHECK_OK(cfg_apply_override(doc2, "optimizer.learning_rate=abc"));
        run_defaults(&run);
        CHECK_FAILS(cfg_bind(cfg_root(doc2), run_schema, &run),
                    "--set optimizer.learning_rate=abc: optimizer.learning_rate: expected a number, found 'abc'");
        CHECK_OK(cfg_apply_override(doc2, "optimizer.lr=1"));
        CHECK_OK(cfg_apply_override(doc2, "optimizer.learning_rate=0.1"));
        CHECK_FAILS(cfg_bind(cfg_root(doc2), run_schema, &run),
                    "--set optimizer.lr=1: optimizer: unknown key 'lr'");
        cfg_doc_free(doc2);
    }

    /* Bad overrides. */
    CHECK_FAILS(cfg_apply_override(doc, "model.path.x=1"), "cannot go through 'model.path', which is the value 'dir with spaces'");
    char at[96];
    const char *at_needle = at;
    snprintf(at, sizeof at, "(at %s)", pos_of(good_yaml, "num_layers: 4", 12));
    at[strlen(at) - 2] = ')'; /* drop pos_of's trailing ':' */
    at[strlen(at) - 1] = 0;
    CHECK_FAILS(cfg_apply_override(doc, "model.num_layers.x=1"), at_needle);
    CHECK_FAILS(cfg_apply_override(doc, "stages.5.name=x"), "'stages' has 2 elements; index 5 is out of range");
    CHECK_FAILS(cfg_apply_override(doc, "stages.first.name=x"), "'stages' is a list; expected an index, found 'first'");
    CHECK_FAILS(cfg_apply_override(doc, "model[0]=x"), "'model' is not a list");
    CHECK_FAILS(cfg_apply_override(doc, "model..path=x"), "malformed key path 'model..path'");
    CHECK_FAILS(cfg_apply_override(doc, "model.=x"), "malformed key path");
    CHECK_FAILS(cfg_apply_override(doc, "stages[x]=1"), "malformed key path");
    CHECK_FAILS(cfg_apply_override(doc, "model.path"), "expected key=value");
    CHECK_FAILS(cfg_apply_override(doc, "=3"), "expected key=value");
    CHECK_FAILS(cfg_apply_override(doc, "a=[1, 2"), "--set a=[1, 2: did not find expected ',' or ']'");
    CHECK_FAILS(cfg_apply_override(doc, "a=\xff"), "not valid UTF-8");
    /* The failed overrides left the tree as it was. */
    CHECK_STR("dir with spaces", cfg_scalar(cfg_get(cfg_root(doc), "model.path")));
    CHECK(cfg_get(cfg_root(doc), "a") == NULL);
    cfg_doc_free(doc);
}

static int runs_equal(const t_run *a, const t_run *b) {
    int ok = strcmp(a->model.path, b->model.path) == 0 && a->model.precision == b->model.precision &&
             a->model.num_layers == b->model.num_layers && strcmp(a->data.train, b->data.train) == 0 &&
             strcmp(a->data.template, b->data.template) == 0 && a->data.shuffle == b->data.shuffle &&
             a->data.seed == b->data.seed && a->data.num_files == b->data.num_files &&
             a->optimizer.learning_rate == b->optimizer.learning_rate &&
             a->optimizer.weight_decay == b->optimizer.weight_decay && a->optimizer.num_betas == b->optimizer.num_betas &&
             (a->optimizer.max_grad_norm == b->optimizer.max_grad_norm ||
              (isnan(a->optimizer.max_grad_norm) && isnan(b->optimizer.max_grad_norm))) &&
             a->rollout.num_generations == b->rollout.num_generations &&
             a->rollout.temperature == b->rollout.temperature && a->rollout.top_p == b->rollout.top_p &&
             a->rollout.top_k == b->rollout.top_k && a->rollout.max_completion_length == b->rollout.max_completion_length &&
             a->rollout.repetition_penalty == b->rollout.repetition_penalty && a->rollout.num_stop == b->rollout.num_stop &&
             a->rollout.num_bucket_sizes == b->rollout.num_bucket_sizes && a->num_stages == b->num_stages;
    for (int i = 0; ok && i < a->data.num_files; i++) ok = strcmp(a->data.files[i], b->data.files[i]) == 0;
    for (int i = 0; ok && i < a->optimizer.num_betas; i++) ok = a->optimizer.betas[i] == b->optimizer.betas[i];
    for (int i = 0; ok && i < a->rollout.num_stop; i++) ok = strcmp(a->rollout.stop[i], b->rollout.stop[i]) == 0;
    for (int i = 0; ok && i < a->rollout.num_bucket_sizes; i++) ok = a->rollout.bucket_sizes[i] == b->rollout.bucket_sizes[i];
    for (int i = 0; ok && i < a->num_stages; i++) {
        const t_stage *s = &a->stages[i], *u = &b->stages[i];
        ok = strcmp(s->name, u->name) == 0 && s->kind == u->kind && s->max_steps == u->max_steps &&
             s->num_rewards == u->num_rewards;
        for (int j = 0; ok && j < s->num_rewards; j++)
            ok = strcmp(s->rewards[j].name, u->rewards[j].name) == 0 && s->rewards[j].weight == u->rewards[j].weight &&
                 (s->rewards[j].params == NULL) == (u->rewards[j].params == NULL);
    }
    return ok;
}

static void test_dump(void) {
    cfg_doc *doc, *again;
    CHECK_OK(load(good_yaml, &doc));
    if (!doc) return;
    CHECK_OK(cfg_apply_override(doc, "optimizer.weight_decay=0.25"));
    CHECK_OK(cfg_apply_override(doc, "model.path=123")); /* plain 123 into a string field */
    CHECK_OK(cfg_apply_override(doc, "data.train=\"yes\""));
    t_run a, b;
    run_defaults(&a);
    CHECK_OK(cfg_bind(cfg_root(doc), run_schema, &a));

    /* The tree after overrides reads back to the same bound values. */
    char *text = NULL;
    CHECK_OK(cfg_dump(cfg_root(doc), &text));
    if (text) {
        CHECK_OK(load(text, &again));
        if (again) {
            run_defaults(&b);
            CHECK_OK(cfg_bind(cfg_root(again), run_schema, &b));
            CHECK_MSG(runs_equal(&a, &b), "tree dump does not read back the same:\n%s", text);
            CHECK_STR("tag", cfg_map_key(b.stages[1].rewards[1].params, 0));
            cfg_doc_free(again);
        }
        free(text);
    }
    /* Every field, defaults included, reads back to the same values. */
    text = NULL;
    CHECK_OK(cfg_dump_bound(run_schema, &a, &text));
    if (text) {
        CHECK(strstr(text, "repetition_penalty: 1.25") != NULL); /* a default, not in the file */
        CHECK(strstr(text, "weight_decay: 0.25") != NULL);
        CHECK(strstr(text, "learning_rate: 1e-05") != NULL);
        CHECK(strstr(text, "top_k: null") != NULL);
        CHECK(strstr(text, "precision: bf16") != NULL);
        CHECK(strstr(text, "path: '123'") != NULL); /* a string, kept one */
        CHECK_OK(load(text, &again));
        if (again) {
            t_run c;
            memset(&c, 0, sizeof c);
            CHECK_OK(cfg_bind(cfg_root(again), run_schema, &c));
            CHECK_MSG(runs_equal(&a, &c), "bound dump does not read back the same:\n%s", text);
            CHECK_STR("yes", c.data.train);
            cfg_doc_free(again);
        }
        free(text);
    }
    cfg_doc_free(doc);
    /* An empty mapping dumps as {} */
    CHECK_OK(load("", &doc));
    text = NULL;
    CHECK_OK(cfg_dump(cfg_root(doc), &text));
    if (text) CHECK_STR("{}\n", text);
    free(text);
    cfg_doc_free(doc);
}

static void test_files(void) {
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    const char *text = "optimizer:\n  learning_rate: abc\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    cfg_doc *doc;
    CHECK_OK(cfg_load_file(path, &doc));
    if (doc) {
        t_run run;
        run_defaults(&run);
        char want_buf[256];
        const char *want = want_buf;
        snprintf(want_buf, sizeof want_buf, "%s:2:18: optimizer.learning_rate: expected a number, found 'abc'", path);
        CHECK_FAILS(cfg_bind(cfg_root(doc), run_schema, &run), want);
        CHECK_STR(path, cfg_doc_name(doc));
        cfg_doc_free(doc);
    }
    unlink(path);
    doc = (cfg_doc *)1;
    CHECK_FAILS(cfg_load_file("/nonexistent/dir/run.yaml", &doc), "/nonexistent/dir/run.yaml: cannot open");
    CHECK(doc == NULL);
    cfg_doc_free(NULL);
}

int main(void) {
    test_good_config();
    test_bind_errors();
    test_malformed_yaml();
    test_depth_and_aliases();
    test_overrides();
    test_dump();
    test_files();
    cfg_doc_free(last_doc);
    TEST_MAIN_END();
}
