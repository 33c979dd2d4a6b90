/* Private to the config.json readers and writers (hf_config.c for the dense families,
 * hf_config_v3.c for DeepSeek-V3/V2): JSON field getters with transformers' "absent or
 * null keeps the default" rule, range checks, and the sorted, shortest-real writer. */
#ifndef GRPO_HF_CONFIG_IMPL_H
#define GRPO_HF_CONFIG_IMPL_H

#include <jansson.h>

#include "core/status.h"

/* Sizes past these are refused: every product the ops take as int must stay below 2^31. */
#define HF_MAX_DIM (1 << 24)
#define HF_MAX_HEADS (1 << 12)

/* Getters: an absent or null key leaves *dst unchanged; a value of the wrong type is
 * GRPO_ERR_PARSE naming origin and key. */
grpo_status hf_json_int(json_t *root, const char *origin, const char *key, int *dst);
grpo_status hf_json_token_id(json_t *root, const char *origin, const char *key, int *dst);  /* null gives -1 */
grpo_status hf_json_real(json_t *root, const char *origin, const char *key, double *dst);
grpo_status hf_json_bool(json_t *root, const char *origin, const char *key, int *dst);
const char *hf_json_string(json_t *root, const char *key);   /* NULL when absent or not a string */
/* eos_token_id: an int, a list (at most HF_CONFIG_MAX_EOS) or null. */
grpo_status hf_json_eos(json_t *root, const char *origin, int *n_eos, int *eos_token_ids);
/* "ORIGIN: field (v) must be in [lo, hi]" unless lo <= v <= hi. */
/* config.json text (origin names it) or a file, parsed with duplicate keys refused; errors
 * carry origin:line:col. The caller json_decref's *root. */
grpo_status hf_json_load_text(const char *text, size_t len, const char *origin, json_t **root);
grpo_status hf_json_load_path(const char *path, json_t **root);
grpo_status hf_check_range(const char *origin, const char *field, long long v, long long lo, long long hi);

/* ---- writing: fields rendered as JSON text, keys sorted at render time ---- */
#define HF_MAX_FIELDS 64

typedef struct {
    const char *key;
    char value[1024];   /* rendered JSON */
} hf_field;

typedef struct {
    hf_field fields[HF_MAX_FIELDS];
    int count;
} hf_object;

void hf_put(hf_object *o, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The shortest text that reads back to x, as Python's repr writes it. */
void hf_put_real(hf_object *o, const char *key, double x);
void hf_put_token_id(hf_object *o, const char *key, int id);   /* -1 gives null */
/* Renders o as a JSON object, keys sorted, members indented by indent + 2 spaces. */
void hf_render(hf_object *o, int indent, char *buf, size_t size);
/* Writes text to path via path.tmp + fsync + rename. */
grpo_status hf_write_atomic(const char *path, const char *text);

#endif
