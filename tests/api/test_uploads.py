import secrets

from tests.api.conftest import error_code, sha256


def start(registry, repository=None):
    response = registry.client.post(registry.url("blobs/uploads/", repository))
    assert response.status_code == 202, response.text
    return response.headers["location"]


def patch(registry, location, data, start_offset):
    headers = {
        "content-type": "application/octet-stream",
        "content-range": f"{start_offset}-{start_offset + len(data) - 1}",
    }
    return registry.client.patch(location, content=data, headers=headers)


def test_chunked_upload_then_put_creates_blob(registry):
    data = secrets.token_bytes(3000)
    location = start(registry)

    first = patch(registry, location, data[:1000], 0)
    second = patch(registry, first.headers["location"], data[1000:], 1000)
    done = registry.client.put(f"{second.headers['location']}?digest={sha256(data)}")

    assert second.headers["range"] == "0-2999"
    assert done.status_code == 201
    assert registry.client.get(registry.url(f"blobs/{sha256(data)}")).content == data


def test_upload_status_reports_offset_location_and_uuid(registry):
    location = start(registry)
    patch(registry, location, b"12345", 0)

    response = registry.client.get(location)

    assert response.status_code == 204
    assert response.headers["range"] == "0-4"
    assert response.headers["location"] == location
    assert location.endswith(response.headers["docker-upload-uuid"])


def test_out_of_order_chunk_returns_416_and_keeps_offset(registry):
    location = start(registry)
    patch(registry, location, b"12345", 0)

    response = patch(registry, location, b"67890", 7)
    status = registry.client.get(location)

    assert response.status_code == 416
    assert error_code(response) == "BLOB_UPLOAD_INVALID"
    assert status.headers["range"] == "0-4"


def test_chunk_whose_content_range_disagrees_with_its_length_is_rejected(registry):
    location = start(registry)

    response = registry.client.patch(
        location, content=b"12345", headers={"content-range": "0-9"}
    )
    status = registry.client.get(location)

    assert response.status_code == 400
    assert error_code(response) == "SIZE_INVALID"
    assert status.headers["range"] == "0-0"


def test_put_with_wrong_digest_returns_digest_invalid_and_leaves_nothing(registry):
    location = start(registry)
    patch(registry, location, b"actual content", 0)
    claimed = sha256(b"other content")

    response = registry.client.put(f"{location}?digest={claimed}")
    blob = registry.client.head(registry.url(f"blobs/{claimed}"))
    upload = registry.client.get(location)

    assert error_code(response) == "DIGEST_INVALID"
    assert blob.status_code == 404
    assert upload.status_code == 404


def test_monolithic_push_with_wrong_digest_leaves_no_blob(registry):
    claimed = sha256(b"claimed")

    response = registry.client.post(
        registry.url(f"blobs/uploads/?digest={claimed}"), content=b"different"
    )

    assert error_code(response) == "DIGEST_INVALID"
    assert registry.client.head(registry.url(f"blobs/{claimed}")).status_code == 404


def test_unknown_upload_id_returns_blob_upload_unknown(registry):
    response = registry.client.get(registry.url("blobs/uploads/not-an-upload"))

    assert response.status_code == 404
    assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"


def test_upload_of_one_repository_is_unknown_in_another(registry):
    location = start(registry)
    upload_id = location.rsplit("/", 1)[1]

    response = registry.client.get(
        registry.url(f"blobs/uploads/{upload_id}", "library/elsewhere")
    )

    assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"


def test_cancelled_upload_is_unknown(registry):
    location = start(registry)

    cancelled = registry.client.delete(location)
    response = registry.client.get(location)

    assert cancelled.status_code == 204
    assert response.status_code == 404


def test_put_with_final_chunk_in_body_completes_upload(registry):
    location = start(registry)
    patch(registry, location, b"head-", 0)

    response = registry.client.put(
        f"{location}?digest={sha256(b'head-tail')}",
        content=b"tail",
        headers={"content-range": "5-8"},
    )

    assert response.status_code == 201
    assert response.headers["docker-content-digest"] == sha256(b"head-tail")


def test_mount_from_readable_repository_links_blob(registry):
    digest = registry.push_blob(b"mount me", repository="library/mount-source")

    response = registry.client.post(
        registry.url(f"blobs/uploads/?mount={digest}&from=library/mount-source")
    )

    assert response.status_code == 201
    assert registry.client.head(registry.url(f"blobs/{digest}")).status_code == 200


def test_mount_of_missing_blob_falls_back_to_upload_session(registry):
    response = registry.client.post(
        registry.url(f"blobs/uploads/?mount={sha256(b'nowhere')}&from=library/nothing")
    )

    assert response.status_code == 202
    assert "docker-upload-uuid" in response.headers


def test_chunk_sent_to_a_finished_upload_is_refused_and_blob_unchanged(registry):
    location = start(registry)
    patch(registry, location, b"committed", 0)
    digest = sha256(b"committed")
    registry.client.put(f"{location}?digest={digest}")

    late = patch(registry, location, b"GARBAGE", 9)
    blob = registry.client.get(registry.url(f"blobs/{digest}"))

    assert late.status_code == 404
    assert blob.content == b"committed"
