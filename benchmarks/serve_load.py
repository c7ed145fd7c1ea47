"""Load on `ptft-ray serve`: `python -m benchmarks serve_load [--model DIR] [--seconds 20]`.

1, 8 and 32 concurrent clients each POST /predict (one text a request, bearer token on) for
--seconds; meanwhile a prober GETs /health every 50 ms. Reported per level: requests/s,
p50 / p99 latency, errors (any non-200 or failed connection), and /health's p50 / p99 while
the replica is saturated. The model: --model, else the main job's export
(runs/main/sweep_pretrained/model), else a 2-trial smoke sweep's export built here (~40 s).
Writes benchmarks/results/serve_load.json. Clients and server share this machine's CPUs.
"""
from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .common import ROOT, save

TEXTS = ["a great and moving film", "dull, boring and far too long", "the story was superb",
         "an awful, tedious movie", "it was a film", "brilliant acting and a weak plot"]


def model_dir(arg: str | None, tmp: Path) -> tuple[str, str]:
    """-> (the model directory, how the results name it)."""
    if arg:
        return arg, arg
    main = ROOT / "runs" / "main" / "sweep_pretrained" / "model"
    if main.is_dir():
        return str(main), "runs/main/sweep_pretrained/model (the main job's export)"
    out = tmp / "sweep"
    subprocess.run([sys.executable, "jobs/finetune_sweep.py", "--smoke-test", "--out", str(out)], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(out / "model"), "a 2-trial smoke sweep export (jobs/finetune_sweep.py --smoke-test), built by the benchmark"


def describe(model: str) -> str:
    from ptft_ray.train.checkpoint import read_meta

    c = read_meta(model)["config"]
    m = c["model"]
    name = m["hf"] or f"our {m['arch']} (d_model {m['d_model']}, {m['n_layers']} layers)"
    return f"{name}, max_len {c['finetune']['max_len']}"


def post(port: int, token: str, text: str) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request("POST", "/predict", json.dumps({"text": text}),
                  {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def get_health(port: int) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request("GET", "/health")
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def pct(xs: list[float], q: float) -> float | None:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def level(port: int, token: str, clients: int, seconds: float) -> dict:
    stop = time.perf_counter() + seconds
    lat: list[float] = []
    health: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(i: int):
        k = i
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                ok = post(port, token, TEXTS[k % len(TEXTS)]) == 200
            except OSError:
                ok = False
            with lock:
                lat.append(time.perf_counter() - t0) if ok else None
                errors[0] += not ok
            k += 1

    def prober():
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                if get_health(port) == 200:
                    health.append(time.perf_counter() - t0)
            except OSError:
                errors[0] += 1
            time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)] + [threading.Thread(target=prober)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = lambda x: x and round(1000 * x, 1)  # noqa: E731
    return {"clients": clients, "seconds": round(wall, 1), "requests": len(lat), "requests_per_s": round(len(lat) / wall, 1),
            "p50_ms": ms(pct(lat, 0.5)), "p99_ms": ms(pct(lat, 0.99)), "errors": errors[0],
            "health_p50_ms": ms(pct(health, 0.5)), "health_p99_ms": ms(pct(health, 0.99)), "health_probes": len(health)}


def main(argv: list[str]) -> int:
    seconds = float(argv[argv.index("--seconds") + 1]) if "--seconds" in argv else 20.0
    tmp = Path(tempfile.mkdtemp(prefix="ptft-load-"))
    model, label = model_dir(argv[argv.index("--model") + 1] if "--model" in argv else None, tmp)
    token = secrets.token_hex(16)
    (tmp / "token").write_text(token)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    server = subprocess.Popen([sys.executable, "-m", "ptft_ray.cli", "serve", "--model", model, "--port", str(port),
                               "--auth-token-file", str(tmp / "token")], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=open(tmp / "serve.err", "w"), text=True)
    try:
        info = json.loads(server.stdout.readline())
        for _ in range(20):  # warm-up: the replica's first batches
            post(port, token, TEXTS[0])
        levels = [level(port, token, c, seconds) for c in (1, 8, 32)]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=120)
    out = {"model": label, "model_desc": describe(model), "start_s": info.get("start_s"), "levels": levels, "seconds_per_level": seconds,
           "note": f"{os.cpu_count()} CPUs, clients and server on the same machine",
           "command": "python -m benchmarks serve_load"}
    save("serve_load", out)
    return 0 if all(lv["errors"] == 0 for lv in levels) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
