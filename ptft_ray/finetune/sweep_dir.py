"""A sweep's directory: refused where it would lose a sweep, recorded when it starts, and
held to what it started with when it is resumed.

DIR/tune/ (Tune's experiment)  DIR/config.yaml  DIR/pretrained.json  DIR/plan.json (when planned)
"""
from __future__ import annotations

import json

import yaml

from .. import storage
from ..config import Config
from ..errors import PtftError
from .backbones import Source


def resumable(out: str) -> bool:
    """A sweep directory (local or URI) that `sweep(..., resume=True)` can continue: Tune's
    experiment state is there."""
    return storage.exists(f"{out.rstrip('/')}/tune/tuner.pkl")


def started_with(where: str) -> tuple[dict, list[str] | None] | None:
    """The config and checkpoints a sweep directory was started with (None: no sweep there, or
    one started before they were recorded)."""
    if not storage.is_file(f"{where}/config.yaml"):
        return None
    ckpts = f"{where}/pretrained.json"
    return (yaml.safe_load(storage.read_text(f"{where}/config.yaml")),
            json.loads(storage.read_text(ckpts)) if storage.is_file(ckpts) else None)


def check_started_with(where: str, cfg: Config, pretrained: list[str] | None, instead: str) -> None:
    """A sweep is continued (or its result reused) only under the settings it started with:
    Tune restores its own search, scheduler and budget, and the trials still to run would take
    the new values. A changed setting or checkpoint (None: not compared) is refused, by name;
    `instead` says what to do."""
    started = started_with(where)
    if started is None:
        return
    old, was = started
    new = json.loads(json.dumps(cfg.to_dict()))  # tuples as lists, as the YAML holds them
    # a key the record lacks is one a later ptft_ray added: it was no setting of this sweep
    changed = [f"{sec}.{k}" for sec, keys in new.items() for k, v in keys.items()
               if k in old.get(sec, {}) and old[sec][k] != v]
    if pretrained is not None and was is not None and was != pretrained:
        changed.append("--pretrained")
    if changed:
        raise PtftError(f"{where} holds a sweep started with other values of {', '.join(changed)} "
                        f"({where}/config.yaml); {instead}")


def open_sweep_dir(run_dir: storage.Run, resume: bool, overwrite: bool, plan: dict | None, cfg: Config,
                   sources: list[Source]):
    """Refuse what would be lost, then start (or continue) the sweep directory; a new sweep
    records the config and checkpoints it starts with, for --resume to hold it to."""
    if run_dir.nonempty() and not resume:
        if not overwrite:
            raise PtftError(f"{run_dir.where} holds a sweep already; use --resume to continue it or "
                            f"--overwrite to replace it")
        run_dir.clear()
    if resume and not resumable(run_dir.where):
        raise PtftError(f"--resume: no sweep to resume in {run_dir.where}")
    out_p = run_dir.start()
    if not resume:
        (out_p / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        (out_p / "pretrained.json").write_text(json.dumps([s.key for s in sources]))
        run_dir.push("config.yaml", "pretrained.json")
    if plan is not None:
        (out_p / "plan.json").write_text(json.dumps(plan, indent=2, default=str))
        run_dir.push("plan.json")


def sweep_path(cfg: Config, out: str | None) -> str:
    """Where a sweep writes: --out, else runs/<sweep.name>."""
    return out or f"runs/{cfg.sweep.name}"


def started_plan(where: str, budget_s: float) -> dict | None:
    """The plan a sweep directory was started under, for --resume to continue under it (planning
    again would price the budget afresh while Tune keeps the trials it drew); a different
    --budget is refused, as it would go unused."""
    if not storage.is_file(f"{where}/plan.json"):
        return None
    p = storage.read_json(f"{where}/plan.json")
    if p.get("budget_s") != budget_s:
        raise PtftError(f"--budget: the sweep in {where} was planned for {p.get('budget_s'):g} s; resume it with "
                        f"that budget, or use --overwrite to plan again")
    return p
