/* Prompt template rendering (data/template.h). */
#include "data/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const template_r1_zero =
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {prompt}. Assistant:";

typedef struct {
    char *data;
    size_t len, cap;
} text_buffer;

static int buffer_append(text_buffer *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
    return 1;
}

/* Appends the value of one JSON field as text. */
static grpo_status append_value(text_buffer *b, const json_t *v, const char *name, const char *origin) {
    char num[64];
    if (json_is_string(v)) {
        if (!buffer_append(b, json_string_value(v), json_string_length(v))) goto nomem;
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        if (!buffer_append(b, num, strlen(num))) goto nomem;
    } else if (json_is_real(v)) {
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        if (!buffer_append(b, num, strlen(num))) goto nomem;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            if (i && !buffer_append(b, ", ", 2)) goto nomem;
            if (json_is_array(item) || json_is_object(item))
                return grpo_fail(GRPO_ERR_INVALID, "%s: field '%s': expected an array of scalars for the template",
                                 origin, name);
            GRPO_TRY(append_value(b, item, name, origin));
        }
    } else {
        return grpo_fail(GRPO_ERR_INVALID, "%s: field '%s': expected a string, number or array for the template",
                         origin, name);
    }
    return GRPO_OK;
nomem:
    return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory rendering the template", origin);
}

static grpo_status render(const char *tmpl, const json_t *line, const char *origin, text_buffer *b) {
    const char *p = tmpl;
    while (*p) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            if (b && !buffer_append(b, p, 1)) return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
            p += 2;
        } else if (*p == '{') {
            const char *end = strchr(p, '}');
            if (!end || end == p + 1 || end - p > 64)
                return grpo_fail(GRPO_ERR_INVALID, "%s: template: unclosed or empty placeholder at offset %d",
                                 origin, (int)(p - tmpl));
            char name[65];
            memcpy(name, p + 1, (size_t)(end - p - 1));
            name[end - p - 1] = 0;
            if (b) {
                const json_t *v = json_object_get(line, name);
                if (!v) return grpo_fail(GRPO_ERR_NOTFOUND, "%s: template placeholder {%s}: the line has no field '%s'",
                                         origin, name, name);
                GRPO_TRY(append_value(b, v, name, origin));
            }
            p = end + 1;
        } else if (*p == '}') {
            return grpo_fail(GRPO_ERR_INVALID, "%s: template: unmatched '}' at offset %d (write '}}' for a brace)",
                             origin, (int)(p - tmpl));
        } else {
            size_t n = strcspn(p, "{}");
            if (b && !buffer_append(b, p, n)) return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
            p += n;
        }
    }
    return GRPO_OK;
}

grpo_status template_validate(const char *tmpl, const char *origin) { return render(tmpl, NULL, origin, NULL); }

grpo_status template_render(const char *tmpl, const json_t *line, const char *origin, char **out) {
    *out = NULL;
    text_buffer b = {0};
    if (!buffer_append(&b, "", 0)) return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    grpo_status s = render(tmpl, line, origin, &b);
    if (s) {
        free(b.data);
        return s;
    }
    *out = b.data;
    return GRPO_OK;
}
