"""Pretraining driver: checks -> tokenizer -> Ray Data corpus -> TorchTrainer -> result.json.

Run directory layout (`--out DIR`, default run.out_dir):
    DIR/config.yaml                   the resolved config
    DIR/tokenizer.json                built once; a re-run reuses it
    DIR/checkpoint_*/                 Ray Train checkpoints (num_to_keep newest)
    DIR/checkpoint_manager_snapshot.json  lets a re-run of the same command resume
    DIR/metrics.jsonl                 the loss / perplexity / tokens-per-s history
    DIR/result.json                   final metrics and the latest checkpoint's path
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import yaml

from .. import storage
from .. import tokenizer as toks
from ..cluster import check_reachable, cluster_summary, init_ray, model_paths, storage_path
from ..config import Config, lm_head_settings
from ..data import sources
from ..data.corpus import build_datasets, check_corpus, first_train_counts, unigram_perplexity
from ..errors import PtftError
from ..mlflow_log import log_pretrain
from . import checkpoint as ckpt
from .launch import Workers, fit
from .memory import device_memory, resolve, shape_for
from .spec import RunSpec, Steps
from .tasks import LMSpec

# keys whose change makes an existing run's checkpoints unusable
_INCOMPATIBLE = ("model", "data.tokenizer", "data.vocab_size", "data.seq_len", "data.path", "scaling.strategy")


def _section(d: dict, key: str):
    for part in key.split("."):
        d = d[part]
    return d


def prepare_run_dir(cfg: Config, run: storage.Run, overwrite: bool) -> bool:
    """Create or reuse the run directory; True when it holds a run to resume."""
    run.pull("config.yaml", "tokenizer.json")
    out = run.local
    old = out / "config.yaml"
    if old.is_file() and overwrite:
        run.clear()
    elif old.is_file():
        prev = yaml.safe_load(old.read_text())
        diff = [k for k in _INCOMPATIBLE if _section(prev, k) != _section(cfg.to_dict(), k)]
        if diff:
            raise PtftError(f"{run.where} holds a run with different {', '.join(diff)}; its checkpoints "
                            f"would not fit. Use another --out, or --overwrite to replace it")
        return True
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    run.push("config.yaml")
    return False


def get_tokenizer(cfg: Config, out: Path, files: list[str], fmt: str):
    saved = out / "tokenizer.json"
    if saved.is_file():
        return toks.load(out)
    if cfg.model.hf:  # the model's own tokenizer, unchanged
        tok = toks.HFTokenizer.from_dir(storage.localize(cfg.model.hf, "model.hf"))
        toks.save(tok, out)
        return tok
    column = "text" if fmt == "text" else cfg.data.text_column
    sample = sources.sample_texts(files, fmt, column, cfg.data.tokenizer_sample_docs) \
        if cfg.data.tokenizer == "bpe" else []
    tok = toks.build(cfg.data.tokenizer, sample, cfg.data.vocab_size)
    toks.save(tok, out)
    return tok


def feed_check(cfg: Config, tok, files: list[str], fmt: str, shape, workers: Workers, res: dict) -> dict:
    """Whether Ray Data can tokenize the corpus as fast as the GPUs are expected to train
    (data/feed.py): the rate timed on the corpus's first documents with this tokenizer."""
    from ..data import feed

    column = "text" if fmt == "text" else cfg.data.text_column
    per_cpu = feed.rate_per_cpu(sources.sample_texts(files, fmt, column, 256), tok, cfg.data.seq_len + 1)
    gpus = workers.num * cfg.scaling.gpus_per_worker if workers.use_gpu else 0.0
    free = res["cpus"] - workers.num * workers.per_worker.get("CPU", 0.0)
    flops = feed.flops_per_token(shape.params, shape.layers, shape.hidden, cfg.data.seq_len)
    return feed.plan(per_cpu, flops, gpus, free, feed.gpu_tflops(cfg.scaling.gpu_tflops) if gpus else None)


def check_hf(cfg: Config) -> tuple[Config, str]:
    """Continued pretraining of a Hugging Face model: its path made absolute (workers load it),
    its objective from its kind (encoder: masked LM, decoder: causal LM), blocks that fit."""
    from ..models.hf import hf_config, hf_kind, max_positions

    path = cfg.model.hf
    if Path(path).is_dir():
        path = str(Path(path).resolve())
    elif "://" not in path and (path.startswith((".", "/")) or path.count("/") != 1):
        raise PtftError(f"model.hf={path}: no such directory (a local Hugging Face model directory, "
                        f"or a hub id such as org/name where the network allows)")
    conf = hf_config(storage.localize(path, "model.hf"))  # workers fetch a URI on their own node
    kind = hf_kind(conf)
    if cfg.data.seq_len + 1 > max_positions(conf):
        raise PtftError(f"data.seq_len={cfg.data.seq_len}: blocks of seq_len + 1 tokens are over the "
                        f"{max_positions(conf)} positions of model.hf={cfg.model.hf}")
    check_head(cfg, conf)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, hf=path))
    return cfg, "mlm" if kind == "encoder" else "clm"


def check_head(cfg: Config, conf) -> None:
    """Settings that train the LM head its own way need a head with parameters of its own: a
    head tied to the embeddings is refused here, before Ray starts (the model built on the meta
    device, no weights read), not in the worker."""
    keys = lm_head_settings(cfg)
    if not keys:
        return
    from ..models.hf import HFLM

    if not HFLM.skeleton(conf).head_only_parameters():
        raise PtftError(f"{keys[0]}: model.hf={cfg.model.hf} has no LM head of its own "
                        f"(its output layer is tied to the embeddings)")


def export_hf(checkpoint: str, dest: Path) -> str:
    """Our GPT's final checkpoint as a GPT-2 directory (transformers loads it alone), replaced
    whole: written beside, then renamed into place."""
    from ..models.convert import save_hf

    lm, tok, c = ckpt.load_pretrained(storage.localize(checkpoint, "checkpoint"))
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_hf(lm, tok, c.model, tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return str(dest)


def pretrain(cfg: Config, out_dir: str | None = None, overwrite: bool = False) -> dict:
    run = storage.Run(out_dir or cfg.run.out_dir)
    out = run.local  # where the driver writes; pushed to the store (if a URI) as it goes
    objective = "clm"
    if cfg.model.hf:
        cfg, objective = check_hf(cfg)
    files, fmt = check_corpus(cfg.data)          # before Ray starts
    init_ray(forward=cfg.cluster.forward_env)
    res = cluster_summary()
    # workers read the corpus and the model, and write the run: every node must reach them
    check_reachable({"--out": run.where, "data.path": cfg.data.path, "model.hf": model_paths(cfg.model.hf)},
                    res["nodes"])
    workers = Workers.of(cfg, res)
    vocab = cfg.model.vocab_size or (cfg.data.vocab_size if cfg.data.tokenizer == "bpe" else 258)
    shape = shape_for(cfg.model, vocab)
    parallel, cfg, _ = resolve(cfg, shape, workers.num, cfg.data.seq_len, device_memory(cfg.scaling, res))
    resuming = prepare_run_dir(cfg, run, overwrite)  # only once the run can be scheduled
    tok = get_tokenizer(cfg, out, files, fmt)
    run.push("tokenizer.json")
    if cfg.model.vocab_size and cfg.model.vocab_size != tok.vocab_size:
        raise PtftError(f"model.vocab_size={cfg.model.vocab_size} but the tokenizer has "
                        f"{tok.vocab_size} tokens (leave model.vocab_size at 0)")
    feed = feed_check(cfg, tok, files, fmt, shape, workers, res)
    print(f"[pretrain] {feed['line']}", flush=True)
    where = storage_path(run.where, res["nodes"])  # the run dir as Ray Train sees it
    train_ds, val_ds, val_counts = build_datasets(cfg.data, tok, files, fmt)
    spec = RunSpec(config=cfg, tokenizer=tok.to_json(), run_dir=where, parallel=parallel,
                   task=LMSpec(objective, tok.vocab_size, tok.pad_id, tok.eot_id, getattr(tok, "mask_id", None),
                               tuple(getattr(tok, "special_ids", []))),
                   steps=Steps(cfg.schedule.max_steps, cfg.train.eval_every),
                   lineage={"corpus": cfg.data.path, "config_hash": cfg.hash()})
    print(f"[pretrain] {'resuming' if resuming else 'starting'} {run.where} on {res['cpus']:g} CPUs / "
          f"{res['gpus']:g} GPUs: {workers.num} worker(s) x {workers.per_worker}", flush=True)
    t0 = time.time()
    result = fit(spec, {"train": train_ds, "val": val_ds}, workers, where, ordered=True)
    final = result.return_value or {}
    history = final.pop("history", [])
    with open(out / "metrics.jsonl", "w") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")
    summary = {
        **{k: final.get(k) for k in ("train_loss", "val_loss", "val_perplexity", "tokens_per_s")},
        "steps": final.get("step"), "tokens": final.get("tokens"),
        "checkpoint": storage.to_uri(result.checkpoint.filesystem, result.checkpoint.path)
        if result.checkpoint else None,
        "unigram_val_perplexity": unigram_level(cfg, tok, files, fmt, val_counts, objective),
        "vocab_size": tok.vocab_size, "num_workers": workers.num, "wall_s": time.time() - t0,
        "objective": objective, **({"hf": cfg.model.hf} if cfg.model.hf else {}),
        "resumed": resuming, "feed": feed,
    }
    if summary["checkpoint"] and not cfg.model.hf and cfg.model.arch == "gpt" and cfg.data.tokenizer == "bpe":
        export_hf(summary["checkpoint"], out / "hf_model")
        summary["hf_model"] = run.uri("hf_model")
    ckpt.write_json(out / "result.json", summary)
    run.publish()  # to the store when --out is a URI: metrics.jsonl, hf_model, then result.json
    # after result.json: a tracking server that refuses the run loses no training
    summary["mlflow_run_id"] = log_pretrain(cfg.run.mlflow_uri, cfg.run.name, cfg.to_dict(), history, summary)
    return summary


def unigram_level(cfg: Config, tok, files: list[str], fmt: str, val_counts, objective: str) -> float:
    """The unigram model's validation perplexity, fitted on the first training blocks (as many
    as validation has, x 8): a masked LM never scores special tokens, so they are left out."""
    ignore = set(getattr(tok, "special_ids", [])) | {tok.pad_id} if objective == "mlm" else ()
    train = first_train_counts(cfg.data, tok, files, fmt, 8 * cfg.data.max_val_blocks)
    return unigram_perplexity(train, val_counts, ignore)
