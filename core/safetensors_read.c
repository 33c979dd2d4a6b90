/* safetensors reading: mmap a file (or take bytes in memory), check the JSON header
 * against the file before any tensor byte is touched, and merge the shards of a
 * sharded checkpoint (model.safetensors.index.json) into one name-sorted table.
 * Format: https://github.com/huggingface/safetensors (README, "Format"). */
#include "core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The Rust/Python library's limit on the header (MAX_HEADER_SIZE); a larger value is
 * a corrupt or hostile file, not a model. */
#define ST_MAX_HEADER_BYTES 100000000ull

typedef struct {
    char *path;         /* as opened; used in messages */
    const unsigned char *bytes;
    size_t size;
    int mapped;         /* munmap at close */
} st_shard;

typedef struct {
    st_tensor tensor;   /* first member: st_get hands out &entry->tensor */
    int shard;
} st_entry;

struct st_file {
    st_shard *shards;
    int nshards;
    st_entry *entries;  /* sorted by name once opening is complete */
    int count, cap;
    char **meta_keys, **meta_values;
    int nmeta, meta_cap;
};

/* ---- small helpers ---- */

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

static void format_shape(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t used = 0;
    used += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

static grpo_status add_metadata(st_file *f, const char *key, const char *value) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return GRPO_OK; /* first one wins (index, then shards) */
    if (f->nmeta == f->meta_cap) {
        int cap = f->meta_cap ? 2 * f->meta_cap : 8;
        char **k = realloc(f->meta_keys, (size_t)cap * sizeof *k);
        if (!k) return grpo_fail(GRPO_ERR_NOMEM, "out of memory for safetensors metadata");
        f->meta_keys = k;
        char **v = realloc(f->meta_values, (size_t)cap * sizeof *v);
        if (!v) return grpo_fail(GRPO_ERR_NOMEM, "out of memory for safetensors metadata");
        f->meta_values = v;
        f->meta_cap = cap;
    }
    char *k = dup_string(key), *v = dup_string(value);
    if (!k || !v) {
        free(k);
        free(v);
        return grpo_fail(GRPO_ERR_NOMEM, "out of memory for safetensors metadata");
    }
    f->meta_keys[f->nmeta] = k;
    f->meta_values[f->nmeta] = v;
    f->nmeta++;
    return GRPO_OK;
}

static st_entry *new_entry(st_file *f) {
    if (f->count == f->cap) {
        if (f->cap > (1 << 29)) return NULL;
        int cap = f->cap ? 2 * f->cap : 64;
        st_entry *e = realloc(f->entries, (size_t)cap * sizeof *e);
        if (!e) return NULL;
        f->entries = e;
        f->cap = cap;
    }
    st_entry *e = &f->entries[f->count++];
    memset(e, 0, sizeof *e);
    return e;
}

static int compare_entry_names(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->tensor.name, ((const st_entry *)b)->tensor.name);
}

/* ---- one header ---- */

/* Reads a non-negative JSON integer; 0 on success. */
static int json_nonneg(const json_t *v, int64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (int64_t)x;
    return 0;
}

/* Checks one tensor entry of shard `s` (its header value `info`) and appends it. */
static grpo_status parse_tensor(st_file *f, int shard, const char *name, const json_t *info, size_t data_size,
                                const unsigned char *data) {
    const char *path = f->shards[shard].path;
    if (!json_is_object(info))
        return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': expected an object with dtype, shape and data_offsets, "
                         "found %s", path, name, json_kind(info));
    const json_t *jdtype = json_object_get(info, "dtype");
    const json_t *jshape = json_object_get(info, "shape");
    const json_t *joffsets = json_object_get(info, "data_offsets");
    if (!json_is_string(jdtype))
        return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': expected a string \"dtype\", found %s", path, name,
                         jdtype ? json_kind(jdtype) : "none");
    st_dtype dtype;
    if (st_dtype_parse(json_string_value(jdtype), &dtype) != 0)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s' (this build reads F32, F16, "
                         "BF16, F8_E4M3, F64, I64, I32, I16, I8, U8, BOOL)", path, name, json_string_value(jdtype));
    if (!json_is_array(jshape))
        return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': expected a \"shape\" array, found %s", path, name,
                         jshape ? json_kind(jshape) : "none");
    size_t ndim = json_array_size(jshape);
    if (ndim > ST_MAX_DIMS)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: tensor '%s': shape has %zu dimensions, at most %d are supported",
                         path, name, ndim, ST_MAX_DIMS);
    int64_t shape[ST_MAX_DIMS];
    int64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < ndim; i++) {
        const json_t *d = json_array_get(jshape, i);
        if (json_nonneg(d, &shape[i]) != 0) {
            if (json_is_integer(d))
                return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': shape[%zu] is %lld, expected a non-negative "
                                 "integer", path, name, i, (long long)json_integer_value(d));
            return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': shape[%zu] is %s, expected a non-negative integer",
                             path, name, i, json_kind(d));
        }
        if (__builtin_mul_overflow(numel, shape[i], &numel)) overflow = 1;
    }
    char shape_text[256];
    format_shape(shape_text, sizeof shape_text, shape, (int)ndim);
    size_t esize = st_dtype_size(dtype);
    int64_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(numel, (int64_t)esize, &nbytes) || (uint64_t)nbytes > SIZE_MAX)
        return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': shape %s has more bytes than fit in 64 bits", path, name,
                         shape_text);
    if (!json_is_array(joffsets) || json_array_size(joffsets) != 2)
        return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': expected \"data_offsets\" [begin, end], found %s%s", path,
                         name, joffsets ? json_kind(joffsets) : "none",
                         json_is_array(joffsets) ? " of another length" : "");
    int64_t begin, end;
    if (json_nonneg(json_array_get(joffsets, 0), &begin) != 0 || json_nonneg(json_array_get(joffsets, 1), &end) != 0)
        return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': data_offsets must be two non-negative integers", path, name);
    if (begin > end)
        return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': data_offsets [%lld, %lld] begin after end", path, name,
                         (long long)begin, (long long)end);
    if ((uint64_t)end > data_size)
        return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': data_offsets end %lld is past the data block (%zu bytes)",
                         path, name, (long long)end, data_size);
    if (end - begin != nbytes)
        return grpo_fail(GRPO_ERR_PARSE, "%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes, but %s %s needs "
                         "%lld bytes", path, name, (long long)begin, (long long)end, (long long)(end - begin),
                         st_dtype_name(dtype), shape_text, (long long)nbytes);
    st_entry *e = new_entry(f);
    char *owned_name = e ? dup_string(name) : NULL;
    if (!owned_name) {
        if (e) f->count--;
        return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory for tensor '%s'", path, name);
    }
    e->shard = shard;
    e->tensor.name = owned_name;
    e->tensor.dtype = dtype;
    e->tensor.ndim = (int)ndim;
    memcpy(e->tensor.shape, shape, ndim * sizeof shape[0]);
    e->tensor.numel = numel;
    e->tensor.data = data + begin;
    e->tensor.nbytes = (size_t)nbytes;
    return GRPO_OK;
}

static int compare_by_offset(const void *a, const void *b) {
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    const unsigned char *px = x->tensor.data, *py = y->tensor.data;
    if (px != py) return px < py ? -1 : 1;
    return x->tensor.nbytes < y->tensor.nbytes ? -1 : x->tensor.nbytes > y->tensor.nbytes;
}

/* Tensors [first, count) all come from one shard: no two non-empty ones may share a byte. */
static grpo_status check_overlaps(st_file *f, int first) {
    int n = f->count - first;
    if (n < 2) return GRPO_OK;
    st_entry **order = malloc((size_t)n * sizeof *order);
    if (!order) return grpo_fail(GRPO_ERR_NOMEM, "out of memory checking safetensors offsets");
    for (int i = 0; i < n; i++) order[i] = &f->entries[first + i];
    qsort(order, (size_t)n, sizeof *order, compare_by_offset);
    const st_entry *reach = NULL; /* the non-empty tensor that ends last so far */
    grpo_status status = GRPO_OK;
    for (int i = 0; i < n && status == GRPO_OK; i++) {
        const st_entry *e = order[i];
        if (e->tensor.nbytes == 0) continue;
        const unsigned char *b = e->tensor.data;
        if (reach && b < (const unsigned char *)reach->tensor.data + reach->tensor.nbytes) {
            const st_shard *s = &f->shards[e->shard];
            size_t base = (size_t)((const unsigned char *)reach->tensor.data - s->bytes);
            size_t off = (size_t)(b - s->bytes);
            status = grpo_fail(GRPO_ERR_PARSE, "%s: tensors '%s' (bytes %zu..%zu of the file) and '%s' (bytes "
                               "%zu..%zu) overlap", s->path, reach->tensor.name, base, base + reach->tensor.nbytes,
                               e->tensor.name, off, off + e->tensor.nbytes);
        }
        if (!reach || b + e->tensor.nbytes > (const unsigned char *)reach->tensor.data + reach->tensor.nbytes)
            reach = e;
    }
    free(order);
    return status;
}

/* Parses the header of shard `shard` (bytes already set) and appends its tensors. */
static grpo_status parse_shard(st_file *f, int shard) {
    const st_shard *s = &f->shards[shard];
    if (s->size < 8)
        return grpo_fail(GRPO_ERR_PARSE, "%s: file is %zu bytes, too short for the 8-byte header length", s->path,
                         s->size);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | s->bytes[i];
    if (header_len > ST_MAX_HEADER_BYTES)
        return grpo_fail(GRPO_ERR_PARSE, "%s: header length %llu exceeds the %llu-byte limit (not a safetensors "
                         "file?)", s->path, (unsigned long long)header_len, ST_MAX_HEADER_BYTES);
    if (header_len > s->size - 8)
        return grpo_fail(GRPO_ERR_PARSE, "%s: header length %llu is past the end of the file (%zu bytes follow the "
                         "length field)", s->path, (unsigned long long)header_len, s->size - 8);
    const unsigned char *data = s->bytes + 8 + header_len;
    size_t data_size = s->size - 8 - (size_t)header_len;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)s->bytes + 8, (size_t)header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return grpo_fail(GRPO_ERR_PARSE, "%s: header is not valid JSON: %s (header line %d, column %d)", s->path,
                         jerr.text, jerr.line, jerr.column);
    grpo_status status = GRPO_OK;
    if (!json_is_object(root)) {
        status = grpo_fail(GRPO_ERR_PARSE, "%s: header: expected a JSON object, found %s", s->path, json_kind(root));
        json_decref(root);
        return status;
    }
    int first = f->count;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(value)) {
                status = grpo_fail(GRPO_ERR_PARSE, "%s: __metadata__: expected an object of strings, found %s",
                                   s->path, json_kind(value));
                break;
            }
            const char *mkey;
            json_t *mvalue;
            json_object_foreach(value, mkey, mvalue) {
                if (!json_is_string(mvalue)) {
                    status = grpo_fail(GRPO_ERR_PARSE, "%s: __metadata__ '%s': expected a string, found %s", s->path,
                                       mkey, json_kind(mvalue));
                    break;
                }
                if ((status = add_metadata(f, mkey, json_string_value(mvalue))) != GRPO_OK) break;
            }
            if (status != GRPO_OK) break;
            continue;
        }
        if ((status = parse_tensor(f, shard, key, value, data_size, data)) != GRPO_OK) break;
    }
    json_decref(root);
    if (status == GRPO_OK) status = check_overlaps(f, first);
    return status;
}

/* ---- opening ---- */

static st_file *file_new(int nshards) {
    st_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->shards = calloc((size_t)(nshards > 0 ? nshards : 1), sizeof *f->shards);
    if (!f->shards) {
        free(f);
        return NULL;
    }
    f->nshards = nshards;
    return f;
}

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->nshards; i++) {
        if (f->shards[i].mapped && f->shards[i].size) munmap((void *)f->shards[i].bytes, f->shards[i].size);
        free(f->shards[i].path);
    }
    free(f->shards);
    for (int i = 0; i < f->count; i++) free((char *)f->entries[i].tensor.name);
    free(f->entries);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f);
}

/* Sorts the merged table and rejects a name that two shards both define. */
static grpo_status finish_table(st_file *f) {
    if (f->count > 1) qsort(f->entries, (size_t)f->count, sizeof *f->entries, compare_entry_names);
    for (int i = 1; i < f->count; i++)
        if (strcmp(f->entries[i - 1].tensor.name, f->entries[i].tensor.name) == 0)
            return grpo_fail(GRPO_ERR_PARSE, "tensor '%s' appears in both %s and %s", f->entries[i].tensor.name,
                             f->shards[f->entries[i - 1].shard].path, f->shards[f->entries[i].shard].path);
    return GRPO_OK;
}

/* mmaps `path` into shard `shard` (path copied). */
static grpo_status map_shard(st_file *f, int shard, const char *path) {
    st_shard *s = &f->shards[shard];
    s->path = dup_string(path);
    if (!s->path) return grpo_fail(GRPO_ERR_NOMEM, "out of memory opening %s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return grpo_fail(errno == ENOENT ? GRPO_ERR_NOTFOUND : GRPO_ERR_IO, "%s: cannot open: %s", path,
                         strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return grpo_fail(GRPO_ERR_IO, "%s: fstat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return grpo_fail(GRPO_ERR_IO, "%s: not a regular file", path);
    }
    s->size = (size_t)st.st_size;
    if (s->size < 8) {
        close(fd);
        return grpo_fail(GRPO_ERR_PARSE, "%s: file is %zu bytes, too short for the 8-byte header length", path,
                         s->size);
    }
    void *p = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) {
        s->size = 0;
        return grpo_fail(GRPO_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, (size_t)st.st_size, strerror(err));
    }
    s->bytes = p;
    s->mapped = 1;
    return GRPO_OK;
}

grpo_status st_open_memory(const void *bytes, size_t size, const char *name, st_file **out) {
    *out = NULL;
    st_file *f = file_new(1);
    if (!f) return grpo_fail(GRPO_ERR_NOMEM, "out of memory opening %s", name);
    f->shards[0].path = dup_string(name ? name : "(memory)");
    f->shards[0].bytes = bytes;
    f->shards[0].size = size;
    grpo_status status = f->shards[0].path ? parse_shard(f, 0) : grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    if (status == GRPO_OK) status = finish_table(f);
    if (status != GRPO_OK) {
        st_close(f);
        return status;
    }
    *out = f;
    return GRPO_OK;
}

static grpo_status open_single(const char *path, st_file **out) {
    st_file *f = file_new(1);
    if (!f) return grpo_fail(GRPO_ERR_NOMEM, "out of memory opening %s", path);
    grpo_status status = map_shard(f, 0, path);
    if (status == GRPO_OK) status = parse_shard(f, 0);
    if (status == GRPO_OK) status = finish_table(f);
    if (status != GRPO_OK) {
        st_close(f);
        return status;
    }
    *out = f;
    return GRPO_OK;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard name from an index must stay inside the model directory. */
static int shard_name_ok(const char *name) {
    if (!name[0] || name[0] == '/') return 0;
    for (const char *p = name; *p;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += len + (slash ? 1 : 0);
    }
    return 1;
}

/* The index's "metadata" (e.g. total_size) as strings: string values as they are,
 * integers in decimal; anything else is skipped. */
static grpo_status index_metadata(st_file *f, const json_t *meta) {
    if (!json_is_object(meta)) return GRPO_OK;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        char buf[32];
        if (json_is_string(value)) {
            GRPO_TRY(add_metadata(f, key, json_string_value(value)));
        } else if (json_is_integer(value)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(value));
            GRPO_TRY(add_metadata(f, key, buf));
        }
    }
    return GRPO_OK;
}

static grpo_status open_index_json(const char *index_path, const json_t *root, st_file **out) {
    if (!json_is_object(root))
        return grpo_fail(GRPO_ERR_PARSE, "%s: expected a JSON object, found %s", index_path, json_kind(root));
    const json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map))
        return grpo_fail(GRPO_ERR_PARSE, "%s: expected an object \"weight_map\" {tensor: file}, found %s", index_path,
                         map ? json_kind(map) : "none");
    size_t nnames = json_object_size(map);
    if (nnames == 0) return grpo_fail(GRPO_ERR_PARSE, "%s: weight_map is empty", index_path);
    /* the distinct shard file names, sorted */
    const char **files = malloc(nnames * sizeof *files);
    if (!files) return grpo_fail(GRPO_ERR_NOMEM, "out of memory reading %s", index_path);
    size_t nfiles = 0;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)map, key, value) {
        if (!json_is_string(value) || !shard_name_ok(json_string_value(value))) {
            free(files);
            if (!json_is_string(value))
                return grpo_fail(GRPO_ERR_PARSE, "%s: weight_map '%s': expected a shard file name, found %s",
                                 index_path, key, json_kind(value));
            return grpo_fail(GRPO_ERR_PARSE, "%s: weight_map '%s': shard '%s' is not a file name inside the model "
                             "directory", index_path, key, json_string_value(value));
        }
        files[nfiles++] = json_string_value(value);
    }
    qsort(files, nfiles, sizeof *files, compare_strings);
    size_t unique = 0;
    for (size_t i = 0; i < nfiles; i++)
        if (unique == 0 || strcmp(files[unique - 1], files[i]) != 0) files[unique++] = files[i];

    /* shard paths are relative to the index's directory */
    const char *slash = strrchr(index_path, '/');
    size_t dir_len = slash ? (size_t)(slash - index_path) + 1 : 0;
    st_file *f = file_new((int)unique);
    grpo_status status = f ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "out of memory reading %s", index_path);
    /* the index's metadata first: on a key both define, it wins over a shard's */
    if (status == GRPO_OK) status = index_metadata(f, json_object_get(root, "metadata"));
    for (size_t i = 0; i < unique && status == GRPO_OK; i++) {
        size_t n = dir_len + strlen(files[i]) + 1;
        char *path = malloc(n);
        if (!path) {
            status = grpo_fail(GRPO_ERR_NOMEM, "out of memory reading %s", index_path);
            break;
        }
        memcpy(path, index_path, dir_len);
        memcpy(path + dir_len, files[i], n - dir_len);
        status = map_shard(f, (int)i, path);
        if (status == GRPO_ERR_NOTFOUND) {
            /* name a tensor that needs the missing shard */
            const char *needed = "?";
            json_object_foreach((json_t *)map, key, value)
                if (strcmp(json_string_value(value), files[i]) == 0) { needed = key; break; }
            status = grpo_fail(GRPO_ERR_NOTFOUND, "%s: tensor '%s' is mapped to shard '%s', which is missing (%s)",
                               index_path, needed, files[i], path);
        }
        free(path);
        if (status == GRPO_OK) status = parse_shard(f, (int)i);
    }
    if (status == GRPO_OK) status = finish_table(f);
    /* every name the index promises must be in the shard it names */
    json_object_foreach((json_t *)map, key, value) {
        if (status != GRPO_OK) break;
        const st_tensor *t = st_find(f, key);
        const st_entry *e = (const st_entry *)t;
        if (!t || strcmp(f->shards[e->shard].path + dir_len, json_string_value(value)) != 0)
            status = grpo_fail(GRPO_ERR_PARSE, "%s: weight_map puts '%s' in '%s', but that shard has no such tensor",
                               index_path, key, json_string_value(value));
    }
    free(files);
    if (status != GRPO_OK) {
        st_close(f);
        return status;
    }
    *out = f;
    return GRPO_OK;
}

static grpo_status open_index(const char *index_path, st_file **out) {
    json_error_t jerr;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return grpo_fail(GRPO_ERR_PARSE, "%s:%d:%d: %s", index_path, jerr.line, jerr.column, jerr.text);
    grpo_status status = open_index_json(index_path, root, out);
    json_decref(root);
    return status;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

grpo_status st_open(const char *path, st_file **out) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return grpo_fail(errno == ENOENT ? GRPO_ERR_NOTFOUND : GRPO_ERR_IO, "%s: cannot open: %s", path,
                         strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ends_with(path, ".index.json") ? open_index(path, out) : open_single(path, out);
    size_t n = strlen(path) + sizeof "/model.safetensors.index.json";
    char *joined = malloc(n);
    if (!joined) return grpo_fail(GRPO_ERR_NOMEM, "out of memory opening %s", path);
    snprintf(joined, n, "%s/model.safetensors.index.json", path);
    grpo_status status;
    if (access(joined, F_OK) == 0) {
        status = open_index(joined, out);
    } else {
        snprintf(joined, n, "%s/model.safetensors", path);
        if (access(joined, F_OK) == 0)
            status = open_single(joined, out);
        else
            status = grpo_fail(GRPO_ERR_NOTFOUND, "%s: directory has neither model.safetensors.index.json nor "
                               "model.safetensors", path);
    }
    free(joined);
    return status;
}

/* ---- queries ---- */

int st_count(const st_file *f) { return f ? f->count : 0; }

const st_tensor *st_get(const st_file *f, int index) {
    return f && index >= 0 && index < f->count ? &f->entries[index].tensor : NULL;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->entries[mid].tensor.name, name);
        if (c == 0) return &f->entries[mid].tensor;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}
