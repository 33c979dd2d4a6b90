/* Fuzz target: arbitrary bytes as a dense-model config.json. Parsing either fails with a
 * message or gives a config that validates, writes to config.json and reads back to the
 * same struct. Any broken promise aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dense_config c, again;
    if (hf_config_dense_parse((const char *)data, size, "fuzz.json", &c) != GRPO_OK) {
        if (grpo_error_message()[0] == '\0') abort();   /* a failure always says why */
        return 0;
    }
    if (hf_config_dense_validate(&c, "fuzz.json") != GRPO_OK) abort();
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_hf_config_%d.json", (int)getpid());
    if (hf_config_dense_write(&c, path) != GRPO_OK) abort();
    if (hf_config_dense_read(path, &again) != GRPO_OK) abort();
    unlink(path);
    if (memcmp(&c, &again, sizeof c) != 0) abort();
    return 0;
}
