"""An outline of a JSON value built from spread samples, so huge arrays cost little."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .engine import SAMPLES, WIDE_OBJECT_KEYS, spread, type_name
from .paths import Segment, render

# ---- the outline ----------------------------------------------------------------------------


class OutlineNode(BaseModel):
    path: str = Field(description="Pattern path; [*] stands for every array item or object value")
    type: str = Field(description="JSON type, or several joined by '|' when items differ")
    count: int | None = Field(default=None, description="Array length or number of keys")
    sample: Any = Field(default=None, description="An example value (scalars only)")
    optional: bool = Field(default=False, description="Missing from some sampled parents")
    note: str | None = None


class Outliner:
    def __init__(self, max_depth: int, max_nodes: int) -> None:
        self.max_depth, self.max_nodes = max_depth, max_nodes
        self.nodes: list[OutlineNode] = []
        self.truncated = False

    def visit(
        self, samples: list[Any], parts: list[Segment | None], depth: int, optional: bool
    ) -> None:
        if len(self.nodes) >= self.max_nodes:
            self.truncated = True
            return
        types = list(dict.fromkeys(type_name(v) for v in samples))
        node = OutlineNode(path=render(parts), type="|".join(types), optional=optional)
        self.nodes.append(node)
        dicts = [v for v in samples if isinstance(v, dict)]
        lists = [v for v in samples if isinstance(v, list)]
        scalars = [v for v in samples if not isinstance(v, dict | list)]
        example = next((v for v in scalars if v is not None), scalars[0] if scalars else None)
        node.sample = (
            example[:80] + "…" if isinstance(example, str) and len(example) > 80 else example
        )
        if dicts:
            self._object(node, dicts, parts, depth)
        if lists:
            self._array(node, lists, parts, depth)

    def _object(
        self,
        node: OutlineNode,
        dicts: list[dict[str, Any]],
        parts: list[Segment | None],
        depth: int,
    ) -> None:
        sizes = [len(d) for d in dicts]
        node.count = max(sizes)
        if depth >= self.max_depth:
            return
        if node.count > WIDE_OBJECT_KEYS:
            first = ", ".join(repr(k) for k in list(dicts[0])[:8])
            node.note = f"{node.count} keys (e.g. {first}); values merged under [*]"
            values = [v for d in dicts for v in spread(list(d.values()), SAMPLES)]
            self.visit(spread(values, SAMPLES), [*parts, None], depth + 1, False)
            return
        keys = list(dict.fromkeys(k for d in dicts for k in d))
        for key in keys:
            present = [d[key] for d in dicts if key in d]
            self.visit(present, [*parts, key], depth + 1, len(present) < len(dicts))

    def _array(
        self, node: OutlineNode, lists: list[list[Any]], parts: list[Segment | None], depth: int
    ) -> None:
        lengths = [len(v) for v in lists]
        node.count = max(lengths)
        if len(lists) > 1 and min(lengths) != max(lengths):
            node.note = f"lengths {min(lengths)}–{max(lengths)} across {len(lists)} sampled arrays"
        items = [item for v in lists for item in spread(v, SAMPLES)]
        if depth >= self.max_depth or not items:
            return
        self.visit(spread(items, SAMPLES), [*parts, None], depth + 1, False)
