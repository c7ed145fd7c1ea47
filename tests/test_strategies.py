"""Each strategy on our GPT and on Hugging Face BERT / GPT-2 / Llama classifiers: which
parameters train, the LR of every parameter group, and LoRA / DoRA merging (peft)."""
import pytest
import torch

from ptft_ray.config import STRATEGIES as NAMES
from ptft_ray.config import FinetuneConfig, ModelConfig
from ptft_ray.errors import PtftError
from ptft_ray.finetune.lora import merge_lora
from ptft_ray.finetune.strategies import STRATEGIES
from ptft_ray.models import Classifier, build_backbone

from hf_models import tiny_hf_model

GPT = ModelConfig(d_model=32, n_layers=3, n_heads=2, max_seq_len=16)
LSTM = ModelConfig(arch="lstm", d_model=16, hidden=24, n_layers=2)
KINDS = ["ours", "bert", "gpt2", "llama"]


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    return {k: tiny_hf_model(k, tmp_path_factory.mktemp(k)) for k in ("bert", "gpt2", "llama")}


def _model(kind="ours", hf_dirs=None, n_out=3):
    torch.manual_seed(0)
    if kind == "ours":
        return Classifier(build_backbone(GPT, 40), n_out, pad_id=0)
    if kind == "lstm":
        return Classifier(build_backbone(LSTM, 40), n_out, pad_id=0)
    from ptft_ray.models.hf import HFClassifier

    return HFClassifier.build(hf_dirs[kind], [f"c{i}" for i in range(n_out)], pad_id=0, dropout=0.1)


def _trainable(m):
    return {id(p) for p in m.parameters() if p.requires_grad}


def _ids(groups):
    return {id(p) for g in groups for p in g}


def _get(kind, request):
    return _model(kind, request.getfixturevalue("hf_dirs") if kind != "ours" else None)


def test_registry_has_the_six_strategies_named_in_config():
    assert tuple(STRATEGIES) == tuple(NAMES)
    assert tuple(STRATEGIES)[:6] == ("full", "linear_probe", "partial", "lora", "discriminative_lr",
                                     "gradual_unfreeze")


@pytest.mark.parametrize("kind", KINDS)
def test_layer_groups_cover_every_parameter_once(kind, request):
    m = _get(kind, request)
    groups = m.layer_groups()
    flat = [id(p) for g in groups for p in g]
    assert len(flat) == len(set(flat)) == len({id(p) for p in m.parameters()})
    assert len(groups) == 2 + (GPT.n_layers if kind == "ours" else 2)  # embeddings, layers, head
    assert all(groups)


@pytest.mark.parametrize("kind", KINDS)
def test_full_trains_everything_at_one_lr(kind, request):
    m = _get(kind, request)
    plan = STRATEGIES["full"](m, FinetuneConfig(), 1e-3, 10)
    assert _trainable(m) == {id(p) for p in m.parameters()}
    assert [lr for _, lr in plan.groups] == [1e-3]


@pytest.mark.parametrize("kind", KINDS)
def test_linear_probe_trains_only_the_head(kind, request):
    m = _get(kind, request)
    head = _ids([m.layer_groups()[-1]])
    plan = STRATEGIES["linear_probe"](m, FinetuneConfig(), 1e-3, 10)
    assert _trainable(m) == head and head
    assert _ids(g for g, _ in plan.groups) == head


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 2])
def test_partial_unfreezes_top_k_groups(kind, k, request):
    m = _get(kind, request)
    groups = m.layer_groups()  # [emb, layers..., head]
    STRATEGIES["partial"](m, FinetuneConfig(unfreeze_top_k=k), 1e-3, 10)
    assert _trainable(m) == _ids(groups[-1 - k:])
    assert not any(p.requires_grad for p in groups[0])


@pytest.mark.parametrize("kind", KINDS)
def test_discriminative_lr_decays_layer_by_layer(kind, request):
    m = _get(kind, request)
    plan = STRATEGIES["discriminative_lr"](m, FinetuneConfig(lr_decay=0.5), 1e-3, 10)
    lrs = [lr for _, lr in plan.groups]  # bottom (embeddings) ... top (head)
    assert lrs == pytest.approx([1e-3 * 0.5 ** i for i in range(len(lrs))][::-1])
    assert _ids(g for g, _ in plan.groups) == {id(p) for p in m.parameters()}


@pytest.mark.parametrize("kind", KINDS)
def test_gradual_unfreeze_schedule_top_down(kind, request):
    m = _get(kind, request)
    plan = STRATEGIES["gradual_unfreeze"](m, FinetuneConfig(unfreeze_every=0), 1e-3, 7)
    groups = m.layer_groups()
    until = {frozenset(id(p) for p in ps): step for step, ps in plan.frozen_until}
    # head from step 0 (not listed), top layer from 7, next from 14, embeddings last
    expected = [(len(groups) - 1 - i) * 7 for i in range(len(groups) - 1)]
    assert [until[frozenset(id(p) for p in g)] for g in groups[:-1]] == expected


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dora", [False, True])
def test_lora_trains_adapters_and_head_and_merge_matches(kind, dora, request):
    from peft.tuners.lora import LoraLayer

    m = _get(kind, request)
    head = _ids([m.layer_groups()[-1]])
    plan = STRATEGIES["lora"](m, FinetuneConfig(lora_rank=4, lora_alpha=8, lora_dora=dora), 1e-3, 10)
    loras = [mod for mod in m.backbone.modules() if isinstance(mod, LoraLayer)]
    if kind == "ours":
        assert len(loras) == 3 * 4  # qkv, proj, fc, fc_out per block
    else:
        assert len(loras) >= 2 * 4  # at least the attention and MLP projections of 2 layers
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    adapters = {n for n in names if "lora_" in n}
    assert adapters and all("lora_" in n or id(dict(m.named_parameters())[n]) in head for n in names)
    assert _ids(g for g, _ in plan.groups) == _trainable(m)
    with torch.no_grad():  # make the adapters non-trivial, then merge
        for n, p in m.named_parameters():
            if "lora_B" in n or "magnitude" in n:
                p.add_(torch.randn_like(p) * 0.1)
    m.eval()
    ids = torch.randint(5, 40, (4, 12))
    mask = torch.ones_like(ids, dtype=torch.bool)
    before = m(ids, mask)
    assert merge_lora(m.backbone) == len(loras)
    assert not any(isinstance(mod, LoraLayer) for mod in m.modules())
    torch.testing.assert_close(m(ids, mask), before, rtol=1e-4, atol=1e-5)


def test_lora_on_lstm_is_a_clear_error():
    with pytest.raises(PtftError, match="lora.*linear layers"):
        STRATEGIES["lora"](_model("lstm"), FinetuneConfig(), 1e-3, 10)


def test_optimizer_groups_follow_the_plan():
    from ptft_ray.config import Config
    from ptft_ray.train.optim import make_optimizer

    m = _model()
    plan = STRATEGIES["discriminative_lr"](m, FinetuneConfig(lr_decay=0.5), 1e-3, 10)
    opt = make_optimizer(plan, Config(), torch.device("cpu"))
    for g in opt.param_groups:  # matrices decay, vectors do not
        assert all(p.ndim >= 2 for p in g["params"]) == (g["weight_decay"] > 0)
    assert sorted({g["base_lr"] for g in opt.param_groups}) == sorted({lr for _, lr in plan.groups})


NEWCOMER = r'''
import json, re, sys
import torch
from ptft_ray.config import load_config, with_values
from ptft_ray.finetune.strategies import register
from ptft_ray.finetune.task import ClsSpec
from ptft_ray.train.optim import make_optimizer
from ptft_ray.train.param_groups import ParamGroups
from ptft_ray.train.spec import Keep, RunSpec, Steps

readme = open("README.md").read()
section = readme.split("## Adding a fine-tuning strategy", 1)[1]
exec(re.search(r"```python\n(.*?)```", section, re.S).group(1))   # the README's own example, as written
cfg = load_config("jobs/configs/debug_sweep.yaml", ["finetune.strategy=bitfit", "sweep.strategies=[full,bitfit]"])
cfg = with_values(cfg, {"model.d_model": 32, "model.n_layers": 2, "model.n_heads": 2, "model.max_seq_len": 128})
spec = RunSpec(config=cfg, task=ClsSpec(("neg", "pos"), "binary", vocab_size=40, pad_id=0), tokenizer="",
               steps=Steps(1, 1, 1), keep=Keep(best_only=True))
torch.manual_seed(0)
task = spec.task.build(spec)
groups = task.groups(spec)
opt = make_optimizer(groups, cfg, torch.device("cpu"))
before = {n: p.detach().clone() for n, p in task.model.named_parameters()}
batch = {"input_ids": torch.randint(1, 40, (4, 8)), "length": torch.full((4,), 8), "label": torch.tensor([0, 1, 0, 1])}
total, n = task.loss(task.model, batch)
(total / n).backward()
opt.step()
changed = sorted(k for k, p in task.model.named_parameters() if not torch.equal(p, before[k]))
print(json.dumps({"strategy": cfg.finetune.strategy, "sweep": cfg.sweep.strategies, "changed": changed,
                  "params": sorted(before)}))
'''


def test_a_strategy_added_in_one_file():
    """The README's "Adding a fine-tuning strategy" example, run as written in a fresh
    interpreter: one registered function, and the config accepts its name, the classification
    task trains with it, and only what it chose moves. Without it, the name is refused at load."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", NEWCOMER], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["strategy"] == "bitfit" and r["sweep"] == ["full", "bitfit"]
    assert r["changed"] and all(k.endswith("bias") or k.startswith("head.") for k in r["changed"])
    assert any(k.startswith("head.") for k in r["changed"]) and any(k.startswith("backbone.") for k in r["changed"])
    assert len(r["changed"]) < len(r["params"])  # the weight matrices of the backbone stayed
    plain = subprocess.run([sys.executable, "-c", "from ptft_ray.config import load_config; load_config("
                            "'jobs/configs/debug_sweep.yaml', ['finetune.strategy=bitfit'])"],
                           capture_output=True, text=True, cwd=root)
    assert plain.returncode != 0 and "unknown strategy 'bitfit'" in plain.stderr
