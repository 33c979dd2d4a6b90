/* Scoring with a reward set: every component of one response against its problem line,
 * and batches whose programs run as sandboxed jobs of a verify_pool. Formulas and the
 * rewards' params are in reward.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verifiers/reward_impl.h"

enum { MAX_COUNTDOWN_NUMBERS = 64 };

/* What scoring one sample needs and leaves behind besides its reward_result. */
typedef struct {
    const reward_set *set;
    const json_t *problem;
    const char *response;
    size_t response_len;
    int tokens;
    reward_result *out;
    const char *verdict[REWARD_MAX_ENTRIES];   /* verdict rewards: their word; NULL for the others */
    int correct[REWARD_MAX_ENTRIES];
    int code_at;                               /* entry index of the code reward, -1 if none */
    long code_index;                           /* its pool job, -1 when none was queued */
    grpo_status code_status;                   /* code preparation or run failure (main thread) */
    char code_error[REWARD_ERROR_CAP];
} sample_state;

static const char *type_name(const json_t *v) {
    if (!v) return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Records the sample's first error (message also left as this thread's error) and returns code. */
static grpo_status sample_fail(sample_state *st, grpo_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static grpo_status sample_fail(sample_state *st, grpo_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    grpo_failv(code, fmt, ap);
    va_end(ap);
    if (st->out->status == GRPO_OK) {
        st->out->status = code;
        snprintf(st->out->error, sizeof st->out->error, "%s", grpo_error_message());
    }
    return code;
}

static grpo_status missing(sample_state *st, const char *reward, const char *field, const char *expected,
                           const json_t *found) {
    return sample_fail(st, GRPO_ERR_PARSE, "problem line: reward '%s' needs field '%s' (%s), found %s", reward, field,
                       expected, type_name(found));
}

static void set_component(sample_state *st, int j, double score) {
    reward_component *c = &st->out->components[j];
    c->score = score;
    c->weighted = c->weight * score;
}

static void set_extracted(sample_state *st, const char *text) {
    if (!st->out->extracted[0]) snprintf(st->out->extracted, sizeof st->out->extracted, "%s", text);
}

/* The gold answer as text: a string, or a number written the shortest way that reads back
 * exactly (0.1, not 0.10000000000000001). */
static int gold_text(const json_t *v, char *buf, size_t cap, const char **out) {
    if (json_is_string(v)) { *out = json_string_value(v); return 1; }
    if (json_is_integer(v)) { snprintf(buf, cap, "%lld", (long long)json_integer_value(v)); *out = buf; return 1; }
    if (json_is_real(v) && isfinite(json_real_value(v))) {
        double x = json_real_value(v);
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(buf, cap, "%.*g", digits, x);
            if (strtod(buf, NULL) == x) break;
        }
        *out = buf;
        return 1;
    }
    return 0;
}

/* An integer, or a real with an integral value. */
static int json_whole(const json_t *v, long long *out) {
    if (json_is_integer(v)) { *out = (long long)json_integer_value(v); return 1; }
    if (json_is_real(v)) {
        double x = json_real_value(v);
        if (x == floor(x) && fabs(x) < 9e15) { *out = (long long)x; return 1; }
    }
    return 0;
}

/* ---- one component at a time --------------------------------------------------------- */

static grpo_status score_accuracy(sample_state *st, int j, const reward_term *t) {
    const json_t *v = json_object_get(st->problem, t->field_a);
    char buf[64];
    const char *gold;
    if (!gold_text(v, buf, sizeof buf, &gold)) return missing(st, "accuracy", t->field_a, "a string", v);
    verify_math_result r;
    if (verify_math(gold, st->response, &t->math, &r) != GRPO_OK)
        return sample_fail(st, GRPO_ERR_PARSE, "problem line: reward 'accuracy': field '%s': %s", t->field_a,
                           grpo_error_message());
    set_component(st, j, r.correct ? 1.0 : 0.0);
    st->correct[j] = r.correct;
    st->verdict[j] = r.correct ? "correct" : r.status == VERIFY_MATH_NO_ANSWER ? "no_answer" : "wrong";
    set_extracted(st, r.extracted);
    return GRPO_OK;
}

static grpo_status score_countdown(sample_state *st, int j, const reward_term *t) {
    const json_t *nums = json_object_get(st->problem, t->field_a);
    const json_t *target_v = json_object_get(st->problem, t->field_b);
    long long numbers[MAX_COUNTDOWN_NUMBERS], target;
    size_t count = json_array_size(nums);
    if (!json_is_array(nums) || count < 1 || count > MAX_COUNTDOWN_NUMBERS)
        return missing(st, "countdown", t->field_a, "an array of 1 to 64 integers", nums);
    for (size_t k = 0; k < count; k++)
        if (!json_whole(json_array_get(nums, k), &numbers[k]))
            return sample_fail(st, GRPO_ERR_PARSE, "problem line: reward 'countdown' needs field '%s' (an array of "
                               "integers), found %s at index %zu", t->field_a, type_name(json_array_get(nums, k)), k);
    if (!json_whole(target_v, &target)) return missing(st, "countdown", t->field_b, "an integer", target_v);
    verify_countdown_result r;
    if (verify_countdown(numbers, count, target, st->response, &t->countdown, &r) != GRPO_OK)
        return sample_fail(st, GRPO_ERR_INVALID, "reward 'countdown': %s", grpo_error_message());
    double score = r.verdict == VERIFY_COUNTDOWN_CORRECT ? 1.0 : r.verdict == VERIFY_COUNTDOWN_UNPARSEABLE ? 0.0
                                                                                                        : t->format_score;
    set_component(st, j, score);
    st->correct[j] = r.verdict == VERIFY_COUNTDOWN_CORRECT;
    st->verdict[j] = verify_countdown_verdict_name(r.verdict);
    set_extracted(st, r.expression);
    return GRPO_OK;
}

static grpo_status need_tokens(sample_state *st, const char *reward) {
    if (st->tokens >= 0) return GRPO_OK;
    return sample_fail(st, GRPO_ERR_INVALID, "reward '%s' needs the response's token count, found none (-1)", reward);
}

/* The reasoning of a response, which R1 sec. 2.3.2 scores for language consistency (the
 * CoT): the text inside the first <think>...</think>; from the start to the first </think>
 * when the prompt opened the think block; to the end when </think> never comes; the whole
 * response when it has neither tag. */
static void reasoning_span(const char *text, size_t len, size_t *start, size_t *span) {
    const char *open = memmem(text, len, "<think>", 7);
    size_t from = open ? (size_t)(open - text) + 7 : 0;
    const char *close = memmem(text + from, len - from, "</think>", 8);
    *start = from;
    *span = close ? (size_t)(close - (text + from)) : len - from;
}

/* Every component except code (run separately) and length (needs the group); thread-safe. */
static void score_noncode(sample_state *st) {
    const reward_set *set = st->set;
    const char *text = st->response;
    size_t len = st->response_len;
    for (int j = 0; j < set->n && st->out->status == GRPO_OK; j++) {
        const reward_term *t = &set->terms[j];
        float f = 0;
        switch (t->kind) {
        case REWARD_ACCURACY: (void)score_accuracy(st, j, t); break;
        case REWARD_COUNTDOWN: (void)score_countdown(st, j, t); break;
        case REWARD_FORMAT:
            if (verify_format_match(t->format, text, len, &f) != GRPO_OK)
                (void)sample_fail(st, GRPO_ERR_BACKEND, "reward 'format': %s", grpo_error_message());
            else set_component(st, j, f);
            break;
        case REWARD_TAG_COUNT: set_component(st, j, verify_format_tag_count(text, len, t->newlines)); break;
        case REWARD_LANGUAGE_CONSISTENCY: {
            size_t from, span;
            reasoning_span(text, len, &from, &span);
            set_component(st, j, verify_format_language_consistency(text + from, span, t->script));
            break;
        }
        case REWARD_REPETITION_PENALTY:
            set_component(st, j, verify_format_repetition_penalty(text, len, t->ngram_size, (float)t->max_penalty));
            break;
        case REWARD_OVERLONG_PENALTY:
            if (need_tokens(st, "overlong_penalty") == GRPO_OK)
                set_component(st, j, verify_format_overlong_penalty(st->tokens, (long)t->max_len, (long)t->cache_len));
            break;
        case REWARD_LENGTH: (void)need_tokens(st, "length"); break;   /* scored per group later */
        case REWARD_CODE:
        case REWARD_KIND_COUNT: break;
        }
    }
}

static void noncode_job(void *arg) { score_noncode(arg); }

/* ---- code ---------------------------------------------------------------------------- */

static grpo_status code_fail(sample_state *st, grpo_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static grpo_status code_fail(sample_state *st, grpo_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    grpo_failv(code, fmt, ap);
    va_end(ap);
    st->code_status = code;
    snprintf(st->code_error, sizeof st->code_error, "%s", grpo_error_message());
    return code;
}

static void code_verdict(sample_state *st, const verify_code_result *r) {
    const reward_term *t = &st->set->terms[st->code_at];
    double score = t->partial_credit ? (r->total > 0 ? (double)r->passed / r->total : 0.0)
                                     : (r->status == VERIFY_CODE_OK ? 1.0 : 0.0);
    set_component(st, st->code_at, score);
    st->correct[st->code_at] = r->status == VERIFY_CODE_OK;
    st->verdict[st->code_at] = verify_code_status_name(r->status);
}

/* Builds the request from the line's tests and the response's program. Returns 0 with
 * *has_code 0 when the response holds no program (a verdict, not an error). The caller
 * frees req->tests. */
static grpo_status code_request(sample_state *st, verify_code_request *req, int *has_code) {
    const reward_term *t = &st->set->terms[st->code_at];
    verify_code_request_init(req);
    *has_code = 0;
    const json_t *lang = json_object_get(st->problem, t->field_b);
    const json_t *tests = json_object_get(st->problem, t->field_a);
    if (!json_is_string(lang))
        return code_fail(st, GRPO_ERR_PARSE, "problem line: reward 'code' needs field '%s' (a string), found %s",
                         t->field_b, type_name(lang));
    size_t n = json_array_size(tests);
    if (!json_is_array(tests) || n < 1 || n > 100000)
        return code_fail(st, GRPO_ERR_PARSE, "problem line: reward 'code' needs field '%s' (an array of 1 to 100000 "
                         "tests), found %s%s", t->field_a, type_name(tests), json_is_array(tests) ? " of that size" : "");
    req->time_limit_s = t->time_limit_s;
    req->memory_mb = t->memory_mb;
    const json_t *tl = json_object_get(st->problem, "time_limit_s"), *mem = json_object_get(st->problem, "memory_mb");
    if (tl && !json_is_null(tl)) {
        if (!json_is_number(tl) || !(json_number_value(tl) > 0 && json_number_value(tl) <= 600))
            return code_fail(st, GRPO_ERR_PARSE, "problem line: 'time_limit_s': expected a number in (0, 600], found %s",
                             type_name(tl));
        req->time_limit_s = json_number_value(tl);
    }
    if (mem && !json_is_null(mem)) {
        if (!json_is_number(mem) || !(json_number_value(mem) >= 16 && json_number_value(mem) <= (1 << 20)))
            return code_fail(st, GRPO_ERR_PARSE, "problem line: 'memory_mb': expected a number in [16, 1048576], found %s",
                             type_name(mem));
        req->memory_mb = (long)json_number_value(mem);
    }
    size_t start, span;
    if (!reward_extract_code(st->response, st->response_len, &start, &span)) return GRPO_OK;
    verify_code_test *array = calloc(n, sizeof *array);
    if (!array) return code_fail(st, GRPO_ERR_NOMEM, "%s:%d: out of memory for %zu tests", __FILE__, __LINE__, n);
    for (size_t k = 0; k < n; k++) {
        const json_t *test = json_array_get(tests, k);
        const json_t *in = json_object_get(test, "input"), *expect = json_object_get(test, "output");
        if (!json_is_object(test) || (in && !json_is_string(in) && !json_is_null(in)) || !json_is_string(expect)) {
            free(array);
            return code_fail(st, GRPO_ERR_PARSE, "problem line: '%s'[%zu]: expected {\"input\": string, \"output\": "
                             "string}, found %s", t->field_a, k, type_name(test));
        }
        if (json_is_string(in)) array[k].input = json_string_value(in), array[k].input_len = json_string_length(in);
        array[k].output = json_string_value(expect);
        array[k].output_len = json_string_length(expect);
    }
    req->language = json_string_value(lang);
    req->code = st->response + start;
    req->code_len = span;
    req->tests = array;
    req->n_tests = (int)n;
    req->compare = t->compare;
    *has_code = 1;
    return GRPO_OK;
}

/* Runs the program now (pool NULL) or queues it; a response without a program scores 0. */
static void start_code(sample_state *st, verify_pool *pool) {
    verify_code_request req;
    int has_code;
    if (code_request(st, &req, &has_code) != GRPO_OK) return;
    if (!has_code) {
        set_component(st, st->code_at, 0);
        st->verdict[st->code_at] = "no_code";
        return;
    }
    if (pool) {
        if (verify_pool_submit_code(pool, &req, &st->code_index) != GRPO_OK) {
            st->code_index = -1;
            (void)code_fail(st, GRPO_ERR_BACKEND, "reward 'code': %s", grpo_error_message());
        }
    } else {
        verify_code_result r;
        if (verify_code_run(&req, &r) == GRPO_OK) code_verdict(st, &r);
        else (void)code_fail(st, GRPO_ERR_BACKEND, "reward 'code': %s", grpo_error_message());
    }
    free((void *)req.tests);
}

/* ---- whole samples ------------------------------------------------------------------- */

static void sample_init(sample_state *st, const reward_set *set, const json_t *problem, const char *response,
                        int tokens, reward_result *out) {
    memset(st, 0, sizeof *st);
    memset(out, 0, sizeof *out);
    st->set = set;
    st->problem = problem;
    st->response = response ? response : "";
    st->response_len = strlen(st->response);
    st->tokens = tokens;
    st->out = out;
    st->code_at = -1;
    st->code_index = -1;
    out->n_components = set->n;
    out->has_verdict = set->has_verdict;
    for (int j = 0; j < set->n; j++) {
        out->components[j].name = reward_names[set->terms[j].kind];
        out->components[j].weight = set->terms[j].weight;
        if (set->terms[j].kind == REWARD_CODE) st->code_at = j;
    }
    if (!json_is_object(problem))
        (void)sample_fail(st, GRPO_ERR_INVALID, "problem line: expected a JSON object, found %s", type_name(problem));
    else if (!response)
        (void)sample_fail(st, GRPO_ERR_INVALID, "no response (NULL)");
}

/* After all components but length: the sample's first error, its verdict. */
static void sample_verdict(sample_state *st) {
    reward_result *out = st->out;
    if (out->status == GRPO_OK && st->code_status != GRPO_OK) {
        out->status = st->code_status;
        snprintf(out->error, sizeof out->error, "%s", st->code_error);
    }
    out->correct = out->has_verdict && out->status == GRPO_OK;
    for (int j = 0; j < st->set->n; j++) {
        reward_kind k = st->set->terms[j].kind;
        if (k != REWARD_ACCURACY && k != REWARD_COUNTDOWN && k != REWARD_CODE) continue;
        if (!st->correct[j]) out->correct = 0;
        if (!out->verdict[0] && st->verdict[j]) snprintf(out->verdict, sizeof out->verdict, "%s", st->verdict[j]);
    }
    if (out->status != GRPO_OK) out->verdict[0] = '\0';
}

/* Kimi k1.5 length reward (Kimi report sec. 2.3.3) over samples [first, first + count). */
static void score_length_group(sample_state *st, int count, int length_at) {
    long lo = -1, hi = -1;
    for (int i = 0; i < count; i++) {
        if (st[i].out->status != GRPO_OK) continue;
        if (lo < 0 || st[i].tokens < lo) lo = st[i].tokens;
        if (hi < 0 || st[i].tokens > hi) hi = st[i].tokens;
    }
    for (int i = 0; i < count; i++) {
        if (st[i].out->status != GRPO_OK) continue;
        double lambda = hi > lo ? 0.5 - (double)(st[i].tokens - lo) / (double)(hi - lo) : 0.0;
        set_component(&st[i], length_at, st[i].out->correct ? lambda : fmin(0.0, lambda));
    }
}

static void sample_total(sample_state *st) {
    reward_result *out = st->out;
    out->total = 0;
    if (out->status != GRPO_OK) return;
    for (int j = 0; j < out->n_components; j++) out->total += out->components[j].weighted;
}

static int length_index(const reward_set *set) {
    for (int j = 0; j < set->n; j++)
        if (set->terms[j].kind == REWARD_LENGTH) return j;
    return -1;
}

grpo_status reward_set_score(const reward_set *set, const json_t *problem, const char *response, int response_tokens,
                             reward_result *out) {
    if (!set || !out) return grpo_fail(GRPO_ERR_INVALID, "reward_set_score: NULL set or result");
    sample_state st;
    sample_init(&st, set, problem, response, response_tokens, out);
    if (out->status == GRPO_OK && st.code_at >= 0) start_code(&st, NULL);
    if (out->status == GRPO_OK) score_noncode(&st);
    sample_verdict(&st);
    int length_at = length_index(set);
    if (length_at >= 0) score_length_group(&st, 1, length_at);
    sample_total(&st);
    if (out->status != GRPO_OK) return grpo_fail(out->status, "%s", out->error);
    return GRPO_OK;
}

grpo_status reward_set_score_batch(const reward_set *set, verify_pool *pool, const json_t *const *problems,
                                   const char *const *responses, const int *response_tokens, int n, int group_size,
                                   reward_result *out) {
    if (!set || n < 0 || (n > 0 && (!problems || !responses || !out)))
        return grpo_fail(GRPO_ERR_INVALID, "reward_set_score_batch: NULL set, problems, responses or results (n = %d)", n);
    if (group_size < 1 || n % group_size != 0)
        return grpo_fail(GRPO_ERR_INVALID, "reward_set_score_batch: group_size %d must be >= 1 and divide n = %d",
                         group_size, n);
    if (n == 0) return GRPO_OK;
    sample_state *st = calloc((size_t)n, sizeof *st);
    if (!st) return grpo_fail(GRPO_ERR_NOMEM, "%s:%d: out of memory scoring %d samples", __FILE__, __LINE__, n);
    if (pool) verify_pool_clear(pool);
    for (int i = 0; i < n; i++)
        sample_init(&st[i], set, problems[i], responses[i], response_tokens ? response_tokens[i] : -1, &out[i]);
    /* Programs first, so the slow jobs start early; then the rest of every sample. */
    if (set->has_code)
        for (int i = 0; i < n; i++)
            if (out[i].status == GRPO_OK) start_code(&st[i], pool);
    for (int i = 0; i < n; i++) {
        if (out[i].status != GRPO_OK) continue;
        if (!pool || verify_pool_submit(pool, noncode_job, &st[i], NULL) != GRPO_OK) score_noncode(&st[i]);
    }
    if (pool) {
        verify_pool_wait(pool);
        for (int i = 0; i < n; i++) {
            if (st[i].code_index < 0) continue;
            verify_code_result r;
            if (verify_pool_code_result(pool, st[i].code_index, &r) == GRPO_OK) code_verdict(&st[i], &r);
            else (void)code_fail(&st[i], GRPO_ERR_BACKEND, "reward 'code': %s", grpo_error_message());
        }
        verify_pool_clear(pool);
    }
    for (int i = 0; i < n; i++) sample_verdict(&st[i]);
    int length_at = length_index(set);
    if (length_at >= 0)
        for (int g = 0; g < n; g += group_size) score_length_group(&st[g], group_size, length_at);
    for (int i = 0; i < n; i++) sample_total(&st[i]);
    free(st);
    return GRPO_OK;
}
