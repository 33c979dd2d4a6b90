/* Logit distillation loss (rl/kd_loss.h): forward KL(teacher_T || student_T) * T^2 per
 * token, teacher truncated to its top-k logits and renormalised. */
#include "rl/kd_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

kd_options kd_options_default(void) {
    kd_options o = {.temperature = 1.0, .top_k = 0};
    return o;
}

grpo_status kd_options_validate(const kd_options *o) {
    if (!(isfinite(o->temperature) && o->temperature > 0))
        return grpo_fail(GRPO_ERR_INVALID, "kd.temperature: expected a finite value > 0, found %g", o->temperature);
    if (o->top_k < 0) return grpo_fail(GRPO_ERR_INVALID, "kd.top_k: expected 0 (all) or more, found %d", o->top_k);
    return GRPO_OK;
}

/* A min-heap of (value, id) holding the k largest teacher logits seen so far; the root is
 * the weakest: lower value, or the same value with a higher id (so lower ids win ties). */
typedef struct {
    float v;
    int id;
} kd_entry;

static int weaker(kd_entry a, kd_entry b) { return a.v < b.v || (a.v == b.v && a.id > b.id); }

static void sift_down(kd_entry *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && weaker(h[l], h[m])) m = l;
        if (r < n && weaker(h[r], h[m])) m = r;
        if (m == i) return;
        kd_entry t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* The k largest of z[0..V) into h[0..k) (heap order, not sorted). */
static void top_k_select(const float *z, int V, int k, kd_entry *h) {
    for (int i = 0; i < k; i++) h[i] = (kd_entry){z[i], i};
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(h, k, i);
    for (int i = k; i < V; i++) {
        kd_entry c = {z[i], i};
        if (weaker(h[0], c)) {
            h[0] = c;
            sift_down(h, k, 0);
        }
    }
}

static int row_finite(const float *z, int V) {
    for (int i = 0; i < V; i++)
        if (!isfinite(z[i])) return 0;
    return 1;
}

grpo_status kd_loss(const kd_options *o, int N, const float *student_logits, int V_student,
                    const float *teacher_logits, int V_teacher, const uint8_t *mask, double denominator, double *loss,
                    float *dstudent) {
    *loss = 0;
    GRPO_TRY(kd_options_validate(o));
    if (N < 0 || V_student < 1 || V_teacher < 1)
        return grpo_fail(GRPO_ERR_INVALID, "kd_loss: expected N >= 0 and vocabularies >= 1, found N %d, V_student %d, "
                         "V_teacher %d", N, V_student, V_teacher);
    int V = V_student < V_teacher ? V_student : V_teacher;   /* ids both rows cover */
    int k = o->top_k > 0 && o->top_k < V ? o->top_k : 0;     /* 0: the whole common vocabulary */
    long counted = 0;
    for (int n = 0; n < N; n++) counted += !mask || mask[n];
    double denom = denominator > 0 ? denominator : (double)counted;
    kd_entry *heap = NULL;
    if (k > 0 && counted > 0) {
        heap = malloc((size_t)k * sizeof *heap);
        if (!heap) return grpo_fail(GRPO_ERR_NOMEM, "kd_loss: cannot allocate a top-%d scratch", k);
    }
    const double T = o->temperature, invT = 1.0 / T;
    double total = 0;
    grpo_status s = GRPO_OK;
    for (int n = 0; n < N && !s; n++) {
        const float *zs = student_logits + (size_t)n * V_student, *zt = teacher_logits + (size_t)n * V_teacher;
        float *g = dstudent ? dstudent + (size_t)n * V_student : NULL;
        if (mask && !mask[n]) {
            if (g) memset(g, 0, (size_t)V_student * sizeof *g);
            continue;
        }
        if (!row_finite(zs, V_student) || !row_finite(zt, V)) {
            s = grpo_fail(GRPO_ERR_INVALID, "kd_loss: row %d: expected finite logits, found a NaN or infinity in the %s's",
                          n, row_finite(zs, V_student) ? "teacher" : "student");
            break;
        }
        /* Student: log q_j = (z_j - max) / T - log sum_i exp((z_i - max) / T). */
        double ms = zs[0];
        for (int j = 1; j < V_student; j++) ms = zs[j] > ms ? zs[j] : ms;
        double sum_s = 0;
        for (int j = 0; j < V_student; j++) sum_s += exp((zs[j] - ms) * invT);
        double log_zs = log(sum_s);
        /* Teacher over its kept set S (top-k, or all V). */
        double mt = -INFINITY, sum_t = 0, kl = 0;
        if (k > 0) {
            top_k_select(zt, V, k, heap);
            for (int i = 0; i < k; i++) mt = heap[i].v > mt ? heap[i].v : mt;
            for (int i = 0; i < k; i++) sum_t += exp((heap[i].v - mt) * invT);
        } else {
            for (int i = 0; i < V; i++) mt = zt[i] > mt ? zt[i] : mt;
            for (int i = 0; i < V; i++) sum_t += exp((zt[i] - mt) * invT);
        }
        double log_zt = log(sum_t);
        double scale = denom > 0 ? 1.0 / denom : 0.0;
        /* KL(p || q) = sum_{i in S} p_i (log p_i - log q_i); d KL / d z_j = (q_j - p_j) / T,
         * so d (T^2 KL) / d z_j = T (q_j - p_j). */
        if (g)
            for (int j = 0; j < V_student; j++) g[j] = (float)(scale * T * exp((zs[j] - ms) * invT - log_zs));
        int count = k > 0 ? k : V;
        for (int c = 0; c < count; c++) {
            int i = k > 0 ? heap[c].id : c;
            double log_p = (zt[i] - mt) * invT - log_zt, log_q = (zs[i] - ms) * invT - log_zs;
            double p = exp(log_p);
            if (p > 0) kl += p * (log_p - log_q);
            if (g) g[i] = (float)(scale * T * (exp(log_q) - p));
        }
        total += T * T * kl;
    }
    free(heap);
    if (s) return s;
    *loss = denom > 0 ? total / denom : 0;
    return GRPO_OK;
}
