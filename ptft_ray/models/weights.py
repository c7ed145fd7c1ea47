"""Model weights on disk: safetensors (no pickle on load). A Hugging Face model saves and
loads through its own `save_pretrained` format (models/hf.py), in place."""
from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from ..errors import PtftError

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"   # save_pretrained's shards (a model past max_shard_size)


def weight_files(d: str | Path) -> list[Path]:
    """The safetensors files of a directory: model.safetensors, or the shards its index names
    (each a plain file name: a name from a model directory never points outside it)."""
    import json

    d = Path(d)
    if not (d / INDEX).is_file():
        return [d / WEIGHTS]
    try:
        names = sorted(set(json.loads((d / INDEX).read_text())["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise PtftError(f"{d / INDEX}: not a shard index ({e})") from None
    bad = [n for n in names if not isinstance(n, str) or Path(n).name != n or not n.endswith(".safetensors")]
    if bad or not names:
        raise PtftError(f"{d / INDEX}: names {bad[:1] or 'no'} shard file(s); refused")
    return [d / n for n in names]


def has_weights(names: set[str]) -> bool:
    """A listing (file names) holds weights: one file, shards with their index, or int8 ones."""
    return bool({WEIGHTS, INDEX, "quantized.pt"} & names)


def save_weights(model: nn.Module, d: str | Path) -> None:
    if hasattr(model, "save_dir"):  # Hugging Face: save_pretrained (config.json + model.safetensors)
        model.save_dir(d)
    else:
        save_model(model, str(Path(d) / WEIGHTS))  # handles tied (shared) tensors


def save_state(model: nn.Module, state: dict, d: str | Path) -> None:
    """The model's weights from a state dict gathered off its shards (keys as the model's own):
    the same files save_weights writes."""
    if hasattr(model, "save_dir"):  # Hugging Face: save_pretrained with the gathered weights
        model.hf.save_pretrained(str(d), state_dict={k.removeprefix("hf."): v for k, v in state.items()},
                                 safe_serialization=True)
        return
    from safetensors.torch import _remove_duplicate_names, save_file

    tied = {n for names in _remove_duplicate_names(state).values() for n in names}  # as save_model drops them
    save_file({k: v.contiguous() for k, v in state.items() if k not in tied}, str(Path(d) / WEIGHTS),
              metadata={"format": "pt"})


def load_weights(model: nn.Module, d: str | Path, strict: bool = True) -> None:
    """Load safetensors weights; a shape or key mismatch names what differs."""
    if hasattr(model, "load_dir"):  # Hugging Face: in place, tied weights re-tied
        model.load_dir(d)
        return
    f = Path(d) / WEIGHTS
    try:
        missing, unexpected = load_model(model, str(f), strict=False)
    except SafetensorError as e:
        raise PtftError(f"{f}: corrupt or truncated weights file ({e})") from None
    except RuntimeError as e:  # size mismatch
        msg = str(e).replace("\n", " ")
        raise PtftError(f"{f}: weights do not fit this model (other architecture or "
                        f"vocabulary?): {msg[:300]}") from None
    if strict and (missing or unexpected):
        raise PtftError(f"{f}: weights do not fit this model: missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]}")
