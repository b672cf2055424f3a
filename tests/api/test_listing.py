import secrets

from tests.api.conftest import OCI_MANIFEST, sha256


def test_tag_list_is_lexical_and_paginated_with_link(registry):
    body = registry.image_manifest()
    for tag in ["b", "a", "c10", "c2", "Z"]:
        registry.put_manifest(tag, body)

    first = registry.client.get(registry.url("tags/list?n=2"))
    second = registry.client.get(registry.url("tags/list?n=2&last=a"))
    everything = registry.client.get(registry.url("tags/list"))

    assert first.json()["tags"] == ["Z", "a"]
    assert (
        first.headers["link"]
        == f'</v2/{registry.repository}/tags/list?n=2&last=a>; rel="next"'
    )
    assert second.json()["tags"] == ["b", "c10"]
    assert everything.json()["tags"] == ["Z", "a", "b", "c10", "c2"]


def test_tag_list_of_unknown_repository_returns_name_unknown(admin_client):
    response = admin_client.get("/v2/library/does-not-exist/tags/list")

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_catalog_paginates_with_link(admin_client, registry):
    prefix = f"library/cat-{secrets.token_hex(3)}"
    for suffix in ("a", "b", "c"):
        registry.push_blob(b"x", repository=f"{prefix}-{suffix}")

    first = admin_client.get(f"/v2/_catalog?n=2&last={prefix}")
    rest = admin_client.get(f"/v2/_catalog?n=2&last={prefix}-b")

    assert first.json()["repositories"] == [f"{prefix}-a", f"{prefix}-b"]
    assert 'rel="next"' in first.headers["link"]
    assert rest.json()["repositories"][0] == f"{prefix}-c"


def test_referrers_of_unreferenced_digest_is_empty_index(registry):
    body = registry.image_manifest()
    registry.put_manifest("v1", body)

    response = registry.client.get(registry.url(f"referrers/{sha256(body)}"))

    assert response.status_code == 200
    assert response.json() == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    }


def test_referrers_filter_by_artifact_type(registry):
    subject = registry.image_manifest()
    registry.put_manifest("v1", subject)
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(subject),
        "size": len(subject),
    }
    signature = registry.image_manifest(
        artifactType="application/vnd.example.sig", subject=descriptor
    )
    sbom = registry.image_manifest(
        artifactType="application/vnd.example.sbom", subject=descriptor
    )
    registry.put_manifest(sha256(signature), signature)
    registry.put_manifest(sha256(sbom), sbom)

    everything = registry.client.get(registry.url(f"referrers/{sha256(subject)}"))
    filtered = registry.client.get(
        registry.url(
            f"referrers/{sha256(subject)}?artifactType=application/vnd.example.sbom"
        )
    )

    assert len(everything.json()["manifests"]) == 2
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sha256(sbom)]
    assert filtered.headers["oci-filters-applied"] == "artifactType"


def test_tag_list_page_that_ends_the_list_has_no_link(registry):
    body = registry.image_manifest()
    for tag in ["a", "b"]:
        registry.put_manifest(tag, body)

    response = registry.client.get(registry.url("tags/list?n=2"))

    assert response.json()["tags"] == ["a", "b"]
    assert "link" not in response.headers


def test_tag_list_with_an_endless_page_size_is_capped_not_a_500(registry):
    registry.put_manifest("a", registry.image_manifest())

    response = registry.client.get(registry.url("tags/list?n=" + "9" * 5000))

    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["a"]


def test_catalog_with_a_page_size_in_other_digits_is_pagination_invalid(
    admin_client,
):
    response = admin_client.get("/v2/_catalog?n=²")

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"
