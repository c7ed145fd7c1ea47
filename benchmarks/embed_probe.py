"""The frozen encoder's gap over TF-IDF + LR (ptft_ray/planner/embed_probe.py) on each fit
row's task, as the planner measures it at plan time: the forecast's gap feature.

    python -m benchmarks.forecast fit   # reads results/forecast_probes.json, fills what it lacks
"""
from __future__ import annotations

from ptft_ray.planner.embed_probe import MAX_LEN, ROWS, embedding_probe


def cell_task(r: dict):
    """A fit row's task as its sweep had it (data, max_examples, test_fraction)."""
    from ptft_ray.config import FinetuneConfig
    from ptft_ray.data.tasks import load_task

    return load_task(FinetuneConfig(data=r["data"], max_examples=r["max_examples"],
                                    test_fraction=r.get("test_fraction", 0.1)))


def gaps_for(rows: list[dict], model: str = "data/models/minilm") -> dict:
    """The probe on each row's task (data, max_examples: the rows its sweep had), cached in
    results/forecast_probes.json by cell."""
    import json

    from benchmarks.common import RESULTS, ROOT
    from ptft_ray.tokenizer import HFTokenizer

    path = RESULTS / "forecast_probes.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    tok = HFTokenizer.from_dir(ROOT / model).to_json()
    for r in rows:
        got = cache.get(r["cell"])
        if not got or got["max_len"] != MAX_LEN or max(got["rows"]) > ROWS or "embed_lr_pooled" not in got:
            # measured another way (or before the training rows were pooled in): again
            cache[r["cell"]] = embedding_probe(cell_task(r), str(ROOT / model), tok)
            path.write_text(json.dumps(cache, indent=1) + "\n")
    return cache
