"""Blend with TF-IDF + LR (finetune/blend.py) on finished exports: the rule `finetune.blend=auto`
applies, replayed on sweeps that ran without it, and each part tested on the whole test split.

    python -m benchmarks.blend [RUN_DIR ...]   # default: the planned sweeps of runs/forecast_check
    python -m benchmarks.blend planned         # only the table of runs/blend_check (the sweeps run with it)

For each run: the export's own probabilities on the sweep's validation rows and on the test
rows, TF-IDF + LR fitted on the run's training rows, the weight the rule picks on validation,
then test accuracy of the model, of TF-IDF + LR and of the blend, with McNemar's test of the
blend against each on the same rows. -> benchmarks/results/blend.json
"""
from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.common import ROOT, save

DEFAULT = sorted(str(p) for p in (ROOT / "runs" / "forecast_check").glob("*") if (p / "model").is_dir())


def one(run: str) -> dict:
    import numpy as np

    from ptft_ray.data.tasks import load_task
    from ptft_ray.finetune import blend
    from ptft_ray.finetune.predictor import Predictor
    from ptft_ray.finetune.stats import mcnemar

    pr = Predictor(str(Path(run) / "model"), blend=False)
    task = load_task(pr.cfg.finetune, label_names=pr.labels)
    tr, va, te = (task.splits[s] for s in ("train", "val", "test"))
    texts = lambda idx: [task.texts[i] for i in idx]  # noqa: E731
    base = blend.TfidfLR.fit(texts(tr), task.labels[tr], len(pr.labels))
    w, val = blend.choose(pr.model_probs(texts(va)), base.probs(texts(va)), task.labels[va])
    pm, pb, y = pr.model_probs(texts(te)), base.probs(texts(te)), task.labels[te]
    right = {"model": pm.argmax(1) == y, "tfidf_lr": pb.argmax(1) == y,
             "blend": (w * pm + (1 - w) * pb).argmax(1) == y}
    row = {"run": str(Path(run).relative_to(ROOT)) if Path(run).is_relative_to(ROOT) else run,
           "n_train": int(len(tr)), "n_val": int(len(va)), "n_test": int(len(te)), "weight": w,
           "val_accuracy": {"model": val[1.0], "tfidf_lr": val[0.0], "blend": val[w]},
           "test_accuracy": {k: round(float(np.mean(v)), 4) for k, v in right.items()},
           "blend_vs_tfidf_lr": mcnemar(right["blend"].tolist(), right["tfidf_lr"].tolist()),
           "blend_vs_model": mcnemar(right["blend"].tolist(), right["model"].tolist())}
    print(row, flush=True)
    return row


def planned() -> list[dict]:
    """Planned sweeps run with the blend on (runs/blend_check/): what each part realised."""
    import json

    rows = []
    for f in sorted((ROOT / "runs" / "blend_check").glob("*/result.json")):
        r = json.loads(f.read_text())
        b = r.get("blend") or {}
        alone = b.get("test_accuracy_model_alone", None if b.get("kept") else r["test_accuracy"])  # no blend: the model
        rows.append({"run": str(f.parent.relative_to(ROOT)), "weight": b.get("weight"), "kept": b.get("kept"),
                     "test_accuracy": r["test_accuracy"], "model_alone": alone,
                     "tfidf_lr": r["baseline"]["tfidf_lr"]["accuracy"], "vs_tfidf_lr": r["vs_tfidf_lr"],
                     "test_n": r["test_n"],
                     "wall_s": round(r["wall_s"], 1), "forecast": (r.get("forecast") or {}).get("test_accuracy"),
                     **_budget(f.parent)})
    return rows


def _budget(run: Path) -> dict:
    """The plan's budget and what the command spent before the sweep began (planning): the
    budget is the command's wall clock, planning included."""
    import json

    plan = run / "plan.json"
    p = json.loads(plan.read_text()) if plan.is_file() else {}
    return {"budget_s": p.get("budget_s"), "planning_s": p.get("planning_s")}


def spent_text(x: dict) -> str:
    """'planning + sweep s' where the plan recorded its planning, else the sweep's alone."""
    p = x.get("planning_s")
    return f"{p:.0f} + {x['wall_s']:.0f} s" if p is not None else f"sweep {x['wall_s']:.0f} s"


def section(r: dict) -> list[str]:
    if not r:
        return []
    L = ["", "## Blend with TF-IDF + LR", "",
         f"Command: `{r['command']}`. The rule of `finetune.blend=auto` (finetune/blend.py: the weight w of the "
         "model's probabilities against TF-IDF + LR's, picked on the sweep's validation rows from 0, 0.1, ..., 1; "
         "w = 1 unless a blend beats the model there) replayed on planned sweeps that ran without it, each part "
         "tested on the whole test split; McNemar on the same rows.", "",
         "| run | w | test: model | TF-IDF + LR | blend | blend - TF-IDF + LR (p) | blend - model (p) |",
         "|---|---|---|---|---|---|---|"]
    for x in r["runs"]:
        t, a, b = x["test_accuracy"], x["blend_vs_tfidf_lr"], x["blend_vs_model"]
        L.append(f"| {x['run']} | {x['weight']:g} | {t['model']:.4f} | {t['tfidf_lr']:.4f} | {t['blend']:.4f} | "
                 f"{a['points']:+.1f} ({a['p_value']:.2g}) | {b['points']:+.1f} ({b['p_value']:.2g}) |")
    if r.get("planned"):
        L += ["", "Planned sweeps with the blend on (`ptft-ray sweep --plan auto --budget B`, the plan shrunk below "
                  "one sized trial, so `finetune.blend=auto`; runs/blend_check/):", "",
              "| run | w | test: blend | the model alone | forecast of the model (80 %) | TF-IDF + LR | blend - TF-IDF + LR (p) | test rows | planning + sweep |",
              "|---|---|---|---|---|---|---|---|---|"]
        for x in r["planned"]:
            fc, v = x["forecast"], x["vs_tfidf_lr"]
            L.append(f"| {x['run']} | {x['weight']:g} | {x['test_accuracy']:.4f} | {x['model_alone']:.4f} | "
                     f"{fc[1]:.3f} ({fc[0]:.3f}-{fc[2]:.3f}) | {x['tfidf_lr']:.4f} | {v['points']:+.1f} ({v['p_value']:.2g}) | "
                     f"{x.get('test_n', '-')} | {spent_text(x)} |")
    return L


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    if argv == ["planned"]:
        import json

        kept = json.loads((ROOT / "benchmarks" / "results" / "blend.json").read_text())
        # a run directory this checkout lacks keeps its row; one it has is read again
        rows = {x["run"]: x for x in kept.get("planned", [])} | {x["run"]: x for x in planned()}
        save("blend", {**kept, "planned": list(rows.values())})
        return 0
    runs = argv or DEFAULT
    if not runs:  # a fresh checkout: the results file keeps the runs it was made from
        print("no sweep with an export under runs/forecast_check (python -m benchmarks.forecast held_out "
              "makes them); give RUN_DIR ...", file=sys.stderr)
        return 0
    save("blend", {"runs": [one(r) for r in runs], "planned": planned()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
