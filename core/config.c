/* YAML text -> cfg_node tree (libyaml event API), the doc's arena, and reading the
 * tree: dotted-path lookup, node places and key paths for messages. Anchors/aliases
 * become deep copies (counted against CFG_MAX_ALIAS_NODES so "billion laughs" input
 * fails instead of exhausting memory); nesting is capped at CFG_MAX_DEPTH. */
#include "core/config_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- arena ---------------------------------------------------------------------- */

struct cfg_arena_block {
    cfg_arena_block *next;
    size_t used, size;
    max_align_t data[];
};

enum { ARENA_BLOCK = 16384, ARENA_ALIGN = 16 };

void *cfg_alloc(cfg_doc *doc, size_t size) {
    if (size > ((size_t)1 << 40)) {
        grpo_fail(GRPO_ERR_NOMEM, "%s: allocation of %zu bytes refused", doc->name, size);
        return NULL;
    }
    size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    cfg_arena_block *b = doc->blocks;
    if (!b || b->size - b->used < size) {
        size_t bsize = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = calloc(1, sizeof *b + bsize);
        if (!b) {
            grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory (%zu bytes)", doc->name, bsize);
            return NULL;
        }
        b->size = bsize;
        b->next = doc->blocks;
        doc->blocks = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    return p;
}

char *cfg_strndup(cfg_doc *doc, const char *s, size_t len) {
    char *p = cfg_alloc(doc, len + 1);
    if (p && len) memcpy(p, s, len);
    return p;
}

cfg_node *cfg_node_new(cfg_doc *doc, cfg_kind kind, const char *origin, int line, int col) {
    if (doc->node_count >= CFG_MAX_NODES) {
        grpo_fail(GRPO_ERR_INVALID, "%s: more than %d nodes in one document", doc->name, CFG_MAX_NODES);
        return NULL;
    }
    cfg_node *n = cfg_alloc(doc, sizeof *n);
    if (!n) return NULL;
    doc->node_count++;
    n->kind = kind;
    n->origin = origin;
    n->line = line;
    n->col = col;
    n->doc = doc;
    if (kind == CFG_NODE_SCALAR) n->value = "";
    return n;
}

grpo_status cfg_node_append(cfg_node *parent, const char *key, cfg_node *child) {
    GRPO_ASSERT(parent->kind != CFG_NODE_SCALAR);
    if (parent->count == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        cfg_node **items = cfg_alloc(parent->doc, cap * sizeof *items);
        if (!items) return GRPO_ERR_NOMEM;
        if (parent->count) memcpy(items, parent->items, parent->count * sizeof *items);
        parent->items = items; /* the old array stays in the arena until the doc is freed */
        parent->cap = cap;
    }
    child->parent = parent;
    child->key = key;
    child->index = parent->count;
    parent->items[parent->count++] = child;
    return GRPO_OK;
}

cfg_node *cfg_map_find(const cfg_node *map, const char *key, size_t key_len) {
    if (!map || map->kind != CFG_NODE_MAP) return NULL;
    for (size_t i = 0; i < map->count; i++) {
        const char *k = map->items[i]->key;
        if (strlen(k) == key_len && memcmp(k, key, key_len) == 0) return map->items[i];
    }
    return NULL;
}

/* ---- parsing -------------------------------------------------------------------- */

typedef struct {
    cfg_node *node;
    cfg_node *key;       /* mapping: the key scalar waiting for its value */
    cfg_node *merge;     /* mapping: the value of its `<<` key, merged at the end */
    const char *anchor;  /* registered when the node ends, so it cannot contain itself */
} parse_frame;

typedef struct {
    const char *name;
    cfg_node *node;
} parse_anchor;

enum { MAX_ANCHORS = 1024 };

typedef struct {
    cfg_doc *doc;
    const char *origin;
    int override;
    parse_frame stack[CFG_MAX_DEPTH];
    int depth;
    parse_anchor *anchors;
    size_t anchor_count;
    cfg_node *root;
    int documents;
} parser_state;

static grpo_status fail_mark(const parser_state *ps, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static grpo_status fail_mark(const parser_state *ps, yaml_mark_t mark, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ps->override) return grpo_fail(GRPO_ERR_PARSE, "%s: %s", ps->origin, msg);
    return grpo_fail(GRPO_ERR_PARSE, "%s:%d:%d: %s", ps->origin, (int)mark.line + 1, (int)mark.column + 1, msg);
}

/* Tags: the YAML core schema's (and the non-specific "!") are accepted; others are
 * refused, since nothing here would know what they mean. */
static int tag_ok(const char *tag) {
    static const char *const core[] = {"str", "int", "float", "bool", "null", "map", "seq", NULL};
    static const char prefix[] = "tag:yaml.org,2002:";
    if (!tag || strcmp(tag, "!") == 0) return 1;
    if (strncmp(tag, prefix, sizeof prefix - 1) != 0) return 0;
    for (int i = 0; core[i]; i++)
        if (strcmp(tag + sizeof prefix - 1, core[i]) == 0) return 1;
    return 0;
}

static cfg_node *new_node(parser_state *ps, cfg_kind kind, yaml_mark_t mark) {
    int line = ps->override ? 0 : (int)mark.line + 1, col = ps->override ? 0 : (int)mark.column + 1;
    return cfg_node_new(ps->doc, kind, ps->origin, line, col);
}

/* Deep copy of src for an alias or a merge; `levels` is how many collection levels may
 * still nest below the place the copy goes. Positions stay those of the original. */
static grpo_status copy_node(parser_state *ps, const cfg_node *src, int levels, yaml_mark_t mark,
                             cfg_node **out) {
    *out = NULL;
    if (src->kind != CFG_NODE_SCALAR && levels <= 0)
        return fail_mark(ps, mark, "alias nests deeper than %d levels", CFG_MAX_DEPTH);
    if (++ps->doc->alias_nodes > CFG_MAX_ALIAS_NODES)
        return fail_mark(ps, mark, "aliases expand to more than %d nodes", CFG_MAX_ALIAS_NODES);
    cfg_node *n = cfg_node_new(ps->doc, src->kind, src->origin, src->line, src->col);
    if (!n) return GRPO_ERR_NOMEM;
    n->quoted = src->quoted;
    n->value = src->value;
    n->len = src->len;
    n->key_origin = src->key_origin;
    n->key_line = src->key_line;
    n->key_col = src->key_col;
    for (size_t i = 0; i < src->count; i++) {
        cfg_node *child;
        GRPO_TRY(copy_node(ps, src->items[i], levels - 1, mark, &child));
        GRPO_TRY(cfg_node_append(n, src->items[i]->key, child));
    }
    *out = n;
    return GRPO_OK;
}

static grpo_status add_anchor(parser_state *ps, const char *name, cfg_node *node, yaml_mark_t mark) {
    if (ps->anchor_count == MAX_ANCHORS) return fail_mark(ps, mark, "more than %d anchors", MAX_ANCHORS);
    if (!ps->anchors) {
        ps->anchors = cfg_alloc(ps->doc, MAX_ANCHORS * sizeof *ps->anchors);
        if (!ps->anchors) return GRPO_ERR_NOMEM;
    }
    ps->anchors[ps->anchor_count].name = name;
    ps->anchors[ps->anchor_count++].node = node;
    return GRPO_OK;
}

static cfg_node *find_anchor(const parser_state *ps, const char *name) {
    for (size_t i = ps->anchor_count; i-- > 0;) /* the latest definition wins */
        if (strcmp(ps->anchors[i].name, name) == 0) return ps->anchors[i].node;
    return NULL;
}

/* Puts a finished scalar/alias copy, or a just-started collection, in its place. */
static grpo_status attach(parser_state *ps, cfg_node *node, yaml_mark_t mark) {
    if (ps->depth == 0) {
        ps->root = node;
        return GRPO_OK;
    }
    parse_frame *f = &ps->stack[ps->depth - 1];
    if (f->node->kind == CFG_NODE_SEQ) return cfg_node_append(f->node, NULL, node);
    if (!f->key) {
        if (node->kind != CFG_NODE_SCALAR)
            return fail_mark(ps, mark, "a mapping key must be a plain value, found %s",
                             node->kind == CFG_NODE_MAP ? "a mapping" : "a list");
        f->key = node;
        return GRPO_OK;
    }
    cfg_node *key = f->key;
    f->key = NULL;
    yaml_mark_t key_mark = mark;
    key_mark.line = key->line > 0 ? (size_t)key->line - 1 : 0;
    key_mark.column = key->col > 0 ? (size_t)key->col - 1 : 0;
    char path[512];
    cfg_node_path(f->node, path, sizeof path);
    if (!key->quoted && strcmp(key->value, "<<") == 0) {
        if (f->merge) return fail_mark(ps, key_mark, "%s%sduplicate merge key '<<'", path, *path ? ": " : "");
        f->merge = node;
        node->parent = f->node;
        return GRPO_OK;
    }
    const cfg_node *prev = cfg_map_find(f->node, key->value, key->len);
    if (prev) {
        if (prev->key_line > 0)
            return fail_mark(ps, key_mark, "%s%sduplicate key '%s' (first at line %d)", path, *path ? ": " : "",
                             key->value, prev->key_line);
        return fail_mark(ps, key_mark, "%s%sduplicate key '%s'", path, *path ? ": " : "", key->value);
    }
    if (f->node->count >= CFG_MAX_MAP_KEYS)
        return fail_mark(ps, key_mark, "more than %d keys in one mapping", CFG_MAX_MAP_KEYS);
    node->key_origin = key->origin;
    node->key_line = key->line;
    node->key_col = key->col;
    return cfg_node_append(f->node, key->value, node);
}

/* YAML merge keys: the entries of `src` (a mapping or a list of mappings) that `map`
 * does not set itself are copied in; among several sources the first one wins. */
static grpo_status apply_merge(parser_state *ps, cfg_node *map, cfg_node *src, yaml_mark_t mark) {
    size_t nsrc = src->kind == CFG_NODE_SEQ ? src->count : 1;
    for (size_t s = 0; s < nsrc; s++) {
        const cfg_node *from = src->kind == CFG_NODE_SEQ ? src->items[s] : src;
        if (from->kind != CFG_NODE_MAP) {
            char found[96];
            return fail_mark(ps, mark, "'<<' expects a mapping or a list of mappings, found %s",
                             cfg_describe(from, found, sizeof found));
        }
        for (size_t i = 0; i < from->count; i++) {
            const cfg_node *e = from->items[i];
            if (cfg_map_find(map, e->key, strlen(e->key))) continue;
            if (map->count >= CFG_MAX_MAP_KEYS)
                return fail_mark(ps, mark, "more than %d keys in one mapping", CFG_MAX_MAP_KEYS);
            cfg_node *copy;
            GRPO_TRY(copy_node(ps, e, CFG_MAX_DEPTH - ps->depth - 1, mark, &copy));
            GRPO_TRY(cfg_node_append(map, e->key, copy));
        }
    }
    return GRPO_OK;
}

static grpo_status on_event(parser_state *ps, const yaml_event_t *ev) {
    yaml_mark_t mark = ev->start_mark;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++ps->documents > 1) return fail_mark(ps, mark, "expected a single YAML document, found a second one");
        return GRPO_OK;
    case YAML_SCALAR_EVENT: {
        const char *tag = (const char *)ev->data.scalar.tag;
        if (!tag_ok(tag)) return fail_mark(ps, mark, "unsupported tag '%s'", tag);
        const char *text = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        if (memchr(text, 0, len)) return fail_mark(ps, mark, "a value may not contain a NUL character");
        cfg_node *n = new_node(ps, CFG_NODE_SCALAR, mark);
        if (!n || !(n->value = cfg_strndup(ps->doc, text, len))) return GRPO_ERR_NOMEM;
        n->len = len;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                    (tag && strcmp(tag, "tag:yaml.org,2002:str") == 0);
        if (ev->data.scalar.anchor) {
            const char *name = (const char *)ev->data.scalar.anchor;
            char *copy = cfg_strndup(ps->doc, name, strlen(name));
            if (!copy) return GRPO_ERR_NOMEM;
            GRPO_TRY(add_anchor(ps, copy, n, mark));
        }
        return attach(ps, n, mark);
    }
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        const cfg_node *target = find_anchor(ps, name);
        if (!target) return fail_mark(ps, mark, "unknown alias '*%s' (anchors must be defined, and complete, before use)", name);
        cfg_node *copy;
        GRPO_TRY(copy_node(ps, target, CFG_MAX_DEPTH - ps->depth, mark, &copy));
        return attach(ps, copy, mark);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
        const char *anchor = (const char *)(is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
        if (!tag_ok(tag)) return fail_mark(ps, mark, "unsupported tag '%s'", tag);
        if (ps->depth == CFG_MAX_DEPTH) return fail_mark(ps, mark, "nesting deeper than %d levels", CFG_MAX_DEPTH);
        cfg_node *n = new_node(ps, is_map ? CFG_NODE_MAP : CFG_NODE_SEQ, mark);
        if (!n) return GRPO_ERR_NOMEM;
        GRPO_TRY(attach(ps, n, mark));
        parse_frame *f = &ps->stack[ps->depth++];
        memset(f, 0, sizeof *f);
        f->node = n;
        if (anchor && !(f->anchor = cfg_strndup(ps->doc, anchor, strlen(anchor)))) return GRPO_ERR_NOMEM;
        return GRPO_OK;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        GRPO_ASSERT(ps->depth > 0);
        parse_frame *f = &ps->stack[ps->depth - 1];
        if (f->merge) GRPO_TRY(apply_merge(ps, f->node, f->merge, mark));
        if (f->anchor) GRPO_TRY(add_anchor(ps, f->anchor, f->node, mark));
        ps->depth--;
        return GRPO_OK;
    }
    default:
        return GRPO_OK;
    }
}

/* libyaml's problem, with the place: reader errors (bad UTF-8, control characters)
 * carry a byte offset only, which is turned into line:col here. */
static grpo_status parser_error(const parser_state *ps, const yaml_parser_t *p, const char *text, size_t len) {
    if (p->error == YAML_MEMORY_ERROR) return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory while parsing YAML", ps->origin);
    const char *problem = p->problem ? p->problem : "malformed YAML";
    yaml_mark_t mark = p->problem_mark;
    if (p->error == YAML_READER_ERROR) {
        size_t off = p->problem_offset < len ? p->problem_offset : len;
        mark.line = 0;
        mark.column = 0;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') mark.line++, mark.column = 0;
            else mark.column++;
        }
        if (p->problem_value != -1)
            return fail_mark(ps, mark, "%s (byte 0x%02x)", problem, (unsigned)p->problem_value & 0xffu);
        return fail_mark(ps, mark, "%s", problem);
    }
    if (p->context)
        return fail_mark(ps, mark, "%s (%s at line %d, column %d)", problem, p->context,
                         (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    return fail_mark(ps, mark, "%s", problem);
}

grpo_status cfg_parse_into(cfg_doc *doc, const char *text, size_t len, const char *origin, int override,
                           cfg_node **out) {
    *out = NULL;
    parser_state ps = {.doc = doc, .origin = origin, .override = override};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return grpo_fail(GRPO_ERR_NOMEM, "%s: cannot start the YAML parser", origin);
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), text ? len : 0);
    grpo_status st = GRPO_OK;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            st = parser_error(&ps, &parser, text ? text : "", text ? len : 0);
            break;
        }
        int done = ev.type == YAML_STREAM_END_EVENT;
        st = on_event(&ps, &ev);
        yaml_event_delete(&ev);
        if (st != GRPO_OK || done) break;
    }
    yaml_parser_delete(&parser);
    if (st != GRPO_OK) return st;
    if (!ps.root) { /* no document, or an empty one: a null scalar */
        ps.root = cfg_node_new(doc, CFG_NODE_SCALAR, origin, override ? 0 : 1, override ? 0 : 1);
        if (!ps.root) return GRPO_ERR_NOMEM;
    }
    *out = ps.root;
    return GRPO_OK;
}

/* ---- documents ------------------------------------------------------------------ */

void cfg_doc_free(cfg_doc *doc) {
    if (!doc) return;
    cfg_arena_block *b = doc->blocks;
    while (b) {
        cfg_arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(doc);
}

grpo_status cfg_load_string(const char *text, size_t len, const char *name, cfg_doc **out) {
    *out = NULL;
    if (!name) name = "(config)";
    cfg_doc *doc = calloc(1, sizeof *doc);
    if (!doc) return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", name);
    doc->name = name; /* for messages until the arena copy exists */
    char *name_copy = cfg_strndup(doc, name, strlen(name));
    if (!name_copy) {
        cfg_doc_free(doc);
        return GRPO_ERR_NOMEM;
    }
    doc->name = name_copy;
    cfg_node *root;
    grpo_status st = cfg_parse_into(doc, text, len, doc->name, 0, &root);
    if (st == GRPO_OK && cfg_is_null(root)) {
        cfg_node *map = cfg_node_new(doc, CFG_NODE_MAP, doc->name, root->line, root->col);
        if (!map) st = GRPO_ERR_NOMEM;
        root = map;
    }
    if (st == GRPO_OK && root->kind != CFG_NODE_MAP) {
        char found[96];
        st = grpo_fail(GRPO_ERR_PARSE, "%s:%d:%d: expected a mapping of keys at the top level, found %s", doc->name,
                       root->line, root->col, cfg_describe(root, found, sizeof found));
    }
    if (st != GRPO_OK) {
        cfg_doc_free(doc);
        return st;
    }
    doc->root = root;
    *out = doc;
    return GRPO_OK;
}

enum { MAX_CONFIG_BYTES = 64 << 20 };

grpo_status cfg_load_file(const char *path, cfg_doc **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return grpo_fail(errno == ENOENT ? GRPO_ERR_NOTFOUND : GRPO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    grpo_status st = buf ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", path);
    while (st == GRPO_OK) {
        if (len == cap) {
            if (cap >= MAX_CONFIG_BYTES) {
                st = grpo_fail(GRPO_ERR_INVALID, "%s: larger than %d MiB; not a config file?", path, MAX_CONFIG_BYTES >> 20);
                break;
            }
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                st = grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) st = grpo_fail(GRPO_ERR_IO, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (st == GRPO_OK) st = cfg_load_string(buf, len, path, out);
    free(buf);
    return st;
}

const cfg_node *cfg_root(const cfg_doc *doc) { return doc ? doc->root : NULL; }
const char *cfg_doc_name(const cfg_doc *doc) { return doc ? doc->name : NULL; }

/* ---- reading the tree ----------------------------------------------------------- */

int cfg_next_segment(const char **p, cfg_segment *seg) {
    const char *s = *p;
    memset(seg, 0, sizeof *seg);
    if (*s == 0) return 0;
    if (*s == '[') {
        s++;
        seg->key = s;
        while (*s >= '0' && *s <= '9') s++;
        seg->len = (size_t)(s - seg->key);
        if (seg->len == 0 || seg->len > 9 || *s != ']') return -1;
        s++;
        seg->bracketed = 1;
    } else {
        seg->key = s;
        while (*s && *s != '.' && *s != '[' && *s != ']') s++;
        seg->len = (size_t)(s - seg->key);
        if (seg->len == 0) return -1;
    }
    seg->is_number = seg->len <= 9;
    for (size_t i = 0; i < seg->len && seg->is_number; i++)
        if (seg->key[i] < '0' || seg->key[i] > '9') seg->is_number = 0;
    if (seg->is_number) seg->index = (size_t)strtoul(seg->key, NULL, 10);
    if (*s == '.') {
        s++;
        if (*s == 0 || *s == '.' || *s == '[') return -1;
    } else if (*s != 0 && *s != '[') {
        return -1;
    }
    *p = s;
    return 1;
}

const cfg_node *cfg_get(const cfg_node *node, const char *path) {
    if (!node || !path) return NULL;
    cfg_segment seg;
    int r;
    while (node && (r = cfg_next_segment(&path, &seg)) != 0) {
        if (r < 0) return NULL;
        if (node->kind == CFG_NODE_SEQ) {
            if (!seg.is_number || seg.index >= node->count) return NULL;
            node = node->items[seg.index];
        } else if (node->kind == CFG_NODE_MAP && !seg.bracketed) {
            node = cfg_map_find(node, seg.key, seg.len);
        } else {
            return NULL;
        }
    }
    return node;
}

cfg_kind cfg_node_kind(const cfg_node *node) { return node ? node->kind : CFG_NODE_SCALAR; }
int cfg_node_line(const cfg_node *node) { return node ? node->line : 0; }
int cfg_node_col(const cfg_node *node) { return node ? node->col : 0; }
const char *cfg_scalar(const cfg_node *node) {
    return node && node->kind == CFG_NODE_SCALAR ? node->value : NULL;
}
int cfg_scalar_quoted(const cfg_node *node) { return node && node->kind == CFG_NODE_SCALAR && node->quoted; }

int cfg_is_null(const cfg_node *node) {
    if (!node || node->kind != CFG_NODE_SCALAR || node->quoted) return 0;
    const char *v = node->value;
    return v[0] == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

size_t cfg_size(const cfg_node *node) { return node && node->kind != CFG_NODE_SCALAR ? node->count : 0; }
const char *cfg_map_key(const cfg_node *map, size_t i) {
    return map && map->kind == CFG_NODE_MAP && i < map->count ? map->items[i]->key : NULL;
}
const cfg_node *cfg_map_value(const cfg_node *map, size_t i) {
    return map && map->kind == CFG_NODE_MAP && i < map->count ? map->items[i] : NULL;
}
const cfg_node *cfg_seq_at(const cfg_node *seq, size_t i) {
    return seq && seq->kind == CFG_NODE_SEQ && i < seq->count ? seq->items[i] : NULL;
}

const char *cfg_node_where(const cfg_node *node, char *buf, size_t size) {
    if (!node) snprintf(buf, size, "(config)");
    else if (node->line > 0) snprintf(buf, size, "%s:%d:%d", node->origin, node->line, node->col);
    else snprintf(buf, size, "%s", node->origin);
    return buf;
}

const char *cfg_node_path(const cfg_node *node, char *buf, size_t size) {
    enum { MAX_CHAIN = 4 * CFG_MAX_DEPTH };
    const cfg_node *chain[MAX_CHAIN];
    int n = 0;
    for (const cfg_node *p = node; p && p->parent && n < MAX_CHAIN; p = p->parent) chain[n++] = p;
    size_t used = 0;
    if (size) buf[0] = 0;
    for (int i = n - 1; i >= 0 && used < size; i--) {
        const cfg_node *c = chain[i];
        int w;
        if (c->parent->kind == CFG_NODE_SEQ) w = snprintf(buf + used, size - used, "[%zu]", c->index);
        else w = snprintf(buf + used, size - used, "%s%s", used ? "." : "", c->key ? c->key : "?");
        if (w < 0) break;
        used += (size_t)w;
    }
    return buf;
}

const char *cfg_format_double(double v, char *buf, size_t size) {
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, size, "%.*g", precision, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

const char *cfg_describe(const cfg_node *node, char *buf, size_t size) {
    if (!node) snprintf(buf, size, "nothing");
    else if (node->kind == CFG_NODE_MAP) snprintf(buf, size, "a mapping");
    else if (node->kind == CFG_NODE_SEQ) snprintf(buf, size, "a list");
    else if (cfg_is_null(node)) snprintf(buf, size, "null");
    else if (node->len > 40) snprintf(buf, size, "'%.37s...'", node->value);
    else snprintf(buf, size, "'%s'", node->value);
    return buf;
}

grpo_status cfg_fail_at(const cfg_node *node, grpo_status code, const char *fmt, ...) {
    char where[512], path[512], msg[1280];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cfg_node_where(node, where, sizeof where);
    cfg_node_path(node, path, sizeof path);
    if (path[0]) return grpo_fail(code, "%s: %s: %s", where, path, msg);
    return grpo_fail(code, "%s: %s", where, msg);
}
