"""The pipeline end to end (pretrain -> plan -> sweep -> evaluate -> report) on the shared
Ray session; its manifest and lineage; the report rendered in real headless Chromium;
TensorBoard and MLflow records; a re-run reuses every finished stage."""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import yaml

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def pipeline_config(tmp_path, tiny_corpus, cls_data, debug_config, sweep_config, **extra) -> str:
    cfg = {"pretrain_config": debug_config,
           "pretrain_set": [f"data.path={tiny_corpus}", "schedule.max_steps=20"],
           "sweep_config": sweep_config, "data": cls_data, "budget": "45s", "max_trials": 3,
           "scratch_baseline": True, **extra}
    p = tmp_path / "pipeline.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


@pytest.fixture(scope="module")
def pipeline_run(ray_session, tiny_corpus, cls_data, debug_config, sweep_config, tmp_path_factory):
    from ptft_ray.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("pipe")
    mlruns = tmp / "mlruns"
    cfg = pipeline_config(tmp, tiny_corpus, cls_data, debug_config, sweep_config)
    with open(cfg) as f:
        d = yaml.safe_load(f)
    d["pretrain_set"].append(f"run.mlflow_uri=file://{mlruns}")
    d["sweep_set"] = [f"run.mlflow_uri=file://{mlruns}"]
    with open(cfg, "w") as f:
        yaml.safe_dump(d, f)
    out = tmp / "run"
    # mlflow 3 refuses a ./mlruns file store unless asked; a server or a database is the norm
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    t0 = time.time()
    summary = run_pipeline(cfg, str(out))
    return summary, out, cfg, mlruns, time.time() - t0


def test_pipeline_manifest_and_lineage(pipeline_run):
    summary, out, _, _, _ = pipeline_run
    man = json.loads((out / "manifest.json").read_text())
    assert list(man["stages"]) == ["pretrain", "plan", "sweep_pretrained", "evaluate_sweep_pretrained",
                                   "sweep_scratch", "evaluate_sweep_scratch", "report"]
    assert all(s["status"] == "done" for s in man["stages"].values())
    pre = man["lineage"]["pretrained"]
    assert os.path.isdir(pre["path"]) and pre["step"] == 20 and len(pre["config_hash"]) >= 8 and pre["corpus"]
    # the export records where it came from, and the sweep the same checkpoint
    meta = json.loads(open(os.path.join(summary["pretrained"]["export_path"], "meta.json")).read())
    assert json.dumps(meta).count(pre["path"]) >= 1
    sw = json.loads((out / "sweep_pretrained" / "result.json").read_text())
    assert sw["lineage"][pre["path"]]["step"] == 20
    ev = json.loads((out / "sweep_pretrained" / "evaluation.json").read_text())
    n = len(ev["labels"])
    assert len(ev["confusion_matrix"]) == n and sum(map(sum, ev["confusion_matrix"])) == ev["n"]
    # the plan was followed: its strategies only
    plan = json.loads((out / "plan.json").read_text())
    rows = (out / "sweep_pretrained" / "trials.csv").read_text().splitlines()[1:]
    # (a trial the budget stopped before its first report has no config in Tune's result)
    ran = [r.split(",")[2] for r in rows if r.split(",")[2]]
    assert ran and all(s in plan["strategies"] for s in ran)
    assert man["versions"]["ray"].startswith("2.60")
    # the headline: the best model's interval, the baselines, what pretraining added (paired test)
    head = summary["headline"]
    lo, hi = head["test_accuracy_ci"]
    assert lo <= head["test_accuracy"] == summary["pretrained"]["test_accuracy"] <= hi
    assert set(head["baseline"]) >= {"tfidf_lr", "majority"} and head["test_n"] == ev["n"]
    vs = head["effects"]["pretrained vs random init"]
    assert vs["n"] == ev["n"] and 0 < vs["p_value"] <= 1
    scratch = json.loads((out / "sweep_scratch" / "evaluation.json").read_text())
    assert vs["points"] == pytest.approx(100 * (ev["accuracy"] - scratch["accuracy"]), abs=0.01)
    assert json.loads((out / "summary.json").read_text())["headline"] == head


def test_report_files_and_markdown(pipeline_run):
    summary, out, _, _, _ = pipeline_run
    rep = out / "report"
    assert summary["report"] == str(rep / "index.html")
    pngs = sorted(p.name for p in rep.glob("*.png"))
    for want in ("pretrain_pretrain.png", "sweep_pretrained_curves.png", "sweep_pretrained_strategies.png",
                 "sweep_pretrained_confusion.png", "sweep_scratch_confusion.png", "accuracy_vs_cost.png"):
        assert want in pngs, pngs
    for p in rep.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    md = (rep / "report.md").read_text()
    assert "## Pretraining" in md and "### Plan" in md and "sweep_scratch" in md
    pre = json.loads((out / "pretrain" / "result.json").read_text())
    beats = pre["val_perplexity"] < pre["unigram_val_perplexity"]
    assert ("the language model beats the unigram level" in md) == beats
    assert ("does NOT beat the unigram level" in md) == (not beats)
    assert md.index("## Headline") < md.index("## Pipeline")   # the report opens with the headline
    assert "TF-IDF + logistic regression on the same training rows" in md
    assert "pretrained vs random init: " in md and "p = " in md
    # then the models side by side: each sweep's export and the baselines, with their intervals
    # and the forecasts the sweeps recorded; the lineage as a table, not a JSON dump
    assert md.index("## Headline") < md.index("## Models side by side") < md.index("## Pipeline")
    side = md[md.index("## Models side by side"):md.index("## Pipeline")]
    res = json.loads((out / "sweep_pretrained" / "result.json").read_text())
    lo, mid, hi = res["forecast"]["test_accuracy"]
    row = next(x for x in side.splitlines() if x.startswith("| sweep_pretrained |"))
    assert f"{res['test_accuracy']:.3f}" in row and f"{mid:.3f} ({lo:.3f}-{hi:.3f})" in row
    assert "| TF-IDF + LR |" in side and "| majority class |" in side and "| sweep_scratch |" in side
    lineage = md[md.index("### Lineage"):]
    assert "| artefact | path | from |" in lineage and "| pretrained |" in lineage and "{" not in lineage.split("##")[1]


@pytest.mark.skipif(not CHROMIUM, reason="no chromium on this machine (make browser installs it)")
def test_report_renders_in_headless_chromium(pipeline_run):
    _, out, _, _, _ = pipeline_run
    page = out / "report" / "index.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with tempfile.TemporaryDirectory() as prof:
        dom = subprocess.run([CHROMIUM, *flags, f"--user-data-dir={prof}", "--virtual-time-budget=5000",
                              "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
        shot = out / "report_screenshot.png"
        subprocess.run([CHROMIUM, *flags, f"--user-data-dir={prof}", "--window-size=1200,1600",
                        f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    imgs = len(list((out / "report").glob("*.png")))
    # the page's own load handler counts the images the browser decoded
    assert f"images-ok {imgs}/{imgs}" in dom, dom[-500:]
    assert "Sweeps side by side" in dom
    assert shot.is_file() and shot.stat().st_size > 20000


def test_tensorboard_and_mlflow_records(pipeline_run):
    from tensorboardX.proto import event_pb2  # noqa: F401  (the writer's own format)

    _, out, _, mlruns, _ = pipeline_run
    events = glob.glob(str(out / "pretrain" / "tensorboard" / "events.out.tfevents.*"))
    assert events and os.path.getsize(events[0]) > 200
    # sweeps: Ray Tune's own TBX logger, one event file per trial
    assert glob.glob(str(out / "sweep_pretrained" / "tune" / "*" / "events.out.tfevents.*"))
    # MLflow: the pretraining run (params + per-step metrics) and one run per sweep trial
    import mlflow

    mlflow.set_tracking_uri(f"file://{mlruns}")
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) >= 2
    assert "metrics.train_loss" in runs.columns and runs["metrics.train_loss"].notna().any()


def test_rerun_reuses_every_finished_stage(pipeline_run):
    from ptft_ray.pipeline import run_pipeline

    summary, out, cfg, _, first_wall = pipeline_run
    ckpts = sorted(glob.glob(str(out / "pretrain" / "checkpoint_*")))
    t0 = time.time()
    again = run_pipeline(cfg, str(out))
    assert again["pretrained"]["test_accuracy"] == summary["pretrained"]["test_accuracy"]
    assert sorted(glob.glob(str(out / "pretrain" / "checkpoint_*"))) == ckpts
    assert time.time() - t0 < first_wall / 2


def test_a_rerun_with_other_settings_is_refused_before_anything_changes(pipeline_run, tmp_path):
    """The finished sweeps were planned for one budget and run from one sweep config: a re-run
    with another budget, or with the sweep config's file edited, is refused naming what differs,
    and no record of the run changes (the manifest included)."""
    from ptft_ray.errors import PtftError
    from ptft_ray.pipeline import run_pipeline

    _, out, cfg, _, _ = pipeline_run
    d = yaml.safe_load(open(cfg))
    records = ("plan.json", "manifest.json", "summary.json", "sweep_pretrained/result.json",
               "sweep_pretrained/config.yaml")
    before = {f: (out / f).read_bytes() for f in records}
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**d, "budget": "50s"}))
    with pytest.raises(PtftError, match=r"planned for budget 45 s"):
        run_pipeline(str(other), str(out))
    sw = yaml.safe_load(open(d["sweep_config"]))
    sw["sweep"]["seed"] = sw["sweep"].get("seed", 0) + 1
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sw))
    other.write_text(yaml.safe_dump({**d, "sweep_config": str(tmp_path / "sweep.yaml")}))
    with pytest.raises(PtftError, match=r"sweep_pretrained holds a sweep started with other values of sweep\.seed "):
        run_pipeline(str(other), str(out))
    assert {f: (out / f).read_bytes() for f in records} == before


def test_bad_pipeline_config_is_refused(tmp_path):
    from ptft_ray.errors import PtftError
    from ptft_ray.pipeline_config import load_pipeline_config

    p = tmp_path / "p.yaml"
    p.write_text("budgett: 5m\n")
    with pytest.raises(PtftError, match="budgett"):
        load_pipeline_config(str(p))
    with pytest.raises(PtftError, match="scratch_baseline"):
        load_pipeline_config(None, ["scratch_baseline=maybe"])


def test_a_budget_below_the_floor_is_refused_before_pretraining(ray_session, tiny_corpus, cls_data, sweep_config,
                                                                 hf_dirs, tmp_path):
    """Continued pretraining of a Hugging Face model with a sweep budget no plan can use: the
    pipeline says so (with the floor) before the pretraining stage spends anything."""
    from ptft_ray.errors import PtftError
    from ptft_ray.pipeline import run_pipeline

    cfg = pipeline_config(tmp_path, tiny_corpus, cls_data, "jobs/configs/debug_hf.yaml", sweep_config,
                          budget="2s", scratch_baseline=False, base_control=False)
    with open(cfg) as f:
        d = yaml.safe_load(f)
    d["pretrain_set"].append(f"model.hf={hf_dirs['bert']}")
    with open(cfg, "w") as f:
        yaml.safe_dump(d, f)
    out = tmp_path / "run"
    with pytest.raises(PtftError, match=r"budget 2 s is below the floor of \d+ s"):
        run_pipeline(cfg, str(out))
    assert not (out / "pretrain").exists() and not (out / "manifest.json").exists()
