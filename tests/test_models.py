import torch

from ptft_ray.config import ModelConfig
from ptft_ray.models import Classifier, build_backbone, build_lm, count_params


def test_lm_shapes_and_tied_head():
    m = build_lm(ModelConfig(d_model=32, n_layers=2, n_heads=2, max_seq_len=16), 50)
    ids = torch.randint(0, 50, (3, 16))
    assert m(ids).shape == (3, 16, 50)
    assert m.head.weight is m.backbone.tok_emb.weight  # tied: counted once
    assert count_params(m) == sum(p.numel() for p in set(m.parameters()))


def test_gpt_is_causal():
    torch.manual_seed(0)
    m = build_lm(ModelConfig(d_model=32, n_layers=2, n_heads=2, max_seq_len=16), 50).eval()
    ids = torch.randint(0, 50, (1, 16))
    changed = ids.clone()
    changed[0, 10] = (ids[0, 10] + 1) % 50
    a, b = m(ids), m(changed)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6)  # the past ignores the future
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_seed_lstm_preset_shapes():
    from ptft_ray.config import PRESETS

    mc = ModelConfig(**PRESETS["seed_lstm"])
    m = build_lm(mc, 60)
    assert m.backbone.tok_emb.embedding_dim == 100 and m.backbone.layers[0].hidden_size == 200
    assert m(torch.randint(0, 60, (2, 7))).shape == (2, 7, 60)


def test_classifier_heads_and_layer_groups():
    for mc in (ModelConfig(d_model=32, n_layers=3, n_heads=2, max_seq_len=16),
               ModelConfig(arch="lstm", d_model=16, hidden=24, n_layers=2)):
        bb = build_backbone(mc, 40)
        ids = torch.randint(1, 40, (4, 12))
        ids[:, 8:] = 0  # padding
        assert Classifier(bb, 1, pad_id=0)(ids).shape == (4,)
        clf = Classifier(build_backbone(mc, 40), 5, pad_id=0)
        assert clf(ids).shape == (4, 5)
        assert len(clf.layer_groups()) == mc.n_layers + 2  # embeddings, layers..., head


def test_compiled_training_loss_matches_eager():
    """train.compile runs the task's loss through torch.compile: same loss, same gradients."""
    from ptft_ray.config import load_config
    from ptft_ray.train.tasks import LMTask

    cfg = load_config(None, ["model.preset=gpt_small", "model.d_model=32", "model.n_layers=2",
                             "model.n_heads=2", "model.dropout=0.0"])
    torch.manual_seed(0)
    task = LMTask(cfg, vocab_size=64, pad_id=0)
    batch = {"tokens": torch.randint(1, 64, (4, 17))}
    batch["tokens"][0, 10:] = 0  # a padded tail is ignored by both
    grads = []
    for fn in (task.loss, torch.compile(task.loss)):
        task.model.zero_grad()
        total, n = fn(task.model, batch)
        (total / n).backward()
        grads.append((total.item(), n.item(), [p.grad.clone() for p in task.model.parameters()]))
    (l0, n0, g0), (l1, n1, g1) = grads
    assert n0 == n1 == 4 * 16 - 7
    assert abs(l0 - l1) < 1e-4 * abs(l0)
    assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-5) for a, b in zip(g0, g1))


def test_our_gpt_converts_to_gpt2_with_the_same_logits(tmp_path):
    """A GPT preset comes out in Hugging Face format: GPT2LMHeadModel gives our logits, and
    the directory loads with AutoModelForCausalLM + AutoTokenizer alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ptft_ray import tokenizer as toks
    from ptft_ray.models.convert import save_hf

    from conftest import synthetic_docs

    tok = toks.build("bpe", synthetic_docs(200), 300)
    mc = ModelConfig(d_model=32, n_layers=2, n_heads=4, max_seq_len=32)
    torch.manual_seed(0)
    lm = build_lm(mc, tok.vocab_size).eval()
    save_hf(lm, tok, mc, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = "the cat sat on a mat while dogs ran"
    ids = torch.tensor([tok.encode_batch([text])[0]])
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, lm(ids), rtol=1e-4, atol=1e-4)
