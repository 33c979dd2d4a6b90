/* safetensors writing, byte-compatible with the reference library (safetensors 0.4+,
 * Rust `serialize`): tensors ordered by dtype (larger alignment first) then name, compact
 * JSON header in that order with __metadata__ first, padded with spaces to 8 bytes.
 * The file appears atomically: written to PATH.tmp, fsynced, renamed, directory fsynced. */
#include "core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data;
} writer_tensor;

struct st_writer {
    writer_tensor *tensors;
    int count, cap;
    char **meta_keys, **meta_values;
    int nmeta, meta_cap;
};

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Strings in the header must be valid UTF-8 (readers reject anything else). */
static int valid_utf8(const char *s) {
    json_t *j = json_string(s);
    if (!j) return 0;
    json_decref(j);
    return 1;
}

st_writer *st_writer_create(void) { return calloc(1, sizeof(st_writer)); }

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->count; i++) free(w->tensors[i].name);
    free(w->tensors);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->meta_keys);
    free(w->meta_values);
    free(w);
}

grpo_status st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                          const void *data) {
    if (!name || !valid_utf8(name))
        return grpo_fail(GRPO_ERR_INVALID, "st_writer_add: tensor name must be a UTF-8 string");
    if (strcmp(name, "__metadata__") == 0)
        return grpo_fail(GRPO_ERR_INVALID, "st_writer_add: '__metadata__' is reserved, not a tensor name");
    if (st_dtype_size(dtype) == 0)
        return grpo_fail(GRPO_ERR_INVALID, "st_writer_add: tensor '%s': unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape))
        return grpo_fail(GRPO_ERR_INVALID, "st_writer_add: tensor '%s': %d dimensions, expected 0..%d", name, ndim,
                         ST_MAX_DIMS);
    int64_t numel = 1, nbytes;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return grpo_fail(GRPO_ERR_INVALID, "st_writer_add: tensor '%s': shape[%d] is %lld, expected >= 0", name,
                             i, (long long)shape[i]);
        if (__builtin_mul_overflow(numel, shape[i], &numel))
            return grpo_fail(GRPO_ERR_INVALID, "st_writer_add: tensor '%s': element count overflows", name);
    }
    if (__builtin_mul_overflow(numel, (int64_t)st_dtype_size(dtype), &nbytes))
        return grpo_fail(GRPO_ERR_INVALID, "st_writer_add: tensor '%s': byte size overflows", name);
    if (nbytes > 0 && !data) return grpo_fail(GRPO_ERR_INVALID, "st_writer_add: tensor '%s': no data", name);
    for (int i = 0; i < w->count; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return grpo_fail(GRPO_ERR_INVALID, "st_writer_add: tensor '%s' added twice", name);
    if (w->count == w->cap) {
        int cap = w->cap ? 2 * w->cap : 32;
        writer_tensor *t = realloc(w->tensors, (size_t)cap * sizeof *t);
        if (!t) return grpo_fail(GRPO_ERR_NOMEM, "st_writer_add: out of memory");
        w->tensors = t;
        w->cap = cap;
    }
    writer_tensor *t = &w->tensors[w->count];
    memset(t, 0, sizeof *t);
    if (!(t->name = dup_string(name))) return grpo_fail(GRPO_ERR_NOMEM, "st_writer_add: out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->nbytes = (size_t)nbytes;
    t->data = data;
    w->count++;
    return GRPO_OK;
}

grpo_status st_writer_add_metadata(st_writer *w, const char *key, const char *value) {
    if (!key || !value || !valid_utf8(key) || !valid_utf8(value))
        return grpo_fail(GRPO_ERR_INVALID, "st_writer_add_metadata: key and value must be UTF-8 strings");
    char *v = dup_string(value);
    if (!v) return grpo_fail(GRPO_ERR_NOMEM, "st_writer_add_metadata: out of memory");
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) { /* a key set again takes the new value */
            free(w->meta_values[i]);
            w->meta_values[i] = v;
            return GRPO_OK;
        }
    if (w->nmeta == w->meta_cap) {
        int cap = w->meta_cap ? 2 * w->meta_cap : 8;
        char **k = realloc(w->meta_keys, (size_t)cap * sizeof *k);
        if (k) w->meta_keys = k;
        char **vs = k ? realloc(w->meta_values, (size_t)cap * sizeof *vs) : NULL;
        if (vs) w->meta_values = vs;
        if (!k || !vs) {
            free(v);
            return grpo_fail(GRPO_ERR_NOMEM, "st_writer_add_metadata: out of memory");
        }
        w->meta_cap = cap;
    }
    char *k = dup_string(key);
    if (!k) {
        free(v);
        return grpo_fail(GRPO_ERR_NOMEM, "st_writer_add_metadata: out of memory");
    }
    w->meta_keys[w->nmeta] = k;
    w->meta_values[w->nmeta] = v;
    w->nmeta++;
    return GRPO_OK;
}

/* ---- the header ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} text;

static void text_put(text *t, const char *s, size_t n) {
    if (t->failed) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + n + 1) cap *= 2;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = 1;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = 0;
}

static void text_str(text *t, const char *s) { text_put(t, s, strlen(s)); }

/* A JSON string as serde_json writes it: ", \ and control characters escaped
 * (\b \f \n \r \t, else \u00xx in lowercase hex), everything else raw UTF-8. */
static void text_json_string(text *t, const char *s) {
    text_put(t, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': text_put(t, "\\\"", 2); break;
        case '\\': text_put(t, "\\\\", 2); break;
        case '\b': text_put(t, "\\b", 2); break;
        case '\f': text_put(t, "\\f", 2); break;
        case '\n': text_put(t, "\\n", 2); break;
        case '\r': text_put(t, "\\r", 2); break;
        case '\t': text_put(t, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                text_put(t, esc, 6);
            } else {
                text_put(t, (const char *)p, 1);
            }
        }
    }
    text_put(t, "\"", 1);
}

/* The reference library's Dtype declaration order (its sort key, descending). */
static int dtype_rank(st_dtype d) {
    switch (d) {
    case ST_BOOL: return 0;
    case ST_U8: return 1;
    case ST_I8: return 2;
    case ST_F8_E4M3: return 4;
    case ST_I16: return 5;
    case ST_F16: return 7;
    case ST_BF16: return 8;
    case ST_I32: return 9;
    case ST_F32: return 11;
    case ST_F64: return 12;
    case ST_I64: return 13;
    }
    return -1;
}

static int compare_layout(const void *a, const void *b) {
    const writer_tensor *x = *(writer_tensor *const *)a, *y = *(writer_tensor *const *)b;
    int rx = dtype_rank(x->dtype), ry = dtype_rank(y->dtype);
    if (rx != ry) return ry - rx;
    return strcmp(x->name, y->name);
}

static int compare_indexed_keys(const void *a, const void *b, void *keys) {
    char **k = keys;
    return strcmp(k[*(const int *)a], k[*(const int *)b]);
}

static grpo_status write_all(int fd, const void *data, size_t n, const char *path) {
    const unsigned char *p = data;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t k = write(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return grpo_fail(GRPO_ERR_IO, "%s: write: %s", path, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return GRPO_OK;
}

/* Builds the padded header into *out (caller frees t.buf); order[] gets the layout. */
static grpo_status build_header(const st_writer *w, writer_tensor **order, text *out) {
    for (int i = 0; i < w->count; i++) order[i] = &w->tensors[i];
    if (w->count > 1) qsort(order, (size_t)w->count, sizeof *order, compare_layout);
    text_put(out, "{", 1);
    int first = 1;
    if (w->nmeta > 0) {
        int *keys = malloc((size_t)w->nmeta * sizeof *keys);
        if (!keys) return grpo_fail(GRPO_ERR_NOMEM, "st_writer_save: out of memory");
        for (int i = 0; i < w->nmeta; i++) keys[i] = i;
        qsort_r(keys, (size_t)w->nmeta, sizeof *keys, compare_indexed_keys, w->meta_keys);
        text_str(out, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            if (i) text_put(out, ",", 1);
            text_json_string(out, w->meta_keys[keys[i]]);
            text_put(out, ":", 1);
            text_json_string(out, w->meta_values[keys[i]]);
        }
        text_put(out, "}", 1);
        free(keys);
        first = 0;
    }
    uint64_t offset = 0;
    for (int i = 0; i < w->count; i++) {
        const writer_tensor *t = order[i];
        char num[64];
        if (!first) text_put(out, ",", 1);
        first = 0;
        text_json_string(out, t->name);
        text_str(out, ":{\"dtype\":\"");
        text_str(out, st_dtype_name(t->dtype));
        text_str(out, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            text_str(out, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                 (unsigned long long)(offset + t->nbytes));
        text_str(out, num);
        offset += t->nbytes;
    }
    text_put(out, "}", 1);
    while (!out->failed && out->len % 8 != 0) text_put(out, " ", 1);
    if (out->failed) return grpo_fail(GRPO_ERR_NOMEM, "st_writer_save: out of memory for the header");
    return GRPO_OK;
}

/* fsync of the directory holding `path`, so the rename itself survives a crash. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

grpo_status st_writer_save(st_writer *w, const char *path) {
    writer_tensor **order = malloc((size_t)(w->count ? w->count : 1) * sizeof *order);
    if (!order) return grpo_fail(GRPO_ERR_NOMEM, "st_writer_save: out of memory");
    text header = {0};
    grpo_status status = build_header(w, order, &header);
    size_t n = strlen(path) + sizeof ".tmp";
    char *tmp = malloc(n);
    if (status == GRPO_OK && !tmp) status = grpo_fail(GRPO_ERR_NOMEM, "st_writer_save: out of memory");
    int fd = -1;
    if (status == GRPO_OK) {
        snprintf(tmp, n, "%s.tmp", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) status = grpo_fail(GRPO_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    if (status == GRPO_OK) {
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)header.len >> (8 * i));
        status = write_all(fd, len8, 8, tmp);
    }
    if (status == GRPO_OK) status = write_all(fd, header.buf, header.len, tmp);
    for (int i = 0; i < w->count && status == GRPO_OK; i++)
        if (order[i]->nbytes) status = write_all(fd, order[i]->data, order[i]->nbytes, tmp);
    if (status == GRPO_OK && fsync(fd) != 0) status = grpo_fail(GRPO_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && status == GRPO_OK)
        status = grpo_fail(GRPO_ERR_IO, "%s: close: %s", tmp, strerror(errno));
    if (status == GRPO_OK && rename(tmp, path) != 0)
        status = grpo_fail(GRPO_ERR_IO, "rename %s -> %s: %s", tmp, path, strerror(errno));
    if (status == GRPO_OK) sync_parent_dir(path);
    else if (fd >= 0) unlink(tmp);
    free(tmp);
    free(header.buf);
    free(order);
    return status;
}
