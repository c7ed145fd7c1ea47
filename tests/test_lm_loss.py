"""The language-model loss over chunks of positions (models/lm_loss.py): the same sum and
the same gradients as the whole batch's logits, for a bare head, our GPT and a tiny Llama
and GPT-2 through the task the loop calls; the auto rule chunks only large logits."""
import pytest
import torch

from ptft_ray.config import load_config, with_values
from ptft_ray.models.lm_loss import IGNORE, chunk_tokens, cross_entropy_sum

from conftest import HF_DEBUG


def test_chunked_sum_and_gradients_equal_the_whole():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False)
    hidden = torch.randn(3, 11, 16, requires_grad=True)
    targets = torch.randint(0, 50, (3, 11))
    targets[0, -4:] = IGNORE
    grads = []
    for chunk in (33, 7, 1):  # 33: the whole batch; 7 does not divide 33
        hidden.grad, head.weight.grad = None, None
        loss = cross_entropy_sum(hidden, head, targets, chunk)
        loss.backward()
        grads.append((loss.detach(), hidden.grad.clone(), head.weight.grad.clone()))
    for got in grads[1:]:
        for a, b in zip(got, grads[0]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_auto_chunks_only_logits_over_its_limit():
    assert chunk_tokens(8 * 256, 258) == 8 * 256                # small vocabulary: one chunk
    per = chunk_tokens(8 * 2048, 128_256)
    assert per < 8 * 2048 and per * 128_256 * 4 <= 2 ** 27      # Llama 3's: 128 MiB of fp32 logits a chunk
    assert chunk_tokens(100, 128_256, setting=16) == 16
    assert chunk_tokens(10, 258, setting=16) == 10


def _task_loss_and_grads(cfg, vocab, pad):
    from ptft_ray.train.tasks import LMTask

    torch.manual_seed(1)
    task = LMTask(cfg, vocab, pad)
    x = torch.randint(5, vocab, (4, 13))
    x[1, 9:] = pad  # a padded tail: ignored in the loss
    total, n = task.loss(task.model, {"tokens": x})
    total.backward()
    return total.detach(), n, {k: p.grad.clone() for k, p in task.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["gpt", "llama", "gpt2"])
def test_task_loss_in_chunks_equals_the_whole(kind, hf_dirs, debug_config):
    from ptft_ray import tokenizer as toks

    if kind == "gpt":
        base, vocab, pad = load_config(debug_config, ["model.max_seq_len=32"]), 258, 257
    else:
        tok = toks.HFTokenizer.from_dir(hf_dirs[kind])
        base, vocab, pad = load_config(HF_DEBUG, [f"model.hf={hf_dirs[kind]}"]), tok.vocab_size, tok.pad_id
    whole = _task_loss_and_grads(base, vocab, pad)
    chunked = _task_loss_and_grads(with_values(base, {"train.loss_chunk_tokens": 5}), vocab, pad)
    torch.testing.assert_close(chunked[0], whole[0], rtol=1e-5, atol=1e-5)
    assert chunked[1] == whole[1] < 4 * 12
    assert chunked[2].keys() == whole[2].keys() and whole[2]
    for k in whole[2]:
        torch.testing.assert_close(chunked[2][k], whole[2][k], rtol=1e-4, atol=1e-6, msg=k)
