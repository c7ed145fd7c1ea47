"""Shared fixtures: one real local Ray session for the whole run, small real files."""
from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
# Train's controller polls its workers every 2 s (so a run's end is noticed up to 2 s late);
# the suite starts many short Train runs. Ray propagates it to the controller.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")

from ptft_ray.data.synthetic import WORDS, synthetic_docs, synthetic_reviews  # noqa: F401,E402 - re-exported to tests


def refusal_lines(stderr: str) -> list[str]:
    """A command's non-empty stderr lines, less the raylet's own warnings (a nearly full disk on
    the test machine), which reach a driver connected to Ray under Ray's "(raylet)" prefix:
    they are Ray's word on the machine, not ours on the input."""
    return [x for x in stderr.splitlines() if x.strip() and "(raylet)" not in x]


# Fault tests (test_faults, test_s3, test_multinode): where a run stands, and its trace file.
def registered_step(run: str) -> int:
    """The step of the latest checkpoint Ray Train has registered for `run` (a directory or a
    URI): what a restart resumes from. A checkpoint can be stored a moment before it is."""
    from ptft_ray import storage

    try:
        return storage.read_json(f"{run}/checkpoint_manager_snapshot.json")["latest_checkpoint_result"]["metrics"]["step"]
    except Exception:  # noqa: BLE001 - not written yet (or half written on S3)
        return 0


def wait_for_checkpoint(run: str, step: int, proc=None, log=None, timeout: float = 300) -> int:
    import time

    t0 = time.time()
    while registered_step(run) < step:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early with {proc.returncode}: "
                                 + (open(log).read()[-2000:] if log else ""))
        assert time.time() - t0 < timeout, f"no registered checkpoint at step >= {step} after {timeout}s"
        time.sleep(0.3)
    return registered_step(run)


def read_trace(path) -> list[dict]:
    import json

    return [json.loads(x) for x in open(path).read().splitlines()]


def restart_index(rows: list[dict]) -> int:
    """The first trace row written by a new (restarted) process."""
    return next(i for i in range(1, len(rows)) if rows[i]["pid"] != rows[i - 1]["pid"])


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from ptft_ray.cluster import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3():
    """A real S3 API (moto) on 127.0.0.1 for the session, its variables in os.environ while
    it runs (so Ray processes started meanwhile inherit them); stopped by PID."""
    from s3_server import S3Server

    server = S3Server().start()
    old = server.apply()
    yield server
    server.stop()
    for k, v in old.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("corpus")
    docs = synthetic_docs(600)
    pq.write_table(pa.table({"text": docs[:300]}), d / "part-0.parquet")
    pq.write_table(pa.table({"text": docs[300:]}), d / "part-1.parquet")
    return str(d)


@pytest.fixture(scope="session")
def debug_config() -> str:
    return os.path.join(os.path.dirname(__file__), "..", "jobs", "configs", "debug.yaml")


@pytest.fixture(scope="session")
def cls_data(tmp_path_factory) -> str:
    texts, labels = synthetic_reviews(900)
    p = tmp_path_factory.mktemp("cls") / "reviews.parquet"
    pq.write_table(pa.table({"text": texts, "label": labels}), p)
    return str(p)


@pytest.fixture(scope="session")
def pretrained_ckpt(ray_session, tiny_corpus, debug_config, tmp_path_factory) -> str:
    from ptft_ray.config import load_config
    from ptft_ray.train.pretrain import pretrain

    cfg = load_config(debug_config, [f"data.path={tiny_corpus}", "schedule.max_steps=30"])
    return pretrain(cfg, str(tmp_path_factory.mktemp("pre") / "run"))["checkpoint"]


@pytest.fixture(scope="session")
def sweep_config() -> str:
    return os.path.join(os.path.dirname(__file__), "..", "jobs", "configs", "debug_sweep.yaml")


# Tiny random Hugging Face models (tests/hf_models.py) and what is built from them, shared by
# test_hf.py and test_compress_serve.py (the fine-tuned BERT is the latter's teacher).
HF_DEBUG = "jobs/configs/debug_hf.yaml"


@pytest.fixture(scope="session")
def hf_dirs(tmp_path_factory):
    from hf_models import tiny_hf_model

    return {k: tiny_hf_model(k, tmp_path_factory.mktemp(k)) for k in ("bert", "gpt2", "llama")}


def hf_cfg(corpus, model_dir, *extra):
    from ptft_ray.config import load_config

    return load_config(HF_DEBUG, [f"data.path={corpus}", f"model.hf={model_dir}", *extra])


@pytest.fixture(scope="session")
def bert_pretrained(ray_session, tiny_corpus, hf_dirs, tmp_path_factory):
    from ptft_ray.train.pretrain import pretrain

    cfg = hf_cfg(tiny_corpus, hf_dirs["bert"], "scaling.num_workers=2", "schedule.max_steps=30")
    return pretrain(cfg, str(tmp_path_factory.mktemp("pre") / "bert"))


@pytest.fixture(scope="session")
def hf_sweeps(ray_session, hf_dirs, bert_pretrained, cls_data, sweep_config, tmp_path_factory):
    """Every strategy once on each backbone: the BERT after continued pretraining (our
    checkpoint) and the GPT-2 directory as it is (no continued pretraining)."""
    from ptft_ray.config import load_config
    from ptft_ray.finetune.sweep import sweep

    out = {}
    for name, src in (("bert", bert_pretrained["checkpoint"]), ("gpt2", hf_dirs["gpt2"])):
        cfg = load_config(sweep_config, [
            f"finetune.data={cls_data}", "sweep.grid_points=1", "sweep.num_samples=1", "sweep.scheduler=none",
            "sweep.lr_min=3e-3", "sweep.lr_max=3e-3", "finetune.epochs=2", "sweep.epochs=[2]",
            "finetune.max_examples=256", "finetune.max_len=32"])
        d = tmp_path_factory.mktemp("hfsweep") / name
        out[name] = (sweep(cfg, [src], str(d)), d)
    return out


def fit_cases(cases: list, workers: int, name: str, cpus: float = 0.5) -> list:
    """Check loops (loop, reference.Check) run one after another on one Ray Train worker group of `workers`
    (train/reference.cases_loop): one group start for all of them. -> each loop's rank-0 value."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from ptft_ray.train.reference import cases_loop

    return TorchTrainer(cases_loop, train_loop_config={"cases": cases},
                        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": cpus}),
                        run_config=RunConfig(name=name, storage_path="/tmp/ptft-checks")).fit().return_value["results"]


def ddp_grad_case(kind: str, hf_dirs: dict, debug_config: str):
    """One global batch of 8 rows for `kind` (gpt: our GPT; bert: masked LM; llama), for
    train/reference.ddp_grad_loop and reference_grads: a reference.Check."""
    import numpy as np

    from ptft_ray import tokenizer as toks
    from ptft_ray.config import load_config
    from ptft_ray.train.reference import Check

    rng = np.random.default_rng(0)
    if kind == "gpt":
        return Check.lm(load_config(debug_config), 258, 257, {"tokens": [rng.integers(0, 256, size=(8, 33)).tolist()]})
    tok = toks.HFTokenizer.from_dir(hf_dirs[kind])
    batch = rng.integers(5, tok.vocab_size, size=(8, 33))
    cfg = load_config(HF_DEBUG, [f"model.hf={hf_dirs[kind]}"])
    if kind == "bert":  # masks drawn once for the whole batch, 5 per row
        labels = mask_rows(batch, rng, 5, tok.mask_id)
        return Check.lm(cfg, tok.vocab_size, tok.pad_id, {"tokens": [batch.tolist()], "mlm_labels": [labels.tolist()]},
                        mask_id=tok.mask_id, special_ids=tok.special_ids)
    return Check.lm(cfg, tok.vocab_size, tok.pad_id, {"tokens": [batch.tolist()]})


def mask_rows(batch, rng, per_row: int, mask_id: int):
    """Masks `per_row` tokens of each row of `batch` [rows, tokens] in place (equal masked
    tokens on every rank that takes whole rows) -> the masked-LM labels (-100 elsewhere)."""
    import numpy as np

    labels = np.full_like(batch, -100)
    for r in range(len(batch)):
        cols = rng.choice(batch.shape[1], size=per_row, replace=False)
        labels[r, cols] = batch[r, cols]
        batch[r, cols] = mask_id
    return labels


@pytest.fixture(scope="session")
def ddp_grads(ray_session, hf_dirs, debug_config) -> dict:
    """kind -> (the gradients 2 DDP ranks all-reduced, the case): our GPT, a tiny BERT and a
    tiny Llama, all on one 2-worker group."""
    from ptft_ray.train.reference import ddp_grad_loop

    cases = {k: ddp_grad_case(k, hf_dirs, debug_config) for k in ("gpt", "bert", "llama")}
    got = fit_cases([(ddp_grad_loop, c) for c in cases.values()], 2, "gradcheck")
    return {k: (g, cases[k]) for k, g in zip(cases, got)}


def assert_grads_match_reference(ddp: dict, check) -> None:
    import numpy as np

    from ptft_ray.train.reference import reference_grads

    ref = reference_grads(check)
    assert ddp.keys() == ref.keys() and len(ref) > 10
    for name in ref:
        np.testing.assert_allclose(ddp[name], ref[name], rtol=1e-4, atol=1e-6, err_msg=name)
