"""Follow a growing text file by polling: rotation, truncation, late files and partial lines.

A `Follower` keeps its file open. Each `poll()` drains what was appended since the last one and
returns the complete lines; a trailing line without its newline waits in a buffer for the rest.
When the path names a different file (rotation: `core.log` renamed, a new one created), the old
file is drained to its end first and the new one is read from its start. When the file shrinks
(truncation), reading restarts at its start.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass
class Follower:
    path: Path
    from_end: bool = True  # start at the end of a file that exists when following begins
    offset: int = 0
    rotations: int = 0
    truncations: int = 0
    _fh: BinaryIO | None = field(default=None, repr=False)
    _ident: tuple[int, int] | None = field(default=None, repr=False)
    _buffer: bytes = field(default=b"", repr=False)

    def poll(self) -> list[str]:
        """The complete lines appended since the last poll (never raises for I/O trouble)."""
        lines: list[str] = []
        at_end, self.from_end = self.from_end, False  # a file that appears later is read whole
        if self._fh is None and not self._open(at_end=at_end):
            return lines
        lines.extend(self._drain())
        try:
            st = os.stat(self.path)
        except OSError:
            return lines  # rotated away and not yet recreated: keep what we have open
        if (st.st_dev, st.st_ino) != self._ident:
            self.rotations += 1
            self._flush_partial(lines)
            self.close()
            if self._open(at_end=False):
                lines.extend(self._drain())
        elif st.st_size < self.offset:
            self.truncations += 1
            self._buffer = b""
            assert self._fh is not None
            self._fh.seek(0)
            self.offset = 0
            lines.extend(self._drain())
        return lines

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._ident = None

    def _open(self, at_end: bool) -> bool:
        try:
            fh = open(self.path, "rb")  # kept open between polls: rotation drains the old file
        except OSError:
            return False
        st = os.fstat(fh.fileno())
        self._fh, self._ident = fh, (st.st_dev, st.st_ino)
        self.offset = fh.seek(0, os.SEEK_END) if at_end else 0
        self._buffer = b""
        return True

    def _drain(self) -> list[str]:
        assert self._fh is not None
        try:
            size = os.fstat(self._fh.fileno()).st_size
            if size < self.offset:  # truncated in place; the path check below may not see it
                self.truncations += 1
                self._fh.seek(0)
                self.offset = 0
                self._buffer = b""
            data = b""
            while chunk := self._fh.read(_CHUNK):
                data += chunk
        except OSError as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return []
        self.offset += len(data)
        data = self._buffer + data
        *complete, self._buffer = data.split(b"\n")
        return [line.decode("utf-8", errors="replace").rstrip("\r") for line in complete]

    def _flush_partial(self, lines: list[str]) -> None:
        """A rotated file will not grow any more: its unterminated last line is complete."""
        if self._buffer:
            lines.append(self._buffer.decode("utf-8", errors="replace").rstrip("\r"))
            self._buffer = b""
