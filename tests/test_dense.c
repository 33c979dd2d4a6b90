/* The dense Qwen2/Llama model (model/dense.h) on the CPU backend:
 *  - parity with transformers: logits (default and explicit positions) and parameter
 *    gradients against tests/fixtures/dense/ made by make_dense_fixtures.py;
 *  - finite-difference check of the whole model's backward (qwen2 with biases, llama
 *    with and without biases, tied and untied, GQA), for a weighted sum of logits and a
 *    token cross-entropy; embedding gradients through the ids;
 *  - save -> load round trip; causality (right padding); error paths.
 * Set GRPO_DENSE_EXPORT=DIR to write the tiny C-saved models + their logits into
 * DIR/c_saved_{qwen2,llama} (instead of checking the committed ones), which
 * make_dense_fixtures.py then loads in transformers. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/safetensors.h"
#include "model/dense.h"
#include "tests/harness.h"

static backend *be;

/* ---- helpers ---- */

static dense_config tiny_config(const char *type, int tied, int bias, int hidden, int heads, int kv_heads,
                                int head_dim) {
    dense_config c;
    hf_config_dense_defaults(&c, type);
    c.vocab_size = 23;
    c.hidden_size = hidden;
    c.intermediate_size = 24;
    c.num_hidden_layers = 2;
    c.num_attention_heads = heads;
    c.num_key_value_heads = kv_heads;
    c.head_dim = head_dim;
    c.max_position_embeddings = 32;
    c.rope.theta = 100.0;   /* small theta: every rotary frequency turns visibly over a few tokens */
    c.rms_norm_eps = 1e-5;
    c.tie_word_embeddings = tied;
    c.attention_bias = bias;
    c.initializer_range = 0.2;   /* large weights: O(1) activations, gradients well above rounding */
    return c;
}

/* Sets every norm weight to 1 + small noise and every bias to small noise, so the
 * finite-difference check sees them act (random init leaves them at 1 and 0). */
static void perturb_norms_and_biases(dense_model *m, uint64_t seed) {
    param_set *ps = dense_model_params(m);
    backend *mb = dense_model_backend(m);
    for (int v = 0; v < ps->count; v++) {
        const param_view *pv = &ps->views[v];
        int is_bias = strstr(pv->name, ".bias") != NULL, is_norm = strstr(pv->name, "norm") != NULL;
        if (!is_bias && !is_norm) continue;
        float *h = malloc(pv->numel * sizeof(float));
        for (size_t i = 0; i < pv->numel; i++) {
            float r = 2.0f * ((float)((seed * 2654435761u + v * 97 + i * 7919) % 1000) / 1000.0f) - 1.0f;
            h[i] = is_norm ? 1.0f + 0.2f * r : 0.2f * r;
        }
        mb->to_device(mb, param_ptr(ps, v), h, pv->numel * sizeof(float));
        free(h);
    }
}

static uint64_t lcg_state = 12345;
static double lcg_uniform(void) {   /* [0, 1) */
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}

/* loss = sum_i w[i] * logits[i] in double (kind 0), or the token cross-entropy
 * -sum_i logprob(targets[i]) (kind 1). */
typedef struct {
    int kind;
    int B, T;
    int32_t *ids;        /* backend */
    int32_t *targets;    /* backend, kind 1 */
    float *w;            /* host [N*V], kind 0 */
    float *host_logits;  /* host [N*V] */
    float *logprobs, *lse, *dlogprobs, *dlogits;   /* backend scratch */
} loss_spec;

static double eval_loss(dense_model *m, loss_spec *ls) {
    int N = ls->B * ls->T, V = dense_model_config(m)->vocab_size;
    float *logits = NULL;
    CHECK_OK(dense_forward(m, ls->ids, NULL, ls->B, ls->T, &logits));
    double loss = 0;
    if (ls->kind == 0) {
        be->to_host(be, ls->host_logits, logits, (size_t)N * V * sizeof(float));
        for (long i = 0; i < (long)N * V; i++) loss += (double)ls->w[i] * ls->host_logits[i];
    } else {
        be->token_logprobs_forward(be, ls->logprobs, ls->lse, logits, ls->targets, N, V);
        be->to_host(be, ls->host_logits, ls->logprobs, (size_t)N * sizeof(float));
        for (int i = 0; i < N; i++) loss -= ls->host_logits[i];
    }
    return loss;
}

/* Forward + backward: the analytic gradients accumulate into the (zeroed) grads. */
static void eval_grad(dense_model *m, loss_spec *ls) {
    int N = ls->B * ls->T, V = dense_model_config(m)->vocab_size;
    param_set_zero_grad(dense_model_params(m));
    eval_loss(m, ls);
    float *logits = NULL;
    CHECK_OK(dense_forward(m, ls->ids, NULL, ls->B, ls->T, &logits));
    if (ls->kind == 0) {
        be->to_device(be, ls->dlogits, ls->w, (size_t)N * V * sizeof(float));
    } else {
        be->token_logprobs_forward(be, ls->logprobs, ls->lse, logits, ls->targets, N, V);
        float *host = malloc(N * sizeof(float));
        for (int i = 0; i < N; i++) host[i] = -1.0f;   /* d loss / d logprob */
        be->to_device(be, ls->dlogprobs, host, N * sizeof(float));
        free(host);
        be->token_logprobs_backward(be, ls->dlogits, logits, ls->lse, ls->targets, ls->dlogprobs, N, V);
    }
    CHECK_OK(dense_backward(m, ls->dlogits));
}

static float get1(const float *p) { float x; be->to_host(be, &x, p, sizeof x); return x; }
static void set1(float *p, float x) { be->to_device(be, p, &x, sizeof x); }

/* Central differences (eps = 5e-3) on `per_view` random entries of every tensor (all
 * entries when smaller). Tolerance: |analytic - numeric| <= 2e-2 * max(|analytic|,
 * |numeric|) + atol with atol = 1e-4 * (largest |gradient| of the model): float32 logits
 * carry ~6e-8 relative rounding, which summed over the N*V terms of the loss and divided
 * by 2 eps is ~1e-4 of the loss scale; the truncation error (eps / weight scale)^2 is
 * ~1e-3 relative. Returns the number of entries checked. */
static int finite_difference_check(dense_model *m, loss_spec *ls, const char *label, int per_view) {
    param_set *ps = dense_model_params(m);
    eval_grad(m, ls);
    float *grad = malloc(ps->total * sizeof(float));
    be->to_host(be, grad, ps->grad, ps->total * sizeof(float));
    double gmax = 0;
    for (size_t i = 0; i < ps->total; i++) gmax = fmax(gmax, fabs(grad[i]));
    const double eps = 5e-3, rtol = 2e-2, atol = 1e-4 * gmax;
    int checked = 0, failed = 0, significant = 0;
    double worst = 0;
    for (int v = 0; v < ps->count; v++) {
        const param_view *pv = &ps->views[v];
        int n = (size_t)per_view < pv->numel ? per_view : (int)pv->numel;
        for (int k = 0; k < n; k++) {
            size_t idx = n == (int)pv->numel ? (size_t)k : (size_t)(lcg_uniform() * pv->numel);
            float *p = ps->data + pv->offset + idx;
            float orig = get1(p);
            set1(p, orig + (float)eps);
            double lp = eval_loss(m, ls);
            set1(p, orig - (float)eps);
            double lminus = eval_loss(m, ls);
            set1(p, orig);
            double numeric = (lp - lminus) / (2 * eps), analytic = grad[pv->offset + idx];
            double err = fabs(analytic - numeric), allowed = rtol * fmax(fabs(analytic), fabs(numeric)) + atol;
            if (fmax(fabs(analytic), fabs(numeric)) > 10 * atol) significant++;
            worst = fmax(worst, err / allowed);
            checked++;
            if (!(err <= allowed)) {
                if (failed++ < 8)
                    fprintf(stderr, "%s: %s[%zu]: analytic %.6g numeric %.6g\n", label, pv->name, idx, analytic,
                            numeric);
            }
        }
    }
    CHECK_MSG(failed == 0, "%s: %d of %d gradient entries off", label, failed, checked);
    printf("%s: %d entries of %d tensors (%d above 10 atol), max |gradient| %.3g, worst error / allowed %.3g\n",
           label, checked, ps->count, significant, gmax, worst);
    free(grad);
    return checked;
}

static void loss_spec_init(loss_spec *ls, const dense_config *c, int kind, int B, int T) {
    memset(ls, 0, sizeof *ls);
    ls->kind = kind;
    ls->B = B;
    ls->T = T;
    int N = B * T, V = c->vocab_size;
    int32_t *ids = malloc(N * sizeof(int32_t)), *targets = malloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++) {
        ids[i] = (int32_t)(lcg_uniform() * (V - 4));   /* ids avoid the last 4 tokens */
        targets[i] = (int32_t)(lcg_uniform() * V);
    }
    ids[N - 1] = ids[0];   /* a repeated id: its embedding gradient must sum both uses */
    ls->ids = be->alloc(be, N * sizeof(int32_t));
    ls->targets = be->alloc(be, N * sizeof(int32_t));
    be->to_device(be, ls->ids, ids, N * sizeof(int32_t));
    be->to_device(be, ls->targets, targets, N * sizeof(int32_t));
    free(ids);
    free(targets);
    ls->w = malloc((size_t)N * V * sizeof(float));
    for (long i = 0; i < (long)N * V; i++) ls->w[i] = (float)(2 * lcg_uniform() - 1);
    ls->host_logits = malloc((size_t)N * V * sizeof(float));
    ls->logprobs = be->alloc(be, N * sizeof(float));
    ls->lse = be->alloc(be, N * sizeof(float));
    ls->dlogprobs = be->alloc(be, N * sizeof(float));
    ls->dlogits = be->alloc(be, (size_t)N * V * sizeof(float));
}

static void loss_spec_free(loss_spec *ls) {
    be->free(be, ls->ids);
    be->free(be, ls->targets);
    be->free(be, ls->logprobs);
    be->free(be, ls->lse);
    be->free(be, ls->dlogprobs);
    be->free(be, ls->dlogits);
    free(ls->w);
    free(ls->host_logits);
}

/* ---- finite differences of the whole model ---- */

static void test_gradients(const char *label, dense_config c, int kind) {
    dense_model *m = NULL;
    CHECK_OK(dense_model_create(be, &c, &m));
    if (!m) return;
    dense_init_random(m, 7);
    perturb_norms_and_biases(m, 3);
    int B = 2, T = 5;
    CHECK_OK(dense_reserve(m, B, T));
    CHECK_OK(param_set_alloc_grad(dense_model_params(m)));
    loss_spec ls;
    loss_spec_init(&ls, &c, kind, B, T);
    finite_difference_check(m, &ls, label, 6);

    /* Embedding rows of tokens that never appear get no gradient unless the lm_head is
     * the embedding (tied); then every row gets the output-projection part. */
    param_set *ps = dense_model_params(m);
    int ev = param_find(ps, "model.embed_tokens.weight");
    float row[64];
    int D = c.hidden_size;
    be->to_host(be, row, param_grad_ptr(ps, ev) + (size_t)(c.vocab_size - 1) * D, D * sizeof(float));
    double norm = 0;
    for (int i = 0; i < D; i++) norm += fabs(row[i]);
    if (c.tie_word_embeddings) CHECK_MSG(norm > 0, "%s: tied embedding row of an unused token has zero gradient", label);
    else CHECK_MSG(norm == 0, "%s: embedding row of an unused token has gradient %g", label, norm);

    /* Backward accumulates: a second pass doubles every gradient. */
    float *once = malloc(ps->total * sizeof(float)), *twice = malloc(ps->total * sizeof(float));
    be->to_host(be, once, ps->grad, ps->total * sizeof(float));
    float *logits = NULL;
    CHECK_OK(dense_forward(m, ls.ids, NULL, B, T, &logits));
    CHECK_OK(dense_backward(m, ls.dlogits));
    be->to_host(be, twice, ps->grad, ps->total * sizeof(float));
    int bad = 0;
    for (size_t i = 0; i < ps->total; i++)
        if (fabsf(twice[i] - 2 * once[i]) > 1e-5f * fabsf(once[i]) + 1e-12f) bad++;
    CHECK_MSG(bad == 0, "%s: %d gradient entries did not accumulate", label, bad);
    free(once);
    free(twice);
    loss_spec_free(&ls);
    dense_model_free(m);
}

/* ---- parity with transformers ---- */

static const st_tensor *need(const st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    CHECK_MSG(t != NULL, "fixture lacks %s", name);
    return t;
}

static void test_parity(const char *name) {
    char dir[512], ref_path[600];
    snprintf(dir, sizeof dir, "%s", harness_source_path("tests/fixtures/dense"));
    snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/%s", name);
    snprintf(ref_path, sizeof ref_path, "%s/reference.safetensors", dir);
    dense_model *m = NULL;
    CHECK_OK(dense_model_load_dir(be, dir, &m));
    st_file *ref = NULL;
    CHECK_OK(st_open(ref_path, &ref));
    if (!m || !ref) { dense_model_free(m); st_close(ref); return; }
    const st_tensor *ids_t = need(ref, "input_ids"), *pos_t = need(ref, "position_ids");
    const st_tensor *logits_t = need(ref, "logits"), *logits_pos_t = need(ref, "logits_pos");
    const st_tensor *w_t = need(ref, "loss_weights");
    if (!ids_t || !pos_t || !logits_t || !logits_pos_t || !w_t) { dense_model_free(m); st_close(ref); return; }
    CHECK(ids_t->dtype == ST_I32 && ids_t->ndim == 2);
    int B = (int)ids_t->shape[0], T = (int)ids_t->shape[1], V = dense_model_config(m)->vocab_size, N = B * T;
    CHECK_INT((long long)N * V, logits_t->numel);

    int32_t *ids = be->alloc(be, N * sizeof(int32_t)), *pos = be->alloc(be, N * sizeof(int32_t));
    be->to_device(be, ids, ids_t->data, N * sizeof(int32_t));
    be->to_device(be, pos, pos_t->data, N * sizeof(int32_t));
    float *want = malloc((size_t)N * V * sizeof(float)), *got = malloc((size_t)N * V * sizeof(float));
    CHECK_OK(dense_reserve(m, B, T));

    /* Logits: max |got - want| / max |want| <= 1e-4 (float32 both sides; the sums differ
     * only in order). */
    float *logits = NULL;
    CHECK_OK(st_read_f32(logits_pos_t, want, (int64_t)N * V));
    CHECK_OK(dense_forward(m, ids, pos, B, T, &logits));
    be->to_host(be, got, logits, (size_t)N * V * sizeof(float));
    double rel_pos = harness_max_rel_err(got, want, (long)N * V, 1e-6);
    CHECK_MSG(rel_pos <= 1e-4, "%s: logits with position_ids: max relative error %.3g", name, rel_pos);

    CHECK_OK(st_read_f32(logits_t, want, (int64_t)N * V));
    CHECK_OK(dense_forward(m, ids, NULL, B, T, &logits));
    be->to_host(be, got, logits, (size_t)N * V * sizeof(float));
    double rel = harness_max_rel_err(got, want, (long)N * V, 1e-6);
    CHECK_MSG(rel <= 1e-4, "%s: logits: max relative error %.3g", name, rel);

    /* Gradients of sum(loss_weights * logits), tensor by tensor: max relative error <= 1e-4. */
    param_set *ps = dense_model_params(m);
    CHECK_OK(param_set_alloc_grad(ps));
    float *dlogits = be->alloc(be, (size_t)N * V * sizeof(float));
    CHECK_OK(st_read_f32(w_t, want, (int64_t)N * V));
    be->to_device(be, dlogits, want, (size_t)N * V * sizeof(float));
    CHECK_OK(dense_backward(m, dlogits));
    int n_grads = 0;
    double worst = 0;
    for (int i = 0; i < st_count(ref); i++) {
        const st_tensor *t = st_get(ref, i);
        if (strncmp(t->name, "grad.", 5) != 0) continue;
        int v = param_find(ps, t->name + 5);
        CHECK_MSG(v >= 0, "%s: no parameter %s", name, t->name + 5);
        if (v < 0) continue;
        size_t n = ps->views[v].numel;
        float *g_want = malloc(n * sizeof(float)), *g_got = malloc(n * sizeof(float));
        CHECK_OK(st_read_f32(t, g_want, (int64_t)n));
        be->to_host(be, g_got, param_grad_ptr(ps, v), n * sizeof(float));
        double e = harness_max_rel_err(g_got, g_want, (long)n, 1e-6);
        CHECK_MSG(e <= 1e-4, "%s: gradient of %s: max relative error %.3g", name, t->name + 5, e);
        worst = fmax(worst, e);
        n_grads++;
        free(g_want);
        free(g_got);
    }
    CHECK(n_grads >= 5);

    /* Inference-only activations (one layer's views shared) give the same logits bit for
     * bit, and refuse backward. */
    float *train_logits = malloc((size_t)N * V * sizeof(float));
    memcpy(train_logits, got, (size_t)N * V * sizeof(float));
    CHECK_OK(dense_reserve_inference(m, B, T));
    CHECK_OK(dense_forward(m, ids, NULL, B, T, &logits));
    be->to_host(be, got, logits, (size_t)N * V * sizeof(float));
    CHECK_MSG(memcmp(got, train_logits, (size_t)N * V * sizeof(float)) == 0, "%s: inference-only logits differ",
              name);
    CHECK_FAILS(dense_backward(m, dlogits), "inference only");
    free(train_logits);
    printf("parity %s: logits rel err %.3g (positions %.3g), %d gradients worst rel err %.3g\n", name, rel, rel_pos,
           n_grads, worst);
    be->free(be, dlogits);
    be->free(be, ids);
    be->free(be, pos);
    free(want);
    free(got);
    st_close(ref);
    dense_model_free(m);
}

/* ---- save / load, causality, errors ---- */

static char tmpdir[256];

static void remove_model_dir(const char *dir) {
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    rmdir(dir);
}

static void test_round_trip(dense_config c) {
    dense_model *m = NULL, *back = NULL;
    CHECK_OK(dense_model_create(be, &c, &m));
    if (!m) return;
    dense_init_random(m, 11);
    perturb_norms_and_biases(m, 5);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/model", tmpdir);
    CHECK_OK(dense_save(m, dir));
    CHECK_OK(dense_model_load_dir(be, dir, &back));
    if (!back) { dense_model_free(m); return; }
    const dense_config *b = dense_model_config(back);
    CHECK_STR(c.model_type, b->model_type);
    CHECK_INT(c.hidden_size, b->hidden_size);
    CHECK_INT(c.head_dim, b->head_dim);
    CHECK_INT(c.num_key_value_heads, b->num_key_value_heads);
    CHECK_INT(c.tie_word_embeddings, b->tie_word_embeddings);
    CHECK_INT(dense_config_qkv_bias(&c), dense_config_qkv_bias(b));
    CHECK_INT(dense_config_o_bias(&c), dense_config_o_bias(b));
    CHECK(c.rope.theta == b->rope.theta && c.rms_norm_eps == b->rms_norm_eps);

    int B = 2, T = 6, N = B * T, V = c.vocab_size;
    int32_t host_ids[12];
    for (int i = 0; i < N; i++) host_ids[i] = (i * 7 + 3) % V;
    int32_t *ids = be->alloc(be, sizeof host_ids);
    be->to_device(be, ids, host_ids, sizeof host_ids);
    CHECK_OK(dense_reserve(m, B, T));
    CHECK_OK(dense_reserve(back, B, T));
    float *l1 = NULL, *l2 = NULL;
    float *h1 = malloc((size_t)N * V * sizeof(float)), *h2 = malloc((size_t)N * V * sizeof(float));
    CHECK_OK(dense_forward(m, ids, NULL, B, T, &l1));
    be->to_host(be, h1, l1, (size_t)N * V * sizeof(float));
    CHECK_OK(dense_forward(back, ids, NULL, B, T, &l2));
    be->to_host(be, h2, l2, (size_t)N * V * sizeof(float));
    CHECK_MSG(memcmp(h1, h2, (size_t)N * V * sizeof(float)) == 0, "%s: logits differ after save -> load",
              c.model_type);

    /* Causality: row 0 truncated to its first 4 tokens (a right-padded shorter row)
     * gives the same logits for those 4 tokens. */
    float *l3 = NULL;
    float *h3 = malloc((size_t)4 * V * sizeof(float));
    CHECK_OK(dense_forward(back, ids, NULL, 1, 4, &l3));
    be->to_host(be, h3, l3, (size_t)4 * V * sizeof(float));
    double rel = harness_max_rel_err(h3, h2, 4L * V, 1e-6);
    CHECK_MSG(rel <= 1e-5, "prefix logits changed by later tokens: %.3g", rel);

    /* Explicit positions equal to the default ones give identical logits. */
    int32_t host_pos[12];
    for (int i = 0; i < N; i++) host_pos[i] = i % T;
    int32_t *pos = be->alloc(be, sizeof host_pos);
    be->to_device(be, pos, host_pos, sizeof host_pos);
    CHECK_OK(dense_forward(back, ids, pos, B, T, &l3));
    be->to_host(be, h1, l3, (size_t)N * V * sizeof(float));
    CHECK(memcmp(h1, h2, (size_t)N * V * sizeof(float)) == 0);

    /* Errors: too many tokens, backward without gradients, a config that does not match
     * the weights. */
    CHECK_FAILS(dense_forward(back, ids, NULL, B, T + 1, &l3), "exceeds the 12 reserved");
    CHECK_FAILS(dense_backward(back, l3), "gradients are not allocated");
    dense_model *fresh = NULL;
    CHECK_OK(dense_model_create(be, &c, &fresh));
    CHECK_FAILS(dense_forward(fresh, ids, NULL, 1, 1, &l3), "dense_reserve");
    CHECK_OK(param_set_alloc_grad(dense_model_params(fresh)));
    CHECK_FAILS(dense_backward(fresh, l3), "no forward pass");
    dense_model_free(fresh);
    dense_config wrong = c;
    wrong.intermediate_size += 2;
    CHECK_OK(dense_model_create(be, &wrong, &fresh));
    CHECK_FAILS(dense_load(fresh, dir), "mlp.down_proj.weight: expected shape");
    dense_model_free(fresh);
    /* Tying flipped: an untied model misses lm_head.weight (an error); a tied one
     * ignores the file's lm_head.weight as a redundant copy, but no other extra. */
    wrong = c;
    wrong.tie_word_embeddings = !c.tie_word_embeddings;
    CHECK_OK(dense_model_create(be, &wrong, &fresh));
    if (wrong.tie_word_embeddings) CHECK_OK(dense_load(fresh, dir));
    else CHECK_FAILS(dense_load(fresh, dir), "tensor lm_head.weight is missing");
    dense_model_free(fresh);
    if (!c.tie_word_embeddings) {
        wrong = c;
        wrong.tie_word_embeddings = 1;
        wrong.attention_bias = 0;   /* the file's biases are now extras too */
        CHECK_OK(dense_model_create(be, &wrong, &fresh));
        CHECK_FAILS(dense_load(fresh, dir), "not a parameter of this model");
        dense_model_free(fresh);
    }

    be->free(be, ids);
    be->free(be, pos);
    free(h1);
    free(h2);
    free(h3);
    dense_model_free(back);
    dense_model_free(m);
    remove_model_dir(dir);
}

/* Tiny C-made models for the transformers check: qwen2 untied with q/k/v biases, and
 * llama tied with q/k/v/o biases, head_dim != hidden/heads and llama3 rope scaling. */
static dense_config c_saved_config(const char *name) {
    dense_config c;
    if (strcmp(name, "c_saved_qwen2") == 0) {
        c = tiny_config("qwen2", 0, 1, 32, 4, 2, 8);
        c.rope.theta = 1000.0;
    } else {
        c = tiny_config("llama", 1, 1, 24, 4, 2, 10);
        c.rope.type = HF_ROPE_LLAMA3;
        c.rope.theta = 500.0;
        c.rope.factor = 8.0;
        c.rope.low_freq_factor = 1.0;
        c.rope.high_freq_factor = 4.0;
        c.rope.original_max_position_embeddings = 12;
    }
    c.vocab_size = 61;
    return c;
}

/* Writes base/NAME: a model saved by dense_save and c_logits.safetensors (input_ids
 * [B, T] int32, logits [B, T, V]) for make_dense_fixtures.py --check-c-saved. */
static void export_c_saved(const char *base, const char *name) {
    dense_config c = c_saved_config(name);
    dense_model *m = NULL;
    CHECK_OK(dense_model_create(be, &c, &m));
    if (!m) return;
    dense_init_random(m, 2024);
    perturb_norms_and_biases(m, 9);
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/%s", base, name);
    CHECK_OK(dense_save(m, dir));
    int B = 2, T = 7, N = B * T;
    int32_t host_ids[14];
    for (int i = 0; i < N; i++) host_ids[i] = (i * 13 + 5) % c.vocab_size;
    int32_t *ids = be->alloc(be, sizeof host_ids);
    be->to_device(be, ids, host_ids, sizeof host_ids);
    CHECK_OK(dense_reserve(m, B, T));
    float *logits = NULL;
    CHECK_OK(dense_forward(m, ids, NULL, B, T, &logits));
    float *host = malloc((size_t)N * c.vocab_size * sizeof(float));
    be->to_host(be, host, logits, (size_t)N * c.vocab_size * sizeof(float));
    st_writer *w = st_writer_create();
    int64_t ids_shape[2] = {B, T}, logits_shape[3] = {B, T, c.vocab_size};
    CHECK_OK(st_writer_add(w, "input_ids", ST_I32, 2, ids_shape, host_ids));
    CHECK_OK(st_writer_add(w, "logits", ST_F32, 3, logits_shape, host));
    snprintf(path, sizeof path, "%s/c_logits.safetensors", dir);
    CHECK_OK(st_writer_save(w, path));
    st_writer_free(w);
    free(host);
    be->free(be, ids);
    dense_model_free(m);
    printf("exported a C-saved model to %s\n", dir);
}

/* A committed C-saved model (checked in transformers by make_dense_fixtures.py) still
 * loads here, with the config it was made from, and reproduces its own logits. */
static void test_c_saved_fixture(const char *name) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", harness_source_path("tests/fixtures/dense"), name);
    snprintf(path, sizeof path, "%s/c_logits.safetensors", dir);
    CHECK_MSG(access(path, R_OK) == 0, "missing fixture %s", path);
    dense_model *m = NULL;
    st_file *ref = NULL;
    CHECK_OK(dense_model_load_dir(be, dir, &m));
    CHECK_OK(st_open(path, &ref));
    const st_tensor *ids_t = ref ? need(ref, "input_ids") : NULL, *logits_t = ref ? need(ref, "logits") : NULL;
    if (m && ids_t && logits_t) {
        dense_config want_cfg = c_saved_config(name);
        const dense_config *got_cfg = dense_model_config(m);
        CHECK(got_cfg->rope.type == want_cfg.rope.type && got_cfg->head_dim == want_cfg.head_dim &&
              got_cfg->tie_word_embeddings == want_cfg.tie_word_embeddings &&
              dense_config_o_bias(got_cfg) == dense_config_o_bias(&want_cfg));
        int B = (int)ids_t->shape[0], T = (int)ids_t->shape[1], N = B * T, V = got_cfg->vocab_size;
        int32_t *ids = be->alloc(be, N * sizeof(int32_t));
        be->to_device(be, ids, ids_t->data, N * sizeof(int32_t));
        float *want = malloc((size_t)N * V * sizeof(float)), *got = malloc((size_t)N * V * sizeof(float)), *logits;
        CHECK_OK(st_read_f32(logits_t, want, (int64_t)N * V));
        CHECK_OK(dense_reserve(m, B, T));
        CHECK_OK(dense_forward(m, ids, NULL, B, T, &logits));
        be->to_host(be, got, logits, (size_t)N * V * sizeof(float));
        double rel = harness_max_rel_err(got, want, (long)N * V, 1e-6);
        CHECK_MSG(rel <= 1e-5, "%s: logits changed by %.3g", name, rel);
        free(want);
        free(got);
        be->free(be, ids);
    }
    st_close(ref);
    dense_model_free(m);
}

/* The same model on the CUDA backend, when a GPU is present and the backend has every op
 * the model needs, gives the CPU's logits and gradients: max relative error <= 1e-3 over
 * each whole array (fp32 ops agree to ~1e-5 each; the differences compound over layers). */
static void test_cuda_matches_cpu(void) {
    if (backend_cuda_device_count() == 0) { printf("cuda comparison: no CUDA device, skipped\n"); return; }
    backend *gpu = backend_cuda_create(0);
    if (!gpu) { printf("cuda comparison: skipped: %s\n", grpo_error_message()); return; }
    dense_config c = tiny_config("qwen2", 0, 1, 64, 4, 2, 16);
    c.vocab_size = 97;
    c.intermediate_size = 96;
    c.initializer_range = 0.1;
    dense_model *mc = NULL, *mg = NULL;
    CHECK_OK(dense_model_create(be, &c, &mc));
    if (dense_model_create(gpu, &c, &mg) != GRPO_OK) {
        printf("cuda comparison: skipped: %s\n", grpo_error_message());
        dense_model_free(mc);
        backend_free(gpu);
        return;
    }
    int B = 3, T = 17, N = B * T, V = c.vocab_size;
    dense_model *models[2] = {mc, mg};
    float *logits_host[2], *grad_host[2];
    float *w = malloc((size_t)N * V * sizeof(float));
    for (long i = 0; i < (long)N * V; i++) w[i] = (float)(2 * lcg_uniform() - 1);
    int32_t host_ids[51];
    for (int i = 0; i < N; i++) host_ids[i] = (i * 31 + 7) % V;
    for (int k = 0; k < 2; k++) {
        dense_model *m = models[k];
        backend *b = dense_model_backend(m);
        param_set *ps = dense_model_params(m);
        dense_init_random(m, 99);
        perturb_norms_and_biases(m, 4);
        CHECK_OK(dense_reserve(m, B, T));
        CHECK_OK(param_set_alloc_grad(ps));
        param_set_zero_grad(ps);
        int32_t *ids = b->alloc(b, sizeof host_ids);
        float *dlogits = b->alloc(b, (size_t)N * V * sizeof(float)), *logits = NULL;
        b->to_device(b, ids, host_ids, sizeof host_ids);
        b->to_device(b, dlogits, w, (size_t)N * V * sizeof(float));
        CHECK_OK(dense_forward(m, ids, NULL, B, T, &logits));
        logits_host[k] = malloc((size_t)N * V * sizeof(float));
        b->to_host(b, logits_host[k], logits, (size_t)N * V * sizeof(float));
        CHECK_OK(dense_backward(m, dlogits));
        grad_host[k] = malloc(ps->total * sizeof(float));
        b->to_host(b, grad_host[k], ps->grad, ps->total * sizeof(float));
        b->synchronize(b);
        b->free(b, ids);
        b->free(b, dlogits);
    }
    double rel_logits = harness_max_rel_err(logits_host[1], logits_host[0], (long)N * V, 1e-6);
    CHECK_MSG(rel_logits <= 1e-3, "cuda logits differ from cpu: %.3g", rel_logits);
    param_set *ps = dense_model_params(mc);
    double worst = 0;
    for (int v = 0; v < ps->count; v++) {
        const param_view *pv = &ps->views[v];
        double e = harness_max_rel_err(grad_host[1] + pv->offset, grad_host[0] + pv->offset, (long)pv->numel, 1e-6);
        CHECK_MSG(e <= 1e-3, "cuda gradient of %s differs from cpu: %.3g", pv->name, e);
        worst = fmax(worst, e);
    }
    printf("cuda comparison: logits rel err %.3g, worst gradient rel err %.3g\n", rel_logits, worst);
    for (int k = 0; k < 2; k++) { free(logits_host[k]); free(grad_host[k]); }
    free(w);
    dense_model_free(mc);
    dense_model_free(mg);
    backend_free(gpu);
}

static void test_activation_bytes(void) {
    dense_config c = tiny_config("llama", 0, 0, 16, 4, 2, 4);
    c.num_hidden_layers = 6;
    size_t one = dense_activation_bytes(&c, 1, 8, 0), two = dense_activation_bytes(&c, 2, 8, 0);
    CHECK(one > 0 && two > one);
    /* at least the logits and every layer's residual input */
    CHECK(two >= (size_t)16 * (c.vocab_size + c.num_hidden_layers * c.hidden_size) * sizeof(float));
    size_t inference = dense_activation_bytes(&c, 2, 8, 1);
    CHECK(inference > 0 && inference < two / 3);
}

int main(void) {
    be = backend_cpu_create();
    CHECK(be != NULL);
    if (!be) TEST_MAIN_END();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_dense_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }

    test_parity("qwen2_tied");
    test_parity("llama_untied");
    const char *export_dir = getenv("GRPO_DENSE_EXPORT");
    if (export_dir && *export_dir) {
        export_c_saved(export_dir, "c_saved_qwen2");
        export_c_saved(export_dir, "c_saved_llama");
    } else {
        test_c_saved_fixture("c_saved_qwen2");
        test_c_saved_fixture("c_saved_llama");
    }

    /* GQA with 4 query heads on 2 kv heads throughout; one config with 1 kv head (MQA)
     * and head_dim != hidden/heads. */
    test_gradients("qwen2 tied, q/k/v bias", tiny_config("qwen2", 1, 1, 16, 4, 2, 4), 0);
    test_gradients("qwen2 untied, cross-entropy", tiny_config("qwen2", 0, 1, 16, 4, 2, 4), 1);
    test_gradients("llama untied, no bias", tiny_config("llama", 0, 0, 16, 4, 2, 4), 0);
    test_gradients("llama tied, q/k/v/o bias, MQA, head_dim 6", tiny_config("llama", 1, 1, 16, 4, 1, 6), 1);

    test_round_trip(tiny_config("qwen2", 1, 1, 16, 4, 2, 4));
    test_round_trip(tiny_config("llama", 0, 1, 16, 4, 2, 6));
    test_activation_bytes();
    test_cuda_matches_cpu();

    rmdir(tmpdir);
    backend_free(be);
    TEST_MAIN_END();
}
