"""`ptft-ray plan`: choose the fine-tuning sweep by task, data size and compute budget.

    plan = ptft_ray.plan("data/rotten_tomatoes.parquet", ["runs/main/pretrain/checkpoint_..."], "20m")

Inputs are measured, not assumed: the task by a Ray Data scan (examples, classes, balance,
token lengths under the checkpoint's tokenizer), the checkpoints by their metadata
(architecture, parameters, the throughput their pretraining measured), the cluster by
Ray's live resources. The rules (rules.py) return each choice with its reason, and the plan
is checked against the live cluster before anything runs (exit 2 with what to change).
"""
from __future__ import annotations

import dataclasses
import json
import re
import time

from ..config import Config, load_config
from ..errors import PtftError
from . import forecast

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_budget(text: str | float) -> float:
    """'20m', '90s', '1.5h' or plain seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(text))
        if not m:
            raise PtftError(f"--budget {text!r}: expected a duration such as 20m, 90s or 1.5h")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if seconds <= 0:
        raise PtftError(f"--budget {text!r}: must be positive")
    return seconds


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """The planner's choices that a sweep config takes, typed; `apply` sets them on a Config
    (no round trip through `--set` strings). The plan's whole record, with its reasons and
    estimates, stays the dict that plan.json holds."""
    strategies: tuple[str, ...]
    lr_ranges: dict            # strategy -> [lo, hi]: the chosen ones over every calibrated range
    num_trials: int
    max_concurrent_trials: int
    resources_per_trial: dict
    workers_per_trial: int
    scheduler: dict
    time_budget_s: float
    rescore: dict
    shape: dict                # config key -> value: batch size, epochs, max_len, evaluations
    stop_on_noise: bool = False

    @classmethod
    def of(cls, p: dict) -> "SweepPlan":
        from .families import calibration

        # every calibrated range goes along, so a strategy the user pins on top keeps its range
        table = p["lr_rule"]["ranges"].items() if p.get("lr_rule") else [
            (s, r) for b in calibration(p["calibration"])["buckets"].values() for s, r in b["lr_ranges"].items()]
        ranges = {**{s: r for s, r in table if s not in p["lr_ranges"]}, **p["lr_ranges"]}
        return cls(tuple(p["strategies"]), ranges, p["num_trials"], p["max_concurrent_trials"],
                   p["resources_per_trial"], p["workers_per_trial"], p["scheduler"], p["time_budget_s"],
                   p["rescore"], p["shape"], p.get("stop_on_noise", False))

    def values(self) -> dict:
        """{config key: value} for `config.with_values`."""
        return {"sweep.strategies": list(self.strategies), "sweep.lr_ranges": self.lr_ranges,
                "sweep.num_samples": self.num_trials, "sweep.max_concurrent_trials": self.max_concurrent_trials,
                "sweep.cpus_per_trial": self.resources_per_trial["CPU"],
                "scaling.use_gpu": "GPU" in self.resources_per_trial,
                "sweep.workers_per_trial": self.workers_per_trial,
                "sweep.scheduler": self.scheduler["type"], "sweep.grace_period": self.scheduler["grace_period"],
                "sweep.reduction_factor": self.scheduler["reduction_factor"],
                "sweep.time_budget_s": self.time_budget_s, "sweep.search": "random", "sweep.grid_points": 0,
                "sweep.lrs": [], "sweep.rescore_top_k": self.rescore["top_k"],
                "sweep.rescore_val_examples": self.rescore["val_examples"],
                "sweep.stop_on_noise": self.stop_on_noise, **self.shape}

    def apply(self, cfg: Config, pins: list[str] | None = None) -> Config:
        """The plan's values, then the user's own `--set` lines on top (they pin)."""
        from ..config import parse_sets, with_values

        return with_values(with_values(cfg, self.values()), parse_sets(pins or []))


def overrides(p: dict) -> list[str]:
    """The plan as `--set` lines, for a command line that replays it (benchmarks.quality)."""
    return [f"{k}={json.dumps(v)}" for k, v in SweepPlan.of(p).values().items()]


def preflight(cfg: Config, res: dict) -> None:
    """Refuse, with what to change, a plan the live cluster cannot schedule."""
    from ..train.launch import trial_resources

    trial_resources(cfg, res)  # raises PtftError naming the key to change


def planned_config(cfg: Config, p: dict, pins: list[str] | None = None) -> Config:
    """The sweep config the plan (plan.json's record) runs, the user's `--set` lines pinned on top."""
    return SweepPlan.of(p).apply(cfg, pins)


def plan(data: str | None, pretrained: list[str], budget: str | float, cfg: Config | None = None,
         max_trials: int = 0, arch_from: str | None = None, pins: list[str] | None = None,
         started: float | None = None) -> dict:
    """started: when the budget's clock started (a `sweep --plan auto` command's start); what
    planning spends of it is not planned for the trials."""
    from ..cluster import cluster_summary, init_ray
    from ..data.tasks import load_task
    from ..finetune.backbones import resolve_sources
    from .rules import choose
    from .embed_probe import encoder_gap
    from .scan import scan_task
    from .sizing import max_len_for
    from .throughput import SEQ_LEN, measure_missing, retime_shrunk

    budget_s = parse_budget(budget)
    cfg = cfg or load_config(None)
    if data:
        from ..config import with_values

        cfg = with_values(cfg, {"finetune.data": data})
    task = load_task(cfg.finetune)
    # the plan chooses max_len itself (never over a checkpoint's positions): do not let the
    # config's current value refuse a checkpoint here
    sources = resolve_sources(pretrained, dataclasses.replace(
        cfg, finetune=dataclasses.replace(cfg.finetune, max_len=1)), arch_from)
    init_ray(forward=cfg.cluster.forward_env)
    res = cluster_summary()
    scan = scan_task(task, sources[0].tokenizer_json)
    # what the encoder knows of the task (the forecast's gap), where it costs at most PROBE_SHARE of the budget
    embed = encoder_gap(task, sources, family, within_s=PROBE_SHARE * budget_s)
    add_embed_probe(scan, embed)
    # timed at the length the trials will pad to (the calibration's 64 tokens at least)
    seq_len = max_len_for(scan["length"]["p95"], min(s.max_positions for s in sources))
    timed = max(SEQ_LEN, seq_len)
    measured = measure_missing(sources, res, cfg.train.precision, seq_len)
    info = [source_info(s, measured.get(s.key, {}).get(1), timed) for s in sources]
    spent = time.time() - started if started else 0.0
    p = choose(scan, info, budget_s, res, max_trials or 0, spent_s=spent)
    if retime_shrunk(p, info, sources, res, cfg.train.precision, timed):
        spent = time.time() - started if started else 0.0
        p = choose(scan, info, budget_s, res, max_trials or 0, spent_s=spent)
    p["checkpoints"] = [s.key for s in sources]
    add_reasons(p, scan, embed)
    p["budget_s"] = budget_s
    # Tune stops trials at time_budget_s; start-up, re-scoring, export and the test evaluation
    # come after
    spend(p, spent)
    p["scan"], p["cluster"] = scan, res
    # what the plan is expected to buy, and what half, 2x, 4x the budget or 2x the labels would
    p["forecast"] = forecast.block(p, scan, p["calibration"],
                                   lambda b, what_if: choose(what_if, info, b, res, max_trials or 0, spent_s=spent))
    p["pins"] = list(pins or [])
    planned = planned_config(cfg, p, pins)
    p["memory"] = memory_of(planned, sources, task, p, res)
    preflight(planned, res)
    p["preflight"] = "ok: schedulable on the live cluster"
    return p


# of the budget the encoder probe may take (it comes off the trials' time): without its gap the
# forecast errs twice as far (docs/decisions.md, "Two more unseen tasks")
PROBE_SHARE = 0.10


def add_embed_probe(scan: dict, embed: dict | None) -> None:
    """The encoder probe's reading, into the scan the rules and the forecast read."""
    if embed:
        scan["embed_probe"] = embed
        if "gap" in embed:
            scan["probe"]["embed_gap"] = embed["gap"]
            scan["probe"]["embed_pooled"] = embed["embed_lr_pooled"]
            scan["probe"]["embed_rows"] = embed["rows"][0]  # training rows it read (forecast.Probe.lead)


def source_info(s, measured: float | None, timed_len: int) -> dict:
    """What the rules read of one checkpoint; `measured`: its rate timed on the live cluster."""
    carried = s.lineage.get("tokens_per_s_per_worker")
    how = ""
    if measured:
        how = (f"measured on the live cluster (timed fine-tuning steps of {timed_len}-token rows, 1,024 tokens a "
               "step, in the trials' precision): "
               + ("the Hugging Face calibration's cost model is fitted in this probe's units (the rate the "
                  "checkpoint carries is of its masked-LM pretraining steps)" if carried else
                  "the checkpoint carries no throughput of its own"))
    return {"key": s.key, "max_seq_len": s.max_positions, "family": family(s), "params": decoder_params(s),
            "tokens_per_s_per_worker": measured or carried, "rate_how": how}


def add_reasons(p: dict, scan: dict, embed: dict | None) -> None:
    """The task's, the checkpoints' and the probe's lines around the rules' reasons."""
    p["reasons"].insert(0, f"task: {scan['task_type']}, {scan['num_classes']} classes (largest "
                           f"{scan['majority_fraction']:.0%}), {scan['examples']['train']} training examples, "
                           f"{scan['train_tokens']} tokens (Ray Data scan)")
    p["reasons"].append(f"checkpoints: {', '.join(p['checkpoints'])} (as given; each trial draws one)")
    if embed:
        p["reasons"].append(probe_reason(embed))


def probe_reason(embed: dict) -> str:
    if "skipped" in embed:
        return (f"encoder probe: skipped ({embed['skipped']}): the forecast's form without the frozen "
                f"encoder's gap, and its wider interval")
    return (f"encoder probe: logistic regression on the frozen encoder's embeddings {embed['embed_lr_pooled']:.3f} "
            f"vs TF-IDF + LR {embed['tfidf_lr_pooled']:.3f} on the same rows ({embed['rows'][1]} validation rows, "
            f"{embed['rows'][0]} training rows out of fold; gap {embed['gap']:+.2f}, {embed['seconds']:.0f} s): "
            f"the forecast's gap term")


def spend(p: dict, spent_s: float) -> dict:
    """The plan once `spent_s` of its budget is gone (a `sweep --plan auto` command's start and
    its planning: the budget is the command's wall clock). Tune gets what is left after the
    reserve (all that follows the plan: data encoding, the export, the test evaluation) and
    re-scoring."""
    p["planning_s"] = round(spent_s, 1)
    p["time_budget_s"] = max(1.0, p["budget_s"] - p["planning_s"] - p["reserve_s"] - p["rescore"]["estimated_s"])
    return p


def memory_of(cfg: Config, sources: list, task, p: dict, res: dict) -> dict:
    """The memory plan of the planned trials: the largest backbone at the plan's batch size."""
    from ..finetune.backbones import largest_shape
    from ..train.memory import choose, device_memory
    from ..train.precision import half

    shape = largest_shape(sources, len(task.label_names))
    sixteen = half(cfg.train.precision, "cuda" if cfg.scaling.use_gpu else "cpu")
    return choose(shape, p["workers_per_trial"], p["batch_size"], p["max_len"], sixteen,
                  device_memory(cfg.scaling, res), cfg.scaling.strategy, cfg.train.activation_checkpointing)


def family(source) -> str:
    """Which calibration a source belongs to: our GPT, or a Hugging Face encoder / decoder."""
    if not source.model.hf:
        return "gpt"
    kind = source.lineage.get("kind")
    if kind is None:  # our checkpoint of a Hugging Face model, or its random-init twin
        from ..models.hf import hf_config, hf_kind

        kind = hf_kind(hf_config(source.model.hf))
    return f"hf_{kind}"


def decoder_params(source) -> int | None:
    """A Hugging Face decoder's parameter count, from its config on the meta device (no
    weights read): what scales its learning rates (planner/decoder.py)."""
    if family(source) != "hf_decoder":
        return None
    from ..models.hf import HFLM, hf_config
    from ..storage import localize

    conf = hf_config(localize(source.model.hf, "model.hf"))
    try:
        model = HFLM.skeleton(conf, "decoder")
    except (ValueError, KeyError):  # an architecture without a causal-LM head class: size unknown
        return None
    return sum(p.numel() for p in model.parameters())


def pinned_over(p: dict) -> dict:
    """Keys of the plan's trial shape that the user's --set lines run at another value ->
    (the plan's, the pinned): the trials then take a time the plan did not price."""
    from ..config import parse_sets

    return {k: (p["shape"][k], v) for k, v in parse_sets(p.get("pins") or []).items()
            if k in p.get("shape", {}) and p["shape"][k] != v}


def format_plan(p: dict) -> str:
    """The human form: the choices in a few lines, then one reason per line."""
    lines = [f"plan for {p['scan']['data']} ({p['scan']['examples']['train']} training examples), "
             f"budget {p['budget_s']:.0f} s" + (f" ({p['planning_s']:.0f} s of it spent planning)"
                                               if p.get("planning_s") else ""),
             f"  strategies    {', '.join(p['strategies'])}",
             f"  checkpoints   {', '.join(p['checkpoints'])}",
             f"  trials        {p['num_trials']} ({p['max_concurrent_trials']} at a time), "
             f"{p['resources_per_trial']} each",
             f"  scheduler     {p['scheduler']['type']} (grace {p['scheduler']['grace_period']}, "
             f"max_t {p['scheduler']['max_t']}, reduction {p['scheduler']['reduction_factor']})",
             f"  trial shape   batch {p['batch_size']}, {p['epochs']:g} epoch(s), max_len {p['max_len']}",
             f"  estimated     {p['estimated_cost_s']:.0f} s"]
    if p.get("memory"):
        from ..train.memory import table

        lines.append("  " + table(p["memory"]).replace("\n", "\n  "))
    if p.get("pins"):  # the user's --set lines run over the plan: say so, not only the plan's values
        lines.append(f"  pinned        {', '.join(p['pins'])} (your --set lines, applied after the plan)")
        lines += [f"  over the plan {k}: {v!r}, not the plan's {was!r} (its estimate and forecast are for the plan's)"
                  for k, (was, v) in pinned_over(p).items()]
    if p.get("forecast"):
        lines += forecast.format_block(p["forecast"])
    lines.append("why:")
    return "\n".join(lines + [f"  - {r}" for r in p["reasons"]])
