"""transformers' side of the rollout benchmark (bench_rollout): the same Hugging Face
config, B random prompts of P tokens, model.generate sampling exactly N new tokens each
(do_sample, temperature 1, no top-k/top-p, min_new_tokens = N) with its KV cache, on the CPU.
Prefill tokens/s: one forward over [B, P] with use_cache (what generate does first);
decode tokens/s: B * (N - 1) / (generate time - that prefill time). Best of --reps after a
warm-up. Prints "RESULT ..." like bench_rollout.
usage: python bench/generate_torch.py --config configs/models/tiny-dense.json --batch 64 --prompt 64 --gen 64"""
import argparse, json, time

import torch, transformers

p = argparse.ArgumentParser()
p.add_argument("--config", default="configs/models/tiny-dense.json")
p.add_argument("--batch", type=int, default=64)
p.add_argument("--prompt", type=int, default=64)
p.add_argument("--gen", type=int, default=64)
p.add_argument("--reps", type=int, default=2)
p.add_argument("--threads", type=int, default=0)
a = p.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
cfg = transformers.AutoConfig.for_model(**json.load(open(a.config)))
cfg._attn_implementation = "sdpa"
torch.manual_seed(1)
model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
g = torch.Generator().manual_seed(7)
ids = torch.randint(0, cfg.vocab_size, (a.batch, a.prompt), generator=g)
mask = torch.ones_like(ids)
gen_kwargs = dict(attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=a.gen,
                  min_new_tokens=a.gen, pad_token_id=0)
best_prefill = best_decode = best_total = 0.0
with torch.inference_mode():
    model.generate(ids[:, : min(8, a.prompt)], **{**gen_kwargs, "attention_mask": mask[:, : min(8, a.prompt)],
                                                   "max_new_tokens": 2, "min_new_tokens": 2})
    for r in range(a.reps):
        t0 = time.perf_counter()
        model(input_ids=ids, attention_mask=mask, use_cache=True)
        t_prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = model.generate(ids, **gen_kwargs)
        t_gen = time.perf_counter() - t0
        assert out.shape[1] == a.prompt + a.gen, out.shape
        best_prefill = max(best_prefill, a.batch * a.prompt / t_prefill)
        best_decode = max(best_decode, a.batch * (a.gen - 1) / max(t_gen - t_prefill, 1e-9))
        best_total = max(best_total, a.batch * a.gen / t_gen)
name = a.config.split("/")[-1].removesuffix(".json")
print(f"transformers {transformers.__version__} / torch {torch.__version__} threads {torch.get_num_threads()}: "
      f"{name} batch {a.batch}, prompt {a.prompt}, gen {a.gen}: prefill {best_prefill:.0f} tokens/s, "
      f"decode {best_decode:.0f} tokens/s, end to end {best_total:.0f} tokens/s")
print(f"RESULT preset={name} batch={a.batch} prefill_tps={best_prefill:.1f} decode_tps={best_decode:.1f} "
      f"total_tps={best_total:.1f}")
