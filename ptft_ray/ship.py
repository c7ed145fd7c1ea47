"""A model directory through the object store: a task, actor or replica on any node rebuilds
it locally, with no shared filesystem (an export is tens of MB: MiniLM's is 88 MB)."""
from __future__ import annotations

import tempfile
from pathlib import Path


def ship(model_dir: str) -> list:
    """-> [ObjectRef of {file name: bytes}] (in a list, so Ray hands the reference over
    unresolved and the bytes are fetched once, where the model is built). On one node, or
    under a mount every node shares (cluster.shared_everywhere), just [the absolute path]; a
    URI (s3://...) as it is."""
    import ray

    from .cluster import shared_everywhere
    from .storage import is_uri

    if is_uri(model_dir):  # on shared storage already: each node fetches it once into its cache
        return [model_dir]
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len(alive) <= 1 or shared_everywhere(model_dir):
        return [str(Path(model_dir).resolve())]
    return [ray.put({p.name: p.read_bytes() for p in Path(model_dir).iterdir() if p.is_file()})]


def unship(shipped: list) -> str:
    import ray

    if isinstance(shipped[0], str):  # a path every node sees, or a URI (load_finetuned fetches it)
        return shipped[0]
    d = tempfile.mkdtemp(prefix="ptft-model-")
    for name, data in ray.get(shipped[0]).items():
        Path(d, name).write_bytes(data)
    return d
