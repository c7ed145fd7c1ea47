"""Other forms of the forecast, tried on the same MiniLM cells and held out the same way:
does a feature of how much a trial trained explain the errors the kept form leaves, and does
labels per class add to the frozen encoder's gap? (The kept form's row is the gap and the lead; the
next is the form a plan without a gap gets.)

    python -m benchmarks.forecast_variants     # -> results/forecast_variants.json

Each form regresses the error reduction over TF-IDF + LR, (realised - probe) / (1 - probe), on
its features by least squares with every coefficient free (the kept form fixes the steps term
from the calibration's learning curves instead), leaving one cell, then one task, out.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from benchmarks.common import save
from benchmarks.forecast import family_rows, floored, gaps_of, held_out, row_lead
from ptft_ray.planner import sizing
from ptft_ray.planner.forecast import FITTED

FEATURES = {
    "log10 labels per class": lambda r: math.log10(r["n_train"] / r["classes"]),
    "min(0, log2 x)": lambda r: min(0.0, math.log2(r["x"])),
    "log2 epochs": lambda r: math.log2(r["epochs"]),
    "min(0, log2 epochs)": lambda r: min(0.0, math.log2(r["epochs"])),
    "log2 optimizer steps": lambda r: math.log2(r["steps"]),
    "log10 examples seen per class": lambda r: math.log10(r["seen"] / r["classes"]),
    "log2 classes": lambda r: math.log2(r["classes"]),
    "the frozen encoder's gap": lambda r: r["gap"],
    "its lead over the probe": lambda r: r["lead"],
    "log10 majority share": lambda r: math.log10(r["majority"]),
}
FORMS = [("log10 labels per class", "min(0, log2 x)"), ("log10 labels per class", "log2 epochs"),
         ("log10 labels per class", "min(0, log2 epochs)"), ("log10 labels per class", "log2 optimizer steps"),
         ("log10 examples seen per class",), ("log10 labels per class", "min(0, log2 x)", "log2 classes"),
         ("log10 labels per class", "log2 epochs", "log2 classes"),
         ("the frozen encoder's gap", "min(0, log2 x)"),
         ("log10 labels per class", "the frozen encoder's gap", "min(0, log2 x)"),
         ("the frozen encoder's gap",), ("the frozen encoder's gap", "log2 classes"),
         ("the frozen encoder's gap", "log10 majority share"), ("its lead over the probe",),
         ("the frozen encoder's gap", "its lead over the probe", "log2 classes")]


def with_shape(r: dict) -> dict:
    seen = r["x"] * sizing.min_steps("short", r["classes"]) * sizing.batch_size_for(r["n_train"])
    return {**r, "seen": seen, "epochs": seen / r["n_train"], "steps": seen / sizing.batch_size_for(r["n_train"]),
            "y": (r["realised"] - r["probe"]) / (1 - r["probe"])}


def mae(rows: list[dict], form: tuple, by: str) -> float:
    """Mean absolute error in test-accuracy points of the form, each row fitted without it (by
    cell) or without its task, and floored at the majority share as a plan's forecast is."""
    design = lambda rs: np.array([[1.0] + [FEATURES[f](r) for f in form] for r in rs])  # noqa: E731
    errs = []
    for r in rows:
        rest = [o for o in rows if (o["cell"] != r["cell"] if by == "cell" else o["task"] != r["task"])]
        coef = np.linalg.lstsq(design(rest), np.array([o["y"] for o in rest]), rcond=None)[0]
        pred = floored(r["probe"] + float((design([r]) @ coef)[0]) * (1 - r["probe"]), r)
        errs.append(100 * abs(pred - r["realised"]))
    return round(float(np.mean(errs)), 2)


def section(r: dict) -> list[str]:
    if not r:
        return []
    k = r["kept"]
    L = ["", f"Other forms of the forecast, the same {r['cells']} MiniLM cells held out the same way "
             f"(`{r['command']}`; every coefficient fitted, where the kept form takes its steps term from the "
             "learning curves):", "",
         "| features besides the intercept | mean abs. error, one cell out | one task out |", "|---|---|---|",
         f"| {', '.join(k['features'])} (kept) | {k['mae_cell']:.1f} | {k['mae_task']:.1f} |"]
    L += [f"| {', '.join(f['features'])} | {f['mae_cell']:.1f} | {f['mae_task']:.1f} |" for f in r["forms"]]
    return L


def main() -> int:
    rows = family_rows("hf_encoder")
    gaps = gaps_of(rows)
    rows = [{**with_shape(r), "gap": gaps[r["cell"]]["gap"],
             "lead": row_lead(r, gaps[r["cell"]])} for r in rows]
    c = FITTED["families"]["hf_encoder"]["c"]
    kept, plain = ({by: round(float(np.mean([100 * abs(h["forecast"] - h["realised"]) for h in held_out(rows, c, by, g)])), 2)
                    for by in ("cell", "task")} for g in (gaps, None))
    forms = [{"features": ["log10 labels per class", "c min(0, log2 x), c from the curves (the form without a gap)"],
              "mae_cell": plain["cell"], "mae_task": plain["task"]}]
    forms += [{"features": list(f), "mae_cell": mae(rows, f, "cell"), "mae_task": mae(rows, f, "task")} for f in FORMS]
    save("forecast_variants", {"cells": len(rows), "kept": {"features": ["the frozen encoder's gap", "its lead over the probe",
                                                                          "c min(0, log2 x), c from the curves"],
                                                             "mae_cell": kept["cell"], "mae_task": kept["task"]},
                               "forms": forms})
    return 0


if __name__ == "__main__":
    sys.exit(main())
