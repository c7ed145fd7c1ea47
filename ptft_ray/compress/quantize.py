"""`ptft-ray quantize`: an export's Linear layers to int8 (models/quantize.py), saved as a
directory that `load_finetuned` (and so evaluate / predict / serve / explain) loads."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .. import storage
from ..errors import PtftError
from ..finetune.export import load_finetuned
from ..models.quantize import DEFAULT, WEIGHTS, quantize_model, state_bytes
from ..train import checkpoint as ckpt


def quantize(model_dir: str, out: str, method: str = DEFAULT, overwrite: bool = False) -> dict:
    storage.check_bucket(out)
    if storage.exists(out) and not overwrite:
        raise PtftError(f"{out} exists; use another --out or --overwrite")
    remote, out_p = storage.is_uri(out), Path(out)
    local = storage.localize(model_dir, "model")  # once: the model and its blend are read from it
    model, tok, cfg, meta = load_finetuned(local)
    if meta.get("quantized"):
        raise PtftError(f"{model_dir} is already quantized ({meta['quantized']['method']}); quantize its fp32 export")
    fp32_bytes = state_bytes(model)
    quantize_model(model, method)
    q_bytes = state_bytes(model)
    source = model_dir if storage.is_uri(model_dir) else str(Path(model_dir).resolve())
    info = {"method": method, "from": source, "fp32_state_bytes": fp32_bytes, "int8_state_bytes": q_bytes, "library": "torch.ao" if method == "fbgemm_dynamic" else "torchao"}
    if not remote:
        out_p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_p.name}.tmp-", dir=None if remote else out_p.parent))
    try:
        torch.save(model.state_dict(), tmp / WEIGHTS)
        if cfg.model.hf:  # the architecture, so the skeleton can be rebuilt (and transformers reads it)
            model.hf.config.save_pretrained(str(tmp))
        (tmp / ckpt.META).write_text(json.dumps({**meta, "quantized": info}, indent=1))
        from .. import tokenizer as toks

        toks.save(tok, tmp)
        copy_blend(local, tmp)
        if remote:  # objects replaced one by one once all are written; stale ones then removed
            storage.upload(tmp, out)
            for rel, _, _ in storage.listing(out):
                if not (tmp / rel).exists():
                    storage.delete_file(f"{out.rstrip('/')}/{rel}")
            shutil.rmtree(tmp)
        elif out_p.exists():  # --overwrite: the new directory is complete before the old one goes
            old = out_p.with_name(f".{out_p.name}.old-{os.getpid()}")
            os.rename(out_p, old)
            os.rename(tmp, out_p)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": out if remote else str(out_p), **info, "size_ratio": round(fp32_bytes / max(q_bytes, 1), 2)}


def copy_blend(local_dir: str, out: Path) -> None:
    """The fp32 export's blend with TF-IDF + LR (finetune/blend.py) goes with its int8 copy: the
    weight was chosen for the model the int8 one approximates."""
    from ..finetune import blend

    for name in (blend.JSON, blend.TENSORS):
        if (Path(local_dir) / name).is_file():
            shutil.copyfile(Path(local_dir) / name, out / name)
