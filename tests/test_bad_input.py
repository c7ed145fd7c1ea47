"""The bad-input matrix: each case exits 2 with one line naming the file, key or value,
no traceback (unless --debug), and touches nothing that existed."""
import json
import os
import pickle
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ptft_ray.config import load_config
from ptft_ray.errors import PtftError
from ptft_ray.models import Classifier, build_backbone
from ptft_ray.train import checkpoint as ckpt
from ptft_ray.tokenizer import ByteTokenizer


CONFIGS = os.path.join(os.path.dirname(__file__), "..", "jobs", "configs")
DEBUG, DEBUG_SWEEP = os.path.join(CONFIGS, "debug.yaml"), os.path.join(CONFIGS, "debug_sweep.yaml")


def cli(*args, timeout=180):
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", *args], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stderr.strip()


def assert_refused(rc_err, *needles):
    rc, err = rc_err
    assert rc == 2, err
    ours = [ln for ln in err.splitlines() if ln.startswith("ptft-ray: error:")]
    assert "Traceback" not in err and len(ours) == 1, err   # (Ray may log its own INFO lines)
    err = ours[0]
    for n in needles:
        assert n in err, (n, err)


@pytest.fixture
def files(tmp_path, cls_data):
    def parquet(name, **cols):
        p = tmp_path / name
        pq.write_table(pa.table(cols), p)
        return str(p)
    return parquet


def pre(debug_config, *sets):
    args = ["pretrain", "--config", debug_config]
    for s in sets:
        args += ["--set", s]
    return args


# --- corpus ---------------------------------------------------------------------------

def test_empty_corpus_file(tmp_path, debug_config):
    (tmp_path / "c.parquet").write_bytes(b"")
    assert_refused(cli(*pre(debug_config, f"data.path={tmp_path}/c.parquet")), "empty", "c.parquet")


def test_corpus_without_rows(files, debug_config):
    p = files("rows.parquet", text=pa.array([], pa.string()))
    assert_refused(cli(*pre(debug_config, f"data.path={p}")), "empty", "rows.parquet")


def test_corpus_missing_text_column(files, debug_config):
    p = files("c.parquet", body=["a b c"])
    assert_refused(cli(*pre(debug_config, f"data.path={p}")), "missing text column 'text'", "c.parquet")


def test_corpus_not_parquet(tmp_path, debug_config):
    (tmp_path / "c.parquet").write_bytes(b"this is not parquet")
    assert_refused(cli(*pre(debug_config, f"data.path={tmp_path}/c.parquet")), "c.parquet", "Parquet")


def test_corpus_path_missing(tmp_path, debug_config):
    assert_refused(cli(*pre(debug_config, f"data.path={tmp_path}/nope")), "not found", "nope")


# --- config ---------------------------------------------------------------------------

@pytest.mark.parametrize("setting, needle", [
    ("optim.lrr=1", "optim.lrr"), ("train.batch_size=big", "train.batch_size"),
    ("optim.lr=-3e-4", "optim.lr"), ("optim.lr=0", "optim.lr"), ("data.seq_len=4096", "data.seq_len"),
    ("optim.lr", "--set"),
])
def test_bad_config(debug_config, setting, needle):
    assert_refused(cli(*pre(debug_config, setting)), needle)


def test_a_tied_lm_head_is_refused_before_ray_starts(tiny_corpus, hf_dirs, tmp_path):
    """GPT-2's output layer is its embeddings: a setting that trains the LM head on its own is
    refused at the command's checks, before Ray starts or the run directory is made."""
    from conftest import HF_DEBUG

    out = tmp_path / "run"
    rc, err = cli("pretrain", "--config", HF_DEBUG, "--set", f"data.path={tiny_corpus}",
                  "--set", f"model.hf={hf_dirs['gpt2']}", "--set", "optim.head_lr=0.05", "--out", str(out))
    assert_refused((rc, err), "optim.head_lr", "tied to the embeddings", hf_dirs["gpt2"])
    assert "Ray" not in err and not out.exists(), err


def test_debug_flag_shows_traceback(debug_config):
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", "--debug", *pre(debug_config, "optim.lr=0")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" in r.stderr


# --- task data ------------------------------------------------------------------------

def sweep_args(data, *extra, pretrained="none"):
    return ["sweep", "--config", DEBUG_SWEEP, "--pretrained", pretrained,
            "--data", data, *extra]


def test_task_missing_label_column(files):
    p = files("t.parquet", text=["a", "b"])
    assert_refused(cli(*sweep_args(p)), "missing column 'label'", "t.parquet")


def test_task_null_text(files):
    p = files("t.parquet", text=["a", None, "c"], label=["x", "y", "x"])
    assert_refused(cli(*sweep_args(p)), "null text", "t.parquet")


def test_task_one_class(files):
    p = files("t.parquet", text=["a", "b", "c"], label=["x", "x", "x"])
    assert_refused(cli(*sweep_args(p)), "one class only", "'x'")


def test_task_not_utf8(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"text,label\ngood \xff\xfe film,pos\nbad,neg\n")
    assert_refused(cli(*sweep_args(str(p))), "t.csv")


def test_task_label_column_flag_is_used(files):
    p = files("t.parquet", review=["a", "b"], stars=["1", "2"])
    assert_refused(cli(*sweep_args(p, "--text-column", "review", "--label-column", "sentiment")),
                   "missing column 'sentiment'")


# --- checkpoints ----------------------------------------------------------------------

def test_missing_checkpoint(cls_data, tmp_path):
    assert_refused(cli(*sweep_args(cls_data, pretrained=str(tmp_path / "nope"))), "checkpoint not found")


@pytest.fixture
def ckpt_copy(pretrained_ckpt, tmp_path):
    d = tmp_path / "ck"
    shutil.copytree(pretrained_ckpt, d)
    return d


def test_checkpoint_of_another_architecture(ckpt_copy, cls_data):
    meta = json.loads((ckpt_copy / "meta.json").read_text())
    meta["config"]["model"]["d_model"] = 32
    (ckpt_copy / "meta.json").write_text(json.dumps(meta))
    assert_refused(cli(*sweep_args(cls_data, pretrained=str(ckpt_copy))), "do not fit", "model.safetensors")


def test_checkpoint_of_another_vocabulary(ckpt_copy, cls_data):
    from ptft_ray import tokenizer as toks

    toks.save(toks.build("bpe", ["some text to learn a few merges from"] * 20, 300), ckpt_copy)
    assert_refused(cli(*sweep_args(cls_data, pretrained=str(ckpt_copy))), "vocabulary")


def test_truncated_weights(ckpt_copy, cls_data):
    w = ckpt_copy / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    assert_refused(cli(*sweep_args(cls_data, pretrained=str(ckpt_copy))), "corrupt or truncated")


def test_pickled_weights_are_refused(ckpt_copy):
    from ptft_ray import load_pretrained

    torch.save({"w": torch.zeros(2)}, ckpt_copy / "model.safetensors")  # a pickle in disguise
    with pytest.raises(PtftError, match="corrupt or truncated"):
        load_pretrained(str(ckpt_copy))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/ptft-pwned",))


def test_tampered_optimizer_state_is_refused(ckpt_copy):
    with open(ckpt_copy / "train_state.pt", "wb") as f:
        pickle.dump({"optimizer": Evil()}, f)
    model = torch.nn.Linear(2, 2)
    with pytest.raises(PtftError, match="refused or corrupt"):
        ckpt.load_optimizer(torch.optim.AdamW(model.parameters()), ckpt_copy)
    assert not os.path.exists("/tmp/ptft-pwned")


def test_evaluate_with_unseen_labels(tmp_path, files):
    """An export knows labels neg/pos; evaluation data with 'meh' is refused."""
    cfg = load_config(DEBUG)
    model = Classifier(build_backbone(cfg.model, 258), 1, 257)
    meta = {"task": "cls", "config": cfg.to_dict(), "state": {"step": 0},
            "task_info": {"labels": ["neg", "pos"], "vocab_size": 258, "pad_id": 257}}
    ckpt.write_dir(tmp_path / "export", model, meta, ByteTokenizer().to_json())
    data = files("e.parquet", text=["a", "b", "c", "d"] * 5, label=["neg", "pos", "meh", "pos"] * 5)
    assert_refused(cli("evaluate", "--model", str(tmp_path / "export"), "--data", data),
                   "not seen in training", "'meh'")


# --- resources ------------------------------------------------------------------------

def test_unschedulable_request_is_refused_not_hung(tiny_corpus, debug_config, tmp_path):
    """2 workers x 1 CPU on a 2-CPU node leaves Ray Data nothing: refused before it hangs."""
    rc_err = cli(*pre(debug_config, f"data.path={tiny_corpus}", "scaling.num_workers=2",
                      "scaling.cpus_per_worker=1"), "--out", str(tmp_path / "run"), timeout=240)
    assert_refused(rc_err, "cannot schedule", "cpus_per_worker")
    assert not (tmp_path / "run").exists()   # refused before anything was written


def test_existing_run_is_not_overwritten(tiny_corpus, debug_config, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(json.dumps(load_config(debug_config).to_dict()))
    (out / "keep.txt").write_text("precious")
    assert_refused(cli(*pre(debug_config, f"data.path={tiny_corpus}", "model.d_model=32"), "--out", str(out)),
                   "different", "--overwrite")
    assert (out / "keep.txt").read_text() == "precious"


def test_budget_too_small_for_one_trial(pretrained_ckpt, cls_data):
    assert_refused(cli(*sweep_args(cls_data, "--set", "sweep.time_budget_s=1", pretrained=pretrained_ckpt)),
                   "sweep.time_budget_s=1", "estimated")


def test_no_secret_in_any_config():
    """Credentials come from the environment, never from a committed config."""
    import glob
    import re

    pattern = re.compile(r"(password|secret|token|access_key|api_key)\s*:\s*['\"]?[A-Za-z0-9/+_\-]{8,}", re.I)
    root = os.path.join(os.path.dirname(__file__), "..")
    files = glob.glob(os.path.join(CONFIGS, "*.yaml")) + glob.glob(os.path.join(root, "*.yaml"))
    assert files
    for f in files:
        assert not pattern.search(open(f).read()), f


def test_bad_hugging_face_models_are_refused_in_one_line(tmp_path, tiny_corpus, cls_data):
    hf_debug = os.path.join(CONFIGS, "debug_hf.yaml")
    assert_refused(cli("pretrain", "--config", hf_debug, "--set", f"data.path={tiny_corpus}",
                       "--set", f"model.hf={tmp_path / 'missing'}", "--out", str(tmp_path / "r")), "model.hf")
    bad = tmp_path / "bad_model"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "no_such_architecture"}')
    assert_refused(cli("pretrain", "--config", hf_debug, "--set", f"data.path={tiny_corpus}",
                       "--set", f"model.hf={bad}", "--out", str(tmp_path / "r")), "model.hf", str(bad))
    assert not (tmp_path / "r").exists()   # refused before anything was written
    assert_refused(cli("sweep", "--config", DEBUG_SWEEP, "--pretrained", str(bad), "--data", cls_data,
                       "--out", str(tmp_path / "s")), str(bad))


def test_sweep_refuses_a_model_setting_the_checkpoint_decides_and_applies_dropout(pretrained_ckpt, cls_data,
                                                                                  tmp_path):
    """`--set model.d_model=...` on a sweep from a checkpoint was silently dropped (the
    checkpoint's model section replaced it): now it exits 2 naming the key; model.dropout,
    which a fine-tune can honour, reaches the loop's config."""
    from ptft_ray.data.tasks import load_task
    from ptft_ray.finetune.backbones import resolve_sources, run_spec

    out = tmp_path / "never"
    assert_refused(cli(*sweep_args(cls_data, "--set", "model.d_model=96", "--out", str(out),
                                   pretrained=pretrained_ckpt)), "model.d_model=96", "architecture")
    assert not out.exists()
    cfg = load_config(DEBUG_SWEEP, [f"finetune.data={cls_data}", "model.dropout=0.2"])
    (src,) = resolve_sources([pretrained_ckpt], cfg)
    spec = run_spec(cfg, src, load_task(cfg.finetune))
    assert spec.config.model.dropout == 0.2
    assert spec.config.model.d_model == src.model.d_model
    plain = load_config(DEBUG_SWEEP, [f"finetune.data={cls_data}"])
    assert run_spec(plain, src, load_task(plain.finetune)).config.model.dropout == src.model.dropout
