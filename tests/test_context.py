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


@pytest.mark.parametrize("sets, want", [
    ([], (True, 4, {"CPU": 1.0, "GPU": 1.0})),                               # 32 CPUs, 4 GPUs: 4 trials, not 32
    (["scaling.gpus_per_worker=0.5"], (True, 8, {"CPU": 1.0, "GPU": 0.5})),  # fractional one-worker trials
    (["sweep.workers_per_trial=2"], (False, 2, None)),                       # 2 DDP workers x 1 GPU per trial
])
def test_gpu_sweep_concurrency_comes_from_the_gpus(sets, want, sweep_config):
    from ptft_ray.config import load_config
    from ptft_ray.finetune.sweep import trial_resources

    cfg = load_config(sweep_config, ["scaling.use_gpu=true", "sweep.max_concurrent_trials=0", *sets])
    res = {"cpus": 32.0, "gpus": 4.0, "max_node_cpus": 32.0, "max_node_gpus": 4.0, "nodes": 1}
    in_process, bundle, scaling, conc = trial_resources(cfg, res)
    assert (in_process, conc) == want[:2]
    if want[2]:
        assert bundle == want[2]
    else:
        assert scaling["resources_per_worker"]["GPU"] == 1.0 and scaling["num_workers"] == 2
