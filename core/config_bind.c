/* Schema-driven binding of a config tree into C structs: each section of the program
 * declares its keys once (cfg_field tables), and every mismatch between the YAML and
 * that table is reported with place, key path, what was expected and what was found. */
#include "core/config_impl.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- scalars -------------------------------------------------------------------- */

/* Reads a number: decimal or scientific notation, or YAML's .inf / -.inf. Returns 1 on
 * success, 0 when the text is not a number, -1 when it overflows a double. strtod's
 * own extras (hex, "nan", "inf") are refused so they cannot slip in by accident. */
static int scalar_to_double(const char *s, double *out) {
    const char *t = s + (*s == '+' || *s == '-');
    if (strcmp(t, ".inf") == 0 || strcmp(t, ".Inf") == 0 || strcmp(t, ".INF") == 0) {
        *out = *s == '-' ? -INFINITY : INFINITY;
        return 1;
    }
    if (*s == 0 || strspn(s, "0123456789+-.eE") != strlen(s)) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end) return 0;
    if (errno == ERANGE && isinf(v)) return -1;
    *out = v;
    return 1;
}

/* Reads an integer: decimal digits, or a number with an integral value ("1e6"). Returns
 * 1 on success, 0 when not a number, -1 when out of range, -2 when not integral. */
static int scalar_to_int64(const char *s, int64_t *out) {
    const char *t = s + (*s == '+' || *s == '-');
    if (*t && strspn(t, "0123456789") == strlen(t)) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno == ERANGE) return -1;
        *out = v;
        return 1;
    }
    double d;
    int r = scalar_to_double(s, &d);
    if (r <= 0) return r;
    if (!isfinite(d)) return -1;
    if (d != floor(d)) return -2;
    if (fabs(d) > 9007199254740992.0) return -1; /* 2^53: beyond it a double is not exact */
    *out = (int64_t)d;
    return 1;
}

static int scalar_to_bool(const char *s, int *out) {
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", NULL};
    for (int i = 0; yes[i]; i++) {
        if (strcmp(s, yes[i]) == 0) return *out = 1, 1;
        if (strcmp(s, no[i]) == 0) return *out = 0, 1;
    }
    return 0;
}

/* ---- messages ------------------------------------------------------------------- */

static const char *expected_name(const cfg_field *f, char *buf, size_t size) {
    switch (f->type) {
    case CFG_INT:
    case CFG_INT64: return "an integer";
    case CFG_FLOAT: return "a number";
    case CFG_BOOL: return "true or false";
    case CFG_STRING: return "a string";
    case CFG_STRING_LIST: return "a list of strings";
    case CFG_FLOAT_LIST: return "a list of numbers";
    case CFG_INT_LIST: return "a list of integers";
    case CFG_SECTION: return "a mapping";
    case CFG_LIST: return "a list of mappings";
    case CFG_ANY: return "a value";
    case CFG_ENUM: {
        size_t used = (size_t)snprintf(buf, size, "one of");
        for (int i = 0; f->choices && f->choices[i] && used < size; i++)
            used += (size_t)snprintf(buf + used, size - used, "%s '%s'", i ? "," : "", f->choices[i]);
        return buf;
    }
    }
    return "a value";
}

static grpo_status fail_expected(const cfg_node *n, const cfg_field *f, const char *what) {
    char found[96], choices[512];
    return cfg_fail_at(n, GRPO_ERR_INVALID, "expected %s, found %s", what ? what : expected_name(f, choices, sizeof choices),
                       cfg_describe(n, found, sizeof found));
}

static grpo_status check_range(const cfg_node *n, double v, double lo, double hi) {
    if (v >= lo && v <= hi) return GRPO_OK;
    char a[32], b[32];
    cfg_format_double(lo, a, sizeof a);
    cfg_format_double(hi, b, sizeof b);
    if (isinf(lo)) return cfg_fail_at(n, GRPO_ERR_INVALID, "expected a value <= %s, found %s", b, n->value);
    if (isinf(hi)) return cfg_fail_at(n, GRPO_ERR_INVALID, "expected a value >= %s, found %s", a, n->value);
    return cfg_fail_at(n, GRPO_ERR_INVALID, "expected a value in [%s, %s], found %s", a, b, n->value);
}

/* Edit distance for "did you mean"; names longer than 63 bytes get no suggestion. */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return INT_MAX;
    int row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest name within a third of its length (at least 2 edits), or NULL. */
static const char *nearest(const char *word, const char *const *names, size_t stride, size_t count) {
    const char *best = NULL;
    int best_d = INT_MAX;
    for (size_t i = 0; i < count; i++) {
        const char *name = *(const char *const *)((const char *)names + i * stride);
        int d = edit_distance(word, name);
        int limit = (int)strlen(name) / 3;
        if (limit < 2) limit = 2;
        if (d <= limit && d < best_d) best = name, best_d = d;
    }
    return best;
}

static grpo_status fail_unknown_key(const cfg_node *map, const cfg_node *value, const cfg_field *schema) {
    char where[512], path[512], known[1024], hint[160] = "";
    size_t nfields = 0, used = 0;
    known[0] = 0;
    for (; schema[nfields].key; nfields++)
        if (used < sizeof known)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", nfields ? ", " : "", schema[nfields].key);
    const char *guess = nearest(value->key, &schema[0].key, sizeof schema[0], nfields);
    if (guess) snprintf(hint, sizeof hint, "; did you mean '%s'?", guess);
    if (value->key_line > 0)
        snprintf(where, sizeof where, "%s:%d:%d", value->key_origin, value->key_line, value->key_col);
    else
        snprintf(where, sizeof where, "%s", value->key_origin ? value->key_origin : value->origin);
    cfg_node_path(map, path, sizeof path);
    return grpo_fail(GRPO_ERR_INVALID, "%s: %s%sunknown key '%s'%s (known keys: %s)", where, path, *path ? ": " : "",
                     value->key, hint, nfields ? known : "none");
}

/* ---- fields --------------------------------------------------------------------- */

#define MEMBER(out, f, T) ((T *)((char *)(out) + (f)->offset))

static grpo_status bind_int(const cfg_node *n, const cfg_field *f, double lo, double hi, int64_t *out) {
    int r = n->kind == CFG_NODE_SCALAR ? scalar_to_int64(n->value, out) : 0;
    if (r == 0 || r == -2) return fail_expected(n, f, "an integer");
    if (r == -1) {
        char a[32], b[32];
        return cfg_fail_at(n, GRPO_ERR_INVALID, "expected an integer in [%s, %s], found %s", cfg_format_double(lo, a, sizeof a),
                           cfg_format_double(hi, b, sizeof b), n->value);
    }
    return check_range(n, (double)*out, lo, hi);
}

static grpo_status bind_double(const cfg_node *n, const cfg_field *f, double *out) {
    int r = n->kind == CFG_NODE_SCALAR ? scalar_to_double(n->value, out) : 0;
    if (r == 0) return fail_expected(n, f, "a number");
    if (r < 0) return cfg_fail_at(n, GRPO_ERR_INVALID, "the number %s is too large", n->value);
    return check_range(n, *out, f->min, f->max);
}

static double max_d(double a, double b) { return a > b ? a : b; }
static double min_d(double a, double b) { return a < b ? a : b; }

static grpo_status check_count(const cfg_node *n, const cfg_field *f) {
    if (f->max_count > 0 && n->count > (size_t)f->max_count)
        return cfg_fail_at(n, GRPO_ERR_INVALID, "expected at most %d elements, found %zu", f->max_count, n->count);
    if (n->count > INT_MAX) return cfg_fail_at(n, GRPO_ERR_INVALID, "too many elements (%zu)", n->count);
    return GRPO_OK;
}

static void set_null(const cfg_field *f, void *out) {
    switch (f->type) {
    case CFG_INT:
    case CFG_BOOL:
    case CFG_ENUM: *MEMBER(out, f, int) = (int)f->null_value; break;
    case CFG_INT64: *MEMBER(out, f, int64_t) = (int64_t)f->null_value; break;
    case CFG_FLOAT: *MEMBER(out, f, double) = f->null_value; break;
    case CFG_STRING: *MEMBER(out, f, const char *) = NULL; break;
    case CFG_STRING_LIST:
    case CFG_FLOAT_LIST:
    case CFG_INT_LIST:
    case CFG_LIST:
        *MEMBER(out, f, void *) = NULL;
        *(int *)((char *)out + f->count_offset) = 0;
        break;
    case CFG_SECTION:
    case CFG_ANY: break;
    }
}

static grpo_status bind_field(const cfg_node *n, const cfg_field *f, void *out) {
    if (f->type == CFG_ANY) {
        *MEMBER(out, f, const cfg_node *) = cfg_is_null(n) ? NULL : n;
        return GRPO_OK;
    }
    if (cfg_is_null(n)) {
        if (f->type == CFG_SECTION) return GRPO_OK; /* `section:` left empty: defaults */
        if (!f->nullable) return fail_expected(n, f, NULL);
        set_null(f, out);
        return GRPO_OK;
    }
    switch (f->type) {
    case CFG_INT: {
        int64_t v;
        GRPO_TRY(bind_int(n, f, max_d(f->min, INT_MIN), min_d(f->max, INT_MAX), &v));
        *MEMBER(out, f, int) = (int)v;
        return GRPO_OK;
    }
    case CFG_INT64: {
        int64_t v;
        GRPO_TRY(bind_int(n, f, max_d(f->min, -9.2233720368547748e18), min_d(f->max, 9.2233720368547748e18), &v));
        *MEMBER(out, f, int64_t) = v;
        return GRPO_OK;
    }
    case CFG_FLOAT: return bind_double(n, f, MEMBER(out, f, double));
    case CFG_BOOL: {
        int v;
        if (n->kind != CFG_NODE_SCALAR || !scalar_to_bool(n->value, &v)) return fail_expected(n, f, NULL);
        *MEMBER(out, f, int) = v;
        return GRPO_OK;
    }
    case CFG_STRING:
        if (n->kind != CFG_NODE_SCALAR) return fail_expected(n, f, NULL);
        *MEMBER(out, f, const char *) = n->value;
        return GRPO_OK;
    case CFG_ENUM: {
        if (n->kind == CFG_NODE_SCALAR)
            for (int i = 0; f->choices && f->choices[i]; i++)
                if (strcmp(n->value, f->choices[i]) == 0) return *MEMBER(out, f, int) = i, GRPO_OK;
        char choices[512], found[96], hint[160] = "";
        size_t nchoices = 0;
        while (f->choices && f->choices[nchoices]) nchoices++;
        const char *guess = n->kind == CFG_NODE_SCALAR && nchoices
                                ? nearest(n->value, f->choices, sizeof f->choices[0], nchoices) : NULL;
        if (guess) snprintf(hint, sizeof hint, "; did you mean '%s'?", guess);
        return cfg_fail_at(n, GRPO_ERR_INVALID, "expected %s, found %s%s", expected_name(f, choices, sizeof choices),
                           cfg_describe(n, found, sizeof found), hint);
    }
    case CFG_STRING_LIST:
    case CFG_FLOAT_LIST:
    case CFG_INT_LIST: {
        if (n->kind != CFG_NODE_SEQ) return fail_expected(n, f, NULL);
        GRPO_TRY(check_count(n, f));
        size_t elem = f->type == CFG_STRING_LIST ? sizeof(const char *) : f->type == CFG_FLOAT_LIST ? sizeof(double) : sizeof(int);
        void *array = NULL;
        if (n->count && !(array = cfg_alloc(n->doc, n->count * elem))) return GRPO_ERR_NOMEM;
        for (size_t i = 0; i < n->count; i++) {
            const cfg_node *e = n->items[i];
            if (e->kind != CFG_NODE_SCALAR || cfg_is_null(e)) {
                const char *what = f->type == CFG_STRING_LIST ? "a string" : f->type == CFG_FLOAT_LIST ? "a number" : "an integer";
                return fail_expected(e, f, what);
            }
            if (f->type == CFG_STRING_LIST) {
                ((const char **)array)[i] = e->value;
            } else if (f->type == CFG_FLOAT_LIST) {
                GRPO_TRY(bind_double(e, f, &((double *)array)[i]));
            } else {
                int64_t v;
                GRPO_TRY(bind_int(e, f, max_d(f->min, INT_MIN), min_d(f->max, INT_MAX), &v));
                ((int *)array)[i] = (int)v;
            }
        }
        *MEMBER(out, f, void *) = array;
        *(int *)((char *)out + f->count_offset) = (int)n->count;
        return GRPO_OK;
    }
    case CFG_SECTION:
        if (n->kind != CFG_NODE_MAP) return fail_expected(n, f, NULL);
        return cfg_bind(n, f->schema, MEMBER(out, f, char));
    case CFG_LIST: {
        if (n->kind != CFG_NODE_SEQ) return fail_expected(n, f, NULL);
        GRPO_TRY(check_count(n, f));
        GRPO_ASSERT(f->elem_size > 0 && f->schema);
        char *array = NULL;
        if (n->count && !(array = cfg_alloc(n->doc, n->count * f->elem_size))) return GRPO_ERR_NOMEM;
        for (size_t i = 0; i < n->count; i++) {
            const cfg_node *e = n->items[i];
            if (e->kind != CFG_NODE_MAP) return fail_expected(e, f, "a mapping");
            char *elem = array + i * f->elem_size;
            if (f->elem_defaults) memcpy(elem, f->elem_defaults, f->elem_size);
            GRPO_TRY(cfg_bind(e, f->schema, elem));
        }
        *MEMBER(out, f, void *) = array;
        *(int *)((char *)out + f->count_offset) = (int)n->count;
        return GRPO_OK;
    }
    case CFG_ANY: break;
    }
    return GRPO_OK;
}

grpo_status cfg_bind(const cfg_node *map, const cfg_field *schema, void *out) {
    GRPO_ASSERT(schema && out);
    if (!map || cfg_is_null(map)) return GRPO_OK;
    if (map->kind != CFG_NODE_MAP) {
        char found[96];
        return cfg_fail_at(map, GRPO_ERR_INVALID, "expected a mapping, found %s", cfg_describe(map, found, sizeof found));
    }
    for (size_t i = 0; i < map->count; i++) {
        const cfg_node *value = map->items[i];
        const cfg_field *f = schema;
        while (f->key && strcmp(f->key, value->key) != 0) f++;
        if (!f->key) return fail_unknown_key(map, value, schema);
        GRPO_TRY(bind_field(value, f, out));
    }
    for (const cfg_field *f = schema; f->key; f++)
        if (f->required && !cfg_map_find(map, f->key, strlen(f->key)))
            return cfg_fail_at(map, GRPO_ERR_INVALID, "missing required key '%s'", f->key);
    return GRPO_OK;
}
