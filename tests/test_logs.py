"""Redaction: secrets and URL query strings never reach a rendered log line."""

from __future__ import annotations

import io
import json

import structlog

from pipeline import logs

URL = ("http://127.0.0.1:8080/_storage/b/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F2026"
       "&X-Amz-Signature=deadbeefcafe")


def test_redact_text_cuts_queries_and_registered_secrets() -> None:
    logs.add_secret("my-very-secret-key")
    text = logs.redact_text(f"PUT {URL} failed; key my-very-secret-key; X-Amz-Signature=abcdef in a header")
    assert "deadbeefcafe" not in text and "my-very-secret-key" not in text and "abcdef" not in text
    assert "http://127.0.0.1:8080/_storage/b/k.jpg?<redacted>" in text


def test_json_lines_are_redacted_in_nested_fields_and_exceptions() -> None:
    logs.add_secret("another-secret-value")
    stream = io.StringIO()
    logs.configure_logging("json", stream=stream)
    try:
        log = structlog.get_logger("t")
        log.info("upload_failed", url=URL, nested={"list": [URL, "another-secret-value"]})
        try:
            raise RuntimeError(f"boom at {URL} with another-secret-value")
        except RuntimeError:
            log.exception("crashed")
    finally:
        logs.configure_logging("console")
    lines = stream.getvalue().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["upload_failed", "crashed"]
    assert "deadbeefcafe" not in stream.getvalue() and "another-secret-value" not in stream.getvalue()
    assert events[0]["nested"]["list"][0].endswith("?<redacted>")


def test_line_sink_receives_lines_while_a_bar_is_shown() -> None:
    got: list[str] = []
    stream = io.StringIO()
    logs.configure_logging("console", stream=stream)
    logs.set_line_sink(got.append)
    try:
        structlog.get_logger("t").info("hello", n=1)
    finally:
        logs.set_line_sink(None)
        logs.configure_logging("console")
    assert len(got) == 1 and "hello" in got[0] and stream.getvalue() == ""
