"""The Continue.dev log watcher: Continue's own records of its LLM calls, into the ledger.

While `kimi-mcp serve` runs it follows, by polling every `logwatch.poll_interval_s`:
`logwatch.core_log` (console lines with API errors, and prompt/completion blocks), the
`prompt.log` beside it (where Continue's `LLMLogFormatter` writes the blocks), and every
`tokensGenerated.jsonl` under `logwatch.dev_data_dir`. Each call becomes a `request` row with
source `continue-log` unless the proxy already recorded it (see `record.py`). Existing files are
read from their end unless `logwatch.backfill`. Lines that cannot be read are counted in
`Watcher.stats` (a `WatchStats`; `.as_dict()` for JSON), never fatal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio

from kimi_mcp.deps import Deps
from kimi_mcp.logwatch.parse import Call, LogParser, Unparseable, parse_devdata
from kimi_mcp.logwatch.record import Recorder, WatchStats
from kimi_mcp.logwatch.tail import Follower

__all__ = ["WatchStats", "Watcher", "lifespan"]

log = logging.getLogger(__name__)


class Watcher:
    """Everything one poll needs; `poll_once` is synchronous (run it in a worker thread)."""

    def __init__(self, deps: Deps, *, settle_s: float = 2.0) -> None:
        cfg = deps.settings.logwatch
        self.deps = deps
        self.stats = WatchStats()
        self.settle_s = settle_s  # let the proxy's own row land before matching against it
        self.backfill = cfg.backfill
        core = Path(cfg.core_log).expanduser()
        self.log_paths = [core] + ([core.with_name("prompt.log")] if core.name != "prompt.log" else [])
        self.dev_data_dir = Path(cfg.dev_data_dir).expanduser()
        self.recorder = Recorder(deps, self.stats, own_ports={deps.settings.server.port})
        self._logs = {p: (Follower(p, from_end=not cfg.backfill), LogParser()) for p in self.log_paths}
        self._devdata: dict[Path, Follower] = {}
        self._pending: list[tuple[float, Call]] = []
        self._first_scan = True

    def poll_once(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for path, (follower, parser) in self._logs.items():
            for line in self._lines(follower):
                self._take(partial(parser.feed, line, now), line, now)
            self.stats.files[str(path)] = follower.offset
        for path in self._scan_devdata():
            follower = self._devdata[path]
            for line in self._lines(follower):
                self._take(partial(parse_devdata, line, now), line, now)
            self.stats.files[str(path)] = follower.offset
        self._first_scan = False
        ready = [c for seen, c in self._pending if now - seen >= self.settle_s]
        self._pending = [(seen, c) for seen, c in self._pending if now - seen < self.settle_s]
        for call in sorted(ready, key=lambda c: c.created_at):
            self.recorder.record(call)

    def close(self) -> None:
        for follower, _ in self._logs.values():
            follower.close()
        for follower in self._devdata.values():
            follower.close()

    def _lines(self, follower: Follower) -> list[str]:
        rotations, truncations = follower.rotations, follower.truncations
        lines = follower.poll()
        self.stats.rotations += follower.rotations - rotations
        self.stats.truncations += follower.truncations - truncations
        self.stats.lines += len(lines)
        return lines

    def _take(self, parse: Callable[[], Call | None], line: str, now: float) -> None:
        try:
            call = parse()
        except Unparseable as exc:
            self.stats.unparseable += 1
            self.stats.last_unparseable = f"{exc}: {line[:120]}"
            return
        if call is not None:
            self._pending.append((now, call))

    def _scan_devdata(self) -> list[Path]:
        try:
            found = sorted(self.dev_data_dir.glob("**/tokensGenerated.jsonl"))
        except OSError as exc:
            log.debug("cannot scan %s: %s", self.dev_data_dir, exc)
            found = []
        for path in found:
            if path not in self._devdata:
                # a file there at start is old history (unless backfill); one that appears later is new
                from_end = self._first_scan and not self.backfill
                self._devdata[path] = Follower(path, from_end=from_end)
        return list(self._devdata)


async def run(watcher: Watcher, interval: float) -> None:
    try:
        while True:
            try:
                await anyio.to_thread.run_sync(watcher.poll_once)
            except OSError as exc:  # a vanished directory or a permission change: try again
                log.warning("logwatch: %s", exc)
            await anyio.sleep(interval)
    finally:
        watcher.close()


@asynccontextmanager
async def lifespan(watcher: Watcher) -> AsyncIterator[None]:
    """Run the watcher in a task group owned by the app's lifespan."""
    cfg = watcher.deps.settings.logwatch
    log.info("logwatch: following %s and %s/**/tokensGenerated.jsonl%s",
             ", ".join(map(str, watcher.log_paths)), watcher.dev_data_dir,
             " (backfill)" if cfg.backfill else "")
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, watcher, cfg.poll_interval_s)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
