"""The export blended with TF-IDF + LR (finetune.blend=auto): its arrays against scikit-learn's
own model, the rule that picks the weight, and a real sweep whose weak model gets blended."""
import json
import shutil

import numpy as np
import pytest

from ptft_ray.errors import PtftError
from ptft_ray.finetune import blend

TEXTS = ["good great fine", "bad awful poor", "great good", "poor bad", "fine good ok", "awful bad bad",
         "so so ok", "good ok", "terrible awful", "great fine ok"]


@pytest.mark.parametrize("labels,n_labels", [([0, 1, 0, 1, 0, 1, 0, 0, 1, 0], 2),
                                             ([0, 1, 0, 1, 2, 1, 2, 2, 1, 0], 3),
                                             ([0, 3, 0, 3, 0, 3, 0, 0, 3, 0], 4)])  # labels 1 and 2 unseen
def test_the_arrays_give_scikit_learns_probabilities(labels, n_labels, tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from ptft_ray.finetune.baseline import logistic_regression

    y = np.array(labels)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    lr = logistic_regression().fit(vec.fit_transform(TEXTS), y)
    queries = ["good fine", "bad poor awful", "unseen words only", ""]
    want = np.zeros((len(queries), n_labels))
    want[:, lr.classes_] = lr.predict_proba(vec.transform(queries))
    base = blend.TfidfLR.fit(TEXTS, y, n_labels)
    b = blend.Blend(0.3, base, {})
    b.save(tmp_path)
    loaded = blend.load(tmp_path)  # JSON and safetensors: nothing in the directory is unpickled
    np.testing.assert_allclose(loaded.base.probs(queries), want, atol=1e-5)
    p_model = np.full((len(queries), n_labels), 1 / n_labels, dtype=np.float32)
    np.testing.assert_allclose(loaded.mix(p_model, queries), 0.3 * p_model + 0.7 * want, atol=1e-5)


def test_the_weight_is_chosen_on_validation_and_ties_keep_the_model():
    y = np.array([0, 1, 1, 0])
    model = np.array([[.9, .1], [.8, .2], [.2, .8], [.6, .4]])  # right on 3 of 4
    tfidf = np.array([[.6, .4], [.3, .7], [.6, .4], [.7, .3]])  # right on 3 of 4, another one wrong
    w, acc = blend.choose(model, tfidf, y)
    assert acc[1.0] == 0.75 and acc[0.0] == 0.75
    assert acc[w] == 1.0 and 0 < w < 1                  # together they get all four
    same = blend.choose(model, model, y)[0]
    assert same == 1.0                                   # no gain: the model alone, no blend


def test_an_unreadable_or_foreign_blend_is_refused(tmp_path):
    blend.Blend(0.5, blend.TfidfLR.fit(TEXTS, np.array([0, 1] * 5), 2), {}).save(tmp_path)
    info = json.loads((tmp_path / blend.JSON).read_text())
    (tmp_path / blend.JSON).write_text(json.dumps({**info, "weight": 7}))
    with pytest.raises(PtftError, match="weight 7"):
        blend.load(tmp_path)
    with pytest.raises(PtftError, match="weight 7"):  # explain's reader checks as predict's does
        blend.weight_of(tmp_path)
    (tmp_path / blend.JSON).write_text(json.dumps({**info, "n_labels": 1}))  # class 1 of 1 label
    with pytest.raises(PtftError, match="outside 1 labels"):
        blend.load(tmp_path)
    (tmp_path / blend.JSON).write_text(json.dumps({**info, "vocabulary": {"good": 0}}))
    with pytest.raises(PtftError, match="does not index"):
        blend.load(tmp_path)
    (tmp_path / blend.TENSORS).write_bytes(b"not safetensors")
    with pytest.raises(PtftError, match="unreadable blend"):
        blend.load(tmp_path)
    assert blend.weight_of(tmp_path) == 0.5 and blend.weight_of(tmp_path / "none") is None
    (tmp_path / blend.JSON).write_text("{")
    with pytest.raises(PtftError, match="unreadable blend"):
        blend.weight_of(tmp_path)


@pytest.mark.slow
def test_a_sweep_blends_a_weak_model_and_says_what_each_part_scored(ray_session, pretrained_ckpt, cls_data,
                                                                    sweep_config, tmp_path):
    from ptft_ray.compress.quantize import quantize
    from ptft_ray.config import load_config
    from ptft_ray.finetune.predictor import Predictor
    from ptft_ray.finetune.sweep import sweep

    cfg = load_config(sweep_config, [
        f"finetune.data={cls_data}", "sweep.lrs=[1e-8]", "sweep.num_samples=1", "sweep.strategies=[full]",
        "sweep.epochs=[1]", "sweep.scheduler=none", "finetune.blend=auto"])
    res = sweep(cfg, [pretrained_ckpt], str(tmp_path / "s"))
    b, model = res["blend"], tmp_path / "s" / "model"
    # an LR of 1e-8 leaves the model near chance; TF-IDF + LR reads the synthetic reviews' words
    assert b["kept"] and b["weight"] < 1 and b["val_accuracy_blend"] > b["val_accuracy_model"]
    assert (model / blend.JSON).is_file() and (model / blend.TENSORS).is_file()
    ev = json.loads((tmp_path / "s" / "evaluation.json").read_text())
    assert ev["blend"]["weight"] == b["weight"]
    assert b["test_accuracy_model_alone"] == ev["blend"]["model_alone_accuracy"] < res["test_accuracy"]
    assert res["realised"]["model_alone_test_accuracy"] == b["test_accuracy_model_alone"]
    texts = ["a sample review that is great", "an awful sample"]
    pr = Predictor(str(model))
    np.testing.assert_allclose(pr.probs(texts), pr.blend.mix(pr.model_probs(texts), texts), atol=1e-6)
    assert Predictor(str(model), blend=False).blend is None
    # scored through Ray Data batch inference (evaluate --on-ray): the same figures, blended once
    from ptft_ray.finetune.evaluate import evaluate_export
    from ptft_ray.serve.batch import probs_on_ray

    on_ray = evaluate_export(str(model), cls_data, "test", probs_fn=lambda t: probs_on_ray(str(model), t, pr.labels))
    assert on_ray["accuracy"] == pytest.approx(res["test_accuracy"]) and on_ray["blend"] == ev["blend"]
    # scored elsewhere (a GPU task, Ray Data), the export's weights are not loaded here: a copy
    # whose weights file is garbage evaluates alike, where loading it fails
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    (bare / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(PtftError):
        Predictor(str(bare))
    elsewhere = evaluate_export(str(bare), cls_data, "test", probs_fn=Predictor(str(model), blend=False).model_probs)
    assert elsewhere["accuracy"] == pytest.approx(res["test_accuracy"]) and elsewhere["blend"] == ev["blend"]
    q = tmp_path / "q"
    quantize(str(model), str(q), "fbgemm_dynamic")
    assert Predictor(str(q)).blend.weight == b["weight"]  # the int8 copy blends as its fp32 export does
    from ptft_ray.compress.explain import Explainer

    assert f"at weight {b['weight']:g}" in Explainer(str(model)).note  # what it attributes: the model alone


def test_a_blend_setting_outside_its_choices_is_refused_at_load():
    from ptft_ray.config import load_config

    with pytest.raises(PtftError, match="finetune.blend"):
        load_config(None, ["finetune.blend=maybe"])


def test_the_report_shows_the_blend_and_the_model_alone_the_forecast_priced():
    from ptft_ray.report.models import candidates

    fc = {"test_accuracy": [0.40, 0.45, 0.50]}
    res = {"test_accuracy": 0.436, "test_accuracy_ci": [0.42, 0.45], "trial_time_s": 300.0, "forecast": fc,
           "blend": {"kept": True, "weight": 0.6, "test_accuracy_model_alone": 0.362}}
    rows = {r["model"]: r for r in candidates({"sweeps": [{"name": "sweep", "result": res}]}, None)}
    blended, alone = rows["sweep (blended with TF-IDF + LR, w 0.6)"], rows["sweep: the fine-tuned model alone"]
    assert blended["test_accuracy"] == 0.436 and blended["forecast"] is None
    assert alone["test_accuracy"] == 0.362 and alone["forecast"] == fc["test_accuracy"]
