/* JSONL in and out: one JSON object a line (datasets, rollouts, `grpo verify` streams).
 * The reader hands out one parsed object (jansson) at a time and knows the line it came
 * from, so every error, its own or a loader's, reads "file.jsonl:17: ..." (with ":col"
 * when jansson gives one). Blank lines are skipped, CRLF line ends and a UTF-8 BOM are
 * accepted, a last line without a newline counts, and lines may be any length. */
#ifndef GRPO_JSONL_H
#define GRPO_JSONL_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

typedef struct jsonl_reader jsonl_reader;
typedef struct jsonl_writer jsonl_writer;

/* ---- reading -------------------------------------------------------------------- */

/* Opens a file for reading; "-" means stdin. On failure *out is NULL and the message
 * names the path. The caller closes with jsonl_close. */
grpo_status jsonl_open(const char *path, jsonl_reader **out);
/* Reads from a stream the caller owns (jsonl_close does not close it); `name` is used
 * in messages (e.g. "<stdin>"). */
grpo_status jsonl_open_stream(FILE *stream, const char *name, jsonl_reader **out);
void jsonl_close(jsonl_reader *r);

/* The next object: GRPO_OK with *obj set, or GRPO_OK with *obj NULL at the end of the
 * input, or an error (not JSON, not an object, duplicate keys, invalid UTF-8, a read
 * error) naming file:line[:col]. The reader owns *obj: it is valid until the next
 * jsonl_next or jsonl_close (json_incref it to keep it). After an error the next call
 * goes on with the following line. */
grpo_status jsonl_next(jsonl_reader *r, json_t **obj);
/* The 1-based line number of the object last returned (0 before the first). */
long jsonl_line(const jsonl_reader *r);
/* The name given at open time. */
const char *jsonl_name(const jsonl_reader *r);

/* Records "file.jsonl:LINE: <message>" for the current line and returns code: for
 * loaders' own checks ("expected language python or c, found 'rust'"). */
grpo_status jsonl_fail(const jsonl_reader *r, grpo_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Field helpers: each fails with "file.jsonl:LINE: missing field 'prompt'" or
 * "file.jsonl:LINE: expected a string in 'prompt', found a number". */
/* *out points into obj (valid as long as obj). */
grpo_status jsonl_get_string(const jsonl_reader *r, const json_t *obj, const char *key, const char **out);
/* As jsonl_get_string, but a missing or null field gives `fallback`. */
grpo_status jsonl_get_string_opt(const jsonl_reader *r, const json_t *obj, const char *key, const char *fallback,
                                 const char **out);
/* An integer; a real with an integral value (3.0) is accepted. */
grpo_status jsonl_get_int(const jsonl_reader *r, const json_t *obj, const char *key, int64_t *out);
/* Any number (integer or real). */
grpo_status jsonl_get_number(const jsonl_reader *r, const json_t *obj, const char *key, double *out);
/* An array of integers: *out is malloc'd (the caller frees; NULL when empty), *count
 * its length. "expected an array of integers in 'numbers', found ..." otherwise. */
grpo_status jsonl_get_int_array(const jsonl_reader *r, const json_t *obj, const char *key, int64_t **out,
                                size_t *count);

/* "a string", "an array", "null", ... for messages. */
const char *jsonl_type_name(const json_t *value);

/* ---- writing -------------------------------------------------------------------- */

/* Creates (truncates) or, with append set, appends to a file; "-" means stdout. */
grpo_status jsonl_writer_open(const char *path, int append, jsonl_writer **out);
/* Writes to a stream the caller owns (jsonl_writer_close flushes but does not close it). */
grpo_status jsonl_writer_open_stream(FILE *stream, const char *name, jsonl_writer **out);
/* Appends json_dumps(obj, JSON_COMPACT) and '\n'. obj must be an object or array. */
grpo_status jsonl_write_object(jsonl_writer *w, const json_t *obj);
grpo_status jsonl_writer_flush(jsonl_writer *w);
/* Flushes and closes; reports a write error that happened on the way. NULL is a no-op. */
grpo_status jsonl_writer_close(jsonl_writer *w);

#endif
