"""The Headroom worker of bench_context.py: the same traces through Headroom's proxy.

Headroom (`headroom-ai`, in its own virtualenv) runs as its own process with its defaults
(`headroom proxy --no-rate-limit`, its `cache` mode), in front of a loopback fake OpenAI
provider that records each body Headroom forwards and answers a minimal completion. Every
request of every conversation is sent in order, as `replay.py` does for kimi-mcp's stages, and
the forwarded messages are scored with the same functions. CPU per request is the Headroom
process's CPU time (all its threads) over the request; RSS is the process's (and its
children's). Tool outputs Headroom changed are counted; whether its retrieval returns them
byte-exact is not checked here. Prints one JSON line of totals.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay import _p, breaks, common_prefix_tokens, load, text_of

from kimi_mcp import tokens

ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_provider(seen: queue.Queue[dict[str, Any]]) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            seen.put(json.loads(self.rfile.read(size) or b"{}"))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

        def log_message(self, *args: Any) -> None:
            return

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


def tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return found


def rss_mb(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def cpu_s(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def start_headroom(venv: str, port: int, upstream: int, home: str) -> subprocess.Popen[bytes]:
    cmd = [str(Path(venv) / "bin" / "headroom"), "proxy", "--host", "127.0.0.1", "--port", str(port),
           "--no-rate-limit", "--openai-api-url", f"http://127.0.0.1:{upstream}/v1"]
    env = {**os.environ, "HOME": home}
    env.pop("PYTHONPATH", None)
    log = open(Path(home) / "headroom.log", "wb")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_live(proc: subprocess.Popen[bytes], port: int, home: str, timeout: float = 180) -> str:
    """Wait for /livez; what /readyz says is not ready (offline: its check of api.anthropic.com
    and the Kompress model, which it downloads from Hugging Face at run time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (Path(home) / "headroom.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"headroom proxy exited {proc.returncode}: " + " | ".join(tail))
        try:
            if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200:
                time.sleep(5)  # its background warm-up
                checks = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json().get("checks", {})
                return "; ".join(f"{name} {c.get('status')}" + (f" ({c['error']})" if c.get("error") else "")
                                 for name, c in checks.items() if isinstance(c, dict) and not c.get("ready"))
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"headroom proxy not live after {timeout:.0f} s")


def run(target: str, limit: int | None, venv: str) -> dict[str, Any]:
    convs, _ = load(target, limit)
    seen: queue.Queue[dict[str, Any]] = queue.Queue()
    server, upstream = fake_provider(seen)
    port = free_port()
    t: dict[str, Any] = {"requests": 0, "before": 0, "after": 0, "cached_before": 0, "cached_after": 0,
                         "breaks": 0, "changed": 0, "recovered": 0, "wall": [], "cpu": []}
    with tempfile.TemporaryDirectory() as home:
        proc = start_headroom(venv, port, upstream, home)
        try:
            unready = wait_live(proc, port, home)
            rss_start = rss_mb(proc.pid)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
                for conv in convs:
                    replay_one(client, proc.pid, conv, seen, t)
            rss_end = rss_mb(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            server.shutdown()
    wall, cpu = t.pop("wall"), t.pop("cpu")
    return {**t, "cpu_p50": _p(cpu, 0.5), "cpu_p99": _p(cpu, 0.99), "wall_p50": _p(wall, 0.5),
            "wall_p99": _p(wall, 0.99), "rss_start_mb": rss_start, "rss_end_mb": rss_end,
            "note": "headroom-ai " + version(venv) + " with its defaults (--no-rate-limit); CPU is its "
                    "process's, all threads; recovery of its changes not checked"
                    + (f"; not ready here: {unready}" if unready else "")}


def replay_one(client: httpx.Client, pid: int, conv: dict[str, Any], seen: queue.Queue[dict[str, Any]],
               t: dict[str, Any]) -> None:
    messages = conv["messages"]
    prev_in: list[dict[str, Any]] = []
    prev_out: list[dict[str, Any]] = []
    for end in [i for i, m in enumerate(messages) if m["role"] == "assistant"]:
        body = {"model": "gpt-4o", "messages": messages[:end]}
        start, cpu = time.perf_counter(), cpu_s(pid)
        answer = client.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-bench"})
        t["wall"].append((time.perf_counter() - start) * 1000)
        t["cpu"].append((cpu_s(pid) - cpu) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"headroom answered {answer.status_code}: {answer.text[:200]}")
        out = seen.get(timeout=60)["messages"]
        t["requests"] += 1
        t["before"] += tokens.count_chat(body)
        t["after"] += tokens.count_chat({"messages": out})
        t["cached_before"] += common_prefix_tokens(body["messages"], prev_in)
        t["cached_after"] += common_prefix_tokens(out, prev_out)
        t["breaks"] += bool(breaks(body["messages"], out))
        if len(out) == len(body["messages"]):
            t["changed"] += sum(1 for old, new in zip(body["messages"], out, strict=True)
                                if old.get("role") == "tool" and text_of(old) != text_of(new))
        prev_in, prev_out = body["messages"], out


def version(venv: str) -> str:
    for meta in (Path(venv) / "lib").glob("python*/site-packages/headroom_ai-*.dist-info/METADATA"):
        for line in meta.read_text().splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return "?"


def main() -> None:
    args = sys.argv[1:]
    target = args[args.index("--worker") + 1]
    limit = int(args[args.index("--limit") + 1]) if "--limit" in args else 0
    venv = args[args.index("--headroom-venv") + 1]
    print(json.dumps(run(target, limit or None, venv)))


if __name__ == "__main__":
    main()
