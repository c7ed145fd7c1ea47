"""cluster.yaml passes Ray's own cluster-config schema, offline, and stays closed to the world."""
import os

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


def test_uploads_exclude_data_results_venvs_and_git():
    assert {".git", ".venv", "data", "runs"} <= set(_load()["rsync_exclude"])


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
    assert res["gpus"] == 4 and res["nodes"] == 5 and res["live"] == head_only
    assert worker_resources(2, 1.0, True, 1.0, res) == {"CPU": 1.0, "GPU": 1.0}
    assert "waiting for the autoscaler to add gpu_worker nodes" in capsys.readouterr().out
    with pytest.raises(PtftError, match="cluster has 4 GPUs"):
        worker_resources(5, 1.0, True, 1.0, res)
