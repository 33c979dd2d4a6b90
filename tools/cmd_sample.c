/* `grpo sample --model DIR --data F.jsonl -n G`: G sampled completions per dataset line,
 * through the rollout engine (rollouts/rollout.h), as JSONL. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "data/jsonl.h"
#include "data/template.h"
#include "model/lm.h"
#include "model/tokenizer.h"
#include "rollouts/rollout.h"
#include "tools/args.h"
#include "tools/commands.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: grpo sample --model DIR --data F.jsonl -n G [options]\n\n"
            "Samples G completions for every line of F.jsonl (prompt = the template filled with\n"
            "the line's fields) and writes one JSON object per completion:\n"
            "  {\"index\", \"id\", \"sample\", \"prompt\", \"completion\", \"tokens\", \"logprobs\",\n"
            "   \"policy_logprobs\", \"finish_reason\": \"stop\"|\"length\", \"answer\" (when the line has one)}\n"
            "completion: the text (invalid UTF-8 bytes and NUL shown as U+FFFD; tokens are exact).\n"
            "logprobs: of the tempered, truncated distribution drawn from; policy_logprobs:\n"
            "log softmax(logits / temperature), untruncated (what GRPO's ratio uses).\n\n"
            "options:\n"
            "  --template T        prompt template with {field} placeholders (default: R1-Zero)\n"
            "  --temperature X     default 1 (0 = greedy)\n"
            "  --top-p X           default 1\n"
            "  --top-k K           default 0 (off)\n"
            "  --min-p X           default 0\n"
            "  --max-tokens N      completion tokens at most (default 256)\n"
            "  --stop S            a stop string (repeatable, up to %d)\n"
            "  --seed S            line i draws with seed f(S, i) (default 0)\n"
            "  --out F             output file (default: stdout)\n"
            "  --max-num-seqs N    sequences decoding at once (default 64)\n"
            "  --cache-mib X       cache pool size (default 256)\n"
            "  --threads N         CPU threads (default: OpenMP's)\n"
            "  --precision P       compute precision of the projections: fp32 (default), bf16, fp8\n"
            "  --speculative-mtp   the model's MTP module drafts, the main model verifies (same output)\n",
            ROLLOUT_MAX_STOP);
}

typedef struct {
    char **prompts;        /* rendered */
    json_t **lines;        /* kept for id / answer */
    int n, cap;
} dataset;

static void dataset_free(dataset *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->prompts[i]);
        json_decref(d->lines[i]);
    }
    free(d->prompts);
    free(d->lines);
}

static grpo_status load(const char *path, const char *tmpl, dataset *d) {
    jsonl_reader *r;
    GRPO_TRY(jsonl_open(path, &r));
    grpo_status s = GRPO_OK;
    for (;;) {
        json_t *obj;
        if ((s = jsonl_next(r, &obj)) || !obj) break;
        char origin[512];
        snprintf(origin, sizeof origin, "%s:%ld", jsonl_name(r), jsonl_line(r));
        char *text;
        if ((s = template_render(tmpl, obj, origin, &text))) break;
        if (d->n == d->cap) {
            int cap = d->cap ? 2 * d->cap : 64;
            char **p = realloc(d->prompts, (size_t)cap * sizeof *p);
            if (p) d->prompts = p;
            json_t **l = realloc(d->lines, (size_t)cap * sizeof *l);
            if (l) d->lines = l;
            if (!p || !l) {
                free(text);
                s = grpo_fail(GRPO_ERR_NOMEM, "out of memory reading %s", path);
                break;
            }
            d->cap = cap;
        }
        d->prompts[d->n] = text;
        d->lines[d->n++] = json_incref(obj);
    }
    jsonl_close(r);
    return s;
}

static json_t *float_array(const float *x, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real((double)x[i]));
    return a;
}

/* The text as valid UTF-8 without NUL (JSON strings must be valid UTF-8, and our JSONL
 * reader, like jansson's default, refuses \u0000): each invalid byte and each NUL becomes
 * U+FFFD, as Python's bytes.decode(errors="replace") does for lone bytes. The caller frees. */
static char *utf8_replace_invalid(const char *s, size_t n, size_t *out_len) {
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        int len = *p == 0 ? 0 : *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && p + len <= end;
        for (int k = 1; ok && k < len; k++) ok = (p[k] & 0xC0) == 0x80;
        if (ok && len == 2) ok = *p >= 0xC2;   /* no overlong forms */
        if (ok && len == 3) ok = !(*p == 0xE0 && p[1] < 0xA0) && !(*p == 0xED && p[1] >= 0xA0);
        if (ok && len == 4) ok = !(*p == 0xF0 && p[1] < 0x90) && *p <= 0xF4 && !(*p == 0xF4 && p[1] >= 0x90);
        if (ok) {
            memcpy(o, p, (size_t)len);
            o += len;
            p += len;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p++;
        }
    }
    *o = 0;
    *out_len = (size_t)(o - out);
    return out;
}

static grpo_status write_sample(jsonl_writer *w, const dataset *d, int index, const rollout_sample *s) {
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer(index));
    json_t *id = json_object_get(d->lines[index], "id");
    if (id) json_object_set(o, "id", id);
    json_object_set_new(o, "sample", json_integer(s->sample_index));
    json_object_set_new(o, "prompt", json_string(d->prompts[index]));   /* from JSON: valid UTF-8 */
    size_t text_len = 0;
    char *text = s->text ? utf8_replace_invalid(s->text, s->text_len, &text_len) : NULL;
    if (s->text && !text) {
        json_decref(o);
        return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    }
    json_object_set_new(o, "completion", text ? json_stringn(text, text_len) : json_null());
    free(text);
    json_t *tokens = json_array();
    for (int i = 0; i < s->n_tokens; i++) json_array_append_new(tokens, json_integer(s->tokens[i]));
    json_object_set_new(o, "tokens", tokens);
    json_object_set_new(o, "logprobs", float_array(s->logprobs, s->n_tokens));
    json_object_set_new(o, "policy_logprobs", float_array(s->policy_logprobs, s->n_tokens));
    json_object_set_new(o, "finish_reason", json_string(s->finish_reason == ROLLOUT_FINISH_STOP ? "stop" : "length"));
    json_t *answer = json_object_get(d->lines[index], "answer");
    if (answer) json_object_set(o, "answer", answer);
    grpo_status st = jsonl_write_object(w, o);
    json_decref(o);
    return st;
}

int cmd_sample(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) { usage(stdout); return 0; }
    const char *model_dir = NULL, *data = NULL, *out_path = "-", *tmpl = template_r1_zero, *value;
    int64_t G = 0, seed = 0, top_k = 0, max_tokens = 256, max_num_seqs = 64, threads = 0;
    double temperature = 1, top_p = 1, min_p = 0, cache_mib = 256;
    const char *stops[ROLLOUT_MAX_STOP];
    int n_stop = 0, speculative = 0;
    quant_precision precision = QUANT_FP32;
    for (int i = 1; i < argc; i++) {
        int m;
        if ((m = arg_match(argc, argv, &i, "--model", &value))) { if (m < 0) return 2; model_dir = value; }
        else if ((m = arg_match(argc, argv, &i, "--data", &value))) { if (m < 0) return 2; data = value; }
        else if ((m = arg_match(argc, argv, &i, "-n", &value))) {
            if (m < 0 || !arg_int("sample", "-n", value, 1, 1 << 20, &G)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--template", &value))) { if (m < 0) return 2; tmpl = value; }
        else if ((m = arg_match(argc, argv, &i, "--out", &value))) { if (m < 0) return 2; out_path = value; }
        else if ((m = arg_match(argc, argv, &i, "--temperature", &value))) {
            if (m < 0 || !arg_double("sample", "--temperature", value, 0, 100, &temperature)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--top-p", &value))) {
            if (m < 0 || !arg_double("sample", "--top-p", value, 1e-9, 1, &top_p)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--top-k", &value))) {
            if (m < 0 || !arg_int("sample", "--top-k", value, 0, INT32_MAX, &top_k)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--min-p", &value))) {
            if (m < 0 || !arg_double("sample", "--min-p", value, 0, 1, &min_p)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--max-tokens", &value))) {
            if (m < 0 || !arg_int("sample", "--max-tokens", value, 1, 1 << 24, &max_tokens)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--seed", &value))) {
            if (m < 0 || !arg_int("sample", "--seed", value, 0, INT64_MAX, &seed)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--max-num-seqs", &value))) {
            if (m < 0 || !arg_int("sample", "--max-num-seqs", value, 1, 1 << 16, &max_num_seqs)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--cache-mib", &value))) {
            if (m < 0 || !arg_double("sample", "--cache-mib", value, 1e-3, 1e9, &cache_mib)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--threads", &value))) {
            if (m < 0 || !arg_int("sample", "--threads", value, 1, 4096, &threads)) return 2;
        } else if ((m = arg_match(argc, argv, &i, "--precision", &value))) {
            if (m < 0) return 2;
            if (quant_precision_parse(value, "--precision", &precision)) {
                fprintf(stderr, "grpo sample: %s\n", grpo_error_message());
                return 2;
            }
        } else if (!strcmp(argv[i], "--speculative-mtp")) {
            speculative = 1;
        } else if ((m = arg_match(argc, argv, &i, "--stop", &value))) {
            if (m < 0) return 2;
            if (n_stop == ROLLOUT_MAX_STOP) {
                fprintf(stderr, "grpo sample: --stop: at most %d stop strings\n", ROLLOUT_MAX_STOP);
                return 2;
            }
            stops[n_stop++] = value;
        } else {
            fprintf(stderr, "grpo sample: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!model_dir || !data || G < 1) { usage(stderr); return 2; }
    if (template_validate(tmpl, "--template")) {
        fprintf(stderr, "grpo sample: %s\n", grpo_error_message());
        return 2;
    }
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads((int)threads);
#endif

    backend *be = backend_cpu_create();
    lm *model = NULL;
    tokenizer *tok = NULL;
    rollout_engine *engine = NULL;
    jsonl_writer *w = NULL;
    dataset d = {0};
    grpo_status s = lm_load_dir(be, model_dir, &model);
    if (!s) s = lm_set_precision(model, precision);
    if (!s) s = tokenizer_load_dir(model_dir, &tok);
    if (!s) s = load(data, tmpl, &d);
    rollout_config cfg;
    rollout_config_defaults(&cfg);
    cfg.sampling.sampler = (sampler_params){(float)temperature, (int)top_k, (float)top_p, (float)min_p};
    cfg.sampling.max_tokens = (int)max_tokens;
    for (int i = 0; i < n_stop; i++) cfg.sampling.stop[i] = stops[i];
    cfg.sampling.n_stop = n_stop;
    cfg.max_num_seqs = (int)max_num_seqs;
    cfg.cache_mib = cache_mib;
    cfg.speculative_mtp = speculative;
    if (!s) s = rollout_engine_create(model, tok, &cfg, &engine);
    if (!s) s = jsonl_writer_open(out_path, 0, &w);
    /* prompts in chunks, so outputs stream and memory stays bounded by the chunk */
    const int chunk = 1024;
    rollout_prompt *prompts = calloc((size_t)chunk, sizeof *prompts);
    if (!s && !prompts) s = grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    int64_t generated = 0, drafts = 0, accepted = 0;
    double seconds = 0;
    for (int start = 0; !s && start < d.n; start += chunk) {
        int n = d.n - start < chunk ? d.n - start : chunk;
        for (int i = 0; i < n; i++)
            prompts[i] = (rollout_prompt){.text = d.prompts[start + i],
                                          .seed = rollout_sample_seed((uint64_t)seed, start + i)};
        rollout_output out;
        s = rollout_generate(engine, prompts, n, (int)G, &out);
        if (s) break;
        for (int i = 0; !s && i < n * (int)G; i++) s = write_sample(w, &d, start + i / (int)G, &out.samples[i]);
        generated += out.stats.generated_tokens;
        seconds += out.stats.total_seconds;
        drafts += out.stats.draft_tokens;
        accepted += out.stats.accepted_tokens;
        rollout_output_deinit(&out);
    }
    grpo_status cs = jsonl_writer_close(w);
    if (!s) s = cs;
    if (s) fprintf(stderr, "grpo sample: %s\n", grpo_error_message());
    else
        fprintf(stderr, "grpo sample: %d prompts x %d samples, %lld tokens in %.2f s (%.1f tokens/s)\n", d.n, (int)G,
                (long long)generated, seconds, seconds > 0 ? generated / seconds : 0.0);
    if (!s && speculative)
        fprintf(stderr, "grpo sample: MTP drafts accepted %lld of %lld (%.1f%%)\n", (long long)accepted,
                (long long)drafts, drafts ? 100.0 * accepted / drafts : 0.0);
    free(prompts);
    dataset_free(&d);
    rollout_engine_free(engine);
    tokenizer_free(tok);
    lm_free(model);
    backend_free(be);
    return grpo_exit_code(s);
}
