/* Evaluation of a scalar expression tree at one assignment of its variables. Values stay
 * exact rationals while every step is exact (sqrt of perfect squares, integer powers,
 * rational roots of perfect powers, log_b of exact powers of b) and fall back to long
 * double on overflow or irrational steps. Undefined results (division by zero, even roots
 * of negatives, logs of non-positives) give MATH_VAL_UNDEF rather than NaN. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "verifiers/math_impl.h"

#define MATH_PI_L 3.141592653589793238462643383279502884L
#define MATH_E_L 2.718281828459045235360287471352662498L

struct math_block {
    math_block *next;
    size_t cap, used;
    _Alignas(16) char data[];
};

/* Total scratch one comparison may hold: far above what any 4 KiB answer needs. */
#define MATH_ARENA_LIMIT ((size_t)256 << 20)

void math_arena_init(math_arena *a, size_t first_block) {
    a->head = NULL;
    a->next_size = first_block < 4096 ? 4096 : first_block;
    a->total = 0;
    a->limit = MATH_ARENA_LIMIT;
}

void math_arena_release(math_arena *a) {
    while (a->head) {
        math_block *b = a->head;
        a->head = b->next;
        free(b);
    }
    a->total = 0;
}

void *math_arena_alloc(math_arena *a, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    math_block *b = a->head;
    if (!b || b->cap - b->used < bytes) {
        size_t size = a->next_size;
        while (size < bytes) size *= 2;
        if (a->total + size > a->limit) return NULL;
        b = malloc(sizeof *b + size);
        if (!b) return NULL;
        b->next = a->head;
        b->cap = size;
        b->used = 0;
        a->head = b;
        a->total += size;
        a->next_size = size * 2;
    }
    void *p = b->data + b->used;
    b->used += bytes;
    memset(p, 0, bytes);
    return p;
}

math_arena_mark math_arena_save(const math_arena *a) {
    math_arena_mark m = { a->head, a->head ? a->head->used : 0 };
    return m;
}

void math_arena_restore(math_arena *a, math_arena_mark m) {
    while (a->head && a->head != m.block) {
        math_block *b = a->head;
        a->head = b->next;
        a->total -= b->cap;
        free(b);
    }
    if (a->head) a->head->used = m.used;
}

int math_name_eq(const char *a, int alen, const char *b, int blen) {
    return alen == blen && memcmp(a, b, (size_t)alen) == 0;
}

static math_value undef(void) {
    math_value v = { MATH_VAL_UNDEF, { 0, 1 }, 0 };
    return v;
}

static math_value exact(rational q) {
    math_value v = { MATH_VAL_EXACT, q, rational_to_long_double(q) };
    return v;
}

static math_value real(long double f) {
    if (isnan(f)) return undef();
    math_value v = { MATH_VAL_REAL, { 0, 1 }, f };
    return v;
}

typedef rational_status (*rational_op)(rational, rational, rational *);

static math_value arith(math_value a, math_value b, rational_op op, long double f) {
    if (a.kind == MATH_VAL_UNDEF || b.kind == MATH_VAL_UNDEF) return undef();
    if (a.kind == MATH_VAL_EXACT && b.kind == MATH_VAL_EXACT) {
        rational r;
        rational_status s = op(a.q, b.q, &r);
        if (s == RATIONAL_OK) return exact(r);
        if (s == RATIONAL_DIV_ZERO) return undef();
    }
    return real(f);
}

static int exact_int(math_value v, long long lo, long long hi, long long *out) {
    if (v.kind != MATH_VAL_EXACT || v.q.den != 1 || v.q.num < lo || v.q.num > hi) return 0;
    *out = (long long)v.q.num;
    return 1;
}

static math_value eval_pow(math_value a, math_value b) {
    if (a.kind == MATH_VAL_UNDEF || b.kind == MATH_VAL_UNDEF) return undef();
    if (a.kind == MATH_VAL_EXACT && b.kind == MATH_VAL_EXACT) {
        rational r;
        if (b.q.den == 1) {
            if (a.q.num == 0 && b.q.num < 0) return undef();
            if (b.q.num >= -100000 && b.q.num <= 100000) {
                rational_status s = rational_pow_int(a.q, (long long)b.q.num, &r);
                if (s == RATIONAL_OK) return exact(r);
                if (s == RATIONAL_DIV_ZERO) return undef();
            }
        } else if (b.q.den <= 1000 && b.q.num >= -100000 && b.q.num <= 100000) {
            rational root;
            rational_status s = rational_root(a.q, (long long)b.q.den, &root);
            if (s == RATIONAL_UNDEFINED) return undef();
            if (s == RATIONAL_OK) {
                if (root.num == 0 && b.q.num < 0) return undef();
                s = rational_pow_int(root, (long long)b.q.num, &r);
                if (s == RATIONAL_OK) return exact(r);
            }
            /* odd root of a negative base: the real root */
            if (a.q.num < 0 && (b.q.den & 1)) {
                long double m = powl(-a.f, b.f);
                return real((b.q.num & 1) ? -m : m);
            }
        }
    }
    if (a.f == 0 && b.f < 0) return undef();
    return real(powl(a.f, b.f));
}

static math_value eval_root(math_value x, math_value index) {
    long long n;
    if (x.kind == MATH_VAL_UNDEF || index.kind == MATH_VAL_UNDEF) return undef();
    if (exact_int(index, 1, 1000000, &n)) {
        if (x.kind == MATH_VAL_EXACT) {
            rational r;
            rational_status s = rational_root(x.q, n, &r);
            if (s == RATIONAL_OK) return exact(r);
            if (s == RATIONAL_UNDEFINED) return undef();
        }
        if (x.f < 0) {
            if (n % 2 == 0) return undef();
            return real(-powl(-x.f, 1.0L / (long double)n));
        }
        return real(n == 2 ? sqrtl(x.f) : powl(x.f, 1.0L / (long double)n));
    }
    if (index.f == 0) return undef();
    return real(powl(x.f, 1.0L / index.f));
}

/* log_base(x) with an exact answer when x is an integer power of an exact base. */
static math_value eval_log(math_value x, math_value base) {
    if (x.kind == MATH_VAL_UNDEF || base.kind == MATH_VAL_UNDEF) return undef();
    if (x.f <= 0 || base.f <= 0 || base.f == 1) return undef();
    long double l = logl(x.f) / logl(base.f);
    if (x.kind == MATH_VAL_EXACT && base.kind == MATH_VAL_EXACT && isfinite(l)) {
        long double k = roundl(l);
        if (fabsl(k) <= 128 && fabsl(l - k) < 1e-6L) {
            rational r;
            if (rational_pow_int(base.q, (long long)k, &r) == RATIONAL_OK && rational_cmp(r, x.q) == 0)
                return exact(rational_from_int((long long)k));
        }
    }
    return real(l);
}

static math_value eval_func(int fn, math_value x, const math_node *n, const math_env *env) {
    if (x.kind == MATH_VAL_UNDEF) return undef();
    int zero = x.kind == MATH_VAL_EXACT && x.q.num == 0;
    long double f = x.f;
    switch ((math_func)fn) {
    case MATH_FN_SIN: return zero ? x : real(sinl(f));
    case MATH_FN_COS: return zero ? exact(rational_from_int(1)) : real(cosl(f));
    case MATH_FN_TAN: return zero ? x : real(tanl(f));
    case MATH_FN_SEC: { long double c = cosl(f); return c == 0 ? undef() : real(1 / c); }
    case MATH_FN_CSC: { long double s = sinl(f); return s == 0 ? undef() : real(1 / s); }
    case MATH_FN_COT: { long double t = tanl(f); return t == 0 ? undef() : real(1 / t); }
    case MATH_FN_ASIN: return zero ? x : real(asinl(f));
    case MATH_FN_ACOS: return real(acosl(f));
    case MATH_FN_ATAN: return zero ? x : real(atanl(f));
    case MATH_FN_SINH: return zero ? x : real(sinhl(f));
    case MATH_FN_COSH: return zero ? exact(rational_from_int(1)) : real(coshl(f));
    case MATH_FN_TANH: return zero ? x : real(tanhl(f));
    case MATH_FN_EXP: return zero ? exact(rational_from_int(1)) : real(expl(f));
    case MATH_FN_LN:
        if (x.kind == MATH_VAL_EXACT && x.q.num == 1 && x.q.den == 1) return exact(rational_from_int(0));
        return f > 0 ? real(logl(f)) : undef();
    case MATH_FN_LOG: {
        math_value base = n->nchild > 1 ? math_eval(n->child[1], env) : exact(rational_from_int(10));
        return eval_log(x, base);
    }
    }
    return undef();
}

static math_value eval_factorial(math_value x) {
    long long k;
    if (!exact_int(x, 0, 100000, &k)) return undef();
    if (k <= 33) {
        rational_int r = 1;
        for (long long i = 2; i <= k; i++) r *= i;
        rational q = { r, 1 };
        return exact(q);
    }
    return real(tgammal((long double)k + 1));
}

static math_value eval_binom(math_value nv, math_value kv) {
    long long n, k;
    if (!exact_int(nv, 0, 1000000000, &n) || !exact_int(kv, -1000000000, 1000000000, &k)) return undef();
    if (k < 0 || k > n) return exact(rational_from_int(0));
    if (k > n - k) k = n - k;
    if (k <= 200) {
        rational r = rational_from_int(1);
        int ok = 1;
        for (long long i = 0; i < k && ok; i++) {
            rational t;
            ok = rational_mul(r, rational_from_int(n - i), &t) == RATIONAL_OK &&
                 rational_div(t, rational_from_int(i + 1), &r) == RATIONAL_OK;
        }
        if (ok) return exact(r);
    }
    return real(expl(lgammal((long double)n + 1) - lgammal((long double)k + 1) - lgammal((long double)(n - k) + 1)));
}

math_value math_eval(const math_node *n, const math_env *env) {
    math_value a, b;
    switch (n->kind) {
    case MATH_NUM: return n->q_exact ? exact(n->q) : real(n->f);
    case MATH_PI: return real(MATH_PI_L);
    case MATH_E: return real(MATH_E_L);
    case MATH_INF: return real(__builtin_infl());
    case MATH_VAR:
        for (int i = 0; i < env->nvars; i++)
            if (math_name_eq(env->names[i], env->name_lens[i], n->name, n->name_len)) return env->values[i];
        return undef();
    case MATH_NEG:
        a = math_eval(n->child[0], env);
        if (a.kind == MATH_VAL_EXACT) { rational r; rational_neg(a.q, &r); return exact(r); }
        return a.kind == MATH_VAL_REAL ? real(-a.f) : a;
    case MATH_ADD:
    case MATH_SUB:
    case MATH_PM: {
        a = math_eval(n->child[0], env);
        b = math_eval(n->child[1], env);
        int minus = n->kind == MATH_SUB;
        if (n->kind == MATH_PM) {
            minus = (env->pm_mask >> n->pm_index) & 1;
            if (n->op < 0) minus = !minus;
        }
        return minus ? arith(a, b, rational_sub, a.f - b.f) : arith(a, b, rational_add, a.f + b.f);
    }
    case MATH_MUL:
        a = math_eval(n->child[0], env);
        b = math_eval(n->child[1], env);
        /* 0 * inf is undefined in arith's long double path; keep exact zeros exact */
        return arith(a, b, rational_mul, a.f * b.f);
    case MATH_DIV:
        a = math_eval(n->child[0], env);
        b = math_eval(n->child[1], env);
        if (b.kind != MATH_VAL_UNDEF && b.f == 0) return undef();
        return arith(a, b, rational_div, a.f / b.f);
    case MATH_POW:
        return eval_pow(math_eval(n->child[0], env), math_eval(n->child[1], env));
    case MATH_ROOT:
        return eval_root(math_eval(n->child[0], env),
                         n->nchild > 1 ? math_eval(n->child[1], env) : exact(rational_from_int(2)));
    case MATH_FUNC:
        return eval_func(n->op, math_eval(n->child[0], env), n, env);
    case MATH_PERCENT:
        a = math_eval(n->child[0], env);
        return arith(a, exact(rational_from_int(100)), rational_div, a.f / 100);
    case MATH_FACT: return eval_factorial(math_eval(n->child[0], env));
    case MATH_BINOM: return eval_binom(math_eval(n->child[0], env), math_eval(n->child[1], env));
    case MATH_ABS:
        a = math_eval(n->child[0], env);
        if (a.kind == MATH_VAL_EXACT) { if (a.q.num < 0) rational_neg(a.q, &a.q); return exact(a.q); }
        return a.kind == MATH_VAL_REAL ? real(fabsl(a.f)) : a;
    default:
        return undef();
    }
}

int math_collect_vars(const math_node *n, math_env *env) {
    if (n->kind == MATH_VAR) {
        for (int i = 0; i < env->nvars; i++)
            if (math_name_eq(env->names[i], env->name_lens[i], n->name, n->name_len)) return 1;
        if (env->nvars == MATH_MAX_VARS) return 0;
        env->names[env->nvars] = n->name;
        env->name_lens[env->nvars] = n->name_len;
        env->nvars++;
        return 1;
    }
    for (int i = 0; i < n->nchild; i++)
        if (!math_collect_vars(n->child[i], env)) return 0;
    return 1;
}
