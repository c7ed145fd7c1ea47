"""Connecting to Ray and checking that a request can be scheduled before launching it.

On a 2-CPU machine a TorchTrainer with 2 workers x 1 CPU waits forever: Ray Data's read
and map tasks each ask for a whole CPU and none is left. `worker_resources` sizes workers
so at least DATA_CPUS stay free, and refuses a request that cannot run instead of hanging.
"""
from __future__ import annotations

import json
import logging
import os

from .errors import PtftError

DATA_CPUS = 1.0  # Ray Data's read / map tasks request 1 CPU each


DATA_PROGRESS_LOGGER = "ray.data._internal.progress"


def quiet_ray_logs() -> None:
    """Ray's own INFO lines (Data's "Dataset ... execution finished", Train's "Checkpoint
    successfully created", one per evaluation of every trial) off unless --verbose. Called in
    the driver and in every training worker / trial, whose loggers are their own."""
    import logging

    if not os.environ.get("PTFT_VERBOSE"):
        for name in ("ray.data", "ray.train", "ray.tune"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # "Progress bars disabled": we disabled them (init_ray), in every process that runs Data
        logging.getLogger(DATA_PROGRESS_LOGGER).setLevel(logging.ERROR)
        try:  # Train V2's "Reporting training result N: TrainingReport(...)": a logger named by file path
            from ray.train.v2._internal.execution import context

            context.logger.setLevel(logging.WARNING)
        except (ImportError, AttributeError):
            pass


def train_logging():
    """RunConfig(logging_config=...) for our TorchTrainers: Ray Train's controller and worker
    INFO lines ("Reporting training result", "Setting up process group", ...) stay in Ray's
    system log files, off the console, unless --verbose."""
    from ray.train import RunConfig

    if os.environ.get("PTFT_VERBOSE") or "logging_config" not in RunConfig.__dataclass_fields__:
        return {}
    from ray.train.v2.api.config import LoggingConfig

    return {"logging_config": LoggingConfig(log_level="WARNING")}


def _quiet_ray_data_console() -> None:
    """Ray Data's console handler at WARNING in every process of a Ray this command starts
    (its actors configure their own loggers from RAY_DATA_LOGGING_CONFIG); its ray-data.log
    file keeps every line. Set before ray.init so the local raylet and workers inherit it."""
    if os.environ.get("PTFT_VERBOSE") or os.environ.get("RAY_DATA_LOGGING_CONFIG"):
        return
    try:
        import copy
        import tempfile

        import yaml
        from ray.data._internal.logging import DEFAULT_CONFIG
    except ImportError:  # another Ray version: leave Ray Data's logging as it is
        return
    conf = copy.deepcopy(DEFAULT_CONFIG)
    conf["handlers"]["console"]["level"] = "WARNING"
    conf.setdefault("loggers", {})[DATA_PROGRESS_LOGGER] = {"level": "ERROR"}  # Data's own actors too
    fd, path = tempfile.mkstemp(prefix="ptft-ray-data-logging-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(conf, f)
    os.environ["RAY_DATA_LOGGING_CONFIG"] = path


def init_ray(address: str | None = None, num_cpus: int | None = None, forward: list[str] | tuple = ()):
    """Connect to a cluster (ray job submit sets RAY_ADDRESS) or start a local one; on a
    cluster, the credentials named in `forward` (and FORWARDED_VARS) reach every worker.

    The dashboard stays on: without it Train cannot free the placement groups of
    finished Tune trials (shared/notes/ray-2.60-facts.md)."""
    # our own progress lines stay readable in `ray job logs`; Ray Data's bars do not
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    if not os.environ.get("PTFT_VERBOSE"):
        # Tune warns (3 lines each time) whenever trials checkpoint at every evaluation, which
        # fine-tuning trials do: 25 times in one `make run`. --verbose brings it back.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        # Tune's newer console output prints a "Configuration for experiment" box, the results
        # path and a TensorBoard hint (11 lines per sweep) even at verbose=0; its older
        # reporter prints nothing at verbose=0. --verbose keeps the newer one.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    import ray
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    quiet_ray_logs()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        env = forwarded_env(forward)
        # Ray's "Connecting to existing Ray cluster" lines stay off the console unless --verbose:
        # a refusal at pre-flight is one line
        quiet = {} if os.environ.get("PTFT_VERBOSE") else {"logging_level": logging.WARNING}
        ray.init(address=address, log_to_driver=True, **quiet, **({"runtime_env": {"env_vars": env}} if env else {}))
    else:  # a local Ray: its processes inherit this environment
        _quiet_ray_data_console()
        local_ray_data_defaults(num_cpus or os.cpu_count() or 1)
        ray.init(num_cpus=num_cpus, include_dashboard=True, log_to_driver=True)
    return ray


def local_ray_data_defaults(cpus: int) -> None:
    """Two Ray Data Parquet defaults sized for a cluster, set smaller for a local Ray (call
    before it starts: its processes inherit the environment; a variable already set wins;
    a cluster keeps Ray's defaults): one footer-reader actor per 2 CPUs instead of 32, and
    16 MB read units instead of 128 MB (docs/decisions.md, "Local Ray Data defaults")."""
    os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", str(max(1, cpus // 2)))
    os.environ.setdefault("RAY_DATA_PARQUET_BIN_PACKING_BYTES", str(16 * 2 ** 20))


AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_DEFAULT_REGION", "AWS_REGION")
# what a worker needs to read what the driver reads: object stores, gated Hugging Face models,
# experiment trackers. Extended by the config key cluster.forward_env or PTFT_FORWARD_ENV (A,B).
FORWARDED_VARS = (*AWS_VARS, "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "GOOGLE_APPLICATION_CREDENTIALS",
                  "GOOGLE_CLOUD_PROJECT", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
                  "MLFLOW_TRACKING_PASSWORD")


def forwarded_env(extra: tuple[str, ...] | list[str] = ()) -> dict:
    """What a driver joining a running cluster passes to every worker it starts (runtime_env
    env_vars): the variables named in FORWARDED_VARS, `extra` and PTFT_FORWARD_ENV that are
    set here (values are never printed), and --verbose. Keys the submitted job's own
    runtime_env sets are left out (Ray refuses the same key twice, even with the same value)."""
    names = [*FORWARDED_VARS, *extra, *(n.strip() for n in os.environ.get("PTFT_FORWARD_ENV", "").split(","))]
    env = {k: os.environ[k] for k in names if k and os.environ.get(k)}
    if os.environ.get("PTFT_VERBOSE"):
        env["PTFT_VERBOSE"] = "1"
    try:
        job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
        taken = set((job.get("runtime_env") or {}).get("env_vars") or {})
    except (ValueError, AttributeError):
        taken = set()
    return {k: v for k, v in env.items() if k not in taken}


def autoscaler_types(path: str | None = None) -> dict:
    """Node types the autoscaler may start, from the cluster config the head runs with:
    {name: {"max_workers", "CPU", "GPU", "head"}}. `ray up` leaves that config on the head as
    ~/ray_bootstrap_config.yaml; PTFT_CLUSTER_CONFIG names another. {} on a fixed cluster."""
    import yaml

    path = path or os.environ.get("PTFT_CLUSTER_CONFIG") or os.path.expanduser("~/ray_bootstrap_config.yaml")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    head = cfg.get("head_node_type")
    return {name: {"max_workers": int(t.get("max_workers", 0)), "CPU": float((t.get("resources") or {}).get("CPU", 0)),
                   "GPU": float((t.get("resources") or {}).get("GPU", 0)), "head": name == head}
            for name, t in (cfg.get("available_node_types") or {}).items()}


def cluster_summary(types: dict | None = None) -> dict:
    """CPUs and GPUs in total and on the largest node: what is up now ("live"), raised to what
    the autoscaler's node types can reach (their max_workers x resources), so a request the
    autoscaler can satisfy waits for it instead of being refused."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = [n["Resources"].get("CPU", 0.0) for n in nodes]
    gpus = [n["Resources"].get("GPU", 0.0) for n in nodes]
    live = {"cpus": sum(cpus), "gpus": sum(gpus), "max_node_cpus": max(cpus, default=0.0),
            "max_node_gpus": max(gpus, default=0.0), "nodes": len(nodes)}
    return with_autoscaler(live, autoscaler_types() if types is None else types)


def with_autoscaler(live: dict, types: dict) -> dict:
    workers = {k: t for k, t in types.items() if not t["head"] and t["max_workers"] > 0}
    if not workers:
        return {**live, "live": live, "autoscaler": []}
    head = next((t for t in types.values() if t["head"]), {"CPU": 0.0, "GPU": 0.0})
    reach = {r: head[r] + sum(t["max_workers"] * t[r] for t in workers.values()) for r in ("CPU", "GPU")}
    return {"cpus": max(live["cpus"], reach["CPU"]), "gpus": max(live["gpus"], reach["GPU"]),
            "max_node_cpus": max([live["max_node_cpus"], *(t["CPU"] for t in workers.values())]),
            "max_node_gpus": max([live["max_node_gpus"], *(t["GPU"] for t in workers.values())]),
            "nodes": max(live["nodes"], 1 + sum(t["max_workers"] for t in workers.values())),
            "live": live, "autoscaler": sorted(workers)}


def worker_resources(num_workers: int, cpus_per_worker: float, use_gpu: bool,
                     gpus_per_worker: float, res: dict, copies: int = 1,
                     what: str = "scaling") -> dict:
    # the config keys a user changes: scaling.* for a run, sweep.*_per_trial for sweep trials
    n_key, c_key = ((f"{what}.num_workers", f"{what}.cpus_per_worker") if what == "scaling"
                    else (f"{what}.workers_per_trial", f"{what}.cpus_per_trial"))
    """Resources per worker for `copies` concurrent groups of `num_workers`; refuse the
    impossible with a message that says what to change."""
    free_for_workers = res["cpus"] - DATA_CPUS
    if cpus_per_worker <= 0:  # auto: share what Ray Data does not need, at most 1 CPU each
        cpus_per_worker = min(1.0, free_for_workers / (num_workers * copies))
        cpus_per_worker = max(0.0, int(cpus_per_worker * 100) / 100)
    need = num_workers * copies * cpus_per_worker
    if cpus_per_worker <= 0 or need > free_for_workers + 1e-9:
        raise PtftError(
            f"cannot schedule {copies} x {num_workers} worker(s) x {cpus_per_worker:g} CPU on a cluster "
            f"of {res['cpus']:g} CPUs: Ray Data needs {DATA_CPUS:g} CPU free or training hangs. "
            f"Lower {n_key} (or the concurrency), or set {c_key} "
            f"<= {max(free_for_workers, 0) / (num_workers * copies):.2f}")
    if cpus_per_worker > res["max_node_cpus"]:
        raise PtftError(f"{c_key}: {cpus_per_worker:g} CPUs per worker but the largest node has "
                        f"{res['max_node_cpus']:g}")
    out = {"CPU": cpus_per_worker}
    if use_gpu:
        if res["gpus"] < num_workers * copies * gpus_per_worker:
            raise PtftError(f"scaling.use_gpu: {num_workers * copies} worker(s) x {gpus_per_worker:g} GPU "
                            f"requested but the cluster has {res['gpus']:g} GPUs; lower {n_key} "
                            f"(or the concurrency) or set scaling.use_gpu=false")
        if gpus_per_worker > res["max_node_gpus"]:
            raise PtftError(f"scaling.gpus_per_worker={gpus_per_worker:g} but no node has more than "
                            f"{res['max_node_gpus']:g} GPUs")
        out["GPU"] = gpus_per_worker
    live = res.get("live")
    if live and res.get("autoscaler") and (need > live["cpus"] - DATA_CPUS + 1e-9 or (
            use_gpu and num_workers * copies * gpus_per_worker > live["gpus"] + 1e-9)):
        print(f"[cluster] {num_workers * copies} worker(s) x {out}: more than the {live['cpus']:g} CPUs / "
              f"{live['gpus']:g} GPUs up now; waiting for the autoscaler to add "
              f"{', '.join(res['autoscaler'])} nodes (up to {res['cpus']:g} CPUs / {res['gpus']:g} GPUs)",
              flush=True)
    return out


def shared_everywhere(p: str) -> bool:
    """Can a worker on any node read or write `p`? A URI, a path under a mount every node shares
    (PTFT_SHARED_MOUNTS, a list like PATH), or anything once PTFT_SHARED_STORAGE=1 says the
    whole filesystem is shared."""
    if not p or p == "none" or "://" in p or os.environ.get("PTFT_SHARED_STORAGE"):
        return True
    full = os.path.abspath(p)
    mounts = [os.path.abspath(m) for m in os.environ.get("PTFT_SHARED_MOUNTS", "").split(os.pathsep) if m]
    return any(full == m or full.startswith(m.rstrip("/") + "/") for m in mounts)


def model_paths(*values: str) -> list[str]:
    """The model inputs that are local directories (a Hugging Face hub id is no path here:
    each node downloads it), for check_reachable."""
    return [v for v in values if v and v != "none" and "://" not in v and os.path.exists(v)]


def check_reachable(paths: dict, num_nodes: int) -> None:
    """Pre-flight, before anything is spent: every path a worker reads or writes, by the flag or
    key that names it ({flag: path or [paths]}), must be readable from every node of a
    multi-node cluster; a node-local one is refused in one line naming the flag and the fix."""
    if num_nodes <= 1:
        return
    for flag, value in paths.items():
        for p in ([value] if isinstance(value, str) else value or []):
            if not shared_everywhere(p):
                raise PtftError(f"{flag}={p}: a local path, but the cluster has {num_nodes} nodes and workers on the "
                                f"others cannot read this machine's files; put it on shared storage (s3://..., "
                                f"gs://...) or name a mount every node shares in PTFT_SHARED_MOUNTS")


def storage_path(out_dir: str, num_nodes: int, flag: str = "--out") -> str:
    """A run directory as Ray Train / Tune want it (absolute local path or a URI), checked to be
    reachable from every node."""
    check_reachable({flag: out_dir}, num_nodes)
    return out_dir if "://" in out_dir else os.path.abspath(out_dir)
