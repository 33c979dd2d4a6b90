/* Logit knowledge distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural
 * Network"): per token the forward KL from the teacher's temperature-softened distribution
 * to the student's, scaled by T^2 so its gradient keeps the size of a hard-label loss as T
 * changes, averaged over the response tokens of a mask.
 *
 *   p = softmax(teacher / T) restricted to the teacher's top_k logits and renormalised over
 *       that set (0 outside it); q = softmax(student / T) over the student's whole vocabulary
 *   KD_t = T^2 * sum_i p_i (log p_i - log q_i)          (>= 0, 0 iff q = p)
 *   loss = sum over masked t of KD_t / denominator
 *   d loss / d student_t,j = T * (q_j - p_j) / denominator   (masked rows; 0 elsewhere)
 *
 * Top-k convention: renormalised over the top-k set, not "top-k plus a rest bucket" and not
 * the untruncated probabilities. Why: the target stays a proper distribution, so the loss
 * is a true KL (minimum 0 when the student matches the truncated teacher) and the gradient
 * of each row sums to 0 (invariant to a shift of the student's logits), which is what
 * sparse-logit KD with cached top-k teacher logits does; and with top_k = 0 or >= V it is
 * exactly the untruncated KL. Ties at the k-th value keep the lower token ids.
 *
 * Vocabularies: the teacher's and student's logit rows may differ in width (padded
 * vocabularies of different families over one tokenizer); the teacher's top-k is taken
 * over ids < min(V_teacher, V_student) and the student's softmax over all its V_student. */
#ifndef GRPO_KD_LOSS_H
#define GRPO_KD_LOSS_H

#include <stdint.h>

#include "core/status.h"

typedef struct {
    double temperature;   /* T > 0 (Hinton's softening temperature; 1 = no softening) */
    int top_k;            /* teacher logits kept per token; 0 = all */
} kd_options;

/* Defaults: temperature 1, top_k 0 (all). */
kd_options kd_options_default(void);
/* Checks ranges: temperature finite and > 0, top_k >= 0; messages name the key. */
grpo_status kd_options_validate(const kd_options *o);

/* The KD loss of N token rows (host memory, float32):
 *   student_logits: [N, V_student]   teacher_logits: [N, V_teacher]
 *   mask: [N], nonzero = a response token that counts (NULL: every row counts)
 *   denominator: what the sum over masked rows is divided by; <= 0 means the number of
 *     masked rows (a caller accumulating micro-batches passes the optimizer step's count)
 * Writes *loss (0 when no row counts) and, when dstudent is not NULL, d loss / d
 * student_logits into dstudent [N, V_student] (overwritten; rows outside the mask are 0).
 * dstudent may not alias the inputs. Sums run in double. Fails for bad options or sizes,
 * or a row with non-finite logits (naming the row). Allocates nothing for top_k = 0;
 * with top_k > 0 it uses a small scratch of top_k entries on the stack or heap per call. */
grpo_status kd_loss(const kd_options *o, int N, const float *student_logits, int V_student,
                    const float *teacher_logits, int V_teacher, const uint8_t *mask, double denominator, double *loss,
                    float *dstudent);

#endif
