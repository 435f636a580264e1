"""What the faces and the tool families are given: built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kimi_mcp.config import Settings

if TYPE_CHECKING:
    from kimi_mcp.ledger import Ledger
    from kimi_mcp.memory import MemoryEngine


@dataclass
class Deps:
    settings: Settings
    ledger: Ledger
    memory: MemoryEngine
    roots: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.roots:
            self.roots = self.settings.workspace_roots()

    @property
    def project(self) -> str:
        """The project memories and thoughts belong to: the first workspace root's name."""
        return self.roots[0].name if self.roots else "default"
