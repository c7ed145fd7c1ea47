"""Where one-thread CPU inference time goes, for the compress benchmark's misses: the
fraction of a MiniLM forward spent in Linear layers (what int8 can speed up: Amdahl's
bound on the int8 speedup), and, for the distilled student at batch 1, the fraction spent
outside the model (tokenizing, padding, Python).

    .venv/bin/python -m benchmarks.profile_infer [--teacher DIR] [--student DIR]
writes benchmarks/results/profile_infer.json."""
from __future__ import annotations

import argparse
import time

from .common import ROOT, save
from .compress import _teacher_default, _test_texts


def linear_fraction(model_dir: str, texts: list[str], batch: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from ptft_ray.finetune.predictor import Predictor

    torch.set_num_threads(1)
    p = Predictor(model_dir)
    p.probs(texts[:batch], batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        if batch == 1:
            for x in texts:
                p.probs([x])
        else:
            p.probs(texts, batch)
    ev = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(ev.values())
    gemm = sum(v for k, v in ev.items() if k in ("aten::addmm", "aten::mm", "aten::linear", "aten::matmul"))
    linear_ops = sum(v for k, v in ev.items() if k in ("aten::addmm", "aten::mm"))
    top = sorted(ev.items(), key=lambda kv: -kv[1])[:8]
    return {"batch": batch, "texts": len(texts), "gemm_frac_of_op_time": round(linear_ops / total, 3),
            "top_ops_ms": {k: round(v / 1000, 1) for k, v in top}, "gemm_like_frac": round(gemm / total, 3)}


def outside_model(model_dir: str, texts: list[str]) -> dict:
    """Batch 1: wall time per text, and the part spent in the model's forward."""
    import torch

    from ptft_ray.data.tasks import encode
    from ptft_ray.finetune.export import logits_of
    from ptft_ray.finetune.predictor import Predictor

    torch.set_num_threads(1)
    p = Predictor(model_dir)
    enc = [encode(p.tok, [x], p.max_len) for x in texts]
    t = time.perf_counter()
    for x in texts:
        p.probs([x])
    wall = time.perf_counter() - t
    t = time.perf_counter()
    for ids, lengths in enc:
        logits_of(p.model, ids, lengths)
    fwd = time.perf_counter() - t
    return {"ms_per_text": round(1000 * wall / len(texts), 2), "forward_ms_per_text": round(1000 * fwd / len(texts), 2),
            "outside_forward_frac": round(1 - fwd / wall, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--student", default=str(ROOT / "runs/compress/distill_layers2/model"))
    a = ap.parse_args()
    teacher = a.teacher or _teacher_default()
    _, texts = _test_texts(teacher)
    out = {"teacher": teacher, "student": a.student,
           "teacher_linear": [linear_fraction(teacher, texts[:64], 1), linear_fraction(teacher, texts[:256], 64)],
           "teacher_batch_1": outside_model(teacher, texts[:128]),
           "student_batch_1": outside_model(a.student, texts[:128])}
    for r in out["teacher_linear"]:
        r["amdahl_bound_if_gemm_2x"] = round(1 / (1 - r["gemm_frac_of_op_time"] / 2), 2)
        r["amdahl_bound_if_gemm_4x"] = round(1 / (1 - 0.75 * r["gemm_frac_of_op_time"]), 2)
    save("profile_infer", out)


if __name__ == "__main__":
    main()
