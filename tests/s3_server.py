"""A real S3 API on 127.0.0.1: the moto server in its own process, on its own port, stopped
by PID. `env` is what a client needs (the standard AWS variables pyarrow and boto read)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self, bucket: str = "ptft"):
        self.port, self.bucket = free_port(), bucket
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true"}
        self.proc = None

    def start(self) -> "S3Server":
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.time()
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if time.time() - t0 > 30 or self.proc.poll() is not None:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.1)
        import pyarrow.fs as pafs

        pafs.S3FileSystem(endpoint_override=self.endpoint, access_key="testing", secret_key="testing",
                          region="us-east-1", allow_bucket_creation=True).create_dir(self.bucket)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def uri(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])

    def apply(self) -> dict:
        """Put the variables in this process's environment; returns the previous values."""
        old = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        return old
