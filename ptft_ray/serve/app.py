"""`ptft-ray serve`: a fine-tuned model behind HTTP on Ray Serve.

    POST /predict   {"text": "..."}          -> {"label": ..., "probabilities": {...}}
                    {"texts": ["...", ...]}  -> {"predictions": [{"label", "probabilities"}, ...]}
    GET  /health    -> {"status": "ok", "labels": [...], "model": ...}

Requests are batched across clients (`@serve.batch`: up to --max-batch-size texts, or
whatever arrived within --batch-wait-ms); each replica holds one model (finetune/predictor.py,
the code `predict` and `evaluate` use). Bad requests get a 4xx and a one-line reason in
{"error": ...}: never a 500.
"""
from __future__ import annotations

import asyncio
import json
import signal
import time

from ..errors import PtftError
from ..ship import ship, unship

MAX_TEXTS = 256  # texts in one request


def check_request(body: bytes, max_chars: int) -> tuple[list[str] | None, bool, tuple[int, str] | None]:
    """-> (texts, single, None) for a good body, (None, False, (status, reason)) for a bad one."""
    try:
        req = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
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


def build_app(model_dir: str, replicas: int = 1, max_replicas: int = 0, target_ongoing: float = 2.0,
              max_batch_size: int = 32, batch_wait_ms: float = 10.0, max_chars: int = 10_000,
              cpus_per_replica: float = 1.0, gpus_per_replica: float = 0.0):
    """The Serve application (bound, not yet running). max_replicas > replicas turns on
    autoscaling between the two on ongoing requests per replica."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @serve.deployment
    class TextClassifier:
        def __init__(self, shipped: list, device: str):
            import torch

            from ..finetune.predictor import Predictor

            torch.set_num_threads(max(1, int(cpus_per_replica)))
            self.p = Predictor(unship(shipped), device)
            self.model = model_dir
            self.classify.set_max_batch_size(max_batch_size)
            self.classify.set_batch_wait_timeout_s(batch_wait_ms / 1000)

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
        async def classify(self, texts: list[str]) -> list[dict]:
            return self.p.predict(texts)

        async def __call__(self, request: Request):
            path = request.url.path.rstrip("/") or "/"
            if path == "/health":
                return JSONResponse({"status": "ok", "labels": self.p.labels, "model": self.model})
            if path != "/predict":
                return JSONResponse({"error": f"no route {path}; use POST /predict or GET /health"}, 404)
            if request.method != "POST":
                return JSONResponse({"error": "use POST with a JSON body"}, 405)
            texts, single, bad = check_request(await request.body(), max_chars)
            if bad:
                return JSONResponse({"error": bad[1]}, bad[0])
            out = await asyncio.gather(*(self.classify(t) for t in texts))
            return JSONResponse(out[0] if single else {"predictions": out})

    opts: dict = {"ray_actor_options": {"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
                  "max_ongoing_requests": max(4, 2 * max_batch_size)}
    if max_replicas > replicas:
        opts["autoscaling_config"] = {"min_replicas": replicas, "initial_replicas": replicas,
                                      "max_replicas": max_replicas, "target_ongoing_requests": target_ongoing}
    else:
        opts["num_replicas"] = replicas
    return TextClassifier.options(**opts).bind(ship(model_dir), "cuda" if gpus_per_replica else "cpu")


def serve_model(model_dir: str, host: str = "127.0.0.1", port: int = 8000, blocking: bool = True,
                **app_kw) -> dict:
    """Start Serve's HTTP proxy on host:port and run the model there. blocking: until Ctrl-C
    or SIGTERM, then the app and Serve are shut down."""
    from ..cluster import init_ray
    from ..train import checkpoint as ckpt

    meta = ckpt.read_meta(model_dir)  # a bad --model fails here, before Ray
    if meta.get("task") != "cls":
        raise PtftError(f"--model {model_dir}: not a fine-tuned classifier")
    from ..models.quantize import check_device

    gpus = app_kw.get("gpus_per_replica", 0.0)
    check_device(meta, bool(gpus), f"--gpus-per-replica {gpus:g}", model_dir)
    if not 0 < port < 65536:
        raise PtftError(f"--port {port}: not a TCP port")
    for key in ("replicas", "max_batch_size", "max_chars"):
        if app_kw.get(key, 1) < 1:
            raise PtftError(f"--{key.replace('_', '-')} {app_kw[key]}: must be at least 1")
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
        serve.run(build_app(model_dir, **app_kw), name="ptft", route_prefix="/", logging_config=logs)
        info = {"url": f"http://{host}:{port}", "routes": ["POST /predict", "GET /health"],
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
