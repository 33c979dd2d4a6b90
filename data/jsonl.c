/* JSONL reader and writer over jansson: one object a line, errors at file:line[:col],
 * and field helpers that dataset loaders use to report bad lines the same way. */
#include "data/jsonl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

struct jsonl_reader {
    FILE *stream;
    int owns_stream;
    char *name;
    char *line; /* getline's buffer: grows to the longest line */
    size_t line_cap;
    long line_no;
    json_t *current;
};

struct jsonl_writer {
    FILE *stream;
    int owns_stream;
    char *name;
    int write_errno; /* the first write error, reported by flush/close */
};

/* ---- reading -------------------------------------------------------------------- */

grpo_status jsonl_open_stream(FILE *stream, const char *name, jsonl_reader **out) {
    *out = NULL;
    GRPO_ASSERT(stream);
    jsonl_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name ? name : "<stream>"))) {
        free(r);
        return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", name ? name : "<stream>");
    }
    r->stream = stream;
    *out = r;
    return GRPO_OK;
}

grpo_status jsonl_open(const char *path, jsonl_reader **out) {
    *out = NULL;
    if (strcmp(path, "-") == 0) return jsonl_open_stream(stdin, "<stdin>", out);
    FILE *f = fopen(path, "rb");
    if (!f) return grpo_fail(errno == ENOENT ? GRPO_ERR_NOTFOUND : GRPO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    grpo_status st = jsonl_open_stream(f, path, out);
    if (st != GRPO_OK) {
        fclose(f);
        return st;
    }
    (*out)->owns_stream = 1;
    return GRPO_OK;
}

void jsonl_close(jsonl_reader *r) {
    if (!r) return;
    json_decref(r->current);
    if (r->owns_stream) fclose(r->stream);
    free(r->line);
    free(r->name);
    free(r);
}

long jsonl_line(const jsonl_reader *r) { return r->line_no; }
const char *jsonl_name(const jsonl_reader *r) { return r->name; }

const char *jsonl_type_name(const json_t *value) {
    switch (json_typeof(value)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

grpo_status jsonl_fail(const jsonl_reader *r, grpo_status code, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return grpo_fail(code, "%s:%ld: %s", r->name, r->line_no, msg);
}

static int is_blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

grpo_status jsonl_next(jsonl_reader *r, json_t **obj) {
    *obj = NULL;
    json_decref(r->current);
    r->current = NULL;
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->line, &r->line_cap, r->stream);
        if (n < 0) {
            if (ferror(r->stream))
                return grpo_fail(GRPO_ERR_IO, "%s:%ld: read error: %s", r->name, r->line_no + 1,
                                 strerror(errno ? errno : EIO));
            if (errno == ENOMEM) return grpo_fail(GRPO_ERR_NOMEM, "%s:%ld: line too long for memory", r->name, r->line_no + 1);
            return GRPO_OK; /* end of input */
        }
        r->line_no++;
        const char *s = r->line;
        size_t len = (size_t)n;
        if (r->line_no == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3, len -= 3;
        while (len && (s[len - 1] == '\n' || s[len - 1] == '\r')) len--;
        if (is_blank(s, len)) continue;
        json_error_t err;
        json_t *v = json_loadb(s, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
        if (!v) {
            if (err.column > 0)
                return grpo_fail(GRPO_ERR_PARSE, "%s:%ld:%d: %s", r->name, r->line_no, err.column, err.text);
            return grpo_fail(GRPO_ERR_PARSE, "%s:%ld: %s", r->name, r->line_no, err.text);
        }
        if (!json_is_object(v)) {
            const char *found = jsonl_type_name(v);
            json_decref(v);
            return jsonl_fail(r, GRPO_ERR_PARSE, "expected a JSON object, found %s", found);
        }
        r->current = v;
        *obj = v;
        return GRPO_OK;
    }
}

/* ---- fields --------------------------------------------------------------------- */

static grpo_status get_field(const jsonl_reader *r, const json_t *obj, const char *key, json_t **out) {
    *out = json_object_get(obj, key);
    if (!*out) return jsonl_fail(r, GRPO_ERR_PARSE, "missing field '%s'", key);
    return GRPO_OK;
}

grpo_status jsonl_get_string(const jsonl_reader *r, const json_t *obj, const char *key, const char **out) {
    json_t *v;
    *out = NULL;
    GRPO_TRY(get_field(r, obj, key, &v));
    if (!json_is_string(v))
        return jsonl_fail(r, GRPO_ERR_PARSE, "expected a string in '%s', found %s", key, jsonl_type_name(v));
    *out = json_string_value(v);
    return GRPO_OK;
}

grpo_status jsonl_get_string_opt(const jsonl_reader *r, const json_t *obj, const char *key, const char *fallback,
                                 const char **out) {
    json_t *v = json_object_get(obj, key);
    *out = fallback;
    if (!v || json_is_null(v)) return GRPO_OK;
    return jsonl_get_string(r, obj, key, out);
}

/* An integer value, or a real one with an integral value small enough to be exact. */
static int integer_value(const json_t *v, int64_t *out) {
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
            *out = (int64_t)d;
            return 1;
        }
    }
    return 0;
}

static const char *describe(const json_t *v, char *buf, size_t size) {
    if (json_is_number(v)) {
        snprintf(buf, size, "%.17g", json_number_value(v));
        return buf;
    }
    return jsonl_type_name(v);
}

grpo_status jsonl_get_int(const jsonl_reader *r, const json_t *obj, const char *key, int64_t *out) {
    json_t *v;
    GRPO_TRY(get_field(r, obj, key, &v));
    if (!integer_value(v, out)) {
        char buf[40];
        return jsonl_fail(r, GRPO_ERR_PARSE, "expected an integer in '%s', found %s", key, describe(v, buf, sizeof buf));
    }
    return GRPO_OK;
}

grpo_status jsonl_get_number(const jsonl_reader *r, const json_t *obj, const char *key, double *out) {
    json_t *v;
    GRPO_TRY(get_field(r, obj, key, &v));
    if (!json_is_number(v))
        return jsonl_fail(r, GRPO_ERR_PARSE, "expected a number in '%s', found %s", key, jsonl_type_name(v));
    *out = json_number_value(v);
    return GRPO_OK;
}

grpo_status jsonl_get_int_array(const jsonl_reader *r, const json_t *obj, const char *key, int64_t **out,
                                size_t *count) {
    json_t *v;
    *out = NULL;
    *count = 0;
    GRPO_TRY(get_field(r, obj, key, &v));
    if (!json_is_array(v))
        return jsonl_fail(r, GRPO_ERR_PARSE, "expected an array of integers in '%s', found %s", key, jsonl_type_name(v));
    size_t n = json_array_size(v);
    int64_t *values = NULL;
    if (n && !(values = malloc(n * sizeof *values)))
        return jsonl_fail(r, GRPO_ERR_NOMEM, "'%s': out of memory for %zu integers", key, n);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        if (!integer_value(e, &values[i])) {
            char buf[40];
            free(values);
            return jsonl_fail(r, GRPO_ERR_PARSE, "expected an array of integers in '%s', found %s at index %zu", key,
                              describe(e, buf, sizeof buf), i);
        }
    }
    *out = values;
    *count = n;
    return GRPO_OK;
}

/* ---- writing -------------------------------------------------------------------- */

grpo_status jsonl_writer_open_stream(FILE *stream, const char *name, jsonl_writer **out) {
    *out = NULL;
    GRPO_ASSERT(stream);
    jsonl_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->name = strdup(name ? name : "<stream>"))) {
        free(w);
        return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", name ? name : "<stream>");
    }
    w->stream = stream;
    *out = w;
    return GRPO_OK;
}

grpo_status jsonl_writer_open(const char *path, int append, jsonl_writer **out) {
    *out = NULL;
    if (strcmp(path, "-") == 0) return jsonl_writer_open_stream(stdout, "<stdout>", out);
    FILE *f = fopen(path, append ? "ab" : "wb");
    if (!f) return grpo_fail(GRPO_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    grpo_status st = jsonl_writer_open_stream(f, path, out);
    if (st != GRPO_OK) {
        fclose(f);
        return st;
    }
    (*out)->owns_stream = 1;
    return GRPO_OK;
}

grpo_status jsonl_write_object(jsonl_writer *w, const json_t *obj) {
    char *text = json_dumps(obj, JSON_COMPACT);
    if (!text)
        return grpo_fail(GRPO_ERR_INVALID, "%s: cannot encode %s as a JSONL line", w->name,
                         obj ? jsonl_type_name(obj) : "NULL");
    size_t len = strlen(text);
    errno = 0;
    int ok = fwrite(text, 1, len, w->stream) == len && fputc('\n', w->stream) != EOF;
    free(text);
    if (!ok) {
        if (!w->write_errno) w->write_errno = errno ? errno : EIO;
        return grpo_fail(GRPO_ERR_IO, "%s: write error: %s", w->name, strerror(w->write_errno));
    }
    return GRPO_OK;
}

grpo_status jsonl_writer_flush(jsonl_writer *w) {
    errno = 0;
    if (fflush(w->stream) != 0 && !w->write_errno) w->write_errno = errno ? errno : EIO;
    if (w->write_errno) return grpo_fail(GRPO_ERR_IO, "%s: write error: %s", w->name, strerror(w->write_errno));
    return GRPO_OK;
}

grpo_status jsonl_writer_close(jsonl_writer *w) {
    if (!w) return GRPO_OK;
    grpo_status st = jsonl_writer_flush(w);
    if (w->owns_stream && fclose(w->stream) != 0 && st == GRPO_OK)
        st = grpo_fail(GRPO_ERR_IO, "%s: write error on close: %s", w->name, strerror(errno));
    free(w->name);
    free(w);
    return st;
}
