/* The code verifier against hostile programs (tests/fixtures/hostile/): each must end
 * with an expected status and leave the host as it was (no file written or changed
 * outside, no secret read, no connection made, no process left, the test itself and a
 * sentinel process alive). Runs every case in the default sandbox through the worker
 * pool, the security-relevant ones again in the fallback sandbox, and unit-tests the
 * output comparison, the run classification, the JSON adaptor and the pool. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/harness.h"
#include "verifiers/code.h"
#include "verifiers/pool.h"
#include "verifiers/sandbox.h"

#define BIT(s) (1u << (s))
#define OK BIT(VERIFY_CODE_OK)
#define WA BIT(VERIFY_CODE_WRONG_ANSWER)
#define TL BIT(VERIFY_CODE_TIME_LIMIT)
#define ML BIT(VERIFY_CODE_MEMORY_LIMIT)
#define RE BIT(VERIFY_CODE_RUNTIME_ERROR)
#define CE BIT(VERIFY_CODE_COMPILE_ERROR)
#define OL BIT(VERIFY_CODE_OUTPUT_LIMIT)
#define DN BIT(VERIFY_CODE_DENIED)

typedef struct {
    const char *file;      /* under tests/fixtures/hostile/ */
    unsigned allowed;      /* statuses that count as contained */
    int fallback_too;      /* also run in the fallback sandbox */
    const char *output;    /* expected stdout (NULL: "3\n"); input is always "1 2\n" */
    verify_compare compare;
    long memory_mb;        /* 0: 128 */
} hostile_case;

static char host_dir[256];
static char secret[64];

static const hostile_case cases[] = {
    {"ok_sum.py", OK, 1, NULL, 0, 0},
    {"wrong_answer.py", WA, 0, NULL, 0, 0},
    {"syntax_error.py", CE, 0, NULL, 0, 0},
    {"exit_nonzero.py", RE, 0, NULL, 0, 0},
    {"infinite_loop.py", TL, 1, NULL, 0, 0},
    {"sleep_forever.py", TL, 0, NULL, 0, 0},
    {"memory_hog.py", ML, 1, NULL, 0, 0},
    {"fork_bomb.py", RE | TL, 1, NULL, 0, 0},
    {"network_connect.py", DN | RE, 1, NULL, 0, 0},
    {"write_outside.py", DN | RE, 1, NULL, 0, 0},
    {"read_secret.py", DN | RE, 1, secret, 0, 0},   /* "ok" would mean it printed the secret */
    {"kill_parent.py", OK | DN | RE, 1, NULL, 0, 0},
    {"flood_output.py", OL, 0, NULL, 0, 0},
    {"daemon.py", OK | RE, 1, NULL, 0, 0},
    {"setrlimit_raise.py", RE | DN, 1, NULL, 0, 0},
    {"chmod_host.py", RE | DN, 1, NULL, 0, 0},
    {"too_many_files.py", RE, 0, NULL, 0, 0},
    {"stack_overflow.py", RE, 0, NULL, 0, 0},
    {"divide_by_zero.py", RE, 0, NULL, 0, 0},
    {"float_ok.py", OK, 0, "0.3\n333333333.333333\n", VERIFY_COMPARE_FLOAT, 0},
    {"threads_ok.py", OK, 1, NULL, 0, 0},
    {"ok_sum.c", OK, 1, NULL, 0, 0},
    {"wrong_answer.c", WA, 0, NULL, 0, 0},
    {"compile_error.c", CE, 0, NULL, 0, 0},
    {"exit_nonzero.c", RE, 0, NULL, 0, 0},
    {"busy_loop.c", TL, 0, NULL, 0, 0},
    {"memory_hog.c", ML, 1, NULL, 0, 0},
    {"fork_bomb.c", TL | RE, 1, NULL, 0, 0},
    {"network_connect.c", DN | RE, 0, NULL, 0, 0},
    {"ptrace.c", DN, 1, NULL, 0, 0},
    {"mount.c", DN, 1, NULL, 0, 0},
    {"huge_file.c", OL, 0, NULL, 0, 0},
    {"stack_overflow.c", RE, 0, NULL, 0, 0},
    {"divide_by_zero.c", RE, 0, NULL, 0, 0},
    {"kill_all.c", OK | DN | RE, 1, NULL, 0, 0},
    {"daemon.c", OK | RE, 1, NULL, 0, 0},
    {"foreign_syscall.c", DN, 1, NULL, 0, 0},
    {"write_system.c", DN | RE, 1, NULL, 0, 0},
};
#define N_CASES ((int)(sizeof cases / sizeof *cases))

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = buf ? fread(buf, 1, (size_t)n, f) : 0;
    if (buf) buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* Replaces every `from` in s (malloc'd) with `to`; returns a new string, frees s. */
static char *substitute(char *s, const char *from, const char *to) {
    size_t nf = strlen(from), nt = strlen(to), count = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + nf, from)) count++;
    char *out = malloc(strlen(s) + count * (nt + 1) + 1), *w = out;
    const char *r = s;
    for (const char *p = strstr(r, from); p; p = strstr(r, from)) {
        memcpy(w, r, (size_t)(p - r));
        w += p - r;
        memcpy(w, to, nt);
        w += nt;
        r = p + nf;
    }
    strcpy(w, r);
    free(s);
    return out;
}

static char *load_case(const hostile_case *c, int port) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/hostile/%s", c->file);
    size_t len;
    char *code = read_all(harness_source_path(rel), &len);
    if (!code) return NULL;
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    code = substitute(code, "@HOSTDIR@", host_dir);
    return substitute(code, "@PORT@", port_text);
}

static int file_exists(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Live processes (not zombies) with `needle` as one argument of their command line,
 * among this process's sandbox uids when it has its own (so that other test programs
 * running sandboxes at the same time do not count). */
static int processes_with_arg(const char *needle) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/stat", ent->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t k = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (k <= 0) continue;
        buf[k] = '\0';
        const char *rp = strrchr(buf, ')');
        if (rp && (rp[2] == 'Z' || rp[2] == 'X')) continue;
        unsigned first, count;
        sandbox_uid_window(&first, &count);
        if (count > 0) {   /* real uid from status (the owner of /proc/PID lies for non-dumpable ones) */
            snprintf(path, sizeof path, "/proc/%s/status", ent->d_name);
            fd = open(path, O_RDONLY);
            k = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
            if (fd >= 0) close(fd);
            buf[k > 0 ? k : 0] = '\0';
            const char *u = strstr(buf, "\nUid:");
            unsigned long uid;
            if (!u || sscanf(u + 5, "%lu", &uid) != 1 || uid < first || uid >= first + count) continue;
        }
        snprintf(path, sizeof path, "/proc/%s/cmdline", ent->d_name);
        fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        k = read(fd, buf, sizeof buf - 1);
        close(fd);
        for (ssize_t i = 0; i < k;) {
            if (strcmp(buf + i, needle) == 0) {
                n++;
                break;
            }
            i += (ssize_t)strlen(buf + i) + 1;
        }
    }
    closedir(d);
    return n;
}

/* ---- unit tests ------------------------------------------------------------- */

static void test_compare(void) {
    CHECK(verify_code_compare("3\n", 2, "3", 1, VERIFY_COMPARE_WHITESPACE));
    CHECK(verify_code_compare("1  2\n3\n\n", 8, "1 2 3", 5, VERIFY_COMPARE_WHITESPACE));
    CHECK(!verify_code_compare("1 2", 3, "1 2 3", 5, VERIFY_COMPARE_WHITESPACE));
    CHECK(!verify_code_compare("12", 2, "1 2", 3, VERIFY_COMPARE_WHITESPACE));
    CHECK(!verify_code_compare("3\n", 2, "3", 1, VERIFY_COMPARE_EXACT));
    CHECK(verify_code_compare("a\0b", 3, "a\0b", 3, VERIFY_COMPARE_EXACT));
    CHECK(verify_code_compare("", 0, "\n  \n", 4, VERIFY_COMPARE_WHITESPACE));
    CHECK(verify_code_compare("0.30000000000000004", 19, "0.3", 3, VERIFY_COMPARE_FLOAT));
    CHECK(!verify_code_compare("0.30000000000000004", 19, "0.3", 3, VERIFY_COMPARE_WHITESPACE));
    CHECK(verify_code_compare("1000000.5", 9, "1000000", 7, VERIFY_COMPARE_FLOAT));      /* 5e-7 relative */
    CHECK(!verify_code_compare("1000002", 7, "1000000", 7, VERIFY_COMPARE_FLOAT));       /* 2e-6 relative */
    CHECK(verify_code_compare("1e-9", 4, "0", 1, VERIFY_COMPARE_FLOAT));                 /* absolute near 0 */
    CHECK(!verify_code_compare("nan", 3, "1", 1, VERIFY_COMPARE_FLOAT));
    CHECK(!verify_code_compare("yes 1", 5, "no 1", 4, VERIFY_COMPARE_FLOAT));
}

static void test_classify(void) {
    sandbox_limits lim;
    sandbox_limits_default(&lim);
    lim.cpu_time_s = 1;
    lim.memory_mb = 100;
    char out[] = "3\n", err[64] = "";
    sandbox_result r = {.exited = 1, .exit_code = 0, .cpu_s = 0.1, .max_rss_kb = 1000, .out = out, .out_len = 2,
                        .err = err};
    CHECK_INT(VERIFY_CODE_OK, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    CHECK_INT(VERIFY_CODE_WRONG_ANSWER, verify_code_classify(&r, &lim, "4", 1, VERIFY_COMPARE_WHITESPACE));
    r.cpu_s = 1.0;
    CHECK_INT(VERIFY_CODE_TIME_LIMIT, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    r.cpu_s = 0.1;
    r.exit_code = 1;
    CHECK_INT(VERIFY_CODE_RUNTIME_ERROR, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    strcpy(err, "Traceback ...\nMemoryError\n");
    CHECK_INT(VERIFY_CODE_MEMORY_LIMIT, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    strcpy(err, "PermissionError: [Errno 1] Operation not permitted");
    CHECK_INT(VERIFY_CODE_DENIED, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    strcpy(err, "");
    r.exited = 0, r.exit_code = 0, r.term_signal = SIGSEGV;
    CHECK_INT(VERIFY_CODE_RUNTIME_ERROR, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    r.max_rss_kb = 90 * 1024;   /* faulted near the 100 MiB cap */
    CHECK_INT(VERIFY_CODE_MEMORY_LIMIT, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    r.term_signal = SIGKILL, r.cpu_s = 0.8;   /* RLIMIT_CPU's kill, rusage lagging behind */
    CHECK_INT(VERIFY_CODE_TIME_LIMIT, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    r.cpu_s = 0.1;
    r.term_signal = SIGSYS;
    CHECK_INT(VERIFY_CODE_DENIED, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    r.term_signal = SIGXFSZ;
    CHECK_INT(VERIFY_CODE_OUTPUT_LIMIT, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    r.term_signal = 0, r.exited = 1, r.wall_timeout = 1;
    CHECK_INT(VERIFY_CODE_TIME_LIMIT, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    r.output_exceeded = 1;
    CHECK_INT(VERIFY_CODE_OUTPUT_LIMIT, verify_code_classify(&r, &lim, "3", 1, VERIFY_COMPARE_WHITESPACE));
    for (int s = 0; s < VERIFY_CODE_STATUS_COUNT; s++)
        CHECK_INT(s, verify_code_status_parse(verify_code_status_name((verify_code_status)s)));
    CHECK_INT(-1, verify_code_status_parse("fine"));
}

static void check_json_error(const char *text, const char *needle) {
    json_error_t jerr;
    json_t *line = json_loads(text, 0, &jerr);
    json_t *answer = verify_code_json(line);   /* line may be NULL (not JSON): still an answer */
    const char *msg = json_string_value(json_object_get(answer, "error"));
    CHECK_MSG(msg && strstr(msg, needle), "%s -> %s (wanted an error mentioning \"%s\")", text,
              msg ? msg : "no error", needle);
    json_decref(answer);
    json_decref(line);
}

static void test_json(void) {
    check_json_error("[1, 2]", "an object");
    check_json_error("{\"code\": \"print(1)\", \"tests\": []}", "language");
    check_json_error("{\"language\": \"cobol\", \"code\": \"x\", \"tests\": [{\"output\": \"1\"}]}", "cobol");
    check_json_error("{\"language\": \"python\", \"code\": 5, \"tests\": [{\"output\": \"1\"}]}", "code");
    check_json_error("{\"language\": \"python\", \"code\": \"x\", \"tests\": {}}", "tests");
    check_json_error("{\"language\": \"python\", \"code\": \"x\", \"tests\": []}", "tests");
    check_json_error("{\"language\": \"python\", \"code\": \"x\", \"tests\": [{\"input\": \"1\"}]}", "output");
    check_json_error("{\"language\": \"python\", \"code\": \"x\", \"tests\": [{\"input\": 1, \"output\": \"1\"}]}",
                     "input");
    check_json_error("{\"language\": \"python\", \"code\": \"x\", \"tests\": [7]}", "tests");
    check_json_error("{\"language\": \"python\", \"code\": \"x\", \"tests\": [{\"output\": \"1\"}], "
                     "\"time_limit_s\": -1}", "time_limit_s");
    check_json_error("{\"language\": \"python\", \"code\": \"x\", \"tests\": [{\"output\": \"1\"}], "
                     "\"memory_mb\": \"lots\"}", "memory_mb");
    check_json_error("{\"language\": \"python\", \"code\": \"x\", \"tests\": [{\"output\": \"1\"}], "
                     "\"memory_mb\": 1e12}", "out of range");
    check_json_error("{\"language\": \"python\", \"code\": \"x\", \"tests\": [{\"output\": \"1\"}], "
                     "\"compare\": \"fuzzy\"}", "compare");

    /* A good line: two tests, one passes. Fields as DESIGN.md's `grpo verify code`. */
    json_error_t jerr;
    json_t *line = json_loads("{\"id\": \"p1\", \"language\": \"python\", \"code\": \"print(int(input()) * 2)\", "
                              "\"tests\": [{\"input\": \"2\\n\", \"output\": \"4\\n\"}, {\"input\": \"5\", "
                              "\"output\": \"11\"}], \"time_limit_s\": 1, \"memory_mb\": 128}", 0, &jerr);
    CHECK(line != NULL);
    json_t *answer = verify_code_json(line);
    CHECK_STR("wrong_answer", json_string_value(json_object_get(answer, "status")));
    CHECK_INT(1, json_integer_value(json_object_get(answer, "passed")));
    CHECK_INT(2, json_integer_value(json_object_get(answer, "total")));
    CHECK_INT(3, json_object_size(answer));
    json_decref(answer);
    json_decref(line);
}

/* Files one test leaves in the work dir are gone before the next test. */
static void test_fresh_workdir(void) {
    const char *code = "import os\nprint('stale' if os.path.exists('mark') else 'fresh')\nopen('mark', 'w').write('x')\n"
                       "os.mkdir('d'); open('d/f', 'w').write('y')\n";
    verify_code_test tests[3] = {{"", 0, "fresh", 5}, {"", 0, "fresh", 5}, {"", 0, "fresh", 5}};
    verify_code_request req;
    verify_code_request_init(&req);
    req.language = "python";
    req.code = code;
    req.code_len = strlen(code);
    req.tests = tests;
    req.n_tests = 3;
    req.time_limit_s = 1;
    verify_code_result r;
    CHECK_OK(verify_code_run(&req, &r));
    CHECK_MSG(r.status == VERIFY_CODE_OK, "%s (%s)", verify_code_status_name(r.status), r.detail);
    CHECK_INT(3, r.passed);
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int released;
    int ran;
} gate;

static void gate_job(void *arg) {
    gate *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->released) pthread_cond_wait(&g->cond, &g->lock);
    g->ran++;
    pthread_mutex_unlock(&g->lock);
}

typedef struct {
    verify_pool *pool;
    gate *g;
    volatile int returned;
} submitter;

static void *submit_thread(void *arg) {
    submitter *s = arg;
    verify_pool_submit(s->pool, gate_job, s->g, NULL);
    s->returned = 1;
    return NULL;
}

/* One worker, a queue of one: the third submit must block until the gate opens. */
static void test_pool_bounded(void) {
    verify_pool *pool = NULL;
    CHECK_FAILS(verify_pool_create(0, 4, &pool), "threads");
    CHECK(pool == NULL);
    CHECK_OK(verify_pool_create(1, 1, &pool));
    if (!pool) return;
    gate g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    long i0 = -1, i1 = -1;
    CHECK_OK(verify_pool_submit(pool, gate_job, &g, &i0));   /* taken by the worker, blocks there */
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK_OK(verify_pool_submit(pool, gate_job, &g, &i1));   /* fills the queue */
    submitter s = {pool, &g, 0};
    pthread_t t;
    pthread_create(&t, NULL, submit_thread, &s);
    nanosleep(&pause, NULL);
    nanosleep(&pause, NULL);
    CHECK_MSG(!s.returned, "submit returned while the queue was full");
    pthread_mutex_lock(&g.lock);
    g.released = 1;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    pthread_join(t, NULL);
    CHECK(s.returned);
    verify_pool_wait(pool);
    CHECK_INT(3, g.ran);
    CHECK_INT(0, i0);
    CHECK_INT(1, i1);
    CHECK_INT(3, verify_pool_count(pool));
    verify_code_result r;
    CHECK_FAILS(verify_pool_code_result(pool, 7, &r), "no job 7");
    verify_pool_clear(pool);
    CHECK_INT(0, verify_pool_count(pool));
    verify_pool_free(pool);
    verify_pool_free(NULL);
}

/* ---- hostile programs --------------------------------------------------------- */

static void run_hostile(sandbox_mode mode, int only_fallback_cases, int listen_fd, int port) {
    verify_pool *pool = NULL;
    CHECK_OK(verify_pool_create(2, 4, &pool));
    if (!pool) return;
    long index[N_CASES];
    for (int i = 0; i < N_CASES; i++) {
        index[i] = -1;
        const hostile_case *c = &cases[i];
        if (only_fallback_cases && !c->fallback_too) continue;
        /* Known limits of the weaker set-ups (the sandbox warns loudly about both):
         * without seccomp the fallback has no network barrier; without root the
         * fallback cannot find a daemon that left its session, nor stop chmod of files
         * its own uid owns (Landlock does not cover metadata). */
        if (mode == SANDBOX_FALLBACK && !sandbox_has_seccomp() && strncmp(c->file, "network_connect", 15) == 0)
            continue;
        if (mode == SANDBOX_FALLBACK && geteuid() != 0 &&
            (strncmp(c->file, "daemon", 6) == 0 || strcmp(c->file, "chmod_host.py") == 0))
            continue;
        char *code = load_case(c, port);
        CHECK_MSG(code != NULL, "fixture %s missing", c->file);
        if (!code) continue;
        const char *dot = strrchr(c->file, '.');
        verify_code_test test = {"1 2\n", 4, c->output ? c->output : "3\n", strlen(c->output ? c->output : "3\n")};
        verify_code_request req;
        verify_code_request_init(&req);
        req.language = strcmp(dot, ".c") == 0 ? "c" : "python";
        req.code = code;
        req.code_len = strlen(code);
        req.tests = &test;
        req.n_tests = 1;
        req.time_limit_s = 1;
        req.memory_mb = c->memory_mb ? c->memory_mb : 128;
        req.compare = c->compare;
        req.mode = mode;
        CHECK_OK(verify_pool_submit_code(pool, &req, &index[i]));
        free(code);   /* the pool copied it */
    }
    verify_pool_wait(pool);
    for (int i = 0; i < N_CASES; i++) {
        if (index[i] < 0) continue;
        verify_code_result r;
        grpo_status s = verify_pool_code_result(pool, index[i], &r);
        CHECK_MSG(s == GRPO_OK, "[%s] %s: %s", sandbox_mode_name(mode), cases[i].file, grpo_error_message());
        unsigned allowed = cases[i].allowed;
        /* Without a seccomp filter ptrace and 32-bit calls simply work. */
        if (!sandbox_has_seccomp() && (strcmp(cases[i].file, "ptrace.c") == 0 ||
                                       strcmp(cases[i].file, "foreign_syscall.c") == 0))
            allowed |= OK | WA | RE;
        CHECK_MSG((allowed & BIT(r.status)) != 0, "[%s] %s: status %s (%s)", sandbox_mode_name(mode),
                  cases[i].file, verify_code_status_name(r.status), r.detail);
        CHECK_INT(1, r.total);
        if (getenv("GRPO_TEST_VERBOSE"))
            fprintf(stderr, "[%s] %-20s %-14s %.2fs %s\n", sandbox_mode_name(mode), cases[i].file,
                    verify_code_status_name(r.status), r.wall_s, r.detail);
    }
    verify_pool_free(pool);

    /* The host afterwards. */
    CHECK_MSG(!file_exists(host_dir, "pwned") && !file_exists(host_dir, "pwned2"), "write_outside wrote %s", host_dir);
    CHECK_MSG(access("/etc/grpo_pwned", F_OK) != 0 && access("/usr/bin/grpo_pwned", F_OK) != 0,
              "a run wrote into /etc or /usr/bin");
    char victim[300];
    snprintf(victim, sizeof victim, "%s/victim", host_dir);
    struct stat st;
    CHECK(stat(victim, &st) == 0 && (st.st_mode & 07777) == 0644 && st.st_uid == getuid());
    int conn = accept(listen_fd, NULL, NULL);
    CHECK_MSG(conn < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "a run connected to 127.0.0.1:%d", port);
    if (conn >= 0) close(conn);
    /* The daemons' grandchildren would write these after 1 s and live as "sleep N". */
    struct timespec wait_daemons = {1, 300 * 1000 * 1000};
    nanosleep(&wait_daemons, NULL);
    CHECK_MSG(!file_exists(host_dir, "late") && !file_exists(host_dir, "late_c"), "a daemon outlived its run");
    CHECK_INT(0, processes_with_arg("31.4159"));
    CHECK_INT(0, processes_with_arg("27.1828"));
    CHECK_INT(0, processes_with_arg("main.py"));   /* fork bombs and all other python runs */
    CHECK_INT(0, processes_with_arg("./main"));    /* C runs */
}

int main(void) {
    test_compare();
    test_classify();
    test_pool_bounded();
    verify_code_result r0;
    CHECK_FAILS(verify_code_run(&(verify_code_request){.language = "python", .code = "x"}, &r0), "at least one test");

    if (!sandbox_python_path() || !sandbox_gcc_path()) TEST_SKIP("python3 or gcc not found");
    test_json();
    test_fresh_workdir();

    snprintf(host_dir, sizeof host_dir, "/tmp/grpo-hostile-XXXXXX");
    if (!mkdtemp(host_dir)) TEST_SKIP("mkdtemp failed");
    chmod(host_dir, 0755);
    snprintf(secret, sizeof secret, "TOPSECRET-%ld-%d\n", (long)time(NULL), (int)getpid());
    char path[300];
    snprintf(path, sizeof path, "%s/secret", host_dir);
    FILE *f = fopen(path, "w");
    fputs(secret, f);
    fclose(f);
    chmod(path, 0644);
    snprintf(path, sizeof path, "%s/victim", host_dir);
    f = fopen(path, "w");
    fputs("victim\n", f);
    fclose(f);
    chmod(path, 0644);

    /* A loopback listener the network cases try to reach. */
    int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    CHECK(bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(listen_fd, 8) == 0 &&
          getsockname(listen_fd, (struct sockaddr *)&addr, &alen) == 0);
    int port = ntohs(addr.sin_port);

    /* A sentinel of ours that kill(-1)/kill(ppid) attempts must not reach. */
    pid_t sentinel = fork();
    if (sentinel == 0) {
        execl("/bin/sleep", "sleep", "120", (char *)NULL);
        _exit(127);
    }

    printf("sandbox mode here: %s, seccomp %d\n", sandbox_mode_name(sandbox_available_mode()), sandbox_has_seccomp());
    run_hostile(SANDBOX_AUTO, 0, listen_fd, port);
    run_hostile(SANDBOX_FALLBACK, 1, listen_fd, port);

    CHECK_MSG(kill(sentinel, 0) == 0 && waitpid(sentinel, NULL, WNOHANG) == 0, "the sentinel process was killed");
    kill(sentinel, SIGKILL);
    waitpid(sentinel, NULL, 0);
    close(listen_fd);
    snprintf(path, sizeof path, "rm -rf '%s'", host_dir);
    if (system(path) != 0) fprintf(stderr, "could not remove %s\n", host_dir);
    TEST_MAIN_END();
}
