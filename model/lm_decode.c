/* The batch layout both model families' decoders share (model/lm.h, lm_decode_stage). */
#include "model/lm.h"

grpo_status lm_decode_stage(const char *who, const lm_decode_limits *l, const lm_cache *cache, int vocab_size,
                            int max_positions, const lm_decode_seq *seqs, int n_seqs, int32_t *host, int *T_out,
                            int *G_out) {
    if (n_seqs < 1 || n_seqs > l->max_seqs)
        return grpo_fail(GRPO_ERR_INVALID, "%s: %d sequences, expected 1 .. %d", who, n_seqs, l->max_seqs);
    int64_t T = 0, G = 0;
    for (int s = 0; s < n_seqs; s++) {
        const lm_decode_seq *q = &seqs[s];
        if (q->n_new < 1 || q->n_cached < 0 || q->n_logits < 1 || q->n_logits > q->n_new || !q->ids ||
            !q->block_table)
            return grpo_fail(GRPO_ERR_INVALID, "%s: sequence %d: n_new %d, n_cached %d, n_logits %d: "
                             "expected n_new >= 1, n_cached >= 0, 1 <= n_logits <= n_new", who, s, q->n_new, q->n_cached,
                             q->n_logits);
        int64_t len = (int64_t)q->n_cached + q->n_new;
        if (len > max_positions)
            return grpo_fail(GRPO_ERR_INVALID, "%s: sequence %d reaches %lld tokens, beyond "
                             "max_position_embeddings %d", who, s, (long long)len, max_positions);
        if ((len + cache->block_size - 1) / cache->block_size > l->max_blocks_per_seq)
            return grpo_fail(GRPO_ERR_INVALID, "%s: sequence %d needs %lld blocks, the decoder was sized "
                             "for %d", who, s, (long long)((len + cache->block_size - 1) / cache->block_size),
                             l->max_blocks_per_seq);
        T += q->n_new;
        G += q->n_logits;
    }
    if (T > l->max_tokens || G > l->max_logits)
        return grpo_fail(GRPO_ERR_INVALID, "%s: %lld tokens and %lld logit rows exceed the decoder's %d "
                         "and %d", who, (long long)T, (long long)G, l->max_tokens, l->max_logits);
    int32_t *ids = host, *pos = ids + T, *slots = pos + T, *seq_of = slots + T, *ctx = seq_of + T;
    int32_t *tables = ctx + T;
    int64_t t = 0;
    for (int s = 0; s < n_seqs; s++) {
        const lm_decode_seq *q = &seqs[s];
        int n_blocks = (q->n_cached + q->n_new + cache->block_size - 1) / cache->block_size;
        int32_t *table = tables + (size_t)s * l->max_blocks_per_seq;
        for (int b = 0; b < l->max_blocks_per_seq; b++) {
            if (b >= n_blocks) { table[b] = 0; continue; }
            if (q->block_table[b] < 0 || q->block_table[b] >= cache->num_blocks)
                return grpo_fail(GRPO_ERR_INVALID, "%s: sequence %d: block_table[%d] = %d outside the "
                                 "cache's %d blocks", who, s, b, q->block_table[b], cache->num_blocks);
            table[b] = q->block_table[b];
        }
        for (int j = 0; j < q->n_new; j++, t++) {
            if (q->ids[j] < 0 || q->ids[j] >= vocab_size)
                return grpo_fail(GRPO_ERR_INVALID, "%s: sequence %d: token %d is %d, outside the "
                                 "vocabulary (%d)", who, s, j, q->ids[j], vocab_size);
            int p = q->n_cached + j;
            ids[t] = q->ids[j];
            pos[t] = p;
            slots[t] = table[p / cache->block_size] * cache->block_size + p % cache->block_size;
            seq_of[t] = s;
            ctx[t] = p + 1;
        }
    }
    *T_out = (int)T;
    *G_out = (int)G;
    return GRPO_OK;
}
