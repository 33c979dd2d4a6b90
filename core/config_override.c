/* `--set a.b.c=value` overrides: walk (and where needed create) the path in the tree
 * and put the value there. The nodes made here carry "--set a.b.c=value" as their
 * place, so a bad value is reported against the command line, not the file. */
#include "core/config_impl.h"

#include <stdio.h>
#include <string.h>

/* Whether s is valid UTF-8 (the parser checks file text; command lines are not). */
static int valid_utf8(const unsigned char *s) {
    while (*s) {
        int n = *s < 0x80 ? 0 : (*s & 0xE0) == 0xC0 ? 1 : (*s & 0xF0) == 0xE0 ? 2 : (*s & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && *s < 0xC2)) return 0;
        unsigned cp = n == 0 ? *s : *s & (0x3Fu >> n);
        s++;
        for (int i = 0; i < n; i++, s++) {
            if ((*s & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (*s & 0x3Fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
    }
    return 1;
}

/* The value as a node: YAML for flow collections and quoted strings, else the text
 * itself as a plain scalar (so "Solve: {prompt}" needs no quoting on a shell line). */
static grpo_status override_value(cfg_doc *doc, const char *value, const char *origin, cfg_node **out) {
    if (value[0] == '[' || value[0] == '{' || value[0] == '"' || value[0] == '\'')
        return cfg_parse_into(doc, value, strlen(value), origin, 1, out);
    cfg_node *n = cfg_node_new(doc, CFG_NODE_SCALAR, origin, 0, 0);
    if (!n) return GRPO_ERR_NOMEM;
    n->len = strlen(value);
    if (!(n->value = cfg_strndup(doc, value, n->len))) return GRPO_ERR_NOMEM;
    *out = n;
    return GRPO_OK;
}

/* Replaces the child at `index` of `parent` with `node`, keeping key and position. */
static void replace_child(cfg_node *parent, size_t index, cfg_node *node) {
    cfg_node *old = parent->items[index];
    node->parent = parent;
    node->key = old->key;
    node->key_origin = old->key_origin;
    node->key_line = old->key_line;
    node->key_col = old->key_col;
    node->index = index;
    parent->items[index] = node;
}

static int node_depth(const cfg_node *n) {
    int d = 0;
    for (; n && n->parent; n = n->parent) d++;
    return d;
}

static int tree_height(const cfg_node *n) {
    int h = 0;
    for (size_t i = 0; i < n->count; i++) {
        int c = tree_height(n->items[i]);
        if (c > h) h = c;
    }
    return n->kind == CFG_NODE_SCALAR ? 0 : h + 1;
}

grpo_status cfg_apply_override(cfg_doc *doc, const char *assignment) {
    GRPO_ASSERT(doc && doc->root);
    const char *eq = assignment ? strchr(assignment, '=') : NULL;
    if (assignment && !valid_utf8((const unsigned char *)assignment))
        return grpo_fail(GRPO_ERR_USAGE, "--set: the text is not valid UTF-8");
    if (!eq || eq == assignment)
        return grpo_fail(GRPO_ERR_USAGE, "--set %s: expected key=value (e.g. optimizer.learning_rate=1e-5)",
                         assignment ? assignment : "");
    size_t origin_len = strlen(assignment) + sizeof "--set ";
    char *origin = cfg_alloc(doc, origin_len);
    char *path = cfg_strndup(doc, assignment, (size_t)(eq - assignment));
    if (!origin || !path) return GRPO_ERR_NOMEM;
    snprintf(origin, origin_len, "--set %s", assignment);
    cfg_node *value;
    GRPO_TRY(override_value(doc, eq + 1, origin, &value));

    cfg_node *node = doc->root;
    const char *p = path;
    cfg_segment seg;
    int r = cfg_next_segment(&p, &seg);
    if (r <= 0) return grpo_fail(GRPO_ERR_USAGE, "%s: malformed key path '%s'", origin, path);
    char where[512];
    for (;;) {
        cfg_segment next;
        const char *after = p;
        int more = cfg_next_segment(&after, &next);
        if (more < 0) return grpo_fail(GRPO_ERR_USAGE, "%s: malformed key path '%s'", origin, path);
        if (node_depth(node) + 1 + (more ? 1 : tree_height(value)) > CFG_MAX_DEPTH)
            return grpo_fail(GRPO_ERR_USAGE, "%s: nests deeper than %d levels", origin, CFG_MAX_DEPTH);
        /* Find (or make) the child `seg` of `node`; its position in the parent is idx. */
        size_t idx;
        cfg_node *child = NULL;
        if (node->kind == CFG_NODE_SEQ) {
            char at[512];
            cfg_node_path(node, at, sizeof at);
            if (!seg.is_number)
                return grpo_fail(GRPO_ERR_USAGE, "%s: '%s' is a list; expected an index, found '%.*s'", origin,
                                 at, (int)seg.len, seg.key);
            if (seg.index >= node->count)
                return grpo_fail(GRPO_ERR_USAGE, "%s: '%s' has %zu elements; index %zu is out of range", origin, at,
                                 node->count, seg.index);
            idx = seg.index;
            child = node->items[idx];
        } else {
            if (seg.bracketed) {
                char at[512];
                return grpo_fail(GRPO_ERR_USAGE, "%s: '%s' is not a list (at %s)", origin,
                                 cfg_node_path(node, at, sizeof at), cfg_node_where(node, where, sizeof where));
            }
            child = cfg_map_find(node, seg.key, seg.len);
            if (child) {
                idx = child->index;
            } else {
                if (node->count >= CFG_MAX_MAP_KEYS)
                    return grpo_fail(GRPO_ERR_USAGE, "%s: more than %d keys in one mapping", origin, CFG_MAX_MAP_KEYS);
                char *key = cfg_strndup(doc, seg.key, seg.len);
                child = more ? cfg_node_new(doc, CFG_NODE_MAP, origin, 0, 0) : value;
                if (!key || !child) return GRPO_ERR_NOMEM;
                GRPO_TRY(cfg_node_append(node, key, child));
                child->key_origin = origin;
                if (!more) return GRPO_OK;
                node = child;
                seg = next;
                p = after;
                continue;
            }
        }
        if (!more) {
            replace_child(node, idx, value);
            return GRPO_OK;
        }
        if (cfg_is_null(child)) { /* `section:` left empty in the file: now a mapping */
            cfg_node *map = cfg_node_new(doc, CFG_NODE_MAP, origin, 0, 0);
            if (!map) return GRPO_ERR_NOMEM;
            replace_child(node, idx, map);
            child = map;
        } else if (child->kind == CFG_NODE_SCALAR) {
            char at[512];
            return grpo_fail(GRPO_ERR_USAGE, "%s: cannot go through '%s', which is the value '%s' (at %s)", origin,
                             cfg_node_path(child, at, sizeof at), child->value, cfg_node_where(child, where, sizeof where));
        }
        node = child;
        seg = next;
        p = after;
    }
}
