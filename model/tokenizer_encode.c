/* Encoding and decoding with a loaded tokenizer, following the order of the tokenizers
 * library: added tokens are split out first (non-normalized ones, then normalized ones,
 * leftmost-longest), each remaining segment goes through the pre-tokenizer steps, and
 * each resulting piece is mapped byte by byte to the GPT-2 byte tokens and merged by
 * BPE rank. All scratch memory of one call lives in one `encoder` and is freed at the
 * end, so the tokenizer itself is never written to. */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_impl.h"

typedef struct {
    size_t off, len;
} span;

typedef struct {
    int32_t rank, pos, new_id;
} merge_candidate;

typedef struct {
    int32_t id, prev, next; /* id -1: merged into the symbol on its left */
} symbol;

typedef struct {
    size_t off, len;
    int is_match;
} mark;

typedef struct {
    const tokenizer *tok;
    int32_t *ids;
    size_t n_ids, cap_ids;
    span *pieces, *next_pieces;       /* pieces of the current segment, and the next step's */
    size_t n_pieces, cap_pieces, n_next, cap_next;
    mark *marks;                      /* matches and gaps of one piece */
    size_t n_marks, cap_marks;
    char *work;                       /* the segment with prefix spaces added */
    size_t cap_work;
    symbol *sym;                      /* BPE symbols of one piece: [piece length] */
    size_t cap_sym;
    merge_candidate *heap;
    size_t n_heap, cap_heap;
    char *mapped;                     /* a piece in bytes_to_unicode form (ignore_merges) */
    size_t cap_mapped;
    pcre2_match_data *match;
} encoder;

/* Grows *p (elements of `size` bytes) to hold at least `need`. */
static grpo_status reserve(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return GRPO_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *grown = realloc(*p, c * size);
    if (!grown) return grpo_fail(GRPO_ERR_NOMEM, "tokenizer: out of memory (%zu x %zu bytes)", c, size);
    *p = grown;
    *cap = c;
    return GRPO_OK;
}
#define RESERVE(e, field, cap, need) reserve((void **)&(e)->field, &(e)->cap, (need), sizeof *(e)->field)

static void encoder_deinit(encoder *e) {
    free(e->ids); free(e->pieces); free(e->next_pieces); free(e->marks);
    free(e->work); free(e->sym); free(e->heap); free(e->mapped);
    pcre2_match_data_free(e->match);
}

static grpo_status emit(encoder *e, int32_t id) {
    GRPO_TRY(RESERVE(e, ids, cap_ids, e->n_ids + 1));
    e->ids[e->n_ids++] = id;
    return GRPO_OK;
}

/* ---- BPE on one piece ---- */

static int candidate_less(merge_candidate a, merge_candidate b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(encoder *e, merge_candidate c) {
    size_t i = e->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!candidate_less(c, e->heap[parent])) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = c;
}

static merge_candidate heap_pop(encoder *e) {
    merge_candidate top = e->heap[0], last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && candidate_less(e->heap[child + 1], e->heap[child])) child++;
        if (!candidate_less(e->heap[child], last)) break;
        e->heap[i] = e->heap[child];
        i = child;
    }
    if (n) e->heap[i] = last;
    return top;
}

static void push_pair(encoder *e, int32_t left) {
    int32_t right = e->sym[left].next, rank, new_id;
    if (right >= 0 && tok_pairmap_get(&e->tok->merges, e->sym[left].id, e->sym[right].id, &rank, &new_id))
        heap_push(e, (merge_candidate){rank, left, new_id});
}

/* Lowest rank first, leftmost among equal ranks: the order of the tokenizers library's
 * BPE::merge_word, so ties break the same way. A candidate whose pair has changed since
 * it was pushed is skipped. O(m log m) for a piece of m bytes. */
static grpo_status bpe_piece(encoder *e, const unsigned char *p, size_t m) {
    const tokenizer *tok = e->tok;
    if (tok->ignore_merges) { /* a piece that is itself a token is taken whole (Llama 3) */
        GRPO_TRY(RESERVE(e, mapped, cap_mapped, 2 * m));
        size_t n = 0;
        for (size_t i = 0; i < m; i++) n += (size_t)utf8_encode(tok_byte_to_unicode(p[i]), e->mapped + n);
        int32_t id = tok_strmap_get(&tok->vocab, tok->arena, e->mapped, n);
        if (id >= 0) return emit(e, id);
    }
    GRPO_TRY(RESERVE(e, sym, cap_sym, m));
    int32_t n = 0;
    for (size_t i = 0; i < m; i++) {
        int32_t id = tok->byte_id[p[i]];
        if (id < 0) id = tok->unk_id;
        if (id < 0) continue; /* a byte without a token and no unk: dropped, as the library does */
        e->sym[n] = (symbol){id, n - 1, n + 1};
        n++;
    }
    if (n == 0) return GRPO_OK;
    e->sym[n - 1].next = -1;
    /* Each merge pushes at most two candidates: n initial + 2 (n - 1) in all. */
    GRPO_TRY(RESERVE(e, heap, cap_heap, 3 * (size_t)n));
    e->n_heap = 0;
    for (int32_t i = 0; i + 1 < n; i++) push_pair(e, i);
    while (e->n_heap) {
        merge_candidate c = heap_pop(e);
        int32_t rank, new_id;
        symbol *l = &e->sym[c.pos];
        if (l->id < 0 || l->next < 0) continue; /* merged away, or now the last symbol */
        symbol *r = &e->sym[l->next];
        if (!tok_pairmap_get(&tok->merges, l->id, r->id, &rank, &new_id) || new_id != c.new_id)
            continue; /* stale: the pair at this position has changed */
        l->id = new_id;
        r->id = -1;
        l->next = r->next;
        if (r->next >= 0) e->sym[r->next].prev = c.pos;
        if (l->prev >= 0) push_pair(e, l->prev);
        push_pair(e, c.pos);
    }
    for (int32_t i = 0; i >= 0; i = e->sym[i].next) GRPO_TRY(emit(e, e->sym[i].id));
    return GRPO_OK;
}

/* ---- pre-tokenizer ---- */

static grpo_status add_mark(encoder *e, size_t off, size_t len, int is_match) {
    GRPO_TRY(RESERVE(e, marks, cap_marks, e->n_marks + 1));
    e->marks[e->n_marks++] = (mark){off, len, is_match};
    return GRPO_OK;
}

static grpo_status add_next_piece(encoder *e, span s) {
    GRPO_TRY(RESERVE(e, next_pieces, cap_next, e->n_next + 1));
    e->next_pieces[e->n_next++] = s;
    return GRPO_OK;
}

/* Finds the matches of a step in base[piece) and records them with the gaps between as
 * marks (offsets into base). Empty matches are skipped. */
static grpo_status find_marks(encoder *e, const tok_pretok_step *step, const char *base, span piece) {
    e->n_marks = 0;
    const char *s = base + piece.off;
    size_t pos = 0, prev = 0;
    while (pos < piece.len) {
        size_t ms, me;
        if (step->literal) {
            const char *hit = memmem(s + pos, piece.len - pos, step->literal, step->literal_len);
            if (!hit) break;
            ms = (size_t)(hit - s);
            me = ms + step->literal_len;
        } else {
            int rc = pcre2_match(step->regex, (PCRE2_SPTR)s, piece.len, pos, 0, e->match, NULL);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
                rc = pcre2_match(step->regex, (PCRE2_SPTR)s, piece.len, pos, PCRE2_NO_JIT, e->match, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return grpo_fail(GRPO_ERR_INVALID, "%s: pre-tokenizer regex failed on a %zu-byte piece: %s",
                                 e->tok->name, piece.len, (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->match);
            ms = ov[0];
            me = ov[1];
            if (ms < pos || me < ms || me > piece.len) { ms = me = pos; } /* \K tricks: treat as empty */
        }
        if (me == ms) { /* skip one character */
            uint32_t cp;
            int k = utf8_decode((const unsigned char *)s + pos, piece.len - pos, &cp);
            pos += k ? (size_t)k : 1;
            continue;
        }
        if (ms > prev) GRPO_TRY(add_mark(e, piece.off + prev, ms - prev, 0));
        GRPO_TRY(add_mark(e, piece.off + ms, me - ms, 1));
        prev = pos = me;
    }
    if (prev < piece.len) GRPO_TRY(add_mark(e, piece.off + prev, piece.len - prev, 0));
    return GRPO_OK;
}

/* Turns the marks into pieces by the step's behavior (tokenizers' SplitDelimiterBehavior,
 * normalizer.rs NormalizedString::split). */
static grpo_status split_marks(encoder *e, tok_split_behavior behavior) {
    size_t first = e->n_next;
    int previous_match = 0;
    if (behavior == TOK_SPLIT_MERGED_WITH_NEXT) { /* walk backwards, extending the piece after */
        for (size_t k = e->n_marks; k-- > 0;) {
            int is_match = e->marks[k].is_match;
            if (is_match && !previous_match && e->n_next > first) {
                span *last = &e->next_pieces[e->n_next - 1];
                last->len += last->off - e->marks[k].off;
                last->off = e->marks[k].off;
            } else {
                GRPO_TRY(add_next_piece(e, (span){e->marks[k].off, e->marks[k].len}));
            }
            previous_match = is_match;
        }
        for (size_t a = first, b = e->n_next; a + 1 < b; a++, b--) { /* back into text order */
            span t = e->next_pieces[a];
            e->next_pieces[a] = e->next_pieces[b - 1];
            e->next_pieces[b - 1] = t;
        }
        return GRPO_OK;
    }
    for (size_t k = 0; k < e->n_marks; k++) {
        int is_match = e->marks[k].is_match;
        int extend = 0;
        if (behavior == TOK_SPLIT_REMOVED && is_match) continue;
        if (behavior == TOK_SPLIT_MERGED_WITH_PREVIOUS) extend = is_match && !previous_match;
        if (behavior == TOK_SPLIT_CONTIGUOUS) extend = is_match == previous_match;
        if (extend && e->n_next > first) {
            span *last = &e->next_pieces[e->n_next - 1];
            last->len = e->marks[k].off + e->marks[k].len - last->off;
        } else {
            GRPO_TRY(add_next_piece(e, (span){e->marks[k].off, e->marks[k].len}));
        }
        previous_match = is_match;
    }
    return GRPO_OK;
}

/* Normalizes (identity, see tokenizer_load.c), pre-tokenizes and BPE-encodes one
 * segment of text that holds no added token. */
static grpo_status encode_segment(encoder *e, const char *text, size_t len) {
    const tokenizer *tok = e->tok;
    const char *base = text;
    e->n_pieces = 0;
    GRPO_TRY(RESERVE(e, pieces, cap_pieces, 1));
    e->pieces[e->n_pieces++] = (span){0, len};
    for (int k = 0; k < tok->n_steps; k++) {
        const tok_pretok_step *step = &tok->steps[k];
        if (step->add_prefix_space) { /* ByteLevel: a ' ' before each piece without one */
            GRPO_TRY(RESERVE(e, work, cap_work, len + e->n_pieces));
            size_t w = 0;
            for (size_t i = 0; i < e->n_pieces; i++) {
                span *p = &e->pieces[i];
                size_t start = w;
                if (base[p->off] != ' ') e->work[w++] = ' ';
                memcpy(e->work + w, base + p->off, p->len);
                w += p->len;
                *p = (span){start, w - start};
            }
            base = e->work;
        }
        if (!step->regex && !step->literal) continue;
        e->n_next = 0;
        for (size_t i = 0; i < e->n_pieces; i++) {
            GRPO_TRY(find_marks(e, step, base, e->pieces[i]));
            GRPO_TRY(split_marks(e, step->behavior));
        }
        span *t = e->pieces; e->pieces = e->next_pieces; e->next_pieces = t;
        size_t c = e->cap_pieces; e->cap_pieces = e->cap_next; e->cap_next = c;
        e->n_pieces = e->n_next;
    }
    for (size_t i = 0; i < e->n_pieces; i++)
        GRPO_TRY(bpe_piece(e, (const unsigned char *)base + e->pieces[i].off, e->pieces[i].len));
    return GRPO_OK;
}

/* ---- added tokens ---- */

/* Start of the character that ends at s[end) (walking back over continuation bytes);
 * `end - 1` when the bytes there are not valid UTF-8. */
static size_t previous_char(const char *s, size_t begin, size_t end, uint32_t *cp, int *valid) {
    for (size_t k = 1; k <= 4 && k <= end - begin; k++) {
        int n = utf8_decode((const unsigned char *)s + end - k, k, cp);
        if (n == (int)k) { *valid = 1; return end - k; }
    }
    *valid = 0;
    return end - 1;
}

/* Whether the character at s[at) in s[begin, end) is a \w word character (Unicode). */
static int word_char_at(encoder *e, const char *s, size_t at, size_t end) {
    if (at >= end) return 0;
    int rc = pcre2_match(e->tok->word_regex, (PCRE2_SPTR)s, end, at, PCRE2_ANCHORED, e->match, NULL);
    return rc > 0;
}

static grpo_status encode_range(encoder *e, const char *text, size_t begin, size_t end, int pass);

/* Splits text[begin, end) on the added tokens of this pass (pass 0: normalized false,
 * pass 1: normalized true; AddedVocabulary::extract_and_normalize), leftmost-longest,
 * with lstrip / rstrip / single_word as in AddedVocabulary::find_matches. */
static grpo_status encode_range(encoder *e, const char *text, size_t begin, size_t end, int pass) {
    const tokenizer *tok = e->tok;
    if (begin >= end) return GRPO_OK;
    if (pass == 2) return encode_segment(e, text + begin, end - begin);
    size_t start_offset = begin, pos = begin;
    while (pos < end) {
        if (!tok->added_first[(unsigned char)text[pos]]) { pos++; continue; }
        const tok_added *hit = NULL;
        for (int i = 0; i < tok->n_added && !hit; i++) { /* sorted longest first */
            const tok_added *a = &tok->added[i];
            if (a->normalized == pass && a->len <= end - pos && memcmp(text + pos, tok->arena + a->off, a->len) == 0)
                hit = a;
        }
        if (!hit) { pos++; continue; }
        size_t ms = pos, me = pos + hit->len;
        if (hit->single_word) {
            uint32_t cp;
            int valid;
            int word_before = ms > begin && word_char_at(e, text, previous_char(text, begin, ms, &cp, &valid), end);
            if (word_before || word_char_at(e, text, me, end)) { pos = me; continue; }
        }
        if (hit->lstrip) {
            while (ms > start_offset) {
                uint32_t cp;
                int valid;
                size_t at = previous_char(text, start_offset, ms, &cp, &valid);
                if (!valid || !tok_is_whitespace(cp)) break;
                ms = at;
            }
        }
        if (hit->rstrip) {
            while (me < end) {
                uint32_t cp;
                int k = utf8_decode((const unsigned char *)text + me, end - me, &cp);
                if (!k || !tok_is_whitespace(cp)) break;
                me += (size_t)k;
            }
        }
        GRPO_TRY(encode_range(e, text, start_offset, ms, pass + 1));
        GRPO_TRY(emit(e, hit->id));
        start_offset = pos = me;
    }
    return encode_range(e, text, start_offset, end, pass + 1);
}

static grpo_status encode_all(const tokenizer *tok, const char *text, size_t len, encoder *e) {
    memset(e, 0, sizeof *e);
    e->tok = tok;
    if (!text && len) return grpo_fail(GRPO_ERR_INVALID, "tokenizer_encode: text is NULL but len is %zu", len);
    e->match = pcre2_match_data_create(4, NULL);
    if (!e->match) return grpo_fail(GRPO_ERR_NOMEM, "tokenizer_encode: out of memory");
    if (len > (size_t)INT32_MAX / 4)
        return grpo_fail(GRPO_ERR_INVALID, "tokenizer_encode: text of %zu bytes is too long", len);
    return encode_range(e, text, 0, len, 0);
}

grpo_status tokenizer_encode(const tokenizer *tok, const char *text, size_t len, int32_t **ids, int *n) {
    *ids = NULL;
    *n = 0;
    encoder e;
    grpo_status st = encode_all(tok, text, len, &e);
    if (st == GRPO_OK && e.n_ids) {
        *ids = e.ids;
        *n = (int)e.n_ids;
        e.ids = NULL;
    }
    encoder_deinit(&e);
    return st;
}

grpo_status tokenizer_encode_into(const tokenizer *tok, const char *text, size_t len, int32_t *ids, int capacity,
                                  int *n) {
    *n = 0;
    encoder e;
    grpo_status st = encode_all(tok, text, len, &e);
    if (st == GRPO_OK) {
        *n = (int)e.n_ids;
        if (e.n_ids > (size_t)(capacity > 0 ? capacity : 0))
            st = grpo_fail(GRPO_ERR_INVALID, "tokenizer_encode_into: the text needs %zu ids, the buffer holds %d",
                           e.n_ids, capacity);
        else if (e.n_ids)
            memcpy(ids, e.ids, e.n_ids * sizeof *ids);
    }
    encoder_deinit(&e);
    return st;
}

grpo_status tokenizer_decode(const tokenizer *tok, const int32_t *ids, int n, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_ids || tok->id_kind[ids[i]] == TOK_ID_UNUSED)
            return grpo_fail(GRPO_ERR_INVALID, "tokenizer_decode: ids[%d] = %d is not a token of %s (vocab size %d)",
                             i, ids[i], tok->name, tok->n_ids);
        total += tok->bytes_len[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out) return grpo_fail(GRPO_ERR_NOMEM, "tokenizer_decode: out of memory for %zu bytes", total);
    size_t w = 0;
    for (int i = 0; i < n; i++) {
        memcpy(out + w, tok->arena + tok->bytes_off[ids[i]], tok->bytes_len[ids[i]]);
        w += tok->bytes_len[ids[i]];
    }
    out[w] = '\0';
    *text = out;
    *len = w;
    return GRPO_OK;
}

/* ---- lookups ---- */

int tokenizer_vocab_size(const tokenizer *tok) { return tok->n_ids; }

int32_t tokenizer_token_to_id(const tokenizer *tok, const char *token) {
    size_t len = strlen(token);
    int32_t id = tok_strmap_get(&tok->added_map, tok->arena, token, len);
    return id >= 0 ? id : tok_strmap_get(&tok->vocab, tok->arena, token, len);
}

const char *tokenizer_id_to_token(const tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_ids || tok->id_kind[id] == TOK_ID_UNUSED) return NULL;
    return tok->arena + tok->token_off[id];
}

const char *tokenizer_token_bytes(const tokenizer *tok, int32_t id, size_t *len) {
    *len = 0;
    if (id < 0 || id >= tok->n_ids || tok->id_kind[id] == TOK_ID_UNUSED) return NULL;
    *len = tok->bytes_len[id];
    return tok->arena + tok->bytes_off[id];
}

int tokenizer_is_special(const tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_ids && tok->id_special[id];
}

int32_t tokenizer_bos_id(const tokenizer *tok) { return tok->bos_id; }
int32_t tokenizer_eos_id(const tokenizer *tok) { return tok->eos_id; }
int32_t tokenizer_pad_id(const tokenizer *tok) { return tok->pad_id; }
