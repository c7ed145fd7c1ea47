"""Report sections of the pipeline's optional stages: distillation, int8 quantization and
explanations (highlighted tokens of right and wrong test predictions, the tokens that push
each class). Each returns (html, markdown); an empty pair when the stage did not run."""
from __future__ import annotations

import html


def _kv(rows: list[tuple[str, str]]) -> tuple[str, str]:
    h = "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows) + "</table>"
    m = "| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    return h, m


def _p(test: dict | None) -> str:
    return f"p = {test['p_value']:.2g}" if test else ""


def distill_section(r: dict | None) -> tuple[str, str]:
    if not r:
        return "", ""
    h, m = _kv([("student", f"{r['student']} ({r['student_params']:,} parameters; teacher {r['teacher_params']:,})"),
                ("test accuracy", f"student {r['student_accuracy']:.3f} vs teacher {r['teacher_accuracy']:.3f}: "
                                  f"{-r['points_lost']:+.1f} points ({_p(r.get('vs_teacher'))}, McNemar)"),
                ("speed (1 thread, batch 64)", f"{r['speedup']:.2f}x the teacher's rows/s"),
                ("transfer set", f"{r['transfer_rows']:,} rows ({r['unlabeled_rows']:,} unlabeled), "
                                 f"T = {r['temperature']:g}, alpha = {r['alpha']:g}"),
                ("export", r["model"])])
    return f"<h2>Distillation</h2>{h}", f"## Distillation\n\n{m}\n"


def quantize_section(r: dict | None) -> tuple[str, str]:
    if not r:
        return "", ""
    h, m = _kv([("method", f"{r['method']} ({r['library']})"),
                ("test accuracy", f"int8 {r['int8_accuracy']:.3f} vs fp32 {r['fp32_accuracy']:.3f}: "
                                  f"{-r['points_lost']:+.1f} points ({_p(r.get('vs_fp32'))})"),
                ("weights", f"{r['int8_state_bytes'] / 2**20:.1f} MB vs {r['fp32_state_bytes'] / 2**20:.1f} MB "
                            f"({r['size_ratio']:.2f}x smaller)"),
                ("speed (batch 64)", f"{r['int8_rows_per_s']:.0f} vs {r['fp32_rows_per_s']:.0f} rows/s "
                                     f"({r['speedup']:.2f}x)"),
                ("export", r["path"])])
    return f"<h2>Quantization</h2>{h}", f"## Quantization\n\n{m}\n"


def _highlight(e: dict) -> tuple[str, str]:
    """Tokens on a background whose strength is the attribution (green: for the predicted
    class, red: against it); Markdown bolds the three strongest."""
    words = [(t, a) for t, a, s in zip(e["tokens"], e["attributions"], e["special"]) if not s]
    peak = max((abs(a) for _, a in words), default=1.0) or 1.0
    spans = []
    for t, a in words:
        alpha = min(1.0, abs(a) / peak)
        color = f"rgba(0,160,0,{alpha:.2f})" if a > 0 else f"rgba(220,0,0,{alpha:.2f})"
        spans.append(f'<span title="{a:+.3f}" style="background:{color};padding:0 2px">{html.escape(t)}</span>')
    top = {i for i, _ in sorted(enumerate(words), key=lambda ia: -ia[1][1])[:3]}
    md = " ".join(f"**{t}**" if i in top else t for i, (t, _) in enumerate(words))
    return " ".join(spans), md


def explain_section(r: dict | None, limit: int = 6) -> tuple[str, str]:
    if not r:
        return "", ""
    H = [f"<h2>Explanations</h2><p>{r['n']} test rows, integrated gradients on the token embeddings: "
         f"{100 * r['frac_relative_delta_under_5pct']:.0f} % within 5 % of completeness; deleting the three "
         f"most-attributed tokens lowers the predicted class's probability by {r['deletion_top3_prob_drop']:.3f} "
         f"on average, three random tokens by {r['deletion_random3_prob_drop']:.3f}.</p>"]
    M = [f"## Explanations\n\n{r['n']} test rows; {100 * r['frac_relative_delta_under_5pct']:.0f} % within 5 % of "
         f"completeness; top-3 deletion {r['deletion_top3_prob_drop']:.3f} vs random-3 "
         f"{r['deletion_random3_prob_drop']:.3f} probability drop.\n"]
    for kind in ("right", "wrong"):
        rows = [e for e in r["examples"] if e["kind"] == kind][:limit]
        if not rows:
            continue
        H.append(f"<h3>{'Right' if kind == 'right' else 'Wrong'} predictions</h3><ul>")
        M.append(f"### {'Right' if kind == 'right' else 'Wrong'} predictions\n")
        for e in rows:
            h, m = _highlight(e)
            what = f"predicted {e['label']} ({e['probability']:.2f}), true {e['true_label']}"
            H.append(f"<li>{html.escape(what)}: {h}</li>")
            M.append(f"- {what}: {m}")
        H.append("</ul>")
    H.append("<h3>Tokens that push each class</h3><ul>")
    M.append("\n### Tokens that push each class\n")
    for label, toks in r["class_tokens"].items():
        line = ", ".join(f"{t} ({a:+.2f}, {n}x)" for t, a, n in toks)
        H.append(f"<li><b>{html.escape(label)}</b>: {html.escape(line)}</li>")
        M.append(f"- **{label}**: {line}")
    H.append("</ul>")
    return "".join(H), "\n".join(M) + "\n"
