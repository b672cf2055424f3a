"""GitHub Container Registry.

ghcr.io has no catalog (`/v2/_catalog` answers 404). Its images are
GitHub packages, listed per owner through GitHub's REST API at
https://api.github.com:

    GET /orgs/<owner>/packages?package_type=container&per_page=100
    GET /users/<owner>/packages?package_type=container&per_page=100
        [{"name": "web", "package_type": "container", ...}, ...]
        pages in `Link: <...>; rel="next"`

which needs a token with `read:packages` (the endpoint's secret, sent as a
bearer token). So a wildcard name filter must name the owner and the
endpoint must hold a token; a filter naming its repositories outright
needs neither. Public images pull with anonymous tokens from
ghcr.io/token, through the normal challenge.

Any other URL (a stand-in) holds both the API and `/v2/`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dockyard.replication.adapters.api import ServiceAPI
from dockyard.replication.adapters.base import (
    AdapterInfo,
    ListingUnsupported,
    NamespacedAdapter,
    host_of,
    names_outright,
)
from dockyard.replication.client import Endpoint, RegistryClient, UpstreamNotFound

GHCR_URL = "https://ghcr.io"
GITHUB_API_URL = "https://api.github.com"
_QUERY = {"package_type": "container", "per_page": "100"}


class GitHubCR(NamespacedAdapter):
    kind: ClassVar[str] = "github-ghcr"
    info: ClassVar[AdapterInfo] = AdapterInfo(
        "GitHub Container Registry",
        default_url=GHCR_URL,
        fixed=True,
        lists="GitHub packages API, per owner; needs a token (read:packages)",
    )

    def check_source_patterns(
        self, patterns: list[str], has_credentials: bool
    ) -> None:
        if names_outright(patterns):
            return
        super().check_source_patterns(patterns, has_credentials)
        if not has_credentials:
            raise ListingUnsupported(
                "listing GitHub Container Registry packages needs a token with "
                "read:packages in the endpoint's credential; without one, name "
                "the repositories outright (e.g. 'owner/{web,db}')"
            )

    async def list_matching(
        self, endpoint: Endpoint, client: RegistryClient, pattern: str | None
    ) -> list[str]:
        found: list[str] = []
        async with ServiceAPI(_api_base(endpoint.url), endpoint) as api:
            api.use_bearer(endpoint.access_secret or "")
            api.headers["accept"] = "application/vnd.github+json"
            for owner in self.namespaces(pattern):
                found.extend(await _owner_packages(api, owner))
        return found


def _api_base(url: str) -> str:
    return GITHUB_API_URL if host_of(url) == "ghcr.io" else url


async def _owner_packages(api: ServiceAPI, owner: str) -> list[str]:
    """An organisation's packages, or a user's when no such organisation."""
    try:
        return await _packages(api, f"/orgs/{owner}/packages", owner)
    except UpstreamNotFound:
        return await _packages(api, f"/users/{owner}/packages", owner)


async def _packages(api: ServiceAPI, path: str, owner: str) -> list[str]:
    found: list[str] = []
    async for page in api.pages(path, _QUERY):
        found.extend(_name(owner, item) for item in page if _is_image(item))
    return found


def _is_image(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("name"), str)


def _name(owner: str, item: dict[str, Any]) -> str:
    # Image names on ghcr.io are lower case; package names keep the case.
    return f"{owner}/{item['name']}".lower()
