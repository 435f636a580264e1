"""The Continue.dev log watcher over files written the way Continue writes them.

Shapes from continuedev/continue: `core/data/log.ts` appends one JSON object and "\\n" per call to
`dev_data/0.2.0/tokensGenerated.jsonl`; `core/llm/logFormatter.ts` writes the prompt/completion
blocks; `binary/src/logging.ts` writes `[ISO time] message` console lines to `core.log`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlmodel import select

from kimi_mcp.deps import Deps
from kimi_mcp.ledger.models import Request
from kimi_mcp.logwatch import Watcher
from kimi_mcp.logwatch.parse import LogParser
from kimi_mcp.logwatch.tail import Follower

T0 = 1_760_000_000.0  # 2025-10-09T08:53:20Z


def devdata_line(model: str, prompt: int, generated: int, when: float = T0,
                 provider: str = "openai") -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + ".000Z"
    return json.dumps({
        "model": model, "provider": provider, "promptTokens": prompt, "generatedTokens": generated,
        "eventName": "tokensGenerated", "schema": "0.2.0", "timestamp": stamp, "userId": "",
        "userAgent": "Visual Studio Code/1.99.0 (Continue/1.1.0)", "selectedProfileId": "local",
    }) + "\n"


def formatter_block(when: float, model: str, prompt: int, generated: int, end: str = "Success",
                    prefix: str = " ") -> str:
    hhmmss = time.strftime("%H:%M:%S", time.gmtime(when)) + ".0"
    pad = " " * 10
    lines = [
        f"{prefix}{hhmmss} [Chat]",
        f"{prefix}{pad} Options: {{",
        f'{prefix}{pad}   "maxTokens": 4096,',
        f'{prefix}{pad}   "model": "{model}",',
        f"{prefix}{pad} }}",
        f"{prefix}{pad} Role: user",
        f"{prefix}{pad} | Success",  # message text that looks like structure
        f"{prefix}{'+1.2':>10} Role: assistant",
        f"{prefix}{pad} | Hello there.",
        f"{prefix}{'+1.5':>10} {end}",
        f"{prefix}{pad} Prompt Tokens: {prompt}",
        f"{prefix}{pad} Generated Tokens: {generated}",
    ]
    return "\n".join(lines) + "\n"


def append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "continue" / "logs").mkdir(parents=True)
    (tmp_path / "continue" / "dev_data" / "0.2.0").mkdir(parents=True)
    return tmp_path / "continue"


@pytest.fixture
def deps_for(make_deps: Any, home: Path) -> Any:
    def build(**logwatch: Any) -> Deps:
        cfg = {"enabled": True, "core_log": str(home / "logs" / "core.log"),
               "dev_data_dir": str(home / "dev_data"), **logwatch}
        return make_deps(logwatch=cfg)  # type: ignore[no-any-return]

    return build


def rows(deps: Deps, source: str = "continue-log") -> list[Request]:
    deps.ledger.flush()
    with deps.ledger.read() as db:
        return list(db.exec(select(Request).where(Request.source == source)
                            .order_by(Request.created_at)).all())


def tokens_file(home: Path) -> Path:
    return home / "dev_data" / "0.2.0" / "tokensGenerated.jsonl"


# ---- the file follower -----------------------------------------------------------------------

def test_follower_starts_at_the_end_and_keeps_a_partial_line_until_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text("old line\n")
    follower = Follower(path)
    assert follower.poll() == []
    append(path, "new li")
    assert follower.poll() == []
    append(path, "ne\nsecond\n")
    assert follower.poll() == ["new line", "second"]


def test_follower_reads_a_file_that_appears_later_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "late.log"
    follower = Follower(path)
    assert follower.poll() == []
    path.write_text("first\n")
    assert follower.poll() == ["first"]


def test_follower_drains_the_rotated_file_then_reads_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "core.log"
    path.write_text("")
    follower = Follower(path)
    follower.poll()
    append(path, "before\ntail without newline")
    os.rename(path, tmp_path / "core.log.1")
    path.write_text("after\n")
    assert follower.poll() == ["before", "tail without newline", "after"]
    assert follower.rotations == 1


def test_follower_restarts_at_the_beginning_after_truncation(tmp_path: Path) -> None:
    path = tmp_path / "core.log"
    path.write_text("one\ntwo\nthree\n")
    follower = Follower(path, from_end=False)
    assert follower.poll() == ["one", "two", "three"]
    path.write_text("x\n")
    assert follower.poll() == ["x"]
    assert follower.truncations == 1


# ---- parsing ---------------------------------------------------------------------------------

def test_formatter_blocks_yield_model_tokens_and_status_even_when_interleaved() -> None:
    parser = LogParser()
    first = formatter_block(T0, "gpt-4o", 120, 30, prefix=" ").splitlines()
    second = formatter_block(T0 + 1, "kimi/kimi-k2", 55, 7, end="Error", prefix="|").splitlines()
    calls = []
    for a, b in zip(first, second, strict=True):
        for line in (a, b):
            call = parser.feed(line, T0 + 10)
            if call is not None:
                calls.append(call)
    assert [(c.model, c.prompt_tokens, c.generated_tokens, c.status) for c in calls] == [
        ("gpt-4o", 120, 30, "ok"), ("kimi/kimi-k2", 55, 7, "error")]
    assert calls[0].created_at == pytest.approx(T0)


def test_console_lines_with_an_http_error_become_error_calls() -> None:
    parser = LogParser()
    call = parser.feed("[2025-10-09T08:53:20] Error: HTTP 429 Too Many Requests from "
                       "https://api.openai.com/v1/chat/completions", T0)
    assert call is not None
    assert (call.status, call.http_status, call.provider) == ("error", 429, "api.openai.com")
    assert call.created_at == pytest.approx(T0)
    assert parser.feed("[2025-10-09T08:53:21] [info] Starting Continue core...", T0) is None


# ---- the watcher and the ledger --------------------------------------------------------------

def test_devdata_calls_are_recorded_as_estimates_and_bad_lines_are_counted(
    deps_for: Any, home: Path
) -> None:
    deps = deps_for(backfill=False)
    append(tokens_file(home), devdata_line("old-model", 1, 1))  # history: not read without backfill
    watcher = Watcher(deps, settle_s=0)
    watcher.poll_once()
    append(tokens_file(home), devdata_line("gpt-4o", 1200, 80))
    append(tokens_file(home), "{not json\n")
    append(tokens_file(home), devdata_line("gpt-4o-mini", 10, 5)[:-1])  # partial: no newline yet
    watcher.poll_once()
    [row] = rows(deps)
    assert (row.model, row.provider, row.est_prompt_tokens, row.est_completion_tokens) == (
        "gpt-4o", "openai", 1200, 80)
    assert row.prompt_tokens is None and row.usage_source == "estimate"
    assert row.created_at == pytest.approx(T0)
    assert watcher.stats.unparseable == 1
    append(tokens_file(home), "\n")
    watcher.poll_once()
    assert [r.model for r in rows(deps)] == ["gpt-4o", "gpt-4o-mini"]


def test_backfill_reads_existing_files_from_the_start(deps_for: Any, home: Path) -> None:
    append(tokens_file(home), devdata_line("gpt-4o", 100, 10))
    deps = deps_for(backfill=True)
    watcher = Watcher(deps, settle_s=0)
    watcher.poll_once()
    assert len(rows(deps)) == 1


def test_the_same_call_in_prompt_log_and_dev_data_is_recorded_once(deps_for: Any, home: Path) -> None:
    deps = deps_for()
    watcher = Watcher(deps, settle_s=0)
    watcher.poll_once(now=T0)
    append(home / "logs" / "prompt.log", formatter_block(T0, "gpt-4o", 300, 40))
    append(tokens_file(home), devdata_line("gpt-4o", 300, 40, when=T0 + 2))
    watcher.poll_once(now=T0 + 3)
    [row] = rows(deps)
    assert (row.provider, row.est_prompt_tokens) == ("openai", 300)
    assert watcher.stats.merged_duplicate == 1


def test_two_identical_calls_stay_two_when_only_one_is_in_both_files(
    deps_for: Any, home: Path
) -> None:
    deps = deps_for()
    watcher = Watcher(deps, settle_s=0)
    watcher.poll_once(now=T0)
    append(home / "logs" / "prompt.log", formatter_block(T0, "gpt-4o", 300, 40))
    append(tokens_file(home), devdata_line("gpt-4o", 300, 40, when=T0 + 2))
    append(tokens_file(home), devdata_line("gpt-4o", 300, 40, when=T0 + 9))
    watcher.poll_once(now=T0 + 10)
    assert len(rows(deps)) == 2


def test_an_api_error_in_core_log_is_attached_to_its_failed_call(deps_for: Any, home: Path) -> None:
    deps = deps_for()
    watcher = Watcher(deps, settle_s=0)
    watcher.poll_once(now=T0)
    append(tokens_file(home), devdata_line("gpt-4o", 500, 0, when=T0))
    append(home / "logs" / "core.log",
           "[2025-10-09T08:53:21] Error: HTTP 401 Unauthorized from "
           "https://api.openai.com/v1/chat/completions \n\nIncorrect API key provided\n")
    watcher.poll_once(now=T0 + 5)
    [row] = rows(deps)
    assert (row.status, row.http_status, row.model) == ("error", 401, "gpt-4o")
    assert "HTTP 401" in (row.error or "")


def test_a_failed_call_with_nothing_generated_costs_nothing(deps_for: Any, home: Path) -> None:
    deps = deps_for()
    watcher = Watcher(deps, settle_s=0)
    watcher.poll_once(now=T0)
    append(home / "logs" / "prompt.log", formatter_block(T0, "gpt-4o", 300, 0, end="Error"))
    watcher.poll_once(now=T0 + 1)
    append(home / "logs" / "core.log",  # the error first, its counts after
           "[2025-10-09T09:03:20] Error: HTTP 401 Unauthorized from "
           "https://api.openai.com/v1/chat/completions \n\nIncorrect API key provided\n")
    watcher.poll_once(now=T0 + 601)
    append(tokens_file(home), devdata_line("gpt-4o", 500, 0, when=T0 + 601))
    watcher.poll_once(now=T0 + 602)
    failed, refused = rows(deps)
    assert (failed.status, failed.cost_usd, failed.est_prompt_tokens) == ("error", 0, None)
    assert failed.meta["unbilled_est_prompt_tokens"] == 300
    assert (refused.status, refused.http_status, refused.cost_usd) == ("error", 401, 0)
    assert refused.est_prompt_tokens is None and refused.est_completion_tokens is None
    assert refused.meta["unbilled_est_prompt_tokens"] == 500


def test_a_call_seen_by_the_proxy_and_the_log_is_counted_once_with_the_proxy_row(
    deps_for: Any, home: Path
) -> None:
    deps = deps_for()
    deps.ledger.insert(Request, uid="proxyrow0001", source="proxy", provider="kimi",
                       model="kimi-k2-0905-preview", route="kimi/kimi-k2-0905-preview",
                       created_at=T0 + 1, prompt_tokens=1010, completion_tokens=77,
                       est_prompt_tokens=990, est_completion_tokens=75)
    deps.ledger.flush()
    watcher = Watcher(deps, settle_s=0)
    watcher.poll_once(now=T0)
    append(tokens_file(home), devdata_line("kimi/kimi-k2-0905-preview", 1000, 76, when=T0 + 3))
    append(home / "logs" / "prompt.log",
           formatter_block(T0, "kimi/kimi-k2-0905-preview", 1000, 76))
    append(tokens_file(home), devdata_line("gpt-4o", 1000, 76, when=T0 + 4))  # another model
    watcher.poll_once(now=T0 + 5)
    assert [r.model for r in rows(deps)] == ["gpt-4o"]
    assert [r.uid for r in rows(deps, "proxy")] == ["proxyrow0001"]
    assert watcher.stats.merged_proxy == 1 and watcher.stats.merged_duplicate == 1


def test_a_call_the_proxy_refused_is_matched_though_its_row_keeps_no_tokens(
    deps_for: Any, home: Path
) -> None:
    deps = deps_for()
    deps.ledger.insert(Request, uid="proxyrow0002", source="proxy", provider="nvidia",
                       model="llama-3.1-8b", route="nvidia/llama-3.1-8b", created_at=T0 + 1,
                       status="error", http_status=401, cost_usd=0.0)
    deps.ledger.flush()
    watcher = Watcher(deps, settle_s=0)
    watcher.poll_once(now=T0)
    append(tokens_file(home), devdata_line("nvidia/llama-3.1-8b", 400, 0, when=T0 + 2))
    watcher.poll_once(now=T0 + 5)
    assert rows(deps) == [] and watcher.stats.merged_proxy == 1


def test_errors_the_proxy_answered_itself_are_not_recorded_again(deps_for: Any, home: Path) -> None:
    deps = deps_for()
    port = deps.settings.server.port
    watcher = Watcher(deps, settle_s=0)
    watcher.poll_once(now=T0)
    append(home / "logs" / "core.log",
           f"[2025-10-09T08:53:21] HTTP 502 Bad Gateway from http://127.0.0.1:{port}/v1/chat/completions\n")
    watcher.poll_once(now=T0 + 1)
    assert rows(deps) == []
    assert watcher.stats.merged_proxy == 1


def test_calls_wait_for_the_settle_time_before_matching(deps_for: Any, home: Path) -> None:
    deps = deps_for()
    watcher = Watcher(deps, settle_s=2)
    watcher.poll_once(now=T0)
    append(tokens_file(home), devdata_line("gpt-4o", 10, 1))
    watcher.poll_once(now=T0 + 1)
    assert rows(deps) == []
    watcher.poll_once(now=T0 + 3.5)
    assert len(rows(deps)) == 1


@pytest.mark.anyio
async def test_lifespan_runs_the_watcher_and_publishes_rows(deps_for: Any, home: Path) -> None:
    from kimi_mcp import logwatch

    deps = deps_for(poll_interval_s=0.05, backfill=True)  # backfill: no race with the first poll
    watcher = logwatch.Watcher(deps)
    sub = deps.ledger.bus.subscribe()
    async with logwatch.lifespan(watcher):
        stats = watcher.stats
        append(tokens_file(home), devdata_line("gpt-4o", 42, 4, when=time.time() - 10))
        with anyio.fail_after(10):
            async for event in sub:
                if event.type == "request":
                    break
    assert stats.as_dict()["recorded"] == 1


@pytest.mark.anyio
async def test_the_app_lifespan_exposes_the_watcher_counters(
    deps_for: Any, home: Path, serve_app: Any
) -> None:
    from kimi_mcp.app import create_app

    deps = deps_for(poll_interval_s=0.05)
    app = create_app(deps.settings, deps)
    async with serve_app(app) as client:
        assert (await client.get("/health")).status_code == 200
        stats = app.state.watcher.stats
        assert stats.as_dict()["unparseable"] == 0


def test_a_disabled_watcher_is_not_built(deps_for: Any) -> None:
    from kimi_mcp.app import create_app

    deps = deps_for(enabled=False)
    assert create_app(deps.settings, deps).state.watcher is None
