"""Faults survived with real processes: a killed worker, a kill during a save. (A killed driver
and the same command again: tests/test_s3.py, on S3; a lost node: tests/test_multinode.py.)"""
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib

import pytest

from ptft_ray.config import load_config
from ptft_ray.errors import PtftError
from ptft_ray.train import checkpoint as ckpt
from ptft_ray.train.pretrain import pretrain

from conftest import read_trace, restart_index, wait_for_checkpoint

pytestmark = pytest.mark.slow


def test_worker_killed_mid_run_recovers_and_skips_consumed_data(ray_session, tiny_corpus, debug_config, tmp_path):
    """kill -9 of the training worker: the group restarts from the latest checkpoint,
    finishes at exactly max_steps, repeats at most one checkpoint interval, and the data
    stream continues where the checkpoint was taken (every sample once otherwise)."""
    from ray.util.state import list_actors

    out, tr = tmp_path / "run", tmp_path / "trace.jsonl"
    cfg = load_config(debug_config, [f"data.path={tiny_corpus}", "schedule.max_steps=60",
                                     "checkpoint.every_steps=10", "train.eval_every=0",
                                     "run.max_failures=2", f"train.trace_file={tr}",
                                     "data.docs_per_batch=16"])
    box = {}
    th = threading.Thread(target=lambda: box.update(result=pretrain(cfg, str(out))))
    th.start()
    registered = wait_for_checkpoint(str(out), 20)
    import ray

    workers = list_actors(address=ray.get_runtime_context().gcs_address,  # this session's Ray only
                          filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    assert workers, "no live training worker found"
    os.kill(workers[0].pid, signal.SIGKILL)
    th.join(timeout=400)
    assert box["result"]["steps"] == 60

    rows = read_trace(tr)
    steps = [r["step"] for r in rows]
    restart = restart_index(rows)
    killed_at, resumed_from = steps[restart - 1], steps[restart] - 1
    # the newest complete checkpoint: at or after the one Ray had registered at the kill
    assert resumed_from >= registered and resumed_from % 10 == 0
    assert killed_at - resumed_from <= 10            # at most one checkpoint interval lost
    assert steps[restart:] == list(range(resumed_from + 1, 61))   # finishes at exactly 60

    # the loss curve continues across the restart: one entry per logged step, still falling
    hist = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [h["step"] for h in hist]
    assert logged == sorted(set(logged)) and logged[-1] == 60
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]

    # the data: the last time each step ran, its samples; compared with the stream itself
    final = {r["step"]: r["samples"] for r in rows}
    trained = [s for step in range(1, 61) for s in final[step]]
    assert len(set(trained)) == len(trained)         # no sample twice: the replay skipped
    expected = _first_blocks(cfg, len(trained))      # what an uninterrupted run reads
    assert trained == expected


def _first_blocks(cfg, n):
    """The first n training blocks of epoch 0 in stream order, straight from Ray Data."""
    from ptft_ray import tokenizer as toks
    from ptft_ray.data.corpus import build_datasets, check_corpus

    files, fmt = check_corpus(cfg.data)
    train, _, _ = build_datasets(cfg.data, toks.ByteTokenizer(), files, fmt)
    ctx = train.context
    ctx.execution_options.preserve_order = True
    out = []
    for b in train.iter_batches(batch_size=cfg.train.batch_size, batch_format="numpy", drop_last=True):
        out += [zlib.crc32(r.tobytes()) for r in b["tokens"]]
        if len(out) >= n:
            break
    return out[:n]


SAVER = r"""
import sys, torch
from ptft_ray.train import checkpoint as ckpt
model = torch.nn.Sequential(*[torch.nn.Linear(2048, 2048) for _ in range(12)])  # ~200 MB
print("ready", flush=True)
ckpt.write_dir(sys.argv[1], model, {"task": "lm", "state": {"step": 2}}, "{}")
print("saved", flush=True)
"""


def test_kill_during_save_leaves_previous_checkpoint_usable(tmp_path):
    import torch

    small = torch.nn.Linear(4, 4)
    ckpt.write_dir(tmp_path / "ck1", small, {"task": "lm", "state": {"step": 1}}, "{}")
    p = subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path / "ck2")], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    t0 = time.time()
    while not glob.glob(str(tmp_path / ".ck2.tmp-*")) and time.time() - t0 < 30:
        time.sleep(0.005)
    p.kill()
    p.wait()
    assert not (tmp_path / "ck2").exists()            # no half-written checkpoint under the real name
    assert ckpt.read_meta(tmp_path / "ck1")["state"]["step"] == 1
    again = torch.nn.Linear(4, 4)
    ckpt.load_weights(again, tmp_path / "ck1")
    assert torch.equal(again.weight, small.weight)
    with pytest.raises(PtftError, match="exists"):     # and an existing one is never replaced
        ckpt.write_dir(tmp_path / "ck1", small, {"task": "lm", "state": {"step": 9}}, "{}")
    assert ckpt.read_meta(tmp_path / "ck1")["state"]["step"] == 1

