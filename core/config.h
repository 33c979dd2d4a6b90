/* YAML configuration. A run's config file is parsed (libyaml) into a small tree that
 * remembers where every value came from (file:line:col, or the `--set a.b=c` override
 * that made it); `--set` overrides edit the tree; then each part of the program binds
 * its section into a plain C struct through a schema table it declares once. Errors
 * name the place, the full key path, what was expected and what was found:
 *   config.yaml:12:18: optimizer.learning_rate: expected a number, found 'abc'
 *
 * Ownership: a cfg_doc owns every node, and every string and array that cfg_bind puts
 * into a bound struct (strings point into the tree; lists live in the doc's arena).
 * Keep the doc alive as long as a bound struct is used; cfg_doc_free releases all. */
#ifndef GRPO_CONFIG_H
#define GRPO_CONFIG_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct cfg_doc cfg_doc;
typedef struct cfg_node cfg_node;

typedef enum { CFG_NODE_SCALAR, CFG_NODE_MAP, CFG_NODE_SEQ } cfg_kind;

/* Limits that keep hostile input from exhausting the stack or memory. */
enum {
    CFG_MAX_DEPTH = 64,          /* nesting of mappings/sequences */
    CFG_MAX_MAP_KEYS = 4096,     /* entries in one mapping */
    CFG_MAX_NODES = 1 << 20,     /* nodes in one document, alias copies included */
    CFG_MAX_ALIAS_NODES = 100000 /* nodes created by expanding aliases and merges */
};

/* ---- loading -------------------------------------------------------------------- */

/* Parses a YAML file holding one document whose top level is a mapping (an empty file
 * or a bare `~` is an empty mapping). Anchors and aliases are expanded into copies;
 * merge keys (`<<: *base`) add the keys the mapping does not set itself. Duplicate
 * keys, unsupported tags and more than one document are errors. On failure *out is
 * NULL and the message names file:line:col. The caller frees with cfg_doc_free. */
grpo_status cfg_load_file(const char *path, cfg_doc **out);
/* The same from memory; `name` (e.g. "config.yaml") is used in messages. */
grpo_status cfg_load_string(const char *text, size_t len, const char *name, cfg_doc **out);
void cfg_doc_free(cfg_doc *doc);
/* The top-level mapping. */
const cfg_node *cfg_root(const cfg_doc *doc);
/* The name given at load time (the file path). */
const char *cfg_doc_name(const cfg_doc *doc);

/* ---- overrides ------------------------------------------------------------------ */

/* Applies one command-line override "a.b.c=value" to the tree before binding. Keys
 * that do not exist are created (as mappings along the way); list elements are
 * addressed as stages.1.name or stages[1].name and must exist; a null on the way
 * becomes an empty mapping; going through any other scalar is an error. The value is
 * a plain scalar taken literally ("1e-5", "true", "null", "Solve: {prompt}"), except
 * that one starting with [ { " or ' is parsed as YAML (a flow list, mapping or quoted
 * string). Nodes made here report "--set a.b.c=value" as their place in messages. */
grpo_status cfg_apply_override(cfg_doc *doc, const char *assignment);

/* ---- reading the tree ----------------------------------------------------------- */

/* The node at a dotted path below `node` ("rollout.temperature", "stages[1].name",
 * "stages.1.name"); NULL when any part is absent, when the path is malformed, or
 * when node is NULL. An empty path is the node itself. */
const cfg_node *cfg_get(const cfg_node *node, const char *path);
cfg_kind cfg_node_kind(const cfg_node *node);
/* 1-based position in the file; 0 for nodes made by an override. */
int cfg_node_line(const cfg_node *node);
int cfg_node_col(const cfg_node *node);
/* Where the node came from: "file:line:col", or "--set a.b=c". Writes into buf. */
const char *cfg_node_where(const cfg_node *node, char *buf, size_t size);
/* The node's key path from the root: "stages[2].rewards[0].weight" ("" for the root). */
const char *cfg_node_path(const cfg_node *node, char *buf, size_t size);
/* A scalar's text (NUL-terminated, valid while the doc lives); NULL for collections. */
const char *cfg_scalar(const cfg_node *node);
/* Whether a scalar was quoted ('..', "..", | or >, or tagged !!str): always a string. */
int cfg_scalar_quoted(const cfg_node *node);
/* YAML null: an unquoted ~, null, Null, NULL or empty scalar. */
int cfg_is_null(const cfg_node *node);
/* Entries of a mapping or elements of a sequence; 0 for scalars and NULL. */
size_t cfg_size(const cfg_node *node);
/* The i-th key / value of a mapping in file order (NULL when out of range). */
const char *cfg_map_key(const cfg_node *map, size_t i);
const cfg_node *cfg_map_value(const cfg_node *map, size_t i);
/* The i-th element of a sequence (NULL when out of range). */
const cfg_node *cfg_seq_at(const cfg_node *seq, size_t i);
/* Records an error about `node` in the standard form "where: path: message" and
 * returns code; for checks across fields that a schema cannot express. */
grpo_status cfg_fail_at(const cfg_node *node, grpo_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- binding -------------------------------------------------------------------- */

typedef enum {
    CFG_INT,         /* int */
    CFG_INT64,       /* int64_t */
    CFG_FLOAT,       /* double */
    CFG_BOOL,        /* int: 0 or 1; YAML true/false/yes/no */
    CFG_STRING,      /* const char *: points into the doc */
    CFG_ENUM,        /* int: index into `choices` */
    CFG_STRING_LIST, /* const char **, count in an int at count_offset; array in the doc */
    CFG_FLOAT_LIST,  /* double *, count in an int at count_offset */
    CFG_INT_LIST,    /* int *, count in an int at count_offset */
    CFG_SECTION,     /* a struct member bound with `schema` */
    CFG_LIST,        /* a sequence of mappings: pointer to elem_size-byte elements, each
                        started from *elem_defaults (or zeros) and bound with `schema`;
                        count in an int at count_offset; array in the doc */
    CFG_ANY          /* const cfg_node *: the raw node (free-form params); NULL if null */
} cfg_type;

/* One key of a section. A schema is an array of these ended by CFG_END. */
typedef struct cfg_field {
    const char *key;
    cfg_type type;
    size_t offset;                  /* of the member in the bound struct */
    double min, max;                /* numbers and number lists: allowed range, inclusive */
    const char *const *choices;     /* CFG_ENUM: NULL-terminated names */
    const struct cfg_field *schema; /* CFG_SECTION, CFG_LIST */
    size_t elem_size;               /* CFG_LIST */
    const void *elem_defaults;      /* CFG_LIST: the defaults of one element (NULL: zeros) */
    size_t count_offset;            /* lists: the int member that receives the count */
    int max_count;                  /* lists: most elements allowed (0: no limit) */
    int nullable;                   /* YAML null allowed: pointers become NULL (count 0),
                                       numbers/bools/enums become null_value */
    double null_value;
    int required;                   /* the key must be present */
    const char *help;
} cfg_field;

/* Open ends of a number range: CFG_FIELD_FLOAT(T, m, "key", CFG_NO_MIN, CFG_NO_MAX, "help"). */
#define CFG_NO_MIN (-INFINITY)
#define CFG_NO_MAX INFINITY

/* Compile-time check that a member has the C type a field type writes. */
#define CFG__IS(T, m, ctype) (0 * sizeof(char[_Generic(((T *)0)->m, ctype: 1, default: -1)]))
#define CFG__OFF(T, m, ctype) (offsetof(T, m) + CFG__IS(T, m, ctype))
#define CFG__COUNT(T, c) (offsetof(T, c) + CFG__IS(T, c, int))

/* Field constructors. Extra designated initializers may follow the help text, e.g.
 * CFG_FIELD_INT(run_cfg, top_k, "top_k", 0, 1e6, "0: off", .nullable = 1, .null_value = 0)
 * or `.required = 1`. */
#define CFG_FIELD_INT(T, m, k, lo, hi, h, ...) \
    { .key = (k), .type = CFG_INT, .offset = CFG__OFF(T, m, int), .min = (lo), .max = (hi), .help = (h), __VA_ARGS__ }
#define CFG_FIELD_INT64(T, m, k, lo, hi, h, ...) \
    { .key = (k), .type = CFG_INT64, .offset = CFG__OFF(T, m, int64_t), .min = (lo), .max = (hi), .help = (h), __VA_ARGS__ }
#define CFG_FIELD_FLOAT(T, m, k, lo, hi, h, ...) \
    { .key = (k), .type = CFG_FLOAT, .offset = CFG__OFF(T, m, double), .min = (lo), .max = (hi), .help = (h), __VA_ARGS__ }
#define CFG_FIELD_BOOL(T, m, k, h, ...) \
    { .key = (k), .type = CFG_BOOL, .offset = CFG__OFF(T, m, int), .help = (h), __VA_ARGS__ }
#define CFG_FIELD_STRING(T, m, k, h, ...) \
    { .key = (k), .type = CFG_STRING, .offset = CFG__OFF(T, m, const char *), .help = (h), __VA_ARGS__ }
#define CFG_FIELD_ENUM(T, m, k, names, h, ...) \
    { .key = (k), .type = CFG_ENUM, .offset = CFG__OFF(T, m, int), .choices = (names), .help = (h), __VA_ARGS__ }
#define CFG_FIELD_STRING_LIST(T, m, count, k, maxn, h, ...) \
    { .key = (k), .type = CFG_STRING_LIST, .offset = CFG__OFF(T, m, const char **), \
      .count_offset = CFG__COUNT(T, count), .max_count = (maxn), .help = (h), __VA_ARGS__ }
#define CFG_FIELD_FLOAT_LIST(T, m, count, k, lo, hi, maxn, h, ...) \
    { .key = (k), .type = CFG_FLOAT_LIST, .offset = CFG__OFF(T, m, double *), .min = (lo), .max = (hi), \
      .count_offset = CFG__COUNT(T, count), .max_count = (maxn), .help = (h), __VA_ARGS__ }
#define CFG_FIELD_INT_LIST(T, m, count, k, lo, hi, maxn, h, ...) \
    { .key = (k), .type = CFG_INT_LIST, .offset = CFG__OFF(T, m, int *), .min = (lo), .max = (hi), \
      .count_offset = CFG__COUNT(T, count), .max_count = (maxn), .help = (h), __VA_ARGS__ }
#define CFG_FIELD_SECTION(T, m, k, sub_schema, h, ...) \
    { .key = (k), .type = CFG_SECTION, .offset = offsetof(T, m), .schema = (sub_schema), .help = (h), __VA_ARGS__ }
/* m: `E *m;` with `int count;` beside it; defaults: a `const E *` prototype or NULL. */
#define CFG_FIELD_LIST(T, m, count, k, E, sub_schema, defaults, maxn, h, ...) \
    { .key = (k), .type = CFG_LIST, .offset = CFG__OFF(T, m, E *), .schema = (sub_schema), \
      .elem_size = sizeof(E), .elem_defaults = (defaults), .count_offset = CFG__COUNT(T, count), \
      .max_count = (maxn), .help = (h), __VA_ARGS__ }
#define CFG_FIELD_ANY(T, m, k, h, ...) \
    { .key = (k), .type = CFG_ANY, .offset = CFG__OFF(T, m, const cfg_node *), .help = (h), __VA_ARGS__ }
#define CFG_END { .key = NULL }

/* Fills `out` (a struct the schema describes) from the mapping `map`. Keys absent from
 * the YAML keep whatever `out` already holds, so the caller fills defaults first. A
 * NULL map or a null node binds nothing. Unknown keys, values of the wrong type or out
 * of range, bad enum names and missing required keys are errors naming the place, the
 * key path and the known keys or choices. Strings and arrays written into `out` are
 * owned by the map's doc. On error `out` may be partly filled. */
grpo_status cfg_bind(const cfg_node *map, const cfg_field *schema, void *out);

/* ---- writing YAML --------------------------------------------------------------- */

/* The tree below `node` (overrides applied) as YAML text. *out is NUL-terminated and
 * malloc'd: the caller frees it. */
grpo_status cfg_dump(const cfg_node *node, char **out);
/* Every field of a bound struct as YAML (defaults included): the effective config to
 * store with a run. Loading it and binding it again gives back the same values.
 * *out is malloc'd: the caller frees it. */
grpo_status cfg_dump_bound(const cfg_field *schema, const void *in, char **out);

#endif
