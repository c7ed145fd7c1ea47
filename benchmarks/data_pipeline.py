"""Item 3 of the benchmark issue: the Ray Data pipeline.
  - read + tokenize + pack tokens/s of the real pretraining pipeline (BPE 4096, news),
    consumed on the driver as fast as it can go; the trainer's own tokens/s and data-wait
    fraction come from benchmarks/results/throughput.json (same run of `make bench`);
  - memory while streaming corpora of 1x, 4x and 8x the object store (100 MB) through the
    same pipeline (byte tokenizer: tokens are 4-byte ints, so 25 MB of text fills the
    store once), each in a fresh process with its own Ray: the peak proportional set size
    (PSS) of the driver and all its Ray processes must stay flat, not grow with the corpus.
    Each size runs REPEATS times; its figure is the run with the median peak.
Both parts stream (data.cache_mb=0), as a corpus larger than memory does: under the default
cache, the news corpus and the 1x and 4x corpora would be tokenized into the object store
before the clock starts.

    .venv/bin/python -m benchmarks.data_pipeline
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

from .common import RESULTS, median, save

STORE = 100 * 1024 ** 2
REPEATS = 3


def tree_pss(key=None) -> tuple[int, dict]:
    """PSS of the driver and every process under it, in total and grouped by `key(process)`
    (default: common.process_kind, the kind of process)."""
    import psutil

    from .common import process_kind

    key = key or process_kind
    me = psutil.Process()
    total, kinds = 0, {}
    for p in [me, *me.children(recursive=True)]:
        try:
            pss = p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += pss
        k = "driver" if p.pid == me.pid else key(p)
        n, mb = kinds.get(k, (0, 0.0))
        kinds[k] = (n + 1, mb + pss / 2 ** 20)
    return total, {k: {"processes": n, "pss_mb": round(mb)} for k, (n, mb) in kinds.items()}


def stream(path: str, tokenizer: str, vocab: int = 4096, sample_s: float = 0.5) -> dict:
    from ptft_ray import tokenizer as toks
    from ptft_ray.config import load_config
    from ptft_ray.data import sources
    from ptft_ray.data.corpus import build_datasets

    dc = load_config(None, [f"data.path={path}", f"data.tokenizer={tokenizer}", f"data.vocab_size={vocab}",
                            "data.seq_len=128", "data.max_val_blocks=16", "data.docs_per_batch=256",
                            "data.cache_mb=0"]).data
    files, fmt = sources.resolve_files(path)
    tok = toks.build(tokenizer, sources.sample_texts(files, fmt, "text", 500), vocab)
    train, _, _ = build_datasets(dc, tok, files, fmt)
    peak, stop, series = [0, {}], threading.Event(), []

    def sampler():
        while not stop.is_set():
            total, kinds = tree_pss()
            series.append((round(time.perf_counter() - t0, 1), round(total / 2 ** 20)))
            if total > peak[0]:
                peak[:] = [total, kinds]
            time.sleep(sample_s)
    th = threading.Thread(target=sampler, daemon=True)
    base, base_kinds = tree_pss()
    t0, tokens = time.perf_counter(), 0
    th.start()
    for b in train.iter_batches(batch_size=64, batch_format="numpy"):
        tokens += int((b["tokens"] != tok.pad_id).sum())
    wall = time.perf_counter() - t0
    stop.set(), th.join()
    return {"tokens": tokens, "tokenized_bytes": tokens * 4, "wall_s": wall, "tokens_per_s": tokens / wall,
            "pss_before_mb": base / 2 ** 20, "peak_pss_mb": peak[0] / 2 ** 20,
            "before_by_kind": base_kinds, "peak_by_kind": peak[1], "pss_mb_over_time": series}


def synthetic_corpus(src: str, text_bytes: int, out: Path) -> str:
    """Real news documents repeated until the corpus holds text_bytes (not committed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ptft_ray.data import sources

    files, fmt = sources.resolve_files(src)
    docs = [t for f in files for t in sources.read_table(f, fmt, ["text"])["text"].to_pylist()]
    out.mkdir(parents=True, exist_ok=True)
    size, part, i = 0, [], 0
    while size < text_bytes:
        d = f"{i} " + docs[i % len(docs)]
        part.append(d)
        size += len(d.encode())
        i += 1
        if len(part) == 2000:
            pq.write_table(pa.table({"text": part}), out / f"part-{i:07d}.parquet")
            part = []
    if part:
        pq.write_table(pa.table({"text": part}), out / f"part-{i:07d}.parquet")
    return str(out)


def _child(path: str, tokenizer: str, q) -> None:
    import ray

    os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    ray.init(num_cpus=2, object_store_memory=STORE, include_dashboard=False, log_to_driver=False)
    q.put(stream(path, tokenizer))
    ray.shutdown()


def fresh(path: str, tokenizer: str) -> dict:
    """stream() in a new process with its own Ray: each corpus is measured from a cold start,
    not on top of the worker processes (and their heaps) a previous stream left alive."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(path, tokenizer, q))
    p.start()
    r = q.get()
    p.join()
    return r


def median_run(runs: list[dict]) -> dict:
    """The run whose peak is the median of `runs`, with every run's peak beside it: one run's
    peak is too noisy to compare sizes by (BENCHMARKS.md, item 3)."""
    return {**median(runs, key=lambda r: r["peak_pss_mb"]), "peaks_mb": [round(r["peak_pss_mb"]) for r in runs]}


def main() -> None:
    real = fresh("data/news", "bpe")
    tmp = Path(tempfile.mkdtemp(prefix="ptft-data-"))
    mem = {}
    for mult, text_mb in (("1x", 25), ("4x", 100), ("8x", 200)):
        path = synthetic_corpus("data/news", text_mb * 2 ** 20, tmp / mult)
        mem[mult] = median_run([fresh(path, "byte") for _ in range(REPEATS)])
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    tp = json.loads((RESULTS / "throughput.json").read_text()) if (RESULTS / "throughput.json").is_file() else None
    trainer = tp and tp["runs"]["gpt_small"].get("ptft_2w_tokens_per_s")
    growth = mem["4x"]["peak_pss_mb"] / mem["1x"]["peak_pss_mb"]
    for r in mem.values():  # what streaming added above the processes' memory before it began
        r["added_pss_mb"] = r["peak_pss_mb"] - r["pss_before_mb"]
    save("data_pipeline", {
        "object_store_mb": STORE / 2 ** 20, "pipeline_bpe_news": real, "memory": mem,
        "pipeline_over_trainer_tokens_per_s": real["tokens_per_s"] / trainer if trainer else None,
        "trainer_tokens_per_s_2w": trainer,
        "trainer_data_wait_frac": tp and {s: {k: v for k, v in r.items() if k.startswith("data_wait")}
                                          for s, r in tp["runs"].items()},
        "peak_pss_growth_4x_over_1x": growth,
        "peak_pss_growth_8x_over_4x": mem["8x"]["peak_pss_mb"] / mem["4x"]["peak_pss_mb"],
        "corpus_over_store": {m: r["tokenized_bytes"] / STORE for m, r in mem.items()},
        "goals": {"data_wait_frac": 0.05, "peak_pss_growth_4x_over_1x": "flat (~1.0)"}})


if __name__ == "__main__":
    main()
