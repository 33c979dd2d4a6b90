/* The DeepSeek-V3 model (model/deepseek_v3.h) on the CPU backend:
 *  - config.json: the full 671B config loads and its sizes match the V3 report's 671B total
 *    / 37B activated; write -> read round trip; bad configs fail naming the field;
 *  - parity with transformers (fixtures of make_deepseek_v3_fixtures.py): logits with default
 *    and explicit positions, and gradients of sum(w * logits), for a V3-like model (q_lora,
 *    sigmoid group routing with a non-zero bias, YaRN, sharded checkpoint), a V2-Lite-like
 *    one (q_proj, softmax greedy routing) and an FP8 block-quantised checkpoint;
 *  - finite-difference check of the whole model's backward including the MTP loss (V3-like
 *    and V2-like tiny configs); entries whose perturbation changes an expert choice are
 *    skipped (the loss is not differentiable there) and counted;
 *  - the absorbed inference path (mla_decode over the latent cache, token by token) gives
 *    the training forward's logits at model level;
 *  - save -> load round trip, the C-saved model checked in transformers (c_saved fixture),
 *    hostile checkpoints (FP8 without scale, wrong shapes, unknown tensors), balancing bias.
 * GRPO_DSV3_EXPORT=DIR writes DIR/c_saved (model + c_logits) for the fixture script. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "model/deepseek_v3_impl.h"
#include "model/lm.h"
#include "model/moe_impl.h"
#include "tests/harness.h"

static backend *be;

static uint64_t lcg_state = 4242;
static double lcg_uniform(void) {   /* [0, 1) */
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}

/* A tiny V3-like config: q_lora, 2 groups of 3 experts (top-1 group), YaRN with mscales,
 * 1 dense + 1 MoE layer + 1 MTP module (MoE block). v2: deepseek_v2 with q_proj, softmax
 * greedy routing, no MTP module... except the MTP count given. */
static deepseek_v3_config tiny_config(int v2, int mtp) {
    deepseek_v3_config c;
    hf_config_v3_defaults(&c, v2 ? "deepseek_v2" : "deepseek_v3");
    c.vocab_size = 19;
    c.hidden_size = 16;
    c.intermediate_size = 20;
    c.moe_intermediate_size = 8;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.q_lora_rank = v2 ? 0 : 10;
    c.kv_lora_rank = 6;
    c.qk_nope_head_dim = 4;
    c.qk_rope_head_dim = 4;
    c.v_head_dim = 3;
    c.n_routed_experts = 6;
    c.n_shared_experts = 1;
    c.num_experts_per_tok = 2;
    c.n_group = v2 ? 1 : 2;
    c.topk_group = 1;
    c.first_k_dense_replace = 1;
    c.max_position_embeddings = 32;
    c.num_nextn_predict_layers = mtp;
    c.rms_norm_eps = 1e-5;
    c.initializer_range = 0.3;
    c.rope.theta = 100.0;
    if (!v2) {
        c.rope.yarn = 1;
        c.rope.factor = 4.0;
        c.rope.original_max_position_embeddings = 8;
        c.rope.mscale = 0.9;
        c.rope.mscale_all_dim = 0.7;
    }
    return c;
}

/* Norm weights 1 + noise, the routing bias small noise (random init leaves 1 and 0). */
static void perturb_norms(deepseek_v3_model *m, uint64_t seed) {
    param_set *ps = deepseek_v3_params(m);
    for (int v = 0; v < ps->count; v++) {
        const param_view *pv = &ps->views[v];
        int is_norm = strstr(pv->name, "norm") != NULL, is_bias = strstr(pv->name, "correction_bias") != NULL;
        if (!is_norm && !is_bias) continue;
        float *h = malloc(pv->numel * sizeof(float));
        for (size_t i = 0; i < pv->numel; i++) {
            float r = (float)(2 * lcg_uniform() - 1);
            h[i] = is_norm ? 1.0f + 0.2f * r : 0.05f * r;
        }
        be->to_device(be, param_ptr(ps, v), h, pv->numel * sizeof(float));
        free(h);
    }
    (void)seed;
}

/* ---- config ---- */

static void test_config(void) {
    deepseek_v3_config c;
    CHECK_OK(hf_config_v3_read(harness_source_path("configs/models/deepseek-v3.json"), &c));
    CHECK_INT(61, c.num_hidden_layers);
    CHECK_INT(0, c.q_lora_rank == 0);
    CHECK(c.rope.yarn && c.rope.factor == 40 && c.rope.original_max_position_embeddings == 4096);
    CHECK_INT(HF_SCORING_SIGMOID, c.scoring_func);
    deepseek_v3_sizes s;
    deepseek_v3_count(&c, &s);
    /* V3 report: 671B total parameters (main model), 37B activated per token; the MTP
     * module is 14B more (report sec. 4.2: "685B" on the hub incl. MTP). */
    CHECK_MSG(fabs(s.main_params / 671e9 - 1) < 0.01, "main parameters %.4gB, expected about 671B", s.main_params / 1e9);
    CHECK_MSG(fabs(s.activated_params / 37e9 - 1) < 0.03, "activated parameters %.4gB, expected about 37B",
              s.activated_params / 1e9);
    CHECK_MSG(fabs(s.total_params / 685e9 - 1) < 0.01, "total parameters %.4gB, expected about 685B",
              s.total_params / 1e9);
    /* latent cache: (512 + 64) per layer, bf16; MHA: 128 heads * (192 + 128) */
    CHECK_INT(61LL * (512 + 64) * 2, s.latent_cache_bytes_per_token);
    CHECK_INT(61LL * 128 * (192 + 128) * 2, s.mha_cache_bytes_per_token);
    CHECK(s.bytes_fp8 < s.bytes_bf16 && s.bytes_bf16 < s.bytes_fp32);
    /* softmax scale: 192^-0.5 * (0.1 * 1.0 * ln 40 + 1)^2 (transformers' yarn_get_mscale) */
    double m = 0.1 * log(40.0) + 1;
    CHECK_NEAR(pow(192, -0.5) * m * m, hf_config_v3_softmax_scale(&c), 0, 1e-12);
    CHECK_NEAR(1.0, hf_config_v3_rope_attention_factor(&c), 0, 1e-12);
    deepseek_v3_describe(&c, stdout);

    /* write -> read round trip (V3 and V2) */
    char dir[] = "/tmp/test_dsv3_cfg_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    for (int v2 = 0; v2 < 2; v2++) {
        deepseek_v3_config a = v2 ? tiny_config(1, 0) : c, b;
        CHECK_OK(hf_config_v3_write(&a, path));
        CHECK_OK(hf_config_v3_read(path, &b));
        CHECK_MSG(memcmp(&a, &b, sizeof a) == 0, "config round trip differs (%s)", a.model_type);
    }
    fs_remove_tree(dir);

    /* bad configs name what is wrong */
    const char *bad[][2] = {
        {"{\"model_type\": \"deepseek_v3\", \"n_routed_experts\": 10, \"n_group\": 4}", "n_group"},
        {"{\"model_type\": \"deepseek_v3\", \"scoring_func\": \"relu\"}", "scoring_func"},
        {"{\"model_type\": \"deepseek_v3\", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}}", "dynamic"},
        {"{\"model_type\": \"deepseek_v3\", \"num_key_value_heads\": 4}", "num_key_value_heads"},
        {"{\"model_type\": \"deepseek_v3\", \"rope_interleave\": false}", "rope_interleave"},
        {"{\"model_type\": \"deepseek_v3\", \"topk_method\": \"greedy\"}", "noaux_tc"},
        {"{\"model_type\": \"deepseek_v3\", \"hidden_size\": -3}", "hidden_size"},
        {"{\"model_type\": \"deepseek_v3\", \"qk_rope_head_dim\": 5}", "qk_rope_head_dim"},
        {"{\"model_type\": \"deepseek_v3\", \"quantization_config\": {\"quant_method\": \"gptq\"}}", "gptq"},
        {"{\"model_type\": \"deepseek_v3\", \"num_experts_per_tok\": 300}", "num_experts_per_tok"},
        {"{\"model_type\": \"deepseek_v3\", \"kv_lora_rank\": \"big\"}", "kv_lora_rank"},
        {"[1, 2]", "object"},
        {"{\"model_type\": \"qwen2\"}", "qwen2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        deepseek_v3_config out;
        CHECK_FAILS(hf_config_v3_parse(bad[i][0], strlen(bad[i][0]), "bad.json", &out), bad[i][1]);
    }
}

/* ---- parity with transformers ---- */

static const st_tensor *need(const st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    CHECK_MSG(t != NULL, "fixture lacks %s", name);
    return t;
}

static void test_parity(const char *name) {
    char dir[512], ref_path[600];
    snprintf(dir, sizeof dir, "%s/%s", harness_source_path("tests/fixtures/deepseek_v3"), name);
    snprintf(ref_path, sizeof ref_path, "%s/reference.safetensors", dir);
    deepseek_v3_model *m = NULL;
    st_file *ref = NULL;
    CHECK_OK(deepseek_v3_load_dir(be, dir, &m));
    CHECK_OK(st_open(ref_path, &ref));
    if (!m || !ref) { deepseek_v3_free(m); st_close(ref); return; }
    const st_tensor *ids_t = need(ref, "input_ids"), *pos_t = need(ref, "position_ids");
    if (!ids_t || !pos_t) { deepseek_v3_free(m); st_close(ref); return; }
    int B = (int)ids_t->shape[0], T = (int)ids_t->shape[1], V = deepseek_v3_get_config(m)->vocab_size;
    size_t N = (size_t)B * T, NV = N * V;
    float *want = malloc(NV * sizeof(float)), *got = malloc(NV * sizeof(float)), *w = malloc(NV * sizeof(float));
    CHECK_OK(deepseek_v3_reserve(m, B, T));
    CHECK_OK(param_set_alloc_grad(deepseek_v3_params(m)));
    float *logits = NULL;
    /* default positions, then explicit ones */
    for (int pass = 0; pass < 2; pass++) {
        CHECK_OK(deepseek_v3_forward(m, ids_t->data, pass ? pos_t->data : NULL, B, T, &logits));
        if (!logits) break;
        CHECK_OK(st_load_f32(ref, pass ? "logits_pos" : "logits", want, (int64_t)NV));
        be->to_host(be, got, logits, NV * sizeof(float));
        double rel = harness_max_rel_err(got, want, (long)NV, 1e-6);
        printf("%s: logits%s max relative error %.3g\n", name, pass ? " (position_ids)" : "", rel);
        CHECK_MSG(rel <= 1e-4, "%s: logits differ from transformers by %.3g (relative)", name, rel);
    }
    /* gradients of sum(w * logits) */
    CHECK_OK(st_load_f32(ref, "loss_weights", w, (int64_t)NV));
    param_set *ps = deepseek_v3_params(m);
    param_set_zero_grad(ps);
    CHECK_OK(deepseek_v3_forward(m, ids_t->data, NULL, B, T, &logits));
    CHECK_OK(deepseek_v3_backward(m, w));
    int compared = 0;
    for (int i = 0; i < st_count(ref); i++) {
        const st_tensor *t = st_get(ref, i);
        if (strncmp(t->name, "grad.", 5) != 0) continue;
        int v = param_find(ps, t->name + 5);
        if (v < 0) {
            CHECK_MSG(strstr(t->name, "e_score_correction_bias") != NULL, "%s: %s is not a parameter", name, t->name);
            continue;
        }
        size_t n = ps->views[v].numel;
        float *g_want = malloc(n * sizeof(float)), *g_got = malloc(n * sizeof(float));
        CHECK_OK(st_read_f32(t, g_want, (int64_t)n));
        be->to_host(be, g_got, param_grad_ptr(ps, v), n * sizeof(float));
        double rel = harness_max_rel_err(g_got, g_want, (long)n, 1e-6);
        CHECK_MSG(rel <= 1e-3, "%s: %s differs from transformers by %.3g (relative)", name, t->name, rel);
        compared++;
        free(g_want);
        free(g_got);
    }
    printf("%s: %d gradient tensors match transformers\n", name, compared);
    CHECK(compared >= 5);
    free(want);
    free(got);
    free(w);
    st_close(ref);
    deepseek_v3_free(m);
}

/* ---- finite differences (main loss sum(w * logits) + MTP loss) ---- */

typedef struct {
    int B, T;
    int32_t *ids;
    float *w;            /* [N, V] */
    float *host;         /* [N, V] */
    float lambda;        /* MTP weight; 0: no MTP loss */
} loss_spec;

/* Snapshot of every MoE layer's expert choices ([n_moe][N*K]). */
static void routing_snapshot(deepseek_v3_model *m, int32_t *dst, int N) {
    int K = m->cfg.num_experts_per_tok;
    for (int i = 0; i < m->n_moe; i++) memcpy(dst + (size_t)i * N * K, m->moe[i]->topk_idx, (size_t)N * K * sizeof(int32_t));
}

static double eval_loss(deepseek_v3_model *m, loss_spec *ls) {
    int N = ls->B * ls->T, V = m->cfg.vocab_size;
    float *logits = NULL;
    CHECK_OK(deepseek_v3_forward(m, ls->ids, NULL, ls->B, ls->T, &logits));
    be->to_host(be, ls->host, logits, (size_t)N * V * sizeof(float));
    double loss = 0;
    for (long i = 0; i < (long)N * V; i++) loss += (double)ls->w[i] * ls->host[i];
    if (ls->lambda > 0) {
        double mtp = 0;
        CHECK_OK(deepseek_v3_mtp_loss(m, ls->lambda, &mtp));
        loss += mtp;
    }
    return loss;
}

static void fd_check(const char *label, deepseek_v3_config c, float lambda) {
    deepseek_v3_model *m = NULL;
    CHECK_OK(deepseek_v3_create(be, &c, &m));
    if (!m) return;
    deepseek_v3_init_random(m, 11);
    perturb_norms(m, 5);
    loss_spec ls = {.B = 2, .T = 6, .lambda = lambda};
    int N = ls.B * ls.T, V = c.vocab_size, K = c.num_experts_per_tok;
    CHECK_OK(deepseek_v3_reserve(m, ls.B, ls.T));
    param_set *ps = deepseek_v3_params(m);
    CHECK_OK(param_set_alloc_grad(ps));
    ls.ids = malloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++) ls.ids[i] = (int32_t)(lcg_uniform() * V);
    ls.ids[N - 1] = ls.ids[1];   /* a repeated id */
    ls.w = malloc((size_t)N * V * sizeof(float));
    ls.host = malloc((size_t)N * V * sizeof(float));
    for (long i = 0; i < (long)N * V; i++) ls.w[i] = (float)(2 * lcg_uniform() - 1);

    param_set_zero_grad(ps);
    double base = eval_loss(m, &ls);
    int32_t *route0 = malloc((size_t)(m->n_moe + 1) * N * K * sizeof(int32_t));
    int32_t *route1 = malloc((size_t)(m->n_moe + 1) * N * K * sizeof(int32_t));
    routing_snapshot(m, route0, N);
    CHECK_OK(deepseek_v3_backward(m, ls.w));
    float *grad = malloc(ps->total * sizeof(float));
    be->to_host(be, grad, ps->grad, ps->total * sizeof(float));
    double gmax = 0;
    for (size_t i = 0; i < ps->total; i++) gmax = fmax(gmax, fabs(grad[i]));

    /* Central differences, eps 5e-3; tolerance as test_dense (float32 logits summed over
     * N*V terms: ~1e-4 of the loss scale; truncation ~1e-3 relative). */
    const double eps = 5e-3, rtol = 2e-2, atol = 1e-4 * gmax;
    int checked = 0, failed = 0, skipped = 0, significant = 0, per_view = 5;
    double worst = 0;
    for (int v = 0; v < ps->count; v++) {
        const param_view *pv = &ps->views[v];
        int bias = strstr(pv->name, "correction_bias") != NULL;
        int n = (size_t)per_view < pv->numel ? per_view : (int)pv->numel;
        for (int k = 0; k < n; k++) {
            size_t idx = n == (int)pv->numel ? (size_t)k : (size_t)(lcg_uniform() * pv->numel);
            float *p = ps->data + pv->offset + idx;
            float orig = *p;
            *p = orig + (float)eps;
            double lp = eval_loss(m, &ls);
            routing_snapshot(m, route1, N);
            int flipped = memcmp(route0, route1, (size_t)m->n_moe * N * K * sizeof(int32_t)) != 0;
            *p = orig - (float)eps;
            double lminus = eval_loss(m, &ls);
            routing_snapshot(m, route1, N);
            flipped |= memcmp(route0, route1, (size_t)m->n_moe * N * K * sizeof(int32_t)) != 0;
            *p = orig;
            if (flipped) { skipped++; continue; }
            double numeric = (lp - lminus) / (2 * eps), analytic = grad[pv->offset + idx];
            /* the routing bias only selects experts: no gradient, and none numerically */
            if (bias) {
                CHECK_MSG(analytic == 0 && fabs(numeric) <= atol, "%s: %s has a gradient", label, pv->name);
                continue;
            }
            double err = fabs(analytic - numeric), allowed = rtol * fmax(fabs(analytic), fabs(numeric)) + atol;
            if (fmax(fabs(analytic), fabs(numeric)) > 10 * atol) significant++;
            worst = fmax(worst, err / allowed);
            checked++;
            if (!(err <= allowed) && failed++ < 8)
                fprintf(stderr, "%s: %s[%zu]: analytic %.6g numeric %.6g\n", label, pv->name, idx, analytic, numeric);
        }
    }
    (void)base;
    CHECK_MSG(failed == 0, "%s: %d of %d gradient entries off", label, failed, checked);
    CHECK_MSG(skipped * 5 < checked, "%s: %d of %d entries changed an expert choice (too many to trust the check)",
              label, skipped, checked + skipped);
    CHECK_MSG(significant * 3 > checked, "%s: only %d of %d entries are significant", label, significant, checked);
    printf("%s: %d entries of %d tensors (%d above 10 atol, %d skipped for a routing change), max |gradient| %.3g, "
           "worst error / allowed %.3g\n", label, checked, ps->count, significant, skipped, gmax, worst);

    /* every MTP tensor got a gradient when the MTP loss was on */
    if (lambda > 0) {
        int zero = 0;
        for (int v = 0; v < ps->count; v++) {
            const param_view *pv = &ps->views[v];
            if (!strstr(pv->name, "layers.2.") || strstr(pv->name, "correction_bias") ||
                strstr(pv->name, "experts.")) continue;
            double s = 0;
            for (size_t i = 0; i < pv->numel; i++) s += fabs(grad[pv->offset + i]);
            if (s == 0) { zero++; fprintf(stderr, "%s: %s has no gradient\n", label, pv->name); }
        }
        CHECK_INT(0, zero);
    }
    free(grad);
    free(route0);
    free(route1);
    free(ls.ids);
    free(ls.w);
    free(ls.host);
    deepseek_v3_free(m);
}

/* The MTP loss against a reference built from the model's own pieces: module 1's
 * cross-entropy computed by hand on the host from its logits. */
static void test_mtp_loss_value(void) {
    deepseek_v3_config c = tiny_config(0, 2);
    deepseek_v3_model *m = NULL;
    CHECK_OK(deepseek_v3_create(be, &c, &m));
    if (!m) return;
    deepseek_v3_init_random(m, 3);
    int B = 2, T = 5, N = B * T, V = c.vocab_size;
    CHECK_OK(deepseek_v3_reserve(m, B, T));
    int32_t ids[10];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(lcg_uniform() * V);
    float *logits;
    CHECK_OK(deepseek_v3_forward(m, ids, NULL, B, T, &logits));
    double loss = 0;
    CHECK_OK(deepseek_v3_mtp_loss(m, 0.5f, &loss));
    /* recompute each module's logits from its saved normed output and the head */
    double total = 0;
    float *head = dsv3_lm_head(m);
    for (int k = 1; k <= 2; k++) {
        const dsv3_mtp_acts *t = &m->mtp[k - 1];
        double ce = 0;
        int n = 0;
        for (int r = 0; r < B; r++)
            for (int i = 0; i + k + 1 < T; i++) {
                const float *x = t->xo + (size_t)(r * T + i) * c.hidden_size;
                double lg[32], mx = -1e30, se = 0;
                for (int v = 0; v < V; v++) {
                    lg[v] = 0;
                    for (int d = 0; d < c.hidden_size; d++) lg[v] += (double)x[d] * head[(size_t)v * c.hidden_size + d];
                    mx = fmax(mx, lg[v]);
                }
                for (int v = 0; v < V; v++) se += exp(lg[v] - mx);
                int target = ids[r * T + i + k + 1];
                ce += -(lg[target] - mx - log(se));
                n++;
                /* the module's input embedding is that of t_{i+k} */
                CHECK_INT(ids[r * T + i + k], t->ids[r * T + i]);
            }
        total += ce / n;
    }
    CHECK_NEAR(0.5 / 2 * total, loss, 1e-6, 1e-5);
    deepseek_v3_config none = tiny_config(0, 0);
    deepseek_v3_model *m0 = NULL;
    CHECK_OK(deepseek_v3_create(be, &none, &m0));
    CHECK_OK(deepseek_v3_reserve(m0, 1, 3));
    CHECK_OK(deepseek_v3_forward(m0, ids, NULL, 1, 3, &logits));
    CHECK_FAILS(deepseek_v3_mtp_loss(m0, 1.0f, &loss), "no MTP module");
    deepseek_v3_free(m0);
    deepseek_v3_free(m);
}

/* ---- absorbed decode == training forward, at model level ---- */

static void test_absorbed_decode(void) {
    deepseek_v3_config c = tiny_config(0, 0);
    deepseek_v3_model *m = NULL;
    CHECK_OK(deepseek_v3_create(be, &c, &m));
    if (!m) return;
    deepseek_v3_init_random(m, 21);
    perturb_norms(m, 1);
    int T = 7, D = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
    CHECK_OK(deepseek_v3_reserve(m, 1, T));
    int32_t ids[7];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)(lcg_uniform() * V);
    float *logits;
    CHECK_OK(deepseek_v3_forward(m, ids, NULL, 1, T, &logits));
    float *want = malloc((size_t)T * V * sizeof(float));
    memcpy(want, logits, (size_t)T * V * sizeof(float));

    /* token by token through the latent cache; the MLPs through separate one-token MoE states */
    const mla_config *ac = deepseek_v3_mla_config(m);
    size_t cache_w = mla_cache_floats_per_token(ac);
    float *latent = calloc((size_t)L * T * ac->kv_lora_rank, sizeof(float));
    float *rope = calloc((size_t)L * T * ac->qk_rope_head_dim, sizeof(float));
    float *scratch = calloc(mla_decode_scratch_floats(ac, 1, T), sizeof(float));
    float h[64], xn[64], att[64], mid[64], out[64], rstd, g1[64], u1[64], a1[64];
    float *got = malloc((size_t)T * V * sizeof(float));
    moe_layer *ml = NULL;
    CHECK_OK(moe_layer_create(be, deepseek_v3_moe_config(m), 1, &ml));
    const float *cos, *sin;
    deepseek_v3_rope_tables(m, &cos, &sin);
    param_set *ps = deepseek_v3_params(m);
    for (int t = 0; t < T && ml; t++) {
        be->embedding_forward(be, h, &ids[t], param_ptr(ps, m->embed_view), 1, D);
        for (int l = 0; l < L; l++) {
            const dsv3_block_weights *w = &m->weights[l];
            be->rmsnorm_forward(be, xn, &rstd, h, w->input_layernorm, 1, D, (float)c.rms_norm_eps);
            int32_t pos = t;
            CHECK_OK(mla_decode(be, ac, &w->attn, xn, &pos, cos, sin, latent + (size_t)l * T * ac->kv_lora_rank,
                                rope + (size_t)l * T * ac->qk_rope_head_dim, t, 1, scratch, att));
            for (int d = 0; d < D; d++) mid[d] = h[d] + att[d];
            be->rmsnorm_forward(be, xn, &rstd, mid, w->post_attention_layernorm, 1, D, (float)c.rms_norm_eps);
            if (m->views[l].moe < 0) {
                int I = c.intermediate_size;
                dsv3_linear(be, g1, xn, w->gate_proj, 1, D, I, 0);
                dsv3_linear(be, u1, xn, w->up_proj, 1, D, I, 0);
                be->swiglu_forward(be, a1, g1, u1, (size_t)I);
                dsv3_linear(be, out, a1, w->down_proj, 1, I, D, 0);
            } else {
                CHECK_OK(moe_forward(ml, &w->moe, xn, 1, 1, out));
            }
            for (int d = 0; d < D; d++) h[d] = mid[d] + out[d];
        }
        be->rmsnorm_forward(be, xn, &rstd, h, param_ptr(ps, m->norm_view), 1, D, (float)c.rms_norm_eps);
        dsv3_linear(be, got + (size_t)t * V, xn, dsv3_lm_head(m), 1, D, V, 0);
    }
    double rel = harness_max_rel_err(got, want, (long)T * V, 1e-6);
    printf("absorbed decode (latent cache, %zu floats per token per layer vs MHA %zu) vs training forward: max "
           "relative logit error %.3g\n", cache_w, mla_mha_floats_per_token(ac), rel);
    CHECK_MSG(rel <= 1e-4, "absorbed decode differs from the training forward by %.3g", rel);
    moe_layer_free(ml);
    free(latent);
    free(rope);
    free(scratch);
    free(got);
    free(want);
    deepseek_v3_free(m);
}

/* ---- save / load, C-saved for transformers, hostile checkpoints ---- */

static void test_save_load(void) {
    deepseek_v3_config c = tiny_config(0, 1);
    deepseek_v3_model *m = NULL, *m2 = NULL;
    CHECK_OK(deepseek_v3_create(be, &c, &m));
    if (!m) return;
    deepseek_v3_init_random(m, 5);
    perturb_norms(m, 2);
    char dir[] = "/tmp/test_dsv3_save_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_OK(deepseek_v3_save(m, dir));
    CHECK_OK(deepseek_v3_load_dir(be, dir, &m2));
    if (m2) {
        param_set *a = deepseek_v3_params(m), *b = deepseek_v3_params(m2);
        CHECK_INT(a->total, b->total);
        CHECK(a->total == b->total && memcmp(a->data, b->data, a->total * sizeof(float)) == 0);
    }
    /* the official MTP copies of the shared tensors are in the file */
    char path[300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file *f = NULL;
    CHECK_OK(st_open(path, &f));
    if (f) {
        CHECK(st_find(f, "model.layers.2.embed_tokens.weight") != NULL);
        CHECK(st_find(f, "model.layers.2.shared_head.head.weight") != NULL);
        CHECK(st_find(f, "model.layers.2.eh_proj.weight") != NULL);
        CHECK(st_find(f, "model.layers.1.mlp.experts.5.down_proj.weight") != NULL);
        st_close(f);
    }
    deepseek_v3_free(m2);
    m2 = NULL;

    /* sharded save (shards of at most 20 KB) -> load: same values, an index naming every tensor */
    char sdir[300];
    snprintf(sdir, sizeof sdir, "%s/sharded", dir);
    CHECK_OK(deepseek_v3_save_sharded(m, sdir, 20000));
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", sdir);
    char *index_text = NULL;
    size_t index_len = 0;
    CHECK_OK(fs_read_file(path, &index_text, &index_len));
    CHECK_MSG(index_text && strstr(index_text, "model-00002-of-") && strstr(index_text, "\"total_size\"") &&
              strstr(index_text, "model.layers.2.shared_head.head.weight"), "index: %s", index_text ? index_text : "");
    free(index_text);
    CHECK_OK(deepseek_v3_load_dir(be, sdir, &m2));
    if (m2) {
        param_set *a = deepseek_v3_params(m), *b = deepseek_v3_params(m2);
        CHECK(a->total == b->total && memcmp(a->data, b->data, a->total * sizeof(float)) == 0);
    }
    deepseek_v3_free(m2);
    m2 = NULL;
    /* rewriting as one file removes the index (st_open would prefer a stale one) */
    CHECK_OK(deepseek_v3_save(m, sdir));
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", sdir);
    CHECK(!fs_exists(path));

    /* through the family interface (lm.h dispatches on model_type): the same logits */
    {
        lm *fam = NULL;
        CHECK_OK(lm_load_dir(be, dir, &fam));
        int32_t ids[5] = {1, 4, 2, 7, 3};
        float *l1 = NULL, *l2 = NULL;
        CHECK_OK(deepseek_v3_reserve(m, 1, 5));
        CHECK_OK(deepseek_v3_forward(m, ids, NULL, 1, 5, &l1));
        if (fam) {
            CHECK_STR("deepseek_v3", fam->model_type);
            CHECK_OK(lm_reserve(fam, 1, 5));
            CHECK_OK(lm_forward(fam, ids, NULL, 1, 5, &l2));
            if (l1 && l2) CHECK(memcmp(l1, l2, 5 * (size_t)c.vocab_size * sizeof(float)) == 0);
        }
        lm_free(fam);
    }

    /* hostile: an unknown tensor, a wrong shape, FP8 without its scale, a bad scale shape */
    deepseek_v3_model *t = NULL;
    CHECK_OK(deepseek_v3_create(be, &c, &t));
    float junk[64 * 64] = {0};
    uint8_t fp8[16 * 16] = {0};
    struct { const char *name; st_dtype dt; int64_t shape[2]; const void *data; const char *scale; int64_t sshape[2];
             const char *needle; } cases[] = {
        {"model.layers.0.self_attn.wat.weight", ST_F32, {2, 2}, junk, NULL, {0, 0}, "not a parameter"},
        {"model.norm.weight", ST_F32, {3, 0}, junk, NULL, {0, 0}, "expected shape"},
        {"model.layers.0.self_attn.kv_a_proj_with_mqa.weight", ST_F8_E4M3, {10, 16}, fp8, NULL, {0, 0}, "_scale_inv"},
        {"model.layers.0.self_attn.kv_a_proj_with_mqa.weight", ST_F8_E4M3, {10, 16}, fp8,
         "model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv", {2, 1}, "128x128"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && t; i++) {
        st_writer *w = st_writer_create();
        int64_t shape[2] = {cases[i].shape[0], cases[i].shape[1]};
        CHECK_OK(st_writer_add(w, cases[i].name, cases[i].dt, shape[1] ? 2 : 1, shape, cases[i].data));
        if (cases[i].scale) CHECK_OK(st_writer_add(w, cases[i].scale, ST_F32, 2, cases[i].sshape, junk));
        snprintf(path, sizeof path, "%s/bad.safetensors", dir);
        CHECK_OK(st_writer_save(w, path));
        st_writer_free(w);
        CHECK_FAILS(deepseek_v3_load(t, path), cases[i].needle);
    }
    /* the saved model minus one tensor: missing is named */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(st_open(path, &f));
    if (f && t) {
        st_writer *w = st_writer_create();
        for (int i = 0; i < st_count(f); i++) {
            const st_tensor *x = st_get(f, i);
            if (!strcmp(x->name, "model.layers.1.mlp.gate.weight")) continue;
            CHECK_OK(st_writer_add(w, x->name, x->dtype, x->ndim, x->shape, x->data));
        }
        char p2[300];
        snprintf(p2, sizeof p2, "%s/missing.safetensors", dir);
        CHECK_OK(st_writer_save(w, p2));
        st_writer_free(w);
        CHECK_FAILS(deepseek_v3_load(t, p2), "model.layers.1.mlp.gate.weight is missing");
        st_close(f);
    }
    deepseek_v3_free(t);
    fs_remove_tree(dir);

    /* GRPO_DSV3_EXPORT: write the C-saved model + its logits for the fixture script; else
     * check that the committed one still gives the committed logits. */
    const char *export_dir = getenv("GRPO_DSV3_EXPORT");
    char cdir[600];
    snprintf(cdir, sizeof cdir, "%s/c_saved", export_dir ? export_dir : harness_source_path("tests/fixtures/deepseek_v3"));
    int B = 2, T = 6, N = B * T;
    int32_t ids[12];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)((i * 7 + 3) % c.vocab_size);
    if (export_dir) {
        CHECK_OK(deepseek_v3_save(m, cdir));
        CHECK_OK(deepseek_v3_reserve(m, B, T));
        float *logits;
        CHECK_OK(deepseek_v3_forward(m, ids, NULL, B, T, &logits));
        st_writer *w = st_writer_create();
        int64_t is[2] = {B, T}, ls[3] = {B, T, c.vocab_size};
        CHECK_OK(st_writer_add(w, "input_ids", ST_I32, 2, is, ids));
        CHECK_OK(st_writer_add(w, "logits", ST_F32, 3, ls, logits));
        snprintf(path, sizeof path, "%s/c_logits.safetensors", cdir);
        CHECK_OK(st_writer_save(w, path));
        st_writer_free(w);
        printf("wrote %s\n", cdir);
    } else {
        CHECK_OK(deepseek_v3_load_dir(be, cdir, &m2));
        snprintf(path, sizeof path, "%s/c_logits.safetensors", cdir);
        CHECK_OK(st_open(path, &f));
        if (m2 && f) {
            float *logits, *want = malloc((size_t)N * c.vocab_size * sizeof(float));
            CHECK_OK(deepseek_v3_reserve(m2, B, T));
            CHECK_OK(deepseek_v3_forward(m2, need(f, "input_ids")->data, NULL, B, T, &logits));
            CHECK_OK(st_load_f32(f, "logits", want, (int64_t)N * c.vocab_size));
            double rel = harness_max_rel_err(logits, want, (long)N * c.vocab_size, 1e-6);
            CHECK_MSG(rel <= 1e-6, "c_saved: logits differ from the committed ones by %.3g", rel);
            free(want);
        }
        st_close(f);
        deepseek_v3_free(m2);
    }
    deepseek_v3_free(m);
}

/* ---- balancing bias ---- */

static void test_update_bias(void) {
    deepseek_v3_config c = tiny_config(0, 0);
    deepseek_v3_model *m = NULL;
    CHECK_OK(deepseek_v3_create(be, &c, &m));
    if (!m) return;
    deepseek_v3_init_random(m, 9);
    int B = 2, T = 8, N = B * T, E = c.n_routed_experts;
    CHECK_OK(deepseek_v3_reserve(m, B, T));
    int32_t ids[16];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(lcg_uniform() * c.vocab_size);
    float *logits;
    CHECK_OK(deepseek_v3_forward(m, ids, NULL, B, T, &logits));
    CHECK_INT(1, deepseek_v3_num_moe_layers(m));
    CHECK_INT(1, deepseek_v3_moe_layer_index(m, 0));
    const moe_stats *st = deepseek_v3_moe_stats(m, 0);
    int64_t total = 0, mx = 0;
    for (int e = 0; e < E; e++) {
        total += st->load[e];
        if (st->load[e] > mx) mx = st->load[e];
    }
    CHECK_INT((int64_t)N * c.num_experts_per_tok, total);
    CHECK_NEAR((double)mx / ((double)total / E) - 1, deepseek_v3_max_violation(m), 1e-9, 0);
    int64_t load[16];
    memcpy(load, st->load, E * sizeof(int64_t));
    deepseek_v3_update_bias(m, 0.01f);
    float bias[16];
    const float *b = m->weights[1].moe.e_score_correction_bias;
    memcpy(bias, b, E * sizeof(float));
    double mean = (double)total / E;
    for (int e = 0; e < E; e++) {
        float want = load[e] > mean ? -0.01f : load[e] < mean ? 0.01f : 0.0f;
        CHECK_NEAR(want, bias[e], 1e-7, 0);
    }
    deepseek_v3_free(m);
}

int main(void) {
    be = backend_cpu_create();
    test_config();
    test_parity("v3_yarn");
    test_parity("v2_lite");
    test_parity("v3_fp8");
    fd_check("v3 (q_lora, sigmoid groups, YaRN) + MTP", tiny_config(0, 1), 0.7f);
    fd_check("v3, 2 MTP modules", tiny_config(0, 2), 0.3f);
    fd_check("v2 (q_proj, softmax greedy)", tiny_config(1, 0), 0.0f);
    test_mtp_loss_value();
    test_absorbed_decode();
    test_save_load();
    test_update_bias();
    backend_free(be);
    TEST_MAIN_END();
}
