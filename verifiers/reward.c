/* Reward composition (see reward.h for the rewards, their params and formulas): the
 * per-reward param schemas and checks, building a reward_set, and code extraction.
 * Scoring one response or a batch lives in reward_score.c. */
#include "verifiers/reward_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const reward_names[] = {"accuracy", "format", "tag_count", "countdown", "code", "language_consistency",
                                    "repetition_penalty", "overlong_penalty", "length", NULL};

const cfg_field reward_entry_schema[] = {
    CFG_FIELD_ENUM(reward_entry, kind, "name", reward_names, "which reward", .required = 1),
    CFG_FIELD_FLOAT(reward_entry, weight, "weight", -1e6, 1e6, "its weight in the total"),
    CFG_FIELD_ANY(reward_entry, params, "params", "the reward's parameters (see verifiers/reward.h)"),
    CFG_END,
};

const reward_entry reward_entry_defaults = {.kind = REWARD_ACCURACY, .weight = 1.0, .params = NULL};

/* ---- params: one flat struct, one schema per reward ------------------------------------ */

typedef struct {
    const char *answer_field;
    int last_number_fallback;
    double rel_tol;
    const char *pattern;
    int newlines;
    const char *numbers_field, *target_field;
    int use_all_numbers;
    double format_score;
    const char *tests_field, *language_field;
    double time_limit_s;
    int memory_mb;
    int compare;
    int partial_credit;
    int script;
    int ngram_size;
    double max_penalty;
    int64_t max_len, cache_len;
} reward_params;

static const char *const compare_names[] = {"whitespace", "exact", "float", NULL};   /* verify_compare order */
static const char *const script_names[] = {"latin", "cjk", NULL};                     /* verify_format_script */

static const reward_params params_defaults = {
    .answer_field = "answer", .rel_tol = 1e-9, .pattern = NULL, .numbers_field = "numbers",
    .target_field = "target", .tests_field = "tests", .language_field = "language", .time_limit_s = 2,
    .memory_mb = 256, .compare = VERIFY_COMPARE_WHITESPACE, .script = VERIFY_FORMAT_SCRIPT_LATIN,
    .ngram_size = 3, .max_penalty = -1.0, .max_len = -1, .cache_len = -1,
};

#define P reward_params
static const cfg_field accuracy_schema[] = {
    CFG_FIELD_STRING(P, answer_field, "answer_field", "the problem line's gold answer field"),
    CFG_FIELD_BOOL(P, last_number_fallback, "last_number_fallback", "take the last number when nothing else matches"),
    CFG_FIELD_FLOAT(P, rel_tol, "rel_tol", 0, 1, "relative tolerance for inexact values"),
    CFG_END,
};
static const cfg_field format_schema[] = {
    CFG_FIELD_STRING(P, pattern, "pattern", "PCRE2 pattern the whole response must match (DOTALL)"),
    CFG_END,
};
static const cfg_field tag_count_schema[] = {
    CFG_FIELD_BOOL(P, newlines, "newlines", "count open-r1's tags with newlines"),
    CFG_END,
};
static const cfg_field countdown_schema[] = {
    CFG_FIELD_STRING(P, numbers_field, "numbers_field", "the problem line's numbers field"),
    CFG_FIELD_STRING(P, target_field, "target_field", "the problem line's target field"),
    CFG_FIELD_BOOL(P, use_all_numbers, "use_all_numbers", "every number exactly once"),
    CFG_FIELD_FLOAT(P, format_score, "format_score", 0, 1, "score of a well-formed wrong expression"),
    CFG_END,
};
static const cfg_field code_schema[] = {
    CFG_FIELD_STRING(P, tests_field, "tests_field", "the problem line's tests field"),
    CFG_FIELD_STRING(P, language_field, "language_field", "the problem line's language field"),
    CFG_FIELD_FLOAT(P, time_limit_s, "time_limit_s", 0.01, 600, "CPU seconds per test"),
    CFG_FIELD_INT(P, memory_mb, "memory_mb", 16, 1 << 20, "memory limit"),
    CFG_FIELD_ENUM(P, compare, "compare", compare_names, "how outputs are compared"),
    CFG_FIELD_BOOL(P, partial_credit, "partial_credit", "score passed/total instead of all-or-nothing"),
    CFG_END,
};
static const cfg_field language_schema[] = {
    CFG_FIELD_ENUM(P, script, "script", script_names, "the script the response should be written in"),
    CFG_END,
};
static const cfg_field repetition_schema[] = {
    CFG_FIELD_INT(P, ngram_size, "ngram_size", 1, 64, "words per n-gram"),
    CFG_FIELD_FLOAT(P, max_penalty, "max_penalty", -1e6, 0, "penalty of a fully repeated response"),
    CFG_END,
};
static const cfg_field overlong_schema[] = {
    CFG_FIELD_INT64(P, max_len, "max_len", 1, 1e12, "tokens beyond which the penalty is -1", .required = 1),
    CFG_FIELD_INT64(P, cache_len, "cache_len", 0, 1e12, "tokens before max_len where it ramps to -1", .required = 1),
    CFG_END,
};
static const cfg_field no_params_schema[] = {CFG_END};
#undef P

static const cfg_field *const params_schema[REWARD_KIND_COUNT] = {
    [REWARD_ACCURACY] = accuracy_schema,
    [REWARD_FORMAT] = format_schema,
    [REWARD_TAG_COUNT] = tag_count_schema,
    [REWARD_COUNTDOWN] = countdown_schema,
    [REWARD_CODE] = code_schema,
    [REWARD_LANGUAGE_CONSISTENCY] = language_schema,
    [REWARD_REPETITION_PENALTY] = repetition_schema,
    [REWARD_OVERLONG_PENALTY] = overlong_schema,
    [REWARD_LENGTH] = no_params_schema,
};

/* ---- building a set -------------------------------------------------------------------- */

/* An error about entry i: at its node when known (file:line:col and key path), else "rewards[i]". */
static grpo_status fail_entry(const cfg_node *where, int i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static grpo_status fail_entry(const cfg_node *where, int i, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (where) return cfg_fail_at(where, GRPO_ERR_INVALID, "%s", msg);
    return grpo_fail(GRPO_ERR_INVALID, "rewards[%d]: %s", i, msg);
}

/* Copies a field name param into dst; it must be 1..REWARD_FIELD_CAP-1 bytes. */
static grpo_status copy_field_name(char *dst, const char *value, const cfg_node *params, const char *key) {
    size_t len = value ? strlen(value) : 0;
    if (len == 0 || len >= REWARD_FIELD_CAP)
        return cfg_fail_at(cfg_get(params, key), GRPO_ERR_INVALID, "expected a field name of 1 to %d bytes, found %zu bytes",
                           REWARD_FIELD_CAP - 1, len);
    memcpy(dst, value, len + 1);
    return GRPO_OK;
}

/* Binds and checks entry i's params into term. */
static grpo_status make_term(const reward_entry *e, int i, const cfg_node *where, reward_term *term) {
    if (e->kind < 0 || e->kind >= REWARD_KIND_COUNT)
        return fail_entry(where, i, "name: expected a reward (0..%d), found %d", REWARD_KIND_COUNT - 1, e->kind);
    if (!(e->weight >= -1e6 && e->weight <= 1e6))
        return fail_entry(where, i, "weight: expected a value in [-1e6, 1e6], found %g", e->weight);
    const cfg_field *schema = params_schema[e->kind];
    const cfg_node *params = e->params;
    if (params && cfg_node_kind(params) != CFG_NODE_MAP)
        return cfg_fail_at(params, GRPO_ERR_INVALID, "expected a mapping of %s's parameters", reward_names[e->kind]);
    if (!params)
        for (const cfg_field *f = schema; f->key; f++)
            if (f->required)
                return fail_entry(where, i, "params: %s needs '%s'", reward_names[e->kind], f->key);
    reward_params p = params_defaults;
    GRPO_TRY(cfg_bind(params, schema, &p));

    memset(term, 0, sizeof *term);
    term->kind = (reward_kind)e->kind;
    term->weight = e->weight;
    switch (term->kind) {
    case REWARD_ACCURACY:
        GRPO_TRY(copy_field_name(term->field_a, p.answer_field, params, "answer_field"));
        verify_math_options_default(&term->math);
        term->math.last_number_fallback = p.last_number_fallback;
        term->math.rel_tol = p.rel_tol;
        break;
    case REWARD_FORMAT: {
        grpo_status s = verify_format_create(p.pattern, &term->format);
        if (s != GRPO_OK) {
            const cfg_node *at = cfg_get(params, "pattern");
            if (at) return cfg_fail_at(at, s, "%s", grpo_error_message());
            return s;
        }
        break;
    }
    case REWARD_TAG_COUNT: term->newlines = p.newlines; break;
    case REWARD_COUNTDOWN:
        GRPO_TRY(copy_field_name(term->field_a, p.numbers_field, params, "numbers_field"));
        GRPO_TRY(copy_field_name(term->field_b, p.target_field, params, "target_field"));
        verify_countdown_options_default(&term->countdown);
        term->countdown.use_all_numbers = p.use_all_numbers;
        term->format_score = p.format_score;
        break;
    case REWARD_CODE:
        GRPO_TRY(copy_field_name(term->field_a, p.tests_field, params, "tests_field"));
        GRPO_TRY(copy_field_name(term->field_b, p.language_field, params, "language_field"));
        term->time_limit_s = p.time_limit_s;
        term->memory_mb = p.memory_mb;
        term->compare = (verify_compare)p.compare;
        term->partial_credit = p.partial_credit;
        break;
    case REWARD_LANGUAGE_CONSISTENCY: term->script = (verify_format_script)p.script; break;
    case REWARD_REPETITION_PENALTY:
        if (verify_format_repetition_check(p.ngram_size, (float)p.max_penalty) != GRPO_OK)
            return cfg_fail_at(cfg_get(params, "max_penalty"), GRPO_ERR_INVALID, "%s", grpo_error_message());
        term->ngram_size = p.ngram_size;
        term->max_penalty = p.max_penalty;
        break;
    case REWARD_OVERLONG_PENALTY:
        if (p.cache_len > p.max_len)
            return cfg_fail_at(cfg_get(params, "cache_len"), GRPO_ERR_INVALID,
                               "expected cache_len <= max_len (%lld), found %lld", (long long)p.max_len,
                               (long long)p.cache_len);
        if (verify_format_overlong_check((long)p.max_len, (long)p.cache_len) != GRPO_OK)
            return cfg_fail_at(params, GRPO_ERR_INVALID, "%s", grpo_error_message());
        term->max_len = p.max_len;
        term->cache_len = p.cache_len;
        break;
    case REWARD_LENGTH:
    case REWARD_KIND_COUNT: break;
    }
    return GRPO_OK;
}

static int is_verdict_kind(reward_kind k) { return k == REWARD_ACCURACY || k == REWARD_COUNTDOWN || k == REWARD_CODE; }

/* where[i] (may be NULL, or an array of NULLs) places entry i's errors in the file. */
static grpo_status create_set(const reward_entry *entries, int n, const cfg_node *const *where, reward_set **out) {
    *out = NULL;
    if (!entries || n < 1 || n > REWARD_MAX_ENTRIES)
        return grpo_fail(GRPO_ERR_INVALID, "rewards: expected 1 to %d entries, found %d", REWARD_MAX_ENTRIES,
                         entries ? n : 0);
    reward_set *set = calloc(1, sizeof *set);
    if (!set) return grpo_fail(GRPO_ERR_NOMEM, "%s:%d: out of memory for a reward set", __FILE__, __LINE__);
    grpo_status s = GRPO_OK;
    int has_verdict = 0, length_at = -1;
    for (int i = 0; i < n && s == GRPO_OK; i++) {
        const cfg_node *at = where ? where[i] : NULL;
        for (int j = 0; j < i && s == GRPO_OK; j++)
            if (entries[j].kind == entries[i].kind)
                s = fail_entry(at, i, "'%s' appears twice (also rewards[%d]); each reward may be listed once",
                               reward_names[entries[i].kind], j);
        if (s == GRPO_OK) s = make_term(&entries[i], i, at, &set->terms[i]);
        if (s == GRPO_OK) set->n++;   /* counts terms to free */
        if (s == GRPO_OK && is_verdict_kind(set->terms[i].kind)) has_verdict = 1;
        if (s == GRPO_OK && set->terms[i].kind == REWARD_CODE) set->has_code = 1;
        if (s == GRPO_OK && set->terms[i].kind == REWARD_LENGTH) length_at = i;
    }
    if (s == GRPO_OK && length_at >= 0 && !has_verdict)
        s = fail_entry(where ? where[length_at] : NULL, length_at,
                       "length needs a verdict reward (accuracy, countdown or code) in the same list");
    if (s != GRPO_OK) {
        reward_set_free(set);
        return s;
    }
    set->has_verdict = has_verdict;
    *out = set;
    return GRPO_OK;
}

grpo_status reward_set_create(const reward_entry *entries, int n, reward_set **out) {
    return create_set(entries, n, NULL, out);
}

grpo_status reward_set_from_config(const cfg_node *rewards, reward_set **out) {
    *out = NULL;
    if (!rewards) return grpo_fail(GRPO_ERR_INVALID, "rewards: expected a list of rewards, found nothing");
    if (cfg_node_kind(rewards) != CFG_NODE_SEQ)
        return cfg_fail_at(rewards, GRPO_ERR_INVALID, "expected a list of rewards ({name, weight, params})");
    size_t n = cfg_size(rewards);
    if (n < 1 || n > REWARD_MAX_ENTRIES)
        return cfg_fail_at(rewards, GRPO_ERR_INVALID, "expected 1 to %d rewards, found %zu", REWARD_MAX_ENTRIES, n);
    reward_entry entries[REWARD_MAX_ENTRIES];
    const cfg_node *where[REWARD_MAX_ENTRIES];
    for (size_t i = 0; i < n; i++) {
        where[i] = cfg_seq_at(rewards, i);
        entries[i] = reward_entry_defaults;
        if (cfg_node_kind(where[i]) != CFG_NODE_MAP)
            return cfg_fail_at(where[i], GRPO_ERR_INVALID, "expected a mapping {name, weight, params}");
        GRPO_TRY(cfg_bind(where[i], reward_entry_schema, &entries[i]));
    }
    return create_set(entries, (int)n, where, out);
}

void reward_set_free(reward_set *set) {
    if (!set) return;
    for (int i = 0; i < set->n; i++) verify_format_free(set->terms[i].format);
    free(set);
}

int reward_set_size(const reward_set *set) { return set->n; }
const char *reward_set_name(const reward_set *set, int i) {
    return i >= 0 && i < set->n ? reward_names[set->terms[i].kind] : NULL;
}
double reward_set_weight(const reward_set *set, int i) { return i >= 0 && i < set->n ? set->terms[i].weight : 0; }
int reward_set_has_code(const reward_set *set) { return set->has_code; }

/* ---- code extraction ------------------------------------------------------------------- */

/* The last occurrence of needle in s[0..n), or NULL. */
static const char *last_of(const char *s, size_t n, const char *needle) {
    size_t k = strlen(needle);
    const char *found = NULL;
    for (const char *p = s; (size_t)(p - s) + k <= n;) {
        const char *hit = memmem(p, n - (size_t)(p - s), needle, k);
        if (!hit) break;
        found = hit;
        p = hit + 1;
    }
    return found;
}

int reward_extract_code(const char *response, size_t len, size_t *start, size_t *span_len) {
    *start = *span_len = 0;
    if (!response) return 0;
    /* The region: the last complete <answer>...</answer>, else everything. */
    const char *region = response;
    size_t region_len = len;
    const char *close = last_of(response, len, "</answer>");
    if (close) {
        const char *open = last_of(response, (size_t)(close - response), "<answer>");
        if (open) {
            region = open + strlen("<answer>");
            region_len = (size_t)(close - region);
        }
    }
    /* Walk fence pairs left to right; the last complete one wins. */
    int found = 0;
    size_t pos = 0;
    while (pos < region_len) {
        const char *fence = memmem(region + pos, region_len - pos, "```", 3);
        if (!fence) break;
        size_t body = (size_t)(fence - region) + 3;
        const char *eol = memchr(region + body, '\n', region_len - body);
        if (!eol) break;
        body = (size_t)(eol - region) + 1;    /* skip the info string ("python") */
        const char *end = memmem(region + body, region_len - body, "```", 3);
        if (!end) break;
        *start = (size_t)(region - response) + body;
        *span_len = (size_t)(end - region) - body;
        found = 1;
        pos = (size_t)(end - region) + 3;
    }
    return found;
}
