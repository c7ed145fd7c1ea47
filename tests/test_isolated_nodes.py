"""Nodes that share no files with the driver: a head with no CPU (the driver's node) and a
worker node started in its own mount namespace, where a fresh tmpfs hides this test's
directory (the driver's inputs, its cache). Every training task runs on that node. Pretrain ->
sweep -> export succeeds with every input on S3 (moto); a local input the worker cannot read is
refused before anything is written, in one line naming the flag. Only this test's cluster is
stopped (by PID, never `ray stop`)."""
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ptft_ray import storage

from conftest import refusal_lines, synthetic_docs, synthetic_reviews
from s3_server import free_port
from test_job_submit import _stop_own_cluster

pytestmark = pytest.mark.slow

RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def _can_unshare() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def isolated(s3, tmp_path_factory):
    """One cluster for this file's tests (a start costs ~11 s here)."""
    if not _can_unshare():
        pytest.skip("no mount namespaces here (unshare -m needs root or user namespaces)")
    hidden = tmp_path_factory.mktemp("iso") / "driver"   # what only the driver sees: its inputs and its cache
    hidden.mkdir()
    temp_dir, node_dir = tempfile.mkdtemp(prefix="/tmp/ptiso"), tempfile.mkdtemp(prefix="/tmp/ptisn")
    gcs = free_port()
    env = {**os.environ, **s3.env, "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "PTFT_CACHE": str(hidden / "cache"),
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    for k in ("RAY_ADDRESS", "PTFT_SHARED_STORAGE", "PTFT_SHARED_MOUNTS"):
        env.pop(k, None)
    taken: set[int] = {gcs}

    def ports(*names):  # distinct: free_port can hand the same free port out twice
        out = []
        for n in names:
            p = free_port()
            while p in taken:
                p = free_port()
            taken.add(p)
            out.append(f"--{n}={p}")
        return out
    node_ports = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
                  "metrics-export-port", "node-manager-port", "object-manager-port")
    marks = [temp_dir, node_dir, f":{gcs}"]
    try:
        r = subprocess.run([*RAY, "start", "--head", f"--port={gcs}", *ports("dashboard-port"),
                            "--dashboard-host=127.0.0.1", "--num-cpus=0", f"--temp-dir={temp_dir}",
                            "--object-store-memory=200000000", "--disable-usage-stats",
                            *ports("ray-client-server-port", *node_ports)],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        start = " ".join([*RAY, "start", f"--address=127.0.0.1:{gcs}", "--num-cpus=2",
                          "--resources='{\"isolated\": 1}'", f"--temp-dir={node_dir}",
                          "--object-store-memory=200000000", "--disable-usage-stats", *ports(*node_ports)])
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs none {hidden} && exec {start}"],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        yield {**env, "RAY_ADDRESS": f"127.0.0.1:{gcs}"}, hidden
    finally:
        _stop_own_cluster(marks)
        for d in (temp_dir, node_dir):
            shutil.rmtree(d, ignore_errors=True)


def _cli(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "ptft_ray.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=os.path.dirname(os.path.dirname(__file__)))


PROBE = """
import os, sys, ray
ray.init()
@ray.remote(num_cpus=1, resources={"isolated": 0.1})
def sees(p):
    return os.path.exists(p)
print("worker-sees", ray.get(sees.remote(sys.argv[1])))
"""


FORWARD = """
import os, ray
from ptft_ray.cluster import init_ray
init_ray(forward=["PTFT_TEST_SECRET"])
@ray.remote(num_cpus=1, resources={"isolated": 0.1})
def env():
    return {k: os.environ.get(k) for k in ("HF_TOKEN", "PTFT_TEST_SECRET", "PTFT_TEST_UNLISTED")}
got = ray.get(env.remote())
print("forwarded", sorted(k for k, v in got.items() if v))
print("values-match", got["HF_TOKEN"] == os.environ["HF_TOKEN"] and got["PTFT_TEST_SECRET"] == os.environ["PTFT_TEST_SECRET"])
"""


def test_credentials_reach_the_other_node_by_name_and_are_never_printed(isolated):
    """The standard credentials (HF_TOKEN here) and the names a config adds (cluster.forward_env)
    reach a worker on another node; a variable nobody named does not; no value is printed."""
    env, _ = isolated
    secrets_ = {"HF_TOKEN": secrets.token_hex(8), "PTFT_TEST_SECRET": secrets.token_hex(8),
                "PTFT_TEST_UNLISTED": secrets.token_hex(8)}
    r = subprocess.run([sys.executable, "-c", FORWARD], env={**env, **secrets_}, capture_output=True, text=True,
                       timeout=180)
    assert "forwarded ['HF_TOKEN', 'PTFT_TEST_SECRET']" in r.stdout, r.stdout + r.stderr[-3000:]
    assert "values-match True" in r.stdout
    assert not any(v in r.stdout + r.stderr for v in secrets_.values())


def test_pretrain_sweep_export_on_nodes_that_share_no_files(isolated, s3, debug_config, tmp_path):
    env, hidden = isolated
    local_corpus = hidden / "corpus"
    local_corpus.mkdir()
    docs = synthetic_docs(600, seed=4)
    pq.write_table(pa.table({"text": docs}), local_corpus / "part-0.parquet")
    texts, labels = synthetic_reviews(400, seed=6)
    pq.write_table(pa.table({"text": texts, "label": labels}), hidden / "reviews.parquet")
    # the worker node really cannot read the driver's files
    probe = subprocess.run([sys.executable, "-c", PROBE, str(local_corpus / "part-0.parquet")], env=env,
                           capture_output=True, text=True, timeout=180)
    assert "worker-sees False" in probe.stdout, probe.stdout + probe.stderr[-3000:]

    # a local corpus, read by Ray Data tasks on the other node: refused before anything is written
    local_out = hidden / "pre-local"
    r = _cli(env, "pretrain", "--config", debug_config, "--set", f"data.path={local_corpus}", "--out",
             s3.uri("iso", "refused"))
    lines = refusal_lines(r.stderr)
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
    assert lines[0].startswith(f"ptft-ray: error: data.path={local_corpus}: a local path") and "s3://" in lines[0]
    assert not storage.listing(s3.uri("iso", "refused"))
    r = _cli(env, "pretrain", "--config", debug_config, "--set", f"data.path={local_corpus}", "--out", str(local_out))
    assert r.returncode == 2 and "--out=" in r.stderr and not local_out.exists(), r.stderr[-3000:]

    # every input on S3: pretrain -> sweep (its export) on the isolated node
    storage.CACHE = hidden / "cache-test"
    storage.upload(local_corpus / "part-0.parquet", s3.uri("iso", "corpus", "part-0.parquet"))
    storage.upload(hidden / "reviews.parquet", s3.uri("iso", "reviews.parquet"))
    pre = s3.uri("iso", "pre")
    r = _cli(env, "pretrain", "--config", debug_config, "--set", f"data.path={s3.uri('iso', 'corpus')}",
             "--set", "schedule.max_steps=20", "--set", "train.eval_every=0", "--out", pre)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    ck = storage.read_json(f"{pre}/result.json")["checkpoint"]

    # a local copy of that checkpoint as --pretrained: trials on the other node cannot load it
    sweep_cfg = os.path.join(os.path.dirname(debug_config), "debug_sweep.yaml")
    common = ["--set", "sweep.num_samples=2", "--set", "sweep.strategies=[full]", "--set", "sweep.scheduler=none",
              "--set", "finetune.max_examples=200", "--set", "sweep.epochs=[1]", "--set", "sweep.rescore_top_k=1",
              "--set", "sweep.max_concurrent_trials=1"]
    r = _cli(env, "sweep", "--config", sweep_cfg, "--pretrained", storage.localize(ck), "--data",
             s3.uri("iso", "reviews.parquet"), *common, "--out", s3.uri("iso", "sweep-refused"))
    assert r.returncode == 2 and "--pretrained=" in r.stderr and "a local path" in r.stderr, r.stderr[-3000:]

    sweep = s3.uri("iso", "sweep")
    r = _cli(env, "sweep", "--config", sweep_cfg, "--pretrained", ck, "--data", s3.uri("iso", "reviews.parquet"),
             *common, "--out", sweep)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    res = storage.read_json(f"{sweep}/result.json")
    assert res["trials_completed"] == 2 and res["export_path"] == f"{sweep}/model"
    assert storage.is_file(f"{sweep}/model/model.safetensors")

    # a sweep's or a distillation's node-local --out: refused before a trial or a score is spent
    for args in (["sweep", "--config", sweep_cfg, "--pretrained", ck, "--data", s3.uri("iso", "reviews.parquet"),
                  *common, "--out", str(hidden / "sweep-local")],
                 ["distill", "--teacher", f"{sweep}/model", "--student", "gpt_tiny", "--data",
                  s3.uri("iso", "reviews.parquet"), "--out", str(hidden / "distill-local")]):
        r = _cli(env, *args)
        assert r.returncode == 2 and f"--out={hidden}" in r.stderr, r.stderr[-3000:]
        assert not (hidden / "sweep-local").exists() and not (hidden / "distill-local").exists()
