"""Checkpoint directories: what is in them and how they are written and read.

    model.safetensors   weights (safetensors: no pickle on load)
    train_state.pt      optimizer state, loaded with torch.load(weights_only=True)
    meta.json           step, tokens seen, data position, history, resolved config, task info
    tokenizer.json      the tokenizer

A Hugging Face model's checkpoint is also a Hugging Face directory: `save_pretrained` writes
config.json + model.safetensors and the tokenizer its own files, so transformers loads it
as it is (AutoModelForMaskedLM / AutoModelForCausalLM / AutoModelForSequenceClassification).

Directories are written under a temporary name and renamed into place, so a crash during a
save leaves the previous checkpoint as it was.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from ..config import Config
from ..errors import PtftError
from ..storage import is_uri, listing, read_text
from ..models.weights import WEIGHTS, has_weights, load_weights, save_weights, weight_files  # noqa: F401 - re-exported

STATE, META, TOKENIZER = "train_state.pt", "meta.json", "tokenizer.json"


def write_json(path: str | Path, obj) -> None:
    """A JSON file written under a temporary name and renamed: a reader never sees half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def write_dir(path: str | Path, model: nn.Module, meta: dict, tokenizer_json: str,
              optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write a complete checkpoint directory at `path` (which must not exist yet)."""
    path = Path(path)
    if path.exists():
        raise PtftError(f"{path} exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        fill_dir(tmp, model, meta, tokenizer_json, optimizer)
        os.rename(tmp, path)  # atomic on one filesystem; fails if path exists
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def fill_dir(d: str | Path, model: nn.Module, meta: dict, tokenizer_json: str,
             optimizer: torch.optim.Optimizer | None = None, state: dict | None = None) -> None:
    """state: the whole model's weights gathered from its shards (an FSDP run: its optimizer
    state is in the directory's dcp/), written in place of the model's own."""
    from .. import tokenizer as toks
    from ..models.weights import save_state

    d = Path(d)
    if state is not None:
        save_state(model, state, d)
    else:
        save_weights(model, d)
    if optimizer is not None:
        torch.save({"optimizer": optimizer.state_dict()}, d / STATE)
    (d / META).write_text(json.dumps(meta, indent=1))
    if tokenizer_json.startswith('{"ptft_tokenizer": "hf"'):  # its own files (AutoTokenizer loads the dir)
        toks.save(toks.from_json(tokenizer_json), d)
    else:
        (d / TOKENIZER).write_text(tokenizer_json)


def read_meta(d: str | Path) -> dict:
    if is_uri(d):  # the listing and meta.json only: the weights are fetched when loaded
        names = {rel for rel, _, _ in listing(str(d))}
        if not names:
            raise PtftError(f"checkpoint not found: {d}")
        has = {META: META in names, WEIGHTS: has_weights(names)}
        text = read_text(f"{str(d).rstrip('/')}/{META}") if all(has.values()) else None
    else:
        d = Path(d)
        if not d.is_dir():
            raise PtftError(f"checkpoint not found: {d}")
        has = {META: (d / META).is_file(), WEIGHTS: has_weights({p.name for p in d.iterdir()})}
        text = (d / META).read_text() if all(has.values()) else None
    if text is None:
        raise PtftError(f"{d} is not a ptft_ray checkpoint (needs {META} and {WEIGHTS})")
    p = f"{d}/{META}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PtftError(f"{p}: corrupt checkpoint metadata ({e})") from None


def read_task_meta(d: str | Path, task: str, refusal: str) -> dict:
    """The meta of a checkpoint that must hold `task` ("lm", "cls"); another is refused with
    `refusal` and the task it holds."""
    meta = read_meta(d)
    if meta.get("task") != task:
        raise PtftError(f"{refusal} (its {META} says task {meta.get('task')!r})")
    return meta


def read_config(d: str | Path, task: str, refusal: str, name: str | None = None) -> tuple[Config, dict]:
    """-> (the checkpoint's resolved Config, its meta): the one place a checkpoint's config is
    parsed (read_task_meta's check first); `name` is what the user gave."""
    meta = read_task_meta(d, task, refusal)
    return Config.from_dict(meta["config"], source=f"{name or d}/{META}"), meta


def load_optimizer(optimizer: torch.optim.Optimizer, d: str | Path) -> None:
    f = Path(d) / STATE
    try:
        state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError for anything but plain tensors/containers
        raise PtftError(f"{f}: refused or corrupt optimizer state ({str(e).splitlines()[0][:200]})") from None
    optimizer.load_state_dict(state["optimizer"])


def is_complete(d: str | Path) -> bool:
    """Every file of the checkpoint reads back (a save cut short by a crash does not)."""
    from safetensors import safe_open

    try:
        read_meta(d)
        for w in weight_files(d):
            with safe_open(str(w), framework="pt") as f:
                for k in f.keys():
                    f.get_tensor(k)
        if not Path(d, "dcp", ".metadata").is_file():  # a sharded run's optimizer is in its DCP shards
            torch.load(Path(d) / STATE, map_location="cpu", weights_only=True)
        return True
    except Exception:  # noqa: BLE001 - any failure means: not usable
        return False


def newer_on_disk(run_dir: str | Path, than_step: int) -> list[Path]:
    """Checkpoints under a local run directory newer than `than_step`, newest first.

    Ray Train registers a reported checkpoint a moment after it is on disk; a worker that
    dies in between would otherwise restart from the previous, registered one."""
    found = []
    for p in Path(run_dir).glob("checkpoint_*"):
        try:
            step = json.loads((p / META).read_text())["state"]["step"]
        except (OSError, ValueError, KeyError):
            continue
        if step > than_step:
            found.append((step, p))
    return [p for _, p in sorted(found, reverse=True)]


def load_pretrained(path: str):
    """-> (language model in eval mode, tokenizer, Config) from a pretraining checkpoint dir."""
    from .. import tokenizer as toks
    from ..models import build_lm

    cfg, meta = read_config(path, "lm", f"{path} is not a pretrained language-model checkpoint")
    if cfg.model.hf:  # the checkpoint is a Hugging Face directory itself
        from ..models.hf import HFLM

        model = HFLM.load(path)
    else:
        model = build_lm(cfg.model, meta["vocab_size"])
        load_weights(model, path)
    return model.eval(), toks.load(path), cfg
