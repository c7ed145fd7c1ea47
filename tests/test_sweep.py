"""Real Ray Tune sweeps from a pretrained checkpoint (tiny model, synthetic task)."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ptft_ray import load_finetuned
from ptft_ray.config import load_config
from ptft_ray.data.tasks import encode, load_task
from ptft_ray.finetune.export import classifier_from_checkpoint, logits_of, logits_of_texts
from ptft_ray.finetune.sweep import sweep

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def asha_sweep(ray_session, pretrained_ckpt, cls_data, sweep_config, tmp_path_factory):
    """Six trials: two good LRs, three that barely move, one that diverges (lr=1e30)."""
    cfg = load_config(sweep_config, [
        f"finetune.data={cls_data}", "sweep.lrs=[3e-3, 1e-8, 1e-8, 3e-3, 1e-8, 1e30]",
        "sweep.num_samples=1", "sweep.strategies=[full]", "sweep.max_concurrent_trials=2",
        "finetune.epochs=2", "sweep.epochs=[2]"])
    out = tmp_path_factory.mktemp("sweep") / "s"
    return sweep(cfg, [pretrained_ckpt], str(out)), out, cfg


def test_sweep_contract_asha_stops_and_failure_is_recorded(asha_sweep):
    result, out, cfg = asha_sweep
    saved = json.loads((out / "result.json").read_text())
    for key in ("best_trial", "metric", "best_metric", "export_path", "trials_completed",
                "trials_stopped", "trials_failed"):
        assert key in saved, key
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert len(rows) == 6
    assert saved["trials_stopped"] >= 1                      # ASHA ended a weak trial early
    failed = [r for r in rows if r["stop_reason"] == "diverged"]
    assert len(failed) == 1 and float(failed[0]["lr"]) == 1e30 and "diverged" in failed[0]["error"]
    assert saved["trials_failed"] == 1                        # and the sweep went on
    assert saved["trials_completed"] + saved["trials_stopped"] == 5
    stopped = [r for r in rows if r["stop_reason"] == "stopped"]
    assert all(int(r["steps_trained"]) < int(r["max_steps"]) for r in stopped)
    # a finished or stopped trial's actor took a later trial: the five that reported (the
    # diverged one failed before its first) did so from fewer processes, each from one
    pids = [{json.loads(x)["pid"] for x in f.read_text().splitlines()} for f in (out / "tune").rglob("result.json")]
    reported = [p for p in pids if p]
    assert len(reported) == 5 and all(len(p) == 1 for p in reported) and len(set.union(*reported)) < 5, pids
    # best = best checkpoint's metric over all trials (not each trial's last)
    best = max(float(r["best_metric"]) for r in rows if r["best_metric"])
    assert saved["best_metric"] == pytest.approx(best)
    assert float(next(r for r in rows if r["trial_id"] == saved["best_trial"])["lr"]) == 3e-3
    assert saved["best_metric"] > 0.7 and saved["test_accuracy"] > 0.7
    assert saved["lineage"][next(iter(saved["lineage"]))]["step"] == 30
    # the baselines, fitted on exactly the sweep's training rows and scored on its test rows
    ev = json.loads((out / "evaluation.json").read_text())
    task = load_task(cfg.finetune)
    assert saved["baseline"]["n_train"] == len(task.splits["train"]) and ev["rows"] == task.splits["test"].tolist()
    assert saved["baseline"]["majority"]["accuracy"] == pytest.approx(
        np.bincount(task.labels[task.splits["test"]]).max() / len(task.splits["test"]))
    assert 0.5 < saved["baseline"]["tfidf_lr"]["accuracy"] <= 1 and 0 < saved["baseline"]["tfidf_lr"]["macro_f1"] <= 1
    lo, hi = saved["test_accuracy_ci"]
    assert lo < saved["test_accuracy"] < hi and hi - lo > 0.05  # 90 test rows: an interval of +/- ~9 points
    assert saved["gain_points"]["tfidf_lr"] == pytest.approx(
        100 * (saved["test_accuracy"] - saved["baseline"]["tfidf_lr"]["accuracy"]), abs=0.01)
    right = [p == t for p, t in zip(ev["predictions"], ev["targets"])]
    assert sum(right) / len(right) == pytest.approx(saved["test_accuracy"])
    assert 0 < saved["vs_tfidf_lr"]["p_value"] <= 1 and saved["vs_tfidf_lr"]["n"] == 90
    # called without a forecast: none is made up; what was realised is still recorded
    assert saved["forecast"] is None and saved["realised"] == {"test_accuracy": saved["test_accuracy"]}
    margin = saved["selection"]["winner_vs_runner_up"]
    assert margin["winner"] != margin["runner_up"] and margin["beyond_noise"] == (margin["gap"] > margin["noise"])


def test_export_loads_without_ray_and_matches_the_trial(asha_sweep, cls_data):
    result, out, cfg = asha_sweep
    model, tok, ecfg, meta = load_finetuned(result["export_path"])
    assert meta["task_info"]["labels"] == ["neg", "pos"]
    assert meta["metrics"][cfg.sweep.metric] == pytest.approx(result["best_metric"])
    trial_model, _ = classifier_from_checkpoint(meta["exported_from"])
    task = load_task(ecfg.finetune)
    ids, lengths = encode(tok, [task.texts[i] for i in task.splits["val"][:64]], ecfg.finetune.max_len)
    torch.testing.assert_close(logits_of(model, ids, lengths), logits_of(trial_model, ids, lengths))


def test_best_trial_is_rescored_on_the_larger_validation_set(asha_sweep, cls_data):
    """As if the sweep had evaluated on 10 validation examples: the top 3 by that metric are
    evaluated again on the whole split (90 rows) and the best of those is chosen."""
    from ptft_ray.finetune.evaluate import evaluate_export
    from ptft_ray.finetune.select import select_best

    result, out, cfg = asha_sweep
    assert result["selection"]["rescored"] == []  # the sweep itself evaluated on the whole split
    rows = [{**r, "best_metric": float(r["best_metric"])} for r in csv.DictReader(open(out / "trials.csv"))
            if r["best_checkpoint"]]
    best, how = select_best(rows, "val_accuracy", "max", cls_data, 3, 10, 90, 0)
    top = sorted(rows, key=lambda r: r["best_metric"], reverse=True)[:3]
    assert [x["trial_id"] for x in how["rescored"]] == [r["trial_id"] for r in top]
    for x, r in zip(how["rescored"], top):
        assert x["n"] == 90
        assert x["rescored"] == pytest.approx(evaluate_export(r["best_checkpoint"], cls_data, "val", 0)["accuracy"])
    assert best["trial_id"] == max(how["rescored"], key=lambda x: x["rescored"])["trial_id"]
    assert float(best["lr"]) == 3e-3
    # a cap no larger than the sweep's own evaluations: nothing re-scored, the sweep's best
    best2, how2 = select_best(rows, "val_accuracy", "max", cls_data, 3, 10, 90, 10)
    assert how2["rescored"] == [] and best2["trial_id"] == top[0]["trial_id"]
    # whether the winner beats the runner-up beyond noise, read where the choice was made
    assert how["winner_vs_runner_up"]["n"] == 90 and how["winner_vs_runner_up"]["winner"] == best["trial_id"]
    assert how2["winner_vs_runner_up"]["n"] == 10 and how2["winner_vs_runner_up"]["winner"] == top[0]["trial_id"]


def test_evaluate_and_predict_cli(asha_sweep, cls_data):
    result, _, _ = asha_sweep
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", "evaluate", "--model", result["export_path"],
                        "--data", cls_data], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["n"] == 90 and ev["accuracy"] == pytest.approx(result["test_accuracy"])
    assert sum(map(sum, ev["confusion_matrix"])) == 90 and 0 <= ev["macro_f1"] <= 1
    model, tok, ecfg, meta = load_finetuned(result["export_path"])
    texts = ["a great and wonderful film", "dull boring awful", "the movie was brilliant"]
    logits = logits_of_texts(model, tok, texts, ecfg.finetune.max_len)
    want = [meta["task_info"]["labels"][int(x > 0)] for x in logits]   # binary: one logit
    args = [a for t in texts for a in ("--text", t)]
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", "predict", "--model", result["export_path"],
                        *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["label"] for x in rows] == want
    for x, lg in zip(rows, logits):
        assert x["probabilities"]["pos"] == pytest.approx(torch.sigmoid(lg).item(), abs=1e-5)
        assert sum(x["probabilities"].values()) == pytest.approx(1, abs=1e-4)


def test_torchtrainer_trials_lora_and_scratch(ray_session, pretrained_ckpt, cls_data, sweep_config, tmp_path):
    """Trials that fit their own TorchTrainer; a LoRA export is merged; `none` = random init."""
    cfg = load_config(sweep_config, [
        f"finetune.data={cls_data}", "sweep.num_samples=2", "sweep.strategies=[lora]",
        "sweep.in_process=never", "sweep.lrs=[3e-3]", "sweep.scheduler=none",
        "sweep.max_concurrent_trials=1", "finetune.epochs=1", "sweep.epochs=[1]"])
    res = sweep(cfg, [pretrained_ckpt, "none"], str(tmp_path / "s"))
    assert res["in_process_trials"] is False and res["trials_completed"] == 2
    rows = list(csv.DictReader(open(tmp_path / "s" / "trials.csv")))
    assert {r["checkpoint"] for r in rows} <= {pretrained_ckpt, "none"}
    assert all(r["lora_rank"] for r in rows) and all("/train/" in r["best_checkpoint"] for r in rows)
    _, _, _, meta = load_finetuned(res["export_path"])
    assert meta["lora_merged"] == 4 * 2  # qkv, proj, fc, fc_out in each of 2 blocks
    assert res["lineage"]["none"]["path"] is None


def test_optuna_conditional_space(sweep_config):
    pytest.importorskip("optuna")
    from ptft_ray.finetune.space import CONDITIONAL, lr_range, optuna_search, trial_lr

    cfg = load_config(sweep_config, ["sweep.lr_ranges={linear_probe: [1.0e-3, 3.0e-2]}"])
    search = optuna_search(cfg.sweep, ["ck", "none"])
    search.set_search_properties(cfg.sweep.metric, cfg.sweep.mode, config={})
    for i in range(12):
        p = search.suggest(f"t{i}")
        # one LR parameter per strategy, inside that strategy's own range
        lo, hi = lr_range(cfg.sweep, p["strategy"])
        assert lo <= trial_lr(p) <= hi and p["checkpoint"] in ("ck", "none")
        for strategy, (param, _) in CONDITIONAL.items():
            assert (param in p) == (p["strategy"] == strategy)


def test_single_finetune_multiclass_from_scratch(ray_session, sweep_config, tmp_path):
    """Three classes (cross-entropy), random init, through one TorchTrainer fit."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from conftest import synthetic_reviews
    from ptft_ray.finetune.single import finetune

    texts, labels = synthetic_reviews(900, seed=1)
    labels = [lab if i % 3 else "meh" for i, lab in enumerate(labels)]
    texts = [t if i % 3 else "so so " + t for i, t in enumerate(texts)]
    data = tmp_path / "three.parquet"
    pq.write_table(pa.table({"text": texts, "label": labels}), data)
    cfg = load_config(sweep_config, [f"finetune.data={data}", "finetune.epochs=1",
                                     "finetune.strategy=full", "optim.lr=3e-3"])
    res = finetune(cfg, "none", str(tmp_path / "ft"))
    assert res["lineage"] == {"path": None} and 0 <= res["test_accuracy"] <= 1
    assert set(res["class_balance"]) == {"meh", "neg", "pos"}
    assert res["baseline"]["majority"]["macro_f1"] < res["baseline"]["tfidf_lr"]["macro_f1"]
    assert len(res["test_accuracy_ci"]) == 2 and (tmp_path / "ft" / "evaluation.json").is_file()
    assert 0 < res["train_examples_per_s"] < float("inf")  # examples / seconds in training steps
    model, tok, ecfg, meta = load_finetuned(res["export_path"])
    assert tok.kind == "byte" and meta["init_from"] is None and meta["task_info"]["task_type"] == "multiclass"
    assert model(torch.zeros(2, 8, dtype=torch.long)).shape == (2, 3)
    with pytest.raises(Exception, match="exists"):
        finetune(cfg, "none", str(tmp_path / "ft"))  # never overwritten without --overwrite


def test_trial_out_of_memory_is_recorded_and_the_sweep_goes_on(ray_session, pretrained_ckpt, cls_data,
                                                               sweep_config, tmp_path):
    """LoRA rank 1e9 asks the allocator for ~256 GB: a real out-of-memory error in that trial
    (refused at once, nothing is consumed); the full fine-tuning trials still finish."""
    with open("/proc/sys/vm/overcommit_memory") as f:
        if f.read().strip() == "1":  # the kernel would hand the memory out and then run out
            pytest.skip("vm.overcommit_memory=1: a 256 GB request would really fill memory")
    cfg = load_config(sweep_config, [
        f"finetune.data={cls_data}", "sweep.num_samples=4", "sweep.strategies=[full, lora]",
        "sweep.lora_ranks=[1000000000]", "sweep.scheduler=none", "sweep.lrs=[3e-3]",
        "finetune.epochs=1", "sweep.epochs=[1]", "finetune.max_examples=200"])
    res = sweep(cfg, [pretrained_ckpt], str(tmp_path / "s"))
    rows = list(csv.DictReader(open(tmp_path / "s" / "trials.csv")))
    lora = [r for r in rows if r["strategy"] == "lora"]
    full = [r for r in rows if r["strategy"] == "full"]
    assert lora and full                                   # the seeded draw has both
    assert all(r["stop_reason"] == "oom" and "allocate" in r["error"] for r in lora)
    assert all(r["stop_reason"] == "completed" for r in full)
    assert res["trials_failed"] == len(lora) and res["best_trial"] in {r["trial_id"] for r in full}


def test_export_refuses_to_overwrite_and_replaces_whole(asha_sweep, tmp_path):
    from ptft_ray.errors import PtftError
    from ptft_ray.finetune.export import export

    result, _, _ = asha_sweep
    src = load_finetuned(result["export_path"])[3]["exported_from"]
    d = tmp_path / "m"
    export(src, d, extra_meta={"tag": 1})
    with pytest.raises(PtftError, match="exists"):
        export(src, d, extra_meta={"tag": 2})
    assert load_finetuned(str(d))[3]["tag"] == 1
    export(src, d, overwrite=True, extra_meta={"tag": 2})
    assert load_finetuned(str(d))[3]["tag"] == 2
    assert not list(tmp_path.glob(".m.*"))  # no temporary or old copy left behind
