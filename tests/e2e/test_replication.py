"""Replication policies end to end, between real registries.

Source and destinations are real servers on loopback: the shared Dockyard,
a second Dockyard of the test's own, and Debian's docker-registry (the Go
reference registry, no referrers API). The copies are checked with skopeo
and plain HTTP at the destination.
"""

import json
import secrets

import httpx
import pytest

from tests.balancer import Balancer
from tests.conftest import free_port
from tests.e2e.conftest import push_image, skopeo
from tests.e2e.replication_api import (
    admin_api,
    create_endpoint,
    create_policy,
    created_id,
    run_policy,
    task_logs,
    wait_until,
)

_ACCEPT = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


def _executions(api, policy_id, **params) -> list[dict]:
    response = api.get(
        "/replication/executions", params={"policy_id": policy_id, **params}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _ended_executions(api, policy_id, count):
    ended = [e for e in _executions(api, policy_id) if e["status"] != "InProgress"]
    return ended if len(ended) >= count else None


def _raw(reference, creds=None) -> bytes:
    extra = ["--creds", creds] if creds else []
    result = skopeo("inspect", "--raw", "--tls-verify=false", *extra, reference)
    return result.stdout.encode()


@pytest.fixture
def source(dockyard, images):
    """A fresh project on the shared Dockyard holding busybox:multi and the
    SBOM that refers to its amd64 child (tagged `sbom`)."""
    project = dockyard.new_project("repl")
    push_image(dockyard, images, "busybox:multi", f"{project}/busybox:multi")
    push_image(dockyard, images, "artifact:busybox-sbom", f"{project}/busybox:sbom")
    return project


def _copied_whole(images, reference, tmp_path, creds=None):
    """The index arrived byte for byte and every child and blob can be
    copied back with the digests kept."""
    assert _raw(reference, creds) == images.manifest_bytes("busybox:multi")
    extra = ["--src-creds", creds] if creds else []
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        *extra,
        reference,
        f"oci:{tmp_path / 'back'}:multi",
    )
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    return index["manifests"][0]["digest"] == images.digest("busybox:multi")


def test_push_replication_to_go_registry_copies_index_and_sbom_fallback(
    api,
    source,
    upstream,
    images,
    tmp_path,
):
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        dest_namespace="mirror",
        dest_namespace_replace_count=1,
        filters=[{"type": "name", "value": f"{source}/**"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", execution
    assert _copied_whole(
        images, f"docker://{upstream.host}/mirror/busybox:multi", tmp_path
    )
    subject = images.digest("busybox:1.36").replace(":", "-")
    fallback = httpx.get(
        f"http://{upstream.host}/v2/mirror/busybox/manifests/{subject}",
        headers={"accept": _ACCEPT},
    ).json()
    sbom = images.digest("artifact:busybox-sbom")
    assert [d["digest"] for d in fallback["manifests"]] == [sbom]


def test_push_replication_to_second_dockyard_keeps_sbom_discoverable(
    api, source, start_dockyard, images, tmp_path
):
    peer = start_dockyard()
    peer.create_project("mirror")
    registry_id = create_endpoint(
        api,
        peer.url,
        "harbor",
        {"access_key": "admin", "access_secret": peer.admin_password},
    )
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        dest_namespace="mirror",
        dest_namespace_replace_count=1,
        filters=[{"type": "name", "value": f"{source}/busybox"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", execution
    creds = f"admin:{peer.admin_password}"
    assert _copied_whole(
        images, f"docker://{peer.host}/mirror/busybox:multi", tmp_path, creds
    )
    referrers = httpx.get(
        f"{peer.url}/v2/mirror/busybox/referrers/{images.digest('busybox:1.36')}",
        auth=("admin", peer.admin_password),
    ).json()
    sbom = images.digest("artifact:busybox-sbom")
    assert [d["digest"] for d in referrers["manifests"]] == [sbom]


def test_pull_replication_from_go_registry_includes_one_tag_excludes_another(
    api,
    dockyard,
    upstream,
    images,
):
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    upstream.push(images, "busybox:1.36-arm64", "library/busybox:1.36-arm64")
    project = dockyard.new_project("pulled")
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    policy_id = create_policy(
        api,
        src_registry={"id": registry_id},
        dest_namespace=project,
        dest_namespace_replace_count=1,
        filters=[
            {"type": "name", "value": "library/busybox"},
            {"type": "tag", "value": "1.36*"},
            {"type": "tag", "value": "*-arm64", "decoration": "excludes"},
        ],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", execution
    creds = f"admin:{dockyard.admin_password}"
    repository = f"docker://{dockyard.host}/{project}/busybox"
    assert _raw(f"{repository}:1.36", creds) == images.manifest_bytes("busybox:1.36")
    missing = skopeo(
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        creds,
        f"{repository}:1.36-arm64",
        check=False,
    )
    assert missing.returncode != 0


def test_event_based_push_reaches_destination_and_delete_follows(
    api,
    dockyard,
    upstream,
    images,
):
    project = dockyard.new_project("events")
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{project}/**"}],
        trigger={"type": "event_based"},
        replicate_deletion=True,
    )
    digest = images.digest("busybox:1.36")
    at_destination = f"http://{upstream.host}/v2/{project}/busybox/manifests/{digest}"

    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    pushed = wait_until(lambda: _ended_executions(api, policy_id, 1))
    arrived = httpx.head(at_destination, headers={"accept": _ACCEPT}).status_code
    skopeo(
        "delete",
        "--tls-verify=false",
        "--creds",
        f"admin:{dockyard.admin_password}",
        f"docker://{dockyard.host}/{project}/busybox@{digest}",
    )
    deleted = wait_until(lambda: _ended_executions(api, policy_id, 2))

    assert [e["status"] for e in pushed] == ["Succeed"]
    assert pushed[0]["trigger"] == "event_based"
    assert arrived == 200
    assert [e["status"] for e in deleted] == ["Succeed", "Succeed"]
    gone = httpx.head(at_destination, headers={"accept": _ACCEPT}).status_code
    assert gone == 404


def _policy_to_nowhere(api, dockyard, images, prefix) -> int:
    """A push-based policy copying busybox:1.36 of a new project to an
    endpoint where nothing listens (a port just freed)."""
    project = dockyard.new_project(prefix)
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    registry_id = create_endpoint(api, f"http://127.0.0.1:{free_port()}")
    return create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{project}/**"}],
    )


def test_unreachable_destination_fails_with_reason_after_bounded_retries(
    api, dockyard, images
):
    policy_id = _policy_to_nowhere(api, dockyard, images, "lost")

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    tasks = api.get(f"/replication/executions/{execution['id']}/tasks").json()
    assert [t["status"] for t in tasks] == ["Failed"]
    log = api.get(
        f"/replication/executions/{execution['id']}/tasks/{tasks[0]['id']}/log"
    ).text
    assert "attempt 3/3 failed: UpstreamUnavailable" in log
    assert "attempt 4" not in log


def test_expected_failure_logs_one_line_and_a_warning_without_traceback(
    api, dockyard, images
):
    policy_id = _policy_to_nowhere(api, dockyard, images, "quiet")
    mark = dockyard.log_size()

    execution = run_policy(api, policy_id)

    task_log = task_logs(api, execution)
    assert "Traceback" not in task_log
    last = task_log.splitlines()[-1]
    assert " failed: CopyFailed: failed after 3 attempts: UpstreamUnavailable" in last
    served = dockyard.log_since(mark).splitlines()
    assert any(
        " WARNING dockyard.jobs.worker " in line and "job_task_failure" in line
        for line in served
    )
    assert not [line for line in served if "job_task_error" in line]


def test_scheduled_policy_runs_on_its_cron_without_a_manual_start(
    api,
    dockyard,
    upstream,
    images,
):
    project = dockyard.new_project("cron")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    body = {
        "dest_registry": {"id": registry_id},
        "filters": [{"type": "name", "value": f"{project}/**"}],
        "trigger": {"type": "scheduled", "trigger_settings": {"cron": "*/2 * * * * *"}},
    }
    policy_id = create_policy(api, **body)

    ran = wait_until(lambda: _ended_executions(api, policy_id, 1))
    api.put(
        f"/replication/policies/{policy_id}",
        json={
            **body,
            "name": api.get(f"/replication/policies/{policy_id}").json()["name"],
            "enabled": False,
        },
    )

    assert ran[-1]["trigger"] == "scheduled"
    assert ran[-1]["status"] == "Succeed", ran
    tag = httpx.get(f"http://{upstream.host}/v2/{project}/busybox/tags/list").json()
    assert tag["tags"] == ["1.36"]


def test_stopped_execution_ends_stopped_mid_blob(
    api,
    dockyard,
    upstream,
    images,
):
    project = dockyard.new_project("stop")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    # At 1 KB/s the megabyte layer takes far longer than the test waits.
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{project}/**"}],
        speed=1,
    )
    execution_id = created_id(
        api.post("/replication/executions", json={"policy_id": policy_id})
    )
    tasks_url = f"/replication/executions/{execution_id}/tasks"
    wait_until(
        lambda: [t for t in api.get(tasks_url).json() if t["status"] == "InProgress"]
    )

    stopped = api.put(f"/replication/executions/{execution_id}")

    assert stopped.status_code == 200
    execution = api.get(f"/replication/executions/{execution_id}").json()
    assert execution["status"] == "Stopped"
    ended = wait_until(
        lambda: [t for t in api.get(tasks_url).json() if t["status"] == "Stopped"]
    )
    assert len(ended) == 1


def test_run_started_while_the_previous_is_active_says_it_skipped(
    api,
    dockyard,
    upstream,
    images,
):
    project = dockyard.new_project("skip")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    # At 1 KB/s the first run is still copying when the second starts.
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{project}/**"}],
        speed=1,
    )
    first = created_id(
        api.post("/replication/executions", json={"policy_id": policy_id})
    )
    tasks_url = f"/replication/executions/{first}/tasks"
    wait_until(
        lambda: [t for t in api.get(tasks_url).json() if t["status"] == "InProgress"]
    )

    second = run_policy(api, policy_id)

    api.put(f"/replication/executions/{first}")
    assert (second["status"], second["total"]) == ("Succeed", 0)
    assert "previous run of this policy is still active" in second["status_text"]


def test_override_off_skips_a_tag_the_destination_has_with_another_digest(
    api,
    dockyard,
    upstream,
    images,
):
    project = dockyard.new_project("keep")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    upstream.push(images, "busybox:1.36-arm64", f"{project}/busybox:1.36")
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{project}/**"}],
        override=False,
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed"
    kept = _raw(f"docker://{upstream.host}/{project}/busybox:1.36")
    assert kept == images.manifest_bytes("busybox:1.36-arm64")


def test_copy_by_chunk_sends_blobs_the_destination_verifies(
    api,
    dockyard,
    upstream,
    images,
    tmp_path,
):
    project = dockyard.new_project("chunk")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{project}/**"}],
        copy_by_chunk=True,
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", execution
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{upstream.host}/{project}/busybox:1.36",
        f"oci:{tmp_path / 'back'}:1.36",
    )
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == images.digest("busybox:1.36")


def test_unreachable_source_fails_the_plan_with_reason_after_bounded_retries(
    api, dockyard
):
    project = dockyard.new_project("nosource")
    registry_id = create_endpoint(api, f"http://127.0.0.1:{free_port()}")
    policy_id = create_policy(
        api,
        src_registry={"id": registry_id},
        dest_namespace=project,
        filters=[{"type": "name", "value": "library/busybox"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    tasks = api.get(f"/replication/executions/{execution['id']}/tasks").json()
    assert [(t["operation"], t["status"]) for t in tasks] == [("plan", "Failed")]
    log = api.get(
        f"/replication/executions/{execution['id']}/tasks/{tasks[0]['id']}/log"
    ).text
    assert "attempt 3/3 failed: UpstreamUnavailable" in log


# Label filters, and the events beyond push and artifact deletion ---------


def _label(api, project_id=None) -> tuple[int, str]:
    """A new label, global or (with `project_id`) of that project."""
    name = f"label-{secrets.token_hex(4)}"
    body = {"name": name, "scope": "g"}
    if project_id is not None:
        body = {"name": name, "scope": "p", "project_id": project_id}
    return created_id(api.post("/labels", json=body)), name


def _attach(api, repository, reference, label_id):
    project, _, name = repository.partition("/")
    response = api.post(
        f"/projects/{project}/repositories/{name}/artifacts/{reference}/labels",
        json={"id": label_id},
    )
    assert response.status_code == 200, response.text


def _add_tag(api, repository, reference, tag):
    project, _, name = repository.partition("/")
    response = api.post(
        f"/projects/{project}/repositories/{name}/artifacts/{reference}/tags",
        json={"name": tag},
    )
    assert response.status_code == 201, response.text


def _go_tags(upstream, repository) -> list[str]:
    response = httpx.get(f"http://{upstream.host}/v2/{repository}/tags/list")
    return sorted(response.json().get("tags") or []) if response.is_success else []


@pytest.fixture
def two_images(dockyard, images):
    """A fresh project whose busybox repository has `1.36` and `arm64`,
    two artifacts with different digests."""
    project = dockyard.new_project("labels")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    push_image(dockyard, images, "busybox:1.36-arm64", f"{project}/busybox:arm64")
    return project


@pytest.mark.parametrize(
    ("decoration", "arrived"), [("matches", ["1.36"]), ("excludes", ["arm64"])]
)
def test_push_replication_with_label_filter_copies_by_label(
    api, two_images, upstream, decoration, arrived
):
    label_id, label = _label(api)
    _attach(api, f"{two_images}/busybox", "1.36", label_id)
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[
            {"type": "name", "value": f"{two_images}/**"},
            {"type": "label", "value": [label], "decoration": decoration},
        ],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", execution
    assert _go_tags(upstream, f"{two_images}/busybox") == arrived


def test_pull_replication_from_second_dockyard_selects_by_label(
    api, dockyard, start_dockyard, images
):
    peer = start_dockyard()
    peer.create_project("shelf")
    push_image(peer, images, "busybox:1.36", "shelf/busybox:1.36")
    push_image(peer, images, "busybox:1.36-arm64", "shelf/busybox:arm64")
    with admin_api(peer) as peer_api:
        shelf_id = peer_api.get("/projects/shelf").json()["project_id"]
        label_id, label = _label(peer_api, shelf_id)
        _attach(peer_api, "shelf/busybox", "arm64", label_id)
    project = dockyard.new_project("fromlabels")
    registry_id = create_endpoint(
        api,
        peer.url,
        "harbor",
        {"access_key": "admin", "access_secret": peer.admin_password},
    )
    policy_id = create_policy(
        api,
        src_registry={"id": registry_id},
        dest_namespace=project,
        dest_namespace_replace_count=1,
        filters=[
            {"type": "name", "value": "shelf/busybox"},
            {"type": "label", "value": [label]},
        ],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", execution
    listed = api.get(
        f"/projects/{project}/repositories/busybox/artifacts",
        params={"with_label": "true"},
    ).json()
    assert [[t["name"] for t in a["tags"]] for a in listed] == [["arm64"]]
    # Labels select; they are not copied (as in Harbor).
    assert listed[0]["labels"] == []


def test_pull_policy_with_label_filter_from_go_registry_is_refused(api, upstream):
    registry_id = create_endpoint(api, f"http://{upstream.host}")

    response = api.post(
        "/replication/policies",
        json={
            "name": f"policy-{secrets.token_hex(4)}",
            "src_registry": {"id": registry_id},
            "filters": [{"type": "label", "value": ["prod"]}],
        },
    )

    assert response.status_code == 400
    assert "has no labels" in response.json()["errors"][0]["message"]


def test_tag_deletion_reaches_second_dockyard_and_spares_the_other_tag(
    api, dockyard, start_dockyard, images
):
    project = dockyard.new_project("untag")
    repository = f"{project}/busybox"
    push_image(dockyard, images, "busybox:1.36", f"{repository}:1.36")
    _add_tag(api, repository, "1.36", "keep")
    peer = start_dockyard()
    peer.create_project(project)
    registry_id = create_endpoint(
        api,
        peer.url,
        "harbor",
        {"access_key": "admin", "access_secret": peer.admin_password},
    )
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{project}/**"}],
        trigger={"type": "event_based"},
        replicate_deletion=True,
    )
    assert run_policy(api, policy_id)["status"] == "Succeed"

    deleted = api.delete(
        f"/projects/{project}/repositories/busybox/artifacts/1.36/tags/1.36"
    )
    ended = wait_until(lambda: _ended_executions(api, policy_id, 2))

    assert deleted.status_code == 200
    assert [e["status"] for e in ended] == ["Succeed", "Succeed"]
    at_peer = f"{peer.url}/v2/{repository}/manifests"
    auth = ("admin", peer.admin_password)
    gone = httpx.get(f"{at_peer}/1.36", headers={"accept": _ACCEPT}, auth=auth)
    kept = httpx.get(f"{at_peer}/keep", headers={"accept": _ACCEPT}, auth=auth)
    assert gone.status_code == 404
    assert kept.headers["docker-content-digest"] == images.digest("busybox:1.36")


def _mirrored_for_deletions(api, dockyard, images, peer, prefix, *tags):
    """busybox:1.36 (plus `tags` on it) in a new project, copied to the Go
    registry `peer` by an event-based policy with `replicate_deletion`:
    (repository, policy id)."""
    project = dockyard.new_project(prefix)
    repository = f"{project}/busybox"
    push_image(dockyard, images, "busybox:1.36", f"{repository}:1.36")
    for tag in tags:
        _add_tag(api, repository, "1.36", tag)
    policy_id = create_policy(
        api,
        dest_registry={"id": create_endpoint(api, f"http://{peer.host}")},
        filters=[{"type": "name", "value": f"{project}/**"}],
        trigger={"type": "event_based"},
        replicate_deletion=True,
    )
    assert run_policy(api, policy_id)["status"] == "Succeed"
    return repository, policy_id


def _deleted_at_source(api, dockyard, repository, reference, policy_id) -> str:
    """Delete `reference` through /v2; the log of the event's execution,
    which must fail."""
    deleted = httpx.delete(
        f"{dockyard.url}/v2/{repository}/manifests/{reference}",
        auth=("admin", dockyard.admin_password),
    )
    assert deleted.status_code == 202
    ended = wait_until(lambda: _ended_executions(api, policy_id, 2))
    failed = [e for e in ended if e["trigger"] == "event_based"]
    assert [e["status"] for e in failed] == ["Failed"]
    return task_logs(api, failed[0])


def test_tag_deletion_refused_by_go_registry_fails_and_keeps_the_manifest(
    api, dockyard, upstream, images
):
    repository, policy_id = _mirrored_for_deletions(
        api, dockyard, images, upstream, "gountag", "keep"
    )

    # OCI tag deletion at the source (Dockyard removes the tag alone).
    log = _deleted_at_source(api, dockyard, repository, "1.36", policy_id)

    # distribution 2.8 reads the tag as a digest and answers 400: final.
    assert "refused to delete the tag alone" in log
    assert "DIGEST_INVALID" in log
    assert "not retried: the registry refuses this deletion" in log
    assert "attempt 2/3" not in log
    assert _go_tags(upstream, repository) == ["1.36", "keep"]


def test_deletion_refused_by_go_registry_without_deletes_fails_at_once(
    api, dockyard, undeleting_upstream, images
):
    repository, policy_id = _mirrored_for_deletions(
        api, dockyard, images, undeleting_upstream, "nodelete"
    )
    digest = images.digest("busybox:1.36")

    log = _deleted_at_source(api, dockyard, repository, digest, policy_id)

    assert "UNSUPPORTED" in log
    assert "not retried: the registry refuses this deletion" in log
    assert "attempt 2/3" not in log
    assert _go_tags(undeleting_upstream, repository) == ["1.36"]


def test_tag_added_through_api_fires_an_event_copy(api, dockyard, upstream, images):
    project = dockyard.new_project("tagadd")
    repository = f"{project}/busybox"
    push_image(dockyard, images, "busybox:1.36", f"{repository}:1.36")
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{project}/**"}],
        trigger={"type": "event_based"},
    )

    _add_tag(api, repository, "1.36", "stable")
    ended = wait_until(lambda: _ended_executions(api, policy_id, 1))

    assert [(e["trigger"], e["status"]) for e in ended] == [("event_based", "Succeed")]
    assert _go_tags(upstream, repository) == ["stable"]


def test_artifact_copied_through_api_fires_an_event_copy(
    api, dockyard, upstream, images
):
    project = dockyard.new_project("copyin")
    source = f"{dockyard.new_project('copyfrom')}/busybox"
    push_image(dockyard, images, "busybox:1.36", f"{source}:1.36")
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{project}/**"}],
        trigger={"type": "event_based"},
    )

    copied = api.post(
        f"/projects/{project}/repositories/busybox/artifacts",
        params={"from": f"{source}:1.36"},
    )
    ended = wait_until(lambda: _ended_executions(api, policy_id, 1))

    assert copied.status_code == 201, copied.text
    assert [e["status"] for e in ended] == ["Succeed"]
    assert _go_tags(upstream, f"{project}/busybox") == ["1.36"]


def test_repository_deleted_through_api_deletes_its_artifacts_at_destination(
    api, two_images, upstream, images
):
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{two_images}/**"}],
        trigger={"type": "event_based"},
        replicate_deletion=True,
    )
    assert run_policy(api, policy_id)["status"] == "Succeed"

    deleted = api.delete(f"/projects/{two_images}/repositories/busybox")
    ended = wait_until(lambda: _ended_executions(api, policy_id, 2))

    assert deleted.status_code == 200
    assert [e["status"] for e in ended] == ["Succeed", "Succeed"]
    manifests = f"http://{upstream.host}/v2/{two_images}/busybox/manifests"
    for ref in ("busybox:1.36", "busybox:1.36-arm64"):
        head = httpx.head(
            f"{manifests}/{images.digest(ref)}", headers={"accept": _ACCEPT}
        )
        assert head.status_code == 404, ref


# Destination projects, mounts across tasks, failures a retry cannot mend.


def _harbor_endpoint(api, peer, user="admin", password=None) -> int:
    return create_endpoint(
        api,
        peer.url,
        "harbor",
        {"access_key": user, "access_secret": password or peer.admin_password},
    )


def _shared_layer(images) -> str:
    """The busybox layer, which debian-pkgs:1 has as well."""
    layer = images.entry("busybox:1.36")["layers"][0]["digest"]
    assert layer in [d["digest"] for d in images.entry("debian-pkgs:1")["layers"]]
    return layer


def test_push_to_dockyard_creates_missing_projects_carrying_public_flag(
    api, dockyard, start_dockyard, images
):
    shown = dockyard.new_project("shown")
    hidden = dockyard.new_project("hidden", private=True)
    push_image(dockyard, images, "busybox:1.36", f"{shown}/busybox:1.36")
    push_image(dockyard, images, "busybox:1.36", f"{hidden}/busybox:1.36")
    peer = start_dockyard()
    policy_id = create_policy(
        api,
        dest_registry={"id": _harbor_endpoint(api, peer)},
        filters=[{"type": "name", "value": "{" + f"{shown},{hidden}" + "}/**"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    with admin_api(peer) as there:
        public = {
            name: there.get(f"/projects/{name}").json()["metadata"]["public"]
            for name in (shown, hidden)
        }
    assert public == {shown: "true", hidden: "false"}
    assert _raw(
        f"docker://{peer.host}/{hidden}/busybox:1.36", f"admin:{peer.admin_password}"
    ) == images.manifest_bytes("busybox:1.36")


def test_push_with_credentials_that_may_not_create_projects_fails_saying_so(
    api, dockyard, start_dockyard, images
):
    project = dockyard.new_project("nocreate")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    peer = start_dockyard()
    user = peer.new_user("pusher")
    with admin_api(peer) as there:
        restricted = there.put(
            "/configurations", json={"project_creation_restriction": "adminonly"}
        )
    assert restricted.status_code == 200, restricted.text
    policy_id = create_policy(
        api,
        dest_registry={"id": _harbor_endpoint(api, peer, user.name, user.password)},
        filters=[{"type": "name", "value": f"{project}/**"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    log = task_logs(api, execution)
    assert f"creating project {project} at the destination: it answered 403" in log
    assert "not retried" in log
    assert "attempt 2/3" not in log


def test_push_with_bad_password_fails_without_retrying(
    api, dockyard, start_dockyard, images
):
    project = dockyard.new_project("badpw")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    peer = start_dockyard()
    peer.create_project(project)
    # A docker-registry endpoint: no project step, the refusal comes on /v2.
    registry_id = create_endpoint(
        api, peer.url, credential={"access_key": "admin", "access_secret": "wrong"}
    )
    policy_id = create_policy(
        api,
        dest_registry={"id": registry_id},
        filters=[{"type": "name", "value": f"{project}/**"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    log = task_logs(api, execution)
    assert "attempt 1/3 failed: UpstreamDenied" in log
    assert "not retried: the registry refused these credentials" in log
    assert "attempt 2/3" not in log


def test_push_to_harbor_endpoint_with_bad_password_fails_at_the_project_step(
    api, dockyard, start_dockyard, images
):
    project = dockyard.new_project("badpwapi")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    peer = start_dockyard()
    policy_id = create_policy(
        api,
        dest_registry={"id": _harbor_endpoint(api, peer, password="wrong")},
        filters=[{"type": "name", "value": f"{project}/**"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    log = task_logs(api, execution)
    assert f"looking up project {project} at the destination: it answered 401" in log
    assert "attempt 2/3" not in log


def test_pull_into_missing_project_creates_it_private_audited_as_replication(
    api, dockyard, upstream, images
):
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    project = f"made-{secrets.token_hex(4)}"
    policy_id = create_policy(
        api,
        src_registry={"id": create_endpoint(api, f"http://{upstream.host}")},
        dest_namespace=project,
        filters=[{"type": "name", "value": "library/busybox"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    made = api.get(f"/projects/{project}").json()
    assert made["metadata"]["public"] == "false"
    audit = api.get(
        "/audit-logs", params={"q": f"resource={project},resource_type=project"}
    ).json()
    assert [(a["username"], a["operation"]) for a in audit] == [
        ("replication", "create")
    ]


def test_pull_from_dockyard_creates_project_public_like_its_source(
    api, dockyard, start_dockyard, images
):
    peer = start_dockyard()
    project = f"open-{secrets.token_hex(4)}"
    peer.create_project(project)
    push_image(peer, images, "busybox:1.36", f"{project}/busybox:1.36")
    policy_id = create_policy(
        api,
        src_registry={"id": _harbor_endpoint(api, peer)},
        filters=[{"type": "name", "value": f"{project}/busybox"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    assert api.get(f"/projects/{project}").json()["metadata"]["public"] == "true"


def test_push_mounts_a_layer_an_earlier_run_sent_to_go_registry(
    api, dockyard, upstream, images, tmp_path
):
    project = dockyard.new_project("mount")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    policy_id = create_policy(
        api,
        dest_registry={"id": create_endpoint(api, f"http://{upstream.host}")},
        filters=[{"type": "name", "value": f"{project}/**"}],
    )
    first = run_policy(api, policy_id)
    push_image(dockyard, images, "debian-pkgs:1", f"{project}/debian:1")

    second = run_policy(api, policy_id)

    assert (first["status"], second["status"]) == ("Succeed", "Succeed")
    layer = _shared_layer(images)
    log = task_logs(api, second)
    assert f"blob {layer} mounted from {project}/busybox" in log
    # Its hex is only in the digest parameter of the upload that sent it.
    assert upstream.requests("PUT", layer.partition(":")[2]) == 1
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{upstream.host}/{project}/debian:1",
        f"oci:{tmp_path / 'back'}:1",
    )


def test_push_cancels_the_upload_of_a_refused_mount_and_sends_the_blob(
    api, dockyard, upstream, images, tmp_path
):
    project = dockyard.new_project("refused")
    # Both repositories hold the layer here; only `shown` is replicated, so
    # the mount from `hidden` at the destination is refused (202).
    push_image(dockyard, images, "busybox:1.36", f"{project}/hidden:1.36")
    push_image(dockyard, images, "busybox:1.36", f"{project}/shown:1.36")
    policy_id = create_policy(
        api,
        dest_registry={"id": create_endpoint(api, f"http://{upstream.host}")},
        filters=[{"type": "name", "value": f"{project}/shown"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    layer = _shared_layer(images)
    assert f"blob {layer} sent" in task_logs(api, execution)
    assert upstream.requests("POST", f"mount={layer}&from={project}/hidden") == 1
    # Other tests' repositories here hold the blobs too: their mounts are
    # tried (and refused) as well. Every refused mount's upload is cancelled.
    uploads = f"/v2/{project}/shown/blobs/uploads/"
    refused = upstream.requests("POST", f"{uploads}?mount=", status=202)
    cancelled = upstream.requests("DELETE", uploads, status=204)
    assert refused == cancelled >= 2  # at least the layer's and the config's
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{upstream.host}/{project}/shown:1.36",
        f"oci:{tmp_path / 'back'}:1.36",
    )


def test_push_mounts_a_layer_an_earlier_run_sent_to_second_dockyard(
    api, dockyard, start_dockyard, images, tmp_path
):
    project = dockyard.new_project("mountdy")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    peer = start_dockyard()
    policy_id = create_policy(
        api,
        dest_registry={"id": _harbor_endpoint(api, peer)},
        filters=[{"type": "name", "value": f"{project}/**"}],
    )
    first = run_policy(api, policy_id)
    push_image(dockyard, images, "debian-pkgs:1", f"{project}/debian:1")
    mark = peer.log_size()

    second = run_policy(api, policy_id)

    assert (first["status"], second["status"]) == ("Succeed", "Succeed")
    layer = _shared_layer(images)
    assert f"blob {layer} mounted from {project}/busybox" in task_logs(api, second)
    # debian-pkgs:1 has three blobs: its config and own layer were sent.
    uploads = f"method=PUT path=/v2/{project}/debian/blobs/uploads/"
    sent = [line for line in peer.log_since(mark).splitlines() if uploads in line]
    assert len(sent) == 2, sent
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        f"admin:{peer.admin_password}",
        f"docker://{peer.host}/{project}/debian:1",
        f"oci:{tmp_path / 'back'}:1",
    )


def test_pull_links_a_layer_stored_here_without_fetching_it(
    api, dockyard, upstream, images
):
    project = dockyard.new_project("linked")
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    upstream.push(images, "debian-pkgs:1", "library/debian:1")
    registry_id = create_endpoint(api, f"http://{upstream.host}")
    first = run_policy(
        api,
        create_policy(
            api,
            src_registry={"id": registry_id},
            dest_namespace=project,
            filters=[{"type": "name", "value": "library/busybox"}],
        ),
    )
    layer = _shared_layer(images)
    fetched = upstream.requests("GET", f"/blobs/{layer}")

    second = run_policy(
        api,
        create_policy(
            api,
            src_registry={"id": registry_id},
            dest_namespace=project,
            filters=[{"type": "name", "value": "library/debian"}],
        ),
    )

    assert (first["status"], second["status"]) == ("Succeed", "Succeed")
    assert f"blob {layer} mounted from {project}/busybox" in task_logs(api, second)
    assert upstream.requests("GET", f"/blobs/{layer}") == fetched
    assert _raw(
        f"docker://{dockyard.host}/{project}/debian:1",
        f"admin:{dockyard.admin_password}",
    ) == images.manifest_bytes("debian-pkgs:1")


def test_destination_answering_5xx_on_upload_fails_after_bounded_retries(
    api, dockyard, upstream, images
):
    project = dockyard.new_project("broken")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    # The registry's disk fault: its upload directory for that repository
    # cannot be created (a file is in the way), so each upload answers 500.
    uploads = upstream.storage / "docker/registry/v2/repositories" / project
    (uploads / "busybox").mkdir(parents=True)
    (uploads / "busybox" / "_uploads").write_text("in the way")
    policy_id = create_policy(
        api,
        dest_registry={"id": create_endpoint(api, f"http://{upstream.host}")},
        filters=[{"type": "name", "value": f"{project}/**"}],
    )

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    log = task_logs(api, execution)
    assert "attempt 3/3 failed: UpstreamUnavailable" in log
    assert "upstream answered 500" in log
    assert "attempt 4" not in log


def test_destination_answering_413_fails_without_retrying(
    api, dockyard, upstream, images, tmp_path
):
    project = dockyard.new_project("large")
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    # nginx in front of the Go registry takes bodies up to 64 KiB: the
    # config passes, the megabyte layer is answered 413.
    balancer = Balancer(tmp_path / "nginx", [upstream.host], "64k").start()
    try:
        policy_id = create_policy(
            api,
            dest_registry={"id": create_endpoint(api, balancer.url)},
            filters=[{"type": "name", "value": f"{project}/**"}],
        )

        execution = run_policy(api, policy_id)
    finally:
        balancer.stop()

    assert execution["status"] == "Failed"
    log = task_logs(api, execution)
    assert "upstream answered 413" in log
    assert "not retried: the registry refuses something this large" in log
    assert "attempt 2/3" not in log
