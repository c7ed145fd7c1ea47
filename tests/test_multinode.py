"""Several Ray nodes on this machine (Ray's own `ray.cluster_utils.Cluster`), the run
directory on a real S3 API (moto): pretraining with one worker on each of two worker nodes
loses one node mid-run, a replacement node joins, and the run finishes from its last
checkpoint at the exact step count with no sample trained twice; a sweep loses the node
running a trial and Tune runs that trial again. Only this test's nodes are stopped."""
import os
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ptft_ray import storage

from conftest import read_trace, synthetic_docs, synthetic_reviews, wait_for_checkpoint
from s3_server import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(s3, tmp_path):
    from ray.cluster_utils import Cluster

    # the head: 1 CPU for Ray Data and the trial drivers; two worker nodes of 1 CPU each
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "dashboard_port": free_port(), "include_dashboard": True,
        "object_store_memory": 300 * 2 ** 20})
    nodes = [c.add_node(num_cpus=1, resources={"worker_node": 1}) for _ in range(2)]
    c.wait_for_nodes()
    yield c, nodes
    c.shutdown()


def _actors(address, classes):
    from ray.util.state import list_actors

    return [a for a in list_actors(address=address, filters=[("state", "=", "ALIVE")], limit=1000)
            if a.class_name in classes]


def _cli(args, env, log):
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-m", "ptft_ray.cli", *args], env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _kill_node_of(c, nodes, address, *cls):
    """Remove a worker node hosting a live actor of one of the classes `cls`; -> its node id."""
    t0 = time.time()
    while time.time() - t0 < 120:
        on = {a.node_id for a in _actors(address, cls)}
        for n in list(nodes):
            if n.node_id in on:
                c.remove_node(n, allow_graceful=False)
                nodes.remove(n)
                return n.node_id
        time.sleep(0.5)
    raise AssertionError(f"no {cls} on a worker node")


def test_node_lost_mid_pretraining_and_mid_sweep(cluster, s3, debug_config, tmp_path):
    c, nodes = cluster
    env = {**os.environ, **s3.env, "RAY_ADDRESS": c.address, "PTFT_CACHE": str(tmp_path / "cache")}
    storage.CACHE = tmp_path / "cache-test"
    docs = synthetic_docs(900, seed=3)
    pq.write_table(pa.table({"text": docs}), tmp_path / "corpus.parquet")
    storage.upload(tmp_path / "corpus.parquet", s3.uri("mn", "corpus", "part-0.parquet"))
    run, tr = s3.uri("mn", "pre"), tmp_path / "trace.jsonl"
    p = _cli(["pretrain", "--config", debug_config, "--set", f"data.path={s3.uri('mn', 'corpus')}",
              "--set", "scaling.num_workers=2", "--set", "scaling.cpus_per_worker=1",
              "--set", "schedule.max_steps=60", "--set", "checkpoint.every_steps=10",
              "--set", "train.eval_every=0", "--set", f"train.trace_file={tr}", "--out", run],
             env, tmp_path / "pre.log")
    try:
        wait_for_checkpoint(run, 20, p, tmp_path / "pre.log")
        lost = _kill_node_of(c, nodes, c.address, "RayTrainWorker")
        nodes.append(c.add_node(num_cpus=1, resources={"worker_node": 1}))   # the replacement
        assert p.wait(timeout=600) == 0, (tmp_path / "pre.log").read_text()[-3000:]
    finally:
        if p.poll() is None:
            p.kill()
    res = storage.read_json(f"{run}/result.json")
    assert res["steps"] == 60 and res["num_workers"] == 2
    rows = read_trace(tr)
    assert {r["rank"] for r in rows} == {0, 1}
    first_pids = {r["pid"] for r in rows if r["step"] == 1}
    restarted = [r for r in rows if r["pid"] not in first_pids]
    assert restarted, "the worker group never restarted"
    resumed_from = min(r["step"] for r in restarted) - 1
    assert resumed_from >= 20 and resumed_from % 10 == 0             # from a checkpoint, not step 0
    # the last time each (step, rank) ran is what the final model trained on
    final = {(r["step"], r["rank"]): r["samples"] for r in rows}
    assert sorted({s for s, _ in final}) == list(range(1, 61))        # every step, exactly to 60
    trained = [x for v in final.values() for x in v]
    assert len(trained) == 60 * 2 * 8 and len(set(trained)) == len(trained)   # no sample twice
    print(f"node {lost[:8]} lost; resumed from step {resumed_from}")

    # a sweep: the node running a trial goes; Tune runs the trial again from its checkpoint
    texts, labels = synthetic_reviews(400, seed=5)
    pq.write_table(pa.table({"text": texts, "label": labels}), tmp_path / "reviews.parquet")
    storage.upload(tmp_path / "reviews.parquet", s3.uri("mn", "reviews.parquet"))
    sweep = s3.uri("mn", "sweep")
    p = _cli(["sweep", "--config", os.path.join(os.path.dirname(debug_config), "debug_sweep.yaml"),
              "--pretrained", res["checkpoint"], "--data", s3.uri("mn", "reviews.parquet"),
              "--set", "sweep.num_samples=2", "--set", "sweep.strategies=[full]", "--set", "sweep.scheduler=none",
              "--set", "sweep.cpus_per_trial=1", "--set", "finetune.max_examples=300", "--set", "sweep.epochs=[3]",
              "--set", "sweep.rescore_top_k=1", "--out", sweep], env, tmp_path / "sweep.log")
    try:
        t0 = time.time()
        while not storage.listing(f"{sweep}/tune") or not any(
                "checkpoint_" in rel for rel, _, _ in storage.listing(f"{sweep}/tune")):
            assert p.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
            assert time.time() - t0 < 300, "no trial checkpoint"
            time.sleep(0.5)
        _kill_node_of(c, nodes, c.address, "ImplicitFunc", "run_trial")
        nodes.append(c.add_node(num_cpus=1, resources={"worker_node": 1}))
        assert p.wait(timeout=600) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    finally:
        if p.poll() is None:
            p.kill()
    result = storage.read_json(f"{sweep}/result.json")
    assert result["trials"] == 2 and result["trials_completed"] == 2 and result["trials_failed"] == 0
    errors = [rel for rel, _, _ in storage.listing(f"{sweep}/tune") if rel.endswith("error.txt")]
    assert errors, "no trial was lost with its node (the kill missed)"
