/* Writing YAML back out (libyaml emitter): the tree after overrides, or every field of
 * a bound struct, so a run can store the exact configuration it ran with. */
#include "core/config_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct {
    char *data;
    size_t len, cap;
} text_buf;

static int write_text(void *ctx, unsigned char *bytes, size_t size) {
    text_buf *t = ctx;
    if (t->len + size + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + size + 1) cap *= 2;
        char *data = realloc(t->data, cap);
        if (!data) return 0;
        t->data = data;
        t->cap = cap;
    }
    memcpy(t->data + t->len, bytes, size);
    t->len += size;
    t->data[t->len] = 0;
    return 1;
}

static grpo_status emit(yaml_emitter_t *e, yaml_event_t *ev) {
    if (!yaml_emitter_emit(e, ev))
        return grpo_fail(GRPO_ERR_INVALID, "writing YAML: %s", e->problem ? e->problem : "emitter error");
    return GRPO_OK;
}

/* A literal block (|) reads well for multi-line text such as prompt templates; text
 * with leading blanks or trailing blank lines is clearer double-quoted. */
static int literal_block_fits(const char *text) {
    size_t len = strlen(text);
    return strchr(text, '\n') && text[0] != ' ' && text[0] != '\n' && text[len - 1] != ' ' &&
           !(len >= 2 && text[len - 1] == '\n' && text[len - 2] == '\n');
}

/* Strings keep their type on reading back: they are quoted (multi-line ones as a
 * literal block when that represents them exactly). Plain scalars stay plain when
 * libyaml can write them so, else it quotes them; either way the text is the same as
 * for the same string quoted, so a dump of a dump is the dump. */
static grpo_status emit_scalar(yaml_emitter_t *e, const char *text, int quoted) {
    yaml_event_t ev;
    if (strchr(text, '\n')) quoted = 1; /* a plain scalar never reads back with a line break */
    yaml_scalar_style_t style = quoted && literal_block_fits(text) ? YAML_LITERAL_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
    size_t len = strlen(text);
    if (len > INT32_MAX) return grpo_fail(GRPO_ERR_INVALID, "writing YAML: a value of %zu bytes is too long", len);
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)len, !quoted, 1, style))
        return grpo_fail(GRPO_ERR_NOMEM, "writing YAML: out of memory");
    return emit(e, &ev);
}

static grpo_status emit_start(yaml_emitter_t *e, int map, int flow) {
    yaml_event_t ev;
    int ok = map ? yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE)
                 : yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    if (!ok) return grpo_fail(GRPO_ERR_NOMEM, "writing YAML: out of memory");
    return emit(e, &ev);
}

static grpo_status emit_end(yaml_emitter_t *e, int map) {
    yaml_event_t ev;
    if (map) yaml_mapping_end_event_initialize(&ev);
    else yaml_sequence_end_event_initialize(&ev);
    return emit(e, &ev);
}

static grpo_status emit_node(yaml_emitter_t *e, const cfg_node *n) {
    if (n->kind == CFG_NODE_SCALAR) return emit_scalar(e, cfg_is_null(n) ? "null" : n->value, n->quoted);
    int map = n->kind == CFG_NODE_MAP;
    GRPO_TRY(emit_start(e, map, n->count == 0));
    for (size_t i = 0; i < n->count; i++) {
        /* a key that was "<<" in quotes must not read back as a merge */
        if (map) GRPO_TRY(emit_scalar(e, n->items[i]->key, strcmp(n->items[i]->key, "<<") == 0));
        GRPO_TRY(emit_node(e, n->items[i]));
    }
    return emit_end(e, map);
}

/* ---- a bound struct --------------------------------------------------------------- */

static grpo_status emit_struct(yaml_emitter_t *e, const cfg_field *schema, const void *in);

static int is_null_value(const cfg_field *f, double v) {
    return f->nullable && (v == f->null_value || (isnan(v) && isnan(f->null_value)));
}

static grpo_status emit_double(yaml_emitter_t *e, double v) {
    char buf[40];
    if (isnan(v)) return emit_scalar(e, ".nan", 0);
    if (isinf(v)) return emit_scalar(e, v > 0 ? ".inf" : "-.inf", 0);
    return emit_scalar(e, cfg_format_double(v, buf, sizeof buf), 0);
}

static grpo_status emit_field(yaml_emitter_t *e, const cfg_field *f, const void *in) {
    const char *member = (const char *)in + f->offset;
    char buf[40];
    int count = f->count_offset ? *(const int *)((const char *)in + f->count_offset) : 0;
    switch (f->type) {
    case CFG_INT:
    case CFG_BOOL:
    case CFG_ENUM: {
        int v = *(const int *)member;
        if (is_null_value(f, v)) return emit_scalar(e, "null", 0);
        if (f->type == CFG_BOOL) return emit_scalar(e, v ? "true" : "false", 0);
        if (f->type == CFG_ENUM) {
            for (int i = 0; f->choices && f->choices[i]; i++)
                if (i == v) return emit_scalar(e, f->choices[i], 0);
            return emit_scalar(e, "null", 0);
        }
        snprintf(buf, sizeof buf, "%d", v);
        return emit_scalar(e, buf, 0);
    }
    case CFG_INT64: {
        int64_t v = *(const int64_t *)member;
        if (is_null_value(f, (double)v)) return emit_scalar(e, "null", 0);
        snprintf(buf, sizeof buf, "%" PRId64, v);
        return emit_scalar(e, buf, 0);
    }
    case CFG_FLOAT: {
        double v = *(const double *)member;
        if (is_null_value(f, v)) return emit_scalar(e, "null", 0);
        return emit_double(e, v);
    }
    case CFG_STRING: {
        const char *s = *(const char *const *)member;
        return s ? emit_scalar(e, s, 1) : emit_scalar(e, "null", 0);
    }
    case CFG_STRING_LIST:
    case CFG_FLOAT_LIST:
    case CFG_INT_LIST:
    case CFG_LIST: {
        const void *array = *(const void *const *)member;
        if (!array && f->nullable) return emit_scalar(e, "null", 0);
        GRPO_ASSERT(array || count == 0);
        GRPO_TRY(emit_start(e, 0, count == 0 || f->type == CFG_FLOAT_LIST || f->type == CFG_INT_LIST));
        for (int i = 0; i < count; i++) {
            if (f->type == CFG_STRING_LIST) {
                GRPO_TRY(emit_scalar(e, ((const char *const *)array)[i], 1));
            } else if (f->type == CFG_FLOAT_LIST) {
                GRPO_TRY(emit_double(e, ((const double *)array)[i]));
            } else if (f->type == CFG_INT_LIST) {
                snprintf(buf, sizeof buf, "%d", ((const int *)array)[i]);
                GRPO_TRY(emit_scalar(e, buf, 0));
            } else {
                GRPO_TRY(emit_struct(e, f->schema, (const char *)array + (size_t)i * f->elem_size));
            }
        }
        return emit_end(e, 0);
    }
    case CFG_SECTION: return emit_struct(e, f->schema, member);
    case CFG_ANY: {
        const cfg_node *n = *(const cfg_node *const *)member;
        return n ? emit_node(e, n) : emit_scalar(e, "null", 0);
    }
    }
    return GRPO_OK;
}

static grpo_status emit_struct(yaml_emitter_t *e, const cfg_field *schema, const void *in) {
    size_t n = 0;
    while (schema[n].key) n++;
    GRPO_TRY(emit_start(e, 1, n == 0));
    for (const cfg_field *f = schema; f->key; f++) {
        GRPO_TRY(emit_scalar(e, f->key, 0));
        GRPO_TRY(emit_field(e, f, in));
    }
    return emit_end(e, 1);
}

/* ---- documents ------------------------------------------------------------------ */

typedef grpo_status (*emit_body)(yaml_emitter_t *e, const void *a, const void *b);

static grpo_status dump(emit_body body, const void *a, const void *b, char **out) {
    *out = NULL;
    text_buf text = {0};
    yaml_emitter_t e;
    if (!yaml_emitter_initialize(&e)) return grpo_fail(GRPO_ERR_NOMEM, "writing YAML: out of memory");
    yaml_emitter_set_output(&e, write_text, &text);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    yaml_emitter_set_indent(&e, 2);
    yaml_event_t ev;
    grpo_status st = GRPO_OK;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    st = emit(&e, &ev);
    if (st == GRPO_OK) {
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
        st = emit(&e, &ev);
    }
    if (st == GRPO_OK) st = body(&e, a, b);
    if (st == GRPO_OK) {
        yaml_document_end_event_initialize(&ev, 1);
        st = emit(&e, &ev);
    }
    if (st == GRPO_OK) {
        yaml_stream_end_event_initialize(&ev);
        st = emit(&e, &ev);
    }
    if (st == GRPO_OK && !yaml_emitter_flush(&e)) st = grpo_fail(GRPO_ERR_NOMEM, "writing YAML: out of memory");
    yaml_emitter_delete(&e);
    if (st == GRPO_OK && !text.data) st = write_text(&text, (unsigned char *)"", 0) ? GRPO_OK : GRPO_ERR_NOMEM;
    if (st != GRPO_OK) {
        free(text.data);
        return st;
    }
    *out = text.data;
    return GRPO_OK;
}

static grpo_status body_node(yaml_emitter_t *e, const void *node, const void *unused) { return emit_node(e, node); }
static grpo_status body_struct(yaml_emitter_t *e, const void *schema, const void *in) { return emit_struct(e, schema, in); }

grpo_status cfg_dump(const cfg_node *node, char **out) {
    GRPO_ASSERT(node);
    return dump(body_node, node, NULL, out);
}

grpo_status cfg_dump_bound(const cfg_field *schema, const void *in, char **out) {
    GRPO_ASSERT(schema && in);
    return dump(body_struct, schema, in, out);
}
