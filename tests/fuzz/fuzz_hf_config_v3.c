/* Fuzz target: arbitrary bytes as a DeepSeek-V3/V2 config.json. Parsing either fails with
 * a message or gives a config that validates, writes to config.json and reads back to the
 * same struct; its size report never allocates. Any broken promise aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/deepseek_v3.h"
#include "model/hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    deepseek_v3_config c, again;
    if (hf_config_v3_parse((const char *)data, size, "fuzz.json", &c) != GRPO_OK) {
        if (grpo_error_message()[0] == '\0') abort();   /* a failure always says why */
        return 0;
    }
    if (hf_config_v3_validate(&c, "fuzz.json") != GRPO_OK) abort();
    deepseek_v3_sizes s;
    deepseek_v3_count(&c, &s);
    if (s.total_params <= 0 || s.activated_params > s.main_params) abort();
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_hf_config_v3_%d.json", (int)getpid());
    if (hf_config_v3_write(&c, path) != GRPO_OK) abort();
    if (hf_config_v3_read(path, &again) != GRPO_OK) abort();
    unlink(path);
    if (memcmp(&c, &again, sizeof c) != 0) abort();
    return 0;
}
