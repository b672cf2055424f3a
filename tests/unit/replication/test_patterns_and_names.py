"""Doublestar filters and destination names (pure rules, no I/O)."""

import pytest

from dockyard.replication.patterns import PatternInvalid, matches
from dockyard.replication.policies import (
    Filter,
    Policy,
    PolicyFields,
    PolicyInvalid,
    flattened,
)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("library/**", "library/a/b", True),
        ("library/*", "library/a/b", False),
        ("library/*", "library/a", True),
        ("{1.36,multi}", "multi", True),
        ("1.*", "1.36", True),
        ("v?", "v10", False),
        ("v[0-9]*", "v1-rc", True),
        ("v[!0-9]*", "v1-rc", False),
        ("**", "a/b/c", True),
        ("a{b,c{d,e}}f", "acef", True),
        ("lib.x", "libyx", False),
    ],
)
def test_matches_doublestar_pattern_gives_expected(pattern, name, expected):
    assert matches(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["[abc", "{a,b", "a}"])
def test_matches_with_malformed_pattern_raises_pattern_invalid(pattern):
    with pytest.raises(PatternInvalid):
        matches(pattern, "a")


@pytest.mark.parametrize(
    ("count", "expected"),
    [(-1, "ns/d"), (0, "ns/a/b/c/d"), (1, "ns/b/c/d"), (3, "ns/d")],
)
def test_flattened_replaces_count_components(count, expected):
    assert flattened("a/b/c/d", "ns", count) == expected


def test_flattened_without_namespace_keeps_the_name():
    assert flattened("a/b", "", 1) == "a/b"


def test_flattened_with_count_past_the_components_raises_policy_invalid():
    with pytest.raises(PolicyInvalid):
        flattened("a/b", "ns", 2)


def test_policy_tag_filters_include_and_exclude():
    fields = PolicyFields(
        name="p",
        dest_registry_id=1,
        filters=(
            Filter("tag", "1.36*"),
            Filter("tag", "*-arm64", "excludes"),
        ),
    )
    policy = Policy(1, fields, None, None)  # type: ignore[arg-type]

    assert [policy.selects_tag(t) for t in ("1.36", "1.36-arm64", "2")] == [
        True,
        False,
        False,
    ]
