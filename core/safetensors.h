/* safetensors files: reading (mmap, one file or a sharded directory with
 * model.safetensors.index.json) and writing (temp file, fsync, rename).
 * Format: 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data block. Every header is checked against the file size and the dtype's
 * element size before any byte is touched; a lying header is an error, never a crash. */
#ifndef GRPO_SAFETENSORS_H
#define GRPO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum {
    ST_F32, ST_F16, ST_BF16, ST_F8_E4M3, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL
} st_dtype;

#define ST_MAX_DIMS 8

typedef struct {
    const char *name;        /* owned by the st_file */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;        /* points into the mapping; valid until st_close. Aligned to the
                                element size when the file was written as the Python library
                                and st_writer do (padded header, larger dtypes first); a
                                foreign file may be unaligned: st_read_f32 copes with both. */
    size_t nbytes;
} st_tensor;

typedef struct st_file st_file;

/* Opens one .safetensors file, or a directory: the directory's model.safetensors.index.json
 * (sharded) if present, else its model.safetensors. On failure *out is NULL and the message
 * names the file and what was wrong. */
grpo_status st_open(const char *path, st_file **out);
/* Parses a safetensors image already in memory (what st_open does after mmap; also the
 * fuzz entry point). `name` is used in messages. No copy is made: bytes must stay valid
 * and unchanged until st_close. */
grpo_status st_open_memory(const void *bytes, size_t size, const char *name, st_file **out);
void st_close(st_file *f);   /* st_close(NULL) does nothing */

/* Tensors are numbered 0..st_count-1 in name order (strcmp), across all shards. */
int st_count(const st_file *f);
const st_tensor *st_get(const st_file *f, int index);
const st_tensor *st_find(const st_file *f, const char *name);   /* NULL when absent */
/* A __metadata__ string value, or NULL. */
const char *st_metadata(const st_file *f, const char *key);

/* Converts a tensor of any float dtype (F32, F16, BF16, F8_E4M3, F64) to float32 into
 * dst[numel]. Fails (naming the tensor) when the element count differs from `numel` or
 * the dtype is not a float type. */
grpo_status st_read_f32(const st_tensor *t, float *dst, int64_t numel);
/* Same, looked up by name; a missing tensor is GRPO_ERR_NOTFOUND naming it. */
grpo_status st_load_f32(const st_file *f, const char *name, float *dst, int64_t numel);

const char *st_dtype_name(st_dtype d);
/* "F32" -> ST_F32 etc.; returns 0, or -1 for a name this build does not know. */
int st_dtype_parse(const char *name, st_dtype *out);
size_t st_dtype_size(st_dtype d);

/* Scalar conversions, also used by the FP8 emulation. */
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);          /* round to nearest even */
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
float st_e4m3_to_f32(uint8_t b);
uint8_t st_f32_to_e4m3(float f);           /* round to nearest even, saturating at +-448 */

/* ---- writing ---- */
typedef struct st_writer st_writer;

st_writer *st_writer_create(void);
void st_writer_free(st_writer *w);
/* Adds a tensor; data is copied only at st_writer_save, so it must stay valid until then. */
grpo_status st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                          const void *data);
grpo_status st_writer_add_metadata(st_writer *w, const char *key, const char *value);
/* Writes path atomically (path.tmp, fsync, rename). Tensors are laid out as the Python
 * library does: larger dtypes first (I64, F64, F32, I32, BF16, F16, I16, F8_E4M3, I8, U8,
 * BOOL), by name within a dtype, so each tensor is aligned to its element size; the
 * header is compact JSON padded with spaces to a multiple of 8 bytes, __metadata__ first
 * (keys sorted). The same tensors give the same bytes as safetensors.torch.save_file. */
grpo_status st_writer_save(st_writer *w, const char *path);

#endif
