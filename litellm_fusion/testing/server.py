"""A scripted, OpenAI-compatible chat-completions server for tests, benchmarks and demos.

The server runs aiohttp on 127.0.0.1 in a daemon thread with its own event loop, so it
works the same from synchronous tests, ``asyncio`` tests and plain scripts. Each model name
maps to a :class:`Script` (or a queue of them) describing what the fake upstream answers and
how it misbehaves (latency, errors, hangs, slow drip, broken streams, malformed bodies).
Every chat request is recorded as a :class:`RecordedRequest` so tests can assert what the
upstream saw, including auth headers and client disconnects. :meth:`ScriptedServer.connection_stats`
counts the client TCP connections the requests came in on, to tell a client that reuses its pooled
connections from one that opens a new one per call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["RecordedRequest", "Script", "ScriptedServer", "ToolCall", "load_scripts", "script_from_dict"]

# (type, code) of the OpenAI-shaped error body per HTTP status; others fall back by class.
_ERROR_KINDS = {
    400: ("invalid_request_error", "bad_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    503: ("server_error", "service_unavailable"),
}


@dataclass(frozen=True)
class ToolCall:
    """A function call made by the scripted assistant.

    Attributes:
        name: Function name.
        arguments: Arguments, sent JSON-encoded. A ``str`` is sent verbatim, which lets a
            test simulate a model emitting invalid JSON arguments.
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)

    def encoded_arguments(self) -> str:
        """Return the arguments as the JSON string that goes on the wire."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True, kw_only=True)
class Script:
    """What the server answers for one request to a model.

    Attributes:
        text: Assistant content, or a callable receiving the parsed JSON request body and
            returning it (e.g. a judge that inspects the prompt).
        latency: Seconds before the response (non-stream) or the first chunk (stream).
        chunk_delay: Seconds between stream chunks.
        chunk_chars: Characters per streamed content (or tool-argument) chunk.
        status: HTTP status; anything but 200 returns an OpenAI-shaped error body
            ``{"error": {"message", "type", "code"}}`` after ``latency``.
        error_message: ``error.message`` of that error body.
        retry_after: If set, adds a ``Retry-After`` header (seconds) to the error.
        hang: Never respond; wait until the client disconnects.
        drip: Send the non-stream body one byte every ``drip`` seconds (chunked encoding).
            Ignored for stream requests, where ``chunk_delay`` plays that role.
        malformed: Answer 200 with a body (or SSE data line) that is not valid JSON.
        tool_calls: Answer with assistant ``tool_calls`` (ids ``call_<n>``, content None,
            finish_reason ``"tool_calls"``) instead of text.
        finish_reason: Finish reason for text answers.
        prompt_tokens: Usage override; default is the characters of all message contents // 4 + 1.
        completion_tokens: Usage override; default is the word count of the text (min 1),
            or 10 per tool call.
        break_stream_after: In stream mode, abort the connection after this many content
            (or tool-argument) chunks, simulating a broken stream.
    """

    text: str | Callable[[dict[str, Any]], str] = "ok"
    latency: float = 0.0
    chunk_delay: float = 0.0
    chunk_chars: int = 4
    status: int = 200
    error_message: str = "Scripted upstream error"
    retry_after: float | None = None
    hang: bool = False
    drip: float | None = None
    malformed: bool = False
    tool_calls: Sequence[ToolCall] | None = None
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    break_stream_after: int | None = None

    def __post_init__(self) -> None:
        # Fail at construction time: a bad script found mid-test is much harder to debug.
        if self.chunk_chars < 1:
            raise ValueError("chunk_chars must be >= 1")
        if self.latency < 0 or self.chunk_delay < 0 or (self.drip is not None and self.drip <= 0):
            raise ValueError("latency and chunk_delay must be >= 0 and drip > 0")
        if self.status != 200 and not 400 <= self.status <= 599:
            raise ValueError(f"status must be 200 or an error status (400-599), got {self.status}")
        if self.tool_calls is not None:
            if not all(isinstance(call, ToolCall) for call in self.tool_calls):
                raise TypeError("tool_calls must contain ToolCall instances")
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))


@dataclass(frozen=True)
class RecordedRequest:
    """One chat-completions request as the server saw it.

    Attributes:
        model: The ``model`` of the request body ("" if missing).
        body: Parsed JSON body ({} if it was not a JSON object).
        headers: Request headers with lowercase names.
        path: Request path, e.g. ``/v1/chat/completions``.
        started_at: ``time.monotonic()`` when the request arrived.
        ended_at: ``time.monotonic()`` when it finished; None while in flight.
        disconnected: The client went away before the response was complete.
        status: HTTP status, recorded as the response headers go out; None until then (or if nothing was sent).
    """

    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    path: str
    started_at: float
    ended_at: float | None = None
    disconnected: bool = False
    status: int | None = None


class _Exchange:
    """Mutable per-request state shared by the handler helpers."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.status: int | None = None


class ScriptedServer:
    """Scripted OpenAI-compatible server; see the module docstring.

    Args:
        scripts: Model name -> Script, or a list of Scripts consumed one per request to that
            model (the last one repeats forever).
        default: Script for unknown model names; if None they get an OpenAI-shaped 404.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.
        shutdown_timeout: Seconds :meth:`stop` lets in-flight requests finish before
            cancelling them (short, because a fake upstream has nothing worth waiting for).
    """

    def __init__(
        self,
        scripts: Mapping[str, Script | Sequence[Script]] | None = None,
        *,
        default: Script | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 0.5,
    ) -> None:
        self._host, self._port, self._shutdown_timeout = host, port, shutdown_timeout
        self._default = default
        self._scripts: dict[str, list[Script]] = {}
        self._cursors: dict[str, int] = {}
        # One lock guards scripts, records and counters; the condition wakes wait_idle().
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._records: dict[int, RecordedRequest] = {}
        self._seq = 0
        # Response ids must be unique across processes and runs: LiteLLM's proxy keys its spend-log rows on
        # them and silently drops a duplicate, so ids restarting at 1 would lose rows on a reused database.
        self._id_prefix = f"chatcmpl-scripted-{uuid.uuid4().hex[:16]}"
        self._tool_call_seq = 0
        self._in_flight = 0
        self._max_in_flight = 0
        # Client connections by (peer address, port): those used since the last reset, and every one seen since
        # start, so that a peer not yet seen is a newly opened connection even after a reset.
        self._peers: set[tuple[Any, ...]] = set()
        self._peers_ever: set[tuple[Any, ...]] = set()
        self._peers_opened = 0
        for model, script in (scripts or {}).items():
            self.set_script(model, script)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bound_port: int | None = None
        self._startup_error: BaseException | None = None

    # ----- lifecycle -------------------------------------------------------------------

    def start(self, port: int | None = None) -> ScriptedServer:
        """Start serving in a background thread; blocks until the port is bound."""
        if self._thread is not None:
            raise RuntimeError("ScriptedServer is already running")
        if port is not None:
            self._port = port
        ready = threading.Event()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, args=(ready,), name="ScriptedServer", daemon=True)
        self._thread.start()
        ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread = self._loop = None
            raise self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving, cancel in-flight requests and join the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self._loop = None
        self._bound_port = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (only while running)."""
        if self._bound_port is None:
            raise RuntimeError("ScriptedServer is not running")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self._host}:{self.port}/v1"

    def _run(self, ready: threading.Event) -> None:
        # The loop lives entirely in this thread: start it, serve until stop(), then clean up
        # here too, so no task or socket outlives the thread.
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner: web.AppRunner | None = None
        try:
            try:
                runner = loop.run_until_complete(self._serve())
            except BaseException as exc:  # noqa: BLE001 - re-raised by start()
                self._startup_error = exc
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            if runner is not None:
                loop.run_until_complete(runner.cleanup())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> web.AppRunner:
        app = web.Application(client_max_size=64 * 1024**2)  # long benchmark prompts
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_post("/chat/completions", self._handle_chat)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_get("/health", self._handle_health)
        # handler_cancellation: since aiohttp 3.9 handlers are otherwise never told that the
        # client went away, and disconnect accounting is the point of this server.
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=self._shutdown_timeout, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._bound_port = runner.addresses[0][1]
        return runner

    # ----- scripts, records, stats -----------------------------------------------------

    def set_script(self, model: str, script: Script | Sequence[Script]) -> None:
        """Replace the script (or queue) for ``model``; takes effect on the next request."""
        queue = [script] if isinstance(script, Script) else list(script)
        if not queue or not all(isinstance(s, Script) for s in queue):
            raise ValueError(f"scripts for {model!r} must be a Script or a non-empty list of them")
        with self._lock:
            self._scripts[model] = queue
            self._cursors[model] = 0

    def _next_script(self, model: str) -> Script | None:
        with self._lock:
            queue = self._scripts.get(model)
            if queue is None:
                return self._default
            cursor = self._cursors[model]
            self._cursors[model] = cursor + 1
            return queue[min(cursor, len(queue) - 1)]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of all recorded chat requests, in arrival order."""
        with self._lock:
            return list(self._records.values())

    def requests_for(self, model: str) -> list[RecordedRequest]:
        """Recorded chat requests whose body named ``model``."""
        return [r for r in self.requests if r.model == model]

    def stats(self) -> dict[str, Any]:
        """Counters: total, in_flight, max_in_flight, by_model, disconnected_before_done."""
        with self._lock:
            records = list(self._records.values())
            in_flight, peak = self._in_flight, self._max_in_flight
        by_model: dict[str, int] = {}
        for record in records:
            by_model[record.model] = by_model.get(record.model, 0) + 1
        return {
            "total": len(records),
            "in_flight": in_flight,
            "max_in_flight": peak,
            "by_model": by_model,
            "disconnected_before_done": sum(r.disconnected for r in records),
        }

    def connection_stats(self) -> dict[str, int]:
        """Client TCP connections that carried chat requests since the last :meth:`reset`.

        ``connections``: distinct connections (by peer address and port) used; ``new_connections``: how many
        of them the server had not seen before, i.e. were opened since the reset. A client that reuses its
        pooled connections shows few of either; a client built anew per call shows one new connection per call.
        """
        with self._lock:
            return {"connections": len(self._peers), "new_connections": self._peers_opened}

    def reset(self) -> None:
        """Forget records, rewind script queues and tool-call ids, restart the peak and connection counters.

        ``in_flight`` is not zeroed: requests still running will finish and decrement it. A connection seen
        before the reset and used again after it counts as used, not as new.
        """
        with self._lock:
            self._peers.clear()
            self._peers_opened = 0
            self._records.clear()
            self._cursors = dict.fromkeys(self._cursors, 0)
            self._tool_call_seq = 0
            self._max_in_flight = self._in_flight

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until no request is in flight; False on timeout.

        Do not call this from an event loop whose own requests are in flight; use
        :meth:`wait_idle_async` there.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    async def wait_idle_async(self, timeout: float = 5.0) -> bool:
        """Async variant of :meth:`wait_idle` that keeps the caller's loop running."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._in_flight == 0:
                    return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)

    def _begin(self, record: RecordedRequest, peer: tuple[Any, ...] | None) -> _Exchange:
        with self._lock:
            if peer is not None:
                self._peers.add(peer)
                if peer not in self._peers_ever:
                    self._peers_ever.add(peer)
                    self._peers_opened += 1
            self._seq += 1
            self._records[self._seq] = record
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return _Exchange(self._seq)

    def _mark_status(self, exchange: _Exchange, status: int) -> None:
        """Record the status as its headers go out: the client may read the whole response (and a test
        assert on ``requests``) before the handler returns and :meth:`_finish` runs."""
        exchange.status = status
        with self._lock:
            record = self._records.get(exchange.seq)
            if record is not None:
                self._records[exchange.seq] = dataclasses.replace(record, status=status)

    def _finish(self, exchange: _Exchange, *, disconnected: bool) -> None:
        with self._idle:
            record = self._records.get(exchange.seq)
            if record is not None:  # absent if reset() ran meanwhile
                self._records[exchange.seq] = dataclasses.replace(
                    record, ended_at=time.monotonic(), disconnected=disconnected, status=exchange.status
                )
            self._in_flight -= 1
            self._idle.notify_all()

    def _next_tool_call_id(self) -> str:
        with self._lock:
            self._tool_call_seq += 1
            return f"call_{self._tool_call_seq}"

    # ----- HTTP handlers ---------------------------------------------------------------

    async def _handle_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _handle_models(self, request: web.Request) -> web.Response:
        with self._lock:
            names = list(self._scripts)
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "scripted"} for name in names]
        return web.json_response({"object": "list", "data": data})

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        valid = isinstance(body, dict)
        body = body if valid else {}
        model = body.get("model") if isinstance(body.get("model"), str) else ""
        headers = {name.lower(): value for name, value in request.headers.items()}
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        exchange = self._begin(RecordedRequest(model, body, headers, request.path, time.monotonic()), tuple(peer) if peer else None)
        disconnected = False
        try:
            if not valid:
                return await self._send_error(request, exchange, 400, "Request body must be a JSON object")
            script = self._next_script(model)
            if script is None:
                return await self._send_error(request, exchange, 404, f"The model `{model}` does not exist")
            return await self._play(request, exchange, body, script)
        except asyncio.CancelledError:
            # With handler_cancellation this is how aiohttp reports a client disconnect
            # (or stop() cancelling a request still in flight).
            disconnected = True
            raise
        except ConnectionResetError:
            # The client vanished while we were writing. Make sure the socket is gone, then
            # give aiohttp a fresh response whose write fails quietly instead of logging an error.
            disconnected = True
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        finally:
            self._finish(exchange, disconnected=disconnected)

    async def _play(self, request: web.Request, exchange: _Exchange, body: dict[str, Any], script: Script) -> web.StreamResponse:
        if script.latency:
            await asyncio.sleep(script.latency)
        if script.hang:
            await asyncio.Event().wait()  # only cancellation (client gone, or stop()) ends this
        if script.status != 200:
            return await self._send_error(request, exchange, script.status, script.error_message, script.retry_after)
        stream = body.get("stream") is True
        if script.malformed:
            broken = b'{"id": "chatcmpl-broken", "choices": ['
            if stream:
                return await self._send(request, exchange, b"data: " + broken + b"\n\ndata: [DONE]\n\n", "text/event-stream")
            return await self._send(request, exchange, broken, "application/json")
        try:
            text = None if script.tool_calls is not None else _render_text(script, body)
        except Exception as exc:  # surface script bugs to the test instead of a bare 500
            return await self._send_error(request, exchange, 500, f"Script text failed: {exc!r}")
        calls = [(self._next_tool_call_id(), call) for call in script.tool_calls or ()]
        reply = _Reply(
            id=f"{self._id_prefix}-{exchange.seq}",
            created=int(time.time()),
            model=str(body.get("model", "")),  # echo the requested name, as a proxy sees it
            text=text,
            calls=calls,
            # Tool-call answers report "tool_calls" unless the script overrides the default.
            finish_reason="tool_calls" if calls and script.finish_reason == "stop" else script.finish_reason,
            usage=_usage(script, body, text, len(calls)),
        )
        if not stream:
            payload = json.dumps(reply.completion()).encode()
            return await self._send(request, exchange, payload, "application/json", drip=script.drip)

        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        self._mark_status(exchange, 200)
        content_sent = 0
        for position, (chunk, is_content) in enumerate(reply.chunks(script.chunk_chars, include_usage)):
            if position and script.chunk_delay:
                await asyncio.sleep(script.chunk_delay)
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            content_sent += is_content
            if script.break_stream_after is not None and content_sent >= script.break_stream_after:
                # Server-side breakage, not a client disconnect: the record keeps disconnected=False.
                if request.transport is not None:
                    request.transport.abort()
                return response
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _send(
        self,
        request: web.Request,
        exchange: _Exchange,
        payload: bytes,
        content_type: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        drip: float | None = None,
    ) -> web.StreamResponse:
        # Written inside the handler (not returned for aiohttp to send) so that a disconnect
        # during the write is seen by _handle_chat and recorded.
        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = content_type
        if drip is None:
            response.content_length = len(payload)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        self._mark_status(exchange, status)
        if drip is None:
            await response.write(payload)
        else:
            for offset in range(len(payload)):
                if offset:
                    await asyncio.sleep(drip)
                await response.write(payload[offset : offset + 1])
        await response.write_eof()
        return response

    async def _send_error(
        self,
        request: web.Request,
        exchange: _Exchange,
        status: int,
        message: str,
        retry_after: float | None = None,
    ) -> web.StreamResponse:
        fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
        kind, code = _ERROR_KINDS.get(status, fallback)
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        payload = json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()
        return await self._send(request, exchange, payload, "application/json", status=status, headers=headers)


@dataclass(frozen=True)
class _Reply:
    """A successful answer, rendered as one completion or as stream chunks."""

    id: str
    created: int
    model: str
    text: str | None
    calls: list[tuple[str, ToolCall]]
    finish_reason: str
    usage: dict[str, int]

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": c.name, "arguments": c.encoded_arguments()}}
                for call_id, c in self.calls
            ]
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        return {**self._head("chat.completion"), "choices": [choice], "usage": self.usage}

    def chunks(self, chunk_chars: int, include_usage: bool) -> list[tuple[dict[str, Any], bool]]:
        """``(chunk, is_content)`` pairs; content and tool-argument chunks are the "content"
        that ``break_stream_after`` counts."""

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return {**self._head("chat.completion.chunk"), "choices": [choice]}

        out = [(chunk({"role": "assistant", "content": None if self.calls else ""}), False)]
        for index, (call_id, call) in enumerate(self.calls):
            # OpenAI style: the first delta of a call carries id, type and name; then arguments.
            opening = {"index": index, "id": call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
            out.append((chunk({"tool_calls": [opening]}), False))
            for piece in _split(call.encoded_arguments(), chunk_chars):
                out.append((chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}), True))
        out += [(chunk({"content": piece}), True) for piece in _split(self.text or "", chunk_chars)]
        out.append((chunk({}, self.finish_reason), False))
        if include_usage:
            out.append(({**self._head("chat.completion.chunk"), "choices": [], "usage": self.usage}, False))
        return out


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _render_text(script: Script, body: dict[str, Any]) -> str:
    text = script.text(body) if callable(script.text) else script.text
    if not isinstance(text, str):
        raise TypeError(f"Script.text must be or return str, got {type(text).__name__}")
    return text


def _usage(script: Script, body: dict[str, Any], text: str | None, n_calls: int) -> dict[str, int]:
    prompt = script.prompt_tokens
    if prompt is None:
        prompt = _prompt_chars(body) // 4 + 1
    completion = script.completion_tokens
    if completion is None:
        completion = 10 * n_calls if n_calls else max(1, len((text or "").split()))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _prompt_chars(body: dict[str, Any]) -> int:
    """Characters of all message contents: plain strings and the text of content parts."""
    messages = body.get("messages")
    total = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return total


def script_from_dict(data: Mapping[str, Any] | None) -> Script:
    """Build a Script from plain data (e.g. parsed YAML).

    ``tool_calls`` items may be ``{"name": ..., "arguments": {...}}`` mappings. Unknown keys
    raise ValueError, so typos in a scripts file fail loudly.
    """
    kwargs = dict(data or {})
    valid = {f.name for f in dataclasses.fields(Script)}
    unknown = set(kwargs) - valid
    if unknown:
        raise ValueError(f"unknown Script fields {sorted(unknown)}; valid fields: {sorted(valid)}")
    if kwargs.get("tool_calls") is not None:
        kwargs["tool_calls"] = [
            call if isinstance(call, ToolCall) else ToolCall(call["name"], call.get("arguments", {})) for call in kwargs["tool_calls"]
        ]
    return Script(**kwargs)


def load_scripts(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, list[Script]], Script | None]:
    """Load scripts from a YAML file (or an already parsed mapping).

    The mapping is ``model name -> Script fields`` or a list of them (a queue); the reserved
    key ``default`` is the script for unknown models. Returns ``(scripts, default)`` for
    ``ScriptedServer(scripts, default=default)``.
    """
    if isinstance(source, Mapping):
        data: Any = source
    else:
        import yaml  # imported lazily: only the file-based entry point needs PyYAML

        data = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise ValueError("a scripts file must map model names to scripts")
    scripts = {
        str(model): [script_from_dict(item) for item in (entry if isinstance(entry, list) else [entry])]
        for model, entry in data.items()
        if model != "default"
    }
    return scripts, (script_from_dict(data["default"]) if "default" in data else None)
