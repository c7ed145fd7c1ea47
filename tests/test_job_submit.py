"""A real `ray job submit`: our own head (own ports, own temp dir), token auth on, a small
pretraining job, its artifacts checked, and only that cluster stopped."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

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


def _stop_own_cluster(temp_dir: str) -> None:
    """Kill the processes whose command line names our temp dir (never `ray stop`, which
    would stop every Ray on the machine)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = subprocess.run(["pgrep", "-f", temp_dir], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), sig)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(2)


@pytest.fixture
def head():
    temp_dir = tempfile.mkdtemp(prefix="/tmp/ptjob")  # short: Ray's socket paths have a length limit
    dash = _free_port()
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    r = _ray("start", "--head", f"--port={_free_port()}", f"--dashboard-port={dash}",
             "--dashboard-host=127.0.0.1", "--num-cpus=2", f"--temp-dir={temp_dir}",
             "--disable-usage-stats", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    try:
        yield f"http://127.0.0.1:{dash}", env
    finally:
        _stop_own_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_job_submit_with_token_auth(head, tiny_corpus, tmp_path):
    address, env = head
    out = tmp_path / "job_run"
    cmd = ["job", "submit", "--address", address, "--runtime-env", "jobs/runtime_env.yaml", "--",
           "python", "jobs/pretrain.py", "--config", "jobs/configs/debug.yaml",
           "--set", f"data.path={tiny_corpus}", "--set", "schedule.max_steps=20", "--out", str(out)]
    # without the token the head refuses the submission
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    refused = _ray("job", "list", "--address", address, env={**no_token, "RAY_AUTH_MODE": "disabled"}, timeout=120)
    assert refused.returncode != 0
    r = _ray(*cmd, env={**env, "RAY_AUTH_MODE": "token"}, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "SUCCEEDED" in r.stdout + r.stderr
    res = json.loads((out / "result.json").read_text())
    assert res["steps"] == 20 and os.path.isdir(res["checkpoint"])
    # the .venv beside the code (GBs) was not uploaded: the 100 MB cap would have refused it
    assert os.path.isdir(os.path.join(ROOT, ".venv")) or os.environ.get("VIRTUAL_ENV")
