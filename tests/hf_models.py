"""Tiny random Hugging Face models saved with save_pretrained: BERT (encoder), GPT-2 and
Llama (decoders), each with a fast tokenizer trained here on generated text. No downloads."""
from __future__ import annotations

from pathlib import Path

WORDS = ("the a film movie story it was and of to in this great wonderful superb moving brilliant "
         "dull boring awful weak tedious cat sat on mat while dogs ran park birds sang over green hills "
         "under bright sky people walked slowly home after work").split()


def _tokenizer(kind: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))]
    if kind == "bert":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials,
                                                                  show_progress=False))
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
        tok.decoder = decoders.WordPiece()
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def tiny_hf_model(kind: str, out: str | Path) -> str:
    """kind: bert | gpt2 | llama -> a directory AutoModel*.from_pretrained loads."""
    import torch
    from transformers import (BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                              LlamaForCausalLM)

    torch.manual_seed(0)
    tok = _tokenizer("bert" if kind == "bert" else "bpe")
    n = len(tok)
    if kind == "bert":
        model = BertForMaskedLM(BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                           intermediate_size=64, max_position_embeddings=128,
                                           pad_token_id=tok.pad_token_id,
                                           # at BERT's 0.02 a 32-wide random encoder's [CLS] barely
                                           # varies with the input: most strategies then stay at the
                                           # majority class in a 32-step test sweep
                                           initializer_range=0.1))
    elif kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=n, n_embd=32, n_layer=2, n_head=2, n_positions=128,
                                           bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id))
    elif kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                             num_key_value_heads=1, intermediate_size=64, max_position_embeddings=128,
                                             bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id))
    else:
        raise ValueError(kind)
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)
