/* Philox4x32-10 against Random123's published known-answer vectors (kat_vectors), the
 * index mapping of rng_u32/uniform/normal, the sequential generator, and statistics. */
#include <stdint.h>

#include "core/rng.h"
#include "core/status.h"
#include "tests/harness.h"

static void test_known_answers(void) {
    /* Random123 kat_vectors, "philox4x32 10" lines: counter[4], key[2] -> result[4]. */
    static const uint32_t kat[3][10] = {
        {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
         0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int t = 0; t < 3; t++) {
        rng_u32x4 c = {{kat[t][0], kat[t][1], kat[t][2], kat[t][3]}};
        rng_u32x4 r = rng_philox4x32_10(c, kat[t][4], kat[t][5]);
        for (int i = 0; i < 4; i++) CHECK_INT(kat[t][6 + i], r.v[i]);
        /* The same vector through the (seed, stream, block) mapping of rng_philox. */
        uint64_t block = (uint64_t)kat[t][1] << 32 | kat[t][0];
        uint64_t stream = (uint64_t)kat[t][3] << 32 | kat[t][2];
        uint64_t seed = (uint64_t)kat[t][5] << 32 | kat[t][4];
        rng_u32x4 r2 = rng_philox(seed, stream, block);
        for (int i = 0; i < 4; i++) CHECK_INT(kat[t][6 + i], r2.v[i]);
        /* Word indices reach blocks below 2^62 only (index = 4 block + word). */
        if (block < (1ull << 62))
            for (int i = 0; i < 4; i++) CHECK_INT(kat[t][6 + i], rng_u32(seed, stream, block * 4 + i));
    }
}

static void test_mapping(void) {
    /* Uniforms are the top 24 bits of the word, in [0, 1). */
    for (uint64_t i = 0; i < 64; i++) {
        uint32_t w = rng_u32(7, 3, i);
        float u = rng_uniform(7, 3, i);
        CHECK(u >= 0.0f && u < 1.0f);
        CHECK_INT((long long)(w >> 8), (long long)(u * 16777216.0f));
    }
    CHECK(rng_u32_to_uniform(0xffffffffu) < 1.0f);
    CHECK(rng_u32_to_uniform(0) == 0.0f);
    /* Extremes of Box-Muller stay finite: u1 = 2^-24 is the smallest. */
    float z = rng_box_muller(0, 0, 0);
    CHECK(isfinite(z) && z > 5.0f && z < 6.0f);   /* sqrt(2 * 24 ln 2) = 5.77 */
    CHECK(rng_box_muller(0xffffffffu, 0, 0) == 0.0f);
    /* Normal 2j/2j+1 are the cos/sin halves of the pair of words 2j, 2j+1. */
    for (uint64_t i = 0; i < 16; i++) {
        uint64_t j = i & ~(uint64_t)1;
        float expect = rng_box_muller(rng_u32(11, 5, j), rng_u32(11, 5, j + 1), (int)(i & 1));
        CHECK(rng_normal(11, 5, i) == expect);
    }
    /* Seed, stream and block each change the output. */
    rng_u32x4 a = rng_philox(1, 0, 0), b = rng_philox(2, 0, 0), c = rng_philox(1, 1, 0), d = rng_philox(1, 0, 1);
    CHECK(a.v[0] != b.v[0] && a.v[0] != c.v[0] && a.v[0] != d.v[0]);
    /* The high halves of seed, stream and block are used too. */
    CHECK(rng_philox(1ull << 40, 0, 0).v[0] != rng_philox(0, 0, 0).v[0]);
    CHECK(rng_philox(0, 1ull << 40, 0).v[0] != rng_philox(0, 0, 0).v[0]);
    CHECK(rng_philox(0, 0, 1ull << 40).v[0] != rng_philox(0, 0, 0).v[0]);
}

static void test_stream(void) {
    rng_stream s = rng_stream_make(42, 9);
    for (uint64_t i = 0; i < 20; i++) CHECK_INT(rng_u32(42, 9, i), rng_next_u32(&s));
    CHECK_INT(20, s.counter);
    /* Resuming from the saved three integers continues the same sequence. */
    rng_stream saved = s;
    float u1 = rng_next_uniform(&s), n1 = rng_next_normal(&s);
    rng_stream resumed = {saved.seed, saved.stream, saved.counter};
    CHECK(u1 == rng_next_uniform(&resumed));
    CHECK(n1 == rng_next_normal(&resumed));
    CHECK_INT(s.counter, resumed.counter);
    CHECK_INT(23, s.counter);   /* uniform: 1 word, normal: 2 words */
    CHECK(u1 == rng_uniform(42, 9, 20));

    /* rng_next_below: range, every value reachable, and roughly uniform. */
    enum { N = 7, DRAWS = 70000 };
    int counts[N] = {0};
    rng_stream t = rng_stream_make(123, 0);
    for (int i = 0; i < DRAWS; i++) {
        uint32_t x = rng_next_below(&t, N);
        CHECK(x < N);
        if (x < N) counts[x]++;
    }
    /* Chi-square with 6 degrees of freedom: 22.46 is the 0.999 quantile. */
    double chi2 = 0;
    for (int k = 0; k < N; k++) {
        double e = (double)DRAWS / N;
        chi2 += (counts[k] - e) * (counts[k] - e) / e;
    }
    CHECK_MSG(chi2 < 22.46, "chi2 %.2f", chi2);
    CHECK_INT(0, rng_next_below(&t, 1));
    /* A bound just above 2^31 rejects nearly half of the words; results still < n. */
    uint32_t big = 0x80000001u;
    rng_stream b = rng_stream_make(5, 5);
    for (int i = 0; i < 1000; i++) CHECK(rng_next_below(&b, big) < big);
    CHECK(b.counter > 1000);
}

static void test_statistics(void) {
    /* n = 1e6 draws. Uniform: mean 1/2, variance 1/12; standard errors of the sample
     * mean and variance are about 2.9e-4 and 8.9e-5, so bounds of 2e-3 / 1e-3 are
     * >6 sigma. Normal: mean 0 (se 1e-3), variance 1 (se 1.4e-3); bounds 6e-3 / 8e-3. */
    const long n = 1000000;
    double su = 0, su2 = 0, sn = 0, sn2 = 0, sn4 = 0;
    long below_half = 0;
    for (long i = 0; i < n; i++) {
        double u = rng_uniform(2024, 1, (uint64_t)i);
        double z = rng_normal(2024, 2, (uint64_t)i);
        su += u; su2 += u * u;
        sn += z; sn2 += z * z; sn4 += z * z * z * z;
        below_half += z < 0.0;
    }
    double mu = su / n, vu = su2 / n - mu * mu;
    double mn = sn / n, vn = sn2 / n - mn * mn, kurt = sn4 / n;
    CHECK_NEAR(0.5, mu, 2e-3, 0);
    CHECK_NEAR(1.0 / 12.0, vu, 1e-3, 0);
    CHECK_NEAR(0.0, mn, 6e-3, 0);
    CHECK_NEAR(1.0, vn, 8e-3, 0);
    CHECK_NEAR(3.0, kurt, 0.05, 0);   /* E z^4 = 3; se ~ sqrt(96/n) = 0.01 */
    CHECK_NEAR(0.5, (double)below_half / n, 3e-3, 0);
    /* Cosine and sine halves of one pair are uncorrelated. */
    double cross = 0;
    for (long j = 0; j < n / 2; j++) cross += (double)rng_normal(9, 9, 2 * j) * rng_normal(9, 9, 2 * j + 1);
    CHECK_NEAR(0.0, cross / (n / 2), 8e-3, 0);
}

int main(void) {
    test_known_answers();
    test_mapping();
    test_stream();
    test_statistics();
    TEST_MAIN_END();
}
