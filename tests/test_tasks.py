import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ptft_ray.config import FinetuneConfig
from ptft_ray.data.tasks import load_task, stratified_split, subsample
from ptft_ray.errors import PtftError


def test_stratified_split_keeps_proportions_and_is_seeded():
    y = np.array([0] * 700 + [1] * 300)
    s = stratified_split(y, 0.1, 0.2, seed=0)
    assert sorted(np.concatenate(list(s.values())).tolist()) == list(range(1000))
    for name, frac in (("val", 0.1), ("test", 0.2)):
        assert (y[s[name]] == 1).sum() == round(300 * frac) and (y[s[name]] == 0).sum() == round(700 * frac)
    again = stratified_split(y, 0.1, 0.2, seed=0)
    assert all((s[k] == again[k]).all() for k in s)
    assert not (stratified_split(y, 0.1, 0.2, seed=1)["test"] == s["test"]).all()


def test_subsample_is_stratified():
    y = np.array([0] * 800 + [1] * 200)
    sub = subsample(np.arange(1000), y, 100, seed=0)
    assert len(sub) == 100 and 15 <= (y[sub] == 1).sum() <= 25


def _write(tmp_path, **cols):
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table(cols), p)
    return str(p)


def test_task_errors_name_the_problem(tmp_path):
    ok = {"text": ["a", "b", "c", "d"], "label": ["x", "y", "x", "y"]}
    with pytest.raises(PtftError, match="missing column 'label'"):
        load_task(FinetuneConfig(data=_write(tmp_path, text=ok["text"])))
    with pytest.raises(PtftError, match="null label"):
        load_task(FinetuneConfig(data=_write(tmp_path, text=ok["text"], label=["x", None, "y", "x"])))
    with pytest.raises(PtftError, match="null text"):
        load_task(FinetuneConfig(data=_write(tmp_path, text=["a", None, "c", "d"], label=ok["label"])))
    with pytest.raises(PtftError, match="one class only"):
        load_task(FinetuneConfig(data=_write(tmp_path, text=ok["text"], label=["x"] * 4)))
    with pytest.raises(PtftError, match="not seen in training"):
        load_task(FinetuneConfig(data=_write(tmp_path, **ok)), label_names=["x", "z"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(PtftError, match="empty"):
        load_task(FinetuneConfig(data=str(empty)))


def test_csv_and_jsonl_with_integer_labels(tmp_path):
    rows = [(f"text {i}", i % 3) for i in range(60)]
    (tmp_path / "t.csv").write_text("review,stars\n" + "\n".join(f"{t},{y}" for t, y in rows))
    t = load_task(FinetuneConfig(data=str(tmp_path / "t.csv"), text_column="review", label_column="stars"))
    assert t.label_names == ["0", "1", "2"] and t.task_type == "multiclass"
    import json
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps({"text": t_, "label": y % 2}) for t_, y in rows))
    t2 = load_task(FinetuneConfig(data=str(tmp_path / "t.jsonl")))
    assert t2.task_type == "binary" and sum(t2.balance().values()) == len(t2.splits["train"])


def test_training_rows_are_shuffled_when_the_file_is_grouped_by_label(tmp_path):
    """A file sorted by label (as the health tweets are) must not train one class at a time."""
    labels = [f"c{i // 100}" for i in range(800)]            # 8 classes, 100 rows each, in blocks
    path = _write(tmp_path, text=[f"t{i}" for i in range(800)], label=labels)
    t = load_task(FinetuneConfig(data=path))
    y = t.labels[t.splits["train"]]
    changes = int((y[1:] != y[:-1]).sum())
    assert changes > len(y) // 2                              # sorted order would give 7
    assert (load_task(FinetuneConfig(data=path)).splits["train"] == t.splits["train"]).all()  # seeded
    assert sorted(t.splits["train"].tolist()) == sorted(set(t.splits["train"].tolist()))      # no repeats
