"""Registry adapters: what differs between the services an endpoint names.

Every endpoint speaks the distribution API for content (`RegistryClient`).
What differs is around it, and each adapter captures its service's facts:

    type             URL (empty: default)     lists repositories through
    docker-registry  required                 /v2/_catalog
    harbor           required                 /api/v2.0 projects -> repositories
    docker-hub       https://hub.docker.com   Hub API per namespace
    github-ghcr      https://ghcr.io          GitHub packages API per owner
    quay             https://quay.io          /api/v1/repository per namespace
    gitlab           required                 /api/v4 projects -> repositories

An adapter maps the configured endpoint to where `/v2/` lives and which
credential it takes (`registry_endpoint`: Docker Hub's images are on
registry-1.docker.io, Quay's JSON credential splits in two), lists the
candidate repositories of a pull-based policy, refuses name filters its
service cannot list (`ListingUnsupported`), and checks health. Only the
real public hosts map to separate API hosts; any other URL (a mirror, a
test's stand-in) serves the API and `/v2/` itself.

    AdapterError
      EndpointInvalid      the URL does not fit the type
      ListingUnsupported   a name filter the service cannot list
"""

from __future__ import annotations

from dockyard.replication.adapters.base import (
    Adapter,
    AdapterError,
    AdapterInfo,
    EndpointInvalid,
    GenericAdapter,
    ListingUnsupported,
)
from dockyard.replication.adapters.dockerhub import HUB_HOSTS, DockerHub
from dockyard.replication.adapters.ghcr import GitHubCR
from dockyard.replication.adapters.gitlab import GitLab
from dockyard.replication.adapters.harbor import Harbor
from dockyard.replication.adapters.quay import Quay

ADAPTERS: dict[str, Adapter] = {
    adapter.kind: adapter
    for adapter in (
        Harbor(),
        GenericAdapter(),
        DockerHub(),
        GitHubCR(),
        Quay(),
        GitLab(),
    )
}
DOCKER_HUB = DockerHub.kind


def adapter_for(kind: str) -> Adapter:
    """The adapter of an endpoint type; `EndpointInvalid` if unknown."""
    try:
        return ADAPTERS[kind]
    except KeyError:
        known = ", ".join(ADAPTERS)
        raise EndpointInvalid(f"unknown type {kind!r}; known types: {known}") from None


__all__ = [
    "ADAPTERS",
    "DOCKER_HUB",
    "HUB_HOSTS",
    "Adapter",
    "AdapterError",
    "AdapterInfo",
    "EndpointInvalid",
    "ListingUnsupported",
    "adapter_for",
]
