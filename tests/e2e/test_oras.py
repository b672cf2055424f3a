"""oras-py: artifacts whose subject is the busybox manifest, found through the
referrers API (GET /v2/<name>/referrers/<digest>) and its artifactType filter.

The subject descriptor is built from the manifest's raw bytes as the registry
serves them: oras-py's `Subject.from_manifest` re-serialises the JSON and so
gets a different digest (shared/CLIENTS.md).
"""

import hashlib
import secrets

import httpx
import oras.client
import oras.oci
import pytest
from oras.layout.layout import NewLayout

from tests.e2e.conftest import push_image

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# oras-py cannot set `artifactType`; the config's media type stands in for it.
SCAN_TYPE = "application/vnd.dockyard.test.scan.v1+json"
OTHER_TYPE = "application/vnd.dockyard.test.other.v1+json"
FIXTURE_SBOM_TYPE = "application/vnd.example.sbom+json"
REPOSITORY = "library/busybox"


@pytest.fixture
def admin(dockyard):
    with httpx.Client(
        base_url=dockyard.url, auth=("admin", dockyard.admin_password), timeout=60
    ) as client:
        yield client


@pytest.fixture
def oras_client(dockyard, tmp_path):
    client = oras.client.OrasClient(hostname=dockyard.host, insecure=True)
    client.login(
        username="admin",
        password=dockyard.admin_password,
        hostname=dockyard.host,
        config_path=str(tmp_path / "config.json"),
    )
    # oras-py renews its bearer token only after a 403; Dockyard, like the
    # distribution spec, answers 401 for a missing scope. Renew on every
    # challenge (shared/CLIENTS.md, caveat).
    authenticate = client.auth.authenticate_request
    client.auth.authenticate_request = lambda r, h, refresh=False: authenticate(
        r, h, refresh=True
    )
    return client


@pytest.fixture
def subject(dockyard, images, admin):
    """The busybox:1.36 manifest in library/busybox, as an oras Subject."""
    push_image(dockyard, images, "busybox:1.36", f"{REPOSITORY}:1.36")
    raw = admin.get(
        f"/v2/{REPOSITORY}/manifests/1.36", headers={"accept": OCI_MANIFEST}
    ).content
    return oras.oci.Subject(
        mediaType=OCI_MANIFEST,
        digest="sha256:" + hashlib.sha256(raw).hexdigest(),
        size=len(raw),
    )


@pytest.fixture
def push_referrer(dockyard, oras_client, subject, admin, tmp_path, monkeypatch):
    """Push, via oras-py, a file artifact of `config_type` whose subject is the
    busybox manifest; return its digest."""
    monkeypatch.chdir(tmp_path)  # oras-py only pushes files below the cwd
    (tmp_path / "report.json").write_text('{"vulnerabilities": []}')
    (tmp_path / "config.json").write_text("{}")

    def push(config_type):
        tag = f"referrer-{secrets.token_hex(4)}"
        oras_client.push(
            target=f"{dockyard.host}/{REPOSITORY}:{tag}",
            files=["report.json:application/json"],
            manifest_config=f"config.json:{config_type}",
            subject=subject,
        )
        raw = admin.get(
            f"/v2/{REPOSITORY}/manifests/{tag}", headers={"accept": OCI_MANIFEST}
        ).content
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    return push


@pytest.fixture
def scan_report(push_referrer):
    return push_referrer(SCAN_TYPE)


def test_oras_subject_built_from_served_bytes_matches_fixture_digest(images, subject):
    assert subject.digest == images.digest("busybox:1.36")


def test_oras_push_with_subject_is_listed_by_referrers_api(admin, subject, scan_report):
    response = admin.get(f"/v2/{REPOSITORY}/referrers/{subject.digest}")

    listed = {m["digest"]: m for m in response.json()["manifests"]}
    assert response.headers["content-type"].startswith(
        "application/vnd.oci.image.index.v1+json"
    )
    assert listed[scan_report]["artifactType"] == SCAN_TYPE


def test_referrers_filtered_by_artifact_type_lists_only_that_type(
    admin, subject, scan_report, push_referrer
):
    other = push_referrer(OTHER_TYPE)

    response = admin.get(
        f"/v2/{REPOSITORY}/referrers/{subject.digest}",
        params={"artifactType": SCAN_TYPE},
    )

    manifests = response.json()["manifests"]
    digests = [m["digest"] for m in manifests]
    assert scan_report in digests and other not in digests
    assert {m["artifactType"] for m in manifests} == {SCAN_TYPE}
    assert response.headers["oci-filters-applied"] == "artifactType"


def test_referrers_filtered_by_other_artifact_type_leaves_out_the_push(
    admin, subject, scan_report
):
    response = admin.get(
        f"/v2/{REPOSITORY}/referrers/{subject.digest}",
        params={"artifactType": "application/vnd.dockyard.test.none"},
    )

    assert response.json()["manifests"] == []
    assert response.headers["oci-filters-applied"] == "artifactType"


def test_oras_layout_push_keeps_fixture_referrer_with_its_artifact_type(
    dockyard, images, oras_client, subject, admin
):
    repository = f"library/oras-{secrets.token_hex(4)}"
    push_image(dockyard, images, "busybox:1.36", f"{repository}:1.36")

    NewLayout(str(images.oci / "artifact")).push_to_registry(
        oras_client, f"{dockyard.host}/{repository}:busybox-sbom", tag="busybox-sbom"
    )
    response = admin.get(
        f"/v2/{repository}/referrers/{subject.digest}",
        params={"artifactType": FIXTURE_SBOM_TYPE},
    )

    assert [m["digest"] for m in response.json()["manifests"]] == [
        images.digest("artifact:busybox-sbom")
    ]
    assert response.json()["manifests"][0]["artifactType"] == FIXTURE_SBOM_TYPE
