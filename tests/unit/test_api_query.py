import pytest

from dockyard.api.query import Condition, Match, QueryError, parse_q, parse_sort


def test_parse_q_reads_every_form():
    conditions = parse_q(
        "name=~busy,public=true,id={1 2 3},labels=(a b),creation_time=[2024-01-01~]"
    )

    assert conditions == [
        Condition("name", Match.FUZZY, ("busy",)),
        Condition("public", Match.EXACT, ("true",)),
        Condition("id", Match.ANY, ("1", "2", "3")),
        Condition("labels", Match.ALL, ("a", "b")),
        Condition("creation_time", Match.RANGE, ("2024-01-01", "")),
    ]


def test_parse_q_rejects_item_without_equals():
    with pytest.raises(QueryError):
        parse_q("name")


def test_parse_sort_reads_direction():
    assert parse_sort("name,-creation_time") == [
        ("name", False),
        ("creation_time", True),
    ]
