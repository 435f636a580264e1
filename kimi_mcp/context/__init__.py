"""Context stages for proxied chat requests: memory tags, sanitizer (mask), compression.

    from kimi_mcp.context import apply_stages
    result = await apply_stages(deps, body, session_id=sid, context_window=window)
    # result.body goes upstream; result.error set → answer 400 with it
"""

from kimi_mcp.context.pipeline import StageResult, Switches, apply_stages
from kimi_mcp.context.sanitizer import masked_id, placeholder_id

__all__ = ["StageResult", "Switches", "apply_stages", "masked_id", "placeholder_id"]
