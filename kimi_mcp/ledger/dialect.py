"""SQL expressions that mean the same on SQLite and PostgreSQL.

SQLite sums booleans and truncates `CAST(x AS INTEGER)`; PostgreSQL refuses `SUM(boolean)` and
rounds the cast. Every query in `ledger/` builds these through the functions below, so the same
query text runs on both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Integer, case, cast, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from kimi_mcp.ledger.models import Request


class floor_to(FunctionElement[int]):
    """`floor(value / size) * size` as an integer (a time bucket's start)."""

    type = BigInteger()
    inherit_cache = True
    name = "floor_to"


@compiles(floor_to)
def _floor_sqlite(element: floor_to, compiler: Any, **kw: Any) -> str:
    value, size = list(element.clauses)
    # created_at is never negative, so truncation is the floor
    return (f"(CAST(({compiler.process(value, **kw)}) / ({compiler.process(size, **kw)}) "
            f"AS INTEGER) * ({compiler.process(size, **kw)}))")


@compiles(floor_to, "postgresql")
def _floor_pg(element: floor_to, compiler: Any, **kw: Any) -> str:
    value, size = list(element.clauses)
    return (f"(CAST(FLOOR(({compiler.process(value, **kw)}) / ({compiler.process(size, **kw)})) "
            f"AS BIGINT) * ({compiler.process(size, **kw)}))")


class greatest(FunctionElement[float]):
    """The larger of two values: `MAX(a, b)` on SQLite, `GREATEST(a, b)` on PostgreSQL."""

    type = Float()
    inherit_cache = True
    name = "greatest"


@compiles(greatest)
def _greatest_sqlite(element: greatest, compiler: Any, **kw: Any) -> str:
    return f"MAX({compiler.process(element.clauses, **kw)})"


@compiles(greatest, "postgresql")
def _greatest_pg(element: greatest, compiler: Any, **kw: Any) -> str:
    return f"GREATEST({compiler.process(element.clauses, **kw)})"


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """`SUM(CASE WHEN condition THEN 1 ELSE 0 END)`: how many rows meet it."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def total(value: Any) -> ColumnElement[Any]:
    """`COALESCE(SUM(value), 0)`."""
    return func.coalesce(func.sum(value), 0)


def as_float(value: Any) -> ColumnElement[float]:
    return cast(value, Float)


def as_int(value: Any) -> ColumnElement[int]:
    return cast(value, Integer)


def effective_prompt() -> ColumnElement[int]:
    """The token rule in SQL: the provider's prompt tokens, else the estimate, else 0."""
    return func.coalesce(Request.prompt_tokens, Request.est_prompt_tokens, 0)


def effective_completion() -> ColumnElement[int]:
    return func.coalesce(Request.completion_tokens, Request.est_completion_tokens, 0)
