/* Equivalence of two parsed answers and the public entry points of the math verifier.
 * The comparison rules (structures, relations, percent, decimal rounding, tolerances,
 * random points) are the policy written in verifiers/math.h. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "verifiers/math_impl.h"

/* Pairs of elements beyond which set comparison degrades to positional matching. */
#define MATH_MAX_SET_PAIRS 65536
/* \pm nodes one scalar may expand (2^k variants). */
#define MATH_MAX_PM_EXPAND 6
/* Absolute floor of the tolerance (cancellation in long double near zero). */
#define MATH_ABS_TOL 1e-15L

void verify_math_options_default(verify_math_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->last_number_fallback = 0;
    opt->bare_max_len = 64;
    opt->rel_tol = 1e-9;
    opt->min_sig_digits = 6;
    opt->num_points = 6;
    opt->seed = 0x6d617468;
    opt->max_depth = 100;
    opt->max_answer_len = 4096;
}

const char *verify_math_status_name(verify_math_status s) {
    switch (s) {
    case VERIFY_MATH_OK: return "ok";
    case VERIFY_MATH_NO_ANSWER: return "no_answer";
    case VERIFY_MATH_GOLD_UNPARSEABLE: return "gold_unparseable";
    }
    return "unknown";
}

const char *verify_math_rule_name(verify_math_rule r) {
    switch (r) {
    case VERIFY_MATH_RULE_NONE: return "none";
    case VERIFY_MATH_RULE_BOXED: return "boxed";
    case VERIFY_MATH_RULE_ANSWER_TAG: return "answer_tag";
    case VERIFY_MATH_RULE_ANSWER_PHRASE: return "answer_phrase";
    case VERIFY_MATH_RULE_FINAL_ANSWER: return "final_answer";
    case VERIFY_MATH_RULE_WHOLE: return "whole";
    case VERIFY_MATH_RULE_LAST_NUMBER: return "last_number";
    }
    return "unknown";
}

typedef struct {
    const verify_math_options *opt;
    math_arena *arena;
} cmp_ctx;

static int nodes_equal(cmp_ctx *c, const math_node *g, const math_node *p);

/* ---- values ---------------------------------------------------------------------------- */
/* Places after the point of a decimal literal that may use the rounding rule (at least
 * min_sig_digits significant digits); INT_MIN when the rule does not apply. */
static int rounding_places(const cmp_ctx *c, const math_node *n) {
    while (n->kind == MATH_NEG) n = n->child[0];
    if (n->kind != MATH_NUM || !n->is_decimal || c->opt->min_sig_digits <= 0) return INT_MIN;
    if (n->sig_digits < c->opt->min_sig_digits) return INT_MIN;
    return n->frac_digits;
}

static int within_rounding(long double exact_side, long double decimal_side, int places) {
    if (places == INT_MIN || !isfinite(exact_side) || !isfinite(decimal_side)) return 0;
    long double half_ulp = 0.5L * powl(10.0L, -(long double)places);
    return fabsl(exact_side - decimal_side) <= half_ulp * (1 + 1e-12L);
}

static int values_equal(const cmp_ctx *c, math_value a, math_value b, int places_a, int places_b) {
    if (a.kind == MATH_VAL_UNDEF || b.kind == MATH_VAL_UNDEF) return 0;
    if (a.kind == MATH_VAL_EXACT && b.kind == MATH_VAL_EXACT && rational_cmp(a.q, b.q) == 0) return 1;
    if (isinf(a.f) || isinf(b.f)) return a.f == b.f;
    if (within_rounding(a.f, b.f, places_b) || within_rounding(b.f, a.f, places_a)) return 1;
    if (a.kind == MATH_VAL_EXACT && b.kind == MATH_VAL_EXACT) return 0;
    long double scale = fabsl(a.f) > fabsl(b.f) ? fabsl(a.f) : fabsl(b.f);
    return fabsl(a.f - b.f) <= (long double)c->opt->rel_tol * scale + MATH_ABS_TOL;
}

static math_value scaled(math_value v, int percent) {
    if (!percent || v.kind == MATH_VAL_UNDEF) return v;
    if (v.kind == MATH_VAL_EXACT) {
        rational r;
        if (rational_div(v.q, rational_from_int(100), &r) == RATIONAL_OK) {
            v.q = r;
            v.f = rational_to_long_double(r);
            return v;
        }
        v.kind = MATH_VAL_REAL;
    }
    v.f /= 100;
    return v;
}

/* Variable `index` at point `t`: a rational in (0, 10] with a denominator in [20, 120],
 * drawn from Philox (core/rng.h) so that runs are reproducible. */
static math_value point_value(uint64_t seed, int index, int t) {
    uint32_t u = rng_u32(seed, (uint64_t)index + 1, (uint64_t)t);
    long long num = 1 + (long long)(u % 1000u), den = 20 + (long long)((u >> 10) % 101u);
    rational q;
    rational_make(num, den, &q);
    math_value v = { MATH_VAL_EXACT, q, rational_to_long_double(q) };
    return v;
}

/* Scalar equality under \pm masks; percent at the root tried both as /100 and plain. */
static int scalar_equal(cmp_ctx *c, const math_node *g, uint32_t gmask, const math_node *p, uint32_t pmask) {
    int gp = g->kind == MATH_PERCENT, pp = p->kind == MATH_PERCENT;
    const math_node *gg = gp ? g->child[0] : g, *pg = pp ? p->child[0] : p;
    /* both sides see the union of their variables: "2n+1" vs "2k+1" differ at the
     * points, "\sin^2 x + \cos^2 x" vs "1" agree */
    math_env vars = { 0 };
    if (!math_collect_vars(gg, &vars) || !math_collect_vars(pg, &vars)) return 0;
    int gplaces = rounding_places(c, gg), pplaces = rounding_places(c, pg);
    /* percent options: both percent -> compare plain; one percent -> /100 or plain */
    int options = (gp != pp) ? 2 : 1;
    for (int opt_i = 0; opt_i < options; opt_i++) {
        int gscale = gp && !pp && opt_i == 0, pscale = pp && !gp && opt_i == 0;
        int gpl = gplaces == INT_MIN ? INT_MIN : gplaces + 2 * gscale;
        int ppl = pplaces == INT_MIN ? INT_MIN : pplaces + 2 * pscale;
        int points = vars.nvars ? (c->opt->num_points > 0 ? c->opt->num_points : 1) : 1;
        int agreed = 0, failed = 0;
        for (int t = 0; t < points && !failed; t++) {
            math_env env = vars;
            for (int v = 0; v < env.nvars; v++) env.values[v] = point_value(c->opt->seed, v, t);
            math_env envp = env;
            env.pm_mask = gmask;
            envp.pm_mask = pmask;
            math_value a = scaled(math_eval(gg, &env), gscale);
            math_value b = scaled(math_eval(pg, &envp), pscale);
            if (a.kind == MATH_VAL_UNDEF && b.kind == MATH_VAL_UNDEF) continue;
            if (values_equal(c, a, b, gpl, ppl)) agreed++;
            else failed = 1;
        }
        if (!failed && agreed > 0) return 1;
    }
    return 0;
}

/* ---- \pm expansion and order-free collections ---------------------------------------- */
typedef struct {
    const math_node *n;
    uint32_t mask;
    int expanded;    /* 1: a \pm variant, compared as a scalar under `mask` */
} elem;

static void pm_indices(const math_node *n, uint32_t *bits) {
    if (n->kind == MATH_PM) *bits |= 1u << n->pm_index;
    for (int i = 0; i < n->nchild; i++) pm_indices(n->child[i], bits);
}

static int is_scalar(const math_node *n) {
    switch (n->kind) {
    case MATH_PAIR: case MATH_TUPLE: case MATH_INTERVAL: case MATH_SET: case MATH_LIST:
    case MATH_UNION: case MATH_REL: case MATH_TEXT:
        return 0;
    default:
        return 1;
    }
}

/* Appends n's elements (a scalar with \pm becomes its 2^k variants). Returns 0 when too
 * many or out of arena. */
static int push_elems(cmp_ctx *c, const math_node *n, elem **v, int *count, int *cap) {
    uint32_t bits = 0;
    if (is_scalar(n)) pm_indices(n, &bits);
    int k = __builtin_popcount(bits);
    if (k > MATH_MAX_PM_EXPAND) return 0;
    int variants = 1 << k;
    if (*count + variants > *cap) {
        int nc = (*cap ? *cap * 2 : 8);
        while (nc < *count + variants) nc *= 2;
        elem *nv = math_arena_alloc(c->arena, sizeof *nv * (size_t)nc);
        if (!nv) return 0;
        if (*count) memcpy(nv, *v, sizeof *nv * (size_t)*count);
        *v = nv;
        *cap = nc;
    }
    for (int m = 0; m < variants; m++) {
        uint32_t mask = 0;
        int bit = 0;
        for (int i = 0; i < 32; i++)
            if (bits >> i & 1) { if (m >> bit & 1) mask |= 1u << i; bit++; }
        (*v)[(*count)++] = (elem){ n, mask, k > 0 };
    }
    return 1;
}

static int collect(cmp_ctx *c, const math_node *n, elem **v, int *count) {
    int cap = 0;
    *count = 0;
    *v = NULL;
    if (n->kind == MATH_SET || n->kind == MATH_LIST || n->kind == MATH_UNION) {
        for (int i = 0; i < n->nchild; i++)
            if (!push_elems(c, n->child[i], v, count, &cap)) return 0;
        return 1;
    }
    return push_elems(c, n, v, count, &cap);
}

static int elems_equal(cmp_ctx *c, elem a, elem b) {
    if (a.expanded || b.expanded) {
        if (!is_scalar(a.n) || !is_scalar(b.n)) return 0;
        return scalar_equal(c, a.n, a.mask, b.n, b.mask);
    }
    return nodes_equal(c, a.n, b.n);
}

/* Set equality: every element of each side equals some element of the other. */
static int collections_match(cmp_ctx *c, const math_node *g, const math_node *p) {
    elem *ge, *pe;
    int gn, pn;
    if (!collect(c, g, &ge, &gn) || !collect(c, p, &pe, &pn)) return 0;
    if (gn == 0 || pn == 0) return gn == pn;
    if ((long long)gn * pn > MATH_MAX_SET_PAIRS) {
        if (gn != pn) return 0;
        for (int i = 0; i < gn; i++) if (!elems_equal(c, ge[i], pe[i])) return 0;
        return 1;
    }
    for (int i = 0; i < gn; i++) {
        int found = 0;
        for (int j = 0; j < pn && !found; j++) found = elems_equal(c, ge[i], pe[j]);
        if (!found) return 0;
    }
    for (int j = 0; j < pn; j++) {
        int found = 0;
        for (int i = 0; i < gn && !found; i++) found = elems_equal(c, ge[i], pe[j]);
        if (!found) return 0;
    }
    return 1;
}

static int collections_equal(cmp_ctx *c, const math_node *g, const math_node *p) {
    math_arena_mark m = math_arena_save(c->arena);
    int r = collections_match(c, g, p);
    math_arena_restore(c->arena, m);
    return r;
}

/* ---- relations ------------------------------------------------------------------------- */
static int flip_op(int op) {
    switch (op) {
    case MATH_REL_LT: return MATH_REL_GT;
    case MATH_REL_GT: return MATH_REL_LT;
    case MATH_REL_LE: return MATH_REL_GE;
    case MATH_REL_GE: return MATH_REL_LE;
    default: return op;
    }
}

static int all_eq(const math_node *r) {
    for (int i = 0; i + 1 < r->nchild; i++) if (r->ops[i] != MATH_REL_EQ) return 0;
    return 1;
}

/* A left-hand side made only of variables (x, f(x) read as f*x, x_1): an assignment. */
static int symbols_only(const math_node *n) {
    if (n->kind == MATH_VAR) return 1;
    if (n->kind == MATH_MUL) return symbols_only(n->child[0]) && symbols_only(n->child[1]);
    return 0;
}

static math_node *sub_node(cmp_ctx *c, const math_node *a, const math_node *b) {
    math_node *x = math_node_new(c->arena, MATH_SUB, 2);
    if (!x) return NULL;
    x->child[0] = (math_node *)a;
    x->child[1] = (math_node *)b;
    return x;
}

/* lhs - rhs of g and p are nonzero constant multiples: ratio sign returned in *sign. */
static int proportional(cmp_ctx *c, const math_node *g, const math_node *p, int *sign) {
    math_node *dg = sub_node(c, g->child[0], g->child[1]), *dp = sub_node(c, p->child[0], p->child[1]);
    if (!dg || !dp) return 0;
    math_env vars = { 0 };
    if (!math_collect_vars(dg, &vars) || !math_collect_vars(dp, &vars)) return 0;
    int points = c->opt->num_points > 2 ? c->opt->num_points : 2;
    math_value ratio0 = { MATH_VAL_UNDEF, { 0, 1 }, 0 };
    int nonzero = 0;
    for (int t = 0; t < points; t++) {
        math_env env = vars;
        for (int v = 0; v < env.nvars; v++) env.values[v] = point_value(c->opt->seed, v, t);
        math_env envp = env;
        math_value a = math_eval(dg, &env), b = math_eval(dp, &envp);
        if (a.kind == MATH_VAL_UNDEF && b.kind == MATH_VAL_UNDEF) continue;
        if (a.kind == MATH_VAL_UNDEF || b.kind == MATH_VAL_UNDEF) return 0;
        math_value zero = { MATH_VAL_EXACT, { 0, 1 }, 0 };
        int az = values_equal(c, a, zero, INT_MIN, INT_MIN), bz = values_equal(c, b, zero, INT_MIN, INT_MIN);
        if (az != bz) return 0;
        if (az) continue;
        math_value r;
        if (a.kind == MATH_VAL_EXACT && b.kind == MATH_VAL_EXACT && rational_div(a.q, b.q, &r.q) == RATIONAL_OK) {
            r.kind = MATH_VAL_EXACT;
            r.f = rational_to_long_double(r.q);
        } else {
            r.kind = MATH_VAL_REAL;
            r.f = a.f / b.f;
        }
        if (nonzero == 0) ratio0 = r;
        else if (!values_equal(c, ratio0, r, INT_MIN, INT_MIN)) return 0;
        nonzero++;
    }
    if (nonzero < 2 && vars.nvars > 0) return 0;
    if (nonzero == 0) return 0;
    *sign = ratio0.f > 0 ? 1 : -1;
    return 1;
}

static int relations_match(cmp_ctx *c, const math_node *g, const math_node *p) {
    if (g->nchild != p->nchild) return 0;
    int nops = g->nchild - 1;
    if (nops == 1) {
        math_env vars = { 0 };
        if (!math_collect_vars(g, &vars) || !math_collect_vars(p, &vars)) return 0;
        int gop = g->ops[0], pop = p->ops[0];
        if (vars.nvars > 0) {
            int sign;
            if (!proportional(c, g, p, &sign)) return 0;
            if (gop == pop) return gop == MATH_REL_EQ || gop == MATH_REL_NE || sign > 0;
            return pop == flip_op(gop) && sign < 0;
        }
        if (gop == pop && nodes_equal(c, g->child[0], p->child[0]) && nodes_equal(c, g->child[1], p->child[1]))
            return 1;
        return pop == flip_op(gop) && nodes_equal(c, g->child[0], p->child[1]) &&
               nodes_equal(c, g->child[1], p->child[0]);
    }
    int same = 1, reversed = 1;
    for (int i = 0; i < nops; i++) {
        same = same && g->ops[i] == p->ops[i];
        reversed = reversed && g->ops[i] == flip_op(p->ops[nops - 1 - i]);
    }
    if (same) {
        int ok = 1;
        for (int i = 0; i <= nops && ok; i++) ok = nodes_equal(c, g->child[i], p->child[i]);
        if (ok) return 1;
    }
    if (reversed) {
        int ok = 1;
        for (int i = 0; i <= nops && ok; i++) ok = nodes_equal(c, g->child[i], p->child[nops - i]);
        if (ok) return 1;
    }
    return 0;
}

static int relations_equal(cmp_ctx *c, const math_node *g, const math_node *p) {
    math_arena_mark m = math_arena_save(c->arena);
    int r = relations_match(c, g, p);
    math_arena_restore(c->arena, m);
    return r;
}

/* A one-variable inequality (x > a, a <= x < b) as an interval node; NULL otherwise. */
static math_node *relation_to_interval(cmp_ctx *c, const math_node *r) {
    int nops = r->nchild - 1;
    math_node *lo = NULL, *hi = NULL;
    int left_open = 1, right_open = 1;
    math_env env = { 0 };
    math_node *inf = math_node_new(c->arena, MATH_INF, 0), *ninf = math_node_new(c->arena, MATH_NEG, 1);
    if (!inf || !ninf) return NULL;
    ninf->child[0] = inf;
    if (nops == 1) {
        int op = r->ops[0];
        const math_node *a = r->child[0], *b = r->child[1];
        if (b->kind == MATH_VAR && a->kind != MATH_VAR) { const math_node *t = a; a = b; b = t; op = flip_op(op); }
        if (a->kind != MATH_VAR || !math_collect_vars(b, &env) || env.nvars) return NULL;
        if (op == MATH_REL_LT || op == MATH_REL_LE) { lo = ninf; hi = (math_node *)b; right_open = op == MATH_REL_LT; }
        else if (op == MATH_REL_GT || op == MATH_REL_GE) { lo = (math_node *)b; hi = inf; left_open = op == MATH_REL_GT; }
        else return NULL;
    } else if (nops == 2 && r->child[1]->kind == MATH_VAR) {
        int o1 = r->ops[0], o2 = r->ops[1];
        const math_node *a = r->child[0], *b = r->child[2];
        if (!math_collect_vars(a, &env) || !math_collect_vars(b, &env) || env.nvars) return NULL;
        int up1 = o1 == MATH_REL_LT || o1 == MATH_REL_LE, up2 = o2 == MATH_REL_LT || o2 == MATH_REL_LE;
        int dn1 = o1 == MATH_REL_GT || o1 == MATH_REL_GE, dn2 = o2 == MATH_REL_GT || o2 == MATH_REL_GE;
        if (up1 && up2) {
            lo = (math_node *)a; hi = (math_node *)b;
            left_open = o1 == MATH_REL_LT; right_open = o2 == MATH_REL_LT;
        } else if (dn1 && dn2) {
            lo = (math_node *)b; hi = (math_node *)a;
            left_open = o2 == MATH_REL_GT; right_open = o1 == MATH_REL_GT;
        } else {
            return NULL;
        }
    } else {
        return NULL;
    }
    math_node *iv = math_node_new(c->arena, MATH_INTERVAL, 2);
    if (!iv) return NULL;
    iv->child[0] = lo;
    iv->child[1] = hi;
    iv->op = (left_open ? 1 : 0) | (right_open ? 2 : 0);
    return iv;
}

static int is_set_like(const math_node *n) {
    return n->kind == MATH_INTERVAL || n->kind == MATH_PAIR || n->kind == MATH_UNION;
}

/* ---- structural comparison ------------------------------------------------------------ */
static int nodes_equal(cmp_ctx *c, const math_node *g, const math_node *p) {
    /* equations and relations against bare values */
    if (g->kind == MATH_REL && p->kind != MATH_REL) {
        if (all_eq(g) && symbols_only(g->child[0])) return nodes_equal(c, g->child[g->nchild - 1], p);
        if (is_set_like(p)) {
            math_arena_mark m = math_arena_save(c->arena);
            math_node *iv = relation_to_interval(c, g);
            int r = iv && nodes_equal(c, iv, p);
            math_arena_restore(c->arena, m);
            return r;
        }
        return 0;
    }
    if (p->kind == MATH_REL && g->kind != MATH_REL) {
        if (all_eq(p)) return nodes_equal(c, g, p->child[p->nchild - 1]);
        if (is_set_like(g)) {
            math_arena_mark m = math_arena_save(c->arena);
            math_node *iv = relation_to_interval(c, p);
            int r = iv && nodes_equal(c, g, iv);
            math_arena_restore(c->arena, m);
            return r;
        }
        return 0;
    }
    if (g->kind == MATH_REL) return relations_equal(c, g, p);

    /* order-free collections, \pm variants */
    uint32_t gbits = 0, pbits = 0;
    if (is_scalar(g)) pm_indices(g, &gbits);
    if (is_scalar(p)) pm_indices(p, &pbits);
    int gcoll = g->kind == MATH_SET || g->kind == MATH_LIST || gbits;
    int pcoll = p->kind == MATH_SET || p->kind == MATH_LIST || pbits;
    if (gcoll || pcoll) {
        if ((gcoll || is_scalar(g)) && (pcoll || is_scalar(p))) return collections_equal(c, g, p);
        return 0;
    }
    if (g->kind == MATH_UNION || p->kind == MATH_UNION)
        return g->kind == p->kind && collections_equal(c, g, p);

    /* ordered structures */
    if (g->kind == MATH_PAIR || g->kind == MATH_TUPLE || g->kind == MATH_INTERVAL ||
        p->kind == MATH_PAIR || p->kind == MATH_TUPLE || p->kind == MATH_INTERVAL) {
        int gk = g->kind, pk = p->kind;
        if (gk == MATH_INTERVAL && pk == MATH_PAIR && g->op != 3) return 0;
        if (pk == MATH_INTERVAL && gk == MATH_PAIR && p->op != 3) return 0;
        if (gk == MATH_INTERVAL && pk == MATH_INTERVAL && g->op != p->op) return 0;
        int gok = gk == MATH_PAIR || gk == MATH_TUPLE || gk == MATH_INTERVAL;
        int pok = pk == MATH_PAIR || pk == MATH_TUPLE || pk == MATH_INTERVAL;
        if (!gok || !pok) return 0;
        if ((gk == MATH_TUPLE) != (pk == MATH_TUPLE) && !(g->nchild == 2 && p->nchild == 2 &&
                                                          gk != MATH_INTERVAL && pk != MATH_INTERVAL))
            return 0;
        if (g->nchild != p->nchild) return 0;
        for (int i = 0; i < g->nchild; i++)
            if (!nodes_equal(c, g->child[i], p->child[i])) return 0;
        return 1;
    }
    if (g->kind == MATH_TEXT || p->kind == MATH_TEXT) return 0;
    return scalar_equal(c, g, 0, p, 0);
}

/* ---- text and multiple-choice answers -------------------------------------------------- */
static int is_alpha(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }
static char lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch; }

static const char *const math_words[] = { "pi", "sqrt", "sin", "cos", "tan", "sec", "csc", "cot", "ln",
                                          "log", "exp", "inf", "infty", "infinity", NULL };

/* Only letters, spaces, hyphens and apostrophes, with a word of 3+ letters that is not a
 * function or constant name (or the word "no", or any word when the answer was written
 * in \text{..}): compared as text. "xy" stays a product. */
static int is_text_answer(const char *s, size_t n, int was_text) {
    int has_word = 0;
    size_t i = 0;
    while (i < n) {
        if (is_alpha(s[i])) {
            size_t j = i;
            while (j < n && is_alpha(s[j])) j++;
            if (j - i >= 3 || (j - i == 2 && (was_text || (lower(s[i]) == 'n' && lower(s[i + 1]) == 'o')))) {
                int known = 0;
                for (int k = 0; math_words[k]; k++)
                    if (strlen(math_words[k]) == j - i && memcmp(math_words[k], s + i, j - i) == 0) known = 1;
                if (!known) has_word = 1;
            }
            i = j;
        } else if (s[i] == ' ' || s[i] == '-' || s[i] == '\'') {
            i++;
        } else {
            return 0;
        }
    }
    return has_word;
}

static int text_equal(const char *a, size_t an, const char *b, size_t bn) {
    size_t i = 0, j = 0;
    for (;;) {
        while (i < an && !is_alpha(a[i])) i++;
        while (j < bn && !is_alpha(b[j])) j++;
        if (i == an || j == bn) return i == an && j == bn;
        if (lower(a[i]) != lower(b[j])) return 0;
        i++;
        j++;
    }
}

/* "B" or "(B)": the letter; 0 otherwise. */
static char choice_letter(const char *s, size_t n) {
    if (n == 1 && s[0] >= 'A' && s[0] <= 'Z') return s[0];
    if (n == 3 && s[0] == '(' && s[2] == ')' && s[1] >= 'A' && s[1] <= 'Z') return s[1];
    return 0;
}

/* The leading choice of a prediction: "(B)", "B)", "B.", "B:" followed by anything, or
 * a lone "B". */
static char leading_choice(const char *s, size_t n) {
    size_t i = 0;
    int paren = 0;
    if (i < n && s[i] == '(') { paren = 1; i++; }
    if (i >= n || !(s[i] >= 'A' && s[i] <= 'Z')) return 0;
    char letter = s[i++];
    if (i == n) return paren ? 0 : letter;
    if (s[i] == ')') return letter;
    if (!paren && (s[i] == '.' || s[i] == ':') && (i + 1 == n || s[i + 1] == ' ')) return letter;
    return 0;
}

/* ---- entry points ----------------------------------------------------------------------- */
typedef struct {
    char *text;          /* normalised */
    size_t len;
    math_node *root;     /* NULL for text / choice answers or on a parse error */
    int is_text;
    char choice;
    const char *err;
    size_t err_pos;
} prepared;

static void prepare(cmp_ctx *c, const char *s, size_t n, int allow_choice, prepared *out) {
    memset(out, 0, sizeof *out);
    size_t cap = MATH_NORM_CAP(n);
    out->text = math_arena_alloc(c->arena, cap);
    char *tmp = math_arena_alloc(c->arena, cap);
    if (!out->text || !tmp) { out->err = "answer too long"; return; }
    out->len = math_normalize_into(s, n, out->text, tmp);
    if (allow_choice && (out->choice = choice_letter(out->text, out->len))) return;
    if (is_text_answer(out->text, out->len, n >= 5 && memmem(s, n, "\\text", 5) != NULL)) {
        out->is_text = 1;
        return;
    }
    int pm_count;
    out->root = math_parse(out->text, out->len, c->opt->max_depth, c->arena, &out->err, &out->err_pos, &pm_count);
}

/* First scratch block for answers of these lengths: normalisation buffers plus about
 * 300 bytes of tree per character; more blocks are added when that runs out. */
static size_t arena_bytes(size_t gn, size_t pn) {
    return 2 * (MATH_NORM_CAP(gn) + MATH_NORM_CAP(pn)) + 300 * (gn + pn) + 8192;
}

/* 1 equal, 0 not, -1 gold unparseable (message recorded). */
static int equal_spans(const char *g, size_t gn, const char *p, size_t pn, const verify_math_options *opt,
                       int have_pred) {
    if (gn > opt->max_answer_len) {
        grpo_fail(GRPO_ERR_PARSE, "gold answer: %zu bytes, longer than max_answer_len %zu", gn, opt->max_answer_len);
        return -1;
    }
    int pred_ok = have_pred && pn <= opt->max_answer_len;
    math_arena arena;
    math_arena_init(&arena, arena_bytes(gn, pred_ok ? pn : 0));
    cmp_ctx c = { opt, &arena };
    prepared gp, pp;
    prepare(&c, g, gn, 1, &gp);
    int result = 0;
    if (!gp.root && !gp.is_text && !gp.choice) {
        grpo_fail(GRPO_ERR_PARSE, "gold answer \"%.*s\": %s at offset %zu of \"%s\"", (int)(gn > 200 ? 200 : gn), g,
                  gp.err ? gp.err : "cannot parse", gp.err_pos, gp.text ? gp.text : "");
        result = -1;
    } else if (pred_ok) {
        prepare(&c, p, pn, 0, &pp);
        if (gp.choice) {
            result = leading_choice(pp.text, pp.len) == gp.choice;
        } else if (gp.is_text) {
            result = pp.is_text && text_equal(gp.text, gp.len, pp.text, pp.len);
        } else if (pp.root) {
            result = nodes_equal(&c, gp.root, pp.root);
        }
    }
    math_arena_release(&arena);
    return result;
}

int verify_math_equal_opts(const char *gold, const char *pred, const verify_math_options *opt) {
    verify_math_options defaults;
    if (!opt) { verify_math_options_default(&defaults); opt = &defaults; }
    if (!gold) { grpo_fail(GRPO_ERR_INVALID, "verify_math_equal: gold is NULL"); return -1; }
    return equal_spans(gold, strlen(gold), pred ? pred : "", pred ? strlen(pred) : 0, opt, pred != NULL);
}

int verify_math_equal(const char *gold, const char *pred) { return verify_math_equal_opts(gold, pred, NULL); }

grpo_status verify_math_check_parse(const char *answer, const verify_math_options *opt) {
    if (!answer) return grpo_fail(GRPO_ERR_INVALID, "verify_math_check_parse: answer is NULL");
    int r = verify_math_equal_opts(answer, NULL, opt);
    return r < 0 ? GRPO_ERR_PARSE : GRPO_OK;
}

grpo_status verify_math(const char *gold, const char *response, const verify_math_options *opt,
                        verify_math_result *out) {
    if (!out) return grpo_fail(GRPO_ERR_INVALID, "verify_math: out is NULL");
    memset(out, 0, sizeof *out);
    if (!gold || !response) return grpo_fail(GRPO_ERR_INVALID, "verify_math: gold or response is NULL");
    verify_math_options defaults;
    if (!opt) { verify_math_options_default(&defaults); opt = &defaults; }
    size_t ga, gn, pa = 0, pn = 0;
    math_extract_gold(gold, strlen(gold), &ga, &gn);
    out->rule = verify_math_extract(response, strlen(response), opt, &pa, &pn);
    if (out->rule != VERIFY_MATH_RULE_NONE) {
        size_t k = pn < VERIFY_MATH_EXTRACTED_CAP - 1 ? pn : VERIFY_MATH_EXTRACTED_CAP - 1;
        memcpy(out->extracted, response + pa, k);
        out->extracted[k] = 0;
        out->extracted_truncated = k < pn;
    }
    int r = equal_spans(gold + ga, gn, response + pa, pn, opt, out->rule != VERIFY_MATH_RULE_NONE);
    if (r < 0) {
        out->status = VERIFY_MATH_GOLD_UNPARSEABLE;
        return GRPO_ERR_PARSE;
    }
    out->status = out->rule == VERIFY_MATH_RULE_NONE ? VERIFY_MATH_NO_ANSWER : VERIFY_MATH_OK;
    out->correct = out->status == VERIFY_MATH_OK && r == 1;
    return GRPO_OK;
}
