"""`dockyard serve` on an address something else already listens on."""

from __future__ import annotations

import socket
import subprocess

from tests.conftest import DOCKYARD, DockyardServer, clean_environment


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


def test_serve_restarts_on_its_address_while_closed_connections_linger(tmp_path):
    # Connections the old server closed stay in TIME_WAIT on its port for a
    # minute; only a listener may make the address count as taken.
    server = DockyardServer(tmp_path).start()
    with socket.create_connection(("127.0.0.1", server.port)) as kept:
        kept.sendall(b"GET /api/v2.0/ping HTTP/1.1\r\nHost: dockyard\r\n\r\n")
        kept.recv(4096)
        server.stop(keep_stores=True)

    restarted = server._start_on_port()

    server.stop()
    assert restarted, server.log()
