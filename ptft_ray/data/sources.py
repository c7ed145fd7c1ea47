"""Find and check input files before any Ray work starts."""
from __future__ import annotations

import glob
import itertools
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .. import storage
from ..errors import PtftError

SUFFIX_FORMAT = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "text",
                 ".csv": "csv"}


def resolve_files(path: str, fmt: str = "auto", what: str = "corpus") -> tuple[list[str], str]:
    """A file, a directory or a glob -> (sorted files, format). Refuses empty inputs."""
    if not path:
        raise PtftError(f"no {what} path given (data.path / --data)")
    sizes = {}
    if storage.is_uri(path):  # s3://bucket/file or s3://bucket/prefix/ (every data file under it)
        for rel, size, _ in storage.listing(path):
            f = f"{path.rstrip('/')}/{rel}" if rel else path
            if not rel or Path(rel).suffix in SUFFIX_FORMAT:
                sizes[f] = size
        files = sorted(sizes)
    elif os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).rglob("*") if p.suffix in SUFFIX_FORMAT and p.is_file())
    else:
        files = sorted(glob.glob(path))
    if not files:
        raise PtftError(f"{what} not found: {path}")
    if fmt == "auto":
        kinds = {SUFFIX_FORMAT.get(Path(f).suffix) for f in files}
        if None in kinds or len(kinds) != 1:
            raise PtftError(f"{what} {path}: cannot tell the format from the file names "
                            f"(use .parquet, .jsonl, .csv or .txt, or set the format)")
        fmt = kinds.pop()
    empty = [f for f in files if (sizes[f] if f in sizes else os.path.getsize(f)) == 0]
    if empty:
        raise PtftError(f"{what} file is empty: {empty[0]}")
    return files, fmt


def size_of(f: str) -> int:
    """A file's size on disk or in the store."""
    return sum(size for _, size, _ in storage.listing(f)) if storage.is_uri(f) else os.path.getsize(f)


def opened(path: str):
    """What pyarrow's readers take: a local path as it is, a URI as an open file on its store."""
    if not storage.is_uri(path):
        return path
    fs, inner = storage.resolve(path)
    return fs.open_input_file(inner)


def _open_bytes(path: str):
    if storage.is_uri(path):
        fs, inner = storage.resolve(path)
        return fs.open_input_stream(inner)
    return open(path, "rb")


def _texts_of(path: str, fmt: str, column: str):
    """The non-empty texts of a JSONL or text file, in order, read 1 MB at a time."""
    rest = b""
    with _open_bytes(path) as fh:
        while True:
            chunk = fh.read(1 << 20)
            lines, rest = (rest + chunk).split(b"\n"), b""
            if chunk:
                rest = lines.pop()  # a line the next chunk completes
            for ln in lines:
                text = ln.decode("utf-8", errors="replace")
                if fmt == "jsonl" and text.strip():
                    try:
                        text = json.loads(text).get(column) or ""
                    except (json.JSONDecodeError, AttributeError):
                        raise PtftError(f"{path}: not JSON lines (a line reads {text[:80]!r})") from None
                if isinstance(text, str) and text.strip():
                    yield text
            if not chunk:
                return


def read_table(path: str, fmt: str, columns: list[str] | None = None) -> pa.Table:
    """Read one small file fully (classification data, samples). Errors name the file."""
    try:
        if fmt == "parquet":
            t = pq.read_table(opened(path))
        elif fmt == "csv":
            t = pacsv.read_csv(opened(path))
        elif fmt == "jsonl":
            t = pajson.read_json(opened(path))
        elif fmt == "text":
            text = storage.read_text(path) if storage.is_uri(path) else Path(path).read_text(encoding="utf-8")
            lines = text.splitlines()
            t = pa.table({"text": [ln for ln in lines if ln.strip()]})
        else:
            raise PtftError(f"{path}: unsupported format {fmt!r}")
    except PtftError:
        raise
    except UnicodeDecodeError as e:
        raise PtftError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, json.JSONDecodeError) as e:
        raise PtftError(f"{path}: cannot read as {fmt} ({str(e).splitlines()[0][:200]})") from None
    for c in columns or []:
        if c not in t.column_names:
            raise PtftError(f"{path}: missing column {c!r} (columns: {', '.join(t.column_names)})")
    return t


def check_text_column(files: list[str], fmt: str, column: str) -> None:
    """Cheap schema check of the first file so a wrong column fails before Ray starts."""
    f = files[0]
    if fmt == "text":
        return
    if fmt == "parquet":
        try:
            names = pq.read_schema(opened(f)).names
        except (pa.ArrowInvalid, OSError) as e:
            raise PtftError(f"{f}: not a readable Parquet file ({str(e).splitlines()[0][:200]})") from None
    elif fmt == "csv":
        try:
            with pacsv.open_csv(opened(f)) as reader:
                names = reader.schema.names
        except (pa.ArrowInvalid, OSError) as e:
            raise PtftError(f"{f}: not a readable CSV file ({str(e).splitlines()[0][:200]})") from None
    else:
        if storage.is_uri(f):
            fs, inner = storage.resolve(f)
            with fs.open_input_stream(inner) as fh:
                head = fh.read(1 << 16).split(b"\n")[0]
        else:
            with open(f, "rb") as fh:
                head = fh.read(1 << 16).split(b"\n")[0]
        try:
            names = list(json.loads(head.decode("utf-8")).keys())
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            raise PtftError(f"{f}: first line is not a JSON object") from None
    if column not in names:
        raise PtftError(f"{f}: missing text column {column!r} (columns: {', '.join(names)})")


def iter_texts(files: list[str], fmt: str, column: str, batch: int = 4096):
    """The corpus's non-empty texts in order, as a stream (`batch` Parquet rows a read): a
    corpus of one huge file is not read whole, and a reader stops where it has enough."""
    for f in files:
        if fmt == "parquet":
            for rb in pq.ParquetFile(opened(f)).iter_batches(batch_size=batch, columns=[column]):
                yield from (t for t in rb.column(0).to_pylist() if t)
        elif fmt in ("jsonl", "text"):
            yield from _texts_of(f, fmt, column)
        else:
            t = read_table(f, fmt, [column] if fmt != "text" else None)
            yield from (x for x in t.column(column if fmt != "text" else "text").to_pylist() if x)


def sample_texts(files: list[str], fmt: str, column: str, n: int) -> list[str]:
    """The first n non-empty texts of the corpus (to train the BPE tokenizer, to time the feed)."""
    return list(itertools.islice(iter_texts(files, fmt, column, min(n, 4096)), n))
