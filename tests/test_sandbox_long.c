/* The code verifier under load (long tier): many requests through the pool at once,
 * fork bombs and busy loops beside correct programs (which must still pass: each run
 * has its own uid and process budget), multi-test requests, large stdin/stdout, and
 * nothing left running afterwards. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness.h"
#include "verifiers/code.h"
#include "verifiers/pool.h"
#include "verifiers/sandbox.h"

static const char *sum_py = "a, b = map(int, input().split())\nprint(a + b)\n";
static const char *bomb_py = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
static const char *loop_py = "while True:\n    pass\n";
static const char *hog_py = "x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n";
static const char *sum_c = "#include <stdio.h>\nint main(void){long a,b;if(scanf(\"%ld %ld\",&a,&b)!=2)return 1;"
                           "printf(\"%ld\\n\",a+b);return 0;}\n";

static verify_code_request request(const char *lang, const char *code, const verify_code_test *tests, int n) {
    verify_code_request req;
    verify_code_request_init(&req);
    req.language = lang;
    req.code = code;
    req.code_len = strlen(code);
    req.tests = tests;
    req.n_tests = n;
    req.time_limit_s = 1;
    req.memory_mb = 128;
    return req;
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
        for (ssize_t i = 0; i < k; i += (ssize_t)strlen(buf + i) + 1)
            if (strcmp(buf + i, needle) == 0) {
                n++;
                break;
            }
    }
    closedir(d);
    return n;
}

static void test_pool_under_load(sandbox_mode mode) {
    verify_pool *pool = NULL;
    CHECK_OK(verify_pool_create(4, 8, &pool));
    if (!pool) return;
    enum { N = 48 };
    verify_code_test sum_test = {"40 2\n", 5, "42\n", 3};
    unsigned expected[N];
    for (int i = 0; i < N; i++) {
        verify_code_request req;
        switch (i % 8) {
        case 1: req = request("python", bomb_py, &sum_test, 1); expected[i] = (1u << VERIFY_CODE_TIME_LIMIT) | (1u << VERIFY_CODE_RUNTIME_ERROR); break;
        case 3: req = request("python", loop_py, &sum_test, 1); expected[i] = 1u << VERIFY_CODE_TIME_LIMIT; break;
        case 5: req = request("python", hog_py, &sum_test, 1); expected[i] = 1u << VERIFY_CODE_MEMORY_LIMIT; break;
        case 6: req = request("c", sum_c, &sum_test, 1); expected[i] = 1u << VERIFY_CODE_OK; break;
        default: req = request("python", sum_py, &sum_test, 1); expected[i] = 1u << VERIFY_CODE_OK; break;
        }
        req.mode = mode;
        long index;
        CHECK_OK(verify_pool_submit_code(pool, &req, &index));
        CHECK_INT(i, index);
    }
    verify_pool_wait(pool);
    for (int i = 0; i < N; i++) {
        verify_code_result r;
        CHECK_OK(verify_pool_code_result(pool, i, &r));
        CHECK_MSG(expected[i] & (1u << r.status), "[%s] job %d (kind %d): %s (%s)", sandbox_mode_name(mode), i, i % 8,
                  verify_code_status_name(r.status), r.detail);
    }
    verify_pool_free(pool);
    CHECK_INT(0, processes_with_arg("main.py"));
    CHECK_INT(0, processes_with_arg("./main"));
}

static void test_multi_test_requests(void) {
    verify_code_test tests[5] = {{"1 2\n", 4, "3\n", 2}, {"5 5\n", 4, "10\n", 3}, {"2 2\n", 4, "5\n", 2},
                                 {"0 0\n", 4, "0\n", 2}, {"-1 1\n", 5, "0\n", 2}};
    verify_code_request req = request("python", sum_py, tests, 5);
    verify_code_result r;
    CHECK_OK(verify_code_run(&req, &r));
    CHECK_INT(VERIFY_CODE_WRONG_ANSWER, r.status);
    CHECK_INT(4, r.passed);
    CHECK_INT(5, r.total);
    CHECK_INT(2, r.first_failed);
    req.stop_on_failure = 1;
    CHECK_OK(verify_code_run(&req, &r));
    CHECK_INT(2, r.passed);

    /* After a time limit the remaining tests are not run. */
    const char *slow = "import time\nif input() == 'slow':\n    time.sleep(30)\nprint(1)\n";
    verify_code_test slow_tests[3] = {{"fast\n", 5, "1\n", 2}, {"slow\n", 5, "1\n", 2}, {"slow\n", 5, "1\n", 2}};
    req = request("python", slow, slow_tests, 3);
    CHECK_OK(verify_code_run(&req, &r));
    CHECK_INT(VERIFY_CODE_TIME_LIMIT, r.status);
    CHECK_INT(1, r.passed);
    CHECK_MSG(r.wall_s < 2 * 2.0 + 1.0, "ran the second slow test too: %.2f s", r.wall_s);

    /* Same in C, compiled once for all tests. */
    req = request("c", sum_c, tests, 5);
    CHECK_OK(verify_code_run(&req, &r));
    CHECK_INT(4, r.passed);
}

static void test_large_io(void) {
    /* 4 MiB in, 4 MiB out, compared exactly. */
    size_t n = 4u << 20;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
    const char *echo = "import sys\nsys.stdout.write(sys.stdin.read())\n";
    verify_code_test t = {data, n, data, n};
    verify_code_request req = request("python", echo, &t, 1);
    req.compare = VERIFY_COMPARE_EXACT;
    verify_code_result r;
    CHECK_OK(verify_code_run(&req, &r));
    CHECK_MSG(r.status == VERIFY_CODE_OK, "echo 4 MiB: %s (%s)", verify_code_status_name(r.status), r.detail);
    data[n / 2] = '#';   /* the expected output now differs in one byte */
    verify_code_test t2 = {data, n, "x", 1};
    req.tests = &t2;
    req.output_limit_bytes = 1u << 20;   /* and 4 MiB is over the cap */
    CHECK_OK(verify_code_run(&req, &r));
    CHECK_INT(VERIFY_CODE_OUTPUT_LIMIT, r.status);
    free(data);
}

static void test_json_c(void) {
    json_error_t jerr;
    json_t *line = json_loads("{\"language\": \"c\", \"code\": \"#include <stdio.h>\\nint main(void){int x;"
                              "scanf(\\\"%d\\\",&x);printf(\\\"%d\\\\n\\\",x*x);return 0;}\", \"tests\": ["
                              "{\"input\": \"7\", \"output\": \"49\"}, {\"input\": \"-3\", \"output\": \"9\"}], "
                              "\"time_limit_s\": 1, \"memory_mb\": 64}", 0, &jerr);
    CHECK_MSG(line != NULL, "json: %s", jerr.text);
    json_t *answer = verify_code_json(line);
    CHECK_STR("ok", json_string_value(json_object_get(answer, "status")));
    CHECK_INT(2, json_integer_value(json_object_get(answer, "passed")));
    json_decref(answer);
    json_decref(line);
}

int main(void) {
    if (!sandbox_python_path() || !sandbox_gcc_path()) TEST_SKIP("python3 or gcc not found");
    test_multi_test_requests();
    test_large_io();
    test_json_c();
    test_pool_under_load(SANDBOX_AUTO);
    test_pool_under_load(SANDBOX_FALLBACK);
    TEST_MAIN_END();
}
