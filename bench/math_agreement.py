"""Agreement of our math verifier (`grpo verify math`) with Hugging Face Math-Verify on
realistic R1-style responses, and the speed of each on one core.

  pip install math-verify                       # into the reference venv (scripts/pyref.sh)
  $(scripts/pyref.sh) bench/math_agreement.py --grpo build/grpo [--n 3000] [--seed 1]

The hand-written table tests/fixtures/math_cases.jsonl probes hard corners (where
Math-Verify itself is wrong on a few dozen cases); this script instead generates N
(gold, response) pairs deterministically from --seed, the kind a policy writes during RL:
<think>..</think> reasoning with intermediate numbers, then the answer in one of several
shapes (\\boxed inside <answer>, "The answer is $\\boxed{..}$", bare <answer>X</answer>,
inline $X$, display \\[\\boxed{..}\\], or no answer tag and a final \\boxed). Golds are
integers, fractions, decimals, negative numbers and simple expressions (a\\sqrt{b}, k\\pi,
ax+b); each response is either correct, in the gold's form or another one (3/4 for
\\frac{3}{4}, 0.75, \\frac{6}{8}, \\sqrt{12} for 2\\sqrt{3}, 3+2x for 2x+3, 1{,}234, x = 5),
or wrong (off by one, wrong sign, another fraction, the reciprocal, a rounded decimal).
Each case carries the label its construction implies.

Math-Verify is run two ways on the same cases: "default" (parse() with its default
extraction for gold and response, verify() with float_rounding=6) and "open-r1" (the
extraction open-r1's accuracy_reward uses for responses: LaTeX only, boxed_match_priority=0,
try_extract_without_anchor=False, equations=True, first_match). A bare gold is wrapped in
$...$ as Math-Verify's documentation does. Ours: one `grpo verify math` process reading
all cases (repeated --repeats times for the timing). Speeds are verifications per second
of one process on one core (ours is single-threaded; the script pins both to one CPU when
it can), by wall clock and by CPU time (the steadier figure on a shared machine). --write-cases FILE saves the generated cases as JSONL.
"""
import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from fractions import Fraction

# ---- generating cases ----------------------------------------------------------------


def latex_frac(f, cmd="\\frac"):
    sign = "-" if f < 0 else ""
    return f"{sign}{cmd}{{{abs(f.numerator)}}}{{{f.denominator}}}"


def plain_frac(f):
    return f"{f.numerator}/{f.denominator}"


def terminating(f):
    d = f.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def decimal_str(f):
    """Exact decimal of a terminating fraction."""
    sign = "-" if f < 0 else ""
    f = abs(f)
    whole, rest = divmod(f.numerator, f.denominator)
    digits = ""
    while rest:
        rest *= 10
        digits += str(rest // f.denominator)
        rest %= f.denominator
    return sign + str(whole) + ("." + digits if digits else "")


def thousands(n):
    s = f"{abs(n):,}".replace(",", "{,}")
    return ("-" if n < 0 else "") + s


def number_case(rng):
    """A gold and its correct and wrong renderings for an integer, fraction or decimal."""
    kind = rng.choice(["integer", "integer", "negative", "fraction", "fraction", "decimal"])
    if kind in ("integer", "negative"):
        n = rng.randint(1, 9999) if rng.random() < 0.5 else rng.randint(0, 99)
        if kind == "negative":
            n = -max(n, 1)
        gold = str(n)
        right = [str(n), f"{n}.0", f"x = {n}"]
        if abs(n) >= 1000:
            right.append(thousands(n))
        wrong = [str(n + 1), str(n - 1), str(n * 10)]
        if n != 0:
            wrong.append(str(-n))
        return kind, gold, right, wrong
    if kind == "fraction":
        while True:
            q = rng.randint(2, 12)
            p = rng.randint(-20, 20)
            f = Fraction(p, q)
            if p != 0 and f.denominator != 1:
                break
        gold = latex_frac(f) if rng.random() < 0.8 else plain_frac(f)
        sign = "-" if f < 0 else ""
        unreduced = f"{sign}\\frac{{{2 * abs(f.numerator)}}}{{{2 * f.denominator}}}"
        right = [latex_frac(f), latex_frac(f, "\\dfrac"), plain_frac(f), unreduced]
        if terminating(f):
            right.append(decimal_str(f))
        else:
            right.append(f"{float(f):.6f}")          # six decimals: equal up to rounding
        off_by_one = Fraction(f.numerator + 1, f.denominator)
        wrong = [latex_frac(1 / f), latex_frac(-f), latex_frac(off_by_one) if off_by_one else "0"]
        if Fraction(f"{float(f):.2f}") != f:
            wrong.append(f"{float(f):.2f}")          # rounded to two decimals: not equal
        return kind, gold, right, [w for w in wrong if w]
    # decimal
    places = rng.choice([1, 2])
    k = rng.randint(-999, 999)
    while k == 0 or k % 10 == 0:
        k = rng.randint(-999, 999)
    f = Fraction(k, 10 ** places)
    gold = decimal_str(f)
    right = [decimal_str(f), decimal_str(f) + "0", latex_frac(f), plain_frac(f)]
    wrong = [decimal_str(f + Fraction(1, 10)), decimal_str(-f), decimal_str(f * 10)]
    return kind, gold, right, wrong


def expression_case(rng):
    form = rng.choice(["sqrt", "pi", "linear", "sqrt_frac"])
    if form == "sqrt":
        a, b = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7])
        gold = f"{a}\\sqrt{{{b}}}"
        right = [gold, f"\\sqrt{{{a * a * b}}}", f"{a} \\cdot \\sqrt{{{b}}}", f"\\sqrt{{{b}}} \\cdot {a}"]
        wrong = [f"{a}\\sqrt{{{b + 1}}}", f"{a + 1}\\sqrt{{{b}}}", f"-{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * b}}}"]
    elif form == "sqrt_frac":
        b = rng.choice([2, 3, 5])
        gold = f"\\frac{{\\sqrt{{{b}}}}}{{{b}}}"
        right = [gold, f"\\frac{{1}}{{\\sqrt{{{b}}}}}", f"\\dfrac{{\\sqrt{{{b}}}}}{{{b}}}", f"\\sqrt{{{b}}}/{b}"]
        wrong = [f"\\frac{{\\sqrt{{{b}}}}}{{{b + 1}}}", f"\\sqrt{{{b}}}", f"\\frac{{{b}}}{{\\sqrt{{{b}}}}}\\cdot 2"]
    elif form == "pi":
        k = rng.randint(2, 12)
        d = rng.choice([1, 2, 3, 4, 6])
        f = Fraction(k, d)
        if f.denominator == 1:
            gold = f"{f.numerator}\\pi"
            right = [gold, f"\\pi \\cdot {f.numerator}", f"{f.numerator} \\pi"]
            wrong = [f"{f.numerator + 1}\\pi", f"{f.numerator}", f"-{f.numerator}\\pi"]
        else:
            gold = f"\\frac{{{f.numerator}\\pi}}{{{f.denominator}}}"
            right = [gold, f"\\frac{{{f.numerator}}}{{{f.denominator}}}\\pi", f"{f.numerator}\\pi/{f.denominator}"]
            wrong = [f"\\frac{{{f.denominator}\\pi}}{{{f.numerator}}}", f"\\frac{{{f.numerator + 1}\\pi}}{{{f.denominator}}}",
                     f"\\frac{{{f.numerator}}}{{{f.denominator}}}"]
    else:
        a, b = rng.randint(2, 9), rng.randint(1, 20)
        gold = f"{a}x + {b}"
        right = [gold, f"{b} + {a}x", f"{a}x+{b}", f"{a} x + {b}"]
        wrong = [f"{a}x - {b}", f"{b}x + {a}", f"{a}x + {b + 1}", f"{a}y + {b}"]
    return "expr_" + form, gold, right, wrong


THINK_STEPS = [
    "First, let me restate the problem.",
    "We compute {n1} + {n2} = {s}.",
    "Then multiplying by {n3} gives {p}.",
    "Wait, let me double-check that step.",
    "Hmm, that seems off by {n4}; recomputing.",
    "So the intermediate value is {n5}.",
    "Simplifying, the fraction becomes {n6}/{n7}.",
]


def think(rng):
    n = {f"n{i}": rng.randint(1, 99) for i in range(1, 8)}
    n["s"] = n["n1"] + n["n2"]
    n["p"] = n["s"] * n["n3"]
    steps = rng.sample(THINK_STEPS, rng.randint(2, 5))
    return "\n".join(s.format(**n) for s in steps)


TEMPLATES = {
    "boxed_in_answer": "<think>\n{t}\n</think>\n<answer>\n\\boxed{{{a}}}\n</answer>",
    "answer_phrase_boxed": "<think>\n{t}\n</think>\n<answer>\nThe answer is $\\boxed{{{a}}}$.\n</answer>",
    "bare_in_answer": "<think>\n{t}\n</think>\n<answer>{a}</answer>",
    "inline_math_in_answer": "<think>\n{t}\n</think>\n<answer>${a}$</answer>",
    "display_boxed": "<think>\n{t}\n</think>\n<answer>\n\\[ \\boxed{{{a}}} \\]\n</answer>",
    "no_tag_final_boxed": "<think>\n{t}\n</think>\nTherefore, the final answer is $\\boxed{{{a}}}$.",
}


def generate(n, seed):
    rng = random.Random(seed)
    cases = []
    names = list(TEMPLATES)
    for i in range(n):
        kind, gold, right, wrong = number_case(rng) if rng.random() < 0.75 else expression_case(rng)
        wrong = [w for w in wrong if w not in right and w != gold] or ["\\text{no idea}"]
        correct = rng.random() < 0.5
        answer = rng.choice(right if correct else wrong)
        if correct and answer != right[0]:
            form = "other_form"
        else:
            form = "same_form" if correct else "wrong"
        tname = rng.choice(names)
        # bare answers with "x = 5" or thousands braces only make sense inside math
        if tname == "bare_in_answer" and ("{,}" in answer or "\\" in answer):
            tname = "inline_math_in_answer"
        response = TEMPLATES[tname].format(t=think(rng), a=answer)
        cases.append({"gold": gold, "pred": response, "label": correct, "kind": kind, "form": form,
                      "template": tname, "answer": answer})
    return cases


# ---- running both verifiers ------------------------------------------------------------


def pin_one_cpu():
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
        return cpus[-1]
    except (AttributeError, OSError):
        return None


def run_ours(grpo, cases, repeats):
    lines = "".join(json.dumps({"gold": c["gold"], "pred": c["pred"]}) + "\n" for c in cases)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([grpo, "verify", "math"], input=(lines * repeats).encode(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = [json.loads(l) for l in proc.stdout.decode().splitlines()]
    if len(out) != len(cases) * repeats:
        sys.exit(f"grpo verify math answered {len(out)} lines for {len(cases) * repeats}: "
                 f"{proc.stderr.decode()[:400]}")
    verdicts = []
    for o in out[:len(cases)]:
        if "error" in o:
            verdicts.append(None)
        else:
            verdicts.append(bool(o["correct"]))
    return verdicts, out[:len(cases)], wall, cpu


def mathverify_runner(mode):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify  # noqa: F401
    from math_verify.parser import NormalizationConfig

    def wrap(text):
        if any(m in text for m in ("$", "\\(", "\\[", "\\boxed", "\\fbox")):
            return text
        return "$" + text + "$"

    if mode == "default":
        def run(gold, pred):
            g = parse(wrap(gold))
            return bool(g) and bool(verify(g, parse(pred)))
    else:
        cfg = [LatexExtractionConfig(normalization_config=NormalizationConfig(
            nits=False, malformed_operators=False, basic_latex=True, equations=True, boxed="all", units=True),
            boxed_match_priority=0, try_extract_without_anchor=False)]

        def run(gold, pred):
            g = parse(wrap(gold), extraction_mode="first_match")
            return bool(g) and bool(verify(g, parse(pred, extraction_config=cfg, extraction_mode="first_match")))

    def safe(gold, pred):
        try:
            return run(gold, pred)
        except Exception:
            return False
    return safe


def run_mathverify(mode, cases):
    run = mathverify_runner(mode)
    c0, t0 = time.process_time(), time.perf_counter()
    verdicts = [run(c["gold"], c["pred"]) for c in cases]
    return verdicts, time.perf_counter() - t0, time.process_time() - c0


# ---- report ----------------------------------------------------------------------------


def breakdown(cases, ours, theirs, key):
    groups = {}
    for c, o, t in zip(cases, ours, theirs):
        g = groups.setdefault(c[key], [0, 0])
        g[0] += 1
        g[1] += (o == t)
    return ", ".join(f"{k} {v[1]}/{v[0]}" for k, v in sorted(groups.items()))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpo", default=os.environ.get("GRPO_BINARY", os.path.join(here, "..", "build", "grpo")))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20, help="passes over the cases when timing ours")
    ap.add_argument("--modes", default="default,open-r1", help="Math-Verify modes, comma-separated")
    ap.add_argument("--show", type=int, default=12, help="disagreements to print per mode")
    ap.add_argument("--write-cases", help="also write the generated cases to this JSONL file")
    args = ap.parse_args()

    try:
        import math_verify  # noqa: F401
    except ImportError:
        print("math_verify is not installed: pip install math-verify", file=sys.stderr)
        return 1
    import logging
    logging.disable(logging.CRITICAL)

    cpu = pin_one_cpu()
    cases = generate(args.n, args.seed)
    if args.write_cases:
        with open(args.write_cases, "w") as f:
            for c in cases:
                f.write(json.dumps(c) + "\n")
    labels = [c["label"] for c in cases]
    n = len(cases)
    print(f"cases: {n} (seed {args.seed}), {sum(labels)} correct by construction; pinned to CPU {cpu}")

    ours, ours_out, wall, ours_cpu = run_ours(args.grpo, cases, args.repeats)
    total = n * args.repeats
    errors = sum(v is None for v in ours)
    ours = [bool(v) for v in ours]
    print(f"ours (grpo verify math): {total} verifications in {wall:.3f} s wall, {ours_cpu:.3f} s CPU: "
          f"{total / wall:.0f} verifications/s by wall clock, {total / ours_cpu:.0f} by CPU time "
          f"({1e6 * ours_cpu / total:.1f} us each, JSON and process start included); {errors} error lines")
    print(f"ours agrees with the construction label: {sum(o == l for o, l in zip(ours, labels))}/{n} "
          f"({100.0 * sum(o == l for o, l in zip(ours, labels)) / n:.2f}%)")

    for mode in [m for m in args.modes.split(",") if m]:
        theirs, mv_wall, mv_cpu = run_mathverify(mode, cases)
        agree = sum(o == t for o, t in zip(ours, theirs))
        print(f"\nMath-Verify ({mode}): {n} verifications in {mv_wall:.3f} s wall, {mv_cpu:.3f} s CPU: "
              f"{n / mv_wall:.0f} verifications/s by wall clock, {n / mv_cpu:.0f} by CPU time "
              f"({1e6 * mv_cpu / n:.0f} us each)")
        print(f"  speed ratio ours / Math-Verify: {(total / ours_cpu) / (n / mv_cpu):.0f}x by CPU time, "
              f"{(total / wall) / (n / mv_wall):.0f}x by wall clock")
        print(f"  Math-Verify agrees with the construction label: {sum(t == l for t, l in zip(theirs, labels))}/{n} "
              f"({100.0 * sum(t == l for t, l in zip(theirs, labels)) / n:.2f}%)")
        print(f"  agreement ours vs Math-Verify: {agree}/{n} ({100.0 * agree / n:.2f}%); both correct "
              f"{sum(o and t for o, t in zip(ours, theirs))}, both wrong {sum(not o and not t for o, t in zip(ours, theirs))}, "
              f"ours only {sum(o and not t for o, t in zip(ours, theirs))}, "
              f"Math-Verify only {sum(t and not o for o, t in zip(ours, theirs))}")
        print(f"  by kind: {breakdown(cases, ours, theirs, 'kind')}")
        print(f"  by template: {breakdown(cases, ours, theirs, 'template')}")
        print(f"  by answer form: {breakdown(cases, ours, theirs, 'form')}")
        shown = 0
        for i, (c, o, t) in enumerate(zip(cases, ours, theirs)):
            if o != t and shown < args.show:
                shown += 1
                right = "ours" if o == c["label"] else "Math-Verify" if t == c["label"] else "neither"
                print(f"    case {i}: gold {c['gold']!r} answer {c['answer']!r} ({c['template']}): ours {o} "
                      f"(extracted {ours_out[i].get('extracted', ours_out[i].get('error'))!r}), Math-Verify {t}, "
                      f"label {c['label']} -> {right} right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
