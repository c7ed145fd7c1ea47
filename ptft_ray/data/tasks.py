"""Text classification data: read, check, split (stratified, seeded), tokenize, hand to Ray.

Binary tasks (two labels) train one logit with BCE-with-logits, as in the seed design;
more labels use cross-entropy. Labels are kept as strings; their sorted order is the label
map saved with every model, so index i always means `labels[i]`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import FinetuneConfig
from ..errors import PtftError
from . import sources


@dataclass
class TaskData:
    path: str
    texts: list[str]
    labels: np.ndarray          # int64 index into label_names
    label_names: list[str]
    splits: dict[str, np.ndarray]  # "train" / "val" / "test" -> row indices
    val_split_size: int = 0        # the whole validation split (splits["val"] may be a subset)

    @property
    def task_type(self) -> str:
        return "binary" if len(self.label_names) == 2 else "multiclass"

    def balance(self, split: str = "train") -> dict[str, int]:
        c = Counter(self.labels[self.splits[split]].tolist())
        return {self.label_names[i]: c.get(i, 0) for i in range(len(self.label_names))}


def read_labeled(path: str, text_col: str, label_col: str) -> tuple[list[str], list[str]]:
    files, fmt = sources.resolve_files(path, "auto", "task data")
    if fmt == "text":
        raise PtftError(f"task data {path}: plain text has no label column; use parquet, csv or jsonl")
    texts, labels = [], []
    for f in files:
        t = sources.read_table(f, fmt, [text_col, label_col])
        for col, what in ((text_col, "text"), (label_col, "label")):
            nulls = t[col].null_count
            if nulls:
                raise PtftError(f"{f}: {nulls} row(s) have a null {what} in column {col!r}")
        if not pa.types.is_string(t[text_col].type) and not pa.types.is_large_string(t[text_col].type):
            raise PtftError(f"{f}: text column {text_col!r} holds {t[text_col].type}, not strings")
        texts += t[text_col].to_pylist()
        labels += pc.cast(t[label_col], pa.string()).to_pylist()
    if not texts:
        raise PtftError(f"task data {path} is empty: no rows")
    return texts, labels


def stratified_split(y: np.ndarray, val_frac: float, test_frac: float, seed: int) -> dict[str, np.ndarray]:
    """Per class: shuffle with the seed, then test / val / train by the fractions."""
    rng = np.random.default_rng(seed)
    out = {"train": [], "val": [], "test": []}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_frac))
        n_val = int(round(len(idx) * val_frac))
        out["test"].append(idx[:n_test])
        out["val"].append(idx[n_test:n_test + n_val])
        out["train"].append(idx[n_test + n_val:])
    return {k: np.sort(np.concatenate(v)) for k, v in out.items()}


def subsample(idx: np.ndarray, y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A class-stratified subset of k rows (round-robin over classes in shuffled order)."""
    if not k or k >= len(idx):
        return idx
    rng = np.random.default_rng(seed + 1)
    per_class = [rng.permutation(idx[y[idx] == c]) for c in np.unique(y[idx])]
    # position within its class / class size interleaves classes in proportion
    keys = np.concatenate([np.arange(len(p)) / len(p) for p in per_class])
    order = np.concatenate(per_class)[np.argsort(keys, kind="stable")]
    return np.sort(order[:k])


def load_task(ft: FinetuneConfig, label_names: list[str] | None = None) -> TaskData:
    """Read and split the task. With label_names (an export's map), labels must be known."""
    texts, raw = read_labeled(ft.data, ft.text_column, ft.label_column)
    if label_names is None:
        label_names = sorted(set(raw))
        if len(label_names) < 2:
            raise PtftError(f"{ft.data}: column {ft.label_column!r} has one class only "
                            f"({label_names[0]!r}); classification needs at least two")
    index = {name: i for i, name in enumerate(label_names)}
    unseen = sorted(set(raw) - set(index))
    if unseen:
        raise PtftError(f"{ft.data}: label(s) {unseen[:5]} in column {ft.label_column!r} were not "
                        f"seen in training (known: {label_names})")
    y = np.array([index[v] for v in raw], dtype=np.int64)
    splits = stratified_split(y, ft.val_fraction, ft.test_fraction, ft.split_seed)
    n_val_split = len(splits["val"])
    splits["train"] = subsample(splits["train"], y, ft.max_examples, ft.split_seed)
    splits["val"] = subsample(splits["val"], y, ft.max_val_examples, ft.split_seed)
    # training rows in a seeded random order: files are often grouped by label (the health
    # tweets come one source after another), and a stream in file order trains on one class
    # at a time; the order is fixed by the seed, so a resumed run skips the same batches
    splits["train"] = np.random.default_rng(ft.split_seed + 2).permutation(splits["train"])
    for name in ("train", "val"):
        if len(splits[name]) == 0:
            raise PtftError(f"{ft.data}: the {name} split is empty ({len(y)} rows is too few)")
    return TaskData(ft.data, texts, y, label_names, splits, n_val_split)


def encode(tok, texts: list[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """-> ([N, max_len] int32 ids, [N] lengths): truncated to max_len (with the model's own
    special tokens, for a Hugging Face tokenizer), right-padded with the pad id. The lengths,
    not the pad id, say where each example ends (GPT-2 pads with its EOS token)."""
    out = np.full((len(texts), max_len), tok.pad_id, dtype=np.int32)
    lengths = np.zeros(len(texts), dtype=np.int32)
    for i, ids in enumerate(tok.encode_examples(texts, max_len)):
        out[i, :len(ids)] = ids
        lengths[i] = len(ids)
    return out, lengths


def to_ray(task: TaskData, tok, max_len: int, split: str):
    """A split as a Ray Dataset {input_ids: [max_len] int32, length: int32, label: int64};
    each batch is cut to its longest example in the loop (dynamic padding)."""
    import ray.data
    from ray.data.extensions import ArrowTensorArray

    idx = task.splits[split]
    ids, lengths = encode(tok, [task.texts[i] for i in idx], max_len)
    return ray.data.from_arrow(pa.table({"input_ids": ArrowTensorArray.from_numpy(ids),
                                         "length": lengths, "label": task.labels[idx]}))


def task_corpus(ft: FinetuneConfig, path: Path) -> str:
    """The task's whole training split (every row not in validation or test, labelled for the
    sweep or not), without labels, as a pretraining corpus: task-adaptive pretraining."""
    import pyarrow.parquet as pq

    task = load_task(replace(ft, max_examples=0))
    rows = sorted(int(i) for i in task.splits["train"])
    if not path.is_file() or pq.read_metadata(path).num_rows != len(rows):
        tmp = path.with_suffix(".tmp")
        pq.write_table(pa.table({"text": [task.texts[i] for i in rows]}), tmp)
        tmp.replace(path)
    return str(path)
