"""Providers, models, context windows and prices. Nothing here touches the network.

The eight built-in presets are merged with `[providers.*]` from the settings: a preset is changed
by naming it, a new provider is added by giving it a `base_url`. Prices come from `genai-prices`
(an offline table), then from our own small table, then from the TOML file; a model priced
nowhere costs `None`, never 0.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from kimi_mcp.config import ModelSettings, ProviderSettings, Settings
from kimi_mcp.errors import AmbiguousModel, ConfigError, ModelNotFound, RequestError

log = logging.getLogger(__name__)

Format = Literal["openai", "gemini", "anthropic"]
DEFAULT_CONTEXT = 131_072


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    reasoning: float | None = None


@dataclass(frozen=True)
class ModelInfo:
    id: str
    context_window: int = DEFAULT_CONTEXT
    max_output_tokens: int | None = None
    prices: Prices | None = None


@dataclass(frozen=True)
class Preset:
    base_url: str
    key_env: str
    format: Format = "openai"
    timeout_s: float = 120
    prices_id: str | None = None
    prefixes: tuple[str, ...] = ()
    models: tuple[ModelInfo, ...] = ()
    anthropic_url: str | None = None  # the provider's Anthropic-compatible endpoint, if it has one


def _m(id_: str, ctx: int, prices: Prices | None = None, out: int | None = None) -> ModelInfo:
    return ModelInfo(id_, ctx, out, prices)


# List prices for providers genai-prices does not cover (USD / MTok, public price pages, 2025).
_OUR_PRICES: dict[tuple[str, str], Prices] = {
    ("nvidia", "moonshotai/kimi-k2-instruct"): Prices(0.60, 2.50),
    ("nvidia", "meta/llama-3.3-70b-instruct"): Prices(0.60, 0.60),
    ("nvidia", "deepseek-ai/deepseek-r1"): Prices(0.55, 2.19),
    ("nvidia", "qwen/qwen3-coder-480b-a35b-instruct"): Prices(0.40, 1.60),
    ("siliconflow", "moonshotai/Kimi-K2-Instruct"): Prices(0.58, 2.29),
    ("siliconflow", "deepseek-ai/DeepSeek-V3"): Prices(0.27, 1.10),
    ("siliconflow", "Qwen/Qwen2.5-Coder-32B-Instruct"): Prices(0.18, 0.18),
    ("mistral", "devstral-medium-latest"): Prices(0.40, 2.00),
}

PRESETS: dict[str, Preset] = {
    "kimi": Preset(
        "https://api.moonshot.ai/v1", "MOONSHOT_API_KEY", timeout_s=120, prices_id="moonshotai",
        prefixes=("kimi-", "moonshot-"),
        # Moonshot's Anthropic-compatible endpoint, used with `format = "anthropic"`
        # (https://platform.moonshot.ai/docs, "Use Kimi in Claude Code")
        anthropic_url="https://api.moonshot.ai/anthropic/v1",
        models=(
            _m("kimi-k2-0905-preview", 262_144), _m("kimi-k2-turbo-preview", 262_144),
            _m("kimi-k2-thinking", 262_144), _m("moonshot-v1-128k", 131_072),
        ),
    ),
    "nvidia": Preset(
        "https://integrate.api.nvidia.com/v1", "NVIDIA_API_KEY", timeout_s=150,
        models=(
            _m("moonshotai/kimi-k2-instruct", 131_072), _m("meta/llama-3.3-70b-instruct", 131_072),
            _m("deepseek-ai/deepseek-r1", 131_072), _m("qwen/qwen3-coder-480b-a35b-instruct", 262_144),
        ),
    ),
    "mistral": Preset(
        "https://api.mistral.ai/v1", "MISTRAL_API_KEY", timeout_s=120, prices_id="mistral",
        prefixes=("mistral-", "codestral-", "devstral-", "magistral-", "ministral-", "open-mistral-"),
        models=(
            _m("mistral-large-latest", 131_072), _m("mistral-small-latest", 131_072),
            _m("codestral-latest", 262_144), _m("devstral-medium-latest", 131_072),
        ),
    ),
    "openrouter": Preset(
        "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", timeout_s=120, prices_id="openrouter",
        models=(
            _m("moonshotai/kimi-k2", 131_072), _m("openai/gpt-4o-mini", 128_000),
            _m("anthropic/claude-sonnet-4", 200_000),
        ),
    ),
    "siliconflow": Preset(
        "https://api.siliconflow.com/v1", "SILICONFLOW_API_KEY", timeout_s=120,
        models=(
            _m("moonshotai/Kimi-K2-Instruct", 131_072), _m("deepseek-ai/DeepSeek-V3", 131_072),
            _m("Qwen/Qwen2.5-Coder-32B-Instruct", 32_768),
        ),
    ),
    "groq": Preset(
        "https://api.groq.com/openai/v1", "GROQ_API_KEY", timeout_s=60, prices_id="groq",
        models=(
            _m("moonshotai/kimi-k2-instruct", 131_072), _m("llama-3.3-70b-versatile", 131_072),
            _m("openai/gpt-oss-120b", 131_072),
        ),
    ),
    "cerebras": Preset(
        "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", timeout_s=60, prices_id="cerebras",
        prefixes=("qwen-3-",),
        models=(
            _m("llama-3.3-70b", 65_536), _m("gpt-oss-120b", 131_072),
            _m("qwen-3-coder-480b", 131_072),
        ),
    ),
    "anthropic": Preset(
        "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY", format="anthropic", timeout_s=300,
        prices_id="anthropic", prefixes=("claude-",),
        models=(
            _m("claude-sonnet-4-5", 200_000, out=64_000), _m("claude-opus-4-1", 200_000, out=32_000),
            _m("claude-haiku-4-5", 200_000, out=64_000),
        ),
    ),
    "gemini": Preset(
        "https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY", format="gemini",
        timeout_s=180, prices_id="google", prefixes=("gemini-", "gemma-"),
        models=(
            _m("gemini-2.5-pro", 1_048_576), _m("gemini-2.5-flash", 1_048_576),
            _m("gemini-2.0-flash", 1_048_576),
        ),
    ),
}


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    key_env: str | None
    api_key: str | None = field(repr=False)
    format: Format
    timeout_s: float
    max_retries: int
    rpm: int
    tpm: int
    queue_timeout_s: float
    drop_params: tuple[str, ...] | None  # None: the profile's (proxy/profiles)
    headers: dict[str, str]
    models: dict[str, ModelInfo]
    prices_id: str | None = None
    prefixes: tuple[str, ...] = ()
    # whose wire quirks it has (kimi_mcp/proxy/profiles): `providers.<name>.profile`, else the
    # preset's name when it speaks the preset's format, else its format
    profile: str = "openai"
    # False when the provider takes no key: its key was set to "none" on purpose, or it has
    # neither a key nor a key variable (a local server)
    key_required: bool = True

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)

    @property
    def ready(self) -> bool:
        """Whether calls can go out: it has its key, or needs none."""
        return self.has_key or not self.key_required

    def model(self, model_id: str) -> ModelInfo:
        found = self.models.get(model_id)
        if found is not None:
            return found
        return ModelInfo(model_id, DEFAULT_CONTEXT, None, _lookup_prices(self.name, self.prices_id, model_id))


@dataclass(frozen=True)
class Resolved:
    provider: Provider
    model: ModelInfo

    @property
    def ref(self) -> str:
        return f"{self.provider.name}/{self.model.id}"


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.providers: dict[str, Provider] = {}
        for name in [*PRESETS, *[n for n in settings.providers if n not in PRESETS]]:
            user = settings.providers.get(name)
            if user is not None and not user.enabled:
                continue
            self.providers[name] = _build(name, PRESETS.get(name), user or ProviderSettings(), settings)

    def provider(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise ModelNotFound(name, difflib.get_close_matches(name, self.providers)) from None

    def all_models(self) -> list[str]:
        return [f"{p.name}/{m}" for p in self.providers.values() for m in p.models]

    def resolve(self, ref: str) -> Resolved:
        """`provider/model`, a bare model id listed by one provider, or a known prefix."""
        head, sep, rest = ref.partition("/")
        if sep and head in self.providers:
            provider = self.providers[head]
            return Resolved(provider, provider.model(rest))
        owners = [p for p in self.providers.values() if ref in p.models]
        if len(owners) == 1:
            return Resolved(owners[0], owners[0].models[ref])
        if len(owners) > 1:
            raise AmbiguousModel(ref, [f"{p.name}/{ref}" for p in owners])
        for provider in self.providers.values():
            if any(ref.startswith(prefix) for prefix in provider.prefixes):
                return Resolved(provider, provider.model(ref))
        names = self.all_models() + [m.split("/", 1)[1] for m in self.all_models()]
        raise ModelNotFound(ref, difflib.get_close_matches(ref, names, n=3, cutoff=0.5))

    def check_choice(self, provider: str | None, model: str | None,
                     aliases: Collection[str] = ()) -> list[str]:
        """A provider and model someone picks (a session's, an agent's) checked as the proxy will
        resolve them: an unknown provider, or a model no provider resolves, is a `RequestError`
        naming what is configured. A known provider takes any model id, as the proxy sends it
        on as is, so a model its provider does not list is only a warning (returned)."""
        configured = ", ".join(self.providers)
        if provider is not None and provider not in self.providers:
            raise RequestError(f"unknown provider {provider!r}; configured: {configured}",
                               code="unknown_provider")
        if not model or (provider is None and model in aliases):
            return []
        ref = model if provider is None or model.startswith(f"{provider}/") else f"{provider}/{model}"
        try:
            resolved = self.resolve(ref)
        except ModelNotFound as exc:
            head, sep, _ = ref.partition("/")
            if sep and head not in self.providers:
                raise RequestError(f"unknown provider {head!r} in model {ref!r}; configured: "
                                   f"{configured}", code="unknown_provider") from None
            raise RequestError(str(exc), code=exc.code) from None
        name, model_id = resolved.provider.name, resolved.model.id
        if model_id in resolved.provider.models:
            return []
        return [f"model {model_id!r} is not in the catalog of {name}: the proxy sends it to {name} "
                f"as is (`kimi-mcp config show` lists the known ones)"]

    def cost(
        self,
        resolved: Resolved,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> float | None:
        """USD for one call; `None` when no price is known. Cached input is billed at its rate."""
        prices = resolved.model.prices
        if prices is None:
            return None
        cached = min(cached_tokens, prompt_tokens) if prices.cached_input is not None else 0
        total = (prompt_tokens - cached) * prices.input + completion_tokens * prices.output
        if cached:
            total += cached * (prices.cached_input or 0)
        if prices.reasoning is not None and reasoning_tokens:
            total += reasoning_tokens * (prices.reasoning - prices.output)
        return round(total / 1_000_000, 10)


def _build(name: str, preset: Preset | None, user: ProviderSettings, settings: Settings) -> Provider:
    if preset is None and not user.base_url:
        raise ConfigError(f"providers.{name}: a new provider needs base_url")
    key_env = user.api_key_env or (preset.key_env if preset else None)
    key = user.api_key.get_secret_value() if user.api_key else None
    if not key and key_env:
        key = settings.env(key_env)
    prices_id = preset.prices_id if preset else None
    models = {m.id: _with_prices(name, prices_id, m) for m in (preset.models if preset else ())}
    for model_id, override in user.models.items():
        models[model_id] = _merge_model(name, prices_id, models.get(model_id), model_id, override)
    timeout = user.timeout_s or (preset.timeout_s if preset else 60)
    wire = _PROFILE_WIRES.get(user.profile or "", "openai")
    fmt = user.format or (preset.format if preset else wire)
    if user.profile and wire != fmt:
        raise ConfigError(f"providers.{name}.profile: the {user.profile} profile is for the "
                          f"{wire} format, and this provider speaks {fmt}")
    base_url = user.base_url or (preset.base_url if preset else "")
    if preset is not None and not user.base_url and fmt != preset.format:
        if fmt != "anthropic" or not preset.anthropic_url:
            raise ConfigError(f"providers.{name}.format: the {name} preset speaks {preset.format}"
                              + (" or anthropic" if preset.anthropic_url else "")
                              + f", not {fmt}; set providers.{name}.base_url for another endpoint")
        base_url = preset.anthropic_url
    return Provider(
        name=name,
        base_url=base_url.rstrip("/"),
        key_env=key_env,
        api_key=key if key and key.lower() != "none" else None,
        key_required=not (key and key.lower() == "none") and bool(key_env or key),
        format=fmt,
        timeout_s=timeout,
        max_retries=2 if user.max_retries is None else user.max_retries,
        rpm=user.rpm or 0,
        tpm=user.tpm or 0,
        queue_timeout_s=10.0 if user.queue_timeout_s is None else user.queue_timeout_s,
        drop_params=tuple(user.drop_params) if user.drop_params is not None else None,
        headers=dict(user.headers),
        models=models,
        prices_id=prices_id,
        prefixes=preset.prefixes if preset else (),
        profile=user.profile or (name if preset is not None and fmt == preset.format else fmt),
    )


_PROFILE_WIRES: dict[str, Format] = {"gemini": "gemini", "anthropic": "anthropic"}


def _with_prices(provider: str, prices_id: str | None, model: ModelInfo) -> ModelInfo:
    if model.prices is not None:
        return model
    return ModelInfo(model.id, model.context_window, model.max_output_tokens,
                     _lookup_prices(provider, prices_id, model.id))


def _merge_model(
    provider: str, prices_id: str | None, base: ModelInfo | None, model_id: str, user: ModelSettings
) -> ModelInfo:
    base = base or _with_prices(provider, prices_id, ModelInfo(model_id))
    prices = base.prices
    if user.input_per_mtok is not None and user.output_per_mtok is not None:
        prices = Prices(user.input_per_mtok, user.output_per_mtok, user.cached_input_per_mtok,
                        user.reasoning_per_mtok)
    return ModelInfo(
        model_id,
        user.context_window or base.context_window,
        user.max_output_tokens or base.max_output_tokens,
        prices,
    )


@lru_cache(maxsize=512)
def _lookup_prices(provider: str, prices_id: str | None, model_id: str) -> Prices | None:
    ours = _OUR_PRICES.get((provider, model_id))
    if ours is not None or prices_id is None:
        return ours
    return _genai_prices(prices_id, model_id)


def _genai_prices(prices_id: str, model_id: str) -> Prices | None:
    from genai_prices import Usage, calc_price  # 0.2 s import: only when a price is first needed

    def per_mtok(**usage: int) -> float | None:
        try:
            calc = calc_price(Usage(**usage), model_id, provider_id=prices_id)
        except LookupError:
            return None
        return float(calc.total_price)

    sample = 10_000  # small enough to stay in the base tier of tiered prices
    scale = 1_000_000 / sample
    base_in = _scaled(per_mtok(input_tokens=sample), scale)
    base_out = _scaled(per_mtok(output_tokens=sample), scale)
    if base_in is None or base_out is None or (base_in == 0 and base_out == 0):
        return None
    cached = _scaled(per_mtok(input_tokens=sample, cache_read_tokens=sample), scale)
    return Prices(base_in, base_out, cached if cached is not None and cached != base_in else None)


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else round(value * scale, 6)


def describe(provider: Provider) -> dict[str, Any]:
    """A provider as the API and dashboard may show it: never the key itself."""
    return {
        "name": provider.name,
        "base_url": provider.base_url,
        "format": provider.format,
        "key_env": provider.key_env,
        "has_key": provider.has_key,
        "key_required": provider.key_required,
        "timeout_s": provider.timeout_s,
        "rpm": provider.rpm,
        "tpm": provider.tpm,
        "models": [
            {"id": m.id, "context_window": m.context_window,
             "prices": None if m.prices is None else vars(m.prices)}
            for m in provider.models.values()
        ],
    }
