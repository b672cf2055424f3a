import json

from tests.api.conftest import OCI_INDEX, OCI_MANIFEST, error_code, index_of, sha256

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def test_put_manifest_by_tag_then_get_by_tag_and_digest_returns_same_bytes(registry):
    body = registry.image_manifest()

    put = registry.put_manifest("v1", body)
    by_tag = registry.client.get(
        registry.url("manifests/v1"), headers={"accept": OCI_MANIFEST}
    )
    by_digest = registry.client.get(registry.url(f"manifests/{sha256(body)}"))

    assert put.status_code == 201
    assert put.headers["docker-content-digest"] == sha256(body)
    assert by_tag.content == body == by_digest.content
    assert by_tag.headers["content-type"] == OCI_MANIFEST


def test_head_manifest_returns_digest_and_length(registry):
    body = registry.image_manifest()
    registry.put_manifest("v1", body)

    response = registry.client.head(registry.url("manifests/v1"))

    assert response.headers["docker-content-digest"] == sha256(body)
    assert response.headers["content-length"] == str(len(body))


def test_put_manifest_by_digest_with_wrong_digest_returns_digest_invalid(registry):
    body = registry.image_manifest()

    response = registry.put_manifest(sha256(b"other"), body)

    assert error_code(response) == "DIGEST_INVALID"


def test_put_manifest_with_missing_blob_is_refused_and_stores_nothing(
    registry,
):
    body = registry.image_manifest()
    document = json.loads(body)
    document["layers"][0]["digest"] = sha256(b"not pushed")
    body = json.dumps(document).encode()

    response = registry.put_manifest("broken", body)
    lookup = registry.client.get(registry.url(f"manifests/{sha256(body)}"))

    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    assert lookup.status_code == 404


def test_put_malformed_manifest_returns_manifest_invalid(registry):
    response = registry.put_manifest("bad", b"{not json")

    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_INVALID"


def test_put_oversize_manifest_returns_413(registry):
    body = registry.image_manifest(annotations={"pad": "x" * (4 * 1024 * 1024)})

    response = registry.put_manifest("huge", body)

    assert response.status_code == 413
    assert error_code(response) == "MANIFEST_INVALID"


def test_put_manifest_with_invalid_tag_returns_error(registry):
    response = registry.put_manifest("-bad!tag", registry.image_manifest())

    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_INVALID"


def test_invalid_repository_name_returns_name_invalid(admin_client):
    response = admin_client.get("/v2/library/Bad_Name!/tags/list")

    assert response.status_code == 400
    assert error_code(response) == "NAME_INVALID"


def test_get_unknown_tag_returns_manifest_unknown(registry):
    registry.put_manifest("v1", registry.image_manifest())

    response = registry.client.get(registry.url("manifests/v2"))

    assert response.status_code == 404
    assert error_code(response) == "MANIFEST_UNKNOWN"


def test_index_by_tag_without_accept_is_returned(registry):
    child = registry.image_manifest()
    registry.put_manifest(sha256(child), child)
    index = index_of(child)
    registry.put_manifest("multi", index, OCI_INDEX)

    response = registry.client.get(
        registry.url("manifests/multi"), headers={"accept": "*/*"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == OCI_INDEX


def test_index_with_unknown_child_returns_manifest_blob_unknown(registry):
    registry.push_blob(b"make the repository exist")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": sha256(b"nope"), "size": 4}
            ],
        }
    ).encode()

    response = registry.put_manifest("multi", index, OCI_INDEX)

    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"


def test_docker_schema2_manifest_round_trips(registry):
    config = registry.push_blob(b'{"architecture":"amd64"}')
    layer = registry.push_blob(b"layer bytes")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": config,
                "size": 24,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": layer,
                    "size": 11,
                }
            ],
        }
    ).encode()

    registry.put_manifest("docker", body, DOCKER_MANIFEST)
    response = registry.client.get(
        registry.url("manifests/docker"), headers={"accept": DOCKER_MANIFEST}
    )

    assert response.content == body
    assert response.headers["content-type"] == DOCKER_MANIFEST


def test_delete_manifest_by_tag_removes_only_the_tag(registry):
    body = registry.image_manifest()
    registry.put_manifest("a", body)
    registry.put_manifest("b", body)

    deleted = registry.client.delete(registry.url("manifests/a"))

    assert deleted.status_code == 202
    assert registry.client.get(registry.url("manifests/a")).status_code == 404
    assert registry.client.get(registry.url("manifests/b")).status_code == 200


def test_delete_manifest_by_digest_removes_manifest_and_its_tags(registry):
    body = registry.image_manifest()
    registry.put_manifest("a", body)

    registry.client.delete(registry.url(f"manifests/{sha256(body)}"))

    assert (
        registry.client.get(registry.url(f"manifests/{sha256(body)}")).status_code
        == 404
    )
    assert registry.client.get(registry.url("manifests/a")).status_code == 404


def test_put_manifest_with_subject_returns_oci_subject_header(registry):
    subject = registry.image_manifest()
    registry.put_manifest("subject", subject)
    referrer = registry.image_manifest(
        artifactType="application/vnd.example.sig",
        subject={
            "mediaType": OCI_MANIFEST,
            "digest": sha256(subject),
            "size": len(subject),
        },
    )

    response = registry.put_manifest(sha256(referrer), referrer)

    assert response.headers["oci-subject"] == sha256(subject)


def test_manifest_with_media_type_differing_from_content_type_is_invalid(registry):
    body = registry.image_manifest()

    response = registry.put_manifest("v1", body, media_type=DOCKER_MANIFEST)

    assert error_code(response) == "MANIFEST_INVALID"


def test_get_manifest_with_reference_that_cannot_be_a_tag_returns_manifest_unknown(
    registry,
):
    registry.put_manifest("v1", registry.image_manifest())

    response = registry.client.get(registry.url("manifests/.INVALID_MANIFEST_NAME"))

    assert response.status_code == 404
    assert error_code(response) == "MANIFEST_UNKNOWN"


def test_manifest_mixing_index_and_image_fields_is_invalid(registry):
    config = registry.push_blob(b"{}")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [],
            "config": {"mediaType": "a", "digest": config, "size": 2},
            "layers": [],
        }
    ).encode()

    response = registry.client.put(registry.url("manifests/mixed"), content=body)

    assert error_code(response) == "MANIFEST_INVALID"


def test_deeply_nested_manifest_is_invalid_not_a_server_error(registry):
    body = b"[" * 100_000 + b"]" * 100_000

    response = registry.put_manifest("deep", body)

    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_INVALID"


def test_tag_with_trailing_newline_is_invalid(registry):
    response = registry.put_manifest("latest%0A", registry.image_manifest())

    assert error_code(response) == "MANIFEST_INVALID"


def test_deleting_a_manifest_an_index_uses_is_refused(registry):
    child = registry.image_manifest()
    registry.put_manifest(sha256(child), child)
    index = index_of(child)
    registry.put_manifest("multi", index, OCI_INDEX)

    response = registry.client.delete(registry.url(f"manifests/{sha256(child)}"))

    assert response.status_code == 412
    assert (
        registry.client.get(registry.url(f"manifests/{sha256(child)}")).status_code
        == 200
    )


def test_deleting_a_blob_a_manifest_uses_is_refused(registry):
    body = registry.image_manifest(layers=[b"needed layer"])
    registry.put_manifest("v1", body)

    response = registry.client.delete(registry.url(f"blobs/{sha256(b'needed layer')}"))

    assert response.status_code == 412
