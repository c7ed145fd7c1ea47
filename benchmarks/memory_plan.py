"""The memory plan (ptft_ray/train/memory.py) on paper and against measured peak memory.

    python -m benchmarks memory_plan

1. On paper: Llama-3.2-1B, Qwen2.5-1.5B and Llama-3.1-8B, their configs built here from their
   published sizes on the meta device (no weights), continued pretraining at micro-batch 8 x
   2,048 tokens in bf16 on 24 GB and 80 GB GPUs x 1, 8 and 16: the strategy, checkpointing and
   micro-batch the plan picks, and the bytes per device.
2. Measured: our GPT at three sizes trains a few fp32 steps in one process on the CPU; the
   peak resident memory the step adds over the process before the model is built, against
   the plan's total for one device.
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
import json, resource, sys, torch
from ptft_ray.config import ModelConfig
from ptft_ray.models import build_lm
from ptft_ray.train.memory import ModelShape, per_device
kw, b, s = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
m = build_lm(ModelConfig(**kw, max_seq_len=s), 4096)
opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
x = torch.randint(0, 4096, (b, s + 1))
for _ in range(3):
    logits = m(x[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten())
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
plan = per_device(ModelShape.of(m), "ddp", 1, b, s, False, False)
print(json.dumps({"measured_bytes": peak - base, "plan": plan}))
"""


def measured() -> list[dict]:
    rows = []
    for name, kw in SIZES.items():
        out = subprocess.run([sys.executable, "-c", STEP, json.dumps(kw), "8", "256"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append({"model": name, **kw, "micro_batch": 8, "seq_len": 256, "measured_bytes": r["measured_bytes"],
                     "plan": r["plan"], "plan_over_measured": r["plan"]["total"] / r["measured_bytes"]})
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
    L += ["", "Measured (one process, CPU, fp32, 3 AdamW steps at micro-batch 8 x 256 tokens): peak resident "
          "memory the steps add over the process before the model is built, against the plan.", "",
          "| model | plan (MiB) | measured (MiB) | plan / measured | within 20 % |", "|---|---|---|---|---|"]
    for m in r["measured"]:
        ratio = m["plan_over_measured"]
        L.append(f"| {m['model']} | {m['plan']['total'] / 2 ** 20:.0f} | {m['measured_bytes'] / 2 ** 20:.0f} | "
                 f"{ratio:.2f} | {'**met**' if 0.8 <= ratio <= 1.2 else '**missed**'} |")
    L += ["", "The logits term dominates at 128k-152k vocabularies (micro-batch 8 x 2,048 x 128,256 x 10 bytes = "
          "21 GB): a loss computed in chunks of the sequence is not built yet, so the plan counts the whole.", ""]
    return L


def main() -> None:
    save("memory_plan", {"paper": on_paper(), "measured": measured()})


if __name__ == "__main__":
    resource.getrusage(resource.RUSAGE_SELF)
    main()
