"""The pipeline's sweep plan: checked before pretraining spends anything, made once after it
on the adapted checkpoint, and what a re-run is held to (the plan and settings its sweeps
started with)."""
from __future__ import annotations

import json
import time

from . import storage
from .errors import PtftError
from .manifest import Manifest
from .pipeline_config import PipelineConfig

# the sweeps a pipeline may run, under RUN_DIR
SWEEPS = ("sweep_pretrained", "sweep_base", "sweep_scratch")
RERUN = "re-run the pipeline with those settings, or use another --out"


def pins(pc: PipelineConfig) -> list[str]:
    """The sweep settings the pipeline pins over its plan."""
    return [f"finetune.data={pc.data}", *pc.sweep_set]


def recorded_plan(run: storage.Run) -> dict | None:
    plan_file = run.local / "plan.json"
    return json.loads(plan_file.read_text()) if plan_file.is_file() else None


def made_for(old: dict | None, pc: PipelineConfig) -> bool:
    """Whether a recorded plan was made for this config's budget and pins."""
    from .planner import parse_budget

    return bool(old) and old.get("budget_s") == parse_budget(pc.budget) and old.get("pins") == pins(pc)


def check_rerun(pc: PipelineConfig, scfg, run: storage.Run) -> None:
    """A re-run continues (or reuses) the sweeps it finds only under the plan and settings they
    started with: what differs is refused, by name, before any stage runs or a record changes."""
    from .finetune.sweep_dir import check_started_with
    from .planner import planned_config

    started = [name for name in SWEEPS if storage.exists(run.uri(name))]
    if not started:
        return
    old = recorded_plan(run)
    if pc.budget:
        if not made_for(old, pc):
            was = f"budget {old.get('budget_s'):g} s with {old.get('pins')}" if old else "no budget"
            raise PtftError(f"{run.where}: its sweeps were planned for {was}; {RERUN}")
        scfg = planned_config(scfg, old, pins(pc))
    for name in started:
        check_started_with(run.uri(name), scfg, None, RERUN)


def check_plan_first(pc: PipelineConfig, scfg, pcfg, run: storage.Run) -> None:
    """A budget the sweep cannot use (below the plan's floor, or unschedulable) is refused before
    pretraining spends anything: planned once on the model pretraining starts from (its
    architecture and tokenizer; the real plan follows on the adapted checkpoint and measures its
    own throughput). From scratch there is nothing to plan on yet; a re-run has its plan."""
    if not pc.budget or not pcfg.model.hf or (run.local / "plan.json").is_file():
        return
    from .planner import plan

    plan(None, [pcfg.model.hf], pc.budget, scfg, pc.max_trials, pins=pins(pc))
    print(f"[pipeline] budget {pc.budget}: a plan fits (checked on {pcfg.model.hf} before pretraining)", flush=True)


def plan_stage(pc: PipelineConfig, scfg, ck: str, run: storage.Run, man: Manifest):
    """The plan for pc.budget (reused on a re-run with the same budget and pins: the sweeps it
    started must resume under it); -> (the planned sweep config, the plan or None)."""
    from .planner import format_plan, plan, planned_config

    if not pc.budget:
        return scfg, None
    plan_file = run.local / "plan.json"
    pinned = pins(pc)
    old = recorded_plan(run)
    if made_for(old, pc):
        the_plan, t = old, 0.0
        print(f"[pipeline] reusing plan {plan_file}", flush=True)
    else:
        t0 = time.time()
        the_plan = plan(None, [ck], pc.budget, scfg, pc.max_trials, pins=pinned)
        t = time.time() - t0
        plan_file.write_text(json.dumps(the_plan, indent=2, default=str))
        run.push("plan.json")
    print(format_plan(the_plan), flush=True)
    man.stage("plan", run.uri("plan.json"), "done", t, num_trials=the_plan["num_trials"],
              strategies=the_plan["strategies"], estimated_cost_s=the_plan["estimated_cost_s"])
    return planned_config(scfg, the_plan, pinned), the_plan  # the pipeline's own --set lines pin over the plan
