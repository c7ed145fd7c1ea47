"""A corpus of a few epochs' steps, streamed each epoch vs tokenized once (`data.cache_mb`).

    python -m benchmarks.small_corpus   # -> benchmarks/results/small_corpus.json (~3 min)

The same pretraining run (tiny GPT, BPE, one Ray Train worker, the generated 600-document
corpus gpu_check falls back to) twice: `data.cache_mb=0` (every epoch re-reads and
re-tokenizes the corpus through a new Ray Data stream) and the default (the training blocks
tokenized once and held in the object store). Wall time of the fit, the steady tokens/s
(median of the logged windows after the first) and the training loss at the end, which
must agree: the same blocks in the same order either way.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from .common import median, save

STEPS = 300


def run(corpus: str, out: Path, cache_mb: int) -> dict:
    from ptft_ray.config import load_config
    from ptft_ray.train.pretrain import pretrain

    cfg = load_config(None, [f"data.path={corpus}", "data.tokenizer=bpe", "data.vocab_size=2048", "data.seq_len=128",
                             "model.preset=gpt_tiny", "train.batch_size=32", f"schedule.max_steps={STEPS}",
                             "schedule.warmup_steps=10", "train.log_every=20", "train.eval_every=0",
                             "checkpoint.every_steps=100000", f"data.cache_mb={cache_mb}"])
    t0 = time.time()
    res = pretrain(cfg, str(out), overwrite=True)
    hist = [json.loads(x) for x in open(out / "metrics.jsonl")]
    rates = [h["tokens_per_s"] for h in hist if "tokens_per_s" in h][1:]
    epochs = max((h.get("epoch", 0) for h in hist), default=0)
    return {"cache_mb": cache_mb, "wall_s": round(time.time() - t0, 1), "tokens_per_s": round(median(rates)),
            "train_loss": res["train_loss"], "epochs_started": epochs, "steps": res["steps"]}


def section(r: dict | None) -> list[str]:
    if not r:
        return []
    L = ["", "## A small corpus: streamed each epoch vs tokenized once (`data.cache_mb`)", "",
         f"Command: `{r['command']}` ({r['machine'].get('cpu', '?')}, {r['machine'].get('date', '?')}). "
         f"Tiny GPT, {STEPS} steps of 32 x 128 tokens on the generated 600-document corpus, one Ray Train worker:", "",
         "| data.cache_mb | fit wall (s) | tokens/s (median window) | epochs | final train loss |", "|---|---|---|---|---|"]
    L += [f"| {x['cache_mb']} | {x['wall_s']} | {x['tokens_per_s']:,} | {x['epochs_started']} | {x['train_loss']:.4f} |"
          for x in r["runs"]]
    return L


def main() -> None:
    from ptft_ray.cluster import init_ray
    from ptft_ray.data.synthetic import smoke_inputs

    init_ray()
    tmp = Path(tempfile.mkdtemp(prefix="ptft-small-"))
    corpus, _ = smoke_inputs(str(tmp / "generated"))
    runs = [run(corpus, tmp / f"cache_{mb}", mb) for mb in (0, 256)]
    save("small_corpus", {"runs": runs})


if __name__ == "__main__":
    main()
