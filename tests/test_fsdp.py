"""Beyond one device's memory, on CPU with gloo and real Ray Train workers: FSDP2 and DDP
against one process (loss and weights over 5 AdamW steps) for our GPT, a tiny Llama and a
tiny BERT (masked LM); FSDP with activation checkpointing and LoRA; per-rank state ~1/N of
DDP's; a sharded checkpoint saved by 2 ranks read by 1 and 4; an FSDP pretraining run resumed
on another number of workers; its checkpoint loaded by transformers alone."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from ptft_ray.config import load_config, with_values
from ptft_ray.train.reference import Check

from conftest import HF_DEBUG, fit_cases, hf_cfg, mask_rows

pytestmark = pytest.mark.slow
STEPS = 5


def _lm_check(cfg, vocab: int, pad: int, rng, mask_id=None, special=()) -> Check:
    """5 steps on one batch of 8 rows x 17 tokens (no padding: every rank scores as many
    items; one batch again and again, so that the loss falls)."""
    tokens = rng.integers(5, vocab, size=(1, 8, 17))
    if mask_id is None:
        return Check.lm(cfg, vocab, pad, {"tokens": tokens.tolist()}, steps=STEPS)
    labels = mask_rows(tokens[0], rng, 4, mask_id)[None]  # masks drawn once, 4 per row
    return Check.lm(cfg, vocab, pad, {"tokens": tokens.tolist(), "mlm_labels": labels.tolist()},
                    mask_id=mask_id, special_ids=special, steps=STEPS)


def _agree(got: dict, ref: dict, what: str):
    np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-4, err_msg=f"{what}: losses")
    assert got["params"].keys() == ref["params"].keys()
    for k in ref["params"]:
        if k.endswith("key.bias"):  # softmax ignores a key bias: its gradient is rounding noise, which
            continue                # AdamW's normalisation scales up to a whole step

        np.testing.assert_allclose(got["params"][k], ref["params"][k], rtol=1e-3, atol=2e-5, err_msg=f"{what}: {k}")


def _check_for(kind, hf_dirs, debug_config, rng) -> Check:
    from ptft_ray import tokenizer as toks

    if kind == "gpt":
        return _lm_check(load_config(debug_config, ["model.max_seq_len=32", "data.seq_len=16"]), 258, 257, rng)
    tok = toks.HFTokenizer.from_dir(hf_dirs[kind])
    cfg = load_config(HF_DEBUG, [f"model.hf={hf_dirs[kind]}", "data.seq_len=16"])
    if kind == "bert":
        return _lm_check(cfg, tok.vocab_size, tok.pad_id, rng, tok.mask_id, tok.special_ids)
    return _lm_check(cfg, tok.vocab_size, tok.pad_id, rng)


def _bytes_check(debug_config) -> Check:
    c = _lm_check(load_config(debug_config, ["model.max_seq_len=32", "data.seq_len=16"]), 258, 257,
                  np.random.default_rng(1))
    return dataclasses.replace(c, steps=1)


def _lora_check(hf_dirs) -> Check:
    """A tiny Llama classifier, LoRA adapters + head trainable."""
    from ptft_ray import tokenizer as toks
    from ptft_ray.finetune.task import ClsSpec

    tok = toks.HFTokenizer.from_dir(hf_dirs["llama"])
    cfg = load_config(HF_DEBUG, [f"model.hf={hf_dirs['llama']}", "finetune.strategy=lora", "finetune.max_len=16"])
    rng = np.random.default_rng(2)
    return Check(cfg, ClsSpec(("a", "b", "c"), "multiclass", tok.vocab_size, tok.pad_id),
                 {"input_ids": rng.integers(5, tok.vocab_size, size=(STEPS, 8, 12)).tolist(),
                  "length": np.full((STEPS, 8), 12).tolist(), "label": rng.integers(0, 3, size=(STEPS, 8)).tolist()},
                 steps=STEPS, init_from=hf_dirs["llama"])


@pytest.fixture(scope="module")
def fsdp_run(ray_session, tiny_corpus, hf_dirs, tmp_path_factory):
    """Continued pretraining of the tiny Llama, FSDP over 2 workers, 8 steps."""
    from ptft_ray.train.pretrain import pretrain

    out = tmp_path_factory.mktemp("fsdp") / "run"
    cfg = hf_cfg(tiny_corpus, hf_dirs["llama"], "scaling.num_workers=2", "scaling.strategy=fsdp",
                 "schedule.max_steps=8", "checkpoint.every_steps=8", "train.eval_every=8")
    return pretrain(cfg, str(out)), str(out)


@pytest.fixture(scope="module")
def restore_check(fsdp_run, hf_dirs) -> Check:
    """fsdp_run's sharded checkpoint and a fixed batch, for restore_and_step_loop."""
    from ptft_ray import tokenizer as toks
    from ptft_ray.config import Config
    from ptft_ray.train import checkpoint as ckpt

    result, _ = fsdp_run
    tok = toks.HFTokenizer.from_dir(hf_dirs["llama"])
    rng = np.random.default_rng(4)
    cfg = Config.from_dict(ckpt.read_meta(result["checkpoint"])["config"])
    return Check.lm(cfg, tok.vocab_size, tok.pad_id, {"tokens": [rng.integers(5, tok.vocab_size, size=(8, 17)).tolist()]},
                    checkpoint=result["checkpoint"])


@pytest.fixture(scope="module")
def on_ranks(ray_session, hf_dirs, debug_config, restore_check) -> dict:
    """Every check of this file that runs on a worker group, one group per world size (a
    group start costs ~30 s here, a check a few): (name, ranks) -> rank 0's result."""
    from ptft_ray.train.reference_parallel import parallel_steps_loop, restore_and_step_loop

    two = {}
    for kind in ("gpt", "llama", "bert"):
        c = _check_for(kind, hf_dirs, debug_config, np.random.default_rng(0))
        # FSDP's runs sum the causal-LM loss in chunks of 5 positions, the reference over the whole batch
        chunked = with_values(c.config, {"train.loss_chunk_tokens": 5})
        two[f"{kind}-ddp"] = (parallel_steps_loop, dataclasses.replace(c, strategy="ddp"))
        two[f"{kind}-fsdp"] = (parallel_steps_loop, dataclasses.replace(c, config=chunked, strategy="fsdp"))
    sizes = _bytes_check(debug_config)
    two["bytes-ddp"] = (parallel_steps_loop, dataclasses.replace(sizes, strategy="ddp"))
    two["bytes-fsdp"] = (parallel_steps_loop, dataclasses.replace(sizes, strategy="fsdp"))
    two["lora-fsdp-ac"] = (parallel_steps_loop, dataclasses.replace(_lora_check(hf_dirs), strategy="fsdp",
                                                                    checkpointing=True))
    two["restore"] = (restore_and_step_loop, restore_check)
    four = {"bytes-fsdp": (parallel_steps_loop, dataclasses.replace(sizes, strategy="fsdp")),
            "restore": (restore_and_step_loop, restore_check)}
    out = {}
    for n, cases in ((2, two), (4, four), (1, {"restore": (restore_and_step_loop, restore_check)})):
        got = fit_cases(list(cases.values()), n, f"ranks-{n}", cpus=0.5 if n == 2 else 0.25)
        out.update({(name, n): g for name, g in zip(cases, got)})
    return out


@pytest.mark.parametrize("kind", ["gpt", "llama", "bert"])
def test_fsdp_and_ddp_train_as_one_process_does(kind, on_ranks, hf_dirs, debug_config):
    from ptft_ray.train.reference_parallel import reference_steps

    ref = reference_steps(_check_for(kind, hf_dirs, debug_config, np.random.default_rng(0)))
    assert ref["losses"][-1] < ref["losses"][0]  # it trains
    for strategy in ("ddp", "fsdp"):
        _agree(on_ranks[(f"{kind}-{strategy}", 2)], ref, f"{kind} {strategy}")


def test_fsdp_state_per_rank_is_a_1_over_n_share(on_ranks):
    """Parameters + AdamW state a rank holds: DDP the whole, FSDP ~1/N (N = 2, 4)."""
    ddp = on_ranks[("bytes-ddp", 2)]["bytes"]
    for n in (2, 4):
        fsdp = on_ranks[("bytes-fsdp", n)]["bytes"]
        assert fsdp == pytest.approx(ddp / n, rel=0.1), (n, fsdp, ddp)


def test_fsdp_with_activation_checkpointing_and_lora_trains_as_one_process(on_ranks, hf_dirs):
    """The Llama classifier, every block recomputed in the backward, sharded over 2 ranks: the
    same losses and weights as one process without any."""
    from ptft_ray.train.reference_parallel import reference_steps

    ref = reference_steps(_lora_check(hf_dirs))
    _agree(on_ranks[("lora-fsdp-ac", 2)], ref, "fsdp + activation checkpointing + lora")
    trainable = [k for k in ref["params"] if "lora_" in k]
    assert trainable, "LoRA adapters expected in the classifier"


def test_fsdp_checkpoint_is_sharded_and_loads_in_transformers(fsdp_run):
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    from ptft_ray.models.hf import HFLM

    result, _ = fsdp_run
    ck = Path(result["checkpoint"])
    shards = sorted(p.name for p in (ck / "dcp").iterdir())
    assert ".metadata" in shards and len([s for s in shards if s.endswith(".distcp")]) == 2  # one per rank
    model = AutoModelForCausalLM.from_pretrained(str(ck))
    ours = HFLM.load(str(ck))
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    torch.testing.assert_close(model(ids).logits, ours(ids))


def test_sharded_checkpoint_reads_back_on_one_and_four_ranks(on_ranks):
    """Saved by 2 ranks; read by 1, 2 and 4: the same loss on a fixed batch, and the same loss
    after one more AdamW step (the optimizer state came back too)."""
    got = {n: on_ranks[("restore", n)]["losses"] for n in (1, 2, 4)}
    for n in (1, 4):
        np.testing.assert_allclose(got[n], got[2], rtol=1e-4, err_msg=f"{n} ranks")
    assert got[2][1] < got[2][0]  # the step was taken with the restored optimizer


def test_fsdp_run_resumes_on_another_number_of_workers(fsdp_run, tiny_corpus, hf_dirs):
    from ptft_ray.train.pretrain import pretrain

    result, out = fsdp_run
    cfg = hf_cfg(tiny_corpus, hf_dirs["llama"], "scaling.num_workers=1", "scaling.strategy=fsdp",
                 "schedule.max_steps=12", "checkpoint.every_steps=4", "train.eval_every=4")
    again = pretrain(cfg, out)
    assert again["resumed"] is True and again["steps"] == 12
    hist = [json.loads(x) for x in open(f"{out}/metrics.jsonl").read().splitlines()]
    assert hist[0]["step"] <= 8 and hist[-1]["step"] == 12


def test_fsdp_trains_in_fp16_with_a_grad_scaler(ray_session, tiny_corpus, hf_dirs, tmp_path):
    """FSDP2 over 2 workers with fp16 compute (a GPU without bf16, here on CPU gloo): the
    all-gathered copies compute in fp16, the sharded fp32 masters take the unscaled steps,
    the loss falls, and the scaler's state is in the checkpoint."""
    from safetensors.torch import load_file

    from ptft_ray.train import checkpoint as ckpt
    from ptft_ray.train.pretrain import pretrain

    out = tmp_path / "run"
    cfg = hf_cfg(tiny_corpus, hf_dirs["llama"], "scaling.num_workers=2", "scaling.strategy=fsdp",
                 "train.precision=fp16", "schedule.max_steps=12", "checkpoint.every_steps=12",
                 "train.eval_every=4", "train.log_every=4", "optim.lr=3e-3")
    result = pretrain(cfg, str(out))
    hist = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert "scale" in ckpt.read_meta(result["checkpoint"])["state"]["grad_scaler"]
    weights = load_file(f"{result['checkpoint']}/model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
