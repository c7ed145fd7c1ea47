"""Compress, explain and run a fine-tuned model, on real Ray (CPU), through the CLI:
batch inference on Ray Data, Ray Serve over real HTTP, torchao int8, Captum attributions,
and distillation on Ray Train. The teacher is a tiny random BERT fine-tuned here."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import refusal_lines

pytestmark = pytest.mark.slow


def cli(ray_session, *args, timeout=600, check=True, cwd=None):
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    r = subprocess.run([sys.executable, "-m", "ptft_ray.cli", *args], capture_output=True, text=True,
                       env=env, timeout=timeout, cwd=cwd)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def teacher(hf_sweeps):
    """The tiny BERT's best export of test_hf's sweep over every strategy (after continued
    pretraining): a fine-tuned classifier built on Ray Train / Tune, shared, not rebuilt."""
    result, _ = hf_sweeps["bert"]
    assert result["test_accuracy"] > 0.6, result
    return result


def test_rows_come_back_in_input_order_when_early_blocks_finish_last(ray_session):
    """The order rule of batch scoring on its own: the dataset was created before the rule is
    set (as `predict` reads its file first), and its first blocks finish last. Setting the
    process-wide DataContext at that point, as before, let CI write rows out of order."""
    import time

    import ray.data

    from ptft_ray.serve.batch import in_order

    def first_blocks_slow(batch):
        time.sleep(0.8 if batch["id"][0] < 8 else 0.0)
        return batch

    ds = ray.data.range(32, override_num_blocks=8)
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # too late for ds
    try:
        got = [r["id"] for r in in_order(ds).map_batches(first_blocks_slow, batch_size=None, num_cpus=0.25).iter_rows()]
    finally:
        ray.data.DataContext.get_current().execution_options.preserve_order = False
    assert got == list(range(32))


def test_batch_predict_on_ray_data_keeps_every_row_in_order(ray_session, teacher, cls_data, tmp_path):
    from ptft_ray.finetune.predictor import Predictor

    out = tmp_path / "pred.parquet"
    r = cli(ray_session, "predict", "--model", teacher["export_path"], "--data", cls_data, "--out", str(out),
            "--batch-size", "50")
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    src, got = pq.read_table(cls_data), pq.read_table(out)
    assert summary["rows"] == got.num_rows == src.num_rows == 900
    assert got.column_names == ["text", "input_label", "label", "prob_neg", "prob_pos"]
    assert got["text"].to_pylist() == src["text"].to_pylist()            # input order kept
    assert got["input_label"].to_pylist() == src["label"].to_pylist()    # the input's own label column
    probs = np.stack([got["prob_neg"].to_numpy(), got["prob_pos"].to_numpy()], 1)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    ref = Predictor(teacher["export_path"]).probs(src["text"].to_pylist()[:40])
    np.testing.assert_allclose(probs[:40], ref, atol=1e-5)
    assert got["label"].to_pylist() == [["neg", "pos"][i] for i in probs.argmax(1)]
    # an existing --out is refused (exit 2), and left as it was
    before = out.read_bytes()
    r = cli(ray_session, "predict", "--model", teacher["export_path"], "--data", cls_data, "--out", str(out),
            check=False)
    assert r.returncode == 2 and "exists" in r.stderr and out.read_bytes() == before


def test_quantized_export_evaluates_and_predicts_like_the_fp32_one(ray_session, teacher, cls_data, tmp_path):
    q = tmp_path / "q"
    info = json.loads(cli(ray_session, "quantize", "--model", teacher["export_path"], "--out", str(q)).stdout)
    assert info["method"] == "int8_weight_only" and info["int8_state_bytes"] < info["fp32_state_bytes"]
    ev_q = json.loads(cli(ray_session, "evaluate", "--model", str(q), "--data", cls_data).stdout)
    assert ev_q["n"] == teacher["test_n"]
    # the same rows scored by Ray Data batch inference give the same predictions
    on_ray = json.loads(cli(ray_session, "evaluate", "--model", str(q), "--data", cls_data, "--on-ray").stdout.strip()
                        .splitlines()[-1])
    assert on_ray["predictions"] == ev_q["predictions"] and on_ray["rows"] == ev_q["rows"]
    # int8 weights move logits a little: a row near the boundary may flip. On this 30-row split
    # one flip is 3.3 points, so the test counts flips against the fp32 export on the same rows
    # (at most 10% of them, at least 2 allowed) instead of a fixed accuracy tolerance.
    ev_f = json.loads(cli(ray_session, "evaluate", "--model", teacher["export_path"], "--data", cls_data).stdout)
    assert ev_f["rows"] == ev_q["rows"] and ev_f["accuracy"] == pytest.approx(teacher["test_accuracy"], abs=1e-6)
    flips = sum(a != b for a, b in zip(ev_q["predictions"], ev_f["predictions"]))
    assert flips <= max(2, ev_q["n"] // 10), (flips, ev_q["n"])
    right = [round(e["accuracy"] * e["n"]) for e in (ev_q, ev_f)]  # rows right: accuracies are float32
    assert abs(right[0] - right[1]) <= flips
    row = json.loads(cli(ray_session, "predict", "--model", str(q), "--text", "a great superb film").stdout)
    assert row["label"] in ("neg", "pos") and sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    r = cli(ray_session, "quantize", "--model", teacher["export_path"], "--out", str(q), check=False)
    assert r.returncode == 2 and "exists" in r.stderr


def test_cpu_only_int8_export_is_refused_on_a_gpu(ray_session, teacher, cls_data, tmp_path):
    """An fbgemm_dynamic export (int8 kernels for x86 CPUs only) asked onto a GPU by predict or
    serve: one line naming the flag, exit 2, before anything is written or started."""
    q = tmp_path / "fbgemm"
    cli(ray_session, "quantize", "--model", teacher["export_path"], "--method", "fbgemm_dynamic", "--out", str(q))
    for args, flag in ((["predict", "--model", str(q), "--data", cls_data, "--out", str(tmp_path / "p.parquet"),
                         "--gpus-per-actor", "1"], "--gpus-per-actor 1"),
                       (["serve", "--model", str(q), "--port", "18431", "--gpus-per-replica", "0.5"],
                        "--gpus-per-replica 0.5")):
        r = cli(ray_session, *args, check=False, timeout=120)
        lines = refusal_lines(r.stderr)
        assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
        assert lines[0].startswith(f"ptft-ray: error: {flag}: ") and "int8_weight_only" in lines[0]
    assert not (tmp_path / "p.parquet").exists()


def test_scoring_and_explaining_off_the_driver_match_the_driver(ray_session, teacher, cls_data):
    """The path evaluation, re-scoring and explanations take where a GPU is there: the model
    shipped through the object store into a Ray task (here on the CPU, the device the task is
    given), the same probabilities and attributions as in this process; asking for a GPU the
    cluster lacks is one line, not a wait forever."""
    import numpy as np

    from ptft_ray.compress.explain import _explain_all
    from ptft_ray.errors import PtftError
    from ptft_ray.finetune.predictor import Predictor, _probs, _shipped, on_device, scorer
    from ptft_ray.ship import ship

    d, texts = teacher["export_path"], ["a great superb film", "a dull boring awful movie", "it was the film"]
    here = Predictor(d).probs(texts)
    there = ray_session.get(ray_session.remote(num_cpus=1)(_shipped).remote(_probs, ship(d), "cpu", texts))
    assert np.allclose(here, there, atol=1e-6)
    ex_here = _explain_all(d, "cpu", texts[:1], 8)
    ex_there = ray_session.get(ray_session.remote(num_cpus=1)(_shipped).remote(_explain_all, ship(d), "cpu", texts[:1], 8))
    for a, b in zip(ex_here, ex_there, strict=True):  # the same, to the last float bits a thread count moves
        assert {k: a[k] for k in ("text", "label", "tokens", "special")} == \
            {k: b[k] for k in ("text", "label", "tokens", "special")}
        for k in ("probability", "delta", "logit_difference", "relative_delta", "attributions"):
            assert a[k] == pytest.approx(b[k], abs=1e-5), k
    assert scorer(d, 0.0) is None
    with pytest.raises(PtftError, match="1 GPU asked for scoring .* the cluster has 0"):
        on_device(_probs, d, 1.0, texts)
    for args in (["explain", "--model", d, "--text", "a film", "--gpus", "1"],
                 ["evaluate", "--model", d, "--data", cls_data, "--gpus", "1"]):
        r = cli(ray_session, *args, check=False, timeout=120)
        assert r.returncode == 2 and "the cluster has 0" in r.stderr, r.stderr[-2000:]


def test_explain_prints_attributions_that_add_up_to_the_logit_difference(ray_session, teacher):
    texts = ["the film was great and superb", "a dull boring awful movie"]
    r = cli(ray_session, "explain", "--model", teacher["export_path"], "--text", texts[0], "--text", texts[1])
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert row["label"] in ("neg", "pos") and len(row["tokens"]) == len(row["attributions"])
        assert row["tokens"][0] == "[CLS]" and row["tokens"][-1] == "[SEP]"
        # completeness: attributions + delta = f(text) - f(baseline)
        assert sum(row["attributions"]) + row["delta"] == pytest.approx(row["logit_difference"], abs=1e-3)
        assert row["relative_delta"] < 0.05


def _post(url, body: bytes):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_answers_http_batches_requests_and_refuses_bad_ones_with_4xx(ray_session, teacher, tmp_path):
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from ptft_ray.finetune.predictor import Predictor

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    proc = subprocess.Popen([sys.executable, "-m", "ptft_ray.cli", "serve", "--model", teacher["export_path"],
                             "--port", str(port), "--max-chars", "200"], stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "serve.err", "w"), text=True, env=env)
    try:
        ready = json.loads(proc.stdout.readline())  # printed once the app is running
        url = ready["url"]
        assert url == f"http://127.0.0.1:{port}"
        import urllib.request

        health = json.loads(urllib.request.urlopen(url + "/health", timeout=30).read())
        assert health["status"] == "ok" and health["labels"] == ["neg", "pos"]
        texts = [f"the movie was {w} and {v}" for w in ("great", "dull", "superb", "awful") for v in ("moving", "weak")]
        ref = Predictor(teacher["export_path"]).predict(texts)
        code, one = _post(url + "/predict", json.dumps({"text": texts[0]}).encode())
        assert code == 200 and one["label"] == ref[0]["label"]
        assert one["probabilities"]["pos"] == pytest.approx(ref[0]["probabilities"]["pos"], abs=1e-4)
        code, many = _post(url + "/predict", json.dumps({"texts": texts}).encode())
        assert code == 200 and [p["label"] for p in many["predictions"]] == [r["label"] for r in ref]
        with ThreadPoolExecutor(8) as pool:  # concurrent clients: each gets its own answer
            answers = list(pool.map(lambda t: _post(url + "/predict", json.dumps({"text": t}).encode()), texts))
        assert [a[1]["label"] for a in answers] == [r["label"] for r in ref] and {a[0] for a in answers} == {200}
        bad = {b"not json": 400, b"[1, 2]": 400, b'{"txt": "x"}': 400, b'{"text": ""}': 400,
               b'{"text": 5}': 400, b'{"texts": []}': 400, json.dumps({"text": "x" * 201}).encode(): 413}
        for body, want in bad.items():
            code, err = _post(url + "/predict", body)
            assert code == want and err["error"] and "\n" not in err["error"], (body, code, err)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    assert proc.returncode == 0, (tmp_path / "serve.err").read_text()[-2000:]
    with pytest.raises(OSError):  # the app and Serve's proxy are gone
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_distill_quantize_predict_with_everything_on_s3(ray_session, s3, teacher, cls_data, tmp_path):
    """distill / quantize / predict with teacher, data and outputs under s3:// (moto): the
    driver joins the running Ray (RAY_ADDRESS), whose workers started before the S3 variables
    were set, so the CLI hands them over (cluster.forwarded_env). Distillation runs a Ray Tune
    grid of two temperatures; the local distill path runs in test_hf's pipeline."""
    import pyarrow as pa

    from conftest import synthetic_reviews
    from ptft_ray import storage
    from ptft_ray.data.sources import opened
    from ptft_ray.finetune.export import load_finetuned

    storage.CACHE = tmp_path / "cache-test"
    extra = tmp_path / "unlabeled.parquet"
    pq.write_table(pa.table({"text": synthetic_reviews(200, seed=7)[0]}), extra)
    tea, data, unl = s3.uri("cs", "teacher"), s3.uri("cs", "reviews.parquet"), s3.uri("cs", "unlabeled.parquet")
    storage.upload(teacher["export_path"], tea)
    storage.upload(cls_data, data)
    storage.upload(extra, unl)
    work = tmp_path / "cwd"   # the commands run here: an `s3:` folder would appear here
    work.mkdir()
    out = s3.uri("cs", "distilled")
    r = cli(ray_session, "distill", "--teacher", tea, "--student", "layers:1", "--data", data, "--unlabeled", unl,
            "--out", out, "--set", "finetune.epochs=2", "--temperature", "1,4", cwd=work)
    res = storage.read_json(f"{out}/result.json")
    printed = next(line for line in r.stdout.splitlines() if line.startswith('{"teacher"'))
    assert json.loads(printed)["student_accuracy"] == res["student_accuracy"]
    assert res["teacher"] == tea and res["model"] == f"{out}/model"
    assert res["teacher_accuracy"] == pytest.approx(teacher["test_accuracy"])
    assert res["unlabeled_rows"] == 200 and res["transfer_rows"] == 256 + 200
    assert res["student_params"] < res["teacher_params"] and res["speedup"] > 0
    assert res["student_accuracy"] > 0.6
    # two temperatures: a Ray Tune grid of two trials (on S3), the better on validation kept
    assert sorted(t["temperature"] for t in res["trials"]) == [1.0, 4.0] and res["temperature"] in (1.0, 4.0)
    best = max(res["trials"], key=lambda t: t["best_val_accuracy"])
    assert res["temperature"] == best["temperature"] and all(t["error"] is None for t in res["trials"])
    assert all(t["checkpoint"].startswith("s3://") for t in res["trials"])
    student, _, _, meta = load_finetuned(f"{out}/model")
    assert student.hf.config.num_hidden_layers == 1 and meta["distilled_from"] == tea
    probs = pq.read_table(opened(f"{out}/teacher_probs.parquet"))
    assert probs.num_rows == 456 and "prob_pos" in probs.column_names
    # refused in one line, exit 2, the finished run untouched: an existing --out, an unknown preset
    before = storage.listing(out)
    for student, to, needle in (("layers:1", out, "exists"), ("preset:gpt_huge", s3.uri("cs", "d2"), "unknown preset")):
        bad = cli(ray_session, "distill", "--teacher", tea, "--student", student, "--data", data, "--out", to,
                  check=False, cwd=work)
        assert bad.returncode == 2 and needle in bad.stderr.strip().splitlines()[-1], bad.stderr[-1000:]
    assert storage.listing(out) == before

    # the student quantized from S3 into S3, then a whole file scored from S3 into S3
    q, pred = s3.uri("cs", "student-int8"), s3.uri("cs", "pred", "student.parquet")
    info = json.loads(cli(ray_session, "quantize", "--model", f"{out}/model", "--out", q, cwd=work).stdout)
    assert info["out"] == q and info["from"] == f"{out}/model"
    assert load_finetuned(q)[3]["quantized"]["method"] == "int8_weight_only"
    cli(ray_session, "predict", "--model", q, "--data", data, "--out", pred, cwd=work)
    got, src = pq.read_table(opened(pred)), pq.read_table(cls_data)
    assert got.num_rows == src.num_rows and got["text"].to_pylist() == src["text"].to_pylist()
    assert [f for f, _, _ in storage.listing(s3.uri("cs", "pred"))] == ["student.parquet"]  # no temporary left
    again = cli(ray_session, "predict", "--model", q, "--data", data, "--out", pred, check=False)
    assert again.returncode == 2 and "exists" in again.stderr
    assert not any(p.name.startswith("s3") for p in work.iterdir())   # nothing written to a local s3: folder


def test_a_checkpoint_of_the_wrong_kind_is_refused_naming_the_flag_and_its_task(
        ray_session, teacher, bert_pretrained, cls_data, tmp_path):
    """A fine-tuned export given where a pretrained checkpoint belongs, and the reverse: one
    line that names the flag and what the checkpoint holds, before Ray work or any write."""
    from ptft_ray import load_pretrained
    from ptft_ray.compress.distill import distill
    from ptft_ray.errors import PtftError

    export, pre = teacher["export_path"], bert_pretrained["checkpoint"]
    says = r" \(its meta.json says task '{}'\)"
    with pytest.raises(PtftError, match="not a pretrained language-model checkpoint" + says.format("cls")):
        load_pretrained(export)
    out = tmp_path / "student"
    with pytest.raises(PtftError, match="--teacher .*: not an fp32 fine-tuned classifier export" + says.format("lm")):
        distill(pre, "layers:1", cls_data, str(out))
    assert not out.exists()
    r = cli(ray_session, "finetune", "--pretrained", export, "--data", cls_data, "--out", str(tmp_path / "ft"),
            check=False)
    assert r.returncode == 2, r.stderr[-2000:]
    assert refusal_lines(r.stderr) == [f"ptft-ray: error: --pretrained {export}: not a pretrained language-model "
                                       "checkpoint (its meta.json says task 'cls')"]
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("temperature, sets, needle", [
    (2.0, ["scaling.cpus_per_worker=64"], "scaling.cpus_per_worker"),       # one run: its Train workers
    ([1.0, 2.0], ["sweep.cpus_per_trial=64"], "sweep.cpus_per_trial"),      # a grid: its trials
])
def test_a_distillation_the_cluster_cannot_schedule_leaves_the_old_run(
        ray_session, teacher, cls_data, tmp_path, temperature, sets, needle):
    from ptft_ray.compress.distill import distill
    from ptft_ray.errors import PtftError

    out = tmp_path / "distilled"
    out.mkdir()
    (out / "result.json").write_text("an earlier run\n")
    with pytest.raises(PtftError, match=needle):
        distill(teacher["export_path"], "layers:1", cls_data, str(out), temperature=temperature,
                overrides=sets, overwrite=True)
    assert (out / "result.json").read_text() == "an earlier run\n"


def test_transfer_set_streams_through_ray_data_without_any_task_row(ray_session, cls_data, tmp_path):
    """The distillation transfer set: the labeled training rows + --unlabeled lines (a text
    file read by Ray Data), never a test, validation or training text twice, shuffled so a
    batch mixes both kinds; then teacher_probs.parquet -> the student's tokenized rows."""
    import pyarrow as pa

    from ptft_ray import tokenizer as toks
    from ptft_ray.compress.transfer import count_unlabeled, student_dataset, transfer_dataset, unlabeled_source
    from ptft_ray.config import FinetuneConfig
    from ptft_ray.data.tasks import load_task

    task = load_task(FinetuneConfig(data=cls_data, max_examples=100))
    leak = [task.texts[i] for i in [*task.splits["test"][:3], *task.splits["val"][:2], task.splits["train"][0]]]
    new = [f"an unseen line number {i}" for i in range(30)]
    (tmp_path / "more.txt").write_text("\n".join([leak[0], *new[:15], "   ", *leak[1:], *new[15:]]) + "\n")
    rows = transfer_dataset(task, unlabeled_source(str(tmp_path / "more.txt"), "text"), seed=5).take_all()
    got = [(r["text"], int(r["label"])) for r in rows]
    labeled = {(task.texts[i], int(task.labels[i])) for i in task.splits["train"]}
    assert len(got) == 130 and {g for g in got if g[1] >= 0} == labeled
    assert sorted(t for t, y in got if y < 0) == sorted(new)          # no task row, no blank line
    where = [i for i, (_, y) in enumerate(got) if y < 0]
    assert where != list(range(100, 130)) and min(where) < 60         # shuffled, not appended

    # the teacher's output file -> the student's rows, tokenized in Ray Data tasks
    probs = np.random.default_rng(0).dirichlet([1, 1], size=len(got)).astype(np.float32)
    pq.write_table(pa.table({"text": [t for t, _ in got], "input_label": [y for _, y in got],
                             "label": ["neg"] * len(got), "prob_neg": probs[:, 0], "prob_pos": probs[:, 1]}),
                   tmp_path / "teacher_probs.parquet", row_group_size=40)
    assert count_unlabeled(tmp_path / "teacher_probs.parquet") == 30
    tok = toks.ByteTokenizer()
    student = student_dataset(str(tmp_path / "teacher_probs.parquet"), tok.to_json(), 16, ["neg", "pos"]).take_all()
    assert [int(r["label"]) for r in student] == [y for _, y in got]
    np.testing.assert_allclose(np.stack([r["teacher_probs"] for r in student]), probs)
    first = list(got[0][0].encode())[:16]
    assert int(student[0]["length"]) == len(first) and list(student[0]["input_ids"][:len(first)]) == first


def test_many_parquet_files_start_one_footer_reader_not_ray_s_32(ray_session, tmp_path):
    """Ray Data reads Parquet footers with a pool of FooterReader actors, 32 by default (a
    Python process each; measured here: 32 for these 40 files with Ray's default): on 2 CPUs
    11 at once held 1.1 GB, the early peak of batch inference over 116 files. A local Ray
    started by init_ray gets one per 2 CPUs."""
    import os

    import pyarrow as pa
    import ray.data
    from ray.util.state import list_actors

    assert os.environ["RAY_DATA_PARQUET_FOOTER_NUM_ACTORS"] == "1"
    assert os.environ["RAY_DATA_PARQUET_BIN_PACKING_BYTES"] == str(16 * 2 ** 20)  # 16 MB read units
    before = len(list_actors(filters=[("class_name", "=", "FooterReader")], limit=10000, raise_on_missing_output=False))
    for i in range(40):
        pq.write_table(pa.table({"text": [f"row {i} {j}" for j in range(50)]}), tmp_path / f"part-{i:03d}.parquet")
    # (count() answers from the footers' metadata alone; a pass over the rows, as predict makes, reads them)
    assert sum(len(b["text"]) for b in ray.data.read_parquet(str(tmp_path)).iter_batches(batch_size=None)) == 2000
    started = list_actors(filters=[("class_name", "=", "FooterReader")], limit=10000, raise_on_missing_output=False)
    assert 0 < len(started) - before <= 1, len(started) - before
