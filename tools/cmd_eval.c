/* `grpo eval --model DIR --data F.jsonl [--k 8]`: held-out pass@1, pass@k, maj@k and mean
 * completion length of a model, with the same sampling and verifiers as training. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "data/template.h"
#include "model/lm.h"
#include "model/tokenizer.h"
#include "rl/grpo_train.h"
#include "tools/args.h"
#include "tools/commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: grpo eval --model DIR --data F.jsonl [options]\n\n"
               "Samples k completions per line and prints {\"pass@1\", \"pass@k\", \"maj@k\", \"mean_length\",\n"
               "\"k\", \"problems\"} as JSON. pass@1 is the mean correctness over the k samples, pass@k the\n"
               "unbiased estimator (Chen et al. 2021), maj@k the share of problems whose most common\n"
               "extracted answer is correct.\n\n"
               "  --k N              samples per problem (default 8)\n"
               "  --reward NAME      verdict reward: accuracy (math lines with \"answer\", default),\n"
               "                     countdown (lines with \"numbers\", \"target\") or code\n"
               "  --template T       prompt template with {fields} (default: the R1-Zero template)\n"
               "  --temperature X    (default 1.0)   --top-p X (default 1.0)   --top-k N (default 0)\n"
               "  --max-tokens N     completion tokens at most (default 256)\n"
               "  --max-problems N   use the first N lines (default all)\n"
               "  --seed S           (default 0)\n"
               "  --precision P      compute precision of the projections: fp32 (default), bf16, fp8\n"
               "  --tokenizer DIR    (default: the model directory, else the built-in vocabulary)\n");
}

int cmd_eval(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) { usage(stdout); return 0; }
    const char *model_dir = NULL, *data = NULL, *reward = "accuracy", *tmpl = template_r1_zero, *tok_dir = NULL, *v;
    int64_t k = 8, max_tokens = 256, max_problems = 0, seed = 0, top_k = 0;
    double temperature = 1.0, top_p = 1.0;
    quant_precision precision = QUANT_FP32;
    for (int i = 1; i < argc; i++) {
        int m;
#define FLAG(name) ((m = arg_match(argc, argv, &i, name, &v)) != 0)
        if (FLAG("--model")) { if (m < 0) return 2; model_dir = v; }
        else if (FLAG("--data")) { if (m < 0) return 2; data = v; }
        else if (FLAG("--reward")) { if (m < 0) return 2; reward = v; }
        else if (FLAG("--template")) { if (m < 0) return 2; tmpl = v; }
        else if (FLAG("--tokenizer")) { if (m < 0) return 2; tok_dir = v; }
        else if (FLAG("--k")) { if (m < 0 || !arg_int("eval", "--k", v, 1, 4096, &k)) return 2; }
        else if (FLAG("--max-tokens")) { if (m < 0 || !arg_int("eval", "--max-tokens", v, 1, 1 << 20, &max_tokens)) return 2; }
        else if (FLAG("--max-problems")) { if (m < 0 || !arg_int("eval", "--max-problems", v, 0, 1 << 30, &max_problems)) return 2; }
        else if (FLAG("--seed")) { if (m < 0 || !arg_int("eval", "--seed", v, 0, INT64_MAX, &seed)) return 2; }
        else if (FLAG("--top-k")) { if (m < 0 || !arg_int("eval", "--top-k", v, 0, 1 << 30, &top_k)) return 2; }
        else if (FLAG("--temperature")) { if (m < 0 || !arg_double("eval", "--temperature", v, 0, 100, &temperature)) return 2; }
        else if (FLAG("--precision")) {
            if (m < 0) return 2;
            if (quant_precision_parse(v, "--precision", &precision)) {
                fprintf(stderr, "grpo eval: %s\n", grpo_error_message());
                return 2;
            }
        }
        else if (FLAG("--top-p")) { if (m < 0 || !arg_double("eval", "--top-p", v, 1e-9, 1, &top_p)) return 2; }
        else { fprintf(stderr, "grpo eval: unknown option '%s'\n", argv[i]); return 2; }
#undef FLAG
    }
    if (!model_dir || !data) { usage(stderr); return 2; }
    int kind = -1;
    for (int i = 0; reward_names[i]; i++)
        if (!strcmp(reward_names[i], reward)) kind = i;
    if (kind < 0 || (strcmp(reward, "accuracy") && strcmp(reward, "countdown") && strcmp(reward, "code"))) {
        fprintf(stderr, "grpo eval: --reward: expected accuracy, countdown or code, found '%s'\n", reward);
        return 2;
    }
    grpo_config cfg = grpo_config_default();
    cfg.eval_num_generations = (int)k;
    cfg.max_completion_length = (int)max_tokens;
    cfg.eval_max_problems = (int)max_problems;
    cfg.seed = (uint64_t)seed;
    cfg.eval_sampling.temperature = (float)temperature;
    cfg.eval_sampling.top_p = (float)top_p;
    cfg.eval_sampling.top_k = (int)top_k;
    cfg.sampling = cfg.eval_sampling;
    backend *be = backend_cpu_create();
    lm *model = NULL;
    tokenizer *tok = NULL;
    problem_set *ps = NULL;
    reward_set *rewards = NULL;
    reward_entry entry = {.kind = kind, .weight = 1.0};
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/tokenizer.json", model_dir);
    grpo_status s = lm_load_dir(be, model_dir, &model);
    if (!s) s = lm_set_precision(model, precision);
    if (!s) s = tok_dir ? tokenizer_load_dir(tok_dir, &tok)
                        : fs_exists(probe) ? tokenizer_load_dir(model_dir, &tok) : tokenizer_builtin_create(&tok);
    if (!s) s = problem_set_load(data, tok, tmpl, model->max_position_embeddings - (int)max_tokens, &ps);
    if (!s) s = reward_set_create(&entry, 1, &rewards);
    eval_summary es;
    if (!s) s = grpo_evaluate(&cfg, model, tok, ps, rewards, &es);
    if (!s)
        printf("{\"pass@1\": %.6f, \"pass@k\": %.6f, \"maj@k\": %.6f, \"mean_length\": %.3f, \"k\": %d, "
               "\"problems\": %d}\n", es.pass_at_1, es.pass_at_k, es.maj_at_k, es.mean_length, es.k, es.problems);
    else
        fprintf(stderr, "grpo eval: %s\n", grpo_error_message());
    reward_set_free(rewards);
    problem_set_free(ps);
    tokenizer_free(tok);
    lm_free(model);
    backend_free(be);
    return grpo_exit_code(s);
}
