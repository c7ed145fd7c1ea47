"""The planner: a table of scenarios with the expected choices (pure rules), the pre-flight
refusal of the 2-CPU two-worker hang, and a real sweep that keeps to its --budget."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest

from ptft_ray.errors import PtftError
from ptft_ray.planner import forecast, parse_budget
from ptft_ray.planner.families import CALIBRATED, calibration
from ptft_ray.planner.rules import STARTUP_S, asha_fraction, choose

CPU2 = {"cpus": 2.0, "gpus": 0.0, "max_node_cpus": 2.0, "max_node_gpus": 0.0, "nodes": 1}
GPU4 = {"cpus": 32.0, "gpus": 4.0, "max_node_cpus": 32.0, "max_node_gpus": 4.0, "nodes": 1}
CKPT = [{"key": "ckpt", "max_seq_len": 256, "tokens_per_s_per_worker": 4700.0}]


def scan(n_train: int, classes: int = 2, p95: float = 70.0) -> dict:
    """What a Ray Data scan of a review-like task reports (RT: p95 ~ 70 tokens)."""
    return {"examples": {"train": n_train, "val": max(n_train // 8, 250), "test": max(n_train // 8, 250)},
            "train_tokens": n_train * 30, "length": {"p95": p95, "p50": 25.0, "mean": 27.0, "max": 90},
            "num_classes": classes, "task_type": "binary" if classes == 2 else "multiclass",
            "majority_fraction": 0.55, "data": "x.parquet"}


def test_parse_budget():
    assert parse_budget("20m") == 1200 and parse_budget("90s") == 90 and parse_budget("1.5h") == 5400
    assert parse_budget("45") == 45
    for bad in ("soon", "-5m", "0"):
        with pytest.raises(PtftError):
            parse_budget(bad)


def test_asha_fraction_arithmetic():
    # 9 trials, rungs 1, 3, 9 of 9: 9*1 + 3*2 + 1*6 = 21 of 81 evaluations
    assert asha_fraction(9, 1, 9, 3) == pytest.approx(21 / 81)
    assert asha_fraction(1, 1, 9, 3) == 1.0
    assert asha_fraction(4, 9, 9, 2) == 1.0


def cheapest(strategies, p):
    return min(strategies, key=lambda s: p["cost_model"]["per_trial_s"].get(s, 1e9))


SCENARIOS = [
    # (name, n_train, budget_s, cluster, expectation)
    ("tiny data, small budget", 100, 45, CPU2, "few_short"),
    ("tiny data, large budget", 100, 3600, CPU2, "many"),
    ("large data, large budget", 10000, 3 * 3600, CPU2, "full_included"),
    ("large data, small budget", 10000, 240, CPU2, "trimmed"),   # a couple of ~95 s trials
    ("GPU cluster", 10000, 3600, GPU4, "gpu"),
]


def test_calibrated_lr_ranges_stay_inside_the_measured_grid():
    """derive_rules widens each winning LR by half a grid step, but never past the grid's
    edges: no plan draws an LR where the calibration measured nothing (the planned tweets
    sweeps' draws above the grid's top, 3e-3, lost 3 points)."""
    from pathlib import Path

    grid = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" /
                       "calibration.json").read_text())["lr_ranges"]
    for size, b in CALIBRATED["buckets"].items():
        for rules in [b, *b["by_task_type"].values()]:
            for s, (lo, hi) in rules["lr_ranges"].items():
                assert grid[s][0] <= lo < hi <= grid[s][1], (size, s, lo, hi, grid[s])


@pytest.mark.parametrize("name,n,budget,res,expect", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_plan_scenarios(name, n, budget, res, expect):
    p = choose(scan(n), CKPT, budget, res)
    assert p["reasons"] and all(isinstance(r, str) and r for r in p["reasons"])
    # the plan keeps to its budget by its own estimate
    assert p["estimated_cost_s"] <= budget + 1e-6, p["cost_model"]
    assert set(p["strategies"]) <= set(CALIBRATED["buckets"][p["calibration_bucket"]]["ranking"])
    assert all(p["lr_ranges"][s][0] < p["lr_ranges"][s][1] for s in p["strategies"])
    if expect == "few_short":
        # few trials' worth of work: most are stopped early by ASHA at its first rung
        assert p["num_trials"] * p["cost_model"]["asha_fraction"] <= 6 and p["level"] == "short"
        # trimmed to what the budget tries at least twice each, fewer than the tied strategies
        tied = CALIBRATED["buckets"]["100"]["by_task_type"]["binary"]["within_1pt"]
        assert 2 * len(p["strategies"]) <= p["num_trials"] and len(p["strategies"]) < len(tied)
        # what survives a tight budget is the cheap end of the tied strategies
        assert cheapest(tied, choose(scan(n), CKPT, 3600, res)) in p["strategies"]
    elif expect == "many":
        few = choose(scan(n), CKPT, 45, res)
        assert p["num_trials"] > few["num_trials"] and len(p["strategies"]) >= len(few["strategies"])
    elif expect == "full_included":
        assert "full" in p["strategies"] and p["scheduler"]["type"] == "asha"
        assert p["num_trials"] >= 2 * len(p["strategies"])
    elif expect == "trimmed":
        big = choose(scan(n), CKPT, 3 * 3600, res)
        assert p["num_trials"] < big["num_trials"]
    elif expect == "gpu":
        assert p["resources_per_trial"]["GPU"] == 1.0 and p["max_concurrent_trials"] == 4
    if p["scheduler"]["type"] == "asha":
        s = p["scheduler"]
        assert 1 <= s["grace_period"] < s["max_t"] and s["reduction_factor"] >= 2


def test_rescoring_fits_its_share_of_the_budget_and_is_off_where_it_adds_nothing():
    from ptft_ray.planner.rescore import RESCORE_SHARE

    sc = {**scan(1000), "val_split": 6000}
    p = choose(sc, CKPT, 600, CPU2)
    r = p["rescore"]
    # more validation examples than the sweep evaluates on, never more than the split has
    assert p["shape"]["finetune.max_val_examples"] < r["val_examples"] <= 6000 and r["top_k"] == 3
    assert 0 < r["estimated_s"] <= RESCORE_SHARE * 600 + 1e-6
    assert any(x.startswith("selection: the top 3") for x in p["reasons"])
    # a larger budget affords the whole split; the trials' share shrinks by what re-scoring costs
    assert choose(sc, CKPT, 3600, CPU2)["rescore"]["val_examples"] == 6000
    # a validation split no larger than what the sweep evaluates on: nothing to gain, off
    off = choose({**scan(1000), "val_split": 250}, CKPT, 600, CPU2)
    assert off["rescore"] == {"top_k": 1, "val_examples": 0, "estimated_s": 0.0}
    assert any(x.startswith("selection: the best trial by") for x in off["reasons"])


def test_one_strategy_runs_complete_trials_without_early_stopping():
    """16 classes at ~1,000 labels: the calibration keeps full fine-tuning alone; its trials
    differ only by LR inside the winner's range, so none is stopped on a noisy early rung."""
    assert CALIBRATED["buckets"]["1000"]["by_task_type"]["multiclass"]["within_1pt"] == ["full"]
    p = choose(scan(1000, classes=16), CKPT, 120, CPU2)
    assert p["strategies"] == ["full"] and p["scheduler"]["type"] == "none"
    assert p["cost_model"]["asha_fraction"] == 1.0
    per = p["cost_model"]["per_trial_s"]["full"]
    # as many complete trials as the budget (less start-up and re-scoring) runs on 2 slots
    room = 120 - p["cost_model"]["startup_s"] - p["cost_model"]["rescore_s"]
    assert p["num_trials"] >= 2 and p["num_trials"] * per / 2 <= room < (p["num_trials"] + 1) * per / 2
    assert any("one strategy (full)" in r for r in p["reasons"])
    # with a budget that buys breadth, strategies are added and ASHA is back
    big = choose(scan(1000, classes=16), CKPT, 3600, CPU2)
    assert len(big["strategies"]) > 1 and big["scheduler"]["type"] == "asha"


def test_many_classes_get_more_optimizer_steps_than_two():
    """The binary minimum (100 steps, 2 epochs at 1,000 labels) under-trained MiniLM on the
    16-class tweets (0.312 vs 0.400 with 4 epochs): K classes need log2(K) x the steps."""
    from ptft_ray.planner import sizing

    two, four, sixteen = (choose(scan(1000, classes=k), CKPT, 3600, CPU2) for k in (2, 4, 16))
    epochs = [p["shape"]["sweep.epochs"][0] for p in (two, four, sixteen)]
    assert epochs[0] < epochs[1] < epochs[2], epochs
    steps = [math.ceil(e * (1000 // p["shape"]["sweep.batch_sizes"][0])) for e, p in zip(epochs, (two, four, sixteen))]
    level = sixteen["level"]
    assert steps[2] >= sizing.min_steps(level, 16) == 4 * sizing.MIN_STEPS[level]
    assert any("optimizer steps for 16 classes" in r for r in sixteen["reasons"])
    # the larger shape costs more per trial; the plan still keeps to its budget
    assert sixteen["cost_model"]["per_trial_s"]["full"] > two["cost_model"]["per_trial_s"]["full"]
    assert sixteen["estimated_cost_s"] <= 3600
    # the printout says what the user pinned over the plan, beside the plan's own shape
    from ptft_ray.planner import format_plan

    shown = format_plan({**sixteen, "scan": scan(1000, classes=16), "checkpoints": ["ckpt"], "budget_s": 3600,
                         "pins": ["sweep.epochs=[4]"]})
    assert "7 epoch(s)" in shown and "pinned        sweep.epochs=[4]" in shown
    # ... and that the trials then run a shape the plan did not price (a pin the plan agrees with is not told)
    assert "over the plan sweep.epochs: [4], not the plan's [7" in shown and "estimate and forecast" in shown
    same = format_plan({**sixteen, "scan": scan(1000, classes=16), "checkpoints": ["ckpt"], "budget_s": 3600,
                        "pins": [f"sweep.epochs={sixteen['shape']['sweep.epochs']}", "finetune.max_examples=1000"]})
    assert "over the plan" not in same
    assert "pinned" not in format_plan({**sixteen, "scan": scan(1000), "checkpoints": ["c"], "budget_s": 1, "pins": []})


def test_rescoring_gives_way_to_trials_when_it_would_leave_a_slot_idle():
    """MiniLM, 16 classes, 1,000 labels on 2 CPUs, a budget of one 7-epoch trial + start-up +
    20 s: re-scoring's share (~55 s) leaves room for no trial beside it, so one trial would hold
    two slots; without it two trials run side by side within the budget. With one trial only,
    there is nothing to re-score. (Seen at 10 minutes under the first MiniLM cost model.)"""
    from ptft_ray.planner import sizing
    from ptft_ray.planner.rules import STARTUP_S, trial_seconds

    ck = [{"key": "minilm", "max_seq_len": 512, "tokens_per_s_per_worker": 1051.0, "family": "hf_encoder"}]
    sc = {**scan(1000, classes=16, p95=38.0), "val_split": 1986}
    sc["examples"]["val"] = 1986
    shape = sizing.shape_overrides(1000, 38.0, 512, "short", 16)
    budget = STARTUP_S + 20 + trial_seconds("full", shape, 1000, 1000, 1051.0, calibration("hf_encoder")["cost_model"])
    p = choose(sc, ck, budget, CPU2)
    assert p["epochs"] == shape["sweep.epochs"][0] == 7.0
    assert p["num_trials"] == 2 and p["rescore"]["val_examples"] == 0 and p["estimated_cost_s"] <= budget
    assert any("so that share runs 2 instead" in r for r in p["reasons"])
    gpu1 = {"cpus": 8.0, "gpus": 1.0, "max_node_cpus": 8.0, "max_node_gpus": 1.0, "nodes": 1}
    one = choose(sc, ck, budget, gpu1)  # one slot, one trial: re-scoring would only overrun the budget
    assert one["num_trials"] == 1 and one["rescore"]["val_examples"] == 0 and one["estimated_cost_s"] <= budget
    assert any("nothing to re-score it against" in r for r in one["reasons"])
    # a budget with room for both keeps re-scoring
    big = choose(sc, ck, 1200, CPU2)
    assert big["num_trials"] >= 2 and big["rescore"]["val_examples"] == 1986


def test_one_strategy_spends_a_budget_beyond_one_round_on_longer_trials():
    """Tweets-like 16 classes at 10,000 labels, 25 minutes, 2 CPUs: three 2-epoch trials (two
    rounds, the second with a slot idle) become two 3-epoch trials side by side (measured: 4
    epochs beat 2 by 6.6 points there). A budget of one round at the minimum stays as it is."""
    from ptft_ray.planner.depth import DEPTH_MAX

    ck = [{"key": "minilm", "max_seq_len": 512, "tokens_per_s_per_worker": 1004.0, "family": "hf_encoder"}]
    sc = {**scan(10000, classes=16, p95=38.0), "val_split": 6333}
    sc["examples"]["val"] = 6333
    p = choose(sc, ck, 1530, CPU2)  # 25 minutes + the 15 s the test evaluation of 1,250 rows takes
    assert p["strategies"] == ["full"] and p["scheduler"]["type"] == "none"
    assert p["num_trials"] == 2 and p["epochs"] == 3.0 and p["estimated_cost_s"] <= 1530
    assert p["scheduler"]["max_t"] == math.ceil(3 * p["shape"]["finetune.evals_per_epoch"]) + 1
    depth = [r for r in p["reasons"] if r.startswith("depth:")]
    assert depth and "2 trial(s) of 3 epochs" in depth[0] and "rather than 3 of 2" in depth[0]
    # the per-trial cost the estimate uses is the longer trial's
    assert p["cost_model"]["per_trial_s"]["full"] * p["num_trials"] / 2 <= 1530 - p["reserve_s"]
    # never past DEPTH_MAX x the minimum, however large the budget of one strategy
    huge = choose(sc, ck, 6 * 3600, CPU2, strategies_allowed=["full"])
    assert huge["epochs"] == DEPTH_MAX * 2 and 2 <= huge["num_trials"] <= 8
    # one round at the minimum: nothing to lengthen
    tight = choose(sc, ck, 900, CPU2)
    assert tight["epochs"] == 2.0 and not any(r.startswith("depth:") for r in tight["reasons"])


def test_depth_goes_by_half_epochs_and_a_cut_last_round_is_said():
    """The adapted MiniLM measured 954 tokens/s on tweets 10,000 with 25 minutes: 3 epochs did
    not fit one round, so the plan was 3 trials of 2 epochs, the third in a second round the
    budget cut (its slot's partner idle). Half epochs give the two trials 2.5 epochs each. Where
    nothing can lengthen (100 tweets: 20 epochs, sizing's cap), the reasons say which trials
    complete and which the budget stops short, and the estimate is rounds of trials, not a
    fluid share of slots."""
    ck = [{"key": "minilm", "max_seq_len": 512, "tokens_per_s_per_worker": 954.0, "family": "hf_encoder"}]
    sc = {**scan(10000, classes=16, p95=38.0), "val_split": 6333}
    sc["examples"]["val"] = 6333
    p = choose(sc, ck, 1500, CPU2)
    assert p["num_trials"] == 2 and p["epochs"] == 2.5, (p["num_trials"], p["epochs"])
    assert p["scheduler"]["max_t"] == math.ceil(2.5 * p["shape"]["finetune.evals_per_epoch"]) + 1
    depth = next(r for r in p["reasons"] if r.startswith("depth:"))
    assert "2 trial(s) of 2.5 epochs" in depth and "rather than 3 of 2" in depth
    assert p["cost_model"]["per_trial_s"]["full"] <= 0.9 * (1500 - 15 - p["rescore"]["estimated_s"])

    sc = {**scan(100, classes=16, p95=38.0), "val_split": 2569}
    sc["examples"]["val"] = 2569
    p = choose(sc, ck, 300, CPU2)
    t = p["cost_model"]["per_trial_s"]["full"]
    assert p["epochs"] == 20.0 and p["num_trials"] == 3 and p["scheduler"]["type"] == "none"
    assert 2 * t > 300 - 15 - p["rescore"]["estimated_s"]  # a second round does not fit ...
    sched = next(r for r in p["reasons"] if r.startswith("scheduler:"))
    assert "runs 2 complete trial(s) and 1 more in a last round it stops short" in sched
    assert p["estimated_cost_s"] == 300.0  # ... so the sweep runs to its budget (fluid: 15 + 45 + 1.5 t)
    two = choose(sc, ck, 250, CPU2)
    assert two["num_trials"] == 2 and "stops short" not in " ".join(two["reasons"])


def test_budget_below_the_floor_is_refused_with_the_floor():
    with pytest.raises(PtftError, match=r"below the floor of (\d+) s.*raise --budget to at least \1 s"):
        choose(scan(10000), CKPT, 20, CPU2)


ENC = [{"key": "minilm", "max_seq_len": 512, "tokens_per_s_per_worker": 1000.0, "family": "hf_encoder"}]


def long_16_class(n: int = 1000) -> dict:
    """The issue's case: 16 classes, 1,000 labels, texts of ~200 tokens, TF-IDF + LR at 0.37."""
    sc = scan(n, classes=16, p95=200.0)
    sc["length"].update(p50=120.0, p90=180.0)
    sc["probe"] = {"tfidf_lr_val": 0.37, "tfidf_lr_val_half": 0.31, "majority_val": 0.12, "n_val": 250}
    return sc


def test_every_budget_above_the_floor_gets_a_plan_that_fits():
    """A budget below one trial of the sized shape is not refused: it gets the cheaper shape (or
    strategy) with the best forecast that fits; from the floor up every budget has a plan whose
    estimate is within it, and no forecast falls as the budget grows."""
    sc = long_16_class()
    with pytest.raises(PtftError, match="below the floor") as e:
        choose(sc, ENC, 60, CPU2)
    floor = int(e.value.args[0].split("floor of ")[1].split(" s")[0])
    sized = choose(sc, ENC, 3600, CPU2)
    assert sized["estimated_cost_s"] > 300 >= floor  # the 5-minute case is below one sized trial
    mids = []
    for budget in (floor, 200, 300, 450, 600, 1200, 2400):
        p = choose(sc, ENC, budget, CPU2)
        assert p["estimated_cost_s"] <= budget * 1.05, (budget, p["estimated_cost_s"])
        p["budget_s"] = budget
        mids.append(forecast.of_plan(p, forecast.Probe.of(sc["probe"]), 1000, 16, p["calibration"])[1])
        if budget <= 450:  # below one trial of the sized shape (~1,000 s here)
            assert any(r.startswith("budget: one trial of the sized shape") for r in p["reasons"])
            # ... so its model may fall under TF-IDF + LR: blended where that wins, its pass reserved
            assert p["shape"]["finetune.blend"] == "auto" and any(r.startswith("blend:") for r in p["reasons"])
    assert "finetune.blend" not in sized["shape"] and not any(r.startswith("blend:") for r in sized["reasons"])
    assert mids == sorted(mids) and mids[-1] > mids[0]
    five = choose(sc, ENC, 300, CPU2)  # the calibrated strategy at fewer steps than the minimum
    # ... on fewer examples than the sizing minimum's (400 steps of the sized batch of 16)
    assert five["strategies"] == ["full"] and five["epochs"] * 1000 < 400 * sized["batch_size"]
    # the blend's validation pass (250 rows at the plan's max_len) and TF-IDF + LR's fit are
    # reserved; the test pass reads the same 27-token mean a row as the sized plan's
    blend_s = 2.0 + calibration("hf_encoder")["cost_model"]["eval"] * 250 * five["max_len"] / 1000.0
    assert five["reserve_s"] == pytest.approx(sized["reserve_s"] + blend_s, abs=0.1)


def test_a_tight_budget_buys_steps_with_shorter_rows_and_prices_the_cut():
    """News sources (~200-token texts, 1,000 labels, 5 minutes on 2 CPUs) at full length bought
    under an epoch and tied TF-IDF + LR; at 64 tokens the same time bought 4 epochs and the model
    beat it. A cut is priced at 1 point per halving of the training tokens kept, read from the
    scan's length quantiles, and the plan's forecast carries that price."""
    from ptft_ray.planner import fit_budget, sizing

    sc = long_16_class()
    sc["length"]["q"] = [190.0 + i for i in range(20)]  # every text ~200 tokens: 64 keeps ~1/3
    five = choose(sc, ENC, 300, CPU2)
    assert five["max_len"] < 200 and five["shape"]["finetune.max_len"] == five["max_len"]
    kept = fit_budget.kept_tokens(sc, five["max_len"], 200)
    assert kept == pytest.approx(five["max_len"] / 199.5, rel=0.01)
    assert five["truncation_gap"] == pytest.approx(-math.log2(1 / kept) / 100, abs=1e-4)
    budget = next(r for r in five["reasons"] if r.startswith("budget:"))
    assert f"max_len {five['max_len']} (sized 200), keeping {kept:.0%} of the training tokens" in budget
    five["budget_s"] = 300
    uncut = forecast.of_plan({**five, "truncation_gap": 0.0}, forecast.Probe.of(sc["probe"]), 1000, 16, "hf_encoder")
    assert forecast.of_plan(five, forecast.Probe.of(sc["probe"]), 1000, 16, "hf_encoder")[1] == \
        pytest.approx(uncut[1] + five["truncation_gap"], abs=1e-4)
    # where rows of the cut length were timed too (throughput.retime_shrunk), the cut shape is priced
    # at that rate, every other length at the slowest timed
    fast = [{**ENC[0], "rates_by_len": {five["max_len"]: 2000.0}}]
    again = choose(sc, fast, 300, CPU2)
    assert again["max_len"] == five["max_len"] and again["epochs"] > 1.5 * five["epochs"]
    assert again["cost_model"]["rate_tokens_per_s"] == 2000.0 and again["estimated_cost_s"] <= 300
    slow = choose(sc, [{**ENC[0], "rates_by_len": {five["max_len"]: 500.0}}], 300, CPU2)
    assert slow["cost_model"]["rate_tokens_per_s"] == 500.0 and slow["epochs"] < five["epochs"]
    # half the sized batch at twice the steps trains on the same examples and tokens: the forecast
    # and the cost tie, and the more steps win (news sources, all labels: 320 steps of 16 against
    # 159 of 32, +3.7 test points for the model alone)
    assert fit_budget.batches(32, 64) == [(8, 1), (16, 2), (32, 1)] and fit_budget.batches(8, 64) == [(8, 1)]
    # ... where a step still holds the probe's 1,024 tokens: 8 x 64-token rows ran 1.4-1.8x their price
    assert fit_budget.batches(16, 64) == [(8, 1), (16, 1)] and (8, 2) in fit_budget.batches(16, 224)
    news = {**scan(3032, classes=9, p95=220.0), "probe": {"tfidf_lr_val": 0.71, "tfidf_lr_val_half": 0.66,
                                                          "majority_val": 0.14, "n_val": 378}}
    news["length"].update(p50=192.0, p90=213.0, mean=189.0, q=[150.0 + 4 * i for i in range(20)])
    wide = choose(news, ENC, 450, CPU2)
    assert choose(news, ENC, 3600, CPU2)["batch_size"] == 32 and wide["batch_size"] == 16
    assert "finetune.max_examples" not in wide["shape"] and wide["max_len"] == 64
    assert wide["epochs"] * (3032 // 16) >= 0.99 * sizing.min_steps("short", 9)  # 32 would take half the steps
    # what follows the trials is priced at the cut too: the test pass reads the tokens 64 keep
    # (priced at the sized length, it took a quarter of the trials' steps from a 5-minute plan)
    big, eval_cost = choose(news, ENC, 3600, CPU2), calibration("hf_encoder")["cost_model"]["eval"]
    full = big["max_len"]
    share = fit_budget.kept_tokens(news, 64, full) / fit_budget.kept_tokens(news, full, full)
    test_64 = wide["reserve_s"] - STARTUP_S - (2.0 + eval_cost * 250 * 64 / 1000.0)
    assert share < 0.4 and test_64 == pytest.approx((big["reserve_s"] - STARTUP_S) * share, abs=0.1)
    # a budget that fits the sized trial cuts nothing
    sized = choose(sc, ENC, 3600, CPU2)
    assert sized["max_len"] == 200 and sized["truncation_gap"] == 0.0
    # texts mostly short with a long tail: 64 tokens keep most tokens, so the cut is cheap
    tail = {**sc, "length": {**sc["length"], "q": [40.0] * 18 + [150.0, 200.0]}}
    assert fit_budget.truncation_gap(tail, 64, 200) > -0.01 > fit_budget.truncation_gap(sc, 64, 200)
    # nothing is cut under 64 tokens unless the texts' own median is shorter
    assert min(choose(sc, ENC, b, CPU2)["max_len"] for b in (200, 250, 300, 450)) >= 64


def test_planning_time_is_not_planned_for_the_trials():
    """A command's budget is its wall clock: what planning spent is gone before the plan is
    chosen, so the trials are sized to what is left (a 5-minute tweets plan sized for 300 s got
    200 s from Tune after 34 s of planning, and the budget cut both trials), and the floor
    counts it."""
    sc = long_16_class()
    late, left = choose(sc, ENC, 300, CPU2, spent_s=60), choose(sc, ENC, 240, CPU2)
    for k in ("strategies", "num_trials", "epochs", "batch_size", "max_len", "cost_model"):
        assert late[k] == left[k], k
    assert late["estimated_cost_s"] == pytest.approx(left["estimated_cost_s"] + 60) and late["estimated_cost_s"] <= 300
    assert any("what 60 s of planning left" in r for r in late["reasons"])
    with pytest.raises(PtftError, match="below the floor") as e:
        choose(sc, ENC, 60, CPU2)
    floor = int(e.value.args[0].split("floor of ")[1].split(" s")[0])
    choose(sc, ENC, floor, CPU2)
    with pytest.raises(PtftError, match=rf"budget {floor} s is below the floor of {floor + 30} s: .*"
                                        rf"\+ 30 s spent planning; raise --budget to at least {floor + 30} s"):
        choose(sc, ENC, floor, CPU2, spent_s=30)


def test_the_forecast_block_answers_what_more_budget_or_labels_would_buy():
    sc = long_16_class()
    p = choose(sc, ENC, 200, CPU2)
    p["budget_s"] = 200
    fc = forecast.block(p, sc, p["calibration"], lambda b, s: choose(s, ENC, b, CPU2))
    lo, mid, hi = fc["test_accuracy"]
    assert 0 <= lo < mid < hi <= 1
    assert set(fc["by_budget"]) == {"0.5", "2", "4"}
    assert fc["by_budget"]["0.5"] is None and "below the floor" in fc["by_budget_why"]["0.5"]
    # 200 s cannot use the 1,000 rows it has: twice the labels buy no less; where the budget
    # trains on all of them, they buy more
    assert fc["by_budget"]["4"][1] >= mid and fc["labels_2x"][1] >= mid
    big = {**choose(sc, ENC, 3600, CPU2), "budget_s": 3600}
    big_fc = forecast.block(big, sc, big["calibration"], lambda b, s: choose(s, ENC, b, CPU2))
    assert big_fc["labels_2x"][1] > big_fc["test_accuracy"][1]
    cpt = fc["continued_pretraining"]
    assert cpt[0] < cpt[1] < cpt[2] and cpt[1] > 0  # 62 labels a class: the measured cells gained there
    assert fc["verdict"].startswith("expected ") and " points over TF-IDF + LR at this budget: " in fc["verdict"]
    assert "4x the budget: +" in fc["verdict"]
    # a shrunk plan (200 s is below one sized trial) blends, and the block says what it forecasts
    assert "the forecast above is the model's alone" in fc["blend"]
    assert "\n".join(forecast.format_block(fc)).count("\n") == 6
    # a plan the probe says cannot pay is told so, not sold
    weak = {**sc, "probe": {**sc["probe"], "tfidf_lr_val": 0.9, "tfidf_lr_val_half": 0.9}}
    assert "not shown to pay" in forecast.block(p, weak, p["calibration"],
                                                lambda b, s: choose(s, ENC, b, CPU2))["verdict"]


def test_a_probe_read_on_few_validation_rows_widens_the_interval_not_the_forecast():
    few, many = (forecast.Probe(0.6, 0.57, 0.53, n, 0.0) for n in (20, 1280))
    a, b = (forecast.expected(pr, 500, 2, 2000, "hf_encoder") for pr in (few, many))
    assert a[1] == b[1]
    fit_half = forecast.params("hf_encoder", 0.0)["half_width_points"] / 100
    assert b[2] - b[1] == pytest.approx(fit_half, abs=0.01)     # 1,280 rows: the fit's own width
    # 20 rows: the probe's +-11 points (1 sd) pass through at (1 - r), r < 0.5, and outgrow the
    # fit's width, which holds the noise of probes on 55 rows and more
    assert a[2] - a[1] > b[2] - b[1]
    assert a[2] - a[1] >= forecast.Z80 * 0.5 * few.sd - 1e-4
    # 300 rows: noise the fitted cells' probes carried too (55 to 2,000 rows) is not added again
    mid_rows = forecast.expected(forecast.Probe(0.6, 0.57, 0.53, 300, 0.0), 500, 2, 2000, "hf_encoder")
    assert mid_rows[2] - mid_rows[1] == pytest.approx(fit_half, abs=1e-3)
    assert forecast.gain_text(a, few)[1] == pytest.approx(100 * (a[2] - a[1]), abs=0.01)


def test_fewer_labels_never_forecast_a_better_probe():
    """Commons party, 300 labels, 84 validation rows: TF-IDF + LR scored 0.655 on half the rows
    and 0.548 on all of them. Read as a slope, that forecast 0.76 for a quarter of the rows, the
    shrink chose 75 rows, and the model realised 0.49 against a forecast of 0.75. A half probe
    above the whole one is held level: fewer rows never forecast a better probe."""
    noisy = forecast.Probe(0.548, 0.655, 0.5, 84, -0.13)
    assert noisy.with_labels(0.25).accuracy == pytest.approx(0.548)
    assert noisy.with_labels(2).accuracy == pytest.approx(0.548)
    sane = forecast.Probe(0.6, 0.55, 0.5, 84)
    assert sane.with_labels(0.25).accuracy == pytest.approx(0.5) and sane.with_labels(2).accuracy == pytest.approx(0.65)


def test_a_shrunk_plan_trains_on_every_row_it_was_given():
    """A budget below one sized trial buys fewer steps over all the training rows, never more
    epochs over fewer of them: such plans forecast more only through the fit's step term, and a
    user's finetune.max_examples pin (every benchmark cell sets one) ran the plan on all its rows
    at 2-4x the planned steps, which Tune's time budget cut (docs/decisions.md, "No fewer rows")."""
    sc = {**scan(300, p95=300.0), "probe": {"tfidf_lr_val": 0.548, "tfidf_lr_val_half": 0.655,
                                            "majority_val": 0.5, "n_val": 84, "embed_gap": -0.13}}
    sc["length"].update(p50=200.0, p90=280.0)
    sized = choose(sc, ENC, 3600, CPU2)
    for budget in (120, 180, 240, 300):
        p = choose(sc, ENC, budget, CPU2)
        assert p["estimated_cost_s"] <= budget * 1.05
        assert "finetune.max_examples" not in p["shape"] and " of 300 training rows " in \
            next(r for r in p["reasons"] if r.startswith("budget:"))
        assert p["epochs"] <= sized["epochs"]


def test_plan_cli_json_and_preflight_refusal(ray_session, pretrained_ckpt, cls_data):
    base = [sys.executable, "-m", "ptft_ray.cli", "plan", "--data", cls_data, "--pretrained", pretrained_ckpt,
            "--budget", "2m"]
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    r = subprocess.run([*base, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    p = json.loads(r.stdout)
    for key in ("strategies", "checkpoints", "num_trials", "max_concurrent_trials", "resources_per_trial",
                "scheduler", "estimated_cost_s", "reasons"):
        assert key in p, key
    assert p["checkpoints"] == [pretrained_ckpt] and isinstance(p["reasons"], list)
    assert p["scan"]["examples"]["train"] == 720  # 900 rows, 10 % val, 10 % test
    assert "embed_gap" not in p["scan"]["probe"]  # our GPT: no encoder probe, the forecast's form without it
    q = p["scan"]["length"]["q"]  # the length quantiles a shorter max_len is priced from
    assert len(q) == 20 and q == sorted(q) and q[0] <= p["scan"]["length"]["p50"] <= q[-1]
    # what `sweep --plan auto` would run: the command's planning is taken off the budget
    assert p["planning_s"] > 0 and p["time_budget_s"] == pytest.approx(
        120 - p["planning_s"] - p["reserve_s"] - p["rescore"]["estimated_s"])
    # the 2-CPU hang: two 1-CPU workers per trial leave Ray Data nothing -> exit 2, what to change
    r = subprocess.run([*base, "--set", "sweep.workers_per_trial=2", "--set", "sweep.in_process=never",
                        "--set", "sweep.cpus_per_trial=1"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("ptft-ray: error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr
    assert "Ray Data needs 1 CPU free" in errors[0] and "sweep.cpus_per_trial <=" in errors[0]


def test_planned_sweep_keeps_to_its_budget(ray_session, pretrained_ckpt, cls_data, sweep_config, tmp_path):
    """`ptft-ray sweep --plan auto --budget 60s`, with more trials pinned than fit: the budget
    ends the sweep, within a stated slack, and the best model so far is exported. 400 pinned:
    with trial actors reused, 40 trials that noise stops after one evaluation fit 60 s."""
    budget, slack = 60.0, 20.0  # slack: process start, and the export + test evaluation after Tune stops
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    out = tmp_path / "sw"
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", "sweep", "--config", sweep_config, "--data", cls_data,
                        "--pretrained", pretrained_ckpt, "--plan", "auto", "--budget", "60s",
                        "--set", "sweep.num_samples=400", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    wall = time.time() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert wall <= budget + slack, f"{wall:.1f} s for a {budget:.0f} s budget"
    res = json.loads((out / "result.json").read_text())
    assert res["trials"] < 400 and res["test_accuracy"] is not None
    assert os.path.isfile(os.path.join(res["export_path"], "model.safetensors"))
    plan = json.loads((out / "plan.json").read_text())
    # the budget counts from the command's start: Tune gets what planning left, less the reserve
    assert plan["pins"] == ["sweep.num_samples=400"] and plan["time_budget_s"] == pytest.approx(
        budget - plan["planning_s"] - plan["reserve_s"] - plan["rescore"]["estimated_s"]) and plan["reserve_s"] >= 15
    assert 0 < plan["planning_s"] < wall
    assert "selection" in res
    # the plan's forecast travels to result.json beside what the sweep realised
    lo, mid, hi = res["forecast"]["test_accuracy"]
    assert res["forecast"] == plan["forecast"] and lo <= mid <= hi and lo < hi  # this toy task: TF-IDF 1.0
    assert res["realised"]["test_accuracy"] == res["test_accuracy"]
    assert res["realised"]["within_interval"] == (lo <= res["test_accuracy"] <= hi)
    assert res["stopping"]["rule"].startswith("noise") and res["stopping"]["n_val"] > 0
    margin = res["selection"]["winner_vs_runner_up"]
    assert margin is None or margin["beyond_noise"] == (margin["gap"] > margin["noise"])
    # the human form of the plan was printed before the sweep, then the live progress lines
    assert "why:" in r.stdout and "[sweep " in r.stdout and "forecast (80 % intervals):" in r.stdout
    # Tune's snapshot warning (3 lines, every few checkpoints) stays behind --verbose
    assert "Experiment state snapshotting" not in r.stdout + r.stderr
    # and so do Train's per-checkpoint and Data's per-dataset INFO lines, from every trial process
    for noise in ("Checkpoint successfully created", "execution finished", "Reporting training result"):
        assert noise not in r.stdout + r.stderr, noise
    # --resume continues under the plan the sweep started with: another --budget would go unused
    again = subprocess.run([*r.args[:r.args.index("60s")], "90s", *r.args[r.args.index("60s") + 1:], "--resume"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 2 and "planned for 60 s" in again.stderr.strip().splitlines()[-1], again.stderr[-2000:]
    assert json.loads((out / "plan.json").read_text()) == plan
    again = subprocess.run([*r.args, "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "[plan] resuming under the plan" in again.stdout, again.stderr[-2000:]
    assert json.loads((out / "plan.json").read_text()) == plan
    assert json.loads((out / "result.json").read_text())["trials"] == res["trials"]  # no trial drawn again


def test_grid_space_and_per_strategy_lr_ranges():
    from ray import tune

    from ptft_ray.config import load_config
    from ptft_ray.finetune.space import build_space, grid_lr, lr_range, n_trials

    cfg = load_config(None, ["sweep.strategies=[full,linear_probe]", "sweep.grid_points=3", "sweep.num_samples=1",
                             "sweep.lr_ranges={linear_probe: [1.0e-3, 1.0e-1]}", "sweep.lr_min=1e-5",
                             "sweep.lr_max=1e-3"])
    sw = cfg.sweep
    assert lr_range(sw, "linear_probe") == (1e-3, 1e-1) and lr_range(sw, "full") == (1e-5, 1e-3)
    assert [round(grid_lr(sw, "linear_probe", i), 6) for i in range(3)] == [0.001, 0.01, 0.1]
    assert n_trials(sw) == 6
    space = build_space(sw, ["ck"])
    # Tune's own variant order: every strategy at its top LR first, then one point lower
    from ray.tune.search.variant_generator import generate_variants
    order = [(v["strategy"], round(v["lr"], 6)) for _, v in generate_variants(space)]
    assert order == [("full", 0.001), ("linear_probe", 0.1), ("full", 0.0001), ("linear_probe", 0.01),
                     ("full", 1e-05), ("linear_probe", 0.001)]
    # the sampled LR follows the trial's strategy range
    rnd = load_config(None, ["sweep.strategies=[linear_probe]", "sweep.lr_ranges={linear_probe: [1.0e-3, 1.0e-2]}"])
    fn = build_space(rnd.sweep, ["ck"])["lr"]
    assert isinstance(fn, tune.search.sample.Function)
    for _ in range(20):
        assert 1e-3 <= fn.func({"strategy": "linear_probe"}) <= 1e-2


@pytest.mark.parametrize("bad,msg", [
    ("sweep.lr_ranges={full: [1.0e-3]}", "low, high"),
    ("sweep.lr_ranges={nope: [1.0e-4, 1.0e-3]}", "unknown strategy"),
    ("sweep.lr_ranges={full: [1.0e-2, 1.0e-3]}", "low <= high"),
    ("sweep.lr_ranges=full", "expected a mapping"),
])
def test_bad_lr_ranges_fail_at_load(bad, msg):
    from ptft_ray.config import load_config

    with pytest.raises(PtftError, match=msg):
        load_config(None, [bad])


def test_each_model_family_gets_its_own_calibration():
    from ptft_ray.planner.families import family_of

    assert family_of([{"family": "gpt"}])[0] == "gpt"
    assert family_of([{"family": "hf_encoder"}])[0] == "hf_encoder"
    fam, why = family_of([{"family": "hf_decoder"}])
    assert fam == "hf_encoder" and "nearest calibrated family" in why
    enc = [{"key": "minilm", "max_seq_len": 512, "tokens_per_s_per_worker": 700.0, "family": "hf_encoder"}]
    p = choose(scan(1000), enc, 600, CPU2)
    assert p["calibration"] == "hf_encoder"
    assert p["calibration_bucket"] in calibration("hf_encoder")["buckets"]
    assert any(r.startswith("calibration: a pretrained Hugging Face encoder") for r in p["reasons"])
    # the encoder's LRs (1e-5..1e-4 for full), not our small GPT's (up to 3e-3)
    assert p["lr_ranges"]["full"][1] <= 1e-4 < choose(scan(1000), CKPT, 600, CPU2)["lr_ranges"]["full"][1]


def test_decoders_get_their_own_learning_rates_never_the_encoders():
    """A Hugging Face decoder borrows the encoder calibration's cost model, not its LRs: the
    decoder default, halved above 3B parameters, doubled under 350M; the whole table goes into
    the sweep's overrides (so a strategy pinned on top keeps a decoder range too)."""
    from ptft_ray.planner import overrides
    from ptft_ray.planner.decoder import DECODER_LR

    enc_full = calibration("hf_encoder")["buckets"]["100"]["lr_ranges"]["full"]

    def dec(params):
        return [{"key": "llama", "max_seq_len": 2048, "tokens_per_s_per_worker": 700.0, "family": "hf_decoder",
                 "params": params}]
    one_b = choose(scan(1000), dec(1.2e9), 600, CPU2)
    assert one_b["lr_ranges"]["full"] == list(DECODER_LR["full"]) and one_b["lr_rule"]["params"] == 1.2e9
    assert one_b["lr_ranges"]["full"][1] < enc_full[0]           # below the encoder's whole range
    assert any("the decoder default (1200M parameters" in r for r in one_b["reasons"])
    eight_b = choose(scan(1000), dec(8e9), 600, CPU2)
    assert eight_b["lr_ranges"]["full"][1] == pytest.approx(DECODER_LR["full"][1] / 2)
    small = choose(scan(1000), dec(124e6), 600, CPU2)
    assert small["lr_ranges"]["full"][1] == pytest.approx(DECODER_LR["full"][1] * 2)
    sets = dict(x.split("=", 1) for x in overrides({**one_b, "time_budget_s": 585.0}))
    table = json.loads(sets["sweep.lr_ranges"])
    assert set(table) == set(DECODER_LR) and table["lora"] == list(DECODER_LR["lora"])
    # encoders are unchanged by the rule
    enc = [{"key": "minilm", "max_seq_len": 512, "tokens_per_s_per_worker": 700.0, "family": "hf_encoder"}]
    assert "lr_rule" not in choose(scan(1000), enc, 600, CPU2)


def test_the_throughput_probe_runs_in_the_trials_precision():
    """The probe and the training loop share one precision rule (train/precision.py): 16-bit
    autocast on a GPU under `auto` (what trials run); on a CPU bf16 where it has native bf16
    arithmetic, else fp32, unless a precision is asked for."""
    from ptft_ray.config import ModelConfig
    from ptft_ray.planner.throughput import _timed_steps
    import torch

    from ptft_ray.train.precision import compute_dtype, cpu_bf16, half

    assert half("auto", "cuda") and half("bf16", "cpu") and half("fp16", "cpu")
    assert not half("fp32", "cuda") and not half("fp32", "cpu")
    assert half("auto", "cpu") == cpu_bf16()
    assert compute_dtype("fp16", "cpu") == torch.float16 and compute_dtype("fp32", "cpu") is None
    assert compute_dtype("auto", "cpu") == (torch.bfloat16 if cpu_bf16() else None)
    tiny = ModelConfig(preset="gpt_tiny", arch="gpt", d_model=32, n_layers=1, n_heads=2, max_seq_len=64)
    rate_auto, dtype = _timed_steps(tiny, None, 64, 0, False, "auto")
    assert dtype == ("bfloat16" if cpu_bf16() else "float32") and rate_auto > 0
    rate_fp32, dtype = _timed_steps(tiny, None, 64, 0, False, "fp32")
    assert dtype == "float32" and rate_fp32 > 0
    rate_bf16, dtype = _timed_steps(tiny, None, 64, 0, False, "bf16")
    assert dtype == "bfloat16" and rate_bf16 > 0


def test_the_probe_reads_the_median_step():
    """One of the probe's 3 timed steps stalled 1.7x by a neighbour leaves its rate where the
    undisturbed steps put it; a mean over the steps would fall by a fifth."""
    from ptft_ray.planner.throughput import median_rate

    quiet = median_rate([1.0, 1.0, 1.0], 1024)
    assert quiet == 1024
    assert median_rate([1.0, 1.7, 0.98], 1024) == pytest.approx(quiet, rel=0.03)
    assert 3 * 1024 / (1.0 + 1.7 + 0.98) < 0.85 * quiet


def test_one_winner_takes_depth_before_breadth():
    """MiniLM at 980 tokens/s, Rotten Tomatoes-like 1,000 labels (binary, p95 48 tokens), 10
    minutes on 2 CPUs. Counted under ASHA, full alone ran 11 trials, more than 8 LR draws, so
    the plan added gradual_unfreeze at full's LRs: its first two trials stayed at the majority
    class for their 2 epochs and the budget ran 6 of 11. Its winner runs complete trials, so
    the budget lengthens them first; breadth comes only where the longest leave > 8 of them."""
    from ptft_ray.planner.depth import DEPTH_MAX
    from ptft_ray.planner.rules import PER_STRATEGY

    ck = [{"key": "minilm", "max_seq_len": 512, "tokens_per_s_per_worker": 980.0, "family": "hf_encoder"}]
    sc = {**scan(1000, p95=48.0), "val_split": 1280}
    sc["examples"]["val"] = 1280
    p = choose(sc, ck, 600, CPU2)
    assert p["strategies"] == ["full"] and p["scheduler"]["type"] == "none", (p["strategies"], p["scheduler"])
    assert p["epochs"] > 2.0 and p["num_trials"] == 2 and p["estimated_cost_s"] <= 600
    assert any("depth before breadth" in r for r in p["reasons"])
    assert not any(r.startswith("strategies: added") for r in p["reasons"])
    # a budget whose longest trials of full still outnumber PER_STRATEGY buys breadth (and ASHA)
    big = choose(sc, ck, 4 * 3600, CPU2)
    assert len(big["strategies"]) > 1 and big["scheduler"]["type"] == "asha"
    assert big["num_trials"] > PER_STRATEGY and DEPTH_MAX * 2.0 > big["epochs"]
