/* Fuzz target: arbitrary bytes as a safetensors file. Opening must either fail with a
 * message or yield tensors whose every byte lies inside the input; both are then used
 * (looked up, converted to float32) so an out-of-bounds view shows up under ASan. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy, so ASan sees reads past the end of the input */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    st_file *f = NULL;
    if (st_open_memory(copy, size, "fuzz.safetensors", &f) != GRPO_OK) {
        if (f != NULL || grpo_error_message()[0] == 0) abort(); /* failure: no file, and a message */
        free(copy);
        return 0;
    }
    volatile float sink = 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        if (st_find(f, t->name) != t) abort();
        const uint8_t *p = t->data;
        if (t->nbytes && (p < copy || p + t->nbytes > copy + size)) abort();
        if (t->numel > 0 && t->numel <= (1 << 16)) {
            float *dst = malloc((size_t)t->numel * sizeof *dst);
            if (dst && st_read_f32(t, dst, t->numel) == GRPO_OK) sink += dst[0] + dst[t->numel - 1];
            free(dst);
        } else if (t->nbytes) {
            sink += p[0] + p[t->nbytes - 1];
        }
    }
    (void)st_metadata(f, "format");
    (void)sink;
    st_close(f);
    free(copy);
    return 0;
}
