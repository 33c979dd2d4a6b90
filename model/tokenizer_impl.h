/* Internals of the tokenizer module shared by tokenizer_*.c: the struct, the two hash
 * tables (token string -> id, merge pair -> rank), the pre-tokenizer steps and the
 * GPT-2 byte <-> unicode map. Nothing outside model/tokenizer*.c includes this. */
#ifndef GRPO_TOKENIZER_IMPL_H
#define GRPO_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "core/utf8.h"
#include "model/tokenizer.h"

/* ---- string -> id: open addressing over (offset, length) keys into one arena ---- */
typedef struct {
    uint32_t off, len; /* key bytes: arena[off .. off+len) */
    int32_t id;        /* -1: empty slot */
} tok_strmap_slot;

typedef struct {
    tok_strmap_slot *slots;
    uint32_t mask; /* capacity - 1, capacity a power of two */
    uint32_t count;
} tok_strmap;

/* ---- (left id, right id) -> (rank, merged id) ---- */
typedef struct {
    uint64_t key; /* (uint64)left << 32 | right; UINT64_MAX: empty slot */
    int32_t rank, new_id;
} tok_pairmap_slot;

typedef struct {
    tok_pairmap_slot *slots;
    uint32_t mask;
    uint32_t count;
} tok_pairmap;

/* ---- pre-tokenizer steps, applied in order to each piece of text ---- */
typedef enum {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_WITH_PREVIOUS,
    TOK_SPLIT_MERGED_WITH_NEXT,
    TOK_SPLIT_CONTIGUOUS
} tok_split_behavior;

typedef struct {
    pcre2_code *regex;        /* NULL for a literal String pattern */
    char *literal;            /* the String pattern (NUL-terminated), or NULL */
    size_t literal_len;
    tok_split_behavior behavior;
    int add_prefix_space;     /* ByteLevel step: prepend ' ' to each piece not starting with one */
} tok_pretok_step;

typedef struct {
    int32_t id;
    uint32_t off, len; /* content in the arena */
    uint8_t special, lstrip, rstrip, single_word, normalized;
} tok_added;

enum { TOK_ID_UNUSED = 0, TOK_ID_VOCAB = 1, TOK_ID_ADDED = 2 };

struct tokenizer {
    char *name;         /* the file, for messages */
    int32_t n_ids;      /* largest id + 1 */
    char *arena;        /* every string, each NUL-terminated */
    size_t arena_len, arena_cap;
    /* per id: [n_ids] */
    uint32_t *token_off, *token_len; /* tokenizer.json form */
    uint32_t *bytes_off, *bytes_len; /* decoded bytes */
    uint8_t *id_kind;                /* TOK_ID_* */
    uint8_t *id_special;
    tok_strmap vocab;   /* model.vocab */
    tok_strmap added_map;
    tok_pairmap merges;
    int32_t byte_id[256]; /* id of the single-byte token of each byte, -1 if absent */
    int32_t unk_id;
    int ignore_merges;
    tok_added *added;   /* [n_added], sorted by descending length (longest match first) */
    int n_added;
    uint8_t added_first[256]; /* 1 for each byte that starts some added token */
    tok_pretok_step *steps;
    int n_steps;
    pcre2_code *word_regex; /* Rust regex's \w, for single_word added tokens; NULL if none needs it */
    int32_t bos_id, eos_id, pad_id;
};

/* bytes_to_unicode (GPT-2 encoder.py): the code point each byte is written as. */
uint32_t tok_byte_to_unicode(int byte);
/* Inverse: byte for a code point < 324, or -1. */
int tok_unicode_to_byte(uint32_t cp);

/* Appends bytes plus a NUL to the arena; *off receives where they start. */
grpo_status tok_arena_add(tokenizer *tok, const char *s, size_t len, uint32_t *off);

grpo_status tok_strmap_init(tok_strmap *m, uint32_t expected);
void tok_strmap_deinit(tok_strmap *m);
/* -1 when absent. */
int32_t tok_strmap_get(const tok_strmap *m, const char *arena, const char *key, size_t len);
/* Inserts key arena[off..off+len) -> id; returns the id already there (and changes
 * nothing) when the key exists, else -1. Grows as needed. */
grpo_status tok_strmap_put(tok_strmap *m, const char *arena, uint32_t off, uint32_t len, int32_t id,
                           int32_t *existing);

grpo_status tok_pairmap_init(tok_pairmap *m, uint32_t expected);
void tok_pairmap_deinit(tok_pairmap *m);
/* 1 and (*rank, *new_id) when the pair has a merge, else 0. */
int tok_pairmap_get(const tok_pairmap *m, int32_t left, int32_t right, int32_t *rank, int32_t *new_id);
/* 0 when inserted, 1 when the pair was already present (then replaced, as a later
 * entry of a Rust HashMap collect replaces an earlier one in the tokenizers library). */
int tok_pairmap_put(tok_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t new_id);

/* Decodes one UTF-8 sequence at s[0..n); returns its length and the code point, or 0
 * for an invalid / truncated sequence. */
/* Unicode White_Space (Rust char::is_whitespace), used for lstrip/rstrip. */
int tok_is_whitespace(uint32_t cp);

/* The GPT-2 pre-tokenizer regex used by ByteLevel with use_regex = true. */
extern const char tok_gpt2_pattern[];
/* Compiles a Split / ByteLevel pattern (UTF + UCP, invalid UTF-8 allowed in subjects),
 * JIT-compiled when the platform has a JIT. `where` names the field for messages. */
grpo_status tok_regex_compile(const char *name, const char *where, const char *pattern, size_t len,
                              pcre2_code **out);

#endif
