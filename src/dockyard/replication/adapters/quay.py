"""Quay (quay.io or a Red Hat Quay of one's own).

Quay's catalog lists nothing useful; repositories are listed per
namespace through its API, on the same host as `/v2/`:

    GET /api/v1/repository?namespace=<ns>&public=true[&next_page=<token>]
        {"repositories": [{"namespace": "team", "name": "web", ...}],
         "next_page": "<token>"}   (absent on the last page)

with an OAuth application token as bearer; without one only public
repositories show. The credential takes three forms:

- `oauth`: the secret is an OAuth token. It is the API's bearer token and,
  for `/v2/`, the password of the user `$oauthtoken` (Quay's convention);
- `basic`: a user or robot account and its password, for `/v2/` only;
- Harbor's JSON file (`access_key` "json_file"): the secret holds
  `{"account_name", "docker_cli_password", "oauth2_token"}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from dockyard.replication.adapters.api import ServiceAPI
from dockyard.replication.adapters.base import (
    AdapterInfo,
    NamespacedAdapter,
    qualified_names,
)
from dockyard.replication.client import Endpoint, RegistryClient

QUAY_URL = "https://quay.io"
OAUTH_USER = "$oauthtoken"
# Harbor's pattern: a fixed key and the secret uploaded as a JSON file.
JSON_FILE_KEY = "json_file"
CREDENTIAL_PATTERN = {
    "access_key_type": "AccessKeyTypeFix",
    "access_key_data": JSON_FILE_KEY,
    "access_secret_type": "AccessSecretTypeFile",
    "access_secret_data": "",
}


@dataclass(frozen=True, slots=True)
class QuayCredential:
    """The credential split by use: `/v2/` login, and the API's token."""

    account: str | None
    password: str | None
    api_token: str | None


def quay_credential(endpoint: Endpoint) -> QuayCredential:
    secret = endpoint.access_secret
    if endpoint.credential_type == "oauth" and secret:
        return QuayCredential(endpoint.access_key or OAUTH_USER, secret, secret)
    file = _json_file(secret) if endpoint.access_key == JSON_FILE_KEY else None
    if file is not None:
        return QuayCredential(
            _text(file.get("account_name")),
            _text(file.get("docker_cli_password")),
            _text(file.get("oauth2_token")),
        )
    return QuayCredential(endpoint.access_key, secret, None)


class Quay(NamespacedAdapter):
    kind: ClassVar[str] = "quay"
    info: ClassVar[AdapterInfo] = AdapterInfo(
        "Quay",
        default_url=QUAY_URL,
        credential_pattern=CREDENTIAL_PATTERN,
        lists="Quay API, per namespace (`/api/v1/repository?namespace=`)",
    )

    def registry_endpoint(self, endpoint: Endpoint) -> Endpoint:
        if not endpoint.has_credentials:
            return endpoint
        credential = quay_credential(endpoint)
        return replace(
            endpoint,
            access_key=credential.account,
            access_secret=credential.password,
        )

    async def list_matching(
        self, endpoint: Endpoint, client: RegistryClient, pattern: str | None
    ) -> list[str]:
        found: list[str] = []
        async with ServiceAPI(endpoint.url, endpoint) as api:
            token = quay_credential(endpoint).api_token
            if token:
                api.use_bearer(token)
            for namespace in self.namespaces(pattern):
                found.extend(await _namespace_repositories(api, namespace))
        return found


async def _namespace_repositories(api: ServiceAPI, namespace: str) -> list[str]:
    path = "/api/v1/repository"
    query = {"namespace": namespace, "public": "true"}

    def following(response: Any, body: Any) -> tuple[str, dict[str, str]] | None:
        token = body.get("next_page") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return None
        return path, {**query, "next_page": token}

    found: list[str] = []
    async for body in api.walk(path, query, following):
        items = body.get("repositories") if isinstance(body, dict) else None
        found.extend(qualified_names(items, namespace, path))
    return found


def _json_file(secret: str | None) -> dict[str, Any] | None:
    try:
        parsed = json.loads(secret or "")
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
