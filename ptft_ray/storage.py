"""One storage layer for run directories, checkpoints, exports and data: local paths and
URIs (s3://, gs://, hdfs://, ...) through `pyarrow.fs`, the filesystem Ray Train/Tune/Data use.

A URI is never a local path: `Path("s3://b/x")` is `s3:/b/x`, a folder named `s3:` here.

How each side uses it:
- Ray writes checkpoints straight to the store: `ray_storage(uri)` gives RunConfig its
  `storage_path` and `storage_filesystem`.
- The driver writes its own files (config.yaml, result.json, the export, the report...) in a
  local staging directory, `Run(uri).local`, and `Run.push()` copies them up. For a local
  run directory the staging directory is the directory itself and push does nothing.
- Readers (`--pretrained`, `--model`, `--data`, a worker's `init_from`) call `localize(p)`:
  a local path is returned as is; a URI is downloaded once per node into a cache keyed by
  the URI and the listing (size + mtime), so a changed object is fetched again.

Credentials and endpoints come from the standard AWS environment that pyarrow reads
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION); Ray
workers on the nodes need the same environment.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import PtftError

CACHE = Path(os.environ.get("PTFT_CACHE", Path.home() / ".cache" / "ptft_ray"))


def is_uri(p) -> bool:
    return "://" in str(p)


def resolve(p: str):
    """(pyarrow filesystem, path inside it). A URI that pyarrow cannot open fails here, once,
    naming it (an unknown scheme, no credentials...)."""
    import pyarrow.fs as pafs

    if not is_uri(p):
        return pafs.LocalFileSystem(), os.path.abspath(p)
    try:
        return pafs.FileSystem.from_uri(str(p))
    except Exception as e:  # noqa: BLE001 - ArrowInvalid / OSError: one line naming the URI
        raise PtftError(f"{p}: cannot open this storage URI ({str(e).splitlines()[0][:200]})") from None


def to_uri(fs, path: str) -> str:
    """A path inside `fs` (what Ray hands back, e.g. `bucket/run/checkpoint_000003`) as a URI."""
    name = getattr(fs, "type_name", "local")
    if name in ("local", "mock"):
        return path
    scheme = {"s3": "s3", "gcs": "gs", "hdfs": "hdfs", "abfs": "abfs"}.get(name, name)
    return path if is_uri(path) else f"{scheme}://{path.lstrip('/')}"


def _info(p: str):
    fs, path = resolve(p)
    try:
        return fs, path, fs.get_file_info(path)
    except OSError as e:  # unreachable endpoint, refused credentials
        raise PtftError(f"{p}: storage not reachable ({str(e).splitlines()[0][:200]})") from None


def exists(p: str) -> bool:
    import pyarrow.fs as pafs

    return _info(p)[2].type != pafs.FileType.NotFound


def is_file(p: str) -> bool:
    import pyarrow.fs as pafs

    return _info(p)[2].type == pafs.FileType.File


def listing(p: str) -> list[tuple[str, int, int]]:
    """(path relative to p, size, mtime ns) of every file under a directory, or of p itself."""
    import pyarrow.fs as pafs

    fs, path, info = _info(p)
    if info.type == pafs.FileType.File:
        return [("", info.size, info.mtime_ns or 0)]
    if info.type == pafs.FileType.NotFound:
        return []
    out = []
    for f in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        if f.type == pafs.FileType.File:
            rel = f.path[len(path):].lstrip("/")
            if ".." in rel.split("/"):  # an object store key may say anything: it never leaves its copy
                raise PtftError(f"{p}: holds an object named {rel!r}, which would be copied outside its "
                                f"directory; refused")
            out.append((rel, f.size, f.mtime_ns or 0))
    return sorted(out)


def is_nonempty_dir(p: str) -> bool:
    return bool(listing(p)) if is_uri(p) else (Path(p).is_dir() and any(Path(p).iterdir()))


def read_text(p: str) -> str:
    fs, path = resolve(p)
    with fs.open_input_stream(path) as f:
        return f.read().decode("utf-8")


def write_text(p: str, text: str) -> None:
    """Whole-file write: local files under a temporary name + rename; an object store's PUT
    is atomic already (a reader sees the old object or the new one)."""
    if not is_uri(p):
        tmp = Path(p).with_name(f".{Path(p).name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, p)
        return
    fs, path = resolve(p)
    with fs.open_output_stream(path) as f:
        f.write(text.encode("utf-8"))


def read_json(p: str):
    return json.loads(read_text(p))


def delete(p: str) -> None:
    """Remove a run directory (only ever called for --overwrite)."""
    if not is_uri(p):
        shutil.rmtree(p, ignore_errors=True)
        return
    fs, path = resolve(p)
    if listing(p):
        fs.delete_dir(path)


def delete_file(p: str) -> None:
    fs, path = resolve(p)
    fs.delete_file(path)


def upload(local: str | Path, dest: str) -> None:
    """Copy a local file or directory to `dest` (its contents land under dest)."""
    import pyarrow.fs as pafs

    fs, path = resolve(dest)
    try:
        pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=fs)
    except OSError as e:  # a missing bucket, no write permission
        raise PtftError(f"{dest}: cannot write there ({str(e).splitlines()[0][:200]})") from None


def localize(p: str, what: str = "path") -> str:
    """A local path for p: p itself, or p's objects downloaded into the node's cache, once per
    node: the ranks and trials of one node wait on a file lock while the first one fetches,
    then share its copy (each real download is one line of CACHE/uri/fetched.log)."""
    if not p or not is_uri(p):
        return p
    import fcntl

    files = listing(p)
    if not files:
        raise PtftError(f"{what} {p}: not found")
    key = hashlib.sha1(f"{p}\n{json.dumps(files)}".encode()).hexdigest()[:16]
    name = p.rstrip("/").rsplit("/", 1)[-1] or "root"
    dest = CACHE / "uri" / key / name
    if dest.exists():  # complete: directories are renamed into place only when whole
        return str(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "uri" / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if not dest.exists():
            _fetch(p, files, dest)
            with open(CACHE / "uri" / "fetched.log", "a") as log:
                log.write(f"{p}\t{key}\t{os.getpid()}\n")
    return str(dest)


def _fetch(p: str, files: list, dest: Path) -> None:
    """Download p into dest through a temporary folder renamed into place when whole."""
    import pyarrow.fs as pafs

    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest.parent))
    fs, path = resolve(p)
    target = tmp / dest.name
    if files[0][0]:  # a directory: copy_files writes into an existing local folder only
        target.mkdir()
    try:
        pafs.copy_files(path, str(target), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        os.rename(target, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mirror(p: str, suffixes=(".json", ".jsonl", ".csv", ".yaml")) -> Path:
    """The small result files of a remote run (no checkpoints, no weights) in a fresh local
    directory: what a report reads."""
    import pyarrow.fs as pafs

    fs, root = resolve(p)
    dest = CACHE / "mirror" / hashlib.sha1(p.encode()).hexdigest()[:16] / (p.rstrip("/").rsplit("/", 1)[-1])
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for rel, _, _ in listing(p):
        parts = rel.split("/")
        if Path(rel).suffix in suffixes and not any(x.startswith("checkpoint_") for x in parts[:-1]) \
                and "model" not in parts[:-1]:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            pafs.copy_files(f"{root}/{rel}", str(dest / rel), source_filesystem=fs,
                            destination_filesystem=pafs.LocalFileSystem())
    return dest


def ray_storage(run: str) -> dict:
    """RunConfig keywords putting Ray's `name` directory at `run` (local or URI)."""
    if not is_uri(run):
        run = os.path.abspath(run)
        return {"name": os.path.basename(run), "storage_path": os.path.dirname(run)}
    fs, path = resolve(run)
    parent, _, name = path.rstrip("/").rpartition("/")
    return {"name": name, "storage_path": parent, "storage_filesystem": fs}


def check_bucket(p: str) -> None:
    """A URI to be written: its bucket must exist (fails here, before Ray starts, in one line)."""
    if not is_uri(p):
        return
    import pyarrow.fs as pafs

    fs, path, _ = _info(p)
    top = path.split("/")[0]
    if fs.get_file_info(top).type == pafs.FileType.NotFound:
        raise PtftError(f"{p}: bucket {top!r} not found (create it, or check AWS_ENDPOINT_URL)")


class Run:
    """A run directory the driver writes: `local` is where it writes, `push()` publishes."""

    def __init__(self, where: str):
        self.where = where if is_uri(where) else os.path.abspath(where)
        self.remote = is_uri(where)
        if self.remote:
            check_bucket(self.where)
            key = hashlib.sha1(self.where.encode()).hexdigest()[:16]
            self.local = CACHE / "stage" / key / self.where.rstrip("/").rsplit("/", 1)[-1]
        else:
            self.local = Path(self.where)

    def uri(self, *parts: str) -> str:
        """A path inside the run as users and result.json name it."""
        return "/".join([self.where.rstrip("/"), *parts]) if self.remote else str(self.local.joinpath(*parts))

    def start(self) -> Path:
        """An empty staging directory for a new remote run (a local one is the run itself)."""
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)
        self.local.mkdir(parents=True, exist_ok=True)
        return self.local

    def nonempty(self) -> bool:
        return is_nonempty_dir(self.where)

    def pull(self, *names: str) -> None:
        """Fetch the named files of an existing remote run into the staging directory."""
        if not self.remote:
            return
        shutil.rmtree(self.local, ignore_errors=True)
        self.local.mkdir(parents=True, exist_ok=True)
        for n in names:
            if is_file(self.uri(n)):
                (self.local / n).write_text(read_text(self.uri(n)))

    def clear(self) -> None:
        delete(self.where)
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)

    def publish(self, last: str = "result.json") -> None:
        """Push everything, `last` after the rest: a reader that sees it sees the whole run."""
        if self.remote:
            self.push(*sorted(p.name for p in self.local.iterdir() if p.name != last))
            self.push(last)

    def push(self, *names: str) -> None:
        """Copy the staging directory (or the named entries of it) up to the store."""
        if not self.remote:
            return
        for n in names or [p.name for p in self.local.iterdir()]:
            if (self.local / n).exists():
                upload(self.local / n, self.uri(n))
