"""`ptft-ray serve`: a fine-tuned model behind HTTP on Ray Serve.

    POST /predict   {"text": "..."}          -> {"label": ..., "probabilities": {...}}
                    {"texts": ["...", ...]}  -> {"predictions": [{"label", "probabilities"}, ...]}
    GET  /health    -> {"status": "ok", "labels": [...]}
    GET  /metrics   -> this replica's request counters and latency histogram (Prometheus text)

With a token (--auth-token-file F, or PTFT_SERVE_TOKEN) /predict and /metrics need
`Authorization: Bearer TOKEN` (401 otherwise); /health stays open for load balancers.

Requests are batched across clients (`@serve.batch`: up to --max-batch-size texts, or
whatever arrived within --batch-wait-ms); each replica holds one model (finetune/predictor.py,
the code `predict` and `evaluate` use), which runs on a thread of its own. Bad requests get
a 4xx and a one-line reason in {"error": ...}, never a 500 (serve/http.py).
"""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

from starlette.responses import JSONResponse, PlainTextResponse

from ..errors import PtftError
from ..ship import ship, unship
from .http import ROUTES, Metrics, authorized, check_request, content_type_ok, read_body, token_digest

def build_app(model_dir: str, replicas: int = 1, max_replicas: int = 0, target_ongoing: float = 2.0,
              max_batch_size: int = 32, batch_wait_ms: float = 10.0, max_chars: int = 10_000,
              cpus_per_replica: float = 1.0, gpus_per_replica: float = 0.0, max_body_bytes: int = 2 ** 20,
              token: str | None = None):
    """The Serve application (bound, not yet running). max_replicas > replicas turns on
    autoscaling between the two on ongoing requests per replica. token: POST /predict and
    GET /metrics need `Authorization: Bearer TOKEN` (replicas keep only its digest)."""
    from ray import serve

    @serve.deployment
    class TextClassifier:
        def __init__(self, shipped: list, device: str, digest: str | None):
            import torch
            from concurrent.futures import ThreadPoolExecutor

            from ..finetune.predictor import Predictor

            torch.set_num_threads(max(1, int(cpus_per_replica)))
            self.p = Predictor(unship(shipped), device)
            self.model, self.digest, self.metrics = model_dir, digest, Metrics()
            # inference runs on this thread, off the event loop: /health answers during a batch
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="ptft-predict")
            self.classify.set_max_batch_size(max_batch_size)
            self.classify.set_batch_wait_timeout_s(batch_wait_ms / 1000)

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
        async def classify(self, texts: list[str]) -> list[dict]:
            return await asyncio.get_running_loop().run_in_executor(self.pool, self.p.predict, texts)

        async def __call__(self, request):
            t0 = time.perf_counter()
            path = request.url.path.rstrip("/") or "/"
            status, payload = await self.answer(request, path)
            self.metrics.record(path, status, time.perf_counter() - t0)
            if isinstance(payload, str):
                return PlainTextResponse(payload, status)
            return JSONResponse(payload, status, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)

        async def answer(self, request, path: str) -> tuple[int, dict | str]:
            wrong = route_error(path, request.method)
            if wrong:
                return wrong
            if path == "/health":
                return 200, {"status": "ok", "labels": self.p.labels}
            if not authorized(request.headers.get("authorization"), self.digest):
                return 401, {"error": "missing or wrong bearer token (Authorization: Bearer TOKEN)"}
            if path == "/metrics":
                return 200, self.metrics.text()
            if not content_type_ok(request.headers.get("content-type")):
                return 415, {"error": "send the body as application/json"}
            body, bad = await read_body(request, max_body_bytes)
            texts, single, bad = (None, False, bad) if bad else check_request(body, max_chars)
            if bad:
                return bad[0], {"error": bad[1]}
            out = await asyncio.gather(*(self.classify(t) for t in texts))
            return 200, out[0] if single else {"predictions": out}

    opts = deployment_options(replicas, max_replicas, target_ongoing, cpus_per_replica, gpus_per_replica, max_batch_size)
    return TextClassifier.options(**opts).bind(ship(model_dir), "cuda" if gpus_per_replica else "cpu",
                                               token_digest(token))


def deployment_options(replicas: int, max_replicas: int, target_ongoing: float, cpus: float, gpus: float,
                       max_batch_size: int) -> dict:
    """Serve's options: autoscaling between `replicas` and `max_replicas` where the latter is larger."""
    opts: dict = {"ray_actor_options": {"num_cpus": cpus, "num_gpus": gpus},
                  "max_ongoing_requests": max(4, 2 * max_batch_size)}
    if max_replicas > replicas:
        opts["autoscaling_config"] = {"min_replicas": replicas, "initial_replicas": replicas,
                                      "max_replicas": max_replicas, "target_ongoing_requests": target_ongoing}
    else:
        opts["num_replicas"] = replicas
    return opts


def route_error(path: str, method: str) -> tuple[int, dict] | None:
    """404 for a path not served, 405 for the wrong method; None where the route is right."""
    if path not in ROUTES:  # the path echoed as printable ASCII: a lone surrogate cannot encode
        shown = path[:100].encode("ascii", "backslashreplace").decode()
        return 404, {"error": f"no route {shown}; use POST /predict, GET /health or GET /metrics"}
    want = "POST" if path == "/predict" else "GET"
    if method != want:
        return 405, {"error": f"{path} takes {want}"}
    return None


def exposure_warning(host: str, port: int, token: str | None) -> str | None:
    """One line where the endpoint listens beyond this machine with no token."""
    if token or host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (f"ptft-ray: warning: serving on {host} without a token: anyone who reaches port {port} can use "
            f"the model (--auth-token-file F or PTFT_SERVE_TOKEN)")


def read_token(path: str | None) -> str | None:
    """The bearer token: --auth-token-file's first line, else PTFT_SERVE_TOKEN, else none."""
    import os
    from pathlib import Path

    if path:
        try:
            text = Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError) as e:
            raise PtftError(f"--auth-token-file {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
        token = text.splitlines()[0].strip() if text else ""
        if len(token) < 16:
            raise PtftError(f"--auth-token-file {path}: the token must be at least 16 characters")
        return token
    return os.environ.get("PTFT_SERVE_TOKEN") or None


def serve_model(model_dir: str, host: str = "127.0.0.1", port: int = 8000, blocking: bool = True,
                auth_token_file: str | None = None, **app_kw) -> dict:
    """Start Serve's HTTP proxy on host:port and run the model there. blocking: until Ctrl-C
    or SIGTERM, then the app and Serve are shut down."""
    from ..cluster import init_ray
    from ..train import checkpoint as ckpt

    meta = ckpt.read_task_meta(model_dir, "cls", f"--model {model_dir}: not a fine-tuned classifier")  # before Ray
    from ..models.quantize import check_device

    gpus = app_kw.get("gpus_per_replica", 0.0)
    check_device(meta, bool(gpus), f"--gpus-per-replica {gpus:g}", model_dir)
    if not 0 < port < 65536:
        raise PtftError(f"--port {port}: not a TCP port")
    for key in ("replicas", "max_batch_size", "max_chars", "max_body_bytes"):
        if app_kw.get(key, 1) < 1:
            raise PtftError(f"--{key.replace('_', '-')} {app_kw[key]}: must be at least 1")
    token = read_token(auth_token_file)
    warning = exposure_warning(host, port, token)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    init_ray()
    import os

    from ray import serve

    # one access-log line per request drowns everything else: --verbose brings them back
    logs = None if os.environ.get("PTFT_VERBOSE") else {"enable_access_log": False, "log_level": "WARNING"}
    if logs:  # the driver's own "Started Serve" / "Connecting to existing Serve app" lines
        import logging

        logging.getLogger("ray.serve").setLevel(logging.WARNING)
    t0, info = time.time(), {}
    try:
        serve.start(http_options={"host": host, "port": port}, logging_config=logs)
        serve.run(build_app(model_dir, token=token, **app_kw), name="ptft", route_prefix="/", logging_config=logs)
        info = {"url": f"http://{host}:{port}", "routes": ["POST /predict", "GET /health", "GET /metrics"],
                "auth": "bearer token" if token else "none",
                "labels": meta["task_info"]["labels"], "start_s": round(time.time() - t0, 1)}
        if not blocking:
            return info
        print(json.dumps(info), flush=True)
        stop = []
        # our own handlers: a local Ray started by this process replaces Python's SIGINT one
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.append(1))
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if blocking:  # Ctrl-C, SIGTERM or a failed start: the app and Serve's actors go too
            serve.shutdown()
    return info
