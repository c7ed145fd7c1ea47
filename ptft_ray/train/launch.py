"""The one launcher: `fit` runs a RunSpec on Ray Train, `fit_trials` runs trials on Ray Tune.

Pretraining, fine-tuning, every sweep trial of several workers and distillation go through
`fit`; sweeps and distillation grids through `fit_trials`. `trial_resources` is the one rule
for how many trials run at once and what each reserves.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import storage
from ..cluster import DATA_CPUS, train_logging, worker_resources
from ..config import Config
from ..errors import PtftError, raise_user_error
from .loop import train_loop_per_worker
from .spec import RunSpec


@dataclass(frozen=True)
class Workers:
    """One Ray Train worker group: how many, on GPUs or not, what each reserves."""
    num: int
    use_gpu: bool
    per_worker: dict

    @classmethod
    def of(cls, cfg: Config, res: dict) -> "Workers":
        """scaling.* checked against the cluster (`res`: cluster_summary())."""
        sc = cfg.scaling
        return cls(sc.num_workers, sc.use_gpu,
                   worker_resources(sc.num_workers, sc.cpus_per_worker, sc.use_gpu, sc.gpus_per_worker, res))


def fit(spec: RunSpec, datasets: dict, workers: Workers, where: str, *, retries: int | None = None,
        callbacks: tuple = (), ordered: bool = False):
    """A TorchTrainer over `workers`, its run directory at `where` (local or URI). Best-only
    runs keep their best checkpoint by the spec's metric, others the newest
    checkpoint.num_to_keep. ordered (a pretraining corpus stream): a deterministic block order,
    so that a resumed run skips exactly the batches it consumed, and read-ahead bounded by
    data.stream_buffer_mb. -> Ray's Result."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    keep = spec.keep
    kept = (CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=keep.metric,
                             checkpoint_score_order=keep.mode)
            if keep.best_only else CheckpointConfig(num_to_keep=spec.config.checkpoint.num_to_keep))
    retries = spec.config.run.max_failures if retries is None else retries
    trainer = TorchTrainer(
        train_loop_per_worker, train_loop_config={"spec": spec},
        scaling_config=ScalingConfig(num_workers=workers.num, use_gpu=workers.use_gpu,
                                     resources_per_worker=workers.per_worker or None),
        run_config=RunConfig(**storage.ray_storage(where), **train_logging(), callbacks=list(callbacks),
                             checkpoint_config=kept, failure_config=FailureConfig(max_failures=retries)),
        datasets=datasets,
        **({"dataset_config": DataConfig(execution_options=_stream_options(spec.config.data))}
           if ordered else {}))
    try:
        return trainer.fit()
    except Exception as e:  # noqa: BLE001 - re-raised as the user's error where it is one
        raise_user_error(e)


def _stream_options(dc):
    """Train's options for the corpus stream (they replace the dataset's own): the block order
    fixed, read-ahead bounded (data/corpus.stream_limits)."""
    from ray.data import ExecutionOptions

    from ..data.corpus import stream_limits

    return ExecutionOptions(preserve_order=True, resource_limits=stream_limits(dc))


def fit_trials(trainable, bundle: dict, where: str, *, metric: str, mode: str, concurrent: int,
               param_space: dict | None = None, search=None, scheduler=None, num_samples: int = 1,
               time_budget_s: float | None = None, callbacks: tuple = (), max_failures: int = 0,
               resume: bool = False, stop=None, in_process: bool = False):
    """A Ray Tune experiment at `where` (local or URI), each trial reserving `bundle`, each
    keeping its best checkpoint by `metric`. resume: continue the experiment found there.
    stop: a Tune Stopper (per trial and for the whole experiment). in_process: each trial runs
    the loop in its own actor, which then takes the next trial instead of a new process starting
    (a TorchTrainer trial's actor does not: it owns a worker group; docs/decisions.md, "Trial
    actors reused"). -> Tune's ResultGrid."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(trainable, bundle)
    # a BasicVariantGenerator instance ignores TuneConfig.max_concurrent_trials: it bounds itself
    bounded = isinstance(search, BasicVariantGenerator)
    if resume:
        fs, path = storage.resolve(where)
        # sample_from functions are stored as placeholders: the space is handed back
        return tune.Tuner.restore(path, trainable=trainable, resume_errored=False, storage_filesystem=fs,
                                  param_space=param_space).fit()
    tuner = tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=scheduler, search_alg=search,
                                    num_samples=num_samples, time_budget_s=time_budget_s or None,
                                    max_concurrent_trials=None if bounded else concurrent,
                                    reuse_actors=in_process),
        run_config=tune.RunConfig(
            **storage.ray_storage(where), verbose=0, callbacks=list(callbacks), stop=stop,
            # a trial lost with its node (spot preemption) runs again from its checkpoint
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=metric,
                                                    checkpoint_score_order=mode)))
    return tuner.fit()


@dataclass(frozen=True)
class Trials:
    """How a sweep's trials run: in the trial actor (one worker) or on their own TorchTrainer,
    the Tune bundle each reserves, its Train workers, and how many run at once."""
    in_process: bool
    bundle: dict
    workers: Workers
    concurrent: int


def trial_resources(cfg: Config, res: dict) -> Trials:
    """Trials at a time: what the CPUs allow, and with GPUs no more than the GPUs hold
    (32 CPUs / 4 GPUs at 1 GPU a trial: 4, not 32)."""
    sw, sc = cfg.sweep, cfg.scaling
    in_process = sw.in_process == "always" or (sw.in_process == "auto" and sw.workers_per_trial == 1)
    if in_process and sw.workers_per_trial != 1:
        raise PtftError("sweep.in_process=always needs sweep.workers_per_trial=1")
    if in_process and sc.strategy == "fsdp":
        raise PtftError("scaling.strategy=fsdp shards over a trial's Ray Train workers: set sweep.in_process=never "
                        "(or sweep.workers_per_trial=2 or more)")
    gpu_slots = (int(res["gpus"] / (sw.workers_per_trial * sc.gpus_per_worker) + 1e-9)
                 if sc.use_gpu else None)
    if in_process:
        cpus = sw.cpus_per_trial or 1.0
        conc = sw.max_concurrent_trials or max(1, min(int(res["cpus"] // cpus), gpu_slots or 10 ** 9))
        if cpus * conc > res["cpus"] + 1e-9 or cpus > res["max_node_cpus"]:
            raise PtftError(f"sweep: {conc} concurrent trial(s) x {cpus:g} CPU do not fit a cluster of "
                            f"{res['cpus']:g} CPUs (largest node {res['max_node_cpus']:g}); lower "
                            f"sweep.max_concurrent_trials or sweep.cpus_per_trial")
        bundle = {"CPU": cpus}
        if sc.use_gpu:
            worker_resources(1, cpus, True, sc.gpus_per_worker, {**res, "cpus": res["cpus"] + DATA_CPUS},
                             copies=conc, what="sweep")
            bundle["GPU"] = sc.gpus_per_worker
        return Trials(True, bundle, Workers(1, sc.use_gpu, {}), conc)
    conc = sw.max_concurrent_trials or max(1, min(int((res["cpus"] - DATA_CPUS) // sw.workers_per_trial),
                                                  gpu_slots or 10 ** 9))
    per_worker = worker_resources(sw.workers_per_trial, sw.cpus_per_trial, sc.use_gpu,
                                  sc.gpus_per_worker, res, copies=conc, what="sweep")
    # the trial function only waits on its TorchTrainer: a sliver of CPU
    return Trials(False, {"CPU": 0.01}, Workers(sw.workers_per_trial, sc.use_gpu, per_worker), conc)
