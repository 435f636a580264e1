"""What the stages did to one request, and what it saved: by transformation and by tool kind.

Saved cost is counted against the same request sent unchanged, with prompt caching: a prefix
that matches the previous request is billed at `ratio` times the input price. So a token
removed from the cached prefix saves `ratio`, a token removed from the new part saves 1, and
a mask made in this request loses `1 - ratio` on every original token it moves out of the
cached prefix. `cost_tokens` is that sum in uncached-token units; `cost_usd` prices it when the
catalog knows the model's input price. These figures go into the request row's `meta.context`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TRANSFORMS = ("first_sight", "repeat", "mask", "compress")


@dataclass
class Figure:
    tokens: int = 0
    cost_tokens: float = 0.0

    def add(self, tokens: int, cost_tokens: float) -> None:
        self.tokens += tokens
        self.cost_tokens += cost_tokens


@dataclass
class Savings:
    ratio: float = 0.1
    usd_per_token: float | None = None
    by_transform: dict[str, Figure] = field(default_factory=dict)
    by_kind: dict[str, Figure] = field(default_factory=dict)

    def add(self, transform: str, kind: str | None, tokens: int, cost_tokens: float) -> None:
        self.by_transform.setdefault(transform, Figure()).add(tokens, cost_tokens)
        if kind is not None:
            self.by_kind.setdefault(kind, Figure()).add(tokens, cost_tokens)

    @property
    def tokens(self) -> int:
        return sum(f.tokens for f in self.by_transform.values())

    @property
    def cost_tokens(self) -> float:
        return sum(f.cost_tokens for f in self.by_transform.values())

    def _usd(self, cost_tokens: float) -> float | None:
        return None if self.usd_per_token is None else round(cost_tokens * self.usd_per_token, 8)

    def as_meta(self) -> dict[str, Any]:
        """The `meta.context` of the request row."""

        def shape(figures: dict[str, Figure]) -> dict[str, Any]:
            return {name: {"tokens": f.tokens, "cost_tokens": round(f.cost_tokens, 1),
                           "cost_usd": self._usd(f.cost_tokens)} for name, f in sorted(figures.items())}

        return {"cached_ratio": self.ratio, "saved_tokens": self.tokens,
                "saved_cost_tokens": round(self.cost_tokens, 1), "saved_cost_usd": self._usd(self.cost_tokens),
                "by_transform": shape(self.by_transform), "by_kind": shape(self.by_kind)}


@dataclass
class StageResult:
    body: dict[str, Any]  # the transformed request body: a new dict, the input is never mutated
    saved_mask_tokens: int = 0  # tokens saved on tool outputs: first sight, repeats and masks
    saved_compress_tokens: int = 0
    memory_tokens: int = 0
    masked_ids: list[str] = field(default_factory=list)  # every changed output's original, by id
    error: str | None = None  # the request cannot be made to fit: the proxy answers 400 with it
    savings: Savings = field(default_factory=Savings)
