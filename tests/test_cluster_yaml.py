"""cluster.yaml passes Ray's own cluster-config schema, offline, and stays closed to the world."""
import os
import re

import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _load():
    with open(os.path.join(ROOT, "cluster.yaml")) as f:
        return yaml.safe_load(f)


def test_cluster_yaml_validates_against_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = _load()
    validate_config(prepare_config(cfg))  # raises on unknown keys or a bad shape
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["max_workers"] == 0
    gpu = [t for t in types.values() if t["node_config"]["InstanceType"].startswith(("g", "p"))]
    assert gpu and gpu[0]["max_workers"] >= 1 and cfg["idle_timeout_minutes"] > 0


def test_dashboard_is_not_opened_to_the_world():
    cfg = _load()
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in yaml.safe_dump(cfg)
    rules = cfg["provider"].get("security_group", {}).get("IpPermissions", [])
    assert not any(r.get("FromPort") == 8265 for r in rules)


def test_image_is_rays_published_one_pinned_to_the_ray_we_test():
    """ray-ml images stopped after 2.49: the base image is rayproject/ray, at our Ray version,
    and the setup commands install our package (and Ray's extras) on top."""
    import ray

    cfg = _load()
    image = cfg["docker"]["image"]
    assert re.fullmatch(rf"rayproject/ray:{re.escape(ray.__version__)}-py311(-gpu|-cu12\d)?", image), image
    setup = " ".join(cfg["setup_commands"])
    assert f"ray[default,train,tune,data,serve]=={ray.__version__}" in setup and "/home/ray/ptft_ray" in setup
    assert set(cfg["file_mounts"]) == {"/home/ray/ptft_ray"}


def _repo_files():
    import subprocess

    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()


def test_job_upload_keeps_every_package_file_and_drops_the_roots_data():
    """Ray's own working-dir matcher over jobs/runtime_env.yaml's excludes: every file of the
    ptft_ray package (ptft_ray/data/ too) and of jobs/ travels; the root's data/, runs/, .venv
    do not."""
    from pathlib import Path

    from ray._private.runtime_env.packaging import _get_excludes

    with open(os.path.join(ROOT, "jobs", "runtime_env.yaml")) as f:
        env = yaml.safe_load(f)
    excluded = _get_excludes(Path(ROOT), env["excludes"])
    kept = [f for f in _repo_files() if f.startswith(("ptft_ray/", "jobs/")) or f == "pyproject.toml"]
    assert any(f.startswith("ptft_ray/data/") for f in kept)
    assert [f for f in kept if excluded(Path(ROOT, f))] == []
    for f in ("data/news/part-0.parquet", "runs/main/result.json", ".venv/bin/python", ".git/HEAD"):
        assert excluded(Path(ROOT, f)), f


def test_node_sync_anchors_the_roots_folders():
    """rsync_exclude: the root's data/ and runs/ anchored ("/data"), never a bare "data" that
    would drop ptft_ray/data/ on every node."""
    ex = _load()["rsync_exclude"]
    assert {"/.git", "/.venv", "/data", "/runs"} <= set(ex)
    assert not {"data", "runs"} & set(ex)


def test_preflight_counts_the_autoscalers_gpu_nodes(tmp_path, capsys):
    """A CPU-only head with cluster.yaml's GPU type behind the autoscaler: a 2-GPU run waits
    for it (saying so) instead of being refused; more GPUs than the type can reach is refused."""
    import pytest

    from ptft_ray.cluster import autoscaler_types, with_autoscaler, worker_resources
    from ptft_ray.errors import PtftError

    types = autoscaler_types(os.path.join(ROOT, "cluster.yaml"))
    assert types["gpu_worker"] == {"max_workers": 4, "CPU": 8.0, "GPU": 1.0, "head": False}
    head_only = {"cpus": 8.0, "gpus": 0.0, "max_node_cpus": 8.0, "max_node_gpus": 0.0, "nodes": 1}
    with pytest.raises(PtftError, match="scaling.use_gpu"):   # a fixed cluster: refused as before
        worker_resources(2, 1.0, True, 1.0, with_autoscaler(head_only, {}))
    res = with_autoscaler(head_only, types)
    reach = sum(t["max_workers"] * t["GPU"] for t in types.values())
    assert reach >= 4 and res["gpus"] == reach and res["live"] == head_only
    assert res["nodes"] == 1 + sum(t["max_workers"] for t in types.values() if not t["head"])
    assert worker_resources(2, 1.0, True, 1.0, res) == {"CPU": 1.0, "GPU": 1.0}
    assert "waiting for the autoscaler to add gpu_worker" in capsys.readouterr().out
    with pytest.raises(PtftError, match=f"cluster has {reach:g} GPUs"):
        worker_resources(int(reach) + 1, 1.0, True, 1.0, res)


def test_what_workers_read_must_reach_every_node(tmp_path, monkeypatch):
    """The pre-flight rule (cluster.check_reachable): on one node anything goes; on several a
    local path is refused naming its flag, unless it lies under a mount named in
    PTFT_SHARED_MOUNTS (a prefix of whole folders) or PTFT_SHARED_STORAGE=1; URIs and hub ids
    (no such local path: each node downloads them) always pass."""
    import pytest

    from ptft_ray.cluster import check_reachable, model_paths
    from ptft_ray.errors import PtftError

    monkeypatch.delenv("PTFT_SHARED_MOUNTS", raising=False)
    monkeypatch.delenv("PTFT_SHARED_STORAGE", raising=False)
    check_reachable({"--out": "runs/x", "data.path": str(tmp_path)}, 1)
    with pytest.raises(PtftError, match=r"^--out=runs/x: a local path, but the cluster has 2 nodes"):
        check_reachable({"--out": "runs/x"}, 2)
    with pytest.raises(PtftError, match=r"^--pretrained=/ck: "):
        check_reachable({"--pretrained": ["s3://b/ck", "/ck"]}, 2)
    check_reachable({"--out": "s3://b/x", "--pretrained": ["none", ""], "model.hf": model_paths("org/name")}, 2)
    assert model_paths("org/name", "none", "s3://b/m", str(tmp_path)) == [str(tmp_path)]
    monkeypatch.setenv("PTFT_SHARED_MOUNTS", os.pathsep.join(["/mnt/shared", str(tmp_path)]))
    check_reachable({"data.path": str(tmp_path / "corpus"), "--out": "/mnt/shared/run"}, 3)
    with pytest.raises(PtftError, match="data.path="):
        check_reachable({"data.path": f"{tmp_path}-other/corpus"}, 3)   # a prefix of the name is no mount
    monkeypatch.setenv("PTFT_SHARED_STORAGE", "1")
    check_reachable({"--out": "runs/x"}, 2)
