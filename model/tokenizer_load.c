/* Reads a Hugging Face tokenizer.json (and tokenizer_config.json beside it) into a
 * tokenizer. Everything in the file is outside input: each field is checked, and a
 * bad one fails with "FILE: field.path: expected ..., found ..." instead of crashing.
 *
 * Normalizer: NFC is accepted and applied as the identity. That is exact for ASCII and
 * for text already in NFC (nearly all text models and datasets produce); a decomposed
 * input such as "e" + U+0301 encodes differently from the tokenizers library. Full NFC
 * needs Unicode composition tables that no library we link provides. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/tokenizer_impl.h"

/* Ids are stored densely; a file whose largest id is far beyond its entry count is
 * rejected rather than allocated. */
enum { TOK_MAX_ID_SLACK = 1 << 20 };

static const char *type_name(const json_t *v) {
    if (!v) return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "?";
}

static grpo_status want(const char *name, const char *where, const json_t *v, json_type type,
                        const char *expected) {
    if (v && json_typeof(v) == type) return GRPO_OK;
    return grpo_fail(GRPO_ERR_PARSE, "%s: %s: expected %s, found %s", name, where, expected, type_name(v));
}

/* An optional boolean field: absent or null -> fallback. */
static grpo_status get_bool(const char *name, const char *where, const json_t *obj, const char *key,
                            int fallback, int *out) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) { *out = fallback; return GRPO_OK; }
    if (!json_is_boolean(v))
        return grpo_fail(GRPO_ERR_PARSE, "%s: %s.%s: expected true or false, found %s", name, where, key,
                         type_name(v));
    *out = json_is_true(v);
    return GRPO_OK;
}

static int is_null_or_empty_string(const json_t *v) {
    return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

void tokenizer_free(tokenizer *tok) {
    if (!tok) return;
    for (int i = 0; i < tok->n_steps; i++) {
        pcre2_code_free(tok->steps[i].regex);
        free(tok->steps[i].literal);
    }
    free(tok->steps);
    pcre2_code_free(tok->word_regex);
    free(tok->added);
    tok_strmap_deinit(&tok->vocab);
    tok_strmap_deinit(&tok->added_map);
    tok_pairmap_deinit(&tok->merges);
    free(tok->token_off);
    free(tok->token_len);
    free(tok->bytes_off);
    free(tok->bytes_len);
    free(tok->id_kind);
    free(tok->id_special);
    free(tok->arena);
    free(tok->name);
    free(tok);
}

/* The bytes a vocabulary token decodes to, as the tokenizers library's ByteLevel
 * decoder does it: every char mapped back through bytes_to_unicode when all of them
 * are in the map, else the token's own UTF-8. */
static grpo_status add_decoded_bytes(tokenizer *tok, int32_t id) {
    const unsigned char *s = (const unsigned char *)tok->arena + tok->token_off[id];
    size_t n = tok->token_len[id], out_len = 0;
    char small[256];
    char *buf = n <= sizeof small ? small : malloc(n);
    if (!buf) return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", tok->name);
    int all_mapped = 1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = utf8_decode(s + i, n - i, &cp);
        int b = k ? tok_unicode_to_byte(cp) : -1;
        if (b < 0) { all_mapped = 0; break; }
        buf[out_len++] = (char)b;
        i += (size_t)k;
    }
    grpo_status st;
    if (all_mapped) {
        st = tok_arena_add(tok, buf, out_len, &tok->bytes_off[id]);
        tok->bytes_len[id] = (uint32_t)out_len;
    } else {
        tok->bytes_off[id] = tok->token_off[id]; /* the raw string, already in the arena */
        tok->bytes_len[id] = tok->token_len[id];
        st = GRPO_OK;
    }
    if (buf != small) free(buf);
    return st;
}

static grpo_status parse_id(const char *name, const char *where, const json_t *v, int32_t *id) {
    if (!json_is_integer(v))
        return grpo_fail(GRPO_ERR_PARSE, "%s: %s: expected an integer id, found %s", name, where, type_name(v));
    json_int_t x = json_integer_value(v);
    if (x < 0 || x >= INT32_MAX)
        return grpo_fail(GRPO_ERR_PARSE, "%s: %s: id %lld is out of range", name, where, (long long)x);
    *id = (int32_t)x;
    return GRPO_OK;
}

/* Sizes the per-id arrays from model.vocab and added_tokens. */
static grpo_status allocate_ids(tokenizer *tok, const json_t *vocab, const json_t *added) {
    int64_t max_id = -1, entries = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        char where[96];
        snprintf(where, sizeof where, "model.vocab[\"%.40s\"]", key);
        int32_t id;
        GRPO_TRY(parse_id(tok->name, where, v, &id));
        if (id > max_id) max_id = id;
        entries++;
    }
    size_t i;
    json_array_foreach(added, i, v) {
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        GRPO_TRY(want(tok->name, where, v, JSON_OBJECT, "an object"));
        snprintf(where, sizeof where, "added_tokens[%zu].id", i);
        int32_t id;
        GRPO_TRY(parse_id(tok->name, where, json_object_get(v, "id"), &id));
        if (id > max_id) max_id = id;
        entries++;
    }
    if (max_id < 0) return grpo_fail(GRPO_ERR_PARSE, "%s: model.vocab: expected at least one token, found none",
                                     tok->name);
    if (max_id >= entries + TOK_MAX_ID_SLACK)
        return grpo_fail(GRPO_ERR_PARSE, "%s: model.vocab: id %lld is far beyond the %lld tokens listed",
                         tok->name, (long long)max_id, (long long)entries);
    tok->n_ids = (int32_t)(max_id + 1);
    size_t n = (size_t)tok->n_ids;
    tok->token_off = calloc(n, sizeof *tok->token_off);
    tok->token_len = calloc(n, sizeof *tok->token_len);
    tok->bytes_off = calloc(n, sizeof *tok->bytes_off);
    tok->bytes_len = calloc(n, sizeof *tok->bytes_len);
    tok->id_kind = calloc(n, 1);
    tok->id_special = calloc(n, 1);
    if (!tok->token_off || !tok->token_len || !tok->bytes_off || !tok->bytes_len || !tok->id_kind ||
        !tok->id_special)
        return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory for %d ids", tok->name, tok->n_ids);
    return GRPO_OK;
}

static grpo_status load_vocab(tokenizer *tok, const json_t *vocab) {
    GRPO_TRY(tok_strmap_init(&tok->vocab, (uint32_t)json_object_size(vocab)));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        int32_t id = (int32_t)json_integer_value(v); /* checked by allocate_ids */
        if (tok->id_kind[id] != TOK_ID_UNUSED)
            return grpo_fail(GRPO_ERR_PARSE, "%s: model.vocab: id %d is used by both \"%.40s\" and \"%.40s\"",
                             tok->name, id, tok->arena + tok->token_off[id], key);
        size_t len = strlen(key);
        if (len == 0) return grpo_fail(GRPO_ERR_PARSE, "%s: model.vocab: the empty string is not a token", tok->name);
        uint32_t off;
        GRPO_TRY(tok_arena_add(tok, key, len, &off));
        int32_t existing;
        GRPO_TRY(tok_strmap_put(&tok->vocab, tok->arena, off, (uint32_t)len, id, &existing));
        tok->token_off[id] = off;
        tok->token_len[id] = (uint32_t)len;
        tok->id_kind[id] = TOK_ID_VOCAB;
        GRPO_TRY(add_decoded_bytes(tok, id));
    }
    for (int b = 0; b < 256; b++) {
        char s[4];
        int k = utf8_encode(tok_byte_to_unicode(b), s);
        tok->byte_id[b] = tok_strmap_get(&tok->vocab, tok->arena, s, (size_t)k);
    }
    return GRPO_OK;
}

/* One entry of model.merges: "a b" (one space) or ["a", "b"]. */
static grpo_status merge_parts(tokenizer *tok, size_t rank, const json_t *m, const char **a, size_t *alen,
                               const char **b, size_t *blen) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        const char *space = strchr(s, ' ');
        if (!space || strchr(space + 1, ' '))
            return grpo_fail(GRPO_ERR_PARSE, "%s: model.merges[%zu]: expected \"a b\" with one space, found \"%.60s\"",
                             tok->name, rank, s);
        *a = s; *alen = (size_t)(space - s);
        *b = space + 1; *blen = strlen(space + 1);
        return GRPO_OK;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0)); *alen = strlen(*a);
        *b = json_string_value(json_array_get(m, 1)); *blen = strlen(*b);
        return GRPO_OK;
    }
    return grpo_fail(GRPO_ERR_PARSE, "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"], found %s",
                     tok->name, rank, type_name(m));
}

static grpo_status load_merges(tokenizer *tok, const json_t *merges) {
    size_t n = json_array_size(merges);
    if (n >= INT32_MAX / 2) return grpo_fail(GRPO_ERR_PARSE, "%s: model.merges: too many merges (%zu)", tok->name, n);
    GRPO_TRY(tok_pairmap_init(&tok->merges, (uint32_t)n));
    char *joined = NULL;
    size_t joined_cap = 0;
    grpo_status st = GRPO_OK;
    for (size_t rank = 0; rank < n && st == GRPO_OK; rank++) {
        const char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        st = merge_parts(tok, rank, json_array_get(merges, rank), &a, &alen, &b, &blen);
        if (st != GRPO_OK) break;
        int32_t ia = tok_strmap_get(&tok->vocab, tok->arena, a, alen);
        int32_t ib = tok_strmap_get(&tok->vocab, tok->arena, b, blen);
        if (ia < 0 || ib < 0) {
            st = grpo_fail(GRPO_ERR_PARSE, "%s: model.merges[%zu]: \"%.*s\" is not in model.vocab", tok->name, rank,
                           (int)(ia < 0 ? alen : blen), ia < 0 ? a : b);
            break;
        }
        if (alen + blen > joined_cap) {
            joined_cap = 2 * (alen + blen);
            char *grown = realloc(joined, joined_cap);
            if (!grown) { st = grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", tok->name); break; }
            joined = grown;
        }
        memcpy(joined, a, alen);
        memcpy(joined + alen, b, blen);
        int32_t merged = tok_strmap_get(&tok->vocab, tok->arena, joined, alen + blen);
        if (merged < 0) {
            st = grpo_fail(GRPO_ERR_PARSE, "%s: model.merges[%zu]: the merged token \"%.*s\" is not in model.vocab",
                           tok->name, rank, (int)(alen + blen), joined);
            break;
        }
        /* A repeated pair takes its last rank, as in the tokenizers library. */
        (void)tok_pairmap_put(&tok->merges, ia, ib, (int32_t)rank, merged);
    }
    free(joined);
    return st;
}

static grpo_status load_model(tokenizer *tok, const json_t *root) {
    const json_t *model = json_object_get(root, "model");
    GRPO_TRY(want(tok->name, "model", model, JSON_OBJECT, "an object"));
    const json_t *type = json_object_get(model, "type");
    if (type && !json_is_string(type))
        return grpo_fail(GRPO_ERR_PARSE, "%s: model.type: expected a string, found %s", tok->name, type_name(type));
    if (type && strcmp(json_string_value(type), "BPE") != 0)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: model.type: only \"BPE\" is supported, found \"%.40s\"",
                         tok->name, json_string_value(type));
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && !(json_is_number(dropout) && json_number_value(dropout) == 0.0))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: model.dropout: BPE dropout is not supported (expected null)",
                         tok->name);
    if (!is_null_or_empty_string(json_object_get(model, "continuing_subword_prefix")) ||
        !is_null_or_empty_string(json_object_get(model, "end_of_word_suffix")))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: model: continuing_subword_prefix / end_of_word_suffix are not "
                         "supported (byte-level BPE has none)", tok->name);
    int byte_fallback;
    GRPO_TRY(get_bool(tok->name, "model", model, "byte_fallback", 0, &byte_fallback));
    if (byte_fallback)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: model.byte_fallback: only byte-level BPE is supported "
                         "(found byte_fallback true, a SentencePiece-style model)", tok->name);
    GRPO_TRY(get_bool(tok->name, "model", model, "ignore_merges", 0, &tok->ignore_merges));

    const json_t *vocab = json_object_get(model, "vocab");
    GRPO_TRY(want(tok->name, "model.vocab", vocab, JSON_OBJECT, "an object"));
    const json_t *merges = json_object_get(model, "merges");
    GRPO_TRY(want(tok->name, "model.merges", merges, JSON_ARRAY, "an array"));
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added)) GRPO_TRY(want(tok->name, "added_tokens", added, JSON_ARRAY, "an array"));
    GRPO_TRY(allocate_ids(tok, vocab, added));
    GRPO_TRY(load_vocab(tok, vocab));
    GRPO_TRY(load_merges(tok, merges));

    tok->unk_id = -1;
    const json_t *unk = json_object_get(model, "unk_token");
    if (unk && json_is_string(unk))
        tok->unk_id = tok_strmap_get(&tok->vocab, tok->arena, json_string_value(unk), json_string_length(unk));
    else if (unk && !json_is_null(unk))
        return grpo_fail(GRPO_ERR_PARSE, "%s: model.unk_token: expected a string or null, found %s", tok->name,
                         type_name(unk));
    return GRPO_OK;
}

static int compare_added(const void *pa, const void *pb) {
    const tok_added *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return a->id < b->id ? -1 : a->id > b->id;
}

static grpo_status load_added(tokenizer *tok, const json_t *root) {
    const json_t *added = json_object_get(root, "added_tokens");
    size_t n = added && json_is_array(added) ? json_array_size(added) : 0;
    GRPO_TRY(tok_strmap_init(&tok->added_map, (uint32_t)n));
    tok->added = calloc(n ? n : 1, sizeof *tok->added);
    if (!tok->added) return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", tok->name);
    int need_word_regex = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_array_get(added, i);
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu].content", i);
        const json_t *content = json_object_get(a, "content");
        GRPO_TRY(want(tok->name, where, content, JSON_STRING, "a string"));
        size_t len = json_string_length(content);
        if (len == 0 || strlen(json_string_value(content)) != len)
            return grpo_fail(GRPO_ERR_PARSE, "%s: %s: expected a non-empty string without NUL", tok->name, where);
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        tok_added t = {0};
        t.id = (int32_t)json_integer_value(json_object_get(a, "id")); /* checked by allocate_ids */
        int special, lstrip, rstrip, single_word, normalized;
        GRPO_TRY(get_bool(tok->name, where, a, "special", 0, &special));
        GRPO_TRY(get_bool(tok->name, where, a, "lstrip", 0, &lstrip));
        GRPO_TRY(get_bool(tok->name, where, a, "rstrip", 0, &rstrip));
        GRPO_TRY(get_bool(tok->name, where, a, "single_word", 0, &single_word));
        GRPO_TRY(get_bool(tok->name, where, a, "normalized", !special, &normalized));
        t.special = (uint8_t)special; t.lstrip = (uint8_t)lstrip; t.rstrip = (uint8_t)rstrip;
        t.single_word = (uint8_t)single_word; t.normalized = (uint8_t)normalized;
        need_word_regex |= single_word;
        if (tok->id_kind[t.id] == TOK_ID_ADDED)
            return grpo_fail(GRPO_ERR_PARSE, "%s: %s: id %d is already used by added token \"%.40s\"", tok->name,
                             where, t.id, tok->arena + tok->token_off[t.id]);
        GRPO_TRY(tok_arena_add(tok, json_string_value(content), len, &t.off));
        t.len = (uint32_t)len;
        int32_t existing;
        GRPO_TRY(tok_strmap_put(&tok->added_map, tok->arena, t.off, t.len, t.id, &existing));
        if (existing >= 0)
            return grpo_fail(GRPO_ERR_PARSE, "%s: %s: content \"%.40s\" is already added token %d", tok->name, where,
                             json_string_value(content), existing);
        /* An added token decodes to its content, whatever the vocabulary holds at its id. */
        tok->token_off[t.id] = tok->bytes_off[t.id] = t.off;
        tok->token_len[t.id] = tok->bytes_len[t.id] = t.len;
        tok->id_kind[t.id] = TOK_ID_ADDED;
        tok->id_special[t.id] = (uint8_t)special;
        tok->added_first[(unsigned char)json_string_value(content)[0]] = 1;
        tok->added[tok->n_added++] = t;
    }
    qsort(tok->added, (size_t)tok->n_added, sizeof *tok->added, compare_added);
    /* single_word tests the characters around a match against Rust regex's Unicode \w
     * (Alphabetic, marks, decimal digits, connector punctuation, joiners), which is
     * narrower than PCRE2's \w under UCP (that one takes all of \p{N}, e.g. '²'). */
    static const char word_class[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]";
    if (need_word_regex)
        GRPO_TRY(tok_regex_compile(tok->name, "added_tokens (\\w)", word_class, strlen(word_class), &tok->word_regex));
    return GRPO_OK;
}

static grpo_status check_normalizer(const char *name, const char *where, const json_t *v, int depth) {
    if (!v || json_is_null(v)) return GRPO_OK;
    GRPO_TRY(want(name, where, v, JSON_OBJECT, "an object or null"));
    const char *type = json_string_value(json_object_get(v, "type"));
    if (!type) return grpo_fail(GRPO_ERR_PARSE, "%s: %s.type: expected a string, found %s", name, where,
                                type_name(json_object_get(v, "type")));
    if (strcmp(type, "NFC") == 0) return GRPO_OK; /* identity, see the top of this file */
    if (strcmp(type, "Sequence") == 0 && depth < 4) {
        const json_t *list = json_object_get(v, "normalizers");
        char inner[96];
        snprintf(inner, sizeof inner, "%s.normalizers", where);
        GRPO_TRY(want(name, inner, list, JSON_ARRAY, "an array"));
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) {
            snprintf(inner, sizeof inner, "%s.normalizers[%zu]", where, i);
            GRPO_TRY(check_normalizer(name, inner, item, depth + 1));
        }
        return GRPO_OK;
    }
    return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: %s: type \"%.40s\" is not supported (null, NFC or a Sequence of NFC)",
                     name, where, type);
}

static grpo_status parse_split(tokenizer *tok, const char *where, const json_t *v, tok_pretok_step *step) {
    char field[128];
    int invert;
    GRPO_TRY(get_bool(tok->name, where, v, "invert", 0, &invert));
    if (invert)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: %s.invert: only false is supported", tok->name, where);
    const char *behavior = json_string_value(json_object_get(v, "behavior"));
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    int found = -1;
    for (int i = 0; behavior && i < 5; i++)
        if (strcmp(behavior, names[i]) == 0) found = i;
    if (found < 0)
        return grpo_fail(GRPO_ERR_PARSE, "%s: %s.behavior: expected Removed, Isolated, MergedWithPrevious, "
                         "MergedWithNext or Contiguous, found %s", tok->name, where,
                         behavior ? behavior : type_name(json_object_get(v, "behavior")));
    step->behavior = (tok_split_behavior)found;
    const json_t *pattern = json_object_get(v, "pattern");
    snprintf(field, sizeof field, "%s.pattern", where);
    GRPO_TRY(want(tok->name, field, pattern, JSON_OBJECT, "an object"));
    const json_t *regex = json_object_get(pattern, "Regex"), *string = json_object_get(pattern, "String");
    if (regex) {
        snprintf(field, sizeof field, "%s.pattern.Regex", where);
        GRPO_TRY(want(tok->name, field, regex, JSON_STRING, "a string"));
        return tok_regex_compile(tok->name, field, json_string_value(regex), json_string_length(regex), &step->regex);
    }
    snprintf(field, sizeof field, "%s.pattern.String", where);
    GRPO_TRY(want(tok->name, field, string, JSON_STRING, "a string (or a Regex)"));
    if (json_string_length(string) == 0 || strlen(json_string_value(string)) != json_string_length(string))
        return grpo_fail(GRPO_ERR_PARSE, "%s: %s: expected a non-empty string without NUL", tok->name, field);
    step->literal = strdup(json_string_value(string));
    if (!step->literal) return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", tok->name);
    step->literal_len = json_string_length(string);
    return GRPO_OK;
}

static grpo_status parse_byte_level(tokenizer *tok, const char *where, const json_t *v, tok_pretok_step *step) {
    int use_regex;
    GRPO_TRY(get_bool(tok->name, where, v, "add_prefix_space", 1, &step->add_prefix_space));
    GRPO_TRY(get_bool(tok->name, where, v, "use_regex", 1, &use_regex));
    step->behavior = TOK_SPLIT_ISOLATED;
    if (use_regex)
        GRPO_TRY(tok_regex_compile(tok->name, where, tok_gpt2_pattern, strlen(tok_gpt2_pattern), &step->regex));
    return GRPO_OK;
}

/* pre_tokenizer: ByteLevel, or a Sequence of Split / Digits steps ending in one ByteLevel. */
static grpo_status load_pre_tokenizer(tokenizer *tok, const json_t *root) {
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    if (!pre || json_is_null(pre))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: pre_tokenizer: expected ByteLevel (only byte-level BPE is "
                         "supported), found %s", tok->name, type_name(pre));
    GRPO_TRY(want(tok->name, "pre_tokenizer", pre, JSON_OBJECT, "an object"));
    const char *type = json_string_value(json_object_get(pre, "type"));
    const json_t *list = NULL;
    size_t n = 1;
    if (type && strcmp(type, "Sequence") == 0) {
        list = json_object_get(pre, "pretokenizers");
        GRPO_TRY(want(tok->name, "pre_tokenizer.pretokenizers", list, JSON_ARRAY, "an array"));
        n = json_array_size(list);
        if (n == 0 || n > 64)
            return grpo_fail(GRPO_ERR_PARSE, "%s: pre_tokenizer.pretokenizers: expected 1 to 64 steps, found %zu",
                             tok->name, n);
    }
    tok->steps = calloc(n, sizeof *tok->steps);
    if (!tok->steps) return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", tok->name);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = list ? json_array_get(list, i) : pre;
        char where[64];
        if (list) snprintf(where, sizeof where, "pre_tokenizer.pretokenizers[%zu]", i);
        else snprintf(where, sizeof where, "pre_tokenizer");
        GRPO_TRY(want(tok->name, where, v, JSON_OBJECT, "an object"));
        const char *step_type = json_string_value(json_object_get(v, "type"));
        tok->n_steps = (int)i + 1; /* so tokenizer_free releases what this step holds */
        int last = i + 1 == n;
        if (step_type && strcmp(step_type, "ByteLevel") == 0 && last) {
            GRPO_TRY(parse_byte_level(tok, where, v, &tok->steps[i]));
        } else if (step_type && strcmp(step_type, "Split") == 0 && !last) {
            GRPO_TRY(parse_split(tok, where, v, &tok->steps[i]));
        } else if (step_type && strcmp(step_type, "Digits") == 0 && !last) {
            /* Digits splits on char::is_numeric (\p{N}): each digit Isolated, or runs
             * of them (Contiguous), which is \p{N}+ Isolated. */
            int individual;
            GRPO_TRY(get_bool(tok->name, where, v, "individual_digits", 0, &individual));
            const char *pattern = individual ? "\\p{N}" : "\\p{N}+";
            tok->steps[i].behavior = TOK_SPLIT_ISOLATED;
            GRPO_TRY(tok_regex_compile(tok->name, where, pattern, strlen(pattern), &tok->steps[i].regex));
        } else {
            return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: %s: found type \"%.40s\"; supported are ByteLevel, or a "
                             "Sequence of Split / Digits steps ending in one ByteLevel", tok->name, where,
                             step_type ? step_type : "(none)");
        }
    }
    return GRPO_OK;
}

static grpo_status check_decoder(const char *name, const json_t *root) {
    const json_t *dec = json_object_get(root, "decoder");
    if (!dec || json_is_null(dec)) return GRPO_OK; /* decoding is byte-level regardless */
    GRPO_TRY(want(name, "decoder", dec, JSON_OBJECT, "an object or null"));
    const char *type = json_string_value(json_object_get(dec, "type"));
    if (type && strcmp(type, "ByteLevel") == 0) return GRPO_OK;
    return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: decoder: only ByteLevel is supported, found \"%.40s\"", name,
                     type ? type : "(no type)");
}

static int32_t find_first(const tokenizer *tok, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        int32_t id = tokenizer_token_to_id(tok, names[i]);
        if (id >= 0) return id;
    }
    return -1;
}

/* Without a tokenizer_config.json: the usual names of the GPT-2, Llama 3, Qwen2 and
 * DeepSeek families. */
static void guess_special_ids(tokenizer *tok) {
    static const char *const bos[] = {"<|begin_of_text|>", "<｜begin▁of▁sentence｜>", "<s>", NULL};
    static const char *const eos[] = {"<|end_of_text|>", "<|endoftext|>", "<｜end▁of▁sentence｜>", "</s>", NULL};
    static const char *const pad[] = {"<|pad|>", "<pad>", "<｜▁pad▁｜>", NULL};
    tok->bos_id = find_first(tok, bos);
    tok->eos_id = find_first(tok, eos);
    tok->pad_id = find_first(tok, pad);
}

grpo_status tokenizer_load_buffer(const char *json, size_t len, const char *name, tokenizer **out) {
    *out = NULL;
    tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory", name);
    tok->name = strdup(name ? name : "tokenizer.json");
    if (!tok->name) { free(tok); return grpo_fail(GRPO_ERR_NOMEM, "out of memory"); }
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    grpo_status st;
    if (!root) st = grpo_fail(GRPO_ERR_PARSE, "%s:%d:%d: not valid JSON: %s", tok->name, err.line, err.column, err.text);
    else st = want(tok->name, "the top level", root, JSON_OBJECT, "an object");
    if (st == GRPO_OK) st = load_model(tok, root);
    if (st == GRPO_OK) st = load_added(tok, root);
    if (st == GRPO_OK) st = check_normalizer(tok->name, "normalizer", json_object_get(root, "normalizer"), 0);
    if (st == GRPO_OK) st = load_pre_tokenizer(tok, root);
    if (st == GRPO_OK) st = check_decoder(tok->name, root);
    json_decref(root);
    if (st != GRPO_OK) { tokenizer_free(tok); return st; }
    guess_special_ids(tok);
    *out = tok;
    return GRPO_OK;
}

/* bos_token / eos_token / pad_token of tokenizer_config.json: a string, {"content": s}
 * or null. */
static grpo_status config_token(const tokenizer *tok, const char *path, const json_t *cfg, const char *key,
                                int32_t *id) {
    const json_t *v = json_object_get(cfg, key);
    *id = -1;
    if (!v || json_is_null(v)) return GRPO_OK;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v))
        return grpo_fail(GRPO_ERR_PARSE, "%s: %s: expected a string or {\"content\": string}, found %s", path, key,
                         type_name(v));
    *id = tokenizer_token_to_id(tok, json_string_value(v));
    if (*id < 0)
        return grpo_fail(GRPO_ERR_NOTFOUND, "%s: %s: \"%.60s\" is not a token of %s", path, key, json_string_value(v),
                         tok->name);
    return GRPO_OK;
}

static grpo_status read_config(tokenizer *tok, const char *path) {
    json_error_t err;
    json_t *cfg = json_load_file(path, 0, &err);
    if (!cfg) return grpo_fail(GRPO_ERR_PARSE, "%s:%d:%d: not valid JSON: %s", path, err.line, err.column, err.text);
    grpo_status st = want(path, "the top level", cfg, JSON_OBJECT, "an object");
    if (st == GRPO_OK) st = config_token(tok, path, cfg, "bos_token", &tok->bos_id);
    if (st == GRPO_OK) st = config_token(tok, path, cfg, "eos_token", &tok->eos_id);
    if (st == GRPO_OK) st = config_token(tok, path, cfg, "pad_token", &tok->pad_id);
    json_decref(cfg);
    return st;
}

static grpo_status read_whole_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return grpo_fail(errno == ENOENT ? GRPO_ERR_NOTFOUND : GRPO_ERR_IO, "%s: cannot open: %s", path,
                             strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *grown = realloc(buf, cap *= 2);
        if (!grown) { free(buf); buf = NULL; }
        else buf = grown;
    }
    int failed = ferror(f);
    fclose(f);
    if (!buf) return grpo_fail(GRPO_ERR_NOMEM, "%s: out of memory reading the file", path);
    if (failed) { free(buf); return grpo_fail(GRPO_ERR_IO, "%s: read error", path); }
    *data = buf;
    *len = n;
    return GRPO_OK;
}

grpo_status tokenizer_load(const char *path, tokenizer **out) {
    *out = NULL;
    char *data;
    size_t len = 0;
    GRPO_TRY(read_whole_file(path, &data, &len));
    tokenizer *tok;
    grpo_status st = tokenizer_load_buffer(data, len, path, &tok);
    free(data);
    if (st != GRPO_OK) return st;
    /* tokenizer_config.json in the same folder, when there is one. */
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path + 1) : 0;
    char *cfg = malloc(dir_len + sizeof "tokenizer_config.json");
    if (!cfg) { tokenizer_free(tok); return grpo_fail(GRPO_ERR_NOMEM, "out of memory"); }
    memcpy(cfg, path, dir_len);
    strcpy(cfg + dir_len, "tokenizer_config.json");
    struct stat sb;
    if (stat(cfg, &sb) == 0) st = read_config(tok, cfg);
    free(cfg);
    if (st != GRPO_OK) { tokenizer_free(tok); return st; }
    *out = tok;
    return GRPO_OK;
}

grpo_status tokenizer_load_dir(const char *dir, tokenizer **out) {
    *out = NULL;
    size_t n = strlen(dir);
    char *path = malloc(n + sizeof "/tokenizer.json");
    if (!path) return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    memcpy(path, dir, n);
    strcpy(path + n, n && dir[n - 1] == '/' ? "tokenizer.json" : "/tokenizer.json");
    grpo_status st = tokenizer_load(path, out);
    free(path);
    return st;
}
