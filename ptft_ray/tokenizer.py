"""Tokenizers: byte-level (no training) and BPE (trained with the `tokenizers` library).

Both expose the same small interface and save to one `tokenizer.json` in a checkpoint.
Special tokens: <|endoftext|> separates documents when packing; <|pad|> fills the tail of
a partial block and short classification examples (its targets are masked out).
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import PtftError

EOT, PAD = "<|endoftext|>", "<|pad|>"


class ByteTokenizer:
    """UTF-8 bytes 0..255, then EOT=256, PAD=257."""

    kind = "byte"

    def __init__(self):
        self.vocab_size = 258
        self.eot_id, self.pad_id = 256, 257

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(t.encode("utf-8", errors="replace")) for t in texts]

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return json.dumps({"ptft_tokenizer": "byte"})


class BPETokenizer:
    """Byte-level BPE from `tokenizers`: lossless on any UTF-8 text."""

    kind = "bpe"

    def __init__(self, tok):
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()
        self.eot_id, self.pad_id = tok.token_to_id(EOT), tok.token_to_id(PAD)

    @classmethod
    def train(cls, texts: list[str], vocab_size: int) -> "BPETokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[EOT, PAD],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids if int(i) != self.pad_id], skip_special_tokens=False)

    def to_json(self) -> str:
        return self.tok.to_str()


Tokenizer = ByteTokenizer | BPETokenizer
_CACHE: dict[str, Tokenizer] = {}


def from_json(s: str) -> Tokenizer:
    """Build (once per process) a tokenizer from its JSON form."""
    if s not in _CACHE:
        try:
            d = json.loads(s)
        except json.JSONDecodeError as e:
            raise PtftError(f"tokenizer JSON is corrupt: {e}") from None
        if d.get("ptft_tokenizer") == "byte":
            _CACHE[s] = ByteTokenizer()
        else:
            from tokenizers import Tokenizer as HFTokenizer

            try:
                _CACHE[s] = BPETokenizer(HFTokenizer.from_str(s))
            except Exception as e:  # tokenizers raises plain Exception subclasses
                raise PtftError(f"tokenizer JSON is not a valid tokenizer: {e}") from None
    return _CACHE[s]


def save(tok: Tokenizer, directory: str | Path) -> None:
    Path(directory, "tokenizer.json").write_text(tok.to_json())


def load(directory: str | Path) -> Tokenizer:
    p = Path(directory, "tokenizer.json")
    if not p.is_file():
        raise PtftError(f"no tokenizer.json in {directory}")
    return from_json(p.read_text())


def build(kind: str, sample_texts: list[str], vocab_size: int) -> Tokenizer:
    if kind == "byte":
        return ByteTokenizer()
    if not sample_texts:
        raise PtftError("cannot train a BPE tokenizer: the corpus sample is empty")
    return BPETokenizer.train(sample_texts, vocab_size)
