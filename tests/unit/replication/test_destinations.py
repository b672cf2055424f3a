"""Destination projects, mount candidates and what is not retried (pure
rules; the copy runs between two in-memory sides, no registry)."""

import contextlib

import pytest

from dockyard.replication.client import (
    UpstreamDenied,
    UpstreamInvalid,
    UpstreamUnavailable,
)
from dockyard.replication.copier import ArtifactCopy
from dockyard.replication.destinations import _targets
from dockyard.replication.policies import Policy, PolicyFields
from dockyard.replication.runner import _not_retried_because

DIGEST = "sha256:" + "a" * 64


def _policy(namespace="", count=-1):
    fields = PolicyFields(
        name="p",
        dest_registry_id=1,
        dest_namespace=namespace,
        dest_namespace_replace_count=count,
    )
    return Policy(1, fields, None, None)  # type: ignore[arg-type]


def test_targets_without_namespace_keep_each_source_project():
    targets = _targets(_policy(), ["a/x", "b/y/z", "a/w"])

    assert targets == {"a": {"a"}, "b": {"b"}}


def test_targets_flattened_into_one_namespace_list_every_source_project():
    targets = _targets(_policy("mirror"), ["a/x", "b/y"])

    assert targets == {"mirror": {"a", "b"}}


def test_targets_skip_a_destination_name_without_project():
    assert _targets(_policy(), ["busybox"]) == {}


class _Source:
    @contextlib.asynccontextmanager
    async def open_blob(self, repository, digest):
        async def chunks():
            yield b"bytes"

        yield 5, chunks()


class _RefusingDestination:
    """Has no blob and refuses every mount; records what was asked."""

    def __init__(self):
        self.mounts = []
        self.uploads = []

    async def has_blob(self, repository, digest):
        return False

    async def mount_blob(self, repository, source, digest):
        self.mounts.append(source)
        return False

    async def put_blob(self, repository, digest, size, chunks):
        self.uploads.append((repository, b"".join([c async for c in chunks])))


async def _no_stop():
    return None


async def test_copy_blob_tries_a_bounded_number_of_mounts_then_sends_it():
    destination = _RefusingDestination()

    async def sources(src, dst, digest):
        return ["p/dst", "p/a", "p/a", "p/b", "p/c", "p/d"]

    copy = ArtifactCopy(
        _Source(), destination, lambda line: None, _no_stop, mount_sources=sources
    )

    await copy._copy_blob("p/src", "p/dst", DIGEST)

    assert destination.mounts == ["p/a", "p/b", "p/c"]
    assert destination.uploads == [("p/dst", b"bytes")]


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (UpstreamDenied("refused", 401), False),
        (UpstreamDenied("forbidden", 403), False),
        (UpstreamInvalid("too large", 413), False),
        (UpstreamUnavailable("down", 503), True),
        (UpstreamInvalid("bad answer", 400), True),
    ],
)
def test_not_retried_because_names_only_failures_a_retry_cannot_mend(error, retried):
    assert (_not_retried_because(error) is None) is retried
