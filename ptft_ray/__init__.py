"""ptft_ray: pretrain a language model on Ray Train, fine-tune it with Ray Tune sweeps."""
from __future__ import annotations

from .api import load_finetuned, load_pretrained
from .config import Config, load_config
from .errors import PtftError

__all__ = ["Config", "PtftError", "load_config", "load_finetuned", "load_pretrained"]
