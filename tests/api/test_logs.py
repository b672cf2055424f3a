"""The JSON log format over a real server: one object per line, the request
id on every request line, no secrets."""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest

REQUIRED = {"time", "level", "logger", "event", "fields", "request_id"}


@pytest.fixture(scope="module")
def json_logged(tmp_path_factory):
    from tests.conftest import DockyardServer

    server = DockyardServer(
        tmp_path_factory.mktemp("json-logs"), {"DOCKYARD_LOG_FORMAT": "json"}
    ).start()
    try:
        yield server
    finally:
        server.stop()


def entries(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def request_lines(server, mark: int, wanted) -> list[dict]:
    """The request lines logged since `mark`, once one of them is `wanted`
    (or after ten seconds): a line is written as the response goes out, so
    it may trail the answer, and an earlier request's may trail into the
    window."""
    deadline = time.monotonic() + 10
    while True:
        found = [e for e in entries(server.log_since(mark)) if e["event"] == "request"]
        if any(wanted(e) for e in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_json_logs_every_line_is_an_object_with_the_required_keys(json_logged):
    httpx.get(f"{json_logged.url}/api/v2.0/ping")

    lines = entries(json_logged.log())

    assert lines
    assert all(REQUIRED <= set(line) for line in lines)


def test_json_logs_request_line_carries_callers_request_id(json_logged):
    mark = json_logged.log_size()
    request_id = f"trace-{secrets.token_hex(6)}"

    httpx.get(f"{json_logged.url}/api/v2.0/ping", headers={"x-request-id": request_id})

    lines = request_lines(json_logged, mark, lambda e: e["request_id"] == request_id)
    (line,) = [e for e in lines if e["request_id"] == request_id]
    assert line["fields"]["path"] == "/api/v2.0/ping"
    assert line["fields"]["status"] == 200


def test_json_logs_hold_no_password_of_a_failed_login(json_logged):
    mark = json_logged.log_size()
    password = "Wr0ng-" + secrets.token_hex(8)

    httpx.get(
        f"{json_logged.url}/service/token",
        params={"service": "dockyard", "scope": "repository:library/x:pull"},
        auth=("admin", password),
    )
    httpx.get(f"{json_logged.url}/v2/", auth=("admin", password))

    lines = request_lines(json_logged, mark, lambda e: e["fields"]["path"] == "/v2/")
    assert {"/service/token", "/v2/"} <= {e["fields"]["path"] for e in lines}
    assert password not in json_logged.log_since(mark)
