/* Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel
 * random numbers: as easy as 1, 2, 3", SC 2011). A (seed, stream, index) triple names
 * one number, so results do not depend on thread count, schedule or backend: the
 * inline functions below compile for the host and, under nvcc, for CUDA kernels too.
 *
 * Mapping onto Philox: key = seed (key[0] low 32 bits, key[1] high), counter =
 * {block low, block high, stream low, stream high}. One block gives 4 words; word
 * `index` of (seed, stream) is word index % 4 of block index / 4.
 *
 * Exactness: rng_u32 and rng_uniform are bit-identical on every platform. rng_normal
 * uses logf/sqrtf/cosf/sinf, so host libm and the CUDA math library may differ in the
 * last ulp or two. */
#ifndef GRPO_RNG_H
#define GRPO_RNG_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define RNG_HOST_DEVICE __host__ __device__
#else
#define RNG_HOST_DEVICE
#endif

/* Philox4x32 constants (Random123's PHILOX_M4x32_0/1 and PHILOX_W32_0/1). */
#define RNG_PHILOX_M0 0xD2511F53u
#define RNG_PHILOX_M1 0xCD9E8D57u
#define RNG_PHILOX_W0 0x9E3779B9u   /* golden ratio */
#define RNG_PHILOX_W1 0xBB67AE85u   /* sqrt(3) - 1 */

typedef struct { uint32_t v[4]; } rng_u32x4;

/* One Philox round: two 32x32->64 multiplies, xor with the key, permute (paper, sec. 4.2). */
static inline RNG_HOST_DEVICE rng_u32x4 rng_philox_round(rng_u32x4 c, uint32_t k0, uint32_t k1) {
    uint64_t p0 = (uint64_t)RNG_PHILOX_M0 * c.v[0];
    uint64_t p1 = (uint64_t)RNG_PHILOX_M1 * c.v[2];
    rng_u32x4 r;
    r.v[0] = (uint32_t)(p1 >> 32) ^ c.v[1] ^ k0;
    r.v[1] = (uint32_t)p1;
    r.v[2] = (uint32_t)(p0 >> 32) ^ c.v[3] ^ k1;
    r.v[3] = (uint32_t)p0;
    return r;
}

/* The raw bijection: 10 rounds of counter ctr under key (k0, k1), the key bumped by
 * the Weyl constants between rounds. Matches Random123's philox4x32_R(10, ...). */
static inline RNG_HOST_DEVICE rng_u32x4 rng_philox4x32_10(rng_u32x4 ctr, uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) { k0 += RNG_PHILOX_W0; k1 += RNG_PHILOX_W1; }
        ctr = rng_philox_round(ctr, k0, k1);
    }
    return ctr;
}

/* Block `block` of stream `stream` under `seed`: 4 independent uniform 32-bit words. */
static inline RNG_HOST_DEVICE rng_u32x4 rng_philox(uint64_t seed, uint64_t stream, uint64_t block) {
    rng_u32x4 c;
    c.v[0] = (uint32_t)block;
    c.v[1] = (uint32_t)(block >> 32);
    c.v[2] = (uint32_t)stream;
    c.v[3] = (uint32_t)(stream >> 32);
    return rng_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* Word `index` of (seed, stream). */
static inline RNG_HOST_DEVICE uint32_t rng_u32(uint64_t seed, uint64_t stream, uint64_t index) {
    return rng_philox(seed, stream, index >> 2).v[index & 3];
}

/* A 32-bit word to a float in [0, 1): its top 24 bits times 2^-24 (exact in float). */
static inline RNG_HOST_DEVICE float rng_u32_to_uniform(uint32_t x) {
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}

/* Box-Muller (Box & Muller 1958): two words to one standard normal. u1 = (a>>8 + 1) 2^-24
 * lies in (0, 1] so log(u1) is finite; use_sin picks the second of the pair. */
static inline RNG_HOST_DEVICE float rng_box_muller(uint32_t a, uint32_t b, int use_sin) {
    float u1 = (float)((a >> 8) + 1u) * (1.0f / 16777216.0f);
    float theta = 6.28318530717958647692f * rng_u32_to_uniform(b);
    float r = sqrtf(-2.0f * logf(u1));
    return use_sin ? r * sinf(theta) : r * cosf(theta);
}

/* Uniform float in [0, 1) from word `index`. */
static inline RNG_HOST_DEVICE float rng_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
    return rng_u32_to_uniform(rng_u32(seed, stream, index));
}

/* Standard normal number `index`: indices 2j and 2j+1 are the cosine and sine halves of
 * one Box-Muller pair made from words 2j and 2j+1 (so normal i draws only on words in
 * {i, i^1}, and filling n normals costs n/4 Philox blocks). */
static inline RNG_HOST_DEVICE float rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
    rng_u32x4 w = rng_philox(seed, stream, index >> 2);
    unsigned pair = (unsigned)(index & 2);
    return rng_box_muller(w.v[pair], w.v[pair + 1], (int)(index & 1));
}

/* A sequential generator over one (seed, stream). Its whole state is these three
 * integers (a checkpoint saves them); `counter` is the next word index. */
typedef struct {
    uint64_t seed;
    uint64_t stream;
    uint64_t counter;
} rng_stream;

rng_stream rng_stream_make(uint64_t seed, uint64_t stream);
/* The stream of rank `rank` of a data-parallel run: its seed is derived from (seed, rank)
 * by one Philox block (rank 0 keeps `seed`, so one process draws what it always drew).
 * The trainers key their sampling by global sample slot instead, so their results do not
 * depend on the number of ranks; this is for draws that are genuinely per rank. */
rng_stream rng_stream_for_rank(uint64_t seed, uint64_t stream, int rank);
/* The next 32-bit word (consumes 1 word). */
uint32_t rng_next_u32(rng_stream *s);
/* Uniform in [0, 1) (consumes 1 word). */
float rng_next_uniform(rng_stream *s);
/* Standard normal (consumes 2 words; the Box-Muller cosine half). */
float rng_next_normal(rng_stream *s);
/* Uniform integer in [0, n), unbiased (rejection of the short last interval); n >= 1.
 * Consumes 1 word, more on a rejection (probability < n / 2^32). */
uint32_t rng_next_below(rng_stream *s, uint32_t n);

#endif
