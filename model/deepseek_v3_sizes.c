/* Sizes of a DeepSeek-V3 config without allocating anything: parameters (total, and
 * activated per token: the V3 report's 671B / 37B), bytes per precision, and the MLA
 * latent cache per token beside the multi-head attention cache it replaces. */
#include "model/deepseek_v3.h"

#include <string.h>

#define FP8_BLOCK 128

/* Bytes of a [rows, cols] weight stored as E4M3 with one float32 scale per 128x128 block. */
static double fp8_bytes(int64_t rows, int64_t cols) {
    int64_t blocks = ((rows + FP8_BLOCK - 1) / FP8_BLOCK) * ((cols + FP8_BLOCK - 1) / FP8_BLOCK);
    return (double)rows * (double)cols + 4.0 * (double)blocks;
}

typedef struct {
    int64_t params;
    double fp8;   /* bytes: 2-D projections in FP8, everything else bf16 (the router bias fp32) */
} tally;

static void add_matrix(tally *t, int64_t rows, int64_t cols) {
    t->params += rows * cols;
    t->fp8 += fp8_bytes(rows, cols);
}

static void add_bf16(tally *t, int64_t n) {
    t->params += n;
    t->fp8 += 2.0 * (double)n;
}

/* One block's tensors; *routed_expert receives one routed expert's parameter count. */
static void count_block(const deepseek_v3_config *c, int b, tally *t, int64_t *routed_expert) {
    int64_t D = c->hidden_size, H = c->num_attention_heads, QK = deepseek_v3_qk_head_dim(c);
    if (c->q_lora_rank > 0) {
        add_matrix(t, c->q_lora_rank, D);
        add_bf16(t, c->q_lora_rank);
        add_matrix(t, H * QK, c->q_lora_rank);
    } else {
        add_matrix(t, H * QK, D);
    }
    add_matrix(t, c->kv_lora_rank + c->qk_rope_head_dim, D);
    add_bf16(t, c->kv_lora_rank);
    add_matrix(t, H * (c->qk_nope_head_dim + c->v_head_dim), c->kv_lora_rank);
    add_matrix(t, D, H * c->v_head_dim);
    add_bf16(t, 2 * D);   /* input_layernorm, post_attention_layernorm */
    *routed_expert = 0;
    if (!deepseek_v3_layer_is_moe(c, b)) {
        for (int i = 0; i < 3; i++) add_matrix(t, c->intermediate_size, D);
        return;
    }
    int64_t E = c->n_routed_experts, MI = c->moe_intermediate_size, SI = (int64_t)c->n_shared_experts * MI;
    add_bf16(t, E * D);   /* gate.weight */
    if (!strcmp(c->model_type, "deepseek_v3")) {
        t->params += E;   /* e_score_correction_bias, fp32 */
        t->fp8 += 4.0 * (double)E;
    }
    for (int64_t e = 0; e < E; e++)
        for (int i = 0; i < 3; i++) add_matrix(t, MI, D);
    if (SI > 0)
        for (int i = 0; i < 3; i++) add_matrix(t, SI, D);
    *routed_expert = 3 * MI * D;
}

void deepseek_v3_count(const deepseek_v3_config *c, deepseek_v3_sizes *out) {
    memset(out, 0, sizeof *out);
    int64_t D = c->hidden_size, V = c->vocab_size;
    tally main_t = {0, 0}, mtp_t = {0, 0};
    add_bf16(&main_t, V * D);                                  /* embed_tokens */
    if (!c->tie_word_embeddings) add_bf16(&main_t, V * D);      /* lm_head */
    add_bf16(&main_t, D);                                      /* norm */
    int64_t inactive = 0, expert = 0;
    for (int b = 0; b < c->num_hidden_layers; b++) {
        count_block(c, b, &main_t, &expert);
        inactive += (int64_t)(c->n_routed_experts - c->num_experts_per_tok) * expert;
    }
    for (int k = 0; k < c->num_nextn_predict_layers; k++) {
        count_block(c, c->num_hidden_layers + k, &mtp_t, &expert);
        add_bf16(&mtp_t, 3 * D);        /* enorm, hnorm, shared_head.norm */
        add_matrix(&mtp_t, D, 2 * D);   /* eh_proj */
    }
    out->main_params = main_t.params;
    out->mtp_params = mtp_t.params;
    out->total_params = main_t.params + mtp_t.params;
    out->activated_params = main_t.params - inactive;
    out->embedding_params = V * D * (c->tie_word_embeddings ? 1 : 2);
    out->bytes_fp32 = 4.0 * (double)out->total_params;
    out->bytes_bf16 = 2.0 * (double)out->total_params;
    out->bytes_fp8 = main_t.fp8 + mtp_t.fp8;
    out->latent_cache_bytes_per_token = (int64_t)c->num_hidden_layers * (c->kv_lora_rank + c->qk_rope_head_dim) * 2;
    out->mha_cache_bytes_per_token = (int64_t)c->num_hidden_layers * c->num_attention_heads *
                                     (deepseek_v3_qk_head_dim(c) + c->v_head_dim) * 2;
}

static void human(char *buf, size_t size, double bytes) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, size, "%.2f %s", bytes, unit[u]);
}

/* 671.026B, 12.388M, 3.1K */
static void count_str(char *buf, size_t size, int64_t n) {
    if (n >= 1000000000) snprintf(buf, size, "%.3fB", n / 1e9);
    else if (n >= 1000000) snprintf(buf, size, "%.3fM", n / 1e6);
    else snprintf(buf, size, "%.1fK", n / 1e3);
}

void deepseek_v3_describe(const deepseek_v3_config *c, FILE *f) {
    deepseek_v3_sizes s;
    deepseek_v3_count(c, &s);
    char b32[32], b16[32], b8[32];
    human(b32, sizeof b32, s.bytes_fp32);
    human(b16, sizeof b16, s.bytes_bf16);
    human(b8, sizeof b8, s.bytes_fp8);
    fprintf(f, "model_type %s: %d layers (%d dense, %d MoE) + %d MTP module(s), hidden %d, vocab %d\n",
            c->model_type, c->num_hidden_layers,
            c->first_k_dense_replace < c->num_hidden_layers ? c->first_k_dense_replace : c->num_hidden_layers,
            c->num_hidden_layers > c->first_k_dense_replace ? c->num_hidden_layers - c->first_k_dense_replace : 0,
            c->num_nextn_predict_layers, c->hidden_size, c->vocab_size);
    fprintf(f, "attention: MLA, %d heads, q_lora_rank %d%s, kv_lora_rank %d, qk_nope %d + qk_rope %d, v %d, "
            "softmax scale %.6g%s\n", c->num_attention_heads, c->q_lora_rank, c->q_lora_rank ? "" : " (plain q_proj)",
            c->kv_lora_rank, c->qk_nope_head_dim, c->qk_rope_head_dim, c->v_head_dim, hf_config_v3_softmax_scale(c),
            c->rope.yarn ? " (YaRN mscale)" : "");
    fprintf(f, "MoE: %d routed experts (top %d, %d groups, top %d groups, %s scoring) + %d shared, expert width %d; "
            "dense MLP width %d\n", c->n_routed_experts, c->num_experts_per_tok, c->n_group, c->topk_group,
            c->scoring_func == HF_SCORING_SIGMOID ? "sigmoid" : "softmax", c->n_shared_experts,
            c->moe_intermediate_size, c->intermediate_size);
    char total[32], main_p[32], mtp[32], active[32], embed[32];
    count_str(total, sizeof total, s.total_params);
    count_str(main_p, sizeof main_p, s.main_params);
    count_str(mtp, sizeof mtp, s.mtp_params);
    count_str(active, sizeof active, s.activated_params);
    count_str(embed, sizeof embed, s.embedding_params);
    fprintf(f, "parameters: %s total (main %s + MTP %s), %s activated per token, %s in embedding + head\n", total,
            main_p, mtp, active, embed);
    fprintf(f, "weights: fp32 %s, bf16 %s, fp8 %s (E4M3 projections + fp32 scale per 128x128 block, rest bf16)\n", b32,
            b16, b8);
    fprintf(f, "KV cache per token (bf16, all layers): latent %lld bytes (kv_lora_rank + qk_rope = %d per layer) vs "
            "MHA %lld bytes (%.1fx smaller)\n", (long long)s.latent_cache_bytes_per_token,
            c->kv_lora_rank + c->qk_rope_head_dim, (long long)s.mha_cache_bytes_per_token,
            (double)s.mha_cache_bytes_per_token / (double)s.latent_cache_bytes_per_token);
}
