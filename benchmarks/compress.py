"""What compression, explanation and serving buy on the main job's model (MiniLM fine-tuned
on Rotten Tomatoes at 1,000 labels): distillation, int8, attributions, batch inference on
Ray Data vs a plain PyTorch loop, and a bounded HTTP load test of `ptft-ray serve`.

    .venv/bin/python -m benchmarks.compress [--teacher DIR] [--parts distill,quantize,explain,batch,serve]
writes benchmarks/results/compress.json (each part is kept as it finishes; a part already
measured is skipped unless named in --parts). Needs the main job's export (`make run`)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from .common import RESULTS, ROOT, save

DATA = "data/rotten_tomatoes.parquet"
OUT = ROOT / "runs" / "compress"
PARTS = ("distill", "quantize", "explain", "batch", "serve", "memory")
STORE = 100 * 1024 ** 2  # the object store of the memory part's own Ray


def _teacher_default() -> str:
    for d in ("runs/main/sweep_pretrained/model", "runs/main_minilm/sweep_pretrained/model"):
        if (ROOT / d / "meta.json").is_file():
            return str(ROOT / d)
    sys.exit("no teacher: run `make run` first (or give --teacher DIR)")


def _test_texts(model_dir: str):
    from ptft_ray.finetune.export import load_finetuned
    from ptft_ray.data.tasks import load_task
    import dataclasses

    _, _, cfg, meta = load_finetuned(model_dir)
    task = load_task(dataclasses.replace(cfg.finetune, data=DATA), label_names=meta["task_info"]["labels"])
    return task, [task.texts[i] for i in task.splits["test"]]


def rows_per_s(model_dir: str, texts: list[str], batch: int) -> float:
    import torch

    from ptft_ray.finetune.predictor import Predictor

    torch.set_num_threads(1)
    p = Predictor(model_dir)
    p.probs(texts[:batch], batch)
    best = 0.0
    for _ in range(2):  # best of two: the other core may be busy
        t = time.perf_counter()
        p.probs(texts, batch) if batch > 1 else [p.probs([x]) for x in texts]
        best = max(best, len(texts) / (time.perf_counter() - t))
    return best


def part_distill(teacher: str) -> dict:
    from .hf_rt import unlabeled_corpus

    out = OUT / "distill_layers2"
    if not (out / "result.json").is_file():
        cmd = [str(ROOT / ".venv/bin/ptft-ray"), "distill", "--teacher", teacher, "--student", "layers:2", "--data", DATA,
               "--unlabeled", unlabeled_corpus(), "--out", str(out), "--set", "finetune.epochs=2",
               "--set", "optim.lr=1e-4", "--overwrite"]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
    r = json.loads((out / "result.json").read_text())
    # the speeds again, best of two on a machine doing nothing else (distill's own figure is
    # one pass, taken right after training)
    _, texts = _test_texts(teacher)
    speed = {}
    for b, n in ((1, 128), (64, 256)):
        t_rate, s_rate = rows_per_s(teacher, texts[:n], b), rows_per_s(r["model"], texts[:n], b)
        speed[f"batch_{b}"] = {"teacher_rows_per_s": round(t_rate, 1), "student_rows_per_s": round(s_rate, 1),
                               "speedup": round(s_rate / t_rate, 2)}
    r["speed_in_distill"], r["speed"] = r["speed"], speed
    return {"command": "ptft-ray distill --student layers:2 --unlabeled <RT training split> --set finetune.epochs=2 --set optim.lr=1e-4",
            **{k: r[k] for k in ("teacher_accuracy", "student_accuracy", "teacher_accuracy_ci", "student_accuracy_ci",
                                 "points_lost", "vs_teacher", "speed", "speed_in_distill", "teacher_params", "student_params",
                                 "transfer_rows", "unlabeled_rows", "test_n", "temperature", "alpha", "wall_s")}}


def part_quantize(teacher: str) -> dict:
    from ptft_ray.compress.quantize import quantize
    from ptft_ray.finetune.evaluate import evaluate_export
    from ptft_ray.finetune.stats import paired

    _, texts = _test_texts(teacher)
    sample = texts[:256]
    base = evaluate_export(teacher, DATA, "test")
    out = {"fp32": {"accuracy": base["accuracy"], "bytes": sum(f.stat().st_size for f in Path(teacher).iterdir()),
                    "rows_per_s_batch_1": rows_per_s(teacher, sample[:128], 1),
                    "rows_per_s_batch_64": rows_per_s(teacher, sample, 64)}}
    for method in ("int8_weight_only", "fbgemm_dynamic", "int8_dynamic"):
        qd = OUT / f"q_{method}"
        info = quantize(teacher, str(qd), method, overwrite=True)
        ev = evaluate_export(str(qd), DATA, "test") if method != "int8_dynamic" else None
        r = {"bytes": sum(f.stat().st_size for f in qd.iterdir()), "state_bytes": info["int8_state_bytes"],
             "rows_per_s_batch_1": rows_per_s(str(qd), sample[:(128 if method != "int8_dynamic" else 16)], 1),
             "rows_per_s_batch_64": rows_per_s(str(qd), sample if method != "int8_dynamic" else sample[:64], 64)}
        if ev:
            r.update(accuracy=ev["accuracy"], points_lost=round(100 * (base["accuracy"] - ev["accuracy"]), 2),
                     vs_fp32=paired(base, ev))
        r["speedup_batch_1"] = round(r["rows_per_s_batch_1"] / out["fp32"]["rows_per_s_batch_1"], 2)
        r["speedup_batch_64"] = round(r["rows_per_s_batch_64"] / out["fp32"]["rows_per_s_batch_64"], 2)
        r["size_ratio"] = round(out["fp32"]["bytes"] / r["bytes"], 2)
        out[method] = r
        print(method, json.dumps(r), flush=True)
    out["threads"] = 1
    return out


def part_explain(teacher: str, n: int = 300) -> dict:
    import numpy as np

    from ptft_ray.compress.explain import Explainer, class_tokens, deletion_drop

    _, texts = _test_texts(teacher)
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in sorted(rng.choice(len(texts), size=min(n, len(texts)), replace=False))]
    ex = Explainer(teacher, n_steps=50)
    t = time.perf_counter()
    exps = [ex.explain(x) for x in sample]
    wall = time.perf_counter() - t
    rel = [e["relative_delta"] for e in exps]
    drops = [deletion_drop(ex, e, 3, rng) for e in exps]
    top, rand = float(np.mean([d[0] for d in drops])), float(np.mean([d[1] for d in drops]))
    return {"texts": len(sample), "n_steps": 50, "s_per_text": round(wall / len(sample), 3),
            "frac_relative_delta_under_5pct": float(np.mean([r < 0.05 for r in rel])),
            "median_relative_delta": float(np.median(rel)), "max_relative_delta": float(np.max(rel)),
            "deletion_top3_prob_drop": round(top, 4), "deletion_random3_prob_drop": round(rand, 4),
            "top3_beats_random_frac": float(np.mean([a > b for a, b in drops])),
            "class_tokens": class_tokens(exps, top=8, min_count=3)}


def part_batch(teacher: str, rows: int = 6000) -> dict:
    import pyarrow.parquet as pq

    from ptft_ray.finetune.predictor import Predictor

    src = pq.read_table(ROOT / DATA).slice(0, rows)
    f = OUT / "batch_in.parquet"
    OUT.mkdir(parents=True, exist_ok=True)
    pq.write_table(src, f)
    texts = src["text"].to_pylist()
    import torch

    torch.set_num_threads(1)
    p = Predictor(teacher)
    t = time.perf_counter()
    for i in range(0, len(texts), 64):  # the plain loop: the same model, batches of 64 in file order
        p.probs(texts[i:i + 64], 64)
    plain = len(texts) / (time.perf_counter() - t)
    cmd = [str(ROOT / ".venv/bin/ptft-ray"), "predict", "--model", teacher, "--data", str(f), "--out",
           str(OUT / "batch_out.parquet"), "--overwrite"]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    steady = summary["rows_per_s_after_first_batch"]
    return {"rows": len(texts), "plain_loop_rows_per_s_1_thread": round(plain, 1),
            "ray_data_rows_per_s_steady": steady, "ray_data_rows_per_s_in_job": summary["rows_per_s"],
            "ray_data_rows_per_s_with_startup": round(len(texts) / wall, 1), "actors": summary["actors"],
            "ratio_steady": round(steady / plain, 3), "ratio_in_job": round(summary["rows_per_s"] / plain, 3),
            "ratio_with_startup": round(len(texts) / wall / plain, 3)}


def _load_test(url: str, texts: list[str], clients: int, seconds: float) -> dict:
    import urllib.request

    lat, stop, lock = [], time.perf_counter() + seconds, threading.Lock()

    def client(k):
        i = k
        while time.perf_counter() < stop:
            body = json.dumps({"text": texts[i % len(texts)]}).encode()
            t = time.perf_counter()
            req = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as resp:
                resp.read()
            with lock:
                lat.append(time.perf_counter() - t)
            i += clients

    t0 = time.perf_counter()
    ths = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return {"clients": clients, "requests": len(lat), "requests_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(1000 * lat[len(lat) // 2], 1), "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 1)}


def part_serve(teacher: str, seconds: float = 20.0) -> dict:
    _, texts = _test_texts(teacher)
    port = 8431
    proc = subprocess.Popen([str(ROOT / ".venv/bin/ptft-ray"), "serve", "--model", teacher, "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        _load_test(info["url"], texts, 4, 3)  # warm-up
        runs = [_load_test(info["url"], texts, c, seconds) for c in (1, 8, 32)]
    finally:
        proc.send_signal(2)
        proc.wait(timeout=120)
    return {"replicas": 1, "cpus_per_replica": 1, "max_batch_size": 32, "batch_wait_ms": 10, "seconds_per_level": seconds,
            "runs": runs, "start_s": info["start_s"]}


def tiny_export(out: Path) -> str:
    """A 2-layer, 32-wide random BERT classifier with MiniLM's tokenizer, as an export: the
    memory part measures the pipeline, so the model should cost next to nothing."""
    from transformers import BertConfig, BertForSequenceClassification

    from ptft_ray import tokenizer as toks
    from ptft_ray.config import load_config
    from ptft_ray.models.hf import HFClassifier
    from ptft_ray.train import checkpoint as ckpt

    if (out / "meta.json").is_file():
        return str(out)
    tok = toks.HFTokenizer.from_dir(ROOT / "data/models/minilm")
    labels = ["fresh", "rotten"]
    model = HFClassifier(BertForSequenceClassification(BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_labels=2, id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)})))
    cfg = load_config(None, [f"model.hf={ROOT / 'data/models/minilm'}", "finetune.max_len=64"])
    meta = {"format": 1, "task": "cls", "config": cfg.to_dict(),
            "task_info": {"labels": labels, "vocab_size": tok.vocab_size, "pad_id": tok.pad_id}}
    ckpt.write_dir(out, model, meta, tok.to_json())
    return str(out)


def _memory_child(model: str, path: str, out: str, q) -> None:
    import ray

    from .common import ray_title
    from .data_pipeline import tree_pss

    def titles() -> dict:  # PSS and count per Ray process title (ray::IDLE, ray::ReadParquet...)
        return tree_pss(ray_title)[1]

    from ptft_ray.cluster import local_ray_data_defaults

    local_ray_data_defaults(2)  # what init_ray does for a local Ray (here with a small object store)
    ray.init(num_cpus=2, object_store_memory=STORE, include_dashboard=False, log_to_driver=False)
    from ptft_ray.serve.batch import predict_file

    peak, stop, series, kinds = [0, {}], threading.Event(), [], []

    def sampler():
        t0 = time.time()
        while not stop.is_set():
            total, by_kind = tree_pss()
            series.append(round(total / 2 ** 20))
            # which processes hold the memory: driver, Ray Data read/map workers, the actor, raylet...
            kinds.append({"t_s": round(time.time() - t0, 1), "total_mb": series[-1],
                          **{k: v["pss_mb"] for k, v in by_kind.items()}})
            if total > peak[0]:
                peak[0], peak[1] = total, {**kinds[-1], "processes": titles()}
            time.sleep(0.5)
    base, _ = tree_pss()
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    r = predict_file(model, path, out, overwrite=True)
    stop.set(), th.join()
    r["processes_at_end"] = titles()
    q.put({**r, "pss_before_mb": round(base / 2 ** 20), "peak_pss_mb": round(peak[0] / 2 ** 20),
           "pss_mb_over_time": series[::4], "pss_at_peak_by_process": peak[1], "pss_by_process_over_time": kinds[::4]})
    ray.shutdown()


def part_memory(teacher: str) -> dict:
    """predict --data on text files of 1x and 4x the object store (100 MB), each in a fresh
    process with its own Ray: the peak PSS of the driver and its Ray processes should stay flat."""
    import multiprocessing as mp

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .data_pipeline import synthetic_corpus

    model = tiny_export(OUT / "tiny_export")
    runs = {}
    for mult in (1, 4):
        d = OUT / f"memory_{mult}x"
        if not d.is_dir():  # Rotten Tomatoes snippets repeated to mult x the object store (not committed),
            # 16 to a row: the pipeline's memory is about bytes, and 885k one-snippet rows took 13 minutes
            src = OUT / "memory_docs.parquet"
            if not src.is_file():
                snippets = pq.read_table(ROOT / DATA)["text"].to_pylist()
                pq.write_table(pa.table({"text": [" ".join(snippets[i:i + 16]) for i in range(0, len(snippets), 16)]}),
                               src)
            synthetic_corpus(str(src), mult * STORE, d)
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        p = ctx.Process(target=_memory_child, args=(model, str(d), str(OUT / f"memory_{mult}x.out.parquet"), q))
        p.start()
        runs[f"{mult}x"] = q.get()
        p.join()
        (OUT / f"memory_{mult}x.out.parquet").unlink(missing_ok=True)
        print(mult, {k: v for k, v in runs[f"{mult}x"].items() if not k.endswith("over_time")}, flush=True)
    return {"object_store_mb": STORE // 2 ** 20, "runs": runs,
            "peak_pss_growth_4x_over_1x": round(runs["4x"]["peak_pss_mb"] / runs["1x"]["peak_pss_mb"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--parts", default=",".join(PARTS))
    a = ap.parse_args()
    prev = json.loads((RESULTS / "compress.json").read_text()) if (RESULTS / "compress.json").is_file() else {}
    # the memory part scores with its own tiny model: it needs no teacher (the table keeps its own)
    teacher = a.teacher or (prev.get("teacher", "") if a.parts == "memory" else _teacher_default())
    result = {k: prev[k] for k in PARTS if k in prev}
    for part in a.parts.split(","):
        t = time.time()
        result[part] = globals()[f"part_{part}"](teacher)
        result[part]["part_wall_s"] = round(time.time() - t, 1)
        save("compress", {"teacher": teacher, "data": DATA, **result})


if __name__ == "__main__":
    main()
