"""The README's start command, run as a new user would on a clean checkout."""

import os
import re
import signal
import subprocess
import time

import httpx

from tests.conftest import REPO, free_port
from tests.e2e.conftest import layout_digest, skopeo


def test_readme_start_command_serves_a_registry_skopeo_uses(images, tmp_path):
    command = _readme_start_command()
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(checkout)], check=True)
    port = free_port()
    password = "Readme-Passw0rd"
    env = {
        **os.environ,
        "DOCKYARD_LISTEN": f"127.0.0.1:{port}",
        "DOCKYARD_DATA_DIR": str(tmp_path / "data"),
        "DOCKYARD_ADMIN_PASSWORD": password,
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        command,
        shell=True,
        cwd=checkout,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    host = f"127.0.0.1:{port}"
    try:
        _wait_until_ours(host, password, process, tmp_path / "serve.log")
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"admin:{password}",
            f"oci:{images.oci}/busybox:1.36",
            f"docker://{host}/library/busybox:1.36",
        )
        skopeo(
            "copy",
            "--src-tls-verify=false",
            f"docker://{host}/library/busybox:1.36",
            f"oci:{tmp_path}/back:1.36",
        )
    finally:
        # The command is a shell running our script; end that process group.
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)

    assert layout_digest(tmp_path / "back", "1.36") == images.digest("busybox:1.36")


def _readme_start_command():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    first = block.splitlines()[0]
    return first.split("#", 1)[0].strip()


def _wait_until_ours(host, password, process, log_path):
    # The first start installs into a fresh .venv: allow a few minutes.
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"start command exited:\n{log_path.read_text()}")
        try:
            if (
                httpx.get(
                    f"http://{host}/v2/", auth=("admin", password), timeout=2
                ).status_code
                == 200
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"start command did not serve within 10 minutes:\n{log_path.read_text()}"
    )
