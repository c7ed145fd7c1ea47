"""Thin entry point for `ray job submit -- python jobs/finetune_sweep.py --config ... --pretrained CKPT
--data FILE` (or locally). Same flags as `ptft-ray sweep`. `--smoke-test --out s3://BUCKET/PREFIX`
needs nothing from the submitting machine: a 2-trial debug sweep from random initialisation on a
generated task written under OUT_inputs."""
import sys

from ptft_ray.cli import guarded, main

SMOKE = ["--config", "jobs/configs/debug_sweep.yaml", "--pretrained", "none", "--set", "sweep.num_samples=2",
         "--set", "sweep.strategies=[full]", "--set", "sweep.scheduler=none", "--set", "finetune.max_examples=300",
         "--set", "sweep.epochs=[1]", "--set", "sweep.rescore_top_k=1"]


def smoke_args(argv: list[str]) -> list[str]:
    """The smoke sweep's flags, its --data generated beside --out (the user's flags win)."""
    from ptft_ray.data.synthetic import smoke_inputs

    out = argv[argv.index("--out") + 1] if "--out" in argv[:-1] else "runs/sweep_smoke"
    _, data = smoke_inputs(out)
    return [*SMOKE, "--data", data, "--out", out, *argv]


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--smoke-test" in argv:
        argv.remove("--smoke-test")
        sys.exit(guarded(lambda: main(["sweep", *smoke_args(argv)])))
    sys.exit(main(["sweep", *argv]))
