"""Doublestar patterns, as replication filters write them.

    *        any run of characters except `/`
    **       any run of characters, `/` included
    ?        one character except `/`
    [abc]    one of the characters (`[!abc]` or `[^abc]`: none of them)
    {a,b}    one of the alternatives (they may hold patterns themselves)

Everything else matches itself. A pattern matches a whole name.
"""

from __future__ import annotations

import re
from functools import lru_cache


class PatternInvalid(ValueError):
    """The pattern cannot be read (an unclosed `[` or `{`)."""


def matches(pattern: str, name: str) -> bool:
    """Whether `name` as a whole matches `pattern`; `PatternInvalid` if the
    pattern is malformed."""
    return _compiled(pattern).fullmatch(name) is not None


def check_pattern(pattern: str) -> None:
    """`PatternInvalid` unless `pattern` can be read."""
    _compiled(pattern)


def has_wildcards(pattern: str) -> bool:
    return any(c in pattern for c in "*?[{")


def specific_names(pattern: str) -> list[str] | None:
    """Every name `pattern` matches when that is a short list: a plain name,
    or plain alternatives (`team/{web,db}`); None when it holds a wildcard
    and only a listing can tell."""
    if any(c in pattern for c in "*?["):
        return None
    start = pattern.find("{")
    if start < 0:
        return None if "}" in pattern else [pattern]
    end = pattern.find("}", start)
    if end < 0 or "{" in pattern[start + 1 : end]:
        return None
    found: list[str] = []
    for option in pattern[start + 1 : end].split(","):
        rest = specific_names(pattern[:start] + option + pattern[end + 1 :])
        if rest is None:
            return None
        found.extend(name for name in rest if name not in found)
    return found


def specific_namespaces(pattern: str) -> list[str] | None:
    """The namespaces (first path components) `pattern` can match, when it
    names them without wildcards (`team/*`, `{a,b}/**`); None otherwise."""
    first = pattern.split("/", 1)[0]
    if first.count("{") != first.count("}"):
        return None
    return specific_names(first)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    expression, rest = _translate(pattern, 0, inside_braces=False)
    if rest != len(pattern):
        raise PatternInvalid(f"unbalanced '}}' in {pattern!r}")
    return re.compile(expression, re.DOTALL)


def _translate(pattern: str, i: int, inside_braces: bool) -> tuple[str, int]:
    """The regular expression for `pattern[i:]` up to an unmatched `,` or
    `}` (inside braces) or the end, and where it stopped."""
    out: list[str] = []
    while i < len(pattern):
        c = pattern[i]
        if inside_braces and c in ",}":
            return "".join(out), i
        if c == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
            else:
                out.append("[^/]*")
                i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            text, i = _char_class(pattern, i)
            out.append(text)
        elif c == "{":
            text, i = _alternatives(pattern, i)
            out.append(text)
        elif c == "}":
            return "".join(out), i
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out), i


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
    if end < 0:
        raise PatternInvalid(f"unclosed '[' in {pattern!r}")
    body = pattern[i + 1 : end]
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    body = body.replace("\\", "\\\\").replace("^", "\\^")
    return (f"[^/{body}]" if negate else f"[{body}]"), end + 1


def _alternatives(pattern: str, i: int) -> tuple[str, int]:
    options = []
    i += 1
    while True:
        text, i = _translate(pattern, i, inside_braces=True)
        options.append(text)
        if i >= len(pattern):
            raise PatternInvalid(f"unclosed '{{' in {pattern!r}")
        if pattern[i] == "}":
            return "(?:" + "|".join(options) + ")", i + 1
        i += 1
