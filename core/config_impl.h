/* What the config module's files share: the node layout, the doc's arena, path
 * segments and the message helpers. Not for use outside core/config*.c. */
#ifndef GRPO_CONFIG_IMPL_H
#define GRPO_CONFIG_IMPL_H

#include <stddef.h>

#include "core/config.h"

struct cfg_node {
    cfg_kind kind;
    int quoted;            /* scalar: quoted, block or !!str: always a string */
    int line, col;         /* 1-based; 0 when made by an override */
    const char *origin;    /* the file name, or "--set a.b=c" for override nodes */
    cfg_doc *doc;
    cfg_node *parent;      /* NULL for the root */
    const char *key;       /* key in the parent mapping; NULL in a sequence */
    const char *key_origin;/* the file or override the key came from */
    int key_line, key_col; /* where that key was written (0: by an override) */
    size_t index;          /* position in the parent */
    char *value;           /* scalar text, NUL-terminated */
    size_t len;
    cfg_node **items;      /* mapping values (keys in items[i]->key) or sequence elements */
    size_t count, cap;
};

typedef struct cfg_arena_block cfg_arena_block;

struct cfg_doc {
    cfg_arena_block *blocks; /* every allocation of the doc; freed together */
    cfg_node *root;
    const char *name;
    size_t node_count;
    size_t alias_nodes;
};

/* Zeroed memory owned by the doc; NULL (with a message recorded) when out of memory. */
void *cfg_alloc(cfg_doc *doc, size_t size);
char *cfg_strndup(cfg_doc *doc, const char *s, size_t len);
/* A new node of the doc (counted against CFG_MAX_NODES); NULL with a message on failure. */
cfg_node *cfg_node_new(cfg_doc *doc, cfg_kind kind, const char *origin, int line, int col);
/* Appends child to a mapping (with key) or a sequence (key NULL); sets its parent. */
grpo_status cfg_node_append(cfg_node *parent, const char *key, cfg_node *child);
/* The mapping entry for key, or NULL. */
cfg_node *cfg_map_find(const cfg_node *map, const char *key, size_t key_len);
/* Parses YAML text into a node of doc (any kind; NULL text means an empty doc gives a
 * null scalar). Nodes get `origin` as their place; when `override` is set they get
 * line 0 so messages show the origin alone. */
grpo_status cfg_parse_into(cfg_doc *doc, const char *text, size_t len, const char *origin,
                           int override, cfg_node **out);

/* One step of a dotted path: a key, or an index written "[3]" or as a numeric key. */
typedef struct {
    const char *key;
    size_t len;
    int bracketed;    /* written as [N]: must address a sequence */
    int is_number;    /* the text is a non-negative decimal (index when in a sequence) */
    size_t index;
} cfg_segment;
/* Reads the next segment at *p and advances past it (and a following '.').
 * Returns 1 for a segment, 0 at the end, -1 for a malformed path. */
int cfg_next_segment(const char **p, cfg_segment *seg);

/* Shortest text that reads back as exactly v ("0.1", "1e-05", "3"). */
const char *cfg_format_double(double v, char *buf, size_t size);

/* "a mapping", "a list", "null", "'text'" (quoted and shortened) for messages. */
const char *cfg_describe(const cfg_node *node, char *buf, size_t size);

#endif
