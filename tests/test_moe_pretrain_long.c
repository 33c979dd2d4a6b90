/* Pretraining the tiny-moe preset (configs/models/tiny-moe.json, smaller depth) on
 * synthetic arithmetic text (data/generate.h, built-in tokenizer), next-token loss plus
 * the MTP loss, AdamW. Two runs from the same initialisation and data:
 *   gamma > 0: auxiliary-loss-free balancing (V3 report eq. 16, deepseek_v3_update_bias
 *              after each optimizer step), gamma = 0: none.
 * From HF's initialisation the router drifts towards a few experts without balancing (the
 * max violation, max load / mean load - 1 of the worst MoE layer over a batch, grows from
 * about 1.4 to about 1.8 here); with balancing it must fall under a stated bound and be
 * clearly lower than without. Also: the loss falls, the MTP loss falls. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "data/generate.h"
#include "model/deepseek_v3_impl.h"
#include "model/presets.h"
#include "model/tokenizer.h"
#include "rl/optim.h"
#include "tests/harness.h"

#define STEPS 120
#define LAST 20                 /* steps averaged at the end */
#define VIOLATION_BOUND 0.6     /* with balancing, mean over the last steps */

static backend *be;

typedef struct {
    double first_loss, last_loss, first_mtp, last_mtp;
    double last_violation;      /* mean over the last LAST steps of the worst main MoE layer */
    double first_violation;
} run_result;

/* B rows of T tokens from arithmetic problems (prompt + worked response + eos). */
static int32_t *make_corpus(tokenizer *tok, size_t want, size_t *have) {
    int32_t *out = malloc(want * sizeof(int32_t));
    size_t n = 0;
    data_arith_options opt = {.difficulty = 2, .ops = "+-*"};
    char prompt[1024], answer[1024], response[2048], text[4096];
    for (uint64_t i = 0; n < want; i++) {
        data_arith_problem(99, i, &opt, prompt, answer, response, sizeof prompt);
        snprintf(text, sizeof text, "%s %s", prompt, response);
        int32_t *ids = NULL;
        int k = 0;
        if (tokenizer_encode(tok, text, strlen(text), &ids, &k) != GRPO_OK) break;
        for (int j = 0; j < k && n < want; j++) out[n++] = ids[j];
        if (n < want) out[n++] = tokenizer_eos_id(tok);
        free(ids);
    }
    *have = n;
    return out;
}

static run_result train(const deepseek_v3_config *cfg, float gamma, const int32_t *corpus, size_t corpus_len, int B,
                        int T) {
    run_result r = {0};
    deepseek_v3_model *m = NULL;
    optim *opt = NULL;
    CHECK_OK(deepseek_v3_create(be, cfg, &m));
    if (!m) return r;
    deepseek_v3_init_random(m, 1);
    param_set *ps = deepseek_v3_params(m);
    optim_config oc = optim_config_default();
    oc.learning_rate = 3e-3;
    CHECK_OK(deepseek_v3_reserve(m, B, T));
    CHECK_OK(param_set_alloc_grad(ps));
    CHECK_OK(optim_create(&oc, ps, &opt));
    int N = B * T, V = cfg->vocab_size;
    int32_t *ids = malloc(N * sizeof(int32_t)), *targets = malloc(N * sizeof(int32_t));
    float *logprobs = malloc(N * sizeof(float)), *lse = malloc(N * sizeof(float)), *dlp = malloc(N * sizeof(float));
    double sum_v = 0;
    size_t cursor = 0;
    for (int step = 0; step < STEPS && opt; step++) {
        for (int b = 0; b < B; b++) {
            if (cursor + T + 1 > corpus_len) cursor = 0;
            for (int t = 0; t < T; t++) {
                ids[b * T + t] = corpus[cursor + t];
                targets[b * T + t] = corpus[cursor + t + 1];
            }
            cursor += T;
        }
        param_set_zero_grad(ps);
        float *logits;
        double mtp = 0;
        CHECK_OK(deepseek_v3_forward(m, ids, NULL, B, T, &logits));
        double violation = deepseek_v3_max_violation(m);
        CHECK_OK(deepseek_v3_mtp_loss(m, 0.3f, &mtp));
        be->token_logprobs_forward(be, logprobs, lse, logits, targets, N, V);
        double loss = 0;
        for (int i = 0; i < N; i++) {
            loss -= logprobs[i];
            dlp[i] = -1.0f / N;
        }
        loss /= N;
        be->token_logprobs_backward(be, logits, logits, lse, targets, dlp, N, V);
        CHECK_OK(deepseek_v3_backward(m, logits));
        CHECK_OK(optim_step(opt, oc.learning_rate, NULL));
        deepseek_v3_update_bias(m, gamma);
        if (step < 5) {
            r.first_loss += loss / 5;
            r.first_mtp += mtp / 5;
            r.first_violation += violation / 5;
        }
        if (step >= STEPS - LAST) {
            r.last_loss += loss / LAST;
            r.last_mtp += mtp / LAST;
            sum_v += violation;
        }
        if (step % 20 == 0 || step == STEPS - 1)
            printf("gamma %.3g step %3d: loss %.4f mtp %.4f max violation %.3f\n", gamma, step, loss, mtp, violation);
    }
    r.last_violation = sum_v / LAST;
    free(ids);
    free(targets);
    free(logprobs);
    free(lse);
    free(dlp);
    optim_free(opt);
    deepseek_v3_free(m);
    return r;
}

int main(void) {
    be = backend_cpu_create();
    size_t len;
    const char *json = preset_find("tiny-moe", &len);
    CHECK(json != NULL);
    deepseek_v3_config cfg;
    CHECK_OK(hf_config_v3_parse(json, len, "preset tiny-moe", &cfg));
    cfg.num_hidden_layers = 3;   /* 1 dense + 2 MoE layers: the same router shapes, less time */
    tokenizer *tok = NULL;
    CHECK_OK(tokenizer_builtin_create(&tok));
    if (!json || !tok) TEST_MAIN_END();
    int B = 8, T = 64;
    size_t have = 0;
    int32_t *corpus = make_corpus(tok, (size_t)B * T * STEPS / 4, &have);
    printf("corpus: %zu tokens of arithmetic text\n", have);

    run_result with = train(&cfg, 0.01f, corpus, have, B, T);
    run_result without = train(&cfg, 0.0f, corpus, have, B, T);
    printf("gamma 0.01: loss %.3f -> %.3f, MTP %.3f -> %.3f, max violation %.3f -> %.3f (last %d steps)\n",
           with.first_loss, with.last_loss, with.first_mtp, with.last_mtp, with.first_violation, with.last_violation,
           LAST);
    printf("gamma 0   : loss %.3f -> %.3f, MTP %.3f -> %.3f, max violation %.3f -> %.3f\n", without.first_loss,
           without.last_loss, without.first_mtp, without.last_mtp, without.first_violation, without.last_violation);
    /* learning: the built-in vocabulary's 400-way uniform loss is ln 400 = 5.99 */
    CHECK_MSG(with.last_loss < with.first_loss - 1.5, "loss fell only %.3f -> %.3f", with.first_loss, with.last_loss);
    CHECK_MSG(without.last_loss < without.first_loss - 1.5, "loss (gamma 0) fell only %.3f -> %.3f",
              without.first_loss, without.last_loss);
    CHECK_MSG(with.last_mtp < with.first_mtp - 0.3, "MTP loss fell only %.3f -> %.3f", with.first_mtp, with.last_mtp);
    /* balance */
    CHECK_MSG(with.last_violation < VIOLATION_BOUND, "max violation with balancing %.3f >= %.2f", with.last_violation,
              VIOLATION_BOUND);
    CHECK_MSG(without.last_violation > with.last_violation + 0.5, "without balancing the max violation is %.3f, with "
              "%.3f: expected clearly worse", without.last_violation, with.last_violation);
    free(corpus);
    tokenizer_free(tok);
    backend_free(be);
    TEST_MAIN_END();
}
