"""Hugging Face backbones behind the same small interface as our own models.

    HFLM          AutoModelForMaskedLM (encoders: BERT, RoBERTa, MiniLM, ...) or
                  AutoModelForCausalLM (decoders: GPT-2, Llama, Qwen, ...); forward -> logits
    HFClassifier  AutoModelForSequenceClassification: encoders pool [CLS] (the model's own
                  pooler), decoders the last non-pad token; forward -> logits

Both save with `save_pretrained`, so a checkpoint directory loads with transformers alone,
and load in place (the strategy's parameter groups and the optimizer keep pointing at the
same tensors when a run resumes). Layer groups come from the model's own layer list.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import PtftError
from .lm_loss import cross_entropy_sum


def quiet_torchao() -> None:
    """torchao's import notices (a CUDA kernel library that cannot load on a CPU machine, "no
    triton", two enum registrations): five lines in every process that imports it (transformers does),
    none actionable. Filters, not levels: torch's logging setup resets its loggers' levels."""
    import logging

    # a filter applies only to records of its own logger, not of child loggers
    for name in ("torchao", "torchao.kernel.intmm", "torch.utils._pytree"):
        log = logging.getLogger(name)
        if not any(getattr(f, "ptft", False) for f in log.filters):
            f = logging.Filter()
            f.filter = lambda record: record.levelno >= logging.ERROR  # type: ignore[method-assign]
            f.ptft = True  # type: ignore[attr-defined]
            log.addFilter(f)


def _quiet():
    from transformers.utils import logging

    quiet_torchao()
    logging.set_verbosity_error()  # "Some weights were not initialized ..." is expected here
    logging.disable_progress_bar()  # one "Loading weights" bar per trial drowns the progress lines


def hf_config(path: str):
    from transformers import AutoConfig

    _quiet()
    try:
        return AutoConfig.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - OSError / ValueError / KeyError from transformers
        raise PtftError(f"model.hf={path}: not a Hugging Face model directory or id "
                        f"({str(e).splitlines()[0][:200]})") from None


def hf_kind(config) -> str:
    """'encoder' (masked LM) or 'decoder' (causal LM), from the model type's registrations."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder"
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "decoder"
    raise PtftError(f"model type {config.model_type!r} has neither a masked- nor a causal-LM head in transformers")


def max_positions(config) -> int:
    for key in ("max_position_embeddings", "n_positions"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    return 10 ** 6


def is_hf_dir(path: str | Path) -> bool:
    return Path(path, "config.json").is_file()


class _HFModule(nn.Module):
    def __init__(self, hf: nn.Module):
        super().__init__()
        self.hf = hf

    def save_dir(self, d: str | Path) -> None:
        self.hf.save_pretrained(str(d), safe_serialization=True)

    def load_dir(self, d: str | Path) -> None:
        """Weights from a save_pretrained directory into this model, in place."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from .weights import weight_files

        state = {}
        for f in weight_files(d):  # one file, or save_pretrained's shards
            try:
                state.update(load_file(str(f)))
            except (SafetensorError, OSError) as e:
                raise PtftError(f"{f}: corrupt or missing weights ({e})") from None
        try:
            missing, unexpected = self.hf.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise PtftError(f"{d}: weights do not fit this model: {str(e)[:300]}") from None
        self.hf.tie_weights()
        loaded = {p.data_ptr() for k, p in self.hf.state_dict().items() if k in state}
        # a key save_pretrained dropped because it is tied to a loaded one is not missing
        missing = [k for k in missing if self.hf.state_dict()[k].data_ptr() not in loaded]
        if missing or unexpected:
            raise PtftError(f"{d}: weights do not fit this model: missing {sorted(missing)[:5]}, "
                            f"unexpected {sorted(unexpected)[:5]}")

    def flops_per_token(self, seq_len: int) -> int:
        n = sum(p.numel() for p in self.hf.base_model.parameters())
        return 6 * n


def lm_class(kind: str):
    """The Auto class of a model's LM head: masked LM for an encoder, causal LM for a decoder."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    return AutoModelForMaskedLM if kind == "encoder" else AutoModelForCausalLM


class HFLM(_HFModule):
    @classmethod
    def skeleton(cls, conf, kind: str | None = None) -> "HFLM":
        """The architecture on the meta device (no weights read or allocated): for sizing and checks."""
        with torch.device("meta"):
            return cls(lm_class(kind or hf_kind(conf)).from_config(conf))

    @classmethod
    def load(cls, path: str, kind: str | None = None) -> "HFLM":
        _quiet()
        kind = kind or hf_kind(hf_config(path))
        auto = lm_class(kind)
        try:  # fp32 master weights: transformers 5 loads a bf16 checkpoint in bf16 by default
            return cls(auto.from_pretrained(path, dtype=torch.float32))
        except Exception as e:  # noqa: BLE001
            raise PtftError(f"model.hf={path}: cannot load it as a {kind} "
                            f"({str(e).splitlines()[0][:200]})") from None

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None,
                select: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                chunk: int = 0) -> torch.Tensor:
        """Logits [B, T, V]; with `select` (a [B, T] bool mask) only at the selected positions,
        [n, V]. A masked LM scores ~15 % of positions: projecting only those onto a 30k
        vocabulary saves ~85 % of the head (which costs about what MiniLM's six layers do).
        With `targets`: the summed cross-entropy, over chunks of `chunk` positions where the
        head is a plain projection (models/lm_loss.py)."""
        head = self._lm_head()
        if targets is not None:
            if not self.plain_head():
                logits = self.hf(input_ids=ids, attention_mask=mask).logits
                return cross_entropy_sum(logits, nn.Identity(), targets, targets.numel())
            hidden = self.hf.base_model(input_ids=ids, attention_mask=mask)[0]
            return cross_entropy_sum(hidden, head, targets, chunk or targets.numel())
        if select is None or head is None:
            logits = self.hf(input_ids=ids, attention_mask=mask).logits
            return logits if select is None else logits[select]
        hidden = self.hf.base_model(input_ids=ids, attention_mask=mask)[0]
        return head(hidden[select])

    def head_only_parameters(self) -> list:
        """The LM head's own parameters: not the backbone's, nor those tied to its embeddings."""
        head = self._lm_head()
        body = {id(p) for p in self.hf.base_model.parameters()}
        return [p for p in head.parameters() if id(p) not in body] if head is not None else []

    def plain_head(self) -> bool:
        """The logits are head(last hidden state) and nothing more: no soft-capping or scaling
        of the logits in the model's own forward (Gemma 2, Cohere), which chunks would skip."""
        conf = self.hf.config
        return (self._lm_head() is not None and not getattr(conf, "final_logit_softcapping", None)
                and getattr(conf, "logit_scale", 1.0) in (None, 1.0))

    def _lm_head(self):
        """The one module after the backbone (BERT's `cls`, RoBERTa's `lm_head`), else None."""
        rest = [m for n, m in self.hf.named_children() if n != self.hf.base_model_prefix]
        return rest[0] if len(rest) == 1 else None


class HFClassifier(_HFModule):
    """The model's own sequence-classification head over its backbone. Binary tasks train
    two logits with cross-entropy, so the export is what `pipeline("text-classification")`
    expects (softmax over id2label)."""

    @classmethod
    def build(cls, path: str, labels: list[str], pad_id: int, dropout: float,
              pretrained: bool = True, config_from: str | None = None) -> "HFClassifier":
        """From a Hugging Face directory's weights, or (pretrained=False) randomly initialised
        with the configuration of `config_from` (the from-scratch baseline)."""
        from transformers import AutoModelForSequenceClassification

        _quiet()
        config = hf_config(config_from or path)
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {lab: i for i, lab in enumerate(labels)}
        config.pad_token_id = pad_id  # decoders pool the last token that is not padding
        if hasattr(config, "classifier_dropout"):
            config.classifier_dropout = dropout
        config.problem_type = "single_label_classification"
        try:
            hf = (AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=torch.float32)
                  if pretrained else AutoModelForSequenceClassification.from_config(config, dtype=torch.float32))
        except Exception as e:  # noqa: BLE001
            raise PtftError(f"{path}: cannot build a sequence classifier on it "
                            f"({str(e).splitlines()[0][:200]})") from None
        return cls(hf)

    @classmethod
    def from_dir(cls, d: str | Path, lora=None) -> "HFClassifier":
        """A fine-tuning checkpoint or export; `lora` re-injects a trial's adapters first."""
        from transformers import AutoModelForSequenceClassification

        _quiet()
        model = cls(AutoModelForSequenceClassification.from_config(hf_config(str(d))))
        if lora is not None:
            lora(model)
        model.load_dir(d)
        return model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.hf(input_ids=ids, attention_mask=mask).logits

    @property
    def backbone(self) -> nn.Module:
        return self.hf.base_model

    def _partition(self) -> tuple[list[nn.Parameter], list[list[nn.Parameter]], list[nn.Parameter], list[nn.Parameter]]:
        """-> (embeddings, one list per layer, after the layers (final norm), head)."""
        base, prefix = self.hf.base_model, self.hf.base_model_prefix
        lists = [(n, m) for n, m in base.named_modules() if isinstance(m, nn.ModuleList) and len(m)]
        if not lists:
            raise PtftError(f"{type(self.hf).__name__}: no layer list found in its backbone")
        name, layers = max(lists, key=lambda nm: sum(p.numel() for p in nm[1].parameters()))
        per_layer: list[list[nn.Parameter]] = [[] for _ in layers]
        before, after, head = [], [], []
        seen_layers = False
        for n, p in self.hf.named_parameters():
            inner = n[len(prefix) + 1:] if n.startswith(prefix + ".") else None
            if inner is None or "pooler" in inner.split("."):
                head.append(p)                       # classifier / score (+ BERT's pooler)
            elif inner.startswith(name + "."):
                per_layer[int(inner[len(name) + 1:].split(".")[0])].append(p)
                seen_layers = True
            else:
                (after if seen_layers else before).append(p)
        return before, per_layer, after, head

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Bottom (embeddings) to top (head); the final norm belongs with the top layer."""
        before, per_layer, after, head = self._partition()
        groups = [before, *per_layer]
        groups[-1] = groups[-1] + after
        return [*groups, head]

