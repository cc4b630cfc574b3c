"""Fixtures for the loopback API fakes, and a guard that keeps every test off the real APIs.

- `anthropic_fake`: a `FakeAnthropic` with ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL pointing at it.
  Script answers with `anthropic_fake.reply(...)` / `.fail("overloaded", times=2)`, or set
  `anthropic_fake.responder = lambda request_json: {...}`; read what was sent in `.message_bodies`,
  and `.max_in_flight` for concurrency.
- `airtable_fake`: a `FakeAirtable` with the AIRTABLE_* variables pointing at it. Its rate limit is
  Airtable's 5 requests per window, with the window shortened to 50 ms (and the client's throttle
  raised to match) so tests stay fast; set `rate_window = 1.0` and AIRTABLE_MAX_RPS=5 for real time.
"""

import pytest

from tests.fakes.airtable_server import FAKE_BASE_ID, FAKE_TABLE_ID, FakeAirtable
from tests.fakes.anthropic_server import FakeAnthropic
from utils import ai_prompt, airtable_crud

# Closed loopback port: a client that was not pointed at a fake fails fast instead of going online.
UNREACHABLE_URL = "http://127.0.0.1:9"

_API_ENV = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL", "ANTHROPIC_TIMEOUT",
    "ANTHROPIC_MAX_RETRIES", "ANTHROPIC_PROFILE", "ANTHROPIC_CUSTOM_HEADERS",
    "AIRTABLE_API_KEY", "AIRTABLE_BASE_ID", "AIRTABLE_MESSAGES_TABLE_ID", "AIRTABLE_ENDPOINT_URL",
    "AIRTABLE_MAX_RETRIES", "AIRTABLE_RETRY_BACKOFF", "AIRTABLE_MAX_RPS",
)


@pytest.fixture(autouse=True)
def _isolate_api_clients(monkeypatch, tmp_path):
    """No real credentials, no real endpoints, fresh shared clients, and the call log in tmp_path."""
    for name in _API_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", UNREACHABLE_URL)
    monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", UNREACHABLE_URL)
    ai_prompt.reset_client()
    ai_prompt.configure_call_log(tmp_path / "logs", "test")
    airtable_crud.reset_airtable_client()
    yield
    ai_prompt.reset_client()
    ai_prompt.reset_call_log()
    airtable_crud.reset_airtable_client()


@pytest.fixture
def anthropic_fake(monkeypatch):
    """A running fake Claude API that the real `anthropic` client (via utils.ai_prompt) talks to."""
    fake = FakeAnthropic().start()
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("ANTHROPIC_TIMEOUT", "5")
    ai_prompt.reset_client()
    try:
        yield fake
    finally:
        ai_prompt.reset_client()
        fake.stop()


@pytest.fixture
def airtable_fake(monkeypatch):
    """A running fake Airtable API that the real `pyairtable` client (via utils.airtable_crud) talks to."""
    fake = FakeAirtable().start()
    fake.rate_window = 0.05
    monkeypatch.setenv("AIRTABLE_API_KEY", fake.token)
    monkeypatch.setenv("AIRTABLE_BASE_ID", FAKE_BASE_ID)
    monkeypatch.setenv("AIRTABLE_MESSAGES_TABLE_ID", FAKE_TABLE_ID)
    monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", fake.url)
    monkeypatch.setenv("AIRTABLE_RETRY_BACKOFF", "0.01")
    monkeypatch.setenv("AIRTABLE_MAX_RPS", str(fake.rate_limit / fake.rate_window))
    airtable_crud.reset_airtable_client()
    try:
        yield fake
    finally:
        airtable_crud.reset_airtable_client()
        fake.stop()
