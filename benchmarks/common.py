"""Shared by the benchmarks: where results go, the machine and versions, timing helpers."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))


def machine() -> dict:
    import ray
    import torch

    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "host": platform.node(), "cpu": cpu,
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "ray": ray.__version__}


def save(name: str, result: dict) -> dict:
    result = {"machine": machine(), "command": f"python -m benchmarks.{name}", **result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "runs")}, indent=1, default=str))
    return result


def ptft(*args: str, out: Path, reuse: bool = True) -> dict:
    """A ptft-ray command as a user runs it; its run directory's result.json (a finished run
    is reused unless reuse=False)."""
    import subprocess

    if not (reuse and (out / "result.json").is_file()):
        cmd = [str(ROOT / ".venv" / "bin" / "ptft-ray"), *args, "--out", str(out)]
        print("$", " ".join(cmd), flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode:
            sys.exit(f"failed: {' '.join(cmd)}")
    return json.loads((out / "result.json").read_text())


def median(xs: list, key=None):
    """The middle of `xs` (the upper one of an even count), ordered by `key`: a run of
    several repeats, or a number."""
    xs = sorted(xs, key=key)
    return xs[len(xs) // 2] if xs else float("nan")


def matmul_flops(threads: int, n: int = 512, seconds: float = 3.0) -> float:
    """The machine's fp32 matmul FLOPs/s on `threads` threads (n x n @ n x n, 2 n^3 each)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(5):
        a @ b
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        k += 1
    rate = 2 * n ** 3 * k / (time.perf_counter() - t0)
    torch.set_num_threads(old)
    return rate


def process_kind(p) -> str:
    """What a process on this machine is, from its command line (Ray sets worker titles)."""
    try:
        cmd = " ".join(p.cmdline())
    except Exception:
        return "gone"
    for key, name in (("ray::RayTrainWorker", "train workers"), ("MapWorker", "ray data actors"),
                      ("ray::ReadParquet", "ray data tasks"), ("ray::ReadText", "ray data tasks"),
                      ("ray::ReadFiles", "ray data tasks"), ("ray::Map", "ray data tasks"),
                      ("ray::ListFiles", "ray data tasks"), ("ray::", "other ray tasks and actors"),
                      ("default_worker", "idle ray workers"), ("gcs_server", "ray daemons"),
                      ("raylet", "ray daemons"), ("dashboard", "ray daemons"), ("log_monitor", "ray daemons"),
                      ("monitor.py", "ray daemons"), ("runtime_env", "ray daemons")):
        if key in cmd:
            return name
    return "other"


def ray_title(p) -> str:
    """A process's Ray title (ray::IDLE, ray::ReadFilesParquetV2, ray::FooterReader...)."""
    try:
        cmd = p.cmdline()
    except Exception:
        return "gone"
    return cmd[0].split(" ")[0] if cmd and cmd[0].startswith("ray::") else "(not a ray:: worker)"


def plain_step(model, lr: float, compiled: bool = False):
    """The plain PyTorch reference step every benchmark compares against: next-token cross
    entropy (targets of -100 ignored), backward (DDP all-reduces here), clip 1.0, AdamW
    (betas 0.9 / 0.95, weight decay 0.1), as the loop does. -> step(inp, tgt)."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1, fused=True)

    def loss_fn(m, inp, tgt):
        return F.cross_entropy(m(inp).flatten(0, 1).float(), tgt.flatten(), ignore_index=-100)
    fn = torch.compile(loss_fn) if compiled else loss_fn

    def step(inp, tgt) -> None:
        fn(model, inp, tgt).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step
