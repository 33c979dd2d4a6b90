/* The built-in vocabulary for the synthetic tasks (countdown, arithmetic) and tests:
 * a byte-level BPE with the 256 byte tokens (id = byte value), merges that make the
 * words of the R1 template and the arithmetic operators single tokens, and a few added
 * tokens. It is produced as tokenizer.json text and loaded through the same parser as
 * any Hugging Face tokenizer, and what tokenizer_builtin_save writes loads in the
 * tokenizers / transformers libraries (tests/fixtures/make_tokenizer_fixtures.py). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/tokenizer_impl.h"

/* Qwen2's pre-tokenizer regex: single digits (good for arithmetic), case-insensitive
 * contractions, letters with one leading non-letter, punctuation runs, newlines. */
static const char builtin_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Each word becomes one token through a chain of merges, left to right. Words that
 * start with a space come first: every pair inside them then has a later rank than the
 * chain's own next merge, so each one encodes to a single token (the test checks). */
static const char *const builtin_words[] = {
    " the", " The", " and", " answer", " reasoning", " process", " user", " assistant", " question",
    " think", " is", " of", " to", " in", " it", " with", " that", " then", " first", " number",
    " numbers", " equals", " sum", " target", " each", " once", " use", " Using", " Let", " we",
    " so", " result", " here", " tags", " +", " -", " *", " /", " =", " (",
    "User", "Assistant", "\n\n",
};

/* Added tokens, in id order after the merges. */
static const struct { const char *content; int special; } builtin_added[] = {
    {"<|begin_of_text|>", 1}, {"<|end_of_text|>", 1}, {"<|pad|>", 1},
    {"<think>", 0}, {"</think>", 0}, {"<answer>", 0}, {"</answer>", 0},
};

static json_t *byte_level_step(void) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0,
                     "use_regex", 0);
}

/* Token string (bytes_to_unicode form) of bytes s[0..n). out holds 2n + 1 bytes. */
static void byte_level_string(const char *s, size_t n, char *out) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) w += (size_t)utf8_encode(tok_byte_to_unicode((unsigned char)s[i]), out + w);
    out[w] = '\0';
}

static grpo_status build_json(json_t **out) {
    *out = NULL;
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    json_t *root = json_object();
    grpo_status st = GRPO_OK;
    if (!vocab || !merges || !added || !root) { st = grpo_fail(GRPO_ERR_NOMEM, "tokenizer builtin: out of memory"); goto done; }
    int next_id = 0;
    char tokstr[64], left[64], right[64];
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        byte_level_string(&c, 1, tokstr);
        json_object_set_new(vocab, tokstr, json_integer(next_id++));
    }
    for (size_t w = 0; w < sizeof builtin_words / sizeof *builtin_words; w++) {
        const char *word = builtin_words[w];
        size_t n = strlen(word);
        GRPO_ASSERT(n >= 2 && 2 * n + 1 <= sizeof tokstr);
        for (size_t k = 2; k <= n; k++) { /* merge (word[0..k-1), word[k-1]) -> word[0..k) */
            byte_level_string(word, k, tokstr);
            if (json_object_get(vocab, tokstr)) continue; /* shared prefix, merged already */
            byte_level_string(word, k - 1, left);
            byte_level_string(word + k - 1, 1, right);
            json_object_set_new(vocab, tokstr, json_integer(next_id++));
            json_array_append_new(merges, json_pack("[s, s]", left, right));
        }
    }
    for (size_t a = 0; a < sizeof builtin_added / sizeof *builtin_added; a++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", next_id++, "content",
                                               builtin_added[a].content, "single_word", 0, "lstrip", 0, "rstrip", 0,
                                               "normalized", 0, "special", builtin_added[a].special));
    json_t *split = json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex", builtin_pattern,
                              "behavior", "Isolated", "invert", 0);
    json_t *pre = json_pack("{s:s, s:[o, o]}", "type", "Sequence", "pretokenizers", split, byte_level_step());
    json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:O, s:O}", "type", "BPE", "dropout",
                              "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                              "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges", merges);
    if (!pre || !model) { json_decref(pre); json_decref(model); st = grpo_fail(GRPO_ERR_NOMEM, "tokenizer builtin: out of memory"); goto done; }
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "truncation", json_null());
    json_object_set_new(root, "padding", json_null());
    json_object_set(root, "added_tokens", added);
    json_object_set_new(root, "normalizer", json_null());
    json_object_set_new(root, "pre_tokenizer", pre);
    json_object_set_new(root, "post_processor", byte_level_step());
    json_object_set_new(root, "decoder", byte_level_step());
    json_object_set_new(root, "model", model);
    *out = root;
    root = NULL;
done:
    json_decref(vocab);
    json_decref(merges);
    json_decref(added);
    json_decref(root);
    return st;
}

grpo_status tokenizer_builtin_json(char **json) {
    *json = NULL;
    json_t *root;
    GRPO_TRY(build_json(&root));
    *json = json_dumps(root, JSON_PRESERVE_ORDER | JSON_INDENT(1));
    json_decref(root);
    if (!*json) return grpo_fail(GRPO_ERR_NOMEM, "tokenizer builtin: out of memory");
    return GRPO_OK;
}

grpo_status tokenizer_builtin_create(tokenizer **out) {
    *out = NULL;
    char *json;
    GRPO_TRY(tokenizer_builtin_json(&json));
    grpo_status st = tokenizer_load_buffer(json, strlen(json), "builtin tokenizer.json", out);
    free(json);
    if (st != GRPO_OK) return st;
    (*out)->bos_id = tokenizer_token_to_id(*out, "<|begin_of_text|>");
    (*out)->eos_id = tokenizer_token_to_id(*out, "<|end_of_text|>");
    (*out)->pad_id = tokenizer_token_to_id(*out, "<|pad|>");
    return GRPO_OK;
}

/* Writes text to dir/name through a temporary file, fsync and rename. */
static grpo_status write_file(const char *dir, const char *name, const char *text) {
    char path[4096], tmp[4096 + 8];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return grpo_fail(GRPO_ERR_INVALID, "%s/%s: path too long", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return grpo_fail(GRPO_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return grpo_fail(GRPO_ERR_IO, "%s: write failed: %s", tmp, strerror(e));
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return grpo_fail(GRPO_ERR_IO, "%s: fsync/close failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return grpo_fail(GRPO_ERR_IO, "%s: rename to %s failed: %s", tmp, path, strerror(e));
    }
    return GRPO_OK;
}

grpo_status tokenizer_builtin_save(const char *dir) {
    char *json;
    GRPO_TRY(tokenizer_builtin_json(&json));
    grpo_status st = write_file(dir, "tokenizer.json", json);
    free(json);
    GRPO_TRY(st);
    json_t *cfg = json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:i, s:s}", "bos_token", "<|begin_of_text|>", "eos_token",
                            "<|end_of_text|>", "pad_token", "<|pad|>", "add_bos_token", 0, "add_eos_token", 0,
                            "clean_up_tokenization_spaces", 0, "model_max_length", 131072, "tokenizer_class",
                            "PreTrainedTokenizerFast");
    char *text = cfg ? json_dumps(cfg, JSON_PRESERVE_ORDER | JSON_INDENT(1)) : NULL;
    json_decref(cfg);
    if (!text) return grpo_fail(GRPO_ERR_NOMEM, "tokenizer builtin: out of memory");
    st = write_file(dir, "tokenizer_config.json", text);
    free(text);
    return st;
}
