"""The streaming pretraining corpus on Ray Data.

    read (parquet | jsonl | text) -> map_batches(tokenize + split + pack) -> blocks [n, seq_len+1]

The train dataset stays lazy and streams: Ray Data's streaming executor keeps at most a
bounded share of the object store in flight (backpressure), so a corpus larger than the
object store is read once per epoch without being held in memory. The validation split
(documents whose text hash falls under `val_fraction`) is small, so it is materialised once.
The tokenize step is a plain function, not an actor pool: an actor-pool map beside
fractional-CPU train workers hung on 2 CPUs (shared/notes/ray-2.60-facts.md).
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..config import DataConfig
from ..errors import PtftError
from ..tokenizer import Tokenizer, from_json
from . import sources
from .packing import is_val, pack, padding


def tokenize_pack(batch: dict, *, column: str, tok_json: str, split: str,
                  val_fraction: float, block: int) -> dict:
    """One map_batches call: keep this split's documents, tokenize, pack into blocks."""
    tok = from_json(tok_json)
    want_val = split == "val"
    texts = [t for t in batch[column] if isinstance(t, str) and t.strip()
             and is_val(t, val_fraction) == want_val]
    return {"tokens": pack(tok.encode_batch(texts), tok.eot_id, tok.pad_id, block)}


def read_corpus(files: list[str], fmt: str, column: str):
    import ray.data

    if fmt == "parquet":
        return ray.data.read_parquet(files).select_columns([column])
    if fmt == "jsonl":
        return ray.data.read_json(files, lines=True)
    if fmt == "text":
        return ray.data.read_text(files)
    raise PtftError(f"data.format {fmt!r} is not a corpus format (parquet, jsonl, text)")


def check_corpus(dc: DataConfig) -> tuple[list[str], str]:
    """Everything that can be checked on the driver before Ray starts."""
    files, fmt = sources.resolve_files(dc.path, dc.format, "corpus")
    if fmt == "csv":
        raise PtftError(f"corpus {dc.path}: CSV is for task data; use parquet, jsonl or text")
    sources.check_text_column(files, fmt, dc.text_column)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        # the footers only until one file has rows: a corpus of many files is not opened whole
        if not any(pq.ParquetFile(sources.opened(f)).metadata.num_rows for f in files):
            raise PtftError(f"corpus {dc.path} is empty: its Parquet files hold no rows")
    return files, fmt


def stream_limits(dc: DataConfig):
    """Ray Data's resource limits for a corpus stream: read-ahead stops at data.stream_buffer_mb
    of object store. Training consumes a few blocks at a time; Ray's default (up to half the
    object store) let a 100x corpus fill gigabytes ahead and crowd the CPUs while the workers
    start (docs/decisions.md, "A corpus of any size")."""
    from ray.data import ExecutionResources

    return ExecutionResources(object_store_memory=dc.stream_buffer_mb * 2 ** 20)


def build_datasets(dc: DataConfig, tok: Tokenizer, files: list[str], fmt: str):
    """-> (train Dataset (lazy), val Dataset (materialised), val token counts)."""
    from ray.data import DataContext

    # a stable block order: the same validation blocks and the same training order every run
    DataContext.get_current().execution_options.preserve_order = True
    # Ray's default 128 MB blocks let one task hold 0.8-1.1 GB (input text + Python token lists
    # + packed output) once the corpus fills a block; 16 MB blocks kept it to 0.43-0.52 GB at
    # 4x and 8x the object store (BENCHMARKS.md, item 3). Process-wide, like preserve_order.
    DataContext.get_current().target_max_block_size = dc.block_mb * 2 ** 20
    DataContext.get_current().execution_options.resource_limits = stream_limits(dc)  # the validation read
    column = "text" if fmt == "text" else dc.text_column
    kw = dict(column=column, tok_json=tok.to_json(), val_fraction=dc.val_fraction,
              block=dc.seq_len + 1)
    base = read_corpus(files, fmt, column)

    def split(name: str):
        return base.map_batches(tokenize_pack, fn_kwargs={**kw, "split": name},
                                batch_size=dc.docs_per_batch, batch_format="numpy")

    try:
        val = split("val").limit(dc.max_val_blocks).materialize()
    except Exception as e:  # noqa: BLE001 - a read / decode failure inside Ray Data
        from ..errors import error_line, find_user_error

        user = find_user_error(e)
        if user:
            raise user from e
        raise PtftError(f"corpus {dc.path}: cannot read it ({error_line(e)[:200]})") from e
    if val.count() == 0:
        raise PtftError(f"corpus {dc.path}: the validation split is empty "
                        f"(too few documents for data.val_fraction={dc.val_fraction})")
    train = split("train")
    return (train.materialize() if cached(dc, files, fmt) else train), val, target_counts(val, tok)


# packed int32 blocks per byte on disk, upper ends: Parquet compresses text ~2-3x and BPE
# averages ~3.5-4 characters a token, so 4 B a token is ~1.2x the text; JSONL and text are plain
PACKED_PER_DISK_BYTE = {"parquet": 4.0, "jsonl": 1.2, "text": 1.2}


def cached(dc: DataConfig, files: list[str], fmt: str) -> bool:
    """Whether the training blocks are tokenized once and held in the object store: a corpus
    short of data.cache_mb packed. Streamed, every epoch re-reads and re-tokenizes it, which a
    corpus of a few steps an epoch pays every few steps (docs/decisions.md, "A small corpus is
    tokenized once")."""
    if dc.cache_mb <= 0:
        return False
    room, total = dc.cache_mb * 2 ** 20 / PACKED_PER_DISK_BYTE[fmt], 0
    for f in files:  # stops at the first file past the room: a large corpus is not listed whole
        total += sources.size_of(f)
        if total > room:
            return False
    return True


def target_counts(ds, tok: Tokenizer) -> np.ndarray:
    """How often each token id is a target (a block's tokens after the first, padding left out)
    in the blocks of `ds`."""
    counts = np.zeros(tok.vocab_size, dtype=np.int64)
    for b in ds.iter_batches(batch_size=256, batch_format="numpy"):
        counts += _block_targets(b["tokens"], tok)
    return counts


def _block_targets(blocks: np.ndarray, tok: Tokenizer) -> np.ndarray:
    keep = ~padding(blocks, tok.pad_id, tok.eot_id).numpy()[:, 1:]
    return np.bincount(blocks[:, 1:][keep], minlength=tok.vocab_size)


def first_train_counts(dc: DataConfig, tok: Tokenizer, files: list[str], fmt: str, max_blocks: int) -> np.ndarray:
    """target_counts of the corpus's first max_blocks training blocks, packed as the stream
    packs them (data.docs_per_batch documents a call), read and tokenized here on the driver:
    a Ray Data pass for a few hundred blocks cost ~4 s of every run."""
    column = "text" if fmt == "text" else dc.text_column
    kw = dict(column=column, tok_json=tok.to_json(), split="train", val_fraction=dc.val_fraction,
              block=dc.seq_len + 1)
    docs, blocks, have = sources.iter_texts(files, fmt, column, dc.docs_per_batch), [], 0
    while have < max_blocks:
        texts = np.array(list(itertools.islice(docs, dc.docs_per_batch)), dtype=object)
        if not len(texts):  # the whole corpus
            break
        blocks.append(tokenize_pack({column: texts}, **kw)["tokens"])
        have += len(blocks[-1])
    return _block_targets(np.concatenate(blocks or [np.zeros((0, dc.seq_len + 1), np.int64)])[:max_blocks], tok)


def unigram_perplexity(train_counts: np.ndarray, val_counts: np.ndarray, ignore=()) -> float:
    """Perplexity on the validation targets of a unigram model of the training text (add-1/2
    smoothing over the vocabulary): the level a language model must beat to have learned any
    context. `ignore`: ids the loss never scores (a masked LM's special tokens). The validation
    set's own entropy is no such level: fitted on a few thousand tokens of a 30k vocabulary, it
    sits far below any unigram model of other text (docs/decisions.md, "The unigram level")."""
    keep = np.ones(len(val_counts), dtype=bool)
    keep[list(ignore)] = False
    p = train_counts[keep] + 0.5
    logp = np.log(p / p.sum())
    val = val_counts[keep]
    return float(math.exp(-(val * logp).sum() / max(val.sum(), 1)))
