"""What every compressor agrees on: which lines matter, and how a dropped stretch is marked."""

from __future__ import annotations

import re

ERROR = re.compile(
    r"(?i)(?:error|exception|traceback|\bfail(?:ed|ure|ures|s)?\b|\bfatal\b|\bpanic|warning|"
    r"\bdenied\b|not found|no such file|segmentation fault|\babort|\bcritical\b|\bcannot\b|"
    r"\bunable to\b|\bassert)"
)
# A path is tried only where its run of path characters starts: from every later start the
# scan to the run's end would repeat, which is quadratic on a long `a.a.a…` (minified code).
LOCATION = re.compile(
    r'File "[^"]+", line \d+|(?<![\w./-])[\w./-]+\.[A-Za-z]\w{0,7}:\d+|\bline \d+\b'
)
MARK_OPEN, MARK_CLOSE = "[… ", " …]"


def marker(text: str) -> str:
    """The line that stands for what a compressor dropped: `[… 12 lines …]`."""
    return f"{MARK_OPEN}{text}{MARK_CLOSE}"


def is_marker(line: str) -> bool:
    return line.startswith(MARK_OPEN) and line.endswith(MARK_CLOSE)


def is_error_line(line: str) -> bool:
    """A line that names an error, a failure or a warning: no compressor drops one."""
    return ERROR.search(line) is not None


def important(line: str) -> bool:
    """A marker, an error line, or a line naming a source location (`file.py:12`, `line 12`)."""
    return is_marker(line) or is_error_line(line) or LOCATION.search(line) is not None
