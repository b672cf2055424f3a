import json
import logging

from dockyard.logging import JsonFormatter, _RedactingFilter, request_id


def render(template: str, *args, exc_info=None) -> dict:
    record = logging.LogRecord(
        "dockyard.x", logging.INFO, __file__, 1, template, args, exc_info
    )
    _RedactingFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_json_formatter_turns_template_into_event_and_typed_fields():
    entry = render("upload_done upload_id=%s size=%d ms=%.1f", "u1", 42, 1.234)

    assert entry["event"] == "upload_done"
    assert entry["fields"] == {"upload_id": "u1", "size": 42, "ms": 1.2}


def test_json_formatter_keeps_text_that_is_no_field_as_message():
    entry = render("unknown_setting variable=%s (misspelt? it is ignored)", "X")

    assert entry["message"] == "(misspelt? it is ignored)"


def test_json_formatter_redacts_fields_named_as_secrets():
    entry = render("login user=%s password=%s token=%r", "bob", "hunter2", "t0k")

    assert entry["fields"] == {
        "user": "bob",
        "password": "[redacted]",
        "token": "[redacted]",
    }


def test_text_format_redacts_fields_named_as_secrets():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "login secret=%s n=%d", ("s3cr3t", 3), None
    )

    _RedactingFilter().filter(record)

    assert record.getMessage() == "login secret=[redacted] n=3"


def test_json_formatter_carries_bound_request_id():
    token = request_id.set("abc123")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "evt", (), None)
        entry = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)

    assert entry["request_id"] == "abc123"
