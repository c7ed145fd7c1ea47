"""The README's main job (kept for `ray job submit -- python jobs/main.py`): jobs/pipeline.py
with jobs/configs/pipeline_minilm_rt.yaml and runs/main (pretrain -> plan -> sweeps ->
evaluate -> report); the same flags."""
import sys

from pipeline import main

if __name__ == "__main__":
    sys.exit(main(["--config", "jobs/configs/pipeline_minilm_rt.yaml", "--out", "runs/main", *sys.argv[1:]]))
