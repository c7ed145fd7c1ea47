"""The README's main job (kept for `ray job submit -- python jobs/main.py`): the pipeline
with jobs/configs/pipeline_minilm_rt.yaml (pretrain -> plan -> sweeps -> evaluate -> report)."""
import argparse
import os
import sys

from ptft_ray.cli import guarded
from ptft_ray.pipeline import run_pipeline

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/main")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--smoke-test", action="store_true", help="jobs/configs/pipeline_debug.yaml")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="bring back Ray's own console warnings")
    a = ap.parse_args()
    if a.verbose:
        os.environ["PTFT_VERBOSE"] = "1"
    config = "jobs/configs/pipeline_debug.yaml" if a.smoke_test else "jobs/configs/pipeline_minilm_rt.yaml"
    sys.exit(guarded(lambda: run_pipeline(config, a.out, a.overrides), a.debug))
