"""Read what a run left on disk: a pipeline directory (manifest.json), a pretraining run
(result.json + metrics.jsonl) or a sweep (trials.csv + result.json), in any combination."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import PtftError


def _json(p: Path):
    return json.loads(p.read_text()) if p.is_file() else None


def _jsonl(p: Path) -> list[dict]:
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def pretrain_run(d: Path) -> dict:
    return {"dir": str(d), "result": _json(d / "result.json"), "history": _jsonl(d / "metrics.jsonl")}


def trial_curves(sweep_dir: Path, metric: str) -> dict[str, list[tuple[int, float]]]:
    """trial_id -> [(step, metric)] from Tune's per-trial result.json lines."""
    out = {}
    for f in sorted(sweep_dir.glob("tune/*/result.json")):
        pts = [p for p in _jsonl(f) if p.get(metric) is not None and p.get("step") is not None]
        if pts:
            out[pts[0].get("trial_id", f.parent.name)] = [(p["step"], p[metric]) for p in pts]
    return out


def sweep_run(d: Path) -> dict:
    result = _json(d / "result.json") or {}
    trials = list(csv.DictReader(open(d / "trials.csv"))) if (d / "trials.csv").is_file() else []
    metric = result.get("metric", "val_accuracy")
    return {"dir": str(d), "name": d.name, "result": result, "trials": trials, "metric": metric,
            "curves": trial_curves(d, metric), "plan": _json(d / "plan.json"),
            "evaluation": _json(d / "evaluation.json")}


def collect(run_dir: str) -> dict:
    root = Path(run_dir)
    if not root.is_dir():
        raise PtftError(f"report: {run_dir} is not a directory")
    manifest = _json(root / "manifest.json")
    pre = [root] if (root / "metrics.jsonl").is_file() else \
        sorted(p.parent for p in root.glob("*/metrics.jsonl"))
    sweeps = [root] if (root / "trials.csv").is_file() else \
        sorted(p.parent for p in root.glob("*/trials.csv"))
    if not pre and not sweeps:
        raise PtftError(f"report: {run_dir} holds no pretraining run (metrics.jsonl) or sweep "
                        f"(trials.csv); give a pipeline, pretrain or sweep directory")
    return {"root": str(root.resolve()), "manifest": manifest,
            "pretrain": [pretrain_run(p) for p in pre], "sweeps": [sweep_run(s) for s in sweeps],
            "plan": _json(root / "plan.json"), "summary": _json(root / "summary.json"),
            # the pipeline's optional stages after the sweep (compress/stages.py)
            "distill": _json(root / "distill" / "result.json"), "quantize": _json(root / "quantize.json"),
            "explain": _json(root / "explain.json")}
