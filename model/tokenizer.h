/* Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (GPT-2, Llama 3,
 * Qwen2 and DeepSeek-V3 families), plus a small built-in vocabulary for the synthetic
 * tasks that is written as a tokenizer.json so the same loader serves both.
 *
 * What is supported: model.type "BPE" (vocab, merges in "a b" or ["a", "b"] form,
 * ignore_merges, unk_token); added_tokens (special, lstrip, rstrip, single_word,
 * normalized); normalizer null, NFC or a Sequence of those (NFC is applied as the
 * identity, see tokenizer_load.c); pre_tokenizer ByteLevel or a Sequence of Split
 * (Regex or String pattern, any behavior, invert false) and Digits steps ending in one
 * ByteLevel;
 * decoder ByteLevel or null. The post_processor is ignored: tokenizer_encode never
 * adds BOS/EOS by itself, callers add tokenizer_bos_id() where they want it.
 *
 * A loaded tokenizer is immutable: encode/decode may run on several threads at once. */
#ifndef GRPO_TOKENIZER_H
#define GRPO_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct tokenizer tokenizer;

/* Loads a tokenizer.json file. When a tokenizer_config.json lies in the same folder,
 * its bos_token / eos_token / pad_token (strings or {"content": ...} objects) set the
 * special ids; otherwise they are guessed from well-known token names (or -1).
 * On failure *out is NULL and the message names the file and the field, e.g.
 * "dir/tokenizer.json: model.vocab: expected an object, found array". */
grpo_status tokenizer_load(const char *path, tokenizer **out);
/* The same for DIR/tokenizer.json (+ DIR/tokenizer_config.json when present). */
grpo_status tokenizer_load_dir(const char *dir, tokenizer **out);
/* Parses tokenizer.json text held in memory (len bytes, no NUL needed); `name` is used
 * in error messages. No tokenizer_config.json is read; special ids are guessed. */
grpo_status tokenizer_load_buffer(const char *json, size_t len, const char *name, tokenizer **out);
void tokenizer_free(tokenizer *tok);

/* Largest id in the vocabulary or the added tokens, plus one. */
int tokenizer_vocab_size(const tokenizer *tok);

/* Encodes len bytes of text (any bytes: invalid UTF-8 is kept as bytes) into token ids.
 * Added tokens present in the text map to their ids. *ids is malloc'd, the caller frees
 * it (NULL when *n is 0). No BOS/EOS is added. */
grpo_status tokenizer_encode(const tokenizer *tok, const char *text, size_t len, int32_t **ids, int *n);
/* The same into a caller buffer of `capacity` ids; fails with GRPO_ERR_INVALID (and *n
 * set to the count needed) when it does not fit. */
grpo_status tokenizer_encode_into(const tokenizer *tok, const char *text, size_t len, int32_t *ids,
                                  int capacity, int *n);
/* Decodes n ids into the exact bytes they stand for (added tokens as their content).
 * *text is malloc'd and NUL-terminated (the NUL is not counted in *len); the caller
 * frees it. Fails on an id outside the vocabulary. */
grpo_status tokenizer_decode(const tokenizer *tok, const int32_t *ids, int n, char **text, size_t *len);

/* Id of a token string in its tokenizer.json form ("Ġthe", "<|endoftext|>"); added
 * tokens are looked up first. -1 when absent. */
int32_t tokenizer_token_to_id(const tokenizer *tok, const char *token);
/* The token string of an id in its tokenizer.json form; NULL when the id is unused.
 * Valid while the tokenizer lives. */
const char *tokenizer_id_to_token(const tokenizer *tok, int32_t id);
/* The bytes an id decodes to (*len of them; not NUL-terminated in general); NULL when
 * the id is unused. Valid while the tokenizer lives. */
const char *tokenizer_token_bytes(const tokenizer *tok, int32_t id, size_t *len);
/* 1 for an added token marked "special": true, else 0. */
int tokenizer_is_special(const tokenizer *tok, int32_t id);

/* Special ids, -1 when the tokenizer has none. */
int32_t tokenizer_bos_id(const tokenizer *tok);
int32_t tokenizer_eos_id(const tokenizer *tok);
int32_t tokenizer_pad_id(const tokenizer *tok);

/* The built-in vocabulary: a byte-level BPE with the 256 byte tokens (ids 0..255, id =
 * byte value), a few dozen merges for the R1 template and arithmetic text, the added
 * tokens <think> </think> <answer> </answer> and the special tokens <|begin_of_text|>
 * (bos), <|end_of_text|> (eos) and <|pad|> (pad). Ids are fixed by the tables in
 * tokenizer_builtin.c. Writes DIR/tokenizer.json and DIR/tokenizer_config.json (DIR
 * must exist); both load in Hugging Face `tokenizers`/`transformers` too. */
grpo_status tokenizer_builtin_save(const char *dir);
/* The built-in vocabulary loaded directly (the same as saving and loading it). */
grpo_status tokenizer_builtin_create(tokenizer **out);
/* The tokenizer.json text of the built-in vocabulary; the caller frees it. */
grpo_status tokenizer_builtin_json(char **json);

#endif
