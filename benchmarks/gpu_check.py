"""The GPU paths a one-GPU machine can show, measured: `python -m benchmarks gpu_check`.

  1. the GPU's own bf16 matmul peak (8192^3 GEMMs): the MFU denominator;
  2. pretraining on Ray Train with use_gpu (bf16 autocast: train.precision auto on CUDA),
     eager and with train.compile: tokens/s and MFU = model FLOPs/s / that peak, where model
     FLOPs per token = 6 N + attention 6 L T d + the tied output projection 6 V d;
  3. a sweep of fractional-GPU in-process trials (4 trials at 0.25 GPU each share the GPU):
     every trial completes, how many ran at once, the sweep's wall time.

Writes benchmarks/results/gpu_check.json. Needs data/news and data/rotten_tomatoes (`make
data`). `--dry-run` walks the same code on the CPU at toy sizes and writes nothing (a check
of this script where no GPU is lent).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from .common import ROOT, median, save


def bf16_peak(n: int = 8192, seconds: float = 5.0) -> float:
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        k += 1
    torch.cuda.synchronize()
    return 2 * n ** 3 * k / (time.perf_counter() - t0)


def pretrain_run(out: Path, gpu: bool, compile: bool, steps: int) -> dict:
    from ptft_ray.config import load_config
    from ptft_ray.models import build_lm
    from ptft_ray.train.pretrain import pretrain

    size = (["model.preset=gpt_small", "model.d_model=768", "model.n_layers=12", "model.n_heads=12",
             "model.max_seq_len=512", "data.seq_len=512", "train.batch_size=32"] if gpu else
            ["model.preset=gpt_tiny", "data.seq_len=32", "train.batch_size=8"])
    cfg = load_config(None, [*size, "data.path=data/news", "data.tokenizer=bpe", "data.vocab_size=8192",
                             "schedule.warmup_steps=5", "train.log_every=10", "train.eval_every=0",
                             f"schedule.max_steps={steps}", f"train.compile={compile}", f"scaling.use_gpu={gpu}",
                             "checkpoint.every_steps=100000", "data.max_val_blocks=16"])
    t0 = time.time()
    res = pretrain(cfg, str(out), overwrite=True)
    hist = [json.loads(x) for x in open(out / "metrics.jsonl")]
    steady = [h["tokens_per_s"] for h in hist if "tokens_per_s" in h][1:]  # first window: start-up
    model = build_lm(cfg.model, res["vocab_size"])
    flops = model.backbone.flops_per_token(cfg.data.seq_len) + 6 * res["vocab_size"] * cfg.model.d_model
    return {"tokens_per_s": median(steady), "flops_per_token": flops, "steps": res["steps"],
            "final_train_loss": res["train_loss"], "wall_s": time.time() - t0, "checkpoint": res["checkpoint"],
            "params": sum(p.numel() for p in model.parameters())}


def sweep_run(out: Path, checkpoint: str, gpu: bool) -> dict:
    from ptft_ray.config import load_config
    from ptft_ray.finetune.sweep import sweep

    gpus = ["scaling.use_gpu=true", "scaling.gpus_per_worker=0.25"] if gpu else []
    cfg = load_config(str(ROOT / "jobs" / "configs" / "debug_sweep.yaml"), [
        *gpus, "finetune.data=data/rotten_tomatoes.parquet", "finetune.max_examples=2000", "sweep.num_samples=4",
        "sweep.strategies=[full,lora]", "sweep.scheduler=none", "sweep.epochs=[1]", "sweep.cpus_per_trial=1",
        "finetune.max_len=128"])
    t0 = time.time()
    r = sweep(cfg, [checkpoint], str(out), overwrite=True)
    return {"trials": r["trials"], "trials_completed": r["trials_completed"], "trials_failed": r["trials_failed"],
            "max_concurrent_trials": r["max_concurrent_trials"], "trial_time_s": r["trial_time_s"],
            "wall_s": time.time() - t0, "test_accuracy": r["test_accuracy"]}


def main(argv: list[str]) -> int:
    import torch

    from ptft_ray.cluster import init_ray

    dry = "--dry-run" in argv
    if not dry and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); "
              "--dry-run checks the script on the CPU", file=sys.stderr)
        return 2
    init_ray()
    tmp = Path(tempfile.mkdtemp(prefix="ptft-gpu-"))
    gpu = not dry
    steps = 20 if dry else 200
    eager = pretrain_run(tmp / "eager", gpu, False, steps)
    compiled = pretrain_run(tmp / "compiled", gpu, True, steps)
    peak = bf16_peak() if gpu else None
    out = {
        "device": torch.cuda.get_device_name(0) if gpu else "cpu (dry run)",
        "torch": torch.__version__, "bf16_matmul_peak_flops_per_s": peak,
        "pretrain_eager": eager, "pretrain_compiled": compiled,
        "mfu_eager": eager["flops_per_token"] * eager["tokens_per_s"] / peak if peak else None,
        "mfu_compiled": compiled["flops_per_token"] * compiled["tokens_per_s"] / peak if peak else None,
        "compile_speedup": compiled["tokens_per_s"] / eager["tokens_per_s"],
        "fractional_gpu_sweep": sweep_run(tmp / "sweep", eager["checkpoint"], gpu),
        "command": ".venv/bin/python -m benchmarks.gpu_check",
    }
    print(json.dumps(out, indent=2, default=str))
    if not dry:
        save("gpu_check", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
