"""Config: dataclasses + YAML + dotted overrides (`--set optim.lr=3e-4`).

Values are typed by config_values.py, and everything is checked at load, before Ray starts:
unknown keys, wrong types and impossible values raise PtftError naming the key. The resolved
config travels to workers as the typed Config itself (inside a RunSpec), changed only through
`with_values` / `dataclasses.replace`, and is saved as a dict in every checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config_values import apply_overrides, coerce, fail, parse_sets  # noqa: F401 - parse_sets re-exported
from .errors import PtftError
from .schema import (PRESETS, CheckpointConfig, ClusterConfig, DataConfig, FinetuneConfig,  # noqa: F401 - re-exported
                     ModelConfig, OptimConfig, RunConfig, ScalingConfig, ScheduleConfig, SweepConfig, TrainConfig)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    run: RunConfig = field(default_factory=RunConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "Config":
        return _build(d, source)

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


# the fine-tuning strategies (finetune/strategies.py; a test keeps the two equal): named here so
# a config validates without importing torch; a strategy registered there is appended
BUILTIN_STRATEGIES = ("full", "linear_probe", "partial", "lora", "discriminative_lr", "gradual_unfreeze")
STRATEGIES: list[str] = list(BUILTIN_STRATEGIES)
# model keys that describe our own architectures: with model.hf the Hugging Face model's own
# configuration decides them, so a value set here would be ignored and is refused
_OWN_ARCH = ("arch", "d_model", "n_layers", "n_heads", "d_ff", "hidden", "max_seq_len", "dropout", "vocab_size")

CHOICES = {
    "model.arch": ("gpt", "lstm"),
    "data.format": ("auto", "parquet", "jsonl", "text"),
    "data.tokenizer": ("byte", "bpe", "hf"),
    "schedule.decay": ("cosine", "linear", "constant"),
    "train.precision": ("auto", "fp32", "bf16", "fp16"),
    "sweep.search": ("random", "optuna"),
    "sweep.scheduler": ("asha", "none"),
    "sweep.mode": ("max", "min"),
    "sweep.in_process": ("auto", "always", "never"),
    "scaling.strategy": ("auto", "ddp", "fsdp"),
    "train.activation_checkpointing": ("auto", "true", "false"),
    "finetune.blend": ("off", "auto"),
}
POSITIVE = [  # (key, strictly positive?)
    ("model.d_model", True), ("model.n_layers", True), ("model.n_heads", True),
    ("model.hidden", True), ("model.max_seq_len", True), ("model.d_ff", False),
    ("model.vocab_size", False), ("data.vocab_size", True), ("data.seq_len", True),
    ("data.tokenizer_sample_docs", True), ("data.max_val_blocks", True),
    ("data.docs_per_batch", True), ("data.block_mb", True), ("data.stream_buffer_mb", True), ("data.shuffle_buffer", False),
    ("data.cache_mb", False),
    ("optim.lr", True), ("optim.weight_decay", False), ("optim.eps", True),
    ("optim.grad_clip", False), ("schedule.warmup_steps", False), ("schedule.max_steps", False),
    ("schedule.min_lr_ratio", False), ("train.batch_size", True), ("train.grad_accum", True),
    ("train.log_every", True), ("train.eval_every", False), ("train.eval_batches", False),
    ("train.threads", False), ("train.loss_chunk_tokens", False), ("scaling.num_workers", True), ("scaling.cpus_per_worker", False),
    ("scaling.gpus_per_worker", False), ("scaling.gpu_memory_gb", False), ("scaling.gpu_tflops", False), ("checkpoint.every_steps", True),
    ("checkpoint.num_to_keep", True), ("run.max_failures", False), ("sweep.max_failures", False),
    ("finetune.unfreeze_top_k", True), ("finetune.lora_rank", True), ("finetune.lora_alpha", True),
    ("finetune.lr_decay", True), ("finetune.unfreeze_every", False), ("finetune.epochs", True),
    ("finetune.max_len", True), ("finetune.max_examples", False),
    ("finetune.max_val_examples", False), ("sweep.grid_points", False), ("finetune.evals_per_epoch", True),
    ("finetune.head_dropout", False), ("sweep.num_samples", True), ("sweep.lr_min", True),
    ("sweep.lr_max", True), ("sweep.grace_period", True), ("sweep.reduction_factor", True),
    ("sweep.max_concurrent_trials", False), ("sweep.workers_per_trial", True),
    ("sweep.cpus_per_trial", False), ("sweep.time_budget_s", False), ("sweep.rescore_top_k", True),
    ("sweep.rescore_val_examples", False),
]


def _validate_sweep(cfg: Config) -> None:
    sw = cfg.sweep
    for s, rng in sw.lr_ranges.items():
        if s not in STRATEGIES:
            fail("sweep.lr_ranges", f"unknown strategy {s!r} (known: {', '.join(STRATEGIES)})")
        if len(rng) != 2 or not 0 < rng[0] <= rng[1]:
            fail(f"sweep.lr_ranges.{s}", f"expected [low, high] with 0 < low <= high, got {rng}")
    if sw.grid_points and sw.lrs:
        fail("sweep.grid_points", "use either an explicit sweep.lrs grid or grid_points, not both")
    if sw.lr_min > sw.lr_max:
        fail("sweep.lr_min", f"{sw.lr_min} is above sweep.lr_max={sw.lr_max}")
    if sw.stop_on_noise and "accuracy" not in sw.metric:
        fail("sweep.stop_on_noise", f"its noise is an accuracy's; sweep.metric is {sw.metric!r}")
    if sw.stop_on_noise and (len(sw.batch_sizes) > 1 or len(sw.epochs) > 1):
        fail("sweep.stop_on_noise", "needs one sweep.batch_sizes and one sweep.epochs value (a trial's "
                                     "length tells when it completed)")
    if sw.reduction_factor < 2:
        fail("sweep.reduction_factor", "must be >= 2")
    for key in ("sweep.strategies", "sweep.weight_decays", "sweep.batch_sizes", "sweep.epochs"):
        if not _get(cfg, key):
            fail(key, "must not be empty")


def _build(d: dict, source: str) -> Config:
    if not isinstance(d, dict):
        raise PtftError(f"{source}: expected a mapping of sections, got {type(d).__name__}")
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = typing.get_type_hints(Config)
    kwargs = {}
    for sec, body in d.items():
        if sec not in sections:
            fail(sec, f"unknown section in {source} (known: {', '.join(sections)})")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            fail(sec, f"expected a mapping, got {body!r}")
        cls = hints[sec]
        if sec == "model" and body.get("preset"):
            if body["preset"] not in PRESETS:
                fail("model.preset", f"unknown preset {body['preset']!r} (known: {', '.join(PRESETS)})")
            body = {**PRESETS[body["preset"]], **body}
        fhints = typing.get_type_hints(cls)
        vals = {}
        for k, v in body.items():
            if k not in fhints:
                fail(f"{sec}.{k}", f"unknown key in {source} (known: {', '.join(fhints)})")
            vals[k] = coerce(f"{sec}.{k}", v, fhints[k])
        kwargs[sec] = cls(**vals)
    return _checked(Config(**kwargs))


def _checked(cfg: Config) -> Config:
    if cfg.model.hf and cfg.data.tokenizer == "bpe":  # the default: the model's own tokenizer
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, tokenizer="hf"))
    validate(cfg)
    return cfg


def with_sections(cfg: Config, **sections) -> Config:
    """A new Config with whole sections replaced (a backbone's model and data sections), checked
    as a loaded config is: typed sections travel as they are, never through a dict."""
    return _checked(dataclasses.replace(cfg, **sections))


def lm_head_settings(cfg: Config) -> list[str]:
    """The keys set that train a Hugging Face model's new LM head its own way (pretraining only)."""
    return [k for k, on in (("schedule.head_warmup_steps", cfg.schedule.head_warmup_steps),
                            ("optim.head_lr", cfg.optim.head_lr)) if on]


def validate(cfg: Config) -> None:
    for key, choices in CHOICES.items():
        v = _get(cfg, key)
        if v not in choices:
            fail(key, f"{v!r} is not one of {', '.join(choices)}")
    for key, strict in POSITIVE:
        v = _get(cfg, key)
        if v < 0 or (strict and v == 0):
            fail(key, f"must be {'> 0' if strict else '>= 0'}, got {v!r}")
    _validate_model(cfg)
    ft = cfg.finetune
    if not 0 < ft.val_fraction < 1 or not 0 < ft.test_fraction < 1 or ft.val_fraction + ft.test_fraction >= 1:
        fail("finetune.val_fraction", "val_fraction and test_fraction must be in (0, 1) and sum below 1")
    if ft.lr_decay > 1:
        fail("finetune.lr_decay", f"must be <= 1, got {ft.lr_decay}")
    for s in [ft.strategy, *cfg.sweep.strategies]:
        if s not in STRATEGIES:
            fail("finetune.strategy" if s == ft.strategy else "sweep.strategies",
                  f"unknown strategy {s!r} (known: {', '.join(STRATEGIES)})")
    _validate_sweep(cfg)
    for key in lm_head_settings(cfg):
        if not cfg.model.hf:
            fail(key, "needs model.hf: our own models' output layer is their embeddings")
    if cfg.optim.head_lr < 0:
        fail("optim.head_lr", f"must be >= 0 (0 = optim.lr), got {cfg.optim.head_lr}")
    if not 0 <= cfg.schedule.head_warmup_steps < max(cfg.schedule.max_steps, 1):
        fail("schedule.head_warmup_steps", f"must be >= 0 and below schedule.max_steps={cfg.schedule.max_steps}")
    for name in cfg.cluster.forward_env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            fail("cluster.forward_env", f"{name!r} is not an environment variable name (names, not values)")
    _validate_gpus(cfg)


def _validate_model(cfg: Config) -> None:
    """The model, its tokenizer and the pretraining data's lengths agree."""
    m, dt = cfg.model, cfg.data
    if m.hf:
        if m.preset:
            fail("model.preset", f"{m.preset!r} and model.hf={m.hf!r} both name a model; keep one")
        own = ModelConfig()
        for k in _OWN_ARCH:
            if getattr(m, k) != getattr(own, k):
                fail(f"model.{k}", f"is set to {getattr(m, k)!r}, but model.hf={m.hf!r} brings its own "
                                    f"architecture, which would ignore it; remove the key")
        if dt.tokenizer == "byte":
            fail("data.tokenizer", f"'byte' with model.hf={m.hf!r}: a Hugging Face model uses its own "
                                    f"tokenizer (data.tokenizer: hf)")
    elif dt.tokenizer == "hf":
        fail("data.tokenizer", "'hf' needs model.hf (the tokenizer comes with the Hugging Face model)")
    if m.arch == "gpt" and m.d_model % m.n_heads:
        fail("model.n_heads", f"d_model={m.d_model} is not divisible by n_heads={m.n_heads}")
    if not m.hf and dt.seq_len > m.max_seq_len:
        fail("data.seq_len", f"{dt.seq_len} is over the model's maximum (model.max_seq_len={m.max_seq_len})")
    if not 0 < dt.val_fraction < 1:
        fail("data.val_fraction", f"must be between 0 and 1, got {dt.val_fraction}")
    if cfg.schedule.min_lr_ratio > 1:
        fail("schedule.min_lr_ratio", f"must be <= 1, got {cfg.schedule.min_lr_ratio}")


def _validate_gpus(cfg: Config) -> None:
    """GPU settings a DDP run can keep."""
    if cfg.scaling.use_gpu and cfg.scaling.gpus_per_worker <= 0:
        fail("scaling.gpus_per_worker", "must be > 0 when scaling.use_gpu is true")
    # DDP ranks sharing a GPU: Ray may place two ranks of one run on the same device, and NCCL
    # refuses that ("Duplicate GPU detected"); fractions are for one-worker sweep trials
    for workers, what in ((cfg.scaling.num_workers, "scaling.num_workers"),
                          (cfg.sweep.workers_per_trial, "sweep.workers_per_trial")):
        g = cfg.scaling.gpus_per_worker
        if cfg.scaling.use_gpu and workers > 1 and g != int(g):
            fail("scaling.gpus_per_worker", f"{g:g} GPU per worker with {what}={workers}: DDP ranks need whole "
                                             f"GPUs each (NCCL refuses two ranks on one device); use 1 (or more)")


def with_values(cfg: Config, values: dict) -> Config:
    """A new Config with `{"section.key": value}` set (typed as a loaded value, then checked):
    how a sweep trial's draws and a plan's choices reach a config, without a round trip
    through strings or dicts."""
    sections: dict[str, dict] = {}
    known = {f.name for f in dataclasses.fields(Config)}
    for key, value in values.items():
        sec, _, name = key.partition(".")
        if sec not in known:
            fail(key, f"unknown section (known: {', '.join(sorted(known))})")
        fhints = typing.get_type_hints(type(getattr(cfg, sec)))
        if name not in fhints:
            fail(key, f"unknown key (known: {', '.join(fhints)})")
        sections.setdefault(sec, {})[name] = coerce(key, value, fhints[name])
    cfg = dataclasses.replace(cfg, **{sec: dataclasses.replace(getattr(cfg, sec), **kv)
                                      for sec, kv in sections.items()})
    validate(cfg)
    return cfg


def _get(cfg: Config, key: str):
    sec, name = key.split(".")
    return getattr(getattr(cfg, sec), name)


def load_config(path: str | None, overrides: list[str] | None = None) -> Config:
    d: dict = {}
    source = "defaults"
    if path:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise PtftError(f"config file not found: {p}")
        try:
            d = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise PtftError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(d, dict):
            raise PtftError(f"{p}: expected a mapping of sections at the top level")
    return _build(apply_overrides(d, overrides or []), source)
