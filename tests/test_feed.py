"""Can Ray Data feed the GPUs (data/feed.py): the tokenize + pack rate is timed on real text
with the real tokenizers, and the plan's arithmetic says how many CPUs a GPU needs."""
import pytest

from ptft_ray import tokenizer as toks
from ptft_ray.data import feed

from conftest import synthetic_docs


def test_the_rate_is_tokens_per_cpu_second_of_tokenize_and_pack():
    texts = synthetic_docs(200)
    byte = feed.rate_per_cpu(texts, toks.ByteTokenizer(), 65, min_s=0.2)
    bpe = feed.rate_per_cpu(texts, toks.build("bpe", texts, 512), 65, min_s=0.2)
    assert byte > 0 and bpe > 0
    # byte tokens are ~4x as many as a 512-token BPE's on the same text, and cheaper each
    assert byte > bpe


def test_the_plan_sizes_cpus_per_gpu_from_the_expected_model_rate():
    # Llama-3.2-1B-like: 1.24B parameters, 16 layers, hidden 2048, 2,048 tokens a row
    flops = feed.flops_per_token(1_240_000_000, 16, 2048, 2048)
    p = feed.plan(per_cpu=100_000, flops=flops, gpus=8, free_cpus=64, tflops=989)
    per_gpu = 0.4 * 989e12 / flops
    assert p["expected_tokens_per_s_per_gpu"] == pytest.approx(per_gpu, rel=1e-3)
    assert p["cpus_per_gpu_needed"] == pytest.approx(per_gpu / 100_000, abs=0.01)
    assert p["cpus_per_gpu_free"] == 8 and p["enough"] is (8 >= per_gpu / 100_000)
    starved = feed.plan(per_cpu=1_000, flops=flops, gpus=8, free_cpus=8, tflops=989)
    assert starved["enough"] is False and "will wait for data" in starved["line"]
    unknown = feed.plan(per_cpu=1_000, flops=flops, gpus=8, free_cpus=8, tflops=None)
    assert "scaling.gpu_tflops" in unknown["line"] and "enough" not in unknown
    cpu = feed.plan(per_cpu=1_000, flops=flops, gpus=0, free_cpus=1, tflops=None)
    assert cpu["line"].startswith("corpus feed: tokenize + pack 1,000 tokens/s per CPU")


def test_samples_stream_from_the_head_of_a_line_file(tmp_path):
    """The feed's and the BPE tokenizer's sample reads a JSONL or text corpus from its head:
    the first texts in order, across the 1 MB chunk boundary, never the malformed tail."""
    import json

    from ptft_ray.data.sources import sample_texts

    docs = [f"document {i} " + "x" * 3000 for i in range(600)]  # ~1.8 MB: two chunks
    jl = tmp_path / "c.jsonl"
    jl.write_text("\n".join(json.dumps({"body": d}) for d in docs) + "\n{broken json")
    assert sample_texts([str(jl)], "jsonl", "body", 500) == docs[:500]
    txt = tmp_path / "c.txt"
    txt.write_text("\n\n".join(docs))
    assert sample_texts([str(txt)], "text", "text", 600) == docs
