"""Provider profiles: what each provider's wire does differently from OpenAI's, one place each.

    profile = profiles.of(provider)        # by `providers.<name>.profile`, else by name, else format
    payload = profile.prepare(payload)     # outbound chat body: renames, drops, history, ids, null
    usage = profile.usage(data)            # a chunk's or a body's usage, in OpenAI's shape, or None
    profile.usage_marker in block          # a byte test before any JSON parse of a stream block
    profile.finish(reason)                 # the provider's finish reason as OpenAI's (None: error)
    profile.image_tokens(width, height, detail)   # one image part, by the provider's rule

A profile is frozen data plus small functions. The presets live in `presets.py`; a custom
provider inherits one with `profile = "<name>"` in its `[providers.<name>]` table, else the
generic profile of its format (`openai`, `gemini`, `anthropic`).
"""

from kimi_mcp.proxy.profiles.base import Profile, UsageAt
from kimi_mcp.proxy.profiles.presets import PROFILES, of

__all__ = ["PROFILES", "Profile", "UsageAt", "of"]
