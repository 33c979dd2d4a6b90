/* Fuzz target for the tokenizer. The first byte picks what the rest is:
 *   0 (mod 3): text, encoded with the committed fixture tokenizers (Qwen2- and
 *              DeepSeek-style) and the built-in vocabulary; decode must give back the
 *              exact bytes, whatever they are (invalid UTF-8 included);
 *   1: a tokenizer.json; loading fails with a message or gives a tokenizer that
 *      encodes text (its own bytes) to ids inside its vocabulary which then decode;
 *   2: little-endian int32 ids handed to decode, which succeeds or fails cleanly.
 * Any broken promise aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer.h"

enum { FIXTURES = 3 };
static tokenizer *fixtures[FIXTURES];
static int loaded;

/* The source tree: GRPO_SOURCE_DIR when set, else the folder this file was compiled from. */
static void load_fixtures(void) {
    loaded = 1;
    char root[4096];
    const char *env = getenv("GRPO_SOURCE_DIR");
    if (env) {
        snprintf(root, sizeof root, "%s/", env);
    } else {
        snprintf(root, sizeof root, "%s", __FILE__);
        char *cut = strstr(root, "tests/fuzz/fuzz_tokenizer.c");
        if (cut) *cut = '\0';
        else root[0] = '\0';
    }
    static const char *const files[] = {"qwen2.json", "deepseek.json"};
    for (int i = 0; i < 2; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%stests/fixtures/tokenizer/%s", root, files[i]);
        if (tokenizer_load(path, &fixtures[i]) != GRPO_OK)
            fprintf(stderr, "fuzz_tokenizer: %s (running without it)\n", grpo_error_message());
    }
    if (tokenizer_builtin_create(&fixtures[2]) != GRPO_OK) abort();
}

static void encode_decode(const tokenizer *tok, const char *text, size_t len, int must_round_trip) {
    int32_t *ids = NULL;
    int n = 0;
    if (tokenizer_encode(tok, text, len, &ids, &n) != GRPO_OK) {
        if (must_round_trip) abort(); /* the fixtures encode any bytes */
        return;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tokenizer_vocab_size(tok)) abort();
    char *back = NULL;
    size_t back_len = 0;
    if (tokenizer_decode(tok, ids, n, &back, &back_len) != GRPO_OK) abort();
    if (must_round_trip && (back_len != len || memcmp(back, text, len) != 0)) abort();
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!loaded) load_fixtures();
    if (size == 0) return 0;
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 3) {
    case 0:
        for (int i = 0; i < FIXTURES; i++)
            if (fixtures[i]) encode_decode(fixtures[i], rest, len, 1);
        break;
    case 1: {
        tokenizer *tok = NULL;
        if (tokenizer_load_buffer(rest, len, "fuzz/tokenizer.json", &tok) == GRPO_OK) {
            static const char sample[] = "Hello world! It's 2 + 2 = 4.\n\n<think>中文 😀</think>  ";
            encode_decode(tok, sample, sizeof sample - 1, 0);
            encode_decode(tok, rest, len, 0);
            tokenizer_free(tok);
        } else if (tok != NULL) {
            abort();
        }
        break;
    }
    default: {
        const tokenizer *tok = fixtures[2];
        int n = (int)(len / 4);
        int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
        for (int i = 0; i < n; i++) memcpy(&ids[i], rest + 4 * i, 4);
        char *text = NULL;
        size_t text_len = 0;
        if (tokenizer_decode(tok, ids, n, &text, &text_len) == GRPO_OK) free(text);
        else if (text != NULL) abort();
        free(ids);
        break;
    }
    }
    return 0;
}
