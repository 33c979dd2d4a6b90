/* Format and shaping rewards (see format.h for the formulas and their sources). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "verifiers/format.h"

struct verify_format {
    pcre2_code *code;
};

grpo_status verify_format_create(const char *pattern, verify_format **out) {
    *out = NULL;
    if (!pattern) pattern = VERIFY_FORMAT_R1_PATTERN;
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_DOTALL, &errcode, &erroff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return grpo_fail(GRPO_ERR_PARSE, "format pattern \"%s\": %s at offset %zu", pattern, (const char *)msg,
                         (size_t)erroff);
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);   /* optional: interpreted matching otherwise */
    verify_format *f = malloc(sizeof *f);
    if (!f) { pcre2_code_free(code); return grpo_fail(GRPO_ERR_NOMEM, "verify_format_create: out of memory"); }
    f->code = code;
    *out = f;
    return GRPO_OK;
}

void verify_format_free(verify_format *f) {
    if (!f) return;
    pcre2_code_free(f->code);
    free(f);
}

static grpo_status match_into(const verify_format *f, pcre2_match_data *md, const char *text, size_t len, int *rc) {
    *rc = pcre2_match(f->code, (PCRE2_SPTR)text, len, 0, 0, md, NULL);
    GRPO_CHECK_PCRE2(*rc);
    return GRPO_OK;
}

grpo_status verify_format_match(const verify_format *f, const char *text, size_t len, float *score) {
    *score = 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(f->code, NULL);
    if (!md) return grpo_fail(GRPO_ERR_NOMEM, "verify_format_match: out of memory");
    int rc;
    grpo_status s = match_into(f, md, text ? text : "", text ? len : 0, &rc);
    pcre2_match_data_free(md);
    if (s == GRPO_OK && rc >= 0) *score = 1;
    return s;
}

/* ---- tag counts ----------------------------------------------------------------------- */
static int count_occurrences(const char *s, size_t n, const char *pat) {
    size_t k = strlen(pat);
    int count = 0;
    for (size_t i = 0; i + k <= n;) {
        const char *hit = memmem(s + i, n - i, pat, k);
        if (!hit) break;
        count++;
        i = (size_t)(hit - s) + k;
    }
    return count;
}

float verify_format_tag_count(const char *text, size_t len, int newlines) {
    static const char *const exact[4] = { "<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>" };
    static const char *const bare[4] = { "<think>", "</think>", "<answer>", "</answer>" };
    const char *const *tags = newlines ? exact : bare;
    float score = 0;
    for (int i = 0; i < 4; i++)
        if (count_occurrences(text, len, tags[i]) == 1) score += 0.25f;
    return score;
}

/* ---- language consistency ------------------------------------------------------------- */
/* Next code point of valid UTF-8 at s[*i] (advancing *i); -1 for an invalid byte (skipped). */
static long next_code_point(const unsigned char *s, size_t n, size_t *i) {
    unsigned char c = s[*i];
    int extra;
    long cp;
    if (c < 0x80) { (*i)++; return c; }
    if ((c & 0xE0) == 0xC0) { extra = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { extra = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { extra = 3; cp = c & 0x07; }
    else { (*i)++; return -1; }
    for (int k = 1; k <= extra; k++) {
        if (*i + (size_t)k >= n || (s[*i + k] & 0xC0) != 0x80) { (*i)++; return -1; }
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    *i += (size_t)extra + 1;
    return cp;
}

static int is_latin_letter(long cp) {
    if ((cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z')) return 1;
    if (cp >= 0xC0 && cp <= 0x24F) return cp != 0xD7 && cp != 0xF7;
    return cp >= 0x1E00 && cp <= 0x1EFF;
}

static int is_cjk_letter(long cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
           (cp >= 0x20000 && cp <= 0x2FA1F) || (cp >= 0x3040 && cp <= 0x30FF && cp != 0x30FB) ||
           (cp >= 0x31F0 && cp <= 0x31FF) || (cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0x1100 && cp <= 0x11FF);
}

static int is_other_letter(long cp) {
    return (cp >= 0x370 && cp <= 0x3FF && cp != 0x37E && cp != 0x387) ||   /* Greek */
           (cp >= 0x400 && cp <= 0x52F) ||                                   /* Cyrillic */
           (cp >= 0x531 && cp <= 0x587) ||                                   /* Armenian */
           (cp >= 0x5D0 && cp <= 0x5EA) ||                                   /* Hebrew */
           (cp >= 0x620 && cp <= 0x64A) || (cp >= 0x671 && cp <= 0x6D3) ||   /* Arabic */
           (cp >= 0x904 && cp <= 0x939) || (cp >= 0x958 && cp <= 0x961) ||   /* Devanagari */
           (cp >= 0xE01 && cp <= 0xE30);                                      /* Thai */
}

float verify_format_language_consistency(const char *text, size_t len, verify_format_script script) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    long target = 0, letters = 0;
    while (i < len) {
        long cp = next_code_point(s, len, &i);
        if (cp < 0) continue;
        int latin = is_latin_letter(cp), cjk = !latin && is_cjk_letter(cp);
        if (latin || cjk || is_other_letter(cp)) {
            letters++;
            if ((script == VERIFY_FORMAT_SCRIPT_LATIN && latin) || (script == VERIFY_FORMAT_SCRIPT_CJK && cjk)) target++;
        }
    }
    return letters ? (float)((double)target / (double)letters) : 1.0f;
}

/* ---- repetition penalty --------------------------------------------------------------- */
/* Length of a whitespace character at s[i] (Python's str.split set: ASCII space and
 * \t\n\v\f\r, \x1c-\x1f, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F,
 * U+205F, U+3000), else 0. */
static size_t space_at(const unsigned char *s, size_t n, size_t i) {
    unsigned char c = s[i];
    if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c < 0x80) return 0;
    size_t j = i;
    long cp = next_code_point(s, n, &j);
    if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
        cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return j - i;
    return 0;
}

typedef struct {
    uint32_t start, len;
} word_span;

typedef struct {
    uint64_t hash;
    uint32_t first;   /* index of the n-gram's first word */
} ngram_key;

/* qsort has no context argument: the comparison reads these (thread-local) pointers. */
static _Thread_local const unsigned char *sort_text;
static _Thread_local const word_span *sort_words;
static _Thread_local int sort_n;

static char lower_ascii(unsigned char c) { return (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); }

static int word_cmp(const word_span *a, const word_span *b) {
    uint32_t m = a->len < b->len ? a->len : b->len;
    for (uint32_t k = 0; k < m; k++) {
        char x = lower_ascii(sort_text[a->start + k]), y = lower_ascii(sort_text[b->start + k]);
        if (x != y) return x < y ? -1 : 1;
    }
    return a->len < b->len ? -1 : a->len > b->len;
}

static int ngram_cmp(const void *pa, const void *pb) {
    const ngram_key *a = pa, *b = pb;
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    for (int k = 0; k < sort_n; k++) {
        int c = word_cmp(&sort_words[a->first + k], &sort_words[b->first + k]);
        if (c) return c;
    }
    return 0;
}

grpo_status verify_format_repetition_check(int ngram_size, float max_penalty) {
    if (ngram_size < 1)
        return grpo_fail(GRPO_ERR_INVALID, "repetition penalty: ngram_size must be >= 1, found %d", ngram_size);
    if (!(max_penalty <= 0))
        return grpo_fail(GRPO_ERR_INVALID, "repetition penalty: max_penalty must be <= 0, found %g", (double)max_penalty);
    return GRPO_OK;
}

float verify_format_repetition_penalty(const char *text, size_t len, int ngram_size, float max_penalty) {
    GRPO_ASSERT(ngram_size >= 1 && max_penalty <= 0);
    const unsigned char *s = (const unsigned char *)text;
    if (len == 0 || len > UINT32_MAX) return 0;
    /* words: at most len / 2 + 1 */
    size_t cap = len / 2 + 1;
    word_span *words = malloc(sizeof *words * cap);
    if (!words) return 0;
    size_t nwords = 0, i = 0;
    while (i < len) {
        size_t sp = space_at(s, len, i);
        if (sp) { i += sp; continue; }
        size_t st = i;
        while (i < len && !space_at(s, len, i)) i++;
        words[nwords++] = (word_span){ (uint32_t)st, (uint32_t)(i - st) };
    }
    float result = 0;
    if (nwords >= (size_t)ngram_size) {
        size_t total = nwords - (size_t)ngram_size + 1;
        ngram_key *keys = malloc(sizeof *keys * total);
        if (keys) {
            /* FNV-1a over the lowercased words, each followed by a separator */
            for (size_t g = 0; g < total; g++) {
                uint64_t h = 1469598103934665603ull;
                for (int k = 0; k < ngram_size; k++) {
                    const word_span *w = &words[g + (size_t)k];
                    for (uint32_t b = 0; b < w->len; b++) h = (h ^ (unsigned char)lower_ascii(s[w->start + b])) * 1099511628211ull;
                    h = (h ^ 0xFFu) * 1099511628211ull;
                }
                keys[g] = (ngram_key){ h, (uint32_t)g };
            }
            sort_text = s;
            sort_words = words;
            sort_n = ngram_size;
            qsort(keys, total, sizeof *keys, ngram_cmp);
            size_t unique = total ? 1 : 0;
            for (size_t g = 1; g < total; g++) unique += ngram_cmp(&keys[g - 1], &keys[g]) != 0;
            result = (float)(1.0 - (double)unique / (double)total) * max_penalty;
            free(keys);
        }
    }
    free(words);
    return result == 0 ? 0.0f : result;   /* no -0 */
}

/* ---- DAPO overlong penalty ------------------------------------------------------------ */
grpo_status verify_format_overlong_check(long max_len, long cache_len) {
    if (max_len < 1) return grpo_fail(GRPO_ERR_INVALID, "overlong penalty: max_len must be >= 1, found %ld", max_len);
    if (cache_len < 0 || cache_len > max_len)
        return grpo_fail(GRPO_ERR_INVALID, "overlong penalty: cache_len must be in [0, max_len=%ld], found %ld", max_len,
                         cache_len);
    return GRPO_OK;
}

float verify_format_overlong_penalty(long length, long max_len, long cache_len) {
    GRPO_ASSERT(cache_len >= 0 && cache_len <= max_len);
    long expected = max_len - cache_len;
    if (length <= expected) return 0;
    if (length > max_len) return -1;
    return (float)((double)(expected - length) / (double)cache_len);
}
