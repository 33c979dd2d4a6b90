/* Data parallelism end to end: SFT and GRPO on 2 and 4 MPI ranks (CPU, loopback,
 * oversubscribed) end with the same weights, within float tolerance, as one process that
 * trains on the same global batch (the per-rank batch times the ranks, by gradient
 * accumulation). The ranks are this executable started again by mpirun with --worker;
 * the test SKIPs without mpirun or without MPI in the build. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/comm.h"
#include "core/fs.h"
#include "core/progress.h"
#include "data/generate.h"
#include "harness.h"
#include "model/lm.h"
#include "model/tokenizer.h"
#include "rl/grpo_train.h"
#include "rl/sft.h"

static const char *model_json =
    "{\"model_type\": \"qwen2\", \"vocab_size\": 400, \"hidden_size\": 32, \"intermediate_size\": 64,"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
    " \"max_position_embeddings\": 128, \"tie_word_embeddings\": true}";

#define GLOBAL_ACCUM 4   /* micro-batches per step summed over the ranks */

/* Writes the model's parameters (rank 0) to ROOT/KIND-wW.f32; returns the status. */
static grpo_status dump_params(lm *m, const char *root, const char *kind, int world) {
    if (comm_rank(comm_world()) != 0) return GRPO_OK;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s-w%d.f32", root, kind, world);
    size_t n = m->params->total;
    float *host = malloc(n * sizeof(float));
    if (!host) return GRPO_ERR_NOMEM;
    m->be->to_host(m->be, host, m->params->data, n * sizeof(float));
    grpo_status s = fs_write_atomic(path, host, n * sizeof(float));
    free(host);
    return s;
}

/* For bench/scale_ranks.sh: seconds per step and bytes this rank sent per step, against
 * the formula of data parallelism with ZeRO-1 (gradient all-reduce 2 (W-1)/W 4P, weight
 * all-gather (W-1) 4 ceil(P/W); the few scalar all-reduces of the loss normalisers and
 * metrics are left out of the formula). */
static int g_steps;
static void report(lm *m, int world, double seconds) {
    comm_stats st = comm_get_stats(comm_world());
    double P = (double)m->params->total, W = world;
    double formula = W > 1 ? 2 * (W - 1) / W * 4 * P + (W - 1) * 4 * ceil(P / W) : 0;
    printf("BENCH ranks=%d params=%.0f steps=%d step_s=%.4f model_bytes_per_step=%.0f wire_bytes_per_step=%.0f "
           "formula_bytes_per_step=%.0f collectives_per_step=%.1f\n",
           world, P, g_steps, seconds / g_steps, (double)st.model_bytes / g_steps, (double)st.wire_bytes / g_steps,
           formula, (double)st.calls / g_steps);
}

/* One training run of `kind` ("sft" or "grpo") on this process's world; rank 0 dumps the
 * final weights. The per-rank accumulation is GLOBAL_ACCUM / world. */
static grpo_status train(const char *kind, const char *root) {
    int world = comm_size(comm_world());
    char data[PATH_MAX];
    snprintf(data, sizeof data, "%s/train.jsonl", root);
    backend *be = backend_cpu_create();
    tokenizer *tok = NULL;
    lm *m = NULL;
    grpo_status s = tokenizer_builtin_create(&tok);
    if (!s) s = lm_create_random(be, model_json, strlen(model_json), "test model", 7, &m);
    if (!s) s = param_set_alloc_grad(m->params);
    double t0 = progress_now();
    comm_reset_stats(comm_world());
    train_run run = {.pad_id = tok ? tokenizer_pad_id(tok) : 0, .quiet = 1};
    if (!s && !strcmp(kind, "sft")) {
        sft_dataset *ds = NULL;
        s = sft_dataset_load(data, tok, "Q: {prompt}\nA: ", 64, &ds);
        sft_config c = sft_config_default();
        c.max_steps = getenv("GRPO_DP_STEPS") ? atoi(getenv("GRPO_DP_STEPS")) : 3;
        g_steps = c.max_steps;
        c.per_device_train_batch_size = 2;
        c.gradient_accumulation_steps = GLOBAL_ACCUM / world;
        c.max_length = 64;
        c.optim.learning_rate = 1e-2;
        c.logging_steps = 0;
        sft_result r;
        if (!s) s = sft_train(&c, m, ds, NULL, &run, &r);
        sft_dataset_free(ds);
    } else if (!s) {
        problem_set *ps = NULL;
        reward_set *rewards = NULL;
        s = problem_set_load(data, tok, "Q: {prompt}\nA: ", 32, &ps);
        reward_entry entries[1] = {{.kind = 6, .weight = 1.0}};   /* repetition_penalty: varies on random text */
        if (!s) s = reward_set_create(entries, 1, &rewards);
        grpo_config c = grpo_config_default();
        c.max_steps = 2;
        g_steps = c.max_steps;
        c.num_generations = 4;
        c.per_device_train_batch_size = 4;   /* one group per micro-batch */
        c.gradient_accumulation_steps = GLOBAL_ACCUM / world;
        c.max_completion_length = 12;
        c.optim.learning_rate = 1e-2;
        c.bias_update_gamma = 0;
        /* a random model's rewards rarely differ within a group, so the entropy bonus makes
         * sure every sample's tokens carry gradient through the same normalisation */
        c.loss.entropy_coef = 0.05;
        c.seed = 11;
        grpo_result r;
        if (!s) s = grpo_train(&c, m, NULL, tok, ps, NULL, rewards, &run, &r);
        reward_set_free(rewards);
        problem_set_free(ps);
    }
    if (!s) s = dump_params(m, root, kind, world);
    if (!s && getenv("GRPO_DP_REPORT") && comm_rank(comm_world()) == 0) report(m, world, progress_now() - t0);
    lm_free(m);
    tokenizer_free(tok);
    backend_free(be);
    return s;
}

static float *read_floats(const char *root, const char *kind, int world, size_t *n) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s-w%d.f32", root, kind, world);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *v = malloc((size_t)bytes);
    *n = fread(v, sizeof(float), (size_t)bytes / sizeof(float), f);
    fclose(f);
    return v;
}

/* The weights of `world` ranks against the single-process ones: largest difference
 * within tol, and the training moved the weights far more than that. */
static void compare(const char *root, const char *kind, int world, const float *init) {
    size_t n1 = 0, nw = 0;
    float *one = read_floats(root, kind, 1, &n1), *many = read_floats(root, kind, world, &nw);
    CHECK(one != NULL && many != NULL);
    if (one && many) {
        CHECK_INT((long)n1, (long)nw);
        double diff = 0, moved = 0;
        for (size_t i = 0; i < n1 && i < nw; i++) {
            diff = fmax(diff, fabs((double)one[i] - many[i]));
            moved = fmax(moved, fabs((double)one[i] - init[i]));
        }
        printf("%s: %d ranks vs 1: max |dw| %.3g (weights moved up to %.3g)\n", kind, world, diff, moved);
        CHECK(diff < 2e-4);
        CHECK(moved > 100 * 2e-4);
    }
    free(one);
    free(many);
}

static int have_mpirun(void) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    char *copy = strdup(path), *save = NULL;
    int found = 0;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/mpirun", dir);
        found = access(p, X_OK) == 0;
    }
    free(copy);
    return found;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--worker-data")) {   /* bench/scale_ranks.sh */
        char data[PATH_MAX];
        snprintf(data, sizeof data, "%s/train.jsonl", argv[2]);
        FILE *f = fopen(data, "w");
        if (!f) return 1;
        data_arith_options o = {.difficulty = 1, .ops = "+"};
        grpo_status s = data_write_arith(f, 3, 0, 200, &o);
        return fclose(f) != 0 || s ? 1 : 0;
    }
    if (argc == 4 && !strcmp(argv[1], "--worker")) {
        grpo_status s = train(argv[2], argv[3]);
        if (s) fprintf(stderr, "rank %d: %s\n", comm_rank(comm_world()), grpo_error_message());
        return s ? 1 : 0;
    }
    if (!comm_have_mpi()) TEST_SKIP("built without MPI (GRPO_MPI=OFF or no MPI found)");
    if (!have_mpirun()) TEST_SKIP("no mpirun on PATH");
    char root[PATH_MAX], self[PATH_MAX];
    snprintf(root, sizeof root, "/tmp/grpo_test_dp_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(root));
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(len > 0);
    if (len <= 0) TEST_MAIN_END();
    self[len] = 0;
    char data[PATH_MAX];
    snprintf(data, sizeof data, "%s/train.jsonl", root);
    FILE *f = fopen(data, "w");
    data_arith_options o = {.difficulty = 1, .ops = "+"};
    CHECK_OK(data_write_arith(f, 3, 0, 200, &o));
    fclose(f);

    /* the initial weights, to see that training moved them */
    backend *be = backend_cpu_create();
    lm *m0 = NULL;
    CHECK_OK(lm_create_random(be, model_json, strlen(model_json), "test model", 7, &m0));
    if (!m0) TEST_MAIN_END();
    float *init = malloc(m0->params->total * sizeof(float));
    be->to_host(be, init, m0->params->data, m0->params->total * sizeof(float));

    const char *kinds[] = {"sft", "grpo"};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(train(kinds[k], root));   /* the single-process reference, in this process */
        for (int world = 2; world <= 4; world *= 2) {
            char cmd[3 * PATH_MAX];
            snprintf(cmd, sizeof cmd,
                     "LSAN_OPTIONS=detect_leaks=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
                     "mpirun -np %d --oversubscribe --mca btl self,vader --bind-to none %s --worker %s %s",
                     world, self, kinds[k], root);
            int rc = system(cmd);
            CHECK_INT(0, rc);
            compare(root, kinds[k], world, init);
        }
    }
    free(init);
    lm_free(m0);
    backend_free(be);
    char rm[PATH_MAX + 16];
    snprintf(rm, sizeof rm, "rm -rf %s", root);
    if (harness_failures == 0 && system(rm) != 0) printf("could not remove %s\n", root);
    TEST_MAIN_END();
}
