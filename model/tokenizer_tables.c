/* Small tables and containers behind the tokenizer: GPT-2's byte <-> unicode map, the
 * string -> id and merge-pair -> rank hash tables, UTF-8 helpers, and regex compilation. */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_impl.h"

/* GPT-2 encoder.py bytes_to_unicode: the printable bytes '!'..'~', 0xA1..0xAC and
 * 0xAE..0xFF stand for themselves; the other 68 bytes, in increasing order, become
 * U+0100.. U+0143 (so ' ' is U+0120 'Ġ' and '\n' is U+010A 'Ċ'). */
uint32_t tok_byte_to_unicode(int byte) {
    GRPO_ASSERT(byte >= 0 && byte < 256);
    if ((byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || byte >= 174) return (uint32_t)byte;
    if (byte <= 32) return 256u + (uint32_t)byte;                /* 0..32    -> 256..288 */
    if (byte <= 160) return 256u + 33u + (uint32_t)(byte - 127); /* 127..160 -> 289..322 */
    return 323u;                                                 /* 173      -> 323 */
}

int tok_unicode_to_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) return (int)cp;
    if (cp >= 256 && cp <= 288) return (int)(cp - 256);
    if (cp >= 289 && cp <= 322) return (int)(cp - 289 + 127);
    if (cp == 323) return 173;
    return -1;
}

grpo_status tok_arena_add(tokenizer *tok, const char *s, size_t len, uint32_t *off) {
    if (tok->arena_len + len + 1 > UINT32_MAX)
        return grpo_fail(GRPO_ERR_INVALID, "%s: token strings exceed 4 GiB", tok->name);
    if (tok->arena_len + len + 1 > tok->arena_cap) {
        size_t cap = tok->arena_cap ? tok->arena_cap : 4096;
        while (cap < tok->arena_len + len + 1) cap *= 2;
        char *grown = realloc(tok->arena, cap);
        if (!grown) return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory for token strings", tok->name);
        tok->arena = grown;
        tok->arena_cap = cap;
    }
    if (len) memcpy(tok->arena + tok->arena_len, s, len);
    tok->arena[tok->arena_len + len] = '\0';
    *off = (uint32_t)tok->arena_len;
    tok->arena_len += len + 1;
    return GRPO_OK;
}

/* ---- string -> id ---- */

static uint32_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++) { h ^= (unsigned char)s[i]; h *= 0x100000001b3ull; }
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t capacity_for(uint32_t expected) {
    uint32_t cap = 16;
    while (cap < 2u * expected + 2u && cap < (1u << 30)) cap *= 2;
    return cap;
}

grpo_status tok_strmap_init(tok_strmap *m, uint32_t expected) {
    uint32_t cap = capacity_for(expected);
    m->slots = malloc(sizeof *m->slots * cap);
    if (!m->slots) return grpo_fail(GRPO_ERR_NOMEM, "tokenizer: out of memory for a hash table of %u", cap);
    for (uint32_t i = 0; i < cap; i++) m->slots[i].id = -1;
    m->mask = cap - 1;
    m->count = 0;
    return GRPO_OK;
}

void tok_strmap_deinit(tok_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *arena, const char *key, size_t len) {
    if (!m->slots) return -1;
    for (uint32_t i = hash_bytes(key, len) & m->mask;; i = (i + 1) & m->mask) {
        const tok_strmap_slot *s = &m->slots[i];
        if (s->id < 0) return -1;
        if (s->len == len && memcmp(arena + s->off, key, len) == 0) return s->id;
    }
}

static void strmap_insert_slot(tok_strmap *m, const char *arena, tok_strmap_slot slot) {
    uint32_t i = hash_bytes(arena + slot.off, slot.len) & m->mask;
    while (m->slots[i].id >= 0) i = (i + 1) & m->mask;
    m->slots[i] = slot;
    m->count++;
}

grpo_status tok_strmap_put(tok_strmap *m, const char *arena, uint32_t off, uint32_t len, int32_t id,
                           int32_t *existing) {
    *existing = tok_strmap_get(m, arena, arena + off, len);
    if (*existing >= 0) return GRPO_OK;
    if (2u * (m->count + 1) > m->mask + 1) { /* keep the load under one half */
        tok_strmap old = *m;
        GRPO_TRY(tok_strmap_init(m, old.count + 1));
        for (uint32_t i = 0; i <= old.mask; i++)
            if (old.slots[i].id >= 0) strmap_insert_slot(m, arena, old.slots[i]);
        free(old.slots);
    }
    strmap_insert_slot(m, arena, (tok_strmap_slot){off, len, id});
    return GRPO_OK;
}

/* ---- merge pair -> (rank, merged id) ---- */

static uint32_t hash_pair(uint64_t key) {
    key ^= key >> 33; key *= 0xff51afd7ed558ccdull; key ^= key >> 33; /* murmur3 finalizer */
    return (uint32_t)key;
}

grpo_status tok_pairmap_init(tok_pairmap *m, uint32_t expected) {
    uint32_t cap = capacity_for(expected);
    m->slots = malloc(sizeof *m->slots * cap);
    if (!m->slots) return grpo_fail(GRPO_ERR_NOMEM, "tokenizer: out of memory for %u merges", expected);
    for (uint32_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->mask = cap - 1;
    m->count = 0;
    return GRPO_OK;
}

void tok_pairmap_deinit(tok_pairmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

int tok_pairmap_get(const tok_pairmap *m, int32_t left, int32_t right, int32_t *rank, int32_t *new_id) {
    if (!m->slots) return 0;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint32_t i = hash_pair(key) & m->mask;; i = (i + 1) & m->mask) {
        const tok_pairmap_slot *s = &m->slots[i];
        if (s->key == UINT64_MAX) return 0;
        if (s->key == key) { *rank = s->rank; *new_id = s->new_id; return 1; }
    }
}

int tok_pairmap_put(tok_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t new_id) {
    /* The table is sized for all merges up front (tok_pairmap_init), so it never grows. */
    GRPO_ASSERT(2u * (m->count + 1) <= m->mask + 1);
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint32_t i = hash_pair(key) & m->mask;
    for (; m->slots[i].key != UINT64_MAX; i = (i + 1) & m->mask)
        if (m->slots[i].key == key) { m->slots[i].rank = rank; m->slots[i].new_id = new_id; return 1; }
    m->slots[i] = (tok_pairmap_slot){key, rank, new_id};
    m->count++;
    return 0;
}

int tok_is_whitespace(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* ---- regex ---- */

/* GPT-2's pattern (encoder.py), as the tokenizers library's ByteLevel uses it. */
const char tok_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

grpo_status tok_regex_compile(const char *name, const char *where, const char *pattern, size_t len,
                              pcre2_code **out) {
    *out = NULL;
    int err = 0;
    PCRE2_SIZE erroff = 0;
    /* UCP: \s \w \d and POSIX classes follow Unicode, as Oniguruma's do in tokenizers.
     * MATCH_INVALID_UTF: subjects may hold invalid UTF-8; such bytes never match. */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                                   &err, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return grpo_fail(GRPO_ERR_PARSE, "%s: %s: bad regex at offset %zu: %s", name, where, (size_t)erroff,
                         (const char *)msg);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: the interpreter is the fallback */
    *out = re;
    return GRPO_OK;
}
