import pytest

from ptft_ray import tokenizer as toks
from ptft_ray.errors import PtftError

TEXTS = ["Hello, world!", "naïve café — ünïcode ✓", "  spaces\tand\nnewlines  ", ""]


def test_byte_round_trip(tmp_path):
    tok = toks.build("byte", [], 0)
    for t, ids in zip(TEXTS, tok.encode_batch(TEXTS)):
        assert tok.decode(ids) == t and max(ids, default=0) < 256
    toks.save(tok, tmp_path)
    assert toks.load(tmp_path).encode_batch(TEXTS) == tok.encode_batch(TEXTS)


def test_bpe_trains_round_trips_and_saves(tmp_path):
    from conftest import synthetic_docs

    tok = toks.build("bpe", synthetic_docs(200) + TEXTS, 300)
    assert tok.vocab_size <= 300 and tok.eot_id != tok.pad_id
    enc = tok.encode_batch(TEXTS)
    assert [tok.decode(ids) for ids in enc] == TEXTS          # lossless, unicode included
    assert len(enc[0]) < len(TEXTS[0].encode())               # merges compress
    toks.save(tok, tmp_path)
    again = toks.load(tmp_path)
    assert again.encode_batch(TEXTS) == enc and again.vocab_size == tok.vocab_size


def test_bpe_needs_a_sample_and_corrupt_json_is_refused(tmp_path):
    with pytest.raises(PtftError, match="empty"):
        toks.build("bpe", [], 100)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(PtftError, match="corrupt"):
        toks.load(tmp_path)
