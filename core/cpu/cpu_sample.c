/* The `sample` op on the CPU (core/backend.h): each row through core/sample.c's
 * sample_row, rows in parallel, each thread on its own scratch buffer from the backend's
 * arena (made once, kept for the backend's life). */
#include "core/cpu/cpu_impl.h"
#include "core/sample.h"

void cpu_sample(backend *be, int32_t *tokens, float *logprob, float *policy_logprob, const float *logits, int ldl,
                int N, int V, const double *u, float temperature, int top_k, float top_p, float min_p) {
    if (N <= 0) return;
    GRPO_ASSERTF(V > 0 && ldl >= 0, "cpu sample: V %d, ldl %d: expected V > 0 and ldl >= 0", V, ldl);
    GRPO_ASSERTF(temperature == 0.0f || u, "cpu sample: no uniform numbers for temperature %g", temperature);
    const sample_params p = {temperature, top_k, top_p, min_p};
    const size_t floats = (sample_scratch_bytes(V) + sizeof(float) - 1) / sizeof(float);
    cpu_scratch_acquire(be, floats);
    CPU_OMP(parallel for schedule(guided) if (N > 1))
    for (int i = 0; i < N; i++)
        sample_row(&p, logits + (size_t)i * (size_t)ldl, V, u ? u[i] : 0.0, cpu_scratch_thread(be), &tokens[i],
                   &logprob[i], &policy_logprob[i]);
    cpu_scratch_release(be);
}
