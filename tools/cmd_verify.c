/* `grpo verify math|code|countdown|format`: JSONL requests on stdin, one JSONL answer per
 * request on stdout, in input order (DESIGN.md "The command line"). A bad line gets an
 * {"error": "stdin:LINE: ..."} answer and the rest go on. Code runs in a worker pool. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/jsonl.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "verifiers/code.h"
#include "verifiers/countdown.h"
#include "verifiers/format.h"
#include "verifiers/math.h"
#include "verifiers/pool.h"

static const char *const overview =
    "usage: grpo verify math|code|countdown|format [OPTIONS] < requests.jsonl > answers.jsonl\n\n"
    "Reads one JSON object per line on stdin and writes one answer object per non-blank line\n"
    "on stdout, in input order. A line that cannot be verified (not JSON, a missing field, a\n"
    "value of the wrong type, a gold answer that does not parse) is answered with\n"
    "{\"error\": \"stdin:LINE: ...\"} and the following lines go on.\n\n"
    "Exit status: 0 when every line was answered with a verdict, 1 when one or more lines\n"
    "were answered with an error object (all lines are still answered), 2 for bad usage.\n\n"
    "Common options:\n"
    "  --flush      flush stdout after every answer (for a caller that waits per line)\n\n"
    "`grpo verify VERB --help` describes one verb.\n";

static const char *const math_help =
    "grpo verify math [--last-number-fallback] [--rel-tol X] [--flush]\n\n"
    "in:  {\"gold\": \"\\\\frac{1}{2}\", \"pred\": \"<think>...</think><answer>\\\\boxed{0.5}</answer>\"}\n"
    "     gold: a bare answer, a solution with \\boxed{}, or \"... #### 42\" (an integer is fine);\n"
    "     pred (or \"response\"): the whole model response.\n"
    "out: {\"correct\": true, \"extracted\": \"0.5\", \"status\": \"ok\"|\"no_answer\", \"rule\": \"boxed\"|...}\n"
    "     A gold that does not parse is an error line, never a verdict. Policy: verifiers/math.h.\n"
    "  --last-number-fallback   take the response's last number when nothing else matches\n"
    "  --rel-tol X              relative tolerance for inexact values (default 1e-9)\n";

static const char *const code_help =
    "grpo verify code [--workers N] [--flush]\n\n"
    "in:  {\"language\": \"python\"|\"c\", \"code\": \"...\", \"tests\": [{\"input\": \"..\", \"output\": \"..\"}],\n"
    "      \"time_limit_s\": 2, \"memory_mb\": 256}   (optional: \"compare\": \"whitespace\"|\"exact\"|\"float\",\n"
    "      \"wall_limit_s\", \"output_limit_bytes\"; other keys are ignored)\n"
    "out: {\"status\": \"ok\"|\"wrong_answer\"|\"time_limit\"|\"memory_limit\"|\"runtime_error\"|\n"
    "      \"compile_error\"|\"output_limit\"|\"denied\", \"passed\": k, \"total\": n}\n"
    "     Programs run in the sandbox (verifiers/sandbox.h), several at once; answers keep input order.\n"
    "  --workers N   programs verified at once (default: the number of online CPUs)\n";

static const char *const countdown_help =
    "grpo verify countdown [--use-all] [--flush]\n\n"
    "in:  {\"numbers\": [25, 3, 7, 1], \"target\": 82, \"response\": \"...<answer>25 * 3 + 7</answer>\"}\n"
    "out: {\"correct\": bool, \"verdict\": \"correct\"|\"wrong_value\"|\"bad_numbers\"|\"unparseable\",\n"
    "      \"expression\": \"...\"}\n"
    "  --use-all   every number must be used exactly once (default: at most once)\n";

static const char *const format_help =
    "grpo verify format [--pattern P] [--newlines] [--script latin|cjk] [--ngram-size N]\n"
    "                   [--max-penalty X] [--flush]\n\n"
    "in:  {\"response\": \"<think>...</think><answer>...</answer>\"}  (optional \"pattern\": a PCRE2\n"
    "     pattern for this line instead of --pattern)\n"
    "out: {\"format\": 1|0, \"tag_count\": 0..1, \"language_consistency\": 0..1,\n"
    "      \"repetition_penalty\": max_penalty..0}   (formulas: verifiers/format.h)\n"
    "  --pattern P        the template (default the R1 one: ^<think>.*?</think>\\s*<answer>.*?</answer>$)\n"
    "  --newlines         tag_count counts open-r1's \"<think>\\n\"... instead of bare tags\n"
    "  --script S         language consistency target: latin (default) or cjk\n"
    "  --ngram-size N     repetition penalty n-gram size (default 3)\n"
    "  --max-penalty X    repetition penalty of a fully repeated response (default -1)\n";

typedef enum { VERB_MATH, VERB_CODE, VERB_COUNTDOWN, VERB_FORMAT } verb;

typedef struct {
    verb verb;
    int flush;
    verify_math_options math;
    verify_countdown_options countdown;
    int workers;
    const char *pattern;
    int newlines;
    verify_format_script script;
    int ngram_size;
    double max_penalty;
} verify_args;

/* ---- writing answers ----------------------------------------------------------------- */

typedef struct {
    jsonl_writer *out;
    int flush;
    long errors;       /* lines answered with an error object */
    int write_failed;
} answer_sink;

/* Writes obj (stealing the reference); an error object counts. */
static void emit(answer_sink *sink, json_t *obj) {
    if (!obj) obj = json_pack("{s:s}", "error", "out of memory");
    if (json_object_get(obj, "error")) sink->errors++;
    if (!sink->write_failed && obj) {
        if (jsonl_write_object(sink->out, obj) != GRPO_OK ||
            (sink->flush && jsonl_writer_flush(sink->out) != GRPO_OK)) {
            fprintf(stderr, "grpo verify: %s\n", grpo_error_message());
            sink->write_failed = 1;
        }
    }
    json_decref(obj);
}

static json_t *error_answer(const char *message) { return json_pack("{s:s}", "error", message); }

/* ---- math, countdown, format: one line at a time -------------------------------------- */

static grpo_status answer_math(const jsonl_reader *r, const json_t *line, const verify_args *a, json_t **answer) {
    const json_t *gv = json_object_get(line, "gold");
    char buf[32];
    const char *gold, *pred;
    if (json_is_integer(gv)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(gv));
        gold = buf;
    } else {
        GRPO_TRY(jsonl_get_string(r, line, "gold", &gold));
    }
    if (json_object_get(line, "pred") || !json_object_get(line, "response")) GRPO_TRY(jsonl_get_string(r, line, "pred", &pred));
    else GRPO_TRY(jsonl_get_string(r, line, "response", &pred));
    verify_math_result res;
    if (verify_math(gold, pred, &a->math, &res) != GRPO_OK)
        return jsonl_fail(r, GRPO_ERR_PARSE, "%s", grpo_error_message());
    *answer = json_pack("{s:b, s:s, s:s, s:s}", "correct", res.correct, "extracted", res.extracted, "status",
                        verify_math_status_name(res.status), "rule", verify_math_rule_name(res.rule));
    return GRPO_OK;
}

static grpo_status answer_countdown(const jsonl_reader *r, const json_t *line, const verify_args *a, json_t **answer) {
    int64_t *numbers = NULL, target;
    size_t count = 0;
    const char *response;
    GRPO_TRY(jsonl_get_int_array(r, line, "numbers", &numbers, &count));
    grpo_status s = jsonl_get_int(r, line, "target", &target);
    if (s == GRPO_OK) s = jsonl_get_string(r, line, "response", &response);
    if (s == GRPO_OK && (count == 0 || count > 64)) s = jsonl_fail(r, GRPO_ERR_PARSE, "expected 1 to 64 numbers, found %zu", count);
    long long nums[64];
    for (size_t i = 0; s == GRPO_OK && i < count; i++) nums[i] = numbers[i];
    free(numbers);
    if (s != GRPO_OK) return s;
    verify_countdown_result res;
    if (verify_countdown(nums, count, target, response, &a->countdown, &res) != GRPO_OK)
        return jsonl_fail(r, GRPO_ERR_INVALID, "%s", grpo_error_message());
    *answer = json_pack("{s:b, s:s, s:s}", "correct", res.verdict == VERIFY_COUNTDOWN_CORRECT, "verdict",
                        verify_countdown_verdict_name(res.verdict), "expression", res.expression);
    return GRPO_OK;
}

/* The compiled default pattern plus a one-entry cache for per-line patterns. */
typedef struct {
    verify_format *fallback;
    verify_format *cached;
    char *cached_pattern;
} format_state;

static grpo_status answer_format(const jsonl_reader *r, const json_t *line, const verify_args *a, format_state *fs,
                                 json_t **answer) {
    const char *response, *pattern;
    GRPO_TRY(jsonl_get_string(r, line, "response", &response));
    GRPO_TRY(jsonl_get_string_opt(r, line, "pattern", NULL, &pattern));
    size_t len = json_string_length(json_object_get(line, "response"));
    const verify_format *f = fs->fallback;
    if (pattern) {
        if (!fs->cached_pattern || strcmp(fs->cached_pattern, pattern) != 0) {
            verify_format_free(fs->cached);
            free(fs->cached_pattern);
            fs->cached = NULL;
            fs->cached_pattern = NULL;
            if (verify_format_create(pattern, &fs->cached) != GRPO_OK)
                return jsonl_fail(r, GRPO_ERR_PARSE, "'pattern': %s", grpo_error_message());
            fs->cached_pattern = strdup(pattern);
        }
        f = fs->cached;
    }
    float match;
    if (verify_format_match(f, response, len, &match) != GRPO_OK)
        return jsonl_fail(r, GRPO_ERR_BACKEND, "%s", grpo_error_message());
    *answer = json_pack("{s:i, s:f, s:f, s:f}", "format", (int)match, "tag_count",
                        (double)verify_format_tag_count(response, len, a->newlines), "language_consistency",
                        (double)verify_format_language_consistency(response, len, a->script), "repetition_penalty",
                        (double)verify_format_repetition_penalty(response, len, a->ngram_size, (float)a->max_penalty));
    return GRPO_OK;
}

static int run_serial(jsonl_reader *r, answer_sink *sink, const verify_args *a) {
    format_state fs = {0};
    if (a->verb == VERB_FORMAT && verify_format_create(a->pattern, &fs.fallback) != GRPO_OK) {
        fprintf(stderr, "grpo verify format: --pattern: %s\n", grpo_error_message());
        return 2;
    }
    for (;;) {
        json_t *line;
        grpo_status s = jsonl_next(r, &line);
        if (s == GRPO_OK && !line) break;
        json_t *answer = NULL;
        if (s == GRPO_OK) {
            switch (a->verb) {
            case VERB_MATH: s = answer_math(r, line, a, &answer); break;
            case VERB_COUNTDOWN: s = answer_countdown(r, line, a, &answer); break;
            case VERB_FORMAT: s = answer_format(r, line, a, &fs, &answer); break;
            case VERB_CODE: break;
            }
        }
        emit(sink, s == GRPO_OK ? answer : error_answer(grpo_error_message()));
        if (sink->write_failed) break;
    }
    verify_format_free(fs.fallback);
    verify_format_free(fs.cached);
    free(fs.cached_pattern);
    return 0;
}

/* ---- code: many programs at once, answers in input order ------------------------------ */

typedef struct code_queue code_queue;

typedef struct {
    code_queue *queue;
    json_t *line;      /* the request (owned) while its job runs */
    json_t *answer;    /* set when done */
    long line_no;
    int done;
} code_slot;

struct code_queue {
    pthread_mutex_t lock;
    pthread_cond_t done;
    code_slot *slots;  /* ring of capacity slots */
    int capacity, head, count;
};

static void code_job(void *arg) {
    code_slot *slot = arg;
    json_t *answer = verify_code_json(slot->line);
    pthread_mutex_lock(&slot->queue->lock);
    slot->answer = answer;
    slot->done = 1;
    pthread_cond_broadcast(&slot->queue->done);
    pthread_mutex_unlock(&slot->queue->lock);
}

/* Waits for the oldest slot and writes its answer (errors get "stdin:LINE: "). */
static void emit_oldest(code_queue *q, answer_sink *sink, const char *name) {
    code_slot *slot = &q->slots[q->head];
    pthread_mutex_lock(&q->lock);
    while (!slot->done) pthread_cond_wait(&q->done, &q->lock);
    pthread_mutex_unlock(&q->lock);
    json_t *answer = slot->answer;
    const char *err = json_string_value(json_object_get(answer, "error"));
    if (err && slot->line) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s:%ld: %s", name, slot->line_no, err);
        json_decref(answer);
        answer = error_answer(msg);
    }
    emit(sink, answer);
    json_decref(slot->line);
    memset(slot, 0, sizeof *slot);
    q->head = (q->head + 1) % q->capacity;
    q->count--;
}

static int run_code(jsonl_reader *r, answer_sink *sink, const verify_args *a) {
    /* The pool keeps every result until it is cleared; clear it every so many jobs. */
    enum { CLEAR_EVERY = 4096 };
    code_queue q = {.capacity = 4 * a->workers + 4};
    q.slots = calloc((size_t)q.capacity, sizeof *q.slots);
    verify_pool *pool = NULL;
    if (!q.slots || verify_pool_create(a->workers, q.capacity, &pool) != GRPO_OK) {
        fprintf(stderr, "grpo verify code: %s\n", q.slots ? grpo_error_message() : "out of memory");
        free(q.slots);
        return 1;
    }
    pthread_mutex_init(&q.lock, NULL);
    pthread_cond_init(&q.done, NULL);
    long since_clear = 0;
    for (;;) {
        json_t *line;
        grpo_status s = jsonl_next(r, &line);
        if (s == GRPO_OK && !line) break;
        if (q.count == q.capacity) emit_oldest(&q, sink, jsonl_name(r));
        if (since_clear >= CLEAR_EVERY) {
            while (q.count) emit_oldest(&q, sink, jsonl_name(r));
            verify_pool_clear(pool);
            since_clear = 0;
        }
        code_slot *slot = &q.slots[(q.head + q.count) % q.capacity];
        q.count++;
        slot->queue = &q;
        if (s != GRPO_OK) {
            slot->answer = error_answer(grpo_error_message());
            slot->done = 1;
        } else {
            slot->line = json_incref(line);
            slot->line_no = jsonl_line(r);
            if (verify_pool_submit(pool, code_job, slot, NULL) != GRPO_OK) {
                slot->answer = error_answer(grpo_error_message());
                slot->done = 1;
            } else {
                since_clear++;
            }
        }
        if (sink->write_failed) break;
    }
    while (q.count) emit_oldest(&q, sink, jsonl_name(r));
    verify_pool_free(pool);
    pthread_mutex_destroy(&q.lock);
    pthread_cond_destroy(&q.done);
    free(q.slots);
    return 0;
}

/* ---- the command --------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, verify_args *a) {
    const char *name = argv[1], *value;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "verify %s", name);
    for (int i = 2; i < argc; i++) {
        int m;
        int64_t v;
#define FLAG(flag) ((m = arg_match(argc, argv, &i, flag, &value)) != 0)
        if (!strcmp(argv[i], "--flush")) a->flush = 1;
        else if (a->verb == VERB_MATH && !strcmp(argv[i], "--last-number-fallback")) a->math.last_number_fallback = 1;
        else if (a->verb == VERB_MATH && FLAG("--rel-tol")) {
            if (m < 0 || !arg_double(cmd, "--rel-tol", value, 0, 1, &a->math.rel_tol)) return 0;
        } else if (a->verb == VERB_CODE && FLAG("--workers")) {
            if (m < 0 || !arg_int(cmd, "--workers", value, 1, 1024, &v)) return 0;
            a->workers = (int)v;
        } else if (a->verb == VERB_COUNTDOWN && !strcmp(argv[i], "--use-all")) a->countdown.use_all_numbers = 1;
        else if (a->verb == VERB_FORMAT && FLAG("--pattern")) {
            if (m < 0) return 0;
            a->pattern = value;
        } else if (a->verb == VERB_FORMAT && !strcmp(argv[i], "--newlines")) a->newlines = 1;
        else if (a->verb == VERB_FORMAT && FLAG("--script")) {
            if (m < 0) return 0;
            if (!strcmp(value, "latin")) a->script = VERIFY_FORMAT_SCRIPT_LATIN;
            else if (!strcmp(value, "cjk")) a->script = VERIFY_FORMAT_SCRIPT_CJK;
            else { fprintf(stderr, "grpo %s: --script: expected latin or cjk, found '%s'\n", cmd, value); return 0; }
        } else if (a->verb == VERB_FORMAT && FLAG("--ngram-size")) {
            if (m < 0 || !arg_int(cmd, "--ngram-size", value, 1, 64, &v)) return 0;
            a->ngram_size = (int)v;
        } else if (a->verb == VERB_FORMAT && FLAG("--max-penalty")) {
            if (m < 0 || !arg_double(cmd, "--max-penalty", value, -1e6, 0, &a->max_penalty)) return 0;
        } else {
            fprintf(stderr, "grpo %s: unknown option '%s' (see grpo verify %s --help)\n", cmd, argv[i], name);
            return 0;
        }
#undef FLAG
    }
    return 1;
}

int cmd_verify(int argc, char **argv) {
    static const char *const verbs[] = {"math", "code", "countdown", "format"};
    const char *const helps[] = {math_help, code_help, countdown_help, format_help};
    int which = -1;
    for (int k = 0; argc >= 2 && k < 4; k++)
        if (!strcmp(argv[1], verbs[k])) which = k;
    if (which < 0) {
        int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        if (!help && argc >= 2) fprintf(stderr, "grpo verify: unknown verb '%s'\n\n", argv[1]);
        fputs(overview, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    if (cmd_wants_help(argc, argv)) {
        fputs(helps[which], stdout);
        return 0;
    }
    verify_args a = {.verb = (verb)which, .ngram_size = 3, .max_penalty = -1.0, .script = VERIFY_FORMAT_SCRIPT_LATIN};
    verify_math_options_default(&a.math);
    verify_countdown_options_default(&a.countdown);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    a.workers = cpus > 0 ? (int)(cpus < 256 ? cpus : 256) : 1;
    if (!parse_args(argc, argv, &a)) return 2;

    jsonl_reader *r = NULL;
    jsonl_writer *w = NULL;
    if (jsonl_open_stream(stdin, "stdin", &r) != GRPO_OK || jsonl_writer_open_stream(stdout, "stdout", &w) != GRPO_OK) {
        fprintf(stderr, "grpo verify: %s\n", grpo_error_message());
        jsonl_close(r);
        return 1;
    }
    answer_sink sink = {.out = w, .flush = a.flush};
    int rc = a.verb == VERB_CODE ? run_code(r, &sink, &a) : run_serial(r, &sink, &a);
    jsonl_close(r);
    if (jsonl_writer_close(w) != GRPO_OK && !sink.write_failed) {
        fprintf(stderr, "grpo verify: %s\n", grpo_error_message());
        sink.write_failed = 1;
    }
    if (rc) return rc;
    if (sink.write_failed) return 1;
    if (sink.errors) fprintf(stderr, "grpo verify %s: %ld line(s) answered with an error\n", verbs[which], sink.errors);
    return sink.errors ? 1 : 0;
}
