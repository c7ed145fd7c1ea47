"""The report's opening comparison: every model the run made (each sweep's export, its int8 and
distilled variants) and the baselines, side by side with their test accuracy, its 95 % interval,
the forecast where there was one, training seconds and serving milliseconds per text; and the
manifest's lineage as a table."""
from __future__ import annotations


def _ms(rows_per_s: float | None) -> float | None:
    return round(1000.0 / rows_per_s, 2) if rows_per_s else None


def candidates(data: dict, head: dict | None) -> list[dict]:
    """One row per model: {model, test_accuracy, ci, forecast, train_s, ms_per_text}; a figure
    the run did not measure is None (serving speed is measured by the compress stages only)."""
    rows = []
    q, d = data.get("quantize") or {}, data.get("distill") or {}
    for sw in data["sweeps"]:
        r = sw["result"] or {}
        if r.get("test_accuracy") is None:
            continue
        fc, b = (r.get("forecast") or {}).get("test_accuracy"), r.get("blend") or {}
        name = f"{sw['name']} (blended with TF-IDF + LR, w {b['weight']:g})" if b.get("kept") else sw["name"]
        rows.append({"model": name, "test_accuracy": r["test_accuracy"], "ci": r.get("test_accuracy_ci"),
                     "forecast": None if b.get("kept") else fc, "train_s": r.get("trial_time_s"), "ms_per_text": None})
        if b.get("kept") and b.get("test_accuracy_model_alone") is not None:  # what the forecast priced
            rows.append({"model": f"{sw['name']}: the fine-tuned model alone", "ci": None, "forecast": fc,
                         "test_accuracy": b["test_accuracy_model_alone"], "train_s": r.get("trial_time_s"),
                         "ms_per_text": None})
    exports = [x for x in rows if not x["model"].endswith("the fine-tuned model alone")]
    best = max(exports, key=lambda x: x["test_accuracy"]) if exports else None
    if q and best:
        best["ms_per_text"] = _ms(q.get("fp32_rows_per_s"))
        rows.append({"model": f"{best['model']} int8 ({q['method']})", "test_accuracy": q["int8_accuracy"],
                     "ci": q.get("int8_accuracy_ci"), "forecast": None, "train_s": best["train_s"],
                     "ms_per_text": _ms(q.get("int8_rows_per_s"))})
    if d:
        speed = d.get("speed", {}).get("batch_64", {})
        rows.append({"model": f"distilled ({d['student']})", "test_accuracy": d["student_accuracy"],
                     "ci": d.get("student_accuracy_ci"), "forecast": None,
                     "train_s": (best or {}).get("train_s"), "ms_per_text": _ms(speed.get("student_rows_per_s"))})
        if best and best["ms_per_text"] is None:
            best["ms_per_text"] = _ms(speed.get("teacher_rows_per_s"))
    for name, what in (("tfidf_lr", "TF-IDF + LR"), ("majority", "majority class")):
        b = ((head or {}).get("baseline") or {}).get(name)
        if b:
            rows.append({"model": what, "test_accuracy": b["accuracy"], "ci": b.get("accuracy_ci"),
                         "forecast": None, "train_s": None, "ms_per_text": None})
    return rows


def table_rows(rows: list[dict]) -> list[dict]:
    """The rows as the page prints them."""
    def rng(v):
        return f"{v[0]:.3f}-{v[-1]:.3f}" if v else ""
    return [{"model": r["model"], "test accuracy": f"{r['test_accuracy']:.3f}", "95 % interval": rng(r["ci"]),
             "forecast (80 %)": f"{r['forecast'][1]:.3f} ({rng(r['forecast'])})" if r["forecast"] else "",
             "training s": "" if r["train_s"] is None else f"{r['train_s']:.0f}",
             "ms per text": "" if r["ms_per_text"] is None else f"{r['ms_per_text']:.2f}"} for r in rows]


def lineage_rows(lineage: dict) -> list[dict]:
    """The manifest's lineage, one row per artefact: what it is, where it is, what it came from."""
    rows = []
    for name, v in (lineage or {}).items():
        v = v or {}
        came = v.get("from")
        rows.append({"artefact": name, "path": v.get("path") or v.get("export") or "",
                     "from": ", ".join(came) if isinstance(came, dict) else (came or v.get("corpus") or ""),
                     "step": v.get("step", ""), "tokens": v.get("tokens", ""),
                     "config hash": (v.get("config_hash") or "")[:12]})
    return rows
