"""Fixtures shared by every test that needs a running Dockyard or real images.

`DockyardServer` starts `dockyard serve` as a subprocess on 127.0.0.1, on a
port chosen at run time, with its own data directory, and stops it by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKYARD = [sys.executable, "-m", "dockyard"]
_STARTUP_SECONDS = 60


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DockyardServer:
    """One `dockyard serve` process and what a test needs to talk to it."""

    def __init__(
        self, root: Path, env: dict[str, str] | None = None, workers: int = 1
    ) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.admin_password = "Adm1n-" + secrets.token_urlsafe(12)
        self.log_path = root / "server.log"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._env = {
            **os.environ,
            "DOCKYARD_ADMIN_PASSWORD": self.admin_password,
            "DOCKYARD_WORKERS": str(workers),
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> DockyardServer:
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                *DOCKYARD,
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                self.host,
            ],
            env=self._env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"dockyard exited early:\n{self.log()}")
            if self._answers_as_ours():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"dockyard did not answer within {_STARTUP_SECONDS}s:\n{self.log()}"
        )

    def _answers_as_ours(self) -> bool:
        # Whoever answers must know the admin password we just set.
        try:
            response = httpx.get(
                f"{self.url}/v2/", auth=("admin", self.admin_password), timeout=2
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def cli(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `dockyard admin --data-dir DATA ARGS...`."""
        result = subprocess.run(
            [*DOCKYARD, "admin", "--data-dir", str(self.data_dir), *args],
            input=input,
            text=True,
            capture_output=True,
            env=self._env,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"dockyard admin {' '.join(args)} failed:\n{result.stderr}"
            )
        return result

    def create_user(self, name: str, password: str, *extra: str) -> None:
        self.cli(
            "user", "create", name, "--password-stdin", *extra, input=password + "\n"
        )

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="session")
def dockyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardServer]:
    """The server most tests share; tests make their own users, projects, names."""
    server = DockyardServer(tmp_path_factory.mktemp("dockyard")).start()
    yield server
    server.stop()


@pytest.fixture
def start_dockyard(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., DockyardServer]]:
    """Start servers of a test's own (extra environment, several workers)."""
    started: list[DockyardServer] = []

    def start(env: dict[str, str] | None = None, workers: int = 1) -> DockyardServer:
        server = DockyardServer(tmp_path_factory.mktemp("dockyard"), env, workers)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@dataclass(frozen=True)
class Images:
    """The fixture images built by `shared/fixtures/make-images`."""

    root: Path
    manifest: dict

    @property
    def oci(self) -> Path:
        return self.root / "oci"

    def digest(self, ref: str) -> str:
        return next(i["digest"] for i in self.manifest["images"] if i["ref"] == ref)


def _make_images_script() -> Path:
    for candidate in (REPO.parent / "shared" / "fixtures" / "make-images",):
        if candidate.exists():
            return candidate
    raise RuntimeError("../shared/fixtures/make-images not found beside the repository")


@pytest.fixture(scope="session")
def images() -> Images:
    root = Path(os.environ.get("DOCKYARD_TEST_IMAGES", "/tmp/dockyard-test-images"))
    if not (root / "images.json").exists():
        subprocess.run(
            [str(_make_images_script()), str(root), "--no-archives"],
            check=True,
            capture_output=True,
            timeout=900,
        )
    return Images(root, json.loads((root / "images.json").read_text()))


def require_tools(*names: str) -> None:
    """Fail (not skip) when a tool the test command installs is missing."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.fail(f"missing tools {missing}: run ./scripts/test, which installs them")
