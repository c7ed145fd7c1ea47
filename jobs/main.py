"""The README's main job, locally or with `ray job submit -- python jobs/main.py`:
pretrain on news text, then Rotten Tomatoes sweeps from the checkpoint and from scratch."""
import argparse
import sys

from ptft_ray.cli import guarded
from ptft_ray.pipeline import main_job

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/main")
    ap.add_argument("--pretrain-config", default="jobs/configs/pretrain_news.yaml")
    ap.add_argument("--sweep-config", default="jobs/configs/sweep_rt.yaml")
    ap.add_argument("--data", default="data/rotten_tomatoes.parquet")
    ap.add_argument("--set-pretrain", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--set-sweep", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--smoke-test", action="store_true",
                    help="tiny configs (debug.yaml, debug_sweep.yaml): minutes on 2 CPUs")
    ap.add_argument("--debug", action="store_true")
    a = ap.parse_args()
    if a.smoke_test:
        a.pretrain_config, a.sweep_config = "jobs/configs/debug.yaml", "jobs/configs/debug_sweep.yaml"
    sys.exit(guarded(lambda: main_job(a.out, a.pretrain_config, a.sweep_config, a.data,
                                      a.set_pretrain, a.set_sweep), a.debug))
