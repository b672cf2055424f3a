"""`dockyard serve` on an address something else already listens on."""

from __future__ import annotations

import socket
import subprocess

from tests.conftest import DOCKYARD, clean_environment


def test_serve_on_taken_port_exits_two_before_creating_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"

        result = subprocess.run(
            [*DOCKYARD, "serve", "--data-dir", str(data_dir), "--listen", listen],
            capture_output=True,
            text=True,
            env=clean_environment(),
            timeout=120,
            check=False,
        )

    assert result.returncode == 2
    assert f"cannot listen on {listen}: address already in use" in result.stderr
    assert "--listen HOST:PORT" in result.stderr
    assert not data_dir.exists()
    assert "Generated admin password" not in result.stdout
