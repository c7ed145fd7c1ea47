"""The prepared health tweets carry no URL: each source's shortener names the label."""
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
