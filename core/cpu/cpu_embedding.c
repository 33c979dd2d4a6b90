/* Token embedding lookup and its backward (a scatter-add into the table's gradient). */
#include "core/cpu/cpu_impl.h"

#include <string.h>

/* out: [T, D] = table[ids[t]] (table: [V, D]). ids must be valid rows of the table:
 * they are our own token ids (the tokenizer and sampler produce them), so a negative
 * one is a broken invariant. The table's row count is not passed, so the caller checks
 * the upper bound when ids come from outside. */
void cpu_embedding_forward(backend *be, float *out, const int32_t *ids, const float *table, int T, int D) {
    (void)be;
    CPU_OMP(parallel for schedule(static) if ((size_t)T * D >= CPU_PARALLEL_MIN))
    for (int t = 0; t < T; t++) {
        GRPO_ASSERTF(ids[t] >= 0, "embedding_forward: ids[%d] = %d is negative", t, (int)ids[t]);
        memcpy(out + (size_t)t * D, table + (size_t)ids[t] * D, (size_t)D * sizeof(float));
    }
}

#define EMBEDDING_COLUMN_BLOCK 64

/* dtable[ids[t]] += dout[t] for t in 0..T (dtable: [V, D], dout: [T, D]). The same id
 * may repeat, so threads split the columns, not the tokens: each owns a column slice
 * of every row and adds the tokens in order t = 0..T-1 (no races, fixed sum order). */
void cpu_embedding_backward(backend *be, float *dtable, const int32_t *ids, const float *dout, int T, int D) {
    (void)be;
    for (int t = 0; t < T; t++)
        GRPO_ASSERTF(ids[t] >= 0, "embedding_backward: ids[%d] = %d is negative", t, (int)ids[t]);
    int nblocks = (D + EMBEDDING_COLUMN_BLOCK - 1) / EMBEDDING_COLUMN_BLOCK;
    CPU_OMP(parallel for schedule(static) if ((size_t)T * D >= CPU_PARALLEL_MIN))
    for (int blk = 0; blk < nblocks; blk++) {
        int j0 = blk * EMBEDDING_COLUMN_BLOCK;
        int j1 = j0 + EMBEDDING_COLUMN_BLOCK < D ? j0 + EMBEDDING_COLUMN_BLOCK : D;
        for (int t = 0; t < T; t++) {
            float *row = dtable + (size_t)ids[t] * D;
            const float *g = dout + (size_t)t * D;
            for (int j = j0; j < j1; j++) row[j] += g[j];
        }
    }
}
