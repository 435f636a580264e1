"""Deferred embedding: records stored without a vector (the sanitizer's fast path, a failed
vector write during update) get one from this worker thread, in batches."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from kimi_mcp.errors import MemoryEngineError

log = logging.getLogger(__name__)

_BATCH = 64


class Backfill:
    """One daemon thread draining a queue of memory ids into `work(ids)`."""

    def __init__(self, work: Callable[[Sequence[str]], None]) -> None:
        self._work = work
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False

    def put(self, ids: Sequence[str]) -> None:
        for mid in ids:
            self._queue.put(mid)
        self._start()

    def _start(self) -> None:
        with self._lock:
            # While stopping, ids queued by the worker itself (the engine opening inside it)
            # wait for the next start: a second thread would take the worker's stop signal.
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(
                    target=self._run, name="kimi-memory-backfill", daemon=True
                )
                self._thread.start()

    def join(self) -> None:
        """Block until every queued id has been processed (done or failed)."""
        if self._thread is not None:
            self._queue.join()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping = thread is not None
        if thread is None:
            return
        try:
            self._queue.put(None)
            thread.join(timeout=30)
        finally:
            with self._lock:
                self._stopping = False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            batch = [first]
            stop = False
            while len(batch) < _BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    self._queue.task_done()
                    break
                batch.append(item)
            try:
                self._work(list(dict.fromkeys(batch)))
            except MemoryEngineError as exc:  # the records keep no vector; a restart repairs
                log.warning("deferred embedding of %d memories failed: %s; they are embedded "
                            "again at the next start", len(batch), exc)
            except Exception as exc:  # logged without its text: it may hold stored content
                log.error("deferred embedding of %d memories failed (%s); they are embedded "
                          "again at the next start", len(batch), type(exc).__name__)
                log.debug("deferred embedding failed", exc_info=exc)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return
