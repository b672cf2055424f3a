"""Small pieces every `/v2` handler uses: services, names, pagination."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.requests import Request

from dockyard.registry.errors import RegistryError
from dockyard.registry.reference import validate_name

if TYPE_CHECKING:
    from dockyard.services import Services

# Largest page a client can ask for with `n`; the catalog's page without `n`.
MAX_PAGE = 10_000
DEFAULT_CATALOG_PAGE = 1_000


class PaginationInvalid(RegistryError):
    code = "PAGINATION_NUMBER_INVALID"


def services(request: Request) -> Services:
    return request.app.state.services


def repository_name(request: Request) -> str:
    return validate_name(request.path_params["name"])


def page_params(request: Request, default: int | None) -> tuple[int | None, str | None]:
    """`n` (capped) and `last` from the query string."""
    text = request.query_params.get("n")
    last = request.query_params.get("last") or None
    if text is None or text == "":
        return default, last
    # `isdigit` alone takes other scripts' digits, which `int` refuses.
    if not (text.isascii() and text.isdigit()):
        raise PaginationInvalid("n must be a non-negative integer", n=text[:32])
    # More digits than the cap has cannot be less than it (and past 4300
    # Python refuses to convert them).
    if len(text.lstrip("0")) > len(str(MAX_PAGE)):
        return MAX_PAGE, last
    return min(int(text), MAX_PAGE), last


def next_link(
    path: str, limit: int | None, items: list[str], more: bool
) -> dict[str, str]:
    """A `Link: <...>; rel="next"` header when more items follow this page."""
    if not more or not items or limit is None:
        return {}
    query = urlencode({"n": limit, "last": items[-1]})
    return {"link": f'<{path}?{query}>; rel="next"'}
