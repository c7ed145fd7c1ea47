"""The distillation student: K of the teacher's own layers (`layers:K`), one of our presets
(randomly initialised, reading the teacher's tokenizer) or a Hugging Face model directory."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from .. import storage
from ..config import Config, ModelConfig, with_sections
from ..errors import PtftError
from ..finetune.backbones import Source
from ..schema import PRESETS


def student_from_layers(teacher_dir: str, k: int, out: Path) -> str:
    """Save a Hugging Face classifier with k of the teacher's layers (evenly spaced, the
    first and last kept), its embeddings, final norm and head: a student that starts where
    the teacher is."""
    from transformers import AutoModelForSequenceClassification

    from ..models.hf import HFClassifier, hf_config

    teacher = HFClassifier.from_dir(teacher_dir)
    base = teacher.hf.base_model
    name, layers = max(((n, m) for n, m in base.named_modules() if m.__class__.__name__ == "ModuleList" and len(m)),
                       key=lambda nm: sum(p.numel() for p in nm[1].parameters()))
    n = len(layers)
    if not 1 <= k < n:
        raise PtftError(f"--student layers:{k}: the teacher has {n} layers; keep between 1 and {n - 1}")
    keep = sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [n - 1]
    config = hf_config(teacher_dir)
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if hasattr(config, key):
            setattr(config, key, k)
    student = AutoModelForSequenceClassification.from_config(config)
    prefix = f"{teacher.hf.base_model_prefix}.{name}."
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    src = teacher.hf.state_dict()
    state = {}
    for key in student.state_dict():
        m = pat.match(key)
        state[key] = src[pat.sub(f"{prefix}{keep[int(m.group(1))]}.", key, count=1) if m else key]
    student.load_state_dict(state)
    student.save_pretrained(str(out))
    from .. import tokenizer as toks

    toks.save(toks.load(teacher_dir), out)
    return str(out)


def _preset(student: str) -> str | None:
    """`gpt_small` or `preset:gpt_small` (a directory of that name wins) -> the preset name."""
    name = student.removeprefix("preset:")
    if name in PRESETS and (student.startswith("preset:") or not Path(student).exists()):
        return name
    if student.startswith("preset:"):
        raise PtftError(f"--student {student!r}: unknown preset (known: {', '.join(PRESETS)})")
    return None


def preset_source(name: str, cfg: Config, teacher_dir: str) -> Source:
    """A student of our own architecture (model.preset), randomly initialised, reading the
    teacher's tokenizer: the transfer set is encoded once, for both."""
    from .. import tokenizer as toks

    model = with_sections(cfg, model=ModelConfig(preset=name, **PRESETS[name])).model
    if cfg.finetune.max_len > model.max_seq_len and model.arch == "gpt":
        raise PtftError(f"--student {name}: finetune.max_len={cfg.finetune.max_len} is over its "
                        f"{model.max_seq_len} positions")
    return Source(f"preset:{name}", None, toks.load(teacher_dir).to_json(), model, None,
                  {"path": None, "preset": name})


def student_kind(student: str, cfg: Config, teacher_local: str, teacher_hf: bool):
    """-> ("layers" | "preset" | "dir", the config, the Source of a preset student, else None)."""
    m = re.fullmatch(r"layers:(\d+)", student)
    preset = _preset(student)
    if m:
        if not teacher_hf:
            raise PtftError("--student layers:K needs a Hugging Face teacher; give --student PRESET or HF_DIR")
        return "layers", cfg, None
    if preset:
        if cfg.data.tokenizer == "hf":  # our architecture reads the teacher's tokenizer as a JSON, not as a model's
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, tokenizer="bpe"))
        return "preset", cfg, preset_source(preset, cfg, teacher_local)
    if not Path(storage.localize(student, "--student"), "config.json").is_file():
        raise PtftError(f"--student {student!r}: give layers:K (K of the teacher's layers), a preset "
                        f"({', '.join(PRESETS)}) or a Hugging Face model directory")
    return "dir", cfg, None
