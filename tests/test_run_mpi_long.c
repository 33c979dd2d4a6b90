/* `grpo run` under `mpirun -np 2` (CPU, oversubscribed, shared memory), end to end on a
 * tiny config (SFT then GRPO): the two ranks end with the weights, within float
 * tolerance, of one process training on the same global batch (gradient accumulation
 * halved per rank), rank 0 alone writes the run store and prints the summary; a rank
 * killed with SIGKILL after the GRPO stage's first checkpoint stops the job within a
 * bounded time with a message naming it, and the same command then resumes and ends
 * with the uninterrupted run's weights. SKIPs without MPI in the build or mpirun. */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/comm.h"
#include "core/fs.h"
#include "core/store.h"
#include "harness.h"
#include "model/lm.h"

#define SFT_STEPS 3
#define GRPO_STEPS 8
#define TOL 2e-4          /* N ranks against one process: sums in another order */
#define KILL_BOUND_S 30   /* the job must be gone this long after a rank is killed */

static const char *grpo;
static char dir[PATH_MAX];

static const char *config =
    "run:\n  name: one\n  output_dir: runs\n  seed: 5\n"
    "model:\n  preset: tiny-dense\n"
    "datasets:\n  - {name: p, generate: arith, n: 32, difficulty: 1, ops: \"+-\"}\n"
    "  - {name: h, generate: arith, n: 4, offset: 100000, difficulty: 1, ops: \"+-\"}\n"
    "stages:\n"
    "  - {name: warm, kind: sft, train_dataset: p, max_steps: 3, per_device_train_batch_size: 2,\n"
    "     gradient_accumulation_steps: 2, max_length: 96, save_steps: 2, learning_rate: 0.01}\n"
    "  - name: rl\n    kind: grpo\n    train_dataset: p\n    heldout_dataset: h\n    max_steps: 8\n"
    "    per_device_train_batch_size: 4\n    gradient_accumulation_steps: 2\n    num_generations: 4\n"
    "    max_prompt_length: 256\n    max_completion_length: 12\n    max_length: 300\n    save_steps: 1\n"
    "    learning_rate: 0.01\n    beta: 0.01\n    eval_num_generations: 2\n"
    /* a random model's rewards rarely differ within a group: the entropy bonus gives every
     * sample's tokens a gradient, so the ranks' shares of the step all count */
    "    entropy_coef: 0.05\n"
    "    rewards:\n      - {name: accuracy, weight: 1.0}\n      - {name: format, weight: 0.5}\n";

/* Every stage kind (as tests/test_pipeline.c): pretrain, sft, grpo, rejection sampling, an
 * SFT on its output, distillation into a new student and an evaluation. */
static const char *pipeline =
    "run: {name: p, output_dir: runs, seed: 5, threads: 1}\n"
    "model: {preset: tiny-dense, tokenizer: builtin}\n"
    "datasets:\n"
    "  - {name: text, generate: arith, n: 48, difficulty: 1, ops: \"+-\", answer_noise: 0.5}\n"
    "  - {name: train, generate: arith, n: 48, offset: 1000, difficulty: 1, ops: \"+-\"}\n"
    "  - {name: held, generate: arith, n: 6, offset: 90000, difficulty: 1, ops: \"+-\"}\n"
    "  - {name: kept, from_stage: sample}\n"
    "defaults: {max_steps: 2, per_device_train_batch_size: 4, max_length: 96, max_prompt_length: 48,\n"
    "  max_completion_length: 24, learning_rate: 1.0e-3, eval_num_generations: 2, num_generations: 2,\n"
    "  num_samples: 2, max_prompts: 4, heldout_dataset: held, prompt_template: \"Q: {prompt}\\nA: \",\n"
    "  rewards: [{name: accuracy}, {name: format, weight: 0.2}]}\n"
    "stages:\n"
    "  - {name: base, kind: pretrain, train_dataset: text, max_steps: 3}\n"
    "  - {name: cold, kind: sft, train_dataset: text}\n"
    "  - {name: rl, kind: grpo, train_dataset: train}\n"
    "  - {name: sample, kind: rejection, train_dataset: train, filter: false}\n"
    "  - {name: resft, kind: sft, train_dataset: kept}\n"
    "  - {name: small, kind: distill, train_dataset: train, seed: 9, student: tiny-dense, filter: false}\n"
    "  - {name: final, kind: eval, model: rl, eval_dataset: held}\n";

/* mpirun for 2 ranks on this machine, as root too, one thread per rank; the per-rank
 * gradient accumulation is half the single process's (the same global batch). */
#define MPIRUN                                                                                                    \
    "LSAN_OPTIONS=detect_leaks=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "      \
    "mpirun -np 2 --oversubscribe --bind-to none --mca btl self,vader -x OMP_NUM_THREADS=1 -x LSAN_OPTIONS "
#define HALF_ACCUM "--set stages[0].gradient_accumulation_steps=1 --set stages[1].gradient_accumulation_steps=1"

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    int n = snprintf(cmd, sizeof cmd, "cd %s && ", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *read_in_dir(const char *name) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
    fclose(f);
    if (text) text[got] = 0;
    return text;
}

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* The parameters of RUN_DIR/models/STAGE (host floats, [total]); *n set. Caller frees. */
static float *weights(const char *run, const char *stage, size_t *n) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/runs/%s/models/%s", dir, run, stage);
    backend *be = backend_cpu_create();
    lm *m = NULL;
    float *w = NULL;
    *n = 0;
    if (lm_load_dir(be, path, &m) == GRPO_OK) {
        *n = m->params->total;
        w = malloc(*n * sizeof(float));
        if (w) be->to_host(be, w, m->params->data, *n * sizeof(float));
    } else {
        fprintf(stderr, "%s: %s\n", path, grpo_error_message());
        grpo_error_clear();
    }
    lm_free(m);
    backend_free(be);
    return w;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* Rows of metric `name` in run `run`'s store (-1 when it cannot be read). */
static long metric_rows(const char *run, const char *name) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/runs/%s/run.db", dir, run);
    store *db = NULL;
    int64_t id = -1, *steps = NULL, n = -1;
    double *values = NULL;
    if (store_open_readonly(path, &db) != GRPO_OK || store_find_run(db, run, &id) != GRPO_OK ||
        store_get_metric_arrays(db, id, name, &steps, &values, &n) != GRPO_OK)
        n = -1;
    grpo_error_clear();
    free(steps);
    free(values);
    store_close(db);
    return (long)n;
}

/* The newest complete checkpoint's step of a run (0 when none). */
static int newest_checkpoint(const char *run) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/runs/%s/ckpt", dir, run);
    DIR *d = opendir(path);
    int newest = 0, step;
    for (struct dirent *e; d && (e = readdir(d));)
        if (sscanf(e->d_name, "step-%d", &step) == 1 && step > newest) newest = step;
    if (d) closedir(d);
    return newest;
}

/* The pid of the process whose environment holds both `tag` and OMPI_COMM_WORLD_RANK=rank
 * (one rank of the job this test started); 0 when there is none. */
static pid_t find_rank(const char *tag, int rank) {
    char want_rank[64];
    snprintf(want_rank, sizeof want_rank, "OMPI_COMM_WORLD_RANK=%d", rank);
    DIR *proc = opendir("/proc");
    pid_t found = 0;
    static char env[1 << 16];
    for (struct dirent *e; proc && !found && (e = readdir(proc));) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0) continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t n = fread(env, 1, sizeof env - 1, f);
        fclose(f);
        env[n] = 0;
        int has_tag = 0, has_rank = 0;
        for (size_t at = 0; at < n; at += strlen(env + at) + 1) {
            has_tag |= !strcmp(env + at, tag);
            has_rank |= !strcmp(env + at, want_rank);
        }
        if (has_tag && has_rank) found = pid;
    }
    if (proc) closedir(proc);
    return found;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int have_mpirun(void) { return system("command -v mpirun > /dev/null 2>&1") == 0; }

int main(void) {
    grpo = getenv("GRPO_BINARY");
    if (!grpo) TEST_SKIP("GRPO_BINARY is not set (run through ctest)");
    if (!comm_have_mpi()) TEST_SKIP("built without MPI (GRPO_MPI=OFF or no MPI found)");
    if (!have_mpirun()) TEST_SKIP("no mpirun on PATH");
    snprintf(dir, sizeof dir, "/tmp/grpo_test_run_mpi_%d", (int)getpid());
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "rm -rf %s && mkdir -p %s", dir, dir);
    CHECK_INT(0, system(path));
    snprintf(path, sizeof path, "%s/t.yaml", dir);
    CHECK_OK(fs_write_atomic(path, config, strlen(config)));

    /* one process, the global batch by accumulation */
    CHECK_INT(0, sh("OMP_NUM_THREADS=1 %s run t.yaml --quiet > one.out 2> one.err", grpo));
    /* two ranks, half the accumulation each */
    CHECK_INT(0, sh(MPIRUN "%s run t.yaml --set run.name=two " HALF_ACCUM " > two.out 2> two.err", grpo));

    size_t n_one = 0, n_two = 0, n_warm = 0, n_warm2 = 0;
    float *one = weights("one", "rl", &n_one), *two = weights("two", "rl", &n_two);
    float *warm = weights("one", "warm", &n_warm), *warm2 = weights("two", "warm", &n_warm2);
    CHECK(one && two && warm && warm2);
    if (one && two && warm && warm2 && n_one == n_two && n_warm == n_one && n_warm2 == n_one) {
        /* after SFT: within float tolerance */
        double diff = max_diff(warm, warm2, n_one);
        printf("2 ranks vs 1 process after SFT: max |dw| %.3g\n", diff);
        CHECK(diff < TOL);
        /* after 8 more steps of GRPO with AdamW at lr 1e-2 the summation-order differences grow
         * (Adam divides near-zero gradients by their own size): within 1% of how far GRPO moved
         * the weights, where a rank training on the wrong share would be off by the whole move */
        diff = max_diff(one, two, n_one);
        double moved = max_diff(one, warm, n_one);
        printf("2 ranks vs 1 process after SFT + GRPO: max |dw| %.3g (GRPO moved weights up to %.3g)\n", diff, moved);
        CHECK(diff < 0.01 * moved);
        CHECK(moved > 100 * TOL);
    } else {
        CHECK_MSG(0, "parameter counts differ: %zu %zu %zu %zu", n_one, n_two, n_warm, n_warm2);
    }
    /* rank 0 alone prints the summary and writes the store: as many metric rows as one process */
    char *out = read_in_dir("two.out"), *err = read_in_dir("two.err");
    CHECK_MSG(count(out, "summary: runs/two/summary.json") == 1, "expected one summary table:\n%s", out ? out : "");
    CHECK_MSG(count(out, "held-out after each stage") == 1, "expected one summary table:\n%s", out ? out : "");
    CHECK_MSG(err && strstr(err, "[info] rank 0: ") && !strstr(err, "[info] rank 1: "),
              "expected info lines from rank 0 only:\n%s", err ? err : "");
    long rows_one = metric_rows("one", "reward/mean"), rows_two = metric_rows("two", "reward/mean");
    CHECK_MSG(rows_one > 0 && rows_one == rows_two, "reward/mean rows: one process %ld, two ranks %ld", rows_one,
              rows_two);
    long loss_one = metric_rows("one", "loss"), loss_two = metric_rows("two", "loss");
    CHECK_MSG(loss_one > 0 && loss_one == loss_two, "loss rows: one process %ld, two ranks %ld", loss_one, loss_two);
    snprintf(path, sizeof path, "%s/runs/two/summary.json", dir);
    CHECK(fs_exists(path));
    free(out);
    free(err);

    /* every stage kind on 2 ranks (half the per-rank batch): the same samples, held-out
     * table and models as one process */
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    CHECK_OK(fs_write_atomic(path, pipeline, strlen(pipeline)));
    CHECK_INT(0, sh("%s run p.yaml --quiet > p1.out 2> p1.err", grpo));
    CHECK_INT(0, sh(MPIRUN "%s run p.yaml --set run.name=p2 --set defaults.per_device_train_batch_size=2 > p2.out "
                    "2> p2.err", grpo));
    CHECK_INT(0, sh("cmp runs/p/data/sample.jsonl runs/p2/data/sample.jsonl && cmp runs/p/data/small.jsonl "
                    "runs/p2/data/small.jsonl"));
    char *p1 = read_in_dir("p1.out"), *p2 = read_in_dir("p2.out");
    const char *t1 = p1 ? strstr(p1, "held-out after each stage") : NULL;
    const char *t2 = p2 ? strstr(p2, "held-out after each stage") : NULL;
    const char *e1 = t1 ? strstr(t1, "summary: ") : NULL, *e2 = t2 ? strstr(t2, "summary: ") : NULL;
    CHECK_MSG(t1 && t2 && e1 && e2 && e1 - t1 == e2 - t2 && !memcmp(t1, t2, (size_t)(e1 - t1)) &&
                  count(t2, "final            eval") == 1,
              "held-out tables differ:\n%s\n%s", p1 ? p1 : "", p2 ? p2 : "");
    free(p1);
    free(p2);
    const char *stages[] = {"rl", "small"};
    for (int i = 0; i < 2; i++) {
        size_t n1 = 0, n2 = 0;
        float *a = weights("p", stages[i], &n1), *b = weights("p2", stages[i], &n2);
        CHECK(a && b && n1 == n2);
        double diff = a && b && n1 == n2 ? max_diff(a, b, n1) : INFINITY;
        printf("pipeline stage %s: 2 ranks vs 1 process: max |dw| %.3g\n", stages[i], diff);
        CHECK(diff < TOL);
        free(a);
        free(b);
    }

    /* rank 1 killed after the GRPO stage's first checkpoint: the job stops, naming it */
    char tag[64];
    snprintf(tag, sizeof tag, "GRPO_TEST_RUN_MPI=%d", (int)getpid());
    fflush(stdout);
    pid_t job = fork();
    if (job == 0) {
        if (chdir(dir) != 0) _exit(127);
        if (!freopen("kill.out", "w", stdout) || !freopen("kill.err", "w", stderr)) _exit(127);
        putenv(tag);
        execl("/bin/sh", "sh", "-c",
              "exec env " MPIRUN "-x GRPO_TEST_RUN_MPI \"$0\" run t.yaml --set run.name=kill " HALF_ACCUM, grpo,
              (char *)NULL);
        _exit(127);
    }
    int status = 0, exited = 0;
    pid_t victim = 0;
    for (int waited = 0; waited < 1200 && !exited; waited++) {   /* up to 2 minutes */
        if (waitpid(job, &status, WNOHANG) == job) exited = 1;
        else if (newest_checkpoint("kill") > SFT_STEPS && (victim = find_rank(tag, 1)) > 0) break;
        else usleep(100000);
    }
    CHECK_MSG(!exited, "the run ended before a rank could be killed (status %d)", status);
    CHECK_MSG(victim > 0, "no rank 1 process found with %s", tag);
    double killed_at = now_s(), gone_after = -1;
    if (!exited && victim > 0) {
        kill(victim, SIGKILL);
        while (now_s() - killed_at < KILL_BOUND_S + 30 && !exited) {
            if (waitpid(job, &status, WNOHANG) == job) exited = 1;
            else usleep(20000);
        }
        gone_after = now_s() - killed_at;
        printf("rank 1 killed after checkpoint step-%d; mpirun exited %.2f s later\n", newest_checkpoint("kill"),
               gone_after);
    }
    if (!exited) {   /* do not leave it running */
        kill(job, SIGKILL);
        waitpid(job, &status, 0);
    }
    CHECK_MSG(exited && gone_after < KILL_BOUND_S, "mpirun still ran %.1f s after rank 1 was killed", gone_after);
    CHECK(exited && !(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    err = read_in_dir("kill.err");
    CHECK_MSG(err && strstr(err, "rank 1") && strstr(err, "run.resume"),
              "expected a message naming rank 1 and how to resume:\n%s", err ? err : "");
    free(err);
    snprintf(path, sizeof path, "%s/runs/kill/summary.json", dir);
    CHECK(!fs_exists(path));

    /* the same command resumes from the checkpoint and ends with the uninterrupted weights */
    CHECK_INT(0, sh(MPIRUN "%s run t.yaml --set run.name=kill " HALF_ACCUM " > resume.out 2> resume.err", grpo));
    err = read_in_dir("resume.err");
    CHECK_MSG(err && strstr(err, "resuming at stage rl"), "expected the run to resume in stage rl:\n%s",
              err ? err : "");
    free(err);
    size_t n_kill = 0;
    float *resumed = weights("kill", "rl", &n_kill);
    CHECK(resumed && n_kill == n_two);
    if (resumed && two && n_kill == n_two) {
        double diff = max_diff(resumed, two, n_two);
        printf("killed + resumed vs uninterrupted (2 ranks): max |dw| %.3g\n", diff);
        CHECK(diff < 1e-5);
    }
    CHECK(fs_exists(path));

    free(one);
    free(two);
    free(warm);
    free(warm2);
    free(resumed);
    if (!harness_failures) CHECK_INT(0, sh("cd / && rm -rf %s", dir));
    TEST_MAIN_END();
}
