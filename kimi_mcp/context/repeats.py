"""Lines a new tool output repeats from an earlier one of the same conversation.

An agent re-runs the same test, greps again, lists again: the runs of lines it has already seen
become one marker naming the earlier output's memory id and line numbers. Only runs of
MIN_LINES+ lines and MIN_CHARS+ characters count, so short common lines (`}`, blank) never do.
The index keeps 8-byte line hashes, not the lines: bounded by the conversation's line count.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from kimi_mcp.context.lines import marker

MIN_LINES = 6
MIN_CHARS = 240


@dataclass
class RepeatIndex:
    """Where each line was first seen: line hash -> (output number, line number)."""

    first: dict[int, tuple[int, int]] = field(default_factory=dict)
    hashes: list[array[int]] = field(default_factory=list)  # per output, its line hashes
    ids: list[str] = field(default_factory=list)  # per output, the memory id of its original

    def add(self, lines: Sequence[str], mid: str) -> None:
        number = len(self.hashes)
        hashed = array("q", (hash(line) for line in lines))
        for n, h in enumerate(hashed):
            self.first.setdefault(h, (number, n))
        self.hashes.append(hashed)
        self.ids.append(mid)

    def truncate(self, count: int) -> None:
        """Forget the outputs from `count` on (the conversation was edited there)."""
        if count >= len(self.hashes):
            return
        del self.hashes[count:]
        del self.ids[count:]
        self.first = {}
        for number, hashed in enumerate(self.hashes):
            for n, h in enumerate(hashed):
                self.first.setdefault(h, (number, n))

    @property
    def size(self) -> int:
        """Approximate bytes held."""
        return 120 * len(self.first) + sum(8 * len(h) + 64 for h in self.hashes) + 80 * len(self.ids)

    def replace(self, lines: Sequence[str]) -> tuple[list[str], set[str]]:
        """`lines` with the runs repeated from earlier outputs as markers, and the ids named."""
        if not self.first:
            return list(lines), set()
        hashed = [hash(line) for line in lines]
        whole = self._whole(hashed)
        if whole is not None:
            mid = self.ids[whole]
            return [marker(f"the same {len(lines)} lines as an earlier output: memory_get ids "
                           f'["{mid}"] returns them')], {mid}
        out: list[str] = []
        named: set[str] = set()
        i = 0
        while i < len(lines):
            run = self._run(hashed, lines, i)
            if run is None:
                out.append(lines[i])
                i += 1
                continue
            number, start, length = run
            mid = self.ids[number]
            named.add(mid)
            out.append(marker(f"{length} lines repeated from lines {start + 1}-{start + length} of an "
                              f'earlier output: memory_get ids ["{mid}"] returns it'))
            i += length
        return out, named

    def _whole(self, hashed: list[int]) -> int | None:
        for number, earlier in enumerate(self.hashes):
            if len(earlier) == len(hashed) and len(hashed) >= 2 and list(earlier) == hashed:
                return number
        return None

    def _run(self, hashed: list[int], lines: Sequence[str], i: int) -> tuple[int, int, int] | None:
        found = self.first.get(hashed[i])
        if found is None or len(lines[i].strip()) < 4:
            return None
        number, start = found
        earlier = self.hashes[number]
        length = 0
        chars = 0
        while (i + length < len(hashed) and start + length < len(earlier)
               and hashed[i + length] == earlier[start + length]):
            chars += len(lines[i + length]) + 1
            length += 1
        if length >= MIN_LINES and chars >= MIN_CHARS:
            return number, start, length
        return None
