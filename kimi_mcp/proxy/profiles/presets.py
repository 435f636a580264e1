"""The profiles of the built-in providers and of each format's generic provider.

Sources, per profile: the provider's API reference, and the failures other gateways' users
reported (LiteLLM's per-provider transformations and issues, Vercel AI SDK's provider packages).
"""

from __future__ import annotations

from kimi_mcp.catalog import Provider
from kimi_mcp.proxy.profiles.base import Profile, _frozen, alnum_id
from kimi_mcp.tokens import anthropic_image_tokens, gemini_image_tokens

_OPENAI_ONLY = ("metadata", "store", "service_tier")  # OpenAI platform fields others refuse
_REASONING_ECHO = ("reasoning_content", "reasoning")  # reasoning text echoed in assistant history

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile(
        "openai",
        normalises="nothing: the body passes as the client sent it",
    ),
    # a local OpenAI-compatible server (llama.cpp's `llama-server`, llama-cpp-python): an
    # assistant turn with `content: null` beside its tool calls is a 500 there; no usage in streams
    Profile(
        "local",
        empty_tool_call_content=True,
        normalises="`content: null` beside tool calls sent as `\"\"`",
    ),
    # platform.moonshot.ai/docs (chat API): streamed usage rides in `choices[0].usage` of the
    # last chunk, with the cache hits as a top-level `cached_tokens`
    Profile(
        "kimi", usage_at=("usage", "choice"),
        normalises="usage read from `choices[0].usage` of the last chunk; "
                   "top-level `cached_tokens` as `prompt_tokens_details.cached_tokens`",
    ),
    # docs.api.nvidia.com (NIM LLM API): `max_tokens`, no OpenAI platform fields (the rename as
    # LiteLLM's nvidia_nim transformation does it; not every NIM model refuses the new name)
    Profile(
        "nvidia", drop_params=(*_OPENAI_ONLY, "parallel_tool_calls"),
        rename_params=_frozen(max_completion_tokens="max_tokens"),
        normalises="`max_completion_tokens` sent as `max_tokens`; drops `metadata`, `store`, "
                   "`service_tier`, `parallel_tool_calls`",
    ),
    # docs.mistral.ai/api (chat completions): extra fields are a 422, tool-call ids are 9
    # alphanumerics, `name` only on tool messages, no `null` values; `model_length` finish
    Profile(
        "mistral", stream_usage_option=False, drop_params=("stream_options", *_OPENAI_ONLY),
        rename_params=_frozen(max_completion_tokens="max_tokens"),
        drop_history_fields=_REASONING_ECHO, empty_tool_call_content=True,
        name_on_tool_only=True, tool_call_id=alnum_id(9), finish_reasons=_frozen(model_length="length"),
        normalises="`max_completion_tokens` sent as `max_tokens`; `reasoning_content` dropped "
                   "from history; tool-call ids rewritten to 9 alphanumerics (a hash, the same "
                   "in `tool_calls` and `tool_call_id`); `content: null` beside tool calls sent "
                   "as `\"\"`; `name` kept on tool results only; finish `model_length` as `length`; "
                   "drops `stream_options`",
    ),
    # openrouter.ai/docs/api-reference/streaming and /errors: an error after the first byte is
    # a chunk with `error` and `finish_reason: "error"`; `: OPENROUTER PROCESSING` comments
    Profile(
        "openrouter", retry_after="Retry-After in seconds, when sent",
        normalises="in-band error chunks (`finish_reason: \"error\"`) recorded as errors; "
                   "keep-alive comments not taken for the first token",
    ),
    # docs.siliconflow.com (chat completions): documents `max_tokens` (the rename is a precaution,
    # `max_completion_tokens` is not documented there); DeepSeek-style cache figures
    Profile(
        "siliconflow", rename_params=_frozen(max_completion_tokens="max_tokens"),
        normalises="`max_completion_tokens` sent as `max_tokens`; `prompt_cache_hit_tokens` "
                   "as cached tokens",
    ),
    # console.groq.com/docs/openai: no `logprobs`, `logit_bias`, `top_logprobs`, `messages[].name`;
    # assistant `reasoning_content`/`reasoning` in history is a 400 (users' reports, 2025-2026);
    # usage also in `x_groq.usage`
    Profile(
        "groq", usage_at=("usage", "x_groq"),
        retry_after="Retry-After in seconds; x-ratelimit-reset-tokens as a duration (7.66s)",
        drop_params=(*_OPENAI_ONLY, "logprobs", "top_logprobs", "logit_bias"),
        drop_history_fields=_REASONING_ECHO, name_on_tool_only=True,
        normalises="usage read from `x_groq.usage`; `reasoning_content`/`reasoning` dropped "
                   "from history; `name` kept on tool results only; drops `logprobs`, "
                   "`top_logprobs`, `logit_bias`",
    ),
    # inference-docs.cerebras.ai/resources/openai: unsupported OpenAI fields (the list as last
    # published; dropping echoed reasoning from history is a precaution like Groq's)
    Profile(
        "cerebras", retry_after="x-ratelimit-reset-tokens-minute in seconds",
        drop_params=(*_OPENAI_ONLY, "frequency_penalty", "presence_penalty", "logit_bias",
                     "parallel_tool_calls"),
        drop_history_fields=_REASONING_ECHO,
        normalises="drops `frequency_penalty`, `presence_penalty`, `logit_bias`, "
                   "`parallel_tool_calls`; `reasoning_content` dropped from history",
    ),
    # ai.google.dev/gemini-api/docs: the translation itself lives in formats/gemini.py
    Profile(
        "gemini", wire="gemini", usage_at=(), stream_usage_option=False,
        image_tokens=gemini_image_tokens, retry_after="RetryInfo.retryDelay in the error body",
        normalises="translated to `generateContent` both ways; images counted 258 per "
                   "768px tile",
    ),
    # docs.anthropic.com (Messages): translated both ways in formats/anthropic_*.py
    Profile(
        "anthropic", wire="anthropic", usage_at=(), stream_usage_option=False,
        image_tokens=anthropic_image_tokens,
        normalises="translated to Messages both ways; images counted as width*height/750",
    ),
)}


def of(provider: Provider) -> Profile:
    """The profile of `provider`: the one the catalog chose (`providers.<name>.profile`, else its
    preset's when it speaks the preset's format, else its format's)."""
    return PROFILES.get(provider.profile) or PROFILES[provider.format]
