"""Each strategy: which parameters train, and the LR of every parameter group."""
import pytest
import torch

from ptft_ray.config import FinetuneConfig, ModelConfig
from ptft_ray.errors import PtftError
from ptft_ray.finetune.lora import LoRALinear, merge_lora
from ptft_ray.finetune.strategies import STRATEGIES, params_of
from ptft_ray.models import Classifier, build_backbone

GPT = ModelConfig(d_model=32, n_layers=3, n_heads=2, max_seq_len=16)
LSTM = ModelConfig(arch="lstm", d_model=16, hidden=24, n_layers=2)


def _model(mc=GPT, n_out=3):
    torch.manual_seed(0)
    return Classifier(build_backbone(mc, 40), n_out, pad_id=0)


def _trainable(m):
    return {id(p) for p in m.parameters() if p.requires_grad}


def _ids(groups):
    return {id(p) for g in groups for p in g}


def test_registry_has_the_six_strategies():
    assert set(STRATEGIES) == {"full", "linear_probe", "partial", "lora", "discriminative_lr",
                               "gradual_unfreeze"}


def test_full_trains_everything_at_one_lr():
    m = _model()
    plan = STRATEGIES["full"](m, FinetuneConfig(), 1e-3, 10)
    assert _trainable(m) == {id(p) for p in m.parameters()}
    assert [lr for _, lr in plan.groups] == [1e-3]


def test_linear_probe_trains_only_the_head():
    m = _model()
    plan = STRATEGIES["linear_probe"](m, FinetuneConfig(), 1e-3, 10)
    assert _trainable(m) == {id(p) for p in m.head.parameters()}
    assert _ids(g for g, _ in plan.groups) == _trainable(m)


@pytest.mark.parametrize("k", [1, 2])
def test_partial_unfreezes_top_k_blocks(k):
    m = _model()
    STRATEGIES["partial"](m, FinetuneConfig(unfreeze_top_k=k), 1e-3, 10)
    groups = m.layer_groups()  # [emb, b0, b1, b2+ln_f, head]
    want = _ids(params_of(g) for g in groups[-1 - k:])
    assert _trainable(m) == want
    assert not any(p.requires_grad for p in m.backbone.tok_emb.parameters())


def test_discriminative_lr_decays_layer_by_layer():
    m = _model()
    plan = STRATEGIES["discriminative_lr"](m, FinetuneConfig(lr_decay=0.5), 1e-3, 10)
    lrs = [lr for _, lr in plan.groups]  # bottom (embeddings) ... top (head)
    assert lrs == pytest.approx([1e-3 * 0.5 ** i for i in range(len(lrs))][::-1])
    assert _ids(g for g, _ in plan.groups) == {id(p) for p in m.parameters()}


def test_gradual_unfreeze_schedule_top_down():
    m = _model()
    plan = STRATEGIES["gradual_unfreeze"](m, FinetuneConfig(unfreeze_every=0), 1e-3, 7)
    groups = m.layer_groups()
    until = {frozenset(id(p) for p in ps): step for step, ps in plan.frozen_until}
    # head from step 0 (not listed), top block from 7, next from 14, embeddings last
    expected = [(len(groups) - 1 - i) * 7 for i in range(len(groups) - 1)]
    assert [until[frozenset(id(p) for p in params_of(g))] for g in groups[:-1]] == expected


def test_lora_trains_adapters_and_head_and_merge_matches():
    m = _model()
    plan = STRATEGIES["lora"](m, FinetuneConfig(lora_rank=4, lora_alpha=8), 1e-3, 10)
    loras = [mod for mod in m.modules() if isinstance(mod, LoRALinear)]
    assert len(loras) == 3 * 4  # qkv, proj, fc, fc_out per block
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n or n.startswith("head.") for n in names)
    assert _ids(g for g, _ in plan.groups) == _trainable(m)
    with torch.no_grad():  # make the adapters non-trivial, then merge
        for mod in loras:
            mod.lora_B.normal_(std=0.1)
    m.eval()
    ids = torch.randint(1, 40, (4, 16))
    before = m(ids)
    assert merge_lora(m.backbone) == 12
    assert not any(isinstance(mod, LoRALinear) for mod in m.modules())
    torch.testing.assert_close(m(ids), before, rtol=1e-4, atol=1e-5)


def test_lora_on_lstm_is_a_clear_error():
    with pytest.raises(PtftError, match="lora.*linear layers"):
        STRATEGIES["lora"](_model(LSTM), FinetuneConfig(), 1e-3, 10)


def test_optimizer_groups_follow_the_plan():
    from ptft_ray.config import Config
    from ptft_ray.train.loop import make_optimizer

    m = _model()
    plan = STRATEGIES["discriminative_lr"](m, FinetuneConfig(lr_decay=0.5), 1e-3, 10)
    opt = make_optimizer(plan, Config(), torch.device("cpu"))
    for g in opt.param_groups:  # matrices decay, vectors do not
        assert all(p.ndim >= 2 for p in g["params"]) == (g["weight_decay"] > 0)
    assert sorted({g["base_lr"] for g in opt.param_groups}) == sorted({lr for _, lr in plan.groups})
