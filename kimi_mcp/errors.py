"""The exception tree of kimi-mcp.

    KimiError
     ├── ConfigError        a setting, a TOML file or a `${VAR}` is wrong (exit code 2)
     ├── LedgerError        the ledger database cannot be opened or written
     ├── UpstreamError      a provider failed or answered with an error
     ├── WorkspaceError     a path is outside the workspace or otherwise refused
     └── MemoryEngineError  the embedder or the vector store failed
          └── MemoryNotFound  no memory has that id

Every message says what was wrong and what to do; none carries a secret.
"""

from __future__ import annotations


class KimiError(Exception):
    """Base of every error kimi-mcp raises on purpose."""


class ConfigError(KimiError):
    exit_code = 2


class LedgerError(KimiError):
    pass


class UpstreamError(KimiError):
    def __init__(self, message: str, *, status: int = 502, code: str = "upstream_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class WorkspaceError(KimiError):
    pass


class MemoryEngineError(KimiError):
    pass


class MemoryNotFound(MemoryEngineError):
    pass
