"""Label filters and which events a policy takes (pure rules, no I/O)."""

from datetime import UTC, datetime

import pytest

from dockyard.replication.facts import ArtifactFacts
from dockyard.replication.policies import (
    Filter,
    Policy,
    PolicyFields,
    PolicyInvalid,
    check_fields,
)
from dockyard.replication.runner import (
    COPY,
    DELETE,
    DELETE_TAG,
    _copy_event,
    _Event,
    _takes,
)

_NOW = datetime.now(UTC)
_DIGEST = "sha256:" + "a" * 64


def _policy(*filters, deletion=True):
    fields = PolicyFields(
        name="p",
        dest_registry_id=1,
        filters=tuple(filters),
        trigger_type="event_based",
        replicate_deletion=deletion,
    )
    return Policy(1, fields, _NOW, _NOW)


@pytest.mark.parametrize(
    ("carried", "expected"),
    [({"prod", "gold"}, True), ({"prod"}, False), (set(), False)],
)
def test_matches_label_filter_needs_every_listed_label(carried, expected):
    policy = _policy(Filter("label", ["prod", "gold"]))

    assert policy.selects_labels(carried) is expected


@pytest.mark.parametrize(
    ("carried", "expected"),
    [({"prod", "gold"}, False), ({"prod"}, True), (set(), True)],
)
def test_excludes_label_filter_leaves_out_only_carriers_of_every_label(
    carried, expected
):
    # Harbor's rule: excludes is the negation of matches.
    policy = _policy(Filter("label", ["prod", "gold"], "excludes"))

    assert policy.selects_labels(carried) is expected


def test_empty_label_filter_selects_everything():
    policy = _policy(Filter("label", []))

    assert policy.selects_labels(set()) is True
    assert policy.has_label_filter is False


@pytest.mark.parametrize(
    "value", ["prod", None, [""], ["  "], [1], [["prod"]], ["x" * 129]]
)
def test_check_fields_with_bad_label_value_raises_policy_invalid(value):
    fields = _policy(Filter("label", value)).fields

    with pytest.raises(PolicyInvalid):
        check_fields(fields)


def test_check_fields_with_label_names_passes():
    fields = _policy(Filter("label", ["prod", "team a"], "excludes")).fields

    assert check_fields(fields) is fields


def test_copy_event_of_unlabelled_artifact_is_not_taken_by_label_filter():
    policy = _policy(Filter("label", ["prod"]))
    event = _Event(COPY, "p/r", "1.0", ("1.0",), frozenset())

    assert _takes(policy, event) is False


def test_deletion_event_is_taken_when_any_former_tag_passes():
    policy = _policy(Filter("tag", "1.*"))
    event = _Event(DELETE, "p/r", "sha256:" + "a" * 64, ("latest", "1.0"), frozenset())

    assert _takes(policy, event) is True


def test_tag_deletion_event_needs_replicate_deletion():
    policy = _policy(Filter("name", "p/**"), deletion=False)
    event = _Event(DELETE_TAG, "p/r", "1.0", ("1.0",), frozenset())

    assert _takes(policy, event) is False


@pytest.mark.parametrize(
    ("pattern", "decoration", "expected"),
    [
        ("**", "matches", True),
        ("*", "matches", True),
        ("v*", "matches", False),
        ("v*", "excludes", True),
        ("**", "excludes", False),
    ],
)
def test_untagged_deletion_is_tested_as_the_empty_tag(pattern, decoration, expected):
    # Harbor matches an untagged artifact's tag pattern against "".
    policy = _policy(Filter("tag", pattern, decoration))
    event = _Event(DELETE, "p/r", _DIGEST, (), frozenset())

    assert _takes(policy, event) is expected


def test_untagged_deletion_is_taken_by_a_policy_without_tag_filter():
    policy = _policy(Filter("name", "p/**"))
    event = _Event(DELETE, "p/r", _DIGEST, (), frozenset())

    assert _takes(policy, event) is True


def test_referrer_copy_by_subject_digest_is_tested_by_the_subject_s_tags():
    # Harbor tests an accessory (signature, SBOM) by its parent's tags.
    policy = _policy(Filter("tag", "v*"))
    subject = ArtifactFacts(_DIGEST, ("dev", "v1"))

    event = _copy_event("p/r", _DIGEST, subject)

    assert event.tags == ("dev", "v1")
    assert _takes(policy, event) is True


def test_copy_by_tag_is_tested_by_that_tag_alone():
    policy = _policy(Filter("tag", "v*"))
    found = ArtifactFacts(_DIGEST, ("dev", "v1"))

    assert _takes(policy, _copy_event("p/r", "dev", found)) is False
