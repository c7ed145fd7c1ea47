"""A real `ray job submit`: our own 2-node cluster (a head and a worker node, own ports, own
temp dir), token auth on, a small pipeline job (pretrain -> plan -> sweep -> evaluate ->
report) with its data and run directory on a real S3 API (moto), its artifacts checked on the
store, and only that cluster stopped."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.dirname(sys.executable)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args, env=None, timeout=300):
    return subprocess.run([os.path.join(BIN, "ray"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def _own_pids(marks: list[str]) -> set[int]:
    """Processes whose command line names our temp dir or GCS address, and their children
    (Ray renames some, e.g. ray::DashboardAgent, so the tree matters)."""
    rows = []
    for line in subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout.splitlines():
        pid, ppid, args = line.strip().split(None, 2) if len(line.split()) > 2 else (*line.split(), "")
        rows.append((int(pid), int(ppid), args))
    own = {pid for pid, _, args in rows if any(m in args for m in marks)}
    while True:
        more = {pid for pid, ppid, _ in rows if ppid in own and pid not in own}
        if not more:
            return own - {os.getpid()}
        own |= more


def _stop_own_cluster(marks: list[str]) -> None:
    """Stop only the cluster this test started (never `ray stop`, which stops every Ray)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _own_pids(marks):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(2)


@pytest.fixture
def head(s3):  # s3 first: the cluster's processes inherit its AWS variables
    temp_dir = tempfile.mkdtemp(prefix="/tmp/ptjob")  # short: Ray's socket paths have a length limit
    dash = _free_port()
    # the head's jobs run `python` from its PATH: this venv's, as on a head where it is activated
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
           "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
    env.pop("RAY_ADDRESS", None)
    gcs = _free_port()
    ports = [f"--{name}={_free_port()}" for name in (
        "ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
        "runtime-env-agent-port", "metrics-export-port", "node-manager-port", "object-manager-port")]
    r = _ray("start", "--head", f"--port={gcs}", f"--dashboard-port={dash}", *ports,
             "--dashboard-host=127.0.0.1", "--num-cpus=2", f"--temp-dir={temp_dir}",
             "--disable-usage-stats", env=env)
    marks = [temp_dir, f":{gcs}"]
    if r.returncode != 0:
        _stop_own_cluster(marks)
    assert r.returncode == 0, r.stderr[-2000:]
    address = f"http://127.0.0.1:{dash}"
    try:
        node_ports = [f"--{name}={_free_port()}" for name in (
            "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
            "metrics-export-port", "node-manager-port", "object-manager-port")]
        # its own temp dir: two nodes sharing one session dir on one machine delete each other's
        # runtime-env files (the job's working dir vanished under it at the sweep's end)
        node_dir = tempfile.mkdtemp(prefix="/tmp/ptnode")
        marks.append(node_dir)
        r = _ray("start", f"--address=127.0.0.1:{gcs}", "--num-cpus=1", *node_ports, "--disable-usage-stats",
                 f"--temp-dir={node_dir}", env={**env, "RAY_AUTH_MODE": "token"})
        assert r.returncode == 0, r.stderr[-2000:]   # the second node

        t0 = time.time()  # the job agent comes up a little after `ray start` returns
        while _ray("job", "list", "--address", address, env={**env, "RAY_AUTH_MODE": "token"},
                   timeout=60).returncode != 0:
            assert time.time() - t0 < 120, "the head's job API did not come up"
            time.sleep(2)
        yield address, env
    finally:
        _stop_own_cluster(marks)
        for d in marks[:1] + marks[2:]:
            shutil.rmtree(d, ignore_errors=True)


def test_job_submit_pipeline_with_token_auth(head, s3, tiny_corpus, cls_data, debug_config, sweep_config, tmp_path):
    """A small pipeline (pretrain -> plan -> sweep -> evaluate -> report) as a real job on two
    nodes, reading its data from S3 and writing every artifact there."""
    from ptft_ray import storage

    address, env = head
    storage.CACHE = tmp_path / "cache"
    for f in sorted(os.listdir(tiny_corpus)):
        storage.upload(os.path.join(tiny_corpus, f), s3.uri("job", "corpus", f))
    storage.upload(cls_data, s3.uri("job", "reviews.parquet"))
    out = s3.uri("job", "run")
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({
        "pretrain_config": debug_config,
        "pretrain_set": [f"data.path={s3.uri('job', 'corpus')}", "schedule.max_steps=20"],
        "sweep_config": sweep_config, "data": s3.uri("job", "reviews.parquet"), "budget": "40s", "max_trials": 2,
        "scratch_baseline": False}))
    cmd = ["job", "submit", "--address", address, "--runtime-env", "jobs/runtime_env.yaml", "--",
           "python", "jobs/pipeline.py", "--config", str(cfg), "--out", out]
    # without the token the head refuses the submission
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    refused = _ray("job", "list", "--address", address, env={**no_token, "RAY_AUTH_MODE": "disabled"}, timeout=120)
    assert refused.returncode != 0
    for _ in range(20):  # "No available agent ... try again later" while the agent starts
        r = _ray(*cmd, env={**env, "RAY_AUTH_MODE": "token"}, timeout=600)
        if "No available agent" not in r.stdout + r.stderr:
            break
        time.sleep(3)
    assert r.returncode == 0, (r.stdout + r.stderr)[-12000:]
    job_id = re.search(r"raysubmit_\w+", r.stdout + r.stderr).group(0)
    status = _ray("job", "status", job_id, "--address", address, env={**env, "RAY_AUTH_MODE": "token"})
    plain = re.sub(r"\x1b\[[0-9;]*m", "", status.stdout + status.stderr)
    assert re.search(r"succeeded", plain, re.I) and not re.search(r"failed|stopped", plain, re.I), plain
    # the job's log ends with the report path; the artifacts are where it says
    assert f"report: {out}/report/index.html" in r.stdout + r.stderr
    assert "on 3 CPUs" in r.stdout + r.stderr                   # both nodes: 2 + 1 CPUs
    man = storage.read_json(f"{out}/manifest.json")
    assert set(man["stages"]) >= {"pretrain", "plan", "sweep_pretrained", "report"}
    assert man["stages"]["sweep_pretrained"]["path"] == f"{out}/sweep_pretrained"
    assert storage.is_file(f"{out}/report/index.html")
    assert any(rel.endswith(".png") for rel, _, _ in storage.listing(f"{out}/report"))
    assert storage.read_json(f"{out}/pretrain/result.json")["steps"] == 20
    assert storage.is_file(f"{out}/sweep_pretrained/model/model.safetensors")
    assert storage.read_json(f"{out}/summary.json")["headline"]
    # the live progress lines reached the job log, one per line
    assert "[sweep " in r.stdout + r.stderr and "[lm] step" in r.stdout + r.stderr
    # the .venv beside the code (GBs) was not uploaded: the 100 MB cap would have refused it
    assert os.path.isdir(os.path.join(ROOT, ".venv")) or os.environ.get("VIRTUAL_ENV")
