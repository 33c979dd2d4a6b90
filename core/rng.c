/* The sequential generator over Philox4x32-10 (see rng.h). Word i of a stream is the
 * same number whether it comes from here, from rng_u32 on another thread or from a
 * CUDA kernel, so a resumed run draws exactly what the uninterrupted one would. */
#include "core/rng.h"

#include "core/status.h"

rng_stream rng_stream_make(uint64_t seed, uint64_t stream) {
    rng_stream s = {seed, stream, 0};
    return s;
}

/* Stream id of the per-rank seeds: "rank" in ASCII. */
#define RNG_RANK_STREAM 0x72616e6bull

rng_stream rng_stream_for_rank(uint64_t seed, uint64_t stream, int rank) {
    if (rank <= 0) return rng_stream_make(seed, stream);
    rng_u32x4 w = rng_philox(seed, RNG_RANK_STREAM, (uint64_t)rank);
    return rng_stream_make(((uint64_t)w.v[0] << 32) | w.v[1], stream);
}

uint32_t rng_next_u32(rng_stream *s) {
    return rng_u32(s->seed, s->stream, s->counter++);
}

float rng_next_uniform(rng_stream *s) {
    return rng_u32_to_uniform(rng_next_u32(s));
}

float rng_next_normal(rng_stream *s) {
    uint32_t a = rng_next_u32(s);
    uint32_t b = rng_next_u32(s);
    return rng_box_muller(a, b, 0);
}

uint32_t rng_next_below(rng_stream *s, uint32_t n) {
    GRPO_ASSERTF(n >= 1, "rng_next_below: n must be >= 1, got %u", n);
    /* 2^32 mod n words at the bottom would favour small results; reject them. */
    uint32_t threshold = (uint32_t)(0u - n) % n;
    for (;;) {
        uint32_t x = rng_next_u32(s);
        if (x >= threshold) return x % n;
    }
}
