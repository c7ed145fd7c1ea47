"""The pipeline's optional stages after the sweep, on its best export:

    distill   RUN_DIR/distill/      a smaller student (distill.py), result.json
    quantize  RUN_DIR/quantized/    int8 export + RUN_DIR/quantize.json (accuracy, size, speed)
    explain   RUN_DIR/explain.json  attributions of a sample of right and wrong test predictions,
                                    the tokens that most push each class, the completeness check

Each returns its summary (what the manifest and the report show) and reuses a finished
result when the pipeline is re-run."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..train.checkpoint import write_json


def distill_stage(teacher: str, student: str, data: str, out: str, unlabeled: str | None,
                  temperature: float, alpha: float, overrides: list[str]) -> dict:
    """out: the stage's directory, a URI where the run is one (every node writes there)."""
    from .. import storage
    from .distill import distill

    if storage.is_file(f"{out}/result.json"):
        print(f"[pipeline] reusing finished distillation {out}", flush=True)
        return storage.read_json(f"{out}/result.json")
    return distill(teacher, student, data, out, unlabeled, temperature, alpha, overrides, overwrite=True)


def _rows_per_s(model_dir: str, texts: list[str]) -> float:
    from ..finetune.predictor import Predictor

    p = Predictor(model_dir)
    p.probs(texts[:64])
    t = time.perf_counter()
    p.probs(texts)
    return len(texts) / (time.perf_counter() - t)


def quantize_stage(model_dir: str, method: str, data: str, root: Path, fp32_eval: dict) -> dict:
    from ..finetune.evaluate import evaluate_export
    from ..finetune.stats import paired
    from .quantize import quantize

    f = root / "quantize.json"
    if f.is_file():
        return json.loads(f.read_text())
    qd = root / "quantized"
    info = quantize(model_dir, str(qd), method, overwrite=True)
    ev = evaluate_export(str(qd), data, "test")
    write_json(qd / "evaluation.json", ev)
    from ..data.tasks import load_task
    from ..finetune.export import read_export
    import dataclasses

    _, cfg, meta = read_export(model_dir)
    task = load_task(dataclasses.replace(cfg.finetune, data=data), label_names=meta["task_info"]["labels"])
    sample = [task.texts[i] for i in task.splits["test"][:256]]
    fp32_rate, int8_rate = _rows_per_s(model_dir, sample), _rows_per_s(str(qd), sample)
    out = {**info, "path": str(qd), "fp32_accuracy": fp32_eval["accuracy"], "int8_accuracy": ev["accuracy"],
           "int8_accuracy_ci": ev["accuracy_ci"], "points_lost": round(100 * (fp32_eval["accuracy"] - ev["accuracy"]), 2),
           "vs_fp32": paired(fp32_eval, ev), "fp32_rows_per_s": round(fp32_rate, 1),
           "int8_rows_per_s": round(int8_rate, 1), "speedup": round(int8_rate / fp32_rate, 2), "test_n": ev["n"]}
    write_json(f, out)
    return out


def _explain_picks(model_dir: str, device: str, picks: list, rng_state: dict) -> tuple[list, list]:
    """(kind, row, text, true label) each explained, and its deletion test (random deletions
    drawn on from the stage's generator, wherever this runs)."""
    from .explain import Explainer, deletion_drop

    rng = np.random.default_rng()
    rng.bit_generator.state = rng_state
    ex = Explainer(model_dir, device=device)
    examples = [{**ex.explain(text), "kind": kind, "true_label": label, "row": row} for kind, row, text, label in picks]
    return examples, [deletion_drop(ex, e, 3, rng) for e in examples]


def explain_stage(model_dir: str, evaluation: dict, data: str, root: Path, n: int, seed: int = 0,
                  gpus: float = 0.0) -> dict:
    """n test rows explained (half from the right predictions, half from the wrong ones), on a
    GPU where the run trained on GPUs."""
    from ..data.tasks import load_task
    from ..finetune.export import read_export
    from ..finetune.predictor import on_device
    from .explain import class_tokens
    import dataclasses

    f = root / "explain.json"
    if f.is_file():
        return json.loads(f.read_text())
    _, cfg, meta = read_export(model_dir)
    task = load_task(dataclasses.replace(cfg.finetune, data=data), label_names=meta["task_info"]["labels"])
    rng = np.random.default_rng(seed)
    rows, y, pred = (np.array(evaluation[k]) for k in ("rows", "targets", "predictions"))
    right, wrong = rows[y == pred], rows[y != pred]
    pick_w = rng.choice(wrong, size=min(n // 2, len(wrong)), replace=False) if len(wrong) else []
    pick_r = rng.choice(right, size=min(n - len(pick_w), len(right)), replace=False)
    picks = [(kind, int(i), task.texts[int(i)], task.label_names[int(task.labels[int(i)])])
             for kind, chosen in (("right", pick_r), ("wrong", pick_w)) for i in chosen]
    t0 = time.time()
    examples, drops = on_device(_explain_picks, model_dir, gpus, picks, rng.bit_generator.state)
    out = {"model": model_dir, "n": len(examples), "wall_s": round(time.time() - t0, 1),
           "frac_relative_delta_under_5pct": float(np.mean([e["relative_delta"] < 0.05 for e in examples])),
           "deletion_top3_prob_drop": float(np.mean([d[0] for d in drops])),
           "deletion_random3_prob_drop": float(np.mean([d[1] for d in drops])),
           "class_tokens": class_tokens(examples), "examples": examples}
    write_json(f, out)
    return out
