"""How a proxy-cache project's repository names map to its upstream's."""

from datetime import UTC, datetime

import pytest

from dockyard.proxycache.service import Binding
from dockyard.registry.errors import NameUnknown
from dockyard.replication.registries import Registry


def _binding(kind):
    now = datetime.now(UTC)
    registry = Registry(
        1,
        "up",
        "",
        kind,
        "http://127.0.0.1:1",
        None,
        None,
        False,
        False,
        None,
        "healthy",
        now,
        now,
    )
    return Binding(7, "hub", registry, 300.0)


def test_upstream_name_on_docker_hub_single_name_gets_library():
    assert _binding("docker-hub").upstream_name("hub/busybox") == "library/busybox"


def test_upstream_name_on_docker_hub_with_namespace_is_kept():
    assert _binding("docker-hub").upstream_name("hub/bitnami/redis") == (
        "bitnami/redis"
    )


def test_upstream_name_on_other_registry_single_name_is_kept():
    assert _binding("docker-registry").upstream_name("hub/busybox") == "busybox"


def test_upstream_name_of_the_project_alone_is_name_unknown():
    with pytest.raises(NameUnknown):
        _binding("docker-hub").upstream_name("hub")
