"""Items 1, 2 and 4 of the benchmark issue, side by side in one run:
  1. Ray Train overhead: ptft_ray pretraining tokens/s (1 worker, 1 thread) / a plain
     single-process PyTorch loop on the same model, batch, sequence length, data and threads
     (median of three alternating pairs);
  2. compute efficiency: model FLOPs/s (6 N per token + attention + the tied output
     projection) / this machine's fp32 matmul FLOPs/s on the same threads;
  4. DDP scaling: 2 workers x 1 thread / 1 worker x 1 thread tokens/s (median of three
     alternating pairs);
and the same 1-worker run with train.compile (the fix for item 2). Also records the loop's data-wait fraction (item 3). Sizes: the README's gpt_small and a
wider 'bench' model (d_model 256). Steady state: the first log window is dropped.

    .venv/bin/python -m benchmarks.throughput
"""
from __future__ import annotations

import time

from .common import ROOT, matmul_flops, median, plain_step, save

SIZES = {
    "gpt_small": ["model.preset=gpt_small", "data.seq_len=128", "train.batch_size=16"],
    "bench_d256": ["model.preset=gpt_small", "model.d_model=256", "model.n_heads=4", "data.seq_len=128",
                   "train.batch_size=16"],
}
# fp32: the plain loop it is held against and the matmul peak of the MFU are fp32; cache_mb=0:
# the news corpus is under data.cache_mb, and item 3's data wait is the stream's
COMMON = ["data.path=data/news", "data.tokenizer=bpe", "data.vocab_size=4096", "schedule.warmup_steps=5",
          "train.precision=fp32", "data.cache_mb=0",
          "train.log_every=5", "train.eval_every=0", "train.threads=1", "checkpoint.every_steps=1000",
          "data.max_val_blocks=16"]


def ptft(size: str, workers: int, steps: int, out, compile: bool = False) -> dict:
    from ptft_ray.config import load_config
    from ptft_ray.train.pretrain import pretrain

    cfg = load_config(None, [*COMMON, *SIZES[size], f"schedule.max_steps={steps}", f"train.compile={compile}",
                             f"scaling.num_workers={workers}", "scaling.cpus_per_worker=0.5"])
    res = pretrain(cfg, str(out), overwrite=True)
    import json

    hist = [json.loads(x) for x in open(out / "metrics.jsonl")]
    steady = [h for h in hist if "tokens_per_s" in h][1:]
    return {"tokens_per_s": median([h["tokens_per_s"] for h in steady]),
            "data_wait_frac": median([h.get("data_wait_frac", float("nan")) for h in steady]),
            "steps": res["steps"], "cfg": cfg, "tokenizer_dir": str(out)}


def plain(cfg, tokenizer_dir: str, steps: int) -> dict:
    """The reference: a plain PyTorch loop, no Ray, same model / loss / optimizer / data."""
    import torch

    from ptft_ray import tokenizer as toks
    from ptft_ray.data import sources
    from ptft_ray.data.packing import pack
    from ptft_ray.models import build_lm

    torch.set_num_threads(1)
    tok = toks.load(tokenizer_dir)
    files, fmt = sources.resolve_files(cfg.data.path, "auto")
    texts = sources.sample_texts(files, fmt, "text", 400)
    blocks = torch.from_numpy(pack(tok.encode_batch(texts), tok.eot_id, tok.pad_id, cfg.data.seq_len + 1))
    bs = cfg.train.batch_size
    torch.manual_seed(0)
    model = build_lm(cfg.model, tok.vocab_size)
    train_step = plain_step(model, cfg.optim.lr)
    times = []
    for step in range(steps):
        t0 = time.perf_counter()
        x = blocks[(step * bs) % (len(blocks) - bs):][:bs].long()
        inp, tgt = x[:, :-1], x[:, 1:].clone()
        tgt[tgt == tok.pad_id] = -100
        train_step(inp, tgt)
        times.append(time.perf_counter() - t0)
    tokens = bs * cfg.data.seq_len
    steady = times[5:]
    return {"tokens_per_s": tokens * len(steady) / sum(steady), "vocab_size": tok.vocab_size,
            "flops_per_token": _flops(model, cfg, tok.vocab_size)}


def _flops(model, cfg, vocab: int) -> int:
    # 6 N (block params) + attention 6 L T d, plus the tied output projection 6 V d
    return model.backbone.flops_per_token(cfg.data.seq_len) + 6 * vocab * cfg.model.d_model


def _rate(run: dict) -> float:
    return run["tokens_per_s"]


def main() -> None:
    import tempfile
    from pathlib import Path

    from ptft_ray.cluster import init_ray

    init_ray()
    tmp = Path(tempfile.mkdtemp(prefix="ptft-tp-", dir=ROOT / "runs" if (ROOT / "runs").is_dir() else None))
    peak1 = matmul_flops(1)
    runs = {}
    for size, steps in (("gpt_small", 60), ("bench_d256", 40)):
        # ours and the plain loop alternate (and 1 with 2 workers), three times each: this
        # machine's speed drifts by a quarter within an hour, so each ratio is taken within its pair
        ones, twos, refs = [], [], []
        for r in range(3):
            ones.append(ptft(size, 1, steps, tmp / f"{size}_1w_{r}"))
            refs.append(plain(ones[-1]["cfg"], ones[-1]["tokenizer_dir"], steps))
            if size == "gpt_small":
                twos.append(ptft(size, 2, steps, tmp / f"{size}_2w_{r}"))
        overheads = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(ones, refs)]
        one, ref = median(ones, key=_rate), median(refs, key=_rate)
        # train.compile (torch.compile of model + loss): the fix for the memory-bound ops
        comp = ptft(size, 1, steps + 20, tmp / f"{size}_1w_compiled", compile=True)
        mfu = ref["flops_per_token"] * one["tokens_per_s"] / peak1
        runs[size] = {
            "ptft_1w_tokens_per_s": one["tokens_per_s"], "plain_tokens_per_s": ref["tokens_per_s"],
            "ptft_1w_tokens_per_s_repeats": [x["tokens_per_s"] for x in ones],
            "plain_tokens_per_s_repeats": [x["tokens_per_s"] for x in refs],
            "ray_train_overhead_repeats": overheads, "ray_train_overhead_ratio": median(overheads),
            "flops_per_token": ref["flops_per_token"], "model_flops_per_s": ref["flops_per_token"] * one["tokens_per_s"],
            "mfu_vs_measured_matmul": mfu, "plain_mfu": ref["flops_per_token"] * ref["tokens_per_s"] / peak1,
            "ptft_1w_compiled_tokens_per_s": comp["tokens_per_s"],
            "mfu_compiled": ref["flops_per_token"] * comp["tokens_per_s"] / peak1,
            "data_wait_frac_1w": one["data_wait_frac"],
        }
        if twos:
            ratios = [b["tokens_per_s"] / a["tokens_per_s"] for a, b in zip(ones, twos)]
            two = median(twos, key=_rate)
            runs[size].update({"ptft_2w_tokens_per_s": two["tokens_per_s"],
                               "ptft_2w_tokens_per_s_repeats": [x["tokens_per_s"] for x in twos],
                               "ddp_scaling_repeats": ratios, "ddp_scaling_2w_over_1w": median(ratios),
                               "data_wait_frac_2w": two["data_wait_frac"]})
    save("throughput", {"matmul_flops_per_s_1_thread": peak1, "runs": runs,
                        "goals": {"ray_train_overhead_ratio": 0.95, "mfu_vs_measured_matmul": 0.5,
                                  "ddp_scaling_2w_over_1w": 1.7, "data_wait_frac": 0.05},
                        "summary": {s: {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
                                    for s, r in runs.items()}})


if __name__ == "__main__":
    main()
