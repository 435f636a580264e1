"""Two processes on one data dir: the proxy (`serve`) and an editor's `stdio` server share
their memories through the ledger, store at the same time without a single failure, and
neither holds anything the other waits for (no vector folder, no folder lock)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("memory_worker.py")
BLOCK = "$ pytest -q\r\n" + "FAILED tests/test_vpn.py::test_token 🧠 e\u0301\n" * 200 + "== 1 failed ==\n"


class Worker:
    def __init__(self, data_dir: Path, workspace: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(data_dir), str(workspace)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the worker died: {self.stop()}"
        reply = json.loads(line)
        assert "error" not in reply, reply["error"]
        return reply["ok"]

    def __call__(self, op: str, **args: Any) -> Any:
        self.send(op, **args)
        return self.receive()

    def stop(self) -> str:
        """End the worker; returns what it logged."""
        _, err = self.proc.communicate(timeout=60)
        return err


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Worker, Worker]]:
    workspace = tmp_path / "proj"
    workspace.mkdir()
    started: list[Worker] = []
    try:
        first = Worker(tmp_path / "data", workspace)
        started.append(first)
        assert first("ready") == {"searchable": 0}
        second = Worker(tmp_path / "data", workspace)
        started.append(second)
        yield first, second
    finally:
        for worker in started:
            if worker.proc.poll() is None:
                worker.stop()


def test_two_processes_share_memories(workers: tuple[Worker, Worker], tmp_path: Path) -> None:
    a, b = workers
    masked = a("store_text", content=BLOCK)
    fact = a("store", content="the staging database is rebuilt every night at two")
    assert b("ready") == {"searchable": 2}
    assert b("get", ids=[masked]) == [BLOCK]
    assert [m for m, _ in b("recall", query="pytest failed test_vpn", limit=1)] == [masked]
    assert [m for m, _ in b("recall", query="staging database rebuilt", limit=1)] == [fact]

    from_b = b("store", content="the release train leaves on thursdays")
    block_b = b("store_text", content="diff --git a/x b/x\n" + "+ line\n" * 300)
    assert a("get", ids=[from_b, block_b])[0] == "the release train leaves on thursdays"
    assert [m for m, _ in a("recall", query="release train thursdays", limit=1)] == [from_b]
    assert [m for m, _ in a("recall", query="diff git line", limit=1)] == [block_b]

    assert b("delete", ids=[fact]) == [fact]
    assert fact not in [m for m, _ in a("recall", query="staging database rebuilt", limit=5)]
    assert a("delete", ids=[from_b]) == [from_b]
    assert from_b not in [m for m, _ in b("recall", query="release train thursdays", limit=5)]

    logged = a.stop() + b.stop()
    assert "MemoryEngineError" not in logged and "Traceback" not in logged
    assert not (tmp_path / "data" / "qdrant").exists()



@pytest.mark.timeout(240)  # 500 stores in two processes on a busy 2-core machine
def test_two_processes_storing_at_once_all_succeed(workers: tuple[Worker, Worker]) -> None:
    a, b = workers
    b("ready")
    n = 250
    a.send("store_many", prefix="alpha", n=n, threads=4)  # both run at once from here
    b.send("store_many", prefix="beta", n=n, threads=4)
    from_a, from_b = a.receive(), b.receive()
    assert from_a["errors"] == [] and from_b["errors"] == []
    assert len(set(from_a["ids"])) == n and len(set(from_b["ids"])) == n

    assert a("get", ids=from_b["ids"][:50]) == [
        f"beta memory {i}: the build of service {i} uses port {i}" for i in range(50)]
    assert b("get", ids=from_a["ids"][-50:]) == [
        f"alpha memory {i}: the build of service {i} uses port {i}" for i in range(n - 50, n)]
    [(hit, _)] = a("recall", query="beta memory 123 the build of service 123 uses port 123", limit=1)
    assert hit == from_b["ids"][123]
    logged = a.stop() + b.stop()
    assert "database is locked" not in logged and "Traceback" not in logged
