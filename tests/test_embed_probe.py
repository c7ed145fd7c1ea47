"""The planner's encoder probe: what a Hugging Face encoder as it is knows of a task before
training (logistic regression on its frozen embeddings against TF-IDF + LR on the same rows),
and how the forecast takes it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ptft_ray.planner import forecast


def test_the_probe_measures_an_encoder_as_it_is_and_nothing_else(hf_dirs, cls_data):
    from ptft_ray.config import FinetuneConfig
    from ptft_ray.data.tasks import load_task
    from ptft_ray.finetune.backbones import hf_source
    from ptft_ray.planner import family
    from ptft_ray.planner.embed_probe import MIN_ROWS, ROWS, embedding_probe, encoder_gap, gap, rows_within, shrink

    task = load_task(FinetuneConfig(data=cls_data))
    got = encoder_gap(task, [hf_source(hf_dirs["bert"])], family)
    n_train, n_val = len(task.splits["train"]), len(task.splits["val"])
    assert got["rows"] == [min(ROWS, n_train), min(ROWS, n_val)]
    e, t = got["embed_lr_pooled"], got["tfidf_lr_pooled"]
    assert 0 <= e <= 1 and 0 < t <= 1 and 0 <= got["embed_lr_val"] <= 1 and 0 < got["tfidf_lr_val"] <= 1
    assert got["gap"] == pytest.approx(gap(e, t), abs=1e-4)  # the gap is read on both kinds of rows
    assert gap(0.8, 0.6) == pytest.approx(0.5) and gap(0.5, 0.6) == pytest.approx(-0.25)
    assert gap(0.9, 1.0) == 0.0 and gap(0.0, 0.8) == -1.0  # a perfect bag of words leaves nothing to measure
    assert encoder_gap(task, [hf_source(hf_dirs["bert"])], family)["gap"] == got["gap"]  # seeded: the same rows
    # a probe that would take longer than it may runs on the share of rows that fits, and is
    # skipped after one timed batch where that share is under MIN_ROWS training rows
    slow = encoder_gap(task, [hf_source(hf_dirs["bert"])], family, within_s=0.0)
    assert "gap" not in slow and slow["estimated_s"] > 0 and "over the 0 s it may take" in slow["skipped"]
    roomy = encoder_gap(task, [hf_source(hf_dirs["bert"])], family, within_s=600.0)
    assert roomy["rows"] == got["rows"] and roomy["gap"] == got["gap"] and roomy["estimated_s"] > 0
    assert rows_within(512, 30.0, 60.0) == 512 and rows_within(512, 40.0, 30.0) == 384
    assert rows_within(512, 40.0, 5.0) == 64 < MIN_ROWS and rows_within(512, 40.0, -1.0) == 0
    rng = np.random.default_rng(0)
    tr, va = shrink(np.arange(512), np.arange(1000, 1200), 128, rng)
    assert len(tr) == 128 and len(va) == 50 and set(tr) <= set(range(512)) and set(va) <= set(range(1000, 1200))
    assert [len(x) for x in shrink(np.arange(100), np.arange(40), 100, rng)] == [100, 40]
    part = embedding_probe(task, hf_dirs["bert"], hf_source(hf_dirs["bert"]).tokenizer_json, rows=MIN_ROWS)
    assert part["rows"][0] == MIN_ROWS and 0 <= part["embed_lr_val"] <= 1
    # a decoder is not what the gap term was fitted on: no probe, the form without it
    assert encoder_gap(task, [hf_source(hf_dirs["gpt2"])], family) is None


def test_an_adapted_checkpoint_is_probed_on_the_encoder_it_started_from(bert_pretrained, hf_dirs, cls_data,
                                                                         sweep_config, tmp_path):
    import shutil

    from ptft_ray.config import FinetuneConfig, load_config
    from ptft_ray.data.tasks import load_task
    from ptft_ray.finetune.backbones import hf_source, resolve_sources
    from ptft_ray.planner import family
    from ptft_ray.planner.embed_probe import encoder_gap

    task = load_task(FinetuneConfig(data=cls_data))
    cfg = load_config(sweep_config, [f"finetune.data={cls_data}"])
    (ours,) = resolve_sources([bert_pretrained["checkpoint"]], cfg)
    assert ours.path != ours.model.hf  # our checkpoint, its model section naming the directory it came from
    assert encoder_gap(task, [ours], family)["gap"] == encoder_gap(task, [hf_source(hf_dirs["bert"])], family)["gap"]
    # a directory without its safetensors weights: skipped, said why, nothing loaded from it
    bare = tmp_path / "bare"
    shutil.copytree(hf_dirs["bert"], bare)
    (bare / "model.safetensors").unlink()
    got = encoder_gap(task, [hf_source(str(bare))], family)
    assert "gap" not in got and "cannot read" in got["skipped"]


def test_each_training_row_is_scored_once_by_a_fit_that_never_saw_it():
    from ptft_ray.planner.embed_probe import _out_of_fold, _right

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    named = (np.eye(3)[y] * 5 + rng.normal(0, 0.1, (60, 3))).astype(np.float32)  # embeddings that name the label
    words = [["alpha beta", "gamma delta", "epsilon zeta"][k] for k in y]         # texts that name it too
    assert _out_of_fold(named, words, y, np.random.default_rng(1)) == (60, 60)  # all 60 rows, once each
    # noise: a fit scored on its own rows would be right on nearly all of them (50 dimensions, 48
    # rows); out of fold it is right at chance, about 20 of 60; identical texts give TF-IDF nothing
    noise = rng.normal(0, 1, (60, 50)).astype(np.float32)
    emb, tfidf = _out_of_fold(noise, ["the same words"] * 60, rng.permutation(y), np.random.default_rng(1))
    assert emb < 35 and tfidf < 35
    # one class to fit on: both predict it
    assert _right(named[:5], words[:5], np.zeros(5, int), named, words, y) == (20, 20)


def test_the_forecast_moves_with_the_gap_and_falls_back_without_it():
    p = forecast.Probe(0.60, 0.57, 0.53, 1000)
    with_gap = forecast.params("hf_encoder", 0.1)
    assert "d" in with_gap and with_gap["d"] > 0          # the fitted sign: an encoder ahead goes further ahead
    assert "d" not in forecast.params("hf_encoder", None)  # no gap measured: the fit without the term
    assert forecast.params("hf_decoder", None) == forecast.params("hf_encoder", None)
    ahead, level, behind = (forecast.expected(forecast.Probe(0.6, 0.57, 0.53, 1000, g), 1000, 2, 4000, "hf_encoder")
                            for g in (0.3, 0.0, -0.2))
    assert ahead[1] > level[1] > behind[1]
    d = with_gap["d"]
    assert ahead[1] - level[1] == pytest.approx(d * 0.3 * (1 - 0.6), abs=2e-4)
    # 2x the labels keeps the gap: the probe moves, what the encoder knows does not
    assert p.with_labels(2).embed_gap is None and forecast.Probe(0.6, 0.57, 0.53, 1000, 0.2).with_labels(2).embed_gap == 0.2


def test_the_encoders_lead_over_the_probe_moves_the_forecast():
    """The lead term: the frozen encoder's accuracy against the task's own probe, beside its gap."""
    e = forecast.params("hf_encoder", 0.1)["e"]
    assert e > 0  # the fitted sign: an encoder that reads above the probe goes further above it
    level, ahead = (forecast.Probe(0.6, 0.57, 0.53, 1000, 0.1, pooled) for pooled in (0.6, 0.7))
    assert ahead.lead == pytest.approx(0.25) and level.lead == 0.0
    mids = [forecast.expected(p, 1000, 2, 4000, "hf_encoder")[1] for p in (level, ahead)]
    assert mids[1] - mids[0] == pytest.approx(e * 0.25 * (1 - 0.6), abs=2e-4)
    # 2x the labels moves the encoder's reading with the probe (as its gap is kept)
    two = ahead.with_labels(2)
    assert two.lead * (1 - two.accuracy) == pytest.approx(0.1)


def test_an_encoder_read_on_fewer_rows_is_moved_to_the_trials_rows():
    """The encoder probe reads at most a few hundred rows; on 10,000 the trials train on, its
    reading is moved up by the probe's own slope per doubling, not read as falling behind."""
    whole, part = (forecast.Probe.of({"tfidf_lr_val": 0.78, "tfidf_lr_val_half": 0.76, "majority_val": 0.5,
                                      "n_val": 1000, "embed_gap": 0.12, "embed_pooled": 0.68,
                                      "embed_rows": rows, "n_train": 10000}) for rows in (10000, 512))
    assert whole.embed_share == 1.0 and part.embed_share == pytest.approx(0.0512)
    assert whole.lead == pytest.approx((0.68 - 0.78) / 0.22)
    moved = 0.68 + 0.02 * math.log2(10000 / 512)
    assert part.lead == pytest.approx((moved - 0.78) / 0.22)
    mids = [forecast.expected(p, 10000, 2, 40000, "hf_encoder")[1] for p in (whole, part)]
    assert mids[1] > mids[0]
    # fewer labels take the reading back towards the rows it was read on
    back = part.with_labels(512 / 10000)
    assert back.lead == pytest.approx((0.68 - back.accuracy) / (1 - back.accuracy))
    # a probe that records no rows for the reading (plans made before it did) reads it as before
    assert forecast.Probe.of({"tfidf_lr_val": 0.7, "tfidf_lr_val_half": 0.7, "majority_val": 0.5,
                              "n_val": 10}).embed_share == 1.0


def test_a_forecast_is_never_below_the_majority_share():
    behind = forecast.Probe(0.40, 0.38, 0.37, 100, -0.6, 0.10)  # an encoder far behind a bag of words
    assert forecast.rule_accuracy(behind, 200, 5, 4000, "hf_encoder") < 0.37  # the fitted rule alone reads under it
    lo, mid, hi = forecast.expected(behind, 200, 5, 4000, "hf_encoder")
    assert mid == pytest.approx(0.37) and lo < 0.37 < hi  # floored there, the interval around it
    ahead = forecast.Probe(0.60, 0.57, 0.53, 1000, 0.3)
    assert forecast.expected(ahead, 1000, 2, 4000, "hf_encoder")[1] > 0.60  # above it: untouched
    # a plan's own price (rows cut short, a cheaper strategy) comes before the floor: a model that
    # learns nothing of the task still predicts its majority class
    cut = {"shape": {}, "epochs": 20, "truncation_gap": -0.04, "strategy_gap": -0.01}
    assert forecast.of_plan(cut, behind, 200, 5, "hf_encoder")[1] == pytest.approx(0.37)
    assert forecast.of_plan(cut, ahead, 1000, 2, "hf_encoder")[1] == pytest.approx(
        forecast.of_plan({**cut, "truncation_gap": 0.0, "strategy_gap": 0.0}, ahead, 1000, 2, "hf_encoder")[1] - 0.05,
        abs=1e-4)  # above it, the price is paid in full


def test_a_plan_for_an_encoder_records_the_probe_and_forecasts_with_it(ray_session, hf_dirs, cls_data):
    from ptft_ray.planner import plan

    p = plan(cls_data, [hf_dirs["bert"]], "10m")
    got = p["scan"]["embed_probe"]
    assert p["scan"]["probe"]["embed_gap"] == got["gap"]
    assert p["scan"]["probe"]["embed_pooled"] == got["embed_lr_pooled"]
    assert p["scan"]["probe"]["embed_rows"] == got["rows"][0] and p["scan"]["probe"]["n_train"] == p["scan"]["examples"]["train"]
    assert any(r.startswith("encoder probe: ") and f"gap {got['gap']:+.2f}" in r for r in p["reasons"])
    n = forecast.params("hf_encoder", got["gap"])["cells"]
    assert f"fitted on {n} measured cells" in p["forecast"]["how"]
