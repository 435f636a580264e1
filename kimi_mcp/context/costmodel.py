"""The cost model: a transformation is made when it lowers what the user pays, cache included.

Providers bill a prompt's prefix that matches the previous request at the cached price, `r`
times the input price (`cached_ratio`: the catalog's cached-input price over its input price,
DEFAULT_CACHED_RATIO where the catalog does not know it). In uncached-token units:

- Sending a tool output in a smaller form from the start saves `saved` now and `r * saved` on
  each of the `n` expected later requests: `saved * (1 + n * r)`. Nothing is re-billed.
- Masking outputs already sent changes the prompt from the first of them on: the `suffix`
  tokens that followed in the previous request, cached before, are billed in full once, a loss
  of `(1 - r) * suffix`; the masked tokens are then saved on this and every later request:
  `saved * (1 + n * r) - (1 - r) * suffix`. Masks are made in groups, where that is positive.

The expected number of later requests is the number made so far (a conversation that has run
`t` turns is, on the evidence, about half done), at least MIN_REMAINING_TURNS. Source of the
rule: issue "Context v2" (a what-if replay of 1,764 coding-agent requests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_CACHED_RATIO = 0.1
MIN_REMAINING_TURNS = 8


def cached_ratio(input_per_mtok: float | None, cached_per_mtok: float | None) -> float:
    """`r`: the cached-input price over the input price (DEFAULT_CACHED_RATIO when unknown)."""
    if not input_per_mtok or cached_per_mtok is None or input_per_mtok <= 0:
        return DEFAULT_CACHED_RATIO
    return min(1.0, max(0.0, cached_per_mtok / input_per_mtok))


def remaining_turns(turns_so_far: int) -> int:
    return max(MIN_REMAINING_TURNS, turns_so_far)


def first_sight_value(saved: int, ratio: float, remaining: int) -> float:
    """Uncached-token units saved by sending a smaller form from the start."""
    return saved * (1 + remaining * ratio)


def mask_value(saved: int, suffix: int, ratio: float, remaining: int) -> float:
    """Uncached-token units saved (negative: lost) by masking now: `saved` tokens fewer in this
    and every later request, `suffix` tokens re-billed in full once."""
    return saved * (1 + remaining * ratio) - (1 - ratio) * suffix


@dataclass(frozen=True)
class Candidate:
    position: int  # index of the message in the request
    saved: int  # tokens fewer when masked


@dataclass(frozen=True)
class Choice:
    start: int  # masks the candidates from this index on
    value: float  # uncached-token units saved
    rebilled: int  # suffix tokens billed in full once


def choose(
    candidates: Sequence[Candidate], sizes: Sequence[int], cached_end: int, ratio: float, remaining: int
) -> Choice | None:
    """The group of candidates to mask now: all those from one position on, the position that
    saves the most; None when no group pays for the suffix it re-bills.

    `sizes` are the tokens of every message as sent in the previous request; `cached_end` is the
    index where that request ended (what follows it is new and billed in full anyway).
    """
    if not candidates:
        return None
    ordered = sorted(candidates, key=lambda c: c.position)
    best: Choice | None = None
    saved = 0
    suffix = 0
    at = min(cached_end, len(sizes))
    for cand in reversed(ordered):
        saved += cand.saved
        start = cand.position
        while at > start:
            at -= 1
            suffix += sizes[at]
        value = mask_value(saved, suffix, ratio, remaining)
        if value > 0 and (best is None or value > best.value):
            best = Choice(start, value, suffix)
    return best
