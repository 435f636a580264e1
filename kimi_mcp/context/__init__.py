"""Context stages for proxied chat requests: memory tags, tool outputs (first-sight compression,
masking by a cost model), compression of the middle; every change recoverable by id.

    from kimi_mcp.context import ContextStages
    stages = ContextStages.from_deps(deps)            # once, by the composition root
    result = await stages.apply(body, session_id=sid, context_window=window, enabled=True)
    # result.body goes upstream; result.error set → answer 400 with it
"""

from kimi_mcp.context.figures import Savings, StageResult
from kimi_mcp.context.firstsight import compressed_id
from kimi_mcp.context.pipeline import Switches
from kimi_mcp.context.sanitizer import masked_id, placeholder_id
from kimi_mcp.context.stages import ContextStages

__all__ = ["ContextStages", "Savings", "StageResult", "Switches", "compressed_id", "masked_id",
           "placeholder_id"]
