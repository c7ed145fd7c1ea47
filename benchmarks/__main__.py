"""`make bench` / `python -m benchmarks`: every benchmark in one process tree, each in its own
child process (its own local Ray), then BENCHMARKS.md from benchmarks/results/*.json.

    python -m benchmarks                 # all
    python -m benchmarks throughput      # some of: throughput profile_ops profile_ddp data_pipeline calibrate sweeps planner_accept hf_rt planner_accept_hf quality compress peer serve_load memory_plan corpus_scale feed stopping forecast forecast_variants blend small_corpus tfidf_solver
    python -m benchmarks gpu_check       # on a machine with a GPU only (not part of `all`)
"""
from __future__ import annotations

import subprocess
import sys
import time

from .common import ROOT

ORDER = ["throughput", "profile_ops", "profile_ddp", "data_pipeline", "calibrate", "sweeps", "planner_accept", "hf_rt",
         "planner_accept_hf", "quality", "compress", "peer", "serve_load", "memory_plan", "corpus_scale", "feed",
         "stopping", "forecast", "forecast_variants", "blend", "small_corpus", "tfidf_solver"]
# entries that run a module with arguments: the planner's acceptance on MiniLM (~1 h 45 min)
ARGS = {"planner_accept_hf": ["planner_accept", "--family", "hf_encoder"]}
ON_REQUEST = ["gpu_check"]  # needs a CUDA device: run by name where one is lent


def main(argv: list[str]) -> int:
    names = argv or ORDER
    for name in names:
        if name not in ORDER + ON_REQUEST:
            print(f"unknown benchmark {name!r} (known: {', '.join(ORDER + ON_REQUEST)})", file=sys.stderr)
            return 2
    for name in names:
        t0 = time.time()
        print(f"== benchmarks.{name}", flush=True)
        module, *args = ARGS.get(name, [name])
        r = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args], cwd=ROOT)
        if r.returncode:
            print(f"benchmarks.{name} failed (exit {r.returncode})", file=sys.stderr)
            return r.returncode
        if name == "calibrate":  # the planner's rules follow the table
            subprocess.run([sys.executable, "benchmarks/derive_rules.py"], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
        print(f"== benchmarks.{name}: {time.time() - t0:.0f} s", flush=True)
    from .summary import write

    print(write())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
