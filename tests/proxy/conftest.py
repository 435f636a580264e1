"""The proxy's tests run on both ledger backends: SQLite and PostgreSQL (tests/services.py)."""

from __future__ import annotations

import pytest

from tests.services import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
