"""Post-training int8 quantization of a classifier's Linear layers, in place.

    int8_weight_only   torchao: int8 weights (per output channel), activations stay fp32.
                       Linear weights take 1 byte instead of 4; on CPU eager it runs at
                       about fp32 speed (measured on MiniLM: BENCHMARKS.md).
    int8_dynamic       torchao: int8 weights and per-token int8 activations. The fast path
                       on CUDA (and with torch.compile); on a CPU in eager mode it was ~15x
                       *slower* than fp32 here, so it is not the default.
    fbgemm_dynamic     torch.ao's dynamic quantization (FBGEMM int8 GEMM on x86 CPUs): the
                       fastest on a CPU here (~1.4x at batch 1), but torch.ao.quantization is
                       deprecated for removal; kept while torchao has no fast eager CPU kernel.

A quantized export is saved with torch.save (torchao's tensors are tensor subclasses that
safetensors does not hold) and loaded by rebuilding the fp32 skeleton, quantizing it the
same way and loading the state with assign=True (finetune/export.py), through
torch.load(weights_only=True) with only `safe_globals()` allowed: no code runs on load.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import PtftError

from .hf import quiet_torchao

quiet_torchao()

METHODS = ("int8_weight_only", "int8_dynamic", "fbgemm_dynamic")
CPU_ONLY = ("fbgemm_dynamic",)  # FBGEMM's int8 GEMMs have no CUDA kernel: every request would fail


def check_device(meta: dict, on_gpu: bool, flag: str, model: str) -> None:
    """Refuse, before anything starts, to put an export whose int8 kernels run on CPUs only on
    a GPU (one line naming the flag and what to do instead)."""
    method = (meta.get("quantized") or {}).get("method")
    if on_gpu and method in CPU_ONLY:
        raise PtftError(f"{flag}: {model} is a {method} int8 export, whose kernels run on x86 CPUs only; "
                        f"drop {flag} to run it on CPUs, or quantize with --method int8_weight_only for GPUs")
DEFAULT = "int8_weight_only"


def safe_globals() -> list:
    """The classes a quantized state may hold besides plain tensors: torchao's int8 tensor and
    what its int8_dynamic variant records (fbgemm_dynamic's state is plain tensors)."""
    from torchao.quantization import Int8Tensor
    from torchao.quantization.granularity import PerRow
    from torchao.quantization.quant_primitives import MappingType
    from torchao.quantization.quantize_.workflows.int8.int8_tensor import QuantizeTensorToInt8Kwargs

    return [Int8Tensor, PerRow, MappingType, QuantizeTensorToInt8Kwargs]
WEIGHTS = "quantized.pt"


def quantize_model(model: nn.Module, method: str = DEFAULT) -> nn.Module:
    """Quantize every nn.Linear of `model` in place; returns it (eval mode, CPU)."""
    if method not in METHODS:
        raise PtftError(f"--method {method!r}: unknown; choose one of {', '.join(METHODS)}")
    model = model.eval().cpu()
    if method == "fbgemm_dynamic":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecation notice: see the module docstring
            torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
        return model
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig() if method == "int8_weight_only" else Int8DynamicActivationInt8WeightConfig())
    return model


def state_bytes(model: nn.Module) -> int:
    """Bytes of the saved state (what the weights file costs on disk)."""
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()
