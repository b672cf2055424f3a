"""Stand-ins for Docker Hub, Quay, GitLab and GitHub, which cannot be
reached from the test machines.

Each stand-in is a real HTTP server on 127.0.0.1 (port 0) in a thread. It
serves the small part of its service's public API that Dockyard's adapter
calls (repository listings, logins, token services) and forwards the
registry protocol (`/v2/...`) to a REAL registry, Debian's docker-registry,
so manifests and blobs are real. What it lists comes from that registry's
catalog, grouped the way the service groups repositories. Pages are kept
small (`page_size`) so that following them is tested.

Only what the adapters use is there; the shapes follow each service's
public API documentation.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

_FORWARDED = ("content-type", "docker-content-digest", "content-length", "link")


class StandIn:
    """One service in front of the registry at `upstream` (`host:port`).

    `token`: the bearer token its API (and, with `registry_token`, its
    `/v2/`) demands; `login`: (user, password) its login or token service
    takes. `requests` records `METHOD path?query` of every request.
    """

    def __init__(
        self,
        service: str,
        upstream: str,
        token: str | None = None,
        login: tuple[str, str] | None = None,
        page_size: int = 1,
        registry_token: bool = False,
    ) -> None:
        self.service = service
        self.upstream = upstream
        self.token = token
        self.login = login
        self.page_size = page_size
        self.registry_token = registry_token
        self.rate_limited = False
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def catalog(self) -> list[str]:
        response = httpx.get(f"http://{self.upstream}/v2/_catalog?n=1000", timeout=10)
        response.raise_for_status()
        return sorted(response.json()["repositories"])

    def page(self, items: list[Any], number: int) -> tuple[list[Any], bool]:
        """Page `number` (from 1) of `items`, and whether more follow."""
        start = (number - 1) * self.page_size
        end = start + self.page_size
        return items[start:end], end < len(items)


def _handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    routes = {
        "hub": _hub,
        "quay": _quay,
        "gitlab": _gitlab,
        "github": _github,
    }

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self._serve()

        def do_HEAD(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            stand_in.requests.append(f"{self.command} {self.path}")
            request = _Request(self, stand_in)
            if not routes[stand_in.service](request):
                _forward(request)

    return Handler


class _Request:
    def __init__(self, handler: BaseHTTPRequestHandler, stand_in: StandIn) -> None:
        self.handler = handler
        self.stand_in = stand_in
        parts = urlsplit(handler.path)
        self.path = parts.path
        self.query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.method = handler.command
        self.authorization = handler.headers.get("authorization", "")

    def body(self) -> Any:
        length = int(self.handler.headers.get("content-length") or 0)
        return json.loads(self.handler.rfile.read(length) or b"null")

    def bearer_ok(self) -> bool:
        token = self.stand_in.token
        return token is None or self.authorization == f"Bearer {token}"

    def basic_ok(self) -> bool:
        user, password = self.stand_in.login or ("", "")
        expected = base64.b64encode(f"{user}:{password}".encode()).decode()
        return self.authorization == f"Basic {expected}"

    def send(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> bool:
        data = b"" if body is None else json.dumps(body).encode()
        self.handler.send_response(status)
        for name, value in (headers or {}).items():
            self.handler.send_header(name, value)
        if body is not None:
            self.handler.send_header("content-type", "application/json")
        self.handler.send_header("content-length", str(len(data)))
        self.handler.end_headers()
        if self.method != "HEAD":
            self.handler.wfile.write(data)
        return True


def _forward(request: _Request) -> None:
    """The registry protocol, answered by the real registry."""
    handler = request.handler
    response = httpx.request(
        request.method,
        f"http://{request.stand_in.upstream}{handler.path}",
        headers={"accept": handler.headers.get("accept", "*/*")},
        timeout=30,
    )
    handler.send_response(response.status_code)
    for name in _FORWARDED:
        if name in response.headers:
            handler.send_header(name, response.headers[name])
    handler.end_headers()
    if request.method != "HEAD":
        handler.wfile.write(response.content)


# Docker Hub: login, per-namespace listing; 429 on manifests when limited.


def _hub(request: _Request) -> bool:
    stand_in = request.stand_in
    if request.path == "/v2/auth/token" and request.method == "POST":
        body = request.body() or {}
        if (body.get("identifier"), body.get("secret")) != stand_in.login:
            return request.send(401, {"detail": "Incorrect authentication"})
        return request.send(200, {"access_token": stand_in.token})
    if request.path.startswith("/v2/repositories/") and _is_hub_api(request.path):
        return _hub_repositories(request)
    if stand_in.rate_limited and "/manifests/" in request.path:
        return request.send(
            429,
            {"errors": [{"code": "TOOMANYREQUESTS", "message": "pull rate limit"}]},
            {
                "ratelimit-limit": "100;w=21600",
                "ratelimit-remaining": "0;w=21600",
                "retry-after": "3600",
            },
        )
    return False


def _is_hub_api(path: str) -> bool:
    return not any(part in path for part in ("/manifests/", "/blobs/", "/tags/"))


def _hub_repositories(request: _Request) -> bool:
    stand_in = request.stand_in
    if not request.bearer_ok():
        return request.send(401, {"detail": "authentication required"})
    namespace = request.path.split("/")[3]
    found = [
        {"namespace": namespace, "name": name.split("/", 1)[1]}
        for name in stand_in.catalog()
        if name.startswith(f"{namespace}/") and name.count("/") == 1
    ]
    number = int(request.query.get("page", "1"))
    results, more = stand_in.page(found, number)
    following = (
        f"{stand_in.url}/v2/repositories/{namespace}/?page={number + 1}"
        f"&page_size={stand_in.page_size}"
        if more
        else None
    )
    return request.send(
        200, {"count": len(found), "next": following, "results": results}
    )


# Quay: /api/v1/repository with next_page tokens; /v2 takes the OAuth token.


def _quay(request: _Request) -> bool:
    stand_in = request.stand_in
    if request.path == "/api/v1/repository":
        if not request.bearer_ok():
            return request.send(401, {"error": "Requires authentication"})
        namespace = request.query["namespace"]
        found = [
            {"namespace": namespace, "name": name.split("/", 1)[1], "is_public": True}
            for name in stand_in.catalog()
            if name.startswith(f"{namespace}/")
        ]
        number = int(request.query.get("next_page", "page-1").split("-")[1])
        page, more = stand_in.page(found, number)
        body: dict[str, Any] = {"repositories": page}
        if more:
            body["next_page"] = f"page-{number + 1}"
        return request.send(200, body)
    if request.path.startswith("/v2") and stand_in.registry_token:
        if not request.bearer_ok():
            challenge = f'Bearer realm="{stand_in.url}/v2/auth",service="quay"'
            return request.send(401, {}, {"www-authenticate": challenge})
    return False


# GitLab: /jwt/auth realm (Basic), /api/v4 with PRIVATE-TOKEN, X-Next-Page.

_JWT = "gitlab-registry-jwt"


def _gitlab(request: _Request) -> bool:
    stand_in = request.stand_in
    if request.path == "/jwt/auth":
        if not request.basic_ok():
            return request.send(401, {"message": "HTTP Basic: Access denied"})
        return request.send(200, {"token": _JWT, "expires_in": 300})
    if request.path.startswith("/api/v4/"):
        if request.handler.headers.get("private-token") != stand_in.token:
            return request.send(401, {"message": "401 Unauthorized"})
        return _gitlab_api(request)
    if request.path.startswith("/v2") and request.authorization != f"Bearer {_JWT}":
        challenge = (
            f'Bearer realm="{stand_in.url}/jwt/auth",service="container_registry"'
        )
        return request.send(401, {"errors": []}, {"www-authenticate": challenge})
    return False


def _gitlab_projects(stand_in: StandIn) -> list[dict[str, Any]]:
    paths = sorted(
        {"/".join(name.split("/")[:2]) for name in stand_in.catalog() if "/" in name}
    )
    return [
        {"id": number, "path_with_namespace": path, "container_registry_enabled": True}
        for number, path in enumerate(paths, start=1)
    ]


def _gitlab_api(request: _Request) -> bool:
    stand_in = request.stand_in
    projects = _gitlab_projects(stand_in)
    if request.path == "/api/v4/projects":
        search = request.query.get("search", "")
        items = [p for p in projects if search in p["path_with_namespace"]]
    else:
        project_id = int(request.path.split("/")[4])
        prefix = next(p for p in projects if p["id"] == project_id)[
            "path_with_namespace"
        ]
        items = [
            {"id": number, "path": name, "location": f"registry/{name}"}
            for number, name in enumerate(stand_in.catalog())
            if name.startswith(f"{prefix}/")
        ]
    number = int(request.query.get("page", "1"))
    page, more = stand_in.page(items, number)
    return request.send(200, page, {"x-next-page": str(number + 1) if more else ""})


# GitHub: packages per organisation or user, Link pages; ghcr /v2 as is.


def _github(request: _Request) -> bool:
    stand_in = request.stand_in
    parts = request.path.split("/")
    if len(parts) != 4 or parts[3] != "packages":
        return False
    if not request.bearer_ok():
        return request.send(401, {"message": "Requires authentication"})
    kind, owner = parts[1], parts[2]
    if kind == "orgs" and owner.startswith("user-"):
        return request.send(404, {"message": "Not Found"})
    names = [
        name.split("/", 1)[1]
        for name in stand_in.catalog()
        if name.startswith(f"{owner}/")
    ]
    found = [{"name": name, "package_type": "container"} for name in names]
    number = int(request.query.get("page", "1"))
    page, more = stand_in.page(found, number)
    headers = {}
    if more:
        query = f"package_type=container&page={number + 1}"
        headers["link"] = f'<{stand_in.url}{request.path}?{query}>; rel="next"'
    return request.send(200, page, headers)
