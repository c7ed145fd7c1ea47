"""Export a fine-tuned checkpoint as a self-contained model directory.

LoRA adapters are merged into the base weights, so an export is a plain Classifier:
    model.safetensors, meta.json (config, label map, lineage, metrics), tokenizer.json
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from ..config import Config
from ..errors import PtftError
from ..models import Classifier, build_backbone
from ..train import checkpoint as ckpt
from .lora import apply_lora, merge_lora


def classifier_from_checkpoint(d: str) -> tuple[Classifier, dict]:
    """Rebuild the trial's model (with LoRA adapters if it trained them) and load it."""
    meta = ckpt.read_meta(d)
    if meta.get("task") != "cls":
        raise PtftError(f"{d} is not a fine-tuning checkpoint")
    cfg = Config.from_dict(meta["config"], source=f"{d}/meta.json")
    info = meta["task_info"]
    model = Classifier(build_backbone(cfg.model, info["vocab_size"]),
                       1 if len(info["labels"]) == 2 else len(info["labels"]), info["pad_id"],
                       cfg.finetune.head_dropout)
    if cfg.finetune.strategy == "lora" and not meta.get("lora_merged"):  # a trial's checkpoint
        apply_lora(model.backbone, cfg.finetune.lora_rank, cfg.finetune.lora_alpha)
    ckpt.load_weights(model, d)
    return model.eval(), meta


def export(checkpoint_dir: str, out: str | Path, extra_meta: dict | None = None,
           overwrite: bool = False) -> Path:
    out = Path(out)
    if out.exists() and not overwrite:
        raise PtftError(f"{out} exists; refusing to overwrite it without --overwrite")
    model, meta = classifier_from_checkpoint(checkpoint_dir)
    merged = merge_lora(model.backbone)
    meta = {**meta, "exported_from": str(checkpoint_dir), "lora_merged": merged, **(extra_meta or {})}
    tokenizer_json = Path(checkpoint_dir, ckpt.TOKENIZER).read_text()
    if not out.exists():
        return ckpt.write_dir(out, model, meta, tokenizer_json)
    # replace: the new export is complete on disk before the old one is moved away
    new = ckpt.write_dir(out.with_name(f".{out.name}.new-{os.getpid()}"), model, meta, tokenizer_json)
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.rename(out, old)
    os.rename(new, out)
    shutil.rmtree(old)
    return out


@torch.no_grad()
def logits_of(model: Classifier, ids, batch_size: int = 256) -> torch.Tensor:
    ids = torch.as_tensor(ids).long()
    return torch.cat([model(ids[i:i + batch_size]) for i in range(0, len(ids), batch_size)])
