"""utils.ai_prompt with the real anthropic client against the loopback fake Claude API."""

import json
import logging
import threading
import time

import anthropic
import pytest

from tests.fakes.anthropic_server import FAKE_ANTHROPIC_KEY, FakeAnthropic, Reply
from utils import ai_prompt
from utils.ai_prompt import (
    DEFAULT_MODEL,
    ClaudeError,
    ClaudeUnreachableError,
    MissingAPIKeyError,
    call_claude,
    call_claude_with_usage,
    generate_with_quality_check,
    resolve_model,
)
from utils.claude_usage import UsageTotals, price_for
from utils.errors import PipelineError
from utils.json_answer import parse_json_response

CATALOG = "Event 0: Salsa night in Mission.\n" * 40  # ~1,300 characters, a stand-in for step 5's catalog


def read_call_log() -> list[dict]:
    path = ai_prompt.call_log_path()
    assert path is not None and path.exists(), "no call log was written"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- success and what is sent


def test_success_returns_text_and_sends_the_spec_defaults(anthropic_fake):
    anthropic_fake.reply('{"event_index": 2}')

    text = call_claude("Pick an event for Ana.")

    assert text == '{"event_index": 2}'
    body = anthropic_fake.last_body
    assert body["model"] == DEFAULT_MODEL == "claude-sonnet-5-5"
    assert body["max_tokens"] == 4096
    assert body["temperature"] == 0.7  # sent through extra_body: the SDK has no temperature keyword
    assert body["messages"] == [{"role": "user", "content": "Pick an event for Ana."}]
    assert "system" not in body and "output_config" not in body
    sent = anthropic_fake.requests[-1]
    assert sent.path == "/v1/messages" and sent.headers["anthropic-version"]
    assert sent.token == FAKE_ANTHROPIC_KEY  # the key travelled as a header, and only there


def test_sdk_refuses_a_temperature_keyword():
    # Why build_request uses extra_body: anthropic >= 1.0 has no such keyword.
    with pytest.raises(TypeError):
        anthropic.Anthropic(api_key="x", base_url="http://127.0.0.1:9").messages.create(
            model=DEFAULT_MODEL, max_tokens=1, messages=[{"role": "user", "content": "x"}], temperature=0.5)


def test_system_blocks_are_sent_and_cached(anthropic_fake):
    anthropic_fake.reply("first", "second")
    system = [{"type": "text", "text": CATALOG, "cache_control": {"type": "ephemeral"}},
              {"type": "text", "text": "Answer in JSON."}]
    totals = UsageTotals()

    first = call_claude_with_usage("user A", system=system, usage=totals, purpose="match")
    second = call_claude_with_usage("user B", system=system, usage=totals, purpose="match")

    assert anthropic_fake.message_bodies[0]["system"] == system
    assert first.usage.cache_creation_input_tokens == len(CATALOG) // 4
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == len(CATALOG) // 4
    assert second.usage.cache_creation_input_tokens == 0
    assert totals.calls == 2
    assert totals.cache_read_input_tokens == second.usage.cache_read_input_tokens
    assert totals.input_tokens == first.usage.input_tokens + second.usage.input_tokens


def test_system_string_and_model_argument(anthropic_fake):
    anthropic_fake.reply("ok")
    call_claude("hi", model="claude-haiku-4-5", temperature=None, max_tokens=50, system="Be brief.")
    body = anthropic_fake.last_body
    assert (body["model"], body["max_tokens"], body["system"]) == ("claude-haiku-4-5", 50, "Be brief.")
    assert "temperature" not in body


def test_json_schema_is_sent_as_structured_output(anthropic_fake):
    schema = {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"],
              "additionalProperties": False}
    anthropic_fake.reply({"message": "Hi Ana!"})

    result = call_claude_with_usage("write", json_schema=schema, purpose="write")

    assert anthropic_fake.last_body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert result.structured is True
    assert json.loads(result.text) == {"message": "Hi Ana!"}


def test_thinking_blocks_are_left_out_of_the_text(anthropic_fake):
    anthropic_fake.thinking = "Let me think about Ana's interests..."
    anthropic_fake.reply("the answer")
    assert call_claude("q") == "the answer"


def test_cut_off_answer_is_reported(anthropic_fake, caplog):
    anthropic_fake.reply(Reply('{"message": "Hi An', stop_reason="max_tokens"))
    with caplog.at_level(logging.WARNING, logger="utils.ai_prompt"):
        result = call_claude_with_usage("hi", max_tokens=5)
    assert result.stop_reason == "max_tokens"
    assert "cut off at max_tokens=5" in caplog.text


# --------------------------------------------------------------------------- model choice


def test_resolve_model_precedence(monkeypatch):
    assert resolve_model() == DEFAULT_MODEL
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-sonnet-4-6")
    assert resolve_model() == "claude-sonnet-4-6"
    assert resolve_model("claude-haiku-4-5") == "claude-haiku-4-5"
    assert resolve_model("  ") == "claude-sonnet-4-6"


def test_anthropic_model_env_reaches_the_request(anthropic_fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-sonnet-4-6")
    anthropic_fake.reply("ok")
    assert call_claude_with_usage("hi").model == "claude-sonnet-4-6"
    assert anthropic_fake.last_body["model"] == "claude-sonnet-4-6"


def test_default_model_is_a_current_sonnet_the_sdk_knows():
    from anthropic.types.model_param import ModelParam

    known = ModelParam.__args__[0].__args__
    deprecated = __import__("anthropic.resources.messages.messages", fromlist=["x"]).DEPRECATED_MODELS
    assert DEFAULT_MODEL in known
    assert DEFAULT_MODEL not in deprecated
    assert "sonnet" in DEFAULT_MODEL
    assert price_for(DEFAULT_MODEL) is not None


# --------------------------------------------------------------------------- retries and errors


@pytest.mark.parametrize("kind,status", [("rate_limit", 429), ("overloaded", 529), ("server_error", 500)])
def test_retried_failures_then_success(anthropic_fake, kind, status):
    anthropic_fake.fail(kind, times=2)
    anthropic_fake.reply("finally")

    assert call_claude("hi") == "finally"

    assert len(anthropic_fake.message_bodies) == 3
    retry_counts = [r.headers.get("x-stainless-retry-count") for r in anthropic_fake.requests]
    assert retry_counts == ["0", "1", "2"]


@pytest.mark.parametrize("kind,words", [
    ("rate_limit", ["429", "rate limited", "fewer worker threads"]),
    ("overloaded", ["overloaded (529)", "try again later"]),
    ("server_error", ["server error (500 api_error)", "try again later"]),
])
def test_exhausted_retries_give_a_clear_error(anthropic_fake, monkeypatch, kind, words):
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "2")
    anthropic_fake.fail(kind, times=5)

    with pytest.raises(ClaudeError) as caught:
        call_claude("hi")

    message = str(caught.value)
    for word in words:
        assert word in message.lower() or word in message
    assert "after 2 retries" in message
    assert "request id req_fake" in message
    assert isinstance(caught.value, PipelineError)
    assert isinstance(caught.value.__cause__, anthropic.APIStatusError)
    assert len(anthropic_fake.message_bodies) == 3  # first try + 2 retries
    assert read_call_log()[-1]["error"] == message


def test_bad_request_is_not_retried(anthropic_fake):
    anthropic_fake.fail("bad_request", message="messages.0.content: text is too long")
    with pytest.raises(ClaudeError, match=r"rejected the request \(400 invalid_request_error\).*text is too long"):
        call_claude("hi")
    assert len(anthropic_fake.requests) == 1


def test_wrong_key_gives_a_clear_error(anthropic_fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-wrong-key-SECRET")
    with pytest.raises(ClaudeError, match="rejected the key.*ANTHROPIC_API_KEY") as caught:
        call_claude("hi")
    assert "test-wrong-key-SECRET" not in str(caught.value)
    assert caught.value.status_code == 401


def test_unknown_model_names_the_model(anthropic_fake):
    anthropic_fake.fail("not_found", message="model: claude-nonexistent")
    with pytest.raises(ClaudeError, match="does not know model 'claude-nonexistent'.*ANTHROPIC_MODEL or --model"):
        call_claude("hi", model="claude-nonexistent")


def test_malformed_body_gives_a_clear_error(anthropic_fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "0")
    anthropic_fake.fail("malformed")
    with pytest.raises(ClaudeError, match="not a valid message"):
        call_claude("hi")


def test_timeout_gives_a_clear_error(anthropic_fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_TIMEOUT", "0.3")
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "0")
    anthropic_fake.reply(Reply("late", delay=1.5))
    with pytest.raises(ClaudeError, match=r"did not answer within 0.3 s.*ANTHROPIC_TIMEOUT"):
        call_claude("hi")


def test_connection_failure_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "0")  # ANTHROPIC_BASE_URL is a closed port (conftest)
    with pytest.raises(ClaudeError, match=r"could not connect to the Claude API at http://127.0.0.1:9.*BASE_URL"):
        call_claude("hi")


# --------------------------------------------------------------------------- Claude unreachable

CLOSED_PORT_KEY = "wrong-anthropic-key-for-tests"


def test_closed_port_three_calls_in_a_row_make_claude_unreachable(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", CLOSED_PORT_KEY)  # ANTHROPIC_BASE_URL is a closed port (conftest)
    tracker = ai_prompt.connection_tracker()
    started = time.monotonic()

    for expected_failures in (1, 2):
        with pytest.raises(ClaudeError) as caught:
            call_claude("hi")
        assert not isinstance(caught.value, ClaudeUnreachableError)
        assert "tried 2 times" in str(caught.value)  # one SDK retry, not ANTHROPIC_MAX_RETRIES (4)
        assert tracker.failures == expected_failures
    with pytest.raises(ClaudeUnreachableError) as caught:
        call_claude("hi")
    elapsed = time.monotonic() - started

    error = caught.value
    assert isinstance(error, PipelineError) and error.failures == 3 and error.status_code is None
    assert str(error).startswith("Claude is unreachable (3 calls in a row could not connect): could not connect "
                                 "to the Claude API at http://127.0.0.1:9")
    assert str(error).endswith("Check the network and ANTHROPIC_BASE_URL, then re-run")
    # Before the cap: 5 attempts and ~7.5 s of SDK backoff per call. Generous: 3 calls take ~1.5 s.
    assert elapsed < 6
    assert len(read_call_log()) == 3


def test_once_unreachable_calls_fail_before_sending_until_reset(anthropic_fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "0")  # one attempt per call keeps the counting plain
    anthropic_fake.fail("disconnect", times=3)
    for _ in range(3):
        with pytest.raises(ClaudeError):
            call_claude("hi")
    assert len(anthropic_fake.message_bodies) == 3

    with pytest.raises(ClaudeUnreachableError, match="3 calls in a row"):
        call_claude("hi")
    assert len(anthropic_fake.message_bodies) == 3  # nothing sent

    ai_prompt.connection_tracker().reset()
    anthropic_fake.reply("back")
    assert call_claude("hi") == "back"


def test_connection_failures_are_retried_once_by_the_sdk(anthropic_fake):
    anthropic_fake.fail("disconnect", times=3)  # ANTHROPIC_MAX_RETRIES is the default, 4
    with pytest.raises(ClaudeError, match=r"could not connect .*\(tried 2 times\)"):
        call_claude("hi")
    assert len(anthropic_fake.message_bodies) == 1 + ai_prompt.CONNECTION_RETRIES == 2

    anthropic_fake.reply("made it")  # the third dropped connection, then an answer
    assert call_claude("hi") == "made it"
    assert len(anthropic_fake.message_bodies) == 4
    assert ai_prompt.connection_tracker().failures == 0


def test_any_answer_resets_the_count(anthropic_fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "0")  # one attempt, so one scripted failure, per call
    tracker = ai_prompt.connection_tracker()
    anthropic_fake.fail("disconnect", times=2)
    anthropic_fake.reply("ok")
    for _ in range(2):
        with pytest.raises(ClaudeError):
            call_claude("hi")
    assert tracker.failures == 2
    assert call_claude("hi") == "ok"
    assert tracker.failures == 0

    # An HTTP error is an answer too: the endpoint is there.
    anthropic_fake.fail("disconnect", times=2)
    anthropic_fake.fail("bad_request")
    for _ in range(2):
        with pytest.raises(ClaudeError):
            call_claude("hi")
    with pytest.raises(ClaudeError, match="rejected the request") as caught:
        call_claude("hi")
    assert not isinstance(caught.value, ClaudeUnreachableError) and tracker.failures == 0

    # So only the failures after it count: two more are not yet three in a row, the third is.
    anthropic_fake.fail("disconnect", times=3)
    for _ in range(2):
        with pytest.raises(ClaudeError) as caught:
            call_claude("hi")
        assert not isinstance(caught.value, ClaudeUnreachableError)
    with pytest.raises(ClaudeUnreachableError):
        call_claude("hi")


def test_rate_limits_never_make_claude_unreachable(anthropic_fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "0")
    anthropic_fake.fail("rate_limit", times=5)
    for _ in range(5):
        with pytest.raises(ClaudeError, match="429") as caught:
            call_claude("hi")
        assert not isinstance(caught.value, ClaudeUnreachableError)
    assert ai_prompt.connection_tracker().failures == 0


def test_a_read_timeout_neither_counts_nor_resets(anthropic_fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_TIMEOUT", "0.3")
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "0")
    anthropic_fake.fail("disconnect")
    with pytest.raises(ClaudeError, match="could not connect"):
        call_claude("hi")
    anthropic_fake.reply(Reply("late", delay=1.0))
    with pytest.raises(ClaudeError, match="did not answer within 0.3 s"):
        call_claude("hi")
    assert ai_prompt.connection_tracker().failures == 1


def test_concurrent_failures_trip_the_threshold_exactly_once(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", CLOSED_PORT_KEY)
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "0")
    errors: list[ClaudeError] = []
    lock = threading.Lock()

    def ask():
        try:
            call_claude("hi")
        except ClaudeError as exc:
            with lock:
                errors.append(exc)

    workers = [threading.Thread(target=ask) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    unreachable = [e for e in errors if isinstance(e, ClaudeUnreachableError)]
    assert len(errors) == 6 and len(unreachable) == 4
    assert all(e.failures >= 3 for e in unreachable)


def test_connect_timeouts_count_and_read_timeouts_do_not():
    import httpx2  # the SDK's transport; only to build the errors it raises

    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/messages")

    def timeout_caused_by(cause):
        try:
            raise anthropic.APITimeoutError(request=request) from cause
        except anthropic.APITimeoutError as exc:
            return exc

    assert ai_prompt._is_connection_failure(timeout_caused_by(httpx2.ConnectTimeout("connect")))
    assert not ai_prompt._is_connection_failure(timeout_caused_by(httpx2.ReadTimeout("read")))
    assert ai_prompt._is_connection_failure(anthropic.APIConnectionError(request=request))
    assert not ai_prompt._is_connection_failure(ValueError("x"))


def test_tracker_counts_from_many_threads_and_needs_a_positive_threshold():
    tracker = ai_prompt.ConnectionTracker(threshold=40)
    results = []

    def fail_ten_times():
        for _ in range(10):
            results.append(tracker.record_failure("down"))

    workers = [threading.Thread(target=fail_ten_times) for _ in range(5)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert tracker.failures == 50
    assert sum(result is None for result in results) == 39
    assert str(tracker.unreachable_error()) == "down"
    tracker.record_answer()
    assert tracker.failures == 0 and tracker.unreachable_error() is None
    with pytest.raises(ValueError, match="positive integer"):
        ai_prompt.ConnectionTracker(threshold=0)


def test_invalid_timeout_setting_is_reported(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_TIMEOUT", "soon")
    with pytest.raises(PipelineError, match="ANTHROPIC_TIMEOUT must be a number of seconds"):
        call_claude("hi")


def test_missing_key_raises_value_error_before_any_request(anthropic_fake, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ValueError, match=r"ANTHROPIC_API_KEY is not set.*environment.*\.env") as caught:
        call_claude("hi")
    assert isinstance(caught.value, MissingAPIKeyError) and isinstance(caught.value, PipelineError)
    assert anthropic_fake.requests == []


def test_invalid_arguments_fail_before_any_request(anthropic_fake):
    with pytest.raises(ValueError, match="system block 0"):
        call_claude("hi", system=[{"text": "no type"}])
    with pytest.raises(ValueError, match="temperature"):
        call_claude("hi", temperature=3)
    with pytest.raises(ValueError, match="prompt"):
        call_claude("  ")
    assert anthropic_fake.requests == []


# --------------------------------------------------------------------------- fallbacks


def test_temperature_fallback_retries_once_and_is_remembered(anthropic_fake, caplog):
    anthropic_fake.reject_temperature = True
    anthropic_fake.reply("one", "two")

    with caplog.at_level(logging.WARNING, logger="utils.ai_prompt"):
        first = call_claude_with_usage("hi", temperature=0.9)
        second = call_claude_with_usage("again", temperature=0.9)

    assert (first.text, second.text) == ("one", "two")
    bodies = anthropic_fake.message_bodies
    assert [("temperature" in b) for b in bodies] == [True, False, False]  # one rejected, then never sent
    assert first.sent_temperature is False and second.sent_temperature is False
    warnings = [r for r in caplog.records if "rejected temperature" in r.getMessage()]
    assert len(warnings) == 1
    assert read_call_log()[0]["temperature"] is None


def test_temperature_fallback_is_per_model(anthropic_fake):
    anthropic_fake.reject_temperature = True
    anthropic_fake.reply("a", "b")
    call_claude("hi", model="claude-sonnet-5-5")
    anthropic_fake.reject_temperature = False
    call_claude("hi", model="claude-sonnet-4-6")
    assert anthropic_fake.last_body["temperature"] == 0.7


def test_structured_output_fallback_keeps_parsing_working(anthropic_fake, caplog):
    anthropic_fake.reject_structured_outputs = True
    anthropic_fake.reply('Sure! ```json\n{"approved": true}\n```', '{"approved": false}')
    schema = {"type": "object", "properties": {"approved": {"type": "boolean"}}}

    with caplog.at_level(logging.WARNING, logger="utils.ai_prompt"):
        first = call_claude_with_usage("check", json_schema=schema, purpose="check")
        second = call_claude_with_usage("check", json_schema=schema, purpose="check")

    assert parse_json_response(first.text) == {"approved": True}
    assert first.structured is False and second.structured is False
    assert ["output_config" in b for b in anthropic_fake.message_bodies] == [True, False, False]
    assert len([r for r in caplog.records if "rejected structured outputs" in r.getMessage()]) == 1


def test_a_bad_schema_is_an_error_not_a_fallback(anthropic_fake):
    anthropic_fake.fail("bad_request", message="output_config.format.schema: For 'object' type, "
                                               "'additionalProperties' must be explicitly set to false")
    with pytest.raises(ClaudeError, match="additionalProperties"):
        call_claude("hi", json_schema={"type": "object"})
    anthropic_fake.reply('{"ok": 1}')
    call_claude("hi", json_schema={"type": "object"})
    assert "output_config" in anthropic_fake.last_body  # structured outputs were not given up


def test_both_fallbacks_in_one_call(anthropic_fake):
    anthropic_fake.reject_temperature = True
    anthropic_fake.reject_structured_outputs = True
    anthropic_fake.reply('{"ok": 1}')
    assert call_claude("hi", json_schema={"type": "object"}) == '{"ok": 1}'
    last = anthropic_fake.last_body
    assert "temperature" not in last and "output_config" not in last
    assert len(anthropic_fake.message_bodies) == 3


# --------------------------------------------------------------------------- call log, key, logger


def test_call_log_records_every_call_and_never_the_key(anthropic_fake, monkeypatch, caplog):
    system = [{"type": "text", "text": "Catalog", "cache_control": {"type": "ephemeral"}}]
    anthropic_fake.reply('{"event_index": 1}')
    step_logger = logging.getLogger("pipeline.test_call_log")
    with caplog.at_level(logging.DEBUG):
        call_claude("match prompt", system=system, purpose="match", step="match_message", logger=step_logger)
        anthropic_fake.fail("bad_request")
        with pytest.raises(ClaudeError):
            call_claude("write prompt", purpose="write", step="match_message", logger=step_logger)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong-SECRET-2")
        with pytest.raises(ClaudeError):
            call_claude("check prompt", purpose="check", step="match_message")

    lines = read_call_log()
    assert [line["purpose"] for line in lines] == ["match", "write", "check"]
    first = lines[0]
    assert first["step"] == "match_message" and first["model"] == DEFAULT_MODEL
    assert first["system"] == "Catalog" and first["prompt"] == "match prompt"
    assert first["response"] == '{"event_index": 1}'
    assert set(first["usage"]) >= {"input_tokens", "output_tokens", "cache_creation_input_tokens",
                                   "cache_read_input_tokens"}
    assert isinstance(first["duration_ms"], int) and first["time"].endswith("Z")
    assert lines[1]["response"] is None and "400" in lines[1]["error"]
    text = ai_prompt.call_log_path().read_text(encoding="utf-8")
    for secret in (FAKE_ANTHROPIC_KEY, "sk-ant-wrong-SECRET-2"):
        assert secret not in text
        assert secret not in caplog.text
    # The spec's logger argument: prompt and response are logged to it.
    logged = [r.getMessage() for r in caplog.records if r.name == "pipeline.test_call_log"]
    assert any("match prompt" in m for m in logged) and any('{"event_index": 1}' in m for m in logged)


def test_configure_call_log_names_the_file(anthropic_fake, tmp_path):
    path = ai_prompt.configure_call_log(tmp_path / "run", "20261125_120000")
    assert path == tmp_path / "run" / "claude_calls_20261125_120000.jsonl"
    anthropic_fake.reply("ok")
    call_claude("hi")
    assert len(path.read_text().splitlines()) == 1


# --------------------------------------------------------------------------- client, threads, usage


def test_one_client_is_reused_and_follows_the_base_url(anthropic_fake, monkeypatch):
    first = ai_prompt.get_client()
    assert ai_prompt.get_client() is first
    assert str(first.base_url).startswith(anthropic_fake.url)
    assert first.max_retries == ai_prompt.DEFAULT_MAX_RETRIES
    assert first.timeout.read == 5.0  # ANTHROPIC_TIMEOUT from the fixture, not the SDK's 10 minutes

    with FakeAnthropic() as other:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", other.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", other.api_key)
        other.reply("from the other fake")
        assert call_claude("hi") == "from the other fake"
        assert ai_prompt.get_client() is not first
    assert anthropic_fake.requests == []


def test_concurrent_calls_share_one_client(anthropic_fake):
    # A whole second per answer, so that on a loaded 2-core machine the 12 threads still overlap.
    anthropic_fake.latency = 1.0
    anthropic_fake.responder = lambda body: {"echo": body["messages"][0]["content"]}
    totals = UsageTotals()
    results: dict[int, str] = {}
    clients = set()

    def work(index: int) -> None:
        clients.add(id(ai_prompt.get_client()))
        results[index] = call_claude(f"user {index}", usage=totals)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {i: json.loads(text)["echo"] for i, text in results.items()} == {i: f"user {i}" for i in range(12)}
    assert len(clients) == 1
    assert anthropic_fake.max_in_flight >= 8
    assert totals.calls == 12 and len(read_call_log()) == 12


# --------------------------------------------------------------------------- generate_with_quality_check


def test_generate_with_quality_check(anthropic_fake):
    anthropic_fake.reply("Hi Ana! Salsa tonight?", '{"approved": true}')
    totals = UsageTotals()

    result = generate_with_quality_check(
        "Write an SMS for Ana.",
        'Check this SMS: {initial_response}\nAnswer {"approved": bool}.',
        usage=totals, step="match_message")

    assert result == {"initial_response": "Hi Ana! Salsa tonight?",
                      "quality_check_response": '{"approved": true}', "iterations": 1}
    check_prompt = anthropic_fake.message_bodies[1]["messages"][0]["content"]
    assert check_prompt == 'Check this SMS: Hi Ana! Salsa tonight?\nAnswer {"approved": bool}.'
    assert [line["purpose"] for line in read_call_log()] == ["write", "check"]
    assert totals.calls == 2


def test_generate_with_quality_check_needs_the_placeholder(anthropic_fake):
    with pytest.raises(ValueError, match="initial_response"):
        generate_with_quality_check("write", "check without placeholder")
    assert anthropic_fake.requests == []


# --------------------------------------------------------------------------- the fake itself


def test_fake_answers_unknown_routes_and_unscripted_requests_with_errors(anthropic_fake):
    client = ai_prompt.get_client()
    with pytest.raises(anthropic.NotFoundError):
        client.models.list()
    with pytest.raises(ClaudeError, match="418.*no scripted answer"):
        call_claude("nothing scripted")


def test_fake_rejects_fields_the_api_does_not_know(anthropic_fake):
    client = ai_prompt.get_client()
    with pytest.raises(anthropic.BadRequestError, match="temprature: Extra inputs are not permitted"):
        client.messages.create(model=DEFAULT_MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}],
                               extra_body={"temprature": 0.5})
