"""The distillation transfer set as Ray Data streams, never held by the driver:

    transfer_dataset: the teacher's labeled training rows + --unlabeled texts (label -1),
                      shuffled by Ray Data -> scored by the teacher (serve/batch.py) and
                      appended to OUT/teacher_probs.parquet
    student_dataset:  teacher_probs.parquet -> the student's rows {input_ids, length, label,
                      teacher_probs}, tokenized in Ray Data tasks as the student trains
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.tasks import encode


def _unlabeled_rows(batch, column: str, skip: set):
    """A block of --unlabeled rows -> {text, label = -1}, without empty texts and without any
    text of the task's own rows (a test row must never teach the student)."""
    import pyarrow as pa

    keep = [x for x in batch.column(column).to_pylist() if isinstance(x, str) and x.strip() and x not in skip]
    return pa.table({"text": pa.array(keep, pa.string()), "label": pa.array([-1] * len(keep), pa.int64())})


def unlabeled_source(unlabeled: str | None, text_column: str) -> tuple[list[str], str, str] | None:
    """--unlabeled -> (files, format, text column), checked before Ray starts (a missing file
    or column is one line and exit 2)."""
    if not unlabeled:
        return None
    from ..data import sources

    files, fmt = sources.resolve_files(unlabeled, "auto", "--unlabeled")
    column = "text" if fmt == "text" else text_column
    sources.check_text_column(files, fmt, column)
    return files, fmt, column


def transfer_dataset(task, unlabeled: tuple[list[str], str, str] | None, seed: int):
    """The transfer set as a Ray Dataset {text, label}: the teacher's training rows with their
    labels, then the --unlabeled texts (label -1; `unlabeled_source`), read block by block by
    Ray Data; globally shuffled by Ray Data (out of core, spilling to disk), so a batch mixes
    both kinds."""
    import pyarrow as pa
    import ray.data

    from ..serve.batch import read_dataset

    train = task.splits["train"]
    ds = ray.data.from_arrow(pa.table({"text": pa.array([task.texts[i] for i in train], pa.string()),
                                       "label": pa.array(task.labels[train].astype(np.int64))}))
    if unlabeled:
        files, fmt, column = unlabeled
        extra = ray.data.read_text(files) if fmt == "text" else read_dataset(files, fmt).select_columns([column])
        # the task's own texts (its labeled file is in memory already); duplicates within
        # --unlabeled are kept (finding them would need a pass over the whole file)
        skip = {task.texts[i] for i in [*task.splits["test"], *task.splits["val"], *train]}
        ds = ds.union(extra.map_batches(_unlabeled_rows, fn_args=(column, skip), batch_format="pyarrow"))
    return ds.random_shuffle(seed=seed)


def count_unlabeled(path: Path) -> int:
    """Rows of teacher_probs.parquet with label -1, one column read a row group at a time."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    return sum(int((b.column(0).to_numpy() < 0).sum()) for b in f.iter_batches(columns=["input_label"]))


def _student_rows(batch, tokenizer_json: str, max_len: int, labels: list[str]) -> dict:
    """A block of teacher_probs.parquet -> the student's rows {input_ids, length, label,
    teacher_probs}, tokenized where the block is (a Ray Data task)."""
    from .. import tokenizer as toks

    ids, lengths = encode(toks.from_json(tokenizer_json), batch.column("text").to_pylist(), max_len)
    probs = np.stack([batch.column(f"prob_{lab}").to_numpy() for lab in labels], axis=1).astype(np.float32)
    return {"input_ids": ids, "length": lengths, "teacher_probs": probs,
            "label": batch.column("input_label").to_numpy().astype(np.int64)}


def student_dataset(probs_at: str, tokenizer_json: str, max_len: int, labels: list[str]):
    """teacher_probs.parquet (a path every node reads, or a URI) -> the student's training
    rows as a lazy Ray Dataset: read and tokenized block by block while the student trains."""
    import ray.data

    return ray.data.read_parquet(probs_at).map_batches(
        _student_rows, fn_args=(tokenizer_json, max_len, labels), batch_format="pyarrow", batch_size=1024)
