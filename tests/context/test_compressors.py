"""Each first-sight compressor, on real-shaped outputs and on generated ones (hypothesis)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from kimi_mcp.context.compressors import PASSES, compress
from kimi_mcp.context.firstsight import body, compressed_id, first_sight, header
from kimi_mcp.context.kinds import classify, command_kind
from kimi_mcp.context.lines import is_error_line
from kimi_mcp.context.repeats import RepeatIndex
from kimi_mcp.context.sanitizer import masked_id

PYTEST = "\n".join(
    ["============================= test session starts ==============================",
     "collected 120 items", ""]
    + [f"tests/test_app.py::test_case_{n} PASSED                                  [{n:3d}%]" for n in range(60)]
    + ["tests/test_app.py::test_login FAILED                                    [ 61%]"]
    + [f"tests/test_db.py::test_row_{n} PASSED                                    [ 80%]" for n in range(59)]
    + ["", "=================================== FAILURES ===================================",
       "_________________________________ test_login _________________________________",
       "    def test_login():", ">       assert login('bob') == 200", "E       AssertionError: assert 401 == 200",
       "tests/test_app.py:42: AssertionError",
       "=========================== short test summary info ============================",
       "FAILED tests/test_app.py::test_login - AssertionError: assert 401 == 200",
       "========================= 1 failed, 119 passed in 3.21s ========================="]
)
GREP = "\n".join([f"django/db/models/query.py:{n}:    def method_{n}(self):" for n in range(100, 140)]
                 + [f"django/db/models/sql/query.py:{n}:        return self.query_{n}" for n in range(10, 30)])
FIND = "\n".join([f"./tests/admin_views/test_{n}.py" for n in range(30)] + [f"./django/contrib/auth/f{n}.py" for n in range(20)])
DIFF = "\n".join(["diff --git a/app.py b/app.py", "index 1..2 100644", "--- a/app.py", "+++ b/app.py",
                  "@@ -1,30 +1,30 @@"] + [f" value_{n} = {n}" for n in range(14)] + ["-old = 1", "+new = 2"]
                 + [f" value_{n} = {n}" for n in range(14, 28)])
ROWS = json.dumps([{"id": n, "name": f"item {n}", "status": "ok" if n % 3 else "failed"} for n in range(40)], indent=2)
LOG = "\n".join(["Collecting numpy", "\x1b[32mDownloading numpy-2.0.whl\x1b[0m", "   ━━━━━━━━━━━━━━━━ 12.3/12.3 MB 5 MB/s"]
                + [f"Requirement already satisfied: pkg{n} in /usr/lib/python3/site-packages (1.{n})" for n in range(30)]
                + ["WARNING: Running pip as the 'root' user", "Successfully installed numpy-2.0"])


def test_a_test_log_keeps_the_failure_the_summary_and_drops_the_passes() -> None:
    out = compress("test", PYTEST)
    assert "tests/test_app.py::test_login FAILED" in out
    assert "E       AssertionError: assert 401 == 200" in out and "tests/test_app.py:42: AssertionError" in out
    assert "1 failed, 119 passed" in out and "[… 60 passing tests …]" in out
    assert "test_case_7 PASSED" not in out and len(out) < len(PYTEST) / 3


def test_grep_results_are_grouped_under_their_file_with_every_line_number() -> None:
    out = compress("search", GREP)
    assert out.count("django/db/models/query.py") == 1
    assert all(f"  {n}:     def method_{n}(self):" in out for n in range(100, 140))
    assert len(out) < len(GREP) * 0.7


def test_paths_are_grouped_under_their_directory_and_none_is_lost() -> None:
    out = compress("listing", FIND)
    assert out.startswith("./tests/admin_views/: test_0.py  test_1.py")
    assert all(f"test_{n}.py" in out for n in range(30)) and all(f"f{n}.py" in out for n in range(20))


def test_a_diff_keeps_every_change_and_one_line_of_context() -> None:
    out = compress("diff", DIFF).splitlines()
    assert out[:5] == DIFF.splitlines()[:5]
    assert ["[… 13 unchanged lines …]", " value_13 = 13", "-old = 1", "+new = 2", " value_14 = 14",
            "[… 13 unchanged lines …]"] == out[5:]


def test_a_json_array_of_similar_objects_becomes_one_table() -> None:
    out = compress("json", ROWS).splitlines()
    assert out[0] == "[… JSON array of 40 objects as a table …]"
    assert out[1] == "columns: id | name | status" and out[2] == "0 | item 0 | failed"
    assert len(out) == 42


def test_a_log_loses_ansi_codes_progress_bars_and_repeated_shapes_but_keeps_warnings() -> None:
    out = compress("log", LOG)
    assert "\x1b" not in out and "━" not in out
    assert "WARNING: Running pip as the 'root' user" in out and "Successfully installed numpy-2.0" in out
    assert "similar lines" in out


def test_reads_and_edits_are_never_compressed() -> None:
    text = "def f():\n    return 1\n" * 200
    assert compress("read", text) == text
    assert first_sight("read", text, masked_id(text), 2000, None) is None
    assert first_sight("edit", text, masked_id(text), 2000, None) is None


def test_the_first_sight_form_names_the_original_and_says_how_to_read_it() -> None:
    mid = masked_id(PYTEST)
    form = first_sight("test", PYTEST, mid, 3000, None)
    assert form is not None and form.text.startswith(header("test", 3000, mid))
    assert compressed_id(form.text) == mid and "memory_get" in form.text.splitlines()[0]


def test_lines_repeated_from_an_earlier_output_become_a_pointer() -> None:
    earlier = "\n".join(f"Traceback line {n}: File 'src/mod.py', line {n}, in handler_{n}" for n in range(30))
    index = RepeatIndex()
    index.add(earlier.split("\n"), "m-0000000000000001")
    new = "running again\n" + earlier + "\ndone"
    text, named = body("log", new, index)
    assert named == {"m-0000000000000001"}
    assert "30 lines repeated from lines 1-30 of an earlier output" in text
    assert text.startswith("running again") and text.endswith("done")


def test_the_kind_comes_from_the_command_then_from_the_text() -> None:
    assert command_kind("cd /testbed && python -m pytest tests -x 2>&1 | tail -50") == "test"
    assert command_kind("cd /testbed && sed -n '1,80p' src/app.py") == "read"
    assert command_kind("sed -i 's/a/b/' src/app.py") == "edit"
    assert command_kind("grep -rn 'def login' src") == "search"
    assert command_kind("find . -name '*.py' | head") == "listing"
    assert command_kind("git diff HEAD~1") == "diff"
    assert classify(PYTEST, "bash", {"command": "python run.py"}) == "test"
    assert classify(GREP, "run", {}) == "search"
    assert classify("hello", "str_replace_editor", {"command": "view", "path": "a.py"}) == "read"


def test_a_reader_writing_a_file_is_classified_by_what_runs_after_it() -> None:
    script = "cd /testbed && cat > repro.py << 'EOF'\nimport app\nprint(app.run())\nEOF\n"
    assert command_kind(script) == "edit"
    assert command_kind(script + "python repro.py") is None  # what it prints decides: a log or a test
    assert classify("Traceback (most recent call last):\nValueError: x", "bash", {"command": script + "python repro.py"}) == "log"
    assert command_kind(script + "python -m pytest repro.py") == "test"
    assert command_kind("cat > notes.txt << EOF && grep -n x notes.txt\nx\nEOF") == "search"
    assert command_kind("cat <<'EOF' > a.py\nx = 1\nEOF") == "edit"
    assert command_kind("sed -n '1,5p' a.py > b.py; cat b.py") == "read"
    assert command_kind("head -5 a.py >> log.txt") == "edit"
    # standard error to a file, or into the pipe, leaves the output a read
    assert command_kind("cat a.py 2>/dev/null") == "read"
    assert command_kind("cat a.py 2>&1 | head -20") == "read"


# ---- properties ---------------------------------------------------------------------------------

LINE_PARTS = ["ok", "PASSED", "FAILED", "Error: boom", "warning: unused", "src/app.py:12:", "  ", "[ 50%]",
              "\x1b[31mred\x1b[0m", "Requirement already satisfied:", "████████", "Traceback (most recent call last):",
              "+added", "-removed", " context", "@@ -1,2 +1,2 @@", "./a/b.py", '{"k": 1}', "日本語", "x" * 500]


@st.composite
def outputs(draw: st.DrawFn) -> str:
    n = draw(st.integers(0, 120))
    parts = draw(st.lists(st.sampled_from(LINE_PARTS), min_size=1, max_size=6))
    repeat = draw(st.integers(1, 4))
    lines = [" ".join(parts[(k // repeat) % len(parts):][:2]) + (f" {k}" if draw(st.booleans()) else "")
             for k in range(n)]
    return "\n".join(lines)


PROFILE = settings(max_examples=60, deadline=None)
KINDS = sorted(PASSES)


@PROFILE
@given(kind=st.sampled_from(KINDS), text=outputs())
def test_every_compressor_is_idempotent(kind: str, text: str) -> None:
    once = compress(kind, text)
    assert compress(kind, once) == once


@PROFILE
@given(kind=st.sampled_from(KINDS), text=outputs())
def test_every_compressor_is_byte_stable(kind: str, text: str) -> None:
    assert compress(kind, text).encode() == compress(kind, "".join(list(text))).encode()


@PROFILE
@given(kind=st.sampled_from(KINDS), text=outputs())
def test_no_compressor_drops_an_error_line(kind: str, text: str) -> None:
    out = compress(kind, text)
    for line in text.split("\n"):
        clean = line.replace("\x1b[31m", "").replace("\x1b[0m", "").strip()
        if is_error_line(clean):
            assert clean in out, (kind, clean)


@PROFILE
@given(kind=st.sampled_from(KINDS), text=outputs())
def test_every_first_sight_form_names_the_original_it_replaces(kind: str, text: str) -> None:
    mid = masked_id(text)
    form = first_sight(kind, text, mid, max(1, len(text) // 3), None)
    if form is not None:
        assert compressed_id(form.text) == mid
