"""Tokenizers: byte-level (no training), BPE (trained with the `tokenizers` library), and a
Hugging Face model's own fast tokenizer (`transformers`).

All expose the same small interface. Ours save to one `tokenizer.json`; a Hugging Face
tokenizer saves its own files (tokenizer.json + tokenizer_config.json + ...), so a
checkpoint directory loads with `AutoTokenizer.from_pretrained` as it is.
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

    def encode_examples(self, texts: list[str], max_len: int) -> list[list[int]]:
        return [ids[:max_len] for ids in self.encode_batch(texts)]

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def token_strings(self, ids) -> list[str]:
        """One readable string per id (explanations show these)."""
        return [bytes([i]).decode("latin-1") if i < 256 else ("<eot>" if i == 256 else "<pad>") for i in map(int, ids)]

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

    def encode_examples(self, texts: list[str], max_len: int) -> list[list[int]]:
        return [ids[:max_len] for ids in self.encode_batch(texts)]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids if int(i) != self.pad_id], skip_special_tokens=False)

    def token_strings(self, ids) -> list[str]:
        # byte-level BPE shows a leading space as "Ġ"; the decoder gives each token's own text
        return [self.tok.decode([int(i)], skip_special_tokens=False) for i in ids]

    def to_json(self) -> str:
        return self.tok.to_str()


# the files of a Hugging Face fast tokenizer that travel with it (tokenizer.json is required)
HF_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class HFTokenizer:
    """A Hugging Face model's own fast tokenizer. Packing (pretraining) encodes without
    special tokens and joins documents with EOS (decoders) or SEP (encoders); classification
    examples get the model's own special tokens ([CLS] ... [SEP], BOS) and are truncated."""

    kind = "hf"

    def __init__(self, tok, files: dict[str, str]):
        self.tok, self.files = tok, files
        self.vocab_size = len(tok)
        self.eot_id = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if self.eot_id is None:
            raise PtftError("the Hugging Face tokenizer has neither an EOS nor a SEP token to join documents with")
        # decoders such as GPT-2 have no pad token: pad with EOS (lengths, not ids, mark padding)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eot_id
        self.mask_id = tok.mask_token_id
        self.special_ids = sorted(set(tok.all_special_ids))

    @classmethod
    def from_files(cls, files: dict[str, str]) -> "HFTokenizer":
        import tempfile

        from transformers import AutoTokenizer

        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise PtftError("tokenizer files map: expected {file name: text}")
        odd = sorted(set(files) - set(HF_FILES))
        if odd:  # names come from a model directory's files: only the known ones, never a path
            raise PtftError(f"tokenizer files map names {odd[0]!r}: not one of {', '.join(HF_FILES)} (refused)")
        with tempfile.TemporaryDirectory(prefix="ptft-tok-") as d:
            for name, text in files.items():
                Path(d, name).write_text(text)
            try:
                tok = AutoTokenizer.from_pretrained(d)
            except Exception as e:  # noqa: BLE001 - transformers raises many kinds
                raise PtftError(f"cannot load the Hugging Face tokenizer: {str(e).splitlines()[0][:200]}") from None
        return cls(tok, files)

    @classmethod
    def from_dir(cls, directory: str | Path) -> "HFTokenizer":
        d = Path(directory)
        if not (d / "tokenizer.json").is_file():
            raise PtftError(f"{d}: no tokenizer.json (a fast Hugging Face tokenizer is needed)")
        return cls.from_files({n: (d / n).read_text() for n in HF_FILES if (d / n).is_file()})

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if not len(texts):  # a batch with no document of this split
            return []
        return self.tok(list(texts), add_special_tokens=False)["input_ids"]

    def encode_examples(self, texts: list[str], max_len: int) -> list[list[int]]:
        if not len(texts):
            return []
        return self.tok(list(texts), add_special_tokens=True, truncation=True, max_length=max_len)["input_ids"]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids])

    def token_strings(self, ids) -> list[str]:
        return self.tok.convert_ids_to_tokens([int(i) for i in ids])

    def to_json(self) -> str:
        return json.dumps({"ptft_tokenizer": "hf", "files": self.files})


Tokenizer = ByteTokenizer | BPETokenizer | HFTokenizer
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
        elif d.get("ptft_tokenizer") == "hf":
            _CACHE[s] = HFTokenizer.from_files(d["files"])
        else:
            from tokenizers import Tokenizer as RawTokenizer

            try:
                _CACHE[s] = BPETokenizer(RawTokenizer.from_str(s))
            except Exception as e:  # tokenizers raises plain Exception subclasses
                raise PtftError(f"tokenizer JSON is not a valid tokenizer: {e}") from None
    return _CACHE[s]


def save(tok: Tokenizer, directory: str | Path) -> None:
    if isinstance(tok, HFTokenizer):  # its own files: AutoTokenizer loads the directory
        for name, text in tok.files.items():
            Path(directory, name).write_text(text)
        return
    Path(directory, "tokenizer.json").write_text(tok.to_json())


def load(directory: str | Path) -> Tokenizer:
    p = Path(directory, "tokenizer.json")
    if not p.is_file():
        raise PtftError(f"no tokenizer.json in {directory}")
    if Path(directory, "tokenizer_config.json").is_file():
        return from_json(HFTokenizer.from_dir(directory).to_json())  # cached by content
    return from_json(p.read_text())


def build(kind: str, sample_texts: list[str], vocab_size: int) -> Tokenizer:
    if kind == "byte":
        return ByteTokenizer()
    if not sample_texts:
        raise PtftError("cannot train a BPE tokenizer: the corpus sample is empty")
    return BPETokenizer.train(sample_texts, vocab_size)
