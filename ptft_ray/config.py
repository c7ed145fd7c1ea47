"""Config: dataclasses + YAML + dotted overrides (`--set optim.lr=3e-4`).

Everything is checked at load, before Ray starts: unknown keys, wrong types and impossible
values raise PtftError naming the key. The resolved config travels to workers as a plain
dict (`to_dict`) and is saved in every checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import PtftError


@dataclass
class ModelConfig:
    preset: str = ""          # "seed_lstm" | "gpt_tiny" | "gpt_small": defaults under the user's keys
    arch: str = "gpt"         # "gpt" | "lstm"
    d_model: int = 128        # GPT width; LSTM embedding size
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 0             # 0 -> 4 * d_model
    hidden: int = 200         # LSTM hidden size
    max_seq_len: int = 256    # positions the model can attend over
    dropout: float = 0.0
    vocab_size: int = 0       # 0 -> taken from the tokenizer
    # a Hugging Face model (local directory with config.json + safetensors + tokenizer, or a hub
    # id where the network allows): its own architecture and tokenizer replace the keys above
    hf: str = ""


PRESETS = {
    # the seed design: Embedding(100) -> LSTM(200) -> Linear
    "seed_lstm": dict(arch="lstm", d_model=100, hidden=200, n_layers=1),
    "gpt_tiny": dict(arch="gpt", d_model=64, n_layers=2, n_heads=2, max_seq_len=128),
    "gpt_small": dict(arch="gpt", d_model=128, n_layers=4, n_heads=4, max_seq_len=256),
}


@dataclass
class DataConfig:
    path: str = ""              # file, directory or glob of .parquet / .jsonl / .txt
    format: str = "auto"        # auto | parquet | jsonl | text
    text_column: str = "text"
    tokenizer: str = "bpe"      # byte | bpe
    vocab_size: int = 4096      # BPE target vocabulary
    tokenizer_sample_docs: int = 2000
    seq_len: int = 128          # tokens per training example (blocks hold seq_len + 1)
    val_fraction: float = 0.05  # documents held out by a stable hash of their text
    max_val_blocks: int = 256
    docs_per_batch: int = 256   # documents per map_batches call (tokenize + pack)
    block_mb: int = 16          # Ray Data's target block size: bounds each read / tokenize task's memory
    shuffle_buffer: int = 0     # local shuffle buffer in rows (0 = stream order)


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0      # 0 = off


@dataclass
class ScheduleConfig:
    warmup_steps: int = 50
    max_steps: int = 500        # optimizer steps; 0 in fine-tuning -> from finetune.epochs
    min_lr_ratio: float = 0.1
    decay: str = "cosine"       # cosine | linear | constant


@dataclass
class TrainConfig:
    batch_size: int = 16        # micro-batch per worker
    grad_accum: int = 1         # global batch = batch_size * grad_accum * num_workers
    log_every: int = 10
    eval_every: int = 100       # steps between validation passes (0 = at the end only)
    eval_batches: int = 0       # 0 = the whole validation set
    precision: str = "auto"     # auto (bf16 on GPU) | fp32 | bf16
    seed: int = 0
    threads: int = 0            # torch threads per worker (0 = leave torch's default)
    compile: bool = False       # torch.compile the training loss (model + loss fused; compiles once, ~30 s)
    trace_file: str = ""        # audit: rank 0 appends each step's sample fingerprints here


@dataclass
class ScalingConfig:
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 0.0   # 0 = size from the cluster, leaving CPU for Ray Data
    gpus_per_worker: float = 1.0


@dataclass
class CheckpointConfig:
    every_steps: int = 100
    num_to_keep: int = 2


@dataclass
class RunConfig:
    name: str = "pretrain"
    out_dir: str = "runs/pretrain"   # local path or a URI pyarrow understands
    max_failures: int = 0
    mlflow_uri: str = ""               # e.g. file:///tmp/mlruns or http://host:5000 (needs ptft_ray[mlflow])


@dataclass
class FinetuneConfig:
    data: str = ""              # classification file: parquet, csv or jsonl
    text_column: str = "text"
    label_column: str = "label"
    init_from: str = ""         # pretrained checkpoint dir; "none" = random initialisation
    strategy: str = "full"
    unfreeze_top_k: int = 1     # partial
    lora_rank: int = 8          # lora
    lora_alpha: float = 16.0
    lora_dora: bool = False     # lora: weight-decomposed adapters (DoRA, through peft)
    lr_decay: float = 0.8       # discriminative_lr: each lower group gets lr * decay
    unfreeze_every: int = 0     # gradual_unfreeze: steps per newly unfrozen group (0 = 1 epoch)
    epochs: float = 3.0
    max_len: int = 128          # tokens per example
    max_examples: int = 0       # 0 = all; else a stratified subset of the training split
    max_val_examples: int = 0   # 0 = all; else a stratified subset of the validation split (test stays whole)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    head_dropout: float = 0.1
    evals_per_epoch: int = 2


@dataclass
class SweepConfig:
    name: str = "sweep"
    num_samples: int = 8
    search: str = "random"      # random | optuna
    scheduler: str = "asha"     # asha | none
    metric: str = "val_accuracy"
    mode: str = "max"
    strategies: list[str] = field(default_factory=lambda: ["full", "linear_probe", "lora"])
    lr_min: float = 1e-5
    lr_max: float = 3e-3
    lrs: list[float] = field(default_factory=list)  # explicit grid instead of the log-uniform range
    # per-strategy log-uniform LR range, e.g. {linear_probe: [1e-3, 3e-2]}; others use lr_min..lr_max
    lr_ranges: dict[str, list[float]] = field(default_factory=dict)
    grid_points: int = 0        # > 0: exhaustive grid, every strategy x this many LRs across its range
    weight_decays: list[float] = field(default_factory=lambda: [0.0, 0.01])
    batch_sizes: list[int] = field(default_factory=lambda: [32])
    epochs: list[float] = field(default_factory=lambda: [3.0])
    unfreeze_top_k: list[int] = field(default_factory=lambda: [1, 2])
    lora_ranks: list[int] = field(default_factory=lambda: [4, 8])
    lr_decays: list[float] = field(default_factory=lambda: [0.6, 0.8])
    grace_period: int = 1       # ASHA: evaluations before a trial may be stopped
    reduction_factor: int = 2
    max_concurrent_trials: int = 0   # 0 = as many as the cluster can run
    workers_per_trial: int = 1
    cpus_per_trial: float = 0.0      # 0 = sized from the cluster
    in_process: str = "auto"    # auto | always | never: run a one-worker trial without a TorchTrainer
    time_budget_s: float = 0.0  # 0 = no budget
    seed: int = 0
    # choosing the best trial: where trials were evaluated on a subset of the validation split
    # (finetune.max_val_examples), the top k by that metric are re-scored on a larger one
    # (rescore_val_examples; 0 = the whole split) and the best re-scored wins (1 = off)
    rescore_top_k: int = 3
    rescore_val_examples: int = 0


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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "Config":
        return _build(d, source)

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


# the registered fine-tuning strategies (finetune/strategies.py; a test keeps the two equal):
# named here so a config validates without importing torch
STRATEGIES = ("full", "linear_probe", "partial", "lora", "discriminative_lr", "gradual_unfreeze")
# model keys that describe our own architectures: with model.hf the Hugging Face model's own
# configuration decides them, so a value set here would be ignored and is refused
_OWN_ARCH = ("arch", "d_model", "n_layers", "n_heads", "d_ff", "hidden", "max_seq_len", "dropout", "vocab_size")

CHOICES = {
    "model.arch": ("gpt", "lstm"),
    "data.format": ("auto", "parquet", "jsonl", "text"),
    "data.tokenizer": ("byte", "bpe", "hf"),
    "schedule.decay": ("cosine", "linear", "constant"),
    "train.precision": ("auto", "fp32", "bf16"),
    "sweep.search": ("random", "optuna"),
    "sweep.scheduler": ("asha", "none"),
    "sweep.mode": ("max", "min"),
    "sweep.in_process": ("auto", "always", "never"),
}
POSITIVE = [  # (key, strictly positive?)
    ("model.d_model", True), ("model.n_layers", True), ("model.n_heads", True),
    ("model.hidden", True), ("model.max_seq_len", True), ("model.d_ff", False),
    ("model.vocab_size", False), ("data.vocab_size", True), ("data.seq_len", True),
    ("data.tokenizer_sample_docs", True), ("data.max_val_blocks", True),
    ("data.docs_per_batch", True), ("data.block_mb", True), ("data.shuffle_buffer", False),
    ("optim.lr", True), ("optim.weight_decay", False), ("optim.eps", True),
    ("optim.grad_clip", False), ("schedule.warmup_steps", False), ("schedule.max_steps", False),
    ("schedule.min_lr_ratio", False), ("train.batch_size", True), ("train.grad_accum", True),
    ("train.log_every", True), ("train.eval_every", False), ("train.eval_batches", False),
    ("train.threads", False), ("scaling.num_workers", True), ("scaling.cpus_per_worker", False),
    ("scaling.gpus_per_worker", False), ("checkpoint.every_steps", True),
    ("checkpoint.num_to_keep", True), ("run.max_failures", False),
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


def _fail(key: str, msg: str) -> typing.NoReturn:
    raise PtftError(f"config key '{key}': {msg}")


def _coerce(key: str, value, tp):
    """Return value as type tp, accepting the forms YAML and `--set` produce."""
    origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(value, dict):
            _fail(key, f"expected a mapping, got {value!r}")
        ktp, vtp = typing.get_args(tp)
        return {_coerce(key, k, ktp): _coerce(f"{key}.{k}", v, vtp) for k, v in value.items()}
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):  # --set sweep.strategies=full,lora
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            _fail(key, f"expected a list, got {value!r}")
        return [_coerce(key, v, item_tp) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        _fail(key, f"expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            _fail(key, f"expected a number, got {value!r}")
        if isinstance(value, str):  # YAML reads 3e-4 as a string
            try:
                value = float(value) if tp is float else int(value)
            except ValueError:
                _fail(key, f"expected {tp.__name__}, got {value!r}")
        if tp is int and isinstance(value, float):
            if not value.is_integer():
                _fail(key, f"expected an integer, got {value!r}")
            value = int(value)
        if not isinstance(value, (int, float)):
            _fail(key, f"expected {tp.__name__}, got {value!r}")
        return tp(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            _fail(key, f"expected a string, got {value!r}")
        return value
    raise AssertionError(f"unsupported config type {tp}")


def _build(d: dict, source: str) -> Config:
    if not isinstance(d, dict):
        raise PtftError(f"{source}: expected a mapping of sections, got {type(d).__name__}")
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = typing.get_type_hints(Config)
    kwargs = {}
    for sec, body in d.items():
        if sec not in sections:
            _fail(sec, f"unknown section in {source} (known: {', '.join(sections)})")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            _fail(sec, f"expected a mapping, got {body!r}")
        cls = hints[sec]
        if sec == "model" and body.get("preset"):
            if body["preset"] not in PRESETS:
                _fail("model.preset", f"unknown preset {body['preset']!r} (known: {', '.join(PRESETS)})")
            body = {**PRESETS[body["preset"]], **body}
        fhints = typing.get_type_hints(cls)
        vals = {}
        for k, v in body.items():
            if k not in fhints:
                _fail(f"{sec}.{k}", f"unknown key in {source} (known: {', '.join(fhints)})")
            vals[k] = _coerce(f"{sec}.{k}", v, fhints[k])
        kwargs[sec] = cls(**vals)
    cfg = Config(**kwargs)
    if cfg.model.hf and cfg.data.tokenizer == "bpe":  # the default: the model's own tokenizer
        cfg.data.tokenizer = "hf"
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    for key, choices in CHOICES.items():
        v = _get(cfg, key)
        if v not in choices:
            _fail(key, f"{v!r} is not one of {', '.join(choices)}")
    for key, strict in POSITIVE:
        v = _get(cfg, key)
        if v < 0 or (strict and v == 0):
            _fail(key, f"must be {'> 0' if strict else '>= 0'}, got {v!r}")
    m, dt = cfg.model, cfg.data
    if m.hf:
        if m.preset:
            _fail("model.preset", f"{m.preset!r} and model.hf={m.hf!r} both name a model; keep one")
        own = ModelConfig()
        for k in _OWN_ARCH:
            if getattr(m, k) != getattr(own, k):
                _fail(f"model.{k}", f"is set to {getattr(m, k)!r}, but model.hf={m.hf!r} brings its own "
                                    f"architecture, which would ignore it; remove the key")
        if dt.tokenizer == "byte":
            _fail("data.tokenizer", f"'byte' with model.hf={m.hf!r}: a Hugging Face model uses its own "
                                    f"tokenizer (data.tokenizer: hf)")
    elif dt.tokenizer == "hf":
        _fail("data.tokenizer", "'hf' needs model.hf (the tokenizer comes with the Hugging Face model)")
    if m.arch == "gpt" and m.d_model % m.n_heads:
        _fail("model.n_heads", f"d_model={m.d_model} is not divisible by n_heads={m.n_heads}")
    if not m.hf and dt.seq_len > m.max_seq_len:
        _fail("data.seq_len", f"{dt.seq_len} is over the model's maximum (model.max_seq_len={m.max_seq_len})")
    if not 0 < dt.val_fraction < 1:
        _fail("data.val_fraction", f"must be between 0 and 1, got {dt.val_fraction}")
    if cfg.schedule.min_lr_ratio > 1:
        _fail("schedule.min_lr_ratio", f"must be <= 1, got {cfg.schedule.min_lr_ratio}")
    ft = cfg.finetune
    if not 0 < ft.val_fraction < 1 or not 0 < ft.test_fraction < 1 or ft.val_fraction + ft.test_fraction >= 1:
        _fail("finetune.val_fraction", "val_fraction and test_fraction must be in (0, 1) and sum below 1")
    if ft.lr_decay > 1:
        _fail("finetune.lr_decay", f"must be <= 1, got {ft.lr_decay}")
    for s in [ft.strategy, *cfg.sweep.strategies]:
        if s not in STRATEGIES:
            _fail("finetune.strategy" if s == ft.strategy else "sweep.strategies",
                  f"unknown strategy {s!r} (known: {', '.join(STRATEGIES)})")
    for s, rng in cfg.sweep.lr_ranges.items():
        if s not in STRATEGIES:
            _fail("sweep.lr_ranges", f"unknown strategy {s!r} (known: {', '.join(STRATEGIES)})")
        if len(rng) != 2 or not 0 < rng[0] <= rng[1]:
            _fail(f"sweep.lr_ranges.{s}", f"expected [low, high] with 0 < low <= high, got {rng}")
    if cfg.sweep.grid_points and cfg.sweep.lrs:
        _fail("sweep.grid_points", "use either an explicit sweep.lrs grid or grid_points, not both")
    if cfg.sweep.lr_min > cfg.sweep.lr_max:
        _fail("sweep.lr_min", f"{cfg.sweep.lr_min} is above sweep.lr_max={cfg.sweep.lr_max}")
    if cfg.sweep.reduction_factor < 2:
        _fail("sweep.reduction_factor", "must be >= 2")
    for key in ("sweep.strategies", "sweep.weight_decays", "sweep.batch_sizes", "sweep.epochs"):
        if not _get(cfg, key):
            _fail(key, "must not be empty")
    if cfg.scaling.use_gpu and cfg.scaling.gpus_per_worker <= 0:
        _fail("scaling.gpus_per_worker", "must be > 0 when scaling.use_gpu is true")


def _get(cfg: Config, key: str):
    sec, name = key.split(".")
    return getattr(getattr(cfg, sec), name)


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """`section.key=value` strings onto a nested dict; the value is parsed as YAML."""
    d = {k: dict(v or {}) for k, v in d.items()}
    for item in overrides or []:
        if "=" not in item:
            raise PtftError(f"--set {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or not all(parts):
            raise PtftError(f"--set {item!r}: expected section.key=value (e.g. optim.lr=3e-4)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        d.setdefault(parts[0], {})[parts[1]] = value
    return d


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
