/* Stop strings over text that arrives token by token (rollouts/sampler.h): a sliding
 * window of the last bytes, searched only for matches that end in the new bytes. */
#include "rollouts/sampler.h"

#include <stdlib.h>
#include <string.h>

struct sampler_stop {
    int n;
    char **strings;
    size_t *lens;
    size_t max_len;
};

grpo_status sampler_stop_create(const char *const *strings, int n, sampler_stop **out) {
    *out = NULL;
    if (n < 0) return grpo_fail(GRPO_ERR_INVALID, "stop strings: count %d < 0", n);
    sampler_stop *s = calloc(1, sizeof *s);
    if (!s) return grpo_fail(GRPO_ERR_NOMEM, "out of memory for stop strings");
    s->strings = calloc((size_t)(n > 0 ? n : 1), sizeof *s->strings);
    s->lens = calloc((size_t)(n > 0 ? n : 1), sizeof *s->lens);
    if (!s->strings || !s->lens) {
        sampler_stop_free(s);
        return grpo_fail(GRPO_ERR_NOMEM, "out of memory for stop strings");
    }
    for (int i = 0; i < n; i++) {
        if (!strings[i] || !strings[i][0]) {
            sampler_stop_free(s);
            return grpo_fail(GRPO_ERR_INVALID, "stop string %d is empty", i);
        }
        s->strings[i] = strdup(strings[i]);
        if (!s->strings[i]) {
            sampler_stop_free(s);
            return grpo_fail(GRPO_ERR_NOMEM, "out of memory for stop strings");
        }
        s->lens[i] = strlen(strings[i]);
        if (s->lens[i] > s->max_len) s->max_len = s->lens[i];
        s->n = i + 1;
    }
    *out = s;
    return GRPO_OK;
}

void sampler_stop_free(sampler_stop *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->strings[i]);
    free(s->strings);
    free(s->lens);
    free(s);
}

int sampler_stop_count(const sampler_stop *s) { return s ? s->n : 0; }
size_t sampler_stop_max_len(const sampler_stop *s) { return s ? s->max_len : 0; }

size_t sampler_stop_window_bytes(const sampler_stop *s, size_t max_piece) {
    size_t keep = s && s->max_len > 0 ? s->max_len - 1 : 0;
    return keep + (max_piece > 0 ? max_piece : 1);
}

void sampler_stop_state_init(sampler_stop_state *st, char *buffer, size_t cap) {
    st->window = buffer;
    st->cap = cap;
    st->len = 0;
    st->offset = 0;
}

/* Appends a part that fits beside the kept tail and searches the new bytes. */
static int feed_part(const sampler_stop *s, sampler_stop_state *st, const char *part, size_t n, size_t *start,
                     size_t *end) {
    size_t keep = s->max_len - 1;
    if (st->len + n > st->cap) {   /* drop all but the last `keep` bytes */
        size_t drop = st->len > keep ? st->len - keep : 0;
        memmove(st->window, st->window + drop, st->len - drop);
        st->len -= drop;
        st->offset += drop;
    }
    size_t old = st->len;
    memcpy(st->window + st->len, part, n);
    st->len += n;
    size_t best = (size_t)-1, best_end = 0;
    int which = -1;
    for (int i = 0; i < s->n; i++) {
        size_t L = s->lens[i];
        if (L > st->len) continue;
        /* a match [b, b + L) must end after `old`: b > old - L */
        size_t b0 = old + 1 > L ? old + 1 - L : 0;
        for (size_t b = b0; b + L <= st->len && b < best; b++)
            if (memcmp(st->window + b, s->strings[i], L) == 0) {
                best = b;
                best_end = b + L;
                which = i;
                break;
            }
    }
    if (which < 0) return -1;
    *start = st->offset + best;
    *end = st->offset + best_end;
    return which;
}

int sampler_stop_feed(const sampler_stop *s, sampler_stop_state *st, const char *piece, size_t n, size_t *start,
                      size_t *end) {
    if (!s || s->n == 0) {
        st->offset += n;   /* nothing to match: only count the bytes */
        return -1;
    }
    size_t part_max = st->cap - (s->max_len - 1);
    while (n > 0) {
        size_t m = n < part_max ? n : part_max;
        int which = feed_part(s, st, piece, m, start, end);
        if (which >= 0) return which;
        piece += m;
        n -= m;
    }
    return -1;
}
