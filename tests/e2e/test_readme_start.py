"""The README's start command, run as a new user would in a fresh checkout.

The checkout is a copy of this working tree as git sees it (tracked files plus
untracked ones that are not ignored), so that uncommitted changes are tested
too, while what .gitignore names (.venv, data, caches) stays behind: the start
command has to create .venv and install everything itself. Outside git, the
tree is copied without what running things creates (_BUILT). pip's own download
and wheel cache is reused, which keeps the test to a minute or two.
"""

import re
import shlex
import shutil
import subprocess
import time

import httpx

from tests.conftest import REPO, clean_environment, free_port, stop_process
from tests.e2e.conftest import layout_digest, skopeo

PASSWORD = "Readme-Passw0rd"
# The first start installs into a fresh .venv.
INSTALL_SECONDS = 600


def test_readme_start_command_in_fresh_checkout_serves_skopeo_push_and_pull(
    images, tmp_path
):
    checkout = _copy_working_tree(tmp_path / "checkout")
    host = f"127.0.0.1:{free_port()}"
    env = {
        **clean_environment(),
        "DOCKYARD_LISTEN": host,
        "DOCKYARD_DATA_DIR": str(tmp_path / "data"),
        "DOCKYARD_ADMIN_PASSWORD": PASSWORD,
    }
    env.pop("VIRTUAL_ENV", None)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            shlex.split(_readme_start_command()),
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )

    try:
        _wait_until_ours(host, process, log_path)
        skopeo(
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"admin:{PASSWORD}",
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
        stop_process(process, timeout=30)

    assert layout_digest(tmp_path / "back", "1.36") == images.digest("busybox:1.36")
    assert (checkout / ".venv" / "bin" / "dockyard").exists()


def _readme_start_command():
    """The first command of the README's first shell block, without comment."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    return block.splitlines()[0].split("#", 1)[0].strip()


def _copy_working_tree(destination):
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
    )
    if listed.returncode != 0:  # not a git checkout (an unpacked archive)
        shutil.copytree(REPO, destination, ignore=shutil.ignore_patterns(*_BUILT))
        return destination
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a deleted tracked file is still listed
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


# What a checkout outside git must leave behind: made by running things.
_BUILT = (".venv", "dockyard-data", "__pycache__", "*.egg-info", ".*_cache", "results")


def _wait_until_ours(host, process, log_path):
    # Ours: it knows the admin password we chose.
    deadline = time.monotonic() + INSTALL_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"start command exited:\n{log_path.read_text()}")
        try:
            response = httpx.get(
                f"http://{host}/v2/", auth=("admin", PASSWORD), timeout=2
            )
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"start command did not serve:\n{log_path.read_text()}")
