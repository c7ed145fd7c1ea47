"""A real `ray job submit` from a head that does not have ptft_ray: our own 2-node cluster
(a head and a worker node, own ports, own temp dirs, own token) started from a Python
environment with our dependencies but without our package (no editable install, no source
tree on its path), so the job imports ptft_ray only from what `--working-dir .
--runtime-env jobs/runtime_env.yaml` uploads. The contract's smoke jobs (pipeline and sweep)
write every artifact to a real S3 API (moto); only this test's cluster is stopped."""
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time

import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args, env=None, timeout=300, python=sys.executable):
    return subprocess.run([python, "-m", "ray.scripts.scripts", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory):
    """A venv whose site-packages are this venv's minus its .pth files: Ray, torch and every
    dependency import, ptft_ray does not (the editable install's finder is a .pth hook)."""
    d = tmp_path_factory.mktemp("cleanvenv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(d)], check=True)
    py = str(d / "bin" / "python")
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "deps.pth"), "w") as f:   # a path line: its own .pth files stay unread
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run([py, "-c", "import ray, torch, transformers; import ptft_ray"], cwd=str(d),
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert "No module named 'ptft_ray'" in probe.stderr, probe.stderr[-2000:]
    return py


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
def head(s3, clean_python):  # s3 first: the cluster's processes inherit its AWS variables
    temp_dir = tempfile.mkdtemp(prefix="/tmp/ptjob")  # short: Ray's socket paths have a length limit
    dash = _free_port()
    # the head's jobs run `python` from its PATH: the clean venv's, without ptft_ray; its own
    # token (never ~/.ray/auth_token): token auth is on for the head, the node and the client
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "PYTHONPATH": "",
           "PATH": os.path.dirname(clean_python) + os.pathsep + os.environ.get("PATH", ""),
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    for k in ("RAY_ADDRESS", "VIRTUAL_ENV", "RAY_AUTH_TOKEN_PATH"):
        env.pop(k, None)
    run = lambda *a, **k: _ray(*a, python=clean_python, **k)  # noqa: E731
    gcs = _free_port()
    ports = [f"--{name}={_free_port()}" for name in (
        "ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
        "runtime-env-agent-port", "metrics-export-port", "node-manager-port", "object-manager-port")]
    r = run("start", "--head", f"--port={gcs}", f"--dashboard-port={dash}", *ports,
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
        r = run("start", f"--address=127.0.0.1:{gcs}", "--num-cpus=1", *node_ports, "--disable-usage-stats",
                f"--temp-dir={node_dir}", env=env)
        assert r.returncode == 0, r.stderr[-2000:]   # the second node

        t0 = time.time()  # the job agent comes up a little after `ray start` returns
        while _ray("job", "list", "--address", address, env=env, timeout=60).returncode != 0:
            assert time.time() - t0 < 120, "the head's job API did not come up"
            time.sleep(2)
        yield address, env
    finally:
        _stop_own_cluster(marks)
        for d in marks[:1] + marks[2:]:
            shutil.rmtree(d, ignore_errors=True)


def _submit(address: str, env: dict, *entrypoint: str):
    """`ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- ENTRYPOINT` -> its
    output (asserted successful, the job's status read back)."""
    cmd = ["job", "submit", "--address", address, "--working-dir", ".", "--runtime-env", "jobs/runtime_env.yaml",
           "--", *entrypoint]
    for _ in range(20):  # "No available agent ... try again later" while the agent starts
        r = _ray(*cmd, env=env, timeout=600)
        if "No available agent" not in r.stdout + r.stderr:
            break
        time.sleep(3)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-12000:]
    job_id = re.search(r"raysubmit_\w+", out).group(0)
    status = _ray("job", "status", job_id, "--address", address, env=env)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", status.stdout + status.stderr)
    assert re.search(r"succeeded", plain, re.I) and not re.search(r"failed|stopped", plain, re.I), plain
    assert "No module named" not in out, out[-4000:]
    return out


def test_job_submit_smoke_jobs_from_a_head_without_ptft_ray(head, s3, tmp_path):
    """The contract's smoke jobs from a head whose Python lacks ptft_ray, on two nodes, with
    token auth: the pipeline (pretrain -> plan -> sweep -> evaluate -> report) and a sweep, each
    writing every artifact to S3 and reading no file of this machine's but the upload."""
    from ptft_ray import storage

    address, env = head
    storage.CACHE = tmp_path / "cache"
    # without the token the head refuses the submission
    wrong = _ray("job", "list", "--address", address, env={**env, "RAY_AUTH_TOKEN": secrets.token_hex(32)},
                 timeout=120)
    assert wrong.returncode != 0
    out = s3.uri("job", "run")
    log = _submit(address, env, "python", "jobs/pipeline.py", "--smoke-test", "--out", out)
    # the job's log ends with the report path; the artifacts are where it says
    assert f"report: {out}/report/index.html" in log
    assert "on 3 CPUs" in log                   # both nodes: 2 + 1 CPUs
    man = storage.read_json(f"{out}/manifest.json")
    assert set(man["stages"]) >= {"pretrain", "plan", "sweep_pretrained", "report"}
    assert man["stages"]["sweep_pretrained"]["path"] == f"{out}/sweep_pretrained"
    assert man["lineage"]["pretrained"]["corpus"] == f"{out}_inputs/corpus"   # generated beside the run
    assert storage.is_file(f"{out}/report/index.html")
    assert any(rel.endswith(".png") for rel, _, _ in storage.listing(f"{out}/report"))
    assert storage.read_json(f"{out}/pretrain/result.json")["steps"] == 20
    assert storage.is_file(f"{out}/sweep_pretrained/model/model.safetensors")
    assert storage.read_json(f"{out}/summary.json")["headline"]
    # the live progress lines reached the job log, one per line
    assert "[sweep " in log and "[lm] step" in log

    sweep = s3.uri("job", "sweep")
    log = _submit(address, env, "python", "jobs/finetune_sweep.py", "--smoke-test", "--out", sweep)
    res = storage.read_json(f"{sweep}/result.json")
    assert res["trials_completed"] == res["trials"] == 2 and res["trials_failed"] == 0
    assert storage.is_file(f"{sweep}/model/model.safetensors") and "[sweep " in log
