"""Our GPT language model in Hugging Face format: a `GPT2LMHeadModel` with the same weights.

Our blocks are GPT-2's: pre-LN, fused q/k/v projection, learned positions, tied embeddings,
LayerNorm eps 1e-5, attention scaled by 1/sqrt(head dim). Two differences are mapped:
    activation   ours is exact GELU -> GPT2Config(activation_function="gelu"), not gelu_new
    linear       GPT-2's Conv1D stores [in, out]: our nn.Linear weights [out, in] are transposed
The tokenizer becomes a `PreTrainedTokenizerFast` (EOS <|endoftext|>, PAD <|pad|>).
So `AutoModelForCausalLM.from_pretrained(out)` gives our model's logits (tested).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import ModelConfig
from ..errors import PtftError


def gpt_to_hf(lm, m: ModelConfig, vocab_size: int):
    """-> a GPT2LMHeadModel holding the weights of `lm` (our LanguageModel with a GPT backbone)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if m.arch != "gpt" or m.hf:
        raise PtftError("only our GPT presets convert to GPT-2 (the LSTM keeps our format)")
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=m.max_seq_len, n_embd=m.d_model, n_layer=m.n_layers,
                     n_head=m.n_heads, n_inner=m.d_ff or 4 * m.d_model, activation_function="gelu",
                     resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout,
                     layer_norm_epsilon=1e-5, tie_word_embeddings=True)
    hf = GPT2LMHeadModel(cfg)
    b = lm.backbone
    sd = {"transformer.wte.weight": b.tok_emb.weight, "transformer.wpe.weight": b.pos_emb.weight,
          "transformer.ln_f.weight": b.ln_f.weight, "transformer.ln_f.bias": b.ln_f.bias}
    for i, blk in enumerate(b.blocks):
        p = f"transformer.h.{i}."
        for ours, theirs in ((blk.ln1, "ln_1"), (blk.ln2, "ln_2")):
            sd[p + theirs + ".weight"], sd[p + theirs + ".bias"] = ours.weight, ours.bias
        for ours, theirs in ((blk.attn.qkv, "attn.c_attn"), (blk.attn.proj, "attn.c_proj"),
                             (blk.fc, "mlp.c_fc"), (blk.fc_out, "mlp.c_proj")):
            sd[p + theirs + ".weight"], sd[p + theirs + ".bias"] = ours.weight.t(), ours.bias
    with torch.no_grad():
        missing, unexpected = hf.load_state_dict({k: v.detach().clone().contiguous() for k, v in sd.items()},
                                                 strict=False)
    hf.tie_weights()
    missing = [k for k in missing if k != "lm_head.weight" and not k.endswith(".attn.bias")]
    if missing or unexpected:
        raise PtftError(f"GPT -> GPT-2 conversion left {missing[:5]} missing, {unexpected[:5]} unexpected")
    return hf.eval()


def save_hf(lm, tok, m: ModelConfig, out: str | Path) -> Path:
    """Write our GPT language model and its BPE tokenizer as a Hugging Face directory at `out`."""
    from transformers import PreTrainedTokenizerFast

    from .. import tokenizer as toks

    if not isinstance(tok, toks.BPETokenizer):
        raise PtftError(f"only a BPE tokenizer converts to a Hugging Face tokenizer, not {tok.kind!r}")
    out = Path(out)
    gpt_to_hf(lm, m, tok.vocab_size).save_pretrained(out)
    PreTrainedTokenizerFast(tokenizer_object=tok.tok, eos_token=toks.EOT, bos_token=toks.EOT,
                            pad_token=toks.PAD).save_pretrained(out)
    return out
