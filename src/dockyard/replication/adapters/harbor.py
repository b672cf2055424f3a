"""Harbor, and Dockyard (which speaks Harbor's API): the `harbor` adapter,
and the one client of Harbor's management API (`/api/v2.0`) that every
part of replication uses for what the OCI API cannot say.

    projects()                    GET    /projects
    repositories(project)         GET    /projects/{p}/repositories
    labels_by_tag(repository)     GET    .../artifacts?with_label&with_tag
    delete_tag(repository, tag)   DELETE .../artifacts/{tag}/tags/{tag}
    project_exists(name)          HEAD   /projects?project_name=
    create_project(name, public)  POST   /projects
    project_is_public(name)       GET    /projects/{name}

Requests go through `ServiceAPI` (the endpoint's TLS settings, bounded
pages that follow `Link` headers without leaving the endpoint's host)
with one credential rule: the secret of an `oauth` credential as a bearer
token, any other credential as HTTP Basic. Failures are the
`UpstreamError`s of `client`; the project calls carry the message of
Harbor's error body.

The adapter lists repositories through this API rather than the catalog:
it is faster, works for callers that are not system administrators, and
shows exactly what the credentials may read. A name filter naming its
projects skips the project list. A server without that API (404) is
listed through its catalog instead.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from dockyard.replication.adapters.api import ServiceAPI
from dockyard.replication.adapters.base import AdapterInfo, GenericAdapter
from dockyard.replication.client import (
    Endpoint,
    RegistryClient,
    UpstreamNotFound,
    basic_authorization,
    status_error,
)
from dockyard.replication.patterns import specific_namespaces

API_PATH = "/api/v2.0"
_PAGE = {"page_size": "100"}


class Harbor(GenericAdapter):
    kind: ClassVar[str] = "harbor"
    info: ClassVar[AdapterInfo] = AdapterInfo(
        "Harbor or Dockyard",
        lists="Harbor API (`/api/v2.0/projects/<p>/repositories`)",
    )

    async def list_matching(
        self, endpoint: Endpoint, client: RegistryClient, pattern: str | None
    ) -> list[str]:
        async with HarborApi(endpoint) as api:
            try:
                projects = specific_namespaces(pattern or "") or await api.projects()
            except UpstreamNotFound:
                return await client.list_repositories()
            found: list[str] = []
            for project in projects:
                found.extend(await _project_repositories(api, project))
        return found


async def _project_repositories(api: HarborApi, project: str) -> list[str]:
    try:
        return await api.repositories(project)
    except UpstreamNotFound:
        # The filter named a project the source does not have (or hides).
        return []


class HarborApi(ServiceAPI):
    """One `harbor`-type endpoint's management API; `aclose()` it (or use
    it as an async context manager)."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint.url.rstrip("/") + API_PATH, endpoint)
        authorization = _authorization(endpoint)
        if authorization is not None:
            self.headers["authorization"] = authorization

    # Listing ----------------------------------------------------------

    async def projects(self) -> list[str]:
        """Every project these credentials may see."""
        return await self._listed_names("/projects")

    async def repositories(self, project: str) -> list[str]:
        """The repositories of `project` (full names); `UpstreamNotFound`
        if there is no such project, or it is hidden."""
        path = f"/projects/{quote(project, safe='')}/repositories"
        return await self._listed_names(path)

    async def labels_by_tag(self, repository: str) -> dict[str, frozenset[str]]:
        """The label names of the artifact each tag of `repository` is on."""
        params = {**_PAGE, "with_label": "true", "with_tag": "true"}
        found: dict[str, frozenset[str]] = {}
        async for page in self.pages(_artifacts_path(repository), params):
            for artifact in page:
                if not isinstance(artifact, dict):
                    continue
                names = frozenset(_names(artifact.get("labels")))
                for tag in _names(artifact.get("tags")):
                    found[tag] = names
        return found

    async def _listed_names(self, path: str) -> list[str]:
        found: list[str] = []
        async for page in self.pages(path, _PAGE):
            found.extend(_names(page))
        return found

    # Changes ----------------------------------------------------------

    async def delete_tag(self, repository: str, tag: str) -> bool:
        """Delete the tag alone; False if the repository has no such tag."""
        encoded = quote(tag, safe="")
        try:
            await self.delete(f"{_artifacts_path(repository)}/{encoded}/tags/{encoded}")
        except UpstreamNotFound:
            return False
        return True

    # Projects ---------------------------------------------------------

    async def project_exists(self, name: str) -> bool:
        query = {"project_name": name}
        response = await self.request("HEAD", "/projects", params=query)
        if response.status_code == 404:
            return False
        _check(response, f"looking up project {name}")
        return True

    async def create_project(self, name: str, public: bool) -> bool:
        """Create it; False if it exists already (409)."""
        body = {"project_name": name, "metadata": {"public": str(public).lower()}}
        response = await self.request("POST", "/projects", json=body)
        if response.status_code == 409:
            return False
        _check(response, f"creating project {name}")
        return True

    async def project_is_public(self, name: str) -> bool:
        """Whether the project says it is public; False when it cannot be
        read (missing, or hidden from these credentials)."""
        # Harbor reads an all-digit name as an id unless told otherwise.
        headers = {"x-is-resource-name": "true"}
        response = await self.request(
            "GET", f"/projects/{quote(name, safe='')}", headers=headers
        )
        if response.status_code >= 300:
            return False
        try:
            metadata = response.json().get("metadata") or {}
        except (ValueError, AttributeError):
            return False
        return str(metadata.get("public", "")).lower() == "true"


def _authorization(endpoint: Endpoint) -> str | None:
    """The one credential rule for Harbor's API."""
    if endpoint.credential_type == "oauth" and endpoint.access_secret:
        return f"Bearer {endpoint.access_secret}"
    if endpoint.has_credentials:
        return basic_authorization(endpoint)
    return None


def _check(response: httpx.Response, what: str) -> None:
    """Raise for an error answer, with the message of Harbor's error body."""
    status = response.status_code
    if status < 300:
        return
    message = f"{what} at the destination: it answered {status}"
    detail = _error_message(response)
    if detail:
        message = f"{message} ({detail})"
    raise status_error(response, message)


def _error_message(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(str(e.get("message", "")) for e in errors)[:300]
    except (ValueError, AttributeError, TypeError):
        return ""


def _artifacts_path(repository: str) -> str:
    # Harbor's API names a repository inside its project, with any `/` in
    # that name URL-encoded twice (`a/b` -> `a%252Fb`).
    project, _, name = repository.partition("/")
    encoded = quote(quote(name, safe=""), safe="")
    return f"/projects/{quote(project, safe='')}/repositories/{encoded}/artifacts"


def _names(items: Any) -> list[str]:
    """The `name` of each object in a list (projects, repositories, tags,
    labels); [] for anything else (Harbor sends null for none)."""
    if not isinstance(items, list):
        return []
    return [
        item["name"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]
