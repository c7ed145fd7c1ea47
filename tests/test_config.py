import subprocess
import sys

import pytest

from ptft_ray.config import Config, load_config
from ptft_ray.errors import PtftError


def test_debug_config_loads(debug_config):
    cfg = load_config(debug_config)
    assert cfg.model.arch == "gpt" and cfg.model.d_model == 64  # from the gpt_tiny preset
    assert cfg.model.max_seq_len == 64                           # user key beats the preset
    assert Config.from_dict(cfg.to_dict()) == cfg                # travels to workers as a dict


def test_overrides_and_yaml_number_forms(debug_config):
    cfg = load_config(debug_config, ["optim.lr=3e-4", "train.batch_size=4",
                                     "sweep.strategies=full,lora", "scaling.use_gpu=false"])
    assert cfg.optim.lr == pytest.approx(3e-4) and cfg.train.batch_size == 4
    assert cfg.sweep.strategies == ["full", "lora"] and cfg.scaling.use_gpu is False


@pytest.mark.parametrize("override, needle", [
    ("optim.lrr=1", "optim.lrr"),                       # unknown key
    ("optimizer.lr=1", "optimizer"),                    # unknown section
    ("train.batch_size=abc", "train.batch_size"),       # wrong type
    ("train.batch_size=2.5", "train.batch_size"),       # float for an int
    ("scaling.use_gpu=maybe", "scaling.use_gpu"),       # not a bool
    ("optim.lr=-1", "optim.lr"),                        # negative LR
    ("optim.lr=0", "optim.lr"),                         # zero LR
    ("data.seq_len=1000", "data.seq_len"),              # over the model's maximum
    ("model.arch=rnn", "model.arch"),                   # not a choice
    ("model.n_heads=3", "model.n_heads"),               # 64 % 3 != 0
    ("finetune.strategy=magic", "finetune.strategy"),   # unknown strategy
    ("model.preset=huge", "model.preset"),              # unknown preset
    ("data.block_mb=0", "data.block_mb"),               # Ray Data blocks need a size
    ("train.compile=sometimes", "train.compile"),       # not a bool
    ("schedule.head_warmup_steps=5", "schedule.head_warmup_steps"),  # our GPT: no separate LM head
    ("optim.head_lr=1e-2", "optim.head_lr"),            # the same
])
def test_bad_config_names_the_key(debug_config, override, needle):
    with pytest.raises(PtftError, match=needle.replace(".", r"\.")):
        load_config(debug_config, [override])


@pytest.mark.parametrize("sets", [["sweep.metric=val_loss", "sweep.mode=min"], ["sweep.epochs=[1, 2]"]])
def test_stopping_on_noise_refuses_what_it_cannot_read(debug_config, sets):
    """Its noise is an accuracy's, and a trial's length tells it when one completed."""
    with pytest.raises(PtftError, match=r"sweep\.stop_on_noise"):
        load_config(debug_config, ["sweep.stop_on_noise=true", *sets])


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(PtftError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(PtftError, match="not valid YAML"):
        load_config(str(bad))


def test_cli_bad_config_exits_2_with_one_line(debug_config):
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", "pretrain", "--config", debug_config,
                        "--set", "optim.lr=-1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "optim.lr" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("config, overrides, needle", [
    ("debug.yaml", ["model.hf=some/dir"], "model.preset"),                 # a preset and an HF model
    ("debug_hf.yaml", ["model.hf=x", "model.d_model=64"], "model.d_model"),  # would be ignored
    ("debug_hf.yaml", ["model.hf=x", "model.dropout=0.2"], "model.dropout"),
    ("debug_hf.yaml", ["model.hf=x", "data.tokenizer=byte"], "data.tokenizer"),
    ("debug_hf.yaml", ["data.tokenizer=hf"], "data.tokenizer"),            # hf tokenizer, no model
])
def test_hf_model_keys_that_would_be_ignored_are_refused(config, overrides, needle):
    with pytest.raises(PtftError, match=needle.replace(".", r"\.")):
        load_config(f"jobs/configs/{config}", overrides)


def test_hf_model_takes_its_own_tokenizer():
    cfg = load_config("jobs/configs/debug_hf.yaml", ["model.hf=some/model"])
    assert cfg.data.tokenizer == "hf" and Config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("cmd", ["pretrain", "sweep"])
def test_fractional_gpus_with_several_ddp_workers_exit_2_naming_the_key(debug_config, cmd):
    """Two DDP ranks may land on one GPU with 0.5 GPU each, and NCCL refuses that: refused at
    load, before Ray starts (contract: one line naming scaling.gpus_per_worker, exit 2)."""
    extra = ["--pretrained", "none", "--data", "x.parquet"] if cmd == "sweep" else []
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", cmd, "--config", debug_config, *extra,
                        "--set", "scaling.use_gpu=true", "--set", "scaling.num_workers=2",
                        "--set", "scaling.gpus_per_worker=0.5"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "scaling.gpus_per_worker" in r.stderr
    cfg = load_config(debug_config, ["scaling.use_gpu=true", "scaling.gpus_per_worker=0.5"])  # one worker: fine
    assert cfg.scaling.gpus_per_worker == 0.5


def test_forward_env_takes_variable_names_only():
    import pytest

    from ptft_ray.config import load_config
    from ptft_ray.errors import PtftError

    assert load_config(None, ["cluster.forward_env=[WANDB_API_KEY, MY_TOKEN]"]).cluster.forward_env == [
        "WANDB_API_KEY", "MY_TOKEN"]
    with pytest.raises(PtftError, match=r"cluster.forward_env.*'MY_TOKEN=abc' is not an environment variable name"):
        load_config(None, ["cluster.forward_env=[MY_TOKEN=abc]"])
