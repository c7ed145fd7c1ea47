from collections import Counter

import numpy as np
import pytest

from ptft_ray.data.packing import is_val, pack, unpack


def test_pack_unpack_exact():
    docs = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9, 10, 11]]
    blocks = pack(docs, eot=0, pad=99, block=4)
    assert blocks.shape[1] == 4
    assert unpack(blocks, eot=0, pad=99) == docs
    # every stream token once; only the tail is padded
    assert (blocks != 99).sum() == sum(len(d) + 1 for d in docs)
    assert (blocks[:-1] != 99).all()


def test_val_split_is_stable():
    texts = [f"doc {i}" for i in range(2000)]
    picks = [is_val(t, 0.1) for t in texts]
    assert picks == [is_val(t, 0.1) for t in texts]
    assert 100 < sum(picks) < 300


@pytest.mark.parametrize("cache_mb", [0, 256])
def test_ray_data_pipeline_loses_and_duplicates_no_token(ray_session, tiny_corpus, cache_mb):
    """Through real Ray Data, streamed (cache_mb 0) and tokenized once into the object store
    (a corpus this small, at the default): every document of the corpus comes back exactly
    once, in the train or the validation split, token for token."""
    import pyarrow.parquet as pq

    from ptft_ray import tokenizer as toks
    from ptft_ray.config import DataConfig
    from ptft_ray.data.corpus import build_datasets, check_corpus

    from ray.data.dataset import MaterializedDataset

    dc = DataConfig(path=tiny_corpus, tokenizer="byte", seq_len=31, docs_per_batch=50,
                    max_val_blocks=10_000, val_fraction=0.2, cache_mb=cache_mb)
    tok = toks.build("byte", [], 0)
    files, fmt = check_corpus(dc)
    train, val, counts = build_datasets(dc, tok, files, fmt)
    assert isinstance(train, MaterializedDataset) == bool(cache_mb)
    blocks = [b["tokens"] for ds in (train, val) for b in ds.iter_batches(batch_format="numpy")]
    got = np.concatenate(blocks)
    assert got.shape[1] == 32
    texts = [t for f in files for t in pq.read_table(f)["text"].to_pylist()]
    want = Counter(tuple(d) for d in tok.encode_batch(texts))
    have = Counter(tuple(d) for d in unpack(got, tok.eot_id, tok.pad_id))
    assert have == want
    assert counts.sum() > 0 and counts[tok.pad_id] == 0
    # the unigram level's training counts, packed on the driver, are those of the stream's
    # first blocks (a multiple of docs_per_batch documents, and not)
    from ptft_ray.data.corpus import first_train_counts, target_counts

    for n in (30, 41):
        assert np.array_equal(first_train_counts(dc, tok, files, fmt, n), target_counts(train.limit(n), tok))


def test_end_of_text_stays_a_target_where_the_tokenizer_pads_with_it(hf_dirs):
    """GPT-2 and Llama tokenizers have no pad token: blocks are padded with EOS. Every stream
    token but each block's first is a target, EOS separators included; only the tail is
    padding. Our BPE tokenizer (pad != EOS) keeps its old rule under the same invariant."""
    from ptft_ray import tokenizer as toks
    from ptft_ray.data.packing import padding
    from ptft_ray.data.synthetic import synthetic_docs

    texts = synthetic_docs(40, seed=2)
    ours = toks.build("bpe", texts, 300)
    for tok in (toks.HFTokenizer.from_dir(hf_dirs["gpt2"]), toks.HFTokenizer.from_dir(hf_dirs["llama"]), ours):
        docs = tok.encode_batch(texts)
        for block in (7, 16, 33):
            blocks = pack(docs, tok.eot_id, tok.pad_id, block)
            stream_len = sum(len(d) + 1 for d in docs)
            kept = ~padding(blocks, tok.pad_id, tok.eot_id).numpy()[:, 1:]
            assert kept.sum() == stream_len - len(blocks)            # every target but padding
            eos_targets = int((blocks[:, 1:][kept] == tok.eot_id).sum()) + int((blocks[:, 0] == tok.eot_id).sum())
            assert eos_targets == len(docs), (type(tok).__name__, block)   # each document's end, once
        assert (tok.pad_id == tok.eot_id) == (tok is not ours)


def test_the_unigram_level_is_a_model_of_the_training_text():
    """Pretraining's baseline: a unigram model fitted on training text, scored on validation
    targets. Over a Zipf vocabulary of 30k, 5,000 validation tokens' own entropy sits at 40 % of
    the true unigram perplexity; the fitted model lands within 5 % of it."""
    import math

    from ptft_ray.data.corpus import unigram_perplexity

    V = 30_000
    p = 1 / (np.arange(V) + 10) ** 1.1
    p /= p.sum()
    rng = np.random.default_rng(0)
    train = np.bincount(rng.choice(V, 500_000, p=p), minlength=V)
    val = np.bincount(rng.choice(V, 5_000, p=p), minlength=V)
    true = math.exp(-(p * np.log(p)).sum())
    q = val[val > 0] / val.sum()
    assert math.exp(-(q * np.log(q)).sum()) < 0.5 * true          # the old, in-sample "level"
    assert unigram_perplexity(train, val) == pytest.approx(true, rel=0.05)
    # ids the loss never scores are left out of both sides: here the two most frequent
    assert unigram_perplexity(train, val, ignore=[0, 1]) > unigram_perplexity(train, val)


def test_a_corpus_is_cached_only_where_its_packed_blocks_fit(tmp_path):
    """data.cache_mb against the packed size expected from the files' bytes (4x a Parquet
    file's, 1.2x a text file's); 0 streams every corpus."""
    from ptft_ray.config import DataConfig
    from ptft_ray.data.corpus import cached

    small, big = tmp_path / "a.parquet", tmp_path / "b.txt"
    small.write_bytes(b"x" * 200_000)  # 0.8 MB packed
    big.write_bytes(b"x" * 1_000_000)  # 1.2 MB packed
    assert cached(DataConfig(cache_mb=1), [str(small)], "parquet")
    assert not cached(DataConfig(cache_mb=1), [str(small), str(small)], "parquet")
    assert not cached(DataConfig(cache_mb=1), [str(big)], "text")
    assert cached(DataConfig(cache_mb=2), [str(big)], "text")
    assert not cached(DataConfig(cache_mb=0), [str(small)], "parquet")
