"""Thin entry point for `ray job submit -- python jobs/finetune_sweep.py --config ... --pretrained CKPT
--data FILE` (or locally). Same flags as `ptft-ray sweep`."""
import sys

from ptft_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
