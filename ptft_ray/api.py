"""Loading checkpoints and exports without Ray: weights through safetensors only."""
from __future__ import annotations


def load_pretrained(path: str):
    """-> (language model in eval mode, tokenizer, Config) from a pretraining checkpoint dir."""
    from .train.checkpoint import load_pretrained as load

    return load(path)


def load_finetuned(path: str):
    """-> (classifier in eval mode, tokenizer, Config, meta) from an exported fine-tuned model.

    meta["task_info"]["labels"] maps output index -> label."""
    from .finetune.export import load_finetuned as load

    return load(path)
