"""Pure OCI and token rules, no I/O."""

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dockyard.auth.keys import libtrust_key_id
from dockyard.auth.scopes import parse_scope, parse_scopes
from dockyard.config import ConfigError, load_settings
from dockyard.registry.digest import parse_digest
from dockyard.registry.errors import DigestInvalid, NameInvalid, RangeNotSatisfiable
from dockyard.registry.mediatypes import accepts
from dockyard.registry.ranges import parse_range
from dockyard.registry.reference import validate_name


@pytest.mark.parametrize(
    "text",
    ["sha256:abc", "md5:" + "a" * 32, "sha256:" + "A" * 64, "sha512:" + "a" * 64],
)
def test_parse_digest_rejects_malformed_digests(text):
    with pytest.raises(DigestInvalid):
        parse_digest(text)


def test_parse_digest_accepts_sha512():
    assert parse_digest("sha512:" + "a" * 128).algorithm == "sha512"


@pytest.mark.parametrize("name", ["library/busybox", "a/b-c/d__e", "a.b/c"])
def test_validate_name_accepts_spec_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["Library/x", "a//b", "-a/b", "a/b-", "a/" + "b" * 300]
)
def test_validate_name_rejects_invalid_names(name):
    with pytest.raises(NameInvalid):
        validate_name(name)


def test_parse_scope_keeps_colons_in_the_name():
    scope = parse_scope("repository:127.0.0.1:5000/library/busybox:pull,push")

    assert scope.name == "127.0.0.1:5000/library/busybox"
    assert scope.actions == {"pull", "push"}


def test_parse_scopes_merges_repeated_and_space_separated():
    scopes = parse_scopes(
        ["repository:a/b:pull repository:a/b:push", "registry:catalog:*"]
    )

    assert {(s.name, frozenset(s.actions)) for s in scopes} == {
        ("a/b", frozenset({"pull", "push"})),
        ("catalog", frozenset({"*"})),
    }


def test_libtrust_key_id_has_twelve_groups_of_four():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    key_id = libtrust_key_id(key.public_key())

    assert [len(group) for group in key_id.split(":")] == [4] * 12


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=90-200", (90, 99)),
        ("items=1-2", None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


def test_parse_range_beyond_end_is_unsatisfiable():
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=100-", 100)


def test_accepts_treats_missing_or_wildcard_accept_as_anything():
    assert accepts(None, "application/vnd.oci.image.index.v1+json")
    assert accepts("*/*", "application/vnd.oci.image.index.v1+json")
    assert not accepts(
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
    )


def test_settings_reject_bad_listen_address(monkeypatch):
    with pytest.raises(ConfigError):
        load_settings(listen="no-port")


def test_settings_environment_outranks_config_file(tmp_path, monkeypatch):
    config = tmp_path / "dockyard.yml"
    config.write_text("listen: 127.0.0.1:7000\nworkers: 3\n")
    monkeypatch.setenv("DOCKYARD_LISTEN", "127.0.0.1:7001")

    settings = load_settings(config)

    assert (settings.listen, settings.workers) == ("127.0.0.1:7001", 3)


def test_settings_reject_unknown_storage_scheme_naming_variable():
    with pytest.raises(ConfigError, match="DOCKYARD_STORAGE_URL"):
        load_settings(storage_url="ftp://host/blobs")


def test_settings_reject_unknown_object_store_option():
    with pytest.raises(ConfigError, match="storage_url"):
        load_settings(
            storage_url="s3://bucket/prefix", storage_options={"no_such_key": "1"}
        )


def test_settings_take_storage_options_from_environment_json(monkeypatch):
    monkeypatch.setenv("DOCKYARD_STORAGE_URL", "s3://bucket/prefix")
    monkeypatch.setenv("DOCKYARD_STORAGE_OPTIONS", '{"skip_signature": "true"}')

    settings = load_settings()

    assert settings.storage_options == {"skip_signature": "true"}
