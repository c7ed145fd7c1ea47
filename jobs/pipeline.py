"""Thin entry point for `ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml --
python jobs/pipeline.py --config FILE --out DIR` (or locally): the same flags as
`ptft-ray pipeline`. `--smoke-test --out s3://BUCKET/PREFIX` needs nothing from the submitting
machine: it writes generated inputs beside the run and runs the debug pipeline."""
import sys

from ptft_ray.cli import main as cli_main


def main(argv=None) -> int:
    return cli_main(["pipeline", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
