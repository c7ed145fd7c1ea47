"""The training batches a loop steps through: across epochs, resumable mid-epoch, the first one
fetched on a thread while the model is built."""
from __future__ import annotations

from ..errors import PtftError


def batch_stream(ctx, state: dict, batch_size: int, shuffle: int, seed: int):
    """Batches across epochs. Ray Data iterators cannot resume, so after a restart the
    batches the checkpoint already consumed in this epoch are skipped (ray issue 37633)."""
    while True:
        n = 0
        for batch in ctx.batches("train", batch_size, shuffle, seed + state["epoch"]):
            n += 1
            if n <= state["batch_in_epoch"]:
                continue
            state["batch_in_epoch"] = n
            yield batch
        if n == 0:
            raise PtftError(f"the training data yields no batch of {batch_size} per worker "
                            f"(too little data for train.batch_size x scaling.num_workers)")
        state["epoch"], state["batch_in_epoch"] = state["epoch"] + 1, 0


class FirstBatchEarly:
    """Fetches a stream's first batch on a thread while the model is built, then steps the
    stream itself: Ray Data's first batch of a run is its slowest (docs/decisions.md). An
    error met while fetching is raised where the loop asks for that batch."""

    def __init__(self, stream):
        import threading

        self.stream, self.first, self.error = stream, None, None
        self.thread = threading.Thread(target=self._fetch, name="ptft-first-batch", daemon=True)
        self.thread.start()

    def _fetch(self):
        try:
            self.first = next(self.stream)
        except BaseException as e:  # noqa: BLE001 - handed to the loop's thread
            self.error = e

    def __iter__(self):
        return self

    def __next__(self):
        if self.thread is None:
            return next(self.stream)
        self.thread.join()
        self.thread, first, self.first = None, self.first, None
        if self.error is not None:
            raise self.error
        return first
