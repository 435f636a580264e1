"""The memory engine: records in the ledger, vectors in Qdrant, recall by meaning.

Importing this package loads neither onnxruntime nor qdrant_client: they load on the first
memory call that needs them.
"""

from kimi_mcp.memory.engine import MemoryEngine, MemoryNotFound
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
    "MemoryEngine",
    "MemoryItem",
    "MemoryNotFound",
    "StoreResult",
    "content_hash",
    "masked_id",
]
