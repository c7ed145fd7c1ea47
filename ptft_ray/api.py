"""Loading checkpoints and exports without Ray: weights through safetensors only."""
from __future__ import annotations

from . import tokenizer as toks
from .config import Config
from .errors import PtftError
from .models import build_lm
from .train import checkpoint as ckpt


def load_pretrained(path: str):
    """-> (LanguageModel in eval mode, tokenizer, Config) from a pretraining checkpoint dir."""
    meta = ckpt.read_meta(path)
    if meta.get("task") != "lm":
        raise PtftError(f"{path} is a {meta.get('task')!r} checkpoint, not a pretrained language model")
    cfg = Config.from_dict(meta["config"], source=f"{path}/meta.json")
    if cfg.model.hf:  # the checkpoint is a Hugging Face directory itself
        from .models.hf import HFLM

        model = HFLM.load(path)
    else:
        model = build_lm(cfg.model, meta["vocab_size"])
        ckpt.load_weights(model, path)
    return model.eval(), toks.load(path), cfg


def load_finetuned(path: str):
    """-> (classifier in eval mode, tokenizer, Config, meta) from an exported fine-tuned model.

    meta["task_info"]["labels"] maps output index -> label."""
    from .finetune.export import load_finetuned as load

    return load(path)
