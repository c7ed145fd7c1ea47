"""`ptft-ray predict --data FILE --out OUT.parquet`: batch inference on Ray Data.

The file streams through `map_batches` with an actor pool: each actor loads the model once
(finetune/predictor.py, the same code `predict --text`, `evaluate` and `serve` use) and
scores batches of rows; on a GPU cluster each actor takes `--gpus-per-actor`. The driver
pulls finished batches in input order and appends them to one Parquet file, so memory
stays bounded by Ray Data's backpressure (a few blocks in flight), not by the file's size.

Output: the input's columns, then `label` (the predicted class) and `prob_<class>` for each
class. An input column already named `label` or `prob_<class>` is kept as `input_<name>`.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import storage
from ..data import sources
from ..errors import PtftError
from ..ship import ship, unship

if TYPE_CHECKING:
    import numpy as np


class _Scorer:
    """One model per actor; a batch is a pyarrow Table."""

    def __init__(self, shipped: list, text_column: str, device: str, threads: int, rename: dict, blend: bool = True):
        import torch

        from ..finetune.predictor import Predictor

        torch.set_num_threads(max(1, threads))
        self.p, self.col, self.rename = Predictor(unship(shipped), device, blend), text_column, rename

    def __call__(self, batch):
        import numpy as np
        import pyarrow as pa

        texts = batch.column(self.col).to_pylist()
        # a row without a text (null, not a string) keeps its place with an empty label:
        # write_parquet reports it by row number; nothing is dropped or scored as ""
        ok = np.array([isinstance(t, str) for t in texts], dtype=bool)
        probs = np.full((len(texts), len(self.p.labels)), np.nan, dtype=np.float32)
        probs[ok] = self.p.probs([t for t, good in zip(texts, ok) if good])
        labels = np.array(self.p.labels, dtype=object)[np.nan_to_num(probs, nan=-1.0).argmax(1)]
        if self.rename:
            batch = batch.rename_columns([self.rename.get(c, c) for c in batch.column_names])
        batch = batch.append_column("label", pa.array([lab if good else None for lab, good in zip(labels, ok)],
                                                      pa.string()))
        for j, lab in enumerate(self.p.labels):
            batch = batch.append_column(f"prob_{lab}", pa.array(probs[:, j], pa.float32(), mask=~ok))
        return batch


def _input_columns(files: list[str], fmt: str) -> list[str]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        return pq.read_schema(sources.opened(files[0])).names
    if fmt == "csv":
        with pacsv.open_csv(sources.opened(files[0])) as r:
            return r.schema.names
    return sources.read_table(files[0], fmt).column_names


def read_dataset(files: list[str], fmt: str):
    import ray.data

    if fmt == "parquet":
        return ray.data.read_parquet(files)
    if fmt == "csv":
        return ray.data.read_csv(files)
    if fmt == "jsonl":
        return ray.data.read_json(files, lines=True)
    raise PtftError(f"--data: {fmt} files have no columns; use parquet, csv or jsonl")


def in_order(ds):
    """`ds`, its rows kept in input order through every later step. A Dataset keeps the
    DataContext it was created under (setting the process-wide one afterwards does nothing to
    it), and every dataset derived from it shares that context: set it there."""
    ds.context.execution_options.preserve_order = True
    return ds


def scored(ds, model_dir: str, text_column: str = "text", batch_size: int = 64, actors: int = 0,
           gpus_per_actor: float = 0.0, rename: dict | None = None, blend: bool = True):
    """-> (the dataset with `label` and `prob_<class>` columns, in input order; the pool size).
    blend=False: the fine-tuned model's own probabilities, without the export's blend."""
    from ray.data import ActorPoolStrategy

    from ..cluster import cluster_summary

    res = cluster_summary()
    if gpus_per_actor and not res["gpus"]:
        raise PtftError(f"--gpus-per-actor {gpus_per_actor}: the cluster has no GPU")
    # one CPU per actor; on a CPU cluster leave one CPU for reading and writing blocks
    actors = actors or max(1, int(res["gpus"] // gpus_per_actor) if gpus_per_actor else int(res["cpus"]) - 1)
    in_order(ds)
    # a file is read as one block per row group (often one per file): split the stream into
    # blocks of a few batches, so every actor has work and results come back as they finish
    return ds.repartition(target_num_rows_per_block=4 * batch_size).map_batches(
        _Scorer, fn_constructor_args=(ship(model_dir), text_column, "cuda" if gpus_per_actor else "cpu", 1,
                                      rename or {}, blend),
        batch_size=batch_size, batch_format="pyarrow", compute=ActorPoolStrategy(size=actors),
        num_cpus=1, num_gpus=gpus_per_actor or None), actors


def write_parquet(ds, out: str, data: str, unreadable: list | None = None) -> tuple[int, float, int]:
    """Append the dataset's batches, in order, to one Parquet file -> (rows, time of the first
    batch, its rows); `unreadable` collects the row numbers whose `label` is empty. Written
    under a temporary name beside `out` and moved into place when complete (a rename on disk,
    copy + delete on an object store), so a failed run leaves no half file under the real
    name, locally or on S3."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, path = storage.resolve(out)
    if not storage.is_uri(out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    parent, _, name = path.rpartition("/")
    tmp = f"{parent}/.{name}.tmp-{os.getpid()}"
    rows, writer, t_first, first_rows = 0, None, None, 0
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            if writer is None:
                t_first, first_rows = time.time(), batch.num_rows  # Ray, the actors and the model are up
                writer = pq.ParquetWriter(tmp, batch.schema, filesystem=fs)
            writer.write_table(batch)
            if unreadable is not None and "label" in batch.column_names:
                nulls = batch.column("label").is_null().to_numpy(zero_copy_only=False)
                unreadable.extend(rows + int(i) for i in nulls.nonzero()[0])
            rows += batch.num_rows
        if writer is None:
            raise PtftError(f"--data {data}: no rows")
        writer.close()
        fs.move(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)
    return rows, t_first, first_rows


def probs_on_ray(model_dir: str, texts: list[str], labels: list[str], batch_size: int = 64) -> "np.ndarray":
    """[N, classes] probabilities of the fine-tuned model alone (evaluate_export applies an
    export's blend) for `texts`, through the same Ray Data path as a file (`evaluate --on-ray`)."""
    import numpy as np
    import pyarrow as pa
    import ray.data

    from ..cluster import init_ray

    init_ray()
    ds, _ = scored(ray.data.from_arrow(pa.table({"text": texts})), model_dir, batch_size=batch_size, blend=False)
    parts = [np.stack([b[f"prob_{lab}"].to_numpy() for lab in labels], 1)
             for b in ds.iter_batches(batch_size=None, batch_format="pyarrow")]
    return np.concatenate(parts) if parts else np.zeros((0, len(labels)), np.float32)


def predict_file(model_dir: str, data: str, out: str, text_column: str = "text", batch_size: int = 64,
                 actors: int = 0, gpus_per_actor: float = 0.0, overwrite: bool = False) -> dict:
    """-> {"out", "rows", "actors", "rows_per_s", "renamed"}; one output row per input row."""
    from ..cluster import init_ray
    from ..train import checkpoint as ckpt

    t0 = time.time()
    meta = ckpt.read_task_meta(model_dir, "cls", f"--model {model_dir}: not a fine-tuned classifier")  # before Ray
    labels = meta["task_info"]["labels"]
    from ..models.quantize import check_device

    check_device(meta, bool(gpus_per_actor), f"--gpus-per-actor {gpus_per_actor:g}", model_dir)
    storage.check_bucket(out)
    if storage.exists(out) and not overwrite:
        raise PtftError(f"--out {out} exists; use another --out or --overwrite")
    if batch_size < 1:
        raise PtftError(f"--batch-size {batch_size}: must be at least 1")
    files, fmt = sources.resolve_files(data, "auto", "--data")
    sources.check_text_column(files, fmt, text_column)
    ours = {"label", *(f"prob_{lab}" for lab in labels)}
    rename = {c: f"input_{c}" for c in _input_columns(files, fmt) if c in ours}

    init_ray()
    from ..cluster import check_reachable, cluster_summary

    # Ray Data's read tasks open --data on any node (the model travels through the object store)
    check_reachable({"--data": data}, cluster_summary()["nodes"])
    ds, actors = scored(read_dataset(files, fmt), model_dir, text_column, batch_size, actors, gpus_per_actor, rename)
    unreadable: list[int] = []
    rows, t_first, first_rows = write_parquet(ds, out, data, unreadable)
    if unreadable:
        shown = ", ".join(map(str, unreadable[:10])) + (", ..." if len(unreadable) > 10 else "")
        print(f"ptft-ray: warning: --data {data}: {len(unreadable)} row(s) without a text in column "
              f"{text_column!r} (rows {shown}, counted from 0): kept in --out with an empty label",
              file=sys.stderr, flush=True)
    wall = time.time() - t0
    steady = (rows - first_rows) / max(time.time() - t_first, 1e-9) if rows > first_rows else None
    return {"out": out if storage.is_uri(out) else str(Path(out)), "rows": rows, "actors": actors, "wall_s": round(wall, 2),
            "rows_per_s": round(rows / wall, 2), "rows_per_s_after_first_batch": steady and round(steady, 2),
            "renamed": rename, "unreadable_rows": len(unreadable), "unreadable_row_numbers": unreadable[:100]}
