"""GitLab's container registry (gitlab.com or one's own GitLab).

The endpoint URL is the registry's (e.g. https://registry.gitlab.com). Its
`/v2/` challenge names GitLab's token service, `<gitlab>/jwt/auth`, which
takes the endpoint's user and personal access token as HTTP Basic; the
same host serves GitLab's REST API, where repositories are listed:

    GET /api/v4/projects?membership=true&per_page=100[&search=<project>]
        [{"id": 7, "path_with_namespace": "group/app",
          "container_registry_enabled": true, ...}]
    GET /api/v4/projects/<id>/registry/repositories?per_page=100
        [{"id": 3, "path": "group/app/web", "location": ...}]
    pages: `X-Next-Page: <n>` (empty on the last page)

authenticated with `PRIVATE-TOKEN: <secret>` (an `oauth` secret is sent
as a bearer token instead). Without credentials the name filter must name
the project (its second component), which is searched for among public
projects: the list of every public project is far too long.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

from dockyard.replication.adapters.api import ServiceAPI
from dockyard.replication.adapters.base import (
    AdapterInfo,
    GenericAdapter,
    ListingUnsupported,
    listing_pattern,
    names_outright,
)
from dockyard.replication.client import Endpoint, RegistryClient, UpstreamInvalid
from dockyard.replication.patterns import specific_names

_PER_PAGE = "100"


class GitLab(GenericAdapter):
    kind: ClassVar[str] = "gitlab"
    info: ClassVar[AdapterInfo] = AdapterInfo(
        "GitLab container registry",
        lists="GitLab API (`/api/v4/projects`, then each project's "
        "`/registry/repositories`)",
    )

    def check_source_patterns(
        self, patterns: list[str], has_credentials: bool
    ) -> None:
        if names_outright(patterns) or has_credentials:
            return
        if _project_search(listing_pattern(patterns)) is None:
            raise ListingUnsupported(
                "listing a GitLab registry without credentials needs a name "
                "filter that names the project (e.g. 'group/app/*')"
            )

    async def list_matching(
        self, endpoint: Endpoint, client: RegistryClient, pattern: str | None
    ) -> list[str]:
        found: list[str] = []
        async with ServiceAPI(await _api_base(client), endpoint) as api:
            _authenticate(api, endpoint)
            for project in await _projects(api, endpoint, pattern):
                found.extend(await _project_repositories(api, project))
        return found


async def _api_base(client: RegistryClient) -> str:
    """GitLab's own URL: the host of the token realm `/v2/` names."""
    realm = (await client.challenge()).get("realm", "")
    parts = urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UpstreamInvalid("/v2/ names no token realm, so no GitLab API")
    return f"{parts.scheme}://{parts.netloc}"


def _authenticate(api: ServiceAPI, endpoint: Endpoint) -> None:
    if not endpoint.access_secret:
        return
    if endpoint.credential_type == "oauth":
        api.use_bearer(endpoint.access_secret)
    else:
        api.headers["private-token"] = endpoint.access_secret


async def _projects(
    api: ServiceAPI, endpoint: Endpoint, pattern: str | None
) -> list[dict[str, Any]]:
    query = {"per_page": _PER_PAGE}
    if endpoint.has_credentials:
        query["membership"] = "true"
    search = _project_search(pattern)
    if search is not None:
        query.update(search=search, search_namespaces="true")
    found: list[dict[str, Any]] = []
    async for page in api.pages("/api/v4/projects", query):
        found.extend(p for p in page if _has_registry(p))
    return found


def _project_search(pattern: str | None) -> str | None:
    """The project a `group/project/...` filter names without wildcards."""
    parts = (pattern or "").split("/")
    if len(parts) < 2:
        return None
    names = specific_names(parts[1])
    return names[0] if names is not None and len(names) == 1 else None


def _has_registry(project: Any) -> bool:
    if not isinstance(project, dict) or not isinstance(project.get("id"), int):
        return False
    # Older GitLab says `container_registry_enabled`, newer an access level.
    level = project.get("container_registry_access_level")
    return project.get("container_registry_enabled") is not False and (
        level != "disabled"
    )


async def _project_repositories(api: ServiceAPI, project: dict[str, Any]) -> list[str]:
    path = f"/api/v4/projects/{project['id']}/registry/repositories"
    found: list[str] = []
    async for page in api.pages(path, {"per_page": _PER_PAGE}):
        found.extend(
            item["path"].lower()
            for item in page
            if isinstance(item, dict) and isinstance(item.get("path"), str)
        )
    return found
