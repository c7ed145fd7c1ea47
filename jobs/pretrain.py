"""Thin entry point for `ray job submit -- python jobs/pretrain.py --config ...` (or locally).

Same flags as `ptft-ray pretrain`; inside a job RAY_ADDRESS is set and the job's cluster
is used, otherwise a local Ray starts.
"""
import sys

from ptft_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
