"""The `dockyard` command's guards, run as a subprocess."""

import subprocess
import sys


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
