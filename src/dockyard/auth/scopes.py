"""Token scopes: `type:name:actions`, as the Docker token spec writes them.

A name may itself hold colons (`127.0.0.1:5000/library/busybox`), so the type
is what precedes the first colon and the actions what follows the last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def to_claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def parse_scope(text: str) -> Scope | None:
    """Parse one scope; None for text that is not one (clients' junk is ignored)."""
    kind, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and kind and name):
        return None
    return Scope(kind, name, frozenset(a for a in actions.split(",") if a))


def parse_scopes(values: list[str]) -> list[Scope]:
    """Parse scope parameters, repeated or space-separated, merging duplicates."""
    merged: dict[tuple[str, str], set[str]] = {}
    for value in values:
        for text in value.split():
            scope = parse_scope(text)
            if scope is not None:
                merged.setdefault((scope.type, scope.name), set()).update(scope.actions)
    return [Scope(kind, name, frozenset(a)) for (kind, name), a in merged.items()]
