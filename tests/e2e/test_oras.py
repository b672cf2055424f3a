"""oras-py: an artifact whose subject is the busybox manifest, found via referrers."""

import hashlib
import json
import secrets

import httpx
import oras.client
import oras.oci
from oras.layout.layout import NewLayout

from tests.e2e.conftest import skopeo

ARTIFACT_TYPE = "application/vnd.example.sbom+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def oras_client(dockyard, tmp_path):
    client = oras.client.OrasClient(hostname=dockyard.host, insecure=True)
    client.login(
        username="admin",
        password=dockyard.admin_password,
        hostname=dockyard.host,
        config_path=str(tmp_path / "config.json"),
    )
    # oras-py renews its bearer token only after a 403; Dockyard, like the
    # spec, answers 401 for a missing scope. Renew on every challenge
    # (see shared/CLIENTS.md).
    authenticate = client.auth.authenticate_request
    client.auth.authenticate_request = lambda r, h, refresh=False: authenticate(
        r, h, refresh=True
    )
    return client


def test_oras_pushes_fixture_sbom_referrer_found_by_artifact_type(
    dockyard, images, tmp_path
):
    repository = f"library/oras-{secrets.token_hex(3)}"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"admin:{dockyard.admin_password}",
        f"oci:{images.oci}/busybox:1.36",
        f"docker://{dockyard.host}/{repository}:1.36",
    )
    client = oras_client(dockyard, tmp_path)
    subject = images.digest("busybox:1.36")
    admin = httpx.Client(base_url=dockyard.url, auth=("admin", dockyard.admin_password))

    NewLayout(str(images.oci / "artifact")).push_to_registry(
        client, f"{dockyard.host}/{repository}:busybox-sbom", tag="busybox-sbom"
    )
    listed = admin.get(f"/v2/{repository}/referrers/{subject}").json()["manifests"]
    filtered = admin.get(
        f"/v2/{repository}/referrers/{subject}", params={"artifactType": ARTIFACT_TYPE}
    )
    other = admin.get(
        f"/v2/{repository}/referrers/{subject}",
        params={"artifactType": "application/x-none"},
    )

    assert [m["digest"] for m in listed] == [images.digest("artifact:busybox-sbom")]
    assert listed[0]["artifactType"] == ARTIFACT_TYPE
    assert len(filtered.json()["manifests"]) == 1
    assert filtered.headers["oci-filters-applied"] == "artifactType"
    assert other.json()["manifests"] == []


def test_oras_push_with_subject_is_listed_by_referrers_api(
    dockyard, tmp_path, monkeypatch
):
    admin = httpx.Client(base_url=dockyard.url, auth=("admin", dockyard.admin_password))
    repository = f"library/oras-{secrets.token_hex(3)}"
    subject = _push_small_image(admin, repository)
    client = oras_client(dockyard, tmp_path)
    monkeypatch.chdir(tmp_path)  # oras-py only pushes files below the working directory
    (tmp_path / "sbom.json").write_text(json.dumps({"packages": ["busybox"]}))
    descriptor = oras.oci.Subject(
        mediaType=OCI_MANIFEST, digest=subject["digest"], size=subject["size"]
    )

    client.push(
        target=f"{dockyard.host}/{repository}:sbom",
        files=[f"sbom.json:{ARTIFACT_TYPE}"],
        subject=descriptor,
    )
    listed = admin.get(f"/v2/{repository}/referrers/{subject['digest']}").json()

    # oras-py cannot set artifactType: the config's media type stands in for it.
    assert [m["artifactType"] for m in listed["manifests"]] == [
        "application/vnd.unknown.config.v1+json"
    ]


def _push_small_image(client, repository):
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = secrets.token_bytes(256)
    for blob in (config, layer):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        client.post(
            f"/v2/{repository}/blobs/uploads/?digest={digest}", content=blob
        ).raise_for_status()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    client.put(
        f"/v2/{repository}/manifests/v1",
        content=manifest,
        headers={"content-type": OCI_MANIFEST},
    ).raise_for_status()
    return {
        "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        "size": len(manifest),
    }
