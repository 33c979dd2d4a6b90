/* Replay driver for a fuzz target without libFuzzer: runs every file of the corpus
 * directory given as argv[1], then a fixed number of seeded random mutations of them
 * (byte flips, truncations, insertions), so ctest exercises the target on every build,
 * sanitizer builds included. A crash or sanitizer report fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return rng_state;
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *size = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    enum { MAX_SEEDS = 256 };
    unsigned char *seeds[MAX_SEEDS];
    size_t sizes[MAX_SEEDS];
    int nseeds = 0;
    if (argc > 1) {
        DIR *dir = opendir(argv[1]);
        if (!dir) { fprintf(stderr, "replay: cannot open corpus %s\n", argv[1]); return 1; }
        struct dirent *e;
        while ((e = readdir(dir)) && nseeds < MAX_SEEDS) {
            if (e->d_name[0] == '.') continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
            unsigned char *buf = read_file(path, &sizes[nseeds]);
            if (buf) seeds[nseeds++] = buf;
        }
        closedir(dir);
    }
    if (nseeds == 0) { seeds[0] = calloc(1, 1); sizes[0] = 0; nseeds = 1; }
    for (int i = 0; i < nseeds; i++) LLVMFuzzerTestOneInput(seeds[i], sizes[i]);
    int iterations = getenv("FUZZ_ITERATIONS") ? atoi(getenv("FUZZ_ITERATIONS")) : 3000;
    for (int it = 0; it < iterations; it++) {
        int s = (int)(next_random() % (uint64_t)nseeds);
        size_t n = sizes[s] + 16;
        unsigned char *buf = malloc(n);
        memcpy(buf, seeds[s], sizes[s]);
        size_t len = sizes[s];
        int edits = 1 + (int)(next_random() % 8);
        for (int e = 0; e < edits; e++) {
            int kind = (int)(next_random() % 4);
            if (kind == 0 && len) buf[next_random() % len] ^= (unsigned char)(1u << (next_random() % 8));
            else if (kind == 1 && len) buf[next_random() % len] = (unsigned char)next_random();
            else if (kind == 2 && len) len = (size_t)(next_random() % len);
            else if (len < n) buf[len++] = (unsigned char)next_random();
        }
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
    }
    for (int i = 0; i < nseeds; i++) free(seeds[i]);
    printf("replayed %d seeds and %d mutations: 1 passed, 0 failed\n", nseeds, iterations);
    return 0;
}
