"""What the planner knows about the task data, measured with a Ray Data pass: examples per
split, classes and their balance, and the token-length distribution under the tokenizer the
fine-tuned model will use."""
from __future__ import annotations

import numpy as np

from .. import tokenizer as toks
from ..data.tasks import TaskData
from ..finetune.baseline import probe


def _lengths(batch: dict, tokenizer_json: str) -> dict:
    tok = toks.from_json(tokenizer_json)  # cached per worker process
    # as the model will see them: a Hugging Face tokenizer adds its special tokens ([CLS] ... [SEP])
    texts = list(batch["text"])
    return {"n": np.array([len(ids) for ids in tok.encode_examples(texts, 10 ** 6)], dtype=np.int32)}


def scan_task(task: TaskData, tokenizer_json: str) -> dict:
    """Needs a running Ray (the planner is given the live cluster)."""
    import ray.data

    idx = task.splits["train"]
    ds = ray.data.from_items([{"text": task.texts[i]} for i in idx], override_num_blocks=8)
    lens = np.concatenate([b["n"] for b in ds.map_batches(
        _lengths, fn_kwargs={"tokenizer_json": tokenizer_json}, batch_size=1024,
        batch_format="numpy").iter_batches(batch_size=None, batch_format="numpy")])
    balance = task.balance("train")
    counts = sorted(balance.values())
    return {
        "data": task.path, "task_type": task.task_type, "num_classes": len(task.label_names),
        "class_balance": balance, "imbalance": counts[-1] / max(counts[0], 1),
        "majority_fraction": counts[-1] / max(sum(counts), 1),
        "examples": {s: int(len(v)) for s, v in task.splits.items()},
        "val_split": int(task.val_split_size or len(task.splits["val"])),
        "train_tokens": int(lens.sum()),
        "length": {"mean": float(lens.mean()), "p50": float(np.percentile(lens, 50)),
                   "p90": float(np.percentile(lens, 90)), "p95": float(np.percentile(lens, 95)),
                   "max": int(lens.max()),
                   # 20 quantile midpoints: what share of the tokens a shorter max_len keeps
                   "q": [round(float(v), 1) for v in np.percentile(lens, np.arange(2.5, 100, 5))]},
        "probe": probe(task),  # TF-IDF + LR on the labels: where the forecast starts (seconds)
    }
