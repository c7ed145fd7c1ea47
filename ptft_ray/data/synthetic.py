"""Generated text for smoke tests and the test suite: no third-party text is committed, and
a smoke job needs no file from the submitting machine (its inputs go beside the run)."""
from __future__ import annotations

import random

WORDS = ("the cat sat on a mat while dogs ran in the park and birds sang over green hills "
         "under a bright sky people walked slowly home after work").split()


def synthetic_docs(n: int, seed: int = 0) -> list[str]:
    """Unlabelled documents of 5-60 words from a small word list."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60))) for _ in range(n)]


def synthetic_reviews(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """A binary task whose label is carried by a few cue words."""
    rng = random.Random(seed)
    common = "the a film movie story it was and of to in this".split()
    cues = {"pos": "great wonderful superb moving brilliant".split(),
            "neg": "dull boring awful weak tedious".split()}
    texts, labels = [], []
    for _ in range(n):
        y = rng.choice(["pos", "neg"])
        words = [rng.choice(common) for _ in range(rng.randint(4, 10))]
        for _ in range(3):
            words.insert(rng.randrange(len(words)), rng.choice(cues[y]))
        texts.append(" ".join(words))
        labels.append(y)
    return texts, labels


def smoke_inputs(out: str) -> tuple[str, str]:
    """A corpus directory and a labelled task file in OUT_inputs, beside the run (a sweep
    refuses a non-empty run directory), written once: -> (corpus path, task path). Every node
    reads them where the run is stored, so a smoke job needs nothing from the submitter."""
    import tempfile
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .. import storage

    base = f"{out.rstrip('/')}_inputs"
    corpus, task = f"{base}/corpus", f"{base}/reviews.parquet"
    if storage.is_file(task) and storage.listing(corpus):
        return corpus, task
    with tempfile.TemporaryDirectory() as tmp:
        docs = synthetic_docs(600)
        Path(tmp, "corpus").mkdir()
        pq.write_table(pa.table({"text": docs[:300]}), Path(tmp, "corpus", "part-0.parquet"))
        pq.write_table(pa.table({"text": docs[300:]}), Path(tmp, "corpus", "part-1.parquet"))
        texts, labels = synthetic_reviews(900)
        pq.write_table(pa.table({"text": texts, "label": labels}), Path(tmp, "reviews.parquet"))
        if not storage.is_uri(base):
            Path(corpus).mkdir(parents=True, exist_ok=True)
        storage.upload(Path(tmp, "corpus"), corpus)
        storage.upload(Path(tmp, "reviews.parquet"), task)
    return corpus, task
