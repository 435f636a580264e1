"""The memory engine: records in the ledger, vectors in Qdrant, recall by meaning.

Importing this package loads neither onnxruntime nor qdrant_client: they load on the first
memory call that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kimi_mcp.errors import MemoryNotFound

if TYPE_CHECKING:
    from kimi_mcp.memory.engine import MemoryEngine
    from kimi_mcp.memory.types import (
        TYPES,
        Cluster,
        ConsolidateReport,
        Hit,
        MemoryItem,
        StoreResult,
        content_hash,
        masked_id,
    )

# Names load on first use: `kimi-mcp stdio` must answer `initialize` before numpy and
# SQLAlchemy are imported.
_LAZY = {"MemoryEngine": "engine", "TYPES": "types", "Cluster": "types",
         "ConsolidateReport": "types", "Hit": "types", "MemoryItem": "types",
         "StoreResult": "types", "content_hash": "types", "masked_id": "types"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kimi_mcp.memory' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"kimi_mcp.memory.{module}"), name)


__all__ = [
    "TYPES",
    "Cluster",
    "ConsolidateReport",
    "Hit",
    "MemoryEngine",
    "MemoryItem",
    "MemoryNotFound",
    "StoreResult",
    "content_hash",
    "masked_id",
]
