"""The search space of a sweep: LR (per-strategy ranges), strategy with its own conditional
parameter, weight decay, batch size, epochs and pretrained checkpoint.

Random search draws the LR log-uniformly inside the trial's strategy range; an exhaustive
grid (`sweep.grid_points`) runs every strategy at that many log-spaced LRs across its range.
"""
from __future__ import annotations

import math
import random

from ..config import Config, SweepConfig, with_values
from ..errors import PtftError

# strategy -> (trial parameter, sweep config list it is drawn from)
CONDITIONAL = {"partial": ("unfreeze_top_k", "unfreeze_top_k"),
               "lora": ("lora_rank", "lora_ranks"),
               "discriminative_lr": ("lr_decay", "lr_decays")}


def lr_range(sw: SweepConfig, strategy: str) -> tuple[float, float]:
    lo, hi = sw.lr_ranges.get(strategy, (sw.lr_min, sw.lr_max))
    return float(lo), float(hi)


def grid_lr(sw: SweepConfig, strategy: str, i: int) -> float:
    """The i-th of grid_points LRs, evenly spaced in log between the strategy's bounds."""
    lo, hi = lr_range(sw, strategy)
    n = sw.grid_points
    return math.sqrt(lo * hi) if n == 1 else lo * (hi / lo) ** (i / (n - 1))


def trial_lr(p: dict) -> float:
    """Random/grid trials carry `lr`; Optuna trials `lr_<strategy>` (one range per strategy)."""
    return p["lr"] if p.get("lr") is not None else p[f"lr_{p['strategy']}"]


def trial_config(base: Config, p: dict) -> Config:
    """The sweep's config with one trial's draws in place, checked as a loaded config is."""
    conditional = {f"finetune.{param}": p[param] for param, _ in CONDITIONAL.values() if p.get(param) is not None}
    return with_values(base, {"optim.lr": trial_lr(p), "optim.weight_decay": p["weight_decay"],
                              "train.batch_size": p["batch_size"], "finetune.strategy": p["strategy"],
                              "finetune.epochs": p["epochs"], **conditional})


def n_trials(sw: SweepConfig) -> int:
    """Trials the sweep will run: samples x the grid (strategies x LR points, or the LR list)."""
    grid = len(sw.lrs) if sw.lrs else 1
    if sw.grid_points:
        grid = len(sw.strategies) * sw.grid_points
    return sw.num_samples * grid


def grid_order(sw: SweepConfig) -> list[tuple[str, int]]:
    """The grid's (strategy, LR point) cells in launch order: every strategy at its top LR, then
    one point lower, so a stopper meets a strong incumbent early (docs/decisions.md, "Grid order")."""
    return [(s, i) for i in reversed(range(sw.grid_points)) for s in sw.strategies]


def grid_cells(sw: SweepConfig) -> dict:
    """One grid key in launch order (Tune varies several grid keys in its own, alphabetical, order)."""
    from ray import tune

    cells = grid_order(sw)
    return {"grid_cell": tune.grid_search(list(range(len(cells)))),
            "strategy": tune.sample_from(lambda config: cells[config["grid_cell"]][0]),
            "lr": tune.sample_from(lambda config: grid_lr(sw, *cells[config["grid_cell"]]))}


def build_space(sw: SweepConfig, checkpoints: list[str]) -> dict:
    from ray import tune

    rng = random.Random(sw.seed)  # seeded: the same sweep config draws the same trials
    space = {
        "strategy": tune.choice(sw.strategies),
        "checkpoint": tune.choice(checkpoints),
        "weight_decay": tune.choice(sw.weight_decays),
        "batch_size": tune.choice(sw.batch_sizes),
        "epochs": tune.choice(sw.epochs),
    }
    if sw.lrs:
        space["lr"] = tune.grid_search(sw.lrs)
    elif sw.grid_points:
        space |= grid_cells(sw)
    else:
        def draw_lr(config):
            lo, hi = lr_range(sw, config["strategy"])
            return math.exp(rng.uniform(math.log(lo), math.log(hi)))
        space["lr"] = tune.sample_from(draw_lr)
    for strategy, (param, values) in CONDITIONAL.items():
        choices = getattr(sw, values)
        # conditional: drawn only for trials of that strategy, None otherwise
        space[param] = tune.sample_from(
            lambda config, s=strategy, c=choices: rng.choice(c) if config["strategy"] == s else None)
    return space


def optuna_search(sw: SweepConfig, checkpoints: list[str]):
    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise PtftError("sweep.search=optuna needs optuna: pip install 'ptft_ray[optuna]'") from None
    if sw.grid_points:
        raise PtftError("sweep.grid_points is an exhaustive grid: use it with sweep.search=random")

    def define_by_run(trial):
        s = trial.suggest_categorical("strategy", sw.strategies)
        if sw.lrs:
            trial.suggest_categorical("lr", sw.lrs)
        else:  # one LR parameter per strategy: each has its own range
            lo, hi = lr_range(sw, s)
            trial.suggest_float(f"lr_{s}", lo, hi, log=True)
        trial.suggest_categorical("checkpoint", checkpoints)
        trial.suggest_categorical("weight_decay", sw.weight_decays)
        trial.suggest_categorical("batch_size", sw.batch_sizes)
        trial.suggest_categorical("epochs", sw.epochs)
        if s in CONDITIONAL:
            param, values = CONDITIONAL[s]
            trial.suggest_categorical(param, getattr(sw, values))

    try:
        return OptunaSearch(space=define_by_run, metric=sw.metric, mode=sw.mode, seed=sw.seed)
    except (ImportError, AssertionError) as e:
        raise PtftError(f"sweep.search=optuna: {e}; pip install 'ptft_ray[optuna]'") from None
