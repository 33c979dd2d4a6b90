/* The device memory pool (core/backend_pool.h) on the CPU backend: alignment, first fit,
 * coalescing, fragmentation and exhaustion messages, zero-fill on reuse, free(NULL),
 * memory from before the reserve, release, the run.device_memory parser, and double /
 * foreign frees stopping with an assertion (in a child process). A random alloc/free
 * sequence (seed fresh each run, printed; GRPO_TEST_SEED overrides) is checked against
 * an independent interval bookkeeping. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/backend_pool.h"
#include "core/status.h"
#include "rl/run_config.h"
#include "tests/harness.h"

#define KIB 1024

static size_t round256(size_t n) { return (n ? n + 255 : 256) / 256 * 256; }

static int all_bytes(const void *p, size_t n, unsigned char v) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != v) return 0;
    return 1;
}

static void test_basic(void) {
    backend *be = backend_cpu_create();
    void *before = be->alloc(be, 100);   /* taken before the reserve: goes back to the backend */
    CHECK_OK(backend_pool_reserve(be, 64 * KIB + 100));   /* rounded down to 256 */
    CHECK_FAILS(backend_pool_reserve(be, 64 * KIB), "already has a pool");
    backend_pool_info info;
    CHECK_INT(1, backend_pool_stats(be, &info));
    CHECK_INT(64 * KIB, info.capacity);
    CHECK_INT(0, info.used);
    CHECK_INT(64 * KIB, info.largest_free);
    CHECK_INT(1, info.free_blocks);

    char *a = backend_alloc(be, 1, "a");
    char *b = backend_alloc(be, 300, "b");
    char *c = backend_alloc(be, 0, "c");   /* a distinct pointer for zero bytes too */
    CHECK(a && b && c);
    if (!a || !b || !c) return;
    CHECK_INT(256, b - a);   /* first fit, in address order, 256-byte blocks */
    CHECK_INT(256 + 512, c - a);
    backend_pool_stats(be, &info);
    CHECK_INT(256 + 512 + 256, info.used);
    CHECK_INT(3, info.live_blocks);
    CHECK_INT(64 * KIB - 1024, info.largest_free);
    CHECK(all_bytes(b, 300, 0));

    /* zero-fill on reuse: the freed block comes back at the same place, zeroed */
    memset(b, 0xAB, 300);
    be->free(be, b);
    char *b2 = backend_alloc(be, 290, "b2");
    CHECK(b2 == b);
    CHECK(all_bytes(b2, 290, 0));
    be->free(be, NULL);   /* does nothing */
    be->free(be, before);
    CHECK_FAILS(backend_pool_release(be), "3 allocations");
    be->free(be, a);
    be->free(be, b2);
    be->free(be, c);
    backend_pool_stats(be, &info);
    CHECK_INT(0, info.used);
    CHECK_INT(1, info.free_blocks);   /* everything merged back */
    CHECK_INT(64 * KIB, info.largest_free);
    CHECK_INT(256 + 512 + 256, info.peak);
    CHECK_OK(backend_pool_release(be));
    CHECK(be->pool == NULL);
    CHECK_INT(0, backend_pool_stats(be, &info));
    void *after = backend_alloc(be, 10, "after");   /* the backend's own alloc again */
    CHECK(after != NULL);
    be->free(be, after);
    backend_free(be);
}

/* Free neighbours merge: freeing B then C leaves one hole of B + C where B was. */
static void test_coalescing(void) {
    backend *be = backend_cpu_create();
    CHECK_OK(backend_pool_reserve(be, 16 * KIB));
    char *p[4];
    size_t sz[4] = {1 * KIB, 2 * KIB, 3 * KIB, 4 * KIB};
    for (int i = 0; i < 4; i++) p[i] = backend_alloc(be, sz[i], "block");
    backend_pool_info info;
    be->free(be, p[1]);
    backend_pool_stats(be, &info);
    CHECK_INT(2, info.free_blocks);   /* the hole at B and the tail */
    be->free(be, p[2]);
    backend_pool_stats(be, &info);
    CHECK_INT(2, info.free_blocks);   /* B + C merged */
    CHECK_INT(6 * KIB, info.largest_free);   /* the tail (16 - 10 KiB) beats B + C (5 KiB) */
    char *bc = backend_alloc(be, 5 * KIB, "b+c");
    CHECK(bc == p[1]);   /* first fit: the merged hole */
    be->free(be, p[0]);
    be->free(be, p[3]);   /* merges with the tail */
    backend_pool_stats(be, &info);
    CHECK_INT(3, info.free_blocks + info.live_blocks);   /* [A hole][B+C][D+tail] */
    be->free(be, bc);     /* merges both ways */
    backend_pool_stats(be, &info);
    CHECK_INT(1, info.free_blocks);
    CHECK_INT(16 * KIB, info.largest_free);
    backend_free(be);
}

/* Every other block freed: half the pool is free but no 2 KiB block; the messages say so. */
static void test_fragmentation_and_exhaustion(void) {
    backend *be = backend_cpu_create();
    CHECK_OK(backend_pool_reserve(be, 64 * KIB));
    char *p[64];
    for (int i = 0; i < 64; i++) p[i] = backend_alloc(be, KIB, "row");
    CHECK(backend_alloc(be, 1, "one more") == NULL);
    CHECK(strstr(grpo_error_message(), "out of device memory allocating one more (1 B) on cpu") != NULL);
    CHECK(strstr(grpo_error_message(), "pool 64.0 KiB of 64.0 KiB used, largest free block 0 B") != NULL);
    for (int i = 0; i < 64; i += 2) be->free(be, p[i]);
    backend_pool_info info;
    backend_pool_stats(be, &info);
    CHECK_INT(32 * KIB, info.used);
    CHECK_INT(KIB, info.largest_free);
    CHECK_INT(32, info.free_blocks);
    CHECK(backend_alloc(be, 2 * KIB, "layer 3 activations") == NULL);
    const char *msg = grpo_error_message();
    printf("exhaustion message: %s\n", msg);
    CHECK(strstr(msg, "out of device memory allocating layer 3 activations (2.0 KiB) on cpu") != NULL);
    CHECK(strstr(msg, "pool 32.0 KiB of 64.0 KiB used, largest free block 1.0 KiB") != NULL);
    CHECK(strstr(msg, "run.recompute: true") != NULL);
    CHECK(backend_alloc(be, (size_t)1 << 40, "huge") == NULL);
    CHECK(strstr(grpo_error_message(), "huge (1.0 TiB)") != NULL);
    CHECK(backend_alloc(be, SIZE_MAX - 10, "wrapped") == NULL);   /* no overflow in the rounding */
    CHECK(backend_alloc(be, KIB, "fits") == p[0]);   /* a 1 KiB hole still serves */
    /* live blocks at backend_free: the pool goes with the backend (ASan: no leak) */
    backend_free(be);
}

static void *failing_alloc(backend *be, size_t bytes) {
    grpo_fail(GRPO_ERR_NOMEM, "%s: cudaMalloc of %zu bytes failed (stand-in)", be->name, bytes);
    return NULL;
}

static void *silent_alloc(backend *be, size_t bytes) {
    (void)be;
    (void)bytes;
    return NULL;
}

/* Without a pool, backend_alloc keeps the backend's reason. */
static void test_no_pool_message(void) {
    backend *be = backend_cpu_create();
    void *(*own)(backend *, size_t) = be->alloc;
    be->alloc = failing_alloc;
    CHECK(backend_alloc(be, 3 << 20, "the logits") == NULL);
    CHECK_STR("out of host memory allocating the logits (3.0 MiB): cpu: cudaMalloc of 3145728 bytes failed (stand-in)",
              grpo_error_message());
    /* a backend that fails without a message is not blamed with an older one */
    grpo_fail(GRPO_ERR_IO, "an unrelated earlier error");
    be->alloc = silent_alloc;
    CHECK(backend_alloc(be, 10, "x") == NULL);
    CHECK_STR("out of host memory allocating x (10 B)", grpo_error_message());
    be->alloc = own;
    char line[256];
    backend_pool_describe(be, line, sizeof line);
    CHECK_STR("no memory pool on cpu", line);
    backend_free(be);
}

/* Random alloc/free against an independent record of the live intervals. */
static void test_random(uint64_t seed) {
    enum { CAP = 256 * KIB, SLOTS = 200 };
    backend *be = backend_cpu_create();
    CHECK_OK(backend_pool_reserve(be, CAP));
    char *base = NULL;
    {   /* the pool's base: the first block of an empty pool */
        base = backend_alloc(be, 1, "probe");
        be->free(be, base);
    }
    char *ptr[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    srand((unsigned)seed);
    int bad_overlap = 0, bad_align = 0, bad_zero = 0, bad_used = 0, failures = 0, bad_fail = 0;
    for (int step = 0; step < 20000; step++) {
        int i = rand() % SLOTS;
        if (ptr[i]) {
            be->free(be, ptr[i]);
            ptr[i] = NULL;
        } else {
            size_t n = (size_t)(rand() % 4096);
            char *p = be->alloc(be, n);
            if (!p) {
                /* a failure must be real: no hole of round256(n) between live blocks */
                failures++;
                size_t need = round256(n);
                for (size_t off = 0; off + need <= CAP; off += 256) {
                    int clash = 0;
                    for (int j = 0; j < SLOTS && !clash; j++)
                        if (ptr[j]) {
                            size_t o = (size_t)(ptr[j] - base), e = o + round256(len[j]);
                            clash = off < e && o < off + need;
                        }
                    if (!clash) {
                        bad_fail++;
                        break;
                    }
                }
                continue;
            }
            bad_align += (size_t)(p - base) % 256 != 0 || p < base || p + n > base + CAP;
            bad_zero += !all_bytes(p, n, 0);
            for (int j = 0; j < SLOTS; j++)
                if (ptr[j]) bad_overlap += p < ptr[j] + round256(len[j]) && ptr[j] < p + round256(n);
            memset(p, 0x5A, n);   /* dirty it for the next user */
            ptr[i] = p;
            len[i] = n;
        }
        size_t used = 0;
        for (int j = 0; j < SLOTS; j++)
            if (ptr[j]) used += round256(len[j]);
        backend_pool_info info;
        backend_pool_stats(be, &info);
        bad_used += info.used != used;
    }
    CHECK_INT(0, bad_overlap);
    CHECK_INT(0, bad_align);
    CHECK_INT(0, bad_zero);
    CHECK_INT(0, bad_used);
    CHECK_INT(0, bad_fail);
    printf("random: %d allocation failures, all with no hole large enough\n", failures);
    for (int j = 0; j < SLOTS; j++) be->free(be, ptr[j]);
    backend_pool_info info;
    backend_pool_stats(be, &info);
    CHECK_INT(1, info.free_blocks);
    CHECK_INT(CAP, info.largest_free);
    backend_free(be);
}

static void test_parse(void) {
    double f;
    size_t b;
    int a;
    CHECK_OK(backend_pool_parse_size(NULL, &f, &b, &a));
    CHECK(a == 1 && f == 0 && b == 0);
    CHECK_OK(backend_pool_parse_size("", &f, &b, &a));
    CHECK(a == 1);
    CHECK_OK(backend_pool_parse_size("0.9", &f, &b, &a));
    CHECK(a == 0 && f == 0.9 && b == 0);
    CHECK_OK(backend_pool_parse_size("1", &f, &b, &a));
    CHECK(f == 1.0);
    CHECK_OK(backend_pool_parse_size("60GiB", &f, &b, &a));
    CHECK(f == 0 && b == (size_t)60 << 30);
    CHECK_OK(backend_pool_parse_size("512 MiB", &f, &b, &a));
    CHECK(b == (size_t)512 << 20);
    CHECK_OK(backend_pool_parse_size("8GB", &f, &b, &a));
    CHECK(b == (size_t)8000000000ull);
    CHECK_OK(backend_pool_parse_size("1.5gib", &f, &b, &a));
    CHECK(b == (size_t)3 << 29);
    CHECK_OK(backend_pool_parse_size("none", &f, &b, &a));
    CHECK(a == 0 && f == 0 && b == 0);
    CHECK_OK(backend_pool_parse_size("0", &f, &b, &a));
    CHECK(a == 0 && f == 0 && b == 0);
    CHECK_FAILS(backend_pool_parse_size("1.5", &f, &b, &a), "must be in (0, 1]");
    CHECK_FAILS(backend_pool_parse_size("lots", &f, &b, &a), "expected a fraction");
    CHECK_FAILS(backend_pool_parse_size("-2GiB", &f, &b, &a), "expected a fraction");
    CHECK_FAILS(backend_pool_parse_size("10XB", &f, &b, &a), "unknown unit \"XB\"");
    CHECK_FAILS(backend_pool_parse_size("1e30GiB", &f, &b, &a), "too large");
}

static void test_setup(void) {
    backend *be = backend_cpu_create();
    CHECK_OK(backend_pool_setup(be, NULL));   /* the CPU: no pool by default */
    CHECK(be->pool == NULL);
    CHECK_OK(backend_pool_setup(be, "1MiB"));
    backend_pool_info info;
    CHECK_INT(1, backend_pool_stats(be, &info));
    CHECK_INT(1 << 20, info.capacity);
    char line[256];
    backend_pool_describe(be, line, sizeof line);
    CHECK(strstr(line, "pool cpu: 0 B of 1.0 MiB used") != NULL);
    CHECK_FAILS(backend_pool_setup(be, "1MiB"), "already has a pool");
    backend_free(be);
    be = backend_cpu_create();
    CHECK_FAILS(backend_pool_setup(be, "2.5"), "run.device_memory");
    CHECK_FAILS(backend_pool_setup(be, "1000TiB"), "does not fit");
    CHECK(be->pool == NULL);
    size_t fr = 0, tot = 0;
    CHECK_OK(backend_memory_info(be, &fr, &tot));
    CHECK(tot > 0 && fr <= tot);
    backend_free(be);
}

/* The config keys: run.device_memory is checked when the config loads, run.recompute binds. */
static void test_config_keys(void) {
    const char *path = harness_source_path("configs/demo.yaml");
    run_config *c = NULL;
    const char *good[] = {"run.device_memory=60GiB", "run.recompute=true"};
    CHECK_OK(run_config_load(path, good, 2, &c));
    if (c) {
        CHECK_STR("60GiB", c->run.device_memory);
        CHECK_INT(1, c->run.recompute);
        run_config_free(c);
    }
    c = NULL;
    CHECK_OK(run_config_load(path, NULL, 0, &c));
    if (c) {
        CHECK(c->run.device_memory == NULL);   /* the default: auto */
        CHECK_INT(0, c->run.recompute);
        run_config_free(c);
    }
    const char *bad[] = {"run.device_memory=lots"};
    c = NULL;
    CHECK_FAILS(run_config_load(path, bad, 1, &c), "device memory \"lots\": expected a fraction");
    CHECK(c == NULL);
    const char *bad2[] = {"run.recompute=maybe"};
    CHECK_FAILS(run_config_load(path, bad2, 1, &c), "recompute");
}

/* Runs fn in a child with stderr captured; 1 when it died by SIGABRT with `needle` on stderr. */
static int dies_with(void (*fn)(void), const char *needle) {
    int fds[2];
    if (pipe(fds) != 0) return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    while (n + 1 < sizeof buf && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(buf, needle) != NULL;
    if (!ok) printf("child status %d, stderr: %s\n", status, buf);
    return ok;
}

static void double_free(void) {
    backend *be = backend_cpu_create();
    backend_pool_reserve(be, 4 * KIB);
    void *p = be->alloc(be, 100);
    void *q = be->alloc(be, 100);   /* keeps p's block from merging away */
    (void)q;
    be->free(be, p);
    be->free(be, p);
}

static void interior_free(void) {
    backend *be = backend_cpu_create();
    backend_pool_reserve(be, 4 * KIB);
    char *p = be->alloc(be, 1000);
    be->free(be, p + 256);
}

int main(void) {
    const char *env = getenv("GRPO_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("seed %llu (GRPO_TEST_SEED to repeat)\n", (unsigned long long)seed);
    test_basic();
    test_coalescing();
    test_fragmentation_and_exhaustion();
    test_no_pool_message();
    test_random(seed);
    test_parse();
    test_setup();
    test_config_keys();
    CHECK(dies_with(double_free, "not a live allocation (freed twice"));
    CHECK(dies_with(interior_free, "not a live allocation"));
    TEST_MAIN_END();
}
