"""Real Ray Train runs on a tiny corpus: DDP, gradients vs a reference, save -> load -> resume."""
import json

import pytest
import torch
from safetensors.torch import load_file

from ptft_ray import load_pretrained
from ptft_ray.config import load_config
from ptft_ray.train import checkpoint as ckpt
from ptft_ray.train.pretrain import pretrain

from conftest import assert_grads_match_reference

pytestmark = pytest.mark.slow


def _cfg(debug_config, corpus, *extra):
    return load_config(debug_config, [f"data.path={corpus}", *extra])


def test_two_worker_ddp_pretraining_loss_falls(ray_session, tiny_corpus, debug_config, tmp_path):
    # compiled: the DDP-wrapped model called inside the torch.compile'd loss, as on a cluster
    cfg = _cfg(debug_config, tiny_corpus, "scaling.num_workers=2", "schedule.max_steps=40", "train.compile=true")
    out = pretrain(cfg, str(tmp_path / "run"))
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    for key in ("train_loss", "val_loss", "val_perplexity", "tokens_per_s", "steps", "checkpoint"):
        assert saved[key] is not None, key
    assert saved["steps"] == 40 and saved["num_workers"] == 2
    # the corpus feed's rate, timed before training (no GPU here: no CPUs-per-GPU verdict)
    assert saved["feed"]["tokenize_pack_tokens_per_s_per_cpu"] > 0 and "enough" not in saved["feed"]
    hist = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    # global batch: 2 workers x 8 x 32 tokens per step
    assert hist[-1]["tokens"] == pytest.approx(40 * 2 * 8 * 32, rel=0.02)
    model, tok, loaded_cfg = load_pretrained(out["checkpoint"])  # no Ray needed
    assert loaded_cfg.data.seq_len == 32 and tok.vocab_size == 258
    ids = torch.tensor([tok.encode_batch(["the cat sat on"])[0]])
    assert torch.isfinite(model(ids)).all()


def test_ddp_gradients_equal_single_process_reference(ddp_grads):
    assert_grads_match_reference(*ddp_grads["gpt"])


def test_save_load_resume_matches_uninterrupted_run_in_fp16(ray_session, tiny_corpus, debug_config, tmp_path):
    """0->16 in one go equals 0->8 then a resumed 8->16: same weights, so the optimizer
    state, the step, the data position and the loss scale all came back from the checkpoint.
    fp16 autocast with a GradScaler (GPUs without bf16): the scale backs off where the scaled
    gradients overflow fp16 (those steps are skipped), the weights stay fp32. (fp32 resumes
    are checked exactly too: test_hf's masked-LM resume, test_fsdp's, test_s3's.)"""
    common = ["train.precision=fp16", "schedule.warmup_steps=0", "schedule.decay=constant",
              "checkpoint.every_steps=8", "train.eval_every=4", "train.log_every=4", "data.docs_per_batch=16"]
    full = pretrain(_cfg(debug_config, tiny_corpus, "schedule.max_steps=16", *common), str(tmp_path / "a"))
    half = pretrain(_cfg(debug_config, tiny_corpus, "schedule.max_steps=8", *common), str(tmp_path / "b"))
    assert half["steps"] == 8
    # the checkpoint on disk: weights load back exactly, optimizer state through weights_only
    model, _, _ = load_pretrained(half["checkpoint"])
    on_disk = load_file(f"{half['checkpoint']}/model.safetensors")
    for k, v in model.state_dict().items():
        if k in on_disk:
            assert torch.equal(v, on_disk[k])
    state = torch.load(f"{half['checkpoint']}/train_state.pt", weights_only=True)
    assert len(state["optimizer"]["state"]) > 0
    assert ckpt.read_meta(half["checkpoint"])["state"]["step"] == 8

    resumed = pretrain(_cfg(debug_config, tiny_corpus, "schedule.max_steps=16", *common), str(tmp_path / "b"))
    assert resumed["resumed"] and resumed["steps"] == 16
    hist = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist if h["step"] > 8][0] > 8  # continued, did not restart
    scaler = ckpt.read_meta(full["checkpoint"])["state"]["grad_scaler"]
    assert scaler["scale"] < 65536.0   # torch's initial scale: it backed off at least once
    assert ckpt.read_meta(resumed["checkpoint"])["state"]["grad_scaler"] == scaler
    hist = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    a = load_file(f"{full['checkpoint']}/model.safetensors")
    b = load_file(f"{resumed['checkpoint']}/model.safetensors")
    assert {t.dtype for t in a.values()} == {torch.float32}
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_seed_lstm_jsonl_corpus_accumulation_and_bf16(ray_session, tmp_path, debug_config):
    """The seed design's LSTM, a JSONL corpus with another text column, 2 micro-batches per
    step and bf16 autocast (CPU here; the same path runs on GPU)."""
    from conftest import synthetic_docs

    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(json.dumps({"body": d}) for d in synthetic_docs(300)))
    cfg = load_config(debug_config, [f"data.path={p}", "data.text_column=body", "model.preset=seed_lstm",
                                     "train.grad_accum=2", "train.precision=bf16",
                                     "schedule.max_steps=12", "train.log_every=4", "train.eval_every=12"])
    out = pretrain(cfg, str(tmp_path / "run"))
    hist = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert out["steps"] == 12 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["tokens"] == pytest.approx(12 * 2 * 8 * 32, rel=0.03)   # 2 micro-batches a step
    model, _, c = load_pretrained(out["checkpoint"])
    assert c.model.arch == "lstm" and c.model.hidden == 200


def test_plain_text_corpus_streams(ray_session, tmp_path):
    """A .txt corpus (one document per line) through the same Ray Data pipeline."""
    from conftest import synthetic_docs

    from ptft_ray import tokenizer as toks
    from ptft_ray.config import DataConfig
    from ptft_ray.data.corpus import build_datasets, check_corpus

    p = tmp_path / "c.txt"
    docs = synthetic_docs(200)
    p.write_text("\n".join(docs))
    dc = DataConfig(path=str(p), tokenizer="byte", seq_len=31, val_fraction=0.2, max_val_blocks=10_000, block_mb=1)
    files, fmt = check_corpus(dc)
    train, val, _ = build_datasets(dc, toks.ByteTokenizer(), files, fmt)
    from ray.data import DataContext

    assert DataContext.get_current().target_max_block_size == 2 ** 20  # data.block_mb bounds task memory
    n_tokens = sum(int((b["tokens"] != 257).sum()) for ds in (train, val)
                   for b in ds.iter_batches(batch_format="numpy"))
    assert fmt == "text" and n_tokens == sum(len(d.encode()) + 1 for d in docs)


def test_bpe_gpt_run_also_comes_out_in_hugging_face_format(ray_session, tiny_corpus, debug_config, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = _cfg(debug_config, tiny_corpus, "data.tokenizer=bpe", "data.vocab_size=300", "schedule.max_steps=10",
               "train.eval_every=10", "checkpoint.every_steps=10")
    out = pretrain(cfg, str(tmp_path / "run"))
    assert out["hf_model"] == str(tmp_path / "run" / "hf_model")
    ours, tok, _ = load_pretrained(out["checkpoint"])
    hf = AutoModelForCausalLM.from_pretrained(out["hf_model"]).eval()
    text = "the cat sat on a mat"
    ids = torch.tensor([AutoTokenizer.from_pretrained(out["hf_model"])(text, add_special_tokens=False)["input_ids"]])
    assert ids[0].tolist() == tok.encode_batch([text])[0]
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours(ids), rtol=1e-4, atol=1e-4)
