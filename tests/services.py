"""The external services some tests run against: PostgreSQL and Redis on the loopback.

A test that needs one and cannot reach it is skipped, saying why — unless
`KIMI_MCP_REQUIRE_SERVICES=1` (CI sets it), where an unreachable service is a failure: CI never
skips the PostgreSQL and Redis variants silently. Each PostgreSQL test gets a schema of its own
(`search_path` in the URL), so parallel runs on one server never collide.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

POSTGRES = os.environ.get("KIMI_MCP_TEST_POSTGRES", "postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("KIMI_MCP_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRED = os.environ.get("KIMI_MCP_REQUIRE_SERVICES") == "1"
BACKENDS = ["sqlite", "postgresql"]

_reachable: dict[str, bool] = {}


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need(service: str) -> None:
    """Skip (or, when services are required, fail) unless `service` answers."""
    if service not in _reachable:
        host, port = ("127.0.0.1", 5432) if service == "postgresql" else ("127.0.0.1", 6379)
        if service == "postgresql":
            hostport = POSTGRES.split("@", 1)[-1].split("/", 1)[0]
        else:
            hostport = REDIS.split("://", 1)[-1].split("/", 1)[0]
        if ":" in hostport:
            host, raw_port = hostport.rsplit(":", 1)
            port = int(raw_port)
        _reachable[service] = _port_open(host, port)
    if not _reachable[service]:
        message = f"{service} is not reachable ({POSTGRES if service == 'postgresql' else REDIS})"
        if REQUIRED:
            pytest.fail(f"{message}; KIMI_MCP_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema on the test server; yields a SQLAlchemy URL whose search_path is it."""
    import psycopg

    need("postgresql")
    name = f"t_{secrets.token_hex(6)}"
    admin = f"postgresql://{POSTGRES}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"postgresql+psycopg://{POSTGRES}?options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@contextlib.contextmanager
def database(backend: str, data_dir: Path) -> Iterator[str]:
    """The ledger's URL for `backend`: a file in `data_dir`, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{data_dir / 'kimi-mcp.db'}"
        return
    with postgres_schema() as url:
        yield url


def redis_url() -> str:
    need("redis")
    return REDIS
