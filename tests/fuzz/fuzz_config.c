/* Fuzz target: arbitrary bytes as a YAML config. Lines "#set a.b=c" (YAML comments)
 * are also applied as overrides. Loading either fails with a message or gives a tree
 * that is bound against a schema using every field type; a successful bind must dump
 * to YAML that loads and binds again to the same dump, and the tree itself must dump
 * to YAML that loads again. Any broken promise aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

typedef struct {
    const char *name;
    double weight;
    const cfg_node *params;
} fz_item;

typedef struct {
    int count;
    int64_t big;
    double rate;
    int flag;
    const char *text;
    int mode;
    const char **words;
    int num_words;
    double *values;
    int num_values;
    int *ints;
    int num_ints;
} fz_section;

typedef struct {
    fz_section section;
    fz_item *items;
    int num_items;
    const cfg_node *extra;
    double maybe;
    int maybe_int;
} fz_root;

static const char *const modes[] = {"a", "bb", "ccc", NULL};

static const cfg_field item_schema[] = {
    CFG_FIELD_STRING(fz_item, name, "name", "", .required = 1),
    CFG_FIELD_FLOAT(fz_item, weight, "weight", -10, 10, ""),
    CFG_FIELD_ANY(fz_item, params, "params", ""),
    CFG_END,
};
static const fz_item item_defaults = {.weight = 1};

static const cfg_field section_schema[] = {
    CFG_FIELD_INT(fz_section, count, "count", 0, 100, ""),
    CFG_FIELD_INT64(fz_section, big, "big", CFG_NO_MIN, CFG_NO_MAX, ""),
    CFG_FIELD_FLOAT(fz_section, rate, "rate", CFG_NO_MIN, CFG_NO_MAX, ""),
    CFG_FIELD_BOOL(fz_section, flag, "flag", ""),
    CFG_FIELD_STRING(fz_section, text, "text", "", .nullable = 1),
    CFG_FIELD_ENUM(fz_section, mode, "mode", modes, ""),
    CFG_FIELD_STRING_LIST(fz_section, words, num_words, "words", 16, ""),
    CFG_FIELD_FLOAT_LIST(fz_section, values, num_values, "values", -1e6, 1e6, 0, "", .nullable = 1),
    CFG_FIELD_INT_LIST(fz_section, ints, num_ints, "ints", CFG_NO_MIN, CFG_NO_MAX, 8, ""),
    CFG_END,
};

static const cfg_field root_schema[] = {
    CFG_FIELD_SECTION(fz_root, section, "section", section_schema, ""),
    CFG_FIELD_LIST(fz_root, items, num_items, "items", fz_item, item_schema, &item_defaults, 32, ""),
    CFG_FIELD_ANY(fz_root, extra, "extra", ""),
    CFG_FIELD_FLOAT(fz_root, maybe, "maybe", 0, 1, "", .nullable = 1, .null_value = NAN),
    CFG_FIELD_INT(fz_root, maybe_int, "maybe_int", 0, 1, "", .nullable = 1, .null_value = -1),
    CFG_END,
};

static void apply_overrides(cfg_doc *doc, const uint8_t *data, size_t size) {
    for (size_t i = 0; i + 5 <= size; i++) {
        if ((i > 0 && data[i - 1] != '\n') || memcmp(data + i, "#set ", 5) != 0) continue;
        char line[256];
        size_t n = 0;
        for (size_t j = i + 5; j < size && data[j] != '\n' && data[j] != 0 && n + 1 < sizeof line; j++)
            line[n++] = (char)data[j];
        line[n] = 0;
        if (cfg_apply_override(doc, line) != GRPO_OK && grpo_error_message()[0] == 0) abort();
    }
}

static char *bind_and_dump(const cfg_node *root) {
    fz_root r;
    memset(&r, 0, sizeof r);
    r.section.rate = 0.5;
    r.section.text = "default";
    if (cfg_bind(root, root_schema, &r) != GRPO_OK) {
        if (grpo_error_message()[0] == 0) abort();
        return NULL;
    }
    char *text = NULL;
    if (cfg_dump_bound(root_schema, &r, &text) != GRPO_OK) abort();
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cfg_doc *doc = NULL;
    grpo_error_clear();
    if (cfg_load_string((const char *)data, size, "fuzz.yaml", &doc) != GRPO_OK) {
        if (doc != NULL || grpo_error_message()[0] == 0) abort();
        return 0;
    }
    apply_overrides(doc, data, size);
    const cfg_node *root = cfg_root(doc);
    (void)cfg_get(root, "section.words[0]");
    (void)cfg_get(root, "items.0.params.x");

    /* The tree dumps to YAML that loads again. */
    char *tree = NULL;
    if (cfg_dump(root, &tree) != GRPO_OK) abort();
    cfg_doc *again = NULL;
    if (cfg_load_string(tree, strlen(tree), "tree.yaml", &again) != GRPO_OK) abort();
    cfg_doc_free(again);
    free(tree);

    /* A successful bind dumps to YAML that binds again to the same values. */
    char *first = bind_and_dump(root);
    if (first) {
        if (cfg_load_string(first, strlen(first), "dump.yaml", &again) != GRPO_OK) abort();
        char *second = bind_and_dump(cfg_root(again));
        if (!second || strcmp(first, second) != 0) abort();
        free(second);
        cfg_doc_free(again);
        free(first);
    }
    cfg_doc_free(doc);
    return 0;
}
