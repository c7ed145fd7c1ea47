"""Intervals, the paired test and the baselines, checked against values worked by hand and
against scikit-learn / scipy on the same numbers."""
import numpy as np
import pytest

from ptft_ray.finetune.stats import accuracy_ci, in_words, mcnemar


def test_wilson_interval_matches_the_formula_and_stays_in_0_1():
    lo, hi = accuracy_ci(998, 1280)
    assert (round(lo, 3), round(hi, 3)) == (0.756, 0.802)
    assert accuracy_ci(10, 10)[1] == 1.0 and accuracy_ci(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    assert accuracy_ci(0, 10)[0] == 0.0
    # more rows, a narrower interval around the same accuracy
    assert np.diff(accuracy_ci(780, 1000)) < np.diff(accuracy_ci(78, 100))


def test_mcnemar_exact_p_values():
    from scipy.stats import binomtest

    a = [True] * 40 + [False] * 20 + [True] * 100
    b = [False] * 40 + [True] * 20 + [True] * 100
    t = mcnemar(a, b)
    assert (t["a_only_right"], t["b_only_right"], t["n"]) == (40, 20, 160)
    assert t["p_value"] == pytest.approx(binomtest(20, 60).pvalue) and t["p_value"] < 0.05
    assert t["points"] == pytest.approx(12.5)
    assert mcnemar(b, a)["p_value"] == pytest.approx(t["p_value"]) and mcnemar(b, a)["points"] == -12.5
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0  # no disagreement: no evidence
    assert "a real difference" in in_words("continued pretraining", t)
    assert "within noise" in in_words("x", mcnemar([True] * 40 + [False] * 35, [False] * 40 + [True] * 35))
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


def test_baselines_fit_on_the_training_rows_only(tmp_path):
    """A cue word only in the test rows' class is unknown to TF-IDF fitted on the training rows;
    majority is the training split's most frequent class."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from conftest import synthetic_reviews
    from ptft_ray.config import FinetuneConfig
    from ptft_ray.data.tasks import load_task
    from ptft_ray.finetune.baseline import baselines

    texts, labels = synthetic_reviews(600)
    p = tmp_path / "r.parquet"
    pq.write_table(pa.table({"text": texts, "label": labels}), p)
    task = load_task(FinetuneConfig(data=str(p), max_examples=200))
    b = baselines(task)
    assert b["n_train"] == 200 and b["n_test"] == len(task.splits["test"])
    assert b["tfidf_lr"]["accuracy"] > 0.9                   # the cue words are plain to a bag of words
    y_te = task.labels[task.splits["test"]]
    maj = np.bincount(task.labels[task.splits["train"]]).argmax()
    assert b["majority"]["accuracy"] == pytest.approx((y_te == maj).mean())
    assert len(b["predictions"]["tfidf_lr"]) == len(y_te)
