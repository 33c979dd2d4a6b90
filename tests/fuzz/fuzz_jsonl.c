/* Fuzz target: arbitrary bytes as a JSONL stream. Every line either gives an object or
 * an error with a message; the field helpers are run on each object; the objects are
 * written out again and must read back as the same number of equal objects. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *in = fmemopen((void *)data, size ? size : 1, "rb");
    if (!in) return 0;
    if (size == 0) fgetc(in); /* fmemopen wants size > 0: consume the one byte */
    char *out_text = NULL;
    size_t out_len = 0;
    FILE *out = open_memstream(&out_text, &out_len);
    jsonl_reader *r = NULL;
    jsonl_writer *w = NULL;
    if (!out || jsonl_open_stream(in, "fuzz.jsonl", &r) != GRPO_OK ||
        jsonl_writer_open_stream(out, "out.jsonl", &w) != GRPO_OK)
        abort();
    json_t *written[64];
    int nwritten = 0;
    for (int lines = 0; lines < 1000; lines++) {
        json_t *obj = NULL;
        grpo_status st = jsonl_next(r, &obj);
        if (st != GRPO_OK) {
            if (obj || grpo_error_message()[0] == 0) abort();
            continue;
        }
        if (!obj) break;
        const char *s;
        int64_t i, *ints = NULL;
        double d;
        size_t n;
        (void)jsonl_get_string(r, obj, "prompt", &s);
        (void)jsonl_get_string_opt(r, obj, "id", "", &s);
        (void)jsonl_get_int(r, obj, "target", &i);
        (void)jsonl_get_number(r, obj, "x", &d);
        if (jsonl_get_int_array(r, obj, "numbers", &ints, &n) == GRPO_OK && n && !ints) abort();
        free(ints);
        if (jsonl_write_object(w, obj) != GRPO_OK) abort();
        if (nwritten < 64) written[nwritten++] = json_incref(obj);
    }
    jsonl_close(r);
    if (jsonl_writer_close(w) != GRPO_OK) abort();
    fclose(out);
    fclose(in);
    /* read back what was written */
    in = fmemopen(out_text, out_len ? out_len : 1, "rb");
    if (!in || jsonl_open_stream(in, "again.jsonl", &r) != GRPO_OK) abort();
    if (out_len == 0) fgetc(in);
    for (int k = 0;; k++) {
        json_t *obj;
        if (jsonl_next(r, &obj) != GRPO_OK) abort();
        if (!obj) {
            if (k < nwritten) abort();
            break;
        }
        if (k < nwritten && !json_equal(obj, written[k])) abort();
    }
    jsonl_close(r);
    fclose(in);
    free(out_text);
    for (int k = 0; k < nwritten; k++) json_decref(written[k]);
    return 0;
}
