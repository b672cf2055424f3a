"""The `dockyard` command's guards, run as a subprocess."""

import json
import subprocess
import sys
import time

from tests.conftest import DOCKYARD, clean_environment, stop_process


def test_admin_command_without_data_directory_fails_and_creates_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "admin", "project", "create", "x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )

    assert result.returncode == 2
    assert "no Dockyard data directory" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_worker_logs_only_the_settings_a_worker_uses(tmp_path):
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [*DOCKYARD, "worker", "--data-dir", str(tmp_path / "data")],
            env=clean_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        line = _wait_for_line(log_path, "starting settings=", worker)
    finally:
        stop_process(worker)

    shown = json.loads(line.split("settings=", 1)[1])
    assert {"data_dir", "jobs", "database", "redis"} <= set(shown)
    assert not {"listen", "workers", "metrics", "token"} & set(shown)


def _wait_for_line(path, marker, process):
    """The first line of `path` holding `marker`; fails if `process` exits
    first, or after a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if marker in line:
                return line
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}:\n{path.read_text()}")
        time.sleep(0.1)
    raise AssertionError(f"no {marker!r} in:\n{path.read_text()}")
