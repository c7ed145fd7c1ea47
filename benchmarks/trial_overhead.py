"""Per-trial cost of a one-worker Tune trial: in-process loop vs its own TorchTrainer.

Same sweep (3 trials, same sampled configs, no early stopping), run both ways in one
process on one Ray session; prints and saves the measured wall times.

    .venv/bin/python benchmarks/trial_overhead.py [--data data/rotten_tomatoes.parquet --pretrained CKPT]
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _synthetic(path: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import synthetic_reviews

    texts, labels = synthetic_reviews(900)
    pq.write_table(pa.table({"text": texts, "label": labels}), path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--pretrained", default="none")
    ap.add_argument("--out", default="benchmarks/results/trial_overhead.json")
    a = ap.parse_args()
    from ptft_ray.cluster import init_ray
    from ptft_ray.config import load_config
    from ptft_ray.finetune.sweep import sweep

    tmp = Path(tempfile.mkdtemp(prefix="ptft-bench-"))
    data = a.data or _synthetic(tmp / "reviews.parquet")
    init_ray()
    rows = {}
    for mode in ("always", "never"):
        cfg = load_config("jobs/configs/debug_sweep.yaml", [
            f"finetune.data={data}", "sweep.num_samples=3", "sweep.scheduler=none",
            f"sweep.in_process={mode}", "sweep.max_concurrent_trials=1", "finetune.epochs=1",
            "sweep.epochs=[1]", "sweep.strategies=[full]"])
        t0 = time.time()
        res = sweep(cfg, [a.pretrained], str(tmp / mode))
        wall = time.time() - t0
        trials = list(csv.DictReader(open(tmp / mode / "trials.csv")))
        rows[mode] = {"sweep_wall_s": wall, "trial_wall_s": [float(t["wall_s"]) for t in trials],
                      "best_metric": res["best_metric"]}
    per = {m: sum(r["trial_wall_s"]) / len(r["trial_wall_s"]) for m, r in rows.items()}
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.processor() or ''}",
              "command": " ".join(["python", *sys.argv]), "data": data, "modes": rows,
              "mean_trial_s_in_process": per["always"], "mean_trial_s_torchtrainer": per["never"],
              "saved_per_trial_s": per["never"] - per["always"]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "modes"}, indent=2))


if __name__ == "__main__":
    main()
