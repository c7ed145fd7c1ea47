"""`ptft-ray report RUN_DIR`: RUN_DIR/report/index.html + report.md + PNG plots.

The page explains a finished run without a notebook. It opens with the headline: the best
model's test accuracy with its 95 % interval, the baselines (TF-IDF + LR, majority class)
and what each stage added, with McNemar p-values; then every model side by side (its
interval, its forecast, training seconds, ms per text) with an accuracy-versus-cost chart
(report/models.py). Then the stages and the lineage as tables; pretraining loss, perplexity
and tokens/s; each sweep's plan and reasons, trial curves, best metric by strategy, LR vs
metric, the best model's test metrics and confusion matrix; then the optional distillation,
quantization and explanation stages (report/compress.py).
"""
from __future__ import annotations

import html
from pathlib import Path

from .. import storage
from .collect import collect
from .compress import distill_section, explain_section, quantize_section
from .models import candidates, lineage_rows, table_rows
from .plots import accuracy_vs_cost, pretrain_curves, sweep_plots

# after load, the page states how many of its images decoded: a browser check reads it
RENDER_CHECK = """<div id="render-check">pending</div>
<script>window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.getElementById('render-check').textContent = 'images-ok ' + ok + '/' + imgs.length;
});</script>"""


def _table(rows: list[dict], cols: list[str]) -> tuple[str, str]:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        try:
            f = float(v)
            return f"{f:.4g}" if "." in str(v) or "e" in str(v) else str(v)
        except (TypeError, ValueError):
            return "" if v is None else str(v)
    h = "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
    h += "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    md = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    md += "".join("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |\n" for r in rows)
    return h + "</table>", md


def _img(name: str) -> tuple[str, str]:
    return f'<img src="{name}" alt="{name}">', f"![{name}]({name})\n"


def headline_of(data: dict) -> dict | None:
    """A pipeline's summary.json headline, or one built from a lone sweep's result.json."""
    head = (data.get("summary") or {}).get("headline")
    if head:
        return head
    if len(data["sweeps"]) == 1 and data["sweeps"][0]["result"].get("baseline"):
        from ..finetune.stats import run_headline

        return run_headline(data["sweeps"][0]["result"])
    return None


def _headline_lines(head: dict) -> list[str]:
    from ..finetune.stats import in_words

    lo, hi = head["test_accuracy_ci"]
    lines = [f"Best model: test accuracy {head['test_accuracy']:.3f} (95 % interval {lo:.3f}-{hi:.3f}, "
             f"{head['test_n']} test rows): {head['model']}"]
    for name, what in (("tfidf_lr", "TF-IDF + logistic regression"), ("majority", "majority class")):
        b = (head.get("baseline") or {}).get(name)
        if b:
            lines.append(f"{what} on the same training rows: {b['accuracy']:.3f} "
                         f"(macro-F1 {b['macro_f1']:.3f}); the model: {head['gain_points'][name]:+.1f} points")
    lines += [in_words(stage, test) for stage, test in head.get("effects", {}).items()]
    return lines


def _models_section(data: dict, head: dict | None, out: Path) -> tuple[str, str]:
    """Every model side by side (report/models.py) and the accuracy-versus-cost chart."""
    models = candidates(data, head)
    if not models:
        return "", ""
    rows = table_rows(models)
    h, m = _table(rows, list(rows[0]))
    chart = accuracy_vs_cost(models, out / "accuracy_vs_cost.png")
    img_h, img_m = _img(chart) if chart else ("", "")
    return f'<h2 id="models">Models side by side</h2>{h}{img_h}', f"## Models side by side\n\n{m}\n{img_m}"


def _pipeline_section(man: dict | None) -> tuple[str, str]:
    """The manifest's stages and lineage, as tables."""
    if not man:
        return "", ""
    rows = [{"stage": k, **{x: v.get(x) for x in ("status", "wall_s", "path")}} for k, v in man["stages"].items()]
    h, m = _table(rows, ["stage", "status", "wall_s", "path"])
    lh, lm = _table(lineage_rows(man.get("lineage", {})), ["artefact", "path", "from", "step", "tokens", "config hash"])
    return f"<h2>Pipeline</h2>{h}<h3>Lineage</h3>{lh}", f"## Pipeline\n\n{m}\n### Lineage\n\n{lm}"


def report(run_dir: str) -> str:
    """-> the path (or URI) of index.html. A URI run: its result files are read into a local
    mirror, the report is written there and copied up to RUN_DIR/report."""
    if storage.is_uri(run_dir):
        local = storage.mirror(run_dir)
        if not any(local.iterdir()):
            from ..errors import PtftError

            raise PtftError(f"run directory not found: {run_dir}")
        _report(str(local), run_dir)
        storage.upload(local / "report", f"{run_dir.rstrip('/')}/report")
        return f"{run_dir.rstrip('/')}/report/index.html"
    return _report(run_dir, str(Path(run_dir).resolve()))


def _report(run_dir: str, shown: str) -> str:
    data = collect(run_dir)
    out = Path(data["root"]) / "report"
    out.mkdir(exist_ok=True)
    H, M = [], []

    def add(h: str, m: str = "") -> None:
        H.append(h), M.append(m)

    add(f"<h1>ptft_ray run report</h1><p><code>{html.escape(shown)}</code></p>",
        f"# ptft_ray run report\n\n`{shown}`\n")
    head = headline_of(data)
    if head:
        lines = _headline_lines(head)
        add('<div id="headline" style="border:2px solid #333;padding:.5em 1em;background:#f6f6f0">'
            "<h2>Headline</h2><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul></div>",
            "## Headline\n\n" + "".join(f"- {x}\n" for x in lines))
    for section in (_models_section(data, head, out), _pipeline_section(data["manifest"])):
        if section[0]:
            add(*section)
    for pre in data["pretrain"]:
        add(*_pretrain_section(pre, out))
    if len(data["sweeps"]) > 1:
        add(*_sweeps_side_by_side(data["sweeps"]))
    for sw in data["sweeps"]:
        for section in _sweep_sections(sw, data, out):
            add(*section)
    for section in (distill_section(data.get("distill")), quantize_section(data.get("quantize")),
                    explain_section(data.get("explain"))):
        if section[0]:
            add(*section)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;"
             "padding:2px 6px}img{max-width:100%;display:block;margin:.5em 0}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>ptft_ray report</title>"
            f"<style>{style}</style></head><body>{''.join(H)}{RENDER_CHECK}</body></html>")
    (out / "index.html").write_text(page)
    (out / "report.md").write_text("\n".join(M))
    return str(out / "index.html")


def _pretrain_section(pre: dict, out: Path) -> tuple[str, str]:
    name = Path(pre["dir"]).name
    r = pre["result"] or {}
    h, m = _table([r], ["val_perplexity", "unigram_val_perplexity", "val_loss", "tokens_per_s", "steps",
                        "tokens", "num_workers", "wall_s"])
    img_h, img_m = _img(pretrain_curves(pre["history"], out, name)[0]) if pre["history"] else ("", "")
    said = unigram_verdict(r)
    return (f"<h2>Pretraining: {html.escape(name)}</h2><p>{html.escape(said)}</p>{h}{img_h}",
            f"## Pretraining: {name}\n\n{said}\n\n{m}\n{img_m}")


def _sweeps_side_by_side(sweeps: list[dict]) -> tuple[str, str]:
    rows = [{"sweep": s["name"], **{k: s["result"].get(k) for k in ("test_accuracy", "test_macro_f1",
                                                                     "best_metric", "trial_time_s")},
             "best": f"{s['result'].get('best_config', {}).get('strategy')} "
                     f"lr {s['result'].get('best_config', {}).get('lr', 0):.1e}"} for s in sweeps]
    h, m = _table(rows, ["sweep", "test_accuracy", "test_macro_f1", "best_metric", "trial_time_s", "best"])
    return f"<h2>Sweeps side by side</h2>{h}", f"## Sweeps side by side\n\n{m}"


def _sweep_sections(sw: dict, data: dict, out: Path) -> list[tuple[str, str]]:
    """One sweep: its plan's reasons, the best model, its plots and its trials."""
    sections = [(f"<h2>Sweep: {html.escape(sw['name'])}</h2>", f"## Sweep: {sw['name']}\n")]
    plan = sw["plan"] or (data["plan"] if sw["name"].endswith("pretrained") else None)
    if plan:
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in plan["reasons"])
        sections.append((f"<h3>Plan (estimated {plan['estimated_cost_s']:.0f} s, budget "
                         f"{plan.get('budget_s', 0):.0f} s)</h3><ul>{reasons}</ul>",
                         "### Plan\n\n" + "".join(f"- {r}\n" for r in plan["reasons"])))
    r = sw["result"]
    if r:
        row = {**{k: r.get(k) for k in ("test_accuracy", "test_macro_f1", "best_metric", "trials",
                                        "trials_completed", "trials_stopped", "trials_failed",
                                        "trial_time_s", "wall_s")},
               **{k: v for k, v in r.get("best_config", {}).items() if k != "checkpoint"}}
        h, m = _table([row], list(row))
        sections.append((f"<h3>Best model</h3>{h}", f"### Best model\n\n{m}"))
    sections += [_img(f) for f in sweep_plots(sw, out)]
    h, m = _table(sw["trials"], ["trial_id", "strategy", "lr", "batch_size", "epochs", "best_metric",
                                 "steps_trained", "max_steps", "wall_s", "stop_reason"])
    sections.append((f"<h3>Trials</h3>{h}", f"### Trials\n\n{m}"))
    return sections


def unigram_verdict(r: dict) -> str:
    """Whether the stage's language model learned context: its validation perplexity against a
    unigram model of the training text, on the same targets."""
    ppl, uni = r.get("val_perplexity"), r.get("unigram_val_perplexity")
    if ppl is None or uni is None:
        return "No validation perplexity was recorded."
    return (f"Validation perplexity {ppl:.1f} against {uni:.1f} for a unigram model of the training text: "
            + ("the language model beats the unigram level." if ppl < uni else
               "the language model does NOT beat the unigram level (it has not learned context)."))
