"""Memories recalled by meaning: records and vectors in the ledger, one `VectorSearch`.

This package's face is light: `Memory` (the protocol the faces are typed with), the plain
data it returns and its errors, none of which imports numpy, SQLAlchemy or onnxruntime.
The engine itself is `kimi_mcp.memory.engine.MemoryEngine`; import it where one is built.
"""

from kimi_mcp.errors import MemoryEngineError, MemoryNotFound
from kimi_mcp.memory.protocol import Memory
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

__all__ = [
    "TYPES",
    "Cluster",
    "ConsolidateReport",
    "Hit",
    "Memory",
    "MemoryEngineError",
    "MemoryItem",
    "MemoryNotFound",
    "StoreResult",
    "content_hash",
    "masked_id",
]
