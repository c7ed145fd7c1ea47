"""ptft_ray: pretrain a language model on Ray Train, fine-tune it with Ray Tune sweeps."""
from __future__ import annotations

from .config import Config, load_config
from .errors import PtftError

__all__ = ["Config", "PtftError", "load_config", "load_finetuned", "load_pretrained"]


def __getattr__(name: str):
    """The loaders import torch and the models: only when asked for (a config needs neither)."""
    if name in ("load_finetuned", "load_pretrained"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'ptft_ray' has no attribute {name!r}")
