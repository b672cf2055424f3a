"""`dockyard fsck` on data directories of real servers, clean and corrupted
on purpose: a flipped byte, a deleted blob, a stray file, a lost child."""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import OCI_INDEX, OCI_MANIFEST, Registry, index_of, sha256
from tests.conftest import DOCKYARD, DockyardServer, clean_environment


@dataclass
class DataDir:
    """A copy of a stopped server's data directory, to corrupt at will."""

    data_dir: Path
    layers: list[bytes]
    manifest: bytes
    index: bytes


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A data directory holding an image (config + two layers) and an index
    of it, pushed over HTTP; its server is stopped (the copies stay put)."""
    server = DockyardServer(tmp_path_factory.mktemp("fsck")).start()
    try:
        with httpx.Client(
            base_url=server.url, auth=("admin", server.admin_password), timeout=30
        ) as client:
            registry = Registry(client, f"library/fsck-{secrets.token_hex(4)}")
            layers = [secrets.token_bytes(200_000), secrets.token_bytes(3000)]
            manifest = registry.image_manifest(layers)
            assert registry.put_manifest("image", manifest).status_code == 201
            index = index_of(manifest)
            assert registry.put_manifest("index", index, OCI_INDEX).status_code == 201
    finally:
        server.stop()
    return DataDir(server.data_dir, layers, manifest, index)


@pytest.fixture
def pushed(original, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(original.data_dir, copy)
    return DataDir(copy, original.layers, original.manifest, original.index)


def fsck(server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DOCKYARD, "fsck", "--data-dir", str(server.data_dir), *args],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=120,
        check=False,
    )


def report_of(server) -> tuple[int, dict]:
    result = fsck(server, "--json")
    return result.returncode, json.loads(result.stdout)


def blob_file(server, digest: str):
    algorithm, _, encoded = digest.partition(":")
    return server.data_dir / "storage" / "blobs" / algorithm / encoded[:2] / encoded


def kinds(report: dict) -> set[tuple[str, str]]:
    return {(p["kind"], p["digest"]) for p in report["problems"]}


def test_fsck_on_clean_data_dir_finds_nothing_and_exits_zero(pushed):
    code, report = report_of(pushed)

    assert (code, report["ok"], report["problems"]) == (0, True, [])
    assert report["checked"]["blobs"] == 3
    assert report["checked"]["manifests"] == 2


def test_fsck_with_flipped_byte_reports_corrupt_blob_and_exits_one(pushed):
    digest = sha256(pushed.layers[0])
    path = blob_file(pushed, digest)
    content = bytearray(path.read_bytes())
    content[1000] ^= 0x01
    path.write_bytes(content)

    code, report = report_of(pushed)

    assert code == 1
    assert kinds(report) == {
        ("blob_corrupt", digest),
        ("manifest_blob_missing", sha256(pushed.manifest)),
    }


def test_fsck_with_deleted_blob_reports_it_and_the_manifest_using_it(pushed):
    digest = sha256(pushed.layers[1])
    blob_file(pushed, digest).unlink()

    code, report = report_of(pushed)

    assert code == 1
    assert kinds(report) == {
        ("blob_missing", digest),
        ("manifest_blob_missing", sha256(pushed.manifest)),
    }


def test_fsck_with_stray_file_in_storage_reports_stray_blob(pushed):
    stray = secrets.token_bytes(100)
    path = blob_file(pushed, sha256(stray))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(stray)

    code, report = report_of(pushed)

    assert code == 1
    assert kinds(report) == {("stray_blob", sha256(stray))}


def test_fsck_with_missing_child_manifest_reports_the_index(pushed):
    with sqlite3.connect(pushed.data_dir / "dockyard.db") as db:
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("DELETE FROM manifests WHERE digest = ?", (sha256(pushed.manifest),))

    code, report = report_of(pushed)

    assert code == 1
    assert kinds(report) == {("manifest_child_missing", sha256(pushed.index))}


def test_fsck_with_changed_manifest_bytes_reports_corrupt_manifest(pushed):
    with sqlite3.connect(pushed.data_dir / "dockyard.db") as db:
        db.execute(
            "UPDATE manifests SET content = CAST(content || x'20' AS BLOB)"
            " WHERE digest = ?",
            (sha256(pushed.index),),
        )

    code, report = report_of(pushed)

    assert code == 1
    assert kinds(report) == {("manifest_corrupt", sha256(pushed.index))}


def test_fsck_text_report_names_problem_and_digest(pushed):
    digest = sha256(pushed.layers[1])
    blob_file(pushed, digest).unlink()

    result = fsck(pushed)

    assert result.returncode == 1
    assert f"blob_missing {digest}" in result.stdout


def test_fsck_without_data_dir_exits_two(tmp_path):
    result = subprocess.run(
        [*DOCKYARD, "fsck", "--data-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert not (tmp_path / "none").exists()


def test_fsck_on_proxy_cache_pulled_in_part_finds_nothing(tmp_path_factory):
    """A proxy-cache project holds only what clients asked for: an index
    without its children, a manifest without its layers. That is not damage."""
    upstream = DockyardServer(tmp_path_factory.mktemp("upstream")).start()
    proxy = DockyardServer(tmp_path_factory.mktemp("proxy"))
    try:
        name = f"library/fsck-{secrets.token_hex(4)}"
        with httpx.Client(
            base_url=upstream.url, auth=("admin", upstream.admin_password), timeout=30
        ) as client:
            remote = Registry(client, name)
            image = remote.image_manifest([secrets.token_bytes(5000)])
            assert remote.put_manifest("image", image).status_code == 201
            child = remote.image_manifest([secrets.token_bytes(6000)])
            assert remote.put_manifest(sha256(child), child).status_code == 201
            index = index_of(child)
            assert remote.put_manifest("index", index, OCI_INDEX).status_code == 201
        proxy.start()
        with httpx.Client(
            base_url=proxy.url, auth=("admin", proxy.admin_password), timeout=30
        ) as client:
            make_proxy_project(client, "hub", upstream.url)
            for tag in ("image", "index"):
                pulled = client.get(
                    f"/v2/hub/{name}/manifests/{tag}",
                    headers={"accept": f"{OCI_INDEX}, {OCI_MANIFEST}"},
                )
                assert pulled.status_code == 200, pulled.text
    finally:
        proxy.stop()
        upstream.stop()

    code, report = report_of(proxy)

    assert (code, report["problems"]) == (0, [])
    assert report["checked"]["manifests"] == 2


def make_proxy_project(client: httpx.Client, project: str, url: str) -> None:
    """A public proxy-cache project `project` of the registry at `url`."""
    created = client.post(
        "/api/v2.0/registries",
        json={"name": f"up-{project}", "type": "docker-registry", "url": url},
    )
    assert created.status_code == 201, created.text
    registry_id = int(created.headers["location"].rpartition("/")[2])
    created = client.post(
        "/api/v2.0/projects",
        json={
            "project_name": project,
            "registry_id": registry_id,
            "metadata": {"public": "true"},
        },
    )
    assert created.status_code == 201, created.text
