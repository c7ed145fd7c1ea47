"""What a fine-tuning run needs, shared by `ptft-ray finetune` and every sweep trial.

A *source* is where the backbone comes from: a pretrained checkpoint of ours, a Hugging
Face model directory (config.json + safetensors + tokenizer.json: fine-tuned as it is), or
`none` (random initialisation). `none` borrows the architecture and tokenizer of the first
real source given beside it, so the from-scratch baseline differs only in its weights.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import storage
from .. import tokenizer as toks
from ..config import Config, DataConfig, ModelConfig, lm_head_settings, with_sections
from ..data.tasks import TaskData, to_ray
from ..errors import PtftError
from ..models.hf import is_hf_dir
from ..train import checkpoint as ckpt
from ..train.spec import Keep, Parallel, RunSpec, Steps
from .task import ClsSpec


@dataclass
class Source:
    key: str                    # "none" or the checkpoint path as given
    path: str | None            # None = random initialisation
    tokenizer_json: str
    model: ModelConfig          # the backbone's model section (checked when its checkpoint was read)
    data: DataConfig | None     # its data section (tokenizer, seq_len), None for scratch
    lineage: dict               # where it came from: path, step, config hash, corpus
    max_positions: int = 10 ** 6  # the longest sequence the backbone takes


def _throughput(meta: dict, workers: int) -> float | None:
    """Training tokens/s per worker measured during the checkpoint's own pretraining."""
    rates = [h["tokens_per_s"] for h in meta.get("history", []) if h.get("tokens_per_s")]
    return sorted(rates)[len(rates) // 2] / workers if rates else None


def cheapest_trial_s(cfg: Config, sources: list[Source], task: TaskData, startup_s: float = 5.0) -> float | None:
    """Seconds for the sweep's cheapest trial (one worker): its tokens / the fastest per-worker
    throughput the checkpoints carry + start-up (fine-tuning a classifier costs about what our
    GPT's LM step does per token, or less). A Hugging Face checkpoint's carried rate is of its
    masked-LM pretraining, ~0.6x its fine-tuning rate (MiniLM): it would refuse budgets that
    fit, so it gives no estimate."""
    rates = [s.lineage.get("tokens_per_s_per_worker") for s in sources if not s.model.hf]
    rates = [r for r in rates if r]
    if not rates:
        return None
    ft, accum, rows = cfg.finetune, cfg.train.grad_accum, len(task.splits["train"])
    tokens = min(Steps.from_epochs(rows, bs * accum, ep, ft.evals_per_epoch, where=task.path).max_steps
                 * bs * accum * ft.max_len for bs in cfg.sweep.batch_sizes for ep in cfg.sweep.epochs)
    return startup_s + tokens / max(rates)


def check_loadable(path: str, pre: Config, meta: dict) -> None:
    """Fail on the driver, before any trial, if the checkpoint cannot be loaded."""
    from ..models import build_lm

    if pre.model.hf:  # a Hugging Face directory: its config and tokenizer must read
        from ..models.hf import hf_config

        hf_config(path)
        toks.load(path)
        return
    tok = toks.load(path)
    if tok.vocab_size != meta["vocab_size"]:
        raise PtftError(f"{path}: tokenizer has {tok.vocab_size} tokens but the weights were "
                        f"trained for {meta['vocab_size']} (mismatched vocabulary)")
    ckpt.load_weights(build_lm(pre.model, meta["vocab_size"]), path)


def resolve_sources(pretrained: list[str], cfg: Config, arch_from: str | None = None) -> list[Source]:
    """arch_from: a checkpoint whose architecture and tokenizer `none` uses when no real
    checkpoint is in the list (the from-scratch baseline of another sweep)."""
    if lm_head_settings(cfg):  # fine-tuning strategies choose what trains, and at which LR
        raise PtftError(f"config key '{lm_head_settings(cfg)[0]}': applies to language-model pretraining only")
    given = [p for p in pretrained if p] or ([cfg.finetune.init_from] if cfg.finetune.init_from else [])
    if not given:
        raise PtftError("no pretrained checkpoint given (--pretrained DIR, or --pretrained none)")
    if len(set(given)) != len(given):
        raise PtftError(f"--pretrained lists a checkpoint twice: {given}")
    real: list[Source] = []
    for p in [*given, *([arch_from] if arch_from else [])]:
        if p.lower() == "none" or any(s.key == p for s in real):
            continue
        local = storage.localize(p, "--pretrained")   # a URI is fetched once into this node's cache
        where = p if storage.is_uri(p) else str(Path(p).resolve())  # what workers load (and fetch)
        if not Path(local, ckpt.META).is_file() and is_hf_dir(local):
            real.append(hf_source(local, where, key=p))
            continue
        pre, meta = ckpt.read_config(local, "lm", f"--pretrained {p}: not a pretrained language-model checkpoint", p)
        check_loadable(local, pre, meta)
        if pre.model.hf:
            from ..models.hf import hf_config, max_positions

            limit = max_positions(hf_config(local))
        else:
            limit = pre.model.max_seq_len if pre.model.arch == "gpt" else 10 ** 6
        real.append(Source(p, where, toks.load(local).to_json(), pre.model, pre.data,
                           {"path": where, "step": meta["state"]["step"],
                            "tokens_per_s_per_worker": _throughput(meta, pre.scaling.num_workers),
                            "config_hash": pre.hash(),
                            "corpus": pre.data.path,
                            **({"hf": pre.model.hf} if pre.model.hf else {})}, limit))
    check_model_overrides(cfg, real)
    for s in real:
        if cfg.finetune.max_len > s.max_positions:
            raise PtftError(f"finetune.max_len={cfg.finetune.max_len} is over the {s.max_positions} "
                            f"positions of checkpoint {s.key}")
    out = []
    for p in given:
        if p.lower() != "none":
            out.append(next(s for s in real if s.key == p))
        elif real:
            out.append(Source("none", None, real[0].tokenizer_json, real[0].model, real[0].data,
                              {"path": None, "architecture_from": real[0].lineage["path"]}))
        else:  # scratch alone: the config's model, a byte tokenizer (needs no training)
            out.append(Source("none", None, toks.ByteTokenizer().to_json(), cfg.model,
                              None, {"path": None}))
    return out


# model keys a fine-tune from a checkpoint can honour: the rest is the checkpoint's architecture
APPLIED_MODEL_KEYS = ("dropout",)


def user_model_keys(cfg: Config) -> dict:
    """The model settings the user made: those that differ from the defaults (a value set to
    its default cannot be told apart, so model.dropout=0 keeps the checkpoint's dropout)."""
    default = ModelConfig()
    return {f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(ModelConfig)
            if getattr(cfg.model, f.name) != getattr(default, f.name)}


def check_model_overrides(cfg: Config, real: list[Source]) -> None:
    """A model.* setting that differs from the defaults is the user's: refuse it where the
    checkpoint's architecture decides (rather than drop it), apply model.dropout."""
    user = user_model_keys(cfg)
    for s in real:
        for k, v in user.items():
            if k in APPLIED_MODEL_KEYS and not s.model.hf:
                continue
            if getattr(s.model, k) != v:
                how = ("a Hugging Face model takes it from its own config.json" if s.model.hf
                       else f"only model.{', model.'.join(APPLIED_MODEL_KEYS)} can be changed")
                raise PtftError(f"model.{k}={v!r}: fine-tuning from {s.key} uses that checkpoint's architecture "
                                f"({k}={getattr(s.model, k)!r}); {how}")


def hf_source(local: str, path: str | None = None, key: str | None = None) -> Source:
    """A Hugging Face model directory, fine-tuned as it is (no continued pretraining).
    local: where it is read here; path: what workers load (a URI they fetch themselves)."""
    from ..models.hf import hf_config, hf_kind, max_positions

    conf = hf_config(local)
    path = path or str(Path(local).resolve())
    return Source(key or local, path, toks.HFTokenizer.from_dir(local).to_json(), ModelConfig(hf=path), None,
                  {"path": path, "hf": path, "model_type": conf.model_type, "kind": hf_kind(conf),
                   "tokens_per_s_per_worker": None}, max_positions(conf))


def datasets_for(task: TaskData, source: Source, max_len: int) -> dict:
    tok = toks.from_json(source.tokenizer_json)
    return {s: to_ray(task, tok, max_len, s) for s in ("train", "val")}


def source_shape(source: Source, n_labels: int):
    """The memory plan's view of a backbone with a classification head (no vocabulary logits)."""
    from ..train.memory import shape_for

    shape = shape_for(source.model, toks.from_json(source.tokenizer_json).vocab_size)
    return dataclasses.replace(shape, vocab=n_labels)


def largest_shape(sources: list[Source], n_labels: int):
    """The memory plan's model: the largest of the real backbones (any, where all are scratch)."""
    real = [s for s in sources if s.path] or sources
    return max((source_shape(s, n_labels) for s in real), key=lambda m: m.params)


def run_spec(cfg: Config, source: Source, task: TaskData, world: int = 1, parallel: Parallel | None = None) -> RunSpec:
    """What travels to the loop: the config with the backbone's model section, the task's
    labels and token ids, and the step arithmetic derived from the data size."""
    tok = toks.from_json(source.tokenizer_json)
    model = source.model
    if source.path and not model.hf:  # what check_model_overrides lets through
        model = dataclasses.replace(model, **{k: v for k, v in user_model_keys(cfg).items() if k in APPLIED_MODEL_KEYS})
    resolved = with_sections(cfg, model=model, data=source.data or cfg.data,
                             finetune=dataclasses.replace(cfg.finetune, init_from=source.path or "none"))
    per_step = cfg.train.batch_size * cfg.train.grad_accum * world
    steps = Steps.from_epochs(len(task.splits["train"]), per_step, cfg.finetune.epochs,
                              cfg.finetune.evals_per_epoch, where=task.path)
    info = ClsSpec(labels=tuple(task.label_names), task_type=task.task_type, vocab_size=tok.vocab_size,
                   pad_id=tok.pad_id, eot_id=tok.eot_id, train_examples=int(len(task.splits["train"])),
                   class_balance=task.balance("train"))
    return RunSpec(config=resolved, task=info, tokenizer=source.tokenizer_json, steps=steps,
                   keep=Keep(best_only=True, metric=cfg.sweep.metric, mode=cfg.sweep.mode),
                   init_from=source.path, lineage={"pretrained": source.lineage, "data": task.path},
                   parallel=parallel or Parallel())
