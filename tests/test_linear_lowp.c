/* model/linear.c's two ways to a bf16 / fp8 product give the same bits on the CPU: the
 * compact path (weights as bf16 bit patterns or E4M3 codes + 128x128 scales, activations
 * coded into scratch, be->matmul_bf16 / matmul_fp8) and the rounding emulation (float32
 * copies through be->matmul, taken when the backend lacks the low-precision products).
 * Forward, input and weight gradients (every transpose linear_backward uses), a weight-only
 * product, weight slices on and off the 128x128 grid, and a second round after the weights
 * change (the per-view freshness). Inputs random, fresh each run (seed printed; env
 * GRPO_TEST_SEED repeats one). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "model/linear.h"
#include "model/params.h"
#include "tests/harness.h"
#include "tests/ops_check.h"

enum { T = 37, IN = 300, OUT = 200, SLICE = 128, STACK_ROWS = 3 * 130, STACK_COLS = 64 };

typedef struct {
    float y[T * OUT], dx[T * IN], dW[OUT * IN];
    float s_on[T * SLICE], s_off[T * SLICE], w_only[T * OUT];
} results;

static ops_rng rng;

/* Every product linear.c offers, at the precision set on ps->compute. */
static void run_all(param_set *ps, const float *x, const float *dy, const float *xs, results *r) {
    backend *be = ps->be;
    linear *lin = ps->compute;
    const float *W = param_ptr(ps, 0), *stack = param_ptr(ps, 1);
    memset(r, 0, sizeof *r);
    linear_forward(lin, be, r->y, OUT, x, IN, W, T, IN, OUT, 0.0f);
    linear_backward(lin, be, r->dx, 0.0f, r->dW, dy, x, W, T, IN, OUT);
    /* rows 256 .. 383 of the stacked view: on its 128-row grid (compact when it can) */
    linear_forward(lin, be, r->s_on, SLICE, xs, STACK_COLS, stack + (size_t)256 * STACK_COLS, T, STACK_COLS, SLICE,
                   0.0f);
    /* rows 130 .. 257: off the grid (fp8 takes the emulation) */
    linear_forward(lin, be, r->s_off, SLICE, xs, STACK_COLS, stack + (size_t)130 * STACK_COLS, T, STACK_COLS, SLICE,
                   0.0f);
    linear_matmul_weight_only(lin, be, 0, 1, T, OUT, IN, 1.0f, x, IN, W, IN, 0.0f, r->w_only, OUT);
}

static int count_differ(const float *a, const float *b, size_t n) {
    int d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

int main(void) {
    const char *env = getenv("GRPO_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("seed %llu (GRPO_TEST_SEED=%llu repeats this run)\n", (unsigned long long)seed, (unsigned long long)seed);
    rng.state = seed;
    backend *be = backend_cpu_create();
    GRPO_ASSERT(be);
    param_set ps;
    param_set_init(&ps, be);
    const int64_t w_shape[2] = {OUT, IN}, s_shape[2] = {STACK_ROWS, STACK_COLS};
    param_set_add(&ps, "w.weight", 2, w_shape, 0);
    param_set_add(&ps, "stack.weight", 2, s_shape, 0);
    CHECK_OK(param_set_alloc(&ps));
    param_set_init_normal(&ps, seed, 0.5f);
    float *x = ops_random(&rng, (size_t)T * IN, -2, 2), *dy = ops_random(&rng, (size_t)T * OUT, -1, 1);
    float *xs = ops_random(&rng, (size_t)T * STACK_COLS, -3, 3);
    results *compact = malloc(sizeof *compact), *emulated = malloc(sizeof *emulated), *fp32 = malloc(sizeof *fp32);

    const quant_precision precisions[2] = {QUANT_BF16, QUANT_FP8};
    void (*saved_bf16)(backend *, int, int, int, int, int, float, const uint16_t *, int, const uint16_t *, int, float,
                       float *, int) = be->matmul_bf16;
    void (*saved_fp8)(backend *, int, int, int, int, int, float, const uint8_t *, int, const float *, int, int,
                      const uint8_t *, int, const float *, int, int, float, float *, int) = be->matmul_fp8;
    for (int round = 0; round < 2; round++) {
        if (round == 1) {   /* the weights change: both paths must remake their copies */
            param_set_init_normal(&ps, seed + 1, 0.25f);
            param_set_touch(&ps);
        }
        CHECK_OK(linear_set_precision(ps.compute, QUANT_FP32));
        run_all(&ps, x, dy, xs, fp32);
        for (int i = 0; i < 2; i++) {
            quant_precision p = precisions[i];
            CHECK_OK(linear_set_precision(ps.compute, p));
            run_all(&ps, x, dy, xs, compact);
            if (round == 1) run_all(&ps, x, dy, xs, compact);   /* copies made once, reused */
            be->matmul_bf16 = NULL;
            be->matmul_fp8 = NULL;
            CHECK_OK(linear_set_precision(ps.compute, p));
            run_all(&ps, x, dy, xs, emulated);
            be->matmul_bf16 = saved_bf16;
            be->matmul_fp8 = saved_fp8;
            size_t n = sizeof *compact / sizeof(float);
            int d = count_differ((const float *)compact, (const float *)emulated, n);
            CHECK_MSG(d == 0, "round %d %s: %d of %zu outputs differ between compact and emulated products", round,
                      quant_precision_name(p), d, n);
            /* and the precision did something: outputs differ from fp32 */
            CHECK_MSG(count_differ(compact->y, fp32->y, (size_t)T * OUT) > 0, "%s: y equals the fp32 product",
                      quant_precision_name(p));
            printf("round %d %s: %zu outputs bit-equal (compact vs emulation); rel err of y vs fp32 %.2e\n", round,
                   quant_precision_name(p), n, harness_max_rel_err(compact->y, fp32->y, (long)T * OUT, 1e-6));
        }
    }
    free(x), free(dy), free(xs), free(compact), free(emulated), free(fp32);
    param_set_deinit(&ps);
    backend_free(be);
    TEST_MAIN_END();
}
