"""Log setup: `key=value` lines or JSON lines, each carrying the request id.

Messages are constant event names with their facts as fields
(`log.info("upload_done upload_id=%s size=%d", ...)`). The JSON format turns
that template into `{"event": "upload_done", "fields": {"upload_id": ...,
"size": ...}}`, one object per line, with `time`, `level`, `logger` and
`request_id`; text that is no `key=value` pair goes to `message`.

Secrets never reach a log line: handlers log no headers, the query strings of
the token service are dropped, and fields whose names say they hold a secret
(password, token, secret, authorization, cookie, ...) are replaced by
`[redacted]` in both formats.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="-"
)

REDACTED = "[redacted]"
_SECRET_NAME_RE = re.compile(
    r"pass(word|wd)?|secret|token|authori[sz]ation|cookie|credential|api_?key",
    re.IGNORECASE,
)
# One printf conversion, optionally preceded by `name=`.
_CONVERSION_RE = re.compile(
    r"(?:(?P<name>[A-Za-z_][\w.]*)=)?%(?P<spec>[-#0 +]*\d*(?:\.\d+)?[a-zA-Z%])"
)
_TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"
)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME_RE.search(name))


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class _RedactingFilter(logging.Filter):
    """Blank the values of `secret=%s`-like fields before any format sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and isinstance(record.args, tuple):
            names = [name for name, _ in _conversions(record.msg)]
            if any(name and is_secret_name(name) for name in names):
                record.args = (
                    tuple(
                        REDACTED if name and is_secret_name(name) else arg
                        for name, arg in zip(names, record.args, strict=False)
                    )
                    + record.args[len(names) :]
                )
                record.msg = _stringify_redacted(record.msg)
        return True


def _stringify_redacted(template: str) -> str:
    """Redacted fields now hold a string: make their conversions `%s`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name and is_secret_name(name):
            return f"{name}=%s"
        return match.group(0)

    return _CONVERSION_RE.sub(replace, template)


def _conversions(template: str) -> list[tuple[str | None, str]]:
    """(field name or None, conversion) for each argument the template takes."""
    return [
        (m.group("name"), m.group("spec"))
        for m in _CONVERSION_RE.finditer(template)
        if m.group("spec") != "%"
    ]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, fields,
    request_id, and message/exception when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields, rest = self._parse(record)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": event,
            "fields": fields,
            "request_id": getattr(record, "request_id", request_id.get()),
        }
        if rest:
            entry["message"] = rest
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)

    def _parse(self, record: logging.LogRecord) -> tuple[str, dict[str, Any], str]:
        template = record.msg if isinstance(record.msg, str) else str(record.msg)
        args = record.args if isinstance(record.args, tuple) else ()
        if not _conversions(template) or len(_conversions(template)) != len(args):
            # Not our convention (a library's line): keep it whole.
            message = record.getMessage()
            event, _, rest = message.partition(" ")
            return event, {}, rest
        fields: dict[str, Any] = {}
        position = 0
        leftover: list[str] = []
        remaining = iter(args)
        for match in _CONVERSION_RE.finditer(template):
            leftover.append(template[position : match.start()])
            position = match.end()
            name, spec = match.group("name"), match.group("spec")
            if spec == "%":
                leftover.append((name + "=" if name else "") + "%")
            elif name:
                fields[name] = _field_value(spec, next(remaining))
            else:
                leftover.append(("%" + spec) % (next(remaining),))
        leftover.append(template[position:])
        text = " ".join("".join(leftover).split())
        event, _, rest = text.partition(" ")
        return event, fields, rest


def _field_value(spec: str, arg: Any) -> Any:
    """Numbers stay numbers (rounded as the template asks); the rest is text."""
    if isinstance(arg, bool) or arg is None:
        return arg
    if isinstance(arg, int | float) and spec[-1] in "dif":
        return round(float(arg), _precision(spec)) if spec[-1] == "f" else arg
    return ("%" + spec) % (arg,)


def _precision(spec: str) -> int:
    _, dot, digits = spec[:-1].partition(".")
    return int(digits) if dot and digits else 6


def _handler(log_format: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(_RedactingFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    return handler


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send every log line to stderr at `level`, as text or as JSON lines."""
    root = logging.getLogger()
    root.handlers[:] = [_handler(log_format)]
    root.setLevel(level.upper())
    # httpx logs every outbound request's URL at INFO; a redirected blob's
    # URL may be a signed one, which must never reach a log.
    for noisy in ("sqlalchemy", "alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def granian_json_config(level: str) -> dict[str, Any]:
    """A `logging.dictConfig` for granian's own loggers, in JSON lines."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": _RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "_granian": {
                "handlers": ["console"],
                "level": level.upper(),
                "propagate": False,
            },
            "granian.access": {
                "handlers": ["console"],
                "level": level.upper(),
                "propagate": False,
            },
        },
    }
