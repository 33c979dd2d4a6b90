/* Rejection sampling into SFT JSONL (rl/rejection.h): sample, verify, filter, dedup, cap,
 * mix, write atomically. */
#include "rl/rejection.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/template.h"
#include "rollouts/rollout.h"
#include "verifiers/format.h"

/* Random streams: prompt seeds and the order in which mix lines are drawn. */
#define REJECTION_SEED_STREAM 0x72656a00ull
#define REJECTION_MIX_STREAM 0x72656a10ull

rejection_options rejection_options_default(void) {
    rejection_options o = {0};
    o.samples_per_prompt = 4;
    sampler_params_defaults(&o.sampling);
    o.max_completion_length = 256;
    return o;
}

grpo_status rejection_options_validate(const rejection_options *o) {
    if (o->samples_per_prompt < 1)
        return grpo_fail(GRPO_ERR_INVALID, "samples_per_prompt: expected at least 1, found %d", o->samples_per_prompt);
    if (o->max_completion_length < 1)
        return grpo_fail(GRPO_ERR_INVALID, "max_completion_length: expected at least 1, found %d",
                         o->max_completion_length);
    if (o->max_kept_per_prompt < 0)
        return grpo_fail(GRPO_ERR_INVALID, "max_kept_per_prompt: expected 0 (no cap) or more, found %d",
                         o->max_kept_per_prompt);
    if (!(isfinite(o->mix_ratio) && o->mix_ratio >= 0))
        return grpo_fail(GRPO_ERR_INVALID, "mix_ratio: expected a finite value >= 0, found %g", o->mix_ratio);
    if (o->prompts_per_batch < 0 || o->max_num_seqs < 0 || !(o->cache_mib >= 0))
        return grpo_fail(GRPO_ERR_INVALID, "prompts_per_batch, max_num_seqs and cache_mib: expected >= 0 (0: default)");
    if (o->mix_ratio > 0 && !(o->mix_path && o->mix_path[0]))
        return grpo_fail(GRPO_ERR_INVALID, "mix_ratio is %g but no mix_path names the lines to mix in", o->mix_ratio);
    if (o->prompt_template && o->prompt_template[0]) GRPO_TRY(template_validate(o->prompt_template, "prompt_template"));
    return sampler_params_validate(&o->sampling);
}

/* A growing list of owned JSONL lines (no newline). */
typedef struct {
    char **items;
    int64_t n, cap;
} line_list;

static grpo_status line_list_push(line_list *l, char *line) {
    if (!line) return grpo_fail(GRPO_ERR_NOMEM, "rejection: out of memory");
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 256;
        char **items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items) {
            free(line);
            return grpo_fail(GRPO_ERR_NOMEM, "rejection: out of memory");
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = line;
    return GRPO_OK;
}

static void line_list_free(line_list *l) {
    for (int64_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* Reads every mix line: a JSON object with string "prompt" and "response"; the prompt is
 * rendered through tmpl (when given) and "source": "mix" is added. Empty lines are
 * skipped; any other bad line fails naming path:line. */
static grpo_status load_mix(const char *path, const char *tmpl, line_list *out) {
    FILE *f = fopen(path, "r");
    if (!f) return grpo_fail(GRPO_ERR_IO, "mix_path %s: cannot open: %s", path, strerror(errno));
    char *buf = NULL, origin[1200];
    size_t cap = 0;
    ssize_t len;
    int line_no = 0;
    grpo_status s = GRPO_OK;
    while (!s && (len = getline(&buf, &cap, f)) >= 0) {
        line_no++;
        snprintf(origin, sizeof origin, "%s:%d", path, line_no);
        size_t l = (size_t)len;
        while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == '\r' || buf[l - 1] == ' ' || buf[l - 1] == '\t')) l--;
        if (l == 0) continue;
        json_error_t err;
        json_t *obj = json_loadb(buf, l, 0, &err);
        if (!obj) {
            s = grpo_fail(GRPO_ERR_PARSE, "%s: expected a JSON object, found invalid JSON: %s", origin, err.text);
            break;
        }
        const json_t *p = json_object_get(obj, "prompt"), *r = json_object_get(obj, "response");
        if (!json_is_object(obj) || !json_is_string(p) || !json_is_string(r)) {
            s = grpo_fail(GRPO_ERR_PARSE, "%s: expected an SFT line {\"prompt\": string, \"response\": string}, found %s",
                          origin, !json_is_object(obj) ? "a JSON value that is not an object"
                                  : !json_is_string(p) ? "no string \"prompt\"" : "no string \"response\"");
            json_decref(obj);
            break;
        }
        if (tmpl && tmpl[0]) {
            char *rendered = NULL;
            s = template_render(tmpl, obj, origin, &rendered);
            if (!s && json_object_set_new(obj, "prompt", json_string(rendered)))
                s = grpo_fail(GRPO_ERR_PARSE, "%s: the rendered prompt is not valid UTF-8", origin);
            free(rendered);
        }
        if (!s) json_object_set_new(obj, "source", json_string("mix"));
        if (!s) s = line_list_push(out, json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER));
        json_decref(obj);
    }
    if (!s && ferror(f)) s = grpo_fail(GRPO_ERR_IO, "mix_path %s: read error", path);
    free(buf);
    fclose(f);
    return s;
}

/* 1 when the set holds a verdict reward (accuracy, countdown or code). */
static int has_verdict_reward(const reward_set *rewards) {
    for (int i = 0; i < reward_set_size(rewards); i++) {
        const char *n = reward_set_name(rewards, i);
        if (!strcmp(n, "accuracy") || !strcmp(n, "countdown") || !strcmp(n, "code")) return 1;
    }
    return 0;
}

/* The kept line for sample text (len bytes) of problem k; NULL text when it is not valid
 * UTF-8 (*bad_utf8 = 1). */
static grpo_status kept_line(const problem_set *ps, int k, const char *text, size_t len, char **line, int *bad_utf8) {
    *line = NULL;
    *bad_utf8 = 0;
    json_t *response = json_stringn(text, len);
    if (!response) {
        *bad_utf8 = 1;
        return GRPO_OK;
    }
    json_t *obj = json_object();
    json_t *prompt = json_string(ps->prompts[k]);
    if (!obj || !prompt) {
        json_decref(obj);
        json_decref(prompt);
        json_decref(response);
        return grpo_fail(GRPO_ERR_NOMEM, "rejection: cannot build the line of problem %d", k);
    }
    json_object_set_new(obj, "prompt", prompt);
    json_object_set_new(obj, "response", response);
    const json_t *id = json_object_get(ps->lines[k], "id");
    if (id) json_object_set(obj, "id", (json_t *)id);
    json_object_set_new(obj, "source", json_string("rejection"));
    *line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    return *line ? GRPO_OK : grpo_fail(GRPO_ERR_NOMEM, "rejection: out of memory");
}

/* Writes kept and mixed lines (the first n_mix of mix, already in drawn order) to path by
 * temp + fsync + rename, mixed lines spread evenly: after i output lines, floor(i * n_mix /
 * total) of them are mixed ones. */
static grpo_status write_output(const char *path, const line_list *kept, char **mix, int64_t n_mix) {
    int64_t total = kept->n + n_mix, ki = 0, mi = 0;
    size_t bytes = 0;
    for (int64_t i = 0; i < kept->n; i++) bytes += strlen(kept->items[i]) + 1;
    for (int64_t i = 0; i < n_mix; i++) bytes += strlen(mix[i]) + 1;
    char *buf = malloc(bytes + 1), *at = buf;
    if (!buf) return grpo_fail(GRPO_ERR_NOMEM, "rejection: cannot hold %zu bytes of output", bytes);
    for (int64_t i = 0; i < total; i++) {
        int take_mix = mi < n_mix && (ki >= kept->n || (mi + 1) * total <= (i + 1) * n_mix);
        const char *line = take_mix ? mix[mi++] : kept->items[ki++];
        size_t len = strlen(line);
        memcpy(at, line, len);
        at += len;
        *at++ = '\n';
    }
    grpo_status s = fs_write_atomic(path, buf, bytes);
    free(buf);
    return s;
}

int rejection_stats_metrics(const rejection_stats *st, int max, const char **names, double *values) {
    const char *n[] = {"rejection/prompts", "rejection/samples", "rejection/correct", "rejection/kept",
                       "rejection/mixed", "rejection/duplicates", "rejection/capped", "rejection/rejected_format",
                       "rejection/rejected_truncated", "rejection/kept_share_mean", "rejection/zero_kept_share",
                       "rejection/mean_kept_tokens", "rejection/max_kept_tokens", "rejection/scoring_errors"};
    double v[] = {st->prompts, (double)st->samples, (double)st->correct, (double)st->kept, (double)st->mixed,
                  (double)st->duplicates, (double)st->capped, (double)st->rejected_format,
                  (double)st->rejected_truncated, st->kept_share_mean, st->zero_kept_share, st->mean_kept_tokens,
                  st->max_kept_tokens, (double)st->scoring_errors};
    int count = (int)(sizeof n / sizeof *n);
    if (count > max) count = max;
    for (int i = 0; i < count; i++) {
        names[i] = n[i];
        values[i] = v[i];
    }
    return count;
}

/* Filters the N samples of problem k (rollout output rows base .. base + N - 1) into kept,
 * updating st; per_prompt_kept gets how many were kept. */
static grpo_status filter_prompt(const rejection_options *o, const problem_set *ps, int k, const rollout_output *ro,
                                 int base, const reward_result *scores, const verify_format *fmt, int *passed,
                                 line_list *kept, rejection_stats *st, int *per_prompt_kept, double *kept_tokens) {
    /* passed: [N] scratch, the indices of this prompt's earlier samples that passed every
     * check before dedup (kept or capped) */
    int N = o->samples_per_prompt, kept_here = 0, unique = 0;
    for (int g = 0; g < N; g++) {
        const rollout_sample *rs = &ro->samples[base + g];
        const reward_result *r = &scores[base + g];
        const char *text = rs->text ? rs->text : "";
        size_t len = rs->text ? rs->text_len : 0;
        int truncated = rs->finish_reason == ROLLOUT_FINISH_LENGTH;
        float format_score = 0;
        GRPO_TRY(verify_format_match(fmt, text, len, &format_score));
        int formatted = format_score >= 1.0f;
        st->truncated += truncated;
        st->well_formatted += formatted;
        if (r->status != GRPO_OK) st->scoring_errors++;
        int correct = r->status == GRPO_OK && r->has_verdict && r->correct;
        st->correct += correct;
        if (!correct) { st->wrong++; continue; }
        if (truncated && !o->keep_truncated) { st->rejected_truncated++; continue; }
        if (o->require_format && !formatted) { st->rejected_format++; continue; }
        int dup = 0;
        for (int u = 0; u < unique && !dup; u++) {
            const rollout_sample *other = &ro->samples[base + passed[u]];
            dup = other->text_len == len && (len == 0 || !memcmp(other->text, text, len));
        }
        if (dup) { st->duplicates++; continue; }
        if (o->max_kept_per_prompt > 0 && kept_here >= o->max_kept_per_prompt) {
            passed[unique++] = g;   /* a later copy of it is a duplicate, not another capped one */
            st->capped++;
            continue;
        }
        char *line;
        int bad_utf8;
        GRPO_TRY(kept_line(ps, k, text, len, &line, &bad_utf8));
        if (bad_utf8) { st->rejected_encoding++; continue; }
        GRPO_TRY(line_list_push(kept, line));
        passed[unique++] = g;
        kept_here++;
        st->kept++;
        *kept_tokens += rs->n_tokens;
        if (rs->n_tokens > st->max_kept_tokens) st->max_kept_tokens = rs->n_tokens;
    }
    *per_prompt_kept = kept_here;
    return GRPO_OK;
}

grpo_status rejection_run(lm *model, const tokenizer *tok, const problem_set *problems, const reward_set *rewards,
                          const rejection_options *o, const char *out_path, rejection_stats *stats) {
    rejection_stats st;
    memset(&st, 0, sizeof st);
    st.mean_kept_tokens = NAN;
    if (stats) *stats = st;
    GRPO_TRY(rejection_options_validate(o));
    if (!out_path || !out_path[0]) return grpo_fail(GRPO_ERR_INVALID, "rejection: no output path");
    if (!has_verdict_reward(rewards))
        return grpo_fail(GRPO_ERR_INVALID, "rejection: the rewards need a verdict reward (accuracy, countdown or code) "
                         "to decide which samples are correct");
    double t0 = progress_now();
    line_list mix = {0}, kept = {0};
    verify_format *fmt = NULL;
    rollout_engine *engine = NULL;
    reward_result *scores = NULL;
    rollout_prompt *prompts = NULL;
    progress *bar = NULL;
    grpo_status s = GRPO_OK;
    /* The mix file first: a bad one fails before any sampling. */
    if (o->mix_path && o->mix_path[0]) s = load_mix(o->mix_path, o->prompt_template, &mix);
    if (!s && o->mix_path && o->mix_path[0] && o->mix_ratio > 0 && mix.n == 0)
        s = grpo_fail(GRPO_ERR_INVALID, "mix_path %s: no lines to mix in (mix_ratio %g)", o->mix_path, o->mix_ratio);
    if (!s) s = verify_format_create(o->format_pattern, &fmt);
    rollout_config rc;
    rollout_config_defaults(&rc);
    rc.sampling.sampler = o->sampling;
    rc.sampling.max_tokens = o->max_completion_length;
    rc.add_bos = 0;   /* problem prompts carry their BOS already */
    if (o->max_num_seqs > 0) rc.max_num_seqs = o->max_num_seqs;
    if (o->cache_mib > 0) rc.cache_mib = o->cache_mib;
    if (!s) s = rollout_engine_create(model, tok, &rc, &engine);
    int N = o->samples_per_prompt, P = o->prompts_per_batch > 0 ? o->prompts_per_batch : 16;
    if (P > problems->count && problems->count > 0) P = problems->count;
    if (!s) {
        scores = calloc((size_t)P * N, sizeof *scores);
        prompts = calloc((size_t)P, sizeof *prompts);
        if (!scores || !prompts) s = grpo_fail(GRPO_ERR_NOMEM, "rejection: cannot allocate a batch of %d x %d", P, N);
    }
    const json_t **lines = NULL;
    const char **texts = NULL;
    int *tokens = NULL, *passed = NULL;
    if (!s) {
        lines = malloc((size_t)P * N * sizeof *lines);
        texts = malloc((size_t)P * N * sizeof *texts);
        tokens = malloc((size_t)P * N * sizeof *tokens);
        passed = malloc((size_t)N * sizeof *passed);
        if (!lines || !texts || !tokens || !passed) s = grpo_fail(GRPO_ERR_NOMEM, "rejection: out of memory");
    }
    if (!s && !o->quiet) bar = progress_create("rejection sampling", problems->count);
    double share_sum = 0, kept_tokens = 0;
    int zero_kept = 0;
    for (int start = 0; start < problems->count && !s; start += P) {
        int np = problems->count - start < P ? problems->count - start : P;
        for (int i = 0; i < np; i++) {
            int k = start + i;
            prompts[i] = (rollout_prompt){.ids = problems->prompt_ids[k], .n_ids = problems->prompt_lengths[k]};
            prompts[i].seed = ((uint64_t)rng_u32(o->seed, REJECTION_SEED_STREAM, (uint64_t)k) << 32) |
                              rng_u32(o->seed, REJECTION_SEED_STREAM + 1, (uint64_t)k);
        }
        rollout_output ro = {0};
        s = rollout_generate(engine, prompts, np, N, &ro);
        if (s) break;
        for (int i = 0; i < np * N; i++) {
            lines[i] = problems->lines[start + i / N];
            texts[i] = ro.samples[i].text ? ro.samples[i].text : "";
            tokens[i] = ro.samples[i].n_tokens;
            st.generated_tokens += ro.samples[i].n_tokens;
        }
        s = reward_set_score_batch(rewards, NULL, (const json_t *const *)lines, texts, tokens, np * N, N, scores);
        for (int i = 0; i < np && !s; i++) {
            int kept_here = 0;
            s = filter_prompt(o, problems, start + i, &ro, i * N, scores, fmt, passed, &kept, &st, &kept_here, &kept_tokens);
            share_sum += (double)kept_here / N;
            zero_kept += kept_here == 0;
            st.prompts++;
            st.samples += N;
        }
        rollout_output_deinit(&ro);
        if (bar) progress_update(bar, start + np, "kept %lld of %lld", (long long)st.kept, (long long)st.samples);
    }
    if (bar) progress_finish(bar);
    /* Mix: round(mix_ratio * kept) lines, at most all, drawn without replacement in a seeded order. */
    int64_t n_mix = 0;
    if (!s && mix.n > 0 && o->mix_ratio > 0) {
        n_mix = (int64_t)llround(o->mix_ratio * (double)st.kept);
        if (n_mix > mix.n) {
            log_warn("rejection: mix_ratio %g asks for %lld mixed lines, %s has %lld; using all of them", o->mix_ratio,
                     (long long)n_mix, o->mix_path, (long long)mix.n);
            n_mix = mix.n;
        }
        rng_stream r = rng_stream_make(o->seed, REJECTION_MIX_STREAM);
        for (int64_t i = 0; i < n_mix; i++) {   /* partial Fisher-Yates: the first n_mix are the draw */
            int64_t j = i + (int64_t)rng_next_below(&r, (uint32_t)(mix.n - i));
            char *t = mix.items[i];
            mix.items[i] = mix.items[j];
            mix.items[j] = t;
        }
    }
    if (!s) s = write_output(out_path, &kept, mix.items, n_mix);
    if (!s) {
        st.mixed = n_mix;
        st.lines = st.kept + n_mix;
        st.kept_share_mean = st.prompts ? share_sum / st.prompts : NAN;
        st.zero_kept_share = st.prompts ? (double)zero_kept / st.prompts : NAN;
        st.mean_kept_tokens = st.kept ? kept_tokens / (double)st.kept : NAN;
        st.seconds = progress_now() - t0;
        if (stats) *stats = st;
    }
    free(lines);
    free(texts);
    free(tokens);
    free(passed);
    free(scores);
    free(prompts);
    rollout_engine_free(engine);
    verify_format_free(fmt);
    line_list_free(&kept);
    line_list_free(&mix);
    return s;
}
