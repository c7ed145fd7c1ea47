"""Why MFU at gpt_small (item 2) sits at ~0.5: the torch profiler over the pretraining step
(model + loss + backward + clip + AdamW; d_model 128, 4 layers, vocab 4096, batch 16 x 128,
1 thread), eager and with train.compile, time grouped by kind of op.

    .venv/bin/python -m benchmarks.profile_ops
"""
from __future__ import annotations

import functools
import time

from .common import plain_step, save

GROUPS = {  # op name fragment -> group (first match wins)
    "mm": "matmul", "addmm": "matmul", "bmm": "matmul", "linear": "matmul",
    "flash_attention": "attention", "attention": "attention",
    "log_softmax": "log-softmax + NLL (V-wide output)", "nll_loss": "log-softmax + NLL (V-wide output)",
    "gelu": "GELU", "layer_norm": "LayerNorm", "fill_": "fill / zero", "zero_": "fill / zero",
    "adam": "optimizer", "Optimizer": "optimizer", "_foreach": "optimizer", "norm": "clip",
    "embedding": "embedding",
}
BS, T, V, STEPS = 16, 128, 4096, 10


def profile(compiled: bool) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile as tprofile

    from ptft_ray.config import load_config
    from ptft_ray.models import build_lm

    torch.set_num_threads(1)
    cfg = load_config(None, ["model.preset=gpt_small", f"data.seq_len={T}"])
    torch.manual_seed(0)
    model = build_lm(cfg.model, V)
    x = torch.randint(0, V, (BS, T + 1))
    step = functools.partial(plain_step(model, 1e-3, compiled), x[:, :-1], x[:, 1:])
    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(STEPS):
        step()
    wall = (time.perf_counter() - t0) / STEPS
    with tprofile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(STEPS):
            step()
    total = sum(e.self_cpu_time_total for e in p.key_averages())
    groups: dict[str, float] = {}
    top = []
    for e in sorted(p.key_averages(), key=lambda e: -e.self_cpu_time_total):
        g = next((v for k, v in GROUPS.items() if k in e.key), "other (compiled kernels, copies, ...)")
        groups[g] = groups.get(g, 0.0) + e.self_cpu_time_total / total
        if len(top) < 10:
            top.append({"op": e.key[:80], "share": round(e.self_cpu_time_total / total, 3), "calls": e.count})
    return {"step_ms": round(1e3 * wall, 1), "tokens_per_s": round(BS * T / wall),
            "share_by_group": {k: round(v, 3) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
            "top_ops": top}


def main() -> None:
    eager, comp = profile(False), profile(True)
    save("profile_ops", {"eager": eager, "compiled": comp,
                         "summary": {"eager_step_ms": eager["step_ms"], "compiled_step_ms": comp["step_ms"],
                                     "speedup": round(eager["step_ms"] / comp["step_ms"], 3)}})


if __name__ == "__main__":
    main()
