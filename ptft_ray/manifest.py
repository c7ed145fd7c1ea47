"""RUN_DIR/manifest.json: what a pipeline ran, where it is, its lineage, versions and timings."""
from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import time

from . import storage
from .pipeline_config import PipelineConfig
from .train.checkpoint import write_json


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


class Manifest:
    """RUN_DIR/manifest.json, rewritten (atomically) after every stage."""

    def __init__(self, run: storage.Run, pc: PipelineConfig):
        import ray
        import torch

        self.run, self.path = run, run.local / "manifest.json"
        old = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.d = {"run_dir": run.where, "created": old.get("created", time.strftime("%Y-%m-%dT%H:%M:%S")),
                  "updated": None, "pipeline_config": dataclasses.asdict(pc), "git_commit": _git_commit(),
                  "versions": {"python": platform.python_version(), "ray": ray.__version__, "torch": torch.__version__},
                  "stages": old.get("stages", {}), "lineage": old.get("lineage", {})}

    def stage(self, name: str, path: str | None, status: str, wall_s: float, **extra) -> None:
        self.d["stages"][name] = {"status": status, "path": path, "wall_s": round(wall_s, 1), **extra}
        self.write()

    def write(self) -> None:
        self.d["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json(self.path, self.d)
        self.run.push("manifest.json")
