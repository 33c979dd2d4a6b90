/* Normalisation of an extracted answer before parsing: unicode symbols, math delimiters,
 * sizing commands, \text-like wrappers (units dropped), degrees, percent, thousands
 * separators, trailing unit words and punctuation. Four linear passes over two buffers;
 * each pass can grow the text by at most a small constant factor (see MATH_NORM_CAP). */
#include <stdlib.h>
#include <string.h>

#include "verifiers/math_impl.h"

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n && b->n + 1 < b->cap; i++) b->p[b->n++] = s[i];
}
static void putc_(sbuf *b, char c) { if (b->n + 1 < b->cap) b->p[b->n++] = c; }
static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Does s[i..n) start with `pat`, and, when pat ends in a letter, not continue with one? */
static int at(const char *s, size_t n, size_t i, const char *pat) {
    size_t k = strlen(pat);
    if (i + k > n || memcmp(s + i, pat, k) != 0) return 0;
    if (is_alpha(pat[k - 1]) && i + k < n && is_alpha(s[i + k])) return 0;
    return 1;
}

/* ---- pass 1: symbols, delimiters, spacing, sizing, degrees, synonyms --------------- */
typedef struct { const char *from, *to; } subst;

/* Order matters: longer patterns before their prefixes. */
static const subst pass1_table[] = {
    /* a LaTeX line break stays as it is (matrices) */
    { "\\\\", "\\\\" },
    /* unicode (UTF-8 bytes) */
    { "\xe2\x88\x92", "-" }, { "\xe2\x80\x93", "-" }, { "\xe2\x80\x94", "-" },
    { "\xc3\x97", "*" }, { "\xc3\xb7", "/" }, { "\xc2\xb7", "*" }, { "\xe2\x8b\x85", "*" },
    { "\xcf\x80", "\\pi " }, { "\xe2\x88\x9a", "\\sqrt" }, { "\xe2\x88\x9e", "\\infty " },
    { "\xe2\x89\xa4", "\\le " }, { "\xe2\x89\xa5", "\\ge " }, { "\xe2\x89\xa0", "\\ne " },
    { "\xc2\xb0", "" }, { "\xe2\x88\xaa", "\\cup " }, { "\xc2\xb1", "\\pm " },
    { "\xc2\xa0", " " }, { "\xe2\x80\x89", "\\," }, { "\xe2\x80\xaf", "\\," }, { "\xe2\x80\x88", "\\," },
    { "\xef\xbc\x8c", "," }, { "\xe2\x80\x8b", "" },
    /* degrees */
    { "^{\\circ}", "" }, { "^\\circ", "" }, { "^{\\degree}", "" }, { "^\\degree", "" },
    { "\\circ", "" }, { "\\degree", "" },
    /* money and percent */
    { "\\$", "" }, { "$", "" }, { "\\%", "%" },
    /* math delimiters */
    { "\\(", " " }, { "\\)", " " }, { "\\[", " " }, { "\\]", " " },
    /* spacing */
    { "\\!", "" }, { "\\;", " " }, { "\\:", " " }, { "\\ ", " " }, { "~", " " },
    { "\\qquad", " " }, { "\\quad", " " },
    { "\\displaystyle", "" }, { "\\textstyle", "" }, { "\\limits", "" }, { "\\nolimits", "" },
    { "\\mathstrut", "" },
    /* synonyms */
    { "\\dfrac", "\\frac" }, { "\\tfrac", "\\frac" }, { "\\cfrac", "\\frac" },
    { "\\dbinom", "\\binom" }, { "\\tbinom", "\\binom" },
    { "\\lbrace", "\\{" }, { "\\rbrace", "\\}" },
    { "\\lvert", "|" }, { "\\rvert", "|" }, { "\\vert", "|" },
    { "\\leqslant", "\\le" }, { "\\geqslant", "\\ge" }, { "\\leq", "\\le" }, { "\\geq", "\\ge" },
    { "\\neq", "\\ne" }, { "\\lt", "<" }, { "\\gt", ">" }, { "\\infin", "\\infty" },
    { "**", "^" },
    { NULL, NULL }
};

static const char *const sizing_cmds[] = {
    "\\left", "\\right", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\biggl", "\\biggr",
    "\\Biggl", "\\Biggr", "\\bigg", "\\Bigg", "\\big", "\\Big", NULL
};

static void pass_symbols(const char *s, size_t n, sbuf *out) {
    size_t i = 0;
    while (i < n) {
        int done = 0;
        if (s[i] == '\\') {
            for (int k = 0; sizing_cmds[k]; k++) {
                if (at(s, n, i, sizing_cmds[k])) {
                    i += strlen(sizing_cmds[k]);
                    while (i < n && is_space(s[i])) i++;
                    if (i < n && s[i] == '.') i++;   /* \left. and \right. are invisible */
                    done = 1;
                    break;
                }
            }
        }
        if (!done) {
            for (int k = 0; pass1_table[k].from; k++) {
                if (s[i] == pass1_table[k].from[0] && at(s, n, i, pass1_table[k].from)) {
                    puts_(out, pass1_table[k].to);
                    i += strlen(pass1_table[k].from);
                    done = 1;
                    break;
                }
            }
        }
        if (!done) putc_(out, s[i++]);
    }
}

/* ---- pass 2: \text-like wrappers ----------------------------------------------------- */
static const char *const text_cmds[] = {
    "\\text", "\\textbf", "\\textit", "\\textrm", "\\textnormal", "\\textsf", "\\texttt",
    "\\mathrm", "\\mathbf", "\\mathit", "\\mathsf", "\\mathtt", "\\mbox", "\\emph",
    "\\boldsymbol", "\\operatorname", "\\hbox", NULL
};

/* Index of the '}' matching the '{' at s[open], honouring \{ \}; n when unmatched. */
static size_t match_brace(const char *s, size_t n, size_t open) {
    int depth = 0;
    for (size_t i = open; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) { i++; continue; }
        if (s[i] == '{') depth++;
        else if (s[i] == '}' && --depth == 0) return i;
    }
    return n;
}

/* Letters, spaces and word punctuation only, with at least one letter. */
static int is_wordy(const char *s, size_t n) {
    int letters = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_alpha(s[i])) letters++;
        else if (!(is_space(s[i]) || s[i] == '.' || s[i] == '-' || s[i] == '\'' || s[i] == '/')) return 0;
    }
    return letters > 0;
}

static int out_has_content(const sbuf *b) {
    for (size_t i = 0; i < b->n; i++) if (!is_space(b->p[i])) return 1;
    return 0;
}

/* Length of a "^2", "^3", "^{2}", "^{3}" at s[i], else 0. */
static size_t unit_exponent(const char *s, size_t n, size_t i) {
    while (i < n && is_space(s[i])) i++;
    if (i < n && s[i] == '^') {
        if (i + 1 < n && (s[i + 1] == '2' || s[i + 1] == '3')) return 2;
        if (i + 3 < n && s[i + 1] == '{' && (s[i + 2] == '2' || s[i + 2] == '3') && s[i + 3] == '}') return 4;
    }
    return 0;
}

/* s is writable scratch: a matched closing brace is replaced by 0x01 and skipped. */
static void pass_text(char *s, size_t n, sbuf *out) {
    size_t i = 0;
    while (i < n) {
        if (s[i] == '\x01') { i++; continue; }
        if (s[i] == '\\') {
            int hit = -1;
            for (int k = 0; text_cmds[k]; k++) if (at(s, n, i, text_cmds[k])) { hit = k; break; }
            if (hit >= 0) {
                size_t j = i + strlen(text_cmds[hit]);
                while (j < n && is_space(s[j])) j++;
                if (j < n && s[j] == '{') {
                    size_t close = match_brace(s, n, j);
                    if (close < n) {
                        const char *c = s + j + 1;
                        size_t cn = close - j - 1;
                        while (cn && is_space(*c)) { c++; cn--; }
                        while (cn && is_space(c[cn - 1])) cn--;
                        if ((cn == 3 && memcmp(c, "and", 3) == 0) || (cn == 2 && memcmp(c, "or", 2) == 0) ||
                            (cn == 1 && c[0] == ',')) {
                            putc_(out, ',');
                            i = close + 1;
                            continue;
                        }
                        if (is_wordy(c, cn) && out_has_content(out)) {
                            /* a unit or a remark after the value: drop it (and cm^2's exponent) */
                            i = close + 1;
                            i += unit_exponent(s, n, i);
                            putc_(out, ' ');
                            continue;
                        }
                        s[close] = '\x01';
                        putc_(out, ' ');
                        i = j + 1;
                        continue;
                    }
                }
            }
        }
        putc_(out, s[i++]);
    }
}

/* ---- pass 3: thousands separators ---------------------------------------------------- */
/* Length of a separator at s[i] ("{,}", "\,", ",", " ") and its kind: 2 explicit thin
 * space or {,}, 1 comma, 0 plain space; 0 length when none. */
static size_t separator_at(const char *s, size_t n, size_t i, int *kind) {
    if (at(s, n, i, "{,}")) { *kind = 2; return 3; }
    if (i + 1 < n && s[i] == '\\' && s[i + 1] == ',') { *kind = 2; return 2; }
    if (i < n && s[i] == ',') { *kind = 1; return 1; }
    if (i < n && s[i] == ' ') { *kind = 0; return 1; }
    return 0;
}

static void pass_thousands(const char *s, size_t n, sbuf *out) {
    int depth = 0;
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '(' || c == '[' || c == '{') depth++;
        else if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
        int starts_number = is_digit(c) && (i == 0 || !(is_digit(s[i - 1]) || s[i - 1] == '.'));
        if (starts_number) {
            size_t lead = 0;
            while (i + lead < n && is_digit(s[i + lead])) lead++;
            if (lead <= 3) {
                size_t j = i + lead, groups = 0, last_end = j;
                int strongest = -1, weakest = 3;
                for (;;) {
                    int kind;
                    size_t sl = separator_at(s, n, j, &kind);
                    if (!sl) break;
                    size_t k = j + sl, d = 0;
                    while (k + d < n && is_digit(s[k + d])) d++;
                    if (d != 3) break;
                    groups++;
                    if (kind > strongest) strongest = kind;
                    if (kind < weakest) weakest = kind;
                    j = k + 3;
                    last_end = j;
                }
                int accept = groups > 0 &&
                    (strongest == 2 || (weakest >= 1 && (depth == 0 || groups >= 2)) ||
                     (weakest == 0 && depth == 0 && strongest <= 0));
                if (accept) {
                    for (size_t k = i; k < last_end; k++) if (is_digit(s[k])) putc_(out, s[k]);
                    i = last_end;
                    continue;
                }
            }
        }
        if (at(s, n, i, "{,}")) { putc_(out, ','); i += 3; continue; }
        if (c == '\\' && i + 1 < n && s[i + 1] == ',') { putc_(out, ' '); i += 2; continue; }
        putc_(out, c);
        i++;
    }
}

/* ---- pass 4: trailing unit words, punctuation, spaces -------------------------------- */
static const char *const math_words[] = {
    "pi", "sqrt", "sin", "cos", "tan", "sec", "csc", "cot", "ln", "log", "exp", "inf",
    "infty", "infinity", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "or", "and", NULL
};

static int is_math_word(const char *w, size_t n) {
    for (int k = 0; math_words[k]; k++)
        if (strlen(math_words[k]) == n && memcmp(math_words[k], w, n) == 0) return 1;
    return 0;
}

static size_t trim_tail(const char *s, size_t n) {
    for (;;) {
        while (n && is_space(s[n - 1])) n--;
        /* '!' stays: "5!" is a factorial */
        if (n && (s[n - 1] == '.' || s[n - 1] == ',' || s[n - 1] == ';' || s[n - 1] == ':' || s[n - 1] == '?')) {
            /* keep "\," "\;" "\:" handled earlier; keep a lone "." */
            if (n >= 2 && s[n - 2] == '\\') return n;
            n--;
            continue;
        }
        return n;
    }
}

static size_t drop_unit_words(const char *s, size_t n) {
    for (;;) {
        size_t end = n;
        while (end && is_space(s[end - 1])) end--;
        /* cm^2 */
        size_t e = end;
        if (e >= 2 && s[e - 2] == '^' && (s[e - 1] == '2' || s[e - 1] == '3')) e -= 2;
        else if (e >= 4 && s[e - 4] == '^' && s[e - 3] == '{' && (s[e - 2] == '2' || s[e - 2] == '3') && s[e - 1] == '}') e -= 4;
        size_t w = e;
        while (w && (is_alpha(s[w - 1]) || s[w - 1] == '.')) w--;
        while (w < e && s[w] == '.') w++;
        size_t wlen = e - w;
        int letters = 0;
        for (size_t k = w; k < e; k++) letters += is_alpha(s[k]);
        if (letters < 2 || wlen == 0) return n;
        if (w == 0 || !is_space(s[w - 1])) return n;         /* "3xy" stays */
        if (is_math_word(s + w, wlen)) return n;
        size_t before = w;
        while (before && is_space(s[before - 1])) before--;
        if (!before) return n;                                 /* the whole answer is words */
        char p = s[before - 1];
        int ok = is_digit(p) || p == ')' || p == '}' || p == ']' || p == '%' || is_alpha(p);
        if (!ok) return n;
        if (is_alpha(p)) {
            /* only after a command like \pi, or another unit word that will go next */
            size_t q = before;
            while (q && is_alpha(s[q - 1])) q--;
            if (!(q && s[q - 1] == '\\') && !(q && is_space(s[q - 1]) && before - q >= 2 && !is_math_word(s + q, before - q)))
                return n;
            if (!(q && s[q - 1] == '\\')) {
                /* another word: drop ours and let the loop look at that one, but only if
                 * something numeric precedes the run of words */
                size_t r = q;
                while (r && (is_space(s[r - 1]) || is_alpha(s[r - 1]))) r--;
                if (!r) return n;
            }
        }
        n = before;
    }
}

static void pass_tail(const char *s, size_t n, sbuf *out) {
    size_t a = 0;
    while (a < n && is_space(s[a])) a++;
    n = trim_tail(s, n);
    if (n <= a) return;
    size_t m = drop_unit_words(s + a, n - a);
    m = trim_tail(s + a, m);
    /* collapse runs of spaces */
    int prev_space = 0;
    for (size_t i = a; i < a + m; i++) {
        char c = is_space(s[i]) ? ' ' : s[i];
        if (c == ' ' && prev_space) continue;
        prev_space = c == ' ';
        putc_(out, c);
    }
}

size_t math_normalize_into(const char *in, size_t n, char *out, char *tmp) {
    size_t cap = MATH_NORM_CAP(n);
    sbuf a = { tmp, 0, cap }, b = { out, 0, cap };
    pass_symbols(in, n, &a);                 /* in -> tmp */
    pass_text(a.p, a.n, &b);                 /* tmp -> out */
    a.n = 0;
    pass_thousands(b.p, b.n, &a);            /* out -> tmp */
    b.n = 0;
    pass_tail(a.p, a.n, &b);                 /* tmp -> out */
    b.p[b.n] = 0;
    return b.n;
}

size_t verify_math_normalize(const char *answer, size_t len, char *out, size_t cap) {
    size_t need = MATH_NORM_CAP(len);
    char *work = malloc(2 * need);
    if (!work) { if (cap) out[0] = 0; return 0; }
    size_t n = math_normalize_into(answer, len, work, work + need);
    if (cap) {
        size_t k = n < cap ? n : cap - 1;
        memcpy(out, work, k);
        out[k] = 0;
    }
    free(work);
    return n;
}
