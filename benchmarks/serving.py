"""BENCHMARKS.md's section for `python -m benchmarks serve_load` (summary.py calls it)."""
from __future__ import annotations


def serve_load_section(r: dict | None) -> list[str]:
    if not r:
        return []
    L = ["", "## Serving under load", "",
         f"`{r['command']}`, {r.get('seconds_per_level', 20):g} s per level, {r.get('note', '')}; one replica "
         f"(1 CPU), bearer token on; model: {r.get('model_desc', r['model'])}. Each client POSTs one text a request back to back; "
         f"a prober GETs /health every 50 ms meanwhile. Measured {r['machine']['date']}.", "",
         "| clients | requests/s | p50 ms | p99 ms | errors | /health p50 ms | /health p99 ms |",
         "|---|---|---|---|---|---|---|"]
    for lv in r["levels"]:
        L.append(f"| {lv['clients']} | {lv['requests_per_s']} | {lv['p50_ms']} | {lv['p99_ms']} | {lv['errors']} | "
                 f"{lv['health_p50_ms']} | {lv['health_p99_ms']} |")
    return L + [""]
