"""Denial of service by data planted in the workspace (a cloned repository, a downloaded
archive), not by the caller's arguments: a `.gitignore` pattern that backtracks for ages and
a tar whose headers decompress without end cannot stop the server. (`re` holds the GIL while it
matches, so a backtracking `.gitignore` line froze every tool, the event loop included.)"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import anyio
import pytest
from security_support import Servers, call_raw, make_world

pytestmark = pytest.mark.anyio

BACKTRACKING_GITIGNORE = "*a*a*a*a*a*a*a*a*a*a*a*a*b\n"


@pytest.fixture
def servers(tmp_path: Path) -> Servers:
    world = make_world(tmp_path)
    built = Servers.build(tmp_path)
    built.deps.roots = [world.ws]
    return built


@pytest.mark.timeout(120, method="thread")  # a regression freezes the process: end it, loudly
@pytest.mark.parametrize(
    "tool,args",
    [
        ("directory_tree", {}),
        ("search_files", {"pattern": "*.txt"}),
        ("search_content", {"regex": "needle"}),
        ("find_large_files", {"min_size_bytes": 0}),
        ("disk_usage", {}),
        ("compress", {"paths": ["repo"], "output_path": "out.zip"}),
        ("sync_directories", {"source": "repo", "destination": "copy"}),
    ],
)
async def test_a_backtracking_gitignore_pattern_cannot_hang_a_walk(
    servers: Servers, tool: str, args: dict[str, object]
) -> None:
    ws = servers.deps.roots[0]
    repo = ws / "repo"
    (repo / "deep").mkdir(parents=True)
    for where in (ws, repo):
        (where / ".gitignore").write_text("*.log\n" + BACKTRACKING_GITIGNORE)
    (repo / ("a" * 200)).write_text("needle\n")
    (repo / "deep" / ("a" * 180 + ".txt")).write_text("needle\n")
    (repo / "kept.txt").write_text("needle\n")
    with anyio.fail_after(45):
        is_error, text = await call_raw(servers.fs, tool, args)
        # the server still answers other calls
        still, _ = await call_raw(servers.fs, "read_file", {"path": "sub/a.txt"})
    assert not still
    assert not is_error or ("too costly" in text and ".gitignore" in text), text


async def test_gitignore_rules_with_many_wildcards_still_apply(servers: Servers) -> None:
    ws = servers.deps.roots[0]
    (ws / ".gitignore").write_text("*x*y*z*.tmp\n")
    (ws / "axbyczd.tmp").write_text("hidden\n")
    (ws / "kept.tmp").write_text("shown\n")
    is_error, text = await call_raw(servers.fs, "search_content", {"regex": "hidden|shown"})
    assert not is_error and "kept.tmp" in text and "axbyczd.tmp" not in text, text


def _header_bomb(entries: int) -> bytes:
    """A tar.gz of `entries` empty files: each header is 512 bytes, gzip shrinks it ~300x."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for n in range(entries):
            tar.addfile(tarfile.TarInfo(f"f{n}"), io.BytesIO(b""))
    return gzip.compress(raw.getvalue(), compresslevel=9)


async def test_an_archive_with_too_many_entries_is_refused_before_they_are_all_read(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kimi_mcp.servers.fs import archive

    monkeypatch.setattr(archive, "MAX_MEMBERS", 50)
    ws = servers.deps.roots[0]
    (ws / "bomb.tar.gz").write_bytes(_header_bomb(5000))
    listed: list[int] = []
    real_next = tarfile.TarFile.next

    def counting_next(self: tarfile.TarFile) -> tarfile.TarInfo | None:
        listed.append(1)
        return real_next(self)

    monkeypatch.setattr(tarfile.TarFile, "next", counting_next)
    is_error, text = await call_raw(
        servers.fs, "extract_archive", {"archive_path": "bomb.tar.gz", "destination": "out"}
    )
    assert is_error and "more than 50 entries" in text, text
    assert len(listed) <= 60  # the headers after the limit were never decompressed
    assert not (ws / "out").exists()
