"""The pipeline's own config: which stages run, on what, at what budget (YAML or
`ptft-ray pipeline --set key=value`), checked at load like the run config."""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config_values import apply_overrides, coerce
from .errors import PtftError


@dataclass
class PipelineConfig:
    pretrain_config: str = "jobs/configs/pretrain_news.yaml"
    pretrain_set: list[str] = field(default_factory=list)    # --set overrides of the pretraining config
    sweep_config: str = "jobs/configs/sweep_rt.yaml"
    sweep_set: list[str] = field(default_factory=list)
    data: str = "data/rotten_tomatoes.parquet"               # the labelled task
    budget: str = ""          # per sweep, e.g. 3m: the planner chooses the sweep; "" = the sweep config as written
    max_trials: int = 0
    scratch_baseline: bool = True   # the same sweep from random init, for the side-by-side
    base_control: bool = False      # the same sweep from the un-adapted model.hf, for the side-by-side
    adapt_on_task: bool = False     # pretrain on the task's own training texts (never val/test rows)
    # optional stages on the best export, after the sweeps (each with its report section)
    distill: str = ""               # student: layers:K, a preset (gpt_tiny) or a Hugging Face dir ("" = none)
    distill_set: list[str] = field(default_factory=list)   # --set overrides of the student's training
    distill_temperature: float = 2.0
    distill_alpha: float = 0.5
    distill_unlabeled: bool = True  # the task's whole training split (unlabeled) joins the transfer set
    quantize: str = ""              # int8_weight_only | int8_dynamic | fbgemm_dynamic ("" = none)
    explain: int = 0                # test rows to explain (half right, half wrong predictions; 0 = none)


def load_pipeline_config(path: str | None, overrides: list[str] | None = None) -> PipelineConfig:
    d = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise PtftError(f"pipeline config not found: {p}")
        d = yaml.safe_load(p.read_text()) or {}
        if not isinstance(d, dict):
            raise PtftError(f"{p}: expected a mapping")
    d = {**d, **apply_overrides({"pipeline": {}}, [f"pipeline.{o}" for o in overrides or []])["pipeline"]}
    hints = typing.get_type_hints(PipelineConfig)
    unknown = sorted(set(d) - set(hints))
    if unknown:
        raise PtftError(f"pipeline config key '{unknown[0]}': unknown (known: {', '.join(hints)})")
    pc = PipelineConfig(**{k: coerce(f"pipeline.{k}", v, hints[k]) for k, v in d.items()})
    from .models.quantize import METHODS

    if pc.quantize and pc.quantize not in METHODS:
        raise PtftError(f"pipeline config key 'quantize': {pc.quantize!r} is not one of {', '.join(METHODS)}")
    if pc.explain < 0:
        raise PtftError("pipeline config key 'explain': a number of test rows, >= 0")
    if pc.distill_set and not pc.distill:
        raise PtftError("pipeline config key 'distill_set': set without 'distill' (it would be ignored)")
    return pc
