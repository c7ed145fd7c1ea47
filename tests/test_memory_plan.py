"""The memory plan: what it counts, what it picks, and the one line when nothing fits."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ptft_ray.train.memory import GIB, ModelShape, choose, per_device

ROOT = Path(__file__).resolve().parent.parent
DEBUG_SWEEP = str(ROOT / "jobs" / "configs" / "debug_sweep.yaml")

# Llama-3.1-8B's published shape (8.03B parameters; the count is checked on the meta device in
# benchmarks/memory_plan.py)
LLAMA_8B = ModelShape(params=8_030_261_248, layers=32, hidden=4096, heads=32, vocab=128256, block_params=218_112_000)


def test_ddp_counts_20_bytes_a_parameter_and_fsdp_divides_by_the_ranks():
    ddp = per_device(LLAMA_8B, "ddp", 8, 1, 2048, True, True)
    P = LLAMA_8B.params
    # fp32 weights + bf16 autocast copies, fp32 grads + DDP's buckets, AdamW's two moments
    assert ddp["parameters"] == 6 * P and ddp["gradients"] == 8 * P and ddp["optimizer"] == 8 * P
    fsdp8 = per_device(LLAMA_8B, "fsdp", 8, 1, 2048, True, True)
    fsdp16 = per_device(LLAMA_8B, "fsdp", 16, 1, 2048, True, True)
    assert fsdp8["optimizer"] == pytest.approx(8 * P / 8) and fsdp16["optimizer"] == pytest.approx(8 * P / 16)
    assert fsdp16["total"] < fsdp8["total"] < ddp["total"]
    # checkpointing keeps one block's activations, not 32
    assert per_device(LLAMA_8B, "fsdp", 8, 4, 2048, True, True)["activations"] < \
        per_device(LLAMA_8B, "fsdp", 8, 4, 2048, True, False)["activations"] / 4


def test_the_plan_keeps_ddp_where_it_fits_and_shards_where_it_must():
    small = ModelShape(params=22_700_000, layers=6, hidden=384, heads=12, vocab=2, block_params=1_800_000)
    assert choose(small, 4, 16, 128, True, 24e9)["strategy"] == "ddp"
    on_24 = choose(LLAMA_8B, 16, 8, 2048, True, 24e9)
    assert on_24["fits"] and on_24["strategy"] == "fsdp" and on_24["activation_checkpointing"]
    assert on_24["per_device_bytes"]["total"] <= 0.9 * 24e9
    assert on_24["micro_batch"] * on_24["grad_accum_factor"] == 8  # accumulation keeps the global batch
    assert not choose(LLAMA_8B, 1, 8, 2048, True, 80e9)["fits"]
    pinned = choose(small, 4, 16, 128, True, 24e9, strategy="fsdp", checkpointing="false")
    assert pinned["strategy"] == "fsdp" and not pinned["activation_checkpointing"]
    assert choose(small, 1, 16, 128, False, None)["fits"]  # no device limit known (CPU)


def test_a_run_that_fits_no_way_exits_2_in_one_line_before_anything_is_written(tmp_path, tiny_corpus):
    out = tmp_path / "never"
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", "pretrain", "--config", "jobs/configs/debug.yaml",
                        "--set", f"data.path={tiny_corpus}", "--set", "scaling.gpu_memory_gb=0.0001",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2, r.stderr[-1500:]
    line = r.stderr.strip().splitlines()[-1]
    assert "does not fit" in line and "GiB per device" in line and "scaling.num_workers" in line
    assert not out.exists()


def test_plan_json_carries_the_memory_plan(ray_session, pretrained_ckpt, cls_data):
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", "plan", "--config", DEBUG_SWEEP, "--data", cls_data,
                        "--pretrained", pretrained_ckpt, "--budget", "5m", "--json",
                        "--set", "scaling.gpu_memory_gb=16"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-1500:]
    mem = json.loads(r.stdout)["memory"]
    assert mem["strategy"] in ("ddp", "fsdp") and mem["fits"] is True
    assert set(mem["per_device_bytes"]) == {"parameters", "gradients", "optimizer", "activations", "total"}
    assert isinstance(mem["activation_checkpointing"], bool) and mem["device_bytes"] == int(16 * GIB)
    # scaling.use_gpu is off in this config: the CPU computes in bf16 where it has native bf16, else fp32
    from ptft_ray.train.precision import cpu_bf16

    assert mem["precision"].startswith("16-bit") if cpu_bf16() else mem["precision"] == "fp32"


def test_the_plan_counts_one_chunk_of_logits_not_the_whole_batch():
    from ptft_ray.train.memory import activation_bytes

    whole = activation_bytes(LLAMA_8B, 8, 2048, True, True, loss_chunk=8 * 2048)
    chunked = activation_bytes(LLAMA_8B, 8, 2048, True, True)  # auto: 128 MiB of fp32 logits a chunk
    # micro-batch 8 x 2,048 x 128,256 x (2 + 4 + 4) bytes = 19.6 GiB of logits when whole
    assert whole - chunked > 19 * GIB



@pytest.mark.parametrize("command", ["sweep", "finetune"])
def test_a_run_that_fits_no_device_is_refused_before_overwrite_clears_its_directory(
        command, ray_session, pretrained_ckpt, cls_data, tmp_path):
    from ptft_ray.config import load_config
    from ptft_ray.errors import PtftError
    from ptft_ray.finetune.single import finetune
    from ptft_ray.finetune.sweep import sweep

    out = tmp_path / command
    out.mkdir()
    (out / "result.json").write_text("an earlier run\n")
    cfg = load_config(DEBUG_SWEEP, [f"finetune.data={cls_data}", "scaling.gpu_memory_gb=0.0001"])
    with pytest.raises(PtftError, match="does not fit"):
        if command == "sweep":
            sweep(cfg, [pretrained_ckpt], str(out), overwrite=True)
        else:
            finetune(cfg, pretrained_ckpt, str(out), overwrite=True)
    assert (out / "result.json").read_text() == "an earlier run\n"
