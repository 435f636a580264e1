"""Benchmark: direct calls to a fake provider against the same calls through the kimi-mcp proxy.

    python bench/bench_proxy.py [--quick] [--litellm] [--baseline-python PY] [--transports]
                                [--loop auto,asyncio]

One run starts a fake OpenAI-compatible provider (a raw asyncio HTTP/1.1 server, so the fake
costs next to nothing) and the proxy (uvicorn + create_app, as `kimi-mcp serve` runs it) in
their own processes, then measures with a small raw keep-alive HTTP client (like `wrk`):

- added latency p50/p99 of non-streamed calls with a ~2,000-token prompt;
- added time to the first streamed event;
- throughput at 32 concurrent clients, as a ratio of direct;
- the proxy's RSS after 1k, 5k and 10,000 calls;
- the inbound formats: the same call as Anthropic Messages (`/v1/messages`) and as OpenAI
  Responses (`/v1/responses`) against the OpenAI-format fake, so translated both ways, beside
  the chat-completions path (passthrough), interleaved in rounds: the translation's added p50.

`--litellm` runs the same measurements against LiteLLM's proxy when a `litellm` command is on
PATH (or given with `--litellm-bin`); it is never installed into this project's environment.
`--baseline-python PY` also runs the proxy under another interpreter (a virtualenv with an
earlier kimi-mcp installed), so a change is measured before/after in one run. `--transports`
measures only the upstream client: CPU and latency per call of httpx's own transport against
the aiohttp pool kimi-mcp uses, on the same fake provider. `--loop` names uvicorn's event loop
(`auto` is uvloop where it is installed, as `kimi-mcp serve` runs; `asyncio` is the standard
library's); several, comma-separated, measure the proxy once with each in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

PROMPT = ("def handler(event, context):\n    return process(event['records'])  # " * 120)[:8000]
CHUNKS = 20
CONTEXT_HEADER = "x-kimi-context: off\r\n"  # the context stages are benched by their own bench


# ---- the fake provider ---------------------------------------------------------------------------


def _answer(stream: bool, usage: bool) -> bytes:
    if not stream:
        body = json.dumps({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok " * 20},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2000, "completion_tokens": 40, "total_tokens": 2040}}).encode()
        return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)
    events = []
    for i in range(CHUNKS):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": "tok "}
        events.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        events.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [], "usage": {"prompt_tokens": 2000, "completion_tokens": 20}})
    out = [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"]
    for data in [*(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events), b"data: [DONE]\n\n"]:
        out.append(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    out.append(b"0\r\n\r\n")
    return b"".join(out)


class FakeProtocol(asyncio.Protocol):
    ANSWERS: ClassVar[dict[tuple[bool, bool], bytes]] = {(s, u): _answer(s, u) for s in (False, True) for u in (False, True)}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None]) if at >= 0 else 0
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            stream = b'"stream":true' in body or b'"stream": true' in body
            usage = b'"include_usage":true' in body or b'"include_usage": true' in body
            answer = self.ANSWERS[(stream, usage)]
            if b'"m50"' in body:  # a provider that thinks for 50 ms, as real ones do (and more)
                asyncio.get_running_loop().call_later(0.05, self._write, answer)
            else:
                self.transport.write(answer)

    def _write(self, answer: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(answer)


def run_fake(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(FakeProtocol, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ---- the proxy -----------------------------------------------------------------------------------


def run_transports(fake_port: int, n: int) -> None:
    """Client-side cost per call of each transport under the same httpx.AsyncClient."""
    import httpx

    from kimi_mcp.config import UpstreamSettings
    from kimi_mcp.upstream.transport import PooledTransport

    body = request_bytes("/v1/chat/completions", "m", False).split(b"\r\n\r\n", 1)[1]

    async def one_kind(name: str, transport: httpx.AsyncBaseTransport) -> None:
        url = httpx.URL(f"http://127.0.0.1:{fake_port}/v1/chat/completions")
        async with httpx.AsyncClient(transport=transport, timeout=30) as client:
            async def call() -> None:
                response = await client.send(client.build_request(
                    "POST", url, content=body, headers={"content-type": "application/json"}),
                    stream=True)
                await response.aread()
                await response.aclose()

            for _ in range(100):
                await call()
            lat = []
            for _ in range(n):
                start = time.perf_counter()
                await call()
                lat.append(time.perf_counter() - start)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            gate = asyncio.Semaphore(32)

            async def gated() -> None:
                async with gate:
                    await call()

            await asyncio.gather(*(gated() for _ in range(n)))
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        print(f"{name:34s} sequential p50 {pct(lat, 0.5):.3f} ms / p99 {pct(lat, 0.99):.3f} ms; "
              f"32 at once {n / wall:,.0f} req/s, CPU {cpu * 1000 / n:.3f} ms per call")

    async def main() -> None:
        print(f"\n== upstream transports == (load average {os.getloadavg()[0]:.1f})")
        for _ in range(2):
            await one_kind("httpx default (httpcore + h11)", httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)))
            await one_kind("kimi-mcp PooledTransport (aiohttp)", PooledTransport(UpstreamSettings()))

    asyncio.run(main())


def run_proxy(port: int, upstream: int, data_dir: str, http: str, loop: str) -> None:
    import logging

    import uvicorn

    from kimi_mcp.app import create_app
    from kimi_mcp.config import load_settings

    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(overrides={
        "data_dir": data_dir, "logwatch": {"enabled": False}, "memory": {"embedder": "hash"},
        "mcp": {"workspace": data_dir},
        "providers": {"bench": {"base_url": f"http://127.0.0.1:{upstream}/v1", "api_key": "sk-bench",
                                "models": {"m": {"context_window": 131072, "input_per_mtok": 1,
                                                 "output_per_mtok": 2}}}}})
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, http=http, loop=loop, lifespan="on")


# ---- the raw client ------------------------------------------------------------------------------


class Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def call(self, request: bytes) -> tuple[float, float]:
        """Send one request; return (seconds to the first body byte, seconds to the end)."""
        start = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            first = None
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.strip(), 16)
                await self.reader.readexactly(size + 2)
                if first is None:
                    first = time.perf_counter()
                if size == 0:
                    break
            return first - start, time.perf_counter() - start
        at = lower.find(b"content-length:")
        length = int(lower[at + 15:lower.find(b"\r\n", at)])
        await self.reader.readexactly(length)
        end = time.perf_counter() - start
        return end, end

    def close(self) -> None:
        self.writer.close()


def request_bytes(path: str, model: str, stream: bool) -> bytes:
    body: dict[str, object] = {"model": model, "messages": [{"role": "system", "content": "You are terse."},
                                                            {"role": "user", "content": PROMPT}],
                               "max_tokens": 64, "stream": stream}
    if path.endswith("/messages"):  # Anthropic Messages: the same call
        body = {"model": model, "system": "You are terse.", "max_tokens": 64, "stream": stream,
                "messages": [{"role": "user", "content": PROMPT}]}
    elif path.endswith("/responses"):  # OpenAI Responses: the same call
        body = {"model": model, "instructions": "You are terse.", "input": PROMPT,
                "max_output_tokens": 64, "stream": stream, "store": False}
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer sk-client\r\n{CONTEXT_HEADER}"
            f"content-length: {len(data)}\r\n\r\n").encode() + data


async def sequential(port: int, request: bytes, n: int, ttft: bool) -> list[float]:
    conn = await Conn(port).open()
    out = []
    for _ in range(n):
        first, total = await conn.call(request)
        out.append(first if ttft else total)
    conn.close()
    return out


async def throughput(port: int, request: bytes, clients: int, seconds: float) -> tuple[float, int]:
    conns = [await Conn(port).open() for _ in range(clients)]
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(conn: Conn) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await conn.call(request)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return done / elapsed, done


async def count_calls(port: int, request: bytes, n: int, clients: int = 16) -> None:
    conns = [await Conn(port).open() for _ in range(clients)]
    left = n

    async def worker(conn: Conn) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await conn.call(request)

    await asyncio.gather(*(worker(c) for c in conns))
    for conn in conns:
        conn.close()


# ---- orchestration -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 900) -> None:
    # LiteLLM's proxy takes minutes to import on a loaded two-core machine
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


@contextlib.contextmanager
def process(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})})
    try:
        started = time.time()
        wait_port(port)
        if time.time() - started > 20:
            print(f"({Path(args[0]).name} took {time.time() - started:.0f} s to listen)")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(target: int, direct: int, pid: int, model: str, n: int, tput_s: float,
                  rounds: int = 4) -> dict[str, float]:
    """Direct and proxied runs alternate in rounds, so a busy machine hurts both alike."""
    plain_d = request_bytes("/v1/chat/completions", "m", False)
    plain_p = request_bytes("/v1/chat/completions", model, False)
    stream_d = request_bytes("/v1/chat/completions", "m", True)
    stream_p = request_bytes("/v1/chat/completions", model, True)
    await sequential(target, plain_p, 200, False)  # warm-up
    await sequential(target, stream_p, 100, True)
    d_lat: list[float] = []
    p_lat: list[float] = []
    d_ttft: list[float] = []
    p_ttft: list[float] = []
    cpu = 0.0
    for _ in range(rounds):
        d_lat += await sequential(direct, plain_d, n // rounds, False)
        before = cpu_s(pid)
        p_lat += await sequential(target, plain_p, n // rounds, False)
        cpu += cpu_s(pid) - before
        d_ttft += await sequential(direct, stream_d, n // rounds // 2, True)
        p_ttft += await sequential(target, stream_p, n // rounds // 2, True)
    d_rps = p_rps = d_slow = p_slow = 0.0
    slow_d = request_bytes("/v1/chat/completions", "m50", False)
    slow_p = request_bytes("/v1/chat/completions", model + "50", False)
    for _ in range(2):
        d_rps += (await throughput(direct, plain_d, 32, tput_s / 2))[0] / 2
        p_rps += (await throughput(target, plain_p, 32, tput_s / 2))[0] / 2
        d_slow += (await throughput(direct, slow_d, 32, tput_s / 4))[0] / 2
        p_slow += (await throughput(target, slow_p, 32, tput_s / 4))[0] / 2
    return {
        "direct_p50_ms": pct(d_lat, 0.5), "direct_p99_ms": pct(d_lat, 0.99),
        "proxy_p50_ms": pct(p_lat, 0.5), "proxy_p99_ms": pct(p_lat, 0.99),
        "added_p50_ms": pct(p_lat, 0.5) - pct(d_lat, 0.5),
        "added_p99_ms": pct(p_lat, 0.99) - pct(d_lat, 0.99),
        "added_ttft_p50_ms": pct(p_ttft, 0.5) - pct(d_ttft, 0.5),
        "added_ttft_p99_ms": pct(p_ttft, 0.99) - pct(d_ttft, 0.99),
        "cpu_ms_per_call": cpu * 1000 / (n // rounds * rounds),
        "direct_rps": d_rps, "proxy_rps": p_rps, "ratio": p_rps / d_rps,
        "direct_rps_50": d_slow, "proxy_rps_50": p_slow, "ratio_50": p_slow / d_slow,
    }


FORMATS = (("chat completions (passthrough)", "/v1/chat/completions"),
           ("Messages in -> chat out", "/v1/messages"), ("Responses in -> chat out", "/v1/responses"))


async def measure_formats(target: int, model: str, n: int, rounds: int = 4) -> None:
    """Each inbound format against the same OpenAI-format fake, interleaved in rounds."""
    plain = {path: request_bytes(path, model, False) for _, path in FORMATS}
    stream = {path: request_bytes(path, model, True) for _, path in FORMATS}
    for path in plain:  # warm-up
        await sequential(target, plain[path], 100, False)
        await sequential(target, stream[path], 50, False)
    lat: dict[str, list[float]] = {path: [] for _, path in FORMATS}
    full: dict[str, list[float]] = {path: [] for _, path in FORMATS}
    for _ in range(rounds):
        for _, path in FORMATS:
            lat[path] += await sequential(target, plain[path], n // rounds, False)
            full[path] += await sequential(target, stream[path], n // rounds // 2, False)
    base, base_s = pct(lat[FORMATS[0][1]], 0.5), pct(full[FORMATS[0][1]], 0.5)
    print(f"\n== inbound formats, same proxy, same OpenAI-format upstream ==  (load average "
          f"{os.getloadavg()[0]:.1f})")
    for name, path in FORMATS:
        print(f"{name:32s} non-streamed p50 {pct(lat[path], 0.5):.2f} ms / p99 {pct(lat[path], 0.99):.2f} ms "
              f"({pct(lat[path], 0.5) - base:+.2f} ms p50 vs chat); streamed, whole answer "
              f"({CHUNKS} chunks) p50 {pct(full[path], 0.5):.2f} ms ({pct(full[path], 0.5) - base_s:+.2f} ms)")


def translation_costs(n: int = 2000) -> None:
    """The translation alone, in process: what a call in each format costs on top of chat's
    passthrough (request in, answer out; a streamed answer of CHUNKS chunks), medians of n."""
    from kimi_mcp.proxy.formats import openai_chat
    from kimi_mcp.proxy.formats.inbound import Inbounds

    inbounds = Inbounds()
    answer = json.loads(_answer(False, True).split(b"\r\n\r\n", 1)[1])
    chunks = [json.loads(line[6:]) for line in _answer(True, True).split(b"\r\n")
              if line.startswith(b"data: {")]
    adapters = (("chat completions (passthrough)", "/v1/chat/completions", inbounds.openai_chat),
                ("Messages in -> chat out", "/v1/messages", inbounds.anthropic_messages),
                ("Responses in -> chat out", "/v1/responses", inbounds.openai_responses))
    print(f"\n== translation CPU per call, in process (median of {n}) ==")
    base: list[float] = []
    for name, path, adapter in adapters:
        raw = request_bytes(path, "bench/m", True).split(b"\r\n\r\n", 1)[1]
        times: list[list[float]] = [[], [], []]
        for _ in range(n):
            t0 = time.perf_counter()
            body, call = adapter.parse(json.loads(raw))
            json.dumps(openai_chat.request_body(body), ensure_ascii=False).encode()
            t1 = time.perf_counter()
            if path.endswith("/completions"):
                json.dumps(answer).encode()
            else:
                adapter.answer(answer, call, "bench/m")
            t2 = time.perf_counter()
            encoder = adapter.encoder(call, "bench/m")
            for chunk in chunks:
                encoder.feed(chunk)
            encoder.close()
            t3 = time.perf_counter()
            times[0].append(t1 - t0)
            times[1].append(t2 - t1)
            times[2].append(t3 - t2)
        meds = [pct(t, 0.5) for t in times]
        base = base or meds
        print(f"{name:32s} request {meds[0]:.3f} ms ({meds[0] - base[0]:+.3f}), answer {meds[1]:.3f} ms "
              f"({meds[1] - base[1]:+.3f}), stream of {len(chunks)} chunks {meds[2]:.3f} ms "
              f"({meds[2] - base[2]:+.3f})")


def report(name: str, m: dict[str, float], rss: list[tuple[int, float]]) -> None:
    print(f"\n== {name} ==  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"non-streamed, ~2,000-token prompt: direct p50 {m['direct_p50_ms']:.2f} ms / p99 "
          f"{m['direct_p99_ms']:.2f} ms; proxy p50 {m['proxy_p50_ms']:.2f} ms / p99 {m['proxy_p99_ms']:.2f} ms")
    print(f"added latency: p50 {m['added_p50_ms']:+.2f} ms, p99 {m['added_p99_ms']:+.2f} ms")
    print(f"added time to first streamed event: p50 {m['added_ttft_p50_ms']:+.2f} ms, "
          f"p99 {m['added_ttft_p99_ms']:+.2f} ms")
    print(f"proxy CPU per non-streamed call (all its threads): {m['cpu_ms_per_call']:.2f} ms")
    print(f"throughput at 32 clients: direct {m['direct_rps']:.0f} req/s, proxy {m['proxy_rps']:.0f} "
          f"req/s = {m['ratio']:.0%} of direct (an upstream that answers at once)")
    print(f"throughput at 32 clients, upstream thinking 50 ms: direct {m['direct_rps_50']:.0f} req/s, "
          f"proxy {m['proxy_rps_50']:.0f} req/s = {m['ratio_50']:.0%} of direct")
    print("RSS: " + ", ".join(f"{calls:,} calls {mb:.0f} MB" for calls, mb in rss))


async def run_rss(port: int, pid: int, request: bytes, done: int, marks: list[int]) -> list[tuple[int, float]]:
    out = []
    for mark in marks:
        if mark > done:
            await count_calls(port, request, mark - done)
            done = mark
        out.append((done, rss_mb(pid)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fake", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--proxy", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--http", default="auto", help="uvicorn's HTTP implementation")
    parser.add_argument("--loop", default="auto",
                        help="uvicorn's event loop(s), comma-separated: auto (uvloop when installed), asyncio")
    parser.add_argument("--litellm", action="store_true", help="also measure LiteLLM's proxy")
    parser.add_argument("--context", action="store_true",
                        help="let the context stages run (by default requests say X-Kimi-Context: off)")
    parser.add_argument("--litellm-bin", default=shutil.which("litellm") or "")
    parser.add_argument("--baseline-python", default="",
                        help="also run the proxy with this interpreter (an earlier kimi-mcp)")
    parser.add_argument("--transports", action="store_true",
                        help="only compare upstream transports (client side)")
    args = parser.parse_args()
    if args.fake:
        run_fake(args.fake)
        return
    if args.proxy:
        run_proxy(int(args.proxy[0]), int(args.proxy[1]), args.proxy[2], args.http, args.loop)
        return
    if args.context:
        global CONTEXT_HEADER
        CONTEXT_HEADER = ""
    n, tput_s = (300, 2.0) if args.quick else (2000, 5.0)
    fake_port = free_port()
    me = [sys.executable, __file__]
    with tempfile.TemporaryDirectory() as tmp, process([*me, "--fake", str(fake_port)], fake_port):
        if args.transports:
            run_transports(fake_port, n)
            return
        loops = args.loop.split(",")
        ours = run_kimi(sys.executable, "kimi-mcp proxy", fake_port, n, tput_s, tmp, args,
                        loop=loops[0], named=len(loops) > 1)
        for other in loops[1:]:
            run_kimi(sys.executable, "kimi-mcp proxy", fake_port, n, tput_s,
                     tempfile.mkdtemp(dir=tmp), args, formats=False, loop=other, named=True)
        if args.baseline_python:
            run_kimi(args.baseline_python, "kimi-mcp proxy, baseline", fake_port, n, tput_s,
                     tempfile.mkdtemp(dir=tmp), args, formats=False)
        if args.litellm:
            theirs = run_litellm(args.litellm_bin, fake_port, n, tput_s, tmp)
            if theirs:
                print(f"\nkimi-mcp vs LiteLLM at 32 clients: {ours['proxy_rps'] / theirs['proxy_rps']:.1f}x "
                      f"the throughput; added p50 {ours['added_p50_ms']:+.2f} ms vs "
                      f"{theirs['added_p50_ms']:+.2f} ms")


def run_kimi(python: str, name: str, fake_port: int, n: int, tput_s: float, tmp: str,
             args: argparse.Namespace, formats: bool = True, loop: str = "auto",
             named: bool = False) -> dict[str, float]:
    proxy_port = free_port()
    name = f"{name} (loop {loop})" if named else name
    command = [python, __file__, "--proxy", str(proxy_port), str(fake_port), tmp, "--http", args.http,
               "--loop", loop]
    with process(command, proxy_port) as proxy:
        start_rss = rss_mb(proxy.pid)
        m = asyncio.run(measure(proxy_port, fake_port, proxy.pid, "bench/m", n, tput_s))
        calls = 300 + n + n // 2 + int(m["proxy_rps"] * tput_s + m["proxy_rps_50"] * tput_s / 2)
        plain = request_bytes("/v1/chat/completions", "bench/m", False)
        marks = [1000, 5000, 10_000] if not args.quick else [calls, calls + 1000]
        rss = [(0, start_rss), *asyncio.run(run_rss(proxy_port, proxy.pid, plain, calls, marks))]
        report(name, m, rss)
        if formats:  # a baseline from before the Messages and Responses faces has neither
            asyncio.run(measure_formats(proxy_port, "bench/m", n))
            translation_costs()
    return m


def run_litellm(binary: str, fake_port: int, n: int, tput_s: float, tmp: str) -> dict[str, float] | None:
    if not binary:
        print("\n== LiteLLM == skipped: no `litellm` command (pip install 'litellm[proxy]' in its own venv)")
        return None
    port = free_port()
    config = Path(tmp) / "litellm.yaml"
    config.write_text(
        "model_list:\n" + "".join(
            f"  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n"
            f"      api_base: http://127.0.0.1:{fake_port}/v1\n      api_key: sk-bench\n"
            for name in ("m", "m50")))
    # LiteLLM >= 1.108 refuses to start on loopback without a master key unless told otherwise
    env = {"LITELLM_LOG": "ERROR", "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"}
    with process([binary, "--config", str(config), "--port", str(port), "--num_workers", "1"], port,
                 env=env) as proc:
        m = asyncio.run(measure(port, fake_port, proc.pid, "m", n, tput_s))
        rss = [(0, rss_mb(proc.pid))]
        report("LiteLLM proxy", m, rss)
    return m


if __name__ == "__main__":
    main()
