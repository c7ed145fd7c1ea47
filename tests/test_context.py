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
    from ptft_ray.train.launch import trial_resources

    cfg = load_config(sweep_config, ["scaling.use_gpu=true", "sweep.max_concurrent_trials=0", *sets])
    res = {"cpus": 32.0, "gpus": 4.0, "max_node_cpus": 32.0, "max_node_gpus": 4.0, "nodes": 1}
    trials = trial_resources(cfg, res)
    assert (trials.in_process, trials.concurrent) == want[:2]
    if want[2]:
        assert trials.bundle == want[2]
    else:
        assert trials.workers.per_worker["GPU"] == 1.0 and trials.workers.num == 2


def test_first_batch_early_streams_the_same_batches_resumes_and_raises_in_the_loops_thread(ray_session):
    """The loop's stream with its first batch fetched on a thread (while the model is built):
    the same batches in the same order as the plain stream, across an epoch boundary; a
    resumed stream skips what its checkpoint consumed; a fetch error reaches the caller."""
    import ray.data

    from ptft_ray.train.stream import FirstBatchEarly, batch_stream

    ctx = TuneContext({"train": ray.data.from_items([{"x": i} for i in range(10)])})

    def take(stream, n):
        return [next(stream)["x"].tolist() for _ in range(n)]

    plain_state = {"epoch": 0, "batch_in_epoch": 0}
    plain_stream = batch_stream(ctx, plain_state, 4, 0, 0)
    plain = take(plain_stream, 5)                                # 2 batches an epoch (drop_last)
    early_state = {"epoch": 0, "batch_in_epoch": 0}
    early = FirstBatchEarly(batch_stream(ctx, early_state, 4, 0, 0))
    assert take(early, 5) == plain == [[0, 1, 2, 3], [4, 5, 6, 7]] * 2 + [[0, 1, 2, 3]]
    assert early_state == plain_state == {"epoch": 2, "batch_in_epoch": 1}

    resumed = FirstBatchEarly(batch_stream(ctx, {"epoch": 1, "batch_in_epoch": 1}, 4, 0, 0))
    assert take(resumed, 2) == [[4, 5, 6, 7], [0, 1, 2, 3]]

    too_big = FirstBatchEarly(batch_stream(ctx, {"epoch": 0, "batch_in_epoch": 0}, 11, 0, 0))
    with pytest.raises(PtftError, match="yields no batch of 11"):
        next(too_big)
    for s in (plain_stream, early.stream, resumed.stream):  # Ray Data's iterators, closed while Ray runs
        s.close()
