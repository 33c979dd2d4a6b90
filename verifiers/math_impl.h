/* What the files of the math verifier share: the scratch arena, the expression tree,
 * the parser and the evaluator. Not a public interface (see verifiers/math.h). */
#ifndef GRPO_VERIFY_MATH_IMPL_H
#define GRPO_VERIFY_MATH_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "verifiers/math.h"
#include "verifiers/rational.h"

/* ---- scratch arena: bump allocation in a chain of blocks, all freed at once ---------- */
typedef struct math_block math_block;

typedef struct {
    math_block *head;     /* newest block */
    size_t next_size;     /* size of the next block to add */
    size_t total, limit;  /* bytes held; allocation fails beyond limit */
} math_arena;

typedef struct {
    math_block *block;
    size_t used;
} math_arena_mark;

/* An empty arena whose first block will hold first_block bytes. */
void math_arena_init(math_arena *a, size_t first_block);
void math_arena_release(math_arena *a);
/* Zeroed, 16-byte aligned; NULL when out of memory or past the limit. */
void *math_arena_alloc(math_arena *a, size_t bytes);
/* Everything allocated after a mark can be dropped by restoring it. */
math_arena_mark math_arena_save(const math_arena *a);
void math_arena_restore(math_arena *a, math_arena_mark m);

/* ---- normalisation ------------------------------------------------------------------ */
/* Scratch size the passes need for an input of n bytes (a 2-byte unicode symbol becomes
 * at most 8 ASCII bytes). */
#define MATH_NORM_CAP(n) (4 * (n) + 64)

/* in[0..n) -> out (capacity MATH_NORM_CAP(n)), using tmp of the same capacity. Returns
 * the output length; out is NUL-terminated. */
size_t math_normalize_into(const char *in, size_t n, char *out, char *tmp);

/* ---- extraction --------------------------------------------------------------------- */
/* The gold's answer: its last \boxed when it has one, the text after the last "####"
 * (GSM8K), else all of it; trimmed. */
void math_extract_gold(const char *s, size_t n, size_t *start, size_t *span_len);

/* ---- expression tree ----------------------------------------------------------------- */
typedef enum {
    MATH_NUM,        /* number literal: q (exact) or f */
    MATH_VAR,        /* variable: name[0..name_len) */
    MATH_PI,
    MATH_E,
    MATH_INF,
    MATH_NEG,        /* -child[0] */
    MATH_ADD,        /* child[0] + child[1] */
    MATH_SUB,
    MATH_MUL,
    MATH_DIV,
    MATH_POW,        /* child[0] ^ child[1] */
    MATH_PM,         /* child[0] +- child[1] (op = +1) or -+ (op = -1); index in pm_index */
    MATH_FUNC,       /* op = math_func; child[0] argument; LOG: child[1] base or none */
    MATH_ROOT,       /* child[0] radicand; child[1] index, or none for a square root */
    MATH_PERCENT,    /* child[0] % */
    MATH_FACT,       /* child[0]! */
    MATH_BINOM,      /* binom(child[0], child[1]) */
    MATH_ABS,
    MATH_PAIR,       /* (a, b): a 2-tuple or an open interval */
    MATH_TUPLE,      /* ordered, n != 2 or written with [ ] / \langle \rangle */
    MATH_INTERVAL,   /* op bit 1: left open, bit 2: right open */
    MATH_SET,        /* \{ ... \}; order-free */
    MATH_LIST,       /* unbracketed a, b, c at top level; order-free like a set */
    MATH_UNION,      /* A \cup B \cup ...; order-free */
    MATH_REL,        /* chain child[0] ops[0] child[1] ops[1] ... */
    MATH_TEXT        /* a word answer: name[0..name_len), compared case-insensitively */
} math_kind;

typedef enum {
    MATH_FN_SIN, MATH_FN_COS, MATH_FN_TAN, MATH_FN_SEC, MATH_FN_CSC, MATH_FN_COT,
    MATH_FN_ASIN, MATH_FN_ACOS, MATH_FN_ATAN, MATH_FN_SINH, MATH_FN_COSH, MATH_FN_TANH,
    MATH_FN_LN, MATH_FN_LOG, MATH_FN_EXP
} math_func;

typedef enum { MATH_REL_EQ, MATH_REL_NE, MATH_REL_LT, MATH_REL_LE, MATH_REL_GT, MATH_REL_GE } math_relop;

typedef struct math_node {
    math_kind kind;
    int op;
    int nchild;
    struct math_node **child;
    unsigned char *ops;      /* MATH_REL: nchild - 1 relation operators */
    /* MATH_NUM */
    rational q;
    int q_exact;             /* 0: the literal overflowed; use f */
    long double f;
    int is_decimal;          /* written with a decimal point or an exponent */
    int frac_digits;         /* places after the point, minus the exponent */
    int sig_digits;          /* significant digits as written */
    /* MATH_VAR, MATH_TEXT */
    const char *name;
    int name_len;
    /* MATH_PM */
    int pm_index;
    int height;              /* 1 + the tallest child: bounds every recursion over the tree */
} math_node;

/* Trees taller than this do not parse (recursive evaluation stays within the stack). */
#define MATH_MAX_HEIGHT 2000

/* Parses normalised text s[0..n) into a tree allocated from the arena. Returns NULL on
 * failure with *err (static message) and *err_pos set. *pm_count gets the number of
 * \pm / \mp nodes. */
math_node *math_parse(const char *s, size_t n, int max_depth, math_arena *arena, const char **err,
                      size_t *err_pos, int *pm_count);

math_node *math_node_new(math_arena *a, math_kind kind, int nchild);

/* ---- evaluation ---------------------------------------------------------------------- */
typedef enum { MATH_VAL_UNDEF = 0, MATH_VAL_EXACT, MATH_VAL_REAL } math_val_kind;

typedef struct {
    math_val_kind kind;
    rational q;      /* MATH_VAL_EXACT */
    long double f;   /* always set when defined (the exact value rounded) */
} math_value;

#define MATH_MAX_VARS 16

typedef struct {
    int nvars;
    const char *names[MATH_MAX_VARS];
    int name_lens[MATH_MAX_VARS];
    math_value values[MATH_MAX_VARS];
    uint32_t pm_mask;         /* bit k set: the k-th \pm takes its minus branch */
} math_env;

/* Value of a scalar expression; MATH_VAL_UNDEF for structures, unknown variables,
 * division by zero, logs of non-positives and the like. */
math_value math_eval(const math_node *n, const math_env *env);

/* Adds the variable names of n to env (deduplicated); returns 0 when more than
 * MATH_MAX_VARS distinct names appear. */
int math_collect_vars(const math_node *n, math_env *env);

int math_name_eq(const char *a, int alen, const char *b, int blen);

#endif
