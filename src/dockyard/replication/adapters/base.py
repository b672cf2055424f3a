"""The adapter contract, and the generic adapter every other one builds on.

An adapter is stateless: it is handed the endpoint as configured (the URL
and credentials the administrator typed) and, where it needs the registry
protocol, a `RegistryClient` built on `registry_endpoint(...)` of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from dockyard.replication.client import (
    Endpoint,
    RegistryClient,
    UpstreamDenied,
    UpstreamInvalid,
)
from dockyard.replication.patterns import specific_names, specific_namespaces

# Harbor's names for how the endpoint URL and the credential are entered.
STANDARD_ENDPOINT = "EndpointPatternTypeStandard"
FIXED_ENDPOINT = "EndpointPatternTypeFix"
STANDARD_KEY = "AccessKeyTypeStandard"
STANDARD_SECRET = "AccessSecretTypePass"
# Remote registries are sources of pull-based policies, which run by hand
# or on a schedule; event-based triggers need a push-based policy.
SOURCE_TRIGGERS = ("manual", "scheduled")


class AdapterError(Exception):
    """An endpoint setting or a policy does not fit the service."""


class EndpointInvalid(AdapterError):
    """The endpoint URL does not fit the adapter (missing, malformed)."""


class ListingUnsupported(AdapterError):
    """The service cannot list the repositories a name filter asks for."""


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """What `/replication/adapterinfos` and `/registries/{id}/info` say."""

    description: str
    # The URL an empty one stands for; with `fixed`, the only sensible one.
    default_url: str | None = None
    fixed: bool = False
    # Harbor's credential pattern, when the service takes a special one.
    credential_pattern: dict[str, str] | None = None
    lists: str = "catalog (`/v2/_catalog`)"
    triggers: tuple[str, ...] = field(default=SOURCE_TRIGGERS)

    def endpoint_pattern(self) -> dict[str, Any]:
        endpoints = []
        if self.default_url:
            host = urlsplit(self.default_url).netloc
            endpoints.append({"key": host, "value": self.default_url})
        kind = FIXED_ENDPOINT if self.fixed else STANDARD_ENDPOINT
        return {"endpoint_type": kind, "endpoints": endpoints}


class Adapter(Protocol):
    kind: ClassVar[str]
    info: ClassVar[AdapterInfo]

    def checked_url(self, url: str) -> str:
        """The URL to store for `url` (the default for an empty one);
        `EndpointInvalid` if it cannot be used."""

    def registry_endpoint(self, endpoint: Endpoint) -> Endpoint:
        """Where `/v2/` lives and which credentials it takes."""

    def check_source_patterns(
        self, patterns: list[str], has_credentials: bool
    ) -> None:
        """`ListingUnsupported` if a pull-based policy with these name
        filters (`matches` patterns) could never list its repositories."""

    async def list_repositories(
        self, endpoint: Endpoint, client: RegistryClient, patterns: list[str]
    ) -> list[str]:
        """Candidate repositories for these name filters: a superset of the
        repositories they select (the caller applies the filters)."""

    async def check_health(self, endpoint: Endpoint, client: RegistryClient) -> None:
        """Return if the endpoint answers as a registry and takes its
        credentials; raise `UpstreamError` if not."""


def listing_pattern(patterns: list[str]) -> str | None:
    """The name filter to list by: one that names its repositories, else
    one that names its namespaces, else any. Every filter must pass, so
    listing by one of them finds all the others can select."""
    for test in (specific_names, specific_namespaces):
        for pattern in patterns:
            if test(pattern) is not None:
                return pattern
    return patterns[0] if patterns else None


class GenericAdapter:
    """Any OCI / Distribution registry: lists through `/v2/_catalog`."""

    kind: ClassVar[str] = "docker-registry"
    info: ClassVar[AdapterInfo] = AdapterInfo(
        "any OCI / Distribution registry (generic adapter)"
    )

    def checked_url(self, url: str) -> str:
        url = url.strip()
        if url:
            return url
        if self.info.default_url is None:
            raise EndpointInvalid(f"a {self.kind} endpoint needs its url")
        return self.info.default_url

    def registry_endpoint(self, endpoint: Endpoint) -> Endpoint:
        return endpoint

    def check_source_patterns(
        self, patterns: list[str], has_credentials: bool
    ) -> None:
        return None

    async def list_repositories(
        self, endpoint: Endpoint, client: RegistryClient, patterns: list[str]
    ) -> list[str]:
        pattern = listing_pattern(patterns)
        names = specific_names(pattern) if pattern else None
        if names is not None:
            # Named outright: whether each exists shows when its tags are read.
            return names
        self.check_source_patterns(patterns, endpoint.has_credentials)
        return await self.list_matching(endpoint, client, pattern)

    async def list_matching(
        self, endpoint: Endpoint, client: RegistryClient, pattern: str | None
    ) -> list[str]:
        return await client.list_repositories()

    async def check_health(self, endpoint: Endpoint, client: RegistryClient) -> None:
        try:
            await client.ping()
        except UpstreamDenied:
            if endpoint.has_credentials:
                raise
            # Without credentials, a registry that challenges is there and
            # working; what it lets anonymous callers read shows later.
            if not await client.challenge():
                raise


class NamespacedAdapter(GenericAdapter):
    """A service without a catalog that lists one namespace at a time: a
    wildcard name filter must name its namespaces (`team/*`)."""

    def check_source_patterns(
        self, patterns: list[str], has_credentials: bool
    ) -> None:
        if names_outright(patterns):
            return
        pattern = listing_pattern(patterns)
        if pattern is None or specific_namespaces(pattern) is None:
            raise ListingUnsupported(
                f"{self.info.description} has no catalog: a name filter with "
                "wildcards must name its namespace (e.g. 'team/*')"
            )

    def namespaces(self, pattern: str | None) -> list[str]:
        found = specific_namespaces(pattern or "")
        if found is None:
            self.check_source_patterns([pattern or "**"], False)
            return []
        return found


def names_outright(patterns: list[str]) -> bool:
    """Whether the name filters name their repositories (no listing)."""
    pattern = listing_pattern(patterns)
    return pattern is not None and specific_names(pattern) is not None


def qualified_names(items: Any, namespace: str, what: str) -> list[str]:
    """`namespace/name` of each `{"namespace", "name"}` object in `items`
    (Docker Hub and Quay list repositories that way)."""
    if not isinstance(items, list):
        raise UpstreamInvalid(f"{what}: no list of repositories")
    return [
        f"{item.get('namespace') or namespace}/{item['name']}"
        for item in items
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()
