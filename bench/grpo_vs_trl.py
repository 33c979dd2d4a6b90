"""TRL's GRPOTrainer on the same base model, data and settings as grpo.c's GRPO stage in
bench/grpo_vs_trl.yaml, on the CPU; then the comparison of both runs' reward curves.

  grpo_vs_trl.py train --model DIR --data rl_train.jsonl --steps N --out trl.jsonl
      runs TRL and writes one line per step: {"step", "seconds" (since training began), "reward"}.
  grpo_vs_trl.py compare --ours run.db --stage K --trl trl.jsonl
      reads grpo.c's per-step reward and phase times from its run store and prints the time
      each run needs to reach the same (smoothed) reward, and their ratio.

The rewards mirror grpo.c's `accuracy` (the answer in the last <answer> tag equals the gold
integer; weight 1.0) and `format` (the R1 template regex; weight 0.2).
"""
import argparse
import json
import re
import sqlite3
import sys
import time

TEMPLATE = ("User: {prompt} Show your work in <think> </think> and the result in "
            "<answer> </answer>.\nAssistant: ")
FORMAT_RE = re.compile(r"^<think>.*?</think>\s*<answer>.*?</answer>$", re.DOTALL)
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def accuracy_reward(completions, answer, **_):
    out = []
    for text, gold in zip(completions, answer):
        found = ANSWER_RE.findall(text)
        ok = False
        if found:
            try:
                ok = int(found[-1].strip()) == int(gold)
            except ValueError:
                ok = False
        out.append(1.0 if ok else 0.0)
    return out


def format_reward(completions, **_):
    return [1.0 if FORMAT_RE.match(t) else 0.0 for t in completions]


def train(args):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{args.model}/tokenizer.json",
                                  bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                                  pad_token="<|pad|>")
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    rows = [json.loads(line) for line in open(args.data)]
    # grpo.c puts BOS before the templated prompt; the tokenizer adds no BOS of its own.
    ds = Dataset.from_list([{"prompt": tok.bos_token + TEMPLATE.format(prompt=r["prompt"]),
                             "answer": r["answer"]} for r in rows])
    cfg = GRPOConfig(
        output_dir=args.workdir, use_cpu=True, bf16=False, fp16=False, seed=args.seed,
        max_steps=args.steps, per_device_train_batch_size=64, gradient_accumulation_steps=1,
        num_generations=8, max_completion_length=112, temperature=1.0, top_p=1.0,
        learning_rate=1e-4, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="dapo", scale_rewards="group",
        num_iterations=1, reward_weights=[1.0, 0.2], logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=True, dataloader_num_workers=0)
    log = open(args.out, "w")

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_log(self, _args, state, _control, logs=None, **k):
            if logs and "reward" in logs:
                log.write(json.dumps({"step": state.global_step, "seconds": time.perf_counter() - self.t0,
                                      "reward": logs["reward"]}) + "\n")
                log.flush()

    trainer = GRPOTrainer(model=model, reward_funcs=[accuracy_reward, format_reward], args=cfg,
                          train_dataset=ds, processing_class=tok, callbacks=[Clock()])
    trainer.train()
    log.close()


def smooth(values, window):
    out = []
    for i in range(len(values)):
        lo = max(0, i - window + 1)
        out.append(sum(values[lo:i + 1]) / (i + 1 - lo))
    return out


def first_reaching(seconds, smoothed, target):
    for s, v in zip(seconds, smoothed):
        if v >= target:
            return s
    return None


def compare(args):
    db = sqlite3.connect(f"file:{args.ours}?mode=ro", uri=True)

    def series(name):
        return dict(db.execute("SELECT step, value FROM metrics WHERE stage = ? AND name = ? ORDER BY step",
                               (args.stage, name)).fetchall())
    reward = series("reward/mean")
    phases = [series(n) for n in ("time/generation", "time/scoring", "time/training")]
    steps = sorted(reward)
    if not steps:
        sys.exit(f"{args.ours}: no reward/mean metrics in stage {args.stage}")
    ours_t, acc = [], 0.0
    for s in steps:
        acc += sum(p.get(s, 0.0) for p in phases)
        ours_t.append(acc)
    ours_r = [reward[s] for s in steps]
    trl = [json.loads(line) for line in open(args.trl)]
    if not trl:
        sys.exit(f"{args.trl}: empty")
    trl_t = [r["seconds"] for r in trl]
    trl_r = [r["reward"] for r in trl]
    w = args.window
    so, st = smooth(ours_r, w), smooth(trl_r, w)
    # The target: a share of the lower of the two best smoothed rewards, so both runs reach it.
    target = args.share * min(max(so), max(st))
    a, b = first_reaching(ours_t, so, target), first_reaching(trl_t, st, target)
    print(f"grpo.c: {len(steps)} steps, {ours_t[-1]:.1f} s, {ours_t[-1] / len(steps):.3f} s/step, "
          f"reward {ours_r[0]:.3f} -> smoothed {so[-1]:.3f} (best {max(so):.3f})")
    print(f"TRL:    {len(trl)} steps, {trl_t[-1]:.1f} s, {trl_t[-1] / len(trl):.3f} s/step, "
          f"reward {trl_r[0]:.3f} -> smoothed {st[-1]:.3f} (best {max(st):.3f})")
    print(f"target reward (x{args.share} of the lower best, {w}-step mean): {target:.3f}")
    print(f"time to target: grpo.c {a:.1f} s, TRL {b:.1f} s")
    print(f"RESULT ratio_time_to_reward={b / a:.2f} ratio_step_time={(trl_t[-1] / len(trl)) / (ours_t[-1] / len(steps)):.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--model", required=True)
    t.add_argument("--data", required=True)
    t.add_argument("--steps", type=int, default=100)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--workdir", default="/tmp/grpo-vs-trl")
    t.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--ours", required=True)
    c.add_argument("--stage", type=int, default=1)
    c.add_argument("--trl", required=True)
    c.add_argument("--window", type=int, default=10)
    c.add_argument("--share", type=float, default=0.95)
    args = p.parse_args()
    train(args) if args.cmd == "train" else compare(args)


if __name__ == "__main__":
    main()
