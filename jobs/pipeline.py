"""pretrain -> plan -> sweep -> evaluate -> report, locally (starts its own Ray) or with
`ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- python jobs/pipeline.py
--config FILE --out DIR`. `--smoke-test --out s3://BUCKET/PREFIX` needs nothing from the
submitting machine: it writes generated inputs beside the run and runs the debug pipeline."""
import argparse
import json
import os
import sys

from ptft_ray.cli import guarded
from ptft_ray.pipeline import run_pipeline

SMOKE_CONFIG = "jobs/configs/pipeline_debug.yaml"


def smoke_overrides(out: str) -> list[str]:
    """The debug pipeline on generated inputs stored under OUT_inputs."""
    from ptft_ray.data.synthetic import smoke_inputs

    corpus, data = smoke_inputs(out)
    return [f"data={data}", "pretrain_set=" + json.dumps(["schedule.max_steps=20", f"data.path={corpus}"]),
            "budget=40s", "max_trials=2"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="jobs/configs/pipeline_minilm_rt.yaml")
    ap.add_argument("--out", default="runs/pipeline")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="pipeline config key, e.g. --set budget=5m")
    ap.add_argument("--smoke-test", action="store_true",
                    help=f"{SMOKE_CONFIG} on generated inputs written under OUT_inputs")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="bring back Ray's own console warnings")
    a = ap.parse_args(argv)
    if a.verbose:
        os.environ["PTFT_VERBOSE"] = "1"

    def go():
        config, overrides = a.config, a.overrides
        if a.smoke_test:
            config, overrides = SMOKE_CONFIG, [*smoke_overrides(a.out), *a.overrides]
        return run_pipeline(config, a.out, overrides)
    return guarded(go, a.debug)


if __name__ == "__main__":
    sys.exit(main())
