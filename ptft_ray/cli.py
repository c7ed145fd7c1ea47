"""`ptft-ray`: argparse -> library call. Bad input: one line on stderr, exit 2."""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

from .cli_args import SMOKE_PIPELINE, build_parser
from .errors import PtftError

# a budget (--budget) is the command's wall clock, from here
STARTED = time.time()


SMOKE = {"pretrain": "debug.yaml", "finetune": "debug_sweep.yaml", "sweep": "debug_sweep.yaml",
         "plan": "debug_sweep.yaml"}


def _package_path(config: str) -> str:
    """A jobs/configs file beside the package (a checkout, or the job's upload)."""
    return os.path.join(os.path.dirname(__file__), "..", "jobs", "configs", config)


def smoke_pipeline_sets(out: str) -> list[str]:
    """The debug pipeline on generated inputs stored under OUT_inputs: needs nothing from the
    submitting machine."""
    from .data.synthetic import smoke_inputs

    corpus, data = smoke_inputs(out)
    return [f"data={data}", "pretrain_set=" + json.dumps(["schedule.max_steps=20", f"data.path={corpus}"]),
            "budget=40s", "max_trials=2"]


def _cfg(args):
    from .config import load_config
    from .finetune import strategies  # noqa: F401 - registers every strategy's name (no torch)

    if getattr(args, "smoke_test", False) and not args.config:
        args.config = _package_path(SMOKE[args.cmd])
    overrides = list(args.overrides)
    for flag, key in (("data", "finetune.data"), ("text_column", "finetune.text_column"),
                      ("label_column", "finetune.label_column")):
        if getattr(args, flag, None):
            overrides.append(f"{key}={getattr(args, flag)}")
    return load_config(args.config, overrides)


def _plan(args, cfg) -> dict:
    """The plan for --budget on this command's clock: planning (Ray, the task scan, probes)
    spends part of the budget, so `plan` shows what `sweep --plan auto` would run."""
    from .planner import plan, spend

    p = plan(None, args.pretrained, args.budget, cfg, args.max_trials, args.arch_from, args.overrides,
             started=STARTED)
    return spend(p, time.time() - STARTED)


def _resumed_plan(args, cfg) -> dict | None:
    """sweep --resume --plan auto: the plan the sweep started under, where it has one."""
    from .finetune.sweep_dir import started_plan, sweep_path
    from .planner import parse_budget

    if not args.resume:
        return None
    where = sweep_path(cfg, args.out)
    p = started_plan(where, parse_budget(args.budget))
    if p is not None:
        print(f"[plan] resuming under the plan {where} started with", flush=True)
    return p


def _planned(args, cfg):
    """--plan auto: the planner's choices, then the user's own --set on top (they pin)."""
    from .planner import format_plan, planned_config

    if not args.budget:
        raise PtftError("--plan auto needs --budget (e.g. --budget 20m)")
    p = _resumed_plan(args, cfg) or _plan(args, cfg)
    print(format_plan(p), flush=True)
    return planned_config(cfg, p, args.overrides), p


def _print(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_pretrain(args):
    cfg = _cfg(args)
    from .train.pretrain import pretrain

    _print(pretrain(cfg, args.out, args.overwrite))


def cmd_data(args):
    from .data.prepare import prepare

    prepare(args.datasets, args.out, args.cache)


def cmd_finetune(args):
    cfg = _cfg(args)
    from .finetune.single import finetune

    _print(finetune(cfg, (args.pretrained or [None])[0], args.out, args.overwrite, arch_from=args.arch_from))


def cmd_sweep(args):
    cfg, plan = _cfg(args), None
    from .finetune.sweep import SweepInputs, sweep

    if args.plan:
        cfg, plan = _planned(args, cfg)
    elif args.budget:  # a budget without a plan: Tune's time budget on the configured sweep
        from .config import with_values
        from .planner import parse_budget

        cfg = with_values(cfg, {"sweep.time_budget_s": parse_budget(args.budget)})
    from .planner.forecast import for_sweep

    inputs = None if plan else SweepInputs.load(cfg, args.pretrained, args.arch_from)
    _print(sweep(cfg, args.pretrained, args.out, resume=args.resume, overwrite=args.overwrite,
                 arch_from=args.arch_from, plan=plan, inputs=inputs,
                 forecast=None if plan else for_sweep(cfg, inputs)))


def cmd_plan(args):
    cfg = _cfg(args)
    from .planner import format_plan

    p = _plan(args, cfg)
    print(json.dumps(p, indent=2, default=str) if args.json else format_plan(p))


def cmd_pipeline(args):
    from .pipeline import run_pipeline

    config, overrides = args.config, args.overrides
    if args.smoke_test:
        config, overrides = _package_path(SMOKE_PIPELINE), [*smoke_pipeline_sets(args.out), *args.overrides]
    return run_pipeline(config, args.out, overrides)


def cmd_evaluate(args):
    from .finetune.evaluate import evaluate_export
    from .finetune.predictor import scorer

    if args.on_ray and args.gpus:
        raise PtftError("--on-ray and --gpus: choose one (batch inference on CPUs, or one task on a GPU)")
    probs_fn = scorer(args.model, args.gpus)
    if args.on_ray:
        from .serve.batch import probs_on_ray
        from .train.checkpoint import read_meta

        labels = read_meta(args.model)["task_info"]["labels"]
        probs_fn = lambda texts: probs_on_ray(args.model, texts, labels)  # noqa: E731
    print(json.dumps(evaluate_export(args.model, args.data, args.split,
                                     with_baselines=args.split == "test", probs_fn=probs_fn)))


def cmd_report(args):
    from .report import report

    print(report(args.run_dir))


def cmd_predict(args):
    if bool(args.text) == bool(args.data):
        raise PtftError("predict: give either --text (one or more) or --data FILE --out OUT.parquet")
    if args.data:
        from .serve.batch import predict_file

        if not args.out:
            raise PtftError("predict --data needs --out OUT.parquet")
        print(json.dumps(predict_file(args.model, args.data, args.out, args.text_column, args.batch_size,
                                      args.actors, args.gpus_per_actor, args.overwrite)))
        return
    from .finetune.evaluate import predict

    for row in predict(args.model, args.text):
        print(json.dumps(row))


def cmd_serve(args):
    from .serve.app import serve_model

    serve_model(args.model, args.host, args.port, replicas=args.replicas, max_replicas=args.max_replicas,
                target_ongoing=args.target_ongoing_requests, max_batch_size=args.max_batch_size,
                batch_wait_ms=args.batch_wait_ms, max_chars=args.max_chars,
                cpus_per_replica=args.cpus_per_replica, gpus_per_replica=args.gpus_per_replica,
                max_body_bytes=args.max_body_bytes, auth_token_file=args.auth_token_file)


def cmd_explain(args):
    from .compress.explain import explain_texts

    if args.steps < 2:
        raise PtftError(f"--steps {args.steps}: integrated gradients needs at least 2 steps")
    for row in explain_texts(args.model, args.text, args.steps, args.gpus):
        print(json.dumps(row))


def _floats(flag: str, text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PtftError(f"{flag} {text!r}: a number or comma-separated numbers") from None


def cmd_distill(args):
    from .compress.distill import distill

    print(json.dumps(distill(args.teacher, args.student, args.data, args.out, args.unlabeled,
                             _floats("--temperature", args.temperature), _floats("--alpha", args.alpha),
                             args.overrides, args.overwrite)))


def cmd_quantize(args):
    from .compress.quantize import quantize

    print(json.dumps(quantize(args.model, args.out, args.method, args.overwrite)))


COMMANDS = {"pretrain": cmd_pretrain, "data": cmd_data, "finetune": cmd_finetune, "sweep": cmd_sweep,
            "plan": cmd_plan, "pipeline": cmd_pipeline, "evaluate": cmd_evaluate, "report": cmd_report,
            "predict": cmd_predict, "serve": cmd_serve, "explain": cmd_explain, "distill": cmd_distill,
            "quantize": cmd_quantize}


def run(args) -> int:
    # the config is loaded and checked before the heavy imports (torch, Ray: ~2 s), so a bad
    # key or value is refused at once
    COMMANDS[args.cmd](args)
    return 0


def guarded(fn, debug: bool = False) -> int:
    """Run fn; bad input becomes one line on stderr and exit 2 (traceback with --debug)."""
    debug = debug or bool(os.environ.get("PTFT_DEBUG"))
    try:
        result = fn()
        return result if isinstance(result, int) else 0
    except PtftError as e:
        if debug:
            traceback.print_exc()
        print(f"ptft-ray: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ptft-ray: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = {f: f in argv for f in ("--verbose", "--debug")}  # accepted anywhere: jobs/*.py put the command first
    argv = [a for a in argv if a not in flags]
    if flags["--verbose"]:
        os.environ["PTFT_VERBOSE"] = "1"
    args = build_parser().parse_args(argv)
    return guarded(lambda: run(args), args.debug or flags["--debug"])


if __name__ == "__main__":
    sys.exit(main())
