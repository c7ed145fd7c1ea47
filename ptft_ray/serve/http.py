"""What the endpoint checks before a text reaches the model, without Ray: the body (read with a
cap, never buffered past it), its JSON, the bearer token, and the request counters that
/metrics prints in Prometheus' text format. Every refusal is (status, one-line reason)."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading

MAX_TEXTS = 256  # texts in one request
ROUTES = ("/predict", "/health", "/metrics")
# curl -d sends form-urlencoded by default: accepted with JSON; other declared types are 415
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def token_digest(token: str | None) -> str | None:
    """What a replica keeps of the token: its SHA-256 (the token itself never leaves the driver)."""
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def authorized(header: str | None, digest: str | None) -> bool:
    """`Authorization: Bearer TOKEN` against the token's digest (constant-time compare)."""
    if digest is None:
        return True
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token_digest(value.strip()) or "", digest)


async def read_body(request, limit: int) -> tuple[bytes | None, tuple[int, str] | None]:
    """The body, refused with 413 as soon as Content-Length or the bytes read pass `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            return None, (400, "Content-Length is not a number")
        if int(declared) > limit:
            return None, (413, f"the body has {int(declared)} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None, (413, f"the body is over the limit of {limit} bytes")
    return bytes(body), None


def content_type_ok(header: str | None) -> bool:
    kind = (header or "").split(";")[0].strip().lower()
    return not kind or kind in JSON_TYPES or kind.endswith("+json")


def check_request(body: bytes, max_chars: int) -> tuple[list[str] | None, bool, tuple[int, str] | None]:
    """-> (texts, single, None) for a good body, (None, False, (status, reason)) for a bad one."""
    try:
        req = json.loads(body)
    except RecursionError:  # nesting deeper than Python's stack
        return None, False, (400, "the JSON is nested too deeply")
    except ValueError:  # not JSON, not UTF-8, or an integer past Python's digit limit
        return None, False, (400, "the body is not JSON")
    if not isinstance(req, dict) or ("text" in req) == ("texts" in req):
        return None, False, (400, 'send a JSON object with "text" (a string) or "texts" (a list of strings)')
    single = "text" in req
    texts = [req["text"]] if single else req["texts"]
    if not isinstance(texts, list) or not texts:
        return None, False, (400, '"texts" must be a non-empty list of strings')
    if len(texts) > MAX_TEXTS:
        return None, False, (413, f"{len(texts)} texts in one request; the limit is {MAX_TEXTS}")
    for i, t in enumerate(texts):
        where = '"text"' if single else f'"texts"[{i}]'
        if not isinstance(t, str):
            return None, False, (400, f"{where} is {type(t).__name__}, not a string")
        if not t.strip():
            return None, False, (400, f"{where} is empty")
        if len(t) > max_chars:
            return None, False, (413, f"{where} has {len(t)} characters; the limit is {max_chars}")
    return texts, single, None


class Metrics:
    """Requests by route and status, and /predict's latency, of one replica."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, int], int] = {}
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_sum, self.latency_count = 0.0, 0

    def record(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else "other"   # bounded label values
        with self.lock:
            self.counts[route, status] = self.counts.get((route, status), 0) + 1
            if route == "/predict":
                self.latency_sum += seconds
                self.latency_count += 1
                for i, le in enumerate(LATENCY_BUCKETS):
                    self.buckets[i] += seconds <= le

    def text(self) -> str:
        with self.lock:
            lines = ["# HELP ptft_requests_total Requests this replica answered, by route and status.",
                     "# TYPE ptft_requests_total counter"]
            lines += [f'ptft_requests_total{{route="{r}",code="{c}"}} {n}' for (r, c), n in sorted(self.counts.items())]
            lines += ["# HELP ptft_predict_seconds Time to answer POST /predict, read to response.",
                      "# TYPE ptft_predict_seconds histogram"]
            lines += [f'ptft_predict_seconds_bucket{{le="{le}"}} {n}' for le, n in zip(LATENCY_BUCKETS, self.buckets)]
            lines += [f'ptft_predict_seconds_bucket{{le="+Inf"}} {self.latency_count}',
                      f"ptft_predict_seconds_sum {self.latency_sum:.6f}", f"ptft_predict_seconds_count {self.latency_count}"]
        return "\n".join(lines) + "\n"
