/* Inputs for the sampling tests (test_sample.c, test_cuda_sample.c): a seed fresh each run
 * (time ^ pid, printed; env GRPO_TEST_SEED repeats one), rows of logits of several kinds
 * (spread, many ties, all equal, one dominant token, a few repeated values), and the
 * truncation settings to sweep (greedy, top_k past V, tiny top_p, min_p, combinations). */
#ifndef GRPO_TESTS_SAMPLE_CASES_H
#define GRPO_TESTS_SAMPLE_CASES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/rng.h"
#include "core/sample.h"

static inline uint64_t sample_test_seed(void) {
    const char *env = getenv("GRPO_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0) : ((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20));
    printf("seed %llu (GRPO_TEST_SEED=%llu repeats this run)\n", (unsigned long long)seed, (unsigned long long)seed);
    return seed;
}

#define SAMPLE_ROW_KINDS 5

/* Row `row` of kind `kind` (0 spread normals, 1 normals rounded to halves: many ties, 2 all
 * equal, 3 one token far above the rest, 4 three values repeated) into x[V]; never all
 * zeros (kind 2 is a random nonzero constant). */
static inline void sample_fill_row(float *x, int V, int kind, uint64_t seed, uint64_t row) {
    float scale = 1.0f + 7.0f * rng_uniform(seed, row, 0x5ca1e);
    float c = 1.0f + 3.0f * rng_uniform(seed, row, 0xc0);
    for (int i = 0; i < V; i++) {
        float n = rng_normal(seed, row, (uint64_t)i);
        switch (kind) {
        case 0: x[i] = scale * n; break;
        case 1: x[i] = (float)(int)(n * 2.0f) * 0.5f + 0.25f; break;
        case 2: x[i] = -c; break;
        case 3: x[i] = n; break;
        default: x[i] = (float)((int)(rng_u32(seed, row, (uint64_t)i) % 3u)) * 1.5f - c; break;
        }
    }
    if (kind == 3) x[rng_u32(seed, row, 0xd0) % (uint32_t)V] = 12.0f + c;
}

/* The settings swept, for a vocabulary of V (top_k relative to V where it matters). */
static inline int sample_param_cases(int V, sample_params *out, int cap) {
    const float temps[] = {0.0f, 0.7f, 1.0f, 1.6f};
    const int ks[] = {0, 1, 3, V > 1 ? V - 1 : 1, V, V + 17};
    const float ps[] = {1.0f, 0.95f, 0.5f, 1e-6f};
    const float mins[] = {0.0f, 0.1f, 1.0f};
    int n = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 6; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 3; d++) {
                    if (temps[a] == 0.0f && (b || c || d)) continue;   /* greedy ignores the rest */
                    if (n < cap) out[n] = (sample_params){temps[a], ks[b], ps[c], mins[d]};
                    n++;
                }
    return n;
}

#endif
