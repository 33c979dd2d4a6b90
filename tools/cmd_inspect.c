/* `grpo inspect RUN_DIR [--step N|all] [--stage I] [--filter correct|wrong|truncated]
 * [--grep REGEX]`: the sampled rollouts a run stored (prompt, completion, reward per
 * component, verdict, advantage), readable in a terminal. Text is model output: control
 * characters, invalid UTF-8 and bidirectional overrides are shown escaped (\x1b, \u202e),
 * never sent to the terminal. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/store.h"
#include "core/utf8.h"
#include "tools/args.h"
#include "tools/commands.h"

typedef enum { FILTER_ALL, FILTER_CORRECT, FILTER_WRONG, FILTER_TRUNCATED } verdict_filter;

typedef struct {
    FILE *out;
    int stage;                 /* -1: every stage */
    verdict_filter filter;
    pcre2_code *re;            /* NULL: no --grep */
    pcre2_match_data *md;
    int64_t seen, shown;
    char *last_prompt;         /* the prompt printed last (printed again only when it changes) */
    int failed;
} inspect_ctx;

static void usage(FILE *f) {
    fprintf(f, "usage: grpo inspect RUN_DIR [--step N|all] [--stage I] [--filter correct|wrong|truncated]\n"
               "                    [--grep REGEX]\n\n"
               "Prints the rollouts stored in RUN_DIR/run.db (log_rollouts_per_step of them per GRPO\n"
               "step): prompt, completion, total reward and its components, verdict, advantage,\n"
               "length. Default: the latest step that has rollouts.\n"
               "  --step N|all   one step (steps count from 1 within each stage) or every step\n"
               "  --stage I      only stage I (0-based; steps of different stages share numbers)\n"
               "  --filter       correct: verdict \"correct\"; truncated: cut at max_completion_length\n"
               "                 and not correct; wrong: any other verdict (wrong, no_answer, ...)\n"
               "  --grep REGEX   only rollouts whose prompt or completion matches (PCRE2)\n"
               "Control characters and invalid UTF-8 in model output are printed escaped.\n");
}

/* Writes text safe for a terminal: \n starts a new line indented by `indent`, \t stays,
 * other C0/C1 controls, DEL, bidi controls and bad bytes are escaped, backslash doubled. */
static void put_safe(FILE *out, const char *text, const char *indent) {
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    fputs(indent, out);
    while (*s) {
        uint32_t cp;
        int n = utf8_decode(s, 4, &cp);   /* stops at the NUL: not a continuation byte */
        if (n == 0) {
            fprintf(out, "\\x%02x", *s);
            s++;
            continue;
        }
        if (cp == '\n') fprintf(out, "\n%s", indent);
        else if (cp == '\t') fputc('\t', out);
        else if (cp == '\\') fputs("\\\\", out);
        else if (cp < 0x20 || cp == 0x7f) fprintf(out, "\\x%02x", cp);
        else if ((cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
                 cp == 0x200e || cp == 0x200f || cp == 0x061c)
            fprintf(out, "\\u%04x", cp);
        else fwrite(s, 1, (size_t)n, out);
        s += n;
    }
    fputc('\n', out);
}

static int verdict_matches(verdict_filter f, const char *verdict) {
    int correct = verdict && !strcmp(verdict, "correct"), truncated = verdict && !strcmp(verdict, "truncated");
    switch (f) {
    case FILTER_CORRECT: return correct;
    case FILTER_TRUNCATED: return truncated;
    case FILTER_WRONG: return verdict && !correct && !truncated;
    default: return 1;
    }
}

static int grep_matches(inspect_ctx *c, const char *text) {
    if (!text) return 0;
    return pcre2_match(c->re, (PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, 0, 0, c->md, NULL) >= 0;
}

/* "accuracy=1 format=0.5" from {"accuracy": 1, "format": 0.5}; the raw text when it is not an object. */
static void put_components(FILE *out, const char *json) {
    json_t *root = json ? json_loads(json, 0, NULL) : NULL;
    if (!json_is_object(root)) {
        if (json) {
            fputs(" (", out);
            put_safe(out, json, "");   /* ends the line itself */
            json_decref(root);
            return;
        }
        fputc('\n', out);
        return;
    }
    const char *key;
    json_t *v;
    int first = 1;
    fputs(" (", out);
    json_object_foreach(root, key, v) {
        if (!first) fputc(' ', out);
        first = 0;
        char value[64];
        if (json_is_number(v)) snprintf(value, sizeof value, "%.4g", json_number_value(v));
        else snprintf(value, sizeof value, "?");
        /* keys come from the store: escaped too */
        for (const unsigned char *k = (const unsigned char *)key; *k; k++)
            if (*k < 0x20 || *k == 0x7f || *k >= 0x80) fprintf(out, "\\x%02x", *k);
            else fputc(*k, out);
        fprintf(out, "=%s", value);
    }
    fputs(")\n", out);
    json_decref(root);
}

static int on_rollout(void *ctx, const store_rollout *r) {
    inspect_ctx *c = ctx;
    if (c->stage >= 0 && r->stage != c->stage) return 0;
    c->seen++;
    if (!verdict_matches(c->filter, r->verdict)) return 0;
    if (c->re && !grep_matches(c, r->prompt) && !grep_matches(c, r->completion)) return 0;
    c->shown++;
    FILE *out = c->out;
    fprintf(out, "=== rollout step %lld, stage %d, sample %d, prompt ", (long long)r->step, r->stage, r->sample_idx);
    put_safe(out, r->prompt_id ? r->prompt_id : "-", "");
    if (r->prompt && (!c->last_prompt || strcmp(c->last_prompt, r->prompt))) {
        fputs("  prompt:\n", out);
        put_safe(out, r->prompt, "    ");
        free(c->last_prompt);
        c->last_prompt = strdup(r->prompt);
    }
    fputs("  verdict: ", out);
    put_safe(out, r->verdict ? r->verdict : "-", "");
    fprintf(out, "  reward: %.4f", r->reward);
    put_components(out, r->rewards_json);
    fprintf(out, "  advantage: %+.4f   length: %lld tokens\n", r->advantage, (long long)r->length);
    fputs("  completion:\n", out);
    put_safe(out, r->completion, "    ");
    return 0;
}

static int parse_filter(const char *v, verdict_filter *f) {
    if (!strcmp(v, "correct")) *f = FILTER_CORRECT;
    else if (!strcmp(v, "wrong")) *f = FILTER_WRONG;
    else if (!strcmp(v, "truncated")) *f = FILTER_TRUNCATED;
    else return 0;
    return 1;
}

static int latest_rollout_step(void *ctx, const store_rollout *r) {
    *(int64_t *)ctx = r->step;
    return 1;
}

static int newest_run(void *ctx, const store_run *run) {
    *(int64_t *)ctx = run->id;   /* runs come in id order: the last one wins */
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) { usage(stdout); return 0; }
    const char *dir = NULL, *value, *pattern = NULL;
    int64_t step = -1, stage = -1;
    int all_steps = 0;
    inspect_ctx c = {.out = stdout, .stage = -1};
    for (int i = 1; i < argc; i++) {
        int m;
        if ((m = arg_match(argc, argv, &i, "--step", &value))) {
            if (m < 0) return 2;
            if (!strcmp(value, "all")) all_steps = 1;
            else if (!arg_int("inspect", "--step", value, 0, INT64_MAX, &step)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--stage", &value))) {
            if (m < 0 || !arg_int("inspect", "--stage", value, 0, 1 << 30, &stage)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--filter", &value))) {
            if (m < 0) return 2;
            if (!parse_filter(value, &c.filter)) {
                fprintf(stderr, "grpo inspect: --filter: expected correct, wrong or truncated, found '%s'\n", value);
                return 2;
            }
        } else if ((m = arg_match(argc, argv, &i, "--grep", &value))) {
            if (m < 0) return 2;
            pattern = value;
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "grpo inspect: unexpected argument '%s'\n", argv[i]);
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) { usage(stderr); return 2; }
    c.stage = (int)stage;
    if (pattern) {
        int err;
        PCRE2_SIZE offset;
        c.re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err,
                             &offset, NULL);
        if (!c.re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            fprintf(stderr, "grpo inspect: --grep: %s at offset %zu of the pattern\n", (const char *)msg,
                    (size_t)offset);
            return 2;
        }
        c.md = pcre2_match_data_create_from_pattern(c.re, NULL);
    }
    store *db = NULL;
    int64_t run_id = -1;
    grpo_status s = store_open_readonly(dir, &db);
    if (!s) s = store_get_runs(db, newest_run, &run_id);
    if (!s && run_id < 0) s = grpo_fail(GRPO_ERR_NOTFOUND, "%s: the run store holds no run", store_path(db));
    if (!s && all_steps) {
        int64_t last = -1;   /* the newest step with rollouts: the first row of store_get_rollouts(-1) */
        s = store_get_rollouts(db, run_id, -1, latest_rollout_step, &last);
        for (int64_t k = 0; k <= last && !s; k++) s = store_get_rollouts(db, run_id, k, on_rollout, &c);
    } else if (!s) {
        s = store_get_rollouts(db, run_id, step, on_rollout, &c);
    }
    if (!s && c.re && c.md == NULL) s = grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    if (!s) printf("%lld of %lld rollouts shown\n", (long long)c.shown, (long long)c.seen);
    else fprintf(stderr, "grpo inspect: %s\n", grpo_error_message());
    store_close(db);
    pcre2_match_data_free(c.md);
    pcre2_code_free(c.re);
    free(c.last_prompt);
    return grpo_exit_code(s);
}
