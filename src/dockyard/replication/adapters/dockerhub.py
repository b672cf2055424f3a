"""Docker Hub.

The endpoint URL is the Hub's site, https://hub.docker.com; images live at
https://registry-1.docker.io, whose challenge sends clients to
auth.docker.io for (anonymous or authenticated) tokens. Repositories are
listed per namespace through the Hub API:

    GET /v2/repositories/<namespace>/?page_size=100
        {"count": N, "next": "<url of the next page>" | null,
         "results": [{"namespace": "team", "name": "web", ...}, ...]}

authenticated, when the endpoint has credentials, with a token from
`POST /v2/auth/token {"identifier", "secret"}` (`access_token`, valid ten
minutes); an OAuth credential is such a token already. Anonymous pulls
are rate limited: a 429 is `UpstreamUnavailable` with the limit and reset
the Hub announced.

Any other URL (a mirror, a stand-in) holds both the API and `/v2/`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from dockyard.replication.adapters.api import ServiceAPI
from dockyard.replication.adapters.base import (
    AdapterInfo,
    NamespacedAdapter,
    host_of,
    qualified_names,
)
from dockyard.replication.client import Endpoint, RegistryClient, UpstreamInvalid

HUB_URL = "https://hub.docker.com"
REGISTRY_URL = "https://registry-1.docker.io"
# The Hub's own names; containerd says `?ns=docker.io`.
HUB_HOSTS = frozenset(
    {
        "hub.docker.com",
        "docker.io",
        "registry-1.docker.io",
        "index.docker.io",
        "registry.hub.docker.com",
    }
)
_PAGE_SIZE = "100"


class DockerHub(NamespacedAdapter):
    kind: ClassVar[str] = "docker-hub"
    info: ClassVar[AdapterInfo] = AdapterInfo(
        "Docker Hub",
        default_url=HUB_URL,
        fixed=True,
        lists="Hub API, per namespace (`/v2/repositories/<namespace>/`)",
    )

    def registry_endpoint(self, endpoint: Endpoint) -> Endpoint:
        if host_of(endpoint.url) in HUB_HOSTS:
            return replace(endpoint, url=REGISTRY_URL)
        return endpoint

    async def list_matching(
        self, endpoint: Endpoint, client: RegistryClient, pattern: str | None
    ) -> list[str]:
        found: list[str] = []
        async with ServiceAPI(_api_base(endpoint.url), endpoint) as api:
            await _log_in(api, endpoint)
            for namespace in self.namespaces(pattern):
                found.extend(await _namespace_repositories(api, namespace))
        return found


def _api_base(url: str) -> str:
    return HUB_URL if host_of(url) in HUB_HOSTS else url


async def _log_in(api: ServiceAPI, endpoint: Endpoint) -> None:
    if endpoint.credential_type == "oauth" and endpoint.access_secret:
        api.use_bearer(endpoint.access_secret)
        return
    if not endpoint.has_credentials:
        return
    body = await api.post_json(
        "/v2/auth/token",
        {"identifier": endpoint.access_key or "", "secret": endpoint.access_secret},
    )
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise UpstreamInvalid("Docker Hub login: no access_token in the answer")
    api.use_bearer(token)


async def _namespace_repositories(api: ServiceAPI, namespace: str) -> list[str]:
    path = f"/v2/repositories/{namespace}/"

    def following(response: Any, body: Any) -> tuple[str, dict[str, str]] | None:
        target = api.next_path(body.get("next") if isinstance(body, dict) else None)
        return None if target is None else (target, {})

    found: list[str] = []
    async for body in api.walk(path, {"page_size": _PAGE_SIZE}, following):
        items = body.get("results") if isinstance(body, dict) else None
        found.extend(qualified_names(items, namespace, path))
    return found
