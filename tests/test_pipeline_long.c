/* A `grpo run` pipeline killed (SIGKILL) in its third stage resumes there and finishes
 * with the same result as an uninterrupted run with the same seeds: the same summary
 * numbers and bit-identical output models. A shortened configs/r1-pipeline-demo.yaml
 * (pretrain -> cold-start SFT -> GRPO -> rejection -> SFT on the kept samples -> distill
 * -> eval), run as a child process ($GRPO_BINARY). */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/store.h"
#include "harness.h"

static char dir[PATH_MAX];
static const char *grpo;

/* The demo, shortened to seconds; one thread so the two runs compute the same sums. */
static const char *const shorten[] = {
    "run.threads=1", "datasets[0].n=2000", "stages[0].max_steps=120", "stages[0].save_steps=60",
    "stages[0].per_device_train_batch_size=16",
    "stages[1].max_steps=10", "stages[1].save_steps=5",
    "stages[2].max_steps=8", "stages[2].save_steps=2", "stages[2].per_device_train_batch_size=32",
    "stages[3].max_prompts=48", "stages[3].filter=false",
    "stages[4].max_steps=6", "stages[4].save_steps=3",
    "stages[5].max_steps=4", "stages[5].save_steps=2", "stages[5].per_device_train_batch_size=32",
    "stages[6].max_prompts=32", "stages[6].max_steps=10", "stages[6].save_steps=5", "stages[6].filter=false",
    "stages[7].max_prompts=16", "stages[7].max_steps=6", "stages[7].save_steps=3",
    "defaults.eval_num_generations=2", "datasets[4].n=16", "stages[8].eval_num_generations=2",
};

/* Starts `grpo run` for run `name` in dir; returns the child's pid. */
static pid_t start_run(const char *name) {
    char cmd[8192];
    int n = snprintf(cmd, sizeof cmd, "cd %s && exec %s run %s --set run.name=%s --set run.output_dir=%s/runs", dir,
                     grpo, harness_source_path("configs/r1-pipeline-demo.yaml"), name, dir);
    for (size_t i = 0; i < sizeof shorten / sizeof *shorten; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " --set %s", shorten[i]);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " > %s/%s.log 2>&1", dir, name);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The number of stage records with index >= 2 that have started, and whether stage 2
 * has a checkpoint of its own yet (so the kill lands mid-stage). */
static int stage_started(void *ctx, const store_stage *st) {
    if (st->idx == 2) *(int *)ctx = 1;
    return 0;
}

static int in_third_stage(const char *name) {
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/runs/%s/run.db", dir, name);
    if (!fs_exists(db)) return 0;
    store *s = NULL;
    int started = 0;
    int64_t run_id;
    if (store_open_readonly(db, &s) == GRPO_OK && store_find_run(s, name, &run_id) == GRPO_OK)
        store_get_stages(s, run_id, stage_started, &started);
    store_close(s);
    grpo_error_clear();
    if (!started) return 0;
    /* wait for a checkpoint inside the stage: the resume then starts mid-stage */
    char ckpt[PATH_MAX];
    snprintf(ckpt, sizeof ckpt, "%s/runs/%s/ckpt/step-%d", dir, name, 120 + 10 + 2);
    return fs_exists(ckpt);
}

static json_t *summary_of(const char *name) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/runs/%s/summary.json", dir, name);
    json_error_t err;
    return json_load_file(p, 0, &err);
}

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = fs_read_file(a, &x, &nx) == GRPO_OK && fs_read_file(b, &y, &ny) == GRPO_OK && nx == ny &&
               memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

int main(void) {
    grpo = getenv("GRPO_BINARY");
    if (!grpo) TEST_SKIP("GRPO_BINARY is not set (run through ctest)");
    snprintf(dir, sizeof dir, "/tmp/grpo_test_pipeline_long_%d", (int)getpid());
    CHECK_OK(fs_mkdirs(dir));

    /* the uninterrupted run */
    CHECK_INT(0, wait_exit(start_run("whole")));

    /* the same run killed once stage 3 (index 2) has a checkpoint, then resumed */
    pid_t pid = start_run("killed");
    int killed = 0;
    for (int i = 0; i < 6000 && !killed; i++) {
        if (in_third_stage("killed")) {
            kill(pid, SIGKILL);
            killed = 1;
        } else {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        int status;
        if (!killed && waitpid(pid, &status, WNOHANG) == pid) break;   /* finished before the kill */
    }
    CHECK_MSG(killed, "the run finished before its third stage could be interrupted");
    if (killed) {
        wait_exit(pid);
        char done[PATH_MAX];
        snprintf(done, sizeof done, "%s/runs/killed/models/reasoning/config.json", dir);
        CHECK_MSG(!fs_exists(done), "the kill landed after stage 3 finished");
        CHECK_INT(0, wait_exit(start_run("killed")));
        char log[PATH_MAX], *text = NULL;
        size_t n = 0;
        snprintf(log, sizeof log, "%s/killed.log", dir);
        CHECK_OK(fs_read_file(log, &text, &n));
        CHECK_MSG(text && strstr(text, "resuming at stage reasoning"), "the resumed run did not start at stage 3");
        CHECK_MSG(text && strstr(text, "resumed stage reasoning from its checkpoint"), "stage 3 did not resume from its checkpoint");
        free(text);
    }

    /* same numbers in every stage's row, same weights in every stage's output */
    json_t *a = summary_of("whole"), *b = summary_of("killed");
    CHECK(a && b);
    if (a && b) {
        json_t *sa = json_object_get(a, "stages"), *sb = json_object_get(b, "stages");
        CHECK_INT(json_array_size(sa), json_array_size(sb));
        CHECK_INT(9, json_array_size(sa));
        const char *keys[] = {"heldout", "heldout_teacher", "eval"};
        for (size_t i = 0; i < json_array_size(sa); i++) {
            json_t *x = json_array_get(sa, i), *y = json_array_get(sb, i);
            CHECK_INT(json_integer_value(json_object_get(x, "steps")), json_integer_value(json_object_get(y, "steps")));
            CHECK_INT(json_integer_value(json_object_get(x, "kept")), json_integer_value(json_object_get(y, "kept")));
            for (int k = 0; k < 3; k++) {
                json_t *ex = json_object_get(x, keys[k]), *ey = json_object_get(y, keys[k]);
                const char *m[] = {"pass@1", "pass@k", "mean_length"};
                for (int j = 0; j < 3; j++)
                    CHECK_NEAR(json_number_value(json_object_get(ex, m[j])), json_number_value(json_object_get(ey, m[j])),
                               0, 0);
            }
            const char *name = json_string_value(json_object_get(x, "name"));
            char pa[PATH_MAX], pb[PATH_MAX];
            snprintf(pa, sizeof pa, "%s/runs/whole/models/%s/model.safetensors", dir, name);
            snprintf(pb, sizeof pb, "%s/runs/killed/models/%s/model.safetensors", dir, name);
            if (fs_exists(pa)) CHECK_MSG(same_file(pa, pb), "stage %s: the output weights differ", name);
        }
        /* the distilled student has a held-out row beside its teacher's */
        json_t *d = json_array_get(sa, 6);
        CHECK(json_object_get(d, "heldout") && json_object_get(d, "heldout_teacher"));
    }
    json_decref(a);
    json_decref(b);
    fs_remove_tree(dir);
    TEST_MAIN_END();
}
