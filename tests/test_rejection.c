/* Rejection sampling (rl/rejection.h) with a tiny model from a preset (its weights set by
 * tests/digit_model.h so that it says digits) and the built-in vocabulary on one-digit
 * problems: completions of one or two tokens are a bare digit often enough that some are
 * correct by chance. Every kept line is re-verified by an
 * independent call of the math verifier; the per-prompt cap and dedup hold in the file;
 * the statistics add up and match the file; lifting the cap keeps exactly the capped
 * ones more; require_format keeps nothing from a model that never writes the template;
 * mixing adds the asked share of rendered lines; a bad mix path or line fails cleanly and
 * leaves the output as it was. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/fs.h"
#include "digit_model.h"
#include "harness.h"
#include "model/lm.h"
#include "model/presets.h"
#include "model/tokenizer.h"
#include "rl/problems.h"
#include "rl/rejection.h"
#include "verifiers/format.h"
#include "verifiers/math.h"
#include "verifiers/reward.h"

#define N_PROBLEMS 10

static char tmp_root[PATH_MAX], problems_path[PATH_MAX + 32], out_path[PATH_MAX + 32], mix_path[PATH_MAX + 32];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path) {
    char *data = NULL;
    size_t size;
    if (fs_read_file(path, &data, &size)) return NULL;
    return data;
}

/* What the test reads back from the output file. */
typedef struct {
    int lines, kept, mixed;
    int per_problem[N_PROBLEMS];
    long response_bytes;
} file_summary;

/* Reads out_path; checks every line against the problem set and the options. */
static file_summary check_file(const problem_set *ps, const rejection_options *o) {
    file_summary fs = {0};
    char *text = read_text(out_path);
    CHECK(text != NULL);
    if (!text) return fs;
    /* responses kept per problem, to find repeats */
    char *seen[N_PROBLEMS][64];
    int n_seen[N_PROBLEMS] = {0};
    for (char *line = text, *next; *line; line = next) {
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL);   /* every line ends with a newline */
        if (!nl) break;
        *nl = 0;
        next = nl + 1;
        fs.lines++;
        json_error_t err;
        json_t *obj = json_loads(line, 0, &err);
        CHECK_MSG(obj && json_is_object(obj), "line %d: %s", fs.lines, obj ? "not an object" : err.text);
        if (!obj) continue;
        const char *prompt = json_string_value(json_object_get(obj, "prompt"));
        const char *response = json_string_value(json_object_get(obj, "response"));
        const char *source = json_string_value(json_object_get(obj, "source"));
        CHECK(prompt && response && source);
        if (!prompt || !response || !source) { json_decref(obj); continue; }
        if (!strcmp(source, "mix")) {
            fs.mixed++;
            CHECK(!strncmp(prompt, "Q: ", 3));   /* rendered through the template */
            json_decref(obj);
            continue;
        }
        CHECK_STR("rejection", source);
        fs.kept++;
        const char *id = json_string_value(json_object_get(obj, "id"));
        int k = id && id[0] == 'p' ? atoi(id + 1) : -1;
        CHECK(k >= 0 && k < N_PROBLEMS);
        if (k < 0 || k >= N_PROBLEMS) { json_decref(obj); continue; }
        CHECK_STR(ps->prompts[k], prompt);
        /* The independent verdict: the math verifier on the gold of the problem line. */
        const char *gold = json_string_value(json_object_get(ps->lines[k], "answer"));
        verify_math_result vr;
        CHECK_OK(verify_math(gold, response, NULL, &vr));
        CHECK_MSG(vr.correct, "problem %d: kept response \"%s\" is not correct for gold %s", k, response, gold);
        for (int j = 0; j < n_seen[k]; j++)
            CHECK_MSG(strcmp(seen[k][j], response), "problem %d: response \"%s\" kept twice", k, response);
        if (n_seen[k] < 64) seen[k][n_seen[k]++] = strdup(response);
        fs.per_problem[k]++;
        fs.response_bytes += (long)strlen(response);
        json_decref(obj);
    }
    for (int k = 0; k < N_PROBLEMS; k++) {
        if (o->max_kept_per_prompt > 0)
            CHECK_MSG(fs.per_problem[k] <= o->max_kept_per_prompt, "problem %d: %d kept, cap %d", k,
                      fs.per_problem[k], o->max_kept_per_prompt);
        for (int j = 0; j < n_seen[k]; j++) free(seen[k][j]);
    }
    free(text);
    return fs;
}

/* The statistics add up, and agree with the file. */
static void check_stats(const rejection_stats *st, const file_summary *fs, const rejection_options *o) {
    CHECK_INT(N_PROBLEMS, st->prompts);
    CHECK_INT((int64_t)N_PROBLEMS * o->samples_per_prompt, st->samples);
    CHECK_INT(st->samples, st->wrong + st->rejected_truncated + st->rejected_format + st->rejected_encoding +
                               st->duplicates + st->capped + st->kept);
    CHECK_INT(st->samples - st->correct, st->wrong);
    CHECK_INT(fs->kept, st->kept);
    CHECK_INT(fs->mixed, st->mixed);
    CHECK_INT(fs->lines, st->lines);
    CHECK_INT(st->kept + st->mixed, st->lines);
    double share = 0;
    int zero = 0;
    for (int k = 0; k < N_PROBLEMS; k++) {
        share += (double)fs->per_problem[k] / o->samples_per_prompt;
        zero += fs->per_problem[k] == 0;
    }
    CHECK_NEAR(share / N_PROBLEMS, st->kept_share_mean, 1e-12, 0);
    CHECK_NEAR((double)zero / N_PROBLEMS, st->zero_kept_share, 1e-12, 0);
    if (st->kept > 0) {
        CHECK(st->max_kept_tokens >= 1 && st->max_kept_tokens <= o->max_completion_length);
        CHECK(st->mean_kept_tokens >= 1 && st->mean_kept_tokens <= st->max_kept_tokens);
    } else {
        CHECK(isnan(st->mean_kept_tokens));
        CHECK_INT(0, st->max_kept_tokens);
    }
}

static rejection_options base_options(void) {
    rejection_options o = rejection_options_default();
    o.samples_per_prompt = 128;
    o.cache_mib = 8;
    o.max_completion_length = 2;
    o.keep_truncated = 1;        /* two-token completions are all cut at the length */
    o.sampling.temperature = 1.0f;
    o.seed = 5;
    o.quiet = 1;
    o.prompts_per_batch = 4;     /* several batches */
    return o;
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/grpo_test_rejection_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(tmp_root));
    snprintf(problems_path, sizeof problems_path, "%s/problems.jsonl", tmp_root);
    snprintf(out_path, sizeof out_path, "%s/out/sft.jsonl", tmp_root);
    snprintf(mix_path, sizeof mix_path, "%s/mix.jsonl", tmp_root);
    char out_dir[PATH_MAX + 32];
    snprintf(out_dir, sizeof out_dir, "%s/out", tmp_root);
    CHECK_OK(fs_mkdirs(out_dir));
    FILE *f = fopen(problems_path, "w");
    for (int k = 0; k < N_PROBLEMS; k++)
        fprintf(f, "{\"id\": \"p%d\", \"prompt\": \"Say the digit %d.\", \"answer\": \"%d\"}\n", k, k, k);
    fclose(f);

    backend *be = backend_cpu_create();
    size_t len;
    const char *preset = preset_find("tiny-dense", &len);
    CHECK(preset != NULL);
    lm *model = NULL;
    tokenizer *tok = NULL;
    problem_set *ps = NULL;
    reward_set *rewards = NULL, *format_only = NULL;
    CHECK_OK(lm_create_random(be, preset, len, "tiny-dense", 7, &model));
    CHECK_OK(tokenizer_builtin_create(&tok));
    CHECK_OK(problem_set_load(problems_path, tok, "{prompt}", 64, &ps));
    reward_entry acc = {.kind = REWARD_ACCURACY, .weight = 1.0}, fmt = {.kind = REWARD_FORMAT, .weight = 1.0};
    CHECK_OK(reward_set_create(&acc, 1, &rewards));
    CHECK_OK(reward_set_create(&fmt, 1, &format_only));
    if (!model || !tok || !ps || !rewards || !format_only) TEST_MAIN_END();
    int32_t last_ids[N_PROBLEMS];
    for (int k = 0; k < N_PROBLEMS; k++) last_ids[k] = ps->prompt_ids[k][ps->prompt_lengths[k] - 1];
    CHECK(digit_model_make(model, tok, last_ids, N_PROBLEMS, 3) == 0);

    /* 1. Capped: at most 2 per prompt. */
    rejection_options o = base_options();
    o.max_kept_per_prompt = 1;
    rejection_stats capped;
    CHECK_OK(rejection_run(model, tok, ps, rewards, &o, out_path, &capped));
    file_summary fs1 = check_file(ps, &o);
    check_stats(&capped, &fs1, &o);
    printf("capped run: %lld samples, %lld errors, %lld correct, %lld kept, %lld duplicates, %lld capped, %.0f%% prompts empty\n",
           (long long)capped.samples, (long long)capped.scoring_errors, (long long)capped.correct, (long long)capped.kept, (long long)capped.duplicates,
           (long long)capped.capped, 100 * capped.zero_kept_share);
    /* The run must exercise what it tests (the seed and sizes are chosen so that it does). */
    CHECK(capped.kept > 0);
    CHECK(capped.duplicates > 0);
    CHECK(capped.capped > 0);
    CHECK(capped.rejected_truncated == 0);

    /* 2. No cap, same seed: the same samples, and exactly the capped ones are kept too. */
    o.max_kept_per_prompt = 0;
    rejection_stats uncapped;
    CHECK_OK(rejection_run(model, tok, ps, rewards, &o, out_path, &uncapped));
    file_summary fs2 = check_file(ps, &o);
    check_stats(&uncapped, &fs2, &o);
    CHECK_INT(capped.correct, uncapped.correct);
    CHECK_INT(0, uncapped.capped);
    CHECK_INT(capped.kept + capped.capped + capped.rejected_encoding, uncapped.kept + uncapped.rejected_encoding);
    CHECK_INT(capped.duplicates, uncapped.duplicates);

    /* 3. Truncated completions dropped: every two-token completion without EOS is cut. */
    o.keep_truncated = 0;
    rejection_stats strict;
    CHECK_OK(rejection_run(model, tok, ps, rewards, &o, out_path, &strict));
    file_summary fs3 = check_file(ps, &o);
    check_stats(&strict, &fs3, &o);
    CHECK(strict.rejected_truncated > 0);
    CHECK(strict.kept < uncapped.kept);
    o.keep_truncated = 1;

    /* 4. require_format: a random model never writes <think>..</think><answer>..</answer>. */
    o.require_format = 1;
    rejection_stats formatted;
    CHECK_OK(rejection_run(model, tok, ps, rewards, &o, out_path, &formatted));
    file_summary fs4 = check_file(ps, &o);
    check_stats(&formatted, &fs4, &o);
    CHECK_INT(0, formatted.well_formatted);
    CHECK_INT(0, formatted.kept);
    CHECK_INT(uncapped.correct, formatted.rejected_format);
    CHECK_INT(1, formatted.zero_kept_share);
    /* Another format: a bare digit, maybe with spaces around it. Every kept line matches it
     * (checked by a separate matcher), and some correct ones ("7.") do not. */
    o.format_pattern = "^\\s*[0-9]\\s*$";
    rejection_stats digit_only;
    CHECK_OK(rejection_run(model, tok, ps, rewards, &o, out_path, &digit_only));
    file_summary fs4b = check_file(ps, &o);
    check_stats(&digit_only, &fs4b, &o);
    CHECK(digit_only.kept > 0 && digit_only.kept <= uncapped.kept);
    CHECK(digit_only.well_formatted >= digit_only.kept);
    CHECK(digit_only.rejected_format > 0);   /* e.g. "7." is correct but not a bare digit */
    {
        verify_format *bare = NULL;
        CHECK_OK(verify_format_create(o.format_pattern, &bare));
        char *text = read_text(out_path);
        int lines = 0, matched = 0;
        for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
            json_t *obj = json_loads(line, 0, NULL);
            const char *response = json_string_value(json_object_get(obj, "response"));
            float score = 0;
            if (response) CHECK_OK(verify_format_match(bare, response, strlen(response), &score));
            lines++;
            matched += score >= 1.0f;
            json_decref(obj);
        }
        CHECK_INT(digit_only.kept, lines);
        CHECK_INT(lines, matched);
        free(text);
        verify_format_free(bare);
    }
    o.format_pattern = "([unclosed";
    CHECK_FAILS(rejection_run(model, tok, ps, rewards, &o, out_path, NULL), "([unclosed");
    o.format_pattern = NULL;
    o.require_format = 0;

    /* 5. Mixing: mix_ratio 0.5 of the kept lines, at most all 40 mix lines, rendered. */
    f = fopen(mix_path, "w");
    for (int i = 0; i < 40; i++) fprintf(f, "{\"prompt\": \"hello %d\", \"response\": \"hi %d\"}\n%s", i, i, i == 3 ? "\n" : "");
    fclose(f);
    o.mix_path = mix_path;
    o.mix_ratio = 0.5;
    o.prompt_template = "Q: {prompt}";
    rejection_stats mixed;
    CHECK_OK(rejection_run(model, tok, ps, rewards, &o, out_path, &mixed));
    file_summary fs5 = check_file(ps, &o);
    check_stats(&mixed, &fs5, &o);
    int64_t want = llround(0.5 * (double)mixed.kept);
    CHECK_INT(want < 40 ? want : 40, mixed.mixed);
    CHECK_INT(uncapped.kept, mixed.kept);
    char tmp_name[PATH_MAX + 64];
    snprintf(tmp_name, sizeof tmp_name, "%s.tmp", out_path);
    CHECK(!fs_exists(tmp_name));   /* the temp file was renamed into place */

    /* 6. Bad input fails cleanly and leaves the output as it was. */
    char *before = read_text(out_path);
    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof missing, "%s/no-such-mix.jsonl", tmp_root);
    o.mix_path = missing;
    CHECK_FAILS(rejection_run(model, tok, ps, rewards, &o, out_path, NULL), "no-such-mix.jsonl");
    write_text(mix_path, "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\"}\n");
    o.mix_path = mix_path;
    CHECK_FAILS(rejection_run(model, tok, ps, rewards, &o, out_path, NULL), "mix.jsonl:2");
    write_text(mix_path, "{\"prompt\": \"a\", \"response\": \"b\"}\nnot json\n");
    CHECK_FAILS(rejection_run(model, tok, ps, rewards, &o, out_path, NULL), "mix.jsonl:2");
    o.mix_path = NULL;
    o.mix_ratio = 0;
    CHECK_FAILS(rejection_run(model, tok, ps, format_only, &o, out_path, NULL), "verdict reward");
    o.samples_per_prompt = 0;
    CHECK_FAILS(rejection_run(model, tok, ps, rewards, &o, out_path, NULL), "samples_per_prompt");
    o.samples_per_prompt = 4;
    o.mix_ratio = 1;
    CHECK_FAILS(rejection_run(model, tok, ps, rewards, &o, out_path, NULL), "mix_path");
    char *after = read_text(out_path);
    CHECK(before && after && !strcmp(before, after));
    free(before);
    free(after);

    reward_set_free(rewards);
    reward_set_free(format_only);
    problem_set_free(ps);
    tokenizer_free(tok);
    lm_free(model);
    backend_free(be);
    fs_remove_tree(tmp_root);
    TEST_MAIN_END();
}
