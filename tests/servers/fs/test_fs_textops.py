"""The text operations behind read_file and the edit tools, against simple models of them."""

from __future__ import annotations

import io
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st
from kimi_mcp.servers.fs.textops import (
    LineEdit,
    TextEdit,
    apply_edits,
    apply_line_edits,
    read_window,
)

texts = st.lists(st.text(alphabet="ab \t", max_size=6), max_size=8).map("\n".join)


def _naive(data: bytes, start: int, max_lines: int) -> tuple[str, int, int | None]:
    lines = data.decode().splitlines(keepends=True)
    chosen = lines[start - 1 : start - 1 + max_lines]
    more = start - 1 + max_lines < len(lines)
    return "".join(chosen), len(lines), (start + len(chosen) if more else None)


@settings(max_examples=200, deadline=None)
@given(text=texts, trailing=st.booleans(), start=st.integers(1, 10), max_lines=st.integers(1, 10))
def test_read_window_agrees_with_a_naive_split_whether_read_whole_or_streamed(
    text: str, trailing: bool, start: int, max_lines: int
) -> None:
    data = (text + ("\n" if trailing and text else "")).encode()
    expected = _naive(data, start, max_lines)
    streamed = read_window(io.BytesIO(data), "utf-8", start, max_lines, 10_000)
    with tempfile.TemporaryFile() as handle:
        handle.write(data)
        handle.seek(0)
        whole = read_window(handle, "utf-8", start, max_lines, 10_000)  # type: ignore[arg-type]
    for got in (streamed, whole):
        assert (got.text, got.total_lines, got.stopped_at) == expected


def test_read_window_stops_at_the_character_budget_and_counts_the_rest() -> None:
    data = b"".join(b"%04d\n" % n for n in range(1000))
    got = read_window(io.BytesIO(data), "utf-8", 1, 10_000, 52)
    assert (got.count, got.total_lines, got.stopped_at) == (10, 1000, 11)


@settings(max_examples=200, deadline=None)
@given(text=texts, data=st.data())
def test_an_exact_edit_of_a_unique_substring_replaces_only_it(
    text: str, data: st.DataObject
) -> None:
    if not text:
        return
    start = data.draw(st.integers(0, len(text) - 1))
    old = text[start : data.draw(st.integers(start + 1, len(text)))]
    if text.count(old) != 1:
        return
    new, how = apply_edits(text, [TextEdit(old, "<X>")])
    assert new == text.replace(old, "<X>") and how == ["exact"]


def test_line_edits_all_refer_to_the_original_numbers() -> None:
    edits = [LineEdit(3, "delete"), LineEdit(1, "replace", "A"), LineEdit(2, "insert_after", "b2")]
    assert apply_line_edits("a\nb\nc\n", edits) == "A\nb\nb2\n"
    assert apply_line_edits("", [LineEdit(1, "insert_before", "first")]) == "first\n"
