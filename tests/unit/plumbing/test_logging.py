"""Structured logs: JSON lines with the correlation id bound and secrets masked
(plumbing/logging.py)."""

import io
import json

import pytest

from plumbing.logging import configure_logging, get_logger, register_secrets

pytestmark = pytest.mark.unit


def test_log_lines_are_json_with_correlation_and_without_secrets() -> None:
    out = io.StringIO()
    configure_logging(service="test", stream=out)
    register_secrets("super-secret-value")
    log = get_logger("t")
    log.info("hello", correlation_id="c-1", api_secret="plain", note="has super-secret-value in")
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["event"] == "hello"
    assert line["service"] == "test"
    assert line["correlation_id"] == "c-1"
    assert line["api_secret"] == "***"
    assert "super-secret-value" not in out.getvalue()
