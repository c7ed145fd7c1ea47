"""One trial on all of a node's CPUs: below one trial of the sized shape, every trial would run
the same shape at LRs within the calibrated range, so parallel one-CPU trials buy LR draws and
one trial on every CPU buys steps. The planner times both and the forecast chooses; parallel
trials keep a tie (docs/decisions.md, "One trial on all CPUs")."""
from __future__ import annotations

import pytest

from ptft_ray.errors import PtftError
from ptft_ray.planner import forecast
from ptft_ray.planner.throughput import node_threads
from ptft_ray.planner.fit_budget import all_cpu_rates
from ptft_ray.planner.rules import choose

CPU2 = {"cpus": 2.0, "gpus": 0.0, "max_node_cpus": 2.0, "max_node_gpus": 0.0, "nodes": 1}
GPU1 = {"cpus": 8.0, "gpus": 1.0, "max_node_cpus": 8.0, "max_node_gpus": 1.0, "nodes": 1}


def news(n_train: int = 1000) -> dict:
    """News sources as the planner scans them: 9 classes, texts of ~200 tokens."""
    q = [150.0 + 4 * i for i in range(20)]
    return {"examples": {"train": n_train, "val": 378, "test": 1516}, "train_tokens": n_train * 190,
            "length": {"p95": 220.0, "p90": 213.0, "p50": 192.0, "mean": 189.0, "max": 260, "q": q},
            "num_classes": 9, "task_type": "multiclass", "majority_fraction": 0.14, "data": "news.parquet",
            "probe": {"tfidf_lr_val": 0.61, "tfidf_lr_val_half": 0.55, "majority_val": 0.14, "n_val": 378}}


def source(speedup: float | None, rate: float = 620.0, cut_rate: float = 770.0) -> list[dict]:
    """MiniLM as the planner timed it here: one thread at 224 and at 64 tokens, and (after the
    plan was shrunk) 64-token rows on both CPUs."""
    s = {"key": "minilm", "max_seq_len": 512, "tokens_per_s_per_worker": rate, "family": "hf_encoder",
         "rates_by_len": {64: cut_rate}}
    if speedup:
        s["all_cpus"] = {"threads": 2, "speedup": speedup, "rates_by_len": {64: cut_rate * speedup}}
    return [s]


def expected(p: dict, sc: dict, budget: float) -> float:
    return forecast.of_plan({**p, "budget_s": budget}, forecast.Probe.of(sc["probe"]), sc["examples"]["train"],
                            sc["num_classes"], p["calibration"])[1]


def test_a_budget_below_one_trial_runs_one_trial_on_all_cpus():
    """The 5-minute news case on 2 CPUs: two one-CPU trials of ~1.3 epochs side by side (their
    LRs 9.1e-5 and 8.7e-5 here), or one trial on both CPUs at the 1.63x timed: it trains ~2x the
    examples, and the forecast rises with them."""
    sc = news()
    side = choose(sc, source(None), 300, CPU2)
    one = choose(sc, source(1.63), 300, CPU2)
    assert (side["max_concurrent_trials"], side["resources_per_trial"]) == (2, {"CPU": 1.0})
    assert (one["max_concurrent_trials"], one["num_trials"], one["resources_per_trial"]) == (1, 1, {"CPU": 2.0})
    assert one["epochs"] >= 1.5 * side["epochs"] and one["estimated_cost_s"] <= 300
    assert expected(one, sc, 300) > expected(side, sc, 300) + 0.01
    assert one["cost_model"]["rate_tokens_per_s"] == pytest.approx(770.0 * 1.63)
    why = next(r for r in one["reasons"] if r.startswith("resources:"))
    assert "one trial at a time on all 2 CPUs" in why and "1.63x" in why
    assert sum(r.startswith("resources:") for r in one["reasons"]) == 1
    # the sweep takes it as one 2-CPU trial at a time (its torch threads: finetune/sweep.py)
    from ptft_ray.config import load_config
    from ptft_ray.planner import planned_config

    one.update(time_budget_s=200.0)
    cfg = planned_config(load_config(None), one)
    assert (cfg.sweep.cpus_per_trial, cfg.sweep.max_concurrent_trials, cfg.sweep.num_samples) == (2.0, 1, 1)


def test_parallel_trials_keep_a_tie_and_a_sized_budget():
    """Threads that do not speed a step up leave the parallel trials (the same steps, more LR
    draws), and say what one trial on all CPUs would have made; a budget that holds a sized trial
    never runs it so (the trials' LRs matter there, and the rates beside it were not timed)."""
    sc = news()
    flat = choose(sc, source(1.0), 300, CPU2)
    assert flat["max_concurrent_trials"] == 2 and flat["resources_per_trial"] == {"CPU": 1.0}
    assert any(r.startswith("resources: one trial on all 2 CPUs was priced too") and "not better" in r
               for r in flat["reasons"])
    big = choose(sc, source(1.63), 4 * 3600, CPU2)
    assert not big["shrunk"] and big["max_concurrent_trials"] == 2
    assert choose(sc, source(1.63), 300, CPU2)["shrunk"]


def test_the_floor_is_the_lower_of_the_two():
    """A budget that two one-CPU trials cannot fit but one trial on both CPUs can gets that plan;
    below both floors, the refusal names the lower floor."""
    sc = news()

    def floor(speedup):
        with pytest.raises(PtftError, match="below the floor") as e:
            choose(sc, source(speedup), 30, CPU2)
        return int(e.value.args[0].split("floor of ")[1].split(" s")[0])

    narrow, wide = floor(None), floor(1.63)
    assert wide < narrow
    p = choose(sc, source(1.63), (wide + narrow) / 2, CPU2)
    assert p["resources_per_trial"] == {"CPU": 2.0} and p["estimated_cost_s"] <= (wide + narrow) / 2


def test_only_a_cpu_cluster_and_one_timed_checkpoint():
    """GPU trials are one to a GPU (no threads to give); a source not timed on all CPUs (a rate
    carried, or a plan from numbers alone) leaves the parallel trials, and so do several
    checkpoints: their trials draw among models, not only among LRs."""
    timed = source(1.63)
    assert all_cpu_rates(timed, GPU1) is None and node_threads(GPU1) == 1
    assert all_cpu_rates(source(None), CPU2) is None
    assert all_cpu_rates(timed + source(1.63), CPU2) is None
    two = choose(news(), [timed[0], {**timed[0], "key": "adapted"}], 300, CPU2)
    assert two["max_concurrent_trials"] == 2 and two["resources_per_trial"] == {"CPU": 1.0}
    assert all_cpu_rates(timed, CPU2)["speedup"] == 1.63 and node_threads(CPU2) == 2


def test_the_probe_times_one_model_at_each_thread_count(ray_session):
    """One Ray task holding the node's CPUs times the same steps at 1 and 2 torch threads."""
    from ptft_ray.config import ModelConfig
    from ptft_ray.planner.throughput import _timed_by_threads

    tiny = ModelConfig(preset="gpt_tiny", arch="gpt", d_model=32, n_layers=1, n_heads=2, max_seq_len=64)
    task = ray_session.remote(num_cpus=2)(_timed_by_threads)
    rates, dtype = ray_session.get(task.remote(tiny, None, 64, 0, False, "fp32", 64, (1, 2)))
    assert set(rates) == {1, 2} and min(rates.values()) > 0 and dtype == "float32"
