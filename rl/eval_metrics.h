/* Held-out evaluation metrics over n samples per problem: pass@1 (mean correctness),
 * pass@k (the unbiased estimator of Chen et al. 2021, "Evaluating Large Language Models
 * Trained on Code", eq. 1), maj@k (majority vote over k answers) and mean length. */
#ifndef GRPO_EVAL_METRICS_H
#define GRPO_EVAL_METRICS_H

/* 1 - C(n - c, k) / C(n, k), computed as a product so it never overflows; n samples of
 * which c are correct; k <= n. */
double eval_pass_at_k(int n, int c, int k);

/* Majority vote over answers[0..k): answers are grouped by the equivalence `same`
 * (answers[i] vs answers[j] -> 1 when they are the same answer; NULL = strcmp); empty or
 * NULL answers do not vote. Returns the index of a representative of the largest group
 * (the earliest on ties), or -1 when no answer voted. */
int eval_majority(const char *const *answers, int k, int (*same)(const char *a, const char *b, void *ctx), void *ctx);

typedef struct {
    int problems;
    double pass_at_1;     /* mean over problems of (correct samples / n) */
    double pass_at_k;     /* mean over problems of eval_pass_at_k(n, c, k) */
    double maj_at_k;      /* share of problems whose majority answer (first k samples) is correct */
    double mean_length;   /* completion tokens, mean over all samples */
    int k;
} eval_summary;

/* Accumulates one problem: correct[n], lengths[n] (tokens), and whether its majority
 * answer over the first k samples is correct. */
void eval_summary_add(eval_summary *s, int n, const int *correct, const int *lengths, int k, int majority_correct);
/* Turns the sums into means (call once, after the last add). */
void eval_summary_finish(eval_summary *s);

#endif
