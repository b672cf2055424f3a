"""Registry adapters' pure rules: URL defaults and validation, where `/v2/`
lives, credentials split by use, name filters a service can list, and
what a 429 says. No I/O."""

import json

import httpx
import pytest

from dockyard.replication.adapters import (
    ADAPTERS,
    ListingUnsupported,
    adapter_for,
)
from dockyard.replication.adapters.base import listing_pattern
from dockyard.replication.adapters.quay import quay_credential
from dockyard.replication.client import (
    Endpoint,
    UpstreamUnavailable,
    raise_for_status,
)
from dockyard.replication.patterns import specific_names, specific_namespaces
from dockyard.replication.registries import (
    RegistryFields,
    RegistryInvalid,
    check_fields,
)


def _fields(kind, url=""):
    return RegistryFields(name="endpoint", url=url, type=kind)


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("docker-hub", "https://hub.docker.com"),
        ("github-ghcr", "https://ghcr.io"),
        ("quay", "https://quay.io"),
    ],
)
def test_check_fields_without_url_takes_the_service_default(kind, url):
    assert check_fields(_fields(kind)).url == url


@pytest.mark.parametrize("kind", ["gitlab", "harbor", "docker-registry"])
def test_check_fields_without_url_for_self_hosted_type_is_invalid(kind):
    with pytest.raises(RegistryInvalid, match="needs its url"):
        check_fields(_fields(kind))


def test_check_fields_with_unknown_type_names_the_known_ones():
    with pytest.raises(RegistryInvalid, match="known types: harbor"):
        check_fields(_fields("artifactory", "https://example.test"))


def test_check_fields_keeps_a_given_url_for_a_fixed_service():
    fields = check_fields(_fields("docker-hub", "http://127.0.0.1:5000/"))

    assert fields.url == "http://127.0.0.1:5000"


def test_docker_hub_images_live_on_registry_1():
    endpoint = Endpoint(url="https://hub.docker.com")

    assert ADAPTERS["docker-hub"].registry_endpoint(endpoint).url == (
        "https://registry-1.docker.io"
    )


def test_docker_hub_at_another_url_serves_v2_there():
    endpoint = Endpoint(url="http://127.0.0.1:5000")

    assert ADAPTERS["docker-hub"].registry_endpoint(endpoint) == endpoint


def test_quay_json_file_credential_splits_login_and_api_token():
    secret = json.dumps(
        {
            "account_name": "team+robot",
            "docker_cli_password": "pw",
            "oauth2_token": "tok",
        }
    )
    endpoint = Endpoint(
        url="https://quay.io", access_key="json_file", access_secret=secret
    )

    registry = ADAPTERS["quay"].registry_endpoint(endpoint)

    assert (registry.access_key, registry.access_secret) == ("team+robot", "pw")
    assert quay_credential(endpoint).api_token == "tok"


def test_quay_oauth_token_logs_in_as_oauthtoken_user():
    endpoint = Endpoint(
        url="https://quay.io", access_secret="tok", credential_type="oauth"
    )

    registry = ADAPTERS["quay"].registry_endpoint(endpoint)

    assert (registry.access_key, registry.access_secret) == ("$oauthtoken", "tok")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("team/web", ["team/web"]),
        ("team/{web,db}", ["team/web", "team/db"]),
        ("{a,b}/{c,d}", ["a/c", "a/d", "b/c", "b/d"]),
        ("team/*", None),
        ("team/{web,db*}", None),
        ("team/{web", None),
    ],
)
def test_specific_names(pattern, expected):
    assert specific_names(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("team/*", ["team"]),
        ("{a,b}/**", ["a", "b"]),
        ("te*/web", None),
        ("**", None),
    ],
)
def test_specific_namespaces(pattern, expected):
    assert specific_namespaces(pattern) == expected


def test_listing_pattern_prefers_the_filter_that_names_repositories():
    assert listing_pattern(["**", "team/*", "team/web"]) == "team/web"


@pytest.mark.parametrize("kind", ["docker-hub", "quay", "github-ghcr"])
def test_wildcard_namespace_cannot_be_listed_without_catalog(kind):
    with pytest.raises(ListingUnsupported, match="must name its namespace"):
        adapter_for(kind).check_source_patterns(["**"], True)


def test_ghcr_wildcard_without_token_cannot_be_listed():
    with pytest.raises(ListingUnsupported, match="read:packages"):
        adapter_for("github-ghcr").check_source_patterns(["octo/*"], False)


def test_ghcr_names_outright_need_no_listing():
    adapter_for("github-ghcr").check_source_patterns(["octo/{web,db}"], False)


def test_gitlab_anonymous_listing_needs_the_project_named():
    with pytest.raises(ListingUnsupported, match="names the project"):
        adapter_for("gitlab").check_source_patterns(["group/*"], False)


def test_generic_registry_lists_any_wildcard_through_its_catalog():
    adapter_for("docker-registry").check_source_patterns(["**"], False)


def test_rate_limited_answer_names_limit_and_reset():
    response = httpx.Response(
        429,
        headers={
            "RateLimit-Limit": "100;w=21600",
            "RateLimit-Remaining": "0;w=21600",
            "Retry-After": "120",
        },
    )

    with pytest.raises(UpstreamUnavailable) as raised:
        raise_for_status(response, "GET /v2/x/manifests/1")

    assert "limit 100;w=21600, remaining 0;w=21600, resets in 120s" in str(
        raised.value
    )
    assert raised.value.retry_after == "120"
