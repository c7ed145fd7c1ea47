"""The GPU paths a one-GPU machine can show, measured: `python -m benchmarks gpu_check`.

  1. the GPU's own bf16 matmul peak (8192^3 GEMMs): the MFU denominator;
  2. pretraining on Ray Train with use_gpu (bf16 autocast: train.precision auto on CUDA),
     eager and with train.compile: tokens/s and MFU = model FLOPs/s / that peak, where model
     FLOPs per token = 6 N + attention 6 L T d + the tied output projection 6 V d;
  3. a sweep of fractional-GPU in-process trials (8 trials at 0.25 GPU, as many at once as the
     GPU's quarters and the CPUs allow, later trials in actors an earlier one used): every trial
     completes, how many ran at once and in how many processes, the sweep's wall time; its re-scoring and
     test evaluation run in Ray tasks on the GPU (finetune/predictor.on_device);
  4. the planner's throughput probe on the GPU in the trials' precision (bf16 autocast) and in
     fp32: tokens/s of each and the dtype the step computed in;
  5. scoring and explanations off the driver on the GPU against the driver's CPU: the same
     predictions, attributions within tolerance, rows/s of each;
  6. batch prediction on a GPU actor (Ray Data, what distillation's teacher scoring uses) of
     an int8_weight_only export, and the refusal of a CPU-only fbgemm_dynamic one there.

Writes benchmarks/results/gpu_check.json. Uses data/news and data/rotten_tomatoes where `make
data` made them (or `--data DIR`), else generated text (data/synthetic.py: a device machine has
no network; 600 documents, too few for 100 steps of 16k tokens: see docs/guide.md). Each stage
is saved when it ends, so a lease cut short still reports. `--dry-run` walks the same code on
the CPU at toy sizes and writes nothing (a check of this script where no GPU is lent).
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


def inputs(tmp: Path, data: Path = ROOT / "data") -> tuple[str, str]:
    """(corpus, labelled task): the prepared data in `data` (--data DIR; `make data` made
    ROOT/data), else generated."""
    news, rt = data / "news", data / "rotten_tomatoes.parquet"
    if news.is_dir() and rt.is_file():
        return str(news), str(rt)
    from ptft_ray.data.synthetic import smoke_inputs

    return smoke_inputs(str(tmp / "generated"))


def pretrain_run(out: Path, gpu: bool, compile: bool, steps: int, corpus: str) -> dict:
    from ptft_ray.config import load_config
    from ptft_ray.models import build_lm
    from ptft_ray.train.pretrain import pretrain

    size = (["model.preset=gpt_small", "model.d_model=768", "model.n_layers=12", "model.n_heads=12",
             "model.max_seq_len=512", "data.seq_len=512", "train.batch_size=32"] if gpu else
            ["model.preset=gpt_tiny", "data.seq_len=32", "train.batch_size=8"])
    cfg = load_config(None, [*size, f"data.path={corpus}", "data.tokenizer=bpe", "data.vocab_size=8192",
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


def sweep_run(out: Path, checkpoint: str, gpu: bool, task: str) -> dict:
    from ptft_ray.config import load_config
    from ptft_ray.finetune.sweep import sweep

    # 0 = as many as the GPU's quarters allow (debug_sweep.yaml pins 2)
    gpus = ["scaling.use_gpu=true", "scaling.gpus_per_worker=0.25", "sweep.max_concurrent_trials=0"] if gpu else []
    cfg = load_config(str(ROOT / "jobs" / "configs" / "debug_sweep.yaml"), [
        *gpus, f"finetune.data={task}", "finetune.max_examples=2000", "sweep.num_samples=8",
        "sweep.strategies=[full,lora]", "sweep.scheduler=none", "sweep.epochs=[1]", "sweep.cpus_per_trial=1",
        "finetune.max_len=128"])
    t0 = time.time()
    r = sweep(cfg, [checkpoint], str(out), overwrite=True)
    return {"trials": r["trials"], "trials_completed": r["trials_completed"], "trials_failed": r["trials_failed"],
            "max_concurrent_trials": r["max_concurrent_trials"], "trial_processes": trial_processes(out / "tune"),
            "trial_time_s": r["trial_time_s"],
            "wall_s": time.time() - t0, "test_accuracy": r["test_accuracy"], "selection": r["selection"],
            "export": r["export_path"]}


def trial_processes(tune_dir: Path) -> int:
    """How many processes reported the sweep's trials (Tune's `pid` in each result.json): fewer
    than trials where later trials ran in actors an earlier trial had used."""
    pids = {json.loads(x)["pid"] for f in tune_dir.glob("*/result.json") for x in f.read_text().splitlines() if x.strip()}
    return len(pids)


def probe_precision(checkpoint: str, gpu: bool) -> dict:
    """The planner's probe as the planner runs it (a Ray task on the GPU), bf16 and fp32."""
    import ray

    from ptft_ray import tokenizer as toks
    from ptft_ray.config import load_config
    from ptft_ray.finetune.backbones import resolve_sources
    from ptft_ray.planner.throughput import _timed_steps

    (src,) = resolve_sources([checkpoint], load_config(None))
    tok = toks.from_json(src.tokenizer_json)
    task = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0)(_timed_steps)
    out = {}
    for precision in ("auto", "fp32"):
        rate, dtype = ray.get(task.remote(src.model, src.path, tok.vocab_size, tok.pad_id, gpu, precision))
        out[precision] = {"tokens_per_s": rate, "compute_dtype": dtype}
    out["bf16_speedup"] = out["auto"]["tokens_per_s"] / out["fp32"]["tokens_per_s"]
    return out


def off_driver(model: str, task_file: str, gpu: bool) -> dict:
    """Scoring and explanations in a Ray task on the GPU vs this process's CPU."""
    import numpy as np
    import pyarrow.parquet as pq

    from ptft_ray.compress.explain import explain_texts
    from ptft_ray.finetune.predictor import Predictor, _probs, on_device

    texts = pq.read_table(task_file, columns=["text"])["text"].to_pylist()[:512]
    gpus = 1.0 if gpu else 0.0
    t0 = time.perf_counter()
    cpu = Predictor(model).probs(texts)
    t_cpu = time.perf_counter() - t0
    on_device(_probs, model, gpus, texts[:8])  # the task's start and the model's load, untimed
    t0 = time.perf_counter()
    dev = on_device(_probs, model, gpus, texts)
    t_dev = time.perf_counter() - t0
    t0 = time.perf_counter()
    ex_cpu = explain_texts(model, texts[:4], 32)
    t_ex_cpu = time.perf_counter() - t0
    t0 = time.perf_counter()
    ex_dev = explain_texts(model, texts[:4], 32, gpus)
    t_ex_dev = time.perf_counter() - t0
    att = [np.abs(np.array(a["attributions"]) - np.array(b["attributions"])).max() for a, b in zip(ex_cpu, ex_dev)]
    return {"rows": len(texts), "same_predictions": bool((cpu.argmax(1) == dev.argmax(1)).all()),
            "max_prob_diff": float(np.abs(cpu - dev).max()), "cpu_rows_per_s": len(texts) / t_cpu,
            "device_rows_per_s_with_task": len(texts) / t_dev, "explain_cpu_s": t_ex_cpu, "explain_device_s": t_ex_dev,
            "explain_max_attribution_diff": float(max(att)),
            "explain_same_labels": [a["label"] for a in ex_cpu] == [b["label"] for b in ex_dev]}


def int8_on_device(model: str, task_file: str, tmp: Path, gpu: bool) -> dict:
    """Batch prediction on a GPU actor of an int8_weight_only export; a fbgemm_dynamic one is
    refused there before anything starts."""
    from ptft_ray.compress.quantize import quantize
    from ptft_ray.errors import PtftError
    from ptft_ray.serve.batch import predict_file

    gpus = 1.0 if gpu else 0.0
    out = {}
    for method in ("int8_weight_only", "fbgemm_dynamic"):
        q = tmp / method
        quantize(model, str(q), method, overwrite=True)
        try:
            r = predict_file(str(q), task_file, str(tmp / f"{method}.parquet"), gpus_per_actor=gpus, overwrite=True)
            out[method] = {"rows": r["rows"], "rows_per_s": r["rows_per_s"], "actors": r["actors"]}
        except PtftError as e:
            out[method] = {"refused": str(e)}
    return out


def stages(tmp: Path, gpu: bool, corpus: str, task: str):
    """(name, thunk) in the order worth having if the lease runs out: each result is saved
    as soon as it exists, so a cut-off run still reports what it measured."""
    steps = 100 if gpu else 20
    got: dict = {}

    def eager():
        got["eager"] = pretrain_run(tmp / "eager", gpu, False, steps, corpus)
        return got["eager"]

    def sweep():
        got["sweep"] = sweep_run(tmp / "sweep", got["eager"]["checkpoint"], gpu, task)
        return got["sweep"]

    return [("bf16_matmul_peak_flops_per_s", lambda: bf16_peak() if gpu else None),
            ("pretrain_eager", eager),
            ("fractional_gpu_sweep", sweep),
            ("probe_precision", lambda: probe_precision(got["eager"]["checkpoint"], gpu)),
            ("off_driver", lambda: off_driver(got["sweep"]["export"], task, gpu)),
            ("int8_on_device", lambda: int8_on_device(got["sweep"]["export"], task, tmp, gpu)),
            ("pretrain_compiled", lambda: pretrain_run(tmp / "compiled", gpu, True, steps, corpus))]


def derived(out: dict) -> dict:
    """MFU = model FLOPs/s over the measured bf16 peak; compile's speed-up over eager."""
    peak, eager, comp = (out.get(k) for k in ("bf16_matmul_peak_flops_per_s", "pretrain_eager", "pretrain_compiled"))
    d = {}
    for name, run in (("mfu_eager", eager), ("mfu_compiled", comp)):
        if run and peak:
            d[name] = run["flops_per_token"] * run["tokens_per_s"] / peak
    if eager and comp:
        d["compile_speedup"] = comp["tokens_per_s"] / eager["tokens_per_s"]
    return d


def section(r: dict | None) -> list[str]:
    """BENCHMARKS.md's GPU section from gpu_check.json (whatever stages the lease allowed)."""
    if not r:
        return []
    m, g = r.get("machine", {}), lambda k: r.get(k) or {}
    L = ["", "## On one GPU (`python -m benchmarks gpu_check`)", "",
         f"Measured {m.get('date', '?')} on {r['device']} ({m.get('cpus', '?')} CPUs), Python {m.get('python', '?')}, "
         f"torch {r['torch']}, Ray {m.get('ray', '?')}; stages finished: {', '.join(r['stage_s'])}"
         + ("" if r.get("complete") else " (the lease ended before the rest)") + ".", "",
         "| stage | measured | seconds |", "|---|---|---|"]
    peak, e, sw = r.get("bf16_matmul_peak_flops_per_s"), g("pretrain_eager"), g("fractional_gpu_sweep")
    rows = [("bf16_matmul_peak_flops_per_s", f"bf16 8192^3 matmul {peak / 1e12:.0f} TFLOP/s" if peak else None),
            ("pretrain_eager", e and f"gpt_small ({e['params'] / 1e6:.1f} M params, 512 tokens x 32) eager bf16 on Ray "
             f"Train: {e['tokens_per_s']:,.0f} tokens/s, MFU {r.get('mfu_eager', 0):.1%} of that peak"),
            ("pretrain_compiled", g("pretrain_compiled") and f"the same compiled: "
             f"{r['pretrain_compiled']['tokens_per_s']:,.0f} tokens/s ({r.get('compile_speedup', 0):.2f}x eager)"),
            ("fractional_gpu_sweep", sw and f"{sw['trials_completed']}/{sw['trials']} trials at 0.25 GPU completed, "
             f"{sw['max_concurrent_trials']} at once"
             + (f" in {sw['trial_processes']} processes" if "trial_processes" in sw else "")
             + f", test accuracy {sw['test_accuracy']:.3f}"),
            ("probe_precision", g("probe_precision") and "planner probe: bf16 autocast "
             f"{r['probe_precision']['auto']['tokens_per_s']:,.0f} vs fp32 {r['probe_precision']['fp32']['tokens_per_s']:,.0f}"
             f" tokens/s ({r['probe_precision']['bf16_speedup']:.2f}x)"),
            ("off_driver", g("off_driver") and f"scoring in a GPU task: same predictions "
             f"{r['off_driver']['same_predictions']}, {r['off_driver']['device_rows_per_s_with_task']:.0f} rows/s with the "
             f"task's start vs {r['off_driver']['cpu_rows_per_s']:.0f} on the driver's CPUs; attributions within "
             f"{r['off_driver']['explain_max_attribution_diff']:.0e}"),
            ("int8_on_device", g("int8_on_device") and "int8_weight_only on a GPU actor: "
             f"{r['int8_on_device']['int8_weight_only'].get('rows_per_s', '-')} rows/s; fbgemm_dynamic "
             + ("refused before start" if "refused" in r["int8_on_device"]["fbgemm_dynamic"] else "NOT refused"))]
    L += [f"| {k} | {text} | {r['stage_s'].get(k, '-')} |" for k, text in rows if text]
    L += [f"| {k} | not measured (lease ended) | - |" for k, text in rows if not text]
    return L


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
    data = Path(argv[argv.index("--data") + 1]) if "--data" in argv else ROOT / "data"
    corpus, task = inputs(tmp, data)
    out = {"device": torch.cuda.get_device_name(0) if gpu else "cpu (dry run)", "torch": torch.__version__,
           "data": {"corpus": corpus, "task": task}, "stage_s": {}, "complete": False}
    for name, thunk in stages(tmp, gpu, corpus, task):
        t0 = time.time()
        out[name] = thunk()
        out["stage_s"][name] = round(time.time() - t0, 1)
        out.update(derived(out))
        print(f"gpu_check: {name} done in {out['stage_s'][name]} s", flush=True)
        if not dry:
            save("gpu_check", out)
    out["complete"] = True
    print(json.dumps(out, indent=2, default=str))
    if not dry:
        save("gpu_check", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
