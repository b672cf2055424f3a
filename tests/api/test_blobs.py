import hashlib
import secrets

from tests.api.conftest import error_code, sha256


def test_get_blob_after_monolithic_push_returns_content_and_digest(registry):
    data = secrets.token_bytes(1000)
    digest = registry.push_blob(data)

    response = registry.client.get(registry.url(f"blobs/{digest}"))

    assert response.content == data
    assert response.headers["docker-content-digest"] == digest


def test_head_blob_returns_length_without_body(registry):
    digest = registry.push_blob(b"x" * 300)

    response = registry.client.head(registry.url(f"blobs/{digest}"))

    assert response.status_code == 200
    assert response.headers["content-length"] == "300"


def test_get_blob_with_range_returns_partial_content(registry):
    data = bytes(range(256))
    digest = registry.push_blob(data)

    response = registry.client.get(
        registry.url(f"blobs/{digest}"), headers={"range": "bytes=10-19"}
    )

    assert response.status_code == 206
    assert response.content == data[10:20]
    assert response.headers["content-range"] == "bytes 10-19/256"


def test_get_blob_with_unsatisfiable_range_returns_416_with_content_range(registry):
    digest = registry.push_blob(b"abc")

    response = registry.client.get(
        registry.url(f"blobs/{digest}"), headers={"range": "bytes=10-20"}
    )

    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */3"
    assert error_code(response) == "RANGE_NOT_SATISFIABLE"


def test_get_unknown_blob_returns_blob_unknown(registry):
    registry.push_blob(b"make the repository exist")

    response = registry.client.get(registry.url(f"blobs/{sha256(b'never pushed')}"))

    assert response.status_code == 404
    assert error_code(response) == "BLOB_UNKNOWN"


def test_get_blob_pushed_to_another_repository_returns_blob_unknown(registry):
    digest = registry.push_blob(
        b"only in the other repository", repository="library/other-x"
    )
    registry.push_blob(b"make the repository exist")

    response = registry.client.get(registry.url(f"blobs/{digest}"))

    assert response.status_code == 404


def test_delete_blob_makes_it_unknown_in_that_repository(registry):
    digest = registry.push_blob(b"to delete")

    deleted = registry.client.delete(registry.url(f"blobs/{digest}"))
    response = registry.client.head(registry.url(f"blobs/{digest}"))

    assert deleted.status_code == 202
    assert response.status_code == 404


def test_push_blob_with_sha512_digest_is_verified_and_served(registry):
    data = b"sha512 content"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()

    pushed = registry.client.post(
        registry.url(f"blobs/uploads/?digest={digest}"), content=data
    )
    response = registry.client.get(registry.url(f"blobs/{digest}"))

    assert pushed.status_code == 201
    assert response.content == data


def test_get_blob_with_malformed_digest_returns_digest_invalid(registry):
    response = registry.client.get(registry.url("blobs/sha256:xyz"))

    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


def test_registry_response_names_the_api_version(registry):
    response = registry.client.get("/v2/")

    assert response.status_code == 200
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
