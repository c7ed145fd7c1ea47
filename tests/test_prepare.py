"""Prepared datasets: the health tweets carry no URL (each source's shortener names the label);
the Commons and Bundestag tasks keep their parties' members, not the chair; a news topic is
one both outlets file under; a debate statement needs words enough to carry a side."""
from ptft_ray.data.prepare import strip_urls


def test_strip_urls_removes_whole_glued_and_truncated_links():
    raw = ["Breast cancer risk test devised http://bbc.in/1CimpJF",
           "tips on heart-healthy livinghttp://ow.ly/hLq7W #HealthTalk",
           "RT @x: Men gain weight in college #diet http:/…",
           "Dancing with the Stars ... http:// ...",
           "worse when parents don't come http…",
           "see www.cbc.ca/news/health and https://t.co/abc  now",
           "http://only.a/link",
           "an https-free sentence about httpd servers"]
    got = strip_urls(raw)
    assert got == ["Breast cancer risk test devised",
                   "tips on heart-healthy living #HealthTalk",
                   "RT @x: Men gain weight in college #diet",
                   "Dancing with the Stars ... ...",
                   "worse when parents don't come",
                   "see and now",
                   "",
                   "an https-free sentence about httpd servers"]


def test_commons_speeches_keep_the_two_parties_and_leave_out_the_chair():
    import pyarrow as pa

    from ptft_ray.data.prepare import parlspeech_rows

    t = pa.table({"text": ["a", "b", "c", "d", "e"], "party": ["Con", "Lab", "NA", "LibDem", "Lab"],
                  "chair": [False, False, True, False, True]})
    got = parlspeech_rows(t)
    assert got.column_names == ["text", "label"]
    assert got.to_pylist() == [{"text": "a", "label": "Con"}, {"text": "b", "label": "Lab"}]


def test_section_of_names_a_topic_only_where_both_outlets_file_it():
    from ptft_ray.data.prepare import section_of

    assert section_of("http://tass.com/politics/930183") == "politics"
    assert section_of("https://abcnews.go.com/International/wireStory/x") == "world"
    assert section_of("http://abcnews.go.com/US/story?id=1") is None      # ABC alone files "US"
    assert section_of("http://tass.com/defense/1") is None                 # TASS alone files "defense"
    assert section_of("http://www.bbc.co.uk/news/world-1") is None


def test_bundestag_rows_keep_its_five_parties_and_leave_out_the_chair():
    import pyarrow as pa

    from ptft_ray.data.prepare import BUNDESTAG_PARTIES, parlspeech_rows

    t = pa.table({"text": ["a", "b", "c", "d", "e"], "party": ["SPD", "AfD", "GRUENE", None, "FDP"],
                  "chair": [False, False, False, False, True]})
    assert parlspeech_rows(t, BUNDESTAG_PARTIES).to_pylist() == [{"text": "a", "label": "SPD"},
                                                              {"text": "c", "label": "GRUENE"}]


def test_debate_rows_drop_statements_too_short_to_carry_a_side():
    import pyarrow as pa

    from ptft_ray.data.prepare import debate_rows

    t = pa.table({"statement": ["Thank you.", "We will build  a great\nwall.", None, "Go ahead, Governor."],
                  "party": ["Moderator", "Republican", "Democratic", "Moderator"]})
    assert debate_rows(t).to_pylist() == [{"text": "We will build a great wall.", "label": "Republican"}]
