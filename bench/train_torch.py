"""PyTorch (CPU) side of the training throughput benchmark: the same Hugging Face config,
batch, sequence length and optimizer (AdamW) as bench_train, in tokens/s.
Works for every model_type transformers knows: dense presets (Qwen2/Llama) and the MoE ones
(DeepseekV3ForCausalLM: configs/models/tiny-moe.json, small-moe.json; transformers has no MTP,
and bench_train runs none either).
usage: python bench/train_torch.py --config configs/models/dense-10m.json --batch 8 --seq 256 --steps 10"""
import argparse, json, time
import torch, transformers

p = argparse.ArgumentParser()
p.add_argument("--config", default="configs/models/dense-10m.json")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--seq", type=int, default=256)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--threads", type=int, default=0)
a = p.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
cfg = transformers.AutoConfig.for_model(**json.load(open(a.config)))
cfg._attn_implementation = "sdpa"
model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
experts = getattr(model.config, "_experts_implementation", None)
print(f"{type(model).__name__}{f' (experts: {experts})' if experts else ''}: "
      f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
g = torch.Generator().manual_seed(7)
ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), generator=g)
for s in range(a.warmup + a.steps):
    if s == a.warmup:
        t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
dt = time.perf_counter() - t0
tok_s = a.batch * a.seq * a.steps / dt
print(f"pytorch {torch.__version__} threads {torch.get_num_threads()}: {1e3 * dt / a.steps:.1f} ms/step, "
      f"{tok_s:.0f} tokens/s, loss {loss.item():.4f}")
print(f"RESULT tokens_per_second={tok_s:.1f}")
