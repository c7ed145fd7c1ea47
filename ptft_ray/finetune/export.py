"""Export a fine-tuned checkpoint as a self-contained model directory.

LoRA / DoRA adapters are merged into the base weights, so an export is a plain model:
    Hugging Face backbones: config.json (id2label) + model.safetensors + the tokenizer's own
        files, loadable by AutoModelForSequenceClassification / pipeline("text-classification")
        with no ptft_ray import; meta.json beside them (config, label map, lineage, metrics)
    our own backbones: model.safetensors, meta.json, tokenizer.json
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from ..config import Config
from ..storage import localize
from ..data.tasks import encode
from ..errors import PtftError
from ..models import build_classifier
from ..train import checkpoint as ckpt
from .task import trim
from .lora import apply_lora, merge_lora


def read_export(path: str) -> tuple[str, Config, dict]:
    """-> (the directory here, its Config, meta) of an export or a trial's checkpoint, without
    loading its weights: what a caller that scores the model elsewhere (on a GPU) needs here."""
    d = localize(str(path), "model")  # a URI: fetched once into this node's cache
    cfg, meta = ckpt.read_config(d, "cls", f"{d} is not a fine-tuning checkpoint")
    return d, cfg, meta


def classifier_from_checkpoint(d: str) -> tuple[torch.nn.Module, dict]:
    """Rebuild the trial's model (with LoRA adapters if it trained them) and load it."""
    d, cfg, meta = read_export(d)
    return _classifier(d, cfg, meta), meta


def _classifier(d: str, cfg: Config, meta: dict) -> torch.nn.Module:
    info = meta["task_info"]
    if meta.get("quantized"):
        return _quantized(d, cfg, meta)
    adapters = cfg.finetune.strategy == "lora" and not meta.get("lora_merged")  # a trial's checkpoint
    if cfg.model.hf:
        from ..models.hf import HFClassifier

        model = HFClassifier.from_dir(d, lora=(lambda m: apply_lora(m.backbone, cfg.finetune)) if adapters else None)
        return model.eval()
    model = build_classifier(cfg.model, info["labels"], info["vocab_size"], info["pad_id"],
                             cfg.finetune.head_dropout, None)
    if adapters:
        apply_lora(model.backbone, cfg.finetune)
    ckpt.load_weights(model, d)
    return model.eval()


def _skeleton(d: str, cfg: Config, meta: dict) -> torch.nn.Module:
    """The export's fp32 architecture with random weights (a quantized export loads into it)."""
    info = meta["task_info"]
    if cfg.model.hf:
        from transformers import AutoModelForSequenceClassification

        from ..models.hf import HFClassifier, hf_config

        return HFClassifier(AutoModelForSequenceClassification.from_config(hf_config(str(d))))
    return build_classifier(cfg.model, info["labels"], info["vocab_size"], info["pad_id"],
                            cfg.finetune.head_dropout, None)


def _quantized(d: str, cfg: Config, meta: dict) -> torch.nn.Module:
    """Rebuild the fp32 skeleton, quantize it the way the export was, load its int8 state."""
    import pickle

    from ..models.quantize import WEIGHTS, quantize_model, safe_globals

    model = quantize_model(_skeleton(d, cfg, meta), meta["quantized"]["method"])
    f = Path(d) / WEIGHTS
    try:  # tensors and torchao's few int8 tensor classes only: a file from elsewhere runs no code
        with torch.serialization.safe_globals(safe_globals()):
            state = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise PtftError(f"{f}: holds objects other than tensors; refused (loading it could run code)") from None
    except (OSError, RuntimeError, EOFError) as e:
        raise PtftError(f"{f}: corrupt or missing quantized weights ({str(e).splitlines()[0][:200]})") from None
    model.load_state_dict(state, assign=True)
    return model.eval()


def export(checkpoint_dir: str, out: str | Path, extra_meta: dict | None = None,
           overwrite: bool = False) -> Path:
    out = Path(out)
    if out.exists() and not overwrite:
        raise PtftError(f"{out} exists; refusing to overwrite it without --overwrite")
    source, checkpoint_dir = checkpoint_dir, localize(str(checkpoint_dir), "checkpoint")
    model, meta = classifier_from_checkpoint(checkpoint_dir)
    merged = merge_lora(model.backbone)
    meta = {**meta, "exported_from": str(source), "lora_merged": merged, **(extra_meta or {})}
    tokenizer_json = _tokenizer_json(checkpoint_dir)
    if not out.exists():
        return ckpt.write_dir(out, model, meta, tokenizer_json)
    # replace: the new export is complete on disk before the old one is moved away
    new = ckpt.write_dir(out.with_name(f".{out.name}.new-{os.getpid()}"), model, meta, tokenizer_json)
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.rename(out, old)
    os.rename(new, out)
    shutil.rmtree(old)
    return out


def load_finetuned(path: str):
    """-> (classifier in eval mode, tokenizer, Config, meta) from an export or a trial's checkpoint."""
    from .. import tokenizer as toks

    d, cfg, meta = read_export(path)
    return _classifier(d, cfg, meta), toks.load(d), cfg, meta


def _tokenizer_json(d: str) -> str:
    from .. import tokenizer as toks

    return toks.load(d).to_json()


@torch.no_grad()
def logits_of(model, ids, lengths, batch_size: int = 256) -> torch.Tensor:
    """Logits of right-padded rows, each batch cut to its longest example."""
    ids, lengths = torch.as_tensor(ids).long(), torch.as_tensor(lengths)
    return torch.cat([model(*trim(ids[i:i + batch_size], lengths[i:i + batch_size]))
                      for i in range(0, len(ids), batch_size)])


def logits_of_texts(model, tok, texts: list[str], max_len: int) -> torch.Tensor:
    return logits_of(model, *encode(tok, texts, max_len))
