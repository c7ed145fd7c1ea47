"""pretrain -> plan -> sweep -> evaluate -> report, locally (starts its own Ray) or with
`ray job submit --working-dir . -- python jobs/pipeline.py --config FILE --out DIR`."""
import argparse
import os
import sys

from ptft_ray.cli import guarded
from ptft_ray.pipeline import run_pipeline

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="jobs/configs/pipeline_minilm_rt.yaml")
    ap.add_argument("--out", default="runs/pipeline")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="pipeline config key, e.g. --set budget=5m")
    ap.add_argument("--smoke-test", action="store_true", help="jobs/configs/pipeline_debug.yaml")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="bring back Ray's own console warnings")
    a = ap.parse_args()
    if a.verbose:
        os.environ["PTFT_VERBOSE"] = "1"
    if a.smoke_test:
        a.config = "jobs/configs/pipeline_debug.yaml"
    sys.exit(guarded(lambda: run_pipeline(a.config, a.out, a.overrides), a.debug))
