"""Artifacts through `/api/v2.0`: copy, additions, accessories, pull tracking, q."""

import io
import json
import secrets
import tarfile
import time

import httpx
import pytest

from tests.api.conftest import OCI_MANIFEST, Registry, error_code, sha256

API = "/api/v2.0"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
NEVER = "0001-01-01T00:00:00.000Z"


def artifacts_url(repository, suffix=""):
    project, _, below = repository.partition("/")
    encoded = below.replace("/", "%252F")
    return f"{API}/projects/{project}/repositories/{encoded}/artifacts{suffix}"


def fresh(api, project="library", prefix="a"):
    return Registry(api, f"{project}/{prefix}-{secrets.token_hex(3)}")


def push_fixture(registry, images, ref, reference=None):
    """Push the fixture image `ref` (and an index's children) with its blobs
    read from its OCI layout; return its digest."""
    entry = images.entry(ref)
    return _push_layout(
        registry, images.root / entry["layout"], entry["digest"], reference
    )


def _push_layout(registry, layout, digest, reference):
    def blob(d):
        return (layout / "blobs" / "sha256" / d.split(":", 1)[1]).read_bytes()

    document = json.loads(blob(digest))
    for child in document.get("manifests", []):
        _push_layout(registry, layout, child["digest"], None)
    for descriptor in [document.get("config"), *document.get("layers", [])]:
        if descriptor:
            registry.push_blob(blob(descriptor["digest"]))
    response = registry.put_manifest(
        reference or digest, blob(digest), document["mediaType"]
    )
    assert response.status_code == 201, response.text
    return digest


def chart_archive(name="demo", values=b"replicas: 2\n", readme=b"# Demo chart\n"):
    """A Helm chart tgz: `name/Chart.yaml`, `values.yaml`, `README.md`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        files = {
            "Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n".encode(),
            "values.yaml": values,
            "README.md": readme,
        }
        for filename, content in files.items():
            info = tarfile.TarInfo(f"{name}/{filename}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def push_chart(registry, tag="0.1.0", **files):
    config = json.dumps(
        {
            "apiVersion": "v2",
            "name": "demo",
            "version": "0.1.0",
            "dependencies": [{"name": "redis", "version": "17.0.0"}],
        }
    ).encode()
    archive = chart_archive(**files)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": HELM_CONFIG,
                "digest": registry.push_blob(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": HELM_LAYER,
                    "digest": registry.push_blob(archive),
                    "size": len(archive),
                }
            ],
        }
    ).encode()
    assert registry.put_manifest(tag, manifest).status_code == 201
    return sha256(manifest)


def push_referrer(registry, subject_digest, artifact_type, reference=None):
    """An OCI 1.1 artifact whose `subject` is `subject_digest`."""
    subject = registry.client.get(registry.url(f"manifests/{subject_digest}"))
    body = registry.image_manifest(
        artifactType=artifact_type,
        subject={
            "mediaType": subject.headers["content-type"],
            "digest": subject_digest,
            "size": len(subject.content),
        },
    )
    assert registry.put_manifest(reference or sha256(body), body).status_code == 201
    return sha256(body)


def names_listed(api, repository, q=None):
    params = {"page_size": 100, **({"q": q} if q else {})}
    response = api.get(artifacts_url(repository), params=params)
    assert response.status_code == 200, response.text
    return sorted(t["name"] for a in response.json() for t in a["tags"] or [])


@pytest.fixture
def busybox(api, images):
    """library/bb-xxxx holding the fixture busybox:1.36 as tag 1.36."""
    registry = fresh(api, prefix="bb")
    push_fixture(registry, images, "busybox:1.36", "1.36")
    return registry


@pytest.fixture
def other_project(api):
    name = f"dst-{secrets.token_hex(3)}"
    assert api.post(f"{API}/projects", json={"project_name": name}).status_code == 201
    return name


# Copy


def test_copy_image_across_projects_serves_it_in_destination(
    api, busybox, images, other_project
):
    target = f"{other_project}/copied"

    response = api.post(
        artifacts_url(target), params={"from": f"{busybox.repository}:1.36"}
    )

    assert response.status_code == 201
    assert response.headers["location"].endswith("/artifacts/1.36")
    pulled = api.get(f"/v2/{target}/manifests/1.36")
    assert pulled.headers["docker-content-digest"] == images.digest("busybox:1.36")


def test_copy_links_layers_to_destination(api, busybox, images, other_project):
    target = f"{other_project}/copied"
    layer = images.entry("busybox:1.36")["layers"][0]["digest"]

    api.post(artifacts_url(target), params={"from": f"{busybox.repository}:1.36"})

    assert api.head(f"/v2/{target}/blobs/{layer}").status_code == 200


def test_copy_index_brings_its_children(api, images, other_project):
    source = fresh(api)
    digest = push_fixture(source, images, "busybox:multi", "multi")
    target = f"{other_project}/multi"

    api.post(artifacts_url(target), params={"from": f"{source.repository}@{digest}"})

    copied = api.get(artifacts_url(target, f"/{digest}")).json()
    assert all(reference["child_id"] for reference in copied["references"])
    child = copied["references"][1]["child_digest"]
    assert api.get(f"/v2/{target}/manifests/{child}").status_code == 200


def test_copy_takes_referrers_along(api, busybox, images, other_project):
    subject = images.digest("busybox:1.36")
    referrer = push_referrer(busybox, subject, "application/vnd.example.sbom+json")
    target = f"{other_project}/copied"

    api.post(artifacts_url(target), params={"from": f"{busybox.repository}:1.36"})

    accessories = api.get(artifacts_url(target, "/1.36/accessories")).json()
    assert [a["digest"] for a in accessories] == [referrer]


def test_copy_by_guest_of_destination_returns_forbidden(
    api, dockyard, busybox, other_project
):
    guest = dockyard.new_user("guest", other_project, "guest")
    client = httpx.Client(base_url=dockyard.url, auth=(guest.name, guest.password))

    response = client.post(
        artifacts_url(f"{other_project}/copied"),
        params={"from": f"{busybox.repository}:1.36"},
    )

    assert response.status_code == 403
    assert error_code(response) == "FORBIDDEN"


def test_copy_from_private_project_without_pull_returns_forbidden(
    api, dockyard, busybox, other_project
):
    private = dockyard.new_project("private", private=True)
    source = fresh(api, project=private)
    source.put_manifest("v1", source.image_manifest())
    developer = dockyard.new_user("dev", other_project, "developer")
    client = httpx.Client(
        base_url=dockyard.url, auth=(developer.name, developer.password)
    )

    response = client.post(
        artifacts_url(f"{other_project}/copied"),
        params={"from": f"{source.repository}:v1"},
    )

    assert response.status_code == 403


def test_copy_from_missing_source_returns_not_found(api, busybox, other_project):
    response = api.post(
        artifacts_url(f"{other_project}/copied"),
        params={"from": f"{busybox.repository}:nope"},
    )

    assert response.status_code == 404


def test_copy_with_malformed_from_returns_bad_request(api, other_project):
    response = api.post(
        artifacts_url(f"{other_project}/copied"), params={"from": "no-reference"}
    )

    assert response.status_code == 400


def test_copy_is_audited_in_destination(api, busybox, images, other_project):
    target = f"{other_project}/copied"

    api.post(artifacts_url(target), params={"from": f"{busybox.repository}:1.36"})

    resource = f"{target}@{images.digest('busybox:1.36')}"
    entries = api.get(f"{API}/audit-logs", params={"q": f"resource={resource}"}).json()
    assert [e["operation"] for e in entries] == ["create"]


# Artifact model and additions


def test_image_extra_attrs_come_from_its_config(api, busybox):
    artifact = api.get(artifacts_url(busybox.repository, "/1.36")).json()

    assert artifact["extra_attrs"]["architecture"] == "amd64"
    assert artifact["extra_attrs"]["config"]["Cmd"] == ["sh"]


def test_image_artifact_links_build_history(api, busybox, images):
    artifact = api.get(artifacts_url(busybox.repository, "/1.36")).json()

    link = artifact["addition_links"]["build_history"]["href"]
    assert link == artifacts_url(
        busybox.repository,
        f"/{images.digest('busybox:1.36')}/additions/build_history",
    )


def test_build_history_addition_returns_config_history(api, busybox):
    response = api.get(
        artifacts_url(busybox.repository, "/1.36/additions/build_history")
    )

    assert response.headers["content-type"].startswith("application/json")
    assert response.json()[0]["created_by"].startswith("make-images")


def test_unknown_addition_returns_not_found(api, busybox):
    response = api.get(artifacts_url(busybox.repository, "/1.36/additions/nonsense"))

    assert response.status_code == 404


def test_vulnerabilities_addition_of_unscanned_image_is_empty(api, busybox):
    response = api.get(
        artifacts_url(busybox.repository, "/1.36/additions/vulnerabilities")
    )

    assert response.status_code == 200
    assert response.json() == {}


def test_vulnerabilities_addition_of_unknown_artifact_returns_not_found(api, busybox):
    response = api.get(
        artifacts_url(busybox.repository, "/nope/additions/vulnerabilities")
    )

    assert response.status_code == 404


def test_chart_addition_on_image_returns_bad_request(api, busybox):
    response = api.get(artifacts_url(busybox.repository, "/1.36/additions/values.yaml"))

    assert response.status_code == 400


def test_chart_artifact_has_chart_type(api):
    registry = fresh(api, prefix="chart")
    push_chart(registry)

    artifact = api.get(artifacts_url(registry.repository, "/0.1.0")).json()

    assert artifact["type"] == "CHART"
    assert artifact["extra_attrs"]["name"] == "demo"


def test_chart_values_addition_returns_values_yaml(api):
    registry = fresh(api, prefix="chart")
    push_chart(registry, values=b"image: nginx\n")

    response = api.get(
        artifacts_url(registry.repository, "/0.1.0/additions/values.yaml")
    )

    assert response.status_code == 200
    assert response.text == "image: nginx\n"


def test_chart_readme_addition_returns_readme(api):
    registry = fresh(api, prefix="chart")
    push_chart(registry, readme=b"# Hello\n")

    response = api.get(artifacts_url(registry.repository, "/0.1.0/additions/readme.md"))

    assert response.text == "# Hello\n"
    assert response.headers["content-type"].startswith("text/markdown")


def test_chart_dependencies_addition_lists_dependencies(api):
    registry = fresh(api, prefix="chart")
    push_chart(registry)

    response = api.get(
        artifacts_url(registry.repository, "/0.1.0/additions/dependencies")
    )

    assert response.json() == [{"name": "redis", "version": "17.0.0"}]


def test_addition_needs_read_permission(api, dockyard, busybox):
    private = dockyard.new_project("private", private=True)
    registry = fresh(api, project=private)
    registry.put_manifest("v1", registry.image_manifest())
    outsider = dockyard.new_user("outsider")
    client = httpx.Client(
        base_url=dockyard.url, auth=(outsider.name, outsider.password)
    )

    response = client.get(
        artifacts_url(registry.repository, "/v1/additions/build_history")
    )

    assert response.status_code == 403


def test_artifact_shows_project_and_repository_name(api, busybox):
    artifact = api.get(artifacts_url(busybox.repository, "/1.36")).json()

    assert artifact["repository_name"] == busybox.repository
    assert artifact["project_id"] > 0


# Accessories


def test_accessories_list_referrer_with_its_type(api, busybox, images):
    subject = images.digest("busybox:1.36")
    referrer = push_referrer(
        busybox, subject, "application/vnd.dev.cosign.artifact.sig.v1+json"
    )

    response = api.get(artifacts_url(busybox.repository, "/1.36/accessories"))

    assert [(a["digest"], a["type"]) for a in response.json()] == [
        (referrer, "signature.cosign")
    ]
    assert response.json()[0]["subject_artifact_digest"] == subject


def test_accessories_include_cosign_tag_signature(api, busybox, images):
    subject = images.digest("busybox:1.36")
    signature = busybox.image_manifest()
    busybox.put_manifest(f"sha256-{subject.split(':')[1]}.sig", signature)

    accessories = api.get(artifacts_url(busybox.repository, "/1.36/accessories")).json()

    assert [(a["digest"], a["type"]) for a in accessories] == [
        (sha256(signature), "signature.cosign")
    ]


def test_accessories_are_paginated(api, busybox, images):
    subject = images.digest("busybox:1.36")
    for _ in range(3):
        push_referrer(busybox, subject, "application/vnd.example.sbom+json")

    response = api.get(
        artifacts_url(busybox.repository, "/1.36/accessories"),
        params={"page_size": 2},
    )

    assert len(response.json()) == 2
    assert response.headers["x-total-count"] == "3"


def test_artifact_list_hides_accessories(api, busybox, images):
    push_referrer(busybox, images.digest("busybox:1.36"), "application/x.sbom")

    listed = api.get(artifacts_url(busybox.repository)).json()

    assert [a["digest"] for a in listed] == [images.digest("busybox:1.36")]


def test_with_accessory_embeds_accessories(api, busybox, images):
    referrer = push_referrer(
        busybox, images.digest("busybox:1.36"), "application/x.sbom"
    )

    artifact = api.get(
        artifacts_url(busybox.repository, "/1.36"), params={"with_accessory": "true"}
    ).json()

    assert [a["digest"] for a in artifact["accessories"]] == [referrer]


def test_delete_artifact_deletes_its_accessories(api, busybox, images):
    referrer = push_referrer(
        busybox, images.digest("busybox:1.36"), "application/x.sbom"
    )

    api.delete(artifacts_url(busybox.repository, "/1.36"))

    assert busybox.client.get(busybox.url(f"manifests/{referrer}")).status_code == 404


# Pull tracking


def wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def test_never_pulled_artifact_shows_zero_pull_time(api, busybox):
    artifact = api.get(artifacts_url(busybox.repository, "/1.36")).json()

    assert artifact["pull_time"] == NEVER


def test_pull_sets_artifact_and_tag_pull_time(api, busybox):
    busybox.client.get(busybox.url("manifests/1.36"))

    artifact = wait_for(
        lambda: (
            (a := api.get(artifacts_url(busybox.repository, "/1.36")).json())
            and a["pull_time"] != NEVER
            and a
        )
    )

    assert artifact, "pull_time was not set within 5 s"
    assert artifact["tags"][0]["pull_time"] != NEVER


def test_pull_counts_gets_but_not_heads(api, busybox):
    short = busybox.repository.split("/", 1)[1]
    busybox.client.head(busybox.url("manifests/1.36"))
    busybox.client.get(busybox.url("manifests/1.36"))

    repository = wait_for(
        lambda: (
            (r := api.get(f"{API}/projects/library/repositories/{short}").json())
            and r["pull_count"] > 0
            and r
        )
    )

    assert repository["pull_count"] == 1


def test_pull_by_digest_leaves_tag_pull_time_unset(api, busybox, images):
    busybox.client.get(busybox.url(f"manifests/{images.digest('busybox:1.36')}"))

    artifact = wait_for(
        lambda: (
            (a := api.get(artifacts_url(busybox.repository, "/1.36")).json())
            and a["pull_time"] != NEVER
            and a
        )
    )

    assert artifact["tags"][0]["pull_time"] == NEVER


# q filters


@pytest.fixture
def mixed(api):
    """A repository with a tagged image v1, an untagged image and a chart."""
    registry = fresh(api, prefix="mixed")
    registry.put_manifest("v1", registry.image_manifest())
    untagged = registry.image_manifest()
    registry.put_manifest(sha256(untagged), untagged)
    push_chart(registry, tag="chart")
    return registry, sha256(untagged)


def test_q_tags_nil_lists_untagged_only(api, mixed):
    registry, untagged = mixed

    listed = api.get(artifacts_url(registry.repository), params={"q": "tags=nil"})

    assert [a["digest"] for a in listed.json()] == [untagged]


def test_q_tags_star_lists_tagged_only(api, mixed):
    registry, _ = mixed

    assert names_listed(api, registry.repository, "tags=*") == ["chart", "v1"]


def test_q_tags_exact_and_fuzzy(api, mixed):
    registry, _ = mixed

    assert names_listed(api, registry.repository, "tags=v1") == ["v1"]
    assert names_listed(api, registry.repository, "tags=~har") == ["chart"]


def test_q_type_filters_on_artifact_type(api, mixed):
    registry, _ = mixed

    assert names_listed(api, registry.repository, "type=CHART") == ["chart"]


def test_q_media_type_filters_on_config_media_type(api, mixed):
    registry, _ = mixed

    listed = api.get(
        artifacts_url(registry.repository), params={"q": f"media_type={HELM_CONFIG}"}
    )

    assert [a["media_type"] for a in listed.json()] == [HELM_CONFIG]


def test_q_digest_filters_on_digest(api, mixed):
    registry, untagged = mixed

    listed = api.get(
        artifacts_url(registry.repository), params={"q": f"digest={untagged}"}
    )

    assert [a["digest"] for a in listed.json()] == [untagged]


def test_q_push_time_range_in_future_lists_nothing(api, mixed):
    registry, _ = mixed

    listed = api.get(
        artifacts_url(registry.repository),
        params={"q": "push_time=[2999-01-01T00:00:00Z~]"},
    )

    assert listed.json() == []


def test_q_push_time_range_around_now_lists_all(api, mixed):
    registry, _ = mixed

    listed = api.get(
        artifacts_url(registry.repository),
        params={"q": "push_time=[2000-01-01 00:00:00~2999-01-01 00:00:00]"},
    )

    assert listed.headers["x-total-count"] == "3"


def test_q_pull_time_range_lists_only_pulled(api, mixed):
    registry, _ = mixed
    registry.client.get(registry.url("manifests/v1"))
    q = "pull_time=[2000-01-01T00:00:00Z~]"

    pulled = wait_for(lambda: names_listed(api, registry.repository, q))

    assert pulled == ["v1"]


def test_q_unknown_key_returns_bad_request(api, mixed):
    registry, _ = mixed

    response = api.get(artifacts_url(registry.repository), params={"q": "color=red"})

    assert response.status_code == 400


def test_index_children_are_listed_only_with_base_star(api, images):
    registry = fresh(api)
    push_fixture(registry, images, "busybox:multi", "multi")

    default = api.get(artifacts_url(registry.repository)).json()
    everything = api.get(artifacts_url(registry.repository), params={"q": "base=*"})

    assert len(default) == 1
    assert everything.headers["x-total-count"] == "3"


def test_with_tag_false_omits_tags(api, busybox):
    artifact = api.get(
        artifacts_url(busybox.repository, "/1.36"), params={"with_tag": "false"}
    ).json()

    assert artifact["tags"] is None


def test_with_scan_overview_gives_empty_object(api, busybox):
    artifact = api.get(
        artifacts_url(busybox.repository, "/1.36"),
        params={"with_scan_overview": "true"},
    ).json()

    assert artifact["scan_overview"] == {}


# Tags


def test_create_tag_with_invalid_name_returns_bad_request(api, busybox):
    response = api.post(
        artifacts_url(busybox.repository, "/1.36/tags"), json={"name": "-bad:tag"}
    )

    assert response.status_code == 400


def test_create_tag_taken_by_another_artifact_returns_conflict(api, busybox):
    busybox.put_manifest("other", busybox.image_manifest())

    response = api.post(
        artifacts_url(busybox.repository, "/1.36/tags"), json={"name": "other"}
    )

    assert response.status_code == 409


def test_tag_list_filters_by_name(api, busybox):
    for name in ("alpha", "beta"):
        api.post(artifacts_url(busybox.repository, "/1.36/tags"), json={"name": name})

    response = api.get(
        artifacts_url(busybox.repository, "/1.36/tags"), params={"q": "name=~alp"}
    )

    assert [t["name"] for t in response.json()] == ["alpha"]


def test_q_labels_lists_artifacts_carrying_the_label(api, mixed):
    registry, _ = mixed
    created = api.post(
        f"{API}/labels", json={"name": f"l-{secrets.token_hex(3)}", "scope": "g"}
    )
    label_id = created.headers["location"].rsplit("/", 1)[1]
    api.post(artifacts_url(registry.repository, "/v1/labels"), json={"id": label_id})

    names = names_listed(api, registry.repository, f"labels=({label_id})")

    assert names == ["v1"]
