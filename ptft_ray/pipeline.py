"""The main job: pretrain on real text, then the same fine-tuning sweep twice on a real task,
from the pretrained checkpoint and from random initialisation (same architecture and
tokenizer), and a side-by-side summary. Re-running it continues where it stopped: a
finished stage is reused, an interrupted one resumes."""
from __future__ import annotations

import json
from pathlib import Path

from .config import load_config
from .finetune.sweep import sweep
from .train.pretrain import pretrain


def _sweep_once(cfg, sources: list[str], out: Path, arch_from: str | None = None) -> dict:
    done = out / "result.json"
    if done.is_file():
        print(f"[main] reusing finished sweep {out}", flush=True)
        return json.loads(done.read_text())
    return sweep(cfg, sources, str(out), resume=(out / "tune").is_dir(), arch_from=arch_from)


def main_job(out: str = "runs/main", pretrain_config: str = "jobs/configs/pretrain_news.yaml",
             sweep_config: str = "jobs/configs/sweep_rt.yaml", data: str = "data/rotten_tomatoes.parquet",
             pretrain_overrides: list[str] | None = None, sweep_overrides: list[str] | None = None) -> dict:
    root = Path(out)
    pcfg = load_config(pretrain_config, pretrain_overrides)      # both configs checked up front
    scfg = load_config(sweep_config, [f"finetune.data={data}", *(sweep_overrides or [])])
    pre = pretrain(pcfg, str(root / "pretrain"))
    ck = pre["checkpoint"]
    with_pre = _sweep_once(scfg, [ck], root / "sweep_pretrained")
    scratch = _sweep_once(scfg, ["none"], root / "sweep_scratch", arch_from=ck)
    summary = {
        "pretrain": {k: pre[k] for k in ("val_perplexity", "unigram_val_perplexity", "val_loss",
                                         "tokens_per_s", "steps", "tokens", "checkpoint", "wall_s")},
        "data": data,
        "pretrained": {k: with_pre[k] for k in ("test_accuracy", "test_macro_f1", "best_metric",
                                                "best_config", "export_path", "trial_time_s")},
        "scratch": {k: scratch[k] for k in ("test_accuracy", "test_macro_f1", "best_metric",
                                            "best_config", "export_path", "trial_time_s")},
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    p, s = summary["pretrained"], summary["scratch"]
    print("\n== ptft_ray main job ==")
    print(f"pretraining: val perplexity {pre['val_perplexity']:.1f} "
          f"(unigram baseline {pre['unigram_val_perplexity']:.1f}), {pre['steps']} steps, "
          f"{pre['tokens_per_s']:.0f} tokens/s")
    print(f"{'':24}{'test acc':>10}{'macro F1':>10}{'trial s':>10}")
    for name, r in (("from pretrained", p), ("from scratch", s)):
        print(f"{name:24}{r['test_accuracy']:10.4f}{r['test_macro_f1']:10.4f}{r['trial_time_s']:10.0f}")
    print(f"summary: {root / 'summary.json'}")
    return summary
