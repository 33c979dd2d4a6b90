"""Reference run of Hugging Face Math-Verify on the math case table, for comparison with
our verifier (bench/bench_math_verify.c).

  pip install math-verify                     # into the reference venv (scripts/pyref.sh)
  build/bench_math_verify --out /tmp/ours.jsonl
  $(scripts/pyref.sh) bench/math_verify_ref.py --ours /tmp/ours.jsonl

Reports Math-Verify's speed (parse + verify per case, one process, one core) and, per
case, agreement between its verdict, ours and the table's hand-written expectation; the
disagreements are listed. Math-Verify is run with its defaults: parse() with LaTeX and
plain-expression extraction for both gold and response, verify() with float_rounding=6.
Its LaTeX extraction needs math delimiters, so a bare answer (no $, \(, \[, \boxed or
"answer") is wrapped in $...$ first, as its documentation does for gold answers
(--no-wrap turns that off).
"""
import argparse
import json
import os
import sys
import time


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=os.path.join(here, "..", "tests", "fixtures", "math_cases.jsonl"))
    ap.add_argument("--ours", help="JSONL written by bench_math_verify --out")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--show", type=int, default=40, help="disagreements to print")
    ap.add_argument("--no-wrap", action="store_true", help="do not wrap bare answers in $...$")
    args = ap.parse_args()

    try:
        from math_verify import parse, verify
    except ImportError:
        print("math_verify is not installed: pip install math-verify", file=sys.stderr)
        return 1
    import logging
    logging.disable(logging.CRITICAL)

    with open(args.cases) as f:
        cases = [json.loads(line) for line in f if line.strip()]
    ours = None
    if args.ours:
        with open(args.ours) as f:
            ours = [json.loads(line) for line in f if line.strip()]
        if len(ours) != len(cases):
            print(f"--ours has {len(ours)} lines, the case table {len(cases)}", file=sys.stderr)
            return 1

    def wrap(text):
        if args.no_wrap or any(m in text for m in ("$", "\\(", "\\[", "\\boxed", "\\fbox", "answer", "Answer")):
            return text
        return "$" + text + "$"

    def run_one(c):
        try:
            gold = parse(wrap(c["gold"]))
            pred = parse(wrap(c["response"]))
            return bool(gold) and bool(verify(gold, pred))
        except Exception:
            return False

    theirs = [run_one(c) for c in cases]          # warm-up pass, also the verdicts
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        for c in cases:
            run_one(c)
    elapsed = time.perf_counter() - t0
    total = args.repeats * len(cases)

    expected = [bool(c["expected"]) for c in cases]
    n = len(cases)
    print(f"cases: {n}")
    print(f"Math-Verify: {total} verifications in {elapsed:.3f} s: {total / elapsed:.1f} verifications/s "
          f"({1e6 * elapsed / total:.0f} us each)")
    print(f"Math-Verify agrees with the table's expectation: {sum(t == e for t, e in zip(theirs, expected))}/{n}")
    if ours is not None:
        mine = [bool(o["correct"]) for o in ours]
        print(f"ours agrees with the table's expectation:        {sum(m == e for m, e in zip(mine, expected))}/{n}")
        agree = sum(m == t for m, t in zip(mine, theirs))
        print(f"ours agrees with Math-Verify:                    {agree}/{n} ({100.0 * agree / n:.1f}%)")
        both_true = sum(m and t for m, t in zip(mine, theirs))
        print(f"  both correct {both_true}, both wrong {agree - both_true}, "
              f"ours only {sum(m and not t for m, t in zip(mine, theirs))}, "
              f"Math-Verify only {sum(t and not m for m, t in zip(mine, theirs))}")
        shown = 0
        for i, (c, m, t) in enumerate(zip(cases, mine, theirs)):
            if m != t and shown < args.show:
                shown += 1
                print(f"  line {i + 1}: gold {c['gold']!r} response {c['response'][:80]!r}: ours {m}, "
                      f"Math-Verify {t}, expected {c['expected']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
