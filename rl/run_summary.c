/* summary.json, the stage summaries kept in the run store, and the printed tables of
 * `grpo run` (rl/run.h). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "rl/run_impl.h"

void run_stage_summary_clear(run_stage_summary *st) {
    memset(st, 0, sizeof *st);
    run_eval none = {NAN, NAN, NAN, NAN, NAN, NAN, 0};
    st->before = st->after = st->heldout = st->heldout_teacher = none;
    st->train_loss = st->tokens_per_second = st->reward_mean = NAN;
}

static void json_set_number(json_t *obj, const char *key, double v) {
    if (isfinite(v)) json_object_set_new(obj, key, json_real(v));
}

static json_t *eval_json(const run_eval *e) {
    json_t *o = json_object();
    json_set_number(o, "loss", e->loss);
    json_set_number(o, "exact_match", e->exact_match);
    json_set_number(o, "pass@1", e->pass_at_1);
    json_set_number(o, "pass@k", e->pass_at_k);
    json_set_number(o, "maj@k", e->maj_at_k);
    json_set_number(o, "mean_length", e->mean_length);
    if (isfinite(e->pass_at_1)) json_object_set_new(o, "k", json_integer(e->k));
    return o;
}

static double number_or_nan(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void eval_from_json(const json_t *o, run_eval *e) {
    if (!json_is_object(o)) return;
    e->loss = number_or_nan(o, "loss");
    e->exact_match = number_or_nan(o, "exact_match");
    e->pass_at_1 = number_or_nan(o, "pass@1");
    e->pass_at_k = number_or_nan(o, "pass@k");
    e->maj_at_k = number_or_nan(o, "maj@k");
    e->mean_length = number_or_nan(o, "mean_length");
    const json_t *k = json_object_get(o, "k");
    e->k = json_is_integer(k) ? (int)json_integer_value(k) : 0;
}

json_t *run_stage_summary_to_json(const run_stage_summary *st) {
    json_t *o = json_pack("{s:s, s:s, s:i, s:f, s:o, s:o}", "name", st->name, "kind", st->kind, "steps", st->steps,
                          "wall_seconds", st->seconds, "eval_before", eval_json(&st->before), "eval",
                          eval_json(&st->after));
    if (!o) return NULL;
    if (st->model[0]) json_object_set_new(o, "model", json_string(st->model));
    if (st->student[0]) json_object_set_new(o, "student", json_string(st->student));
    if (st->output[0]) json_object_set_new(o, "output", json_string(st->output));
    if (isfinite(st->heldout.pass_at_1)) json_object_set_new(o, "heldout", eval_json(&st->heldout));
    if (isfinite(st->heldout_teacher.pass_at_1))
        json_object_set_new(o, "heldout_teacher", eval_json(&st->heldout_teacher));
    json_set_number(o, "train_loss", st->train_loss);
    json_set_number(o, "reward_mean", st->reward_mean);
    json_set_number(o, "tokens_per_second", st->tokens_per_second);
    if (st->samples) {
        json_object_set_new(o, "samples", json_integer(st->samples));
        json_object_set_new(o, "kept", json_integer(st->kept));
    }
    return o;
}

static void copy_string(char *dst, size_t size, const json_t *o, const char *key) {
    const char *v = json_string_value(json_object_get(o, key));
    snprintf(dst, size, "%s", v ? v : "");
}

grpo_status run_stage_summary_from_json(const char *text, run_stage_summary *out) {
    run_stage_summary_clear(out);
    json_error_t err;
    json_t *o = text ? json_loads(text, 0, &err) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        return grpo_fail(GRPO_ERR_PARSE, "run.db: a stage summary is not a JSON object");
    }
    copy_string(out->name, sizeof out->name, o, "name");
    copy_string(out->kind, sizeof out->kind, o, "kind");
    copy_string(out->model, sizeof out->model, o, "model");
    copy_string(out->student, sizeof out->student, o, "student");
    copy_string(out->output, sizeof out->output, o, "output");
    const json_t *v = json_object_get(o, "steps");
    out->steps = json_is_integer(v) ? (int)json_integer_value(v) : 0;
    out->seconds = number_or_nan(o, "wall_seconds");
    eval_from_json(json_object_get(o, "eval_before"), &out->before);
    eval_from_json(json_object_get(o, "eval"), &out->after);
    eval_from_json(json_object_get(o, "heldout"), &out->heldout);
    eval_from_json(json_object_get(o, "heldout_teacher"), &out->heldout_teacher);
    out->train_loss = number_or_nan(o, "train_loss");
    out->reward_mean = number_or_nan(o, "reward_mean");
    out->tokens_per_second = number_or_nan(o, "tokens_per_second");
    v = json_object_get(o, "samples");
    out->samples = json_is_integer(v) ? (int)json_integer_value(v) : 0;
    v = json_object_get(o, "kept");
    out->kept = json_is_integer(v) ? (int)json_integer_value(v) : 0;
    json_decref(o);
    return GRPO_OK;
}

grpo_status run_summary_write(const run_summary *sum) {
    json_t *stages = json_array();
    for (int i = 0; i < sum->n_stages; i++) json_array_append_new(stages, run_stage_summary_to_json(&sum->stages[i]));
    json_t *root = json_pack("{s:s, s:o}", "run_dir", sum->run_dir, "stages", stages);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/summary.json", sum->run_dir);
    grpo_status s = text ? fs_write_atomic(path, text, strlen(text)) : grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    free(text);
    return s;
}

/* "a -> b" with each side formatted (or "-" when NAN). */
static void before_after(char *buf, size_t size, const char *label, double a, double b, int percent) {
    char x[32], y[32];
    if (isfinite(a)) snprintf(x, sizeof x, percent ? "%.1f%%" : "%.4f", percent ? 100 * a : a);
    else snprintf(x, sizeof x, "-");
    if (isfinite(b)) snprintf(y, sizeof y, percent ? "%.1f%%" : "%.4f", percent ? 100 * b : b);
    else snprintf(y, sizeof y, "-");
    snprintf(buf, size, "%s %s -> %s", label, x, y);
}

/* The stages' own evaluation (eval_dataset), before -> after. */
static void print_stage_evals(const run_summary *s, FILE *out) {
    fprintf(out, "\n%-16s %-9s %6s %8s  %s\n", "stage", "kind", "steps", "seconds",
            "held-out evaluation (before -> after)");
    for (int i = 0; i < s->n_stages; i++) {
        const run_stage_summary *st = &s->stages[i];
        char a[96], b[96], c[96];
        c[0] = 0;
        if (isfinite(st->before.pass_at_1) || isfinite(st->after.pass_at_1)) {
            before_after(a, sizeof a, "pass@1", st->before.pass_at_1, st->after.pass_at_1, 1);
            char label[32];
            snprintf(label, sizeof label, "maj@%d", st->after.k ? st->after.k : st->before.k);
            before_after(b, sizeof b, label, st->before.maj_at_k, st->after.maj_at_k, 1);
            before_after(c, sizeof c, "length", st->before.mean_length, st->after.mean_length, 0);
        } else if (isfinite(st->before.loss) || isfinite(st->after.loss) || isfinite(st->after.exact_match)) {
            before_after(a, sizeof a, "loss", st->before.loss, st->after.loss, 0);
            before_after(b, sizeof b, "exact", st->before.exact_match, st->after.exact_match, 1);
        } else {   /* no eval_dataset */
            snprintf(a, sizeof a, "-");
            b[0] = 0;
        }
        fprintf(out, "%-16s %-9s %6d %8.1f  %s%s%s%s%s\n", st->name, st->kind, st->steps, st->seconds, a,
                b[0] ? ", " : "", b, c[0] ? ", " : "", c);
    }
}

static void eval_cells(char *buf, size_t size, const run_eval *e) {
    if (!isfinite(e->pass_at_1)) {
        snprintf(buf, size, "%7s %7s %7s", "-", "-", "-");
        return;
    }
    snprintf(buf, size, "%6.1f%% %6.1f%% %7.1f", 100 * e->pass_at_1, 100 * e->pass_at_k, e->mean_length);
}

/* One row per stage: the held-out metrics of its output model, teacher | student for distill. */
static void print_pipeline(const run_summary *s, FILE *out) {
    int any = 0, k = 0;
    for (int i = 0; i < s->n_stages; i++) {
        const run_stage_summary *st = &s->stages[i];
        if (isfinite(st->heldout.pass_at_1)) {
            any = 1;
            if (!k) k = st->heldout.k;
        }
    }
    if (!any) return;
    char pk[16];
    snprintf(pk, sizeof pk, "pass@%d", k);
    fprintf(out, "\nheld-out after each stage (model | distilled student)\n");
    fprintf(out, "%-16s %-9s %7s %7s %7s | %7s %7s %7s\n", "stage", "kind", "pass@1", pk, "length", "pass@1", pk,
            "length");
    for (int i = 0; i < s->n_stages; i++) {
        const run_stage_summary *st = &s->stages[i];
        char a[64], b[64];
        int distill = !strcmp(st->kind, "distill");
        eval_cells(a, sizeof a, distill ? &st->heldout_teacher : &st->heldout);
        if (distill) eval_cells(b, sizeof b, &st->heldout);
        else b[0] = 0;
        fprintf(out, "%-16s %-9s %s |%s%s\n", st->name, st->kind, a, b[0] ? " " : "", b);
    }
}

void run_summary_print(const run_summary *s, FILE *out) {
    print_stage_evals(s, out);
    print_pipeline(s, out);
    fprintf(out, "summary: %s/summary.json\n", s->run_dir);
}
