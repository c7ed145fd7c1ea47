"""Everything under s3:// on a real S3 API (moto on 127.0.0.1): pretrain -> kill -9 ->
the same command resumes -> sweep from the S3 checkpoint on S3 data -> export -> evaluate ->
report, each through the CLI with only the standard AWS environment, and nothing written to
a local `s3:` folder."""
import json
import os
import signal
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ptft_ray import storage

from conftest import read_trace, refusal_lines, restart_index, synthetic_docs, synthetic_reviews, wait_for_checkpoint

pytestmark = pytest.mark.slow


def _cli(args, cwd, env, log, wait=True, timeout=600):
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "ptft_ray.cli", *args], cwd=cwd, env=env, stdout=f,
                             stderr=subprocess.STDOUT, start_new_session=True)
    if wait:
        p.wait(timeout=timeout)
    return p


def test_pretrain_kill_resume_sweep_evaluate_report_all_on_s3(s3, debug_config, tmp_path):
    env = {**os.environ, **s3.env, "PTFT_CACHE": str(tmp_path / "cache")}
    storage.CACHE = tmp_path / "cache-test"
    # the inputs live on S3 only
    src = tmp_path / "src"
    src.mkdir()
    docs = synthetic_docs(600)
    pq.write_table(pa.table({"text": docs[:300]}), src / "part-0.parquet")
    pq.write_table(pa.table({"text": docs[300:]}), src / "part-1.parquet")
    texts, labels = synthetic_reviews(500)
    pq.write_table(pa.table({"text": texts, "label": labels}), src / "reviews.parquet")
    storage.upload(src / "part-0.parquet", s3.uri("data", "corpus", "part-0.parquet"))
    storage.upload(src / "part-1.parquet", s3.uri("data", "corpus", "part-1.parquet"))
    storage.upload(src / "reviews.parquet", s3.uri("data", "reviews.parquet"))
    work = tmp_path / "cwd"   # the commands run here: an `s3:` folder would appear here
    work.mkdir()

    pre, tr = s3.uri("runs", "pre"), tmp_path / "trace.jsonl"
    args = ["pretrain", "--config", debug_config, "--set", f"data.path={s3.uri('data', 'corpus')}",
            "--set", "schedule.max_steps=40", "--set", "checkpoint.every_steps=10", "--set", "train.eval_every=0",
            "--set", f"train.trace_file={tr}", "--out", pre]
    p = _cli(args, work, env, tmp_path / "first.log", wait=False)
    try:
        registered = wait_for_checkpoint(pre, 20, p, tmp_path / "first.log")
    finally:
        os.killpg(p.pid, signal.SIGKILL)   # the driver and the local Ray it started
        p.wait()
    p = _cli(args, work, env, tmp_path / "second.log")
    assert p.returncode == 0, (tmp_path / "second.log").read_text()[-3000:]
    res = storage.read_json(f"{pre}/result.json")
    assert res["resumed"] is True and res["steps"] == 40
    assert res["checkpoint"].startswith(f"{pre}/checkpoint_")
    rows = read_trace(tr)
    steps = [r["step"] for r in rows]
    restart = restart_index(rows)
    assert steps[restart] - 1 >= registered >= 20          # from its S3 checkpoint, not step 0
    assert steps[restart:] == list(range(steps[restart], 41))
    assert storage.is_file(f"{pre}/config.yaml") and storage.is_file(f"{pre}/metrics.jsonl")
    # the resume read its checkpoint through the node's cache: one download, no copy per rank
    fetched = [x.split("\t")[0] for x in (tmp_path / "cache" / "uri" / "fetched.log").read_text().splitlines()]
    resumed_from = [u for u in fetched if u.startswith(f"{pre}/checkpoint_")]
    assert len(resumed_from) == 1 and len(set(fetched)) == len(fetched), fetched

    sweep = s3.uri("runs", "sweep")
    data = s3.uri("data", "reviews.parquet")
    p = _cli(["sweep", "--config", os.path.join(os.path.dirname(debug_config), "debug_sweep.yaml"), "--pretrained", res["checkpoint"], "--data", data,
        "--set", "sweep.num_samples=1", "--set", "sweep.strategies=[lora]", "--set", "sweep.scheduler=none",
        "--set", "sweep.in_process=never", "--set", "finetune.max_examples=200", "--set", "sweep.epochs=[1]",
        "--out", sweep], work, env, tmp_path / "sweep.log")
    assert p.returncode == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    result = storage.read_json(f"{sweep}/result.json")
    assert result["export_path"] == f"{sweep}/model" and result["trials_completed"] == 1, result
    assert storage.is_file(f"{sweep}/model/model.safetensors") and storage.is_file(f"{sweep}/trials.csv")
    assert storage.listing(f"{sweep}/tune"), "Tune's experiment state is on S3"

    out = subprocess.run([sys.executable, "-m", "ptft_ray.cli", "evaluate", "--model", f"{sweep}/model",
                          "--data", data], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    ev = json.loads(out.stdout.strip().splitlines()[-1])
    assert ev["accuracy"] == pytest.approx(result["test_accuracy"]) and ev["n"] == result["test_n"]

    out = subprocess.run([sys.executable, "-m", "ptft_ray.cli", "report", sweep], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == f"{sweep}/report/index.html"
    assert "ptft_ray run report" in storage.read_text(f"{sweep}/report/index.html")

    assert not any(p.name.startswith("s3:") for p in work.rglob("*")), "a local s3: folder was written"
    assert not (tmp_path / "s3:").exists()


def test_bad_storage_uri_is_one_line_and_exit_2(s3, debug_config, tmp_path, tiny_corpus):
    env = {**os.environ, **s3.env, "PTFT_CACHE": str(tmp_path / "cache")}
    for args, names in (
            (["pretrain", "--config", debug_config, "--set", f"data.path={tiny_corpus}",
              "--out", "s3://no-such-bucket/run"], "s3://no-such-bucket/run"),
            (["evaluate", "--model", s3.uri("nothing", "here"), "--data", tiny_corpus], s3.uri("nothing", "here")),
            (["quantize", "--model", s3.uri("nothing", "here"), "--out", "s3://no-such-bucket/q"], "s3://no-such-bucket/q"),
            (["quantize", "--model", s3.uri("nothing", "here"), "--out", s3.uri("q")], s3.uri("nothing", "here")),
            (["distill", "--teacher", s3.uri("nothing", "here"), "--student", "layers:1", "--data", tiny_corpus,
              "--out", "s3://no-such-bucket/d"], "s3://no-such-bucket/d")):
        out = subprocess.run([sys.executable, "-m", "ptft_ray.cli", *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        lines = refusal_lines(out.stderr)
        assert out.returncode == 2 and len(lines) == 1 and names in lines[0], out.stderr[-2000:]


FETCH = "from ptft_ray import storage; import sys; print(storage.localize(sys.argv[1], 'model'))"


def test_one_download_per_node_however_many_ranks_ask(s3, tmp_path):
    """Eight processes of one node (the ranks of a run) localize the same s3:// model at once:
    one downloads it under the node's lock, all read the same complete copy."""
    src = tmp_path / "model"
    src.mkdir()
    for i in range(4):
        (src / f"shard-{i}.bin").write_bytes(os.urandom(2 ** 20))
    uri = s3.uri("dl", "model")
    storage.upload(src, uri)
    env = {**os.environ, **s3.env, "PTFT_CACHE": str(tmp_path / "node-cache")}
    procs = [subprocess.Popen([sys.executable, "-c", FETCH, uri], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(8)]
    paths = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(paths) == 1
    (got,) = paths
    assert sorted(os.listdir(got)) == [f"shard-{i}.bin" for i in range(4)]
    assert all((src / n).read_bytes() == open(os.path.join(got, n), "rb").read() for n in os.listdir(got))
    log = (tmp_path / "node-cache" / "uri" / "fetched.log").read_text().splitlines()
    assert len(log) == 1 and log[0].startswith(uri + "\t")


def test_an_object_key_that_climbs_out_of_its_directory_is_refused(s3, tmp_path):
    """S3 keys may contain '..': a model directory on a store holding `model/../../x` would be
    copied outside the node's cache. Refused in one line; nothing is written."""
    import boto3

    c = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1")
    c.put_object(Bucket=s3.bucket, Key="climb/model/meta.json", Body=b"{}")
    c.put_object(Bucket=s3.bucket, Key="climb/model/../../escaped.txt", Body=b"x")
    env = {**os.environ, **s3.env, "PTFT_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", "predict", "--model", s3.uri("climb", "model"),
                        "--text", "hi"], env=env, capture_output=True, text=True, timeout=120)
    lines = refusal_lines(r.stderr)
    assert r.returncode == 2 and len(lines) == 1 and "'../../escaped.txt'" in lines[0], r.stderr[-2000:]
    assert not list(tmp_path.rglob("escaped.txt"))
