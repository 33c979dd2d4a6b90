/* Recursive-descent parser for normalised answers (LaTeX subset and plain text) into
 * the expression tree of math_impl.h. Grammar, loosest binding first:
 *   items    := relation ((',' | ';' | "or" | "and") relation)*
 *   relation := union (relop union)*                    relop: = < > \le \ge \ne \in \approx
 *   union    := sum (\cup sum)*
 *   sum      := term (('+' | '-' | \pm | \mp) term)*
 *   term     := unary (('*' | \cdot | \times | '/' | \div) unary | power)*   (juxtaposition
 *               multiplies: 2x, 2\pi, 2(3))
 *   unary    := ('-' | '+' | \pm) unary | power
 *   power    := postfix ('^' exponent)? postfix-ops      exponent: {..}, a signed number,
 *               a letter or a command primary; right-associative
 *   postfix  := primary ('!' | '%')*
 *   primary  := number | letter | command | ( .. ) | [ .. ] | { .. } | \{ .. \} | |..|
 * Every recursion passes through unary or primary, which count depth against max_depth,
 * so hostile input ends in an error, never a stack overflow. */
#include <stdlib.h>
#include <string.h>

#include "verifiers/math_impl.h"

typedef struct {
    const char *s;
    size_t n, pos;
    int depth, max_depth;
    math_arena *arena;
    const char *err;
    size_t err_pos;
    int pm_count;
} parser;

#define MATH_MAX_PM 8

static math_node *fail(parser *p, const char *msg) {
    if (!p->err) { p->err = msg; p->err_pos = p->pos; }
    return NULL;
}

math_node *math_node_new(math_arena *a, math_kind kind, int nchild) {
    math_node *x = math_arena_alloc(a, sizeof *x);
    if (!x) return NULL;
    x->kind = kind;
    x->nchild = nchild;
    if (nchild > 0) {
        x->child = math_arena_alloc(a, sizeof(math_node *) * (size_t)nchild);
        if (!x->child) return NULL;
    }
    return x;
}

static math_node *node(parser *p, math_kind kind, int nchild) {
    math_node *x = math_node_new(p->arena, kind, nchild);
    if (!x) return fail(p, "expression too large");
    return x;
}

/* Sets x's height from its children; NULL (and an error) when the tree is too tall. */
static math_node *measured(parser *p, math_node *x) {
    int h = 0;
    for (int i = 0; i < x->nchild; i++) if (x->child[i]->height > h) h = x->child[i]->height;
    x->height = h + 1;
    if (x->height > MATH_MAX_HEIGHT) return fail(p, "expression nested too deep");
    return x;
}

static math_node *binary(parser *p, math_kind kind, math_node *a, math_node *b) {
    if (!a || !b) return NULL;
    math_node *x = node(p, kind, 2);
    if (!x) return NULL;
    x->child[0] = a;
    x->child[1] = b;
    return measured(p, x);
}

static math_node *unary_node(parser *p, math_kind kind, math_node *a) {
    if (!a) return NULL;
    math_node *x = node(p, kind, 1);
    if (!x) return NULL;
    x->child[0] = a;
    return measured(p, x);
}

/* ---- growable node vector in the arena ---------------------------------------------- */
typedef struct {
    math_node **v;
    int n, cap;
} nvec;

static int nvec_push(parser *p, nvec *v, math_node *x) {
    if (v->n == v->cap) {
        int nc = v->cap ? 2 * v->cap : 4;
        math_node **nv = math_arena_alloc(p->arena, sizeof *nv * (size_t)nc);
        if (!nv) { fail(p, "expression too large"); return 0; }
        if (v->n) memcpy(nv, v->v, sizeof *nv * (size_t)v->n);
        v->v = nv;
        v->cap = nc;
    }
    v->v[v->n++] = x;
    return 1;
}

static math_node *from_vec(parser *p, math_kind kind, const nvec *v) {
    math_node *x = node(p, kind, v->n);
    if (!x) return NULL;
    for (int i = 0; i < v->n; i++) x->child[i] = v->v[i];
    return measured(p, x);
}

/* ---- lexing helpers ------------------------------------------------------------------ */
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static void skip_ws(parser *p) {
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
                             p->s[p->pos] == '\r'))
        p->pos++;
}

static char peek(parser *p) {
    skip_ws(p);
    return p->pos < p->n ? p->s[p->pos] : 0;
}

static char peek_at(parser *p, size_t k) { return p->pos + k < p->n ? p->s[p->pos + k] : 0; }

/* At "\name" with a word boundary after it? (call after skip_ws) */
static int at_cmd(parser *p, const char *name) {
    size_t k = strlen(name);
    if (p->pos + 1 + k > p->n || p->s[p->pos] != '\\' || memcmp(p->s + p->pos + 1, name, k) != 0) return 0;
    return !(p->pos + 1 + k < p->n && is_alpha(p->s[p->pos + 1 + k]));
}

static int eat_cmd(parser *p, const char *name) {
    skip_ws(p);
    if (!at_cmd(p, name)) return 0;
    p->pos += 1 + strlen(name);
    return 1;
}

/* Length of the letter run at pos. */
static size_t letter_run(parser *p) {
    size_t k = 0;
    while (p->pos + k < p->n && is_alpha(p->s[p->pos + k])) k++;
    return k;
}

static int run_is(parser *p, size_t run, const char *w) {
    return strlen(w) == run && memcmp(p->s + p->pos, w, run) == 0;
}

/* "or" / "and" used as list separators. */
static int at_connector(parser *p) {
    skip_ws(p);
    size_t run = letter_run(p);
    return run_is(p, run, "or") || run_is(p, run, "and");
}

static const char *const greek[] = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "rho", "varrho",
    "sigma", "varsigma", "tau", "upsilon", "phi", "varphi", "chi", "psi", "omega",
    "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Upsilon", "Phi", "Psi", "Omega", NULL
};

static const struct { const char *name; math_func fn; } functions[] = {
    { "sin", MATH_FN_SIN }, { "cos", MATH_FN_COS }, { "tan", MATH_FN_TAN }, { "sec", MATH_FN_SEC },
    { "csc", MATH_FN_CSC }, { "cot", MATH_FN_COT }, { "arcsin", MATH_FN_ASIN },
    { "arccos", MATH_FN_ACOS }, { "arctan", MATH_FN_ATAN }, { "sinh", MATH_FN_SINH },
    { "cosh", MATH_FN_COSH }, { "tanh", MATH_FN_TANH }, { "ln", MATH_FN_LN }, { "log", MATH_FN_LOG },
    { "exp", MATH_FN_EXP }, { NULL, 0 }
};

static int lookup_function(const char *s, size_t len) {
    for (int k = 0; functions[k].name; k++)
        if (strlen(functions[k].name) == len && memcmp(functions[k].name, s, len) == 0) return k;
    return -1;
}

static int lookup_greek(const char *s, size_t len) {
    for (int k = 0; greek[k]; k++)
        if (strlen(greek[k]) == len && memcmp(greek[k], s, len) == 0) return k;
    return -1;
}

/* Command name at pos (after the backslash): letters, or one other character. */
static size_t cmd_len(parser *p) {
    size_t k = 0;
    while (p->pos + 1 + k < p->n && is_alpha(p->s[p->pos + 1 + k])) k++;
    if (k == 0 && p->pos + 1 < p->n) k = 1;
    return k;
}

static int starts_primary(parser *p) {
    char c = peek(p);
    if (is_digit(c) || (c == '.' && is_digit(peek_at(p, 1)))) return 1;
    if (c == '(' || c == '{') return 1;
    if (is_alpha(c)) return !at_connector(p);
    if (c == '\\') {
        size_t k = cmd_len(p);
        const char *name = p->s + p->pos + 1;
        static const char *const starters[] = { "frac", "sqrt", "pi", "infty", "binom", "langle",
                                                "begin", "emptyset", "varnothing", NULL };
        for (int i = 0; starters[i]; i++)
            if (strlen(starters[i]) == k && memcmp(starters[i], name, k) == 0) return 1;
        return lookup_greek(name, k) >= 0 || lookup_function(name, k) >= 0;
    }
    return 0;
}

/* ---- grammar ------------------------------------------------------------------------- */
static math_node *parse_relation(parser *p);
static math_node *parse_sum(parser *p);
static math_node *parse_unary(parser *p);
static math_node *parse_power(parser *p);
static math_node *parse_primary(parser *p);

static int enter(parser *p) {
    if (++p->depth > p->max_depth) { fail(p, "nesting too deep"); return 0; }
    return 1;
}

static int parse_items(parser *p, nvec *out) {
    math_node *x = parse_relation(p);
    if (!x || !nvec_push(p, out, x)) return 0;
    for (;;) {
        char c = peek(p);
        if (c == ',' || c == ';') p->pos++;
        else if (at_connector(p)) p->pos += letter_run(p);
        else return 1;
        if (peek(p) == ',') p->pos++;   /* "2, and 3" */
        x = parse_relation(p);
        if (!x || !nvec_push(p, out, x)) return 0;
    }
}

/* Exactly one item inside a group. */
static math_node *parse_single(parser *p) {
    nvec v = { 0 };
    if (!parse_items(p, &v)) return NULL;
    if (v.n == 1) return v.v[0];
    return from_vec(p, MATH_LIST, &v);
}

static int relop_at(parser *p, int *op, size_t *len) {
    char c = peek(p);
    char d = peek_at(p, 1);
    if (c == '=' ) { *op = MATH_REL_EQ; *len = d == '=' ? 2 : 1; return 1; }
    if (c == '<') { *op = d == '=' ? MATH_REL_LE : MATH_REL_LT; *len = d == '=' ? 2 : 1; return 1; }
    if (c == '>') { *op = d == '=' ? MATH_REL_GE : MATH_REL_GT; *len = d == '=' ? 2 : 1; return 1; }
    if (c == '!' && d == '=') { *op = MATH_REL_NE; *len = 2; return 1; }
    static const struct { const char *name; int op; } cmds[] = {
        { "le", MATH_REL_LE }, { "ge", MATH_REL_GE }, { "ne", MATH_REL_NE }, { "in", MATH_REL_EQ },
        { "approx", MATH_REL_EQ }, { "equiv", MATH_REL_EQ }, { NULL, 0 } };
    for (int k = 0; cmds[k].name; k++)
        if (at_cmd(p, cmds[k].name)) { *op = cmds[k].op; *len = 1 + strlen(cmds[k].name); return 1; }
    return 0;
}

/* A \cup B \cup ...: binds looser than arithmetic, tighter than relations. */
static math_node *parse_union(parser *p) {
    math_node *first = parse_sum(p);
    if (!first || !(skip_ws(p), at_cmd(p, "cup"))) return first;
    nvec v = { 0 };
    if (!nvec_push(p, &v, first)) return NULL;
    while (eat_cmd(p, "cup")) {
        math_node *x = parse_sum(p);
        if (!x || !nvec_push(p, &v, x)) return NULL;
    }
    return from_vec(p, MATH_UNION, &v);
}

static math_node *parse_relation(parser *p) {
    math_node *first = parse_union(p);
    if (!first) return NULL;
    int op;
    size_t len;
    if (!relop_at(p, &op, &len)) return first;
    nvec operands = { 0 };
    unsigned char ops[64];
    int nops = 0;
    if (!nvec_push(p, &operands, first)) return NULL;
    while (relop_at(p, &op, &len)) {
        if (nops == (int)sizeof ops) return fail(p, "relation chain too long");
        p->pos += len;
        ops[nops++] = (unsigned char)op;
        math_node *x = parse_union(p);
        if (!x || !nvec_push(p, &operands, x)) return NULL;
    }
    math_node *r = from_vec(p, MATH_REL, &operands);
    if (!r) return NULL;
    r->ops = math_arena_alloc(p->arena, (size_t)nops);
    if (!r->ops) return fail(p, "expression too large");
    memcpy(r->ops, ops, (size_t)nops);
    return r;
}

static math_node *make_pm(parser *p, math_node *a, math_node *b, int sign) {
    if (p->pm_count >= MATH_MAX_PM) return fail(p, "too many \\pm");
    math_node *x = binary(p, MATH_PM, a, b);
    if (!x) return NULL;
    x->op = sign;
    x->pm_index = p->pm_count++;
    return x;
}

static math_node *parse_term(parser *p);

static math_node *parse_sum(parser *p) {
    math_node *left = parse_term(p);
    while (left) {
        char c = peek(p);
        if (c == '+') { p->pos++; left = binary(p, MATH_ADD, left, parse_term(p)); }
        else if (c == '-') { p->pos++; left = binary(p, MATH_SUB, left, parse_term(p)); }
        else if (eat_cmd(p, "pm")) { math_node *r = parse_term(p); left = r ? make_pm(p, left, r, 1) : NULL; }
        else if (eat_cmd(p, "mp")) { math_node *r = parse_term(p); left = r ? make_pm(p, left, r, -1) : NULL; }
        else break;
    }
    return left;
}

static math_node *parse_term(parser *p) {
    math_node *left = parse_unary(p);
    while (left) {
        char c = peek(p);
        if (c == '*' || eat_cmd(p, "cdot") || eat_cmd(p, "times") || eat_cmd(p, "ast")) {
            if (c == '*') p->pos++;
            left = binary(p, MATH_MUL, left, parse_unary(p));
        } else if (c == '/' || eat_cmd(p, "div")) {
            if (c == '/') p->pos++;
            left = binary(p, MATH_DIV, left, parse_unary(p));
        } else if (starts_primary(p)) {
            left = binary(p, MATH_MUL, left, parse_power(p));
        } else {
            break;
        }
    }
    return left;
}

static math_node *parse_unary(parser *p) {
    if (!enter(p)) return NULL;
    math_node *r;
    char c = peek(p);
    if (c == '-') { p->pos++; r = unary_node(p, MATH_NEG, parse_unary(p)); }
    else if (c == '+') { p->pos++; r = parse_unary(p); }
    else if (eat_cmd(p, "pm") || eat_cmd(p, "mp")) {
        math_node *zero = node(p, MATH_NUM, 0);
        if (zero) { zero->q = rational_from_int(0); zero->q_exact = 1; }
        math_node *operand = parse_unary(p);
        r = zero && operand ? make_pm(p, zero, operand, 1) : NULL;
    } else {
        r = parse_power(p);
    }
    p->depth--;
    return r;
}

/* Exponent after '^': {group}, signed number / letter / command primary; right-assoc. */
static math_node *parse_exponent(parser *p) {
    if (!enter(p)) return NULL;
    math_node *e;
    char c = peek(p);
    if (c == '{') {
        p->pos++;
        e = parse_single(p);
        if (e && peek(p) != '}') e = fail(p, "expected '}' closing an exponent");
        else if (e) p->pos++;
    } else if (c == '-' || c == '+') {
        p->pos++;
        math_node *inner = parse_exponent(p);
        e = c == '-' ? unary_node(p, MATH_NEG, inner) : inner;
        p->depth--;
        return e;
    } else if (is_alpha(c)) {
        /* one letter (x^n) unless it spells a word such as pi */
        size_t run = letter_run(p);
        if (run_is(p, run, "pi") || run_is(p, run, "infty")) e = parse_primary(p);
        else {
            e = node(p, c == 'e' ? MATH_E : MATH_VAR, 0);
            if (e) { e->name = p->s + p->pos; e->name_len = 1; }
            p->pos++;
        }
    } else if (is_digit(c) || c == '.' || c == '\\' || c == '(') {
        e = parse_primary(p);
    } else {
        e = fail(p, "expected an exponent after '^'");
    }
    if (e && peek(p) == '^') {
        p->pos++;
        e = binary(p, MATH_POW, e, parse_exponent(p));
    }
    p->depth--;
    return e;
}

static math_node *parse_postfix_ops(parser *p, math_node *x) {
    while (x) {
        char c = peek(p);
        if (c == '!' && peek_at(p, 1) != '=') { p->pos++; x = unary_node(p, MATH_FACT, x); }
        else if (c == '%') { p->pos++; x = unary_node(p, MATH_PERCENT, x); }
        else break;
    }
    return x;
}

static math_node *parse_power(parser *p) {
    math_node *base = parse_postfix_ops(p, parse_primary(p));
    if (base && peek(p) == '^') {
        p->pos++;
        base = parse_postfix_ops(p, binary(p, MATH_POW, base, parse_exponent(p)));
    }
    return base;
}

static math_node *parse_number(parser *p) {
    size_t used = 0, start = p->pos;
    rational q;
    rational_status st = rational_parse_decimal(p->s + p->pos, p->n - p->pos, &q, &used);
    if (used == 0) return fail(p, "expected a number");
    math_node *x = node(p, MATH_NUM, 0);
    if (!x) return NULL;
    /* digits as written */
    int sig = 0, frac = 0, seen_nonzero = 0, after_point = 0, is_decimal = 0;
    long long exponent = 0;
    for (size_t i = start; i < start + used; i++) {
        char c = p->s[i];
        if (c == '.') { after_point = 1; is_decimal = 1; continue; }
        if (c == 'e' || c == 'E') {
            is_decimal = 1;
            size_t j = i + 1;
            int sign = 1;
            if (p->s[j] == '-' || p->s[j] == '+') { sign = p->s[j] == '-' ? -1 : 1; j++; }
            for (; j < start + used && exponent < 100000; j++) exponent = exponent * 10 + (p->s[j] - '0');
            exponent *= sign;
            break;
        }
        if (c != '0') seen_nonzero = 1;
        if (seen_nonzero) sig++;
        if (after_point) frac++;
    }
    x->is_decimal = is_decimal;
    x->sig_digits = sig;
    x->frac_digits = (int)(frac - exponent);
    if (st == RATIONAL_OK) {
        x->q = q;
        x->q_exact = 1;
        x->f = rational_to_long_double(q);
    } else {
        char buf[128];
        size_t k = used < sizeof buf - 1 ? used : sizeof buf - 1;
        memcpy(buf, p->s + start, k);
        buf[k] = 0;
        x->f = strtold(buf, NULL);
        if (used >= sizeof buf - 1) x->f = __builtin_infl();   /* absurdly long literal */
        x->q_exact = 0;
    }
    p->pos += used;
    return x;
}

/* A variable: letter (or \greek command, name given) plus optional subscript _x / _{..}. */
static math_node *parse_variable(parser *p, size_t name_len) {
    math_node *x = node(p, MATH_VAR, 0);
    if (!x) return NULL;
    size_t start = p->pos;
    p->pos += name_len;
    if (p->pos < p->n && p->s[p->pos] == '_') {
        size_t q = p->pos + 1;
        if (q < p->n && p->s[q] == '{') {
            int depth = 0;
            for (; q < p->n; q++) {
                if (p->s[q] == '{') depth++;
                else if (p->s[q] == '}' && --depth == 0) break;
            }
            if (q >= p->n) return fail(p, "unclosed subscript");
            p->pos = q + 1;
        } else if (q < p->n && (is_alpha(p->s[q]) || is_digit(p->s[q]))) {
            p->pos = q + 1;
        } else {
            return fail(p, "expected a subscript after '_'");
        }
    }
    x->name = p->s + start;
    x->name_len = (int)(p->pos - start);
    return x;
}

/* Argument of \frac, \sqrt, \binom: {group} or a single digit / letter / command. */
static math_node *parse_arg(parser *p) {
    char c = peek(p);
    if (c == '{') {
        p->pos++;
        math_node *x = parse_single(p);
        if (!x) return NULL;
        if (peek(p) != '}') return fail(p, "expected '}' closing an argument");
        p->pos++;
        return x;
    }
    if (is_digit(c)) {
        math_node *x = node(p, MATH_NUM, 0);
        if (!x) return NULL;
        x->q = rational_from_int(c - '0');
        x->q_exact = 1;
        x->f = c - '0';
        x->sig_digits = c != '0';
        p->pos++;
        return x;
    }
    if (is_alpha(c)) {
        if (c == 'e') { p->pos++; return node(p, MATH_E, 0); }
        return parse_variable(p, 1);
    }
    if (c == '\\' || c == '(') return parse_primary(p);
    return fail(p, "expected an argument");
}

/* Function application after its name: optional ^power (^{-1} = inverse), optional
 * _base for log, then (arg), {arg}, or a juxtaposed product such as 2x. */
static math_node *parse_function(parser *p, int fk) {
    math_func fn = functions[fk].fn;
    math_node *power = NULL, *base = NULL;
    if (peek(p) == '^') {
        p->pos++;
        power = parse_exponent(p);
        if (!power) return NULL;
        /* \sin^{-1} is the inverse function */
        if (power->kind == MATH_NEG && power->child[0]->kind == MATH_NUM && power->child[0]->q_exact &&
            rational_cmp(power->child[0]->q, rational_from_int(1)) == 0 && fn <= MATH_FN_TAN) {
            fn = fn == MATH_FN_SIN ? MATH_FN_ASIN : fn == MATH_FN_COS ? MATH_FN_ACOS : MATH_FN_ATAN;
            power = NULL;
        }
    }
    if (fn == MATH_FN_LOG && peek(p) == '_') {
        p->pos++;
        base = parse_arg(p);
        if (!base) return NULL;
    }
    math_node *arg;
    char c = peek(p);
    if (c == '(' || c == '{') {
        arg = parse_primary(p);
    } else {
        arg = parse_power(p);
        while (arg && starts_primary(p) && peek(p) != '\\' && peek(p) != '(') arg = binary(p, MATH_MUL, arg, parse_power(p));
    }
    if (!arg) return NULL;
    math_node *f = node(p, MATH_FUNC, base ? 2 : 1);
    if (!f) return NULL;
    f->op = fn;
    f->child[0] = arg;
    if (base) f->child[1] = base;
    if (!measured(p, f)) return NULL;
    return power ? binary(p, MATH_POW, f, power) : f;
}

static math_node *parse_sqrt(parser *p) {
    math_node *index = NULL;
    if (peek(p) == '[') {
        p->pos++;
        index = parse_single(p);
        if (!index) return NULL;
        if (peek(p) != ']') return fail(p, "expected ']' after a root index");
        p->pos++;
    }
    math_node *rad = peek(p) == '(' ? parse_primary(p) : parse_arg(p);
    if (!rad) return NULL;
    math_node *x = node(p, MATH_ROOT, index ? 2 : 1);
    if (!x) return NULL;
    x->child[0] = rad;
    if (index) x->child[1] = index;
    return measured(p, x);
}

/* ( .. ) [ .. ] ( .. ] [ .. ): grouping, pair, tuple or interval. */
static math_node *parse_bracket(parser *p) {
    char open = p->s[p->pos++];
    nvec v = { 0 };
    if (!parse_items(p, &v)) return NULL;
    char close = peek(p);
    if (close != ')' && close != ']') return fail(p, "expected ')' or ']'");
    p->pos++;
    if (v.n == 1 && open == '(' && close == ')') return v.v[0];
    if (v.n == 1 && open == '[' && close == ']') return v.v[0];
    if (v.n == 2) {
        if (open == '(' && close == ')') return from_vec(p, MATH_PAIR, &v);
        math_node *x = from_vec(p, MATH_INTERVAL, &v);
        if (x) x->op = (open == '(' ? 1 : 0) | (close == ')' ? 2 : 0);
        return x;
    }
    if (!((open == '(' && close == ')') || (open == '[' && close == ']'))) return fail(p, "mismatched brackets");
    return from_vec(p, MATH_TUPLE, &v);
}

/* \begin{pmatrix} a & b \\ c & d \end{pmatrix}: a tuple of row tuples; one row or one
 * column is a plain tuple. */
static math_node *parse_matrix(parser *p) {
    if (peek(p) != '{') return fail(p, "expected '{' after \\begin");
    size_t name_start = p->pos + 1, q = name_start;
    while (q < p->n && p->s[q] != '}') q++;
    if (q >= p->n) return fail(p, "unclosed environment name");
    size_t name_len = q - name_start;
    const char *name = p->s + name_start;
    static const char *const envs[] = { "pmatrix", "bmatrix", "Bmatrix", "vmatrix", "matrix",
                                        "smallmatrix", "array", NULL };
    int ok = 0;
    for (int k = 0; envs[k]; k++) if (strlen(envs[k]) == name_len && memcmp(envs[k], name, name_len) == 0) ok = 1;
    if (!ok) return fail(p, "unsupported environment");
    p->pos = q + 1;
    if (name_len == 5 && peek(p) == '{') {   /* array column spec */
        while (p->pos < p->n && p->s[p->pos] != '}') p->pos++;
        if (p->pos >= p->n) return fail(p, "unclosed array column spec");
        p->pos++;
    }
    nvec rows = { 0 }, row = { 0 };
    for (;;) {
        math_node *cell = parse_sum(p);
        if (!cell || !nvec_push(p, &row, cell)) return NULL;
        char c = peek(p);
        if (c == '&') { p->pos++; continue; }
        int end_row = c == '\\' && peek_at(p, 1) == '\\';
        if (end_row) p->pos += 2;
        int end = eat_cmd(p, "end");
        if (!end_row && !end) return fail(p, "expected '&', '\\\\' or \\end in a matrix");
        math_node *r = row.n == 1 ? row.v[0] : from_vec(p, row.n == 2 ? MATH_PAIR : MATH_TUPLE, &row);
        if (!r || !nvec_push(p, &rows, r)) return NULL;
        row.n = 0;
        row.v = NULL;
        row.cap = 0;
        if (end_row && eat_cmd(p, "end")) end = 1;
        if (end) {
            if (peek(p) != '{') return fail(p, "expected '{' after \\end");
            while (p->pos < p->n && p->s[p->pos] != '}') p->pos++;
            if (p->pos >= p->n) return fail(p, "unclosed \\end");
            p->pos++;
            break;
        }
    }
    if (rows.n == 1) return rows.v[0];
    return from_vec(p, rows.n == 2 ? MATH_PAIR : MATH_TUPLE, &rows);
}

static math_node *parse_command(parser *p) {
    size_t k = cmd_len(p);
    const char *name = p->s + p->pos + 1;
    int fk = lookup_function(name, k);
    if (fk >= 0) { p->pos += 1 + k; return parse_function(p, fk); }
    if (lookup_greek(name, k) >= 0) return parse_variable(p, 1 + k);
    if (k == 1 && name[0] == '{') {
        p->pos += 2;
        nvec v = { 0 };
        skip_ws(p);
        if (!(p->pos + 1 < p->n && p->s[p->pos] == '\\' && p->s[p->pos + 1] == '}'))
            if (!parse_items(p, &v)) return NULL;
        skip_ws(p);
        if (!(p->pos + 1 < p->n && p->s[p->pos] == '\\' && p->s[p->pos + 1] == '}'))
            return fail(p, "expected '\\}' closing a set");
        p->pos += 2;
        return from_vec(p, MATH_SET, &v);
    }
#define IS(w) (k == strlen(w) && memcmp(name, w, k) == 0)
    p->pos += 1 + k;
    if (IS("frac")) {
        math_node *a = parse_arg(p);
        if (!a) return NULL;
        return binary(p, MATH_DIV, a, parse_arg(p));
    }
    if (IS("binom")) {
        math_node *a = parse_arg(p);
        if (!a) return NULL;
        return binary(p, MATH_BINOM, a, parse_arg(p));
    }
    if (IS("sqrt")) return parse_sqrt(p);
    if (IS("pi")) return node(p, MATH_PI, 0);
    if (IS("infty")) return node(p, MATH_INF, 0);
    if (IS("emptyset") || IS("varnothing")) return node(p, MATH_SET, 0);
    if (IS("begin")) return parse_matrix(p);
    if (IS("langle")) {
        nvec v = { 0 };
        if (!parse_items(p, &v)) return NULL;
        if (!eat_cmd(p, "rangle")) return fail(p, "expected \\rangle");
        if (v.n == 1) return v.v[0];
        return from_vec(p, v.n == 2 ? MATH_PAIR : MATH_TUPLE, &v);
    }
#undef IS
    p->pos -= 1 + k;
    return fail(p, "unsupported command");
}

static math_node *parse_word(parser *p) {
    size_t run = letter_run(p);
    int fk = lookup_function(p->s + p->pos, run);
    if (fk >= 0) { p->pos += run; return parse_function(p, fk); }
    if (run_is(p, run, "sqrt")) { p->pos += run; return parse_sqrt(p); }
    if (run_is(p, run, "pi")) { p->pos += run; return node(p, MATH_PI, 0); }
    if (run_is(p, run, "inf") || run_is(p, run, "infty") || run_is(p, run, "infinity")) {
        p->pos += run;
        return node(p, MATH_INF, 0);
    }
    if (p->s[p->pos] == 'e' && peek_at(p, 1) != '_') { p->pos++; return node(p, MATH_E, 0); }
    return parse_variable(p, 1);
}

static math_node *parse_primary(parser *p) {
    if (!enter(p)) return NULL;
    math_node *r;
    char c = peek(p);
    if (is_digit(c) || (c == '.' && is_digit(peek_at(p, 1)))) r = parse_number(p);
    else if (c == '(' || c == '[') r = parse_bracket(p);
    else if (c == '{') {
        p->pos++;
        r = parse_single(p);
        if (r && peek(p) != '}') r = fail(p, "expected '}'");
        else if (r) p->pos++;
    } else if (c == '|') {
        p->pos++;
        r = unary_node(p, MATH_ABS, parse_sum(p));
        if (r && peek(p) != '|') r = fail(p, "expected '|' closing an absolute value");
        else if (r) p->pos++;
    } else if (is_alpha(c)) r = parse_word(p);
    else if (c == '\\') r = parse_command(p);
    else if (c == 0) r = fail(p, "unexpected end of answer");
    else r = fail(p, "unexpected character");
    p->depth--;
    return r;
}

math_node *math_parse(const char *s, size_t n, int max_depth, math_arena *arena, const char **err,
                      size_t *err_pos, int *pm_count) {
    parser p = { s, n, 0, 0, max_depth > 0 ? max_depth : 100, arena, NULL, 0, 0 };
    nvec v = { 0 };
    math_node *r = NULL;
    if (peek(&p) == 0) fail(&p, "empty answer");
    else if (parse_items(&p, &v)) {
        if (peek(&p) != 0) fail(&p, "unexpected character after the answer");
        else r = v.n == 1 ? v.v[0] : from_vec(&p, MATH_LIST, &v);
    }
    if (!r && !p.err) fail(&p, "expression too large");
    *err = p.err;
    *err_pos = p.err_pos;
    *pm_count = p.pm_count;
    return r;
}
