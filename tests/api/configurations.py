"""System settings changed for the length of a test, through
/api/v2.0/configurations on the shared server."""

import contextlib
from collections.abc import Iterator

import httpx

API = "/api/v2.0"


@contextlib.contextmanager
def configured(api: httpx.Client, **values: object) -> Iterator[None]:
    """Set `values` for the body of the `with`, then put back what each
    key held before."""
    before = {
        key: item["value"]
        for key, item in api.get(f"{API}/configurations").json().items()
    }
    assert api.put(f"{API}/configurations", json=values).status_code == 200
    try:
        yield
    finally:
        api.put(f"{API}/configurations", json={key: before[key] for key in values})
