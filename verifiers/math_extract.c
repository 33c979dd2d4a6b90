/* Extraction of the final answer from a whole model response (see verifiers/math.h for
 * the order of the rules). Works on spans of the response; no allocation. Every scan is
 * linear in the response except \boxed retries, which are capped. */
#include <string.h>

#include "verifiers/math_impl.h"

#define MATH_BOXED_TRIES 16

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static int starts_with(const char *s, size_t n, size_t i, const char *pat) {
    size_t k = strlen(pat);
    return i + k <= n && memcmp(s + i, pat, k) == 0;
}

static int starts_with_ci(const char *s, size_t n, size_t i, const char *pat) {
    size_t k = strlen(pat);
    if (i + k > n) return 0;
    for (size_t j = 0; j < k; j++) if (lower(s[i + j]) != pat[j]) return 0;
    return 1;
}

/* Index of the '}' matching s[open] == '{' within [open, end), honouring \{ and \};
 * end when unmatched. */
static size_t match_brace(const char *s, size_t end, size_t open) {
    int depth = 0;
    for (size_t i = open; i < end; i++) {
        if (s[i] == '\\' && i + 1 < end) { i++; continue; }
        if (s[i] == '{') depth++;
        else if (s[i] == '}' && --depth == 0) return i;
    }
    return end;
}

/* Content of the \boxed / \fbox command starting at i (k = command length), or 0. */
static int boxed_content(const char *s, size_t end, size_t i, size_t k, size_t *a, size_t *b) {
    size_t j = i + k;
    if (j < end && is_alpha(s[j])) return 0;   /* \boxedfoo is another command */
    while (j < end && (s[j] == ' ' || s[j] == '\t')) j++;
    if (j < end && s[j] == '{') {
        size_t close = match_brace(s, end, j);
        if (close >= end) return 0;
        *a = j + 1;
        *b = close;
        return 1;
    }
    /* "\boxed 5": the next run of non-space characters */
    size_t e = j;
    while (e < end && !is_space(s[e]) && s[e] != '$') e++;
    if (e == j) return 0;
    *a = j;
    *b = e;
    return 1;
}

/* The last complete \boxed{..} or \fbox{..} in [from, to). */
static int find_boxed(const char *s, size_t from, size_t to, size_t *a, size_t *b) {
    int tries = 0;
    for (size_t i = to; i > from && tries < MATH_BOXED_TRIES;) {
        i--;
        if (s[i] != '\\') continue;
        size_t k = starts_with(s, to, i, "\\boxed") ? 6 : starts_with(s, to, i, "\\fbox") ? 5 : 0;
        if (!k) continue;
        tries++;
        if (boxed_content(s, to, i, k, a, b)) return 1;
    }
    return 0;
}

static void trim(const char *s, size_t *a, size_t *b) {
    while (*a < *b && is_space(s[*a])) (*a)++;
    while (*b > *a && is_space(s[*b - 1])) (*b)--;
}

/* Text after a phrase: a $..$ / \(..\) / \[..\] math span when one follows, else the
 * rest of the line cut at the end of the sentence. */
static int phrase_content(const char *s, size_t to, size_t i, size_t *a, size_t *b) {
    while (i < to && (s[i] == ' ' || s[i] == '\t' || s[i] == ':' || s[i] == '*')) i++;
    if (i >= to) return 0;
    const char *close = NULL;
    size_t open_len = 0;
    if (starts_with(s, to, i, "$$")) { close = "$$"; open_len = 2; }
    else if (s[i] == '$') { close = "$"; open_len = 1; }
    else if (starts_with(s, to, i, "\\(")) { close = "\\)"; open_len = 2; }
    else if (starts_with(s, to, i, "\\[")) { close = "\\]"; open_len = 2; }
    if (close) {
        size_t cl = strlen(close);
        for (size_t j = i + open_len; j + cl <= to; j++) {
            if (memcmp(s + j, close, cl) == 0) {
                *a = i + open_len;
                *b = j;
                trim(s, a, b);
                return *b > *a;
            }
        }
    }
    size_t e = i;
    while (e < to && s[e] != '\n') {
        if (s[e] == '.' && (e + 1 >= to || is_space(s[e + 1]))) break;   /* end of sentence */
        e++;
    }
    *a = i;
    *b = e;
    trim(s, a, b);
    while (*b > *a && s[*b - 1] == '*') (*b)--;   /* markdown bold: **5** */
    trim(s, a, b);
    return *b > *a;
}

/* The last "answer is" / "answer:" in [from, to); *final says whether "final" precedes. */
static int find_phrase(const char *s, size_t from, size_t to, size_t *a, size_t *b, int *final) {
    for (size_t i = to; i > from;) {
        i--;
        if (lower(s[i]) != 'a' || !starts_with_ci(s, to, i, "answer")) continue;
        if (i > from && is_alpha(s[i - 1])) continue;
        size_t j = i + 6;
        if (j < to && is_alpha(s[j]) && !(s[j] == 's' && j + 1 < to && !is_alpha(s[j + 1]))) continue;
        if (j < to && s[j] == 's') j++;   /* "answers are" */
        while (j < to && (s[j] == ' ' || s[j] == '*')) j++;
        size_t k;
        if (j < to && (s[j] == ':' || s[j] == '=')) k = j + 1;
        else if (starts_with_ci(s, to, j, "is") && !(j + 2 < to && is_alpha(s[j + 2]))) k = j + 2;
        else if (starts_with_ci(s, to, j, "are") && !(j + 3 < to && is_alpha(s[j + 3]))) k = j + 3;
        else continue;
        if (!phrase_content(s, to, k, a, b)) continue;
        size_t f = i;
        while (f > from && (s[f - 1] == ' ' || s[f - 1] == '*' || s[f - 1] == '#')) f--;
        *final = f >= from + 5 && starts_with_ci(s, to, f - 5, "final");
        return 1;
    }
    return 0;
}

/* The last number: [-]digits[.,digits]*[/digits]. */
static int find_last_number(const char *s, size_t n, size_t *a, size_t *b) {
    size_t i = n;
    while (i > 0 && !(s[i - 1] >= '0' && s[i - 1] <= '9')) i--;
    if (i == 0) return 0;
    size_t e = i, st = i;
    while (st > 0) {
        char c = s[st - 1];
        if (c >= '0' && c <= '9') st--;
        else if ((c == '.' || c == ',' || c == '/') && st >= 2 && s[st - 2] >= '0' && s[st - 2] <= '9') st--;
        else break;
    }
    if (st > 0 && s[st - 1] == '-') st--;
    *a = st;
    *b = e;
    return 1;
}

verify_math_rule verify_math_extract(const char *s, size_t n, const verify_math_options *opt, size_t *start,
                                     size_t *span_len) {
    verify_math_options defaults;
    if (!opt) { verify_math_options_default(&defaults); opt = &defaults; }
    size_t a = 0, b = 0;
    int final = 0;
    verify_math_rule rule = VERIFY_MATH_RULE_NONE;
    /* 1. the last complete <answer>...</answer> */
    size_t close = n;
    for (size_t i = n; i > 0;) {
        i--;
        if (s[i] == '<' && starts_with(s, n, i, "</answer>")) { close = i; break; }
    }
    if (close < n) {
        size_t open = n;
        for (size_t i = close; i > 0;) {
            i--;
            if (s[i] == '<' && starts_with(s, close, i, "<answer>")) { open = i; break; }
        }
        if (open < n) {
            size_t ra = open + 8, rb = close;
            trim(s, &ra, &rb);
            if (rb > ra) {
                if (find_boxed(s, ra, rb, &a, &b)) rule = VERIFY_MATH_RULE_BOXED;
                else if (find_phrase(s, ra, rb, &a, &b, &final)) rule = VERIFY_MATH_RULE_ANSWER_TAG;
                else { a = ra; b = rb; rule = VERIFY_MATH_RULE_ANSWER_TAG; }
            }
        }
    }
    /* 2. the last \boxed anywhere */
    if (!rule && find_boxed(s, 0, n, &a, &b)) rule = VERIFY_MATH_RULE_BOXED;
    /* 3. "final answer ..." / "the answer is ..." */
    if (!rule && find_phrase(s, 0, n, &a, &b, &final))
        rule = final ? VERIFY_MATH_RULE_FINAL_ANSWER : VERIFY_MATH_RULE_ANSWER_PHRASE;
    /* 4. a short response taken whole */
    if (!rule && opt->bare_max_len > 0) {
        size_t ta = 0, tb = n;
        trim(s, &ta, &tb);
        if (tb > ta && tb - ta <= opt->bare_max_len) { a = ta; b = tb; rule = VERIFY_MATH_RULE_WHOLE; }
    }
    /* 5. the last number, when asked for */
    if (!rule && opt->last_number_fallback && find_last_number(s, n, &a, &b)) rule = VERIFY_MATH_RULE_LAST_NUMBER;
    if (!rule) return VERIFY_MATH_RULE_NONE;
    trim(s, &a, &b);
    if (b <= a) return VERIFY_MATH_RULE_NONE;
    *start = a;
    *span_len = b - a;
    return rule;
}

void math_extract_gold(const char *s, size_t n, size_t *start, size_t *span_len) {
    size_t a = 0, b = n;
    if (!find_boxed(s, 0, n, &a, &b)) {
        a = 0;
        b = n;
        for (size_t i = n; i >= 4; i--) {
            if (memcmp(s + i - 4, "####", 4) == 0) { a = i; break; }
        }
    }
    trim(s, &a, &b);
    *start = a;
    *span_len = b - a;
}
