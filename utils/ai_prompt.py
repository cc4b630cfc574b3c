"""Claude calls for the pipeline: one shared client, clear errors, a call log, and "Claude is unreachable".

Building a request (`build_request`) is kept apart from sending it (`call_claude_with_usage`).
The SDK does the retrying (429, 529 and 5xx, honouring `retry-after`; a failed connection only once);
this module turns what is left into a `ClaudeError` a person can act on, stops with a
`ClaudeUnreachableError` after several calls in a row could not connect, and works around two API
changes the spec predates: `temperature` travels in `extra_body`, and a model that rejects it (or
structured outputs) is retried once without it, remembered for the rest of the process.
Tokens and prices live in `utils.claude_usage`, reading JSON answers in `utils.json_answer`.
"""

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import anthropic

from utils.claude_usage import CallUsage, UsageTotals
from utils.dates import to_iso, utc_now
from utils.env_numbers import env_number
from utils.errors import PipelineError
from utils.log import run_timestamp as make_run_timestamp
from utils.paths import DEFAULT_LOG_DIR, ENV_FILE


# The newest Sonnet that anthropic 2.10.0 knows and does not list as deprecated
# (see docs/api-wrappers.md, "Model"). One constant; ANTHROPIC_MODEL and --model override it.
DEFAULT_MODEL = "claude-sonnet-5-5"

API_KEY_ENV = "ANTHROPIC_API_KEY"
MODEL_ENV = "ANTHROPIC_MODEL"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
TIMEOUT_ENV = "ANTHROPIC_TIMEOUT"
MAX_RETRIES_ENV = "ANTHROPIC_MAX_RETRIES"

DEFAULT_TEMPERATURE = 0.7
DEFAULT_MAX_TOKENS = 4096
# The SDK's default is 10 minutes per request; a 4k-token answer never needs that long, and a
# stuck request should fail (and be retried) rather than hold a worker thread.
DEFAULT_TIMEOUT_SECONDS = 60.0
# Connecting (TCP and TLS) takes well under a second on a working network; a host that swallows
# packets is given up on after 5 s per attempt, so an unreachable Claude shows within seconds.
CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_RETRIES = 4
# A call that cannot connect is retried this often by the SDK (enough for a stale keep-alive
# connection), not ANTHROPIC_MAX_RETRIES times: a refusing endpoint then costs about 0.5 s per call,
# not 6 to 7 s. Answers (429, 529, 5xx) keep ANTHROPIC_MAX_RETRIES. See docs/api-wrappers.md, "Retries".
CONNECTION_RETRIES = 1
# This many calls in a row that could not connect make Claude "unreachable" (issue 11 §4).
UNREACHABLE_AFTER = 3

TEMPERATURE = "temperature"
STRUCTURED_OUTPUTS = "structured outputs"

SystemPrompt = Union[str, Sequence[Mapping[str, Any]]]

_module_logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- errors


class MissingAPIKeyError(PipelineError, ValueError):
    """ANTHROPIC_API_KEY is not set. A ValueError, as the spec says, and a PipelineError for main()."""


class ClaudeError(PipelineError):
    """A Claude call failed after the SDK's retries; the message says what happened and what to do.

    Attributes:
        status_code: The HTTP status of the last answer, or None (connection failure, timeout).
        error_type: The API's `error.type`, e.g. "overloaded_error", or None.
        request_id: The API's request id of the last answer, if any.
    """

    def __init__(self, message: str, *, status_code: Optional[int] = None,
                 error_type: Optional[str] = None, request_id: Optional[str] = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.request_id = request_id


@dataclass(frozen=True)
class ClaudeResult:
    """One answer from Claude.

    Attributes:
        text: The answer's text blocks joined (thinking blocks are left out).
        usage: Tokens and duration of the call, fallback retries included.
        model: The model that answered.
        duration_ms: Wall time of the whole call, SDK retries included.
        stop_reason: E.g. "end_turn"; "max_tokens" means the text was cut off.
        request_id: The API's request id, for support tickets.
        sent_temperature: Whether the temperature was sent (False after the fallback).
        structured: Whether the JSON schema was sent as structured output.
    """

    text: str
    usage: CallUsage
    model: str
    duration_ms: int
    stop_reason: Optional[str] = None
    request_id: Optional[str] = None
    sent_temperature: bool = False
    structured: bool = False


class ClaudeUnreachableError(ClaudeError):
    """Several Claude calls in a row could not connect: stop the run rather than grind through it.

    Raised by the call that reaches `UNREACHABLE_AFTER` connection failures in a row, and from then on
    by every call, before anything is sent, until `connection_tracker().reset()`.

    Attributes:
        failures: How many calls in a row could not connect.
    """

    def __init__(self, message: str, *, failures: int) -> None:
        super().__init__(message)
        self.failures = failures


# --------------------------------------------------------------------------- unreachable Claude


class ConnectionTracker:
    """Counts Claude calls in a row that got no HTTP answer at all; safe to share between threads.

    Any answer, an error status such as 429 or 500 included, resets the count: the endpoint is
    there. A read timeout neither counts nor resets: the server took the request but was slow.

    Attributes:
        threshold: Failures in a row that make Claude unreachable.
    """

    def __init__(self, threshold: int = UNREACHABLE_AFTER) -> None:
        if not isinstance(threshold, int) or threshold < 1:
            raise ValueError(f"threshold must be a positive integer, got {threshold!r}")
        self.threshold = threshold
        self._lock = threading.Lock()
        self._failures = 0
        self._message: Optional[str] = None

    @property
    def failures(self) -> int:
        """Calls in a row that could not connect."""
        with self._lock:
            return self._failures

    def unreachable_error(self) -> Optional[ClaudeUnreachableError]:
        """The error to raise if the threshold has been reached, else None."""
        with self._lock:
            if self._failures < self.threshold:
                return None
            return ClaudeUnreachableError(self._message or "the Claude API is unreachable", failures=self._failures)

    def record_failure(self, message: str) -> Optional[ClaudeUnreachableError]:
        """Count one call that could not connect.

        Args:
            message: What went wrong, used in the error once the threshold is reached.

        Returns:
            The `ClaudeUnreachableError` to raise if this failure reached the threshold, else None.
        """
        with self._lock:
            self._failures += 1
            if self._failures < self.threshold:
                return None
            if self._message is None:
                self._message = message
            # This call's own count, read under the lock, so exactly the calls from the threshold on raise.
            return ClaudeUnreachableError(self._message, failures=self._failures)

    def record_answer(self) -> None:
        """An answer came back: the endpoint is reachable, so the count starts again."""
        with self._lock:
            self._failures = 0
            self._message = None

    def reset(self) -> None:
        """Forget the failures (after fixing the network, or in tests)."""
        self.record_answer()


_connection_tracker = ConnectionTracker()


def connection_tracker() -> ConnectionTracker:
    """The process's one `ConnectionTracker`, shared by every Claude call.

    Returns:
        The tracker.
    """
    return _connection_tracker


def _is_connection_failure(exc: BaseException) -> bool:
    """True when no HTTP answer came back: refused, DNS, reset, or a connect (not read) timeout."""
    if isinstance(exc, _ConnectionGaveUp):
        return True
    if not isinstance(exc, anthropic.APIConnectionError):
        return False
    if isinstance(exc, anthropic.APITimeoutError):
        # httpx2 is the SDK's own transport, not one of our dependencies: compare the class name.
        return type(exc.__cause__).__name__ in ("ConnectTimeout", "PoolTimeout")
    return True


class _ConnectionGaveUp(anthropic.AnthropicError):
    """A connection failure the SDK must not retry again; carries the SDK's error as `error`."""

    def __init__(self, error: anthropic.APIConnectionError) -> None:
        super().__init__(str(error))
        self.error = error


def _cap_connection_retries(request: Any, call_next: Any) -> Any:
    """SDK middleware: let the SDK retry a connection failure `CONNECTION_RETRIES` times at most.

    The SDK retries connection errors as often as 429s (ANTHROPIC_MAX_RETRIES, with backoff). An
    error that is not an `APIConnectionError` (and has none as `__cause__`) is not retried, so
    after the allowed retries the failure is handed on wrapped, and unwrapped by the call function.
    """
    try:
        return call_next(request)
    except anthropic.APIConnectionError as exc:
        if _is_connection_failure(exc) and request.retries_taken >= CONNECTION_RETRIES:
            raise _ConnectionGaveUp(exc) from None
        raise


# --------------------------------------------------------------------------- model and client


def resolve_model(cli_value: Optional[str] = None) -> str:
    """The model to use: the --model value, else ANTHROPIC_MODEL, else `DEFAULT_MODEL`.

    Args:
        cli_value: The value of a --model flag, or None.

    Returns:
        A model id.
    """
    for candidate in (cli_value, os.environ.get(MODEL_ENV)):
        if candidate and candidate.strip():
            return candidate.strip()
    return DEFAULT_MODEL


def add_model_argument(parser: Any) -> None:
    """Add the --model flag to a step's argument parser.

    Args:
        parser: An `argparse.ArgumentParser`.
    """
    parser.add_argument(
        "--model", default=None, metavar="ID",
        help=f"Claude model id (default: ${MODEL_ENV}, else {DEFAULT_MODEL})",
    )


@dataclass(frozen=True)
class _ClientSettings:
    api_key: str = field(repr=False)
    base_url: Optional[str]
    timeout: float
    max_retries: int


def _client_settings() -> _ClientSettings:
    api_key = os.environ.get(API_KEY_ENV, "").strip()
    if not api_key:
        raise MissingAPIKeyError(
            f"{API_KEY_ENV} is not set: set it in the environment (export {API_KEY_ENV}=...) "
            f"or in .env ({ENV_FILE})"
        )
    return _ClientSettings(
        api_key=api_key,
        base_url=os.environ.get(BASE_URL_ENV, "").strip() or None,
        timeout=env_number(TIMEOUT_ENV, DEFAULT_TIMEOUT_SECONDS, float, 0, exclusive=True, unit="seconds"),
        max_retries=env_number(MAX_RETRIES_ENV, DEFAULT_MAX_RETRIES, int, 0),
    )


_client_lock = threading.Lock()
_client: Optional[anthropic.Anthropic] = None
_client_key: Optional[_ClientSettings] = None

# Parameters a model rejected in this process: {model: {TEMPERATURE, STRUCTURED_OUTPUTS}}.
_fallback_lock = threading.Lock()
_unsupported: dict[str, set[str]] = {}


def get_client() -> anthropic.Anthropic:
    """The process's one Anthropic client, built on first use and shared by all threads.

    It is rebuilt only when its settings (key, ANTHROPIC_BASE_URL, ANTHROPIC_TIMEOUT,
    ANTHROPIC_MAX_RETRIES) change, which in practice happens only in tests.

    Returns:
        The client.

    Raises:
        MissingAPIKeyError: ANTHROPIC_API_KEY is not set (before any network call).
        PipelineError: ANTHROPIC_TIMEOUT or ANTHROPIC_MAX_RETRIES is not a valid number.
    """
    return _client_and_settings()[0]


def _client_and_settings() -> tuple[anthropic.Anthropic, _ClientSettings]:
    """The shared client and the settings it was built with (one lookup, so they match)."""
    global _client, _client_key
    settings = _client_settings()
    with _client_lock:
        if _client is None or _client_key != settings:
            old = _client
            _client = anthropic.Anthropic(
                api_key=settings.api_key,
                base_url=settings.base_url,
                timeout=anthropic.Timeout(settings.timeout, connect=min(CONNECT_TIMEOUT_SECONDS, settings.timeout)),
                max_retries=settings.max_retries,
                middleware=[_cap_connection_retries],
            )
            _client_key = settings
            if old is not None:
                old.close()
        return _client, settings


def reset_client() -> None:
    """Forget the shared client, which parameters models rejected, and connection failures (for tests)."""
    global _client, _client_key
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None
        _client_key = None
    with _fallback_lock:
        _unsupported.clear()
    _connection_tracker.reset()


def _is_unsupported(model: str, parameter: str) -> bool:
    with _fallback_lock:
        return parameter in _unsupported.get(model, ())


def _remember_unsupported(model: str, parameter: str, api_message: str, logger: logging.Logger) -> None:
    with _fallback_lock:
        rejected = _unsupported.setdefault(model, set())
        first_time = parameter not in rejected
        rejected.add(parameter)
    if first_time:
        logger.warning("Claude model %s rejected %s (%s); sending requests without it for the rest of this run",
                       model, parameter, api_message)


# --------------------------------------------------------------------------- call log

_log_lock = threading.Lock()
_call_log_path: Optional[Path] = None


def configure_call_log(log_dir: Optional[Path] = None, run_timestamp: Optional[str] = None) -> Path:
    """Choose this run's call log file, `<log_dir>/claude_calls_<run_timestamp>.jsonl`.

    Without a call to this function the first Claude call opens one under `logs/` itself.

    Args:
        log_dir: The folder (created if missing); default the repo's logs/.
        run_timestamp: The run's `YYYYMMDD_HHMMSS` stamp, so the file sits next to the step's log;
            default the current local time.

    Returns:
        The path that later calls append to.
    """
    global _call_log_path
    stamp = run_timestamp or make_run_timestamp()
    path = Path(log_dir or DEFAULT_LOG_DIR) / f"claude_calls_{stamp}.jsonl"
    with _log_lock:
        _call_log_path = path
    return path


def call_log_path() -> Optional[Path]:
    """The current call log file, or None before the first call or `configure_call_log`."""
    with _log_lock:
        return _call_log_path


def reset_call_log() -> None:
    """Forget the call log file, so the next call opens a new one (for tests)."""
    global _call_log_path
    with _log_lock:
        _call_log_path = None


def _write_call_log(entry: dict) -> None:
    global _call_log_path
    line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
    with _log_lock:
        if _call_log_path is None:
            _call_log_path = DEFAULT_LOG_DIR / f"claude_calls_{make_run_timestamp()}.jsonl"
        try:
            _call_log_path.parent.mkdir(parents=True, exist_ok=True)
            # One write() of one line in append mode, under the lock: lines never interleave.
            with _call_log_path.open("a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError as exc:
            # Losing an audit line must not lose the answer the run paid for.
            _module_logger.error("cannot write the Claude call log %s: %s", _call_log_path, exc.strerror or exc)


# --------------------------------------------------------------------------- request and call


def _check_system(system: Optional[SystemPrompt]) -> Optional[SystemPrompt]:
    if system is None or isinstance(system, str):
        return system
    if not isinstance(system, (list, tuple)):
        raise ValueError("system must be a string or a list of text blocks")
    blocks = []
    for index, block in enumerate(system):
        if not isinstance(block, Mapping) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise ValueError(f"system block {index} must be a dict like {{'type': 'text', 'text': '...'}}")
        blocks.append(dict(block))
    return blocks


def build_request(prompt: str, *, model: str, max_tokens: int, temperature: Optional[float] = None,
                  system: Optional[SystemPrompt] = None, json_schema: Optional[Mapping[str, Any]] = None) -> dict:
    """The keyword arguments of one `client.messages.create` call; sends nothing.

    Args:
        prompt: The user message.
        model: The model id.
        max_tokens: The answer's token limit.
        temperature: Sent through `extra_body` (the SDK has no `temperature` keyword since 1.0);
            None leaves it out.
        system: A system prompt string, or text blocks, which may carry
            `"cache_control": {"type": "ephemeral"}` for prompt caching.
        json_schema: A JSON schema sent as structured output
            (`output_config={"format": {"type": "json_schema", "schema": …}}`); None leaves it out.

    Returns:
        The kwargs dict.
    """
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": prompt}],
    }
    if system is not None:
        kwargs["system"] = system
    if json_schema is not None:
        kwargs["output_config"] = {"format": {"type": "json_schema", "schema": dict(json_schema)}}
    if temperature is not None:
        kwargs["extra_body"] = {"temperature": temperature}
    return kwargs


def _rejected_parameter(exc: anthropic.BadRequestError, sent_temperature: bool, sent_schema: bool) -> Optional[str]:
    """Which parameter a 400 complains about, if it is one we can drop."""
    text = f"{exc.api_message or ''} {exc.message}".lower()
    if sent_temperature and ("temperature" in text or "sampling" in text):
        return TEMPERATURE
    # Only "not supported": a 400 about the schema itself (e.g. a missing additionalProperties) is a
    # bug to fix, and silently dropping structured outputs for the whole run would hide it.
    if sent_schema and any(word in text for word in ("output_config", "output_format", "structured output")) \
            and any(word in text for word in ("support", "not available", "not allowed")):
        return STRUCTURED_OUTPUTS
    return None


def _api_message(exc: anthropic.APIStatusError) -> str:
    return exc.api_message or (exc.body if isinstance(exc.body, str) and exc.body else exc.message)


def _tries(retries: int) -> str:
    """E.g. "tried once" or "tried 3 times", for `retries` retries after the first try."""
    return "tried once" if retries == 0 else f"tried {retries + 1} times"


def _to_claude_error(exc: BaseException, model: str, settings: _ClientSettings) -> ClaudeError:
    where = settings.base_url or "https://api.anthropic.com"
    retries = settings.max_retries
    if isinstance(exc, anthropic.APITimeoutError) and not _is_connection_failure(exc):
        return ClaudeError(
            f"the Claude API at {where} did not answer within {settings.timeout:g} s "
            f"({_tries(retries)}): raise {TIMEOUT_ENV} or try again later")
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__ or exc
        cause = str(cause).rstrip(".") or type(cause).__name__
        return ClaudeError(
            f"could not connect to the Claude API at {where} ({_tries(min(retries, CONNECTION_RETRIES))}): "
            f"{cause}. Check the network and {BASE_URL_ENV}")
    if isinstance(exc, anthropic.APIStatusError):
        status, kind, request_id = exc.status_code, exc.type, exc.request_id
        detail = _api_message(exc)
        suffix = f" (request id {request_id})" if request_id else ""
        label = f"{status} {kind}" if kind else f"{status}"
        if status == 429:
            what = (f"the Claude API kept answering 429 (rate limited) after {retries} retries: {detail}{suffix}. "
                    f"Use fewer worker threads or wait a minute, then re-run")
        elif status == 529:
            what = (f"the Claude API is overloaded (529) and stayed so after {retries} retries: {detail}{suffix}. "
                    f"Try again later, or raise {MAX_RETRIES_ENV}")
        elif status >= 500:
            what = (f"the Claude API failed with a server error ({label}) after {retries} retries: "
                    f"{detail}{suffix}. Try again later")
        elif status == 401:
            what = (f"the Claude API rejected the key ({label}): check {API_KEY_ENV} "
                    f"in the environment or in .env{suffix}")
        elif status == 403:
            what = f"the Claude API refused the request ({label}): {detail}{suffix}. Check the key's permissions"
        elif status == 404:
            what = (f"the Claude API does not know model {model!r} ({label}): {detail}{suffix}. "
                    f"Check {MODEL_ENV} or --model")
        elif status == 400:
            what = f"the Claude API rejected the request ({label}) for model {model}: {detail}{suffix}"
        else:
            what = f"the Claude API answered {label}: {detail}{suffix}"
        return ClaudeError(what, status_code=status, error_type=kind, request_id=request_id)
    if isinstance(exc, (json.JSONDecodeError, anthropic.APIResponseValidationError)):
        return ClaudeError(f"the Claude API at {where} returned a response that is not a valid message ({exc}). "
                           f"Check {BASE_URL_ENV} points at the Claude API")
    return ClaudeError(f"the Claude call failed: {exc}")


def _system_text(system: Optional[SystemPrompt]) -> Optional[str]:
    if system is None or isinstance(system, str):
        return system
    return "\n\n".join(block["text"] for block in system)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


def call_claude_with_usage(
    prompt: str,
    model: Optional[str] = None,
    temperature: Optional[float] = DEFAULT_TEMPERATURE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    logger: Optional[logging.Logger] = None,
    *,
    system: Optional[SystemPrompt] = None,
    json_schema: Optional[Mapping[str, Any]] = None,
    purpose: Optional[str] = None,
    step: Optional[str] = None,
    usage: Optional[UsageTotals] = None,
) -> ClaudeResult:
    """Ask Claude once and return the answer with its usage; safe to call from many threads.

    The SDK retries 408/409/429/5xx with backoff (honouring `retry-after`), up to
    ANTHROPIC_MAX_RETRIES times, and a connection failure `CONNECTION_RETRIES` time(s). If the model answers 400 to the temperature or the JSON schema,
    the call is repeated once without it, and the model is remembered so later calls leave it out.
    Every call, failed ones too, is appended to the call log.

    Args:
        prompt: The user message.
        model: The model id; None means `resolve_model()` (ANTHROPIC_MODEL, else `DEFAULT_MODEL`).
        temperature: Sampling temperature; None sends none.
        max_tokens: The answer's token limit.
        logger: If given, the prompt and the answer are logged to it at DEBUG level, and fallbacks
            and failures at WARNING.
        system: A system prompt string or text blocks (a block may carry `cache_control`).
        json_schema: A JSON schema for structured output, so the answer is valid JSON.
        purpose: What the call is for ("match", "write" or "check"), for the call log.
        step: The step that calls, e.g. "match_message", for the call log.
        usage: If given, this call's usage is added to it.

    Returns:
        The `ClaudeResult`.

    Raises:
        MissingAPIKeyError: ANTHROPIC_API_KEY is not set (a ValueError; nothing is sent).
        ValueError: An argument is invalid (nothing is sent).
        ClaudeUnreachableError: This call made it `UNREACHABLE_AFTER` calls in a row that could not
            connect, or an earlier call did (then nothing is sent). A `ClaudeError`: catch it first.
        ClaudeError: The API still failed after the retries; the SDK's exception is `__cause__`.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 1):
        raise ValueError(f"temperature must be between 0 and 1, got {temperature!r}")
    if json_schema is not None and not isinstance(json_schema, Mapping):
        raise ValueError("json_schema must be a dict holding a JSON schema")
    system = _check_system(system)
    model = resolve_model(model)
    log = logger or _module_logger
    client, settings = _client_and_settings()
    unreachable = _connection_tracker.unreachable_error()
    if unreachable is not None:
        raise unreachable  # before sending: the calls in a row that failed already said enough

    send_temperature = temperature is not None and not _is_unsupported(model, TEMPERATURE)
    send_schema = json_schema is not None and not _is_unsupported(model, STRUCTURED_OUTPUTS)
    if logger is not None:
        logger.debug("Claude %s prompt (model %s):\n%s", purpose or "call", model, prompt)

    started = time.monotonic()
    entry: dict[str, Any] = {
        "time": to_iso(utc_now()),
        "step": step,
        "purpose": purpose,
        "model": model,
        "system": _system_text(system),
        "prompt": prompt,
    }
    message = None
    try:
        # At most three attempts: each droppable parameter is dropped at most once.
        while True:
            kwargs = build_request(prompt, model=model, max_tokens=max_tokens,
                                   temperature=temperature if send_temperature else None,
                                   system=system, json_schema=json_schema if send_schema else None)
            try:
                message = client.messages.create(**kwargs)
                break
            except anthropic.BadRequestError as exc:
                rejected = _rejected_parameter(exc, send_temperature, send_schema)
                if rejected is None:
                    raise
                _remember_unsupported(model, rejected, _api_message(exc), log)
                if rejected == TEMPERATURE:
                    send_temperature = False
                else:
                    send_schema = False
    except (anthropic.AnthropicError, json.JSONDecodeError) as raised:
        exc = raised.error if isinstance(raised, _ConnectionGaveUp) else raised
        error = _to_claude_error(exc, model, settings)
        if _is_connection_failure(exc):
            error = _connection_tracker.record_failure(
                f"Claude is unreachable ({_connection_tracker.threshold} calls in a row could not connect): "
                f"{error}, then re-run") or error
        elif not isinstance(exc, anthropic.APITimeoutError):
            _connection_tracker.record_answer()
        entry.update(response=None, usage=None, duration_ms=int((time.monotonic() - started) * 1000),
                     temperature=temperature if send_temperature else None, structured_output=send_schema,
                     error=str(error))
        _write_call_log(entry)
        if logger is not None:
            logger.warning("Claude %s call failed: %s", purpose or "", error)
        raise error from exc

    _connection_tracker.record_answer()
    duration_ms = int((time.monotonic() - started) * 1000)
    text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
    raw = message.usage
    call_usage = CallUsage(
        input_tokens=_int(raw.input_tokens),
        output_tokens=_int(raw.output_tokens),
        cache_creation_input_tokens=_int(raw.cache_creation_input_tokens),
        cache_read_input_tokens=_int(raw.cache_read_input_tokens),
        duration_ms=duration_ms,
        model=model,
    )
    if usage is not None:
        usage.add(call_usage)
    request_id = getattr(message, "_request_id", None)
    entry.update(response=text, usage=call_usage.as_dict(), duration_ms=duration_ms,
                 temperature=temperature if send_temperature else None, structured_output=send_schema,
                 stop_reason=message.stop_reason, request_id=request_id, error=None)
    _write_call_log(entry)
    if message.stop_reason == "max_tokens":
        log.warning("Claude's answer was cut off at max_tokens=%d (model %s)", max_tokens, model)
    elif message.stop_reason == "refusal":
        log.warning("Claude declined to answer (stop_reason refusal, model %s)", model)
    if logger is not None:
        logger.debug("Claude %s response (%d ms, %d in / %d out tokens):\n%s", purpose or "call",
                     duration_ms, call_usage.input_tokens, call_usage.output_tokens, text)
    return ClaudeResult(text=text, usage=call_usage, model=model, duration_ms=duration_ms,
                        stop_reason=message.stop_reason, request_id=request_id,
                        sent_temperature=send_temperature, structured=send_schema)


def call_claude(
    prompt: str,
    model: Optional[str] = None,
    temperature: Optional[float] = DEFAULT_TEMPERATURE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    logger: Optional[logging.Logger] = None,
    *,
    system: Optional[SystemPrompt] = None,
    json_schema: Optional[Mapping[str, Any]] = None,
    purpose: Optional[str] = None,
    step: Optional[str] = None,
    usage: Optional[UsageTotals] = None,
) -> str:
    """Ask Claude once and return the raw answer text (the spec's function).

    Args:
        prompt: The user message.
        model: The model id; None means ANTHROPIC_MODEL, else `DEFAULT_MODEL`.
        temperature: Sampling temperature (default 0.7); None sends none.
        max_tokens: The answer's token limit (default 4096).
        logger: If given, prompts and responses are logged to it.
        system: A system prompt string or text blocks (a block may carry `cache_control`).
        json_schema: A JSON schema for structured output.
        purpose: "match", "write" or "check", for the call log.
        step: The calling step's name, for the call log.
        usage: If given, this call's usage is added to it.

    Returns:
        The answer's text.

    Raises:
        ValueError: ANTHROPIC_API_KEY is not set (`MissingAPIKeyError`), or an argument is invalid.
        ClaudeError: The API failed after the SDK's retries.
    """
    return call_claude_with_usage(prompt, model, temperature, max_tokens, logger, system=system,
                                  json_schema=json_schema, purpose=purpose, step=step, usage=usage).text


# --------------------------------------------------------------------------- generate and check

INITIAL_RESPONSE_PLACEHOLDER = "{initial_response}"


def generate_with_quality_check(
    initial_prompt: str,
    quality_check_prompt: str,
    model: Optional[str] = None,
    temperature: Optional[float] = DEFAULT_TEMPERATURE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    logger: Optional[logging.Logger] = None,
    *,
    system: Optional[SystemPrompt] = None,
    step: Optional[str] = None,
    usage: Optional[UsageTotals] = None,
) -> dict:
    """Generate an answer, then ask Claude to check it.

    Args:
        initial_prompt: The generation prompt.
        quality_check_prompt: The check prompt; `{initial_response}` is replaced by the first
            answer (plain replacement, so other braces, e.g. JSON examples, need no escaping).
        model: The model id; None means ANTHROPIC_MODEL, else `DEFAULT_MODEL`.
        temperature: Sampling temperature for both calls.
        max_tokens: Token limit for each answer.
        logger: If given, prompts and responses are logged to it.
        system: A system prompt for both calls.
        step: The calling step's name, for the call log.
        usage: If given, both calls' usage is added to it.

    Returns:
        `{"initial_response": str, "quality_check_response": str, "iterations": 1}`.

    Raises:
        ValueError: The check prompt lacks `{initial_response}`, or the key is missing.
        ClaudeError: A call failed after the retries.
    """
    if INITIAL_RESPONSE_PLACEHOLDER not in (quality_check_prompt or ""):
        raise ValueError(f"quality_check_prompt must contain the {INITIAL_RESPONSE_PLACEHOLDER} placeholder")
    initial = call_claude(initial_prompt, model, temperature, max_tokens, logger,
                          system=system, purpose="write", step=step, usage=usage)
    check_prompt = quality_check_prompt.replace(INITIAL_RESPONSE_PLACEHOLDER, initial)
    checked = call_claude(check_prompt, model, temperature, max_tokens, logger,
                          system=system, purpose="check", step=step, usage=usage)
    return {"initial_response": initial, "quality_check_response": checked, "iterations": 1}


__all__: list[str] = [
    "DEFAULT_MODEL", "DEFAULT_TEMPERATURE", "DEFAULT_MAX_TOKENS", "DEFAULT_TIMEOUT_SECONDS", "DEFAULT_MAX_RETRIES",
    "CallUsage", "UsageTotals", "ClaudeResult",
    "ClaudeError", "ClaudeUnreachableError", "MissingAPIKeyError",
    "ConnectionTracker", "connection_tracker", "UNREACHABLE_AFTER", "CONNECTION_RETRIES",
    "resolve_model", "add_model_argument", "get_client", "reset_client",
    "configure_call_log", "call_log_path", "reset_call_log",
    "build_request", "call_claude", "call_claude_with_usage",
    "generate_with_quality_check",
]
