"""An S3-compatible server for the tests: moto in server mode, an emulator.

Started on 127.0.0.1 on a port chosen at run time, stopped by PID. Each
caller gets a bucket of its own, so servers and tests never share objects.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

_STARTUP_SECONDS = 60
_PORT_ATTEMPTS = 3
REGION = "us-east-1"
# moto accepts any key; these name the emulator's account in requests.
ACCESS_KEY = "dockyard-test"
SECRET_KEY = "dockyard-test-secret"


class MotoServer:
    """One `moto.server` process listening on 127.0.0.1."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self, free_port) -> MotoServer:
        for _ in range(_PORT_ATTEMPTS):
            port = free_port()
            if self._start_on(port):
                return self
        raise RuntimeError(f"moto did not start:\n{self.log_path.read_text()}")

    def _start_on(self, port: int) -> bool:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1"]
                + ["-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if self._answers_as_ours():
                return True
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto did not answer within {_STARTUP_SECONDS}s")

    def _answers_as_ours(self) -> bool:
        # Whoever answers must hold the bucket we just made there.
        name = f"probe-{secrets.token_hex(6)}"
        try:
            self.client().create_bucket(Bucket=name)
            self.client().head_bucket(Bucket=name)
        except (BotoCoreError, ClientError):  # not up yet, or not moto
            return False
        return True

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def new_bucket(self) -> str:
        name = f"dockyard-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def object_count(self, bucket: str, prefix: str = "") -> int:
        pages = self.client().get_paginator("list_objects_v2")
        return sum(
            page.get("KeyCount", 0)
            for page in pages.paginate(Bucket=bucket, Prefix=prefix)
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def credentials_env() -> dict[str, str]:
    """The standard AWS variables obstore reads, for the emulator's account."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
