"""The loop's contexts: a requested GPU is never replaced by the CPU in silence, and a
reduction hands back a CPU tensor whatever the worker's device."""
import pytest
import torch

from ptft_ray.errors import PtftError
from ptft_ray.train.context import TuneContext


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_use_gpu_without_a_cuda_device_is_refused_naming_the_key():
    with pytest.raises(PtftError, match=r"scaling\.use_gpu=true but this trial sees no CUDA device"):
        TuneContext({}, use_gpu=True)


def test_single_process_reduction_returns_a_cpu_tensor():
    ctx = TuneContext({}, use_gpu=torch.cuda.is_available())
    t = torch.tensor([1.0, 2.0], device=ctx.device)
    out = ctx.all_reduce(t)
    assert out.device.type == "cpu" and out.tolist() == [1.0, 2.0]
