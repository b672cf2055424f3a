"""containerd's mirror requests: `/v2/<name>/...?ns=<upstream host>`.

A containerd configured with Dockyard as the mirror of several registries
asks for an image by its name on the upstream and names the upstream in
`ns`. When a proxy-cache project serves that upstream, the request is
routed into it (`/v2/<project>/<name>/...`); otherwise it is left as it is.
Authorisation then applies to the routed name, as for any request.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

_PREFIX = "/v2/"


class MirrorRouting:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _is_repository_path(scope["path"]):
            host = _namespace(scope.get("query_string", b""))
            if host:
                services = scope["app"].state.services
                project = await services.proxycache.project_for_host(host)
                if project is not None:
                    scope = _routed(scope, project)
        await self.app(scope, receive, send)


def _is_repository_path(path: str) -> bool:
    return (
        path.startswith(_PREFIX)
        and path != _PREFIX
        and not path.startswith("/v2/_catalog")
    )


def _namespace(query: bytes) -> str | None:
    values = parse_qs(query.decode("latin-1")).get("ns")
    return values[0] if values else None


def _routed(scope: Scope, project: str) -> Scope:
    rest = scope["path"][len(_PREFIX) :]
    raw = scope.get("raw_path") or scope["path"].encode()
    raw_rest = raw[len(_PREFIX) :]
    return {
        **scope,
        "path": f"{_PREFIX}{project}/{rest}",
        "raw_path": _PREFIX.encode() + project.encode() + b"/" + raw_rest,
    }
