"""Why DDP scaling (item 4) misses 1.7: the 2-worker ratio split into its causes.

Plain PyTorch, no Ray, same model / batch / sequence, 1 thread per process, random tokens:
  a. 1 process                                   -> the 1-worker reference
  b. 2 independent processes (no communication)  -> what two cores give at all (the ceiling)
  c. 2 processes under DDP (gloo all-reduce)     -> what the all-reduce costs
and ptft_ray's own 2-worker / 1-worker run with the CPU seconds each kind of process used
(Ray's daemons, Ray Data tasks, the two train workers), sampled with psutil.

    .venv/bin/python -m benchmarks.profile_ddp
"""
from __future__ import annotations

import os
import threading
import time

from .common import ROOT, plain_step, process_kind, save

STEPS, WARM, BS, T = 40, 8, 16, 128
KINDS = ["train workers", "ray data tasks", "other ray tasks and actors", "idle ray workers", "ray daemons",
         "other", "gone"]


def _proc(rank: int, world: int, ddp: bool, q) -> None:
    import torch

    from ptft_ray.config import load_config
    from ptft_ray.models import build_lm

    torch.set_num_threads(1)
    if ddp:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
        torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    cfg = load_config(None, ["model.preset=gpt_small", f"data.seq_len={T}"])
    torch.manual_seed(0)
    model = build_lm(cfg.model, 4096)
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model)
    train_step = plain_step(model, 1e-3)  # under DDP the all-reduce overlaps its backward
    x = torch.randint(0, 4096, (BS, T + 1), generator=torch.Generator().manual_seed(rank))
    times, comm = [], []
    for step in range(STEPS):
        t0 = time.perf_counter()
        train_step(x[:, :-1], x[:, 1:])
        times.append(time.perf_counter() - t0)
    if ddp:  # the all-reduce alone, on a gradient-sized buffer
        buf = torch.zeros(sum(p.numel() for p in model.parameters()))
        for _ in range(10):
            t0 = time.perf_counter()
            torch.distributed.all_reduce(buf)
            comm.append(time.perf_counter() - t0)
        torch.distributed.destroy_process_group()
    steady = times[WARM:]
    q.put({"rank": rank, "tokens_per_s": BS * T * len(steady) / sum(steady),
           "allreduce_s": sorted(comm)[len(comm) // 2] if comm else None,
           "step_s": sum(steady) / len(steady)})


def plain(world: int, ddp: bool) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ps = [ctx.Process(target=_proc, args=(r, world, ddp, q)) for r in range(world)]
    for p in ps:
        p.start()
    out = [q.get() for _ in ps]
    for p in ps:
        p.join()
    return {"tokens_per_s": sum(o["tokens_per_s"] for o in out), "per_process": out}


def ptft_with_cpu(workers: int, steps: int = 60) -> dict:
    """ptft_ray pretraining; CPU seconds per process kind over the run."""
    import psutil

    from .throughput import ptft

    seen: dict[int, tuple] = {}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for p in psutil.process_iter():
                try:
                    t = p.cpu_times()
                    # a worker's title changes with its work: it counts as the first kind in KINDS it showed
                    kind = min(process_kind(p), seen.get(p.pid, ("other",))[0], key=KINDS.index)
                    seen[p.pid] = (kind, t.user + t.system, seen.get(p.pid, (None, None, t.user + t.system))[2])
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            stop.wait(0.5)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    import tempfile
    from pathlib import Path

    res = ptft("gpt_small", workers, steps, Path(tempfile.mkdtemp(prefix="ptft-ddp-", dir=ROOT / "runs")))
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    by_kind: dict[str, float] = {}
    for kind, last, first in seen.values():
        by_kind[kind] = by_kind.get(kind, 0.0) + (last - first)
    return {"tokens_per_s": res["tokens_per_s"], "wall_s": wall,
            "cpu_s_by_kind": {k: round(v, 1) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
            "cores_busy": round(sum(by_kind.values()) / wall, 2)}


def main() -> None:
    from ptft_ray.cluster import init_ray

    one = plain(1, False)
    two_free = plain(2, False)
    two_ddp = plain(2, True)
    init_ray()
    p1, p2 = ptft_with_cpu(1), ptft_with_cpu(2)
    r = {
        "plain_1": one, "plain_2_independent": two_free, "plain_2_ddp": two_ddp, "ptft_1w": p1, "ptft_2w": p2,
        "summary": {
            "ceiling_2_independent_over_1": round(two_free["tokens_per_s"] / one["tokens_per_s"], 3),
            "plain_ddp_2_over_1": round(two_ddp["tokens_per_s"] / one["tokens_per_s"], 3),
            "ptft_2w_over_1w": round(p2["tokens_per_s"] / p1["tokens_per_s"], 3),
            "allreduce_ms": round(1e3 * two_ddp["per_process"][0]["allreduce_s"], 1),
            "ddp_step_ms": round(1e3 * two_ddp["per_process"][0]["step_s"], 1),
        },
    }
    save("profile_ddp", r)


if __name__ == "__main__":
    main()
