"""The exception tree of kimi-mcp, and its one description for HTTP and MCP.

    KimiError                          status  code
     ├── ConfigError                   500     config_error          a setting, TOML file or ${VAR} is wrong (exit 2)
     ├── RequestError                  400     invalid_request_error what a client sent cannot be served
     │    ├── NotFound                 404     not_found
     │    │    ├── ModelNotFound       404     model_not_found       (catalog)
     │    │    └── SessionNotFound     404     session_not_found     (ledger.sessions)
     │    ├── AmbiguousModel           400     ambiguous_model       (catalog)
     │    └── InitError                        `kimi-mcp init` cannot write a client's config (agents)
     ├── LedgerError                   503     ledger_error          the ledger cannot be opened or written
     │    └── Busy                             locked or unreachable for now; the writer retries
     ├── UpstreamError                 502     upstream_error        a provider failed or answered with an error
     │    ├── RateLimited              429     rate_limit_exceeded   a local rpm/tpm budget is spent
     │    └── LlmError                         a product call to a model (planning, summaries) failed (llm)
     ├── WorkspaceError                400     workspace_error       a path is outside the workspace or refused
     ├── ToolInputError                400     invalid_tool_input    a tool family refuses its input
     │    ├── TaskBoardError                   the task board cannot do that (servers.tasks)
     │    ├── ThoughtError                     a thought does not fit its session (servers.thinking)
     │    └── JsonError                        a JSON file or path cannot be used (servers.jsonq)
     │         └── JsonSyntaxError             the file is not valid JSON
     ├── Unparseable                           a line of Continue's logs cannot be read (logwatch;
     │                                         counted on the dashboard, never shown to a client)
     └── MemoryEngineError             500     memory_error          the embedder or the vector store failed
          ├── MemoryNotFound           404     memory_not_found
          └── VectorStoreLocked                another process holds the vector store (memory.vectors)

Every message says what was wrong and what to do; none carries a secret, a SQL statement or a
stack trace. `describe(exc)` is the one mapping from any exception to what a client is told; the
HTTP faces render it in their wire format (OpenAI, Anthropic, Responses) and the MCP face turns
it into an `isError` result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INTERNAL_MESSAGE = ("kimi-mcp failed unexpectedly while serving this request; the failure is in "
                    "the server's log. Retry, and report it if it happens again")


class KimiError(Exception):
    """Base of every error kimi-mcp raises on purpose."""

    status: int = 500
    code: str = "internal_error"


class ConfigError(KimiError):
    exit_code = 2
    code = "config_error"


class RequestError(KimiError):
    """The client's request cannot be served as sent; the message says what to send instead."""

    status = 400
    code = "invalid_request_error"

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class NotFound(RequestError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, ref: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"model {ref!r} is not configured{hint} (GET /v1/models lists them)")
        self.suggestions = suggestions


class SessionNotFound(NotFound):
    code = "session_not_found"


class AmbiguousModel(RequestError):
    code = "ambiguous_model"

    def __init__(self, ref: str, candidates: list[str]) -> None:
        super().__init__(
            f"model {ref!r} is offered by several providers: {', '.join(candidates)}; "
            "name one as provider/model"
        )
        self.candidates = candidates


class LedgerError(KimiError):
    status = 503
    code = "ledger_error"


class UpstreamError(KimiError):
    """A provider failed, refused or could not be reached.

    `retryable`: the next candidate of a route may succeed; `retry_after`: seconds the provider
    (or a local limit) asked to wait; `answer`: the provider's error answer when it was a JSON
    object (what it reports beside the error, e.g. the usage it bills; never shown to a client).
    """

    status = 502
    code = "upstream_error"

    def __init__(self, message: str, *, status: int = 502, code: str = "upstream_error",
                 retry_after: float | None = None, retryable: bool = False,
                 answer: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.retryable = retryable
        self.answer = answer


class RateLimited(UpstreamError):
    def __init__(self, provider: str, retry_after: float, what: str) -> None:
        super().__init__(f"{provider} is over its {what} limit; retry after {retry_after:.1f}s",
                         status=429, code="rate_limit_exceeded", retry_after=retry_after,
                         retryable=True)
        self.provider = provider


class WorkspaceError(KimiError):
    status = 400
    code = "workspace_error"


class ToolInputError(KimiError, ValueError):
    """A tool family refuses its input; the message tells the model what to send instead."""

    status = 400
    code = "invalid_tool_input"


class MemoryEngineError(KimiError):
    code = "memory_error"


class MemoryNotFound(MemoryEngineError):
    status = 404
    code = "memory_not_found"


@dataclass(frozen=True)
class ErrorInfo:
    """What a client is told about a failure: HTTP status, machine code, human message."""

    status: int
    code: str
    message: str
    retry_after: float | None = None

    @property
    def type(self) -> str:
        """OpenAI's error `type` for the status (also used for Anthropic's error types)."""
        if self.status in (401, 403):
            return "authentication_error"
        if self.status == 404:
            return "not_found_error"
        if self.status == 413:
            return "request_too_large"
        if self.status == 429:
            return "rate_limit_error"
        if self.status >= 500:
            return "api_error"
        return "invalid_request_error"


def describe(exc: BaseException) -> ErrorInfo:
    """The one mapping from an exception to what a client may see.

    A `KimiError` keeps its message (written for the user); anything else is an internal failure
    whose text never leaves the server (it may hold paths, SQL or a key).
    """
    if isinstance(exc, KimiError):
        retry_after = exc.retry_after if isinstance(exc, UpstreamError) else None
        return ErrorInfo(exc.status, exc.code, str(exc) or type(exc).__name__, retry_after)
    return ErrorInfo(500, "internal_error", INTERNAL_MESSAGE)
