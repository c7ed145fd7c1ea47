"""The memory plan (ptft_ray/train/memory.py) on paper and against measured peak memory.

    python -m benchmarks memory_plan

1. On paper: Llama-3.2-1B, Qwen2.5-1.5B and Llama-3.1-8B, their configs built here from their
   published sizes on the meta device (no weights), continued pretraining at micro-batch 8 x
   2,048 tokens in bf16 on 24 GB and 80 GB GPUs x 1, 8 and 16: the strategy, checkpointing and
   micro-batch the plan picks, and the bytes per device.
2. Measured: our GPT at three sizes trains a few fp32 steps in one process on the CPU, and
   the smallest again at a 128k vocabulary with the loss over the whole batch and in chunks;
   the peak resident memory the steps add over the process before the model is built,
   against the plan's total for one device.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys

from .common import ROOT, save

GIB = 2 ** 30
PAPER = {  # published configs (config.json of each model)
    "Llama-3.2-1B": dict(arch="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True),
    "Qwen2.5-1.5B": dict(arch="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "Llama-3.1-8B": dict(arch="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False),
}
SIZES = {"gpt_d256": dict(d_model=256, n_layers=4, n_heads=4), "gpt_d512": dict(d_model=512, n_layers=6, n_heads=8),
         "gpt_d1024": dict(d_model=1024, n_layers=8, n_heads=16)}


def paper_shape(spec: dict):
    import torch
    import transformers

    from ptft_ray.train.memory import ModelShape

    spec = dict(spec)
    conf = (transformers.LlamaConfig if spec.pop("arch") == "llama" else transformers.Qwen2Config)(**spec)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(conf)
    return ModelShape.of(model)


def on_paper() -> list[dict]:
    from ptft_ray.train.memory import choose

    rows = []
    for name, spec in PAPER.items():
        shape = paper_shape(spec)
        for gb in (24, 80):
            for gpus in (1, 8, 16):
                p = choose(shape, gpus, 8, 2048, True, gb * 1e9)
                rows.append({"model": name, "params": shape.params, "gpu_gb": gb, "gpus": gpus, **p})
    return rows


STEP = r"""
import json, resource, sys, time, torch
from ptft_ray.config import ModelConfig
from ptft_ray.models import build_lm
from ptft_ray.models.lm_loss import chunk_tokens
from ptft_ray.train.memory import ModelShape, per_device
kw, b, s, vocab, chunk = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(1)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
m = build_lm(ModelConfig(**kw, max_seq_len=s), vocab)
opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
x = torch.randint(0, vocab, (b, s + 1))
per = chunk_tokens(b * s, vocab, chunk)
t0 = time.perf_counter()
for _ in range(3):  # the model's own loss path, as LMTask calls it
    loss = m(x[:, :-1], targets=x[:, 1:], chunk=per)
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=False)
seconds = (time.perf_counter() - t0) / 3
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
plan = per_device(ModelShape.of(m), "ddp", 1, b, s, False, False, loss_chunk=chunk)
print(json.dumps({"measured_bytes": peak - base, "plan": plan, "chunk": per, "s_per_step": seconds}))
"""
# (name, model, vocabulary, train.loss_chunk_tokens): three sizes at a 4k vocabulary (one chunk),
# and the smallest at Llama 3's 128k vocabulary with the whole batch's logits and in chunks (auto)
MEASURED = [("gpt_d256", "gpt_d256", 4096, 0), ("gpt_d512", "gpt_d512", 4096, 0),
            ("gpt_d1024", "gpt_d1024", 4096, 0), ("gpt_d256 vocab 128k, whole", "gpt_d256", 128_256, 8 * 256),
            ("gpt_d256 vocab 128k, chunked", "gpt_d256", 128_256, 0)]


def measured() -> list[dict]:
    rows = []
    for name, size, vocab, chunk in MEASURED:
        kw = SIZES[size]
        out = subprocess.run([sys.executable, "-c", STEP, json.dumps(kw), "8", "256", str(vocab), str(chunk)], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append({"model": name, **kw, "vocab": vocab, "loss_chunk": r["chunk"], "micro_batch": 8, "seq_len": 256,
                     "measured_bytes": r["measured_bytes"], "plan": r["plan"], "s_per_step": r["s_per_step"],
                     "plan_over_measured": r["plan"]["total"] / r["measured_bytes"]})
    return rows


def section(r: dict) -> list[str]:
    """BENCHMARKS.md's tables."""
    if not r:
        return []
    L = ["", "## Memory plan", "", f"Command: `{r['command']}`. On paper (configs on the meta device, no weights): "
         "continued pretraining at micro-batch 8 x 2,048 tokens, bf16 compute, fp32 master weights and AdamW.", "",
         "| model | params | GPU | GPUs | strategy | checkpointing | micro-batch | per device (GiB) | fits | why |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for p in r["paper"]:
        L.append(f"| {p['model']} | {p['params'] / 1e9:.2f}B | {p['gpu_gb']} GB | {p['gpus']} | {p['strategy']} | "
                 f"{'on' if p['activation_checkpointing'] else 'off'} | {p['micro_batch']} | "
                 f"{p['per_device_bytes']['total'] / GIB:.1f} | {'yes' if p['fits'] else 'no'} | {p.get('why', '')} |")
    L += ["", "Measured (one process, CPU, fp32, 3 AdamW steps at micro-batch 8 x 256 tokens, the loss through "
          "the model's own path as the loop calls it): peak resident memory the steps add over the process before "
          "the model is built, against the plan.", "",
          "| model | vocabulary | positions a loss chunk | plan (MiB) | measured (MiB) | plan / measured | within 20 % "
          "| s a step (1 thread) |", "|---|---|---|---|---|---|---|---|"]
    for m in r["measured"]:
        ratio = m["plan_over_measured"]
        L.append(f"| {m['model']} | {m.get('vocab', 4096):,} | {m.get('loss_chunk', 2048):,} | "
                 f"{m['plan']['total'] / 2 ** 20:.0f} | {m['measured_bytes'] / 2 ** 20:.0f} | "
                 f"{ratio:.2f} | {'**met**' if 0.8 <= ratio <= 1.2 else '**missed**'} | {m.get('s_per_step', 0):.2f} |")
    L += ["", "At 128k-152k vocabularies the whole batch's logits would dominate (micro-batch 8 x 2,048 x 128,256 x "
          "10 bytes = 19.6 GiB); the loss is summed over chunks of positions (models/lm_loss.py, auto: 128 MiB of "
          "fp32 logits a chunk), and the plan counts one chunk.", ""]
    return L


def main() -> None:
    save("memory_plan", {"paper": on_paper(), "measured": measured()})


if __name__ == "__main__":
    resource.getrusage(resource.RUSAGE_SELF)
    main()
