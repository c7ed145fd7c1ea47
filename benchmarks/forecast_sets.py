"""The planned sweeps that check the planner's forecast: which cells each set holds, how one is
run, and what their own forecasts realised.

    python -m benchmarks.forecast NAME     # NAME in RUN_SETS: a planned sweep per cell -> runs/forecast_NAME/

benchmarks/forecast.py fits the forecast on the sets of FIT_RUNS and tabulates PROSPECTIVE.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT

TASKS = {"rt": "data/rotten_tomatoes.parquet", "tweets": "data/health_tweets.parquet",
         "news": "data/news_sources.parquet", "commons": "data/commons_party.parquet",
         "topics": "data/news_topics.parquet", "bundestag": "data/bundestag_party.parquet",
         "debates": "data/debate_party.parquet"}
# a task's own settings: the held-out tasks have 549 to 951 rows, so their test splits are widened
# to 30 % (165 to 285 rows; at the default 10 % a test reading carries +-5 points of noise)
TEST_FRACTION = {"commons": 0.3, "topics": 0.3, "bundestag": 0.3, "debates": 0.3}
# sets whose held-out tasks take half their rows for test (276 to 476 rows; at 30 %, test-row
# sampling alone put 2.5 to 3 points of error on each such cell); their training pools are then 218-379 rows
WIDE_TEST = ("forecast_fresh7", "forecast_fresh8", "forecast_fresh9", "forecast_fresh10", "forecast_fresh11",
             "forecast_fresh12", "forecast_fresh13", "forecast_fresh14")

# the planned sweeps the forecast is fitted on, oldest first (a cell measured again in a later
# folder replaces its row): the first fit's cells, then every set of cells made to check a fit
# (CHECK, UNSEEN, GAP, ...), each added once it had been read as a check (fresh3 and fresh4's
# runs were not kept, so their cells are not in it; fresh9 to fresh12 were read blind first)
FIT_RUNS = ("forecast", "forecast_first", "forecast_check", "forecast_cut", "forecast_unseen", "forecast_gap",
            "forecast_unseen2", "forecast_after7", "forecast_fresh", "forecast_rows", "forecast_fresh2",
            "forecast_fresh5", "forecast_fresh6", "forecast_fresh7", "forecast_fresh8", "forecast_fresh9",
            "forecast_fresh10", "forecast_fresh11", "forecast_fresh12")
CHECK = ["tweets:300:5m", "rt:2000:5m", "news:500:8m", "tweets:1500:5m"]
UNSEEN = ["commons:all:5m", "commons:200:3m", "commons:all:10m", "topics:all:5m", "topics:100:3m"]
GAP = ["news:1000:5m", "topics:300:4m", "commons:400:5m"]  # cells no fit holds, planned with the gap
# two more tasks no fit or calibration held (a German one, and short spoken statements), planned
# under the fit on five tasks (forecast_unseen2)
UNSEEN2 = ["debates:all:5m", "debates:200:3m", "bundestag:all:5m", "bundestag:150:3m"]
# cells no fit holds, planned under the seven-task fit (forecast_after7): does its narrower interval hold?
AFTER7 = ["debates:500:4m", "bundestag:300:4m", "topics:200:3m"]
# twelve cells no fit holds, all seven tasks, planned under the planner that may give one trial
# every CPU (forecast_fresh): the current forecast checked on >= 12 cells it never saw
FRESH = ["rt:150:3m", "rt:800:4m", "tweets:200:3m", "tweets:2000:4m", "news:300:4m", "news:2000:5m",
         "commons:300:4m", "commons:100:3m", "topics:250:4m", "bundestag:200:4m", "debates:100:3m", "debates:350:4m"]
# the cells whose plans had trained on fewer rows, which the cell's max_examples pin undid (the
# plans ran all rows at 2-4x the planned steps; Tune's budget cut them), planned again without that shrink
ROWS = ["commons:100:3m", "commons:300:4m", "bundestag:300:4m", "debates:500:4m"]
# ten more cells no fit holds, planned after that change: the forecast on cells nobody had seen
FRESH2 = ["rt:400:3m", "tweets:500:4m", "tweets:5000:5m", "news:600:4m", "commons:150:4m", "commons:400:3m",
          "topics:150:3m", "bundestag:100:3m", "bundestag:250:4m", "debates:250:4m"]
# thirteen more cells no fit holds, planned under the fit on every cell above (all 51, each with
# the validation-rows probe a plan reads): does that fit hold on cells it never saw?
FRESH3 = ["rt:250:3m", "rt:1500:4m", "tweets:400:3m", "tweets:800:4m", "news:400:4m", "news:800:5m",
          "commons:250:4m", "commons:350:3m", "topics:120:3m", "topics:350:4m", "bundestag:180:3m",
          "debates:150:3m", "debates:400:4m"]
# thirteen more such cells under the same fit (forecast_fresh4): a second look at it
FRESH4 = ["rt:350:3m", "rt:3000:5m", "tweets:250:3m", "tweets:1200:4m", "news:250:4m", "news:1500:5m",
          "commons:120:3m", "commons:450:4m", "topics:180:3m", "topics:400:4m", "bundestag:120:3m",
          "bundestag:280:4m", "debates:300:4m"]
# thirteen more cells no fit holds, planned under the fit whose gap pools the training rows out of
# fold with the validation rows (forecast_fresh5; docs/decisions.md, "The gap read on training rows too")
FRESH5 = ["rt:200:3m", "rt:500:4m", "tweets:150:3m", "tweets:700:4m", "news:350:4m", "news:1200:5m",
          "commons:180:3m", "commons:220:4m", "topics:220:3m", "topics:280:4m", "bundestag:220:4m",
          "debates:180:3m", "debates:450:4m"]
# thirteen more, planned under that fit with the forecast floored at the majority share (forecast_fresh6;
# docs/decisions.md, "The forecast floored at the majority share": fresh5 prompted the floor)
FRESH6 = ["rt:450:3m", "rt:700:4m", "tweets:350:3m", "tweets:900:4m", "news:450:4m", "news:700:5m",
          "commons:130:3m", "commons:270:4m", "topics:130:3m", "topics:320:4m", "bundestag:160:3m",
          "debates:130:3m", "debates:380:4m"]
# thirteen more, planned under the fit that took in fresh5 and fresh6 (77 cells), the held-out
# tasks' test splits widened to half their rows (WIDE_TEST)
FRESH7 = ["rt:550:3m", "rt:1100:4m", "tweets:450:3m", "tweets:1800:4m", "news:550:4m", "news:900:5m",
          "commons:160:3m", "commons:240:4m", "topics:160:3m", "topics:240:4m", "bundestag:140:3m",
          "bundestag:210:4m", "debates:280:4m"]
# thirteen more under the same fit and test splits (forecast_fresh8): a second blind look at it
FRESH8 = ["rt:650:3m", "rt:1300:4m", "tweets:550:3m", "tweets:1400:4m", "news:650:4m", "news:1100:5m",
          "commons:140:3m", "commons:210:4m", "topics:190:3m", "topics:260:4m", "bundestag:190:4m",
          "debates:230:3m", "debates:330:4m"]
# thirteen more, planned under the fit that took in fresh7 and fresh8 (103 cells), the majority
# floor taken after the plan's own price (docs/decisions.md, "The floor after the plan's price")
FRESH9 = ["rt:750:3m", "rt:1700:4m", "tweets:650:3m", "tweets:1100:4m", "news:750:4m", "news:1300:5m",
          "commons:190:3m", "commons:260:4m", "topics:170:3m", "topics:230:4m", "bundestag:170:4m",
          "debates:210:3m", "debates:360:4m"]
# thirteen more under the fit with the encoder's lead over the probe (e; 103 cells, fresh9 left
# out of it so that fresh9, replayed, and fresh10 check one fit)
FRESH10 = ["rt:850:3m", "rt:2500:4m", "tweets:750:3m", "tweets:1600:4m", "news:850:4m", "news:1400:5m",
           "commons:170:3m", "commons:230:4m", "topics:140:3m", "topics:210:4m", "bundestag:130:3m",
           "debates:160:3m", "debates:310:4m"]
# thirteen more under the fit with the lead read at the trials' rows (103 cells, as before),
# more of them past the encoder probe's 512 rows, where that reading moved
FRESH11 = ["rt:1200:4m", "rt:4000:5m", "tweets:1300:4m", "tweets:4000:5m", "news:950:4m", "news:1600:5m",
           "commons:110:3m", "commons:280:4m", "topics:110:3m", "topics:270:4m", "bundestag:110:3m",
           "debates:140:3m", "debates:260:4m"]
# a second blind look at the same fit: thirteen more cells planned under it (forecast_fresh12)
FRESH12 = ["rt:950:3m", "rt:1800:4m", "tweets:850:3m", "tweets:1700:4m", "news:1050:4m", "news:1800:5m",
           "commons:125:3m", "commons:290:4m", "topics:125:3m", "topics:265:4m", "bundestag:175:3m",
           "debates:170:3m", "debates:290:4m"]
# thirteen more planned under the fit on 155 cells (fresh9 to fresh12 taken in): the blind check
# of that fit, its sizes unused by every set above
FRESH13 = ["rt:600:3m", "rt:1400:4m", "tweets:600:3m", "tweets:2500:4m", "news:1150:4m", "news:2200:5m",
           "commons:135:3m", "commons:310:4m", "topics:115:3m", "topics:245:4m", "bundestag:145:3m",
           "debates:190:3m", "debates:270:4m"]
# a second blind look at the fit on 155 cells, sizes no set used, chosen while fresh13 ran (forecast_fresh14)
FRESH14 = ["rt:300:3m", "rt:3500:5m", "tweets:950:3m", "tweets:3000:5m", "news:1250:4m", "news:2500:5m",
           "commons:145:3m", "commons:320:4m", "topics:135:3m", "topics:255:4m", "bundestag:195:4m",
           "debates:120:3m", "debates:340:4m"]
RUN_SETS = {"unseen": UNSEEN, "gap": GAP, "unseen2": UNSEEN2, "after7": AFTER7, "fresh": FRESH, "rows": ROWS,
            "fresh2": FRESH2, "fresh3": FRESH3, "fresh4": FRESH4, "fresh5": FRESH5, "fresh6": FRESH6,
            "fresh7": FRESH7, "fresh8": FRESH8, "fresh9": FRESH9,
            "fresh10": FRESH10, "fresh11": FRESH11, "fresh12": FRESH12, "fresh13": FRESH13,
            "fresh14": FRESH14}  # `python -m benchmarks.forecast NAME` -> runs/forecast_NAME/
# planned sweeps whose forecasts were made before any fit held them: the check above, the
# blended 5-minute sweeps (read against the model alone), and every set of RUN_SETS (each was
# run to check a fit that did not hold it)
PROSPECTIVE = ("forecast_check", "forecast_cut", "blend_check") + tuple(f"forecast_{name}" for name in RUN_SETS)


def held_out_runs(cells: list[str], under: str = "forecast_check") -> None:
    """A planned MiniLM sweep per cell (task:labels:budget) under runs/UNDER/; each
    result.json holds the plan's forecast beside what it realised (a finished run is reused)."""
    for cell in cells:
        task, n, budget = cell.split(":")
        try:
            run_one(task, n, budget, under)
        except SystemExit as e:  # a budget under the plan's floor is refused: go on to the next cell
            print(e, flush=True)


def run_one(task: str, n: str, budget: str, under: str) -> None:
    from benchmarks.common import ptft

    out = ROOT / "runs" / under / f"{task}_{n}_{budget}"
    ptft("sweep", "--plan", "auto", "--budget", budget, "--pretrained", "data/models/minilm",
         "--data", TASKS[task], "--set", f"finetune.max_examples={0 if n == 'all' else n}",
         "--set", f"finetune.test_fraction={test_fraction(task, under)}", "--overwrite", out=out)
    drop_trial_checkpoints(out)


def drop_trial_checkpoints(run: Path) -> None:
    """Delete a finished sweep's trial checkpoints (about 0.5 GB a sweep; kept, they fill the disk
    the suite shares): the forecast reads result.json and plan.json, the blend check the export."""
    import shutil

    if (run / "result.json").is_file():
        for d in (run / "tune").glob("*/checkpoint_*"):
            shutil.rmtree(d)


def test_fraction(task: str, under: str) -> float:
    """The test share of a task's rows in the runs under runs/UNDER."""
    return 0.5 if under in WIDE_TEST and task in TEST_FRACTION else TEST_FRACTION.get(task, 0.1)


def model_alone(r: dict) -> float:
    """A run's fine-tuned model's own test accuracy: the forecast prices it, not a blend with
    TF-IDF + LR (finetune/blend.py)."""
    alone = (r.get("realised") or {}).get("model_alone_test_accuracy")
    return r["test_accuracy"] if alone is None else alone


def run_table(dirs: list[str]) -> list[dict]:
    """Every sweep's result.json under `dirs` that carries a forecast: forecast vs realised."""
    rows = []
    for d in dirs:
        for t in sorted(Path(d).rglob("trials.csv")):  # a sweep directory (Tune's own result.json are lines)
            f = t.parent / "result.json"
            if not f.is_file():
                continue
            r = json.loads(f.read_text())
            fc, real = r.get("forecast"), r.get("realised")
            if fc and real:
                lo, mid, hi = fc["test_accuracy"]
                got = model_alone(r)
                plan = f.parent / "plan.json"
                shape = json.loads(plan.read_text())["shape"] if plan.is_file() else {}
                rows.append({"run": str(f.parent), "forecast": [lo, mid, hi], "realised": got,
                             "covered": lo <= got <= hi, "error_points": round(100 * (mid - got), 2),
                             "fewer_rows": bool(shape.get("finetune.max_examples")), "test_n": r.get("test_n")})
    return rows


def fresh_summaries(runs: list[dict], again: dict) -> dict:
    """The cells no fit held, all seven tasks: as planned at first (fresh), after the planner
    stopped training on fewer rows (rows: the cells that had; fresh2: ten more), the plans of
    that planner together (fresh2, rows, and the fresh plans the change left as they were), and
    thirteen more twice under the fit that took all of those in (fresh3, fresh4; together
    fit_before_pooling), thirteen under that fit with the gap read on training rows too (fresh5), and
    thirteen under it floored at the majority share (fresh6), and thirteen under the fit that took
    fresh5 and fresh6 in, on wider test splits (fresh7), twice (fresh8; together fit_on_77), and
    thirteen under the fit that took those in, floored after the plan's own price (fresh9), and
    under the fit with the encoder's lead over the probe: fresh9 replayed (`again`: "FIT:set" ->
    rows made again by `replayed`) and thirteen run (fresh10; together fit_with_lead), and under
    the fit with the lead read at the trials' rows: fresh9 and fresh10 replayed, and twice thirteen
    run (fresh11, fresh12; together blind_at_rows; all of these fit_at_rows), and under the fit
    that took all of those in, the sets of BLIND_NOW (blind_now)."""
    names = [name for name in RUN_SETS if name.startswith("fresh") or name == "rows"]
    of = {name: [r for r in runs if f"/forecast_{name}/" in r["run"]] for name in names}
    now = of["fresh2"] + of["rows"] + [r for r in of["fresh"] if not r.get("fewer_rows")]
    at_rows = again.get("at_rows:forecast_fresh9", []) + again.get("at_rows:forecast_fresh10", [])
    return {**{name: summary(rs) for name, rs in of.items()}, "planner_now": summary(now),
            "fit_before_pooling": summary(of["fresh3"] + of["fresh4"]),
            "fit_on_77": summary(of["fresh7"] + of["fresh8"]),
            "fresh9_replayed": summary(again.get("lead:forecast_fresh9", [])),
            "fit_with_lead": summary(again.get("lead:forecast_fresh9", []) + of["fresh10"]),
            "fresh9_10_replayed_at_rows": summary(at_rows),
            "blind_at_rows": summary(of["fresh11"] + of["fresh12"]),
            "fit_at_rows": summary(at_rows + of["fresh11"] + of["fresh12"]),
            "blind_now": summary([r for name in BLIND_NOW for r in of[name]])}


def under_runs(path: str) -> str:
    """A run directory as `runs/...`, wherever the checkout that ran it lay."""
    return path[path.find("runs/"):]


def summary(runs: list[dict]) -> dict:
    """Coverage of the 80 % interval and mean absolute error over some runs' own forecasts, and
    the mean absolute error a forecast of each run's true accuracy would show from its test
    rows' sampling alone (sqrt(2/pi) binomial sd): the floor under the error."""
    noise = [math.sqrt(2 / math.pi * r["realised"] * (1 - r["realised"]) / r["test_n"]) for r in runs if r.get("test_n")]
    covered = sum(r["covered"] for r in runs)
    return {"n": len(runs), "covered": covered, "coverage": runs and round(covered / len(runs), 3),
            "mae_points": runs and round(float(np.mean([abs(r["error_points"]) for r in runs])), 2),
            "test_noise_points": round(100 * float(np.mean(noise)), 2) if len(noise) == len(runs) and runs else None}


# sets read again under today's fit (FIT), from their plans' recorded inputs (`replayed`); saved
# as "FIT:set", so a set replayed under an earlier fit keeps that record. None is replayed under
# the fit on 155 cells: it holds every set read before it, so a replay would not be held out.
FIT = "fit155"
REPLAYED: tuple[str, ...] = ()
# the sets planned under today's fit and held out of it: its blind check (headline.py)
BLIND_NOW = ("fresh13", "fresh14")


def replayed(dirs: list[str]) -> list[dict]:
    """Each run's forecast made again from its plan's recorded inputs under today's fit
    (planner/forecast.json), beside what it realised. The plan's shape stands: a refit that moves
    only terms every shape of a plan shares (a, d, e) leaves the planner's choice as it was."""
    from ptft_ray.planner import forecast as fc

    rows = []
    for r in run_table(dirs):
        p = json.loads((Path(r["run"]) / "plan.json").read_text())
        sc = p["scan"]
        probe = dict(sc["probe"])
        if "embed_gap" in probe and "embed_lr_pooled" in sc.get("embed_probe", {}):
            # plans before the lead term, or before its reading was moved to the trials' rows
            probe.setdefault("embed_pooled", sc["embed_probe"]["embed_lr_pooled"])
            probe.setdefault("embed_rows", sc["embed_probe"]["rows"][0])
            probe.setdefault("n_train", sc["examples"]["train"])
        lo, mid, hi = fc.of_plan(p, fc.Probe.of(probe), sc["examples"]["train"], sc["num_classes"], p["calibration"])
        rows.append({**r, "run": under_runs(r["run"]), "forecast": [lo, mid, hi],
                     "covered": lo <= r["realised"] <= hi, "error_points": round(100 * (mid - r["realised"]), 2)})
    return rows
