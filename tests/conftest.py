"""Fixtures shared by every test that needs a running Dockyard or real images.

`DockyardServer` starts `dockyard serve` as a subprocess on 127.0.0.1, on a
port chosen at run time, with its own data directory, and stops it by PID.
When a test fails, what each running server logged during that test is added
to the failure report ("dockyard server log" section).

Every server runs on the stores of the backend `DOCKYARD_TEST_BACKEND` names
(`embedded` by default, or `production`; see tests/backends.py): the one
place that decides what a server's database (and later Redis, S3) is.
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

from tests.backends import (
    Backend,
    backend_name,
    execute_statement,
    make_backend,
    runs_on_backend,
)
from tests.object_storage import MotoServer, credentials_env

REPO = Path(__file__).resolve().parent.parent
DOCKYARD = [sys.executable, "-m", "dockyard"]
MAKE_IMAGES = REPO.parent / "shared" / "fixtures" / "make-images"
_STARTUP_SECONDS = 60
_STOP_SECONDS = 15
_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 200


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_environment() -> dict[str, str]:
    """This process's environment without DOCKYARD_* settings, which would
    otherwise reach the servers and commands the tests start."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}


def descendants(pid: int) -> list[int]:
    """PIDs of the processes `pid` started, and of theirs, from /proc."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except FileNotFoundError:
            continue
        for child in map(int, children.split()):
            found += [child, *descendants(child)]
    return found


def stop_process(process: subprocess.Popen, timeout: float = _STOP_SECONDS) -> None:
    """SIGTERM `process`; if it lingers, SIGKILL it and what it started."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        children = descendants(process.pid)
        process.kill()
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=timeout)


@dataclass(frozen=True)
class User:
    name: str
    password: str

    @property
    def creds(self) -> str:
        """`name:password`, as skopeo's --creds and ctr's --user take it."""
        return f"{self.name}:{self.password}"


class DockyardServer:
    """One `dockyard serve` process and what a test needs to talk to it."""

    running: list[DockyardServer] = []

    def __init__(
        self,
        root: Path,
        env: dict[str, str] | None = None,
        workers: int = 1,
        admin_password: str | None = None,
    ) -> None:
        """`admin_password`: the one the first start sets (generated if None);
        servers sharing a database must be given the same."""
        self.root = root
        self.data_dir = root / "data"
        # A server sharing another's database must be given that one's password.
        self.admin_password = (
            admin_password
            or (env or {}).get("DOCKYARD_ADMIN_PASSWORD")
            or "Adm1n-" + secrets.token_urlsafe(12)
        )
        self.log_path = root / "server.log"
        self._use_port(free_port())
        self._stores = backend().provision()
        self._env = {
            **clean_environment(),
            "DOCKYARD_ADMIN_PASSWORD": self.admin_password,
            "DOCKYARD_WORKERS": str(workers),
            **self._stores,
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> DockyardServer:
        """Start the server and return once it answers as ours; raise if not.
        A port taken between free_port() and the bind gets another try."""
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(_PORT_ATTEMPTS):
            mark = self.log_size()
            if self._start_on_port():
                return self
            if "address already in use" not in self.log_since(mark).lower():
                break
            self._use_port(free_port())
        raise RuntimeError(f"dockyard exited early:\n{self.log()}")

    def _start_on_port(self) -> bool:
        """True once it answers; False if it exits; raise if it does neither."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [*DOCKYARD, "serve", "--data-dir", str(self.data_dir)]
                + ["--listen", self.host],
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        DockyardServer.running.append(self)
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._stop_process()
                return False
            if self._answers_as_ours():
                return True
            time.sleep(0.1)
        self._stop_process()
        raise RuntimeError(
            f"dockyard did not answer within {_STARTUP_SECONDS}s:\n{self.log()}"
        )

    def _use_port(self, port: int) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"

    def _answers_as_ours(self) -> bool:
        # Another process may have taken the port since free_port(): whoever
        # answers must know the admin password we just set.
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
        """Run `dockyard admin --data-dir DATA ARGS...`; raise on failure if `check`."""
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
                f"dockyard admin {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def fsck(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `dockyard fsck --data-dir DATA ARGS...` on this server's stores
        (whatever its exit code)."""
        return subprocess.run(
            [*DOCKYARD, "fsck", "--data-dir", str(self.data_dir), *args],
            text=True,
            capture_output=True,
            env=self._env,
            timeout=300,
        )

    def create_user(self, name: str, password: str, *extra: str) -> None:
        """`extra`: more options of `user create`, e.g. "--admin"."""
        self.cli(
            "user", "create", name, "--password-stdin", *extra, input=password + "\n"
        )

    def create_project(self, name: str, private: bool = False) -> None:
        self.cli("project", "create", name, *(["--private"] if private else []))

    def add_member(self, project: str, user: str, role: str) -> None:
        """`role`: projectAdmin, maintainer, developer, guest or limitedGuest."""
        self.cli("member", "add", project, user, role)

    def new_user(
        self, prefix: str = "user", project: str | None = None, role: str = ""
    ) -> User:
        """A user with a unique name and password; with `project`, a member of
        it with `role`."""
        user = User(f"{prefix}-{secrets.token_hex(4)}", "Pw-" + secrets.token_hex(8))
        self.create_user(user.name, user.password)
        if project:
            self.add_member(project, user.name, role)
        return user

    def new_project(self, prefix: str = "project", private: bool = False) -> str:
        """A project with a unique name; returns the name."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.create_project(name, private=private)
        return name

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        """A mark to pass to `log_since`."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, mark: int) -> str:
        """What the server logged after `log_size()` returned `mark`."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def database_url(self) -> str:
        return self._env.get(
            "DOCKYARD_DATABASE_URL", f"sqlite:///{self.data_dir / 'dockyard.db'}"
        )

    def execute(self, statement: object) -> object:
        """Execute a SQLAlchemy statement on the server's database, for states
        no API reaches (an expiry in the past) or facts no API shows; the
        first value of the first row, if it returns rows."""
        return execute_statement(self.database_url, statement)

    def stop(self, keep_stores: bool = False) -> None:
        """Stop the server and give back its stores, unless `keep_stores`
        (it will be started again on them); safe to call twice."""
        self._stop_process()
        if keep_stores:
            return
        stores, self._stores = self._stores, {}
        if stores:
            backend().release(stores)

    def _stop_process(self) -> None:
        """SIGTERM by PID, SIGKILL if it does not end; safe to call twice."""
        process, self._process = self._process, None
        if self in DockyardServer.running:
            DockyardServer.running.remove(self)
        if process is not None:
            stop_process(process)


def kill_tree(server: DockyardServer) -> None:
    """SIGKILL the server and every process it started: a crash."""
    assert server.pid is not None
    for pid in [server.pid, *descendants(server.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


_backend: Backend | None = None


def backend() -> Backend:
    """The session's backend, made on first use."""
    global _backend
    if _backend is None:
        _backend = make_backend()
    return _backend


@pytest.fixture(scope="session", autouse=True)
def _backend_stores() -> Iterator[None]:
    """Give back, at the end of the session, stores no server released."""
    yield
    if _backend is not None:
        _backend.close()


def pytest_report_header() -> str:
    return f"dockyard test backend: {backend_name()}, blob storage: {TEST_STORAGE}"


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """On the production backend, run only the tests meant for it."""
    kept, dropped = [], []
    for item in items:
        path = item.path.relative_to(REPO).as_posix()
        (kept if runs_on_backend(path) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# Blob storage of the servers the tests start: `filesystem` or `s3` (object
# storage on the moto emulator), from DOCKYARD_TEST_STORAGE; by default s3 on
# the production backend, files on the embedded one.
TEST_STORAGE = os.environ.get("DOCKYARD_TEST_STORAGE") or (
    "s3" if backend_name() == "production" else "filesystem"
)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """An S3-compatible emulator (moto) on 127.0.0.1, for the whole session."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    server.start(free_port)
    try:
        yield server
    finally:
        server.stop()


def object_storage_env(moto: MotoServer, **settings: str) -> dict[str, str]:
    """Server environment for blob storage in a fresh bucket on `moto`;
    `settings` add more `DOCKYARD_*` values (e.g. DOCKYARD_STORAGE_REDIRECT)."""
    return {
        **credentials_env(),
        "DOCKYARD_STORAGE_URL": f"s3://{moto.new_bucket()}/dockyard",
        "DOCKYARD_S3_ENDPOINT_URL": moto.endpoint,
        "DOCKYARD_S3_REGION": "us-east-1",
        **settings,
    }


@pytest.fixture(scope="session")
def storage_env(request: pytest.FixtureRequest) -> Callable[[], dict[str, str]]:
    """Environment giving each new server the blob storage under test."""
    if TEST_STORAGE == "filesystem":
        return dict
    if TEST_STORAGE != "s3":
        pytest.fail(f"DOCKYARD_TEST_STORAGE={TEST_STORAGE}: use filesystem or s3")
    moto = request.getfixturevalue("moto_server")
    return lambda: object_storage_env(moto)


@pytest.fixture(scope="session")
def dockyard(
    tmp_path_factory: pytest.TempPathFactory, storage_env: Callable[[], dict[str, str]]
) -> Iterator[DockyardServer]:
    """The server most tests share; tests make their own users, projects, names."""
    server = DockyardServer(tmp_path_factory.mktemp("dockyard"), storage_env()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_dockyard(
    tmp_path_factory: pytest.TempPathFactory, storage_env: Callable[[], dict[str, str]]
) -> Iterator[Callable[..., DockyardServer]]:
    """Start servers of a test's own (extra environment, several workers)."""
    started: list[DockyardServer] = []

    def start(env: dict[str, str] | None = None, workers: int = 1) -> DockyardServer:
        env = {**storage_env(), **(env or {})}
        server = DockyardServer(tmp_path_factory.mktemp("dockyard"), env, workers)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


# Redis. The machine's own (127.0.0.1:6379, shared with others) when it
# answers, else one the session starts on a free port. Tests only touch keys
# under their own random prefix and delete exactly those afterwards.

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: $DOCKYARD_TEST_REDIS_URL, the local one, or our own."""
    url = os.environ.get("DOCKYARD_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    if _redis_answers(url):
        yield url
        return
    if "DOCKYARD_TEST_REDIS_URL" in os.environ or not shutil.which("redis-server"):
        pytest.fail(f"no Redis answers at {url}: run ./scripts/test (it installs one)")
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port)]
        + ["--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + _STARTUP_SECONDS
        while not _redis_answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.1)
        yield url
    finally:
        stop_process(process)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    prefix = f"dockyard-test-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@dataclass(frozen=True)
class Images:
    """The fixture images built by `shared/fixtures/make-images`."""

    root: Path
    manifest: dict

    @property
    def oci(self) -> Path:
        """Parent of the OCI layouts: `oci:{images.oci}/busybox:1.36` for skopeo."""
        return self.root / "oci"

    def entry(self, ref: str) -> dict:
        """The images.json entry of `ref` (e.g. "busybox:multi")."""
        for image in self.manifest["images"]:
            if image["ref"] == ref:
                return image
        raise KeyError(f"{ref} not in {self.root / 'images.json'}")

    def digest(self, ref: str) -> str:
        return self.entry(ref)["digest"]

    def manifest_bytes(self, ref: str) -> bytes:
        """The raw manifest (or index) of `ref`, read from its OCI layout."""
        entry = self.entry(ref)
        algorithm, _, encoded = entry["digest"].partition(":")
        return (
            self.root / entry["layout"] / "blobs" / algorithm / encoded
        ).read_bytes()


@pytest.fixture(scope="session")
def images() -> Images:
    """Build (or reuse) the fixture images in $DOCKYARD_TEST_IMAGES or
    /tmp/dockyard-test-images. make-images skips what already exists, so it
    runs every session: a half-built cache gets completed."""
    root = Path(os.environ.get("DOCKYARD_TEST_IMAGES", "/tmp/dockyard-test-images"))
    if not MAKE_IMAGES.exists():
        pytest.fail(
            f"{MAKE_IMAGES} not found: the shared directory sits beside the repo"
        )
    result = subprocess.run(
        [str(MAKE_IMAGES), str(root), "--no-archives"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        pytest.fail(f"make-images failed:\n{result.stdout}\n{result.stderr}")
    return Images(root, json.loads((root / "images.json").read_text()))


def require_tools(*names: str) -> None:
    """Fail (not skip) when a tool the test command installs is missing."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.fail(f"missing tools {missing}: run ./scripts/test, which installs them")


# Server logs in failure reports.


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_LOG_MARKS] = {id(s): s.log_size() for s in DockyardServer.running}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    marks = item.stash.get(_LOG_MARKS, {})
    for server in DockyardServer.running:
        lines = server.log_since(marks.get(id(server), 0)).splitlines()
        if lines:
            report.sections.append(
                (
                    f"dockyard server log ({server.host}, {report.when})",
                    "\n".join(lines[-_LOG_TAIL_LINES:]),
                )
            )


_LOG_MARKS = pytest.StashKey[dict]()
