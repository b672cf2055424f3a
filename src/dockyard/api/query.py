"""Harbor's list query language: `q` filters and `sort` keys.

    q=name=~busy,public=true,creation_time=[2024-01-01~2024-12-31],id={1 2 3}

| form       | meaning                                  |
| ---------- | ---------------------------------------- |
| `k=v`      | equals                                   |
| `k=~v`     | contains (fuzzy)                         |
| `k=[a~b]`  | between a and b, either end may be empty |
| `k={a b}`  | any of                                   |
| `k=(a b)`  | all of (for keys with several values)    |

`sort=name,-creation_time` orders by name, then newest first. Parsing is pure;
`apply_query` turns the result into SQL over columns a resource exposes, and
refuses keys it does not know with a clear error.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_

from dockyard.db.database import contains_text
from dockyard.db.schema import MAX_INTEGER


class QueryError(ValueError):
    """`q` or `sort` is malformed or names an unknown key."""


class Match(enum.Enum):
    EXACT = "exact"
    FUZZY = "fuzzy"
    RANGE = "range"
    ANY = "any"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    match: Match
    values: tuple[str, ...]


def parse_q(text: str | None) -> list[Condition]:
    if not text:
        return []
    return [_parse_condition(part) for part in _split_top_level(text)]


def parse_sort(text: str | None) -> list[tuple[str, bool]]:
    """(key, descending) pairs, in order."""
    if not text:
        return []
    keys = []
    for item in text.split(","):
        item = item.strip()
        if not item or item == "-":
            raise QueryError("empty sort key")
        keys.append((item.lstrip("-"), item.startswith("-")))
    return keys


def apply_query(
    query: Select,
    q: str | None,
    sort: str | None,
    columns: Mapping[str, Any],
    default_order: Sequence[Any] = (),
) -> Select:
    """Add WHERE and ORDER BY for the `q` and `sort` parameters over `columns`.

    Raise `QueryError` (rendered as 400) for malformed text or unknown keys."""
    for condition in parse_q(q):
        query = query.where(_clause(condition, _column(columns, condition.key)))
    order = [
        _column(columns, key).desc() if descending else _column(columns, key).asc()
        for key, descending in parse_sort(sort)
    ]
    return query.order_by(*order, *default_order)


def _column(columns: Mapping[str, Any], key: str) -> Any:
    try:
        return columns[key]
    except KeyError:
        known = ", ".join(sorted(columns))
        raise QueryError(f"unknown query key {key!r}; known keys: {known}") from None


def _clause(condition: Condition, column: Any) -> ColumnElement[bool]:
    values = condition.values
    if condition.match is Match.EXACT:
        return column == _typed(column, values[0])
    if condition.match is Match.FUZZY:
        return contains_text(column, values[0])
    if condition.match is Match.RANGE:
        low, high = values
        bounds = []
        if low:
            bounds.append(column >= _typed(column, low))
        if high:
            bounds.append(column <= _typed(column, high))
        return and_(*bounds)
    typed = [_typed(column, value) for value in values]
    if condition.match is Match.ANY:
        return or_(*(column == value for value in typed))
    return and_(*(column == value for value in typed))


def _typed(column: Any, value: str) -> Any:
    python_type = getattr(getattr(column, "type", None), "python_type", str)
    if python_type is bool:
        if value.lower() not in ("true", "false"):
            raise QueryError(f"{value!r} is not true or false")
        return value.lower() == "true"
    if python_type is int:
        try:
            number = int(value)
        except ValueError:
            raise QueryError(f"{value!r} is not an integer") from None
        if abs(number) > MAX_INTEGER:
            raise QueryError(f"{value!r} is out of range")
        return number
    return value


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside [], {} or ()."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _parse_condition(part: str) -> Condition:
    key, sep, value = part.partition("=")
    key = key.strip()
    if not sep or not key:
        raise QueryError(f"query item {part!r} is not key=value")
    if value.startswith("~"):
        return Condition(key, Match.FUZZY, (value[1:],))
    if value.startswith("[") and value.endswith("]"):
        low, tilde, high = value[1:-1].partition("~")
        if not tilde:
            raise QueryError(f"range {value!r} must be [min~max]")
        return Condition(key, Match.RANGE, (low.strip(), high.strip()))
    if value.startswith("{") and value.endswith("}"):
        return Condition(key, Match.ANY, tuple(value[1:-1].split()))
    if value.startswith("(") and value.endswith(")"):
        return Condition(key, Match.ALL, tuple(value[1:-1].split()))
    return Condition(key, Match.EXACT, (value,))
