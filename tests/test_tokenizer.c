/* Tokenizer tests: exact ids against the tokenizers library on the committed fixtures
 * (tests/fixtures/make_tokenizer_fixtures.py), decode(encode(x)) == x on arbitrary bytes,
 * the built-in vocabulary, and bad tokenizer.json files that must fail with a clear
 * message. `test_tokenizer --write-builtin DIR` writes the built-in vocabulary (the
 * fixture script uses it to regenerate tests/fixtures/tokenizer/builtin/). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model/tokenizer.h"
#include "tests/harness.h"

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t next_random(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return rng_state;
}

static char *fixture(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/tokenizer/%s", name);
    return strdup(harness_source_path(rel));
}

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "  %s (%d):", label, n);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* Exact ids for every fixture string; returns how many strings were compared. */
static int check_parity(const tokenizer *tok, const char *name, const json_t *strings, const json_t *rows) {
    int compared = 0, reported = 0;
    for (size_t i = 0; i < json_array_size(strings); i++) {
        const json_t *row = json_array_get(rows, i);
        if (json_is_null(row)) continue; /* not comparable (see the fixture script) */
        const char *text = json_string_value(json_array_get(strings, i));
        size_t len = json_string_length(json_array_get(strings, i));
        int32_t *ids = NULL;
        int n = 0;
        CHECK_OK(tokenizer_encode(tok, text, len, &ids, &n));
        int same = n == (int)json_array_size(row);
        for (int k = 0; same && k < n; k++) same = ids[k] == json_integer_value(json_array_get(row, (size_t)k));
        CHECK_MSG(same, "%s: string %zu \"%.60s\" encodes differently from the tokenizers library", name, i, text);
        if (!same && reported++ < 3) {
            int32_t want[512];
            int nw = 0;
            for (size_t k = 0; k < json_array_size(row) && k < 512; k++)
                want[nw++] = (int32_t)json_integer_value(json_array_get(row, k));
            print_ids("expected", want, nw);
            print_ids("got", ids, n);
        }
        free(ids);
        compared++;
    }
    return compared;
}

static void check_round_trip(const tokenizer *tok, const char *name, const char *text, size_t len) {
    int32_t *ids = NULL;
    int n = 0;
    char *back = NULL;
    size_t back_len = 0;
    CHECK_OK(tokenizer_encode(tok, text, len, &ids, &n));
    CHECK_OK(tokenizer_decode(tok, ids, n, &back, &back_len));
    CHECK_MSG(back && back_len == len && memcmp(back, text, len) == 0,
              "%s: decode(encode(x)) != x for a %zu-byte input (got %zu bytes)", name, len, back_len);
    free(ids);
    free(back);
}

static void test_fixtures(void) {
    char *path = fixture("expected.json");
    json_error_t err;
    json_t *expected = json_load_file(path, 0, &err);
    CHECK_MSG(expected != NULL, "%s: %s", path, err.text);
    free(path);
    if (!expected) return;
    const json_t *strings = json_object_get(expected, "strings");
    const json_t *encodings = json_object_get(expected, "encodings");
    static const char *const names[] = {"qwen2", "gpt2", "deepseek", "behaviors", "builtin"};
    for (int t = 0; t < 5; t++) {
        char file[64];
        if (t == 4) snprintf(file, sizeof file, "builtin/tokenizer.json");
        else snprintf(file, sizeof file, "%s.json", names[t]);
        char *p = fixture(file);
        tokenizer *tok = NULL;
        CHECK_OK(tokenizer_load(p, &tok));
        free(p);
        if (!tok) continue;
        const json_t *rows = json_object_get(encodings, names[t]);
        CHECK_INT(json_array_size(strings), json_array_size(rows));
        int compared = check_parity(tok, names[t], strings, rows);
        CHECK_MSG(compared >= 100, "%s: only %d strings compared", names[t], compared);
        /* Lossless tokenizers: no prefix space added, nothing removed. */
        if (strcmp(names[t], "gpt2") != 0 && strcmp(names[t], "behaviors") != 0)
            for (size_t i = 0; i < json_array_size(strings); i++)
                check_round_trip(tok, names[t], json_string_value(json_array_get(strings, i)),
                                 json_string_length(json_array_get(strings, i)));
        tokenizer_free(tok);
    }
    /* The built-in vocabulary made in memory gives the same ids as the committed file. */
    tokenizer *builtin = NULL;
    CHECK_OK(tokenizer_builtin_create(&builtin));
    if (builtin) check_parity(builtin, "builtin (in memory)", strings, json_object_get(encodings, "builtin"));
    tokenizer_free(builtin);
    json_decref(expected);
}

/* Random byte strings, invalid UTF-8 included, biased towards bytes that matter to the
 * pre-tokenizer (space, newline, apostrophe, '<' of added tokens, UTF-8 lead bytes). */
static void test_random_round_trip(void) {
    static const char *const files[] = {"qwen2.json", "deepseek.json", "builtin/tokenizer.json"};
    static const unsigned char interesting[] = {' ', '\n', '\t', '\'', '<', '|', 's', '1', 0xE4, 0xB8, 0x80,
                                                0xF0, 0x9F, 0xC3, 0xA9, 0xFF, 0x00, '>', 'e', 'n'};
    for (int f = 0; f < 3; f++) {
        char *p = fixture(files[f]);
        tokenizer *tok = NULL;
        CHECK_OK(tokenizer_load(p, &tok));
        free(p);
        if (!tok) continue;
        unsigned char buf[300];
        for (int it = 0; it < 300; it++) {
            size_t len = (size_t)(next_random() % sizeof buf);
            for (size_t i = 0; i < len; i++) {
                uint64_t r = next_random();
                buf[i] = r % 3 == 0 ? (unsigned char)(r >> 8) : interesting[(r >> 8) % sizeof interesting];
            }
            if (it % 7 == 0 && len > 20) memcpy(buf + len / 2, "<|endoftext|>", 13);
            check_round_trip(tok, files[f], (const char *)buf, len);
        }
        tokenizer_free(tok);
    }
}

static void test_builtin(void) {
    tokenizer *tok = NULL;
    CHECK_OK(tokenizer_builtin_create(&tok));
    if (!tok) return;
    for (int b = 0; b < 256; b++) { /* id = byte value */
        size_t len;
        const char *bytes = tokenizer_token_bytes(tok, b, &len);
        CHECK_MSG(bytes && len == 1 && (unsigned char)bytes[0] == b, "builtin id %d", b);
    }
    static const char *const words[] = {" the", " answer", " reasoning", "User", "Assistant", " +", " =", "\n\n",
                                        " numbers", " target"};
    for (int w = 0; w < 10; w++) {
        int32_t *ids = NULL;
        int n = 0;
        CHECK_OK(tokenizer_encode(tok, words[w], strlen(words[w]), &ids, &n));
        CHECK_MSG(n == 1, "builtin: \"%s\" is %d tokens, expected 1", words[w], n);
        free(ids);
    }
    int32_t bos = tokenizer_bos_id(tok), eos = tokenizer_eos_id(tok), pad = tokenizer_pad_id(tok);
    CHECK_INT(tokenizer_token_to_id(tok, "<|begin_of_text|>"), bos);
    CHECK_INT(tokenizer_token_to_id(tok, "<|end_of_text|>"), eos);
    CHECK_INT(tokenizer_token_to_id(tok, "<|pad|>"), pad);
    CHECK(bos >= 256 && eos >= 256 && pad >= 256 && bos != eos && eos != pad);
    CHECK(tokenizer_is_special(tok, eos) && !tokenizer_is_special(tok, 'a'));
    int32_t think = tokenizer_token_to_id(tok, "<think>");
    CHECK(think >= 0 && !tokenizer_is_special(tok, think));
    CHECK_STR("<think>", tokenizer_id_to_token(tok, think));
    CHECK_STR("Ġ", tokenizer_id_to_token(tok, ' '));
    CHECK_INT(' ', tokenizer_token_to_id(tok, "Ġ"));
    CHECK_INT(-1, tokenizer_token_to_id(tok, "no such token"));
    CHECK(tokenizer_id_to_token(tok, -1) == NULL && tokenizer_id_to_token(tok, tokenizer_vocab_size(tok)) == NULL);
    const char *text = "<think>12 + 30 = 42</think> <answer>42</answer>";
    int32_t *ids = NULL;
    int n = 0;
    CHECK_OK(tokenizer_encode(tok, text, strlen(text), &ids, &n));
    CHECK(n > 0 && ids[0] == think);
    /* encode_into: the exact size fits, one less fails and says how many are needed */
    int32_t small[64];
    int got = 0;
    CHECK_OK(tokenizer_encode_into(tok, text, strlen(text), small, n, &got));
    CHECK_INT(n, got);
    for (int i = 0; i < n && i < 64; i++) CHECK_INT(ids[i], small[i]);
    CHECK_FAILS(tokenizer_encode_into(tok, text, strlen(text), small, n - 1, &got), "needs");
    CHECK_INT(n, got);
    int32_t bad[] = {1, tokenizer_vocab_size(tok)};
    char *out = NULL;
    size_t out_len = 0;
    CHECK_FAILS(tokenizer_decode(tok, bad, 2, &out, &out_len), "is not a token");
    CHECK(out == NULL);
    CHECK_OK(tokenizer_decode(tok, ids, 0, &out, &out_len));
    CHECK(out && out_len == 0 && out[0] == '\0');
    free(out);
    free(ids);
    int32_t *none = (int32_t *)1;
    CHECK_OK(tokenizer_encode(tok, "", 0, &none, &n));
    CHECK(none == NULL && n == 0);

    /* The saved files equal the committed fixture (else regenerate it: see the script) */
    char dir[] = "/tmp/grpo_tok_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_OK(tokenizer_builtin_save(dir));
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    size_t a_len = 0, b_len = 0;
    char *a = read_text(path, &a_len);
    char *committed = fixture("builtin/tokenizer.json");
    char *b = read_text(committed, &b_len);
    CHECK_MSG(a && b && a_len == b_len && memcmp(a, b, a_len) == 0,
              "%s differs from %s: rerun make_tokenizer_fixtures.py --test-binary", path, committed);
    free(a); free(b); free(committed);
    tokenizer *loaded = NULL;
    CHECK_OK(tokenizer_load_dir(dir, &loaded));
    if (loaded) {
        CHECK_INT(bos, tokenizer_bos_id(loaded));
        CHECK_INT(eos, tokenizer_eos_id(loaded));
        CHECK_INT(pad, tokenizer_pad_id(loaded));
        CHECK_INT(tokenizer_vocab_size(tok), tokenizer_vocab_size(loaded));
    }
    tokenizer_free(loaded);
    /* tokenizer_config.json: {"content": ...} objects, null, and a token that is absent */
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"bos_token\": null, \"eos_token\": {\"content\": \"</answer>\", \"special\": true}}", f);
    fclose(f);
    CHECK_OK(tokenizer_load_dir(dir, &loaded));
    if (loaded) {
        CHECK_INT(-1, tokenizer_bos_id(loaded));
        CHECK_INT(tokenizer_token_to_id(tok, "</answer>"), tokenizer_eos_id(loaded));
        CHECK_INT(-1, tokenizer_pad_id(loaded));
    }
    tokenizer_free(loaded);
    f = fopen(path, "w");
    fputs("{\"eos_token\": \"<|im_end|>\"}", f);
    fclose(f);
    CHECK_FAILS(tokenizer_load_dir(dir, &loaded), "tokenizer_config.json: eos_token: \"<|im_end|>\" is not a token");
    CHECK(loaded == NULL);
    f = fopen(path, "w");
    fputs("{\"eos_token\": [1]}", f);
    fclose(f);
    CHECK_FAILS(tokenizer_load_dir(dir, &loaded), "eos_token: expected a string");
    f = fopen(path, "w");
    fputs("{oops", f);
    fclose(f);
    CHECK_FAILS(tokenizer_load_dir(dir, &loaded), "tokenizer_config.json:1:");
    unlink(path);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    unlink(path);
    rmdir(dir);
    tokenizer_free(tok);
    tokenizer_free(NULL);
}

/* A minimal valid file with one part replaced. */
static grpo_status load_variant(const char *model, const char *added, const char *pre, const char *extra,
                                tokenizer **out) {
    char json[4096];
    snprintf(json, sizeof json,
             "{\"added_tokens\": %s, \"normalizer\": null, \"pre_tokenizer\": %s, %s \"model\": %s}",
             added ? added : "[]",
             pre ? pre : "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}",
             extra ? extra : "",
             model ? model : "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}");
    return tokenizer_load_buffer(json, strlen(json), "bad/tokenizer.json", out);
}

static void test_bad_files(void) {
    tokenizer *tok = (tokenizer *)1;
    CHECK_OK(load_variant(NULL, NULL, NULL, NULL, &tok));
    if (tok) {
        int32_t *ids = NULL;
        int n = 0;
        CHECK_OK(tokenizer_encode(tok, "abc", 3, &ids, &n)); /* 'c' has no token and there is no unk: dropped */
        CHECK_INT(1, n);
        if (n == 1) CHECK_INT(2, ids[0]);
        free(ids);
    }
    tokenizer_free(tok);
#define BAD(call, needle) do { tok = (tokenizer *)1; CHECK_FAILS(call, needle); CHECK(tok == NULL); } while (0)
    BAD(tokenizer_load_buffer("{\"model\": ", 10, "bad/tokenizer.json", &tok), "bad/tokenizer.json:1:");
    BAD(tokenizer_load_buffer("[]", 2, "bad/tokenizer.json", &tok), "the top level: expected an object");
    BAD(tokenizer_load_buffer("{}", 2, "bad/tokenizer.json", &tok), "bad/tokenizer.json: model: expected an object, found nothing");
    BAD(tokenizer_load_buffer("", 0, "bad/tokenizer.json", &tok), "not valid JSON");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": [], \"merges\": []}", NULL, NULL, NULL, &tok),
        "bad/tokenizer.json: model.vocab: expected an object, found an array");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}}", NULL, NULL, NULL, &tok),
        "model.merges: expected an array, found nothing");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a q\"]}", NULL, NULL, NULL, &tok),
        "model.merges[0]: \"q\" is not in model.vocab");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}", NULL, NULL, NULL, &tok),
        "model.merges[0]: the merged token \"ab\" is not in model.vocab");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a a a\"]}", NULL, NULL, NULL, &tok),
        "model.merges[0]: expected \"a b\" with one space");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}", NULL, NULL, NULL, &tok),
        "model.merges[0]: expected \"a b\" or [\"a\", \"b\"], found an integer");
    BAD(load_variant("{\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}", NULL, NULL, NULL, &tok),
        "model.type: only \"BPE\" is supported, found \"WordPiece\"");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}", NULL, NULL, NULL, &tok),
        "model.vocab[\"a\"]: expected an integer id, found a string");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}", NULL, NULL, NULL, &tok),
        "id -3 is out of range");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}", NULL, NULL, NULL, &tok),
        "model.vocab: id 0 is used by both");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {\"a\": 2000000000}, \"merges\": []}", NULL, NULL, NULL, &tok),
        "far beyond");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}", NULL, NULL, NULL, &tok),
        "model.vocab: expected at least one token");
    BAD(load_variant("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}, \"merges\": []}", NULL, NULL, NULL, &tok),
        "duplicate");
    BAD(load_variant("{\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0}, \"merges\": []}", NULL,
                     NULL, NULL, &tok), "model.byte_fallback");
    BAD(load_variant(NULL, "{}", NULL, NULL, &tok), "added_tokens: expected an array, found an object");
    BAD(load_variant(NULL, "[{\"id\": 3}]", NULL, NULL, &tok), "added_tokens[0].content: expected a string, found nothing");
    BAD(load_variant(NULL, "[{\"content\": \"<s>\"}]", NULL, NULL, &tok), "added_tokens[0].id: expected an integer id");
    BAD(load_variant(NULL, "[{\"id\": 3, \"content\": \"<s>\", \"special\": 1}]", NULL, NULL, &tok),
        "added_tokens[0].special: expected true or false, found an integer");
    BAD(load_variant(NULL, "[{\"id\": 3, \"content\": \"<s>\"}, {\"id\": 4, \"content\": \"<s>\"}]", NULL, NULL, &tok),
        "added_tokens[1]: content \"<s>\" is already added token 3");
    BAD(load_variant(NULL, NULL, "null", NULL, &tok), "pre_tokenizer: expected ByteLevel");
    BAD(load_variant(NULL, NULL, "{\"type\": \"Metaspace\"}", NULL, &tok), "pre_tokenizer: found type \"Metaspace\"");
    BAD(load_variant(NULL, NULL, "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                     "{\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\"}]}", NULL, &tok),
        "pre_tokenizer.pretokenizers[0].pattern.Regex: bad regex at offset 1");
    BAD(load_variant(NULL, NULL, "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                     "{\"Regex\": \"x\"}, \"behavior\": \"Sideways\"}, {\"type\": \"ByteLevel\"}]}", NULL, &tok),
        "pretokenizers[0].behavior: expected Removed, Isolated");
    BAD(load_variant(NULL, NULL, "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\"}, "
                     "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"x\"}, \"behavior\": \"Isolated\"}]}", NULL, &tok),
        "pretokenizers[0]: found type \"ByteLevel\"");
    BAD(load_variant(NULL, NULL, NULL, "\"decoder\": {\"type\": \"WordPiece\"},", &tok),
        "decoder: only ByteLevel is supported, found \"WordPiece\"");
    const char *lower = "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, "
                        "{\"type\": \"Lowercase\"}]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": "
                        "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}";
    BAD(tokenizer_load_buffer(lower, strlen(lower), "bad/tokenizer.json", &tok),
        "normalizer.normalizers[1]: type \"Lowercase\" is not supported");
    BAD(tokenizer_load("/nonexistent/dir/tokenizer.json", &tok), "/nonexistent/dir/tokenizer.json: cannot open");
    BAD(tokenizer_load_dir("/nonexistent/dir", &tok), "/nonexistent/dir/tokenizer.json");
#undef BAD
}

/* Long inputs stay near-linear: one 200 KB word (a single pre-tokenizer piece whose
 * BPE merges run through the heap) and 200 KB of whitespace. */
static void test_long_inputs(void) {
    char *p = fixture("qwen2.json");
    tokenizer *tok = NULL;
    CHECK_OK(tokenizer_load(p, &tok));
    free(p);
    if (!tok) return;
    size_t len = 200000;
    char *text = malloc(len);
    static const char *const fills[] = {"ab", " \t", "the"};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < len; i++) text[i] = fills[k][i % strlen(fills[k])];
        clock_t t0 = clock();
        check_round_trip(tok, "qwen2 long", text, len);
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        CHECK_MSG(secs < 20.0, "a %zu-byte input took %.1f s", len, secs);
    }
    free(text);
    tokenizer_free(tok);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-builtin") == 0) {
        grpo_status st = tokenizer_builtin_save(argv[2]);
        if (st != GRPO_OK) fprintf(stderr, "%s\n", grpo_error_message());
        return st == GRPO_OK ? 0 : 1;
    }
    test_fixtures();
    test_random_round_trip();
    test_builtin();
    test_bad_files();
    test_long_inputs();
    TEST_MAIN_END();
}
