"""A loopback fake of the Claude Messages API (POST /v1/messages) with the real wire shapes.

Answers come, in order, from the script (`reply`, `fail`), else from `responder(request_json)`,
else the fake answers 418 "no scripted answer" so a test notices. It validates requests like the
API does (unknown top-level fields, bad roles, streaming are 400s), simulates prompt caching of
system blocks marked with `cache_control`, and can reject `temperature` or structured outputs
the way newer models do.
"""

import hashlib
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from tests.fakes import FakeRequest, FakeResponse, LoopbackServer

FAKE_ANTHROPIC_KEY = "test-anthropic-key-not-real-DO-NOT-LOG"

_REQUEST_FIELDS = frozenset({
    "model", "max_tokens", "messages", "system", "temperature", "top_p", "top_k", "stop_sequences",
    "metadata", "output_config", "thinking", "tools", "tool_choice", "stream", "cache_control",
    "service_tier", "container", "inference_geo", "speed", "diagnostics",
})

# kind -> (HTTP status, error.type, default message), as the real API answers them.
FAULTS: dict[str, tuple[int, Optional[str], str]] = {
    "rate_limit": (429, "rate_limit_error", "This request would exceed your organization's rate limit."),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "bad_request": (400, "invalid_request_error", "messages: text content blocks must be non-empty"),
    "authentication": (401, "authentication_error", "invalid x-api-key"),
    "permission": (403, "permission_error", "Your API key does not have permission to use the specified resource."),
    "not_found": (404, "not_found_error", "model: not found"),
    "malformed": (200, None, ""),  # a 200 whose body is cut-off JSON
    "disconnect": (0, None, ""),  # the connection is closed without an answer: a connection failure
}


@dataclass
class Reply:
    """A scripted answer.

    Attributes:
        text: The answer text; a dict or list is sent as its JSON text.
        stop_reason: E.g. "end_turn" or "max_tokens".
        thinking: If set, a thinking block with this text comes before the text block.
        delay: Extra seconds before answering (e.g. to trigger a client timeout).
    """

    text: Any = ""
    stop_reason: str = "end_turn"
    thinking: Optional[str] = None
    delay: float = 0.0


@dataclass
class Fault:
    """A scripted failure; `kind` is a key of `FAULTS`.

    Attributes:
        retry_after_ms: Sent as `retry-after-ms` (the SDK waits that long before retrying);
            None sends no retry header, so the SDK uses its own backoff.
    """

    kind: str
    message: Optional[str] = None
    retry_after_ms: Optional[int] = 5
    delay: float = 0.0


Answer = Union[Reply, Fault, str, dict, list]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return ""


def _tokens(chars: int) -> int:
    return chars // 4


class FakeAnthropic(LoopbackServer):
    """The fake Claude API.

    Attributes:
        api_key: The only key it accepts (401 otherwise).
        responder: Called with the request JSON when the script is empty; returns a str, dict,
            list, `Reply` or `Fault`.
        reject_temperature: Answer 400 invalid_request_error to any request that sends a temperature.
        reject_structured_outputs: Answer 400 to any request with `output_config.format`.
        thinking: If set, every answer starts with a thinking block (as adaptive thinking does).
        retry_after_ms: Default `retry-after-ms` of failures from `fail`.
        min_cache_chars: A cached prefix shorter than this is not cached (the API has a minimum).
    """

    def __init__(self, api_key: str = FAKE_ANTHROPIC_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.responder: Optional[Callable[[dict], Answer]] = None
        self.reject_temperature = False
        self.reject_structured_outputs = False
        self.thinking: Optional[str] = None
        self.retry_after_ms: Optional[int] = 5
        self.min_cache_chars = 0
        self._script: deque = deque()
        self._cache: set[str] = set()
        self._ids = itertools.count(1)

    # -- scripting

    def reply(self, *answers: Answer) -> None:
        """Queue answers, used one per request in order of arrival."""
        with self.lock:
            for answer in answers:
                self._script.append(answer if isinstance(answer, (Reply, Fault)) else Reply(answer))

    def fail(self, kind: str, times: int = 1, *, message: Optional[str] = None,
             retry_after_ms: Optional[int] = -1, delay: float = 0.0) -> None:
        """Queue `times` failures of one kind ("rate_limit", "overloaded", "server_error", "malformed",
        "disconnect", …); each HTTP attempt, SDK retries included, uses one."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose from {sorted(FAULTS)}")
        wait = self.retry_after_ms if retry_after_ms == -1 else retry_after_ms
        with self.lock:
            for _ in range(times):
                self._script.append(Fault(kind, message=message, retry_after_ms=wait, delay=delay))

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        with self.lock:
            return len(self._script)

    @property
    def message_bodies(self) -> list[dict]:
        """The JSON bodies of all complete POST /v1/messages requests, in order.

        A body cut short (a client killed mid-send, as the kill -9 tests do) does not parse and never
        reached the model, so it is left out rather than handed to the tests as None.
        """
        with self.lock:
            return [r.json for r in self.requests
                    if r.method == "POST" and r.path == "/v1/messages" and r.json is not None]

    @property
    def last_body(self) -> dict:
        bodies = self.message_bodies
        if not bodies:
            raise AssertionError("the fake Anthropic API received no message request")
        return bodies[-1]

    # -- serving

    def _request_id(self) -> str:
        return f"req_fake{next(self._ids):06d}"

    def _error(self, status: int, kind: str, message: str, retry_after_ms: Optional[int] = None) -> FakeResponse:
        request_id = self._request_id()
        headers = {"request-id": request_id}
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
            headers["retry-after"] = str(max(1, -(-retry_after_ms // 1000)))
        body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
        return FakeResponse(status, body, headers)

    def handle(self, request: FakeRequest) -> FakeResponse:
        if (request.method, request.path) != ("POST", "/v1/messages"):
            return self._error(404, "not_found_error", f"fake: unknown route {request.method} {request.path}")
        if request.token != self.api_key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version: header is required")
        body = request.json
        problem = self._validate(body)
        if problem:
            return self._error(400, "invalid_request_error", problem)
        model = body["model"]
        if self.reject_temperature and "temperature" in body:
            return self._error(400, "invalid_request_error",
                               f"temperature: sampling parameters are not supported by {model}; omit temperature")
        if self.reject_structured_outputs and "format" in (body.get("output_config") or {}):
            return self._error(400, "invalid_request_error",
                               f"output_config.format: structured outputs are not supported by {model}")

        with self.lock:
            answer = self._script.popleft() if self._script else None
        if answer is None:
            if self.responder is None:
                return self._error(418, "fake_error", "fake: no scripted answer and no responder for this request")
            answer = self.responder(body)
            if not isinstance(answer, (Reply, Fault)):
                answer = Reply(answer)
        if answer.delay:
            time.sleep(answer.delay)
        if isinstance(answer, Fault):
            return self._fault(answer)

        text = answer.text if isinstance(answer.text, str) else json.dumps(answer.text)
        if "format" in (body.get("output_config") or {}):
            try:
                json.loads(text)
            except ValueError:
                return self._error(418, "fake_error",
                                   "fake: the scripted answer is not JSON, but the request carries a JSON schema")
        content = []
        thinking = answer.thinking or self.thinking
        if thinking:
            content.append({"type": "thinking", "thinking": thinking, "signature": "fake-signature"})
        content.append({"type": "text", "text": text})
        request_id = self._request_id()
        message = {
            "id": f"msg_fake{request_id[8:]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": answer.stop_reason,
            "stop_sequence": None,
            "usage": dict(self._usage(body), output_tokens=max(1, _tokens(len(text)))),
        }
        return FakeResponse(200, message, {"request-id": request_id})

    def _fault(self, fault: Fault) -> FakeResponse:
        status, kind, default = FAULTS[fault.kind]
        if fault.kind == "disconnect":
            return FakeResponse(0)
        if fault.kind == "malformed":
            return FakeResponse(200, b'{"id": "msg_broken", "type": "message", "content": [{"type": "te',
                                {"request-id": self._request_id()})
        retry = fault.retry_after_ms if status in (408, 409, 429) or status >= 500 else None
        return self._error(status, kind, fault.message or default, retry)

    def _validate(self, body: Any) -> Optional[str]:
        if not isinstance(body, dict):
            return "request body must be a JSON object"
        unknown = sorted(set(body) - _REQUEST_FIELDS)
        if unknown:
            return f"{unknown[0]}: Extra inputs are not permitted"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 0:
            return "max_tokens: Field required (a non-negative integer)"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                return f"messages.{index}.role: must be 'user' or 'assistant'"
            if not isinstance(message.get("content"), (str, list)) or not message["content"]:
                return f"messages.{index}.content: must be a non-empty string or list of blocks"
        if body.get("stream"):
            return "fake: streaming is not supported by this fake"
        system = body.get("system")
        if system is not None and not isinstance(system, str):
            if not isinstance(system, list):
                return "system: must be a string or a list of text blocks"
            for index, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                    return f"system.{index}: must be a text block"
                cache = block.get("cache_control")
                if cache is not None and (not isinstance(cache, dict) or cache.get("type") != "ephemeral"):
                    return f"system.{index}.cache_control: type must be 'ephemeral'"
        if "temperature" in body:
            value = body["temperature"]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                return "temperature: must be a number between 0 and 1"
        config = body.get("output_config")
        if config is not None:
            if not isinstance(config, dict):
                return "output_config: must be an object"
            fmt = config.get("format")
            if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "json_schema"
                                    or not isinstance(fmt.get("schema"), dict)):
                return "output_config.format: must be {'type': 'json_schema', 'schema': {...}}"
        return None

    def _usage(self, body: dict) -> dict:
        system = body.get("system")
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else (system or [])
        system_text = "".join(block["text"] for block in blocks)
        marked = [index for index, block in enumerate(blocks) if block.get("cache_control")]
        prefix = "".join(block["text"] for block in blocks[: marked[-1] + 1]) if marked else ""
        created = read = 0
        if prefix and len(prefix) >= self.min_cache_chars:
            key = hashlib.sha256(f"{body['model']}\0{prefix}".encode()).hexdigest()
            with self.lock:
                if key in self._cache:
                    read = _tokens(len(prefix))
                else:
                    self._cache.add(key)
                    created = _tokens(len(prefix))
        else:
            prefix = ""
        rest = len(system_text) - len(prefix) + sum(len(_text_of(m.get("content"))) for m in body["messages"])
        return {
            "input_tokens": max(1, _tokens(rest)),
            "output_tokens": 0,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        }
