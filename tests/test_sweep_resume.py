"""A sweep whose driver was killed resumes with --resume; finished trials are not rerun."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import refusal_lines

pytestmark = pytest.mark.slow


def _finished_trials(tune_dir: Path) -> dict[str, int]:
    """trial dir -> number of results, for trials whose last result says done."""
    done = {}
    for f in tune_dir.glob("run_trial_*/result.json"):
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        if rows and rows[-1].get("step") == rows[-1].get("max_steps"):
            done[f.parent.name] = len(rows)
    return done


def test_killed_sweep_resumes_without_rerunning_finished_trials(pretrained_ckpt, cls_data, sweep_config, tmp_path):
    out = tmp_path / "s"
    args = [sys.executable, "-m", "ptft_ray.cli", "sweep", "--config", sweep_config, "--pretrained",
            pretrained_ckpt, "--data", cls_data, "--out", str(out), "--set", "sweep.num_samples=3",
            "--set", "sweep.max_concurrent_trials=1", "--set", "sweep.scheduler=none",
            "--set", "sweep.strategies=[linear_probe]", "--set", "finetune.epochs=1", "--set", "sweep.epochs=[1]"]
    log = open(tmp_path / "first.log", "w")
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.time()
    while not _finished_trials(out / "tune") and time.time() - t0 < 300:
        assert p.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        time.sleep(0.5)
    before = _finished_trials(out / "tune")
    assert before, "no trial finished in time"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "result.json").exists()

    # the sweep recorded what it started with; resuming with another value is refused, by name,
    # before anything runs (Tune would keep its own draws while the remaining trials took the new one)
    assert yaml.safe_load((out / "config.yaml").read_text())["sweep"]["num_samples"] == 3
    assert json.loads((out / "pretrained.json").read_text()) == [pretrained_ckpt]
    state = sorted((p.name, p.stat().st_mtime) for p in (out / "tune").iterdir())
    bad = subprocess.run([*args, "--resume", "--set", "sweep.num_samples=4", "--set", "optim.weight_decay=0.5"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and len(refusal_lines(bad.stderr)) == 1, bad.stderr[-2000:]
    assert "sweep.num_samples" in bad.stderr and "--overwrite" in bad.stderr
    assert sorted((p.name, p.stat().st_mtime) for p in (out / "tune").iterdir()) == state

    r = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "result.json").read_text())
    table = (out / "trials.csv").read_text()
    assert res["trials_completed"] == 3, table
    assert res["resumed"] is True and res["trials"] == 3 and res["trials_completed"] == 3
    # a sweep no plan chose is forecast from its own config, beside what it realised
    lo, mid, hi = res["forecast"]["test_accuracy"]
    assert 0 <= lo <= mid <= hi <= 1 and lo < hi and "no plan" in res["forecast"]["how"]
    assert res["realised"]["within_interval"] == (lo <= res["test_accuracy"] <= hi)
    after = _finished_trials(out / "tune")
    for trial, n in before.items():
        assert after[trial] == n        # its results were not produced again
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert len(rows) == 3 and all(r["stop_reason"] == "completed" for r in rows)


def test_what_a_sweep_started_with_is_compared_key_by_key(sweep_config, tmp_path):
    """The record as YAML holds it (lists, not tuples) equals the config it was written from;
    a changed key or checkpoint is named; a key the record lacks (added by a later ptft_ray)
    is not a change."""
    from ptft_ray.config import load_config
    from ptft_ray.errors import PtftError
    from ptft_ray.finetune.sweep_dir import check_started_with

    cfg = load_config(sweep_config)
    record = cfg.to_dict()
    del record["sweep"]["seed"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(record))
    (tmp_path / "pretrained.json").write_text(json.dumps(["ckpt"]))
    check_started_with(str(tmp_path), load_config(sweep_config, ["sweep.seed=7"]), ["ckpt"], "")
    with pytest.raises(PtftError, match=r"other values of sweep\.batch_sizes, --pretrained \("):
        check_started_with(str(tmp_path), load_config(sweep_config, ["sweep.batch_sizes=[8]"]), ["other"], "")
