/* pass@k, maj@k and their aggregation (rl/eval_metrics.h). */
#include "rl/eval_metrics.h"

#include <stdlib.h>
#include <string.h>

double eval_pass_at_k(int n, int c, int k) {
    if (k <= 0 || n <= 0) return 0.0;
    if (k > n) k = n;
    if (n - c < k) return 1.0;
    /* C(n-c, k) / C(n, k) = prod_{i = n-c+1}^{n} (1 - k / i) */
    double fail = 1.0;
    for (int i = n - c + 1; i <= n; i++) fail *= 1.0 - (double)k / (double)i;
    return 1.0 - fail;
}

int eval_majority(const char *const *answers, int k, int (*same)(const char *a, const char *b, void *ctx), void *ctx) {
    int best = -1, best_votes = 0;
    for (int i = 0; i < k; i++) {
        if (!answers[i] || !answers[i][0]) continue;
        /* count each group once, at its first member */
        int first = 1;
        for (int j = 0; j < i && first; j++)
            if (answers[j] && answers[j][0] && (same ? same(answers[i], answers[j], ctx) : !strcmp(answers[i], answers[j])))
                first = 0;
        if (!first) continue;
        int votes = 0;
        for (int j = i; j < k; j++)
            if (answers[j] && answers[j][0] && (same ? same(answers[i], answers[j], ctx) : !strcmp(answers[i], answers[j])))
                votes++;
        if (votes > best_votes) {
            best_votes = votes;
            best = i;
        }
    }
    return best;
}

void eval_summary_add(eval_summary *s, int n, const int *correct, const int *lengths, int k, int majority_correct) {
    int c = 0;
    double len = 0;
    for (int i = 0; i < n; i++) {
        c += correct[i] != 0;
        len += lengths ? lengths[i] : 0;
    }
    s->problems++;
    s->k = k;
    s->pass_at_1 += n ? (double)c / n : 0;
    s->pass_at_k += eval_pass_at_k(n, c, k);
    s->maj_at_k += majority_correct != 0;
    s->mean_length += n ? len / n : 0;
}

void eval_summary_finish(eval_summary *s) {
    if (!s->problems) return;
    s->pass_at_1 /= s->problems;
    s->pass_at_k /= s->problems;
    s->maj_at_k /= s->problems;
    s->mean_length /= s->problems;
}
