"""The stdio front: the wire of `kimi-mcp stdio`, answering the handshake before FastMCP loads.

An agent starts its MCP servers on every launch and waits for `initialize` and `tools/list`
before it can begin. Importing FastMCP and the MCP SDK and mounting 43 tools takes about a
second; the answers to those two requests do not depend on anything that happens in it. So:

1. The front claims stdin and stdout at once (as the SDK's `stdio_server` does: fd 0 then
   reads the null device and fd 1 goes to stderr, so stray output never reaches the wire)
   and reads lines on a thread, while the main thread imports and builds the server.
2. `initialize` (for a protocol version in the snapshot, with well-formed params),
   `tools/list` (first page) and `ping` after it are answered by the front from
   `mcp_snapshot.json`: what this same server answered when the snapshot was recorded
   (`record_snapshot`). A test records it again and compares, so it cannot drift. So are a
   modern client's `server/discover` and `tools/list` (2026-07-28, a well-formed per-request
   envelope): the official SDK's client gives up on `server/discover` after 10 s, which a
   loaded machine used to exceed.
3. Every other line goes on to the SDK's stdio transport in order, and so does the
   `initialize` the front answered, so the server sees the whole session (its `initialize`
   runs: the session and the ledger warm-up start as before); the SDK's answer to that
   `initialize` is dropped.
4. The snapshot is used only when it was recorded for the settings that shape the listing
   (enabled families, read-only), this version and this code (a digest of the families' and
   the root server's source and of the MCP libraries' versions); otherwise the SDK answers.
5. The server is loaded once the client listed the tools, sent anything the front does not
   answer, or `HANDSHAKE_WAIT_S` after the handshake: loading holds the GIL the front's
   answers need.
6. Once the server is built, a plain `tools/call` on a handshake session is handed to
   `serve_calls`' `Calls` (kimi_mcp/mcp_fastcall.py) on the event loop instead of the SDK; it
   answers as FastMCP would, in a fraction of the time. At stdin's end the SDK is told only
   after those calls have answered (at most `CALLS_DRAIN_S`).

Writes to the wire come from the reader thread (snapshot answers) and the event loop (the
SDK's): one lock keeps each line whole.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from kimi_mcp import __version__

if TYPE_CHECKING:
    from anyio.lowlevel import EventLoopToken

    from kimi_mcp.config import Settings

log = logging.getLogger(__name__)

SNAPSHOT_PATH = Path(__file__).with_name("mcp_snapshot.json")
# what became of a line: answered (tools/list: the server is needed next; ping: not yet), or
# passed to the SDK (the handshake: the server need not be loaded for it yet; anything else)
_LISTED, _PONG, _HANDSHAKE, _FORWARD = "listed", "pong", "handshake", "forward"
HANDSHAKE_WAIT_S = 0.3  # after `initialize`, how long a client may take to list the tools
CALLS_DRAIN_S = 5.0  # at stdin's end, how long tool calls still running may take to answer
_EMPTY: dict[str, Any] = {}


_META = "io.modelcontextprotocol/"


def modern_envelope(version: str, client: dict[str, str]) -> dict[str, Any]:
    """The per-request `_meta` of a modern (2026-07-28) request: version, client, capabilities."""
    return {f"{_META}protocolVersion": version, f"{_META}clientInfo": client,
            f"{_META}clientCapabilities": {}}


def snapshot_key(settings: Settings) -> dict[str, Any]:
    """What the recorded answers depend on: the version, the settings that shape the tools, the
    code the answers are made from (`sources_digest`) and the MCP libraries that word them."""
    return {"version": __version__, "families": list(settings.mcp.families),
            "read_only": bool(settings.mcp.read_only), "sources": sources_digest(),
            "libraries": library_versions()}


def library_versions() -> dict[str, str]:
    """The installed FastMCP and MCP SDK versions: a snapshot recorded with others (a user's
    newer FastMCP within the supported range) is not served; the SDK answers instead."""
    from importlib import metadata

    return {dist: metadata.version(dist) for dist in ("fastmcp", "mcp", "mcp-types")}


def sources_digest() -> str:
    """A digest of the tool families' and the root server's source: a snapshot recorded from
    other code (a tool edited without re-recording) is never served. About a millisecond."""
    import hashlib
    from importlib import util

    digest = hashlib.sha256()
    spec = util.find_spec("kimi_mcp.servers")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    files = [(str(f.relative_to(root)), f) for root in roots for f in root.rglob("*.py")]
    files.append(("server.py", Path(__file__).with_name("server.py")))
    for name, path in sorted(files):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Snapshot:
    """Recorded answers by protocol version: `initialize` results and `tools/list` results."""

    key: dict[str, Any]
    initialize: dict[str, dict[str, Any]]
    tools: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, settings: Settings, path: Path = SNAPSHOT_PATH) -> Snapshot | None:
        """The shipped snapshot when it was recorded for these settings, else None."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("no usable MCP snapshot at %s (%s): the SDK answers the handshake", path, exc)
            return None
        if data.get("key") != snapshot_key(settings):
            return None
        lists = data["tool_lists"]
        tools = {version: lists[n] for version, n in data["tool_list_of"].items()}
        return cls(key=data["key"], initialize=data["initialize"], tools=tools)

    def to_json(self) -> str:
        """The file: tool lists stored once however many versions share them."""
        lists: list[dict[str, Any]] = []
        of: dict[str, int] = {}
        for version, listing in self.tools.items():
            if listing not in lists:
                lists.append(listing)
            of[version] = lists.index(listing)
        body = {"key": self.key, "initialize": self.initialize, "tool_list_of": of,
                "tool_lists": lists}
        return json.dumps(body, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


class Front:
    """The wire: reads lines on a thread, answers what the snapshot holds, passes the rest on.

    `sdk_stdin()` and `sdk_stdout()` are the text streams the SDK's `stdio_server` is given.
    """

    def __init__(self, snapshot: Snapshot | None, wire_in: IO[bytes], wire_out: IO[bytes]) -> None:
        self._snapshot = snapshot
        self._in = wire_in
        self._out = wire_out
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._write_lock = threading.Lock()
        self._version: str | None = None  # the protocol version the front answered with
        self._dropped: set[str] = set()  # ids (as JSON) of SDK answers already given by the front
        self._encoded: dict[int, str] = {}
        self._needed = threading.Event()
        self._calls: Calls | None = None
        self._token: EventLoopToken | None = None
        self._start_soon: Callable[..., Any] = _not_serving
        self._calls_lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Event()
        self._idle.set()
        self._reader = threading.Thread(target=self._read, name="kimi-stdio-front", daemon=True)
        self._restore: Callable[[], None] | None = None

    @classmethod
    def claim(cls, snapshot: Snapshot | None) -> Front:
        """The front on the process's stdin/stdout, diverting fds 0 and 1 while it serves."""
        wire_in = os.fdopen(os.dup(0), "rb", buffering=0)
        wire_out = os.fdopen(os.dup(1), "wb")
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        saved_out = os.dup(1)
        os.dup2(2, 1)
        front = cls(snapshot, wire_in, wire_out)

        def restore() -> None:
            os.dup2(wire_in.fileno(), 0)
            os.dup2(saved_out, 1)
            os.close(saved_out)

        front._restore = restore
        return front

    def start(self) -> Front:
        self._reader.start()
        return self

    def release(self) -> None:
        """Give fds 0 and 1 back (when `claim`ed)."""
        if self._restore is not None:
            self._restore()
            self._restore = None

    # ---- the wire ------------------------------------------------------------------------

    def wait_for_handshake(self) -> None:
        """Block until the server is needed: a line the front cannot answer came, the client
        listed the tools, stdin closed, or `HANDSHAKE_WAIT_S` passed since `initialize`. Loading
        the server meanwhile would hold the GIL the front's answers need; without a snapshot
        there is nothing to wait for."""
        if self._snapshot is not None:
            self._needed.wait()

    def _read(self) -> None:
        try:
            while True:
                raw = self._in.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", errors="replace")
                kind = self._answer(line)
                if kind in (_HANDSHAKE, _FORWARD):
                    self._lines.put(line)
                if kind in (_LISTED, _FORWARD):
                    self._needed.set()
        except Exception:
            log.exception("the stdio reader failed")
        finally:
            self._needed.set()
            if not self._idle.wait(CALLS_DRAIN_S):  # answers still coming go out before EOF
                log.warning("stdin closed with tool calls still running; they are cancelled")
            self._lines.put(None)

    def _send(self, text: str) -> None:
        data = text.encode("utf-8", errors="surrogatepass")
        with self._write_lock:
            self._out.write(data)
            self._out.flush()

    def _reply(self, request_id: str | int, result: dict[str, Any], *, kept: bool = True) -> None:
        """Answer with `result`; a `kept` one (the snapshot's) is encoded only once."""
        encoded = self._encoded.get(id(result)) if kept else None
        if encoded is None:
            encoded = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
            if kept:
                self._encoded[id(result)] = encoded
        self._send(f'{{"jsonrpc":"2.0","id":{json.dumps(request_id)},"result":{encoded}}}\n')

    # ---- tool calls answered without the SDK ------------------------------------------------

    def serve_calls(self, calls: Calls, token: EventLoopToken,
                    start_soon: Callable[..., Any]) -> None:
        """From now on, calls `calls.takes` are answered by it, as tasks started with
        `start_soon` (a task group's) on the event loop of `token`; stdin's end waits for them."""
        self._token, self._start_soon = token, start_soon
        self._calls = calls

    def _take_call(self, request_id: str | int, params: Any) -> bool:
        calls, version = self._calls, self._version
        if calls is None or version is None or not isinstance(params, dict):
            return False
        name = params.get("name")
        if not isinstance(name, str) or not calls.takes(name, params):
            return False
        with self._calls_lock:
            self._in_flight += 1
            self._idle.clear()
        import anyio.from_thread

        anyio.from_thread.run_sync(self._start_soon, self._call, calls, request_id, name,
                                   params.get("arguments") or {}, version, token=self._token)
        return True

    async def _call(self, calls: Calls, request_id: str | int, name: str,
                    arguments: dict[str, Any], version: str) -> None:
        try:
            result = await calls.answer(name, arguments, version)
        except Exception:  # a bug here must not take the session down: the client is told
            log.exception("the direct call of %s failed", name)
            self._send(json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {
                "code": -32603, "message": f"Internal error while calling {name}"}}) + "\n")
        else:
            self._reply(request_id, result, kept=False)
        finally:
            with self._calls_lock:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

    def _answer(self, line: str) -> str:
        """Answer `line` from the snapshot when it can; what became of it (`_LISTED` ...)."""
        snapshot = self._snapshot
        if snapshot is None or '"method"' not in line:
            return _FORWARD
        try:
            message = json.loads(line)
        except ValueError:
            return _FORWARD
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return _FORWARD
        method, params = message.get("method"), message.get("params")
        if "id" not in message:
            return _HANDSHAKE if method == "notifications/initialized" else _FORWARD
        request_id = message["id"]
        if not isinstance(request_id, str | int) or isinstance(request_id, bool):
            return _FORWARD
        modern = _modern_version(params, snapshot)
        if modern is not None:  # stateless: the SDK need not see what the front answered
            if method == "server/discover":
                self._reply(request_id, snapshot.initialize[modern])
                self._wait_for_listing()
                return _PONG
            if method == "tools/list" and isinstance(params, dict) and set(params) == {"_meta"}:
                self._reply(request_id, snapshot.tools[modern])
                return _LISTED
            return _FORWARD
        if method == "initialize":
            if self._version is None and (version := _offered(params, snapshot)) is not None:
                self._version = version
                self._dropped.add(json.dumps(request_id))
                self._reply(request_id, snapshot.initialize[version])
                self._wait_for_listing()
                return _HANDSHAKE  # the SDK's session must see it too
            return _FORWARD
        if self._version is None:
            return _FORWARD
        if method == "tools/list" and (params is None or (
                isinstance(params, dict) and params.get("cursor") is None)):
            self._reply(request_id, snapshot.tools[self._version])
            return _LISTED
        if method == "tools/call" and self._take_call(request_id, params):
            return _PONG
        if method == "ping" and (params is None or isinstance(params, dict)):
            self._reply(request_id, _EMPTY)
            return _PONG
        return _FORWARD

    def _wait_for_listing(self) -> None:
        timer = threading.Timer(HANDSHAKE_WAIT_S, self._needed.set)
        timer.daemon = True
        timer.start()

    # ---- what the SDK's stdio transport is given -------------------------------------------

    def sdk_stdin(self) -> _SdkStdin:
        return _SdkStdin(self._lines)

    def sdk_stdout(self) -> _SdkStdout:
        return _SdkStdout(self)

    def from_sdk(self, text: str) -> None:
        """A line the SDK wrote: sent on, unless it answers a request the front answered."""
        if self._dropped and '"id"' in text:
            try:
                message = json.loads(text)
            except ValueError:
                message = None
            key = json.dumps(message.get("id")) if isinstance(message, dict) else None
            if key is not None and key in self._dropped:
                self._dropped.discard(key)
                if "error" in message:  # the front said yes where the SDK said no
                    log.warning("the server refused an initialize the front accepted: %s",
                                message["error"])
                return
        self._send(text)


def _not_serving(*_: Any) -> None:
    raise RuntimeError("serve_calls() was not called")


class Calls(Protocol):
    """Tool calls the front hands over directly (kimi_mcp.mcp_fastcall.FastCalls)."""

    def takes(self, name: str, params: Mapping[str, Any]) -> bool: ...

    async def answer(self, name: str, arguments: dict[str, Any], version: str) -> dict[str, Any]: ...


def _modern_version(params: Any, snapshot: Snapshot) -> str | None:
    """The version of a well-formed modern (per-request envelope) request the snapshot holds
    answers for, else None."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        return None
    version, caps, client = (meta.get(f"{_META}{k}") for k in
                             ("protocolVersion", "clientCapabilities", "clientInfo"))
    if not (isinstance(version, str) and "protocolVersion" not in snapshot.initialize.get(
            version, {"protocolVersion": None}) and _is_client(caps, client)):
        return None
    return version


def _is_client(caps: Any, client: Any) -> bool:
    return (isinstance(caps, dict) and isinstance(client, dict)
            and isinstance(client.get("name"), str) and isinstance(client.get("version"), str))


def _offered(params: Any, snapshot: Snapshot) -> str | None:
    """The version to answer an `initialize` with from the snapshot, or None when its params
    are not the plain well-formed case (the SDK then answers it, errors included)."""
    if not isinstance(params, dict):
        return None
    version, caps, client = (params.get(k) for k in ("protocolVersion", "capabilities", "clientInfo"))
    if not _is_client(caps, client) or not isinstance(version, str):
        return None
    return version if "protocolVersion" in snapshot.initialize.get(version, {}) else None


class _SdkStdin:
    """The lines the SDK reads: an async iterator over the front's queue (EOF at None)."""

    def __init__(self, lines: queue.SimpleQueue[str | None]) -> None:
        self._lines = lines
        self._done = False

    def __aiter__(self) -> _SdkStdin:
        return self

    async def __anext__(self) -> str:
        import anyio.to_thread

        if self._done:
            raise StopAsyncIteration
        try:
            line = self._lines.get_nowait()
        except queue.Empty:
            line = await anyio.to_thread.run_sync(self._lines.get, abandon_on_cancel=True)
        if line is None:
            self._done = True
            raise StopAsyncIteration
        return line


class _SdkStdout:
    """Where the SDK writes its lines: onto the wire, minus answers the front already gave."""

    def __init__(self, front: Front) -> None:
        self._front = front

    async def write(self, text: str) -> int:
        self._front.from_sdk(text)
        return len(text)

    async def flush(self) -> None:
        return None
