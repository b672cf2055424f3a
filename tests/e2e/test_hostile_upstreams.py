"""Proxy-cache projects and pull-based replication against a hostile
registry: pages that loop, names no registry may hold, answers of the wrong
shape, endless manifests and token lifetimes, redirects to another host.

The hostile registry is `HostileRegistry` (tests/e2e/hostile.py), a
stand-in: no real registry misbehaves on purpose. Dockyard is a real server
of this module's own (`server` in tests/e2e/conftest.py, which waits 3 s for
an upstream), so that a run stuck on a hostile upstream cannot hold up the
server other tests share.
"""

import hashlib
import json
import re
import secrets
import threading

import httpx
import pytest

from tests.conftest import kill_tree
from tests.e2e.conftest import create_proxy_project
from tests.e2e.hostile import Answer, HostileRegistry, Seen
from tests.e2e.replication_api import (
    admin_api,
    create_endpoint,
    create_policy,
    project_repositories,
    run_policy,
    task_logs,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_MANIFEST_PATH = re.compile(r"/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)")
_BLOB_PATH = re.compile(r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)")
_TAGS_PATH = re.compile(r"/v2/(?P<name>.+)/tags/list")


@pytest.fixture
def api(server):
    """This module's own Dockyard's API, not the shared one's."""
    with admin_api(server) as http:
        yield http


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Image:
    """A one-layer image a hostile registry serves for any repository."""

    def __init__(self) -> None:
        self.config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        self.layer = secrets.token_bytes(64)
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": _descriptor(
                    "application/vnd.oci.image.config.v1+json", self.config
                ),
                "layers": [
                    _descriptor(
                        "application/vnd.oci.image.layer.v1.tar+gzip", self.layer
                    )
                ],
            }
        ).encode()
        self.blobs = {_digest(b): b for b in (self.config, self.layer)}

    def answer(self, seen: Seen) -> Answer:
        """Manifests (any tag), blobs and a one-tag list, of any name."""
        path = seen.target.split("?", 1)[0]
        if _MANIFEST_PATH.fullmatch(path):
            return Answer(
                200,
                {"content-type": OCI_MANIFEST, "docker-content-digest": _digest(
                    self.manifest
                )},
                self.manifest,
            )
        found = _BLOB_PATH.fullmatch(path)
        if found and found["digest"] in self.blobs:
            return Answer(200, {}, self.blobs[found["digest"]])
        if _TAGS_PATH.fullmatch(path):
            name = _TAGS_PATH.fullmatch(path)["name"]
            return _json({"name": name, "tags": ["1"]})
        return Answer(404, {}, b"")


def _descriptor(media_type: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}


def _json(body: object, headers: dict[str, str] | None = None) -> Answer:
    return Answer(
        200,
        {"content-type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


def _pull_policy(api, url: str, project: str, **fields) -> int:
    """A pull-based policy from a `docker-registry` endpoint at `url`."""
    return create_policy(
        api,
        src_registry={"id": create_endpoint(api, url)},
        dest_namespace=project,
        dest_namespace_replace_count=1,
        **fields,
    )


# Pull-based replication ----------------------------------------------------


def test_pull_from_a_catalog_whose_next_page_is_itself_fails_the_plan(
    api, server
):
    project = server.new_project("loop")
    looping = _json(
        {"repositories": ["team/a"]},
        {"link": '</v2/_catalog?n=1000&last=team/a>; rel="next"'},
    )

    with HostileRegistry({"/v2/_catalog": looping}) as hostile:
        policy_id = _pull_policy(api, hostile.url, project)
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    assert "pages" in task_logs(api, execution)


def test_pull_from_a_tag_list_whose_next_page_is_itself_fails_the_plan(
    api, server
):
    project = server.new_project("tagloop")
    looping = _json(
        {"name": "team/a", "tags": ["1"]},
        {"link": '</v2/team/a/tags/list?n=1000&last=1>; rel="next"'},
    )

    with HostileRegistry({"/v2/team/a/tags/list": looping}) as hostile:
        filters = [{"type": "name", "value": "team/a"}]
        policy_id = _pull_policy(api, hostile.url, project, filters=filters)
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    assert "pages" in task_logs(api, execution)


def test_pull_skips_catalog_names_no_registry_may_hold(api, server):
    project = server.new_project("names")
    image = Image()
    names = ["team/ok", "team/UPPER", "team/a..b", "team/" + "x" * 300, "team/-x"]
    catalog = _json({"repositories": names})

    with HostileRegistry({"/v2/_catalog": catalog}, image.answer) as hostile:
        execution = run_policy(api, _pull_policy(api, hostile.url, project))

    assert execution["status"] == "Succeed", task_logs(api, execution)
    assert project_repositories(api, project) == {f"{project}/ok"}
    asked = {
        r.target.split("/")[3]
        for r in hostile.requests
        if r.target.startswith("/v2/team/")
    }
    assert asked == {"ok"}


def test_policy_whose_dest_namespace_is_no_name_is_refused(api):
    with HostileRegistry() as hostile:
        registry_id = create_endpoint(api, hostile.url)

    refused = [
        api.post(
            "/replication/policies",
            json={
                "name": f"ns-{secrets.token_hex(4)}",
                "dest_registry": {"id": registry_id},
                "dest_namespace": namespace,
            },
        ).status_code
        for namespace in ("../escape", "Upper", "a b", "x" * 300, "a//b")
    ]

    assert refused == [400] * 5


# Proxy cache ---------------------------------------------------------------


def test_proxy_manifest_larger_than_the_limit_is_not_read_to_its_end(
    client, server
):
    size = 256 * 1024 * 1024
    piece = b" " * (1024 * 1024)
    endless = Answer(
        200,
        {"content-type": OCI_MANIFEST, "content-length": str(size)},
        (piece for _ in range(size // len(piece))),
    )

    with HostileRegistry({"/v2/team/big/manifests/1": endless}) as hostile:
        project, _ = create_proxy_project(server, hostile.host)
        answer = client.get(
            f"/v2/{project}/team/big/manifests/1", headers={"accept": OCI_MANIFEST}
        )
        sent = hostile.seen("/v2/team/big/manifests/1")[0].sent

    assert answer.status_code >= 400
    assert sent < size // 4


def test_proxy_referrers_answer_that_is_not_an_index_gives_no_500(client, server):
    digest = _digest(b"subject")
    not_an_index = _json(["not", "an", "index"])

    with HostileRegistry(
        {f"/v2/team/a/referrers/{digest}": not_an_index}
    ) as hostile:
        project, _ = create_proxy_project(server, hostile.host)
        answer = client.get(f"/v2/{project}/team/a/referrers/{digest}")

    assert answer.status_code == 200, answer.text
    assert answer.json()["manifests"] == []


def test_proxy_token_with_an_endless_lifetime_is_used(client, server):
    image = Image()
    token = secrets.token_hex(8)

    def manifest(seen: Seen) -> Answer:
        if seen.headers.get("authorization") != f"Bearer {token}":
            realm = f'Bearer realm="http://{hostile.host}/token",service="x"'
            return Answer(401, {"www-authenticate": realm}, b"")
        return image.answer(seen)

    endless = Answer(
        200,
        {"content-type": "application/json"},
        f'{{"token": "{token}", "expires_in": Infinity}}'.encode(),
    )
    with HostileRegistry(
        {"/v2/team/a/manifests/1": manifest, "/token": endless}
    ) as hostile:
        project, _ = create_proxy_project(server, hostile.host)
        answer = client.get(
            f"/v2/{project}/team/a/manifests/1", headers={"accept": OCI_MANIFEST}
        )

    assert answer.status_code == 200, answer.text
    assert answer.content == image.manifest


def test_proxy_blob_redirected_to_another_host_carries_no_token(client, server):
    data = secrets.token_bytes(100)
    digest = _digest(data)
    token = secrets.token_hex(8)
    path = f"/v2/team/a/blobs/{digest}"

    with HostileRegistry({f"/elsewhere/{digest}": Answer(200, {}, data)}) as other:

        def blob(seen: Seen) -> Answer:
            if seen.headers.get("authorization") != f"Bearer {token}":
                realm = f'Bearer realm="http://{hostile.host}/token",service="x"'
                return Answer(401, {"www-authenticate": realm}, b"")
            return Answer(307, {"location": f"{other.url}/elsewhere/{digest}"})

        with HostileRegistry(
            {path: blob, "/token": _json({"token": token})}
        ) as hostile:
            project, _ = create_proxy_project(server, hostile.host)
            answer = client.get(f"/v2/{project}/team/a/blobs/{digest}")

    assert answer.content == data
    assert [s.headers.get("authorization") for s in other.requests] == [None]


# Writes into a proxy-cache project ------------------------------------------


def _push_image(client, repository: str, image: Image, tag: str) -> str:
    """Push `image` to `repository` here over /v2; its manifest digest."""
    for digest, data in image.blobs.items():
        pushed = client.post(
            f"/v2/{repository}/blobs/uploads/", params={"digest": digest}, content=data
        )
        assert pushed.status_code == 201, pushed.text
    put = client.put(
        f"/v2/{repository}/manifests/{tag}",
        content=image.manifest,
        headers={"content-type": OCI_MANIFEST},
    )
    assert put.status_code == 201, put.text
    return _digest(image.manifest)


def test_api_copy_into_a_proxy_project_is_refused(api, client, server):
    elsewhere = server.new_project("plain")
    digest = _push_image(client, f"{elsewhere}/evil", Image(), "1")

    with HostileRegistry() as hostile:
        project, _ = create_proxy_project(server, hostile.host)
        copied = api.post(
            f"/projects/{project}/repositories/team%252Fa/artifacts",
            params={"from": f"{elsewhere}/evil@{digest}"},
        )
        served = client.get(f"/v2/{project}/team/a/manifests/{digest}")

    assert copied.status_code == 403, copied.text
    assert served.status_code == 404


def test_api_tag_added_in_a_proxy_project_is_refused(api, client, server):
    image = Image()
    digest = _digest(image.manifest)

    with HostileRegistry(fallback=image.answer) as hostile:
        project, _ = create_proxy_project(server, hostile.host)
        pulled = client.get(
            f"/v2/{project}/team/a/manifests/1", headers={"accept": OCI_MANIFEST}
        )
        assert pulled.status_code == 200, pulled.text
        tagged = api.post(
            f"/projects/{project}/repositories/team%252Fa/artifacts/{digest}/tags",
            json={"name": "poisoned"},
        )

    assert tagged.status_code == 403, tagged.text
    assert client.get(f"/v2/{project}/team/a/tags/list").json()["tags"] == ["1"]


_ODD_RANGES = [
    "bytes=0-99999999999999999999999999",
    "bytes=-99999999999999999999999999",
    "bytes=99999999999999999999999999-",
    "bytes=5-2",
    "bytes=0-1,3-4",
    "bytes=-0",
    "bytes=--1",
    "bytes=0-0,-1",
    "bytes=abc",
    "items=0-1",
    "bytes=" + "9" * 5000 + "-",
]


@pytest.mark.parametrize("cached", [False, True], ids=["miss", "hit"])
def test_proxy_blob_odd_ranges_get_no_500(client, server, cached):
    data = secrets.token_bytes(1000)
    digest = _digest(data)
    path = f"/v2/team/a/blobs/{digest}"

    with HostileRegistry({path: Answer(200, {}, data)}) as hostile:
        project, _ = create_proxy_project(server, hostile.host)
        url = f"/v2/{project}/team/a/blobs/{digest}"
        if cached:
            assert client.get(url).content == data
        statuses = {
            r: client.get(url, headers={"range": r}).status_code for r in _ODD_RANGES
        }

    assert {r: s for r, s in statuses.items() if s >= 500} == {}


def test_pull_ignores_referrer_descriptors_without_a_digest(api, server):
    project = server.new_project("refs")
    image = Image()
    digest = _digest(image.manifest)
    broken = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "size": 1},
                {"mediaType": OCI_MANIFEST, "digest": 5, "size": 1},
                {"mediaType": OCI_MANIFEST, "digest": "../../../_catalog", "size": 1},
            ],
        }
    )

    with HostileRegistry(
        {f"/v2/team/a/referrers/{digest}": broken}, image.answer
    ) as hostile:
        filters = [{"type": "name", "value": "team/a"}]
        policy_id = _pull_policy(api, hostile.url, project, filters=filters)
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    assert project_repositories(api, project) == {f"{project}/a"}


def test_pull_of_a_manifest_naming_an_invalid_digest_fails_saying_so(api, server):
    project = server.new_project("baddigest")
    image = Image()
    document = json.loads(image.manifest)
    document["layers"][0]["digest"] = "../../../_catalog"
    image.manifest = json.dumps(document).encode()

    with HostileRegistry(fallback=image.answer) as hostile:
        filters = [{"type": "name", "value": "team/a"}]
        policy_id = _pull_policy(api, hostile.url, project, filters=filters)
        execution = run_policy(api, policy_id)
        asked = [r.target for r in hostile.requests]

    assert execution["status"] == "Failed"
    assert "invalid digest" in task_logs(api, execution)
    assert not [t for t in asked if "_catalog" in t]


# Push-based replication ----------------------------------------------------


def _push_policy(api, url: str, repository: str) -> int:
    return create_policy(
        api,
        dest_registry={"id": create_endpoint(api, url)},
        filters=[{"type": "name", "value": repository}],
    )


def _upload_at(location: str):
    """A destination that has nothing and answers uploads with `location`."""

    def answer(seen: Seen) -> Answer:
        if seen.method == "POST" and seen.target.endswith("/blobs/uploads/"):
            return Answer(202, {"location": location})
        if seen.method in ("GET", "HEAD"):
            return Answer(404)
        return Answer(400)

    return answer


def test_push_to_an_upload_location_that_is_no_url_fails_saying_so(
    api, client, server
):
    project = server.new_project("badloc")
    _push_image(client, f"{project}/app", Image(), "1")

    with HostileRegistry(fallback=_upload_at("uploads/x")) as hostile:
        policy_id = _push_policy(api, hostile.url, f"{project}/app")
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    assert "not a valid URL" in task_logs(api, execution)


# A crash in the middle of a fill --------------------------------------------


def test_proxy_fill_killed_midway_leaves_fsck_clean_and_the_next_pull_whole(
    start_dockyard,
):
    data = secrets.token_bytes(4 * 1024 * 1024)
    digest = _digest(data)
    half_sent, go_on = threading.Event(), threading.Event()

    def slow(seen: Seen) -> Answer:
        def pieces():
            yield data[: len(data) // 2]
            half_sent.set()
            go_on.wait(30)
            yield data[len(data) // 2 :]

        return Answer(200, {"content-length": str(len(data))}, pieces())

    with HostileRegistry({f"/v2/team/a/blobs/{digest}": slow}) as hostile:
        server = start_dockyard()
        project, _ = create_proxy_project(server, hostile.host)
        url = f"{server.url}/v2/{project}/team/a/blobs/{digest}"
        auth = ("admin", server.admin_password)
        with httpx.stream("GET", url, auth=auth, timeout=60) as first:
            assert first.status_code == 200
            assert half_sent.wait(30)
            kill_tree(server)
        go_on.set()
        server.stop(keep_stores=True)
        server.start()
        checked = server.fsck("--json")
        again = httpx.get(url, auth=auth, timeout=60)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert again.content == data


def test_pull_into_a_proxy_project_fails_and_stores_nothing_there(api, server):
    image = Image()

    with HostileRegistry(fallback=image.answer) as hostile:
        proxy, _ = create_proxy_project(server, hostile.host)
        filters = [{"type": "name", "value": "team/a"}]
        policy_id = _pull_policy(api, hostile.url, proxy, filters=filters)
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    assert project_repositories(api, proxy) == set()


def test_proxy_head_of_a_blob_the_upstream_gives_no_length_is_not_size_zero(
    client, server
):
    data = secrets.token_bytes(100)
    digest = _digest(data)
    lengthless = Answer(200, {}, iter([data]))  # no Content-Length sent

    with HostileRegistry({f"/v2/team/a/blobs/{digest}": lengthless}) as hostile:
        project, _ = create_proxy_project(server, hostile.host)
        head = client.head(f"/v2/{project}/team/a/blobs/{digest}")

    assert head.headers.get("content-length") != "0"


def test_proxy_range_the_upstream_answers_with_other_bytes_is_not_relayed(
    client, server
):
    data = secrets.token_bytes(1000)
    digest = _digest(data)
    other_range = Answer(
        206, {"content-range": "bytes 0-9/1000", "content-length": "10"}, data[:10]
    )

    with HostileRegistry({f"/v2/team/a/blobs/{digest}": other_range}) as hostile:
        project, _ = create_proxy_project(server, hostile.host)
        ranged = client.get(
            f"/v2/{project}/team/a/blobs/{digest}", headers={"range": "bytes=100-109"}
        )

    assert ranged.status_code == 503
    assert ranged.json()["errors"][0]["code"] == "UNAVAILABLE"


class EndlessReferrers(Image):
    """An image whose every manifest has a referrer of its own, made up
    when asked for: a chain with no end."""

    def __init__(self) -> None:
        super().__init__()
        self.made: dict[str, bytes] = {}
        empty = b"{}"
        self.blobs[_digest(empty)] = empty
        self.empty = _descriptor("application/vnd.oci.empty.v1+json", empty)

    def answer(self, seen: Seen) -> Answer:
        path = seen.target.split("?", 1)[0]
        name, _, rest = path.rpartition("/referrers/")
        if name:
            return _json(self._referrers(rest))
        found = _MANIFEST_PATH.fullmatch(path)
        if found and found["reference"] in self.made:
            content = self.made[found["reference"]]
            return Answer(200, {"content-type": OCI_MANIFEST}, content)
        return super().answer(seen)

    def _referrers(self, subject: str) -> dict:
        referrer = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.sig",
                "config": self.empty,
                "layers": [self.empty],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
            }
        ).encode()
        self.made[_digest(referrer)] = referrer
        return {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [_descriptor(OCI_MANIFEST, referrer)],
        }


def test_pull_of_an_endless_referrer_chain_stops_at_a_depth(api, server):
    project = server.new_project("chain")
    image = EndlessReferrers()

    with HostileRegistry(fallback=image.answer) as hostile:
        filters = [{"type": "name", "value": "team/a"}]
        policy_id = _pull_policy(api, hostile.url, project, filters=filters)
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)[-3000:]
    assert len(image.made) < 100
